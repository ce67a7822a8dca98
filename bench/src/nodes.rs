//! N1: the server on PostgreSQL with one, two and three nodes, beside the
//! SQLite server, in the same run (issue 17).
//!
//! - **Deployments**: SQLite with one node, then PostgreSQL with 1, 2 and 3
//!   nodes sharing one database. The PostgreSQL is a private cluster
//!   ([`TempCluster`], fsync on), a fresh one per deployment. Every node is a
//!   server process of its own (`branchline-bench serve branchline <dir>`);
//!   the first node's data directory names the database in `database.url`,
//!   the others hold only a copy of that file: every node presents the TLS
//!   identity the database holds (made by node 1), the certificate the
//!   invites pin. A device is sent to a node by an invite whose server
//!   field names that node first (then the others, as a deployment's
//!   invites do).
//! - **Ingest**, as B5: N devices with in-memory stores, each in a branch of
//!   its own (no other device is told of its changes), spread over the
//!   nodes round-robin, each pushing in a closed loop (edit, wait for the
//!   server's `Ack`, edit again) for a fixed window. The rate is the changes
//!   acknowledged over the wall time from the start until the last device
//!   stopped (the window plus its last push). Afterwards every device's
//!   heads are looked up in the database, so each acknowledged change is
//!   known to be stored. Ack latency runs from before the local edit until
//!   the device sees the `Ack`.
//! - **Propagation**, as B4, with the ingest devices gone: device A on node 1
//!   and device B on the last node (the same node when there is one), both
//!   with file-backed stores, hold one activity; A edits it and we wait
//!   until B has stored the change, E times in a row. Then A makes E new
//!   activities, one at a time, each timed until B has stored it. With more
//!   than one node the change crosses through the database: node 1 commits
//!   and sends `NOTIFY`, the last node wakes, reads the change sequence and
//!   tells B. A change that has not reached B within 5 s (`ARRIVAL_LIMIT`) ends
//!   the edit series and is reported (the ratio to same-node becomes
//!   infinite, so the target is missed rather than left unchecked); a new
//!   activity that does not arrive fails the workload.
//! - **CPU**: the nodes' processes together, per change acknowledged.
//!   PostgreSQL's processes are not in it; the notes give the whole
//!   machine's busy time per change, which holds them (and the devices, and
//!   whatever else runs on the machine).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use branchline_core::DocId;
use branchline_core::model::{Activity, Level};
use branchline_protocol::InviteLink;
use branchline_server::Admin;
use branchline_server::pg_cluster::{self, TempCluster};
use branchline_tests::Device;
use futures_util::future::join_all;
use tempfile::TempDir;

use crate::branchline_side::{self as bl, LightDevice};
use crate::process::{self, ServerProcess, System};
use crate::table::{DeploymentRow, Row, Target, Unit};
use crate::workloads::{Outcome, Sizes, ms, quantile};

/// The database the nodes share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// The embedded default: one SQLite file, so one node.
    Sqlite,
    /// A private PostgreSQL cluster.
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// Server nodes on one database.
struct Deployment {
    /// The node processes, node 1 first. Dropped first: killed before
    /// their directories and database go.
    nodes: Vec<ServerProcess>,
    /// Their data directories; the first node's is the admin's.
    dirs: Vec<TempDir>,
    /// The PostgreSQL cluster, if the backend is PostgreSQL.
    cluster: Option<TempCluster>,
}

