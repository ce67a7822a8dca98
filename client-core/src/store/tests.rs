//! The store's own tests: workflows end to end, persistence, migrations, bad input.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ReadDoc};

use super::*;
use crate::model::{ActivityStatus, Category, MemberStatus, PetitionStatus};
use crate::store::query::{ActivityFilter, MemberFilter, PetitionFilter};

fn day(s: &str) -> Date {
    s.parse().unwrap()
}

fn member(name: &str) -> NewMember {
    NewMember {
        name: name.into(),
        birth_date: Some(day("1975-06-01")),
        joined: Some(day("2000-07-01")),
        group: Some("第一党小组".into()),
        ..Default::default()
    }
}

fn activity(kind: &str) -> NewActivity {
    NewActivity {
        kind: kind.into(),
        title: "三月主题党日".into(),
        starts_at: "2025-03-05T14:30".parse().ok(),
        ends_at: "2025-03-05T16:30".parse().ok(),
        place: Some("党群服务中心".into()),
        ..Default::default()
    }
}

fn petition() -> NewPetition {
    NewPetition {
        category: "道路交通".into(),
        title: "路灯损坏".into(),
        description: "小区北门路灯坏了两周".into(),
        location: Some("北门".into()),
        submitter: model::Submitter {
            name: Some("张大爷".into()),
            contact: Some("13900000000".into()),
            member: None,
        },
    }
}

fn store_with_branch() -> (Store, BranchId) {
    let mut store = Store::open_in_memory().unwrap();
    store.set_clock(Box::new(|| Timestamp(1_741_132_800_000))); // 2025-03-05
    let branch = store
        .create_branch("幸福里第一党支部", Level::Branch, None)
        .unwrap();
    (store, branch)
}

#[test]
fn roster_workflows_update_the_index() {
    let (mut store, branch) = store_with_branch();
    let wang = store.add_member(branch, member("王秀英")).unwrap();
    let li = store
        .add_member(
            branch,
            NewMember {
                category: Some(Category::Activist),
                ..member("李强")
            },
        )
        .unwrap();
    store
        .update_member(
            wang,
            MemberUpdate {
                phone: Some("13800000000".into()),
                ..Default::default()
            },
        )
        .unwrap();
    store.transfer_out(li, day("2025-02-01")).unwrap();

    let all = store
        .list_members(branch, &MemberFilter::default())
        .unwrap();
    assert_eq!(all.len(), 2);
    let active = store
        .list_members(
            branch,
            &MemberFilter {
                status: Some(MemberStatus::Active),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].phone.as_deref(), Some("13800000000"));
    let by_name = store
        .list_members(
            branch,
            &MemberFilter {
                name_contains: Some("李".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(by_name[0].status, MemberStatus::TransferredOut);

    let unknown = store
        .update_member(MemberId::random(), MemberUpdate::default())
        .unwrap_err();
    assert_eq!(unknown.code(), "member.unknown");
    assert_eq!(
        store
            .transfer_out(li, day("2025-03-01"))
            .unwrap_err()
            .code(),
        "member.not_active"
    );
}

#[test]
fn activity_workflows_and_their_errors() {
    let (mut store, branch) = store_with_branch();
    let wang = store.add_member(branch, member("王秀英")).unwrap();
    let zhao = store.add_member(branch, member("赵刚")).unwrap();

    let unknown_kind = store
        .create_activity(branch, activity("karaoke"))
        .unwrap_err();
    assert_eq!(unknown_kind.code(), "activity.unknown_kind");
    let bad_organizer = store
        .create_activity(
            branch,
            NewActivity {
                organizer: Some(MemberId::random()),
                ..activity("theme_day")
            },
        )
        .unwrap_err();
    assert_eq!(bad_organizer.code(), "member.unknown");
    let backwards = store
        .create_activity(
            branch,
            NewActivity {
                ends_at: "2025-03-05T09:00".parse().ok(),
                ..activity("theme_day")
            },
        )
        .unwrap_err();
    assert_eq!(backwards.code(), "activity.end_before_start");

    let a = store
        .create_activity(branch, activity("theme_day"))
        .unwrap();
    store.sign_in(a, wang, SignInMode::OnSite).unwrap();
    assert_eq!(
        store
            .sign_in(a, wang, SignInMode::Remote)
            .unwrap_err()
            .code(),
        "activity.already_signed_in"
    );
    assert_eq!(
        store
            .sign_in(a, MemberId::random(), SignInMode::OnSite)
            .unwrap_err()
            .code(),
        "member.unknown"
    );
    store.request_leave(a, zhao, "在外地务工").unwrap();
    assert_eq!(
        store.request_leave(a, zhao, "again").unwrap_err().code(),
        "activity.already_on_leave"
    );
    store.write_minutes(a, "会议学习了文件。").unwrap();
    store.award_points(a, wang, 2).unwrap();
    store.close_activity(a).unwrap();
    assert_eq!(
        store
            .sign_in(a, zhao, SignInMode::OnSite)
            .unwrap_err()
            .code(),
        "activity.closed"
    );

    let rows = store
        .list_activities(branch, &ActivityFilter::default())
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].sign_ins, rows[0].leaves, rows[0].status),
        (1, 1, ActivityStatus::Closed)
    );
    let march = ActivityFilter {
        from: Some(day("2025-03-01")),
        to: Some(day("2025-03-05")),
        ..Default::default()
    };
    assert_eq!(store.list_activities(branch, &march).unwrap().len(), 1);
    let april = ActivityFilter {
        from: Some(day("2025-04-01")),
        ..Default::default()
    };
    assert!(store.list_activities(branch, &april).unwrap().is_empty());
    let lectures = ActivityFilter {
        kind: Some("lecture".into()),
        ..Default::default()
    };
    assert!(store.list_activities(branch, &lectures).unwrap().is_empty());

    let attendance = store.attendance(a).unwrap();
    assert_eq!(attendance.len(), 2);
    assert!(
        attendance
            .iter()
            .any(|r| r.member == wang && r.present && r.name.as_deref() == Some("王秀英"))
    );
    assert!(attendance.iter().any(|r| r.member == zhao && !r.present));

    let stored: Activity = store.get(a).unwrap();
    assert_eq!(stored.minutes.as_str(), "会议学习了文件。");
    assert_eq!(stored.bonus_points_of(wang), 2);
}

