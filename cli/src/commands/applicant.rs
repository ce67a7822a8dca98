//! `branchline applicant …`: the way to membership (入党流程), from the
//! application to full membership: steps with their dates, introducers, the
//! thought reports received, and what is due.
//!
//! The applicant is a person on the roster (added with `member add
//! --category applicant`); each step moves their roster category along.
//! Files are confidential: only the committee and the applicant read them.

use branchline_core::MemberId;
use branchline_core::model::{Applicant, NextStep, Stage};
use branchline_core::store::branch_work::{ApplicantDue, ThoughtReportRow};
use serde::Serialize;

use crate::cli::ApplicantCommand;
use crate::failure::Result;
use crate::home::Home;
use crate::output::{Lang, Out, Table, or_dash};
use crate::{today, words};

/// One step taken, for `applicant show --json`.
#[derive(Serialize)]
struct StepView {
    stage: Stage,
    on: String,
    note: Option<String>,
}

/// A person named by id and name.
#[derive(Serialize)]
struct PersonView {
    member: String,
    name: String,
}

/// One applicant's file, for `applicant show --json`.
#[derive(Serialize)]
struct ApplicantView {
    doc: String,
    member: String,
    name: String,
    stage: Stage,
    steps: Vec<StepView>,
    introducers: Vec<PersonView>,
    thought_reports: Vec<ThoughtReportRow>,
    next: Option<NextStep>,
}

/// What is due, for people.
fn due_words(due: ApplicantDue, out: Out) -> String {
    match due {
        ApplicantDue::Step(stage) => out.say(
            format!("step: {}", words::stage(stage, Lang::En)),
            format!("阶段：{}", words::stage(stage, Lang::Zh)),
        ),
        ApplicantDue::ThoughtReport => out.say("thought report", "思想汇报"),
    }
}

/// The next step, for people: `candidate from 2025-03-20`.
fn next_words(next: Option<&NextStep>, out: Out) -> String {
    match next {
        Some(n) => out.say(
            format!("{} from {}", words::stage(n.stage, Lang::En), n.from),
            format!("{}（{} 起）", words::stage(n.stage, Lang::Zh), n.from),
        ),
        None => "-".to_owned(),
    }
}

