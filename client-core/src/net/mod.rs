//! The client transport: QUIC to the branch server, driving the sans-I/O
//! [`sync::Session`](crate::sync::Session), and syncing by itself whenever
//! the network allows.
//!
//! A [`SyncClient`] owns one background task. The app tells it when the
//! network comes and goes ([`SyncClient::set_network_available`]); the task
//! then connects, reconciles and syncs, stays connected with a keep-alive
//! suited to mobile NAT, pushes local edits as they are made (through the
//! store's change listener) and pulls documents the server says changed.
//! When the connection drops it reconnects with jittered exponential
//! backoff; when the device's address changes it moves the connection to
//! a new socket (QUIC migration) instead of reconnecting.
//!
//! # Streams
//!
//! One connection carries a control stream (handshake, manifest, notices)
//! and one stream per document being synced, up to
//! [`ClientConfig::max_doc_streams`] at a time; further documents wait
//! their turn. Requests (invites, revocations) get a stream each. See
//! `docs/sync-design.md`.
//!
//! # When the task dies
//!
//! Every failure the task expects (a lost connection, a refusal, a store
//! error) ends a connection and is retried or reported. A panic is the one
//! it does not expect; it is caught where the task was spawned, recorded as
//! a [`TaskFailure`] with a stable code, and the status becomes
//! [`Status::Stopped`], so the app is not left showing `Syncing` from a task
//! that is gone.

mod retry;
mod tls;

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use branchline_protocol::{self as protocol, ErrorCode, FrameCodec, InviteLink, Message, Role};
use futures_util::{FutureExt as _, StreamExt as _};
use rand::RngExt as _;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use crate::ids::SuggestionId;
use crate::model::{NewPetition, Petition, Timestamp};
use crate::store::Store;
use crate::sync::{Join, Outgoing, Session, SessionError, SyncEvent};
use crate::{DocId, MemberId};
use retry::DocRetries;

/// The QUIC application close code for a normal goodbye.
const CLOSE_DONE: u32 = 0;
/// The QUIC application close code when the client found the server
/// breaking the protocol.
const CLOSE_PROTOCOL: u32 = 2;

/// How the client connects and retries.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How often an idle connection sends a keep-alive, so mobile NAT
    /// mappings (often dropped after 30 s of silence) stay open.
    pub keep_alive: Duration,
    /// How long a connection may hear nothing before it counts as lost.
    pub idle_timeout: Duration,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// The first retry delay after a failure; each further failure doubles it.
    pub backoff_min: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
    /// How many documents sync at once, each on its own stream.
    pub max_doc_streams: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(20),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            max_doc_streams: 12,
        }
    }
}

/// What the client is doing, for the app's status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The app said there is no network.
    Offline,
    /// Opening a connection.
    Connecting,
    /// Connected, documents being reconciled or synced.
    Syncing,
    /// Connected, and everything in scope is the same on both sides.
    InSync,
    /// The last attempt failed; the next one starts after this delay
    /// (sooner if the app calls [`SyncClient::sync_now`]).
    Waiting {
        /// The delay before the next attempt.
        retry_in: Duration,
    },
    /// The server refused this device for good (revoked, or an invite that
    /// cannot be used); it will not retry.
    Refused {
        /// The server's error code.
        code: ErrorCode,
    },
    /// The client was shut down, or its background task failed
    /// ([`SyncClient::failure`] then says why).
    Stopped,
}

/// Why the background task stopped without being asked to: it panicked.
/// Nothing syncs until the app starts a new client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("background sync failed: {reason}")]
#[non_exhaustive]
pub struct TaskFailure {
    /// What went wrong, for logs (the panic's message).
    pub reason: String,
}

impl TaskFailure {
    /// The stable code for apps to translate: `net.task_failed`.
    pub fn code(&self) -> &'static str {
        "net.task_failed"
    }
}

/// Something the app may want to show or react to.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// A connection was established and the server welcomed the device.
    Connected,
    /// An event from the sync session (documents updated, acknowledged…).
    Sync(SyncEvent),
    /// Reconciliation and every document sync finished; figures for the
    /// session so far.
    InSync(SessionReport),
    /// The connection ended; the client will retry unless it was refused.
    Disconnected {
        /// Why, for logs.
        reason: String,
    },
}

/// Figures for one connection, up to the moment it was last in sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionReport {
    /// Time from starting the connection to the server's Welcome.
    pub handshake: Duration,
    /// Time from starting the connection to being in sync.
    pub to_in_sync: Duration,
    /// Round trips spent reconciling the manifest, counting the digest
    /// exchange (pipelined with the Hello): 1 when nothing changed.
    pub manifest_round_trips: u32,
    /// Documents synced on their own stream.
    pub docs_synced: u32,
    /// Documents received whole (a first sync), not synced on their own stream.
    pub docs_received_whole: u32,
    /// Protocol bytes (frames) the client sent.
    pub frame_bytes_sent: u64,
    /// Protocol bytes (frames) the client received.
    pub frame_bytes_received: u64,
    /// UDP payload bytes sent, QUIC and TLS overhead included.
    pub udp_bytes_sent: u64,
    /// UDP payload bytes received, QUIC and TLS overhead included.
    pub udp_bytes_received: u64,
    /// UDP payload bytes both ways from the Welcome on: what the session
    /// cost once the QUIC and TLS handshake was done.
    pub udp_bytes_after_handshake: u64,
    /// Connections opened by this client so far (a migration is not a new
    /// connection).
    pub connections: u32,
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The store holds no account and no invite was given.
    #[error("this device has not joined a branch yet; use an invite")]
    NotEnrolled,
    /// The call needs a connection and there is none right now.
    #[error("not connected to the server")]
    Offline,
    /// The server answered with an error.
    #[error("the server refused: {code}: {message}")]
    Refused {
        /// The server's code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The connection failed during the call.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The wait ran out.
    #[error("timed out")]
    Timeout,
    /// The client was shut down.
    #[error("the sync client has stopped")]
    Stopped,
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] crate::Error),
}

