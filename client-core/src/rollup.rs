//! The higher committee's roll-up (党委 / 党总支): every branch below a parent,
//! computed on the committee's device from what it has synced, offline.
//!
//! The parent's committee reads its descendants' profiles, rosters, activities,
//! petitions and dues ledgers (the server's oversight rows), so every figure here
//! comes from the local index, exactly as each branch's own reports do:
//! - **meeting compliance**: of the calendar periods of each required activity kind
//!   touching the period, the share in which the branch held one;
//! - **dues collection**: dues of the months already past on `as_of` in the years
//!   the period touches, and the share of them paid (see
//!   [`Store::dues_collection`]);
//! - **petitions**: submitted in the period; open, overdue, resolved in time, and
//!   the share of ratings that were satisfied (4 or 5);
//! - **term**: the committee's term end and whether the six-month reminder is due;
//! - **star rating** (星级评定): each indicator the parent configures (its profile's
//!   [`BranchProfile::rating_rules`]) earns its weight in proportion to its value
//!   against its target, capped at the weight; the score is the earned share of the
//!   weights of indicators that have a value (a branch with no petitions is not
//!   marked down for their satisfaction), and the stars are the number of the
//!   parent's thresholds the score reaches.

use chrono::Datelike as _;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ids::BranchId;
use crate::model::{BranchProfile, Date, Indicator, Level};
use crate::report::{KindCompliance, Period, PetitionReport, TermReminder};
use crate::store::Store;
use crate::store::branch_work::DuesCollection;

/// How one indicator counts, as the parent configured it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct IndicatorWeight {
    /// The indicator.
    pub indicator: Indicator,
    /// Its share of the score.
    pub weight: u32,
    /// The value (percent) that earns the whole weight.
    pub target_percent: u32,
}

/// One indicator of one branch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct IndicatorValue {
    /// The indicator.
    pub indicator: Indicator,
    /// Its value, 0 to 1; `None` when there is nothing to measure.
    pub value: Option<f64>,
    /// The part of its weight it earned.
    pub earned: f64,
}

/// One branch below the parent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BranchRollup {
    /// The branch.
    pub branch: BranchId,
    /// Its name.
    pub name: String,
    /// Its level.
    pub level: Level,
    /// The branch above it.
    pub parent: Option<BranchId>,
    /// Levels below the roll-up's parent (1 for its children).
    pub depth: u32,
    /// Required activity kinds and how often they were held.
    pub compliance: Vec<KindCompliance>,
    /// Share of required periods met, if any kind is required.
    pub meeting_compliance: Option<f64>,
    /// Dues collection.
    pub dues: DuesCollection,
    /// Petitions submitted in the period.
    pub petitions: PetitionReport,
    /// The committee's term, if set.
    pub term: Option<TermReminder>,
    /// Each configured indicator's value and what it earned.
    pub indicators: Vec<IndicatorValue>,
    /// The score, 0 to 100.
    pub score: f64,
    /// Stars, 0 to 5.
    pub stars: u8,
}

/// Every branch below a parent, rated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rollup {
    /// The branch whose committee reads it.
    pub parent: BranchId,
    /// The period.
    pub period: Period,
    /// The day "today" for overdue items and reminders.
    pub as_of: Date,
    /// The indicators in force.
    pub indicators: Vec<IndicatorWeight>,
    /// The score (percent) one to five stars need.
    pub star_thresholds: [u32; 5],
    /// The branches, in hierarchy order (each after its parent, siblings by name).
    pub branches: Vec<BranchRollup>,
}

/// The value of one indicator from a branch's figures.
fn value_of(indicator: Indicator, b: &BranchRollup) -> Option<f64> {
    let share = |part: u32, whole: u32| (whole > 0).then(|| f64::from(part) / f64::from(whole));
    match indicator {
        Indicator::MeetingCompliance => b.meeting_compliance,
        Indicator::DuesCollection => b.dues.rate,
        Indicator::PetitionsInTime => share(b.petitions.resolved_in_time, b.petitions.resolved),
        Indicator::Satisfaction => share(b.petitions.satisfied, b.petitions.rated),
        Indicator::TermCurrent => b
            .term
            .as_ref()
            .map(|t| f64::from(u8::from(t.days_left >= 0))),
    }
}

/// Rates `branch` on `weights` against `thresholds`: fills its indicators, score
/// and stars.
pub fn rate(branch: &mut BranchRollup, weights: &[IndicatorWeight], thresholds: [u32; 5]) {
    let (mut earned, mut possible) = (0.0, 0.0);
    branch.indicators = weights
        .iter()
        .map(|w| {
            let value = value_of(w.indicator, branch);
            let got = value.map_or(0.0, |v| {
                let weight = f64::from(w.weight);
                (v * 100.0 / f64::from(w.target_percent.max(1)) * weight).min(weight)
            });
            if value.is_some() {
                earned += got;
                possible += f64::from(w.weight);
            }
            IndicatorValue {
                indicator: w.indicator,
                value,
                earned: got,
            }
        })
        .collect();
    branch.score = if possible > 0.0 {
        earned * 100.0 / possible
    } else {
        0.0
    };
    // A score is compared with the thresholds after rounding to a hundredth, so
    // 79.999999 from floating point reaches 80.
    let score = (branch.score * 100.0).round() / 100.0;
    branch.stars = thresholds
        .iter()
        .filter(|t| score >= f64::from(**t))
        .count() as u8;
}

