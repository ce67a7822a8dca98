//! Two server nodes on one PostgreSQL database: devices on different nodes
//! converge, a live edit crosses from one node to the other through the
//! database's change notices, a device whose node is SIGKILLed mid-sync
//! finishes on the other with nothing acknowledged lost, PostgreSQL itself
//! dies and restarts under both devices' pushes, the restarted node
//! serves again, and an invite or a revocation made through one node holds
//! on the other.
//!
//! The database is a private cluster this test starts (initdb and pg_ctl
//! of Debian's `postgresql` package, `scripts/install-postgres.sh`).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use branchline_core::model::{Activity, Level, NewActivity};
use branchline_core::net::{ClientConfig, Status};
use branchline_core::{BranchId, DocId};
use branchline_protocol::{ErrorCode, InviteLink, Role};
use branchline_server::Admin;
use branchline_server::pg_cluster::TempCluster;
use branchline_tests::{Device, ServerProcess, acknowledged, free_udp_addr};

const SERVER: &str = env!("CARGO_BIN_EXE_branchline-test-server");

fn meeting(title: &str) -> NewActivity {
    branchline_tests::meeting("branch_meeting", title, "2026-11-20")
}

/// Quick to notice a dead node: the keep-alive and idle timeout of a phone
/// app are longer, which only makes it slower to move on.
fn config() -> ClientConfig {
    ClientConfig {
        keep_alive: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(2),
        ..branchline_tests::client_config()
    }
}

/// A node's data directory: only the database's address. The TLS identity
/// every node presents (the certificate invites pin) is the one the
/// database holds.
fn node_dir(first: &Path) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::copy(first.join("database.url"), dir.path().join("database.url"))?;
    Ok(dir)
}

/// The invite naming the nodes, in the order the device tries them.
fn at(mut invite: InviteLink, nodes: &[&str]) -> InviteLink {
    invite.server = nodes.join(",");
    invite
}

