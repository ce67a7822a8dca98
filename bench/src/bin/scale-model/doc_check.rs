//! docs/scale.md against the program, in checks that no run can flake:
//!
//! - its inputs table must be the program's, row for row, and its load
//!   table and key figures what the model computes from that table's
//!   values, so a figure edited by hand, or an input edited without
//!   regenerating what follows from it, fails;
//! - its stated inputs must be the program's (and the code defaults and
//!   BENCHMARKS.md figures they quote);
//! - its inputs measured in memory are deterministic (a seeded generator,
//!   heap counted by the program's allocator), so they are measured again
//!   and must match at the printed precision;
//! - its inputs measured live (bytes over QUIC, server CPU) differ from
//!   run to run, so they are not measured again: each must lie within what
//!   a real run can give, and each moves a figure of the tables, so an edit
//!   of one by hand fails the first check.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail, ensure};
use branchline_core::net::ClientConfig;
use branchline_server::ServerConfig;

use crate::measure;
use crate::model::{Inputs, Source, input_value, load, parse_input_value};

/// What a live run can give, per live input: `(key, lowest, highest)`.
/// Wide on purpose: they catch a value that is not a measurement (a typo,
/// a unit off by a thousand), not a run that differs from the last.
const LIVE_BOUNDS: &[(&str, f64, f64)] = &[
    // UDP payload carries the frames and QUIC and TLS around them.
    ("push_udp_factor", 1.0, 5.0),
    ("pull_udp_factor", 1.0, 5.0),
    // A new connection's first datagrams, the client's and the server's,
    // are padded to 1,200 B each (RFC 9000 §14.1).
    ("reconnect_bytes", 2_400.0, 20_000.0),
    // A PING one way and an ACK back, each a short packet.
    ("keepalive_bytes", 20.0, 2_400.0),
    ("cpu_ms_push", 0.001, 1_000.0),
    ("cpu_ms_pull", 0.001, 1_000.0),
    ("cpu_ms_session", 0.001, 1_000.0),
];

fn repo_file(path: &str) -> Result<String> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))
}

/// The lines between `<!-- scale-model:NAME -->` and its closing marker.
fn block<'a>(doc: &'a str, name: &str) -> Result<Vec<&'a str>> {
    let open = format!("<!-- scale-model:{name} -->");
    let close = format!("<!-- /scale-model:{name} -->");
    let start = doc
        .find(&open)
        .with_context(|| format!("docs/scale.md has no {open}"))?
        + open.len();
    let end = doc[start..]
        .find(&close)
        .with_context(|| format!("docs/scale.md has no {close}"))?
        + start;
    Ok(doc[start..end]
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect())
}

/// The inputs as docs/scale.md states them.
fn doc_inputs(doc: &str) -> Result<Inputs> {
    let specs: Vec<_> = Inputs::stated()
        .rows()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let mut inputs = Inputs::default();
    let mut seen = Vec::new();
    for line in block(doc, "inputs")?.into_iter().skip(2) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(key), Some(value)) = (cells.get(1), cells.get(2)) else {
            bail!("malformed inputs row {line:?}");
        };
        let key = key.trim_matches('`');
        let spec = specs
            .iter()
            .find(|s| s.key == key)
            .with_context(|| format!("docs/scale.md names an unknown input {key}"))?;
        let value = parse_input_value(value, spec)
            .with_context(|| format!("docs/scale.md: {key} = {value:?} is not a number"))?;
        inputs.set(key, value);
        seen.push(key.to_owned());
    }
    for spec in &specs {
        ensure!(
            seen.iter().any(|k| k == spec.key),
            "docs/scale.md does not state the input {}",
            spec.key
        );
    }
    Ok(inputs)
}

/// Fails with every input whose quoted value differs from `now` by more
/// than `tolerance` (a share; 0 means equal as printed).
fn compare(what: &str, doc: &Inputs, now: &Inputs, keys: &[&str], tolerance: f64) -> Vec<String> {
    let (doc, now) = (doc.rows(), now.rounded().rows());
    let mut wrong = Vec::new();
    for key in keys {
        let (spec, quoted) = doc
            .iter()
            .find(|(s, _)| s.key == *key)
            .expect("a known key");
        let (_, measured) = now
            .iter()
            .find(|(s, _)| s.key == *key)
            .expect("a known key");
        let off = if tolerance == 0.0 {
            quoted != measured
        } else {
            ((quoted - measured) / quoted).abs() > tolerance
        };
        if off {
            wrong.push(format!(
                "{what} `{key}`: docs/scale.md says {}, the program now gets {}",
                input_value(*quoted, spec),
                input_value(*measured, spec)
            ));
        }
    }
    wrong
}

fn keys_of(source: Source) -> Vec<&'static str> {
    Inputs::stated()
        .rows()
        .into_iter()
        .filter(|(s, _)| s.source == source)
        .map(|(s, _)| s.key)
        .collect()
}

