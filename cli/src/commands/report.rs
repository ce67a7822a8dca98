//! `branchline status`, `report` and `conflicts`: what the device knows,
//! offline.

use branchline_core::conflict::Conflict;
use branchline_core::model::{Activity, Date, MemberFile, Petition};
use branchline_core::report::Period;
use branchline_core::{DocId, MemberId};
use serde::Serialize;

use crate::cli::ConflictCommand;
use crate::failure::{Failure, Result};
use crate::home::{Home, known_branch_name};
use crate::output::{Lang, Out, Table, local_time, or_dash, short};
use crate::{today, words};

/// What `status --json` prints. A revoked device no longer has its account:
/// what only the account knew (server, device name, role, member) is null.
#[derive(Serialize)]
struct StatusView {
    server: Option<String>,
    device_id: String,
    device_name: Option<String>,
    branch: String,
    branch_name: String,
    role: Option<String>,
    member: Option<String>,
    member_name: Option<String>,
    /// The server revoked this device: its records are for reading only.
    revoked: bool,
    /// When this device heard of its revocation.
    revoked_at_ms: Option<i64>,
    documents: usize,
    pending_changes: usize,
    last_synced_ms: Option<i64>,
    conflicts: usize,
}

/// Prints who this device is and what waits to sync.
pub fn status(home: &Home, out: Out) -> Result<()> {
    let account = home.account().ok();
    let revoked_at = home.revocation().map(|r| r.revoked_at);
    // The branch's profile names it; a device without the profile (a resident's)
    // has the name the server gave at Welcome, kept in the account (or, once
    // revoked, in the store's revocation).
    let branch_name = known_branch_name(&home.store, home.branch(), home.welcomed_branch_name())
        .unwrap_or_default();
    let last = home.store.last_synced()?;
    let member = account.and_then(|a| a.member);
    let view = StatusView {
        server: account.map(|a| a.server.clone()),
        device_id: home.device_id().to_string(),
        device_name: account.map(|a| a.device_name.clone()),
        branch: home.branch().to_string(),
        branch_name,
        role: account.map(|a| a.role.to_string()),
        member: member.map(|m| m.to_string()),
        member_name: member.map(|m| home.member_name(m)),
        revoked: revoked_at.is_some(),
        revoked_at_ms: revoked_at.map(|t| t.0),
        documents: home.store.documents()?.len(),
        pending_changes: home.store.pending_changes()?,
        last_synced_ms: last.map(|t| t.0),
        conflicts: home.store.conflicts()?.len(),
    };
    out.show(&view, || {
        let l = |en, zh| out.lang.pick(en, zh);
        if let Some(at) = revoked_at {
            println!(
                "{}",
                out.say(
                    format!(
                        "REVOKED: the server revoked this device ({}); its records can be read \
                         but not changed or synced; ask the branch secretary for a new invite",
                        local_time(at)
                    ),
                    format!(
                        "已吊销：服务器已吊销此设备（{}）；本机记录只能查看，不能修改或同步；\
                         请向支部书记索取新的邀请",
                        local_time(at)
                    ),
                )
            );
        }
        if view.branch_name.is_empty() {
            println!("{}: {}", l("branch", "支部"), short(&view.branch));
        } else {
            println!(
                "{}: {} ({})",
                l("branch", "支部"),
                view.branch_name,
                short(&view.branch)
            );
        }
        // A revoked device knows only its id and branch: the rest was the
        // account's.
        if let Some(role) = &view.role {
            println!("{}: {}", l("role", "角色"), words::value(role, out.lang));
            println!(
                "{}: {}",
                l("member", "成员"),
                or_dash(view.member_name.as_deref())
            );
        }
        match &view.device_name {
            Some(name) => println!("{}: {name} ({})", l("device", "设备"), view.device_id),
            None => println!("{}: {}", l("device", "设备"), view.device_id),
        }
        if let Some(server) = &view.server {
            println!("{}: {server}", l("server", "服务器"));
        }
        println!("{}: {}", l("documents", "文档"), view.documents);
        println!(
            "{}: {}",
            l("changes waiting to sync", "待同步的修改"),
            view.pending_changes
        );
        println!(
            "{}: {}",
            l("last sync", "上次同步"),
            last.map_or_else(|| l("never", "从未").to_owned(), local_time)
        );
        if view.conflicts > 0 {
            println!(
                "{}: {} (branchline conflicts list)",
                l("conflicts to settle", "待处理的冲突"),
                view.conflicts
            );
        }
    });
    Ok(())
}

