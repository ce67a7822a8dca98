//! Devices of one branch sync through a real server: offline edits merge in
//! either order, live edits arrive without polling, late joiners get
//! everything, and a reconnect with nothing new costs one round trip.

use anyhow::Result;
use branchline_core::model::{Category, Gender, NewActivity, NewMember, NewPetition, SignInMode};
use branchline_core::model::{Date, DocKind, LocalDateTime, Roster};
use branchline_core::{BranchId, MemberId, Store};
use branchline_protocol::Role;
use branchline_tests::{Device, TestServer, assert_converged};

fn member(name: &str) -> NewMember {
    NewMember {
        name: name.to_owned(),
        gender: Some(Gender::Female),
        birth_date: "1970-03-01".parse::<Date>().ok(),
        joined: "1995-07-01".parse::<Date>().ok(),
        category: Some(Category::Full),
        ..NewMember::default()
    }
}

fn meeting(title: &str) -> NewActivity {
    NewActivity {
        kind: "branch_meeting".to_owned(),
        title: title.to_owned(),
        starts_at: "2026-11-20T19:00".parse::<LocalDateTime>().ok(),
        ends_at: "2026-11-20T21:00".parse::<LocalDateTime>().ok(),
        place: Some("Village hall".to_owned()),
        ..NewActivity::default()
    }
}

fn has_member(store: &Store, branch: BranchId, id: MemberId) -> bool {
    store
        .branch_document(branch, DocKind::Roster)
        .and_then(|roster| store.get::<Roster>(roster))
        .is_ok_and(|roster| roster.members.contains_key(&id.to_string()))
}

/// Two committee devices of a fresh branch, both in sync.
async fn two_devices(server: &TestServer) -> Result<(BranchId, Device, Device)> {
    let branch = server.branch("Riverside")?;
    let a = server
        .device("secretary phone", branch, Role::Secretary, None)
        .await?;
    let b = server
        .device("committee phone", branch, Role::Committee, None)
        .await?;
    Ok((branch, a, b))
}

