//! A full disk, for real: a server and a device on a tmpfs volume of a few
//! megabytes that fills up. Writes are refused with a clear code, nothing that
//! was not stored is acknowledged, and once space returns everything goes on,
//! with nothing lost and the databases' integrity checks clean.
//!
//! Mounting needs root (or `CAP_SYS_ADMIN`); where the test may not mount, it
//! says so and skips.

use anyhow::{Context as _, Result};
use branchline_core::Store;
use branchline_core::model::{Level, NewMember};
use branchline_core::store::query::MemberFilter;
use branchline_protocol::Role;
use branchline_tests::{SmallVolume, TestServer, integrity_check, server_db};

fn member(n: usize) -> NewMember {
    NewMember {
        // A long post, so the volume fills in a few hundred members.
        name: format!("Member {n:04}"),
        post: Some("志愿服务队 ".repeat(200)),
        ..Default::default()
    }
}

fn volume(megabytes: u32) -> Result<Option<SmallVolume>> {
    let volume = SmallVolume::mount(megabytes)?;
    if volume.is_none() {
        eprintln!("SKIPPED: this process may not mount a tmpfs volume (needs root)");
    }
    Ok(volume)
}

#[test]
fn a_device_whose_storage_fills_up_refuses_edits_and_loses_nothing() -> Result<()> {
    let Some(volume) = volume(4)? else {
        return Ok(());
    };
    let path = volume.path().join("branchline.db");
    let mut store = Store::open(&path)?;
    let branch = store.create_branch("Riverside", Level::Branch, None)?;
    for n in 0..5 {
        store.add_member(branch, member(n))?;
    }
    let filler = volume.fill()?;

    // Edits go on into the pages SQLite already has, then stop with store.full.
    let mut stored = 5;
    let refused = loop {
        match store.add_member(branch, member(stored)) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        anyhow::ensure!(stored < 10_000, "the volume never filled");
    };
    assert_eq!(refused.code(), "store.full", "{refused}");
    let listed = store.list_members(branch, &MemberFilter::default())?;
    assert_eq!(listed.len(), stored, "every edit that returned Ok is there");
    // Still refused while full, and reading still works.
    assert_eq!(
        store.add_member(branch, member(stored)).unwrap_err().code(),
        "store.full"
    );

    std::fs::remove_file(filler)?;
    store.add_member(branch, member(stored))?;
    store.check_integrity()?;
    drop(store);
    let store = Store::open(&path)?;
    assert_eq!(
        store.list_members(branch, &MemberFilter::default())?.len(),
        stored + 1
    );
    integrity_check(&path)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_disk_fills_up_acknowledges_only_what_it_stored() -> Result<()> {
    let Some(volume) = volume(8)? else {
        return Ok(());
    };
    let data = tempfile::tempdir_in(volume.path())?;
    let data_path = data.path().to_path_buf();
    let server = TestServer::start_in(data).await?;
    let branch = server.branch("Riverside")?;
    let phone = server
        .device("secretary phone", branch, Role::Secretary, None)
        .await?;
    for n in 0..5 {
        phone.store().add_member(branch, member(n))?;
    }
    phone.wait_in_sync().await?;
    let filler = volume.fill()?;

    // The phone keeps editing (its own storage is fine); the server runs out.
    for n in 5..60 {
        phone.store().add_member(branch, member(n))?;
    }
    // Give the server time to try, and fail, to store them.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let pending = phone.store().pending_changes()?;
    assert!(
        pending > 0,
        "a full server acknowledged changes it could not store"
    );
    // Whatever the server acknowledged, it holds.
    branchline_tests::assert_on_server(&data_path, &branchline_tests::acknowledged(&phone)?)?;

    // Space returns: the phone's retries get through and nothing is lost.
    std::fs::remove_file(filler)?;
    phone
        .wait_in_sync()
        .await
        .context("in sync once space returned")?;
    assert_eq!(phone.store().pending_changes()?, 0);
    let other = server
        .device("committee phone", branch, Role::Committee, None)
        .await?;
    assert_eq!(
        other
            .store()
            .list_members(branch, &MemberFilter::default())?
            .len(),
        60
    );
    integrity_check(&server_db(&data_path))?;
    Ok(())
}