#[test]
fn joint_activities_are_listed_for_partner_branches() {
    let (mut store, branch) = store_with_branch();
    let partner = store
        .create_branch("阳光村党支部", Level::Branch, None)
        .unwrap();
    let guest = store.add_member(partner, member("孙丽")).unwrap();
    let a = store.create_activity(branch, activity("joint")).unwrap();
    assert_eq!(
        store
            .sign_in(a, guest, SignInMode::OnSite)
            .unwrap_err()
            .code(),
        "member.unknown"
    );
    store.share_activity(a, partner).unwrap();
    store.sign_in(a, guest, SignInMode::OnSite).unwrap();
    assert_eq!(
        store
            .list_activities(partner, &ActivityFilter::default())
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn petition_workflows_and_their_errors() {
    let (mut store, branch) = store_with_branch();
    let owner = store.add_member(branch, member("陈明")).unwrap();
    let p = store.submit_petition(branch, petition()).unwrap();

    assert_eq!(
        store
            .resolve_petition(p, None, "修好了")
            .unwrap_err()
            .code(),
        "petition.no_owner"
    );
    assert_eq!(
        store.rate_petition(p, 5, None).unwrap_err().code(),
        "petition.not_resolved"
    );
    assert_eq!(
        store
            .assign_petition(p, MemberId::random(), day("2025-03-20"))
            .unwrap_err()
            .code(),
        "member.unknown"
    );
    store.assign_petition(p, owner, day("2025-03-10")).unwrap();
    store.add_progress(p, Some(owner), "已联系物业").unwrap();

    let today = day("2025-03-11");
    let overdue = store
        .list_petitions(
            branch,
            &PetitionFilter {
                overdue_only: true,
                ..Default::default()
            },
            today,
        )
        .unwrap();
    assert_eq!(overdue.len(), 1);
    assert!(overdue[0].overdue);
    assert_eq!(overdue[0].progress_notes, 1);

    store
        .resolve_petition(p, Some(owner), "已更换灯泡")
        .unwrap();
    assert_eq!(
        store.rate_petition(p, 0, None).unwrap_err().code(),
        "petition.rating_out_of_range"
    );
    store.rate_petition(p, 5, Some("很满意")).unwrap();
    assert_eq!(
        store.rate_petition(p, 4, None).unwrap_err().code(),
        "petition.already_rated"
    );
    store.reopen_petition(p, None, "又坏了").unwrap();
    let mine = store
        .list_petitions(
            branch,
            &PetitionFilter {
                owner: Some(owner),
                ..Default::default()
            },
            today,
        )
        .unwrap();
    assert_eq!(
        (mine[0].status, mine[0].rating),
        (PetitionStatus::Assigned, None)
    );

    let stored: Petition = store.get(p).unwrap();
    assert_eq!(stored.submitter.contact.as_deref(), Some("13900000000"));
    assert_eq!(stored.progress.len(), 2, "the reopening is logged");
}

#[test]
fn member_files_are_created_once() {
    let (mut store, branch) = store_with_branch();
    let wang = store.add_member(branch, member("王秀英")).unwrap();
    let file = store.member_file(wang).unwrap();
    assert_eq!(store.member_file(wang).unwrap(), file);
    store
        .update(file, |f: &mut MemberFile| {
            f.add_training(day("2025-01-10"), "专题学习", 4.0)
        })
        .unwrap();
    assert_eq!(store.get::<MemberFile>(file).unwrap().training_hours(), 4.0);
    assert_eq!(
        store.member_file(MemberId::random()).unwrap_err().code(),
        "member.unknown"
    );
}

#[test]
fn a_failed_operation_leaves_nothing_behind() {
    let (mut store, branch) = store_with_branch();
    let roster = store.branch_document(branch, DocKind::Roster).unwrap();
    let before = store.export(roster).unwrap();
    let err = store
        .update(roster, |r: &mut Roster| {
            r.add_member(member("王秀英"))?;
            r.add_member(NewMember::default()) // fails: empty name
        })
        .unwrap_err();
    assert_eq!(err.code(), "input.empty");
    assert_eq!(store.export(roster).unwrap(), before);
    assert!(
        store
            .list_members(branch, &MemberFilter::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn changes_are_appended_then_compacted_and_acknowledged() {
    let (mut store, branch) = store_with_branch();
    let roster = store.branch_document(branch, DocKind::Roster).unwrap();
    let first = store.unacked_changes(roster).unwrap();
    assert!(first >= 1, "creating the roster is a local change");
    for i in 0..40 {
        store
            .add_member(branch, member(&format!("成员{i}")))
            .unwrap();
    }
    assert_eq!(store.unacked_changes(roster).unwrap(), first + 40);
    let summary = store
        .documents()
        .unwrap()
        .into_iter()
        .find(|d| d.id == roster)
        .unwrap();
    let compact = store.export(roster).unwrap().len();
    assert!(
        summary.stored_bytes <= 2 * compact + 1024,
        "chunks are compacted: {} stored for {} compacted",
        summary.stored_bytes,
        compact
    );
    // A server acknowledges up to some heads: only the changes before them.
    let doc = store.load_document(roster).unwrap();
    let mut partial = doc.clone();
    let changes = partial.get_changes(&[]);
    let tenth = changes[9].hash();
    store.mark_acknowledged(roster, &[tenth]).unwrap();
    assert_eq!(store.unacked_changes(roster).unwrap(), first + 40 - 10);
    store.mark_acknowledged(roster, &summary.heads).unwrap();
    assert_eq!(store.unacked_changes(roster).unwrap(), 0);
    let pending: usize = store
        .documents()
        .unwrap()
        .iter()
        .map(|d| d.unacked_changes)
        .sum();
    assert_eq!(store.pending_changes().unwrap(), pending);
}

#[test]
fn the_last_sync_time_is_kept_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.last_synced().unwrap(), None);
    store.record_synced(Timestamp(1_700_000_000_000)).unwrap();
    store.record_synced(Timestamp(1_700_000_600_000)).unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.last_synced().unwrap(),
        Some(Timestamp(1_700_000_600_000))
    );
}

#[test]
fn concurrent_edits_are_reported_and_can_be_settled() {
    let (mut a, branch) = store_with_branch();
    let wang = a.add_member(branch, member("王秀英")).unwrap();
    let mut b = Store::open_in_memory().unwrap();
    for doc in a.documents().unwrap() {
        b.merge(&a.export(doc.id).unwrap()).unwrap();
    }
    // Each device belongs to a member, whom its changes name.
    let (secretary, committee) = (MemberId::random(), MemberId::random());
    for (store, member) in [(&mut a, secretary), (&mut b, committee)] {
        let account = Account {
            server: "branch.example.org:4433".into(),
            cert_sha256: [0xab; 32],
            device_id: store.device_id().into(),
            secret: branchline_protocol::DeviceSecret::from_bytes([0x5e; 32]),
            branch,
            member: Some(member),
            role: branchline_protocol::Role::Committee,
            device_name: "phone".into(),
            branch_name: None,
        };
        store.save_account(&account).unwrap();
    }
    a.update_member(
        wang,
        MemberUpdate {
            phone: Some("111".into()),
            ..Default::default()
        },
    )
    .unwrap();
    b.update_member(
        wang,
        MemberUpdate {
            phone: Some("222".into()),
            ..Default::default()
        },
    )
    .unwrap();
    // A different field of the same member merges without conflict.
    b.update_member(
        wang,
        MemberUpdate {
            post: Some("宣传委员".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let roster = a.branch_document(branch, DocKind::Roster).unwrap();
    b.merge(&a.export(roster).unwrap()).unwrap();
    a.merge(&b.export(roster).unwrap()).unwrap();

    let conflicts = a.conflicts().unwrap();
    assert_eq!(conflicts, b.conflicts().unwrap());
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let c = &conflicts[0];
    assert_eq!(c.path, format!("members/{wang}/phone"));
    let mut values: Vec<_> = c
        .values
        .iter()
        .map(|v| (v.value.as_str(), v.device, v.member))
        .collect();
    values.sort();
    assert_eq!(
        values,
        vec![
            ("111", Some(a.device_id()), Some(secretary)),
            ("222", Some(b.device_id()), Some(committee))
        ]
    );
    assert_eq!(c.values.iter().filter(|v| v.winner).count(), 1);
    assert_eq!(
        a.list_members(branch, &MemberFilter::default()).unwrap()[0]
            .post
            .as_deref(),
        Some("宣传委员")
    );

    let keep = c.values.iter().position(|v| v.value == "111").unwrap();
    a.settle_conflict(roster, &c.path, keep).unwrap();
    assert!(a.conflicts().unwrap().is_empty());
    b.merge(&a.export(roster).unwrap()).unwrap();
    assert!(b.conflicts().unwrap().is_empty());
    assert_eq!(
        b.list_members(branch, &MemberFilter::default()).unwrap()[0]
            .phone
            .as_deref(),
        Some("111")
    );
    assert_eq!(
        a.settle_conflict(roster, &c.path, 0).unwrap_err().code(),
        "conflict.not_found"
    );
}

#[test]
fn bad_documents_get_typed_errors() {
    let (mut store, branch) = store_with_branch();
    assert_eq!(
        store.merge(b"not automerge at all").unwrap_err().code(),
        "doc.corrupt"
    );
    let mut headless = AutoCommit::new();
    headless.put(ROOT, "title", "no header").unwrap();
    assert_eq!(
        store.merge(&headless.save()).unwrap_err().code(),
        "doc.malformed"
    );

    let roster = store.branch_document(branch, DocKind::Roster).unwrap();
    assert_eq!(
        store.get::<Petition>(roster).unwrap_err().code(),
        "doc.wrong_kind"
    );
    assert_eq!(
        store.get::<Petition>(DocId::random()).unwrap_err().code(),
        "doc.not_found"
    );

    // A petition written by a newer schema: kept and exported untouched, not edited.
    let p = Petition::submit(branch, petition(), Timestamp(1_741_132_800_000)).unwrap();
    let mut newer = model::create_document(&p, ActorId::random()).unwrap();
    let meta = match newer.get(ROOT, "meta").unwrap() {
        Some((_, id)) => id,
        None => unreachable!("the header was just written"),
    };
    newer.put(&meta, "schema", 99u64).unwrap();
    let id = store.merge(&newer.save()).unwrap();
    let err = store
        .update(id, |p: &mut Petition| {
            p.add_progress(None, "x", Timestamp(0))
        })
        .unwrap_err();
    assert_eq!(err.code(), "doc.schema_too_new");
    assert_eq!(store.export(id).unwrap(), newer.save());
}

#[test]
fn a_document_cannot_change_its_kind_in_a_merge() {
    let (mut store, branch) = store_with_branch();
    let roster = store.branch_document(branch, DocKind::Roster).unwrap();
    let mut impostor = Petition::submit(branch, petition(), Timestamp(1_741_132_800_000)).unwrap();
    impostor.meta.id = roster;
    let bytes = model::create_document(&impostor, ActorId::random())
        .unwrap()
        .save();
    let before = store.export(roster).unwrap();
    assert_eq!(store.merge(&bytes).unwrap_err().code(), "doc.corrupt");
    let in_bulk = store.import_all([bytes.as_slice()]).unwrap_err();
    assert_eq!(in_bulk.code(), "doc.corrupt");
    assert_eq!(store.export(roster).unwrap(), before);
}

#[test]
fn fields_from_a_newer_schema_survive_edits() {
    let (mut store, branch) = store_with_branch();
    let owner = store.add_member(branch, member("陈明")).unwrap();
    let p = Petition::submit(branch, petition(), Timestamp(1_741_132_800_000)).unwrap();
    let mut doc = model::create_document(&p, ActorId::random()).unwrap();
    doc.put(ROOT, "urgency", "high").unwrap();
    let sub = doc.get(ROOT, "submitter").unwrap().unwrap().1;
    doc.put(&sub, "wechat", "zhang_dy").unwrap();
    let id = store.merge(&doc.save()).unwrap();

    store.assign_petition(id, owner, day("2025-03-20")).unwrap();
    store.add_progress(id, Some(owner), "已现场查看").unwrap();

    let after = AutoCommit::load(&store.export(id).unwrap()).unwrap();
    let urgency = after.get(ROOT, "urgency").unwrap().unwrap().0;
    assert_eq!(urgency.as_str(), Some("high"));
    let sub = after.get(ROOT, "submitter").unwrap().unwrap().1;
    assert_eq!(
        after.get(&sub, "wechat").unwrap().unwrap().0.as_str(),
        Some("zhang_dy")
    );
}

#[test]
fn files_that_are_not_stores_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "this is not a database, it is a shopping list").unwrap();
    assert_eq!(Store::open(&text).unwrap_err().code(), "store.not_a_store");
    let other = dir.path().join("other.sqlite");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE recipes (name TEXT)")
        .unwrap();
    assert_eq!(Store::open(&other).unwrap_err().code(), "store.not_a_store");
    let newer = dir.path().join("newer.sqlite");
    drop(Store::open(&newer).unwrap());
    Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    assert_eq!(Store::open(&newer).unwrap_err().code(), "store.too_new");
}

/// Every table's schema and rows, in a stable order, for comparing databases.
fn dump(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    let tables: Vec<(String, String)> = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index') AND sql IS NOT NULL ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (name, sql) in tables {
        out.push(sql.split_whitespace().collect::<Vec<_>>().join(" "));
        if sql.starts_with("CREATE TABLE") && name != "store_info" {
            let mut stmt = conn.prepare(&format!("SELECT * FROM {name}")).unwrap();
            let columns = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    Ok((0..columns)
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .map(|r| format!("{name}: {}", r.unwrap()))
                .collect();
            rows.sort();
            out.extend(rows);
        }
    }
    out
}

#[test]
fn an_upgraded_old_database_equals_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    // The same records in a fresh database…
    let fresh_path = dir.path().join("fresh.sqlite");
    let mut fresh = Store::open(&fresh_path).unwrap();
    fresh.set_clock(Box::new(|| Timestamp(1_741_132_800_000)));
    let branch = fresh
        .create_branch("幸福里第一党支部", Level::Branch, None)
        .unwrap();
    let wang = fresh.add_member(branch, member("王秀英")).unwrap();
    let a = fresh
        .create_activity(branch, activity("theme_day"))
        .unwrap();
    fresh.sign_in(a, wang, SignInMode::OnSite).unwrap();
    let p = fresh.submit_petition(branch, petition()).unwrap();
    fresh.assign_petition(p, wang, day("2025-04-01")).unwrap();
    drop(fresh);

    // …and in a database created by version 1, which had documents but no index.
    let old_path = dir.path().join("old.sqlite");
    {
        let conn = Connection::open(&old_path).unwrap();
        drop(Store::from_connection(conn, 1).unwrap());
        let conn = Connection::open(&old_path).unwrap();
        conn.execute("ATTACH ?1 AS fresh", [fresh_path.to_str().unwrap()])
            .unwrap();
        conn.execute_batch(
            "INSERT INTO documents SELECT * FROM fresh.documents;
             INSERT INTO doc_chunks SELECT * FROM fresh.doc_chunks;
             INSERT INTO unacked_changes SELECT * FROM fresh.unacked_changes;",
        )
        .unwrap();
        assert_eq!(
            conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            1
        );
    }
    let upgraded = Store::open(&old_path).unwrap();
    assert_eq!(
        upgraded
            .list_members(branch, &MemberFilter::default())
            .unwrap()
            .len(),
        1
    );
    drop(upgraded);

    let fresh_dump = dump(&Connection::open(&fresh_path).unwrap());
    let upgraded_dump = dump(&Connection::open(&old_path).unwrap());
    assert!(
        fresh_dump.iter().any(|l| l.starts_with("idx_attendance: ")),
        "the dump covers the index"
    );
    assert_eq!(upgraded_dump, fresh_dump);
}

/// The child half of [`a_write_that_returned_ok_survives_a_kill`]: write, report, die.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var("BRANCHLINE_CRASH_CHILD") else {
        return; // Only meaningful when started by the parent test.
    };
    let mut store = Store::open(&path).unwrap();
    let branch = store
        .create_branch("崩溃测试支部", Level::Branch, None)
        .unwrap();
    let wang = store.add_member(branch, member("王秀英")).unwrap();
    println!("WROTE {branch} {wang}");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    // No destructors, no clean close of SQLite: as if the phone's OS killed the app.
    std::process::abort();
}

