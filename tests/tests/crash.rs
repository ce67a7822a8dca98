//! The server killed with SIGKILL in the middle of syncs loses no change it
//! acknowledged; devices reconnect by themselves and converge.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result};
use branchline_core::model::NewActivity;
use branchline_core::{BranchId, DocId};
use branchline_protocol::Role;
use branchline_server::Admin;
use branchline_tests::{Device, PATIENCE, sorted};

/// The server in a child process, on a fixed data directory and port.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn start(dir: &std::path::Path, listen: &str) -> Result<Self> {
        let child = Command::new(env!("CARGO_BIN_EXE_branchline-test-server"))
            .arg(dir)
            .arg(listen)
            .stdout(Stdio::piped())
            .spawn()
            .context("start the server process")?;
        // From here on, dropping `server` kills the child, even on an error.
        let mut server = Self {
            child,
            addr: listen.parse()?,
        };
        let stdout = server.child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        server.addr = line
            .trim()
            .strip_prefix("listening ")
            .with_context(|| format!("unexpected server output {line:?}"))?
            .parse()?;
        Ok(server)
    }

    fn kill(mut self) -> Result<()> {
        // Child::kill sends SIGKILL on Unix: no chance to flush or say goodbye.
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn meeting(n: usize) -> NewActivity {
    NewActivity {
        kind: "branch_meeting".to_owned(),
        title: format!("Meeting {n}"),
        starts_at: "2026-11-20T19:00".parse().ok(),
        ends_at: "2026-11-20T21:00".parse().ok(),
        ..NewActivity::default()
    }
}

/// Documents and their heads the server has acknowledged to `device`: the
/// device's documents with no unacknowledged change left.
fn acknowledged(device: &Device) -> Result<Vec<(DocId, Vec<automerge::ChangeHash>)>> {
    let store = device.store();
    let mut out = Vec::new();
    for summary in store.documents()? {
        if summary.unacked_changes == 0 {
            let mut doc = store.load_document(summary.id)?;
            out.push((summary.id, sorted(doc.get_heads())));
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_sync_loses_no_acknowledged_change() -> Result<()> {
    branchline_tests::init_tracing();
    let dir = tempfile::tempdir()?;
    // Pick a free port once, so the restarted server listens where the
    // devices expect it.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let listen = format!("127.0.0.1:{port}");

    let admin = Admin::open(dir.path())?;
    let branch: BranchId =
        admin.add_branch("Riverside", branchline_core::model::Level::Branch, None)?;
    let invite_a = admin.create_invite(branch, Role::Secretary, None, Duration::from_secs(3600))?;
    let invite_b = admin.create_invite(branch, Role::Committee, None, Duration::from_secs(3600))?;
    drop(admin);

    let server = ServerProcess::start(dir.path(), &listen)?;
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

    let server = ServerProcess::start(dir.path(), &listen)?;
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
    let _ = PATIENCE;
    drop(server);
    Ok(())
}

fn with_server(
    mut invite: branchline_protocol::InviteLink,
    addr: SocketAddr,
) -> branchline_protocol::InviteLink {
    invite.server = addr.to_string();
    invite
}
