//! `branchline activity …`: meetings, sign-ins, leave and minutes.

use branchline_core::model::{Activity, NewActivity, SignInMode};
use branchline_core::store::query::ActivityFilter;
use serde::Serialize;

use crate::cli::ActivityCommand;
use crate::failure::Result;
use crate::home::Home;
use crate::output::{Lang, Out, Table, local_time, or_dash, short};

/// An activity with its attendance, for `activity show --json`.
#[derive(Serialize)]
struct ActivityDetail<'a> {
    id: String,
    kind: &'a str,
    title: &'a str,
    starts_at: String,
    ends_at: String,
    place: Option<&'a str>,
    organizer: Option<String>,
    status: String,
    agenda: &'a str,
    minutes: &'a str,
    shared_with: Vec<&'a str>,
    attendance: &'a [branchline_core::store::query::AttendanceRow],
}

/// Runs an `activity` subcommand.
pub fn run(home: &mut Home, command: ActivityCommand, out: Out) -> Result<()> {
    let branch = home.branch();
    match command {
        ActivityCommand::Create {
            kind,
            title,
            starts,
            ends,
            place,
            organizer,
            group,
            agenda,
        } => {
            let organizer = organizer.map(|m| home.member(&m)).transpose()?;
            let new = NewActivity {
                kind,
                title: title.clone(),
                starts_at: Some(starts),
                ends_at: Some(ends),
                place,
                organizer,
                group,
                agenda,
            };
            let id = home.store.create_activity(branch, new)?;
            out.created(
                id,
                out.say(
                    format!("planned {title:?} on {starts}"),
                    format!("已安排“{title}”，时间 {starts}"),
                ),
            );
        }
        ActivityCommand::Reschedule {
            activity,
            starts,
            ends,
        } => {
            let id = home.activity(&activity)?;
            home.store
                .update(id, |a: &mut Activity| a.reschedule(starts, ends))?;
            out.done(out.say(
                format!("activity {} moved to {starts}", short(id)),
                format!("活动 {} 已改到 {starts}", short(id)),
            ));
        }
        ActivityCommand::SignIn {
            activity,
            member,
            remote,
        } => {
            let id = home.activity(&activity)?;
            let member = home.member_or_self(member.as_deref())?;
            let mode = if remote {
                SignInMode::Remote
            } else {
                SignInMode::OnSite
            };
            home.store.sign_in(id, member, mode)?;
            out.done(out.say(
                format!("signed in to activity {}", short(id)),
                format!("已签到活动 {}", short(id)),
            ));
        }
        ActivityCommand::Leave {
            activity,
            reason,
            member,
        } => {
            let id = home.activity(&activity)?;
            let member = home.member_or_self(member.as_deref())?;
            home.store.request_leave(id, member, &reason)?;
            out.done(out.say(
                format!("leave requested for activity {}", short(id)),
                format!("已请假：活动 {}", short(id)),
            ));
        }
        ActivityCommand::Minutes { activity, text } => {
            let id = home.activity(&activity)?;
            home.store.write_minutes(id, &text)?;
            out.done(out.say(
                format!("minutes of activity {} saved", short(id)),
                format!("活动 {} 的记录已保存", short(id)),
            ));
        }
        ActivityCommand::Award {
            activity,
            member,
            points,
        } => {
            let id = home.activity(&activity)?;
            let member = home.member(&member)?;
            home.store.award_points(id, member, points)?;
            out.done(out.say(
                format!("{points} points awarded"),
                format!("已加 {points} 分"),
            ));
        }
        ActivityCommand::Share { activity, partner } => {
            let id = home.activity(&activity)?;
            home.store.share_activity(id, partner)?;
            out.done(out.say(
                format!(
                    "activity {} shared with branch {}",
                    short(id),
                    short(partner)
                ),
                format!("活动 {} 已与组织 {} 共享", short(id), short(partner)),
            ));
        }
        ActivityCommand::Close { activity } => {
            let id = home.activity(&activity)?;
            home.store.close_activity(id)?;
            out.done(out.say(
                format!("activity {} closed", short(id)),
                format!("活动 {} 已结束", short(id)),
            ));
        }
        ActivityCommand::List {
            kind,
            from,
            to,
            status,
        } => {
            let filter = ActivityFilter {
                kind,
                from,
                to,
                status,
            };
            let rows = home.store.list_activities(branch, &filter)?;
            out.show(&rows, || {
                let mut table = Table::new(match out.lang {
                    Lang::En => [
                        "id",
                        "starts",
                        "kind",
                        "title",
                        "place",
                        "status",
                        "signed in",
                        "leave",
                    ],
                    Lang::Zh => [
                        "编号", "开始", "类型", "标题", "地点", "状态", "签到", "请假",
                    ],
                });
                for a in &rows {
                    table.row(vec![
                        short(a.id),
                        a.starts_at.to_string(),
                        a.kind.clone(),
                        a.title.clone(),
                        or_dash(a.place.as_deref()),
                        a.status.to_string(),
                        a.sign_ins.to_string(),
                        a.leaves.to_string(),
                    ]);
                }
                table.print(out.lang.pick("no activities", "没有活动"));
            });
        }
        ActivityCommand::Show { activity } => {
            let id = home.activity(&activity)?;
            let a: Activity = home.store.get(id)?;
            let attendance = home.store.attendance(id)?;
            let detail = ActivityDetail {
                id: id.to_string(),
                kind: &a.kind,
                title: &a.title,
                starts_at: a.starts_at.to_string(),
                ends_at: a.ends_at.to_string(),
                place: a.place.as_deref(),
                organizer: a.organizer.map(|m| m.to_string()),
                status: a.status.to_string(),
                agenda: a.agenda.as_str(),
                minutes: a.minutes.as_str(),
                shared_with: a.shared_with.keys().map(String::as_str).collect(),
                attendance: &attendance,
            };
            out.show(&detail, || {
                let l = |en, zh| out.lang.pick(en, zh);
                println!("{} ({})", a.title, a.kind);
                println!("{}: {} .. {}", l("time", "时间"), a.starts_at, a.ends_at);
                println!("{}: {}", l("place", "地点"), or_dash(a.place.as_deref()));
                println!("{}: {}", l("status", "状态"), a.status);
                if !a.agenda.as_str().is_empty() {
                    println!("{}: {}", l("agenda", "议程"), a.agenda.as_str());
                }
                println!(
                    "{}: {}",
                    l("minutes", "会议记录"),
                    if a.minutes.as_str().is_empty() {
                        "-"
                    } else {
                        a.minutes.as_str()
                    }
                );
                let mut table = Table::new(match out.lang {
                    Lang::En => ["member", "name", "attendance", "how", "at"],
                    Lang::Zh => ["成员", "姓名", "出勤", "方式", "时间"],
                });
                for row in &attendance {
                    table.row(vec![
                        short(row.member),
                        or_dash(row.name.as_deref()),
                        if row.present {
                            l("signed in", "已签到")
                        } else {
                            l("on leave", "请假")
                        }
                        .to_owned(),
                        or_dash(row.mode),
                        local_time(row.at),
                    ]);
                }
                table.print(l("nobody signed in yet", "还没有人签到"));
            });
        }
        ActivityCommand::Kinds => {
            let profile = home.store.profile(branch)?;
            let kinds: Vec<_> = profile
                .activity_kinds
                .iter()
                .map(|(code, rule)| {
                    serde_json::json!({
                        "code": code,
                        "name": rule.name,
                        "frequency": rule.frequency.map(|f| f.to_string()),
                        "attendance_points": rule.attendance_points,
                    })
                })
                .collect();
            out.show(&kinds, || {
                let mut table = Table::new(match out.lang {
                    Lang::En => ["code", "name", "required", "points"],
                    Lang::Zh => ["代码", "名称", "频次要求", "积分"],
                });
                for (code, rule) in &profile.activity_kinds {
                    table.row(vec![
                        code.clone(),
                        rule.name.clone(),
                        or_dash(rule.frequency),
                        rule.attendance_points.to_string(),
                    ]);
                }
                table.print("-");
            });
        }
    }
    Ok(())
}
