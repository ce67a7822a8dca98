//! Field figures: a phone that was offline for a day reconnects over each
//! network profile of `branchline_tests::impair` (GPRS, EDGE, 3G, flaky) and
//! catches up with a day's work at its branch.
//!
//! `cargo bench -p branchline-tests --bench field` prints, per profile: the
//! time from coming back online to holding everything (converged), the bytes
//! on the wire both ways (UDP payloads through the impairment proxy, QUIC
//! and TLS included, retransmissions included), and the ratio to the floor.
//!
//! **The floor** is what no protocol could beat on that link: the day's
//! changes in automerge's compressed incremental encoding (`save_after` the
//! phone's heads, summed over the documents changed) clocked through the
//! down link, plus four round trips: the QUIC and TLS 1.3 handshake, `Hello`
//! with the digest, one manifest range request, and one document-sync
//! exchange (document syncs run in parallel, so one round suffices in
//! principle). Ratios: time ÷ floor time, and wire bytes ÷ change bytes.
//!
//! The user-space proxy stands in for `netem`, which these kernels lack. On
//! the flaky profile a 10 s blackout starts 1 s into the catch-up.
//! `-- --quick` uses a smaller branch and one run per profile; otherwise the
//! median of three runs is shown.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use branchline_core::DocId;
use branchline_core::workload::{WorkloadSpec, generate};
use branchline_protocol::Role;
use branchline_tests::impair::{Profile, Proxy};
use branchline_tests::{Device, TestServer, a_day_of_work, with_server};

/// Round trips no catch-up can avoid (module docs).
const FLOOR_ROUND_TRIPS: u32 = 4;

struct Figures {
    converge: Duration,
    up: u64,
    down: u64,
    change_bytes: u64,
    floor: Duration,
}

async fn wait_same(phone: &Device, reference: &Device, patience: Duration) -> Result<()> {
    let deadline = Instant::now() + patience;
    loop {
        if phone.heads()? == reference.heads()? {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the phone did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The day's changes the phone lacks, in automerge's incremental encoding.
fn change_bytes(reference: &Device, phone: &Device, changed: &[DocId]) -> Result<u64> {
    let mut total = 0;
    for doc in changed {
        let mut theirs = reference.store().load_document(*doc)?;
        let heads = phone.store().heads(*doc)?.unwrap_or_default();
        total += if heads.is_empty() {
            theirs.save().len()
        } else {
            theirs.save_after(&heads).len()
        } as u64;
    }
    Ok(total)
}

async fn run(profile: &Profile, spec: &WorkloadSpec, seed: u64) -> Result<Figures> {
    let server = TestServer::start().await?;
    let branch = generate(spec)?;
    server
        .admin()
        .import_documents(branch.documents.iter().map(|d| d.bytes.as_slice()))?;
    let mut secretary = server
        .device("secretary", branch.branch, Role::Secretary, None)
        .await?;
    let proxy = Proxy::start(server.running().local_addr(), Profile::clear(), seed).await?;
    let invite = server.invite(branch.branch, Role::Committee, None)?;
    let phone = Device::join("phone", with_server(invite, proxy.addr())).await?;
    wait_same(&phone, &secretary, Duration::from_secs(120)).await?;

    phone.go_offline().await?;
    let changed = a_day_of_work(&mut secretary.store(), branch.branch, 1)?;
    secretary.wait_in_sync().await?;
    let needed = change_bytes(&secretary, &phone, &changed)?;

    proxy.set_profile(profile.clone());
    let before = proxy.counters();
    let started = Instant::now();
    phone.client().set_network_available(true);
    if profile.blackouts.is_some() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        proxy.set_blackout(true);
        tokio::time::sleep(Duration::from_secs(10)).await;
        proxy.set_blackout(false);
    }
    wait_same(&phone, &secretary, Duration::from_secs(600))
        .await
        .with_context(|| format!("catching up over {}", profile.name))?;
    let converge = started.elapsed();
    let after = proxy.counters();
    let floor = Duration::from_secs_f64(needed as f64 * 8.0 / profile.down_bps as f64)
        + profile.rtt() * FLOOR_ROUND_TRIPS;
    secretary.close().await;
    Ok(Figures {
        converge,
        up: after.up_bytes - before.up_bytes,
        down: after.down_bytes - before.down_bytes,
        change_bytes: needed,
        floor,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 3 };
    let spec = if quick {
        WorkloadSpec {
            members: 25,
            years: 1,
            activities_per_month: 2,
            petitions: 10,
            ..WorkloadSpec::default()
        }
    } else {
        WorkloadSpec::default()
    };
    let profiles = [
        Profile::gprs(),
        Profile::edge(),
        Profile::umts(),
        Profile::flaky(Duration::from_secs(3600)),
    ];
    println!(
        "a day offline, then catch up: {} members, {} year(s), {} petitions at the branch; {runs} run(s) per profile, median shown",
        spec.members, spec.years, spec.petitions
    );
    println!(
        "{:<7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>8}",
        "profile",
        "converge",
        "up B",
        "down B",
        "wire B",
        "change B",
        "floor",
        "t/floor",
        "B/change"
    );
    for (n, profile) in profiles.iter().enumerate() {
        let mut all = Vec::new();
        for r in 0..runs {
            all.push(run(profile, &spec, (n * 10 + r) as u64).await?);
        }
        all.sort_by_key(|f| f.converge);
        let f = &all[all.len() / 2];
        let wire = f.up + f.down;
        println!(
            "{:<7} {:>10.2?} {:>9} {:>9} {:>9} {:>9} {:>10.2?} {:>8.1} {:>8.1}",
            profile.name,
            f.converge,
            f.up,
            f.down,
            wire,
            f.change_bytes,
            f.floor,
            f.converge.as_secs_f64() / f.floor.as_secs_f64(),
            wire as f64 / f.change_bytes.max(1) as f64
        );
    }
    Ok(())
}
