//! `scale-model`: the load of a national Branchline deployment, computed
//! from stated inputs and from what this program measures, for
//! docs/scale.md.
//!
//! - Stated inputs (assumptions, the generator's settings, code defaults,
//!   figures quoted from BENCHMARKS.md) are in [`model::Inputs::stated`].
//! - In memory ([`measure`]): a year of the survey's branch from
//!   client-core's workload generator; its documents, changes and sizes;
//!   every change replayed through automerge's sync as docs/sync-design.md
//!   runs it, counting protocol frames; who may read each document by the
//!   server's `access::decide`; the heap memory of a catalog entry and of a
//!   loaded document, counted by the program's allocator ([`heap`]).
//! - Live ([`live`]): the real server in its own process (this binary
//!   re-executed as `scale-model serve branchline <dir>`) and real sync
//!   clients over QUIC on 127.0.0.1: what QUIC and TLS add to small pushes
//!   and pulls, a reconnect, a keep-alive, and the server's CPU per push,
//!   pull and reconnect.
//!
//! It prints the inputs table and the load table between the markers
//! docs/scale.md keeps them in; a test (`doc_check`) checks that the tables
//! in the doc are what the model computes from the doc's inputs, that the
//! stated inputs are the program's, and that the inputs measured in memory
//! are what the program measures now (the live ones, which vary from run
//! to run, only within what a run can give).
//!
//! ```text
//! cargo run --release -p branchline-bench --bin scale-model
//! cargo run --release -p branchline-bench --bin scale-model -- --quick   # smaller live run
//! ```

mod heap;
mod live;
mod measure;
mod model;

#[cfg(test)]
mod doc_check;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use branchline_bench::branchline_side as bl;
use branchline_bench::process::{ServerProcess, System};
use branchline_core::BranchId;
use branchline_protocol::InviteLink;
use branchline_server::Admin;

use crate::live::{LiveFigures, LiveServer, Sizes};
use crate::model::{Inputs, load};

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

/// The live run for docs/scale.md.
const FULL: Sizes = Sizes {
    pushes: 200,
    pulls: 100,
    readers: 8,
    reconnects: 3,
    idle: Duration::from_secs(3),
};

/// A shorter live run.
const QUICK: Sizes = Sizes {
    pushes: 20,
    pulls: 10,
    readers: 3,
    reconnects: 1,
    idle: Duration::from_secs(1),
};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        let [_, system, dir] = args.as_slice() else {
            bail!("usage: scale-model serve branchline <dir>");
        };
        let runtime = tokio::runtime::Runtime::new()?;
        return runtime.block_on(branchline_bench::process::serve(
            system,
            &PathBuf::from(dir),
        ));
    }
    let sizes = if args.iter().any(|a| a == "--quick") {
        QUICK
    } else {
        FULL
    };

    let mut inputs = Inputs::stated();
    let year = measure::generated_year(&inputs)?;
    measure::measure(&mut inputs, &year)?;

    let runtime = tokio::runtime::Runtime::new()?;
    let live = runtime.block_on(live_in_child_process(sizes))?;
    fill_live(&mut inputs, &live)?;

    let inputs = inputs.rounded();
    println!("<!-- scale-model:inputs -->");
    print!("{}", inputs.table());
    println!("<!-- /scale-model:inputs -->");
    println!();
    let load = load(&inputs);
    println!("<!-- scale-model:summary -->");
    print!("{}", load.summary_list());
    println!("<!-- /scale-model:summary -->");
    println!();
    println!("<!-- scale-model:load -->");
    print!("{}", load.table());
    println!("<!-- /scale-model:load -->");
    println!();
    println!(
        "- live run: {} pushes alone, {} pushes pulled by {} devices, {} reconnects each, \
         keep-alives every {} ms for 2 × {} s",
        sizes.pushes,
        sizes.pulls,
        sizes.readers,
        sizes.reconnects,
        live::KEEPALIVE.as_millis(),
        sizes.idle.as_secs()
    );
    println!(
        "- cross-check: a live push of one minutes line took {:.0} B of frames, a live pull {:.0} B; \
         the replayed year's mean is {:.0} B and {:.0} B",
        live.push_frames, live.pull_frames, inputs.push_frame_bytes, inputs.pull_frame_bytes
    );
    Ok(())
}

/// Copies the live figures into `inputs`.
pub fn fill_live(inputs: &mut Inputs, live: &LiveFigures) -> Result<()> {
    inputs.push_udp_factor = live.push_udp_factor;
    inputs.pull_udp_factor = live.pull_udp_factor;
    inputs.reconnect_bytes = live.reconnect_bytes;
    inputs.keepalive_bytes = live.keepalive_bytes;
    let Some((push, pull, session)) = live.cpu_ms else {
        bail!("the server's CPU was not measured");
    };
    inputs.cpu_ms_push = push;
    inputs.cpu_ms_pull = pull;
    inputs.cpu_ms_session = session;
    Ok(())
}

/// The server in its own process, so its CPU time is its own.
struct ChildServer {
    process: ServerProcess,
    admin: Admin,
    branch: BranchId,
}

impl LiveServer for ChildServer {
    fn invite(&self) -> Result<InviteLink> {
        bl::invite(&self.admin, self.branch)
    }

    fn cpu(&self) -> Result<Option<Duration>> {
        Ok(Some(self.process.cpu()?))
    }
}

async fn live_in_child_process(sizes: Sizes) -> Result<LiveFigures> {
    let dir = tempfile::TempDir::new()?;
    let process = ServerProcess::start(System::Branchline, dir.path())?;
    let branch = bl::add_branch(dir.path(), "幸福里社区第一党支部")?;
    let server = ChildServer {
        admin: Admin::open(dir.path())?,
        process,
        branch,
    };
    let figures = live::measure(&server, branch, sizes).await?;
    server.process.stop()?;
    Ok(figures)
}
