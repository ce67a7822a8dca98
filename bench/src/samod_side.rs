//! samod's side: seeding its storage, devices that dial it over TCP with a
//! counted stream, and the edit both systems make.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use automerge::transaction::Transactable as _;
use automerge::{Automerge, ObjType, ROOT, ReadDoc as _};
use futures_util::future::{BoxFuture, join_all};
use samod::{
    BackoffConfig, ConnectionId, DialError, Dialer, DialerHandle, DocHandle, DocumentId, Repo,
    Transport,
};

use crate::wire::{Counted, WireCounters};

/// How long a step that should take well under a second may take.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Stores `docs` (automerge `save()` bytes) in a samod filesystem store at
/// `dir` through `Repo::create`, as a server's data; returns their ids in
/// order. The repo is stopped before this returns.
pub async fn seed(dir: &Path, docs: impl IntoIterator<Item = &[u8]>) -> Result<Vec<DocumentId>> {
    let repo = Repo::build_tokio()
        .with_storage(samod::storage::TokioFilesystemStorage::new(dir))
        .load()
        .await;
    let mut ids = Vec::new();
    for bytes in docs {
        let doc = Automerge::load(bytes)?;
        let handle = repo.create(doc).await.map_err(|_| anyhow!("stopped"))?;
        ids.push(handle.document_id().clone());
    }
    repo.stop().await;
    Ok(ids)
}

/// samod's `TcpDialer`, with the stream counted and `TCP_NODELAY` set.
struct CountingDialer {
    addr: SocketAddr,
    counters: Arc<WireCounters>,
}

impl Dialer for CountingDialer {
    type Error = Infallible;

    fn url(&self) -> samod::Url {
        samod::Url::parse(&format!("tcp://{}", self.addr)).expect("a valid url")
    }

    fn connect(&self) -> BoxFuture<'static, Result<Transport, DialError<Infallible>>> {
        let addr = self.addr;
        let counters = Arc::clone(&self.counters);
        Box::pin(async move {
            let io = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(DialError::transient)?;
            io.set_nodelay(true).map_err(DialError::transient)?;
            Ok(Transport::from_tokio_io(Counted::new(io, counters)))
        })
    }
}

/// A device: a samod repo (filesystem or in-memory storage) and, while
/// online, one connection to the server.
pub struct SamodDevice {
    /// The device's repo.
    pub repo: Repo,
    dialer: Option<DialerHandle<Infallible>>,
    connection: Option<ConnectionId>,
    /// Bytes and frames of the current connection.
    pub counters: Arc<WireCounters>,
    retried_finds: AtomicU64,
}

impl SamodDevice {
    /// A device storing its documents under `dir` (samod's filesystem
    /// storage), or in memory when `dir` is `None`. Not connected yet.
    pub async fn new(dir: Option<&Path>) -> Self {
        let repo = match dir {
            Some(dir) => {
                Repo::build_tokio()
                    .with_storage(samod::storage::TokioFilesystemStorage::new(dir))
                    .load()
                    .await
            }
            None => Repo::build_tokio().load().await,
        };
        Self {
            repo,
            dialer: None,
            connection: None,
            counters: WireCounters::new(),
            retried_finds: AtomicU64::new(0),
        }
    }

    /// Connects to the server (fresh byte counters) and waits for samod's
    /// handshake.
    pub async fn connect(&mut self, server: SocketAddr) -> Result<ConnectionId> {
        self.counters = WireCounters::new();
        let dialer = Arc::new(CountingDialer {
            addr: server,
            counters: Arc::clone(&self.counters),
        });
        let handle = self
            .repo
            .dial(BackoffConfig::default(), dialer)
            .map_err(|_| anyhow!("the repo stopped"))?;
        tokio::time::timeout(PATIENCE, handle.established())
            .await
            .context("samod handshake timed out")?
            .map_err(|e| anyhow!("samod dial failed: {e:?}"))?;
        let connection = handle.connection_id().context("no connection id")?;
        self.dialer = Some(handle);
        self.connection = Some(connection);
        Ok(connection)
    }

    /// Drops the connection (the app lost the network).
    pub async fn disconnect(&mut self) {
        if let Some(dialer) = self.dialer.take() {
            dialer.close();
        }
        self.connection = None;
        // Let the repo notice before anything else happens.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// The current connection.
    pub fn connection(&self) -> Result<ConnectionId> {
        self.connection.context("not connected")
    }

    /// Finds every document in `ids` (from storage or from the server). A
    /// document samod reports as unavailable is asked for again, up to five
    /// times; [`Self::retried_finds`] counts those second asks.
    pub async fn find_all(&self, ids: &[DocumentId]) -> Result<Vec<DocHandle>> {
        let mut found: Vec<Option<DocHandle>> = vec![None; ids.len()];
        for _ in 0..5 {
            let missing: Vec<usize> = (0..ids.len()).filter(|&i| found[i].is_none()).collect();
            if missing.is_empty() {
                break;
            }
            if missing.len() < ids.len() {
                self.retried_finds
                    .fetch_add(missing.len() as u64, Ordering::Relaxed);
            }
            let results = tokio::time::timeout(
                PATIENCE,
                join_all(missing.iter().map(|&i| self.repo.find(ids[i].clone()))),
            )
            .await
            .context("samod find timed out")?;
            for (i, result) in missing.into_iter().zip(results) {
                found[i] = result.map_err(|_| anyhow!("the repo stopped"))?;
            }
        }
        found
            .into_iter()
            .map(|f| f.context("a document was not found after five asks"))
            .collect()
    }

    /// How many times a document had to be asked for again because samod
    /// first reported it unavailable.
    pub fn retried_finds(&self) -> u64 {
        self.retried_finds.load(Ordering::Relaxed)
    }

    /// Waits until, for every handle, the server has everything this device
    /// has and this device has everything the server said it has.
    pub async fn wait_in_sync(&self, handles: &[DocHandle]) -> Result<()> {
        let conn = self.connection()?;
        tokio::time::timeout(
            PATIENCE,
            join_all(handles.iter().map(|h| async move {
                h.we_have_their_changes(conn).await;
                h.they_have_our_changes(conn).await;
            })),
        )
        .await
        .context("samod sync timed out")?;
        Ok(())
    }

    /// Stops the repo.
    pub async fn stop(mut self) {
        self.disconnect().await;
        self.repo.stop().await;
    }
}

/// Appends `line` to the document's `minutes` text: one automerge change,
/// the same edit Branchline devices make.
pub fn append_minutes(doc: &mut Automerge, line: &str) -> Result<()> {
    let mut tx = doc.transaction();
    let (_, minutes) = tx.get(ROOT, "minutes")?.context("no minutes text")?;
    let len = tx.length(&minutes);
    tx.splice_text(&minutes, len, 0, line)?;
    tx.commit();
    Ok(())
}

/// A new document holding only an empty `minutes` text.
pub fn new_minutes_doc() -> Result<Automerge> {
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    tx.put_object(ROOT, "minutes", ObjType::Text)?;
    tx.commit();
    Ok(doc)
}
