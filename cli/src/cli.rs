//! The command line, as clap parses it.

use std::path::PathBuf;

use branchline_core::BranchId;
use branchline_core::model::{
    ActivityStatus, Category, Collection, Date, Gender, Indicator, LocalDateTime, MemberStatus,
    PetitionStatus, SpendingCategory, Stage,
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
    /// Dues (党费): payments, spending, the public ledger and reminders.
    #[command(subcommand)]
    Dues(DuesCommand),
    /// Points (积分): awards, thought reports, rankings and the point rules.
    #[command(subcommand)]
    Points(PointsCommand),
    /// The way to membership (入党流程): steps, introducers, reminders.
    #[command(subcommand)]
    Applicant(ApplicantCommand),
    /// The problem library and case collection (问题库 / 案例集), shared
    /// between branches.
    #[command(subcommand)]
    Library(LibraryCommand),
    /// The branch's settings: monthly dues, and how the branches below it are
    /// rated.
    #[command(subcommand)]
    Branch(BranchCommand),
    /// The branch's reports for a period: attendance, petitions, meeting
    /// compliance, term, ages; with --branches, the committee's roll-up of
    /// every branch below it.
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
        /// The committee's roll-up: every branch below this one, rated.
        #[arg(long)]
        branches: bool,
        /// Also write the roll-up as an XLSX workbook to this file.
        #[arg(long, requires = "branches")]
        xlsx: Option<PathBuf>,
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
            Command::Dues(c) => !matches!(
                c,
                DuesCommand::Ledger { .. }
                    | DuesCommand::Overdue { .. }
                    | DuesCommand::Status { .. }
                    | DuesCommand::Export { .. }
            ),
            Command::Points(c) => !matches!(
                c,
                PointsCommand::Ranking { .. }
                    | PointsCommand::Export { .. }
                    | PointsCommand::Rules(RulesCommand::List)
            ),
            Command::Applicant(c) => !matches!(
                c,
                ApplicantCommand::List
                    | ApplicantCommand::Reminders { .. }
                    | ApplicantCommand::Show { .. }
            ),
            Command::Library(c) => {
                !matches!(c, LibraryCommand::List { .. } | LibraryCommand::Show { .. })
            }
            Command::Branch(c) => !matches!(c, BranchCommand::Show),
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

/// Which files an export writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// CSV files, one per table.
    Csv,
    /// One XLSX workbook, a sheet per table.
    Xlsx,
    /// Both.
    All,
}

/// `branchline dues …`
#[derive(Subcommand, Debug)]
pub enum DuesCommand {
    /// Record dues a member paid for months of a year; prints the entry's id.
    Pay {
        /// The member (id, prefix or name).
        member: String,
        /// The months paid for: one (4) or a run (1-3).
        #[arg(long)]
        months: String,
        /// The amount in yuan, e.g. 30.00 (default: the member's monthly
        /// amount times the months).
        #[arg(long, allow_hyphen_values = true)]
        amount: Option<String>,
        /// The day paid (default: today).
        #[arg(long)]
        on: Option<Date>,
        /// The year the months belong to (default: the year of the day paid).
        #[arg(long)]
        year: Option<i64>,
    },
    /// Void a payment recorded by mistake; it stays in the ledger, marked.
    Void {
        /// The payment's entry id or id prefix (from `dues ledger`).
        entry: String,
        /// Why it is voided.
        #[arg(long)]
        reason: String,
        /// The year of the ledger holding it (default: this year).
        #[arg(long)]
        year: Option<i64>,
    },
    /// Set what a member pays a month, or put them back on the branch's amount.
    SetAmount {
        /// The member (id, prefix or name).
        member: String,
        /// Yuan a month, e.g. 12.50.
        #[arg(
            required_unless_present = "default",
            conflicts_with = "default",
            allow_hyphen_values = true
        )]
        yuan: Option<String>,
        /// Pay the branch's monthly amount again.
        #[arg(long)]
        default: bool,
        /// The year it applies to (default: this year).
        #[arg(long)]
        year: Option<i64>,
    },
    /// Record money spent from the dues on branch work; prints the entry's id.
    Spend {
        /// The amount in yuan, e.g. 120.00.
        #[arg(allow_hyphen_values = true)]
        yuan: String,
        /// What kind of branch work: education, study_materials,
        /// commendation, hardship_support or branch_activity.
        #[arg(long)]
        category: SpendingCategory,
        /// What exactly it paid for.
        #[arg(long)]
        purpose: String,
        /// Who approved it, e.g. 支委会.
        #[arg(long)]
        approved_by: String,
        /// The day spent (default: today).
        #[arg(long)]
        on: Option<Date>,
    },
    /// The public ledger (党费公示) of a year: payments, spending, balance.
    Ledger {
        /// The year (default: this year).
        #[arg(long)]
        year: Option<i64>,
    },
    /// Members behind with their dues: the reminder list.
    Overdue {
        /// The day counted as today (default: today).
        #[arg(long)]
        as_of: Option<Date>,
    },
    /// One member's dues for a year (default: this device's member).
    Status {
        /// The member (id, prefix or name).
        member: Option<String>,
        /// The year (default: this year).
        #[arg(long)]
        year: Option<i64>,
        /// The day counted as today (default: today).
        #[arg(long)]
        as_of: Option<Date>,
    },
    /// Write the public ledger of a year as CSV files and an XLSX workbook.
    Export {
        /// Which files: csv, xlsx or all.
        #[arg(long, value_enum, default_value = "all")]
        format: ExportFormat,
        /// The directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The year (default: this year).
        #[arg(long)]
        year: Option<i64>,
        /// Start the CSV files with a UTF-8 byte order mark, for Excel.
        #[arg(long)]
        bom: bool,
    },
}

