//! What the program measures on a real Branchline server over QUIC on
//! 127.0.0.1, with the real sync client: what QUIC and TLS add to the
//! protocol frames of small pushes and pulls, a running app's reconnect, a
//! keep-alive, and (with the server in its own process) the server's CPU
//! per push, per pull and per reconnect.
//!
//! A client's `SessionReport` covers its current connection and is brought
//! up to date whenever the client comes back in sync, so every figure here
//! is a difference between two reports taken in sync on one connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use branchline_bench::branchline_side::{self as bl, LightDevice, PATIENCE};
use branchline_core::net::{ClientConfig, SessionReport, Status, SyncClient};
use branchline_core::sync::SyncEvent;
use branchline_core::{BranchId, DocId, Store};
use branchline_protocol::InviteLink;
use futures_util::future::join_all;

/// A server to measure against.
pub trait LiveServer {
    /// A one-time secretary invite into the branch being measured.
    fn invite(&self) -> Result<InviteLink>;
    /// The server process's CPU time so far, if it runs in its own process.
    fn cpu(&self) -> Result<Option<Duration>>;
}

/// How much to do.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Changes pushed with nobody else connected.
    pub pushes: usize,
    /// Changes pushed while `readers` devices pull each.
    pub pulls: usize,
    /// Devices pulling.
    pub readers: usize,
    /// Reconnects per reader.
    pub reconnects: usize,
    /// How long the keep-alive device stays idle, per round.
    pub idle: Duration,
}

/// The figures measured live.
#[derive(Debug, Clone, Default)]
pub struct LiveFigures {
    /// UDP payload / protocol frames, pushes.
    pub push_udp_factor: f64,
    /// UDP payload / protocol frames, pulls.
    pub pull_udp_factor: f64,
    /// Protocol frames per live push (a line appended to the minutes).
    pub push_frames: f64,
    /// Protocol frames per live pull.
    pub pull_frames: f64,
    /// UDP bytes of a running app's reconnect, nothing changed.
    pub reconnect_bytes: f64,
    /// UDP bytes per keep-alive, both ways.
    pub keepalive_bytes: f64,
    /// Server CPU per push, per pull, per reconnect, in ms (own process only).
    pub cpu_ms: Option<(f64, f64, f64)>,
}

/// The keep-alive interval of the idle device (the default is 15 s; a
/// short one gives many keep-alives in a short measurement).
pub const KEEPALIVE: Duration = Duration::from_millis(100);

fn udp(r: &SessionReport) -> u64 {
    r.udp_bytes_sent + r.udp_bytes_received
}

fn frames(r: &SessionReport) -> u64 {
    r.frame_bytes_sent + r.frame_bytes_received
}

/// UDP and frame bytes between two reports of one connection.
fn between(before: &SessionReport, after: &SessionReport) -> Result<(f64, f64)> {
    ensure!(
        after.connections == before.connections,
        "the connection changed during a measurement"
    );
    Ok((
        (udp(after) - udp(before)) as f64,
        (frames(after) - frames(before)) as f64,
    ))
}

fn cpu_ms(before: Option<Duration>, after: Option<Duration>) -> Option<f64> {
    Some((after? - before?).as_secs_f64() * 1000.0)
}

/// Appends a line to `doc`'s minutes on `device` and waits until the server
/// acknowledged it and the device is back in sync.
async fn push(device: &LightDevice, doc: DocId, line: &str) -> Result<()> {
    let mut events = device.client.subscribe();
    bl::append_minutes(&mut device.store(), doc, line)?;
    bl::wait_for(
        &mut events,
        |e| matches!(e, SyncEvent::Acknowledged(d) if *d == doc),
    )
    .await?;
    device.client.wait_in_sync(PATIENCE).await?;
    Ok(())
}

/// Waits until `device` holds `doc` at `heads`.
async fn holds(device: &LightDevice, doc: DocId, heads: &[automerge::ChangeHash]) -> Result<()> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if device.store().heads(doc)?.as_deref() == Some(heads) {
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .context("a reader never received the change")?
}

