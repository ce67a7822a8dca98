//! The QUIC endpoint: TLS 1.3 with the server's self-signed certificate and
//! ALPN `branchline/1`, admission control, one task per connection, a poller
//! for what other processes write, and graceful shutdown.
//!
//! Admission: beyond [`ServerConfig::max_connections`] new connections are
//! refused outright; above 80 % of it, a client must first prove its
//! address with a stateless retry, so spoofed floods cost the server no
//! connection state.
//!
//! Shutdown: stop accepting, let every connection finish the document step
//! it is in (so every change received is stored and acknowledged), close
//! connections with [`close_code::SHUTDOWN`], let the writer drain, and wait
//! for the endpoint to go idle.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::admin::Admin;
use crate::config::{ServerConfig, limits};
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::server_core::{CoreSettings, ServerCore};
use crate::storage::{CacheOptions, Storage};
use crate::tls::{self, Identity};
use crate::{db, session};

/// QUIC application close codes the server uses.
pub mod close_code {
    /// The session ended normally.
    pub const NORMAL: u32 = 0;
    /// Hello was refused (bad invite, bad credentials, revoked device,
    /// unsupported version); the `Error` on the control stream says why.
    pub const AUTH_FAILED: u32 = 1;
    /// The server is shutting down; reconnect later.
    pub const SHUTDOWN: u32 = 2;
    /// The device was revoked while connected.
    pub const REVOKED: u32 = 3;
    /// The client broke the protocol on the control stream.
    pub const PROTOCOL_ERROR: u32 = 4;
}

/// What every connection task shares.
pub(crate) struct ServerState {
    /// The protocol logic, over the storage backend.
    pub core: ServerCore,
    pub hub: Hub,
    pub shutdown: CancellationToken,
}

/// The Branchline server.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Prepares the data directory (database, certificate) and starts
    /// serving on `config.listen`.
    pub async fn start(config: ServerConfig) -> Result<RunningServer> {
        tls::prepare_data_dir(&config.data_dir)?;
        let location = db::Location::of(&config.data_dir)?;
        let options = CacheOptions {
            idle_unload: config.idle_unload,
            max_loaded: config.max_loaded_docs.max(1),
            validate_changes: config.validate_changes,
        };
        let data_dir = config.data_dir.clone();
        let (storage, identity) = tokio::task::spawn_blocking(move || {
            let storage = Opened::open(location, options)?;
            let identity = storage.identity(&data_dir)?;
            Ok::<_, Error>((storage, identity))
        })
        .await
        .map_err(|e| Error::Internal(format!("opening storage: {e}")))??;

        let listen_failed = |e: std::io::Error| Error::Listen {
            addr: config.listen,
            reason: e.to_string(),
        };
        let socket = std::net::UdpSocket::bind(config.listen).map_err(listen_failed)?;
        let endpoint = quinn::Endpoint::new(
            endpoint_config(&identity.reset_key),
            Some(quic_config(&identity)?),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(listen_failed)?;
        let local_addr = endpoint.local_addr()?;
        let public_addr = config
            .public_addr
            .clone()
            .unwrap_or_else(|| default_public_addr(local_addr));
        let (storage, public_addr) = tokio::task::spawn_blocking(move || {
            let addr = storage.write_public_addr(public_addr)?;
            Ok::<_, Error>((storage, addr))
        })
        .await
        .map_err(|e| Error::Internal(format!("opening storage: {e}")))??;

        let settings = CoreSettings {
            public_addr,
            cert_sha256: identity.fingerprint,
            resident_registrations_per_hour: config.resident_registrations_per_hour,
            submissions_per_device_per_day: config.submissions_per_device_per_day,
        };
        let state = Arc::new(ServerState {
            core: ServerCore::new(storage.into_backend(), settings),
            hub: Hub::default(),
            shutdown: CancellationToken::new(),
        });
        let accept = tokio::spawn(accept_loop(state.clone(), endpoint, config.max_connections));
        let poller = tokio::spawn(poll_loop(state.clone()));
        info!(
            listen = %local_addr,
            fingerprint = %tls::hex(&identity.fingerprint),
            "server started"
        );
        Ok(RunningServer {
            local_addr,
            cert_sha256: identity.fingerprint,
            data_dir: config.data_dir,
            state,
            accept: Some(accept),
            poller: Some(poller),
        })
    }
}

/// Storage opened over the database the data directory names.
enum Opened {
    Sqlite(Storage),
    Postgres(Storage<crate::postgres::PgDb>),
}

impl Opened {
    /// Opens it (blocking).
    fn open(location: db::Location, options: CacheOptions) -> Result<Opened> {
        Ok(match location {
            db::Location::Sqlite(path) => Opened::Sqlite(Storage::open(&path, options)?),
            db::Location::Postgres(url) => Opened::Postgres(Storage::open_postgres(&url, options)?),
        })
    }

