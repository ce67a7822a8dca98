//! `branchline petition …`: residents' requests and their handling.

use branchline_core::model::petition::Submitter;
use branchline_core::model::{NewPetition, Petition};
use branchline_core::store::query::PetitionFilter;
use branchline_protocol::Role;
use serde::Serialize;

use crate::cli::PetitionCommand;
use crate::commands::network;
use crate::failure::Result;
use crate::home::Home;
use crate::output::{Lang, Out, Table, local_time, or_dash, short};
use crate::{today, words};

/// One progress note, for `petition show --json`.
#[derive(Serialize)]
struct NoteDetail<'a> {
    at: i64,
    author: Option<String>,
    author_name: Option<String>,
    kind: String,
    text: &'a str,
}

/// A petition with its log, for `petition show --json`. The submitter's
/// contact stays out: it is private to the committee's documents.
#[derive(Serialize)]
struct PetitionDetail<'a> {
    id: String,
    category: &'a str,
    title: &'a str,
    description: &'a str,
    location: Option<&'a str>,
    status: String,
    owner: Option<String>,
    owner_name: Option<String>,
    deadline: Option<String>,
    submitted_at: i64,
    progress: Vec<NoteDetail<'a>>,
    resolution: Option<&'a str>,
    rating: Option<u8>,
}