#[test]
fn a_write_that_returned_ok_survives_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::tests::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BRANCHLINE_CRASH_CHILD", &path)
        .output()
        .unwrap();
    assert!(!output.status.success(), "the child must die, not exit");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("WROTE ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("child wrote nothing: {stdout}"));
    let (branch, wang) = line.split_once(' ').unwrap();
    let store = Store::open(&path).unwrap();
    let members = store
        .list_members(branch.parse().unwrap(), &MemberFilter::default())
        .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].id, wang.parse().unwrap());
}

// --- sync support ----------------------------------------------------------------------

use automerge::sync::{self, SyncDoc};

/// Runs automerge sync between the server's copy of document `id` and the store
/// until neither side has anything to say; returns what each applied message did.
fn sync_with(store: &mut Store, id: DocId, theirs: &mut AutoCommit) -> Vec<Applied> {
    let (mut ours, mut their_state) = (sync::State::new(), sync::State::new());
    let mut applied = Vec::new();
    loop {
        let to_them = store.generate_sync_message(id, &mut ours).unwrap();
        if let Some(m) = to_them.clone() {
            theirs
                .sync()
                .receive_sync_message(&mut their_state, m)
                .unwrap();
        }
        let to_us = theirs.sync().generate_sync_message(&mut their_state);
        if let Some(m) = to_us.clone() {
            applied.push(
                store
                    .apply_sync_message("peer", id, None, &mut ours, m)
                    .unwrap(),
            );
        }
        if to_them.is_none() && to_us.is_none() {
            return applied;
        }
    }
}

