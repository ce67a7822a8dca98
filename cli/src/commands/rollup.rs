//! `branchline report --branches`: the higher committee's roll-up of every
//! branch below this one (党委 / 党总支), from what the device has synced,
//! offline: meeting compliance, dues collection, petitions, the term, and
//! the star rating (星级评定) by the indicators this branch configures.
//!
//! `--xlsx` writes the roll-up as a workbook: a summary sheet, then one
//! sheet per indicator (meeting compliance per kind, dues collection,
//! petitions, term end dates with the six-month reminder, star rating).

use std::path::Path;

use branchline_core::model::Date;
use branchline_core::report::Period;
use branchline_core::rollup::{BranchRollup, Rollup};

use crate::export::{self, Cell, Table};
use crate::failure::Result;
use crate::home::Home;
use crate::output::{Lang, Out, Table as Screen, or_dash};
use crate::words;

/// Stars as people read them: `★★★☆☆`.
fn stars(n: u8) -> String {
    let n = usize::from(n.min(5));
    format!("{}{}", "★".repeat(n), "☆".repeat(5 - n))
}

fn percent(share: Option<f64>) -> String {
    or_dash(share.map(|s| format!("{:.0}%", s * 100.0)))
}

fn share(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| f64::from(part) / f64::from(whole))
}

/// The branch's name indented by its depth below the roll-up's parent.
fn indented(b: &BranchRollup) -> String {
    format!(
        "{}{}",
        "  ".repeat(b.depth.saturating_sub(1) as usize),
        b.name
    )
}

/// Prints (or writes) the roll-up of the branches below this device's branch.
pub fn rollup(
    home: &Home,
    period: Period,
    as_of: Date,
    xlsx: Option<&Path>,
    out: Out,
) -> Result<()> {
    let rollup = home.store.rollup(home.branch(), period, as_of)?;
    if let Some(path) = xlsx {
        export::write_workbook(path, &tables(home, &rollup, out.lang))?;
    }
    out.show(&rollup, || {
        print(home, &rollup, out);
        if let Some(path) = xlsx {
            println!(
                "\n{}",
                out.say(
                    format!("wrote {}", path.display()),
                    format!("已写入 {}", path.display())
                )
            );
        }
    });
    Ok(())
}

