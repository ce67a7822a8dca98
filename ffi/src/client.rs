//! [`BranchlineClient`]: one device's store and its background sync, for an app.
//!
//! Each client owns a small tokio runtime (two worker threads, plus blocking threads
//! for SQLite while it works). Every call that touches the store or the network is
//! async and runs there, so the app's UI thread never waits on the disk or the
//! network; the few plain calls only read cached values or post a command. Dropping
//! the client stops background sync, drops the observers and shuts the runtime down,
//! joining its threads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use branchline_core::ids::SuggestionId;
use branchline_core::model::{self, Activity, MemberFile, Timestamp};
use branchline_core::net::{ClientConfig, ClientEvent, Status, SyncClient, TaskFailure};
use branchline_core::sync::SyncEvent;
use branchline_core::{BranchId, DeviceId, DocId, MemberId, Store};
use branchline_protocol::InviteLink;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{broadcast, watch};

use crate::error::{BranchlineError, Result, refused};
use crate::observe::{
    ConflictsObserver, DocumentsObserver, ErrorObserver, Hub, ObserverHandle, RejectionsObserver,
    SyncStatusObserver,
};
use crate::records::{self, parse, parse_opt};

/// The store's file inside the data directory.
const STORE_FILE: &str = "branchline.db";

/// How long `enroll` waits for the server to accept the invite.
const ENROLL_PATIENCE: Duration = Duration::from_secs(60);

/// How long dropping a client waits for its threads to finish their current step.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(5);

/// Background sync while it runs, with the number of the start that made it.
struct Running {
    generation: u64,
    client: Arc<SyncClient>,
}

/// The background sync that runs, if any, and those told to stop that are still
/// closing their connection: they are kept until their task ends, so that it can
/// say goodbye to the server and `shutdown` can wait for it.
#[derive(Default)]
struct Syncs {
    running: Option<Running>,
    stopping: Vec<Running>,
}

/// What the client's tasks share with it.
struct Shared {
    store: Arc<Mutex<Store>>,
    sync: Mutex<Syncs>,
    /// What the app last said about the network, applied to every sync started.
    network: AtomicBool,
    generations: AtomicU64,
    hub: Arc<Hub>,
}

impl Shared {
    fn running(&self) -> Result<Arc<SyncClient>> {
        let slot = self
            .sync
            .lock()
            .map_err(|_| BranchlineError::poisoned("sync state"))?;
        slot.running
            .as_ref()
            .map(|r| Arc::clone(&r.client))
            .ok_or_else(BranchlineError::not_running)
    }

    /// The syncs, even after a panic: they are plain values, consistent at every
    /// step, and stopping must work then too, above all when the client is dropped.
    fn syncs(&self) -> MutexGuard<'_, Syncs> {
        self.sync.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells background sync to stop if `generation` (or, with `None`, any) is
    /// running, keeping it among the stopping until its task ends; true if it ran.
    fn stop(&self, generation: Option<u64>) -> bool {
        let mut syncs = self.syncs();
        if generation.is_some_and(|g| syncs.running.as_ref().is_none_or(|r| r.generation != g)) {
            return false;
        }
        let Some(running) = syncs.running.take() else {
            return false;
        };
        running.client.stop();
        syncs.stopping.push(running);
        true
    }

    fn is_running(&self, generation: u64) -> bool {
        self.syncs()
            .running
            .as_ref()
            .is_some_and(|r| r.generation == generation)
    }

    /// Forgets the sync `generation`, whose task has ended; true if no sync runs.
    fn ended(&self, generation: u64) -> bool {
        let mut syncs = self.syncs();
        if syncs
            .running
            .as_ref()
            .is_some_and(|r| r.generation == generation)
        {
            syncs.running = None;
        }
        syncs.stopping.retain(|r| r.generation != generation);
        syncs.running.is_none()
    }

    /// The status of every sync still stopping, to wait on.
    fn stopping(&self) -> Vec<watch::Receiver<Status>> {
        self.syncs()
            .stopping
            .iter()
            .map(|r| r.client.status_updates())
            .collect()
    }
}

/// A device's Branchline library: its records, their reports, and background sync
/// with the branch server.
#[derive(uniffi::Object)]
pub struct BranchlineClient {
    /// Taken when the client is dropped, to shut it down.
    runtime: Option<Runtime>,
    handle: Handle,
    shared: Arc<Shared>,
    device_id: DeviceId,
}

impl std::fmt::Debug for BranchlineClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BranchlineClient")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// Runs `work` on the runtime behind `handle` and waits for it from any executor.
async fn on_runtime<T: Send + 'static>(
    handle: &Handle,
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    handle.spawn(work).await.map_err(BranchlineError::task)?
}

/// Runs `work` with the store locked, on a blocking thread of the runtime.
async fn with_store<T: Send + 'static>(
    handle: &Handle,
    store: &Arc<Mutex<Store>>,
    work: impl FnOnce(&mut Store) -> branchline_core::Result<T> + Send + 'static,
) -> Result<T> {
    let store = Arc::clone(store);
    handle
        .spawn_blocking(move || {
            let mut store = store
                .lock()
                .map_err(|_| BranchlineError::poisoned("store"))?;
            Ok(work(&mut store)?)
        })
        .await
        .map_err(BranchlineError::task)?
}

fn now_ms() -> i64 {
    Timestamp::now().0
}