    /// The TLS identity the server presents (blocking): the data
    /// directory's own, or the one every node of a PostgreSQL database
    /// shares.
    fn identity(&self, data_dir: &std::path::Path) -> Result<Identity> {
        match self {
            Opened::Sqlite(_) => tls::load_or_create(data_dir),
            Opened::Postgres(storage) => {
                let dir = data_dir.to_owned();
                storage.write(move |conn: &dyn crate::sql::Sql| tls::shared(conn, &dir))
            }
        }
    }

    /// Records the address invite links carry and returns what they carry
    /// (blocking). One SQLite file has one node: its address replaces the
    /// last. Nodes sharing a PostgreSQL database add theirs to the list the
    /// others wrote, so a link names every node (the newest
    /// [`MAX_ADDRESSES`](branchline_protocol::invite::MAX_ADDRESSES)).
    fn write_public_addr(&self, addr: String) -> Result<String> {
        match self {
            Opened::Sqlite(storage) => storage.write(move |conn: &dyn crate::sql::Sql| {
                db::set_info(conn, "public_addr", addr.as_bytes())?;
                Ok(addr)
            }),
            Opened::Postgres(storage) => storage.write(move |conn: &dyn crate::sql::Sql| {
                crate::postgres::lock(conn, "public_addr")?;
                let known = db::get_info(conn, "public_addr")?
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .unwrap_or_default();
                let merged = merge_addresses(&known, &addr);
                db::set_info(conn, "public_addr", merged.as_bytes())?;
                Ok(merged)
            }),
        }
    }

    fn into_backend(self) -> Box<dyn crate::store::Backend> {
        match self {
            Opened::Sqlite(storage) => Box::new(storage),
            Opened::Postgres(storage) => Box::new(storage),
        }
    }
}

/// `known` with the entries of `own` moved to its end, keeping the newest
/// [`MAX_ADDRESSES`](branchline_protocol::invite::MAX_ADDRESSES); entries
/// that are not `host:port` are dropped.
fn merge_addresses(known: &str, own: &str) -> String {
    use branchline_protocol::invite::{MAX_ADDRESSES, split_addresses};
    let entries = |list: &str| -> Vec<String> {
        list.split(',')
            .filter(|entry| split_addresses(entry).is_some())
            .map(str::to_owned)
            .collect()
    };
    let mine = entries(own);
    let mut merged: Vec<String> = entries(known)
        .into_iter()
        .filter(|entry| !mine.contains(entry))
        .collect();
    merged.extend(mine);
    let excess = merged.len().saturating_sub(MAX_ADDRESSES);
    merged.drain(..excess);
    merged.join(",")
}

/// The address written into invite links when none is configured.
fn default_public_addr(local: SocketAddr) -> String {
    if local.ip().is_unspecified() {
        format!("localhost:{}", local.port())
    } else {
        local.to_string()
    }
}

/// The QUIC server configuration: TLS 1.3 only, our ALPN, and the limits.
fn quic_config(identity: &Identity) -> Result<quinn::ServerConfig> {
    let tls_failed = |e: &dyn std::fmt::Display| Error::Certificate(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_failed(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())
        .map_err(|e| tls_failed(&e))?;
    tls.alpn_protocols = vec![branchline_protocol::ALPN.to_vec()];
    // One resumption ticket per connection (rustls sends two): a device reconnects
    // from one place at a time, and each resumed connection brings a fresh ticket.
    tls.send_tls13_tickets = 1;
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| tls_failed(&e))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(
        limits::IDLE_TIMEOUT
            .try_into()
            .map_err(|e| Error::Internal(format!("idle timeout: {e}")))?,
    ));
    transport.max_concurrent_bidi_streams(limits::MAX_STREAMS.into());
    transport.max_concurrent_uni_streams(0u32.into());
    // No path-MTU probes: they cost a phone about 6 KB per connection (see the
    // client's transport), far more than a reconnect's whole sync.
    transport.mtu_discovery_config(None);
    config.transport_config(Arc::new(transport));
    Ok(config)
}

async fn accept_loop(state: Arc<ServerState>, endpoint: quinn::Endpoint, max_connections: usize) {
    let mut connections = JoinSet::new();
    let retry_above = max_connections * limits::RETRY_THRESHOLD_PERCENT / 100;
    loop {
        tokio::select! {
            biased;
            () = state.shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let active = connections.len();
                if active >= max_connections {
                    debug!(remote = %incoming.remote_address(), active, "refusing: too many connections");
                    incoming.refuse();
                    continue;
                }
                if active >= retry_above && !incoming.remote_address_validated() {
                    if let Err(e) = incoming.retry() {
                        e.into_incoming().refuse();
                    }
                    continue;
                }
                let state = state.clone();
                connections.spawn(async move {
                    match incoming.await {
                        Ok(conn) => session::serve_connection(state, conn).await,
                        Err(e) => debug!(error = %e, "handshake failed"),
                    }
                });
            }
        }
    }
    info!(connections = connections.len(), "shutting down");
    endpoint.set_server_config(None);
    // Each connection finishes its in-flight document steps, then closes
    // itself with the shutdown code.
    while connections.join_next().await.is_some() {}
    let stopping = state.clone();
    if tokio::task::spawn_blocking(move || stopping.core.shutdown())
        .await
        .is_err()
    {
        warn!("the storage writer did not stop cleanly");
    }
    endpoint.close(close_code::SHUTDOWN.into(), b"server shutting down");
    endpoint.wait_idle().await;
    info!("server stopped");
}

