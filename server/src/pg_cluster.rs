//! A private PostgreSQL cluster for tests and benchmarks: `initdb` in a
//! temporary directory, `pg_ctl` on a free port of 127.0.0.1, trust
//! authentication for the role `branchline`, and a database of that name.
//!
//! The binaries are Debian's `postgresql` package (`scripts/install-postgres.sh`
//! installs it where it is missing), found through `$BRANCHLINE_PG_BIN`, then
//! `/usr/lib/postgresql/<version>/bin` (the newest), then `PATH`. PostgreSQL
//! refuses to run as root, so under root the server programs run as the
//! `postgres` user the package creates, in a directory handed to it.
//!
//! The cluster is a real server: [`TempCluster::kill`] SIGKILLs the
//! postmaster as a crash would, [`TempCluster::restart`] brings it back on the
//! same port with the same data. Dropping the cluster stops it and removes
//! its directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Why a cluster could not be had, with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No `initdb`/`pg_ctl` on this machine.
    #[error(
        "pg.not_installed: no PostgreSQL server binaries found (set BRANCHLINE_PG_BIN or run scripts/install-postgres.sh)"
    )]
    NotInstalled,
    /// A step of setting the cluster up failed.
    #[error("pg.start_failed: {0}")]
    StartFailed(String),
}

impl ClusterError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotInstalled => "pg.not_installed",
            Self::StartFailed(_) => "pg.start_failed",
        }
    }
}

/// How the cluster is set up.
#[derive(Clone, Debug)]
pub struct Options {
    /// Whether PostgreSQL forces its WAL to disk. On for crash tests (a
    /// SIGKILL of the postmaster does not lose what the OS holds, but keep
    /// the real thing), off where only speed of setup matters.
    pub fsync: bool,
    /// `max_connections`: every node's pool and listener count.
    pub max_connections: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            fsync: true,
            max_connections: 200,
        }
    }
}

/// The role and database the cluster serves.
const ROLE: &str = "branchline";

/// A running private cluster.
#[derive(Debug)]
pub struct TempCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Run the server programs as `postgres` (we are root).
    as_postgres: bool,
    running: bool,
}

impl TempCluster {
    /// A fresh cluster with default options.
    pub fn start() -> Result<Self, ClusterError> {
        Self::start_with(Options::default())
    }

    /// A fresh cluster.
    pub fn start_with(options: Options) -> Result<Self, ClusterError> {
        let bin = binaries().ok_or(ClusterError::NotInstalled)?;
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("branchline-pg-")
            .tempdir()
            .map_err(|e| failed("temporary directory", e))?;
        if as_postgres {
            hand_to_postgres(dir.path())?;
        }
        let mut cluster = Self {
            dir,
            bin,
            port: 0,
            as_postgres,
            running: false,
        };
        cluster.init(&options)?;
        // A free port can be taken between our probe and the server's bind:
        // try a few.
        let mut last = None;
        for _ in 0..5 {
            cluster.port = free_port()?;
            cluster.write_port()?;
            match cluster.pg_ctl_start() {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        cluster.create_database()?;
        Ok(cluster)
    }

    /// `postgres://branchline@127.0.0.1:PORT/branchline`.
    pub fn url(&self) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{ROLE}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL the postmaster, as a crash of the machine's database would.
    /// Its backends notice and exit by themselves.
    pub fn kill(&mut self) -> Result<(), ClusterError> {
        let pid = self.postmaster_pid()?;
        run(
            Command::new("kill").args(["-KILL", &pid.to_string()]),
            "kill",
        )?;
        self.running = false;
        // Wait for it to be gone, so a restart does not race its exit.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stop the server (fast shutdown: connections are cut).
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        if self.running {
            self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"])?;
            self.running = false;
        }
        Ok(())
    }

    /// Start it again on the same port with the same data, after
    /// [`TempCluster::stop`] or [`TempCluster::kill`]. Backends of a killed
    /// postmaster may hold its shared memory for a moment: retried.
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        self.stop()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.pg_ctl_start() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn init(&self, options: &Options) -> Result<(), ClusterError> {
        let data = self.data();
        let mut initdb = self.server_program("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", ROLE, "--auth=trust", "-E", "UTF8", "--no-locale"])
            // The cluster lives as long as a test: no need to sync its files.
            .arg("--no-sync");
        run(&mut initdb, "initdb")?;
        let settings = format!(
            "\n# Written by branchline's TempCluster.\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket}'\n\
             max_connections = {max}\n\
             shared_buffers = 16MB\n\
             fsync = {fsync}\n\
             log_min_messages = warning\n",
            socket = self.dir.path().display(),
            max = options.max_connections,
            fsync = if options.fsync { "on" } else { "off" },
        );
        append(&data.join("postgresql.conf"), &settings)
    }

    /// The port goes in its own included file, rewritten per attempt.
    fn write_port(&self) -> Result<(), ClusterError> {
        let conf = self.data().join("postgresql.conf");
        let text = std::fs::read_to_string(&conf).map_err(|e| failed("postgresql.conf", e))?;
        let mut kept: Vec<&str> = text
            .lines()
            .filter(|line| !line.starts_with("port = "))
            .collect();
        let line = format!("port = {}", self.port);
        kept.push(&line);
        std::fs::write(&conf, kept.join("\n") + "\n").map_err(|e| failed("postgresql.conf", e))
    }

    fn pg_ctl_start(&mut self) -> Result<(), ClusterError> {
        let log = self.log_path();
        let log = log.to_string_lossy().into_owned();
        self.pg_ctl(&["start", "-w", "-t", "30", "-l", &log])
            .map_err(|e| ClusterError::StartFailed(format!("{e}; server log:\n{}", self.log())))?;
        self.running = true;
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<Output, ClusterError> {
        let mut pg_ctl = self.server_program("pg_ctl");
        pg_ctl.arg("-D").arg(self.data()).args(args);
        run(&mut pg_ctl, "pg_ctl")
    }

    fn create_database(&self) -> Result<(), ClusterError> {
        let mut createdb = Command::new(self.bin.join("createdb"));
        createdb
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", ROLE])
            .arg(ROLE);
        run(&mut createdb, "createdb").map(drop)
    }

    fn postmaster_pid(&self) -> Result<u32, ClusterError> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .map_err(|e| failed("postmaster.pid", e))?;
        text.lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| ClusterError::StartFailed("postmaster.pid names no process".into()))
    }

