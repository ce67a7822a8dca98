//! `branchline feedback …`: the branch's feedback box (意见箱), offline.
//!
//! Suggestions reach the box through the server (`branchline suggest`); the
//! committee answers them here and publishes the answers. An answer is not
//! public until it is published, so a member's device shows only published
//! answers, even though the member may read the whole box.

use std::collections::HashMap;

use branchline_core::MemberId;
use branchline_core::model::feedback::Suggestion;
use branchline_core::store::query::MemberFilter;
use serde::Serialize;

use crate::cli::FeedbackCommand;
use crate::failure::Result;
use crate::home::Home;
use crate::output::{Lang, Out, Table, local_time, or_dash, short};

/// An answer, for `feedback list --json`.
#[derive(Serialize)]
struct AnswerView {
    text: String,
    by: Option<String>,
    by_name: Option<String>,
    at: i64,
    published: bool,
}

/// A suggestion, for `feedback list --json`.
#[derive(Serialize)]
struct SuggestionView {
    id: String,
    on: String,
    text: String,
    anonymous: bool,
    author: Option<String>,
    author_name: Option<String>,
    answer: Option<AnswerView>,
    published: bool,
}

/// Runs a `feedback` subcommand.
pub fn run(home: &mut Home, command: FeedbackCommand, out: Out) -> Result<()> {
    let branch = home.branch();
    match command {
        FeedbackCommand::List { published } => list(home, published, out),
        FeedbackCommand::Answer { suggestion, text } => {
            home.require_committee("answer suggestions")?;
            let id = home.suggestion(&suggestion)?;
            home.store.answer_suggestion(branch, id, &text)?;
            out.done(out.say(
                format!(
                    "suggestion {} answered; publish the answer with `branchline feedback publish {}`",
                    short(id),
                    short(id)
                ),
                format!(
                    "意见 {} 已答复；用 branchline feedback publish {} 公开答复",
                    short(id),
                    short(id)
                ),
            ));
            Ok(())
        }
        FeedbackCommand::Publish {
            suggestion,
            unpublish,
        } => {
            home.require_committee("publish answers")?;
            let id = home.suggestion(&suggestion)?;
            home.store.publish_answer(branch, id, !unpublish)?;
            out.done(if unpublish {
                out.say(
                    format!("the answer to suggestion {} is off the board", short(id)),
                    format!("意见 {} 的答复已撤下", short(id)),
                )
            } else {
                out.say(
                    format!("the answer to suggestion {} is published", short(id)),
                    format!("意见 {} 的答复已公开", short(id)),
                )
            });
            Ok(())
        }
    }
}

fn list(home: &Home, published_only: bool, out: Out) -> Result<()> {
    let branch = home.branch();
    let committee = home.is_committee();
    let names: HashMap<MemberId, String> = match home.store.list_members(
        branch,
        &MemberFilter {
            status: None,
            ..MemberFilter::default()
        },
    ) {
        Ok(members) => members.into_iter().map(|m| (m.id, m.name)).collect(),
        // A resident's device holds no roster: suggestions still list.
        Err(_) => HashMap::new(),
    };
    let mut rows: Vec<(&String, &Suggestion)> = Vec::new();
    let feedback = home.store.feedback_box(branch)?;
    if let Some((_, feedback)) = &feedback {
        rows = feedback
            .suggestions
            .iter()
            .filter(|(_, s)| !published_only || s.is_published())
            .collect();
        rows.sort_by_key(|(id, s)| (s.on, *id));
    }
    let views: Vec<SuggestionView> = rows
        .iter()
        .map(|(id, s)| SuggestionView {
            id: (*id).clone(),
            on: s.on.to_string(),
            text: s.text.as_str().to_owned(),
            anonymous: s.author.is_none(),
            author: s.author.map(|m| m.to_string()),
            author_name: s.author.and_then(|m| names.get(&m).cloned()),
            // A draft answer is the committee's until it is published.
            answer: s
                .answer
                .as_ref()
                .filter(|a| committee || a.published)
                .map(|a| AnswerView {
                    text: a.text.clone(),
                    by: a.by.map(|m| m.to_string()),
                    by_name: a.by.and_then(|m| names.get(&m).cloned()),
                    at: a.at.0,
                    published: a.published,
                }),
            published: s.is_published(),
        })
        .collect();
    out.show(&views, || {
        let mut table = Table::new(match out.lang {
            Lang::En => [
                "id",
                "date",
                "author",
                "suggestion",
                "answer",
                "answered",
                "published",
            ],
            Lang::Zh => [
                "编号",
                "日期",
                "提出人",
                "意见",
                "答复",
                "答复时间",
                "已公开",
            ],
        });
        for v in &views {
            let author = match (&v.author_name, &v.author) {
                (Some(name), _) => name.clone(),
                (None, Some(id)) => short(id),
                (None, None) => out.lang.pick("anonymous", "匿名").to_owned(),
            };
            table.row(vec![
                short(&v.id),
                v.on.clone(),
                author,
                v.text.clone(),
                or_dash(v.answer.as_ref().map(|a| a.text.as_str())),
                or_dash(
                    v.answer
                        .as_ref()
                        .map(|a| local_time(branchline_core::model::Timestamp(a.at))),
                ),
                if v.published {
                    out.lang.pick("yes", "是")
                } else {
                    out.lang.pick("no", "否")
                }
                .to_owned(),
            ]);
        }
        let empty = match (&feedback, published_only) {
            (None, _) => out.lang.pick(
                "the branch's feedback box is empty or has not reached this device",
                "支部意见箱为空，或尚未同步到本机",
            ),
            (Some(_), true) => out
                .lang
                .pick("no published answers yet", "还没有公开的答复"),
            (Some(_), false) => out.lang.pick("no suggestions yet", "还没有意见"),
        };
        table.print(empty);
    });
    Ok(())
}