/// The period a report covers: from 1 January of the year of its last day
/// (default: today) unless given.
pub fn period(from: Option<Date>, to: Option<Date>) -> Result<Period> {
    let to = to.unwrap_or_else(today);
    let from = from.unwrap_or_else(|| {
        use chrono::Datelike as _;
        Date::ymd(to.0.year(), 1, 1).unwrap_or(to)
    });
    Ok(Period::new(from, to)?)
}

/// Prints the branch's reports for a period.
pub fn report(home: &Home, period: Period, as_of: Option<Date>, out: Out) -> Result<()> {
    let (from, to) = (period.from, period.to);
    let report = home
        .store
        .report(home.branch(), period, as_of.unwrap_or_else(today))?;
    out.show(&report, || {
        let l = |en, zh| out.lang.pick(en, zh);
        let profile_name = home
            .store
            .profile(home.branch())
            .map(|p| p.name)
            .unwrap_or_default();
        println!("{profile_name} — {} {from} .. {to}", l("report", "报表"));

        println!("\n{}", l("Attendance by member", "成员出勤"));
        let mut table = Table::new(match out.lang {
            Lang::En => [
                "name",
                "expected",
                "attended",
                "leave",
                "rate",
                "points",
                "other points",
                "",
            ],
            Lang::Zh => [
                "姓名",
                "应到",
                "实到",
                "请假",
                "出勤率",
                "积分",
                "其他积分",
                "",
            ],
        });
        for m in &report.attendance.members {
            table.row(vec![
                m.name.clone(),
                m.expected.to_string(),
                m.attended.to_string(),
                m.on_leave.to_string(),
                or_dash(m.rate.map(percent)),
                m.attendance_points.to_string(),
                m.other_points.to_string(),
                if m.silent {
                    l("silent", "长期未参加")
                } else {
                    ""
                }
                .to_owned(),
            ]);
        }
        table.print("-");

        println!("\n{}", l("Attendance by kind", "按活动类型"));
        let mut table = Table::new(match out.lang {
            Lang::En => ["kind", "held", "expected", "attended", "rate"],
            Lang::Zh => ["类型", "次数", "应到", "实到", "出勤率"],
        });
        let profile = home.store.profile(home.branch()).ok();
        for k in &report.attendance.kinds {
            table.row(vec![
                words::activity_kind(&k.kind, profile.as_ref(), out.lang),
                k.activities.to_string(),
                k.expected.to_string(),
                k.attended.to_string(),
                or_dash(k.rate.map(percent)),
            ]);
        }
        table.print("-");

        let p = &report.petitions;
        println!("\n{}", l("Petitions", "诉求"));
        println!(
            "  {} {}, {} {}, {} {}, {} {} ({} {}), {} {}",
            l("submitted", "提交"),
            p.submitted,
            l("open", "未办结"),
            p.open,
            l("overdue", "逾期"),
            p.overdue,
            l("resolved", "办结"),
            p.resolved,
            l("in time", "按期"),
            p.resolved_in_time,
            l("satisfaction", "满意度"),
            or_dash(p.average_satisfaction.map(|s| format!("{s:.1}/5")))
        );

        println!("\n{}", l("Meeting compliance", "组织生活完成情况"));
        for c in &report.compliance {
            let met = c.periods.iter().filter(|p| p.met).count();
            println!(
                "  {} ({}): {met}/{} {}",
                words::activity_kind(&c.kind, profile.as_ref(), out.lang),
                words::value(c.frequency.as_str(), out.lang),
                c.periods.len(),
                l("periods met", "个周期达标")
            );
        }
        if let Some(term) = &report.term {
            println!(
                "\n{}: {} ({} {}){}",
                l("Term ends", "任期届满"),
                term.ends,
                term.days_left,
                l("days", "天"),
                if term.due {
                    l(" — prepare the election", " — 请准备换届")
                } else {
                    ""
                }
            );
        }
        println!("\n{}", l("Ages", "年龄结构"));
        for (band, n) in &report.ages.bands {
            println!("  {band:>8}: {n}");
        }
    });
    Ok(())
}

fn percent(rate: f64) -> String {
    format!("{:.0}%", rate * 100.0)
}

/// One concurrent value, for `conflicts list --json`.
#[derive(Serialize)]
struct ValueView {
    value: String,
    device: Option<String>,
    /// Written on this device.
    this_device: bool,
    member: Option<String>,
    /// The writer's roster name, where this device knows it.
    member_name: Option<String>,
    actor: String,
    winner: bool,
}

/// A conflicting field with the record it belongs to, for `conflicts list`.
#[derive(Serialize)]
struct ConflictView {
    doc: String,
    /// The record's kind.
    kind: String,
    /// The record, as people name it: a member's name, an activity's or a
    /// petition's title.
    record: String,
    path: String,
    values: Vec<ValueView>,
}