impl NetError {
    /// The stable code of this error, for apps to translate.
    pub fn code(&self) -> &str {
        match self {
            NetError::NotEnrolled => "net.not_enrolled",
            NetError::Offline => "net.offline",
            NetError::Refused { code, .. } => code.as_str(),
            NetError::Connection(_) => "net.connection",
            NetError::Timeout => "net.timeout",
            NetError::Stopped => "net.stopped",
            NetError::Store(e) => e.code(),
        }
    }
}

/// The app's handle on background sync with the branch server.
///
/// Dropping it stops the background task; [`shutdown`](Self::shutdown)
/// does so gracefully.
pub struct SyncClient {
    commands: mpsc::UnboundedSender<Command>,
    events: broadcast::Sender<ClientEvent>,
    status: watch::Receiver<Status>,
    report: watch::Receiver<SessionReport>,
    failure: watch::Receiver<Option<TaskFailure>>,
    task: Option<tokio::task::JoinHandle<()>>,
    store: Arc<Mutex<Store>>,
}

enum Command {
    Network(bool),
    NetworkChanged,
    SyncNow,
    LocalChange(DocId),
    WhenInSync(oneshot::Sender<()>),
    Request(Message, oneshot::Sender<Result<Message, NetError>>),
    Shutdown,
}

impl SyncClient {
    /// Joins a branch with an invite link on first run: the device enrolls
    /// at its first connection and stores its account in `store`.
    ///
    /// Must be called inside a tokio runtime. The network starts out
    /// available.
    pub fn join(
        store: Arc<Mutex<Store>>,
        invite: InviteLink,
        device_name: &str,
        config: ClientConfig,
    ) -> Self {
        let join = Join::Enroll {
            invite,
            device_name: device_name.to_owned(),
        };
        Self::spawn(store, join, config)
    }

    /// Resumes syncing as the device whose account `store` holds.
    pub fn resume(store: Arc<Mutex<Store>>, config: ClientConfig) -> Result<Self, NetError> {
        let account = lock(&store).account()?.ok_or(NetError::NotEnrolled)?;
        Ok(Self::spawn(store, Join::Resume(account), config))
    }

    fn spawn(store: Arc<Mutex<Store>>, join: Join, config: ClientConfig) -> Self {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(1024);
        let (status_tx, status) = watch::channel(Status::Connecting);
        let (report_tx, report) = watch::channel(SessionReport::default());
        let (failure_tx, failure) = watch::channel(None);
        let listener = commands.clone();
        lock(&store).set_change_listener(Some(Box::new(move |doc| {
            // The runner may be gone at shutdown; nothing to do then.
            let _ = listener.send(Command::LocalChange(doc));
        })));
        let runner = Runner {
            store: Arc::clone(&store),
            config,
            join,
            endpoint: None,
            client_config: None,
            commands: command_rx,
            events: events.clone(),
            status: status_tx.clone(),
            report: report_tx,
            network: true,
            connections: 0,
            node: 0,
            waiting_for_sync: Vec::new(),
        };
        let task = tokio::spawn(supervise(runner.run(), status_tx, failure_tx));
        Self {
            commands,
            events,
            status,
            report,
            failure,
            task: Some(task),
            store,
        }
    }

    /// The store this client syncs.
    pub fn store(&self) -> &Arc<Mutex<Store>> {
        &self.store
    }

    /// Tells the client whether the device has a network connection. With
    /// none it stays offline; when one appears it connects at once.
    pub fn set_network_available(&self, available: bool) {
        let _ = self.commands.send(Command::Network(available));
    }

    /// Tells the client the device's network changed (e.g. from Wi-Fi to
    /// mobile data): the connection moves to a new local socket.
    pub fn network_changed(&self) {
        let _ = self.commands.send(Command::NetworkChanged);
    }

    /// Tries to connect now instead of waiting out the retry delay.
    pub fn sync_now(&self) {
        let _ = self.commands.send(Command::SyncNow);
    }

