//! The branch work end to end on a real store: dues, points and rankings, the
//! applicant pipeline, the problem library, and what two devices do concurrently.

use super::branch_work::{ApplicantDue, LibraryFilter, quarter, whole_year};
use super::*;
use crate::model::{Category, Collection, NewLibraryEntry, SignInMode, SpendingCategory, Stage};

fn day(s: &str) -> Date {
    s.parse().unwrap()
}

fn person(name: &str, category: Category, joined: &str) -> NewMember {
    NewMember {
        name: name.into(),
        joined: Some(day(joined)),
        category: Some(category),
        ..Default::default()
    }
}

fn branch_with_dues() -> (Store, BranchId) {
    let mut store = Store::open_in_memory().unwrap();
    store.set_clock(Box::new(|| Timestamp(1_778_400_000_000))); // 2026-05-10
    let branch = store
        .create_branch("幸福里第一党支部", Level::Branch, None)
        .unwrap();
    store
        .update_profile(branch, |p| {
            p.monthly_dues_fen = 1000;
            Ok(())
        })
        .unwrap();
    (store, branch)
}

#[test]
fn dues_payments_overdue_members_and_the_public_ledger() {
    let (mut store, branch) = branch_with_dues();
    let wang = store
        .add_member(branch, person("王建国", Category::Full, "2000-07-01"))
        .unwrap();
    let li = store
        .add_member(branch, person("李芳", Category::Probationary, "2026-03-15"))
        .unwrap();
    let zhao = store
        .add_member(branch, person("赵小明", Category::Applicant, "2025-10-01"))
        .unwrap();
    store.set_member_dues(branch, li, 2026, Some(200)).unwrap();
    let q1 = store
        .record_dues_payment(branch, wang, 2026, 1..=3, None, day("2026-03-02"))
        .unwrap();
    store
        .record_dues_payment(branch, wang, 2026, 4..=4, Some(1000), day("2026-04-02"))
        .unwrap();
    let wrong = store
        .record_dues_payment(branch, li, 2026, 3..=4, None, day("2026-04-03"))
        .unwrap();
    store
        .void_dues_payment(wrong, "记错了人", day("2026-04-05"))
        .unwrap();
    assert_eq!(
        store
            .void_dues_payment(wrong, "again", day("2026-04-05"))
            .unwrap_err()
            .code(),
        "ledger.already_voided"
    );
    assert_eq!(
        store
            .record_dues_payment(
                branch,
                MemberId::random(),
                2026,
                1..=1,
                None,
                day("2026-04-03")
            )
            .unwrap_err()
            .code(),
        "member.unknown"
    );
    store
        .record_dues_spending(
            branch,
            1500,
            SpendingCategory::StudyMaterials,
            "订阅学习资料",
            "支委会",
            day("2026-04-20"),
        )
        .unwrap();

    let ledger = store.dues_ledger_view(branch, 2026).unwrap();
    assert_eq!(ledger.payments.len(), 3);
    assert_eq!(ledger.payments[0].entry, q1);
    assert_eq!(
        ledger.payments[0].amount_fen, 3000,
        "three months at 10 yuan"
    );
    assert_eq!(
        ledger.collected_fen, 4000,
        "the voided payment does not count"
    );
    assert_eq!(ledger.spent_fen, 1500);
    assert_eq!(ledger.balance_fen, 2500);

    // On 10 May the months up to April are late.
    let overview = store
        .dues_overview(branch, 2026, day("2026-05-10"))
        .unwrap();
    assert_eq!(overview.len(), 2, "the applicant owes no dues");
    let li_dues = overview.iter().find(|m| m.member == li).unwrap();
    assert_eq!(li_dues.monthly_fen, 200);
    assert_eq!(li_dues.owing_months, (3..=12).collect::<Vec<_>>());
    assert_eq!(li_dues.overdue_months, vec![3, 4]);
    assert_eq!(li_dues.owed_fen, 400);
    let behind = store.overdue_dues(branch, day("2026-05-10")).unwrap();
    assert_eq!(
        behind.iter().map(|m| m.member).collect::<Vec<_>>(),
        vec![li]
    );
    assert!(!overview.iter().any(|m| m.member == zhao));
    let collection = store
        .dues_collection(branch, 2026, day("2026-05-10"))
        .unwrap();
    assert_eq!(collection.due_fen, 4 * 1000 + 2 * 200);
    assert_eq!(collection.collected_fen, 4000);
    assert_eq!(collection.overdue_members, 1);
}