impl Deployment {
    async fn start(backend: Backend, nodes: usize) -> Result<Self> {
        let first = TempDir::new()?;
        let cluster = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let cluster = tokio::task::spawn_blocking(TempCluster::start).await??;
                std::fs::write(first.path().join("database.url"), cluster.url())?;
                Some(cluster)
            }
        };
        let mut deployment = Self {
            nodes: Vec::new(),
            dirs: vec![first],
            cluster,
        };
        // Node 1 migrates the database and stores the TLS identity the
        // others read from it.
        let node_1 = ServerProcess::start(System::Branchline, deployment.dirs[0].path())?;
        deployment.nodes.push(node_1);
        for _ in 1..nodes {
            let dir = node_dir(deployment.dirs[0].path())?;
            deployment
                .nodes
                .push(ServerProcess::start(System::Branchline, dir.path())?);
            deployment.dirs.push(dir);
        }
        Ok(deployment)
    }

    fn admin(&self) -> Result<Admin> {
        Ok(Admin::open(self.dirs[0].path())?)
    }

    /// A secretary invite into `branch` that sends the device to `node`
    /// (counted from 0) first.
    fn invite(
        &self,
        admin: &Admin,
        branch: branchline_core::BranchId,
        node: usize,
    ) -> Result<InviteLink> {
        let mut invite = bl::invite(admin, branch)?;
        let n = self.nodes.len();
        let order: Vec<String> = (0..n)
            .map(|k| self.nodes[(node + k) % n].addr().to_string())
            .collect();
        invite.server = order.join(",");
        Ok(invite)
    }

    /// CPU time of all nodes so far.
    fn node_cpu(&self) -> Result<Duration> {
        self.nodes.iter().map(ServerProcess::cpu).sum()
    }

    async fn stop(self) -> Result<()> {
        let Self {
            nodes,
            dirs,
            cluster,
        } = self;
        for node in nodes {
            node.stop()?;
        }
        drop(dirs);
        // Stopping the cluster waits for pg_ctl.
        tokio::task::spawn_blocking(move || drop(cluster)).await?;
        Ok(())
    }
}

/// A further node's data directory: only the database URL of the node at
/// `first`, as tests/tests/nodes.rs sets one up.
fn node_dir(first: &Path) -> Result<TempDir> {
    let dir = TempDir::new()?;
    std::fs::copy(first.join("database.url"), dir.path().join("database.url"))
        .context("copying database.url")?;
    Ok(dir)
}

/// CPU used over an interval, by whom.
#[derive(Debug, Clone, Copy)]
struct Cpu {
    nodes: Duration,
    devices: Duration,
    machine: Duration,
}

impl Cpu {
    fn now(deployment: &Deployment) -> Result<Self> {
        Ok(Self {
            nodes: deployment.node_cpu()?,
            devices: process::own_cpu()?,
            machine: process::machine_busy()?,
        })
    }

    fn since(self, before: Self) -> Self {
        Self {
            nodes: self.nodes.saturating_sub(before.nodes),
            devices: self.devices.saturating_sub(before.devices),
            machine: self.machine.saturating_sub(before.machine),
        }
    }
}

/// What the ingest found.
struct Ingest {
    latencies: Vec<Duration>,
    wall: Duration,
    cpu: Cpu,
}

async fn ingest(deployment: &Deployment, devices: usize, window: Duration) -> Result<Ingest> {
    let admin = deployment.admin()?;
    let mut setup = Vec::new();
    for i in 0..devices {
        let branch = admin.add_branch(&format!("支部 {i}"), Level::Branch, None)?;
        let invite = deployment.invite(&admin, branch, i % deployment.nodes.len())?;
        setup.push((i, branch, invite));
    }
    let mut pushers = Vec::new();
    for chunk in setup.chunks(20) {
        let joined = join_all(chunk.iter().map(|(i, branch, invite)| async move {
            let device = LightDevice::join(format!("n1 {i}"), invite.clone()).await?;
            let doc = device.create_activity(*branch).await?;
            anyhow::Ok((device, doc))
        }))
        .await;
        for j in joined {
            pushers.push(j?);
        }
    }

    let before = Cpu::now(deployment)?;
    let started = Instant::now();
    let deadline = started + window;
    let pushed = join_all(pushers.iter().map(|(device, doc)| async move {
        let mut latencies = Vec::new();
        while Instant::now() < deadline {
            let line = format!("\n第{}条", latencies.len());
            latencies.push(bl::acked_edit(device, *doc, &line).await?);
        }
        anyhow::Ok(latencies)
    }))
    .await;
    let wall = started.elapsed();
    let cpu = Cpu::now(deployment)?.since(before);
    let mut latencies = Vec::new();
    for p in pushed {
        latencies.extend(p?);
    }
    for (device, doc) in &pushers {
        stored(&admin, device, *doc)?;
    }
    for (device, _) in pushers {
        device.close().await;
    }
    Ok(Ingest {
        latencies,
        wall,
        cpu,
    })
}

