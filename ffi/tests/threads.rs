//! Dropping a client stops its runtime: no thread of it is left running.
//!
//! Its own test binary, so no other test's clients run at the same time. The
//! library names its threads `branchline`; the server here names its own
//! `test-server`.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use branchline_ffi::BranchlineClient;
use branchline_protocol::Role;

/// Names of this process's threads.
fn thread_names() -> Result<Vec<String>> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")? {
        // A thread may end while we look.
        if let Ok(name) = std::fs::read_to_string(task?.path().join("comm")) {
            names.push(name.trim().to_owned());
        }
    }
    Ok(names)
}

fn library_threads() -> Result<usize> {
    Ok(thread_names()?
        .iter()
        .filter(|n| n.as_str() == "branchline")
        .count())
}

#[test]
fn dropping_a_syncing_client_ends_all_its_threads() -> Result<()> {
    let server = common::TestServer::start()?;
    let branch = server.branch("线程测试支部")?;
    let invite = server.invite(branch, Role::Secretary)?;
    ensure!(library_threads()? == 0, "no library thread before a client");

    // The app's executor: anything that is not the library's runtime.
    let app = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let client = app.block_on(BranchlineClient::open(
        dir.path().to_string_lossy().into_owned(),
    ))?;
    let sync = app.block_on(client.enroll(invite, "thread test".to_owned()))?;
    app.block_on(client.wait_in_sync(30_000))?;
    app.block_on(client.add_group(branch.to_string(), "第一小组".to_owned()))?;
    ensure!(library_threads()? >= 2, "the client runs its own threads");
    ensure!(sync.is_active());

    drop(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    while library_threads()? > 0 {
        ensure!(
            Instant::now() < deadline,
            "threads left after drop: {:?}",
            thread_names()?
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ensure!(!sync.is_active(), "the handle knows its sync ended");
    Ok(())
}
