//! `branchline library …`: the problem library and the case collection
//! (问题库 / 案例集): common problems with their solutions, and good practice,
//! written by a branch's committee and shared with allied branches or with
//! every branch below it.
//!
//! An entry is named by its id, an id prefix, or its exact title. Only the
//! committee of the branch that wrote an entry may change it: the server
//! would refuse anyone else's edit at the next sync, so it is refused here.

use branchline_core::model::{LibraryEntry, NewLibraryEntry};
use branchline_core::store::branch_work::LibraryFilter;
use branchline_core::{BranchId, DocId};
use serde::Serialize;

use crate::cli::LibraryCommand;
use crate::failure::{Failure, Result};
use crate::home::{Home, prefix_matches, unique};
use crate::output::{Lang, Out, Table, short};
use crate::{today, words};

/// An entry whole, for `library show --json`.
#[derive(Serialize)]
struct EntryView<'a> {
    id: String,
    branch: String,
    branch_name: String,
    collection: String,
    title: &'a str,
    problem: &'a str,
    solution: &'a str,
    tags: Vec<String>,
    written_on: String,
    shared_with: Vec<SharedView>,
    shared_down: bool,
}

/// A branch an entry is shared with.
#[derive(Serialize)]
struct SharedView {
    branch: String,
    name: String,
}

/// A library entry on this device by id, unique id prefix, or exact title.
fn entry(home: &Home, text: &str) -> Result<DocId> {
    if let Ok(id) = text.trim().parse::<DocId>() {
        return Ok(id);
    }
    let rows = home.store.library(&LibraryFilter::default())?;
    let by_title: Vec<DocId> = rows
        .iter()
        .filter(|r| r.title == text.trim())
        .map(|r| r.id)
        .collect();
    if !by_title.is_empty() {
        return unique(by_title.into_iter(), "doc.not_found", "library entry", text);
    }
    unique(
        rows.iter()
            .filter(|r| prefix_matches(&r.id.to_string(), text))
            .map(|r| r.id),
        "doc.not_found",
        "library entry",
        text,
    )
}

/// A branch by id, or by name where this device holds its profile.
fn branch_named(home: &Home, text: &str) -> Result<BranchId> {
    if let Ok(id) = text.trim().parse::<BranchId>() {
        return Ok(id);
    }
    let documents = home.store.documents()?;
    let found = documents
        .iter()
        .filter(|d| d.kind == "branch_profile")
        .filter(|d| {
            home.store
                .profile(d.branch)
                .is_ok_and(|p| p.name == text.trim())
                || prefix_matches(&d.branch.to_string(), text)
        })
        .map(|d| d.branch);
    unique(found, "branch.unknown", "branch", text).map_err(|e| {
        if e.code == "branch.unknown" {
            Failure::invalid(
                "branch.unknown",
                format!(
                    "this device knows no branch named {text:?}; give the branch's id \
                     (from the server admin's `branch list`)"
                ),
            )
            .zh(format!(
                "本机不知道名为“{text}”的支部；请给出支部编号（由服务器管理员的 branch list 查得）"
            ))
        } else {
            e
        }
    })
}

/// Fails unless this device's committee may change the entry: its branch
/// wrote it.
fn require_own(home: &Home, id: DocId) -> Result<LibraryEntry> {
    home.require_committee("write the problem library")?;
    let entry: LibraryEntry = home.store.library_entry(id)?;
    if entry.meta.branch != home.branch() {
        let by = home.branch_name(entry.meta.branch);
        return Err(Failure::invalid(
            "access.read_only",
            format!(
                "{:?} was written by {by}; only that branch's committee may change it",
                entry.title
            ),
        )
        .zh(format!(
            "“{}”由{by}编写，只有该支部的支委会可以修改",
            entry.title
        )));
    }
    Ok(entry)
}