/// Checks that the database holds every change `device` made to `doc` and
/// that the device has an `Ack` for each.
fn stored(admin: &Admin, device: &LightDevice, doc: DocId) -> Result<()> {
    let summary = device
        .store()
        .documents()?
        .into_iter()
        .find(|s| s.id == doc)
        .context("the device lost its activity")?;
    ensure!(
        summary.unacked_changes == 0,
        "{} changes of {doc} were never acknowledged",
        summary.unacked_changes
    );
    let bytes = admin
        .document_bytes(doc)?
        .with_context(|| format!("the database lacks {doc}"))?;
    let mut on_server = automerge::AutoCommit::load(&bytes)?;
    for head in &summary.heads {
        ensure!(
            on_server.get_change_by_hash(head).is_some(),
            "acknowledged change {head} of {doc} is not in the database"
        );
    }
    Ok(())
}

/// How long a change may take to reach the device on the last node before
/// it counts as never arriving. Same-node propagation takes tens of
/// milliseconds; a missed notice is caught up by the nodes' poll, once a
/// second.
const ARRIVAL_LIMIT: Duration = Duration::from_secs(5);

/// What reached the device on the last node, and how fast.
struct Propagation {
    /// Edits of one activity both devices hold, as B4.
    edits: Vec<Duration>,
    /// The edit (counted from 0) that did not arrive within
    /// [`ARRIVAL_LIMIT`], which ends the series.
    missed: Option<usize>,
    /// New activities.
    created: Vec<Duration>,
}

/// Changes made on node 1 until a device on the last node has each: `count`
/// edits of one activity, then `count` new activities.
async fn propagation(deployment: &Deployment, count: usize) -> Result<Propagation> {
    let admin = deployment.admin()?;
    let branch = admin.add_branch("传播支部", Level::Branch, None)?;
    let last = deployment.nodes.len() - 1;
    let mut a = Device::join("n1 a", deployment.invite(&admin, branch, 0)?).await?;
    let mut b = Device::join("n1 b", deployment.invite(&admin, branch, last)?).await?;
    let meeting = |title: &str| branchline_tests::meeting("branch_meeting", title, "2026-01-05");
    let activity = a.store().create_activity(branch, meeting("支部党员大会"))?;
    a.wait_in_sync().await?;
    b.eventually("A's activity", |store| {
        store.get::<Activity>(activity).is_ok()
    })
    .await?;

    let mut edits = Vec::with_capacity(count);
    let mut missed = None;
    for i in 0..count {
        let edit = || {
            bl::append_minutes(&mut a.store(), activity, &format!("\n发言 {i}"))?;
            Ok(activity)
        };
        match tokio::time::timeout(ARRIVAL_LIMIT, bl::propagation(edit, b.client())).await {
            Ok(latency) => edits.push(latency?),
            Err(_) => {
                missed = Some(i);
                break;
            }
        }
    }
    let mut created = Vec::with_capacity(count);
    for i in 0..count {
        let create = || {
            Ok(a.store()
                .create_activity(branch, meeting(&format!("走访 {i}")))?)
        };
        let latency = tokio::time::timeout(ARRIVAL_LIMIT, bl::propagation(create, b.client()))
            .await
            .with_context(|| format!("new activity {i} did not arrive in {ARRIVAL_LIMIT:?}"))??;
        created.push(latency);
    }
    a.close().await;
    b.close().await;
    Ok(Propagation {
        edits,
        missed,
        created,
    })
}

