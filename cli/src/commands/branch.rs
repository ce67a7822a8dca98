//! `branchline branch …`: the settings of the branch profile that the branch
//! work reads: the monthly dues, and how the branches below are rated
//! (星级评定). Point rules are set with `points rules set`.

use branchline_core::model::{Indicator, IndicatorRule, Level};
use serde::Serialize;

use crate::cli::{BranchCommand, RatingCommand};
use crate::commands::dues::parse_yuan;
use crate::failure::{Failure, Result};
use crate::home::Home;
use crate::output::{Lang, Out, Table};
use crate::words::{self, yuan};

/// An indicator in force, for `branch show --json`.
#[derive(Serialize)]
struct IndicatorView {
    indicator: Indicator,
    weight: u32,
    target_percent: u32,
}

/// The settings, for `branch show --json`.
#[derive(Serialize)]
struct SettingsView {
    branch: String,
    name: String,
    level: Level,
    monthly_dues_fen: i64,
    silent_threshold_percent: u32,
    rating: Vec<IndicatorView>,
    star_thresholds: [u32; 5],
}

/// Five rising scores as people type them: `20,40,60,80,95`.
fn parse_stars(text: &str) -> Result<[u32; 5]> {
    let bad = || {
        Failure::invalid(
            "input.invalid",
            format!("give five scores from 0 to 100, rising, separated by commas (20,40,60,80,95): {text:?}"),
        )
        .zh(format!(
            "请给出五个 0 到 100 之间、依次升高、用逗号分隔的分数（20,40,60,80,95）：“{text}”"
        ))
    };
    let scores: Vec<u32> = text
        .split([',', '，'])
        .map(|s| s.trim().parse::<u32>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad())?;
    let scores: [u32; 5] = scores.try_into().map_err(|_| bad())?;
    if scores.windows(2).any(|w| w[0] >= w[1]) || scores[4] > 100 {
        return Err(bad());
    }
    Ok(scores)
}

fn stars_words(stars: &[u32; 5]) -> String {
    stars
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs a `branch` subcommand.
pub fn run(home: &mut Home, command: BranchCommand, out: Out) -> Result<()> {
    let branch = home.branch();
    match command {
        BranchCommand::Show => {
            let profile = home.store.profile(branch)?;
            let view = SettingsView {
                branch: branch.to_string(),
                name: profile.name.clone(),
                level: profile.level,
                monthly_dues_fen: profile.monthly_dues_fen,
                silent_threshold_percent: profile.silent_threshold_percent,
                rating: profile
                    .rating_rules()
                    .into_iter()
                    .map(|(indicator, rule)| IndicatorView {
                        indicator,
                        weight: rule.weight,
                        target_percent: rule.target_percent,
                    })
                    .collect(),
                star_thresholds: profile.star_thresholds(),
            };
            out.show(&view, || {
                let l = |en, zh| out.lang.pick(en, zh);
                println!("{} ({})", view.name, words::level(view.level, out.lang));
                println!(
                    "{}: {} {}",
                    l("monthly dues", "每月党费"),
                    yuan(view.monthly_dues_fen),
                    l("yuan", "元")
                );
                println!(
                    "{}: {}%",
                    l("silent below attendance of", "出勤率低于此值视为长期未参加"),
                    view.silent_threshold_percent
                );
                println!(
                    "\n{}",
                    l("Rating of the branches below", "下级支部星级评定")
                );
                let mut table = Table::new(match out.lang {
                    Lang::En => ["indicator", "weight", "target"],
                    Lang::Zh => ["指标", "权重", "目标"],
                });
                for r in &view.rating {
                    table.row(vec![
                        words::indicator(r.indicator, out.lang).to_owned(),
                        r.weight.to_string(),
                        format!("{}%", r.target_percent),
                    ]);
                }
                table.print("-");
                println!(
                    "{}: {}",
                    l("scores for 1 to 5 stars", "一至五星所需分数"),
                    stars_words(&view.star_thresholds)
                );
            });
        }
        BranchCommand::SetDues { yuan: amount } => {
            home.require_committee("change the branch's settings")?;
            let fen = parse_yuan(&amount, true)?;
            home.store.update_profile(branch, |p| {
                p.monthly_dues_fen = fen;
                Ok(())
            })?;
            out.done(out.say(
                format!("members pay {} yuan a month", yuan(fen)),
                format!("党员每月缴纳党费 {} 元", yuan(fen)),
            ));
        }
        BranchCommand::Rating(RatingCommand::SetIndicator {
            indicator,
            weight,
            target,
        }) => {
            home.require_committee("change the branch's settings")?;
            let rule = IndicatorRule {
                weight,
                target_percent: target,
            };
            home.store
                .update_profile(branch, |p| p.set_indicator(indicator, rule))?;
            out.done(if weight == 0 {
                out.say(
                    format!(
                        "{} no longer counts in the rating",
                        words::indicator(indicator, Lang::En)
                    ),
                    format!("{}不再计入星级评定", words::indicator(indicator, Lang::Zh)),
                )
            } else {
                out.say(
                    format!(
                        "{} weighs {weight}, earned in full at {target}%",
                        words::indicator(indicator, Lang::En)
                    ),
                    format!(
                        "{}权重 {weight}，达到 {target}% 得满分",
                        words::indicator(indicator, Lang::Zh)
                    ),
                )
            });
        }
        BranchCommand::Rating(RatingCommand::SetStars { thresholds }) => {
            home.require_committee("change the branch's settings")?;
            let stars = parse_stars(&thresholds)?;
            home.store.update_profile(branch, |p| p.set_stars(stars))?;
            out.done(out.say(
                format!("1 to 5 stars need scores of {}", stars_words(&stars)),
                format!("一至五星所需分数：{}", stars_words(&stars)),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_scores_are_five_and_rising() {
        assert_eq!(parse_stars("20,40,60,80,95").unwrap(), [20, 40, 60, 80, 95]);
        assert_eq!(
            parse_stars("10，20，30，40，50").unwrap(),
            [10, 20, 30, 40, 50]
        );
        for bad in [
            "20,40,60,80",
            "20,40,60,80,101",
            "40,20,60,80,95",
            "a,b,c,d,e",
        ] {
            assert_eq!(parse_stars(bad).unwrap_err().code, "input.invalid", "{bad}");
        }
    }
}
