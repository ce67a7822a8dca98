//! `branchline points …`: awards, thought reports, the ranking of a quarter
//! or a year (先锋岗积分), and the branch's point rules.
//!
//! A ranking adds up what the store counts: points for attending (by the
//! points of each activity kind), thought reports handed in on time (by the
//! `thought_report` rule) and awards. It is published each quarter, so a
//! ranking without `--quarter` or `--year` is this quarter's.

use branchline_core::EntryId;
use branchline_core::model::PointRule;
use branchline_core::report::Period;
use branchline_core::store::branch_work::{RankRow, quarter, whole_year};
use chrono::Datelike as _;
use serde::Serialize;

use crate::cli::{PointsCommand, RulesCommand};
use crate::commands::dues::{print_files, this_year};
use crate::export::{self, Cell, Table};
use crate::failure::{Failure, Result};
use crate::home::{Home, prefix_matches, unique};
use crate::output::{Lang, Out, Table as Screen, short};
use crate::{today, words};

/// The period a ranking covers, and how people name it.
struct RankingPeriod {
    period: Period,
    /// `2026-Q2` or `2026`.
    label: String,
}

/// `--quarter 2026-Q2`, `--year 2026`, or this quarter.
fn ranking_period(quarter_text: Option<&str>, year: Option<i32>) -> Result<RankingPeriod> {
    if let Some(year) = year {
        return Ok(RankingPeriod {
            period: whole_year(year)?,
            label: year.to_string(),
        });
    }
    let (year, q) = match quarter_text {
        Some(text) => parse_quarter(text)?,
        None => {
            let day = today().0;
            (day.year(), (day.month() - 1) / 3 + 1)
        }
    };
    Ok(RankingPeriod {
        period: quarter(year, q)?,
        label: format!("{year}-Q{q}"),
    })
}

/// A quarter as people write it: `2026-Q2` (or `2026q2`).
fn parse_quarter(text: &str) -> Result<(i32, u32)> {
    let bad = || {
        Failure::invalid(
            "input.invalid",
            format!("a quarter is written like 2026-Q2: {text:?}"),
        )
        .zh(format!("季度请写成 2026-Q2 这样：“{text}”"))
    };
    let upper = text.trim().to_ascii_uppercase();
    let (year, q) = upper.split_once('Q').ok_or_else(bad)?;
    let year: i32 = year
        .trim_end_matches('-')
        .trim()
        .parse()
        .map_err(|_| bad())?;
    let q: u32 = q.trim().parse().map_err(|_| bad())?;
    if !(1..=4).contains(&q) || !(1900..=9999).contains(&year) {
        return Err(bad());
    }
    Ok((year, q))
}

/// The ranking, for `points ranking --json`.
#[derive(Serialize)]
struct RankingView<'a> {
    period: &'a str,
    from: String,
    to: String,
    rows: &'a [RankRow],
}

/// A point rule, for `points rules list --json`.
#[derive(Serialize)]
struct RuleView<'a> {
    code: &'a str,
    description: &'a str,
    points: i64,
    base: bool,
}

