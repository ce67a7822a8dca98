//! `branchline activity …`: meetings, sign-ins, leave and minutes.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::Path;

use branchline_core::model::{Activity, NewActivity, SignInMode};
use branchline_core::store::query::{ActivityFilter, AttendanceRow};
use branchline_core::{BranchId, DocId, MemberId};
use serde::Serialize;

use crate::cli::ActivityCommand;
use crate::failure::{EXIT_FAILURE, Failure, Result};
use crate::home::Home;
use crate::output::{Lang, Out, Table, local_time, or_dash, short};
use crate::words;

/// One member's attendance, for `activity show --json`.
#[derive(Serialize)]
struct AttendanceView {
    member: String,
    /// Their roster name, where this device holds their roster.
    name: Option<String>,
    present: bool,
    mode: Option<String>,
    at: i64,
    /// Why they asked for leave.
    reason: Option<String>,
    /// The branch they belong to, when the device can tell: theirs is
    /// the only branch of the activity whose roster it does not hold.
    branch: Option<String>,
    /// That branch's name, where the device holds its profile.
    branch_name: Option<String>,
}

/// An activity with its attendance, for `activity show --json`.
#[derive(Serialize)]
struct ActivityDetail<'a> {
    id: String,
    kind: &'a str,
    kind_name: String,
    title: &'a str,
    starts_at: String,
    ends_at: String,
    place: Option<&'a str>,
    organizer: Option<String>,
    organizer_name: Option<String>,
    status: String,
    agenda: &'a str,
    minutes: &'a str,
    shared_with: Vec<&'a str>,
    attendance: Vec<AttendanceView>,
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
            let result = home.store.create_activity(branch, new);
            let id = home.named(result)?;
            out.created(
                id,
                out.say(
                    format!("planned {title} on {starts}"),
                    format!("已安排“{title}”，时间 {starts}"),
                ),
            );
        }
        ActivityCommand::Edit {
            activity,
            title,
            place,
            agenda,
        } => {
            let id = home.activity(&activity)?;
            edit(home, id, title, place, agenda, out)?;
        }
        ActivityCommand::Reschedule {
            activity,
            starts,
            ends,
        } => {
            let id = home.activity(&activity)?;
            let title = home.activity_title(id);
            home.store
                .update(id, |a: &mut Activity| a.reschedule(starts, ends))?;
            out.done(out.say(
                format!("{title} moved to {starts} .. {ends}"),
                format!("“{title}”已改到 {starts} 至 {ends}"),
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
            let result = home.store.sign_in(id, member, mode);
            home.named(result)?;
            let (name, title) = (home.member_name(member), home.activity_title(id));
            out.done(out.say(
                format!("{name} signed in to {title}"),
                format!("{name}已签到：{title}"),
            ));
        }
        ActivityCommand::Leave {
            activity,
            reason,
            member,
        } => {
            let id = home.activity(&activity)?;
            let member = home.member_or_self(member.as_deref())?;
            let result = home.store.request_leave(id, member, &reason);
            home.named(result)?;
            let (name, title) = (home.member_name(member), home.activity_title(id));
            out.done(out.say(
                format!("{name} asked for leave from {title}: {reason}"),
                format!("{name}已请假：{title}（{reason}）"),
            ));
        }
        ActivityCommand::Minutes {
            activity,
            text,
            file,
        } => {
            let id = home.activity(&activity)?;
            let minutes = minutes_text(text.as_deref(), file.as_deref())?;
            write_minutes(home, id, &minutes)?;
            let title = home.activity_title(id);
            let chars = minutes.chars().count();
            out.done(out.say(
                format!("minutes of {title} saved ({chars} characters)"),
                format!("“{title}”的会议记录已保存（{chars} 字）"),
            ));
        }
        ActivityCommand::Award {
            activity,
            member,
            points,
        } => {
            let id = home.activity(&activity)?;
            let member = home.member(&member)?;
            let result = home.store.award_points(id, member, points);
            home.named(result)?;
            let (name, title) = (home.member_name(member), home.activity_title(id));
            out.done(out.say(
                format!("{points} points awarded to {name} for {title}"),
                format!("已为{name}加 {points} 分：{title}"),
            ));
        }
        ActivityCommand::Share { activity, partner } => {
            let id = home.activity(&activity)?;
            home.store.share_activity(id, partner)?;
            let title = home.activity_title(id);
            let partner = branch_words(home, partner, out);
            out.done(out.say(
                format!("{title} shared with {partner}"),
                format!("“{title}”已与{partner}共享"),
            ));
        }
        ActivityCommand::Close { activity } => {
            let id = home.activity(&activity)?;
            home.store.close_activity(id)?;
            let title = home.activity_title(id);
            out.done(out.say(format!("{title} closed"), format!("“{title}”已结束")));
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
            let profile = home.store.profile(branch).ok();
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
                        words::activity_kind(&a.kind, profile.as_ref(), out.lang),
                        a.title.clone(),
                        or_dash(a.place.as_deref()),
                        words::value(a.status.as_str(), out.lang),
                        a.sign_ins.to_string(),
                        a.leaves.to_string(),
                    ]);
                }
                table.print(out.lang.pick("no activities", "没有活动"));
            });
        }
        ActivityCommand::Show { activity } => {
            let id = home.activity(&activity)?;
            show(home, id, out)?;
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
                        words::activity_kind(code, Some(&profile), out.lang),
                        or_dash(rule.frequency.map(|f| words::value(f.as_str(), out.lang))),
                        rule.attendance_points.to_string(),
                    ]);
                }
                table.print("-");
            });
        }
    }
    Ok(())
}

