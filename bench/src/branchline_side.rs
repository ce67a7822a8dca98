//! Branchline's side: seeding the server's data directory, devices with
//! in-memory stores for the many-device workloads, and the edit.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use branchline_core::model::{Activity, Level, NewActivity};
use branchline_core::net::{ClientEvent, SyncClient};
use branchline_core::sync::SyncEvent;
use branchline_core::{BranchId, DocId, Store};
use branchline_protocol::{InviteLink, Role};
use branchline_server::Admin;
use tokio::sync::broadcast;

/// How long a step that should take well under a second may take.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Imports `docs` into the server data directory `dir` (the server need not
/// run); returns how many were stored.
pub fn seed<'a>(dir: &Path, docs: impl IntoIterator<Item = &'a [u8]>) -> Result<usize> {
    Ok(Admin::open(dir)?.import_documents(docs)?)
}

/// A new branch (profile and roster) on the server at `dir`.
pub fn add_branch(dir: &Path, name: &str) -> Result<BranchId> {
    Ok(Admin::open(dir)?.add_branch(name, Level::Branch, None)?)
}

/// A one-time secretary invite into `branch`.
pub fn invite(admin: &Admin, branch: BranchId) -> Result<InviteLink> {
    Ok(admin.create_invite(branch, Role::Secretary, None, Duration::from_secs(3600))?)
}

/// A device whose store lives in memory (the sync client is the real one).
pub struct LightDevice {
    /// The sync client.
    pub client: SyncClient,
    store: Arc<Mutex<Store>>,
}

impl LightDevice {
    /// Joins with `invite` and waits until in sync.
    pub async fn join(name: String, invite: InviteLink) -> Result<Self> {
        let store = Arc::new(Mutex::new(Store::open_in_memory()?));
        let client = SyncClient::join(
            Arc::clone(&store),
            invite,
            &name,
            branchline_tests::client_config(),
        );
        client
            .wait_in_sync(PATIENCE)
            .await
            .with_context(|| format!("{name} enrolling"))?;
        Ok(Self { client, store })
    }

    /// The store.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().expect("store lock")
    }

    /// Plans an activity in `branch` to edit; waits until the server has it.
    pub async fn create_activity(&self, branch: BranchId) -> Result<DocId> {
        let doc = self.store().create_activity(
            branch,
            NewActivity {
                kind: "branch_meeting".to_owned(),
                title: "支部党员大会".to_owned(),
                starts_at: Some("2026-01-05T19:00".parse()?),
                ends_at: Some("2026-01-05T21:00".parse()?),
                place: None,
                organizer: None,
                group: None,
                agenda: None,
            },
        )?;
        self.client.wait_in_sync(PATIENCE).await?;
        Ok(doc)
    }

    /// Stops the client.
    pub async fn close(self) {
        self.client.shutdown().await;
    }
}

/// Appends `line` to an activity's minutes: one automerge change through the
/// store's typed update path (hydrate, edit, reconcile, one transaction).
pub fn append_minutes(store: &mut Store, activity: DocId, line: &str) -> Result<()> {
    store.update(activity, |a: &mut Activity| {
        let len = a.minutes.as_str().len();
        a.minutes.splice(len, 0, line);
        Ok(())
    })?;
    Ok(())
}

/// One closed-loop push: appends `line` to `doc`'s minutes on `device` and
/// waits for the server's `Ack` of it. Returns the time from the local edit
/// to the device seeing the `Ack` (B5, N1).
pub async fn acked_edit(device: &LightDevice, doc: DocId, line: &str) -> Result<Duration> {
    let mut events = device.client.subscribe();
    let t = Instant::now();
    append_minutes(&mut device.store(), doc, line)?;
    wait_for(
        &mut events,
        |e| matches!(e, SyncEvent::Acknowledged(d) if *d == doc),
    )
    .await?;
    Ok(t.elapsed())
}

/// One propagation: runs `edit` (a local write on one device, which returns
/// the document it wrote) and waits until the device behind `to` has stored
/// it. Returns the time from before the edit, so it includes the editing
/// device's own write (B4, N1).
pub async fn propagation(
    edit: impl FnOnce() -> Result<DocId>,
    to: &SyncClient,
) -> Result<Duration> {
    let mut events = to.subscribe();
    let t = Instant::now();
    let doc = edit()?;
    wait_for(
        &mut events,
        |e| matches!(e, SyncEvent::DocUpdated(d) if *d == doc),
    )
    .await?;
    Ok(t.elapsed())
}

/// Waits for a sync event matching `wanted`.
pub async fn wait_for(
    events: &mut broadcast::Receiver<ClientEvent>,
    mut wanted: impl FnMut(&SyncEvent) -> bool,
) -> Result<()> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match events.recv().await {
                Ok(ClientEvent::Sync(event)) if wanted(&event) => return Ok(()),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => bail!("the client stopped"),
            }
        }
    })
    .await
    .context("timed out waiting for a sync event")?
}