/// Runs the live measurements against `server`, in `branch`.
pub async fn measure(
    server: &dyn LiveServer,
    branch: BranchId,
    sizes: Sizes,
) -> Result<LiveFigures> {
    let mut out = LiveFigures::default();

    // Pushes, nobody else connected.
    let writer = LightDevice::join("writer".to_owned(), server.invite()?).await?;
    let doc = writer.create_activity(branch).await?;
    writer.client.wait_in_sync(PATIENCE).await?;
    let (r0, c0) = (writer.client.report(), server.cpu()?);
    for i in 0..sizes.pushes {
        push(&writer, doc, &format!("\n第{i}项：讨论通过")).await?;
    }
    let (r1, c1) = (writer.client.report(), server.cpu()?);
    let (push_udp, push_frames) = between(&r0, &r1)?;
    out.push_udp_factor = push_udp / push_frames;
    out.push_frames = push_frames / sizes.pushes as f64;
    let cpu_push = cpu_ms(c0, c1).map(|ms| ms / sizes.pushes as f64);

    // Pulls: every reader connected pulls every change.
    let mut readers = Vec::new();
    for i in 0..sizes.readers {
        readers.push(LightDevice::join(format!("reader {i}"), server.invite()?).await?);
    }
    let heads = writer
        .store()
        .heads(doc)?
        .context("the writer's activity")?;
    for reader in &readers {
        holds(reader, doc, &heads).await?;
        reader.client.wait_in_sync(PATIENCE).await?;
    }
    let before: Vec<SessionReport> = readers.iter().map(|r| r.client.report()).collect();
    let c2 = server.cpu()?;
    for i in 0..sizes.pulls {
        push(&writer, doc, &format!("\n发言{i}：同意")).await?;
        let heads = writer
            .store()
            .heads(doc)?
            .context("the writer's activity")?;
        join_all(readers.iter().map(|r| holds(r, doc, &heads)))
            .await
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
    }
    for reader in &readers {
        reader.client.wait_in_sync(PATIENCE).await?;
    }
    let c3 = server.cpu()?;
    let (mut pull_udp, mut pull_frames) = (0.0, 0.0);
    for (reader, before) in readers.iter().zip(&before) {
        let (u, f) = between(before, &reader.client.report())?;
        pull_udp += u;
        pull_frames += f;
    }
    let pulls = (sizes.pulls * sizes.readers) as f64;
    out.pull_udp_factor = pull_udp / pull_frames;
    out.pull_frames = pull_frames / pulls;
    let cpu_pull = match (cpu_ms(c2, c3), cpu_push) {
        (Some(total), Some(push)) => Some(((total - push * sizes.pulls as f64) / pulls).max(0.0)),
        _ => None,
    };

    // Reconnects of a running app: the network goes and comes back.
    let c4 = server.cpu()?;
    let mut reconnect_bytes = 0.0;
    for _ in 0..sizes.reconnects {
        for reader in &readers {
            let connections = reader.client.report().connections;
            reader.client.set_network_available(false);
            reader
                .client
                .wait_for_status(PATIENCE, |s| *s == Status::Offline)
                .await?;
            reader.client.set_network_available(true);
            reader
                .client
                .wait_for_status(PATIENCE, |s| *s == Status::InSync)
                .await?;
            reader.client.wait_in_sync(PATIENCE).await?;
            let report = reader.client.report();
            ensure!(
                report.connections > connections,
                "the reader did not reconnect"
            );
            reconnect_bytes += udp(&report) as f64;
        }
    }
    let c5 = server.cpu()?;
    let reconnects = (sizes.reconnects * sizes.readers) as f64;
    out.reconnect_bytes = reconnect_bytes / reconnects;
    let cpu_session = cpu_ms(c4, c5).map(|ms| ms / reconnects);
    out.cpu_ms = match (cpu_push, cpu_pull, cpu_session) {
        (Some(a), Some(b), Some(c)) => Some((a, b, c)),
        _ => None,
    };
    for reader in readers {
        reader.close().await;
    }
    writer.close().await;

    // Keep-alives: an idle connection, then one push; the same push without
    // the wait tells what the push alone costs.
    let store = Arc::new(Mutex::new(Store::open_in_memory()?));
    let config = ClientConfig {
        keep_alive: KEEPALIVE,
        ..branchline_tests::client_config()
    };
    let idle = LightDeviceLike::join(store, server.invite()?, config).await?;
    let doc = idle.create_activity(branch).await?;
    idle.client.wait_in_sync(PATIENCE).await?;
    let mut waited = 0.0;
    let mut pushed = 0.0;
    for round in 0..2 {
        let r0 = idle.client.report();
        tokio::time::sleep(sizes.idle).await;
        idle.push(doc, &format!("\n休会{round}")).await?;
        let r1 = idle.client.report();
        idle.push(doc, &format!("\n复会{round}")).await?;
        let r2 = idle.client.report();
        waited += between(&r0, &r1)?.0;
        pushed += between(&r1, &r2)?.0;
    }
    let keepalives = 2.0 * sizes.idle.as_secs_f64() / KEEPALIVE.as_secs_f64();
    out.keepalive_bytes = ((waited - pushed) / keepalives).max(0.0);
    idle.client.shutdown().await;
    Ok(out)
}

/// A device with an in-memory store and its own client settings (the
/// bench's `LightDevice` uses the test settings).
struct LightDeviceLike {
    client: SyncClient,
    store: Arc<Mutex<Store>>,
}

impl LightDeviceLike {
    async fn join(
        store: Arc<Mutex<Store>>,
        invite: InviteLink,
        config: ClientConfig,
    ) -> Result<Self> {
        let client = SyncClient::join(Arc::clone(&store), invite, "idle", config);
        client
            .wait_in_sync(PATIENCE)
            .await
            .context("the idle device enrolling")?;
        Ok(Self { client, store })
    }

    async fn create_activity(&self, branch: BranchId) -> Result<DocId> {
        let doc = self.store.lock().expect("store lock").create_activity(
            branch,
            branchline_core::model::NewActivity {
                kind: "committee_meeting".to_owned(),
                title: "支委会".to_owned(),
                starts_at: Some("2026-03-02T19:00".parse()?),
                ends_at: Some("2026-03-02T20:00".parse()?),
                place: None,
                organizer: None,
                group: None,
                agenda: None,
            },
        )?;
        self.client.wait_in_sync(PATIENCE).await?;
        Ok(doc)
    }

    async fn push(&self, doc: DocId, line: &str) -> Result<()> {
        let mut events = self.client.subscribe();
        bl::append_minutes(&mut self.store.lock().expect("store lock"), doc, line)?;
        bl::wait_for(
            &mut events,
            |e| matches!(e, SyncEvent::Acknowledged(d) if *d == doc),
        )
        .await?;
        self.client.wait_in_sync(PATIENCE).await?;
        Ok(())
    }
}
