//! The server killed with SIGKILL in the middle of syncs loses no change it
//! acknowledged; devices reconnect by themselves and converge.

use std::time::Duration;

use anyhow::{Context as _, Result};
use branchline_core::model::NewActivity;
use branchline_core::{BranchId, DocId};
use branchline_protocol::Role;
use branchline_server::Admin;
use branchline_tests::{Device, ServerProcess, acknowledged, free_udp_addr, with_server};

const SERVER: &str = env!("CARGO_BIN_EXE_branchline-test-server");

fn meeting(n: usize) -> NewActivity {
    NewActivity {
        kind: "branch_meeting".to_owned(),
        title: format!("Meeting {n}"),
        starts_at: "2026-11-20T19:00".parse().ok(),
        ends_at: "2026-11-20T21:00".parse().ok(),
        ..NewActivity::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_sync_loses_no_acknowledged_change() -> Result<()> {
    branchline_tests::init_tracing();
    let dir = tempfile::tempdir()?;
    // A free port picked once, so the restarted server listens where the
    // devices expect it.
    let listen = free_udp_addr()?;

    let admin = Admin::open(dir.path())?;
    let branch: BranchId =
        admin.add_branch("Riverside", branchline_core::model::Level::Branch, None)?;
    let invite_a = admin.create_invite(branch, Role::Secretary, None, Duration::from_secs(3600))?;
    let invite_b = admin.create_invite(branch, Role::Committee, None, Duration::from_secs(3600))?;
    drop(admin);

    let server = ServerProcess::start(SERVER, dir.path(), &listen)?;
    let a = Device::join("A", with_server(invite_a, server.addr)).await?;
    let b = Device::join("B", with_server(invite_b, server.addr)).await?;

    // Both devices write steadily while the server is killed mid-stream.
    let writer = |device: &Device, offset: usize| -> Result<Vec<DocId>> {
        let mut ids = Vec::new();
        for n in 0..40 {
            let id = device
                .store()
                .create_activity(branch, meeting(offset + n))?;
            device
                .store()
                .write_minutes(id, &format!("Minutes of meeting {}", offset + n))?;
            ids.push(id);
        }
        Ok(ids)
    };
    let mut written = writer(&a, 0)?;
    written.extend(writer(&b, 100)?);
    // Kill while the pushes are still under way: some documents are
    // acknowledged, others in flight.
    tokio::time::sleep(Duration::from_millis(60)).await;
    let acked_a = acknowledged(&a)?;
    let acked_b = acknowledged(&b)?;
    server.kill()?;
    let total = a.store().documents()?.len() + b.store().documents()?.len();
    println!(
        "killed with {} of {total} document copies acknowledged",
        acked_a.len() + acked_b.len()
    );

    // More offline edits while the server is down.
    written.extend(writer(&a, 200)?);

    let server = ServerProcess::start(SERVER, dir.path(), &listen)?;
    a.client().sync_now();
    b.client().sync_now();
    a.wait_in_sync().await?;
    b.wait_in_sync().await?;
    a.wait_in_sync().await?;

    let admin = Admin::open(dir.path())?;
    for (doc, heads) in acked_a.iter().chain(&acked_b) {
        let bytes = admin
            .document_bytes(*doc)?
            .with_context(|| format!("acknowledged document {doc} lost"))?;
        let mut stored = automerge::AutoCommit::load(&bytes)?;
        for head in heads {
            assert!(
                stored.get_change_by_hash(head).is_some(),
                "acknowledged change {head} of {doc} lost"
            );
        }
    }
    assert_eq!(a.heads()?, b.heads()?, "devices converge after the restart");
    for doc in written {
        assert!(
            admin.document_bytes(doc)?.is_some(),
            "{doc} never reached the server"
        );
    }
    drop(server);
    Ok(())
}