/// Runs a `petition` subcommand.
pub fn run(mut home: Home, command: PetitionCommand, out: Out) -> Result<()> {
    let branch = home.branch();
    match command {
        PetitionCommand::Submit {
            category,
            title,
            description,
            location,
            submitter,
            contact,
            by_member,
            timeout,
        } => {
            let member = by_member.map(|m| home.member(&m)).transpose()?;
            let new = NewPetition {
                category,
                title: title.clone(),
                description,
                location,
                submitter: Submitter {
                    name: submitter,
                    contact,
                    member,
                },
            };
            // A resident's device may not write a petition: the server
            // writes it and the device follows it by sync.
            if home.account()?.role == Role::Resident {
                return network::submit_petition(home, new, timeout, out);
            }
            let result = home.store.submit_petition(branch, new);
            let id = home.named(result)?;
            out.created(
                id,
                out.say(
                    format!("petition {title:?} recorded"),
                    format!("诉求“{title}”已登记"),
                ),
            );
        }
        PetitionCommand::Assign {
            petition,
            owner,
            deadline,
        } => {
            let id = home.petition(&petition)?;
            let owner = home.member(&owner)?;
            let result = home.store.assign_petition(id, owner, deadline);
            home.named(result)?;
            let (title, name) = (home.petition_title(id), home.member_name(owner));
            out.done(out.say(
                format!("{title} assigned to {name}, due {deadline}"),
                format!("“{title}”已分派给{name}，期限 {deadline}"),
            ));
        }
        PetitionCommand::Progress {
            petition,
            text,
            author,
        } => {
            let id = home.petition(&petition)?;
            let author = author_or_self(&home, author.as_deref())?;
            let result = home.store.add_progress(id, author, &text);
            home.named(result)?;
            let title = home.petition_title(id);
            out.done(out.say(
                format!("progress noted on {title}"),
                format!("“{title}”已记录进展"),
            ));
        }
        PetitionCommand::Resolve {
            petition,
            summary,
            by,
        } => {
            let id = home.petition(&petition)?;
            let by = author_or_self(&home, by.as_deref())?;
            let result = home.store.resolve_petition(id, by, &summary);
            home.named(result)?;
            let title = home.petition_title(id);
            out.done(out.say(format!("{title} resolved"), format!("“{title}”已办结")));
        }
        PetitionCommand::Rate {
            petition,
            score,
            comment,
        } => {
            let id = home.petition(&petition)?;
            home.store.rate_petition(id, score, comment.as_deref())?;
            let title = home.petition_title(id);
            out.done(out.say(
                format!("{title} rated {score}/5"),
                format!("“{title}”满意度 {score}/5"),
            ));
        }
        PetitionCommand::Reopen {
            petition,
            reason,
            author,
        } => {
            let id = home.petition(&petition)?;
            let author = author_or_self(&home, author.as_deref())?;
            let result = home.store.reopen_petition(id, author, &reason);
            home.named(result)?;
            let title = home.petition_title(id);
            out.done(out.say(format!("{title} reopened"), format!("“{title}”已重新打开")));
        }
        PetitionCommand::List {
            status,
            owner,
            overdue,
        } => {
            let filter = PetitionFilter {
                status,
                owner: owner.map(|m| home.member(&m)).transpose()?,
                overdue_only: overdue,
            };
            let rows = home.store.list_petitions(branch, &filter, today())?;
            let names = home.names();
            let owner_name =
                |m: branchline_core::MemberId| names.get(&m).cloned().unwrap_or_else(|| short(m));
            out.show(&rows, || {
                let mut table = Table::new(match out.lang {
                    Lang::En => [
                        "id", "category", "title", "status", "owner", "deadline", "rating",
                        "notes", "",
                    ],
                    Lang::Zh => [
                        "编号",
                        "类别",
                        "标题",
                        "状态",
                        "负责人",
                        "期限",
                        "满意度",
                        "进展",
                        "",
                    ],
                });
                for p in &rows {
                    table.row(vec![
                        short(p.id),
                        words::petition_category(&p.category, out.lang),
                        p.title.clone(),
                        words::petition_status(p.status.as_str(), out.lang),
                        or_dash(p.owner.map(owner_name)),
                        or_dash(p.deadline),
                        or_dash(p.rating),
                        p.progress_notes.to_string(),
                        if p.overdue {
                            out.lang.pick("OVERDUE", "已逾期")
                        } else {
                            ""
                        }
                        .to_owned(),
                    ]);
                }
                table.print(out.lang.pick("no petitions", "没有诉求"));
            });
        }
        PetitionCommand::Show { petition } => {
            let id = home.petition(&petition)?;
            let p: Petition = home.store.get(id)?;
            let names = home.names();
            let name =
                |m: branchline_core::MemberId| names.get(&m).cloned().unwrap_or_else(|| short(m));
            let detail = PetitionDetail {
                id: id.to_string(),
                category: &p.category,
                title: &p.title,
                description: p.description.as_str(),
                location: p.location.as_deref(),
                status: p.status.to_string(),
                owner: p.owner.map(|m| m.to_string()),
                owner_name: p.owner.and_then(|m| names.get(&m).cloned()),
                deadline: p.deadline.map(|d| d.to_string()),
                submitted_at: p.submitted_at.0,
                progress: p
                    .progress
                    .iter()
                    .map(|n| NoteDetail {
                        at: n.at.0,
                        author: n.author.map(|m| m.to_string()),
                        author_name: n.author.and_then(|m| names.get(&m).cloned()),
                        kind: n.kind.to_string(),
                        text: &n.text,
                    })
                    .collect(),
                resolution: p.resolution.as_ref().map(|r| r.summary.as_str()),
                rating: p.rating.as_ref().map(|r| r.score),
            };
            out.show(&detail, || {
                let l = |en, zh| out.lang.pick(en, zh);
                println!(
                    "{} [{}] ({})",
                    p.title,
                    words::petition_category(&p.category, out.lang),
                    words::petition_status(p.status.as_str(), out.lang)
                );
                println!("{}", p.description.as_str());
                println!("{}: {}", l("where", "地点"), or_dash(p.location.as_deref()));
                println!("{}: {}", l("submitted", "提交"), local_time(p.submitted_at));
                println!("{}: {}", l("owner", "负责人"), or_dash(p.owner.map(name)));
                println!("{}: {}", l("deadline", "期限"), or_dash(p.deadline));
                for note in &p.progress {
                    println!(
                        "  {}  {}  {}  {}",
                        local_time(note.at),
                        words::value(note.kind.as_str(), out.lang),
                        or_dash(note.author.map(name)),
                        note.text
                    );
                }
                if let Some(r) = &p.resolution {
                    println!(
                        "{}: {} ({})",
                        l("resolved", "办结"),
                        r.summary,
                        local_time(r.at)
                    );
                }
                if let Some(r) = &p.rating {
                    println!(
                        "{}: {}/5 {}",
                        l("rating", "满意度"),
                        r.score,
                        r.comment.as_deref().unwrap_or("")
                    );
                }
            });
        }
    }
    Ok(())
}

/// The member given, or this device's own member if it has one.
fn author_or_self(home: &Home, given: Option<&str>) -> Result<Option<branchline_core::MemberId>> {
    match given {
        Some(text) => home.member(text).map(Some),
        None => Ok(home.own_member()),
    }
}