#[test]
fn docs_scale_md_quotes_what_the_program_computes() -> Result<()> {
    let doc = repo_file("docs/scale.md")?;
    let quoted = doc_inputs(&doc)?;
    let mut wrong = Vec::new();

    // The inputs table is the program's, row for row (names, sources and
    // notes too); the load table and the key figures are the model of its
    // values.
    let model = load(&quoted);
    for (name, expected) in [
        ("inputs", quoted.table()),
        ("load", model.table()),
        ("summary", model.summary_list()),
    ] {
        let expected: Vec<&str> = expected.lines().collect();
        let found = block(&doc, name)?;
        for (i, (f, e)) in found.iter().zip(&expected).enumerate() {
            if f != e {
                wrong.push(format!(
                    "{name} line {i}:\n  docs/scale.md: {f}\n  computed:      {e}"
                ));
            }
        }
        if found.len() != expected.len() {
            wrong.push(format!(
                "{name}: docs/scale.md has {} lines, the model {}",
                found.len(),
                expected.len()
            ));
        }
    }

    // Stated inputs: the program's, the code's, BENCHMARKS.md's.
    let stated = Inputs::stated();
    for source in [
        Source::Assumed,
        Source::Generator,
        Source::Code,
        Source::Benchmarks,
    ] {
        wrong.extend(compare(
            "stated input",
            &quoted,
            &stated,
            &keys_of(source),
            0.0,
        ));
    }
    let client = ClientConfig::default();
    let server = ServerConfig::new(PathBuf::new(), "127.0.0.1:0".parse()?);
    let generator = branchline_core::workload::WorkloadSpec::default();
    let code = [
        ("keepalive_interval_s", client.keep_alive.as_secs_f64()),
        ("idle_unload_s", server.idle_unload.as_secs_f64()),
        ("max_loaded_docs", server.max_loaded_docs as f64),
        ("server_max_connections", server.max_connections as f64),
        (
            "activities_per_month",
            f64::from(generator.activities_per_month),
        ),
        ("attendance", generator.attendance),
        (
            "petitions_per_branch_year",
            generator.petitions as f64 / f64::from(generator.years),
        ),
    ];
    for (key, value) in code {
        let (_, quoted) = quoted
            .rows()
            .into_iter()
            .find(|(s, _)| s.key == key)
            .expect("a key");
        if quoted != value {
            wrong.push(format!(
                "`{key}` is {quoted} in docs/scale.md but {value} in the code"
            ));
        }
    }
    // The server's limits are private to it: read them where they are set.
    let limits = repo_file("server/src/config.rs")?;
    for needle in [
        format!(
            "pub const POLL_INTERVAL: Duration = Duration::from_secs({});",
            quoted.poll_interval_s
        ),
        format!(
            "pub const BROADCAST_CAPACITY: usize = {};",
            quoted.broadcast_capacity
        ),
    ] {
        if !limits.contains(&needle) {
            wrong.push(format!("server/src/config.rs has no {needle:?}"));
        }
    }
    let benchmarks = repo_file("BENCHMARKS.md")?;
    for needle in [
        format!("| {:.1} KiB |", quoted.connection_memory_kib),
        format!("| {} B |", quoted.cold_session_bytes),
    ] {
        if !benchmarks.contains(&needle) {
            wrong.push(format!("BENCHMARKS.md has no figure {needle:?}"));
        }
    }

    // Measured in memory: deterministic (a seeded generator, heap counted by
    // the allocator), so re-measured and compared exactly.
    let year = measure::generated_year(&quoted)?;
    let mut now = quoted.clone();
    measure::measure(&mut now, &year)?;
    wrong.extend(compare(
        "measured input",
        &quoted,
        &now,
        &keys_of(Source::Measured),
        0.0,
    ));

    // Measured live: different on every run, so not re-measured here. They
    // must be what a real run can give, and a hand edit of one shows in the
    // load table computed above (see `every_live_input_moves_the_tables`).
    for (key, low, high) in LIVE_BOUNDS {
        let (spec, value) = quoted
            .rows()
            .into_iter()
            .find(|(s, _)| s.key == *key)
            .expect("a key");
        if value.is_nan() || value < *low || value > *high {
            wrong.push(format!(
                "`{key}` = {} is not a live measurement: it must lie in [{low}, {high}]",
                input_value(value, &spec)
            ));
        }
    }
    let live: Vec<&str> = LIVE_BOUNDS.iter().map(|(k, _, _)| *k).collect();
    let unbounded: Vec<&str> = keys_of(Source::Live)
        .into_iter()
        .filter(|k| !live.contains(k))
        .collect();
    ensure!(
        unbounded.is_empty(),
        "no bounds for the live inputs {unbounded:?}"
    );

    ensure!(
        wrong.is_empty(),
        "docs/scale.md is out of date; run `cargo run --release -p branchline-bench --bin scale-model` \
         and paste its tables:\n{}",
        wrong.join("\n")
    );
    Ok(())
}

/// A live input moved by 5 % changes the load table or the key figures, so
/// the first check of the doc test catches it edited by hand.
#[test]
fn every_live_input_moves_the_tables() -> Result<()> {
    let doc = repo_file("docs/scale.md")?;
    let quoted = doc_inputs(&doc)?;
    let base = load(&quoted);
    for key in keys_of(Source::Live) {
        let (spec, value) = quoted
            .rows()
            .into_iter()
            .find(|(s, _)| s.key == key)
            .expect("a key");
        let mut edited = quoted.clone();
        edited.set(key, value * 1.05);
        let edited = load(&edited.rounded());
        ensure!(
            edited.table() != base.table() || edited.summary_list() != base.summary_list(),
            "`{key}` edited from {} to {} changes no figure of docs/scale.md",
            input_value(value, &spec),
            input_value(value * 1.05, &spec)
        );
    }
    Ok(())
}
