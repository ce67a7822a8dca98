//! `branchline-bench`: runs B1 to B6 through Branchline and samod, and N1
//! (Branchline on SQLite and on PostgreSQL with one to three nodes), and
//! prints the tables (see the library's documentation for the method).
//!
//! - `branchline-bench` — the full sizes of issues 8 and 17, for BENCHMARKS.md.
//! - `branchline-bench --quick` — small sizes; only checks that everything runs.
//! - `branchline-bench --only B1,B4` — a subset (`N1` or `nodes` for N1).
//! - `branchline-bench serve <branchline|samod> <dir>` — the server process
//!   the suite starts for itself.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use branchline_bench::nodes;
use branchline_bench::table::{self, DeploymentRow, Row};
use branchline_bench::workloads::{self, Outcome, Sizes};
use branchline_core::workload::{WorkloadSpec, generate};

/// Documents in B2.
const B2_DOCS: usize = 1_000;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        let [_, system, dir] = args.as_slice() else {
            bail!("usage: branchline-bench serve <branchline|samod> <dir>");
        };
        let runtime = tokio::runtime::Runtime::new()?;
        return runtime.block_on(branchline_bench::process::serve(
            system,
            &PathBuf::from(dir),
        ));
    }
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let quick = args.iter().any(|a| a == "--quick");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').map(|s| s.trim().to_uppercase()).collect());
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(suite(quick, only))
}

async fn suite(quick: bool, only: Option<Vec<String>>) -> Result<()> {
    let mut sizes = if quick { Sizes::quick() } else { Sizes::full() };
    // For a shorter run of B5 only; the figures in BENCHMARKS.md say which size.
    if let Some(n) = std::env::var("BENCH_B5_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        sizes.b5_devices = n;
    }
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|w| w == name));
    let started = Instant::now();
    println!(
        "branchline-bench ({} mode) on {} ({} cores)",
        if quick { "quick" } else { "full" },
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let spec = WorkloadSpec::default();
    let t = Instant::now();
    let branch = generate(&spec).context("generating the branch")?;
    let saved: usize = branch.documents.iter().map(|d| d.bytes.len()).sum();
    println!(
        "generated branch: {} documents, {saved} bytes saved ({} members, {} years, {} petitions) in {:.1?}",
        branch.documents.len(),
        spec.members,
        spec.years,
        spec.petitions,
        t.elapsed()
    );

    let mut rows: Vec<Row> = Vec::new();
    let mut deployments: Vec<DeploymentRow> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut take = |name: &str, outcome: Result<Outcome>, t: Instant| match outcome {
        Ok(outcome) => {
            println!("{name} done in {:.1?}", t.elapsed());
            if !outcome.deployments.is_empty() {
                print!("{}", table::deployments_markdown(&outcome.deployments));
                println!();
            }
            print!("{}", table::markdown(&outcome.rows));
            rows.extend(outcome.rows);
            deployments.extend(outcome.deployments);
            notes.extend(outcome.notes);
        }
        Err(e) => {
            println!("{name} FAILED after {:.1?}: {e:#}", t.elapsed());
            notes.push(format!("{name} failed: {e:#}"));
        }
    };
    if wanted("B1") {
        let t = Instant::now();
        take("B1", workloads::b1(&branch, &sizes).await, t);
    }
    if wanted("B2") {
        let t = Instant::now();
        // The same kinds and history with more petitions, to reach 1,000
        // documents (quick mode: the two-year branch as it is).
        let big = if quick {
            branch.clone()
        } else {
            let extra = B2_DOCS.saturating_sub(branch.documents.len());
            generate(&WorkloadSpec {
                seed: spec.seed + 1,
                petitions: spec.petitions + extra,
                ..spec.clone()
            })
            .context("generating the 1,000-document branch")?
        };
        take("B2", workloads::b2(&big, &sizes).await, t);
    }
    if wanted("B3") {
        let t = Instant::now();
        take("B3", workloads::b3(&branch, &sizes).await, t);
    }
    if wanted("B4") {
        let t = Instant::now();
        take("B4", workloads::b4(&branch, &sizes).await, t);
    }
    if wanted("B5") {
        let t = Instant::now();
        take("B5", workloads::b5(&sizes).await, t);
    }
    if wanted("B6") {
        let t = Instant::now();
        take("B6", workloads::b6(&sizes).await, t);
    }
    if wanted("N1") || wanted("NODES") {
        let t = Instant::now();
        take("N1", nodes::n1(&sizes).await, t);
    }
    let failed = notes.iter().any(|n| n.contains(" failed: "));

    println!();
    if !deployments.is_empty() {
        print!("{}", table::deployments_markdown(&deployments));
        println!();
    }
    print!("{}", table::markdown(&rows));
    println!();
    for note in &notes {
        println!("- {note}");
    }
    let missed: Vec<&Row> = rows.iter().filter(|r| r.met() == Some(false)).collect();
    println!();
    println!(
        "{} targets checked, {} missed; suite took {:.1?}",
        rows.iter().filter(|r| r.met().is_some()).count(),
        missed.len(),
        started.elapsed()
    );
    if failed {
        bail!("a workload failed");
    }
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "an unknown CPU".to_owned())
}