fn roster_with(names: &[&str]) -> (Roster, AutoCommit) {
    let mut roster = Roster::new(BranchId::random());
    for name in names {
        roster.add_member(member(name)).unwrap();
    }
    let doc = model::create_document(&roster, ActorId::random()).unwrap();
    (roster, doc)
}

#[test]
fn a_document_arrives_by_sync_stored_and_indexed() {
    let mut store = Store::open_in_memory().unwrap();
    let (roster, mut theirs) = roster_with(&["王秀英", "李建国"]);
    let id = roster.meta.id;
    let applied = sync_with(&mut store, id, &mut theirs);
    assert!(applied.iter().any(|a| a.created && a.changed));
    assert_eq!(store.heads(id).unwrap(), Some(theirs.get_heads()));
    let listed = store
        .list_members(roster.meta.branch, &MemberFilter::default())
        .unwrap();
    assert_eq!(listed.len(), 2);
    // Received changes are not ours to have acknowledged.
    assert!(store.unacknowledged().unwrap().is_empty());
    let manifest = store.manifest().unwrap();
    let entry = manifest.get(id.into()).unwrap();
    assert_eq!(entry.kind, "roster");
    assert_eq!(entry.heads, wire_heads(&theirs.get_heads()));
}

#[test]
fn changes_without_a_header_wait_until_it_arrives() {
    let mut store = Store::open_in_memory().unwrap();
    let (roster, _) = roster_with(&["王秀英"]);
    let id = roster.meta.id;
    // The server's first changes to the document carry no header yet.
    let mut theirs = AutoCommit::new();
    theirs.put(ROOT, "note", "header follows").unwrap();
    theirs.commit();
    let applied = sync_with(&mut store, id, &mut theirs);
    assert!(applied.iter().any(|a| a.pending));
    assert!(
        store.documents().unwrap().is_empty(),
        "never stored headerless"
    );
    assert!(store.manifest().unwrap().is_empty());
    assert_eq!(store.heads(id).unwrap(), None);

    autosurgeon::reconcile(&mut theirs, &roster).unwrap();
    theirs.commit();
    let applied = sync_with(&mut store, id, &mut theirs);
    assert!(applied.iter().any(|a| a.created));
    assert_eq!(store.heads(id).unwrap(), Some(theirs.get_heads()));
    let doc = store.load_document(id).unwrap();
    assert!(
        doc.get(ROOT, "note").unwrap().is_some(),
        "the early changes kept"
    );
    let pending: i64 = store
        .conn
        .query_row("SELECT count(*) FROM sync_pending", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 0);
}

