//! A device's store file with a damaged page: the store refuses to open it
//! (`store.damaged`), a salvage rebuilds it from what can still be read, and the
//! next sync brings back everything the server holds and sends the device's
//! unacknowledged edits that survived.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use branchline_core::model::{DocKind, NewMember, Roster};
use branchline_core::net::SyncClient;
use branchline_core::store::query::{ActivityFilter, MemberFilter};
use branchline_core::{BranchId, Store};
use branchline_protocol::Role;
use branchline_tests::{Device, TestServer, client_config, meeting};

/// Overwrites the first page of table or index `name` with garbage.
fn damage(path: &Path, name: &str) -> Result<()> {
    let (page_size, root): (i64, i64) = {
        let conn = rusqlite::Connection::open(path)?;
        let size = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let root = conn.query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = ?1",
            [name],
            |r| r.get(0),
        )?;
        (size, root)
    };
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.seek(SeekFrom::Start(u64::try_from((root - 1) * page_size)?))?;
    file.write_all(&vec![0xA5; usize::try_from(page_size)?])?;
    file.sync_all()?;
    Ok(())
}

fn names(store: &Store, branch: BranchId) -> Result<Vec<String>> {
    let mut names: Vec<String> = store
        .list_members(branch, &MemberFilter::default())?
        .into_iter()
        .map(|m| m.name)
        .collect();
    names.sort();
    Ok(names)
}

/// A secretary's phone with a synced branch, then two edits made offline and
/// never sent; returns the store's path once the app is closed.
async fn phone_with_unsent_edits(server: &TestServer, branch: BranchId) -> Result<Device> {
    let mut phone = server
        .device("secretary phone", branch, Role::Secretary, None)
        .await?;
    for n in 0..12 {
        let new = NewMember {
            name: format!("Member {n:02}"),
            ..Default::default()
        };
        phone.store().add_member(branch, new)?;
    }
    for day in 1..=8 {
        let title = format!("Meeting {day}");
        phone.store().create_activity(
            branch,
            meeting("theme_day", &title, &format!("2026-03-{day:02}")),
        )?;
    }
    phone.wait_in_sync().await?;
    phone.go_offline().await?;
    let unsent = NewMember {
        name: "Offline Wang".into(),
        ..Default::default()
    };
    phone.store().add_member(branch, unsent)?;
    phone.close().await;
    Ok(phone)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_index_page_loses_nothing() -> Result<()> {
    let server = TestServer::start().await?;
    let branch = server.branch("Riverside")?;
    let Device { dir, .. } = phone_with_unsent_edits(&server, branch).await?;
    let path = dir.path().join("branchline.db");
    damage(&path, "idx_activities")?;

    let refused = Store::open(&path).expect_err("a damaged store is refused");
    assert_eq!(refused.code(), "store.damaged", "{refused}");
    let (store, salvage) = Store::salvage(&path)?;
    assert!(salvage.account, "{salvage:?}");
    assert_eq!(salvage.unreadable, 0, "{salvage:?}");
    assert!(salvage.damaged_copy.exists());
    store.check_integrity()?;
    // The index is derived: rebuilt whole, the unsent member included.
    assert!(names(&store, branch)?.contains(&"Offline Wang".to_owned()));
    assert_eq!(
        store
            .list_activities(branch, &ActivityFilter::default())?
            .len(),
        8
    );
    assert!(
        store.pending_changes()? > 0,
        "the unsent edit is still to send"
    );

    // The app opens again: the unsent edit reaches the server.
    let store = Arc::new(Mutex::new(store));
    let client = SyncClient::resume(Arc::clone(&store), client_config())?;
    client
        .wait_in_sync(std::time::Duration::from_secs(30))
        .await
        .context("in sync after the salvage")?;
    client.shutdown().await;
    assert_eq!(store.lock().unwrap().pending_changes()?, 0);
    let other = server
        .device("committee phone", branch, Role::Committee, None)
        .await?;
    assert!(names(&other.store(), branch)?.contains(&"Offline Wang".to_owned()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_documents_page_is_filled_in_by_the_server() -> Result<()> {
    let server = TestServer::start().await?;
    let branch = server.branch("Riverside")?;
    let Device { dir, .. } = phone_with_unsent_edits(&server, branch).await?;
    let path = dir.path().join("branchline.db");
    damage(&path, "documents")?;

    assert_eq!(Store::open(&path).unwrap_err().code(), "store.damaged");
    let (store, salvage) = Store::salvage(&path)?;
    assert!(
        salvage.account,
        "the device can still reconnect: {salvage:?}"
    );
    let store = Arc::new(Mutex::new(store));
    let client = SyncClient::resume(Arc::clone(&store), client_config())?;
    client
        .wait_in_sync(std::time::Duration::from_secs(30))
        .await
        .context("in sync after the salvage")?;
    client.shutdown().await;
    let store = store.lock().unwrap();
    // Everything the server held is back.
    let listed = names(&store, branch)?;
    for n in 0..12 {
        assert!(listed.contains(&format!("Member {n:02}")), "{listed:?}");
    }
    assert_eq!(
        store
            .list_activities(branch, &ActivityFilter::default())?
            .len(),
        8
    );
    store
        .branch_document(branch, DocKind::Roster)
        .and_then(|id| store.get::<Roster>(id))?;
    store.check_integrity()?;
    Ok(())
}
