//! Sync against a real server on 127.0.0.1 (real TLS, real QUIC): the first sync of
//! the generated two-year branch in both directions, and a reconnect with nothing new
//! over 1,000 documents.
//!
//! `cargo bench -p branchline-tests --bench sync` prints the figures; add `-- --quick`
//! for fewer repetitions (CI: both scenarios still run end to end). Times are wall
//! clock as the app sees them; bytes come from the client's `SessionReport`: frames
//! are protocol bytes, UDP bytes include QUIC and TLS, "after hs" counts both ways
//! from the server's Welcome on.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use branchline_core::model::DocKind;
use branchline_core::net::SessionReport;
use branchline_core::workload::{GeneratedBranch, WorkloadSpec, generate};
use branchline_protocol::Role;
use branchline_tests::{Device, TestServer};

/// Documents in the reconnect scenario.
const RECONNECT_DOCS: usize = 1_000;

/// One measured session: wall time and the client's report.
struct Run {
    wall: Duration,
    report: SessionReport,
}

/// The run with the median wall time, and the fastest and slowest times.
fn median(mut runs: Vec<Run>) -> (Run, Duration, Duration) {
    runs.sort_by_key(|r| r.wall);
    let min = runs[0].wall;
    let max = runs[runs.len() - 1].wall;
    let mid = runs.swap_remove(runs.len() / 2);
    (mid, min, max)
}

fn header() {
    println!(
        "{:<36} {:>10} {:>10} {:>5} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "session (median run)",
        "time",
        "in sync",
        "rtts",
        "docs",
        "frames tx",
        "frames rx",
        "udp tx",
        "udp rx",
        "after hs"
    );
}

fn row(name: &str, run: &Run) {
    let r = &run.report;
    println!(
        "{name:<36} {:>10.2?} {:>10.2?} {:>5} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10}",
        run.wall,
        r.to_in_sync,
        r.manifest_round_trips,
        r.docs_synced,
        r.frame_bytes_sent,
        r.frame_bytes_received,
        r.udp_bytes_sent,
        r.udp_bytes_received,
        r.udp_bytes_after_handshake
    );
}

fn spread(runs: usize, min: Duration, max: Duration) {
    println!("{:<36} {runs} runs, time {min:.2?} .. {max:.2?}", "");
}

fn all_bytes(branch: &GeneratedBranch) -> impl Iterator<Item = &[u8]> {
    branch.documents.iter().map(|d| d.bytes.as_slice())
}

/// A fresh secretary device enrolls into the branch the server already holds
/// and downloads everything.
async fn first_sync_download(branch: &GeneratedBranch, runs: usize) -> Result<Vec<Run>> {
    let mut server = TestServer::start().await?;
    let t = Instant::now();
    let stored = server.admin().import_documents(all_bytes(branch))?;
    println!(
        "server import (Admin::import_documents, one transaction): {stored} documents in {:.2?}",
        t.elapsed()
    );
    let mut out = Vec::new();
    for i in 0..runs {
        let invite = server.invite(branch.branch, Role::Secretary, None)?;
        let t = Instant::now();
        let mut device = Device::join(&format!("secretary {i}"), invite).await?;
        let wall = t.elapsed();
        let held = device.store().documents()?.len();
        ensure!(
            held == branch.documents.len(),
            "the device holds {held} of {} documents",
            branch.documents.len()
        );
        out.push(Run {
            wall,
            report: device.client().report(),
        });
        device.close().await;
    }
    server.stop().await?;
    Ok(out)
}