#[test]
fn changes_missing_their_dependencies_wait_for_them() {
    let (mut store, branch) = store_with_branch();
    let id = store.branch_document(branch, DocKind::Roster).unwrap();
    let mut theirs = store.load_document(id).unwrap();
    theirs.set_actor(ActorId::random());
    let before = theirs.get_heads();
    model::edit(&mut theirs, |r: &mut Roster| r.add_member(member("陈海燕"))).unwrap();
    theirs.commit();
    model::edit(&mut theirs, |r: &mut Roster| r.add_member(member("赵春生"))).unwrap();
    theirs.commit();
    let changes = theirs.get_changes(&before);
    assert_eq!(changes.len(), 2);
    let heads = theirs.get_heads();
    let message = |change: &automerge::Change| sync::Message {
        heads: heads.clone(),
        need: Vec::new(),
        have: Vec::new(),
        changes: vec![change.raw_bytes().to_vec()].into(),
        flags: None,
        version: sync::MessageVersion::V1,
    };
    let (second, first) = (message(&changes[1]), message(&changes[0]));
    let mut state = sync::State::new();

    // The second change first: it cannot apply yet, so it waits.
    let applied = store
        .apply_sync_message("peer", id, None, &mut state, second)
        .unwrap();
    assert!(applied.pending && !applied.changed);
    assert_eq!(store.heads(id).unwrap(), Some(before));

    let applied = store
        .apply_sync_message("peer", id, None, &mut state, first)
        .unwrap();
    assert!(applied.changed && !applied.pending);
    assert_eq!(store.heads(id).unwrap(), Some(theirs.get_heads()));
    let listed = store
        .list_members(branch, &MemberFilter::default())
        .unwrap();
    assert_eq!(listed.len(), 2);
}