/// The record a conflict is in, as people name it.
fn record_name(home: &Home, kinds: &[(DocId, String)], c: &Conflict, out: Out) -> (String, String) {
    let kind = kinds
        .iter()
        .find(|(id, _)| *id == c.doc)
        .map_or_else(String::new, |(_, kind)| kind.clone());
    let record = match kind.as_str() {
        "activity" => home.store.get::<Activity>(c.doc).ok().map(|a| a.title),
        "petition" => home.store.get::<Petition>(c.doc).ok().map(|p| p.title),
        "member_file" => home
            .store
            .get::<MemberFile>(c.doc)
            .ok()
            .map(|f| home.member_name(f.member)),
        // `members/<member id>/<field>`: the member's entry.
        "roster" => c
            .path
            .strip_prefix("members/")
            .and_then(|rest| rest.split('/').next())
            .and_then(|m| m.parse::<MemberId>().ok())
            .map(|m| home.member_name(m)),
        "branch_profile" => Some(home.branch_name(home.branch())),
        _ => None,
    };
    let kind_words = words::kind_name(&kind, out.lang);
    (kind, record.unwrap_or(kind_words))
}

/// Lists or settles conflicts.
pub fn conflicts(home: &mut Home, command: ConflictCommand, out: Out) -> Result<()> {
    match command {
        ConflictCommand::List => {
            let conflicts = home.store.conflicts()?;
            let kinds: Vec<(DocId, String)> = home
                .store
                .documents()?
                .into_iter()
                .map(|d| (d.id, d.kind))
                .collect();
            let names = home.names();
            let here = home.store.device_id();
            let views: Vec<ConflictView> = conflicts
                .iter()
                .map(|c| {
                    let (kind, record) = record_name(home, &kinds, c, out);
                    ConflictView {
                        doc: c.doc.to_string(),
                        kind,
                        record,
                        path: c.path.clone(),
                        values: c
                            .values
                            .iter()
                            .map(|v| ValueView {
                                value: v.value.clone(),
                                device: v.device.map(|d| d.to_string()),
                                this_device: v.device == Some(here),
                                member: v.member.map(|m| m.to_string()),
                                member_name: v.member.and_then(|m| names.get(&m).cloned()),
                                actor: v.actor.clone(),
                                winner: v.winner,
                            })
                            .collect(),
                    }
                })
                .collect();
            out.show(&views, || {
                if views.is_empty() {
                    println!("{}", out.lang.pick("no conflicts", "没有冲突"));
                }
                for c in &views {
                    println!(
                        "{} ({} {})  {}",
                        c.record,
                        words::kind_name(&c.kind, out.lang),
                        short(&c.doc),
                        c.path
                    );
                    for (i, v) in c.values.iter().enumerate() {
                        let mut by: Vec<String> = Vec::new();
                        match (&v.member_name, &v.member) {
                            (Some(name), _) => by.push(name.clone()),
                            (None, Some(member)) => by.push(short(member)),
                            (None, None) => {}
                        }
                        if v.this_device {
                            by.push(out.say("this device", "本机"));
                        } else if by.is_empty() {
                            by.push(or_dash(v.device.as_deref().map(short)));
                        }
                        if v.winner {
                            by.push(out.say("shown now", "当前显示"));
                        }
                        println!(
                            "  {}. {}  ({})",
                            i + 1,
                            v.value,
                            by.join(out.lang.pick(", ", "，"))
                        );
                    }
                }
            });
        }
        ConflictCommand::Settle { doc, path, keep } => {
            let conflicts = home.store.conflicts()?;
            let text = doc.trim().to_ascii_lowercase();
            let matching: Vec<_> = conflicts
                .iter()
                .filter(|c| {
                    c.path == path && c.doc.to_string().starts_with(&text) && text.len() >= 4
                })
                .collect();
            let [conflict] = matching.as_slice() else {
                return Err(Failure::invalid(
                    "conflict.not_found",
                    format!("no conflict on {path:?} in a document matching {doc:?}"),
                )
                .zh(format!("与“{doc}”相符的记录中，{path} 没有冲突")));
            };
            if keep == 0 || keep > conflict.values.len() {
                return Err(Failure::invalid(
                    "input.invalid",
                    format!("choose a value from 1 to {}", conflict.values.len()),
                )
                .zh(format!("请选择 1 到 {} 之间的值", conflict.values.len())));
            }
            home.store.settle_conflict(conflict.doc, &path, keep - 1)?;
            out.done(out.say(
                format!("kept value {keep} of {path}"),
                format!("已保留 {path} 的第 {keep} 个值"),
            ));
        }
    }
    Ok(())
}
