//! What the FFI integration tests share: a real server on 127.0.0.1 and the built
//! library.

#![allow(dead_code)] // each test binary uses part of this

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use branchline_core::BranchId;
use branchline_core::model::Level;
use branchline_protocol::Role;
use branchline_server::{RunningServer, Server, ServerConfig};
use tempfile::TempDir;

/// A Branchline server running in this process, on its own runtime.
pub struct TestServer {
    /// The server's runtime; dropped last.
    pub runtime: tokio::runtime::Runtime,
    /// The running server.
    pub server: Option<RunningServer>,
    /// Its data directory.
    pub dir: TempDir,
}

impl TestServer {
    /// Starts a server on an ephemeral port of 127.0.0.1.
    pub fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-server")
            .enable_all()
            .build()?;
        let dir = tempfile::tempdir()?;
        let config = ServerConfig::new(dir.path().to_path_buf(), "127.0.0.1:0".parse()?);
        let server = runtime.block_on(Server::start(config))?;
        Ok(Self {
            runtime,
            server: Some(server),
            dir,
        })
    }

    /// A new branch with its profile and roster.
    pub fn branch(&self, name: &str) -> Result<BranchId> {
        let admin = self.server.as_ref().context("server stopped")?.admin();
        Ok(admin.add_branch(name, Level::Branch, None)?)
    }

    /// Records `a` and `b` as partner branches, so they may share activities.
    pub fn ally(&self, a: BranchId, b: BranchId) -> Result<()> {
        let admin = self.server.as_ref().context("server stopped")?.admin();
        admin.add_alliance("结对共建", &[a, b])?;
        Ok(())
    }

    /// A one-time invite link into `branch`, valid for an hour.
    pub fn invite(&self, branch: BranchId, role: Role) -> Result<String> {
        let admin = self.server.as_ref().context("server stopped")?.admin();
        let link = admin.create_invite(branch, role, None, Duration::from_secs(3600))?;
        Ok(link.to_string())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = self.runtime.block_on(server.shutdown());
        }
    }
}

/// The `libbranchline_ffi` shared library cargo built next to this test binary.
pub fn cdylib() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test binary>
    let deps = exe.parent().context("test binary has no directory")?;
    let name = format!(
        "{}branchline_ffi{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    for dir in [Some(deps), deps.parent()].into_iter().flatten() {
        let candidate = dir.join(&name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("{name} not found next to {}", exe.display())
}