#[test]
fn sync_changes_to_a_header_are_refused_and_nothing_is_written() {
    let (mut store, branch) = store_with_branch();
    let id = store.branch_document(branch, DocKind::Roster).unwrap();
    let mut theirs = store.load_document(id).unwrap();
    theirs.set_actor(ActorId::random());
    let (_, meta) = theirs.get(ROOT, "meta").unwrap().unwrap();
    theirs
        .put(&meta, "branch", BranchId::random().to_string())
        .unwrap();
    theirs.commit();
    let before = store.export(id).unwrap();

    let mut ours = sync::State::new();
    let mut their_state = sync::State::new();
    let hello = store.generate_sync_message(id, &mut ours).unwrap().unwrap();
    theirs
        .sync()
        .receive_sync_message(&mut their_state, hello)
        .unwrap();
    let reply = theirs
        .sync()
        .generate_sync_message(&mut their_state)
        .unwrap();
    let refused = ours.clone();
    let err = store
        .apply_sync_message("peer", id, None, &mut ours, reply)
        .unwrap_err();
    assert_eq!(err.code(), "doc.invalid_header");
    assert_eq!(ours, refused, "the sync state is left as it was");
    assert_eq!(store.export(id).unwrap(), before);
    assert_eq!(
        store.sync_state("peer", id).unwrap(),
        sync::State::new(),
        "no state saved"
    );

    // A new document that names another id than it arrived as is refused too.
    let (roster, mut impostor) = roster_with(&["王秀英"]);
    let other = DocId::random();
    let mut state = sync::State::new();
    let hello = store
        .generate_sync_message(other, &mut state)
        .unwrap()
        .unwrap();
    let mut their_state = sync::State::new();
    impostor
        .sync()
        .receive_sync_message(&mut their_state, hello)
        .unwrap();
    let reply = impostor
        .sync()
        .generate_sync_message(&mut their_state)
        .unwrap();
    let err = store
        .apply_sync_message("peer", other, Some("roster"), &mut state, reply)
        .unwrap_err();
    assert_eq!(err.code(), "doc.invalid_header");
    assert_eq!(store.heads(roster.meta.id).unwrap(), None);
    assert_eq!(store.heads(other).unwrap(), None);
}

#[test]
fn sync_states_are_kept_per_peer_and_unreadable_ones_start_afresh() {
    let (mut store, branch) = store_with_branch();
    let id = store.branch_document(branch, DocKind::Roster).unwrap();
    assert_eq!(store.sync_state("a", id).unwrap(), sync::State::new());
    let state = sync::State {
        shared_heads: store.heads(id).unwrap().unwrap(),
        ..sync::State::new()
    };
    store.save_sync_state("a", id, &state).unwrap();
    assert_eq!(
        store.sync_state("a", id).unwrap().shared_heads,
        state.shared_heads
    );
    assert_eq!(store.sync_state("b", id).unwrap(), sync::State::new());
    store
        .conn
        .execute("UPDATE sync_states SET state = x'00ff'", [])
        .unwrap();
    assert_eq!(store.sync_state("a", id).unwrap(), sync::State::new());
}

