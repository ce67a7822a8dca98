//! The harness for Branchline's end-to-end tests: a real server on
//! 127.0.0.1 with its own data directory, real TLS and QUIC, and devices
//! that each keep a real SQLite store in a temporary directory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::Duration;

use anyhow::{Context as _, Result};
use branchline_core::model::Level;
use branchline_core::net::{ClientConfig, SyncClient};
use branchline_core::{BranchId, DocId, MemberId, Store};
use branchline_protocol::Role;
use branchline_server::{Admin, RunningServer, Server, ServerConfig};
use tempfile::TempDir;

/// How long a test waits for something that should take well under a
/// second; generous so a busy CI machine does not fail tests.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    });
}

/// Client settings for tests: quick retries, so a restarted server is
/// found again within a second or two.
pub fn client_config() -> ClientConfig {
    ClientConfig {
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        ..ClientConfig::default()
    }
}

/// The database a test server stores in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one SQLite file in the data directory.
    Sqlite,
    /// A private PostgreSQL cluster.
    Postgres,
}

/// A server running in this process on an ephemeral port.
pub struct TestServer {
    /// The running server.
    pub server: Option<RunningServer>,
    /// Its data directory (kept until the test ends).
    pub dir: TempDir,
    /// The private PostgreSQL cluster it stores in, for a server started
    /// with [`TestServer::start_postgres`].
    pub cluster: Option<branchline_server::pg_cluster::TempCluster>,
}

impl TestServer {
    /// Starts a server with a fresh data directory.
    pub async fn start() -> Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with a fresh data directory and the default
    /// configuration changed by `tune`.
    pub async fn start_with(tune: impl FnOnce(&mut ServerConfig)) -> Result<Self> {
        init_tracing();
        let dir = tempfile::tempdir()?;
        let mut config = Self::config(dir.path().to_path_buf());
        tune(&mut config);
        let server = Server::start(config).await?;
        Ok(Self {
            server: Some(server),
            dir,
            cluster: None,
        })
    }

    /// Starts a server whose data directory is `dir` (a small volume, say).
    pub async fn start_in(dir: TempDir) -> Result<Self> {
        init_tracing();
        let server = Server::start(Self::config(dir.path().to_path_buf())).await?;
        Ok(Self {
            server: Some(server),
            dir,
            cluster: None,
        })
    }

    /// Starts a server whose database is a private PostgreSQL cluster of
    /// its own (as `branchline-server init --database postgres://…` sets
    /// one up), instead of the embedded SQLite file.
    pub async fn start_postgres() -> Result<Self> {
        init_tracing();
        let cluster =
            tokio::task::spawn_blocking(branchline_server::pg_cluster::TempCluster::start)
                .await??;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("database.url"), cluster.url())?;
        let server = Server::start(Self::config(dir.path().to_path_buf())).await?;
        Ok(Self {
            server: Some(server),
            dir,
            cluster: Some(cluster),
        })
    }

    /// [`TestServer::start`] or [`TestServer::start_postgres`].
    pub async fn on(backend: Backend) -> Result<Self> {
        match backend {
            Backend::Sqlite => Self::start().await,
            Backend::Postgres => Self::start_postgres().await,
        }
    }

    fn config(data_dir: PathBuf) -> ServerConfig {
        ServerConfig::new(data_dir, "127.0.0.1:0".parse().expect("valid address"))
    }

    /// The running server.
    pub fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("the server is running")
    }

    /// The server's admin interface.
    pub fn admin(&self) -> Admin {
        Admin::open(self.dir.path()).expect("open the server database")
    }

    /// A new branch with its profile and roster.
    pub fn branch(&self, name: &str) -> Result<BranchId> {
        Ok(self.admin().add_branch(name, Level::Branch, None)?)
    }

    /// A new top-level unit of the organization, e.g. a town committee.
    pub fn root(&self, name: &str, level: Level) -> Result<BranchId> {
        Ok(self.admin().add_branch(name, level, None)?)
    }

    /// A new branch under `parent`.
    pub fn child_branch(&self, name: &str, level: Level, parent: BranchId) -> Result<BranchId> {
        Ok(self.admin().add_branch(name, level, Some(parent))?)
    }

    /// An invite link for a new device.
    pub fn invite(
        &self,
        branch: BranchId,
        role: Role,
        member: Option<MemberId>,
    ) -> Result<branchline_protocol::InviteLink> {
        Ok(self
            .admin()
            .create_invite(branch, role, member, Duration::from_secs(3600))?)
    }

    /// Enrolls a new device with its own store and waits until it is in sync.
    pub async fn device(
        &self,
        name: &str,
        branch: BranchId,
        role: Role,
        member: Option<MemberId>,
    ) -> Result<Device> {
        let invite = self.invite(branch, role, member)?;
        Device::join(name, invite).await
    }

    /// Stops the server gracefully.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(server) = self.server.take() {
            server.shutdown().await?;
        }
        Ok(())
    }

    /// Starts the server again on the same data directory and port.
    pub async fn restart(&mut self) -> Result<()> {
        let addr = self.running().local_addr();
        self.stop().await?;
        let mut config = Self::config(self.dir.path().to_path_buf());
        config.listen = addr;
        self.server = Some(Server::start(config).await?);
        Ok(())
    }

    /// The heads of a document as the server stores it, if it has it.
    pub fn heads(&self, doc: DocId) -> Result<Option<Vec<automerge::ChangeHash>>> {
        let Some(bytes) = self.admin().document_bytes(doc)? else {
            return Ok(None);
        };
        let mut doc = automerge::AutoCommit::load(&bytes)?;
        Ok(Some(sorted(doc.get_heads())))
    }
}

