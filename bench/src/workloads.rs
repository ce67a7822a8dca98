//! The six workloads of issue 8, each run through both systems.
//!
//! - **B1 cold sync**: a new device receives the whole generated two-year
//!   branch. Branchline: the device enrolls with an invite and is in sync
//!   (every document stored in its SQLite store). samod: a new repo with
//!   filesystem storage dials the server and `find`s every document id (samod
//!   has no listing: an app learns ids from a root document or a link; the
//!   ids are given here for free), until it holds all the server's changes.
//!   Time is wall clock from the start of the connection; bytes are both
//!   directions; server CPU is the server process's CPU time over the
//!   same interval. The floor is the sum of the documents' `save()` sizes
//!   (compressed), the least any system could send. A fresh server process
//!   per run: the server starts cold, reading its store from disk.
//! - **B2 reconnect, nothing changed**: a device that is in sync with 1,000
//!   documents connects again. Branchline: a new connection (the app was
//!   reopened over the same store). samod: the same repo with every document
//!   open dials again; its documents sync with the new connection until each
//!   is confirmed equal both ways. samod has no manifest: it runs one sync
//!   exchange per document, so round trips are given for Branchline only and
//!   samod's message count is in the notes.
//! - **B3 a day offline**: device A and device B hold 20 activities (plus the
//!   branch profile and roster). A goes offline and makes 200 edits; B makes
//!   50 edits online; A reconnects: time and bytes until both sides have
//!   everything.
//! - **B4 propagation**: A and B are connected and hold one activity; A makes
//!   an edit and we wait until B holds it, 1,000 times in a row. The time
//!   includes A's local write (for Branchline, the store's fsynced SQLite
//!   transaction) and B's storing it.
//! - **B5 ingest**: N devices connected at once, each edits its own document
//!   K times in a closed loop: edit, wait for the server's acknowledgement,
//!   edit again. Branchline's acknowledgement is the `Ack` the server sends
//!   after the change is fsynced; samod has no durable acknowledgement, so
//!   its acknowledgement is the server's sync message saying it has the
//!   device's heads (in memory; its storage write is not awaited and never
//!   fsynced). Branchline's devices each belong to their own branch, so no
//!   other device is told of the change; samod's server does not announce
//!   documents to other peers either. Devices keep their stores in memory,
//!   for both systems, so the load generator costs as little as it can.
//! - **B6 idle**: N devices connected and in sync with a branch's two
//!   documents (profile and roster), then idle for two seconds: the server's
//!   resident memory minus its resident memory before the first device,
//!   divided by N.
//!
//! N1 (Branchline alone, on SQLite and on PostgreSQL with one to three
//! nodes) is in [`crate::nodes`]; it reuses B4's and B5's measurements.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use automerge::ReadDoc as _;
use branchline_core::DocId;
use branchline_core::model::DocKind;
use branchline_core::workload::{GeneratedBranch, GeneratedDoc};
use branchline_server::Admin;
use branchline_tests::Device;
use futures_util::StreamExt as _;
use futures_util::future::join_all;
use samod::DocHandle;
use tempfile::TempDir;

use crate::branchline_side::{self as bl, LightDevice};
use crate::process::{ServerProcess, System, dir_size};
use crate::samod_side::{self as sm, SamodDevice};
use crate::table::{DeploymentRow, Row, Target, Unit};

/// How big each workload is.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Repetitions of B1 (the median is reported).
    pub b1_runs: usize,
    /// Repetitions of B2.
    pub b2_runs: usize,
    /// Repetitions of B3.
    pub b3_runs: usize,
    /// Documents edited in B3.
    pub b3_docs: usize,
    /// Local edits in B3.
    pub b3_local: usize,
    /// Remote edits in B3.
    pub b3_remote: usize,
    /// Edits in B4.
    pub b4_edits: usize,
    /// Devices in B5.
    pub b5_devices: usize,
    /// Edits per device in B5.
    pub b5_edits: usize,
    /// Devices in B6.
    pub b6_devices: usize,
    /// Devices pushing at once in N1's ingest.
    pub n1_devices: usize,
    /// How long they push.
    pub n1_window: Duration,
    /// Edits timed from node 1 to the last node in N1.
    pub n1_edits: usize,
}

