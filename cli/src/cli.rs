//! The command line, as clap parses it.

use std::path::PathBuf;

use branchline_core::BranchId;
use branchline_core::model::{
    ActivityStatus, Category, Date, Gender, LocalDateTime, MemberStatus, PetitionStatus,
};
use clap::{Args, Parser, Subcommand};

use crate::output::Lang;

const EXIT_STATUSES: &str = "\
Exit status: 0 done; 1 unexpected failure; 2 bad command line; 3 invalid input or \
refused by a rule of the records; 4 server unreachable; 5 refused by the server; \
6 the home directory is not an enrolled Branchline store.";

/// The Branchline desktop client: a branch's records, offline, synced with
/// the branch server.
#[derive(Parser, Debug)]
#[command(name = "branchline", version, after_help = EXIT_STATUSES)]
pub struct Cli {
    /// The directory holding this device's store (default: the user's data
    /// directory, e.g. ~/.local/share/branchline).
    #[arg(long, global = true, env = "BRANCHLINE_HOME")]
    pub home: Option<PathBuf>,
    /// Language of messages (default: from the system locale).
    #[arg(long, global = true, value_enum)]
    pub lang: Option<Lang>,
    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Join a branch with an invite link from its secretary or server admin.
    Enroll {
        /// The invite link, `branchline://host:port/CODE?cert=…`.
        link: String,
        /// A name for this device, shown to the secretary.
        #[arg(long, default_value = "Branchline desktop")]
        name: String,
        /// Give up after this many seconds without reaching the server.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Who this device is, changes waiting to sync, and the last sync.
    Status,
    /// Sync with the branch server once, or stay connected with --watch.
    Sync {
        /// Stay connected: sync live and reconnect by itself until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Give up after this many seconds without getting in sync (once mode).
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// The roster: members of the branch.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Meetings and other activities: plan, sign in, minutes.
    #[command(subcommand)]
    Activity(ActivityCommand),
    /// Residents' requests: submit, assign, progress, resolve, rate.
    #[command(subcommand)]
    Petition(PetitionCommand),
    /// The branch's reports for a period: attendance, petitions, meeting
    /// compliance, term, ages.
    Report {
        /// First day (default: 1 January of this year).
        #[arg(long)]
        from: Option<Date>,
        /// Last day (default: today).
        #[arg(long)]
        to: Option<Date>,
        /// The day counted as today for overdue items and ages (default: today).
        #[arg(long)]
        as_of: Option<Date>,
    },
    /// Fields two devices changed at the same time, and settling them.
    #[command(subcommand)]
    Conflicts(ConflictCommand),
    /// The branch's public submission code (民情直通车), which residents scan
    /// to send requests; asks the server (secretary and committee).
    SubmissionCode {
        /// Also draw the code as a QR code in the terminal, for a poster or a
        /// phone to scan.
        #[arg(long)]
        qr: bool,
        /// Give up after this many seconds without reaching the server.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Put a suggestion in the branch's feedback box (意见箱), through the
    /// server; prints the suggestion's id.
    Suggest {
        /// The suggestion.
        text: String,
        /// Leave your name off: the server keeps nothing that links it to you.
        #[arg(long)]
        anonymous: bool,
        /// Give up after this many seconds without reaching the server.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// The feedback box: suggestions, answers, and the public board.
    #[command(subcommand)]
    Feedback(FeedbackCommand),
    /// Changes of this device the server refused, and what became of the
    /// edits made after them.
    Rejections,
}

impl Command {
    /// Whether the command changes records or asks the server: refused on a
    /// revoked device, which may only read what it holds.
    pub fn edits(&self) -> bool {
        match self {
            Command::Status | Command::Report { .. } | Command::Rejections => false,
            Command::Member(c) => !matches!(c, MemberCommand::List { .. }),
            Command::Activity(c) => !matches!(
                c,
                ActivityCommand::List { .. }
                    | ActivityCommand::Show { .. }
                    | ActivityCommand::Kinds
            ),
            Command::Petition(c) => !matches!(
                c,
                PetitionCommand::List { .. } | PetitionCommand::Show { .. }
            ),
            Command::Conflicts(c) => !matches!(c, ConflictCommand::List),
            Command::Feedback(c) => !matches!(c, FeedbackCommand::List { .. }),
            Command::Enroll { .. }
            | Command::Sync { .. }
            | Command::SubmissionCode { .. }
            | Command::Suggest { .. } => true,
        }
    }
}

/// `branchline member …`
#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Add a member to the roster; prints the new member id.
    Add {
        /// Full name.
        name: String,
        #[command(flatten)]
        fields: MemberFields,
    },
    /// Change a member's roster entry (only the fields given).
    Update {
        /// Member id, id prefix, or exact name.
        member: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: MemberFields,
    },
    /// Record that a member transferred to another branch.
    TransferOut {
        /// Member id, id prefix, or exact name.
        member: String,
        /// The day (default: today).
        #[arg(long)]
        on: Option<Date>,
    },
    /// Record that a member passed away.
    Deceased {
        /// Member id, id prefix, or exact name.
        member: String,
        /// The day (default: today).
        #[arg(long)]
        on: Option<Date>,
    },
    /// List members.
    List {
        /// Only this category: full or probationary.
        #[arg(long)]
        category: Option<Category>,
        /// Only this status (default: all): active, transferred_out, deceased.
        #[arg(long)]
        status: Option<MemberStatus>,
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
        /// Only names containing this text.
        #[arg(long)]
        name: Option<String>,
    },
}

/// Roster fields shared by `member add` and `member update`.
#[derive(Args, Debug, Default)]
pub struct MemberFields {
    /// Gender: male or female (when adding a member without it, the roster
    /// records it as not recorded, never a guess).
    #[arg(long)]
    pub gender: Option<Gender>,
    /// Birth date, YYYY-MM-DD.
    #[arg(long)]
    pub birth: Option<Date>,
    /// Date joined, YYYY-MM-DD.
    #[arg(long)]
    pub joined: Option<Date>,
    /// Category: full or probationary.
    #[arg(long)]
    pub category: Option<Category>,
    /// Group (党小组).
    #[arg(long)]
    pub group: Option<String>,
    /// Post, e.g. 组织委员.
    #[arg(long)]
    pub post: Option<String>,
    /// Phone.
    #[arg(long)]
    pub phone: Option<String>,
}

/// `branchline activity …`
#[derive(Subcommand, Debug)]
pub enum ActivityCommand {
    /// Plan an activity; prints its id.
    Create {
        /// Kind code from the branch profile (see `activity kinds`).
        #[arg(long)]
        kind: String,
        /// Title.
        #[arg(long)]
        title: String,
        /// Start, branch time: YYYY-MM-DDTHH:MM.
        #[arg(long)]
        starts: LocalDateTime,
        /// End, branch time: YYYY-MM-DDTHH:MM.
        #[arg(long)]
        ends: LocalDateTime,
        /// Venue.
        #[arg(long)]
        place: Option<String>,
        /// Organizing member (id, prefix or name).
        #[arg(long)]
        organizer: Option<String>,
        /// For a group meeting: the group expected.
        #[arg(long)]
        group: Option<String>,
        /// Agenda.
        #[arg(long)]
        agenda: Option<String>,
    },
    /// Change an activity's title, place or agenda (only the fields given).
    Edit {
        /// Activity id or id prefix.
        activity: String,
        /// New title.
        #[arg(long)]
        title: Option<String>,
        /// New venue (an empty one clears it).
        #[arg(long)]
        place: Option<String>,
        /// New agenda.
        #[arg(long)]
        agenda: Option<String>,
    },
    /// Move an activity to another time.
    Reschedule {
        /// Activity id or id prefix.
        activity: String,
        /// New start, YYYY-MM-DDTHH:MM.
        #[arg(long)]
        starts: LocalDateTime,
        /// New end, YYYY-MM-DDTHH:MM.
        #[arg(long)]
        ends: LocalDateTime,
    },
    /// Sign in to an activity (default: this device's member).
    SignIn {
        /// Activity id or id prefix.
        activity: String,
        /// Sign in this member instead (id, prefix or name).
        #[arg(long)]
        member: Option<String>,
        /// Attended remotely rather than on site.
        #[arg(long)]
        remote: bool,
    },
    /// Ask for leave from an activity (default: this device's member).
    Leave {
        /// Activity id or id prefix.
        activity: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// For this member instead (id, prefix or name).
        #[arg(long)]
        member: Option<String>,
    },
    /// Write (replace) the minutes of an activity: given as text, read from
    /// a file with --file, or from standard input with `-`.
    Minutes {
        /// Activity id or id prefix.
        activity: String,
        /// The minutes, or `-` to read them from standard input.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        text: Option<String>,
        /// Read the minutes from this file (UTF-8 text).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Award bonus points to a member for an activity.
    Award {
        /// Activity id or id prefix.
        activity: String,
        /// The member (id, prefix or name).
        #[arg(long)]
        member: String,
        /// Points (negative to correct an award).
        #[arg(long, allow_hyphen_values = true)]
        points: i64,
    },
    /// Share a joint activity with a partner branch.
    Share {
        /// Activity id or id prefix.
        activity: String,
        /// The partner branch's id.
        #[arg(long)]
        partner: BranchId,
    },
    /// Close an activity: sign-ins, leave and minutes become final.
    Close {
        /// Activity id or id prefix.
        activity: String,
    },
    /// List activities, by start.
    List {
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only from this day.
        #[arg(long)]
        from: Option<Date>,
        /// Only up to this day.
        #[arg(long)]
        to: Option<Date>,
        /// Only open or closed ones.
        #[arg(long)]
        status: Option<ActivityStatus>,
    },
    /// One activity with its minutes and attendance.
    Show {
        /// Activity id or id prefix.
        activity: String,
    },
    /// The activity kinds the branch profile defines.
    Kinds,
}

/// `branchline petition …`
#[derive(Subcommand, Debug)]
pub enum PetitionCommand {
    /// Record a resident's request; prints its id.
    Submit {
        /// Category, e.g. 环境卫生.
        #[arg(long)]
        category: String,
        /// Short title.
        #[arg(long)]
        title: String,
        /// What the resident asks.
        #[arg(long)]
        description: String,
        /// Where.
        #[arg(long)]
        location: Option<String>,
        /// The resident's name, if given.
        #[arg(long)]
        submitter: Option<String>,
        /// The resident's phone or other contact, if given (kept private).
        #[arg(long)]
        contact: Option<String>,
        /// Submitted by this member (id, prefix or name).
        #[arg(long)]
        by_member: Option<String>,
        /// On a resident's device, which sends the request through the
        /// server: give up after this many seconds without reaching it.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Give a petition an owner and a deadline.
    Assign {
        /// Petition id or id prefix.
        petition: String,
        /// The member who owns it (id, prefix or name).
        #[arg(long)]
        owner: String,
        /// Deadline, YYYY-MM-DD.
        #[arg(long)]
        deadline: Date,
    },
    /// Add a progress note.
    Progress {
        /// Petition id or id prefix.
        petition: String,
        /// What happened.
        text: String,
        /// Written by this member (default: this device's member).
        #[arg(long)]
        author: Option<String>,
    },
    /// Resolve a petition.
    Resolve {
        /// Petition id or id prefix.
        petition: String,
        /// What was done.
        summary: String,
        /// Resolved by this member (default: this device's member).
        #[arg(long)]
        by: Option<String>,
    },
    /// Record the submitter's satisfaction (1 to 5) with the resolution.
    Rate {
        /// Petition id or id prefix.
        petition: String,
        /// 1 (very unsatisfied) to 5 (very satisfied).
        score: u8,
        /// A comment.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reopen a resolved petition.
    Reopen {
        /// Petition id or id prefix.
        petition: String,
        /// Why.
        reason: String,
        /// Reopened by this member (default: this device's member).
        #[arg(long)]
        author: Option<String>,
    },
    /// The petition ledger (台账), most urgent deadline first.
    List {
        /// Only this status: open, assigned, resolved.
        #[arg(long)]
        status: Option<PetitionStatus>,
        /// Only petitions this member owns (id, prefix or name).
        #[arg(long)]
        owner: Option<String>,
        /// Only overdue ones.
        #[arg(long)]
        overdue: bool,
    },
    /// One petition with its progress log.
    Show {
        /// Petition id or id prefix.
        petition: String,
    },
}

/// `branchline feedback …`
#[derive(Subcommand, Debug)]
pub enum FeedbackCommand {
    /// Suggestions in the branch's feedback box, oldest first.
    List {
        /// Only the public board: suggestions whose answer is published.
        #[arg(long)]
        published: bool,
    },
    /// Answer a suggestion (committee); replaces an earlier answer and takes
    /// it off the board until it is published again.
    Answer {
        /// Suggestion id or id prefix (from `feedback list`).
        suggestion: String,
        /// The branch's answer.
        text: String,
    },
    /// Put a suggestion's answer on the public board (committee).
    Publish {
        /// Suggestion id or id prefix (from `feedback list`).
        suggestion: String,
        /// Take the answer off the board instead.
        #[arg(long)]
        unpublish: bool,
    },
}

/// `branchline conflicts …`
#[derive(Subcommand, Debug)]
pub enum ConflictCommand {
    /// Fields with more than one concurrent value.
    List,
    /// Keep one of a field's values on every device.
    Settle {
        /// Document id or id prefix (from `conflicts list`).
        doc: String,
        /// The field's path (from `conflicts list`).
        path: String,
        /// The number of the value to keep (from `conflicts list`, from 1).
        keep: usize,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    fn check(command: &clap::Command, path: &str) {
        let path = format!("{path} {}", command.get_name());
        assert!(command.get_about().is_some(), "`{path}` has no help text");
        for arg in command.get_arguments() {
            let name = arg.get_id().as_str();
            if name != "help" && name != "version" {
                assert!(
                    arg.get_help().is_some(),
                    "`{path}` --{name} has no help text"
                );
            }
        }
        for sub in command.get_subcommands() {
            check(sub, &path);
        }
    }

    #[test]
    fn every_subcommand_and_argument_has_help() {
        let command = Cli::command();
        command.clone().debug_assert();
        check(&command, "");
    }
}