/// Picks up revocations and documents written by other processes (the admin
/// CLI), and unloads idle documents, once per [`limits::POLL_INTERVAL`].
async fn poll_loop(state: Arc<ServerState>) {
    let mut tick = tokio::time::interval(limits::POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let woken = state.core.backend().woken();
    let notified = || async {
        match &woken {
            Some(woken) => woken.notified().await,
            None => std::future::pending().await,
        }
    };
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => break,
            _ = tick.tick() => {}
            () = notified() => {}
        }
        catch_up(&state).await;
        let loaded = state.core.backend().unload_idle();
        debug!(loaded, connections = state.hub.len(), "poll");
    }
}

/// Endpoint settings that survive a restart: the stateless-reset key, and
/// the key connection ids are checked with (both derived from the
/// persisted `reset.key`). A server restarted after a crash then recognises
/// its predecessor's connection ids and answers them with a stateless
/// reset, so devices reconnect at once instead of after the idle timeout.
fn endpoint_config(reset_key: &[u8; 32]) -> quinn::EndpointConfig {
    let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset_key);
    let cid_key = ring::hmac::sign(&hmac, b"branchline connection ids");
    let cid_key = u64::from_le_bytes(
        cid_key.as_ref()[..8]
            .try_into()
            .expect("an HMAC-SHA256 tag is 32 bytes"),
    );
    let mut config = quinn::EndpointConfig::new(Arc::new(hmac));
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    config
}

/// Reads what other processes (the admin CLI) wrote since the last look:
/// new branches and documents, and revocations, whose connections it
/// closes. Runs every poll interval and before each device's manifest is
/// taken, so a device that connects right after `branch add` sees it.
pub(crate) async fn catch_up(state: &Arc<ServerState>) {
    let polling = state.clone();
    let polled = tokio::task::spawn_blocking(move || polling.core.poll())
        .await
        .unwrap_or_else(|e| Err(Error::Internal(e.to_string())));
    match polled {
        Ok(revoked) => {
            for device in revoked {
                let closed = state.hub.revoke(device);
                if closed > 0 {
                    info!(%device, connections = closed, "revoked device disconnected");
                }
            }
        }
        Err(e) => {
            if !state.shutdown.is_cancelled() {
                warn!(error = %e, "poll failed");
            }
        }
    }
}

/// A server that is running; shut it down with [`RunningServer::shutdown`].
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    cert_sha256: [u8; 32],
    data_dir: PathBuf,
    state: Arc<ServerState>,
    accept: Option<JoinHandle<()>>,
    poller: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// The UDP address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The SHA-256 fingerprint of the server's certificate (DER), which
    /// devices pin.
    pub fn cert_sha256(&self) -> [u8; 32] {
        self.cert_sha256
    }

    /// The `host:port` written into invite links.
    pub fn public_addr(&self) -> &str {
        &self.state.core.settings().public_addr
    }

    /// An administration handle on the server's database (the same as
    /// [`Admin::open`] on its data directory).
    pub fn admin(&self) -> Admin {
        // The database exists (the server opened it); the handle opens its
        // own connection on first use.
        Admin::lazy(&self.data_dir)
    }

    /// How many documents are loaded in memory now.
    pub fn loaded_documents(&self) -> usize {
        self.state.core.backend().loaded_documents()
    }

    /// Stops gracefully: no new connections, in-flight writes stored and
    /// acknowledged, connections closed with [`close_code::SHUTDOWN`].
    pub async fn shutdown(mut self) -> Result<()> {
        self.state.shutdown.cancel();
        if let Some(accept) = self.accept.take() {
            accept
                .await
                .map_err(|e| Error::Internal(format!("the accept loop failed: {e}")))?;
        }
        if let Some(poller) = self.poller.take() {
            poller
                .await
                .map_err(|e| Error::Internal(format!("the poller failed: {e}")))?;
        }
        Ok(())
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // Without an explicit shutdown the tasks still wind down.
        self.state.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::merge_addresses;

    #[test]
    fn nodes_add_their_address_to_the_list_once_and_newest_last() {
        assert_eq!(merge_addresses("", "a:1"), "a:1");
        assert_eq!(merge_addresses("a:1", "b:2"), "a:1,b:2");
        assert_eq!(merge_addresses("a:1,b:2", "a:1"), "b:2,a:1");
        assert_eq!(merge_addresses("a:1,junk", "c:3,b:2"), "a:1,c:3,b:2");
        let many: Vec<String> = (0..20).map(|port| format!("n:{port}")).collect();
        let merged = merge_addresses(&many.join(","), "me:1");
        let kept: Vec<&str> = merged.split(',').collect();
        assert_eq!(kept.len(), 16);
        assert_eq!(kept.last(), Some(&"me:1"));
        assert_eq!(kept.first(), Some(&"n:5"));
    }
}