async fn offline_edits_converge(a_first: bool) -> Result<()> {
    let server = TestServer::start().await?;
    let (branch, a, b) = two_devices(&server).await?;

    // A shared starting point: one member and one meeting, synced to both.
    let wang = a.store().add_member(branch, member("Wang Fang"))?;
    let activity = a
        .store()
        .create_activity(branch, meeting("November meeting"))?;
    a.wait_in_sync().await?;
    b.eventually("the meeting", |s| {
        s.get::<branchline_core::model::Activity>(activity).is_ok()
    })
    .await?;

    a.go_offline().await?;
    b.go_offline().await?;

    // Offline on A: a new member, a sign-in, a petition.
    let li = a.store().add_member(branch, member("Li Na"))?;
    a.store().sign_in(activity, wang, SignInMode::OnSite)?;
    let petition = a.store().submit_petition(
        branch,
        NewPetition {
            category: "roads".to_owned(),
            title: "Pothole".to_owned(),
            description: "Pothole by the school gate".to_owned(),
            ..NewPetition::default()
        },
    )?;
    // Offline on B: another member, minutes, a sign-in for the new member B
    // does not know yet is impossible, so B signs in Wang too (same fact).
    let zhao = b.store().add_member(branch, member("Zhao Lei"))?;
    b.store()
        .write_minutes(activity, "Discussed the road repairs.")?;
    b.store().sign_in(activity, wang, SignInMode::Remote)?;

    let (first, second) = if a_first { (&a, &b) } else { (&b, &a) };
    first.go_online().await?;
    second.go_online().await?;
    first.client().sync_now();
    first.wait_in_sync().await?;
    // The first device hears about the second's changes live.
    let expected_members = 3;
    for device in [&a, &b] {
        device
            .eventually("all members", |s| {
                s.list_members(branch, &Default::default())
                    .map(|m| m.len() == expected_members)
                    .unwrap_or(false)
            })
            .await?;
        device
            .eventually("the petition", |s| {
                s.get::<branchline_core::model::Petition>(petition).is_ok()
            })
            .await?;
    }
    a.wait_in_sync().await?;
    b.wait_in_sync().await?;
    assert_converged(&server, &[&a, &b])?;

    let seen_by_b = b
        .store()
        .get::<branchline_core::model::Activity>(activity)?;
    assert!(seen_by_b.sign_ins.contains_key(&wang.to_string()));
    assert_eq!(seen_by_b.minutes.as_str(), "Discussed the road repairs.");
    for id in [wang, li, zhao] {
        assert!(
            has_member(&b.store(), branch, id),
            "member {id} missing on B"
        );
    }

    // A third device enrolled later receives everything.
    let c = server
        .device("new member phone", branch, Role::Committee, None)
        .await?;
    assert_converged(&server, &[&a, &b, &c])?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_converge_when_a_reconnects_first() -> Result<()> {
    offline_edits_converge(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_converge_when_b_reconnects_first() -> Result<()> {
    offline_edits_converge(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_on_one_device_appears_on_the_other_without_polling() -> Result<()> {
    let server = TestServer::start().await?;
    let (branch, a, b) = two_devices(&server).await?;
    let mut events = b.client().subscribe();

    let wang = a.store().add_member(branch, member("Wang Fang"))?;
    // B never calls sync_now: the server's notice makes it pull.
    b.eventually("the new member", |s| has_member(s, branch, wang))
        .await?;
    let mut pulled = false;
    while let Ok(event) = events.try_recv() {
        pulled |= matches!(
            event,
            branchline_core::net::ClientEvent::Sync(branchline_core::sync::SyncEvent::DocUpdated(
                _
            ))
        );
    }
    assert!(pulled, "B should report the pulled document");
    assert_eq!(b.client().report().connections, 1, "no reconnect needed");
    Ok(())
}

/// The id a device writes under (the actor a conflict names) is the id the
/// server enrolled it as, which `devices list` and `revoke` take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_has_one_id_on_both_sides() -> Result<()> {
    let server = TestServer::start().await?;
    let (branch, a, _b) = two_devices(&server).await?;
    let account = a.store().account()?.expect("enrolled");
    let local = a.store().device_id();
    assert_eq!(account.device_id.as_bytes(), local.as_bytes());
    let listed = server.admin().devices(Some(branch))?;
    assert!(
        listed
            .iter()
            .any(|d| d.device_id.as_bytes() == local.as_bytes()),
        "devices list names the device by the id it writes under"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_survives_a_change_of_network_address() -> Result<()> {
    let server = TestServer::start().await?;
    let (branch, a, b) = two_devices(&server).await?;
    a.client().network_changed();
    let wang = a.store().add_member(branch, member("Wang Fang"))?;
    a.wait_in_sync().await?;
    b.eventually("the new member", |s| has_member(s, branch, wang))
        .await?;
    assert_eq!(
        a.client().report().connections,
        1,
        "migrated, not reconnected"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_nothing_changed_over_1000_documents_is_one_round_trip() -> Result<()> {
    let server = TestServer::start().await?;
    let branch = server.branch("Big branch")?;
    let mut a = server
        .device("secretary phone", branch, Role::Secretary, None)
        .await?;
    {
        let mut store = a.store();
        for n in 0..998 {
            store.create_activity(branch, meeting(&format!("Meeting {n}")))?;
        }
    }
    a.wait_in_sync().await?;
    assert_eq!(a.store().documents()?.len(), 1000);

    a.reopen().await?;
    let report = a.client().report();
    let bytes = report.frame_bytes_sent + report.frame_bytes_received;
    println!(
        "no-change reconnect over 1000 documents: {} manifest round trips, {} docs synced, \
         {bytes} frame bytes ({} sent, {} received), {} UDP bytes after the handshake, \
         {} UDP bytes with it, in sync after {:?}",
        report.manifest_round_trips,
        report.docs_synced,
        report.frame_bytes_sent,
        report.frame_bytes_received,
        report.udp_bytes_after_handshake,
        report.udp_bytes_sent + report.udp_bytes_received,
        report.to_in_sync,
    );
    assert_eq!(report.manifest_round_trips, 1, "the digests agree at once");
    assert_eq!(report.docs_synced, 0);
    assert!(bytes <= 2048, "{bytes} bytes on the wire");
    // The QUIC and TLS handshake dominates (≈ 4.7 KB: both sides pad their Initial
    // datagrams to 1,200 B); with path-MTU probes it was 15.6 KB.
    let udp = report.udp_bytes_sent + report.udp_bytes_received;
    assert!(udp <= 8 * 1024, "{udp} UDP bytes, handshake included");

    // A new device gets all of them whole, in a few bundles, with no sync streams.
    let b = server
        .device("committee phone", branch, Role::Committee, None)
        .await?;
    b.wait_in_sync().await?;
    assert_eq!(b.store().documents()?.len(), 1000);
    let report = b.client().report();
    assert_eq!(report.docs_received_whole, 1000);
    assert_eq!(report.docs_synced, 0);
    let stored: usize = a.store().documents()?.iter().map(|d| d.stored_bytes).sum();
    let received = report.frame_bytes_received as usize;
    println!("first sync of 1000 documents: {received} frame bytes received, {stored} stored");
    assert!(
        received < stored,
        "{received} B received for {stored} B of documents"
    );
    Ok(())
}