#[test]
fn the_account_is_kept_and_forgotten_and_never_shows_its_secret() {
    use branchline_protocol::{DeviceSecret, Role};
    let mut store = Store::open_in_memory().unwrap();
    assert_eq!(store.account().unwrap(), None);
    let account = Account {
        server: "branch.example.org:4433".into(),
        cert_sha256: [0xab; 32],
        device_id: branchline_protocol::DeviceId::new_random(),
        secret: DeviceSecret::from_bytes([0x5e; 32]),
        branch: BranchId::random(),
        member: Some(MemberId::random()),
        role: Role::Committee,
        device_name: "王秀英的手机".into(),
        branch_name: Some("幸福里第一党支部".into()),
    };
    store.save_account(&account).unwrap();
    assert_eq!(store.account().unwrap(), Some(account.clone()));
    let promoted = Account {
        role: Role::Secretary,
        member: None,
        ..account.clone()
    };
    store.save_account(&promoted).unwrap();
    assert_eq!(store.account().unwrap(), Some(promoted));
    let shown = format!("{account:?}");
    assert!(!shown.contains("5e5e"), "{shown}");
    assert!(!shown.contains("94, 94"), "{shown}");
    assert!(shown.contains("<redacted>"));
    store.forget_account().unwrap();
    assert_eq!(store.account().unwrap(), None);
}

#[test]
fn a_revoked_device_remembers_who_it_was_and_refuses_writes_until_it_enrolls_again() {
    use branchline_protocol::{DeviceSecret, Role};
    let (mut store, branch) = store_with_branch();
    store.set_clock(Box::new(|| Timestamp(1_741_132_800_000)));
    let wang = store.add_member(branch, member("王秀英")).unwrap();
    assert_eq!(store.revocation().unwrap(), None);
    store.require_writable().unwrap();
    let account = Account {
        server: "branch.example.org:4433".into(),
        cert_sha256: [0xab; 32],
        device_id: store.device_id().into(),
        secret: DeviceSecret::from_bytes([0x5e; 32]),
        branch,
        member: None,
        role: Role::Secretary,
        device_name: "书记的电脑".into(),
        branch_name: Some("幸福里第一党支部".into()),
    };
    store.save_account(&account).unwrap();

    store.forget_account().unwrap();
    assert_eq!(store.account().unwrap(), None);
    let revoked = store.revocation().unwrap().expect("the revocation is kept");
    assert_eq!(revoked.device_id, account.device_id);
    assert_eq!(revoked.branch, branch);
    assert_eq!(revoked.branch_name.as_deref(), Some("幸福里第一党支部"));
    assert_eq!(revoked.revoked_at, Timestamp(1_741_132_800_000));
    let refused = store.require_writable().unwrap_err();
    assert_eq!(refused.code(), "auth.device_revoked");
    // The records are still there to read.
    let members = store
        .list_members(branch, &MemberFilter::default())
        .unwrap();
    assert_eq!(members.iter().map(|m| m.id).collect::<Vec<_>>(), [wang]);

    // Enrolling again ends it.
    store.save_account(&account).unwrap();
    assert_eq!(store.revocation().unwrap(), None);
    store.require_writable().unwrap();
}

#[test]
fn the_change_listener_hears_local_changes_only() {
    let (mut store, branch) = store_with_branch();
    let (tx, rx) = std::sync::mpsc::channel();
    store.set_change_listener(Some(Box::new(move |id| tx.send(id).unwrap())));
    let roster = store.branch_document(branch, DocKind::Roster).unwrap();
    store.add_member(branch, member("王秀英")).unwrap();
    let p = store.submit_petition(branch, petition()).unwrap();
    // An operation that changes nothing is not a change.
    store.update(p, |_: &mut Petition| Ok(())).unwrap();
    // Neither is a merge of changes from elsewhere.
    let (_, mut other) = roster_with(&["李建国"]);
    store.merge(&other.save()).unwrap();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![roster, p]);
    store.set_change_listener(None);
    store.add_member(branch, member("赵春生")).unwrap();
}

#[test]
fn replayable_writes_leave_local_edits_fully_synchronous() {
    let (mut store, branch) = store_with_branch();
    let synchronous = |store: &Store| -> i64 {
        store
            .conn()
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap()
    };
    const FULL: i64 = 2;
    assert_eq!(synchronous(&store), FULL);
    let roster = store.branch_document(branch, DocKind::Roster).unwrap();
    let heads = store.heads(roster).unwrap().unwrap();
    store.mark_acknowledged(roster, &heads).unwrap();
    store
        .save_sync_state("peer", roster, &automerge::sync::State::new())
        .unwrap();
    // An error inside restores it too.
    assert!(
        store
            .receive_documents(vec![(roster, None, b"not a document".to_vec())])
            .unwrap()[0]
            .1
            .is_err()
    );
    assert_eq!(synchronous(&store), FULL);
}

#[test]
fn a_document_kept_parsed_never_hides_another_connections_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut first = Store::open(&path).unwrap();
    let branch = first.create_branch("幸福里", Level::Branch, None).unwrap();
    let wang = first.add_member(branch, member("王秀英")).unwrap();
    let roster = first.branch_document(branch, DocKind::Roster).unwrap();
    // Parsed and kept by the first store…
    let before: Roster = first.get(roster).unwrap();
    assert_eq!(before.members.len(), 1);

    // …while a second connection to the same file edits it.
    let mut second = Store::open(&path).unwrap();
    let li = second.add_member(branch, member("李强")).unwrap();

    let after: Roster = first.get(roster).unwrap();
    assert!(
        after.member(li).is_ok(),
        "the other connection's member shows"
    );
    let phone = MemberUpdate {
        phone: Some("13800000000".into()),
        ..Default::default()
    };
    first.update_member(wang, phone).unwrap();
    let merged: Roster = second.get(roster).unwrap();
    assert!(merged.member(li).is_ok());
    assert_eq!(
        merged.member(wang).unwrap().phone.as_deref(),
        Some("13800000000")
    );
}