fn print(home: &Home, rollup: &Rollup, out: Out) {
    let l = |en, zh| out.lang.pick(en, zh);
    let parent = home.branch_name(rollup.parent);
    println!(
        "{}",
        out.say(
            format!(
                "{parent} — branches below, {} .. {} (as of {})",
                rollup.period.from, rollup.period.to, rollup.as_of
            ),
            format!(
                "{parent} — 下级支部汇总，{} 至 {}（截至 {}）",
                rollup.period.from, rollup.period.to, rollup.as_of
            ),
        )
    );
    let mut table = Screen::new(match out.lang {
        Lang::En => [
            "branch",
            "meetings",
            "dues",
            "petitions open",
            "overdue",
            "in time",
            "satisfied",
            "term ends",
            "score",
            "stars",
        ],
        Lang::Zh => [
            "支部",
            "组织生活",
            "党费收缴",
            "未办结诉求",
            "逾期",
            "按期办结",
            "满意",
            "任期届满",
            "得分",
            "星级",
        ],
    });
    for b in &rollup.branches {
        let p = &b.petitions;
        table.row(vec![
            indented(b),
            percent(b.meeting_compliance),
            percent(b.dues.rate),
            p.open.to_string(),
            p.overdue.to_string(),
            percent(share(p.resolved_in_time, p.resolved)),
            percent(share(p.satisfied, p.rated)),
            match &b.term {
                Some(t) if t.due => format!(
                    "{} {}",
                    t.ends,
                    l("(prepare the election)", "（请准备换届）")
                ),
                Some(t) => t.ends.to_string(),
                None => "-".to_owned(),
            },
            format!("{:.0}", b.score),
            stars(b.stars),
        ]);
    }
    table.print(l(
        "no branches below this one on this device; run `branchline sync`",
        "本机没有下级支部的数据；请运行 branchline sync",
    ));
    let weights: Vec<String> = rollup
        .indicators
        .iter()
        .map(|w| {
            out.say(
                format!(
                    "{} {} (full at {}%)",
                    words::indicator(w.indicator, Lang::En),
                    w.weight,
                    w.target_percent
                ),
                format!(
                    "{} {}（{}% 得满分）",
                    words::indicator(w.indicator, Lang::Zh),
                    w.weight,
                    w.target_percent
                ),
            )
        })
        .collect();
    println!(
        "\n{}: {}",
        l("Rated on", "评定指标"),
        weights.join(l("; ", "；"))
    );
    println!(
        "{}: {}",
        l("Scores for 1 to 5 stars", "一至五星所需分数"),
        rollup
            .star_thresholds
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// The workbook: a summary, then a sheet per indicator.
fn tables(home: &Home, rollup: &Rollup, lang: Lang) -> Vec<Table> {
    let t = |en, zh| lang.pick(en, zh);
    let name = t("branch", "支部");
    let mut summary = Table::new(
        "summary.csv",
        t("Summary", "汇总"),
        &[
            (name, 24.0),
            (t("level", "层级"), 10.0),
            (t("meeting compliance", "组织生活完成率"), 16.0),
            (t("dues collection", "党费收缴率"), 14.0),
            (t("petitions in time", "诉求按期办结率"), 16.0),
            (t("satisfaction", "群众满意率"), 14.0),
            (t("term ends", "任期届满"), 12.0),
            (t("score", "得分"), 8.0),
            (t("stars", "星级"), 8.0),
        ],
    );
    let mut meetings = Table::new(
        "meetings.csv",
        t("Meetings", "组织生活"),
        &[
            (name, 24.0),
            (t("kind", "类型"), 16.0),
            (t("required", "频次要求"), 12.0),
            (t("periods", "周期数"), 10.0),
            (t("periods met", "达标周期"), 10.0),
            (t("compliance", "完成率"), 10.0),
        ],
    );
    let mut dues = Table::new(
        "dues.csv",
        t("Dues", "党费收缴"),
        &[
            (name, 24.0),
            (t("due (yuan)", "应缴（元）"), 12.0),
            (t("collected (yuan)", "实缴（元）"), 14.0),
            (t("collection", "收缴率"), 10.0),
            (t("members behind", "欠缴人数"), 12.0),
        ],
    );
    let mut petitions = Table::new(
        "petitions.csv",
        t("Petitions", "群众诉求"),
        &[
            (name, 24.0),
            (t("submitted", "提交"), 10.0),
            (t("open", "未办结"), 10.0),
            (t("overdue", "逾期"), 10.0),
            (t("resolved", "办结"), 10.0),
            (t("resolved in time", "按期办结"), 14.0),
            (t("rated", "已评价"), 10.0),
            (t("satisfied", "满意"), 10.0),
            (t("satisfaction", "满意率"), 10.0),
        ],
    );
    let mut term = Table::new(
        "term.csv",
        t("Term", "换届"),
        &[
            (name, 24.0),
            (t("term ends", "任期届满"), 12.0),
            (t("days left", "剩余天数"), 10.0),
            (t("six-month reminder", "提前六个月提醒"), 16.0),
        ],
    );
    let mut rating_columns: Vec<(&str, f64)> = vec![(name, 24.0)];
    for w in &rollup.indicators {
        rating_columns.push((words::indicator(w.indicator, lang), 16.0));
    }
    rating_columns.push((t("score", "得分"), 8.0));
    rating_columns.push((t("stars", "星级"), 8.0));
    let mut rating = Table::new("stars.csv", t("Stars", "星级评定"), &rating_columns);

    let yes_no = |yes: bool| Cell::text(if yes { t("yes", "是") } else { t("no", "否") });
    for b in &rollup.branches {
        let p = &b.petitions;
        let branch = Cell::text(indented(b));
        // Kinds are named by the branch's own profile.
        let profile = home.store.profile(b.branch).ok();
        summary.rows.push(vec![
            branch.clone(),
            Cell::text(words::level(b.level, lang)),
            Cell::share(b.meeting_compliance),
            Cell::share(b.dues.rate),
            Cell::share(share(p.resolved_in_time, p.resolved)),
            Cell::share(share(p.satisfied, p.rated)),
            Cell::day(b.term.as_ref().map(|t| t.ends)),
            Cell::Number((b.score * 10.0).round() / 10.0),
            Cell::Number(f64::from(b.stars)),
        ]);
        for k in &b.compliance {
            let met = k.periods.iter().filter(|p| p.met).count() as u32;
            let all = k.periods.len() as u32;
            meetings.rows.push(vec![
                branch.clone(),
                Cell::text(words::activity_kind(&k.kind, profile.as_ref(), lang)),
                Cell::text(words::value(k.frequency.as_str(), lang)),
                Cell::Number(f64::from(all)),
                Cell::Number(f64::from(met)),
                Cell::share(share(met, all)),
            ]);
        }
        dues.rows.push(vec![
            branch.clone(),
            Cell::Yuan(b.dues.due_fen),
            Cell::Yuan(b.dues.collected_fen),
            Cell::share(b.dues.rate),
            Cell::Number(f64::from(b.dues.overdue_members)),
        ]);
        petitions.rows.push(vec![
            branch.clone(),
            Cell::Number(f64::from(p.submitted)),
            Cell::Number(f64::from(p.open)),
            Cell::Number(f64::from(p.overdue)),
            Cell::Number(f64::from(p.resolved)),
            Cell::Number(f64::from(p.resolved_in_time)),
            Cell::Number(f64::from(p.rated)),
            Cell::Number(f64::from(p.satisfied)),
            Cell::share(share(p.satisfied, p.rated)),
        ]);
        term.rows.push(match &b.term {
            Some(r) => vec![
                branch.clone(),
                Cell::Day(r.ends),
                Cell::Number(r.days_left as f64),
                yes_no(r.due),
            ],
            None => vec![branch.clone(), Cell::Empty, Cell::Empty, Cell::Empty],
        });
        let mut row = vec![branch];
        for w in &rollup.indicators {
            let value = b
                .indicators
                .iter()
                .find(|v| v.indicator == w.indicator)
                .and_then(|v| v.value);
            row.push(Cell::share(value));
        }
        row.push(Cell::Number((b.score * 10.0).round() / 10.0));
        row.push(Cell::Number(f64::from(b.stars)));
        rating.rows.push(row);
    }
    vec![summary, meetings, dues, petitions, term, rating]
}