#[test]
fn two_ledgers_of_one_year_opened_offline_are_read_as_one() {
    let (mut a, branch) = branch_with_dues();
    let wang = a
        .add_member(branch, person("王建国", Category::Full, "2000-07-01"))
        .unwrap();
    let mut b = Store::open_in_memory().unwrap();
    for doc in a.documents().unwrap() {
        b.merge(&a.export(doc.id).unwrap()).unwrap();
    }
    // Each device opens 2026 on its own.
    a.record_dues_payment(branch, wang, 2026, 1..=1, None, day("2026-01-05"))
        .unwrap();
    b.record_dues_payment(branch, wang, 2026, 2..=2, None, day("2026-02-05"))
        .unwrap();
    for doc in b.documents().unwrap() {
        a.merge(&b.export(doc.id).unwrap()).unwrap();
    }
    let ledger = a.dues_ledger_view(branch, 2026).unwrap();
    assert_eq!(ledger.payments.len(), 2);
    let wang_dues = &a.dues_overview(branch, 2026, day("2026-03-10")).unwrap()[0];
    assert_eq!(wang_dues.paid_months, vec![1, 2]);
    assert!(wang_dues.overdue_months.is_empty());
}

#[test]
fn concurrent_awards_to_a_members_first_points_add_up() {
    let (mut a, branch) = branch_with_dues();
    let wang = a
        .add_member(branch, person("王建国", Category::Full, "2000-07-01"))
        .unwrap();
    let activity = a
        .create_activity(
            branch,
            model::NewActivity {
                kind: "volunteer".into(),
                title: "清扫河道".into(),
                starts_at: "2026-04-11T08:00".parse().ok(),
                ends_at: "2026-04-11T11:00".parse().ok(),
                ..Default::default()
            },
        )
        .unwrap();
    let book = a.points_book(branch, 2026).unwrap();
    let mut b = Store::open_in_memory().unwrap();
    for doc in a.documents().unwrap() {
        b.merge(&a.export(doc.id).unwrap()).unwrap();
    }
    // Two committee members, offline, each give 王建国 his first points.
    a.award_points(activity, wang, 3).unwrap();
    b.award_points(activity, wang, 2).unwrap();
    a.award(
        branch,
        wang,
        Some("major_task"),
        None,
        None,
        day("2026-04-12"),
    )
    .unwrap();
    b.award(
        branch,
        wang,
        None,
        Some(4),
        Some("防汛值守"),
        day("2026-04-13"),
    )
    .unwrap();
    for id in [activity, book] {
        a.merge(&b.export(id).unwrap()).unwrap();
        b.merge(&a.export(id).unwrap()).unwrap();
    }
    let act: Activity = a.get(activity).unwrap();
    assert_eq!(act.bonus_points_of(wang), 5, "3 and 2, neither lost");
    let q2 = quarter(2026, 2).unwrap();
    let awards = a.awards(branch, q2).unwrap();
    assert_eq!(awards.iter().map(|x| x.points).sum::<i64>(), 5 + 5 + 4);
    assert_eq!(
        a.ranking(branch, q2).unwrap(),
        b.ranking(branch, q2).unwrap()
    );
    assert_eq!(
        a.award(branch, wang, Some("nothing"), None, None, day("2026-04-12"))
            .unwrap_err()
            .code(),
        "points.unknown_rule"
    );
    assert_eq!(
        a.award(branch, wang, None, None, Some("x"), day("2026-04-12"))
            .unwrap_err()
            .code(),
        "input.empty"
    );
}