/// `branchline points …`
#[derive(Subcommand, Debug)]
pub enum PointsCommand {
    /// Award points to a member by a point rule or for a reason of its own;
    /// prints the entry's id.
    Award {
        /// The member (id, prefix or name).
        member: String,
        /// The branch's point rule (see `points rules list`).
        #[arg(long, required_unless_present = "points")]
        rule: Option<String>,
        /// Points (the rule's unless given; negative to deduct).
        #[arg(long, allow_hyphen_values = true)]
        points: Option<i64>,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        /// The day it counts for (default: today).
        #[arg(long)]
        on: Option<Date>,
    },
    /// Take back an award recorded by mistake.
    Withdraw {
        /// The award's entry id or id prefix (printed when it was made).
        entry: String,
        /// The year of the award (default: this year).
        #[arg(long)]
        year: Option<i32>,
    },
    /// Record a thought report (思想汇报) a member handed in; on time it earns
    /// the thought_report rule's points. Prints the entry's id.
    ReportReceived {
        /// The member (id, prefix or name).
        member: String,
        /// The day it was due.
        #[arg(long)]
        due: Date,
        /// The day it was handed in (default: today).
        #[arg(long)]
        on: Option<Date>,
    },
    /// The points ranking of a quarter (default: this quarter) or a year.
    Ranking {
        /// A quarter, e.g. 2026-Q2.
        #[arg(long, conflicts_with = "year")]
        quarter: Option<String>,
        /// A whole year, e.g. 2026.
        #[arg(long)]
        year: Option<i32>,
    },
    /// The branch's point rules (积分项目).
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Write the ranking as a CSV file and an XLSX workbook.
    Export {
        /// Which files: csv, xlsx or all.
        #[arg(long, value_enum, default_value = "all")]
        format: ExportFormat,
        /// The directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// A quarter, e.g. 2026-Q2 (default: this quarter).
        #[arg(long, conflicts_with = "year")]
        quarter: Option<String>,
        /// A whole year, e.g. 2026.
        #[arg(long)]
        year: Option<i32>,
        /// Start the CSV file with a UTF-8 byte order mark, for Excel.
        #[arg(long)]
        bom: bool,
    },
}

/// `branchline points rules …`
#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// The point rules the branch profile defines.
    List,
    /// Add or change a point rule (committee).
    Set {
        /// The rule's code, e.g. major_task.
        code: String,
        /// Points it is worth (negative for a deduction).
        #[arg(long, allow_hyphen_values = true)]
        points: i64,
        /// What earns them, e.g. 完成急难险重任务.
        #[arg(long)]
        description: String,
        /// A base item every member can earn, rather than a bonus item.
        #[arg(long)]
        base: bool,
    },
}