/// A device: a store in its own directory and, while online, a sync client.
pub struct Device {
    /// A name for assertion messages.
    pub name: String,
    /// The device's store directory (kept until the test ends).
    pub dir: TempDir,
    /// The sync client, while the device runs.
    pub client: Option<SyncClient>,
    store: Arc<Mutex<Store>>,
}

impl Device {
    /// Creates a store and joins with `invite`; waits until in sync.
    pub async fn join(name: &str, invite: branchline_protocol::InviteLink) -> Result<Self> {
        let device = Self::start(name, invite, client_config())?;
        device
            .wait_in_sync()
            .await
            .with_context(|| format!("{name} enrolling"))?;
        Ok(device)
    }

    /// Creates a store and starts joining with `invite` under `config`,
    /// without waiting.
    pub fn start(
        name: &str,
        invite: branchline_protocol::InviteLink,
        config: ClientConfig,
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let store = Arc::new(Mutex::new(Store::open(dir.path().join("branchline.db"))?));
        let client = SyncClient::join(Arc::clone(&store), invite, name, config);
        Ok(Self {
            name: name.to_owned(),
            dir,
            client: Some(client),
            store,
        })
    }

    /// The device's store.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().expect("store lock")
    }

    /// The sync client.
    pub fn client(&self) -> &SyncClient {
        self.client.as_ref().expect("the device is running")
    }

    /// Waits until everything edited so far is synced.
    pub async fn wait_in_sync(&self) -> Result<()> {
        self.client()
            .wait_in_sync(PATIENCE)
            .await
            .with_context(|| format!("{} did not get in sync", self.name))
    }

    /// Goes offline (the app saw the network disappear).
    pub async fn go_offline(&self) -> Result<()> {
        self.client().set_network_available(false);
        self.client()
            .wait_for_status(PATIENCE, |s| *s == branchline_core::net::Status::Offline)
            .await?;
        Ok(())
    }

    /// Comes back online and waits until in sync.
    pub async fn go_online(&self) -> Result<()> {
        self.client().set_network_available(true);
        self.wait_in_sync().await
    }

    /// Stops the sync client, as when the app is closed.
    pub async fn close(&mut self) {
        if let Some(client) = self.client.take() {
            client.shutdown().await;
        }
    }

    /// Opens the app again: a new sync client over the same store.
    pub async fn reopen(&mut self) -> Result<()> {
        self.close().await;
        let client = SyncClient::resume(Arc::clone(&self.store), client_config())?;
        self.client = Some(client);
        self.wait_in_sync().await
    }

    /// Every document this device holds, with its sorted heads.
    pub fn heads(&self) -> Result<Vec<(DocId, Vec<automerge::ChangeHash>)>> {
        let store = self.store();
        let mut all = Vec::new();
        for summary in store.documents()? {
            let mut doc = store.load_document(summary.id)?;
            all.push((summary.id, sorted(doc.get_heads())));
        }
        all.sort_by_key(|(id, _)| *id);
        Ok(all)
    }

    /// Waits until `check` holds for this device's store.
    pub async fn eventually(
        &self,
        what: &str,
        mut check: impl FnMut(&Store) -> bool,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if check(&self.store()) {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{}: gave up waiting for {what}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Heads in a fixed order, for comparing two replicas.
pub fn sorted(mut heads: Vec<automerge::ChangeHash>) -> Vec<automerge::ChangeHash> {
    heads.sort();
    heads
}

/// Asserts that every device and the server hold the same documents with
/// the same heads.
pub fn assert_converged(server: &TestServer, devices: &[&Device]) -> Result<()> {
    let first = devices[0].heads()?;
    for device in &devices[1..] {
        let other = device.heads()?;
        anyhow::ensure!(
            other == first,
            "{} and {} differ: {} vs {} documents",
            devices[0].name,
            device.name,
            first.len(),
            other.len()
        );
    }
    for (doc, heads) in &first {
        let on_server = server.heads(*doc)?;
        anyhow::ensure!(
            on_server.as_ref() == Some(heads),
            "the server's copy of {doc} differs from {}'s",
            devices[0].name
        );
    }
    Ok(())
}

pub mod impair;
pub mod raw;

/// A server in a child process (the `branchline-test-server` bin), so a test
/// can SIGKILL it: no chance to flush, close or say goodbye.
pub struct ServerProcess {
    child: std::process::Child,
    /// The address it listens on.
    pub addr: std::net::SocketAddr,
}

impl ServerProcess {
    /// Starts `exe` (pass `env!("CARGO_BIN_EXE_branchline-test-server")`) on
    /// `dir`, listening on `listen`; returns once it accepts connections.
    pub fn start(exe: &str, dir: &std::path::Path, listen: &str) -> Result<Self> {
        use std::io::BufRead as _;
        let child = std::process::Command::new(exe)
            .arg(dir)
            .arg(listen)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("start the server process")?;
        // From here on, dropping `server` kills the child, even on an error.
        let mut server = Self {
            child,
            addr: listen.parse()?,
        };
        let stdout = server.child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        server.addr = line
            .trim()
            .strip_prefix("listening ")
            .with_context(|| format!("unexpected server output {line:?}"))?
            .parse()?;
        Ok(server)
    }

    /// SIGKILLs the server (`Child::kill` is SIGKILL on Unix) and reaps it.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free UDP port on 127.0.0.1, as `127.0.0.1:port`, so a restarted server
/// listens where devices expect it.
pub fn free_udp_addr() -> Result<String> {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(format!("127.0.0.1:{port}"))
}

/// The invite with the server address replaced by `addr` (the server's, or
/// a proxy's in front of it).
pub fn with_server(
    mut invite: branchline_protocol::InviteLink,
    addr: std::net::SocketAddr,
) -> branchline_protocol::InviteLink {
    invite.server = addr.to_string();
    invite
}

/// Runs SQLite's `PRAGMA integrity_check` on the database file at `path`.
pub fn integrity_check(path: &std::path::Path) -> Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    anyhow::ensure!(
        verdict == "ok",
        "integrity check of {} failed: {verdict}",
        path.display()
    );
    Ok(())
}

/// A tmpfs volume of a few megabytes mounted on a fresh directory, for tests
/// of a full disk; unmounted when dropped. `None` where this process may not
/// mount (not root, or no `CAP_SYS_ADMIN`): the caller says so and skips.
pub struct SmallVolume {
    /// The mount point (a temporary directory).
    pub dir: Option<TempDir>,
    path: PathBuf,
}

impl SmallVolume {
    /// Mounts `megabytes` of tmpfs.
    pub fn mount(megabytes: u32) -> Result<Option<Self>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().to_path_buf();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status();
        if !mounted.is_ok_and(|s| s.success()) {
            return Ok(None);
        }
        Ok(Some(Self {
            dir: Some(dir),
            path,
        }))
    }

    /// The mount point.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Fills the volume with one file until writing fails, leaving it full.
    pub fn fill(&self) -> Result<PathBuf> {
        use std::io::Write as _;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler)?;
        let block = vec![0x5a; 16 * 1024];
        while file.write_all(&block).is_ok() {}
        // The last partial block, byte by byte, so nothing is left at all.
        while file.write_all(&[0x5a]).is_ok() {}
        let _ = file.sync_all();
        Ok(filler)
    }
}