impl Sizes {
    /// The sizes of the issue.
    pub fn full() -> Self {
        Self {
            b1_runs: 3,
            b2_runs: 5,
            b3_runs: 3,
            b3_docs: 20,
            b3_local: 200,
            b3_remote: 50,
            b4_edits: 1_000,
            b5_devices: 200,
            b5_edits: 20,
            b6_devices: 1_000,
            n1_devices: 40,
            n1_window: Duration::from_secs(10),
            n1_edits: 200,
        }
    }

    /// Small sizes that only check every workload runs (CI).
    pub fn quick() -> Self {
        Self {
            b1_runs: 1,
            b2_runs: 1,
            b3_runs: 1,
            b3_docs: 20,
            b3_local: 40,
            b3_remote: 10,
            b4_edits: 30,
            b5_devices: 8,
            b5_edits: 5,
            b6_devices: 20,
            n1_devices: 6,
            n1_window: Duration::from_millis(1500),
            n1_edits: 20,
        }
    }
}

/// What a workload found: rows for the table and notes to print under it.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Figures.
    pub rows: Vec<Row>,
    /// Observations that do not fit the table.
    pub notes: Vec<String>,
    /// Deployments measured (N1), for their own table.
    pub deployments: Vec<DeploymentRow>,
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One measured run.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    wall: Duration,
    cpu: Duration,
    bytes: u64,
    extra: u64,
}

/// The run with the median wall time.
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by_key(|r| r.wall);
    runs[runs.len() / 2]
}