/// Runs an `applicant` subcommand.
pub fn run(home: &mut Home, command: ApplicantCommand, out: Out) -> Result<()> {
    let branch = home.branch();
    match command {
        ApplicantCommand::Add { member, applied } => {
            home.require_committee("keep applicant files")?;
            let member = home.member(&member)?;
            let result = home.store.add_applicant(branch, member, applied);
            let doc = home.named(result)?;
            let name = home.member_name(member);
            out.created(
                doc,
                out.say(
                    format!("{name} applied on {applied}; their file is open"),
                    format!("已为{name}建立入党申请人档案（{applied} 递交申请）"),
                ),
            );
        }
        ApplicantCommand::Step {
            member,
            stage,
            on,
            note,
        } => {
            home.require_committee("keep applicant files")?;
            let member = home.member(&member)?;
            let result = home
                .store
                .record_applicant_stage(member, stage, on, note.as_deref());
            home.named(result)?;
            let name = home.member_name(member);
            out.done(out.say(
                format!("{name}: {} on {on}", words::stage(stage, Lang::En)),
                format!("{name}：{} 确定为{}", on, words::stage(stage, Lang::Zh)),
            ));
        }
        ApplicantCommand::Introducer { member, introducer } => {
            home.require_committee("keep applicant files")?;
            let member = home.member(&member)?;
            let introducer = home.member(&introducer)?;
            let result = home.store.add_introducer(member, introducer);
            home.named(result)?;
            let (name, by) = (home.member_name(member), home.member_name(introducer));
            out.done(out.say(
                format!("{by} is an introducer of {name}"),
                format!("{by}为{name}的入党介绍人"),
            ));
        }
        ApplicantCommand::List => {
            let rows = home.store.applicants(branch)?;
            let names = home.names();
            let name = |m: &MemberId| names.get(m).cloned().unwrap_or_else(|| m.to_string());
            out.show(&rows, || {
                let mut table = Table::new(match out.lang {
                    Lang::En => [
                        "name",
                        "stage",
                        "since",
                        "introducers",
                        "thought reports",
                        "next",
                    ],
                    Lang::Zh => ["姓名", "阶段", "日期", "入党介绍人", "思想汇报", "下一步"],
                });
                for r in &rows {
                    // By name: ids say nothing to people.
                    let mut introducers: Vec<String> = r.introducers.iter().map(name).collect();
                    introducers.sort();
                    table.row(vec![
                        r.name.clone(),
                        words::stage(r.stage, out.lang).to_owned(),
                        r.stage_on.to_string(),
                        if introducers.is_empty() {
                            "-".to_owned()
                        } else {
                            introducers.join(out.lang.pick(", ", "、"))
                        },
                        r.thought_reports.to_string(),
                        next_words(r.next.as_ref(), out),
                    ]);
                }
                table.print(out.lang.pick("nobody is on the way", "入党流程中没有人"));
            });
        }
        ApplicantCommand::Reminders { as_of } => {
            let as_of = as_of.unwrap_or_else(today);
            let rows = home.store.applicant_reminders(branch, as_of)?;
            out.show(&rows, || {
                let mut table = Table::new(match out.lang {
                    Lang::En => ["name", "due", "since"],
                    Lang::Zh => ["姓名", "到期事项", "起始日期"],
                });
                for r in &rows {
                    table.row(vec![
                        r.name.clone(),
                        due_words(r.due, out),
                        r.since.to_string(),
                    ]);
                }
                table.print(out.lang.pick("nothing is due", "没有到期的事项"));
            });
        }
        ApplicantCommand::Show { member } => {
            let member = home.member(&member)?;
            let result = home.store.applicant(member);
            let file: Applicant = home.named(result)?;
            let reports = home.store.thought_reports(member)?;
            let view = ApplicantView {
                doc: file.meta.id.to_string(),
                member: member.to_string(),
                name: home.member_name(member),
                stage: file.stage(),
                steps: Stage::ALL
                    .iter()
                    .filter_map(|s| {
                        file.stages.get(s.as_str()).map(|e| StepView {
                            stage: *s,
                            on: e.on.to_string(),
                            note: e.note.clone(),
                        })
                    })
                    .collect(),
                introducers: {
                    let mut people: Vec<PersonView> = file
                        .introducers()
                        .into_iter()
                        .map(|m| PersonView {
                            member: m.to_string(),
                            name: home.member_name(m),
                        })
                        .collect();
                    people.sort_by(|a, b| a.name.cmp(&b.name));
                    people
                },
                thought_reports: reports,
                next: file.next_step(),
            };
            out.show(&view, || {
                let l = |en, zh| out.lang.pick(en, zh);
                println!("{} ({})", view.name, words::stage(view.stage, out.lang));
                for s in &view.steps {
                    println!(
                        "  {}  {}  {}",
                        s.on,
                        words::stage(s.stage, out.lang),
                        s.note.as_deref().unwrap_or("")
                    );
                }
                let introducers: Vec<&str> =
                    view.introducers.iter().map(|p| p.name.as_str()).collect();
                println!(
                    "{}: {}",
                    l("introducers", "入党介绍人"),
                    if introducers.is_empty() {
                        "-".to_owned()
                    } else {
                        introducers.join(l(", ", "、"))
                    }
                );
                println!(
                    "{}: {}",
                    l("thought reports", "思想汇报"),
                    view.thought_reports.len()
                );
                for r in &view.thought_reports {
                    println!(
                        "  {}  ({} {})  {}",
                        r.received,
                        l("due", "应交"),
                        r.due,
                        if r.on_time {
                            l("on time", "按时")
                        } else {
                            l("late", "逾期")
                        }
                    );
                }
                println!(
                    "{}: {}",
                    l("next", "下一步"),
                    or_dash(view.next.as_ref().map(|n| next_words(Some(n), out)))
                );
            });
        }
    }
    Ok(())
}