impl Drop for SmallVolume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .stderr(std::process::Stdio::null())
            .status();
        drop(self.dir.take());
    }
}

/// The server database file in a data directory.
pub fn server_db(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("server.sqlite3")
}

/// Documents and heads the server acknowledged to `device`: its documents
/// with no unacknowledged change left.
pub fn acknowledged(device: &Device) -> Result<Vec<(DocId, Vec<automerge::ChangeHash>)>> {
    let store = device.store();
    let mut out = Vec::new();
    for summary in store.documents()? {
        if summary.unacked_changes == 0 {
            out.push((summary.id, sorted(summary.heads.clone())));
        }
    }
    Ok(out)
}

/// Checks that the server's database in `data_dir` holds every change of
/// every acknowledged `(document, heads)`; returns how many were checked.
pub fn assert_on_server(
    data_dir: &std::path::Path,
    acked: &[(DocId, Vec<automerge::ChangeHash>)],
) -> Result<usize> {
    let admin = Admin::open(data_dir)?;
    let mut checked = 0;
    for (doc, heads) in acked {
        let bytes = admin
            .document_bytes(*doc)?
            .with_context(|| format!("acknowledged document {doc} lost"))?;
        let mut stored = automerge::AutoCommit::load(&bytes)?;
        for head in heads {
            anyhow::ensure!(
                stored.get_change_by_hash(head).is_some(),
                "acknowledged change {head} of {doc} lost"
            );
            checked += 1;
        }
    }
    Ok(checked)
}