/// A secretary device enrolls into the branch (only its profile and roster on the
/// server), imports the rest of the generated documents locally and opens the app
/// again: the new session uploads them.
///
/// The generated changes were written by some sixty devices' actors, which the
/// server's rules refuse from one device (`rule.foreign_actor`), so this one
/// measurement runs with validation off: it measures transport and storage.
/// `cargo bench -p branchline-server --bench validation` measures the rules.
async fn first_sync_upload(branch: &GeneratedBranch, runs: usize) -> Result<Vec<Run>> {
    let is_header = |kind: DocKind| matches!(kind, DocKind::BranchProfile | DocKind::Roster);
    let mut out = Vec::new();
    for _ in 0..runs {
        let mut server = TestServer::start_with(|config| config.validate_changes = false).await?;
        let admin = server.admin();
        admin.import_documents(
            branch
                .documents
                .iter()
                .filter(|d| is_header(d.kind))
                .map(|d| d.bytes.as_slice()),
        )?;
        let mut device = server
            .device("secretary", branch.branch, Role::Secretary, None)
            .await?;
        device.close().await;
        device.store().import_all(
            branch
                .documents
                .iter()
                .filter(|d| !is_header(d.kind))
                .map(|d| d.bytes.as_slice()),
        )?;
        let t = Instant::now();
        device.reopen().await?;
        let wall = t.elapsed();
        let on_server = admin.document_ids()?.len();
        ensure!(
            on_server == branch.documents.len(),
            "the server holds {on_server} of {} documents",
            branch.documents.len()
        );
        out.push(Run {
            wall,
            report: device.client().report(),
        });
        device.close().await;
        server.stop().await?;
    }
    Ok(out)
}

/// A device holding `branch` in sync opens the app again, `runs` times.
async fn reconnect(branch: &GeneratedBranch, runs: usize) -> Result<Vec<Run>> {
    let mut server = TestServer::start().await?;
    server.admin().import_documents(all_bytes(branch))?;
    let mut device = server
        .device("secretary", branch.branch, Role::Secretary, None)
        .await?;
    ensure!(device.store().documents()?.len() == branch.documents.len());
    let mut out = Vec::new();
    for _ in 0..runs {
        device.close().await;
        let t = Instant::now();
        device.reopen().await?;
        let wall = t.elapsed();
        out.push(Run {
            wall,
            report: device.client().report(),
        });
    }
    device.close().await;
    server.stop().await?;
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (first_runs, upload_runs, reconnect_runs) = if quick { (1, 1, 3) } else { (5, 3, 15) };

    let spec = WorkloadSpec::default();
    let t = Instant::now();
    let branch = generate(&spec).context("generate the branch")?;
    let total: usize = branch.documents.iter().map(|d| d.bytes.len()).sum();
    println!(
        "generated branch: {} documents, {} bytes saved ({} members, {} years, {} petitions), built in {:.2?}",
        branch.documents.len(),
        total,
        spec.members,
        spec.years,
        spec.petitions,
        t.elapsed()
    );

    // The same kinds and history, with more petitions to reach 1,000 documents; another
    // seed, so its ids are its own.
    let extra = RECONNECT_DOCS.saturating_sub(branch.documents.len());
    let big_spec = WorkloadSpec {
        seed: spec.seed + 1,
        petitions: spec.petitions + extra,
        ..spec.clone()
    };
    let t = Instant::now();
    let big = generate(&big_spec).context("generate the 1,000-document branch")?;
    println!(
        "reconnect branch: {} documents ({} petitions), built in {:.2?}",
        big.documents.len(),
        big_spec.petitions,
        t.elapsed()
    );

    println!();
    let download = first_sync_download(&branch, first_runs).await?;
    let upload = first_sync_upload(&branch, upload_runs).await?;
    let reconnects = reconnect(&big, reconnect_runs).await?;

    println!();
    header();
    let (run, min, max) = median(download);
    row("first sync, download (join)", &run);
    spread(first_runs, min, max);
    let (run, min, max) = median(upload);
    row("first sync, upload (reopen, no rules)", &run);
    spread(upload_runs, min, max);
    let (run, min, max) = median(reconnects);
    row(
        &format!("reconnect, no change, {} docs", big.documents.len()),
        &run,
    );
    spread(reconnect_runs, min, max);
    Ok(())
}
