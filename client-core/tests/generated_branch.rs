//! The generated two-year branch: it saves and reloads intact, and every report the
//! store computes from its index equals the figures computed here, independently,
//! from the generated records themselves.

use std::collections::BTreeMap;

use automerge::AutoCommit;
use branchline_core::Store;
use branchline_core::model::{Activity, MemberStatus, PetitionStatus, Roster, THOUGHT_REPORT_RULE};
use branchline_core::report::{Period, age_band, age_on, period_start};
use branchline_core::store::query::{ActivityFilter, MemberFilter, PetitionFilter};
use branchline_core::workload::{WorkloadSpec, generate};
use chrono::Months;

#[test]
fn the_generated_branch_round_trips_and_its_reports_add_up() {
    let spec = WorkloadSpec::default();
    let branch = generate(&spec).unwrap();
    assert_eq!(branch.activities.len(), 96);
    assert_eq!(branch.petitions.len(), 300);
    assert!(
        branch
            .petitions
            .iter()
            .all(|p| (3..=7).contains(&p.progress.len()))
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("branch.sqlite");
    let mut store = Store::open(&path).unwrap();
    let imported = store
        .import_all(branch.documents.iter().map(|d| d.bytes.as_slice()))
        .unwrap();
    assert_eq!(imported, branch.documents.len());
    drop(store);
    let store = Store::open(&path).unwrap();

    // Every document reloads with the same history and content.
    for doc in &branch.documents {
        let mut original = AutoCommit::load(&doc.bytes).unwrap();
        let mut reloaded = store.load_document(doc.id).unwrap();
        assert_eq!(
            reloaded.get_heads(),
            original.get_heads(),
            "{} {}",
            doc.kind,
            doc.id
        );
    }
    let roster: Roster = store.get(branch.roster.meta.id).unwrap();
    assert_eq!(roster, branch.roster);
    assert_eq!(store.profile(branch.branch).unwrap(), branch.profile);

    // Lists match the records.
    let members = store
        .list_members(branch.branch, &MemberFilter::default())
        .unwrap();
    assert_eq!(members.len(), spec.members);
    let activities = store
        .list_activities(branch.branch, &ActivityFilter::default())
        .unwrap();
    assert_eq!(activities.len(), branch.activities.len());
    let as_of = spec.end();
    let overdue = store
        .list_petitions(
            branch.branch,
            &PetitionFilter {
                overdue_only: true,
                ..Default::default()
            },
            as_of,
        )
        .unwrap();
    assert_eq!(
        overdue.len(),
        branch
            .petitions
            .iter()
            .filter(|p| p.is_overdue(as_of))
            .count()
    );

    let period = Period::new(spec.start, spec.end()).unwrap();
    let report = store.report(branch.branch, period, as_of).unwrap();

    // Attendance, recomputed from the records.
    let expected_at = |m: &branchline_core::model::Member, a: &Activity| {
        let day = a.starts_at.date();
        m.category.is_member()
            && m.joined.is_none_or(|j| j <= day)
            && (m.status == MemberStatus::Active || m.status_since.is_some_and(|s| s > day))
            && a.group.as_ref().is_none_or(|g| m.group.as_ref() == Some(g))
    };
    let (mut all_expected, mut all_attended) = (0, 0);
    for row in &report.attendance.members {
        let m = branch.roster.member(row.member).unwrap();
        let key = m.id.to_string();
        let expected: Vec<&Activity> = branch
            .activities
            .iter()
            .filter(|a| expected_at(m, a))
            .collect();
        let attended = expected
            .iter()
            .filter(|a| a.sign_ins.contains_key(&key))
            .count() as u32;
        let on_leave = expected
            .iter()
            .filter(|a| a.leaves.contains_key(&key))
            .count() as u32;
        let points: i64 = expected
            .iter()
            .filter(|a| a.sign_ins.contains_key(&key))
            .map(|a| branch.profile.activity_kinds[&a.kind].attendance_points)
            .sum();
        assert_eq!(
            (
                row.expected,
                row.attended,
                row.on_leave,
                row.attendance_points
            ),
            (expected.len() as u32, attended, on_leave, points),
            "{}",
            m.name
        );
        // Awards at activities and in the points books, and thought reports handed
        // in on time, count as points besides attendance: a member who earned some
        // is not silent.
        let at_activities: i64 = branch
            .activities
            .iter()
            .filter(|a| period.contains(a.starts_at.date()))
            .map(|a| a.bonus_points_of(m.id))
            .sum();
        let awarded: i64 = branch
            .points_books
            .iter()
            .flat_map(|b| b.awards.values())
            .filter(|a| a.member == m.id && period.contains(a.on))
            .map(|a| a.points)
            .sum();
        let per_report = branch.profile.point_rules[THOUGHT_REPORT_RULE].points;
        let reports_on_time = branch
            .points_books
            .iter()
            .flat_map(|b| b.thought_reports.values())
            .filter(|t| t.member == m.id && period.contains(t.received) && t.on_time())
            .count() as i64;
        let other_points = at_activities + awarded + reports_on_time * per_report;
        assert_eq!(row.other_points, other_points, "{}", m.name);
        let silent = !expected.is_empty()
            && f64::from(attended) * 100.0 / (expected.len() as f64)
                < f64::from(branch.profile.silent_threshold_percent)
            && other_points <= 0;
        assert_eq!(row.silent, silent, "{}", m.name);
        all_expected += expected.len() as u32;
        all_attended += attended;
    }
    assert!(
        report.attendance.members.iter().any(|m| m.silent),
        "the generator makes some members silent"
    );
    let overall = f64::from(all_attended) / f64::from(all_expected);
    assert!(
        (0.75..0.85).contains(&overall),
        "attendance is about 80%: {overall}"
    );
    for kind in &report.attendance.kinds {
        let held = branch
            .activities
            .iter()
            .filter(|a| a.kind == kind.kind)
            .count() as u32;
        assert_eq!(kind.activities, held, "{}", kind.kind);
    }

    // Petitions.
    let p = &report.petitions;
    let resolved: Vec<_> = branch
        .petitions
        .iter()
        .filter(|p| p.status == PetitionStatus::Resolved)
        .collect();
    assert_eq!(p.submitted, 300);
    assert_eq!(p.resolved as usize, resolved.len());
    assert_eq!(p.open as usize, 300 - resolved.len());
    assert_eq!(p.overdue as usize, overdue.len());
    let in_time = resolved
        .iter()
        .filter(|p| {
            p.deadline
                .is_none_or(|d| p.resolution.as_ref().unwrap().at.utc_date() <= d)
        })
        .count();
    assert_eq!(p.resolved_in_time as usize, in_time);
    let ratings: Vec<f64> = resolved
        .iter()
        .filter_map(|p| p.rating.as_ref())
        .map(|r| f64::from(r.score))
        .collect();
    assert_eq!(p.rated as usize, ratings.len());
    let mean = ratings.iter().sum::<f64>() / ratings.len() as f64;
    assert!((p.average_satisfaction.unwrap() - mean).abs() < 1e-9);

    // Meeting compliance: every required kind, every calendar period.
    for kind in &report.compliance {
        for bucket in &kind.periods {
            let end = bucket.start.0 + Months::new(kind.frequency.months());
            let held = branch
                .activities
                .iter()
                .filter(|a| {
                    a.kind == kind.kind
                        && bucket.start.0 <= a.starts_at.0.date()
                        && a.starts_at.0.date() < end
                })
                .count() as u32;
            assert_eq!(bucket.held, held, "{} from {}", kind.kind, bucket.start);
            assert_eq!(bucket.start, period_start(bucket.start, kind.frequency));
        }
        let periods = 24 / kind.frequency.months() as usize;
        assert_eq!(kind.periods.len(), periods, "{}", kind.kind);
        assert!(
            kind.periods.iter().all(|b| b.met),
            "the generator holds every required kind: {kind:?}"
        );
    }

    // Term renewal: the generated term ends within six months of the history's end.
    let term = branch.profile.term.as_ref().unwrap();
    let reminder = report.term.unwrap();
    assert_eq!(reminder.ends, term.end);
    assert_eq!(reminder.days_left, (term.end.0 - as_of.0).num_days());
    assert!(reminder.due);

    // Age structure.
    let mut bands: BTreeMap<String, u32> = BTreeMap::new();
    for m in branch.roster.members.values() {
        if m.status == MemberStatus::Active && m.category.is_member() {
            *bands
                .entry(age_band(age_on(m.birth_date.unwrap(), as_of)).to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(report.ages.bands, bands);
}

#[test]
fn the_same_seed_gives_the_same_branch() {
    let spec = WorkloadSpec {
        petitions: 20,
        years: 1,
        members: 20,
        ..Default::default()
    };
    let a = generate(&spec).unwrap();
    let b = generate(&spec).unwrap();
    let bytes = |g: &branchline_core::workload::GeneratedBranch| {
        g.documents
            .iter()
            .map(|d| d.bytes.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(bytes(&a), bytes(&b));
    let other = generate(&WorkloadSpec { seed: 2, ..spec }).unwrap();
    assert_ne!(bytes(&a), bytes(&other));
}