/// The `q` quantile (0..=1) of `values`, nearest rank; zero when empty.
pub(crate) fn quantile(values: &mut [Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

fn all_bytes(docs: &[&GeneratedDoc]) -> Vec<Vec<u8>> {
    docs.iter().map(|d| d.bytes.clone()).collect()
}

// --- B1 -----------------------------------------------------------------------

/// B1: a new device receives the generated branch.
pub async fn b1(branch: &GeneratedBranch, sizes: &Sizes) -> Result<Outcome> {
    let docs: Vec<_> = branch.documents.iter().collect();
    let bytes = all_bytes(&docs);
    let floor: u64 = bytes.iter().map(|b| b.len() as u64).sum();
    let mut out = Outcome::default();

    let dir = TempDir::new()?;
    bl::seed(dir.path(), bytes.iter().map(Vec::as_slice))?;
    let mut runs = Vec::new();
    let mut breakdown = String::new();
    for i in 0..sizes.b1_runs {
        let server = ServerProcess::start(System::Branchline, dir.path())?;
        let invite = bl::invite(&Admin::open(dir.path())?, branch.branch)?;
        let cpu = server.cpu()?;
        let t = Instant::now();
        let mut device = Device::join(&format!("b1 {i}"), invite).await?;
        let wall = t.elapsed();
        let cpu = server.cpu()? - cpu;
        let held = device.store().documents()?.len();
        ensure!(held == docs.len(), "held {held} of {}", docs.len());
        let r = device.client().report();
        breakdown = format!(
            "handshake {:.1?}, in sync {:.1?}, {} manifest round trips, {} docs synced",
            r.handshake, r.to_in_sync, r.manifest_round_trips, r.docs_synced
        );
        runs.push(Run {
            wall,
            cpu,
            bytes: r.udp_bytes_sent + r.udp_bytes_received,
            extra: r.frame_bytes_sent + r.frame_bytes_received,
        });
        device.close().await;
        server.stop()?;
    }
    out.notes
        .push(format!("B1: Branchline's last run: {breakdown}."));
    let blr = median(runs);

    let sdir = TempDir::new()?;
    let ids = sm::seed(sdir.path(), bytes.iter().map(Vec::as_slice)).await?;
    let (files_before, size_before) = dir_size(sdir.path());
    let mut runs = Vec::new();
    let mut retried = 0;
    for _ in 0..sizes.b1_runs {
        let server = ServerProcess::start(System::Samod, sdir.path())?;
        let client_dir = TempDir::new()?;
        let cpu = server.cpu()?;
        let t = Instant::now();
        let mut device = SamodDevice::new(Some(client_dir.path())).await;
        device.connect(server.addr()).await?;
        let handles = device.find_all(&ids).await?;
        device.wait_in_sync(&handles).await?;
        let wall = t.elapsed();
        let cpu = server.cpu()? - cpu;
        retried += device.retried_finds();
        runs.push(Run {
            wall,
            cpu,
            bytes: device.counters.total(),
            extra: device.counters.frames_sent() + device.counters.frames_received(),
        });
        drop(handles);
        device.stop().await;
        server.stop()?;
    }
    let smr = median(runs);
    let (files_after, size_after) = dir_size(sdir.path());
    if retried > 0 {
        out.notes.push(format!(
            "B1: samod's find reported a document the server holds as unavailable {retried} times over {} runs; each was asked for again (the time includes it).",
            sizes.b1_runs
        ));
    }

    out.rows.push(
        Row::new(
            "B1",
            format!("cold sync, {} docs: time", docs.len()),
            Unit::Ms,
            ms(blr.wall),
            Some(ms(smr.wall)),
        )
        .target(Target::RatioAtMost(0.3)),
    );
    out.rows.push(Row::new(
        "B1",
        "bytes on the wire (both ways)",
        Unit::Bytes,
        blr.bytes as f64,
        Some(smr.bytes as f64),
    ));
    out.rows.push(
        Row::new(
            "B1",
            format!("bytes / floor ({floor} B of saved docs)"),
            Unit::Ratio,
            blr.bytes as f64 / floor as f64,
            Some(smr.bytes as f64 / floor as f64),
        )
        .target(Target::ValueAtMost(1.05)),
    );
    out.rows.push(Row::new(
        "B1",
        "server CPU time",
        Unit::Ms,
        ms(blr.cpu),
        Some(ms(smr.cpu)),
    ));
    out.notes.push(format!(
        "B1: Branchline protocol frames (without QUIC/TLS) {} B, {:.3} × floor; samod exchanged {} messages.",
        blr.extra,
        blr.extra as f64 / floor as f64,
        smr.extra
    ));
    out.notes.push(format!(
        "B1: samod server storage before the runs {files_before} files, {size_before} B; after {} cold syncs {files_after} files, {size_after} B.",
        sizes.b1_runs
    ));
    Ok(out)
}

// --- B2 -----------------------------------------------------------------------

/// B2: a device in sync with `branch` (1,000 documents) connects again.
pub async fn b2(branch: &GeneratedBranch, sizes: &Sizes) -> Result<Outcome> {
    let docs: Vec<_> = branch.documents.iter().collect();
    let bytes = all_bytes(&docs);
    let n = docs.len();
    let mut out = Outcome::default();

    let dir = TempDir::new()?;
    bl::seed(dir.path(), bytes.iter().map(Vec::as_slice))?;
    let server = ServerProcess::start(System::Branchline, dir.path())?;
    let invite = bl::invite(&Admin::open(dir.path())?, branch.branch)?;
    let mut device = Device::join("b2", invite).await?;
    ensure!(device.store().documents()?.len() == n);
    let mut runs = Vec::new();
    let mut round_trips = 0;
    let mut after_handshake = 0;
    for _ in 0..sizes.b2_runs {
        device.close().await;
        let t = Instant::now();
        device.reopen().await?;
        let wall = t.elapsed();
        let r = device.client().report();
        round_trips = r.manifest_round_trips;
        after_handshake = r.udp_bytes_after_handshake;
        runs.push(Run {
            wall,
            cpu: Duration::ZERO,
            bytes: r.udp_bytes_sent + r.udp_bytes_received,
            extra: r.docs_synced.into(),
        });
    }
    device.close().await;
    server.stop()?;
    let blr = median(runs);

    let sdir = TempDir::new()?;
    let ids = sm::seed(sdir.path(), bytes.iter().map(Vec::as_slice)).await?;
    let server = ServerProcess::start(System::Samod, sdir.path())?;
    let client_dir = TempDir::new()?;
    let mut device = SamodDevice::new(Some(client_dir.path())).await;
    device.connect(server.addr()).await?;
    let handles = device.find_all(&ids).await?;
    device.wait_in_sync(&handles).await?;
    let mut runs = Vec::new();
    for _ in 0..sizes.b2_runs {
        device.disconnect().await;
        let t = Instant::now();
        device.connect(server.addr()).await?;
        device.wait_in_sync(&handles).await?;
        let wall = t.elapsed();
        runs.push(Run {
            wall,
            cpu: Duration::ZERO,
            bytes: device.counters.total(),
            extra: device.counters.frames_sent() + device.counters.frames_received(),
        });
    }
    drop(handles);
    device.stop().await;
    server.stop()?;
    let smr = median(runs);

    out.rows.push(Row::new(
        "B2",
        format!("reconnect, no change, {n} docs: time"),
        Unit::Ms,
        ms(blr.wall),
        Some(ms(smr.wall)),
    ));
    out.rows.push(
        Row::new(
            "B2",
            "manifest round trips (incl. the one pipelined with Hello)",
            Unit::Count,
            f64::from(round_trips),
            None,
        )
        .target(Target::ValueAtMost(1.0)),
    );
    out.rows.push(
        Row::new(
            "B2",
            "bytes on the wire, all (incl. QUIC/TLS handshake)",
            Unit::Bytes,
            blr.bytes as f64,
            Some(smr.bytes as f64),
        )
        .target(Target::ValueAtMost(2048.0)),
    );
    out.rows.push(
        Row::new(
            "B2",
            "bytes on the wire / samod's",
            Unit::Bytes,
            blr.bytes as f64,
            Some(smr.bytes as f64),
        )
        .target(Target::RatioAtMost(0.01)),
    );
    out.rows.push(Row::new(
        "B2",
        "bytes after the handshake (Branchline: from Welcome on)",
        Unit::Bytes,
        after_handshake as f64,
        None,
    ));
    out.notes.push(format!(
        "B2: Branchline synced {} documents on their own streams; samod exchanged {} messages ({} documents, one sync exchange each).",
        blr.extra, smr.extra, n
    ));
    Ok(out)
}

// --- B3 -----------------------------------------------------------------------

fn b3_docs(branch: &GeneratedBranch, count: usize) -> Vec<&GeneratedDoc> {
    let header = branch
        .documents
        .iter()
        .filter(|d| matches!(d.kind, DocKind::BranchProfile | DocKind::Roster));
    let activities = branch
        .documents
        .iter()
        .filter(|d| d.kind == DocKind::Activity)
        .take(count);
    header.chain(activities).collect()
}

/// B3: A comes back after a day offline.
pub async fn b3(branch: &GeneratedBranch, sizes: &Sizes) -> Result<Outcome> {
    let docs = b3_docs(branch, sizes.b3_docs);
    let bytes = all_bytes(&docs);
    let activities: Vec<DocId> = docs
        .iter()
        .filter(|d| d.kind == DocKind::Activity)
        .map(|d| d.id)
        .collect();
    ensure!(activities.len() == sizes.b3_docs, "not enough activities");
    let mut out = Outcome::default();

    let mut runs = Vec::new();
    for run in 0..sizes.b3_runs {
        let dir = TempDir::new()?;
        bl::seed(dir.path(), bytes.iter().map(Vec::as_slice))?;
        let server = ServerProcess::start(System::Branchline, dir.path())?;
        let admin = Admin::open(dir.path())?;
        let a = Device::join("b3 a", bl::invite(&admin, branch.branch)?).await?;
        let mut b = Device::join("b3 b", bl::invite(&admin, branch.branch)?).await?;
        a.go_offline().await?;
        for i in 0..sizes.b3_local {
            let doc = activities[i % activities.len()];
            bl::append_minutes(&mut a.store(), doc, &format!("\n本地补记 {run}-{i}"))?;
        }
        for i in 0..sizes.b3_remote {
            let doc = activities[i % activities.len()];
            bl::append_minutes(&mut b.store(), doc, &format!("\n远程补记 {run}-{i}"))?;
        }
        b.wait_in_sync().await?;
        let t = Instant::now();
        a.go_online().await?;
        let wall = t.elapsed();
        let r = a.client().report();
        out.notes.push(format!(
            "B3 run {run}: Branchline handshake {:.1?}, in sync {:.1?}, {} manifest round trips, {} docs synced, {} B after the handshake.",
            r.handshake, r.to_in_sync, r.manifest_round_trips, r.docs_synced, r.udp_bytes_after_handshake
        ));
        runs.push(Run {
            wall,
            cpu: Duration::ZERO,
            bytes: r.udp_bytes_sent + r.udp_bytes_received,
            extra: r.frame_bytes_sent + r.frame_bytes_received,
        });
        let mut a = a;
        a.close().await;
        b.close().await;
        server.stop()?;
    }
    let blr = median(runs);

    let mut runs = Vec::new();
    for run in 0..sizes.b3_runs {
        let sdir = TempDir::new()?;
        let ids = sm::seed(sdir.path(), bytes.iter().map(Vec::as_slice)).await?;
        let server = ServerProcess::start(System::Samod, sdir.path())?;
        let (adir, bdir) = (TempDir::new()?, TempDir::new()?);
        let mut a = SamodDevice::new(Some(adir.path())).await;
        let mut b = SamodDevice::new(Some(bdir.path())).await;
        a.connect(server.addr()).await?;
        b.connect(server.addr()).await?;
        let ha = a.find_all(&ids).await?;
        let hb = b.find_all(&ids).await?;
        a.wait_in_sync(&ha).await?;
        b.wait_in_sync(&hb).await?;
        // The first two are the profile and the roster.
        let (act_a, act_b) = (&ha[2..], &hb[2..]);
        a.disconnect().await;
        for i in 0..sizes.b3_local {
            let h = &act_a[i % act_a.len()];
            h.with_document(|d| sm::append_minutes(d, &format!("\n本地补记 {run}-{i}")))?;
        }
        for i in 0..sizes.b3_remote {
            let h = &act_b[i % act_b.len()];
            h.with_document(|d| sm::append_minutes(d, &format!("\n远程补记 {run}-{i}")))?;
        }
        b.wait_in_sync(&hb).await?;
        let t = Instant::now();
        a.connect(server.addr()).await?;
        a.wait_in_sync(&ha).await?;
        let wall = t.elapsed();
        runs.push(Run {
            wall,
            cpu: Duration::ZERO,
            bytes: a.counters.total(),
            extra: a.counters.frames_sent() + a.counters.frames_received(),
        });
        drop((ha, hb));
        a.stop().await;
        b.stop().await;
        server.stop()?;
    }
    let smr = median(runs);

    let what = format!(
        "{} docs, {} local + {} remote edits",
        sizes.b3_docs, sizes.b3_local, sizes.b3_remote
    );
    out.rows.push(
        Row::new(
            "B3",
            format!("reconnect after a day offline ({what}): time"),
            Unit::Ms,
            ms(blr.wall),
            Some(ms(smr.wall)),
        )
        .target(Target::RatioAtMost(0.3)),
    );
    out.rows.push(
        Row::new(
            "B3",
            "bytes on the wire (both ways)",
            Unit::Bytes,
            blr.bytes as f64,
            Some(smr.bytes as f64),
        )
        .target(Target::RatioAtMost(0.3)),
    );
    out.notes.push(format!(
        "B3: Branchline protocol frames {} B (the rest is QUIC/TLS); samod exchanged {} messages.",
        blr.extra, smr.extra
    ));
    Ok(out)
}

// --- B4 -----------------------------------------------------------------------

/// B4: edits from A reach B through the server.
pub async fn b4(branch: &GeneratedBranch, sizes: &Sizes) -> Result<Outcome> {
    let docs = b3_docs(branch, 1);
    let bytes = all_bytes(&docs);
    let activity = docs
        .iter()
        .find(|d| d.kind == DocKind::Activity)
        .context("an activity")?
        .id;
    let mut out = Outcome::default();

    let dir = TempDir::new()?;
    bl::seed(dir.path(), bytes.iter().map(Vec::as_slice))?;
    let server = ServerProcess::start(System::Branchline, dir.path())?;
    let admin = Admin::open(dir.path())?;
    let mut a = Device::join("b4 a", bl::invite(&admin, branch.branch)?).await?;
    let mut b = Device::join("b4 b", bl::invite(&admin, branch.branch)?).await?;
    let mut bl_lat = Vec::new();
    for i in 0..sizes.b4_edits {
        let edit = || {
            bl::append_minutes(&mut a.store(), activity, &format!("\n发言 {i}"))?;
            Ok(activity)
        };
        bl_lat.push(bl::propagation(edit, b.client()).await?);
    }
    a.close().await;
    b.close().await;
    server.stop()?;

    let sdir = TempDir::new()?;
    let ids = sm::seed(sdir.path(), bytes.iter().map(Vec::as_slice)).await?;
    let server = ServerProcess::start(System::Samod, sdir.path())?;
    let (adir, bdir) = (TempDir::new()?, TempDir::new()?);
    let mut a = SamodDevice::new(Some(adir.path())).await;
    let mut b = SamodDevice::new(Some(bdir.path())).await;
    a.connect(server.addr()).await?;
    b.connect(server.addr()).await?;
    let ha = a.find_all(&ids[2..3]).await?;
    let hb = b.find_all(&ids[2..3]).await?;
    a.wait_in_sync(&ha).await?;
    b.wait_in_sync(&hb).await?;
    let (ha, hb): (&DocHandle, &DocHandle) = (&ha[0], &hb[0]);
    let mut changes = Box::pin(hb.changes());
    let mut sm_lat = Vec::new();
    for i in 0..sizes.b4_edits {
        let t = Instant::now();
        let heads = ha.with_document(|d| {
            sm::append_minutes(d, &format!("\n发言 {i}"))?;
            anyhow::Ok(d.get_heads())
        })?;
        tokio::time::timeout(sm::PATIENCE, async {
            loop {
                let has =
                    hb.with_document(|d| heads.iter().all(|h| d.get_change_by_hash(h).is_some()));
                if has {
                    return Ok(());
                }
                if changes.next().await.is_none() {
                    anyhow::bail!("B's change stream ended");
                }
            }
        })
        .await
        .context("samod propagation timed out")??;
        sm_lat.push(t.elapsed());
    }
    drop(changes);
    a.stop().await;
    b.stop().await;
    server.stop()?;

    let n = sizes.b4_edits;
    let (bp50, bp99) = (quantile(&mut bl_lat, 0.5), quantile(&mut bl_lat, 0.99));
    let (sp50, sp99) = (quantile(&mut sm_lat, 0.5), quantile(&mut sm_lat, 0.99));
    out.rows.push(
        Row::new(
            "B4",
            format!("edit A → server → B, p50 of {n}"),
            Unit::Ms,
            ms(bp50),
            Some(ms(sp50)),
        )
        .target(Target::RatioAtMost(0.5)),
    );
    out.rows.push(Row::new(
        "B4",
        format!("edit A → server → B, p99 of {n}"),
        Unit::Ms,
        ms(bp99),
        Some(ms(sp99)),
    ));
    Ok(out)
}

// --- B5 -----------------------------------------------------------------------

/// How long samod may take to confirm one step in B5 before the device is
/// counted as stuck.
const SAMOD_STEP: Duration = Duration::from_secs(20);

/// B5: many devices push changes at once.
pub async fn b5(sizes: &Sizes) -> Result<Outcome> {
    let (n, k) = (sizes.b5_devices, sizes.b5_edits);
    let mut out = Outcome::default();

    // Branchline: one branch per device.
    let dir = TempDir::new()?;
    let server = ServerProcess::start(System::Branchline, dir.path())?;
    let admin = Admin::open(dir.path())?;
    let mut setup = Vec::new();
    for i in 0..n {
        let branch = bl::add_branch(dir.path(), &format!("支部 {i}"))?;
        setup.push((branch, bl::invite(&admin, branch)?));
    }
    let mut devices = Vec::new();
    for chunk in setup.chunks(20) {
        let joined = join_all(
            chunk
                .iter()
                .enumerate()
                .map(|(i, (branch, invite))| async move {
                    let device = LightDevice::join(format!("b5 {i}"), invite.clone()).await?;
                    let doc = device.create_activity(*branch).await?;
                    anyhow::Ok((device, doc))
                }),
        )
        .await;
        for j in joined {
            devices.push(j?);
        }
    }
    let peak_reset = server.reset_peak();
    let cpu = server.cpu()?;
    let t = Instant::now();
    let lat = join_all(devices.iter().map(|(device, doc)| async move {
        let mut lat = Vec::new();
        for i in 0..k {
            lat.push(bl::acked_edit(device, *doc, &format!("\n第{i}条")).await?);
        }
        anyhow::Ok(lat)
    }))
    .await;
    let bl_wall = t.elapsed();
    let bl_cpu = server.cpu()? - cpu;
    let bl_peak = server.peak_rss()?;
    let mut bl_lat: Vec<Duration> = Vec::new();
    for l in lat {
        bl_lat.extend(l?);
    }
    for (device, _) in devices {
        device.close().await;
    }
    server.stop()?;

    // samod
    let sdir = TempDir::new()?;
    let server = ServerProcess::start(System::Samod, sdir.path())?;
    let addr = server.addr();
    let mut devices = Vec::new();
    let mut refused = 0;
    let mut asked = 0;
    while asked < n {
        let chunk = (asked..n).take(20);
        asked = (asked + 20).min(n);
        let joined = join_all(chunk.map(|_| async move {
            let mut device = SamodDevice::new(None).await;
            device.connect(addr).await?;
            let handle = device
                .repo
                .create(sm::new_minutes_doc()?)
                .await
                .map_err(|_| anyhow::anyhow!("stopped"))?;
            let conn = device.connection()?;
            let taken = tokio::time::timeout(SAMOD_STEP, handle.they_have_our_changes(conn)).await;
            anyhow::Ok((device, handle, taken.is_ok()))
        }))
        .await;
        for j in joined {
            let (device, handle, taken) = j?;
            if taken {
                devices.push((device, handle));
            } else {
                refused += 1;
                drop(handle);
                device.stop().await;
            }
        }
    }
    let sm_peak_reset = server.reset_peak();
    let cpu = server.cpu()?;
    let t = Instant::now();
    let lat = join_all(devices.iter().map(|(device, handle)| async move {
        let conn = device.connection()?;
        let mut lat = Vec::new();
        for i in 0..k {
            let t = Instant::now();
            handle.with_document(|d| sm::append_minutes(d, &format!("\n第{i}条")))?;
            if tokio::time::timeout(SAMOD_STEP, handle.they_have_our_changes(conn))
                .await
                .is_err()
            {
                // Never acknowledged: this device stops pushing.
                break;
            }
            lat.push(t.elapsed());
        }
        anyhow::Ok(lat)
    }))
    .await;
    let sm_wall = t.elapsed();
    let sm_cpu = server.cpu()? - cpu;
    let sm_peak = server.peak_rss()?;
    let mut sm_lat: Vec<Duration> = Vec::new();
    for l in lat {
        sm_lat.extend(l?);
    }
    for (device, handle) in devices {
        drop(handle);
        device.stop().await;
    }
    server.stop()?;

    let changes = (n * k) as f64;
    let sm_changes = sm_lat.len() as f64;
    if refused > 0 || sm_lat.len() < n * k {
        out.notes.push(format!(
            "B5: samod's server never confirmed the new document of {refused} of {n} devices within {SAMOD_STEP:?} (those devices were left out), and confirmed {} of the {} changes the others pushed; its rate counts confirmed changes only.",
            sm_lat.len(),
            (n - refused) * k
        ));
    }
    out.rows.push(
        Row::new(
            "B5",
            format!("ingest, {n} devices × {k} changes: changes/s"),
            Unit::PerSec,
            changes / bl_wall.as_secs_f64(),
            Some(sm_changes / sm_wall.as_secs_f64()),
        )
        .target(Target::RatioAtLeast(3.0)),
    );
    out.rows.push(Row::new(
        "B5",
        "ack latency p50",
        Unit::Ms,
        ms(quantile(&mut bl_lat, 0.5)),
        Some(ms(quantile(&mut sm_lat, 0.5))),
    ));
    out.rows.push(Row::new(
        "B5",
        "ack latency p99",
        Unit::Ms,
        ms(quantile(&mut bl_lat, 0.99)),
        Some(ms(quantile(&mut sm_lat, 0.99))),
    ));
    out.rows.push(Row::new(
        "B5",
        "server peak memory (RSS) during the pushes",
        Unit::Bytes,
        bl_peak as f64,
        Some(sm_peak as f64),
    ));
    out.rows.push(Row::new(
        "B5",
        "server CPU per change",
        Unit::Ms,
        ms(bl_cpu) / changes,
        Some(ms(sm_cpu) / sm_changes.max(1.0)),
    ));
    if !(peak_reset && sm_peak_reset) {
        out.notes.push(
            "B5: the kernel refused to reset the peak RSS; peaks include the setup.".to_owned(),
        );
    }
    Ok(out)
}

// --- B6 -----------------------------------------------------------------------

/// B6: memory per idle connected device.
pub async fn b6(sizes: &Sizes) -> Result<Outcome> {
    let n = sizes.b6_devices;
    let mut out = Outcome::default();
    let settle = Duration::from_secs(2);

    let dir = TempDir::new()?;
    let branch = bl::add_branch(dir.path(), "支部")?;
    let server = ServerProcess::start(System::Branchline, dir.path())?;
    let admin = Admin::open(dir.path())?;
    let invites = (0..n)
        .map(|_| bl::invite(&admin, branch))
        .collect::<Result<Vec<_>>>()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bl_before = server.rss()?;
    let mut devices = Vec::new();
    for (c, chunk) in invites.chunks(25).enumerate() {
        let joined = join_all(
            chunk
                .iter()
                .enumerate()
                .map(|(i, invite)| LightDevice::join(format!("b6 {c}-{i}"), invite.clone())),
        )
        .await;
        for j in joined {
            devices.push(j?);
        }
    }
    tokio::time::sleep(settle).await;
    let bl_after = server.rss()?;
    for device in devices {
        device.close().await;
    }
    server.stop()?;

    let sdir = TempDir::new()?;
    let profile_and_roster = branch_header_docs(sdir.path()).await?;
    let server = ServerProcess::start(System::Samod, sdir.path())?;
    let addr = server.addr();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sm_before = server.rss()?;
    let mut devices = Vec::new();
    while devices.len() < n {
        let chunk = (devices.len()..n).take(25);
        let ids = &profile_and_roster;
        let joined = join_all(chunk.map(|_| async move {
            let mut device = SamodDevice::new(None).await;
            device.connect(addr).await?;
            let handles = device.find_all(ids).await?;
            device.wait_in_sync(&handles).await?;
            anyhow::Ok((device, handles))
        }))
        .await;
        for j in joined {
            devices.push(j?);
        }
    }
    tokio::time::sleep(settle).await;
    let sm_after = server.rss()?;
    for (device, handles) in devices {
        drop(handles);
        device.stop().await;
    }
    server.stop()?;

    let per = |before: u64, after: u64| after.saturating_sub(before) as f64 / n as f64;
    out.rows.push(
        Row::new(
            "B6",
            format!("server memory per idle device ({n} connected)"),
            Unit::Bytes,
            per(bl_before, bl_after),
            Some(per(sm_before, sm_after)),
        )
        .target(Target::RatioAtMost(0.5)),
    );
    out.rows.push(Row::new(
        "B6",
        "server RSS with all devices connected",
        Unit::Bytes,
        bl_after as f64,
        Some(sm_after as f64),
    ));
    out.notes.push(format!(
        "B6: server RSS before the first device: Branchline {:.1} MiB, samod {:.1} MiB.",
        bl_before as f64 / 1048576.0,
        sm_before as f64 / 1048576.0
    ));
    Ok(out)
}

/// Seeds a samod store at `dir` with a branch's profile and roster (as the
/// Branchline server's `add_branch` writes them) and returns their ids.
async fn branch_header_docs(dir: &Path) -> Result<Vec<samod::DocumentId>> {
    let bl_dir = TempDir::new()?;
    bl::add_branch(bl_dir.path(), "支部")?;
    let admin = Admin::open(bl_dir.path())?;
    let mut docs = Vec::new();
    for id in admin.document_ids()? {
        if let Some(bytes) = admin.document_bytes(id)? {
            docs.push(bytes);
        }
    }
    sm::seed(dir, docs.iter().map(Vec::as_slice)).await
}
