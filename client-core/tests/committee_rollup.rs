//! A generated committee over three levels and twenty branches: the roll-up the
//! committee's device computes from its store equals the figures computed here,
//! independently, from the generated records themselves.

use std::collections::BTreeSet;

use branchline_core::Store;
use branchline_core::model::{
    BranchProfile, Date, Frequency, Indicator, IndicatorRule, Level, MemberStatus, PetitionStatus,
};
use branchline_core::report::Period;
use branchline_core::workload::{GeneratedBranch, WorkloadSpec, generate_committee};
use chrono::{Datelike, Months, NaiveDate};

/// What the roll-up should say about one branch, from its records.
#[derive(Debug, PartialEq)]
struct Expected {
    met_periods: u32,
    required_periods: u32,
    due_fen: i64,
    collected_fen: i64,
    submitted: u32,
    open: u32,
    overdue: u32,
    resolved: u32,
    resolved_in_time: u32,
    rated: u32,
    satisfied: u32,
    term_current: Option<bool>,
}

fn first_of_period(day: NaiveDate, frequency: Frequency) -> NaiveDate {
    let months = frequency.months();
    NaiveDate::from_ymd_opt(day.year(), day.month0() / months * months + 1, 1).unwrap()
}

fn expected(branch: &GeneratedBranch, period: Period, as_of: Date) -> Expected {
    // Meetings: every calendar period of each required kind touching the period.
    let (mut met_periods, mut required_periods) = (0, 0);
    for (code, rule) in &branch.profile.activity_kinds {
        let Some(frequency) = rule.frequency else {
            continue;
        };
        let mut start = first_of_period(period.from.0, frequency);
        while start <= period.to.0 {
            let next = start + Months::new(frequency.months());
            required_periods += 1;
            let held = branch.activities.iter().any(|a| {
                let day = a.starts_at.date().0;
                a.kind == *code && start <= day && day < next
            });
            met_periods += u32::from(held);
            start = next;
        }
    }
    // Dues: each full or probationary member owes every month they were a member
    // on the branch; a month is due once it has passed on `as_of`.
    let (mut due_fen, mut collected_fen) = (0, 0);
    for ledger in &branch.dues_ledgers {
        let year = ledger.year as i32;
        if year < period.from.0.year() || year > period.to.0.year() {
            continue;
        }
        let elapsed = match as_of.0.year().cmp(&year) {
            std::cmp::Ordering::Greater => 12,
            std::cmp::Ordering::Equal => as_of.0.month() - 1,
            std::cmp::Ordering::Less => 0,
        };
        for m in branch.roster.members.values() {
            if !m.category.is_member() {
                continue;
            }
            let first = match m.joined {
                Some(j) if j.0.year() > year => continue,
                Some(j) if j.0.year() == year => j.0.month(),
                _ => 1,
            };
            let last = match (m.status, m.status_since) {
                (MemberStatus::Active, _) | (_, None) => 12,
                (_, Some(s)) if s.0.year() < year => continue,
                (_, Some(s)) if s.0.year() == year => s.0.month(),
                _ => 12,
            };
            let monthly = ledger
                .monthly_fen
                .get(&m.id.to_string())
                .copied()
                .unwrap_or(branch.profile.monthly_dues_fen);
            let paid: BTreeSet<u32> = ledger
                .payments
                .values()
                .filter(|p| p.member == m.id && p.void.is_none())
                .flat_map(|p| p.first_month..=p.last_month)
                .collect();
            for month in (first..=last).filter(|x| *x <= elapsed) {
                due_fen += monthly;
                if paid.contains(&month) {
                    collected_fen += monthly;
                }
            }
        }
    }
    // Petitions submitted in the period.
    let mut e = Expected {
        met_periods,
        required_periods,
        due_fen,
        collected_fen,
        submitted: 0,
        open: 0,
        overdue: 0,
        resolved: 0,
        resolved_in_time: 0,
        rated: 0,
        satisfied: 0,
        term_current: branch.profile.term.as_ref().map(|t| t.end >= as_of),
    };
    for p in &branch.petitions {
        if !period.contains(p.submitted_at.utc_date()) {
            continue;
        }
        e.submitted += 1;
        if p.status == PetitionStatus::Resolved {
            e.resolved += 1;
            let day = p.resolution.as_ref().unwrap().at.utc_date();
            e.resolved_in_time += u32::from(p.deadline.is_none_or(|d| day <= d));
            if let Some(r) = &p.rating {
                e.rated += 1;
                e.satisfied += u32::from(r.score >= 4);
            }
        } else {
            e.open += 1;
            e.overdue += u32::from(p.deadline.is_some_and(|d| d < as_of));
        }
    }
    e
}

/// The score and stars of `e` under `rules` (weight, target) and `thresholds`.
fn rating(e: &Expected, rules: &[(Indicator, u32, u32)], thresholds: [u32; 5]) -> (f64, u8) {
    let share = |a: i64, b: i64| (b > 0).then(|| a as f64 / b as f64);
    let (mut earned, mut possible) = (0.0, 0.0);
    for (indicator, weight, target) in rules {
        let value = match indicator {
            Indicator::MeetingCompliance => share(e.met_periods.into(), e.required_periods.into()),
            Indicator::DuesCollection => share(e.collected_fen, e.due_fen),
            Indicator::PetitionsInTime => share(e.resolved_in_time.into(), e.resolved.into()),
            Indicator::Satisfaction => share(e.satisfied.into(), e.rated.into()),
            Indicator::TermCurrent => e.term_current.map(|c| if c { 1.0 } else { 0.0 }),
        };
        if let Some(v) = value {
            let w = f64::from(*weight);
            earned += (v * 100.0 / f64::from(*target) * w).min(w);
            possible += w;
        }
    }
    let score = if possible > 0.0 {
        earned * 100.0 / possible
    } else {
        0.0
    };
    let rounded = (score * 100.0).round() / 100.0;
    let stars = thresholds
        .iter()
        .filter(|t| rounded >= f64::from(**t))
        .count() as u8;
    (score, stars)
}