/// A branch meeting (14:30 to 16:30) on two devices, `a` and `b`, both offline.
fn meeting_on_two_devices() -> (Store, Store, DocId) {
    let (mut a, branch) = store_with_branch();
    let id = a
        .create_activity(branch, activity("branch_meeting"))
        .unwrap();
    let mut b = Store::open_in_memory().unwrap();
    b.merge(&a.export(id).unwrap()).unwrap();
    (a, b, id)
}

fn at(text: &str) -> model::LocalDateTime {
    text.parse().unwrap()
}

fn reschedule(store: &mut Store, id: DocId, starts: &str, ends: &str) {
    store
        .update(id, |activity: &mut model::Activity| {
            activity.reschedule(at(starts), at(ends))
        })
        .unwrap();
}

/// Where value `text` is in the list of values of the conflict at `path`.
fn conflict_value(store: &Store, path: &str, text: &str) -> usize {
    let conflicts = store.conflicts().unwrap();
    let conflict = conflicts
        .iter()
        .find(|c| c.path == path)
        .unwrap_or_else(|| panic!("no conflict on {path}: {conflicts:?}"));
    conflict
        .values
        .iter()
        .position(|v| v.value.contains(text))
        .unwrap_or_else(|| panic!("no value {text} at {path}: {conflict:?}"))
}

#[test]
fn settling_one_time_keeps_the_other_its_writer_set() {
    let (mut a, mut b, id) = meeting_on_two_devices();
    // Moved offline on both devices: to the morning on one, the evening on the other.
    reschedule(&mut a, id, "2025-03-05T09:00", "2025-03-05T11:00");
    reschedule(&mut b, id, "2025-03-05T18:00", "2025-03-05T20:00");
    a.merge(&b.export(id).unwrap()).unwrap();
    // Keeping the evening start keeps the evening end that came with it.
    let evening = conflict_value(&a, "starts_at", "18:00");
    a.settle_conflict(id, "starts_at", evening).unwrap();
    let settled: model::Activity = a.get(id).unwrap();
    assert_eq!(settled.starts_at, at("2025-03-05T18:00"));
    assert_eq!(settled.ends_at, at("2025-03-05T20:00"));
    assert!(a.conflicts().unwrap().is_empty());
}

#[test]
fn an_edit_that_moves_only_the_end_keeps_its_start_in_a_merge() {
    let (mut a, mut b, id) = meeting_on_two_devices();
    // One device moves the meeting later; the other only shortens it. Its edit
    // writes the unchanged start too, so the merge keeps one of the two whole.
    reschedule(&mut a, id, "2025-03-05T17:00", "2025-03-05T18:00");
    reschedule(&mut b, id, "2025-03-05T14:30", "2025-03-05T15:00");
    a.merge(&b.export(id).unwrap()).unwrap();
    b.merge(&a.export(id).unwrap()).unwrap();
    let (merged, other): (model::Activity, model::Activity) =
        (a.get(id).unwrap(), b.get(id).unwrap());
    assert_eq!(
        (merged.starts_at, merged.ends_at),
        (other.starts_at, other.ends_at)
    );
    assert!(
        [
            (at("2025-03-05T17:00"), at("2025-03-05T18:00")),
            (at("2025-03-05T14:30"), at("2025-03-05T15:00")),
        ]
        .contains(&(merged.starts_at, merged.ends_at)),
        "{merged:?}"
    );
    // Both keys are in conflict, and the short end settles with its start.
    let early = conflict_value(&a, "ends_at", "15:00");
    a.settle_conflict(id, "ends_at", early).unwrap();
    let settled: model::Activity = a.get(id).unwrap();
    assert_eq!(
        (settled.starts_at, settled.ends_at),
        (at("2025-03-05T14:30"), at("2025-03-05T15:00"))
    );
    assert!(a.conflicts().unwrap().is_empty());
}

#[test]
fn settling_a_time_cannot_end_an_activity_before_it_starts() {
    let (mut a, b, id) = meeting_on_two_devices();
    reschedule(&mut a, id, "2025-03-05T17:00", "2025-03-05T18:00");
    // An older build wrote the end alone.
    let mut old_build = b.load_document(id).unwrap();
    old_build.set_actor(automerge::ActorId::random());
    automerge::transaction::Transactable::put(
        &mut old_build,
        automerge::ROOT,
        "ends_at",
        "2025-03-05T15:00",
    )
    .unwrap();
    a.merge(&old_build.save()).unwrap();
    let early = conflict_value(&a, "ends_at", "15:00");
    let refused = a.settle_conflict(id, "ends_at", early).unwrap_err();
    assert_eq!(refused.code(), "activity.end_before_start");
    let late = conflict_value(&a, "ends_at", "18:00");
    a.settle_conflict(id, "ends_at", late).unwrap();
    let settled: model::Activity = a.get(id).unwrap();
    assert_eq!(settled.ends_at, at("2025-03-05T18:00"));
}
