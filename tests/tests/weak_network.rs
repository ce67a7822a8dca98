//! The real server and real clients (QUIC, TLS) through the UDP impairment
//! proxy of `branchline_tests::impair`: rural links, address changes and
//! blackouts. No `netem` on these kernels: the user-space proxy does all of it.
//!
//! The CI versions keep the profiles' rates, delays and loss as specified and
//! keep the data small. One thing is scaled down, and says so: the blackout
//! that outlasts the connection uses a 3 s client idle timeout instead of
//! 60 s, so "longer than the idle timeout" takes seconds, not minutes.
//! `BRANCHLINE_FIELD_FULL=1` runs the same scenarios with the default client
//! settings and more documents (several minutes).

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use branchline_core::net::ClientConfig;
use branchline_protocol::Role;
use branchline_tests::impair::{Profile, Proxy};
use branchline_tests::{Device, PATIENCE, TestServer, a_day_of_work, client_config, small_branch};

fn full() -> bool {
    std::env::var_os("BRANCHLINE_FIELD_FULL").is_some()
}

/// Waits until `phone` holds every document `reference` holds, at the same heads.
async fn wait_same(phone: &Device, reference: &Device, patience: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if phone.heads()? == reference.heads()? {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{} did not catch up with {}",
            phone.name,
            reference.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A secretary's device on the server's own link, with a generated branch.
async fn branch_with_secretary(
    server: &TestServer,
    petitions: usize,
) -> Result<(branchline_core::BranchId, Device)> {
    let branch = small_branch(11, petitions)?;
    server
        .admin()
        .import_documents(branch.documents.iter().map(|d| d.bytes.as_slice()))?;
    let secretary = server
        .device("secretary", branch.branch, Role::Secretary, None)
        .await?;
    Ok((branch.branch, secretary))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_offline_for_a_day_catches_up_over_gprs() -> Result<()> {
    let server = TestServer::start().await?;
    let (branch, mut secretary) =
        branch_with_secretary(&server, if full() { 60 } else { 3 }).await?;
    let proxy = Proxy::start(server.running().local_addr(), Profile::gprs(), 1).await?;
    let invite = server.invite(branch, Role::Committee, None)?;
    let phone = Device::start(
        "committee phone",
        branchline_tests::with_server(invite, proxy.addr()),
        client_config(),
    )?;
    phone
        .client()
        .wait_in_sync(PATIENCE * 10)
        .await
        .context("first sync over GPRS")?;
    wait_same(&phone, &secretary, PATIENCE * 4).await?;

    phone.go_offline().await?;
    let days = if full() { 3 } else { 1 };
    for day in 0..days {
        a_day_of_work(&mut secretary.store(), branch, day)?;
    }
    secretary.wait_in_sync().await?;
    let before = proxy.counters();
    phone.client().set_network_available(true);
    wait_same(&phone, &secretary, PATIENCE * 6).await?;
    let after = proxy.counters();
    println!(
        "GPRS catch-up after {days} day(s) offline: {} bytes up, {} bytes down, {} datagrams dropped",
        after.up_bytes - before.up_bytes,
        after.down_bytes - before.down_bytes,
        after.dropped - before.dropped
    );
    // The phone's own store agrees with the server too.
    branchline_tests::assert_converged(&server, &[&phone, &secretary])?;
    secretary.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_change_mid_sync_migrates_the_connection() -> Result<()> {
    let server = TestServer::start().await?;
    let (branch, secretary) = branch_with_secretary(&server, if full() { 200 } else { 40 }).await?;
    let total = secretary.store().documents()?.len();
    let proxy = Proxy::start(server.running().local_addr(), Profile::umts(), 2).await?;
    let invite = server.invite(branch, Role::Secretary, None)?;
    let phone = Device::start(
        "secretary phone",
        branchline_tests::with_server(invite, proxy.addr()),
        client_config(),
    )?;
    // Move while documents are arriving.
    phone
        .eventually("the first documents", |s| {
            s.documents().map(|d| d.len() >= 5).unwrap_or(false)
        })
        .await?;
    let held_at_move = phone.store().documents()?.len();
    proxy.change_address();
    phone
        .client()
        .wait_in_sync(PATIENCE * 10)
        .await
        .context("sync after the address change")?;
    wait_same(&phone, &secretary, PATIENCE * 4).await?;
    let report = phone.client().report();
    println!(
        "address changed with {held_at_move} of {total} documents held; {} connection(s), {} documents synced",
        report.connections, report.docs_synced
    );
    ensure!(
        held_at_move < total,
        "the sync was over before the address changed; the test proves nothing"
    );
    ensure!(
        report.connections == 1,
        "the address change cost a new connection ({}), not a migration",
        report.connections
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackout_during_first_sync_resumes_without_starting_over() -> Result<()> {
    let server = TestServer::start().await?;
    let (branch, secretary) = branch_with_secretary(&server, if full() { 200 } else { 60 }).await?;
    let total = secretary.store().documents()?.len();
    let mut profile = Profile::flaky(Duration::from_secs(3600));
    // Scaled down for CI (module docs): the connection gives up after 3 s.
    let config = if full() {
        client_config()
    } else {
        ClientConfig {
            keep_alive: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(3),
            ..client_config()
        }
    };
    let blackout = if full() {
        Duration::from_secs(70)
    } else {
        Duration::from_secs(5)
    };
    profile.blackouts = None;
    let proxy = Proxy::start(server.running().local_addr(), profile, 3).await?;
    let invite = server.invite(branch, Role::Secretary, None)?;
    let phone = Device::start(
        "secretary phone",
        branchline_tests::with_server(invite, proxy.addr()),
        config,
    )?;
    phone
        .eventually("a third of the documents", |s| {
            s.documents().map(|d| d.len() >= total / 3).unwrap_or(false)
        })
        .await?;
    proxy.set_blackout(true);
    tokio::time::sleep(blackout).await;
    let held = phone.store().documents()?.len();
    proxy.set_blackout(false);
    phone
        .client()
        .wait_in_sync(PATIENCE * 10)
        .await
        .context("sync after the blackout")?;
    wait_same(&phone, &secretary, PATIENCE * 4).await?;
    let report = phone.client().report();
    println!(
        "blackout of {blackout:?} with {held} of {total} documents held; then {} connection(s), the last synced {} documents and received {} whole",
        report.connections, report.docs_synced, report.docs_received_whole
    );
    ensure!(held < total, "the sync finished before the blackout");
    ensure!(
        report.connections >= 2,
        "the blackout did not outlast the connection"
    );
    // The new session fetches what is missing, not everything again.
    let fetched = (report.docs_synced + report.docs_received_whole) as usize;
    ensure!(
        fetched <= total - held,
        "the session after the blackout fetched {fetched} documents; only {} were missing",
        total - held
    );
    Ok(())
}