impl BranchlineClient {
    /// Reads from the store off the caller's thread.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Store) -> branchline_core::Result<T> + Send + 'static,
    ) -> Result<T> {
        with_store(&self.handle, &self.shared.store, work).await
    }

    /// Writes to the store off the caller's thread, then refreshes the status line
    /// (pending changes). A device the server revoked keeps its records to read:
    /// every write fails with `auth.device_revoked` (client-core's
    /// `Store::require_writable`, checked under the same lock as the write).
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Store) -> branchline_core::Result<T> + Send + 'static,
    ) -> Result<T> {
        let out = with_store(&self.handle, &self.shared.store, |store| {
            store.require_writable()?;
            work(store)
        })
        .await;
        self.shared.hub.refresh.notify_one();
        out
    }

    /// Starts background sync made by `start`, replacing any that runs.
    fn start_sync_with(
        &self,
        start: impl FnOnce(Arc<Mutex<Store>>) -> Result<SyncClient>,
    ) -> Result<(
        Arc<SyncHandle>,
        watch::Receiver<Status>,
        broadcast::Receiver<ClientEvent>,
    )> {
        let _runtime = self.handle.enter();
        let mut slot = self
            .shared
            .sync
            .lock()
            .map_err(|_| BranchlineError::poisoned("sync state"))?;
        if let Some(old) = slot.running.take() {
            old.client.stop();
        }
        // Dropped before the new one starts: dropping a sync client ends its task
        // and unhooks the store's change listener, which the new client installs.
        slot.stopping.clear();
        let client = start(Arc::clone(&self.shared.store))?;
        if !self.shared.network.load(Ordering::SeqCst) {
            client.set_network_available(false);
        }
        let generation = self.shared.generations.fetch_add(1, Ordering::SeqCst);
        let status = client.status_updates();
        let events = client.subscribe();
        self.handle.spawn(pump(
            Arc::clone(&self.shared),
            self.handle.clone(),
            generation,
            status.clone(),
            client.failure_updates(),
            client.subscribe(),
        ));
        slot.running = Some(Running {
            generation,
            client: Arc::new(client),
        });
        let handle = Arc::new(SyncHandle {
            shared: Arc::downgrade(&self.shared),
            generation,
        });
        Ok((handle, status, events))
    }
}

/// Recomputes the status line whenever something may have changed it, and tells
/// the status observers. Runs as long as the client.
async fn refresh_status(shared: Arc<Shared>, handle: Handle) {
    let mut told = None;
    loop {
        shared.hub.refresh.notified().await;
        let counted = with_store(&handle, &shared.store, |store| {
            let pending = store
                .documents()?
                .iter()
                .map(|d| d.unacked_changes as u64)
                .sum::<u64>();
            let revoked = store.revocation()?.map(|r| r.revoked_at.0);
            Ok((pending, revoked))
        })
        .await;
        match counted {
            Ok((pending, revoked)) => {
                shared.hub.set_revoked(revoked);
                shared.hub.publish_status(Some(pending), &mut told);
            }
            Err(e) => {
                shared.hub.error(e);
                shared.hub.publish_status(None, &mut told);
            }
        }
    }
}