/// A branch as people read it: its name where the device holds its
/// profile, else "branch" and its short id.
fn branch_words(home: &Home, branch: BranchId, out: Out) -> String {
    match home.store.profile(branch) {
        Ok(profile) => profile.name,
        Err(_) => out.say(
            format!("branch {}", short(branch)),
            format!("支部 {}", short(branch)),
        ),
    }
}

/// Changes the title, place or agenda of an activity. Only its organizer
/// or the committee may: the server would refuse anyone else's edit at the
/// next sync, so it is refused here, before it is made.
fn edit(
    home: &mut Home,
    id: DocId,
    title: Option<String>,
    place: Option<String>,
    agenda: Option<String>,
    out: Out,
) -> Result<()> {
    if title.is_none() && place.is_none() && agenda.is_none() {
        return Err(Failure::invalid(
            "input.nothing_to_change",
            "give what to change: --title, --place or --agenda",
        )
        .zh("请给出要修改的内容：--title、--place 或 --agenda"));
    }
    let current: Activity = home.store.get(id)?;
    let organizer = current.organizer.is_some() && current.organizer == home.own_member();
    if !home.is_committee() && !organizer {
        return Err(Failure::invalid(
            "access.read_only",
            "only the activity's organizer or the branch committee may change it",
        )
        .zh("只有活动组织者或支部委员会可以修改该活动"));
    }
    if let Some(title) = &title
        && title.trim().is_empty()
    {
        return Err(branchline_core::Error::EmptyField { field: "title" }.into());
    }
    home.store.update(id, |a: &mut Activity| {
        if a.status == branchline_core::model::ActivityStatus::Closed {
            return Err(branchline_core::Error::ActivityClosed);
        }
        if let Some(title) = title {
            a.title = title.trim().to_owned();
        }
        if let Some(place) = place {
            let place = place.trim();
            a.place = (!place.is_empty()).then(|| place.to_owned());
        }
        match agenda {
            Some(agenda) => a.set_agenda(&agenda),
            None => Ok(()),
        }
    })?;
    let a: Activity = home.store.get(id)?;
    out.done(out.say(
        format!("{} updated: place {}", a.title, or_dash(a.place.as_deref())),
        format!("“{}”已更新：地点 {}", a.title, or_dash(a.place.as_deref())),
    ));
    Ok(())
}

/// Minutes longer than this (old or new, in bytes) are written as one
/// splice of what changed between their common start and end.
const LONG_MINUTES: usize = 64 * 1024;