/// Runs a `library` subcommand.
pub fn run(home: &mut Home, command: LibraryCommand, out: Out) -> Result<()> {
    let branch = home.branch();
    match command {
        LibraryCommand::Add {
            collection,
            title,
            problem,
            solution,
            tag,
            on,
        } => {
            home.require_committee("write the problem library")?;
            let new = NewLibraryEntry {
                collection,
                title: title.clone(),
                problem,
                solution,
                tags: tag,
                written_on: on.unwrap_or_else(today),
            };
            let id = home.store.write_library_entry(branch, new)?;
            let title = title.trim();
            out.created(
                id,
                out.say(
                    format!(
                        "{title:?} written into the {}",
                        words::collection(collection, Lang::En)
                    ),
                    format!("“{title}”已写入{}", words::collection(collection, Lang::Zh)),
                ),
            );
        }
        LibraryCommand::List {
            collection,
            tag,
            title_contains,
        } => {
            let filter = LibraryFilter {
                collection,
                tag,
                title_contains,
            };
            let rows = home.store.library(&filter)?;
            out.show(&rows, || {
                let mut table = Table::new(match out.lang {
                    Lang::En => ["id", "collection", "title", "tags", "by", "written"],
                    Lang::Zh => ["编号", "类别", "标题", "标签", "编写支部", "日期"],
                });
                for r in &rows {
                    table.row(vec![
                        short(r.id),
                        words::collection(r.collection, out.lang).to_owned(),
                        r.title.clone(),
                        if r.tags.is_empty() {
                            "-".to_owned()
                        } else {
                            r.tags.join(out.lang.pick(", ", "、"))
                        },
                        r.branch_name.clone().unwrap_or_else(|| short(r.branch)),
                        r.written_on.to_string(),
                    ]);
                }
                table.print(out.lang.pick("no entries", "没有条目"));
            });
        }
        LibraryCommand::Show { entry: text } => {
            let id = entry(home, &text)?;
            let e = home.store.library_entry(id)?;
            let view = EntryView {
                id: id.to_string(),
                branch: e.meta.branch.to_string(),
                branch_name: home.branch_name(e.meta.branch),
                collection: e.collection.to_string(),
                title: &e.title,
                problem: e.problem.as_str(),
                solution: e.solution.as_str(),
                tags: e.tags(),
                written_on: e.written_on.to_string(),
                shared_with: e
                    .shared_with
                    .iter()
                    .filter(|(_, on)| **on)
                    .filter_map(|(b, _)| b.parse::<BranchId>().ok())
                    .map(|b| SharedView {
                        branch: b.to_string(),
                        name: home.branch_name(b),
                    })
                    .collect(),
                shared_down: e.shared_down,
            };
            out.show(&view, || {
                let l = |en, zh| out.lang.pick(en, zh);
                println!(
                    "{} ({})",
                    view.title,
                    words::collection(e.collection, out.lang)
                );
                println!(
                    "{}: {} ({})",
                    l("written by", "编写"),
                    view.branch_name,
                    view.written_on
                );
                println!("{}:\n{}", l("problem", "问题"), view.problem);
                println!("{}:\n{}", l("solution", "解决办法"), view.solution);
                if !view.tags.is_empty() {
                    println!("{}: {}", l("tags", "标签"), view.tags.join(l(", ", "、")));
                }
                let shared: Vec<&str> = view.shared_with.iter().map(|s| s.name.as_str()).collect();
                if !shared.is_empty() {
                    println!(
                        "{}: {}",
                        l("shared with", "共享给"),
                        shared.join(l(", ", "、"))
                    );
                }
                if view.shared_down {
                    println!(
                        "{}",
                        l("shared with every branch below", "已共享给下级所有支部")
                    );
                }
            });
        }
        LibraryCommand::Revise {
            entry: text,
            title,
            problem,
            solution,
        } => {
            let id = entry(home, &text)?;
            if title.is_none() && problem.is_none() && solution.is_none() {
                return Err(Failure::invalid(
                    "input.nothing_to_change",
                    "give what to change: --title, --problem or --solution",
                )
                .zh("请给出要修改的内容：--title、--problem 或 --solution"));
            }
            require_own(home, id)?;
            home.store.revise_library_entry(
                id,
                title.as_deref(),
                problem.as_deref(),
                solution.as_deref(),
            )?;
            let title = home.store.library_entry(id)?.title;
            out.done(out.say(format!("{title:?} revised"), format!("“{title}”已修改")));
        }
        LibraryCommand::Tag { entry: text, tags } => {
            let id = entry(home, &text)?;
            require_own(home, id)?;
            home.store.tag_library_entry(id, &tags)?;
            let e = home.store.library_entry(id)?;
            out.done(out.say(
                format!("{:?} is tagged {}", e.title, e.tags().join(", ")),
                format!("“{}”的标签：{}", e.title, e.tags().join("、")),
            ));
        }
        LibraryCommand::Share {
            entry: text,
            branch: partner,
        } => {
            let id = entry(home, &text)?;
            let partner = branch_named(home, &partner)?;
            let e = require_own(home, id)?;
            home.store.share_library_entry(id, partner)?;
            let name = home.branch_name(partner);
            out.done(out.say(
                format!("{:?} shared with {name}", e.title),
                format!("“{}”已共享给{name}", e.title),
            ));
        }
        LibraryCommand::ShareDown { entry: text, off } => {
            let id = entry(home, &text)?;
            let e = require_own(home, id)?;
            home.store.share_library_entry_down(id, !off)?;
            out.done(if off {
                out.say(
                    format!("{:?} is no longer shared down", e.title),
                    format!("“{}”已停止向下级共享", e.title),
                )
            } else {
                out.say(
                    format!("{:?} shared with every branch below", e.title),
                    format!("“{}”已共享给下级所有支部", e.title),
                )
            });
        }
    }
    Ok(())
}
