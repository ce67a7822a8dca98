//! `branchline status`, `report` and `conflicts`: what the device knows,
//! offline.

use branchline_core::model::Date;
use branchline_core::report::Period;
use serde::Serialize;

use crate::cli::ConflictCommand;
use crate::failure::{Failure, Result};
use crate::home::Home;
use crate::output::{Lang, Out, Table, local_time, or_dash, short};
use crate::today;

/// What `status --json` prints.
#[derive(Serialize)]
struct StatusView {
    server: String,
    device_id: String,
    device_name: String,
    branch: String,
    branch_name: String,
    role: String,
    member: Option<String>,
    documents: usize,
    pending_changes: usize,
    last_synced_ms: Option<i64>,
    conflicts: usize,
}

/// Prints who this device is and what waits to sync.
pub fn status(home: &Home, out: Out) -> Result<()> {
    let account = &home.account;
    let branch_name = home
        .store
        .profile(account.branch)
        .map(|p| p.name)
        .unwrap_or_default();
    let last = home.store.last_synced()?;
    let view = StatusView {
        server: account.server.clone(),
        device_id: account.device_id.to_string(),
        device_name: account.device_name.clone(),
        branch: account.branch.to_string(),
        branch_name,
        role: account.role.to_string(),
        member: account.member.map(|m| m.to_string()),
        documents: home.store.documents()?.len(),
        pending_changes: home.store.pending_changes()?,
        last_synced_ms: last.map(|t| t.0),
        conflicts: home.store.conflicts()?.len(),
    };
    out.show(&view, || {
        let l = |en, zh| out.lang.pick(en, zh);
        println!(
            "{}: {} ({})",
            l("branch", "组织"),
            view.branch_name,
            short(&view.branch)
        );
        println!("{}: {}", l("role", "角色"), view.role);
        println!(
            "{}: {}",
            l("member", "成员"),
            or_dash(view.member.as_deref().map(short))
        );
        println!(
            "{}: {} ({})",
            l("device", "设备"),
            view.device_name,
            view.device_id
        );
        println!("{}: {}", l("server", "服务器"), view.server);
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

/// Prints the branch's reports for a period.
pub fn report(
    home: &Home,
    from: Option<Date>,
    to: Option<Date>,
    as_of: Option<Date>,
    out: Out,
) -> Result<()> {
    let today = today();
    let to = to.unwrap_or(today);
    let from = from.unwrap_or_else(|| {
        use chrono::Datelike as _;
        Date::ymd(to.0.year(), 1, 1).unwrap_or(to)
    });
    let period = Period::new(from, to)?;
    let report = home
        .store
        .report(home.branch(), period, as_of.unwrap_or(today))?;
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
                "name", "expected", "attended", "leave", "rate", "points", "",
            ],
            Lang::Zh => ["姓名", "应到", "实到", "请假", "出勤率", "积分", ""],
        });
        for m in &report.attendance.members {
            table.row(vec![
                m.name.clone(),
                m.expected.to_string(),
                m.attended.to_string(),
                m.on_leave.to_string(),
                or_dash(m.rate.map(percent)),
                m.attendance_points.to_string(),
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
        for k in &report.attendance.kinds {
            table.row(vec![
                k.kind.clone(),
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
                "  {:<20} {} {met}/{} {}",
                c.kind,
                c.frequency,
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

/// Lists or settles conflicts.
pub fn conflicts(home: &mut Home, command: ConflictCommand, out: Out) -> Result<()> {
    match command {
        ConflictCommand::List => {
            let conflicts = home.store.conflicts()?;
            out.show(&conflicts, || {
                if conflicts.is_empty() {
                    println!("{}", out.lang.pick("no conflicts", "没有冲突"));
                }
                for c in &conflicts {
                    println!("{}  {}", short(c.doc), c.path);
                    for (i, v) in c.values.iter().enumerate() {
                        println!(
                            "  {}. {}  ({}{})",
                            i + 1,
                            v.value,
                            or_dash(v.device.map(short)),
                            if v.winner {
                                out.lang.pick(", shown now", "，当前显示")
                            } else {
                                ""
                            }
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
                ));
            };
            if keep == 0 || keep > conflict.values.len() {
                return Err(Failure::invalid(
                    "input.invalid",
                    format!("choose a value from 1 to {}", conflict.values.len()),
                ));
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