    /// What the client is doing now.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// The status from now on, for an app that shows every change of it.
    pub fn status_updates(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Why the background task failed, if it did. It is set before the status
    /// becomes [`Status::Stopped`], so an app that sees `Stopped` can ask.
    pub fn failure(&self) -> Option<TaskFailure> {
        self.failure.borrow().clone()
    }

    /// The failure from now on (see [`failure`](Self::failure)), for a task
    /// that reports it without holding the client.
    pub fn failure_updates(&self) -> watch::Receiver<Option<TaskFailure>> {
        self.failure.clone()
    }

    /// Figures for the current (or last) connection.
    pub fn report(&self) -> SessionReport {
        self.report.borrow().clone()
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.events.subscribe()
    }

    /// Waits until everything edited before this call has been synced and
    /// the client is in sync with the server, or `timeout` passes.
    pub async fn wait_in_sync(&self, timeout: Duration) -> Result<(), NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::WhenInSync(tx))
            .map_err(|_| NetError::Stopped)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(NetError::Stopped),
            Err(_) => Err(NetError::Timeout),
        }
    }

    /// Waits until the status satisfies `done`, or `timeout` passes.
    pub async fn wait_for_status(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Status) -> bool,
    ) -> Result<Status, NetError> {
        let mut status = self.status.clone();
        let found = tokio::time::timeout(timeout, status.wait_for(|s| done(s)))
            .await
            .map_err(|_| NetError::Timeout)?
            .map_err(|_| NetError::Stopped)?;
        Ok(found.clone())
    }

    /// Makes a one-time invite into this device's branch (secretary: any
    /// role; committee: members and residents).
    pub async fn create_invite(
        &self,
        role: Role,
        member: Option<MemberId>,
        valid_for: Duration,
    ) -> Result<(InviteLink, i64), NetError> {
        let request = Message::CreateInvite {
            role,
            member_id: member.map(Into::into),
            valid_for_secs: u32::try_from(valid_for.as_secs()).unwrap_or(u32::MAX),
        };
        match self.request(request).await? {
            Message::InviteCreated {
                invite,
                expires_at_ms,
            } => {
                let link = invite.parse().map_err(|e: protocol::InviteParseError| {
                    NetError::Connection(format!("the server sent a bad invite link: {e}"))
                })?;
                Ok((link, expires_at_ms))
            }
            other => Err(unexpected_answer(&other)),
        }
    }

    /// Revokes a device of this branch (secretary only).
    pub async fn revoke_device(&self, device: protocol::DeviceId) -> Result<(), NetError> {
        match self
            .request(Message::RevokeDevice { device_id: device })
            .await?
        {
            Message::DeviceRevoked { device_id } if device_id == device => Ok(()),
            other => Err(unexpected_answer(&other)),
        }
    }

    /// The branch's public submission link, which residents scan to send
    /// requests (secretary and committee only). Show it as a QR code.
    pub async fn submission_link(&self) -> Result<InviteLink, NetError> {
        match self.request(Message::GetSubmissionCode).await? {
            Message::SubmissionCode { link } => {
                link.parse().map_err(|e: protocol::InviteParseError| {
                    NetError::Connection(format!("the server sent a bad submission link: {e}"))
                })
            }
            other => Err(unexpected_answer(&other)),
        }
    }

    /// Sends a request to the branch through the server, which writes the
    /// petition itself and lets this device follow it: how a resident
    /// submits. The petition arrives with the next sync. Returns its id.
    ///
    /// Required fields are checked here first (`input.empty`), so a person
    /// offline hears about a blank title at once; the server checks lengths
    /// (`request.invalid`) and names the submitter itself, so
    /// `new.submitter.member` is not sent.
    pub async fn submit_petition(&self, new: &NewPetition) -> Result<DocId, NetError> {
        Petition::submit(crate::BranchId::random(), new.clone(), Timestamp(0))?;
        let request = Message::SubmitPetition {
            category: new.category.clone(),
            title: new.title.clone(),
            description: new.description.clone(),
            location: new.location.clone(),
            name: new.submitter.name.clone(),
            contact: new.submitter.contact.clone(),
        };
        match self.request(request).await? {
            Message::PetitionSubmitted { doc_id } => Ok(doc_id.into()),
            other => Err(unexpected_answer(&other)),
        }
    }

    /// Posts a suggestion to the branch's feedback box. When `anonymous`,
    /// the server writes it under its own name and keeps nothing that links
    /// it to this device. Returns the box and the suggestion's id.
    pub async fn submit_suggestion(
        &self,
        text: &str,
        anonymous: bool,
    ) -> Result<(DocId, SuggestionId), NetError> {
        let request = Message::SubmitSuggestion {
            text: text.to_owned(),
            anonymous,
        };
        match self.request(request).await? {
            Message::SuggestionSubmitted {
                doc_id,
                suggestion_id,
            } => {
                let id = suggestion_id.parse().map_err(|_| {
                    NetError::Connection(format!(
                        "the server sent a bad suggestion id {suggestion_id:?}"
                    ))
                })?;
                Ok((doc_id.into(), id))
            }
            other => Err(unexpected_answer(&other)),
        }
    }

    async fn request(&self, request: Message) -> Result<Message, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Request(request, tx))
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// Asks the background task to close the connection politely and stop,
    /// without waiting; the status becomes [`Status::Stopped`] when it has.
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }

    /// Closes the connection politely and stops the background task.
    pub async fn shutdown(mut self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SyncClient {
    fn drop(&mut self) {
        lock(&self.store).set_change_listener(None);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A QUIC client configuration that trusts only the server whose
/// certificate hashes to `cert_sha256`, speaking TLS 1.3 and the Branchline
/// ALPN: for tools and tests that talk to a server directly.
pub fn quic_client_config(cert_sha256: [u8; 32]) -> Result<quinn::ClientConfig, NetError> {
    quic_client_config_with_alpn(cert_sha256, protocol::ALPN)
}

/// Like [`quic_client_config`] but offering another ALPN, to check that a
/// server refuses clients that speak something else.
pub fn quic_client_config_with_alpn(
    cert_sha256: [u8; 32],
    alpn: &[u8],
) -> Result<quinn::ClientConfig, NetError> {
    let mut transport = quinn::TransportConfig::default();
    transport.mtu_discovery_config(None);
    tls::client_config(cert_sha256, Arc::new(transport), alpn)
        .map_err(|e| NetError::Connection(e.to_string()))
}

fn unexpected_answer(message: &Message) -> NetError {
    match message {
        Message::Error { code, message, .. } => NetError::Refused {
            code: code.clone(),
            message: message.clone(),
        },
        other => NetError::Connection(format!("unexpected answer {}", other.name())),
    }
}

/// Runs the background task `run`. If it panics, records why in `failure`
/// and then reports [`Status::Stopped`], which the task itself sends only
/// when it ends normally.
///
/// Unwind safety: after a panic nothing of the task is used again; what it
/// shared is the store, whose writes are each one SQLite transaction (rolled
/// back when the panic drops it) behind a mutex whose poisoning [`lock`]
/// tolerates.
async fn supervise(
    run: impl Future<Output = ()>,
    status: watch::Sender<Status>,
    failure: watch::Sender<Option<TaskFailure>>,
) {
    let Err(panic) = AssertUnwindSafe(run).catch_unwind().await else {
        return;
    };
    let failed = TaskFailure {
        reason: panic_message(&*panic).to_owned(),
    };
    tracing::error!(reason = %failed.reason, "the sync task panicked; sync has stopped");
    failure.send_replace(Some(failed));
    status.send_replace(Status::Stopped);
}

/// What a panic said.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Locks the store; a panic while it was held elsewhere does not make the
/// data unusable (every store write is one SQLite transaction).
fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How a connection ended.
enum Ended {
    /// The app asked the client to stop.
    Shutdown,
    /// The app said the network is gone.
    NetworkDown,
    /// The server refused the device; retrying cannot help.
    Refused(ErrorCode, String),
    /// The connection failed or dropped; `synced` says whether it got in
    /// sync first (which resets the backoff).
    Lost { reason: String, synced: bool },
}

/// The background task.
struct Runner {
    store: Arc<Mutex<Store>>,
    config: ClientConfig,
    join: Join,
    endpoint: Option<quinn::Endpoint>,
    client_config: Option<quinn::ClientConfig>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: broadcast::Sender<ClientEvent>,
    status: watch::Sender<Status>,
    report: watch::Sender<SessionReport>,
    network: bool,
    connections: u32,
    /// Which of the server's addresses the next connection dials: the
    /// invite may name several nodes, and a lost connection moves on to the
    /// next, so a device whose node died resumes on another.
    node: usize,
    waiting_for_sync: Vec<oneshot::Sender<()>>,
}

impl Runner {
    async fn run(mut self) {
        let mut failures: u32 = 0;
        loop {
            if !self.network {
                self.status.send_replace(Status::Offline);
                if !self.idle_until_network().await {
                    break;
                }
                continue;
            }
            self.status.send_replace(Status::Connecting);
            let ended = self.connect_and_sync().await;
            let delay = match ended {
                Ended::Shutdown => break,
                Ended::NetworkDown => continue,
                Ended::Refused(code, message) => {
                    warn!(%code, %message, "the server refused this device");
                    if code == ErrorCode::DeviceRevoked
                        && let Err(e) = lock(&self.store).forget_account()
                    {
                        warn!(error = %e, "could not forget the revoked account");
                    }
                    self.status.send_replace(Status::Refused { code });
                    self.idle_until_shutdown().await;
                    break;
                }
                Ended::Lost { reason, synced } => {
                    debug!(%reason, "connection lost");
                    self.node = self.node.wrapping_add(1);
                    let _ = self.events.send(ClientEvent::Disconnected { reason });
                    failures = if synced {
                        1
                    } else {
                        failures.saturating_add(1)
                    };
                    self.backoff(failures)
                }
            };
            self.status
                .send_replace(Status::Waiting { retry_in: delay });
            if !self.wait_to_retry(delay).await {
                break;
            }
        }
        if let Some(endpoint) = &self.endpoint {
            endpoint.close(CLOSE_DONE.into(), b"bye");
            endpoint.wait_idle().await;
        }
        self.status.send_replace(Status::Stopped);
    }

    /// Full jitter: a random delay between half and all of the capped
    /// exponential delay, so devices that lost the server together do not
    /// come back together.
    fn backoff(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(20);
        let ceiling = self
            .config
            .backoff_min
            .saturating_mul(1 << exponent)
            .min(self.config.backoff_max);
        ceiling.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// Waits for the network to come back; false on shutdown.
    async fn idle_until_network(&mut self) -> bool {
        while let Some(command) = self.commands.recv().await {
            match command {
                Command::Network(true) => {
                    self.network = true;
                    return true;
                }
                Command::Shutdown => return false,
                other => self.offline_command(other),
            }
        }
        false
    }

    async fn idle_until_shutdown(&mut self) {
        while let Some(command) = self.commands.recv().await {
            match command {
                Command::Shutdown => return,
                other => self.offline_command(other),
            }
        }
    }

    /// Sleeps `delay` unless the app asks to retry sooner; false on shutdown.
    async fn wait_to_retry(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                command = self.commands.recv() => match command {
                    None | Some(Command::Shutdown) => return false,
                    Some(Command::SyncNow | Command::Network(true)) => {
                        self.network = true;
                        return true;
                    }
                    Some(Command::Network(false)) => {
                        self.network = false;
                        return true;
                    }
                    Some(other) => self.offline_command(other),
                },
            }
        }
    }

    /// Handles a command that needs no connection, or refuses one that does.
    fn offline_command(&mut self, command: Command) {
        match command {
            Command::Network(available) => self.network = available,
            Command::WhenInSync(tx) => self.waiting_for_sync.push(tx),
            Command::Request(_, reply) => {
                let _ = reply.send(Err(NetError::Offline));
            }
            // Local edits are found by the manifest at the next connection.
            Command::LocalChange(_)
            | Command::SyncNow
            | Command::NetworkChanged
            | Command::Shutdown => {}
        }
    }

    fn endpoint_for(&mut self, server: SocketAddr) -> std::io::Result<quinn::Endpoint> {
        if let Some(endpoint) = &self.endpoint
            && endpoint.local_addr()?.is_ipv4() == server.is_ipv4()
        {
            return Ok(endpoint.clone());
        }
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("valid address")
        } else {
            "[::]:0".parse().expect("valid address")
        };
        let endpoint = quinn::Endpoint::client(bind)?;
        self.endpoint = Some(endpoint.clone());
        Ok(endpoint)
    }

    fn transport(&self) -> Arc<quinn::TransportConfig> {
        let mut transport = quinn::TransportConfig::default();
        // Path-MTU probes cost about 6 KB each way on every connection (4 padded
        // PINGs of up to 1,452 B), more than a whole reconnect's sync; on metered
        // phone data that is not worth the 2 % a larger packet would save.
        transport.mtu_discovery_config(None);
        transport.keep_alive_interval(Some(self.config.keep_alive));
        if let Ok(idle) = quinn::IdleTimeout::try_from(self.config.idle_timeout) {
            transport.max_idle_timeout(Some(idle));
        }
        Arc::new(transport)
    }

    /// The address the next connection dials: every address of every node
    /// the server field names (a name may resolve to several), taken in
    /// turn by [`Runner::node`].
    async fn resolve(&self, server: &str) -> Result<SocketAddr, String> {
        let names = protocol::invite::split_addresses(server).unwrap_or_else(|| vec![server]);
        let mut addrs = Vec::new();
        let mut unresolved = None;
        for name in names {
            match tokio::net::lookup_host(name).await {
                Ok(found) => addrs.extend(found),
                Err(e) => unresolved = Some(format!("cannot resolve {name}: {e}")),
            }
        }
        if addrs.is_empty() {
            return Err(unresolved.unwrap_or_else(|| format!("{server} has no address")));
        }
        Ok(addrs[self.node % addrs.len()])
    }

    /// One connection, from dialling to its end.
    async fn connect_and_sync(&mut self) -> Ended {
        let started = Instant::now();
        let (server, cert_sha256) = match &self.join {
            Join::Enroll { invite, .. } => (invite.server.clone(), invite.cert_sha256),
            Join::Resume(account) => (account.server.clone(), account.cert_sha256),
        };
        let addr = match self.resolve(&server).await {
            Ok(addr) => addr,
            Err(reason) => return lost(reason),
        };
        let endpoint = match self.endpoint_for(addr) {
            Ok(endpoint) => endpoint,
            Err(e) => return lost(format!("cannot open a UDP socket: {e}")),
        };
        if self.client_config.is_none() {
            match tls::client_config(cert_sha256, self.transport(), protocol::ALPN) {
                Ok(config) => self.client_config = Some(config),
                Err(e) => return lost(format!("TLS setup failed: {e}")),
            }
        }
        let config = self.client_config.clone().expect("set just above");
        let connecting = match endpoint.connect_with(config, addr, tls::SERVER_NAME) {
            Ok(connecting) => connecting,
            Err(e) => return lost(format!("cannot connect to {addr}: {e}")),
        };
        let connection = tokio::select! {
            result = tokio::time::timeout(self.config.connect_timeout, connecting) => match result {
                Ok(Ok(connection)) => connection,
                Ok(Err(e)) if tls::is_pin_mismatch(&e) => {
                    // Another certificate than the invite pinned: retrying
                    // cannot help, and the person must know at once.
                    return Ended::Refused(
                        ErrorCode::CertificateMismatch,
                        format!("the server at {addr} is not the one the invite named (its certificate differs)"),
                    );
                }
                Ok(Err(e)) => return lost(format!("connecting to {addr} failed: {e}")),
                Err(_) => return lost(format!("connecting to {addr} timed out")),
            },
            ended = self.commands_while_connecting() => return ended,
        };
        self.connections += 1;
        info!(%addr, "connected");
        let mut link = Link::new(
            connection,
            self.config.max_doc_streams,
            started,
            self.connections,
        );
        let ended = self.sync_over(&mut link).await;
        link.close(&ended);
        ended
    }

    /// Watches commands while a connection attempt is under way.
    async fn commands_while_connecting(&mut self) -> Ended {
        loop {
            match self.commands.recv().await {
                None | Some(Command::Shutdown) => return Ended::Shutdown,
                Some(Command::Network(false)) => {
                    self.network = false;
                    return Ended::NetworkDown;
                }
                Some(other) => self.offline_command(other),
            }
        }
    }

    /// Drives the session over an open connection until it ends.
    async fn sync_over(&mut self, link: &mut Link) -> Ended {
        let (control_send, control_recv) = match link.connection.open_bi().await {
            Ok(streams) => streams,
            Err(e) => return lost(format!("cannot open the control stream: {e}")),
        };
        link.control = Some(control_send);
        let mut control = FramedRead::new(control_recv, FrameCodec::new());
        let mut session = Session::new(self.join.clone());
        let outgoing = match session.start(&mut lock(&self.store)) {
            Ok(outgoing) => outgoing,
            Err(e) => return lost(format!("the local store failed: {e}")),
        };
        if let Err(ended) = link.send_all(outgoing).await {
            return ended;
        }
        let mut was_in_sync = false;
        loop {
            let step = tokio::select! {
                frame = control.next() => match frame {
                    Some(Ok(message)) => {
                        link.count_received(&message);
                        self.handle(&mut session, message)
                    }
                    Some(Err(e)) => return lost(format!("bad frame from the server: {e}")),
                    None => return self.closed_by_server(link, was_in_sync).await,
                },
                Some(incoming) = link.doc_rx.recv() => match incoming {
                    DocIncoming::Message(message) => {
                        link.count_received(&message);
                        self.handle(&mut session, message)
                    }
                    DocIncoming::Closed(doc, stream) => {
                        link.stream_closed(doc, stream);
                        let mut store = lock(&self.store);
                        Ok(session.doc_stream_closed(&mut store, doc))
                    }
                    DocIncoming::FetchClosed(docs) => {
                        link.fetches -= 1;
                        let mut store = lock(&self.store);
                        session.fetch_closed(&mut store, &docs).map_err(SessionError::Store)
                    }
                },
                command = self.commands.recv() => match command {
                    None | Some(Command::Shutdown) => return Ended::Shutdown,
                    Some(command) => match self.connected_command(&mut session, link, command) {
                        Ok(step) => step,
                        Err(ended) => return ended,
                    },
                },
                () = sleep_until(link.retries.next_due()) => {
                    self.retry_due(&mut session, link)
                }
                error = link.connection.closed() => {
                    return self.classify_close(error, was_in_sync);
                }
            };
            let outgoing = match step {
                Ok(outgoing) => outgoing,
                Err(SessionError::Rejected { code, message }) if code.is_transient() => {
                    // The node cannot serve now (its database restarting, say):
                    // reconnect after the backoff, to another node if there is one.
                    return lost(format!("the server failed: {code}: {message}"));
                }
                Err(SessionError::Rejected { code, message }) => {
                    return Ended::Refused(code, message);
                }
                Err(SessionError::Protocol(reason)) => {
                    link.connection
                        .close(CLOSE_PROTOCOL.into(), b"protocol violation");
                    return lost(format!("the server broke the protocol: {reason}"));
                }
                Err(SessionError::Store(e)) => return lost(format!("the local store failed: {e}")),
            };
            if let Err(ended) = self.publish_events(&mut session, link) {
                return ended;
            }
            if let Err(ended) = link.send_all(outgoing).await {
                return ended;
            }
            if let Err(ended) = link.open_waiting().await {
                return ended;
            }
            let in_sync = session.is_in_sync() && link.is_quiet();
            if in_sync {
                if !was_in_sync {
                    let now = lock(&self.store).now();
                    if let Err(e) = lock(&self.store).record_synced(now) {
                        warn!(error = %e, "could not record the time of this sync");
                    }
                    let report = link.report(&session);
                    self.report.send_replace(report.clone());
                    let _ = self.events.send(ClientEvent::InSync(report));
                }
                self.status.send_replace(Status::InSync);
                for waiter in self.waiting_for_sync.drain(..) {
                    let _ = waiter.send(());
                }
            } else {
                self.status.send_replace(Status::Syncing);
            }
            was_in_sync = in_sync;
        }
    }

    fn handle(
        &mut self,
        session: &mut Session,
        message: Message,
    ) -> Result<Vec<Outgoing>, SessionError> {
        let mut store = lock(&self.store);
        session.handle(&mut store, message)
    }

    /// Hands the session's events to the app, and schedules another try of
    /// each document the server failed on its side. Ends the connection when
    /// a document kept failing.
    fn publish_events(&mut self, session: &mut Session, link: &mut Link) -> Result<(), Ended> {
        let mut gave_up = None;
        for event in session.take_events() {
            match &event {
                SyncEvent::DocFailed { doc, code, message } if code.is_transient() => {
                    match link.retries.failed(*doc, tokio::time::Instant::now()) {
                        Ok(delay) => {
                            debug!(%doc, %code, %message, ?delay, "the server failed; trying again")
                        }
                        Err(retry::GaveUp { doc, attempts }) => {
                            gave_up = Some(lost(format!(
                                "the server failed {attempts} times in a row to sync {doc}: {code}: {message}"
                            )));
                        }
                    }
                }
                SyncEvent::DocUpdated(doc) | SyncEvent::Acknowledged(doc) => {
                    link.retries.succeeded(*doc);
                }
                SyncEvent::Enrolled(account) => {
                    self.join = Join::Resume(account.clone());
                }
                SyncEvent::Welcomed { .. } => {
                    link.mark_welcomed();
                    let _ = self.events.send(ClientEvent::Connected);
                }
                _ => {}
            }
            let _ = self.events.send(ClientEvent::Sync(event));
        }
        gave_up.map_or(Ok(()), Err)
    }

    /// Starts the sync of every document whose retry is due (one already
    /// syncing again carries on instead).
    fn retry_due(
        &mut self,
        session: &mut Session,
        link: &mut Link,
    ) -> Result<Vec<Outgoing>, SessionError> {
        let mut store = lock(&self.store);
        let mut out = Vec::new();
        for doc in link.retries.take_due(tokio::time::Instant::now()) {
            out.extend(session.local_change(&mut store, doc)?);
        }
        Ok(out)
    }

    /// Handles an app command while connected.
    fn connected_command(
        &mut self,
        session: &mut Session,
        link: &mut Link,
        command: Command,
    ) -> Result<Result<Vec<Outgoing>, SessionError>, Ended> {
        match command {
            Command::Network(false) => {
                self.network = false;
                Err(Ended::NetworkDown)
            }
            Command::Network(true) | Command::SyncNow => Ok(Ok(Vec::new())),
            Command::NetworkChanged => {
                if let Err(e) = self.migrate() {
                    warn!(error = %e, "could not move to a new socket");
                }
                Ok(Ok(Vec::new()))
            }
            Command::LocalChange(doc) => {
                let mut store = lock(&self.store);
                Ok(session
                    .local_change(&mut store, doc)
                    .map_err(SessionError::Store))
            }
            Command::WhenInSync(tx) => {
                self.waiting_for_sync.push(tx);
                Ok(Ok(Vec::new()))
            }
            Command::Request(request, reply) => {
                link.request(request, reply);
                Ok(Ok(Vec::new()))
            }
            Command::Shutdown => Err(Ended::Shutdown),
        }
    }

    /// Moves the endpoint, and with it the live connection, to a fresh
    /// UDP socket: what happens when a phone switches networks. QUIC
    /// validates the new path and the connection carries on.
    fn migrate(&self) -> std::io::Result<()> {
        let Some(endpoint) = &self.endpoint else {
            return Ok(());
        };
        let bind: SocketAddr = if endpoint.local_addr()?.is_ipv4() {
            "0.0.0.0:0".parse().expect("valid address")
        } else {
            "[::]:0".parse().expect("valid address")
        };
        endpoint.rebind(std::net::UdpSocket::bind(bind)?)?;
        info!(local = %endpoint.local_addr()?, "moved to a new socket");
        Ok(())
    }

    /// The server finished the control stream: it is closing the
    /// connection, usually after sending an error; wait for the reason.
    async fn closed_by_server(&mut self, link: &Link, synced: bool) -> Ended {
        let error = tokio::time::timeout(Duration::from_secs(5), link.connection.closed()).await;
        match error {
            Ok(error) => self.classify_close(error, synced),
            Err(_) => lost_after("the server ended the control stream", synced),
        }
    }

    fn classify_close(&self, error: quinn::ConnectionError, synced: bool) -> Ended {
        lost_after(&format!("connection closed: {error}"), synced)
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn lost(reason: String) -> Ended {
    Ended::Lost {
        reason,
        synced: false,
    }
}

fn lost_after(reason: &str, synced: bool) -> Ended {
    Ended::Lost {
        reason: reason.to_owned(),
        synced,
    }
}

/// A message that came in on a document stream, or the end of one.
enum DocIncoming {
    Message(Message),
    /// A stream ended; the number tells it apart from a later stream of the
    /// same document.
    Closed(DocId, u64),
    /// A `GetDocuments` stream for these documents ended.
    FetchClosed(Vec<DocId>),
}

/// One open connection: its streams and counters.
struct Link {
    connection: quinn::Connection,
    control: Option<quinn::SendStream>,
    /// Send sides of open document streams, with each stream's number.
    docs: HashMap<DocId, (u64, quinn::SendStream)>,
    next_stream: u64,
    /// Documents waiting for a free stream, with what they will send.
    waiting: VecDeque<DocId>,
    buffered: HashMap<DocId, Vec<(Option<Message>, bool)>>,
    max_streams: usize,
    /// `GetDocuments` streams not yet ended.
    fetches: usize,
    readers: JoinSet<()>,
    doc_tx: mpsc::UnboundedSender<DocIncoming>,
    doc_rx: mpsc::UnboundedReceiver<DocIncoming>,
    requests: JoinSet<()>,
    started: Instant,
    welcomed: Option<Duration>,
    udp_at_welcome: u64,
    frame_bytes_sent: u64,
    frame_bytes_received: u64,
    connections: u32,
    /// Documents the server failed on, to sync again.
    retries: DocRetries,
}

impl Link {
    fn new(
        connection: quinn::Connection,
        max_streams: usize,
        started: Instant,
        connections: u32,
    ) -> Self {
        let (doc_tx, doc_rx) = mpsc::unbounded_channel();
        Self {
            connection,
            control: None,
            docs: HashMap::new(),
            next_stream: 0,
            waiting: VecDeque::new(),
            buffered: HashMap::new(),
            max_streams: max_streams.max(1),
            fetches: 0,
            readers: JoinSet::new(),
            doc_tx,
            doc_rx,
            requests: JoinSet::new(),
            started,
            welcomed: None,
            udp_at_welcome: 0,
            frame_bytes_sent: 0,
            frame_bytes_received: 0,
            connections,
            retries: DocRetries::default(),
        }
    }

    fn mark_welcomed(&mut self) {
        if self.welcomed.is_none() {
            self.welcomed = Some(self.started.elapsed());
            let stats = self.connection.stats();
            self.udp_at_welcome = stats.udp_tx.bytes + stats.udp_rx.bytes;
        }
    }

    fn count_received(&mut self, message: &Message) {
        self.frame_bytes_received += protocol::encode(message).map_or(0, |f| f.len() as u64);
    }

    /// No document stream open or waiting, and no document waiting to be
    /// tried again.
    fn is_quiet(&self) -> bool {
        self.docs.is_empty()
            && self.waiting.is_empty()
            && self.fetches == 0
            && self.retries.is_empty()
    }

    async fn send_all(&mut self, outgoing: Vec<Outgoing>) -> Result<(), Ended> {
        for item in outgoing {
            match item {
                Outgoing::Control(message) => {
                    let frame = encode(&message)?;
                    let Some(control) = self.control.as_mut() else {
                        return Err(lost("no control stream".to_owned()));
                    };
                    control
                        .write_all(&frame)
                        .await
                        .map_err(|e| lost(format!("writing to the server failed: {e}")))?;
                    self.frame_bytes_sent += frame.len() as u64;
                }
                Outgoing::Doc {
                    doc,
                    message,
                    finish,
                } => self.send_doc(doc, message, finish).await?,
                Outgoing::Fetch { docs } => self.fetch(docs).await?,
            }
        }
        Ok(())
    }

    async fn send_doc(
        &mut self,
        doc: DocId,
        message: Option<Message>,
        finish: bool,
    ) -> Result<(), Ended> {
        if !self.docs.contains_key(&doc) {
            if self.docs.len() >= self.max_streams || self.buffered.contains_key(&doc) {
                if !self.buffered.contains_key(&doc) {
                    self.waiting.push_back(doc);
                }
                self.buffered
                    .entry(doc)
                    .or_default()
                    .push((message, finish));
                return Ok(());
            }
            self.open_doc_stream(doc).await?;
        }
        let Some((_, send)) = self.docs.get_mut(&doc) else {
            return Ok(());
        };
        if let Some(message) = message {
            let frame = encode(&message)?;
            if let Err(e) = send.write_all(&frame).await {
                // The server reset this stream (e.g. after an error it sent
                // on it); the reader reports the end to the session.
                debug!(%doc, error = %e, "document stream write failed");
                self.docs.remove(&doc);
                return Ok(());
            }
            self.frame_bytes_sent += frame.len() as u64;
        }
        if finish && let Some((_, mut send)) = self.docs.remove(&doc) {
            let _ = send.finish();
        }
        Ok(())
    }

    async fn open_doc_stream(&mut self, doc: DocId) -> Result<(), Ended> {
        let (send, recv) = self
            .connection
            .open_bi()
            .await
            .map_err(|e| lost(format!("cannot open a stream: {e}")))?;
        let number = self.next_stream;
        self.next_stream += 1;
        self.forward(recv, DocIncoming::Closed(doc, number));
        self.docs.insert(doc, (number, send));
        Ok(())
    }

    /// Hands every frame of `recv` to the session, then `end`. A bad frame ends
    /// the stream there.
    fn forward(&mut self, recv: quinn::RecvStream, end: DocIncoming) {
        let tx = self.doc_tx.clone();
        self.readers.spawn(async move {
            let mut frames = FramedRead::new(recv, FrameCodec::new());
            while let Some(frame) = frames.next().await {
                match frame {
                    Ok(message) => {
                        if tx.send(DocIncoming::Message(message)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        debug!(error = %e, "bad frame on a document stream");
                        break;
                    }
                }
            }
            let _ = tx.send(end);
        });
    }

    /// Opens a stream asking for `docs` whole; its answers come in as document
    /// messages, then [`DocIncoming::FetchClosed`].
    async fn fetch(&mut self, docs: Vec<DocId>) -> Result<(), Ended> {
        let request = Message::GetDocuments {
            doc_ids: docs.iter().map(|d| (*d).into()).collect(),
        };
        let frame = encode(&request)?;
        let (mut send, recv) = self
            .connection
            .open_bi()
            .await
            .map_err(|e| lost(format!("cannot open a stream: {e}")))?;
        send.write_all(&frame)
            .await
            .map_err(|e| lost(format!("writing to the server failed: {e}")))?;
        let _ = send.finish();
        self.frame_bytes_sent += frame.len() as u64;
        self.fetches += 1;
        self.forward(recv, DocIncoming::FetchClosed(docs));
        Ok(())
    }

    /// Opens streams for waiting documents while there is room.
    async fn open_waiting(&mut self) -> Result<(), Ended> {
        while self.docs.len() < self.max_streams {
            let Some(doc) = self.waiting.pop_front() else {
                return Ok(());
            };
            let buffered = self.buffered.remove(&doc).unwrap_or_default();
            for (message, finish) in buffered {
                self.send_doc(doc, message, finish).await?;
            }
        }
        Ok(())
    }

    /// Forgets the send side of stream `number` of `doc` once the server
    /// has ended it, unless a newer stream of the document has replaced it.
    fn stream_closed(&mut self, doc: DocId, number: u64) {
        if self.docs.get(&doc).is_some_and(|(open, _)| *open == number) {
            self.docs.remove(&doc);
        }
    }

    fn request(&mut self, request: Message, reply: oneshot::Sender<Result<Message, NetError>>) {
        let connection = self.connection.clone();
        self.requests.spawn(async move {
            let answer = tokio::time::timeout(Duration::from_secs(30), async move {
                let (mut send, recv) = connection
                    .open_bi()
                    .await
                    .map_err(|e| NetError::Connection(e.to_string()))?;
                let frame =
                    protocol::encode(&request).map_err(|e| NetError::Connection(e.to_string()))?;
                send.write_all(&frame)
                    .await
                    .map_err(|e| NetError::Connection(e.to_string()))?;
                let _ = send.finish();
                let mut frames = FramedRead::new(recv, FrameCodec::new());
                match frames.next().await {
                    Some(Ok(message)) => Ok(message),
                    Some(Err(e)) => Err(NetError::Connection(e.to_string())),
                    None => Err(NetError::Connection("no answer".to_owned())),
                }
            })
            .await
            .unwrap_or(Err(NetError::Timeout));
            let _ = reply.send(answer);
        });
    }

    fn report(&self, session: &Session) -> SessionReport {
        let stats = self.connection.stats();
        let figures = session.stats();
        SessionReport {
            handshake: self.welcomed.unwrap_or_default(),
            to_in_sync: self.started.elapsed(),
            manifest_round_trips: figures.manifest_round_trips,
            docs_synced: figures.docs_synced,
            docs_received_whole: figures.docs_received_whole,
            frame_bytes_sent: self.frame_bytes_sent,
            frame_bytes_received: self.frame_bytes_received,
            udp_bytes_sent: stats.udp_tx.bytes,
            udp_bytes_received: stats.udp_rx.bytes,
            udp_bytes_after_handshake: (stats.udp_tx.bytes + stats.udp_rx.bytes)
                .saturating_sub(self.udp_at_welcome),
            connections: self.connections,
        }
    }

    fn close(&mut self, ended: &Ended) {
        let reason: &[u8] = match ended {
            Ended::Shutdown | Ended::NetworkDown => b"bye",
            Ended::Refused(..) => b"refused",
            Ended::Lost { .. } => b"lost",
        };
        if let Some(mut control) = self.control.take() {
            let _ = control.finish();
        }
        self.connection.close(CLOSE_DONE.into(), reason);
        self.readers.abort_all();
        self.requests.abort_all();
    }
}

fn encode(message: &Message) -> Result<Vec<u8>, Ended> {
    protocol::encode(message).map_err(|e| lost(format!("cannot encode {}: {e}", message.name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_leaves_the_status_stopped_with_a_code() {
        let (status_tx, status) = watch::channel(Status::Syncing);
        let (failure_tx, failure) = watch::channel(None);
        supervise(
            async { panic!("the sync task broke") },
            status_tx,
            failure_tx,
        )
        .await;
        assert_eq!(*status.borrow(), Status::Stopped);
        let failed = failure.borrow().clone().expect("the failure is recorded");
        assert_eq!(failed.code(), "net.task_failed");
        assert!(failed.reason.contains("the sync task broke"), "{failed}");
    }

    #[tokio::test]
    async fn a_task_that_ends_by_itself_is_no_failure() {
        let (status_tx, status) = watch::channel(Status::Syncing);
        let (failure_tx, failure) = watch::channel(None);
        let inner = status_tx.clone();
        supervise(
            async move {
                inner.send_replace(Status::Stopped);
            },
            status_tx,
            failure_tx,
        )
        .await;
        assert_eq!(*status.borrow(), Status::Stopped);
        assert_eq!(*failure.borrow(), None);
    }
}