/// Replaces an activity's minutes. Short minutes go through the store's
/// `write_minutes`, which diffs them character by character so concurrent
/// edits elsewhere in the text merge finely. That diff costs time
/// quadratic in the text's length (each edit it finds rewrites the whole
/// string), so replacing a megabyte of minutes would take hours: long
/// minutes keep their common beginning and end and splice the middle, in
/// time linear in their length.
fn write_minutes(home: &mut Home, id: DocId, minutes: &str) -> Result<()> {
    let current: Activity = home.store.get(id)?;
    if current.minutes.as_str().len() <= LONG_MINUTES && minutes.len() <= LONG_MINUTES {
        return Ok(home.store.write_minutes(id, minutes)?);
    }
    home.store.update(id, |a: &mut Activity| {
        if a.status == branchline_core::model::ActivityStatus::Closed {
            return Err(branchline_core::Error::ActivityClosed);
        }
        let (start, old_end, new_end) = changed_span(a.minutes.as_str(), minutes);
        if start < old_end || start < new_end {
            let deleted = isize::try_from(old_end - start).unwrap_or(isize::MAX);
            a.minutes.splice(start, deleted, &minutes[start..new_end]);
        }
        Ok(())
    })?;
    Ok(())
}

/// Where `old` and `new` differ: the byte offset both start differing at,
/// and where the differing part ends in `old` and in `new` (both on char
/// boundaries, the common end not overlapping the common start).
fn changed_span(old: &str, new: &str) -> (usize, usize, usize) {
    let start = old
        .char_indices()
        .zip(new.chars())
        .find(|((_, a), b)| a != b)
        .map_or_else(|| old.len().min(new.len()), |((i, _), _)| i);
    let common_end = old[start..]
        .chars()
        .rev()
        .zip(new[start..].chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum::<usize>();
    (start, old.len() - common_end, new.len() - common_end)
}

/// The minutes as given: the text itself, `-` for standard input, or a file.
fn minutes_text(text: Option<&str>, file: Option<&Path>) -> Result<String> {
    let unreadable = |what: String, e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            Failure::invalid(
                "input.not_text",
                format!("{what} is not UTF-8 text; save the minutes as UTF-8 and try again"),
            )
            .zh(format!(
                "{what} 不是 UTF-8 文本；请将会议记录另存为 UTF-8 后重试"
            ))
        } else {
            Failure::new("cli.io", format!("cannot read {what}: {e}"), EXIT_FAILURE)
                .zh(format!("无法读取 {what}：{e}"))
        }
    };
    match (text, file) {
        (_, Some(path)) => {
            std::fs::read_to_string(path).map_err(|e| unreadable(path.display().to_string(), e))
        }
        (Some("-"), None) => {
            let mut minutes = String::new();
            std::io::stdin()
                .lock()
                .read_to_string(&mut minutes)
                .map_err(|e| unreadable("standard input".to_owned(), e))?;
            Ok(minutes)
        }
        (Some(text), None) => Ok(text.to_owned()),
        (None, None) => Err(Failure::invalid(
            "input.empty",
            "give the minutes as text, as `-` to read standard input, or with --file",
        )
        .zh("请给出会议记录：直接写出，用 - 从标准输入读取，或用 --file 指定文件")),
    }
}

/// Who attended, for people and scripts: names where the device knows
/// them, and for a joint activity the branch of a member whose roster is
/// not here.
fn attendance(home: &Home, a: &Activity, rows: &[AttendanceRow]) -> Vec<AttendanceView> {
    let rosters: BTreeSet<BranchId> = home
        .store
        .documents()
        .map(|docs| {
            docs.into_iter()
                .filter(|d| d.kind == "roster")
                .map(|d| d.branch)
                .collect()
        })
        .unwrap_or_default();
    // A member on none of the rosters here belongs to one of the activity's
    // other branches; when only one is left, it is theirs.
    let others: Vec<BranchId> = std::iter::once(a.meta.branch)
        .chain(a.shared_with.keys().filter_map(|b| b.parse().ok()))
        .filter(|b| !rosters.contains(b))
        .collect();
    let names = home.names();
    rows.iter()
        .map(|row| {
            let name = row.name.clone().or_else(|| names.get(&row.member).cloned());
            let branch = match (name.is_none(), others.as_slice()) {
                (true, [only]) => Some(*only),
                _ => None,
            };
            AttendanceView {
                member: row.member.to_string(),
                name,
                present: row.present,
                mode: row.mode.map(|m| m.as_str().to_owned()),
                at: row.at.0,
                reason: leave_reason(a, row.member),
                branch: branch.map(|b| b.to_string()),
                branch_name: branch.and_then(|b| home.store.profile(b).ok().map(|p| p.name)),
            }
        })
        .collect()
}

fn leave_reason(a: &Activity, member: MemberId) -> Option<String> {
    a.leaves.get(&member.to_string()).map(|l| l.reason.clone())
}