    /// A server program (`initdb`, `pg_ctl`), as `postgres` when we are root.
    fn server_program(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if self.running {
            // Immediate: the directory goes next, nothing to keep.
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "10"]);
        }
    }
}

/// The directory holding `initdb` and `pg_ctl`.
pub fn binaries() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("BRANCHLINE_PG_BIN") {
        let dir = PathBuf::from(dir);
        return has_server(&dir).then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| has_server(dir))
}

fn running_as_root() -> bool {
    // The real uid, from the kernel's own account of this process.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("Uid:"))?;
            line.split_whitespace().nth(1).map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

/// Give the directory to the `postgres` user, which initdb runs as.
fn hand_to_postgres(dir: &Path) -> Result<(), ClusterError> {
    let id = |flag: &str| -> Result<u32, ClusterError> {
        let output = run(Command::new("id").args([flag, "postgres"]), "id")?;
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .map_err(|_| ClusterError::StartFailed("id printed no number".into()))
    };
    std::os::unix::fs::chown(dir, Some(id("-u")?), Some(id("-g")?))
        .map_err(|e| failed("chown to postgres", e))
}

fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| failed("free port", e))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| failed("free port", e))
}

fn append(path: &Path, text: &str) -> Result<(), ClusterError> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| failed("postgresql.conf", e))
}

fn run(command: &mut Command, what: &str) -> Result<Output, ClusterError> {
    let output = command.output().map_err(|e| failed(what, e))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(ClusterError::StartFailed(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

fn failed(what: &str, error: impl std::fmt::Display) -> ClusterError {
    ClusterError::StartFailed(format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_serves_survives_a_kill_and_cleans_up() {
        let mut cluster = TempCluster::start().unwrap_or_else(|e| panic!("{e}"));
        let dir = cluster.dir.path().to_owned();
        let select = |cluster: &TempCluster| {
            let mut psql = Command::new(cluster.bin.join("psql"));
            psql.args(["-h", "127.0.0.1", "-p", &cluster.port().to_string()])
                .args(["-U", ROLE, "-d", ROLE, "-Atc"]);
            psql
        };
        run(
            select(&cluster).arg("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)"),
            "psql",
        )
        .unwrap();
        cluster.kill().unwrap();
        assert!(run(select(&cluster).arg("SELECT 1"), "psql").is_err());
        cluster.restart().unwrap();
        let out = run(select(&cluster).arg("SELECT n FROM kept"), "psql").unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7");
        drop(cluster);
        assert!(!dir.exists(), "the directory goes with the cluster");
    }
}