/// Turns one background sync's status and events into observer calls, until its
/// task ends. Only the running sync sets the status line; one refused for good is
/// over at once (its handle says so), and the line keeps the refusal.
async fn pump(
    shared: Arc<Shared>,
    handle: Handle,
    generation: u64,
    mut status: watch::Receiver<Status>,
    failure: watch::Receiver<Option<TaskFailure>>,
    mut events: broadcast::Receiver<ClientEvent>,
) {
    let mut ended_refused = false;
    loop {
        tokio::select! {
            changed = status.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = status.borrow_and_update().clone();
                if let Status::Refused { code } = &now {
                    shared.hub.error(refused(code.as_str(), "the server refused this device"));
                    // Stopped first, so a handle asked once the line says
                    // refused already reports it inactive.
                    if shared.stop(Some(generation)) {
                        ended_refused = true;
                        shared.hub.set_state(now.into(), now_ms());
                    }
                    continue;
                }
                // A failed task's code reaches the app in the Stopped state
                // and, with its reason, as an error: the failure is recorded
                // before that state is sent.
                let mut state = records::SyncState::from(now.clone());
                if now == Status::Stopped
                    && let Some(failed) = failure.borrow().clone()
                {
                    state = records::SyncState::Stopped {
                        failure: Some(failed.code().to_owned()),
                    };
                    shared.hub.error(BranchlineError::Internal {
                        code: failed.code().to_owned(),
                        reason: failed.to_string(),
                    });
                }
                if shared.is_running(generation) {
                    shared.hub.set_state(state, now_ms());
                }
            }
            event = events.recv() => match event {
                Ok(event) => {
                    let mut batch = vec![event];
                    while let Ok(more) = events.try_recv() {
                        batch.push(more);
                    }
                    handle_events(&shared, &handle, batch).await;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    // The task has ended (stopped, refused, or failed): nothing of it runs.
    if shared.ended(generation) && !ended_refused {
        shared
            .hub
            .set_state(records::SyncState::Stopped { failure: None }, now_ms());
    }
}

async fn handle_events(shared: &Arc<Shared>, handle: &Handle, events: Vec<ClientEvent>) {
    let mut updated = Vec::new();
    for event in events {
        match event {
            ClientEvent::Sync(SyncEvent::DocUpdated(doc)) => {
                let id = doc.to_string();
                if !updated.contains(&id) {
                    updated.push(id);
                }
            }
            ClientEvent::Sync(SyncEvent::Acknowledged(_)) => shared.hub.refresh.notify_one(),
            // A failure on the server's side is tried again by the sync task;
            // the app sees the status stay "syncing", not an error.
            ClientEvent::Sync(SyncEvent::DocFailed { code, .. }) if code.is_transient() => {}
            ClientEvent::Sync(SyncEvent::DocFailed { doc, code, message }) => {
                shared
                    .hub
                    .error(refused(code.as_str(), format!("document {doc}: {message}")));
            }
            // A change the server refused was dropped here: the app hears
            // the reason, and the document (now without it) changed.
            ClientEvent::Sync(SyncEvent::Rejected(rejection)) => {
                shared.hub.rejected(rejection.clone().into());
                shared.hub.error(refused(
                    &rejection.code,
                    format!(
                        "document {}: change {} refused: {}",
                        rejection.doc_id, rejection.change, rejection.message
                    ),
                ));
                let id = rejection.doc_id.to_string();
                if !rejection.document_removed && !updated.contains(&id) {
                    updated.push(id);
                }
            }
            ClientEvent::Disconnected { reason } => {
                shared.hub.error(BranchlineError::Network {
                    code: "net.connection".to_owned(),
                    reason,
                });
            }
            _ => {}
        }
    }
    if updated.is_empty() {
        return;
    }
    shared.hub.documents_changed(updated);
    shared.hub.refresh.notify_one();
    match with_store(handle, &shared.store, |store| store.conflicts()).await {
        Ok(conflicts) => shared
            .hub
            .conflicts(conflicts.into_iter().map(Into::into).collect()),
        Err(e) => shared.hub.error(e),
    }
}

/// The app's handle on background sync: it runs until cancelled, until the client
/// is shut down or dropped, or until another enrollment replaces it.
#[derive(uniffi::Object)]
pub struct SyncHandle {
    shared: Weak<Shared>,
    generation: u64,
}

#[uniffi::export]
impl SyncHandle {
    /// Stops this background sync: the connection is closed politely and nothing
    /// syncs until sync is started again. Harmless if it already stopped.
    pub fn cancel(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.stop(Some(self.generation));
        }
    }

    /// Whether this background sync still runs.
    pub fn is_active(&self) -> bool {
        self.shared
            .upgrade()
            .is_some_and(|shared| shared.is_running(self.generation))
    }
}

// --- opening, account and sync control ----------------------------------------------

#[uniffi::export]
impl BranchlineClient {
    /// Opens (creating if needed) the client's store in `data_dir`, a directory the
    /// app owns (e.g. `context.filesDir` on Android, Application Support on iOS).
    #[uniffi::constructor]
    pub async fn open(data_dir: String) -> Result<Arc<Self>> {
        if data_dir.trim().is_empty() {
            return Err(BranchlineError::from(branchline_core::Error::EmptyField {
                field: "data_dir",
            }));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(4)
            .thread_name("branchline")
            .enable_all()
            .build()
            .map_err(BranchlineError::io)?;
        let handle = runtime.handle().clone();
        let dir = PathBuf::from(data_dir);
        let opened = handle
            .spawn_blocking(move || -> Result<(Store, u64, Option<i64>, Option<i64>)> {
                std::fs::create_dir_all(&dir).map_err(BranchlineError::io)?;
                let store = Store::open(dir.join(STORE_FILE))?;
                let pending = store.pending_changes()? as u64;
                let last_sync = store.last_synced()?.map(|t| t.0);
                let revoked = store.revocation()?.map(|r| r.revoked_at.0);
                Ok((store, pending, last_sync, revoked))
            })
            .await;
        let (store, pending, last_sync, revoked) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => return Err(shut_down(runtime, e)),
            Err(e) => return Err(shut_down(runtime, BranchlineError::task(e))),
        };
        let device_id = store.device_id();
        let shared = Arc::new(Shared {
            store: Arc::new(Mutex::new(store)),
            sync: Mutex::default(),
            network: AtomicBool::new(true),
            generations: AtomicU64::new(1),
            hub: Arc::new(Hub::new(pending, last_sync, revoked)),
        });
        handle.spawn(refresh_status(Arc::clone(&shared), handle.clone()));
        Ok(Arc::new(BranchlineClient {
            runtime: Some(runtime),
            handle,
            shared,
            device_id,
        }))
    }

    /// This installation's id in the store: the device named by conflicts.
    pub fn device_id(&self) -> String {
        self.device_id.to_string()
    }

    /// The device's account on its branch server, once it has enrolled.
    pub async fn account(&self) -> Result<Option<records::AccountInfo>> {
        let account = self.read(|store| store.account()).await?;
        Ok(account.map(Into::into))
    }

    /// Joins a branch with an invite link (`branchline://host:port/CODE?cert=…`) and
    /// waits until the server accepted it; background sync then keeps running. A
    /// device that has enrolled already is refused (`net.already_enrolled`), and
    /// its sync, if it runs, keeps running.
    pub async fn enroll(
        &self,
        invite_link: String,
        device_name: String,
    ) -> Result<Arc<SyncHandle>> {
        let invite: InviteLink = invite_link.parse()?;
        if device_name.trim().is_empty() {
            return Err(branchline_core::Error::EmptyField {
                field: "device_name",
            }
            .into());
        }
        if self.read(|store| store.account()).await?.is_some() {
            return Err(BranchlineError::already_enrolled());
        }
        if !self.shared.network.load(Ordering::SeqCst) {
            return Err(branchline_core::net::NetError::Offline.into());
        }
        let (sync, mut status, mut events) = self.start_sync_with(|store| {
            Ok(SyncClient::join(
                store,
                invite,
                &device_name,
                ClientConfig::default(),
            ))
        })?;
        let waited = on_runtime(&self.handle, async move {
            let accepted = async {
                loop {
                    tokio::select! {
                        event = events.recv() => match event {
                            Ok(ClientEvent::Sync(SyncEvent::Enrolled(_))) => return Ok(()),
                            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(broadcast::error::RecvError::Closed) => {
                                return Err(branchline_core::net::NetError::Stopped.into());
                            }
                        },
                        changed = status.changed() => {
                            if changed.is_err() {
                                return Err(branchline_core::net::NetError::Stopped.into());
                            }
                            let now = status.borrow_and_update().clone();
                            if let Status::Refused { code } = now {
                                return Err(refused(code.as_str(), "the server refused the invite"));
                            }
                        }
                    }
                }
            };
            tokio::time::timeout(ENROLL_PATIENCE, accepted)
                .await
                .unwrap_or_else(|_| Err(branchline_core::net::NetError::Timeout.into()))
        })
        .await;
        match waited {
            Ok(()) => Ok(sync),
            // The refusal ends that sync by itself, and the status line keeps it.
            Err(e @ BranchlineError::Refused { .. }) => Err(e),
            Err(e) => {
                sync.cancel();
                Err(e)
            }
        }
    }

    /// Starts background sync for a device that enrolled earlier (at every app
    /// start). If sync already runs, returns a handle on it.
    pub fn start_sync(&self) -> Result<Arc<SyncHandle>> {
        {
            let slot = self
                .shared
                .sync
                .lock()
                .map_err(|_| BranchlineError::poisoned("sync state"))?;
            if let Some(running) = slot.running.as_ref() {
                return Ok(Arc::new(SyncHandle {
                    shared: Arc::downgrade(&self.shared),
                    generation: running.generation,
                }));
            }
        }
        let (sync, _, _) =
            self.start_sync_with(|store| Ok(SyncClient::resume(store, ClientConfig::default())?))?;
        Ok(sync)
    }

    /// Tells the library whether the device has a network connection (from the
    /// platform's connectivity callbacks). Without one, sync stays offline; when one
    /// appears it connects at once. Remembered for syncs started later.
    pub fn set_network_available(&self, available: bool) {
        self.shared.network.store(available, Ordering::SeqCst);
        if let Ok(client) = self.shared.running() {
            client.set_network_available(available);
        }
    }

    /// Tells the library the device's network changed (Wi-Fi to mobile data): the
    /// live connection moves to the new network.
    pub fn network_changed(&self) -> Result<()> {
        self.shared.running()?.network_changed();
        Ok(())
    }

    /// Connects now instead of waiting out the retry delay.
    pub fn sync_now(&self) -> Result<()> {
        self.shared.running()?.sync_now();
        Ok(())
    }

    /// The status line as last computed (cheap; observers hear every change).
    pub fn status(&self) -> records::SyncStatus {
        self.shared.hub.status()
    }

    /// Figures for the current (or last) connection.
    pub fn sync_report(&self) -> Result<records::SyncReport> {
        Ok(self.shared.running()?.report().into())
    }

    /// Waits until everything edited before this call has reached the server and
    /// the device is in sync, or `timeout_ms` passes (`net.timeout`).
    pub async fn wait_in_sync(&self, timeout_ms: u64) -> Result<()> {
        let client = self.shared.running()?;
        on_runtime(&self.handle, async move {
            Ok(client
                .wait_in_sync(Duration::from_millis(timeout_ms))
                .await?)
        })
        .await
    }

    /// Makes a one-time invite into this device's branch (secretary: any role;
    /// committee: members and residents), valid for `valid_for_secs` seconds.
    pub async fn create_invite(
        &self,
        role: records::Role,
        member_id: Option<String>,
        valid_for_secs: u64,
    ) -> Result<records::Invite> {
        let member: Option<MemberId> = parse_opt(member_id.as_deref())?;
        if valid_for_secs == 0 {
            return Err(BranchlineError::invalid(
                "validity (seconds)",
                valid_for_secs,
            ));
        }
        let client = self.shared.running()?;
        on_runtime(&self.handle, async move {
            let (link, expires_at_ms) = client
                .create_invite(role.into(), member, Duration::from_secs(valid_for_secs))
                .await?;
            Ok(records::Invite {
                link: link.to_string(),
                expires_at_ms,
            })
        })
        .await
    }

    /// Revokes a device of this branch by its account device id (secretary only).
    pub async fn revoke_device(&self, device_id: String) -> Result<()> {
        let device: branchline_protocol::DeviceId = device_id
            .trim()
            .parse()
            .map_err(|_| BranchlineError::invalid("device id", &device_id))?;
        let client = self.shared.running()?;
        on_runtime(&self.handle, async move {
            Ok(client.revoke_device(device).await?)
        })
        .await
    }

    /// The branch's public submission link (`branchline://…`), which residents scan
    /// to enroll and send requests: show it as a QR code (secretary and committee
    /// only; the same link every time).
    pub async fn submission_link(&self) -> Result<String> {
        let client = self.shared.running()?;
        on_runtime(&self.handle, async move {
            Ok(client.submission_link().await?.to_string())
        })
        .await
    }

    /// `text` (an invite or the submission link) as a QR code, an SVG image to
    /// show or print; works offline.
    pub fn qr_svg(&self, text: String) -> Result<String> {
        Ok(branchline_core::qr::svg(&text)?)
    }

    /// Sends a request (民情直通车) to the branch through the server, which writes
    /// the petition and lets this device follow it: how a resident submits. The
    /// server names the sender, so `submitter.member_id` must be empty. Returns the
    /// petition's id; the petition itself arrives with the next sync.
    pub async fn submit_request(&self, petition: records::NewPetition) -> Result<String> {
        if let Some(member) = &petition.submitter.member_id {
            return Err(BranchlineError::invalid(
                "submitter member id (the server records who sent a request)",
                member,
            ));
        }
        for (field, value) in [
            ("category", &petition.category),
            ("title", &petition.title),
            ("description", &petition.description),
        ] {
            if value.trim().is_empty() {
                return Err(branchline_core::Error::EmptyField { field }.into());
            }
        }
        let petition: model::NewPetition = petition.try_into()?;
        let client = self.shared.running()?;
        on_runtime(&self.handle, async move {
            Ok(client.submit_petition(&petition).await?.to_string())
        })
        .await
    }

    /// Puts a suggestion in the branch's feedback box (意见箱) through the server.
    /// When `anonymous`, the server writes it under its own name and keeps nothing
    /// that links it to this device. Returns the suggestion's id; the box arrives
    /// with the next sync.
    pub async fn submit_suggestion(&self, text: String, anonymous: bool) -> Result<String> {
        if text.trim().is_empty() {
            return Err(branchline_core::Error::EmptyField {
                field: "suggestion",
            }
            .into());
        }
        let client = self.shared.running()?;
        on_runtime(&self.handle, async move {
            let (_, id) = client.submit_suggestion(&text, anonymous).await?;
            Ok(id.to_string())
        })
        .await
    }

    /// Stops background sync politely and waits until it has (the connection is
    /// closed with a goodbye), including a sync cancelled just before. Harmless
    /// when nothing runs. Sync can be started again with `start_sync`.
    pub async fn shutdown(&self) -> Result<()> {
        self.shared.stop(None);
        let stopping = self.shared.stopping();
        on_runtime(&self.handle, async move {
            let stopped = async {
                for mut status in stopping {
                    // An error means the task ended and dropped its status: stopped too.
                    let _ = status.wait_for(|s| *s == Status::Stopped).await;
                }
            };
            let _ = tokio::time::timeout(SHUTDOWN_PATIENCE, stopped).await;
            Ok(())
        })
        .await
    }

    /// Registers an observer of the sync status line; it is told the current status
    /// at once.
    pub fn observe_sync_status(
        &self,
        observer: Box<dyn SyncStatusObserver>,
    ) -> Arc<ObserverHandle> {
        self.shared.hub.add_status(Arc::from(observer))
    }

    /// Registers an observer of documents changed by sync.
    pub fn observe_documents(&self, observer: Box<dyn DocumentsObserver>) -> Arc<ObserverHandle> {
        self.shared.hub.add_documents(Arc::from(observer))
    }

    /// Registers an observer of the list of conflicts to settle.
    pub fn observe_conflicts(&self, observer: Box<dyn ConflictsObserver>) -> Arc<ObserverHandle> {
        self.shared.hub.add_conflicts(Arc::from(observer))
    }

    /// Registers an observer of background errors.
    pub fn observe_errors(&self, observer: Box<dyn ErrorObserver>) -> Arc<ObserverHandle> {
        self.shared.hub.add_errors(Arc::from(observer))
    }

    /// Registers an observer of this device's changes the server refused (each
    /// also recorded for `rejections`).
    pub fn observe_rejections(&self, observer: Box<dyn RejectionsObserver>) -> Arc<ObserverHandle> {
        self.shared.hub.add_rejections(Arc::from(observer))
    }
}

/// Shuts down a runtime that never got a client, returning `error` for `?`.
fn shut_down(runtime: Runtime, error: BranchlineError) -> BranchlineError {
    runtime.shutdown_background();
    error
}

impl Drop for BranchlineClient {
    fn drop(&mut self) {
        // Observers first: no callback may start once the client goes (the app's
        // runtime may be going too, as when a Python interpreter exits), and none
        // may be left holding an observer. On a runtime thread (an observer let go
        // of the last reference) this thread may be making a callback: no waiting.
        let on_runtime_thread = Handle::try_current().is_ok();
        self.shared
            .hub
            .close((!on_runtime_thread).then_some(SHUTDOWN_PATIENCE));
        self.shared.stop(None);
        if let Some(runtime) = self.runtime.take() {
            if on_runtime_thread {
                // Dropped on a runtime thread (an observer let go of the last
                // reference): blocking here is not allowed, so let the threads end
                // by themselves.
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(SHUTDOWN_PATIENCE);
            }
        }
    }
}

// --- branch profile and roster --------------------------------------------------------

#[uniffi::export]
impl BranchlineClient {
    /// Sets up a new branch (profile and empty roster) in the local store; returns
    /// its id.
    pub async fn create_branch(
        &self,
        name: String,
        level: records::Level,
        parent_id: Option<String>,
    ) -> Result<String> {
        let parent: Option<BranchId> = parse_opt(parent_id.as_deref())?;
        let branch = self
            .write(move |store| store.create_branch(&name, level.into(), parent))
            .await?;
        Ok(branch.to_string())
    }

    /// The branch's profile: name, hierarchy, rules.
    pub async fn profile(&self, branch_id: String) -> Result<records::BranchProfile> {
        let branch: BranchId = parse(&branch_id)?;
        Ok(self.read(move |store| store.profile(branch)).await?.into())
    }

    /// Sets the committee's term (`YYYY-MM-DD` to `YYYY-MM-DD`).
    pub async fn set_term(&self, branch_id: String, start: String, end: String) -> Result<()> {
        let branch: BranchId = parse(&branch_id)?;
        let (start, end) = (parse(&start)?, parse(&end)?);
        self.write(move |store| store.update_profile(branch, |p| p.set_term(start, end)))
            .await
    }

    /// Adds a group (党小组) to the branch.
    pub async fn add_group(&self, branch_id: String, name: String) -> Result<()> {
        let branch: BranchId = parse(&branch_id)?;
        self.write(move |store| store.update_profile(branch, |p| p.add_group(&name)))
            .await
    }

    /// Adds or replaces an activity kind of the branch.
    pub async fn set_activity_kind(
        &self,
        branch_id: String,
        code: String,
        rule: records::ActivityKindRule,
    ) -> Result<()> {
        let branch: BranchId = parse(&branch_id)?;
        self.write(move |store| {
            store.update_profile(branch, |p| p.set_activity_kind(&code, rule.into()))
        })
        .await
    }

    /// Sets the attendance rate (per cent) below which a member counts as silent.
    pub async fn set_silent_threshold(&self, branch_id: String, percent: u32) -> Result<()> {
        let branch: BranchId = parse(&branch_id)?;
        self.write(move |store| store.update_profile(branch, |p| p.set_silent_threshold(percent)))
            .await
    }

    /// Adds a member to the branch's roster; returns their id.
    pub async fn add_member(
        &self,
        branch_id: String,
        member: records::NewMember,
    ) -> Result<String> {
        let branch: BranchId = parse(&branch_id)?;
        let member = member.try_into()?;
        let id = self
            .write(move |store| store.add_member(branch, member))
            .await?;
        Ok(id.to_string())
    }

    /// Changes a member's roster entry.
    pub async fn update_member(
        &self,
        member_id: String,
        update: records::MemberUpdate,
    ) -> Result<()> {
        let member: MemberId = parse(&member_id)?;
        let update = update.try_into()?;
        self.write(move |store| store.update_member(member, update))
            .await
    }

    /// Records that a member moved to another branch on `on` (`YYYY-MM-DD`).
    pub async fn transfer_out(&self, member_id: String, on: String) -> Result<()> {
        let member: MemberId = parse(&member_id)?;
        let on = parse(&on)?;
        self.write(move |store| store.transfer_out(member, on))
            .await
    }

    /// Records that a member passed away on `on` (`YYYY-MM-DD`).
    pub async fn mark_deceased(&self, member_id: String, on: String) -> Result<()> {
        let member: MemberId = parse(&member_id)?;
        let on = parse(&on)?;
        self.write(move |store| store.mark_deceased(member, on))
            .await
    }

    /// Members of a branch matching `filter`, by name.
    pub async fn list_members(
        &self,
        branch_id: String,
        filter: records::MemberFilter,
    ) -> Result<Vec<records::MemberRow>> {
        let branch: BranchId = parse(&branch_id)?;
        let filter = filter.into();
        let rows = self
            .read(move |store| store.list_members(branch, &filter))
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

// --- member files ------------------------------------------------------------------

impl BranchlineClient {
    /// Runs `op` on a member's confidential file (created empty on first use).
    async fn edit_member_file(
        &self,
        member_id: &str,
        op: impl FnOnce(&mut MemberFile) -> branchline_core::Result<()> + Send + 'static,
    ) -> Result<()> {
        let member: MemberId = parse(member_id)?;
        self.write(move |store| {
            let file = store.member_file(member)?;
            store.update(file, op)
        })
        .await
    }
}

#[uniffi::export]
impl BranchlineClient {
    /// A member's confidential file (created empty on first use).
    pub async fn member_file(&self, member_id: String) -> Result<records::MemberFile> {
        let member: MemberId = parse(&member_id)?;
        let file = self
            .write(move |store| {
                let id = store.member_file(member)?;
                store.get::<MemberFile>(id)
            })
            .await?;
        Ok(file.into())
    }

    /// Sets a member's ID number and address; an absent value stays as it is, an
    /// empty one clears it.
    pub async fn set_member_details(
        &self,
        member_id: String,
        id_number: Option<String>,
        address: Option<String>,
    ) -> Result<()> {
        self.edit_member_file(&member_id, move |f| {
            f.set_details(id_number.as_deref(), address.as_deref());
            Ok(())
        })
        .await
    }

    /// Records a training of `hours` hours on `date` (`YYYY-MM-DD`).
    pub async fn add_training(
        &self,
        member_id: String,
        date: String,
        topic: String,
        hours: f64,
    ) -> Result<()> {
        let date = parse(&date)?;
        self.edit_member_file(&member_id, move |f| f.add_training(date, &topic, hours))
            .await
    }

    /// Records a commendation given on `date` (`YYYY-MM-DD`).
    pub async fn add_commendation(
        &self,
        member_id: String,
        date: String,
        title: String,
        issuer: Option<String>,
    ) -> Result<()> {
        let date = parse(&date)?;
        self.edit_member_file(&member_id, move |f| {
            f.add_commendation(date, &title, issuer.as_deref())
        })
        .await
    }

    /// Records (or corrects) a year's democratic evaluation.
    pub async fn set_evaluation(
        &self,
        member_id: String,
        year: i32,
        grade: records::EvaluationGrade,
        comment: Option<String>,
    ) -> Result<()> {
        self.edit_member_file(&member_id, move |f| {
            f.set_evaluation(year, grade.into(), comment.as_deref())
        })
        .await
    }
}

// --- activities --------------------------------------------------------------------

#[uniffi::export]
impl BranchlineClient {
    /// Plans an activity of a branch; returns its id.
    pub async fn create_activity(
        &self,
        branch_id: String,
        activity: records::NewActivity,
    ) -> Result<String> {
        let branch: BranchId = parse(&branch_id)?;
        let activity = activity.try_into()?;
        let id = self
            .write(move |store| store.create_activity(branch, activity))
            .await?;
        Ok(id.to_string())
    }

    /// An activity with its agenda, minutes, sign-ins and leave requests.
    pub async fn activity(&self, activity_id: String) -> Result<records::Activity> {
        let id: DocId = parse(&activity_id)?;
        Ok(self
            .read(move |store| store.get::<Activity>(id))
            .await?
            .into())
    }

    /// Moves an activity to a new time (`YYYY-MM-DDTHH:MM`).
    pub async fn reschedule_activity(
        &self,
        activity_id: String,
        starts_at: String,
        ends_at: String,
    ) -> Result<()> {
        let id: DocId = parse(&activity_id)?;
        let (starts, ends) = (parse(&starts_at)?, parse(&ends_at)?);
        self.write(move |store| store.update(id, |a: &mut Activity| a.reschedule(starts, ends)))
            .await
    }

    /// Replaces an activity's agenda (only the characters that differ are written).
    pub async fn set_agenda(&self, activity_id: String, agenda: String) -> Result<()> {
        let id: DocId = parse(&activity_id)?;
        self.write(move |store| store.update(id, |a: &mut Activity| a.set_agenda(&agenda)))
            .await
    }

    /// Signs a member in to an activity.
    pub async fn sign_in(
        &self,
        activity_id: String,
        member_id: String,
        mode: records::SignInMode,
    ) -> Result<()> {
        let id: DocId = parse(&activity_id)?;
        let member: MemberId = parse(&member_id)?;
        self.write(move |store| store.sign_in(id, member, mode.into()))
            .await
    }

    /// Records a member's request for leave from an activity.
    pub async fn request_leave(
        &self,
        activity_id: String,
        member_id: String,
        reason: String,
    ) -> Result<()> {
        let id: DocId = parse(&activity_id)?;
        let member: MemberId = parse(&member_id)?;
        self.write(move |store| store.request_leave(id, member, &reason))
            .await
    }

    /// Replaces an activity's minutes (only the characters that differ are written,
    /// so others' concurrent edits survive).
    pub async fn write_minutes(&self, activity_id: String, minutes: String) -> Result<()> {
        let id: DocId = parse(&activity_id)?;
        self.write(move |store| store.write_minutes(id, &minutes))
            .await
    }

    /// Awards bonus points (negative to deduct) to a member for an activity.
    pub async fn award_points(
        &self,
        activity_id: String,
        member_id: String,
        points: i64,
    ) -> Result<()> {
        let id: DocId = parse(&activity_id)?;
        let member: MemberId = parse(&member_id)?;
        let points = crate::branch_work::check_points(points)?;
        self.write(move |store| store.award_points(id, member, points))
            .await
    }

    /// Shares a joint activity with a partner branch.
    pub async fn share_activity(&self, activity_id: String, partner_id: String) -> Result<()> {
        let id: DocId = parse(&activity_id)?;
        let partner: BranchId = parse(&partner_id)?;
        self.write(move |store| store.share_activity(id, partner))
            .await
    }

    /// Closes an activity: attendance and minutes become final.
    pub async fn close_activity(&self, activity_id: String) -> Result<()> {
        let id: DocId = parse(&activity_id)?;
        self.write(move |store| store.close_activity(id)).await
    }

    /// Activities visible to a branch (its own and shared ones), by start.
    pub async fn list_activities(
        &self,
        branch_id: String,
        filter: records::ActivityFilter,
    ) -> Result<Vec<records::ActivityRow>> {
        let branch: BranchId = parse(&branch_id)?;
        let filter = filter.try_into()?;
        let rows = self
            .read(move |store| store.list_activities(branch, &filter))
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Who signed in to (or asked leave from) an activity, by time.
    pub async fn attendance(&self, activity_id: String) -> Result<Vec<records::AttendanceRow>> {
        let id: DocId = parse(&activity_id)?;
        let rows = self.read(move |store| store.attendance(id)).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

// --- petitions ---------------------------------------------------------------------

#[uniffi::export]
impl BranchlineClient {
    /// Records a new petition to a branch; returns its id.
    pub async fn submit_petition(
        &self,
        branch_id: String,
        petition: records::NewPetition,
    ) -> Result<String> {
        let branch: BranchId = parse(&branch_id)?;
        let petition = petition.try_into()?;
        let id = self
            .write(move |store| store.submit_petition(branch, petition))
            .await?;
        Ok(id.to_string())
    }

    /// A petition with its whole history (and the submitter's private contact).
    pub async fn petition(&self, petition_id: String) -> Result<records::Petition> {
        let id: DocId = parse(&petition_id)?;
        Ok(self
            .read(move |store| store.get::<model::Petition>(id))
            .await?
            .into())
    }

    /// Gives a petition an owner and a deadline (`YYYY-MM-DD`).
    pub async fn assign_petition(
        &self,
        petition_id: String,
        owner_id: String,
        deadline: String,
    ) -> Result<()> {
        let id: DocId = parse(&petition_id)?;
        let owner: MemberId = parse(&owner_id)?;
        let deadline = parse(&deadline)?;
        self.write(move |store| store.assign_petition(id, owner, deadline))
            .await
    }

    /// Adds a progress note to a petition.
    pub async fn add_progress(
        &self,
        petition_id: String,
        author_id: Option<String>,
        text: String,
    ) -> Result<()> {
        let id: DocId = parse(&petition_id)?;
        let author: Option<MemberId> = parse_opt(author_id.as_deref())?;
        self.write(move |store| store.add_progress(id, author, &text))
            .await
    }

    /// Resolves a petition.
    pub async fn resolve_petition(
        &self,
        petition_id: String,
        by_id: Option<String>,
        summary: String,
    ) -> Result<()> {
        let id: DocId = parse(&petition_id)?;
        let by: Option<MemberId> = parse_opt(by_id.as_deref())?;
        self.write(move |store| store.resolve_petition(id, by, &summary))
            .await
    }

    /// Records the submitter's satisfaction rating (1 to 5).
    pub async fn rate_petition(
        &self,
        petition_id: String,
        score: u8,
        comment: Option<String>,
    ) -> Result<()> {
        let id: DocId = parse(&petition_id)?;
        self.write(move |store| store.rate_petition(id, score, comment.as_deref()))
            .await
    }

    /// Reopens a resolved petition, saying why.
    pub async fn reopen_petition(
        &self,
        petition_id: String,
        author_id: Option<String>,
        reason: String,
    ) -> Result<()> {
        let id: DocId = parse(&petition_id)?;
        let author: Option<MemberId> = parse_opt(author_id.as_deref())?;
        self.write(move |store| store.reopen_petition(id, author, &reason))
            .await
    }

    /// The petition ledger of a branch, most urgent first; `today` (`YYYY-MM-DD`)
    /// decides what is overdue.
    pub async fn list_petitions(
        &self,
        branch_id: String,
        filter: records::PetitionFilter,
        today: String,
    ) -> Result<Vec<records::PetitionRow>> {
        let branch: BranchId = parse(&branch_id)?;
        let filter = filter.try_into()?;
        let today = parse(&today)?;
        let rows = self
            .read(move |store| store.list_petitions(branch, &filter, today))
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

// --- feedback box ------------------------------------------------------------------

#[uniffi::export]
impl BranchlineClient {
    /// The branch's feedback box with every suggestion and answer; none until the
    /// first suggestion made the server create it (or it has not synced yet).
    pub async fn feedback_box(&self, branch_id: String) -> Result<Option<records::FeedbackBox>> {
        let branch: BranchId = parse(&branch_id)?;
        let found = self.read(move |store| store.feedback_box(branch)).await?;
        Ok(found.map(|(_, b)| b.into()))
    }

    /// Answers a suggestion, as this device's member, now. An earlier answer is
    /// replaced and taken off the public board until it is published again.
    pub async fn answer_suggestion(
        &self,
        branch_id: String,
        suggestion_id: String,
        text: String,
    ) -> Result<()> {
        let branch: BranchId = parse(&branch_id)?;
        let suggestion: SuggestionId = parse(&suggestion_id)?;
        self.write(move |store| store.answer_suggestion(branch, suggestion, &text))
            .await
    }

    /// The committee's unpublished answer to a suggestion, if there is one. Drafts
    /// reach only committee devices; members see an answer once it is published.
    pub async fn draft_answer(
        &self,
        branch_id: String,
        suggestion_id: String,
    ) -> Result<Option<records::SuggestionAnswer>> {
        let branch: BranchId = parse(&branch_id)?;
        let suggestion: SuggestionId = parse(&suggestion_id)?;
        let draft = self
            .read(move |store| store.draft_answer(branch, suggestion))
            .await?;
        Ok(draft.map(Into::into))
    }

    /// Puts the answer to a suggestion on the branch's public board, or (with
    /// `false`) takes it off. Only an answered suggestion can be published.
    pub async fn publish_answer(
        &self,
        branch_id: String,
        suggestion_id: String,
        published: bool,
    ) -> Result<()> {
        let branch: BranchId = parse(&branch_id)?;
        let suggestion: SuggestionId = parse(&suggestion_id)?;
        self.write(move |store| store.publish_answer(branch, suggestion, published))
            .await
    }
}

// --- documents, conflicts, reports -----------------------------------------------------

#[uniffi::export]
impl BranchlineClient {
    /// Every document on this device, with its unacknowledged changes.
    pub async fn list_documents(&self) -> Result<Vec<records::DocumentSummary>> {
        let docs = self.read(|store| store.documents()).await?;
        Ok(docs.into_iter().map(Into::into).collect())
    }

    /// This device's changes the server refused, oldest first; with `since`, only
    /// those recorded after the one with that id. Kept across restarts, so the app
    /// can still say "your edit was refused" and why.
    pub async fn rejections(&self, since: Option<i64>) -> Result<Vec<records::Rejection>> {
        let rows = self.read(move |store| store.rejections(since)).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Fields edited concurrently on two devices, for a person to settle.
    pub async fn conflicts(&self) -> Result<Vec<records::Conflict>> {
        let conflicts = self.read(|store| store.conflicts()).await?;
        Ok(conflicts.into_iter().map(Into::into).collect())
    }

    /// Settles the conflict at `path` of a document by keeping value number `keep`
    /// of its list; the choice replaces every value, on every device.
    pub async fn settle_conflict(&self, doc_id: String, path: String, keep: u32) -> Result<()> {
        let id: DocId = parse(&doc_id)?;
        let keep = usize::try_from(keep).map_err(|_| BranchlineError::invalid("index", keep))?;
        let conflicts = self
            .write(move |store| {
                store.settle_conflict(id, &path, keep)?;
                store.conflicts()
            })
            .await?;
        // Told on a library thread, not inside this call on the caller's.
        let hub = Arc::clone(&self.shared.hub);
        self.handle.spawn(async move {
            hub.conflicts(conflicts.into_iter().map(Into::into).collect());
        });
        Ok(())
    }

    /// Every report of a branch over `from`..=`to`, with `as_of` as today (all
    /// `YYYY-MM-DD`).
    pub async fn report(
        &self,
        branch_id: String,
        from: String,
        to: String,
        as_of: String,
    ) -> Result<records::BranchReport> {
        let branch: BranchId = parse(&branch_id)?;
        let period = records::period(&from, &to)?;
        let as_of = parse(&as_of)?;
        Ok(self
            .read(move |store| store.report(branch, period, as_of))
            .await?
            .into())
    }

    /// Attendance per member and per activity kind over `from`..=`to`.
    pub async fn attendance_report(
        &self,
        branch_id: String,
        from: String,
        to: String,
    ) -> Result<records::AttendanceReport> {
        let branch: BranchId = parse(&branch_id)?;
        let period = records::period(&from, &to)?;
        Ok(self
            .read(move |store| store.attendance_report(branch, period))
            .await?
            .into())
    }

    /// Petitions submitted over `from`..=`to`, with `as_of` deciding what is overdue.
    pub async fn petition_report(
        &self,
        branch_id: String,
        from: String,
        to: String,
        as_of: String,
    ) -> Result<records::PetitionReport> {
        let branch: BranchId = parse(&branch_id)?;
        let period = records::period(&from, &to)?;
        let as_of = parse(&as_of)?;
        Ok(self
            .read(move |store| store.petition_report(branch, period, as_of))
            .await?
            .into())
    }

    /// For each required activity kind, how many were held per calendar period.
    pub async fn compliance_report(
        &self,
        branch_id: String,
        from: String,
        to: String,
    ) -> Result<Vec<records::KindCompliance>> {
        let branch: BranchId = parse(&branch_id)?;
        let period = records::period(&from, &to)?;
        let rows = self
            .read(move |store| store.compliance_report(branch, period))
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The committee's term and whether renewal is due on `as_of`; none if no term
    /// is set.
    pub async fn term_reminder(
        &self,
        branch_id: String,
        as_of: String,
    ) -> Result<Option<records::TermReminder>> {
        let branch: BranchId = parse(&branch_id)?;
        let as_of = parse(&as_of)?;
        Ok(self
            .read(move |store| store.term_reminder(branch, as_of))
            .await?
            .map(Into::into))
    }

    /// Age bands of the active membership on `as_of`.
    pub async fn age_structure(
        &self,
        branch_id: String,
        as_of: String,
    ) -> Result<records::AgeStructure> {
        let branch: BranchId = parse(&branch_id)?;
        let as_of = parse(&as_of)?;
        Ok(self
            .read(move |store| store.age_structure(branch, as_of))
            .await?
            .into())
    }
}
