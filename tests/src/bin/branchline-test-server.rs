//! A server in its own process, so a test can kill it with SIGKILL.
//!
//! Usage: `branchline-test-server DATA_DIR LISTEN_ADDR`. Prints
//! `listening <addr>` once it accepts connections, then runs until killed.

use std::io::Write as _;

use anyhow::Context as _;
use branchline_server::{Server, ServerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries the one line the test reads.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let mut args = std::env::args().skip(1);
    let data_dir = args.next().context("usage: DATA_DIR LISTEN_ADDR")?;
    let listen = args
        .next()
        .context("usage: DATA_DIR LISTEN_ADDR")?
        .parse()
        .context("LISTEN_ADDR")?;
    let server = Server::start(ServerConfig::new(data_dir.into(), listen)).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening {}", server.local_addr())?;
    stdout.flush()?;
    std::future::pending::<()>().await;
    Ok(())
}