/// `branchline applicant …`
#[derive(Subcommand, Debug)]
pub enum ApplicantCommand {
    /// Open the file of a person on the roster who applied; prints its id.
    Add {
        /// The person (id, prefix or name), on the roster already.
        member: String,
        /// The day the application was handed in.
        #[arg(long)]
        applied: Date,
    },
    /// Record a step of the way: activist, candidate, probationary or full.
    Step {
        /// The applicant (id, prefix or name).
        member: String,
        /// The step: activist, candidate, probationary or full.
        stage: Stage,
        /// The day it was taken.
        #[arg(long)]
        on: Date,
        /// A note, e.g. the meeting that decided it.
        #[arg(long)]
        note: Option<String>,
    },
    /// Name an introducer (入党介绍人), an active full member.
    Introducer {
        /// The applicant (id, prefix or name).
        member: String,
        /// The introducer (id, prefix or name).
        introducer: String,
    },
    /// Everyone on the way to membership, furthest along first.
    List,
    /// Steps and thought reports that are due.
    Reminders {
        /// The day counted as today (default: today).
        #[arg(long)]
        as_of: Option<Date>,
    },
    /// One applicant: steps with their dates, introducers, thought reports.
    Show {
        /// The applicant (id, prefix or name).
        member: String,
    },
}

/// `branchline library …`
#[derive(Subcommand, Debug)]
pub enum LibraryCommand {
    /// Write a new entry (committee); prints its id.
    Add {
        /// problem (问题库) or case (案例集).
        #[arg(long)]
        collection: Collection,
        /// Title.
        #[arg(long)]
        title: String,
        /// The problem, or the situation of a case.
        #[arg(long)]
        problem: String,
        /// How it was solved, or what was done.
        #[arg(long)]
        solution: String,
        /// A tag (repeat for more).
        #[arg(long)]
        tag: Vec<String>,
        /// The day written (default: today).
        #[arg(long)]
        on: Option<Date>,
    },
    /// Entries on this device, the branch's own and those shared with it,
    /// newest first.
    List {
        /// Only this collection: problem or case.
        #[arg(long)]
        collection: Option<Collection>,
        /// Only entries with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only titles containing this text.
        #[arg(long)]
        title_contains: Option<String>,
    },
    /// One entry, whole.
    Show {
        /// Entry id, id prefix, or exact title.
        entry: String,
    },
    /// Rewrite an entry's title, problem or solution (only those given).
    Revise {
        /// Entry id, id prefix, or exact title.
        entry: String,
        /// New title.
        #[arg(long)]
        title: Option<String>,
        /// New problem text.
        #[arg(long)]
        problem: Option<String>,
        /// New solution text.
        #[arg(long)]
        solution: Option<String>,
    },
    /// Add tags to an entry.
    Tag {
        /// Entry id, id prefix, or exact title.
        entry: String,
        /// The tags.
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Share an entry with an allied branch.
    Share {
        /// Entry id, id prefix, or exact title.
        entry: String,
        /// The branch: its name (where this device knows it) or its id.
        branch: String,
    },
    /// Share an entry with every branch below this one, or stop with --off.
    ShareDown {
        /// Entry id, id prefix, or exact title.
        entry: String,
        /// Stop sharing it down.
        #[arg(long)]
        off: bool,
    },
}

/// `branchline branch …`
#[derive(Subcommand, Debug)]
pub enum BranchCommand {
    /// The branch's settings: monthly dues, point rules, rating.
    Show,
    /// Set what a member pays a month unless set otherwise (committee).
    SetDues {
        /// Yuan a month, e.g. 30.00.
        #[arg(allow_hyphen_values = true)]
        yuan: String,
    },
    /// How the branches below this one are rated (星级评定).
    #[command(subcommand)]
    Rating(RatingCommand),
}

/// `branchline branch rating …`
#[derive(Subcommand, Debug)]
pub enum RatingCommand {
    /// Set how an indicator counts: its weight, and the value that earns it.
    SetIndicator {
        /// meeting_compliance, dues_collection, petitions_in_time,
        /// satisfaction or term_current.
        indicator: Indicator,
        /// Its share of the score (0 leaves it out).
        #[arg(long)]
        weight: u32,
        /// The value in percent (1-100) that earns the whole weight.
        #[arg(long)]
        target: u32,
    },
    /// Set the scores (percent) one to five stars need, e.g. 20,40,60,80,95.
    SetStars {
        /// Five rising scores, separated by commas.
        thresholds: String,
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