/// N1: ingest and propagation on SQLite and on PostgreSQL with 1, 2 and 3
/// nodes.
pub async fn n1(sizes: &Sizes) -> Result<Outcome> {
    let mut out = Outcome::default();
    let mut plan = vec![(Backend::Sqlite, 1)];
    if pg_cluster::binaries().is_some() {
        plan.extend([1, 2, 3].map(|n| (Backend::Postgres, n)));
    } else {
        out.notes.push(format!(
            "N1: {} — the PostgreSQL rows were skipped.",
            pg_cluster::ClusterError::NotInstalled
        ));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (backend, nodes) in plan {
        let t = Instant::now();
        let what = format!(
            "{} with {nodes} node{}",
            backend.name(),
            if nodes == 1 { "" } else { "s" }
        );
        let deployment = Deployment::start(backend, nodes)
            .await
            .with_context(|| format!("starting {what}"))?;
        let mut ingest = ingest(&deployment, sizes.n1_devices, sizes.n1_window)
            .await
            .with_context(|| format!("ingest on {what}"))?;
        let mut prop = propagation(&deployment, sizes.n1_edits)
            .await
            .with_context(|| format!("propagation on {what}"))?;
        deployment.stop().await?;

        let changes = ingest.latencies.len();
        let per_change = |d: Duration| ms(d) / changes.max(1) as f64;
        let cpu = ingest.cpu;
        out.notes.push(format!(
            "N1 {what}: during the ingest the machine was busy {:.0} % of {cores} cores, \
             {:.2} ms per change: nodes {:.2} ms, devices {:.2} ms, the rest (PostgreSQL \
             and anything else running) {:.2} ms; the deployment took {:.1?} in all.",
            100.0 * cpu.machine.as_secs_f64() / (ingest.wall.as_secs_f64() * cores as f64),
            per_change(cpu.machine),
            per_change(cpu.nodes),
            per_change(cpu.devices),
            per_change(cpu.machine.saturating_sub(cpu.nodes + cpu.devices)),
            t.elapsed()
        ));
        if let Some(i) = prop.missed {
            out.notes.push(format!(
                "N1 {what}: edit {} of {} to the activity both devices hold did not reach \
                 the device on node {nodes} within {ARRIVAL_LIMIT:?} ({} had); the edit \
                 series stopped there. New activities made on node 1 did arrive.",
                i + 1,
                sizes.n1_edits,
                prop.edits.len()
            ));
        }
        let edits = prop.missed.is_none().then(|| {
            let p50 = ms(quantile(&mut prop.edits, 0.5));
            (p50, ms(quantile(&mut prop.edits, 0.99)))
        });
        out.deployments.push(DeploymentRow {
            backend: backend.name(),
            nodes,
            devices: sizes.n1_devices,
            changes,
            per_sec: changes as f64 / ingest.wall.as_secs_f64(),
            ack_p50: ms(quantile(&mut ingest.latencies, 0.5)),
            ack_p99: ms(quantile(&mut ingest.latencies, 0.99)),
            node_cpu_per_change: per_change(cpu.nodes),
            edits_tried: sizes.n1_edits,
            edits,
            missed: prop.missed,
            created: prop.created.len(),
            created_p50: ms(quantile(&mut prop.created, 0.5)),
            created_p99: ms(quantile(&mut prop.created, 0.99)),
        });
    }

    let on_pg = |n: usize| {
        out.deployments
            .iter()
            .find(|r| r.backend == Backend::Postgres.name() && r.nodes == n)
            .cloned()
    };
    let (one, two, three) = (on_pg(1), on_pg(2), on_pg(3));
    let Some(one) = one else {
        return Ok(out);
    };
    if let Some(two) = &two {
        out.rows.push(
            Row::new(
                "N1",
                "ingest on PostgreSQL, 2 nodes / 1 node",
                Unit::Ratio,
                two.per_sec / one.per_sec,
                None,
            )
            .target(Target::ValueAtLeast(1.6)),
        );
    }
    if let Some(three) = &three {
        out.rows.push(Row::new(
            "N1",
            "ingest on PostgreSQL, 3 nodes / 1 node",
            Unit::Ratio,
            three.per_sec / one.per_sec,
            None,
        ));
    }
    for (k, row) in [(2, &two), (3, &three)] {
        let Some(row) = row else { continue };
        // An edit that never arrived makes the ratio infinite: the target
        // is missed, not left unchecked.
        let (edit, same) = (
            row.edits.map_or(f64::INFINITY, |e| e.0),
            one.edits.map(|e| e.0),
        );
        if let Some(same) = same {
            let metric =
                format!("propagation p50 on PostgreSQL, edit, node 1 → node {k} / same node");
            let mut ratio = Row::new("N1", metric, Unit::Ratio, edit / same, None);
            if k == 2 {
                ratio = ratio.target(Target::ValueAtMost(2.0));
            }
            out.rows.push(ratio);
        }
        out.rows.push(Row::new(
            "N1",
            format!("propagation p50 on PostgreSQL, new activity, node 1 → node {k} / same node"),
            Unit::Ratio,
            row.created_p50 / one.created_p50,
            None,
        ));
    }
    Ok(out)
}