/// Waits until every device and the server (its data directory) hold the
/// same documents at the same heads.
pub async fn wait_converged(data_dir: &std::path::Path, devices: &[&Device]) -> Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE * 4;
    loop {
        let outcome = converged_now(data_dir, devices);
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(e.context("devices did not converge"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn converged_now(data_dir: &std::path::Path, devices: &[&Device]) -> Result<()> {
    let first = devices[0].heads()?;
    for device in &devices[1..] {
        anyhow::ensure!(
            device.heads()? == first,
            "{} and {} differ",
            devices[0].name,
            device.name
        );
    }
    let admin = Admin::open(data_dir)?;
    anyhow::ensure!(
        admin.document_ids()?.len() == first.len(),
        "the server holds {} documents, the devices {}",
        admin.document_ids()?.len(),
        first.len()
    );
    for (doc, heads) in &first {
        let bytes = admin
            .document_bytes(*doc)?
            .with_context(|| format!("the server lacks {doc}"))?;
        let mut stored = automerge::AutoCommit::load(&bytes)?;
        anyhow::ensure!(
            &sorted(stored.get_heads()) == heads,
            "the server's copy of {doc} differs"
        );
    }
    Ok(())
}

/// A day's work at a branch, by the device holding `store`: a meeting is
/// planned and held (up to 20 sign-ins, minutes, bonus points), and two
/// residents' petitions come in. Returns the documents it changed.
pub fn a_day_of_work(store: &mut Store, branch: BranchId, day: u32) -> Result<Vec<DocId>> {
    use branchline_core::model::{NewActivity, NewPetition, SignInMode, Submitter};
    use branchline_core::store::query::MemberFilter;
    let active = MemberFilter {
        status: Some(branchline_core::model::MemberStatus::Active),
        ..MemberFilter::default()
    };
    let members = store.list_members(branch, &active)?;
    let meeting = store.create_activity(
        branch,
        NewActivity {
            kind: "branch_meeting".to_owned(),
            title: format!("Branch meeting, day {day}"),
            starts_at: "2026-11-20T19:00".parse().ok(),
            ends_at: "2026-11-20T21:00".parse().ok(),
            place: Some("Village hall".to_owned()),
            agenda: Some("1. Roads\n2. Water supply\n3. Any other business".to_owned()),
            ..NewActivity::default()
        },
    )?;
    for member in members.iter().take(20) {
        store.sign_in(meeting, member.id, SignInMode::OnSite)?;
    }
    for member in members.iter().take(3) {
        store.award_points(meeting, member.id, 2)?;
    }
    store.write_minutes(
        meeting,
        &format!(
            "Day {day}. Present: {} members. The branch agreed to repair the well by \
             the school and to visit the two elderly members on the hill road.",
            members.len().min(20)
        ),
    )?;
    let mut changed = vec![meeting];
    for n in 0..2 {
        changed.push(store.submit_petition(
            branch,
            NewPetition {
                category: "water".to_owned(),
                title: format!("Well pump broken, report {n} of day {day}"),
                description: "The pump handle came off; thirty households share it.".to_owned(),
                location: Some("School lane".to_owned()),
                submitter: Submitter {
                    name: Some("A resident".to_owned()),
                    contact: None,
                    member: None,
                },
            },
        )?);
    }
    Ok(changed)
}

/// A two-hour activity of `kind` on `day` (`YYYY-MM-DD`), 09:00 to 11:00.
pub fn meeting(kind: &str, title: &str, day: &str) -> branchline_core::model::NewActivity {
    branchline_core::model::NewActivity {
        kind: kind.to_owned(),
        title: title.to_owned(),
        starts_at: format!("{day}T09:00").parse().ok(),
        ends_at: format!("{day}T11:00").parse().ok(),
        ..Default::default()
    }
}

/// A small generated branch (members, a few months of activities, some
/// petitions) for scenarios that need documents to move.
pub fn small_branch(
    seed: u64,
    petitions: usize,
) -> Result<branchline_core::workload::GeneratedBranch> {
    let spec = branchline_core::workload::WorkloadSpec {
        seed,
        members: 25,
        years: 1,
        activities_per_month: 2,
        petitions,
        ..branchline_core::workload::WorkloadSpec::default()
    };
    Ok(branchline_core::workload::generate(&spec)?)
}

/// Runs the test body `$name(backend: Backend) -> Result<()>` once on each
/// backend, as `$name::sqlite` and `$name::postgres`, so the same checks
/// hold for a node on PostgreSQL as for the embedded default.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> anyhow::Result<()> {
                super::$name($crate::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> anyhow::Result<()> {
                super::$name($crate::Backend::Postgres).await
            }
        }
    )+};
}