#[test]
fn rankings_add_attendance_reports_and_awards_and_silent_members_earn_nothing() {
    let (mut store, branch) = branch_with_dues();
    let wang = store
        .add_member(branch, person("王建国", Category::Full, "2000-07-01"))
        .unwrap();
    let li = store
        .add_member(branch, person("李芳", Category::Full, "2001-07-01"))
        .unwrap();
    let zhou = store
        .add_member(branch, person("周强", Category::Full, "2002-07-01"))
        .unwrap();
    for (n, date) in ["2026-04-08", "2026-05-08", "2026-06-08"]
        .iter()
        .enumerate()
    {
        let id = store
            .create_activity(
                branch,
                model::NewActivity {
                    kind: "theme_day".into(),
                    title: format!("主题党日 {n}"),
                    starts_at: format!("{date}T09:00").parse().ok(),
                    ends_at: format!("{date}T11:00").parse().ok(),
                    ..Default::default()
                },
            )
            .unwrap();
        store.sign_in(id, wang, SignInMode::OnSite).unwrap();
        if n == 0 {
            store.sign_in(id, li, SignInMode::Remote).unwrap();
        }
    }
    // 王建国 hands in a thought report on time, 周强 one late.
    store
        .record_thought_report(branch, wang, day("2026-06-30"), day("2026-06-20"))
        .unwrap();
    store
        .record_thought_report(branch, zhou, day("2026-03-31"), day("2026-04-15"))
        .unwrap();
    let q2 = quarter(2026, 2).unwrap();
    let ranking = store.ranking(branch, q2).unwrap();
    let by_name: Vec<(&str, u32, i64)> = ranking
        .iter()
        .map(|r| (r.name.as_str(), r.rank, r.total))
        .collect();
    // Theme days are worth 2 each, a thought report on time 2, a late one nothing.
    assert_eq!(
        by_name,
        vec![("王建国", 1, 8), ("李芳", 2, 2), ("周强", 3, 0)]
    );
    assert_eq!(ranking[0].report_points, 2);
    let report = store.attendance_report(branch, q2).unwrap();
    let silent: Vec<&str> = report
        .members
        .iter()
        .filter(|m| m.silent)
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(silent, vec!["周强", "李芳"]);
    store
        .award(
            branch,
            li,
            Some("commendation"),
            None,
            None,
            day("2026-06-01"),
        )
        .unwrap();
    let report = store.attendance_report(branch, q2).unwrap();
    let silent: Vec<&str> = report
        .members
        .iter()
        .filter(|m| m.silent)
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(silent, vec!["周强"], "a commended member is not silent");
    let year = store.ranking(branch, whole_year(2026).unwrap()).unwrap();
    let li_year = year.iter().find(|r| r.member == li).unwrap();
    assert_eq!(
        (li_year.rank, li_year.total, li_year.award_points),
        (2, 2 + 5, 5)
    );
}