impl Store {
    /// Branches below `parent` whose profiles are on this device, each after its
    /// own parent, siblings by name, with their depth below `parent`.
    fn descendants(&self, parent: BranchId) -> Result<Vec<(BranchProfile, u32)>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT branch_id, parent FROM idx_profiles WHERE parent IS NOT NULL")?;
        let links = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out: Vec<(BranchProfile, u32)> = Vec::new();
        let mut frontier = vec![(parent, 0u32)];
        while let Some((at, depth)) = frontier.pop() {
            for (child, _) in links.iter().filter(|(_, p)| *p == at.to_string()) {
                let child: BranchId = child.parse()?;
                // A branch met twice (a cycle in broken data) is counted once.
                if child == parent || out.iter().any(|(p, _)| p.meta.branch == child) {
                    continue;
                }
                out.push((self.profile(child)?, depth + 1));
                frontier.push((child, depth + 1));
            }
        }
        Ok(hierarchy_order(parent, out))
    }

    /// The roll-up of every branch below `parent` over `period`, as of `as_of`,
    /// rated by the indicators `parent`'s profile configures.
    pub fn rollup(&self, parent: BranchId, period: Period, as_of: Date) -> Result<Rollup> {
        let profile = self.profile(parent)?;
        let indicators: Vec<IndicatorWeight> = profile
            .rating_rules()
            .into_iter()
            .map(|(indicator, rule)| IndicatorWeight {
                indicator,
                weight: rule.weight,
                target_percent: rule.target_percent,
            })
            .collect();
        let star_thresholds = profile.star_thresholds();
        let mut branches = Vec::new();
        for (child, depth) in self.descendants(parent)? {
            let branch = child.meta.branch;
            let compliance = self.compliance_report(branch, period)?;
            let (met, all) = compliance
                .iter()
                .flat_map(|k| &k.periods)
                .fold((0u32, 0u32), |(m, a), p| (m + u32::from(p.met), a + 1));
            let mut dues = DuesCollection {
                due_fen: 0,
                collected_fen: 0,
                rate: None,
                overdue_members: 0,
            };
            for year in period.from.0.year()..=period.to.0.year() {
                let d = self.dues_collection(branch, i64::from(year), as_of)?;
                dues.due_fen += d.due_fen;
                dues.collected_fen += d.collected_fen;
                dues.overdue_members = dues.overdue_members.max(d.overdue_members);
            }
            dues.rate = (dues.due_fen > 0).then(|| dues.collected_fen as f64 / dues.due_fen as f64);
            let mut row = BranchRollup {
                branch,
                name: child.name.clone(),
                level: child.level,
                parent: child.parent,
                depth,
                compliance,
                meeting_compliance: (all > 0).then(|| f64::from(met) / f64::from(all)),
                dues,
                petitions: self.petition_report(branch, period, as_of)?,
                term: self.term_reminder(branch, as_of)?,
                indicators: Vec::new(),
                score: 0.0,
                stars: 0,
            };
            rate(&mut row, &indicators, star_thresholds);
            branches.push(row);
        }
        if branches.is_empty() && profile.level == Level::Branch {
            return Err(Error::invalid(
                "parent (a branch has no branches below it)",
                parent.to_string(),
            ));
        }
        Ok(Rollup {
            parent,
            period,
            as_of,
            indicators,
            star_thresholds,
            branches,
        })
    }
}

/// Orders `found` so each branch follows its parent and siblings go by name.
fn hierarchy_order(root: BranchId, found: Vec<(BranchProfile, u32)>) -> Vec<(BranchProfile, u32)> {
    fn visit(
        at: BranchId,
        rest: &mut Vec<(BranchProfile, u32)>,
        out: &mut Vec<(BranchProfile, u32)>,
    ) {
        let mut children: Vec<(BranchProfile, u32)> = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            if rest[i].0.parent == Some(at) {
                children.push(rest.swap_remove(i));
            } else {
                i += 1;
            }
        }
        children.sort_by(|a, b| {
            a.0.name
                .cmp(&b.0.name)
                .then(a.0.meta.branch.cmp(&b.0.meta.branch))
        });
        for child in children {
            let id = child.0.meta.branch;
            out.push(child);
            visit(id, rest, out);
        }
    }
    let mut rest = found;
    let mut out = Vec::with_capacity(rest.len());
    visit(root, &mut rest, &mut out);
    out
}