/// Runs a `points` subcommand.
pub fn run(home: &mut Home, command: PointsCommand, out: Out) -> Result<()> {
    let branch = home.branch();
    match command {
        PointsCommand::Award {
            member,
            rule,
            points,
            reason,
            on,
        } => {
            home.require_committee("award points")?;
            let member = home.member(&member)?;
            if points == Some(0) {
                return Err(Failure::invalid(
                    "input.invalid",
                    "an award of 0 points awards nothing",
                )
                .zh("0 分的加分没有意义"));
            }
            let reason = reason.filter(|r| !r.trim().is_empty());
            if rule.is_none() && reason.is_none() {
                return Err(Failure::invalid(
                    "input.empty",
                    "points without a rule need a --reason",
                )
                .zh("不按积分项目加分时，须用 --reason 说明理由"));
            }
            let on = on.unwrap_or_else(today);
            let result = home.store.award(
                branch,
                member,
                rule.as_deref(),
                points,
                reason.as_deref(),
                on,
            );
            let id = home.named(result)?;
            let profile = home.store.profile(branch).ok();
            let given = match (points, &rule) {
                (Some(points), _) => points,
                (None, Some(rule)) => profile
                    .as_ref()
                    .and_then(|p| p.point_rules.get(rule))
                    .map_or(0, |r| r.points),
                (None, None) => 0,
            };
            let why = match (&rule, &reason) {
                (_, Some(reason)) => reason.trim().to_owned(),
                (Some(rule), None) => words::point_rule(rule, profile.as_ref(), out.lang),
                (None, None) => String::new(),
            };
            let name = home.member_name(member);
            out.created(
                id,
                out.say(
                    format!("{name}: {given:+} points for {why} ({on})"),
                    format!("{name}：{why} {given:+} 分（{on}）"),
                ),
            );
        }
        PointsCommand::Withdraw { entry, year } => {
            home.require_committee("award points")?;
            let year = year.unwrap_or_else(|| this_year() as i32);
            let awards = home.store.awards(branch, whole_year(year)?)?;
            let id = match entry.trim().parse::<EntryId>() {
                Ok(id) => id,
                Err(_) => unique(
                    awards
                        .iter()
                        .filter(|a| prefix_matches(&a.entry.to_string(), &entry))
                        .map(|a| a.entry),
                    "ledger.unknown_entry",
                    "award",
                    &entry,
                )?,
            };
            home.store.withdraw_award(id)?;
            let sentence = match awards.iter().find(|a| a.entry == id) {
                Some(a) => {
                    let name = home.member_name(a.member);
                    out.say(
                        format!(
                            "{name}'s award of {:+} points ({}) withdrawn",
                            a.points, a.on
                        ),
                        format!("已撤回{name}的 {:+} 分（{}）", a.points, a.on),
                    )
                }
                None => out.say(
                    format!("award {} withdrawn", short(id)),
                    format!("已撤回加分记录 {}", short(id)),
                ),
            };
            out.done(sentence);
        }
        PointsCommand::ReportReceived { member, due, on } => {
            home.require_committee("award points")?;
            let member = home.member(&member)?;
            let on = on.unwrap_or_else(today);
            let result = home.store.record_thought_report(branch, member, due, on);
            let id = home.named(result)?;
            let name = home.member_name(member);
            let per_report = home
                .store
                .profile(branch)?
                .point_rules
                .get(branchline_core::model::THOUGHT_REPORT_RULE)
                .map_or(0, |r| r.points);
            let sentence = if on <= due {
                out.say(
                    format!(
                        "{name}'s thought report received on {on}, on time (due {due}): {per_report:+} points"
                    ),
                    format!("已收到{name}的思想汇报（{on}），按时提交（应交 {due}）：{per_report:+} 分"),
                )
            } else {
                out.say(
                    format!(
                        "{name}'s thought report received on {on}, late (due {due}): no points"
                    ),
                    format!("已收到{name}的思想汇报（{on}），逾期提交（应交 {due}）：不加分"),
                )
            };
            out.created(id, sentence);
        }
        PointsCommand::Ranking { quarter, year } => {
            let period = ranking_period(quarter.as_deref(), year)?;
            let rows = home.store.ranking(branch, period.period)?;
            let view = RankingView {
                period: &period.label,
                from: period.period.from.to_string(),
                to: period.period.to.to_string(),
                rows: &rows,
            };
            out.show(&view, || {
                println!(
                    "{}",
                    out.say(
                        format!(
                            "Points ranking {} ({} .. {})",
                            view.period, view.from, view.to
                        ),
                        format!("积分排名 {}（{} 至 {}）", view.period, view.from, view.to),
                    )
                );
                let mut table = Screen::new(match out.lang {
                    Lang::En => [
                        "rank",
                        "name",
                        "attendance",
                        "thought reports",
                        "awards",
                        "total",
                    ],
                    Lang::Zh => ["名次", "姓名", "出勤", "思想汇报", "加分", "总分"],
                });
                for r in &rows {
                    table.row(vec![
                        r.rank.to_string(),
                        r.name.clone(),
                        r.attendance_points.to_string(),
                        r.report_points.to_string(),
                        r.award_points.to_string(),
                        r.total.to_string(),
                    ]);
                }
                table.print(out.lang.pick("no members", "没有成员"));
            });
        }
        PointsCommand::Rules(RulesCommand::List) => {
            let profile = home.store.profile(branch)?;
            let rules: Vec<RuleView> = profile
                .point_rules
                .iter()
                .map(|(code, r)| RuleView {
                    code,
                    description: &r.description,
                    points: r.points,
                    base: r.base,
                })
                .collect();
            out.show(&rules, || {
                let mut table = Screen::new(match out.lang {
                    Lang::En => ["code", "what earns them", "points", "kind"],
                    Lang::Zh => ["代码", "内容", "分值", "类型"],
                });
                for r in &rules {
                    table.row(vec![
                        r.code.to_owned(),
                        words::point_rule(r.code, Some(&profile), out.lang),
                        format!("{:+}", r.points),
                        if r.base {
                            out.lang.pick("base", "基础分")
                        } else {
                            out.lang.pick("bonus", "奖励分")
                        }
                        .to_owned(),
                    ]);
                }
                table.print(out.lang.pick("no point rules", "没有积分项目"));
            });
        }
        PointsCommand::Rules(RulesCommand::Set {
            code,
            points,
            description,
            base,
        }) => {
            home.require_committee("change the point rules")?;
            let rule = PointRule {
                description: description.trim().to_owned(),
                points,
                base,
            };
            home.store
                .update_profile(branch, |p| p.set_point_rule(&code, rule))?;
            let code = code.trim();
            out.done(out.say(
                format!(
                    "point rule {code}: {} ({points:+} points)",
                    description.trim()
                ),
                format!("积分项目 {code}：{}（{points:+} 分）", description.trim()),
            ));
        }
        PointsCommand::Export {
            format,
            out: dir,
            quarter,
            year,
            bom,
        } => {
            let period = ranking_period(quarter.as_deref(), year)?;
            let rows = home.store.ranking(branch, period.period)?;
            let t = |en, zh| out.lang.pick(en, zh);
            let mut table = Table::new(
                format!("ranking-{}.csv", period.label),
                t("Ranking", "积分排名"),
                &[
                    (t("rank", "名次"), 8.0),
                    (t("name", "姓名"), 14.0),
                    (t("attendance", "出勤积分"), 12.0),
                    (t("thought reports", "思想汇报积分"), 14.0),
                    (t("awards", "加分"), 10.0),
                    (t("total", "总分"), 10.0),
                ],
            );
            for r in &rows {
                table.rows.push(vec![
                    Cell::Number(f64::from(r.rank)),
                    Cell::text(&r.name),
                    Cell::Number(r.attendance_points as f64),
                    Cell::Number(r.report_points as f64),
                    Cell::Number(r.award_points as f64),
                    Cell::Number(r.total as f64),
                ]);
            }
            let files = export::write(
                &dir,
                format,
                bom,
                &[table],
                &format!("ranking-{}.xlsx", period.label),
            )?;
            print_files(&files, out);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarters_are_written_year_and_q() {
        assert_eq!(parse_quarter("2026-Q2").unwrap(), (2026, 2));
        assert_eq!(parse_quarter("2026q4").unwrap(), (2026, 4));
        for bad in ["2026-Q5", "Q2", "2026", "2026-Q0", "abc-Qx"] {
            assert_eq!(
                parse_quarter(bad).unwrap_err().code,
                "input.invalid",
                "{bad}"
            );
        }
        let p = ranking_period(Some("2026-Q2"), None).unwrap();
        assert_eq!(p.period.from.to_string(), "2026-04-01");
        assert_eq!(p.period.to.to_string(), "2026-06-30");
        assert_eq!(ranking_period(None, Some(2026)).unwrap().label, "2026");
    }
}