#[test]
fn the_committee_roll_up_equals_the_generated_records() {
    let spec = WorkloadSpec {
        seed: 7,
        members: 12,
        years: 1,
        activities_per_month: 4,
        petitions: 10,
        start: Date::ymd(2025, 1, 1).unwrap(),
        ..WorkloadSpec::default()
    };
    let generated = generate_committee(&spec, 4, 20).unwrap();
    assert_eq!(generated.branches.len(), 20);
    let mut store = Store::open_in_memory().unwrap();
    store
        .import_all(generated.all_documents().map(|d| d.bytes.as_slice()))
        .unwrap();
    let committee = generated.committee.meta.branch;
    // The committee weighs dues and meetings more, and wants 90 % of dues.
    store
        .update_profile(committee, |p: &mut BranchProfile| {
            p.set_indicator(
                Indicator::DuesCollection,
                IndicatorRule {
                    weight: 30,
                    target_percent: 90,
                },
            )?;
            p.set_indicator(
                Indicator::MeetingCompliance,
                IndicatorRule {
                    weight: 30,
                    target_percent: 100,
                },
            )?;
            p.set_stars([30, 50, 65, 80, 92])
        })
        .unwrap();
    let rules = [
        (Indicator::DuesCollection, 30, 90),
        (Indicator::MeetingCompliance, 30, 100),
        (Indicator::PetitionsInTime, 20, 90),
        (Indicator::Satisfaction, 20, 90),
        (Indicator::TermCurrent, 20, 100),
    ];
    let thresholds = [30, 50, 65, 80, 92];

    // As of the end of November: December's dues are not late yet, November's are.
    let as_of = Date::ymd(2025, 12, 10).unwrap();
    let period = Period::new(spec.start, spec.end()).unwrap();
    let rollup = store.rollup(committee, period, as_of).unwrap();
    assert_eq!(
        rollup.branches.len(),
        4 + 20,
        "general branches and branches"
    );
    assert_eq!(rollup.star_thresholds, thresholds);

    // Hierarchy order: each general branch, then its branches.
    let mut last_general = None;
    for row in &rollup.branches {
        match row.level {
            Level::GeneralBranch => {
                assert_eq!((row.depth, row.parent), (1, Some(committee)));
                last_general = Some(row.branch);
            }
            _ => {
                assert_eq!(row.depth, 2);
                assert_eq!(row.parent, last_general, "{} follows its parent", row.name);
            }
        }
    }

    let mut stars_seen = BTreeSet::new();
    for branch in &generated.branches {
        let row = rollup
            .branches
            .iter()
            .find(|r| r.branch == branch.branch)
            .unwrap();
        let e = expected(branch, period, as_of);
        let met: u32 = row
            .compliance
            .iter()
            .flat_map(|k| &k.periods)
            .filter(|p| p.met)
            .count() as u32;
        let all: u32 = row.compliance.iter().map(|k| k.periods.len() as u32).sum();
        let got = Expected {
            met_periods: met,
            required_periods: all,
            due_fen: row.dues.due_fen,
            collected_fen: row.dues.collected_fen,
            submitted: row.petitions.submitted,
            open: row.petitions.open,
            overdue: row.petitions.overdue,
            resolved: row.petitions.resolved,
            resolved_in_time: row.petitions.resolved_in_time,
            rated: row.petitions.rated,
            satisfied: row.petitions.satisfied,
            term_current: row.term.as_ref().map(|t| t.days_left >= 0),
        };
        assert_eq!(got, e, "{}", row.name);
        assert!(
            e.due_fen > 0 && e.collected_fen < e.due_fen,
            "some dues are late"
        );
        let term = row.term.as_ref().unwrap();
        assert!(term.due, "{}: the term ends within six months", row.name);
        let (score, stars) = rating(&e, &rules, thresholds);
        assert!((row.score - score).abs() < 1e-9, "{}", row.name);
        assert_eq!(row.stars, stars, "{}", row.name);
        stars_seen.insert(stars);
    }
    // General branches keep no records of their own here: nothing to rate but
    // their meetings, none of which they held.
    for row in rollup
        .branches
        .iter()
        .filter(|r| r.level == Level::GeneralBranch)
    {
        assert_eq!(row.meeting_compliance, Some(0.0));
        assert_eq!((row.dues.due_fen, row.petitions.submitted), (0, 0));
    }
    assert!(!stars_seen.is_empty());

    // A general branch's committee sees its own five branches only.
    let general = generated.general_branches[0].meta.branch;
    let own = store.rollup(general, period, as_of).unwrap();
    assert_eq!(own.branches.len(), 5);
    assert!(own.branches.iter().all(|r| r.parent == Some(general)));
    // A branch has no branches below it.
    let leaf = generated.branches[0].branch;
    assert_eq!(
        store.rollup(leaf, period, as_of).unwrap_err().code(),
        "input.invalid"
    );
}
