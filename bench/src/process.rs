//! The server under test in its own process.
//!
//! The parent starts `branchline-bench serve <system> <dir>`; the child
//! starts the server on an ephemeral 127.0.0.1 port, prints `ready <addr>`
//! and serves until its standard input closes. The parent reads the child's
//! CPU time and memory from `/proc`, so the figures are the server's alone.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

/// The two systems compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// Branchline's server over QUIC with SQLite storage.
    Branchline,
    /// samod over TCP with its filesystem storage.
    Samod,
}

impl System {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            System::Branchline => "branchline",
            System::Samod => "samod",
        }
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on
/// every Linux architecture this runs on).
const USER_HZ: u64 = 100;

/// A server running in a child process.
pub struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
    dir: PathBuf,
}

impl ServerProcess {
    /// Starts `system`'s server on the data directory `dir`.
    pub fn start(system: System, dir: &Path) -> Result<Self> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut child = Command::new(exe)
            .arg("serve")
            .arg(system.name())
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the server process")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("the child's stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the child's address")?;
        let Some(addr) = line.trim().strip_prefix("ready ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the {} server did not start: {line:?}", system.name());
        };
        let addr = addr.parse().context("the child's address")?;
        Ok(Self {
            child,
            stdin,
            addr,
            dir: dir.to_owned(),
        })
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// User plus system CPU time the server process has used so far, all
    /// threads (10 ms resolution).
    pub fn cpu(&self) -> Result<Duration> {
        process_cpu(&self.child.id().to_string())
    }

    fn status_kib(&self, key: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .with_context(|| format!("no {key} in status"))?;
        let value = line[key.len()..].trim().trim_end_matches("kB").trim();
        Ok(value.parse()?)
    }

    /// Resident memory now, in bytes.
    pub fn rss(&self) -> Result<u64> {
        Ok(self.status_kib("VmRSS:")? * 1024)
    }

    /// Peak resident memory since start (or since [`Self::reset_peak`]), in bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        Ok(self.status_kib("VmHWM:")? * 1024)
    }

    /// Restarts the peak-memory count at the current RSS (Linux
    /// `clear_refs` 5). Returns false if the kernel refused.
    pub fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").is_ok()
    }

    /// Stops the server: closes its standard input and waits for it.
    pub fn stop(mut self) -> Result<()> {
        self.stdin.take();
        for _ in 0..100 {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// User plus system CPU time of the process `pid` (a number or `self`), all
/// threads, from `/proc/<pid>/stat` (10 ms resolution).
fn process_cpu(pid: &str) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may
    // hold spaces: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// CPU time this process (the devices' side) has used so far.
pub fn own_cpu() -> Result<Duration> {
    process_cpu("self")
}

/// CPU time the whole machine has spent busy so far (every core, every
/// process, not idle and not waiting for I/O), from `/proc/stat`.
pub fn machine_busy() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    // cpu user nice system idle iowait irq softirq steal guest guest_nice;
    // guest time is already counted in user.
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(ticks.len() == 8, "malformed /proc/stat: {line:?}");
    let busy: u64 = ticks.iter().sum::<u64>() - ticks[3] - ticks[4];
    Ok(Duration::from_millis(busy * 1000 / USER_HZ))
}

/// The child's side: serve `system` from `dir` until standard input closes.
pub async fn serve(system: &str, dir: &Path) -> Result<()> {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    match system {
        "branchline" => {
            let config = branchline_server::ServerConfig::new(
                dir.to_owned(),
                "127.0.0.1:0".parse().expect("valid address"),
            );
            let server = branchline_server::Server::start(config).await?;
            ready(server.local_addr())?;
            std::future::pending::<()>().await;
            Ok(())
        }
        "samod" => {
            let repo = samod::Repo::build_tokio()
                .with_storage(samod::storage::TokioFilesystemStorage::new(dir))
                .with_share_policy(samod::ShareConfig::read_write().with_announce(false))
                .load()
                .await;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let url = samod::Url::parse(&format!("tcp://{addr}"))?;
            let acceptor = Arc::new(
                repo.make_acceptor(url)
                    .map_err(|_| anyhow::anyhow!("the repo stopped"))?,
            );
            ready(addr)?;
            loop {
                let (io, _) = listener.accept().await?;
                io.set_nodelay(true)?;
                acceptor
                    .accept_tokio_io(io)
                    .map_err(|_| anyhow::anyhow!("the repo stopped"))?;
            }
        }
        other => bail!("unknown system {other:?}"),
    }
}

fn ready(addr: SocketAddr) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {addr}")?;
    out.flush()?;
    Ok(())
}

/// Files and bytes under `dir`, recursively.
pub fn dir_size(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(next) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    (files, bytes)
}
