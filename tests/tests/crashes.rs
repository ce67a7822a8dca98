//! Crashes under load: the server SIGKILLed again and again while many
//! devices sync at once, and a device app SIGKILLed in the middle of writes.
//!
//! After every server kill: SQLite's integrity check passes on the server
//! database, and every change a device counted as acknowledged before the
//! kill is in it. After the last restart every device converges with the
//! server. After every client kill the store opens, passes the integrity
//! check, and holds every write the app saw return `Ok`.
//!
//! `BRANCHLINE_CRASH_KILLS=50 cargo test -p branchline-tests --test crashes`
//! runs a longer storm (default [`CI_KILLS`] kills of each kind).

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use branchline_core::model::{Activity, NewActivity};
use branchline_core::{DocId, Store};
use branchline_protocol::Role;
use branchline_server::Admin;
use branchline_tests::{
    Device, ServerProcess, acknowledged, assert_on_server, free_udp_addr, integrity_check,
    server_db, wait_converged, with_server,
};
use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

/// Kills of each kind in a plain `cargo test`.
const CI_KILLS: usize = 4;
/// Devices syncing at once while the server is killed.
const DEVICES: usize = 6;

fn kills() -> usize {
    std::env::var("BRANCHLINE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CI_KILLS)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_repeatedly_during_concurrent_syncs() -> Result<()> {
    branchline_tests::init_tracing();
    let exe = env!("CARGO_BIN_EXE_branchline-test-server");
    let dir = tempfile::tempdir()?;
    let listen = free_udp_addr()?;
    let mut rng = ChaCha8Rng::seed_from_u64(6);

    let admin = Admin::open(dir.path())?;
    let branch = admin.add_branch("Riverside", branchline_core::model::Level::Branch, None)?;
    let mut invites = Vec::new();
    for n in 0..DEVICES {
        let role = if n == 0 {
            Role::Secretary
        } else {
            Role::Committee
        };
        invites.push(admin.create_invite(branch, role, None, Duration::from_secs(3600))?);
    }
    drop(admin);

    let mut server = ServerProcess::start(exe, dir.path(), &listen)?;
    let mut devices = Vec::new();
    for (n, invite) in invites.into_iter().enumerate() {
        devices.push(Device::join(&format!("device {n}"), with_server(invite, server.addr)).await?);
    }

    let mut total_checked = 0;
    let mut written = 0;
    for kill in 0..kills() {
        // Every device writes: new activities and edits of shared ones
        // (the roster and profile everyone holds), all syncing at once.
        for (n, device) in devices.iter().enumerate() {
            for k in 0..4 {
                let id = device
                    .store()
                    .create_activity(branch, meeting(kill * 1000 + n * 10 + k))?;
                device
                    .store()
                    .write_minutes(id, &format!("Minutes by {n}, round {kill}"))?;
                written += 1;
            }
            let shared: Vec<DocId> = device
                .store()
                .list_activities(branch, &Default::default())?
                .into_iter()
                .map(|a| a.id)
                .collect();
            if let Some(&id) = shared.get(rng.random_range(0..shared.len().max(1)))
                && device.store().get::<Activity>(id).is_ok()
            {
                device
                    .store()
                    .write_minutes(id, &format!("Amended by {n} in round {kill}"))?;
            }
        }
        // Kill at a random moment of the pushes.
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..400))).await;
        let mut acked = Vec::new();
        for device in &devices {
            acked.extend(acknowledged(device)?);
        }
        server.kill()?;
        integrity_check(&server_db(dir.path())).with_context(|| format!("after kill {kill}"))?;
        total_checked +=
            assert_on_server(dir.path(), &acked).with_context(|| format!("after kill {kill}"))?;
        server = ServerProcess::start(exe, dir.path(), &listen)?;
        for device in &devices {
            device.client().sync_now();
        }
    }

    let all: Vec<&Device> = devices.iter().collect();
    wait_converged(dir.path(), &all).await?;
    let mut acked = Vec::new();
    for device in &devices {
        acked.extend(acknowledged(device)?);
    }
    total_checked += assert_on_server(dir.path(), &acked)?;
    server.kill()?;
    integrity_check(&server_db(dir.path()))?;
    let held = Admin::open(dir.path())?.document_ids()?.len();
    ensure!(
        held >= written,
        "the server holds {held} documents, {written} were written"
    );
    println!(
        "{} server kills survived; {total_checked} acknowledged changes checked, none lost; {DEVICES} devices converged on {held} documents",
        kills()
    );
    Ok(())
}

#[test]
fn client_killed_mid_write_keeps_every_committed_write() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("branchline.db");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut committed: Vec<(DocId, usize)> = Vec::new();
    for kill in 0..kills() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_branchline-test-writer"))
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .context("start the writer")?;
        let stdout = child.stdout.take().context("writer stdout")?;
        // Read what it reports on a thread; kill it after a random number
        // of writes, while it is in the middle of the next ones.
        let wanted = rng.random_range(3..12);
        let (lines_tx, lines) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = 0;
        while seen < wanted {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .with_context(|| format!("the writer stopped after {seen} writes"))?;
            let mut words = line.split_whitespace().skip(1);
            let id: DocId = words.next().context("doc id")?.parse()?;
            let n: usize = words.next().context("number")?.parse()?;
            committed.push((id, n));
            seen += 1;
        }
        // Child::kill sends SIGKILL on Unix.
        child.kill()?;
        child.wait()?;
        // Lines already written before the kill still count.
        reader.join().ok();
        while let Ok(line) = lines.try_recv() {
            let mut words = line.split_whitespace().skip(1);
            if let (Some(id), Some(n)) = (words.next(), words.next()) {
                committed.push((id.parse()?, n.parse()?));
            }
        }

        integrity_check(&path).with_context(|| format!("after client kill {kill}"))?;
        let store = Store::open(&path).with_context(|| format!("reopen after kill {kill}"))?;
        for (id, n) in &committed {
            let activity: Activity = store
                .get(*id)
                .with_context(|| format!("committed activity {id} lost after kill {kill}"))?;
            ensure!(
                activity
                    .minutes
                    .as_str()
                    .starts_with(&format!("Minutes {n}:")),
                "the minutes of {id} are not what was committed"
            );
            ensure!(
                !activity.sign_ins.is_empty(),
                "the sign-in committed in {id} is lost"
            );
        }
        let listed = store.list_activities(
            store
                .documents()?
                .first()
                .context("the store holds documents")?
                .branch,
            &Default::default(),
        )?;
        ensure!(
            listed.len() >= committed.len(),
            "the index lists {} activities, {} were committed",
            listed.len(),
            committed.len()
        );
    }
    println!(
        "{} client kills survived; {} committed writes intact",
        kills(),
        committed.len()
    );
    Ok(())
}