/// Who a row is, for people: the name, or which branch they come from.
fn who(row: &AttendanceView, a: &Activity, out: Out) -> String {
    if let Some(name) = &row.name {
        return name.clone();
    }
    let member = short(&row.member);
    match (&row.branch_name, &row.branch) {
        (Some(branch), _) => out.say(
            format!("a member of {branch} ({member})"),
            format!("{branch}党员（{member}）"),
        ),
        (None, Some(branch)) => out.say(
            format!("a member of partner branch {} ({member})", short(branch)),
            format!("共建支部 {} 的党员（{member}）", short(branch)),
        ),
        (None, None) if !a.shared_with.is_empty() => out.say(
            format!("a member of a partner branch ({member})"),
            format!("共建支部党员（{member}）"),
        ),
        (None, None) => member,
    }
}

fn show(home: &Home, id: DocId, out: Out) -> Result<()> {
    let a: Activity = home.store.get(id)?;
    let rows = home.store.attendance(id)?;
    let attendance = attendance(home, &a, &rows);
    let profile = home.store.profile(a.meta.branch).ok();
    let detail = ActivityDetail {
        id: id.to_string(),
        kind: &a.kind,
        kind_name: words::activity_kind(&a.kind, profile.as_ref(), out.lang),
        title: &a.title,
        starts_at: a.starts_at.to_string(),
        ends_at: a.ends_at.to_string(),
        place: a.place.as_deref(),
        organizer: a.organizer.map(|m| m.to_string()),
        organizer_name: a.organizer.map(|m| home.member_name(m)),
        status: a.status.to_string(),
        agenda: a.agenda.as_str(),
        minutes: a.minutes.as_str(),
        shared_with: a.shared_with.keys().map(String::as_str).collect(),
        attendance,
    };
    out.show(&detail, || {
        let l = |en, zh| out.lang.pick(en, zh);
        println!("{} ({})", a.title, detail.kind_name);
        println!("{}: {} .. {}", l("time", "时间"), a.starts_at, a.ends_at);
        println!("{}: {}", l("place", "地点"), or_dash(a.place.as_deref()));
        if let Some(organizer) = &detail.organizer_name {
            println!("{}: {organizer}", l("organizer", "组织者"));
        }
        println!(
            "{}: {}",
            l("status", "状态"),
            words::value(a.status.as_str(), out.lang)
        );
        if !a.shared_with.is_empty() {
            let partners: Vec<String> = a
                .shared_with
                .keys()
                .filter_map(|b| b.parse().ok())
                .map(|b| branch_words(home, b, out))
                .collect();
            println!(
                "{}: {}",
                l("shared with", "共建支部"),
                partners.join(l(", ", "、"))
            );
        }
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
            Lang::En => ["name", "attendance", "how", "at", "reason"],
            Lang::Zh => ["姓名", "出勤", "方式", "时间", "请假原因"],
        });
        for row in &detail.attendance {
            table.row(vec![
                who(row, &a, out),
                if row.present {
                    l("signed in", "已签到")
                } else {
                    l("on leave", "请假")
                }
                .to_owned(),
                or_dash(row.mode.as_deref().map(|m| words::value(m, out.lang))),
                local_time(branchline_core::model::Timestamp(row.at)),
                or_dash(row.reason.as_deref()),
            ]);
        }
        table.print(l("nobody signed in yet", "还没有人签到"));
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::changed_span;

    #[test]
    fn the_changed_span_lies_between_the_common_start_and_end() {
        let cases = [
            ("abcdef", "abXdef", (2, 3, 3)),
            ("abc", "abc", (3, 3, 3)),
            ("", "new", (0, 0, 3)),
            ("old", "", (0, 3, 0)),
            ("aaa", "aaaa", (3, 3, 4)),
            ("会议记录", "会议纪要记录", (6, 6, 12)),
            ("x会y", "x议y", (1, 4, 4)),
        ];
        for (old, new, span) in cases {
            let found = changed_span(old, new);
            assert_eq!(found, span, "{old:?} → {new:?}");
            let (start, old_end, new_end) = found;
            let rebuilt = format!(
                "{}{}{}",
                &old[..start],
                &new[start..new_end],
                &old[old_end..]
            );
            assert_eq!(rebuilt, new, "{old:?} → {new:?}");
        }
    }
}