#[test]
fn the_applicant_pipeline_moves_the_roster_along() {
    let (mut store, branch) = branch_with_dues();
    let zhao = store
        .add_member(branch, person("赵小明", Category::Applicant, "2024-09-01"))
        .unwrap();
    let wang = store
        .add_member(branch, person("王建国", Category::Full, "2000-07-01"))
        .unwrap();
    let li = store
        .add_member(branch, person("李芳", Category::Full, "2001-07-01"))
        .unwrap();
    let new = store
        .add_member(branch, person("新人", Category::Applicant, "2026-01-01"))
        .unwrap();
    store
        .add_applicant(branch, zhao, day("2024-09-01"))
        .unwrap();
    assert_eq!(
        store
            .add_applicant(branch, zhao, day("2024-09-01"))
            .unwrap_err()
            .code(),
        "applicant.exists"
    );
    assert_eq!(
        store
            .record_applicant_stage(wang, Stage::Activist, day("2024-10-01"), None)
            .unwrap_err()
            .code(),
        "applicant.unknown"
    );
    store
        .record_applicant_stage(zhao, Stage::Activist, day("2024-09-20"), Some("支委会研究"))
        .unwrap();
    let row = &store.list_members(branch, &Default::default()).unwrap();
    assert_eq!(
        row.iter().find(|m| m.id == zhao).unwrap().category,
        Category::Activist
    );
    store
        .record_applicant_stage(zhao, Stage::Candidate, day("2025-10-01"), None)
        .unwrap();
    assert_eq!(
        store.add_introducer(zhao, new).unwrap_err().code(),
        "input.invalid",
        "an applicant cannot introduce"
    );
    store.add_introducer(zhao, wang).unwrap();
    store.add_introducer(zhao, li).unwrap();
    store
        .record_thought_report(branch, zhao, day("2026-03-31"), day("2026-03-25"))
        .unwrap();
    store
        .record_applicant_stage(zhao, Stage::Probationary, day("2026-04-01"), None)
        .unwrap();
    let rows = store.applicants(branch).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].stage, Stage::Probationary);
    assert_eq!(rows[0].introducers.len(), 2);
    assert_eq!(rows[0].thought_reports, 1);
    assert_eq!(rows[0].next.as_ref().unwrap().from, day("2027-04-01"));
    let members = store.list_members(branch, &Default::default()).unwrap();
    let zhao_row = members.iter().find(|m| m.id == zhao).unwrap();
    assert_eq!(zhao_row.category, Category::Probationary);
    assert_eq!(zhao_row.joined, Some(day("2026-04-01")));
    // A quarter after the last report, one is due; a year after, full membership.
    assert!(
        store
            .applicant_reminders(branch, day("2026-06-24"))
            .unwrap()
            .is_empty()
    );
    let later = store
        .applicant_reminders(branch, day("2027-04-01"))
        .unwrap();
    let due: Vec<ApplicantDue> = later.iter().map(|r| r.due).collect();
    assert_eq!(
        due,
        vec![ApplicantDue::ThoughtReport, ApplicantDue::Step(Stage::Full)]
    );
}

#[test]
fn library_entries_are_written_revised_shared_and_listed() {
    let (mut store, branch) = branch_with_dues();
    let id = store
        .write_library_entry(
            branch,
            NewLibraryEntry {
                collection: Collection::Problem,
                title: "路灯坏了没人管".into(),
                problem: "老旧小区路灯长期不亮".into(),
                solution: "联系街道".into(),
                tags: vec!["路灯".into()],
                written_on: day("2026-05-01"),
            },
        )
        .unwrap();
    store
        .write_library_entry(
            branch,
            NewLibraryEntry {
                collection: Collection::Case,
                title: "手机签到让参与率提高四成".into(),
                problem: "外出务工党员难参会".into(),
                solution: "云党日".into(),
                tags: vec![],
                written_on: day("2026-05-03"),
            },
        )
        .unwrap();
    store
        .revise_library_entry(id, None, None, Some("联系街道，结对单位出资更换"))
        .unwrap();
    store.tag_library_entry(id, &["老旧小区".into()]).unwrap();
    store.share_library_entry_down(id, true).unwrap();
    let partner = BranchId::random();
    store.share_library_entry(id, partner).unwrap();
    let all = store.library(&LibraryFilter::default()).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].collection, Collection::Case, "newest first");
    let problems = store
        .library(&LibraryFilter {
            tag: Some("路灯".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].shared_down);
    assert_eq!(
        problems[0].tags,
        vec!["老旧小区".to_owned(), "路灯".to_owned()]
    );
    assert_eq!(problems[0].branch_name.as_deref(), Some("幸福里第一党支部"));
    let entry = store.library_entry(id).unwrap();
    assert_eq!(entry.solution.as_str(), "联系街道，结对单位出资更换");
    assert!(entry.shared_with.contains_key(&partner.to_string()));
    assert_eq!(
        store
            .revise_library_entry(id, Some("  "), None, None)
            .unwrap_err()
            .code(),
        "input.empty"
    );
}