/// Both devices hold the same documents with the same heads.
async fn converged(a: &Device, b: &Device) -> Result<()> {
    let deadline = tokio::time::Instant::now() + branchline_tests::PATIENCE;
    loop {
        a.wait_in_sync().await?;
        b.wait_in_sync().await?;
        let (left, right) = (a.heads()?, b.heads()?);
        if left == right {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let differ: Vec<_> = left
                .iter()
                .filter(|doc| !right.contains(doc))
                .map(|(id, _)| format!("{id} differs on {}", a.name))
                .chain(
                    right
                        .iter()
                        .filter(|doc| !left.contains(doc))
                        .map(|(id, _)| format!("{id} differs on {}", b.name)),
                )
                .collect();
            anyhow::bail!(
                "{} and {} did not converge: {} vs {} documents; {}",
                a.name,
                b.name,
                left.len(),
                right.len(),
                differ.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn title(device: &Device, id: DocId) -> Option<String> {
    device.store().get::<Activity>(id).ok().map(|a| a.title)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_converge_and_survive_a_node_kill() -> Result<()> {
    branchline_tests::init_tracing();
    let mut cluster = TempCluster::start()?;
    let first = tempfile::tempdir()?;
    std::fs::write(first.path().join("database.url"), cluster.url())?;
    let admin = Admin::open(first.path())?;
    let branch: BranchId = admin.add_branch("Riverside", Level::Branch, None)?;
    let invite = |role| admin.create_invite(branch, role, None, Duration::from_secs(3600));
    let (invite_a, invite_b, invite_c, invite_e) = (
        invite(Role::Secretary)?,
        invite(Role::Committee)?,
        invite(Role::Committee)?,
        invite(Role::Secretary)?,
    );
    drop(admin);
    let second = node_dir(first.path())?;
    let (listen_1, listen_2) = (free_udp_addr()?, free_udp_addr()?);
    let node_1 = ServerProcess::start(SERVER, first.path(), &listen_1)?;
    let node_2 = ServerProcess::start(SERVER, second.path(), &listen_2)?;

    // A prefers node 1, B uses node 2 only.
    let a = Device::start("A", at(invite_a, &[&listen_1, &listen_2]), config())?;
    let b = Device::start("B", at(invite_b, &[&listen_2]), config())?;
    a.wait_in_sync().await?;
    b.wait_in_sync().await?;

    // Offline on both sides, then back: one history.
    a.go_offline().await?;
    b.go_offline().await?;
    let shared = a
        .store()
        .create_activity(branch, meeting("March meeting"))?;
    let from_b = b.store().create_activity(branch, meeting("Cleanup day"))?;
    b.store().write_minutes(from_b, "Twelve volunteers came.")?;
    a.go_online().await?;
    b.go_online().await?;
    converged(&a, &b).await.context("after the offline edits")?;

    // B edits the shared activity through node 2, which so holds it in
    // memory; A sees the edit through node 1.
    b.store()
        .write_minutes(shared, "Agenda: the spring cleanup.")?;
    a.eventually("B's minutes", |store| {
        store
            .get::<Activity>(shared)
            .is_ok_and(|a| a.minutes.as_str().contains("spring cleanup"))
    })
    .await?;

    // Live: A's edit on node 1 reaches B on node 2 while B only listens,
    // though node 2 had the activity loaded from before the edit.
    let connections = b.client().report().connections;
    a.store().update(shared, |activity: &mut Activity| {
        activity.title = "March branch meeting".to_owned();
        Ok(())
    })?;
    b.eventually("A's live rename", |store| {
        store
            .get::<Activity>(shared)
            .is_ok_and(|a| a.title == "March branch meeting")
    })
    .await?;
    assert_eq!(
        b.client().report().connections,
        connections,
        "B got the edit on the connection it had, not by reconnecting"
    );

    // Node 1 dies under A's pushes; A finishes on node 2.
    let mut written = Vec::new();
    for n in 0..40 {
        let id = a
            .store()
            .create_activity(branch, meeting(&format!("Visit {n}")))?;
        a.store()
            .write_minutes(id, &format!("Minutes of visit {n}"))?;
        written.push(id);
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    let acked_before_kill = acknowledged(&a)?;
    node_1.kill()?;
    println!(
        "node 1 killed with {} of A's {} documents acknowledged",
        acked_before_kill.len(),
        a.store().documents()?.len()
    );
    converged(&a, &b).await.context("after node 1 died")?;
    let on_b = b.heads()?;
    for (doc, heads) in &acked_before_kill {
        let kept = on_b.iter().find(|(id, _)| id == doc);
        assert!(
            kept.is_some_and(|(_, now)| heads.iter().all(|h| now.contains(h))),
            "{doc}, acknowledged before the kill, is missing changes on node 2"
        );
    }
    assert!(written.iter().all(|id| title(&b, *id).is_some()));

    // Node 1 comes back while A writes on node 2.
    let node_1 = ServerProcess::start(SERVER, first.path(), &listen_1)?;
    for n in 0..20 {
        a.store()
            .create_activity(branch, meeting(&format!("Training {n}")))?;
    }
    converged(&a, &b).await.context("after node 1 came back")?;

    // PostgreSQL dies under both devices' pushes and comes back: both nodes
    // recover, and every change acknowledged before it died is still there.
    for n in 0..24 {
        a.store()
            .create_activity(branch, meeting(&format!("Survey {n}")))?;
        b.store()
            .create_activity(branch, meeting(&format!("Patrol {n}")))?;
    }
    tokio::time::sleep(Duration::from_millis(40)).await;
    let acked = [acknowledged(&a)?, acknowledged(&b)?];
    cluster.kill()?;
    let mut while_down = Vec::new();
    for n in 0..8 {
        while_down.push(a.store().create_activity(
            branch,
            meeting(&format!("Written while the database was down {n}")),
        )?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart()?;
    converged(&a, &b)
        .await
        .context("after PostgreSQL restarted")?;
    println!(
        "PostgreSQL killed with {} of A's and {} of B's documents acknowledged",
        acked[0].len(),
        acked[1].len()
    );
    for device in [&a, &b] {
        let now = device.heads()?;
        for (doc, heads) in acked.iter().flatten() {
            assert!(
                now.iter()
                    .any(|(id, held)| id == doc && heads.iter().all(|h| held.contains(h))),
                "{doc}, acknowledged before PostgreSQL died, is missing changes on {}",
                device.name
            );
        }
    }
    assert!(while_down.iter().all(|id| title(&b, *id).is_some()));

    // Both nodes serve again: C joins through node 1 only and gets it all,
    // and its edit reaches B on node 2 live.
    let c = Device::start("C", at(invite_c, &[&listen_1]), config())?;
    c.wait_in_sync().await?;
    converged(&a, &c).await.context("C through node 1")?;
    let from_c = c
        .store()
        .create_activity(branch, meeting("Reading group"))?;
    b.eventually("C's activity through node 1", |store| {
        store.get::<Activity>(from_c).is_ok()
    })
    .await?;

    // What one node grants or takes away holds on the other: an invite a
    // secretary E asks node 2 for enrolls D through node 1, and E's
    // revocation of C, made through node 2, cuts C off on node 1.
    let e = Device::start("E", at(invite_e, &[&listen_2]), config())?;
    e.wait_in_sync().await?;
    let (link, _) = e
        .client()
        .create_invite(Role::Member, None, Duration::from_secs(600))
        .await?;
    let d = Device::start("D", at(link, &[&listen_1]), config())?;
    d.wait_in_sync()
        .await
        .context("D enrolled through node 1")?;
    let c_id = c.store().account()?.context("C's account")?.device_id;
    e.client().revoke_device(c_id).await?;
    let status = c
        .client()
        .wait_for_status(branchline_tests::PATIENCE, |s| {
            matches!(s, Status::Refused { .. })
        })
        .await?;
    assert_eq!(
        status,
        Status::Refused {
            code: ErrorCode::DeviceRevoked
        },
        "C, on node 1, is refused after its revocation through node 2"
    );
    drop(node_1);
    drop(node_2);
    Ok(())
}
