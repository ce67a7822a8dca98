//! The load model: stated inputs in, the load table out. Arithmetic only, no
//! I/O, so the test can run it on the inputs docs/scale.md quotes.
//!
//! Every input is listed once, in [`Inputs::slots`], with its precision, its
//! unit and where it comes from. The model always computes from the inputs
//! rounded to the precision they are printed with ([`Inputs::rounded`]), so
//! the table the program prints and the table computed from the printed
//! inputs are the same table.

use std::fmt::Write as _;

/// Where an input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A planning assumption, stated, not measured.
    Assumed,
    /// An input of client-core's workload generator: the year this program
    /// generates and measures. Changing it changes the measured rows.
    Generator,
    /// A default in the code (client or server configuration).
    Code,
    /// Quoted from BENCHMARKS.md.
    Benchmarks,
    /// Measured by this program in memory, from the generated year.
    Measured,
    /// Measured by this program on a real server over QUIC on 127.0.0.1.
    Live,
}

impl Source {
    /// The word in the inputs table.
    pub fn word(self) -> &'static str {
        match self {
            Source::Assumed => "assumed",
            Source::Generator => "generator",
            Source::Code => "code",
            Source::Benchmarks => "BENCHMARKS.md",
            Source::Measured => "measured",
            Source::Live => "measured live",
        }
    }
}

/// What the inputs table says about one input.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Its name, in backticks in the table.
    pub key: &'static str,
    /// Decimals it is printed (and computed) with.
    pub decimals: usize,
    /// Its unit, after the number ("" for none).
    pub unit: &'static str,
    /// Where it comes from.
    pub source: Source,
    /// What it is and why this value.
    pub note: &'static str,
}

const fn spec(
    key: &'static str,
    decimals: usize,
    unit: &'static str,
    source: Source,
    note: &'static str,
) -> Spec {
    Spec {
        key,
        decimals,
        unit,
        source,
        note,
    }
}

/// Every input of the model.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    // Assumptions.
    pub branches: f64,
    pub members_per_branch: f64,
    pub devices_per_member: f64,
    pub unmodelled_factor: f64,
    pub ancestor_levels: f64,
    pub ancestor_committee: f64,
    pub sessions_per_device_day: f64,
    pub cold_sessions_per_device_day: f64,
    pub connected_hours_per_device_day: f64,
    pub peak_connected_share: f64,
    pub peak_rate_factor: f64,
    pub years_kept: f64,
    pub replication_factor: f64,
    pub row_overhead_bytes: f64,
    pub audit_row_bytes: f64,
    pub max_connections_per_node: f64,
    pub node_cores: f64,
    pub cpu_utilisation: f64,
    // The generated year.
    pub activities_per_month: f64,
    pub attendance: f64,
    pub petitions_per_branch_year: f64,
    // Code defaults.
    pub keepalive_interval_s: f64,
    pub idle_unload_s: f64,
    pub max_loaded_docs: f64,
    pub server_max_connections: f64,
    pub poll_interval_s: f64,
    pub broadcast_capacity: f64,
    // BENCHMARKS.md.
    pub connection_memory_kib: f64,
    pub cold_session_bytes: f64,
    // Measured in memory.
    pub docs_per_branch_year: f64,
    pub changes_per_branch_year: f64,
    pub change_bytes: f64,
    pub author_message_bytes: f64,
    pub author_message_stored_bytes: f64,
    pub saved_bytes_per_branch_year: f64,
    pub push_frame_bytes: f64,
    pub pull_frame_bytes: f64,
    pub sync_state_bytes: f64,
    pub member_readers_per_change: f64,
    pub resident_readers_per_change: f64,
    pub oversight_share_changes: f64,
    pub member_readers_per_doc: f64,
    pub resident_readers_per_doc: f64,
    pub oversight_share_docs: f64,
    pub catalog_entry_bytes: f64,
    pub loaded_doc_bytes: f64,
    // Measured on a real server.
    pub push_udp_factor: f64,
    pub pull_udp_factor: f64,
    pub reconnect_bytes: f64,
    pub keepalive_bytes: f64,
    pub cpu_ms_push: f64,
    pub cpu_ms_pull: f64,
    pub cpu_ms_session: f64,
}

impl Inputs {
    /// The stated inputs (assumptions, generator, code, BENCHMARKS.md);
    /// measured inputs are NaN until measured.
    pub fn stated() -> Self {
        let mut inputs = Inputs {
            branches: 3_000_000.0,
            members_per_branch: 43.0,
            devices_per_member: 1.2,
            unmodelled_factor: 2.0,
            ancestor_levels: 2.0,
            ancestor_committee: 3.0,
            sessions_per_device_day: 6.0,
            cold_sessions_per_device_day: 1.0,
            connected_hours_per_device_day: 2.0,
            peak_connected_share: 0.25,
            peak_rate_factor: 12.0,
            years_kept: 5.0,
            replication_factor: 3.0,
            row_overhead_bytes: 60.0,
            audit_row_bytes: 230.0,
            max_connections_per_node: 50_000.0,
            node_cores: 16.0,
            cpu_utilisation: 0.5,
            activities_per_month: 4.0,
            attendance: 0.8,
            petitions_per_branch_year: 150.0,
            keepalive_interval_s: 15.0,
            idle_unload_s: 300.0,
            max_loaded_docs: 1_000.0,
            server_max_connections: 1_000.0,
            poll_interval_s: 1.0,
            broadcast_capacity: 4_096.0,
            connection_memory_kib: 141.5,
            cold_session_bytes: 4_559.0,
            ..Inputs::default()
        };
        for (spec, slot) in inputs.slots() {
            if matches!(spec.source, Source::Measured | Source::Live) {
                *slot = f64::NAN;
            }
        }
        inputs
    }

    /// Every input with its spec, in the order of the inputs table.
    pub fn slots(&mut self) -> Vec<(Spec, &mut f64)> {
        use Source::*;
        vec![
            (
                spec(
                    "branches",
                    0,
                    "",
                    Assumed,
                    "branches in the country: a planning figure for \"millions of branches\"; every national figure scales with it",
                ),
                &mut self.branches,
            ),
            (
                spec(
                    "members_per_branch",
                    0,
                    "",
                    Assumed,
                    "DOMAIN.md: 3 to 100 members, 43 on average in the survey; also the generated branch's roster",
                ),
                &mut self.members_per_branch,
            ),
            (
                spec(
                    "devices_per_member",
                    1,
                    "",
                    Assumed,
                    "a phone each; some secretaries and committee members also sync a PC",
                ),
                &mut self.devices_per_member,
            ),
            (
                spec(
                    "unmodelled_factor",
                    1,
                    "×",
                    Assumed,
                    "changes and stored bytes the generator does not make (suggestions, corrections, settled conflicts, study records, meeting photos' metadata), as a multiple of those it does",
                ),
                &mut self.unmodelled_factor,
            ),
            (
                spec(
                    "ancestor_levels",
                    0,
                    "",
                    Assumed,
                    "levels above a branch whose committee reads it (general branch, committee: DOMAIN.md's hierarchy)",
                ),
                &mut self.ancestor_levels,
            ),
            (
                spec(
                    "ancestor_committee",
                    0,
                    "",
                    Assumed,
                    "secretary and committee members at each of those levels whose devices sync",
                ),
                &mut self.ancestor_committee,
            ),
            (
                spec(
                    "sessions_per_device_day",
                    0,
                    "",
                    Assumed,
                    "connections a member's device opens in a day: the signal comes and goes",
                ),
                &mut self.sessions_per_device_day,
            ),
            (
                spec(
                    "cold_sessions_per_device_day",
                    0,
                    "",
                    Assumed,
                    "of those, started by an app that was closed (full handshake); the others resume TLS",
                ),
                &mut self.cold_sessions_per_device_day,
            ),
            (
                spec(
                    "connected_hours_per_device_day",
                    1,
                    "h",
                    Assumed,
                    "hours a day a device holds a connection, sending keep-alives",
                ),
                &mut self.connected_hours_per_device_day,
            ),
            (
                spec(
                    "peak_connected_share",
                    2,
                    "",
                    Assumed,
                    "share of member devices connected in the busiest hour (a theme-day afternoon across the country)",
                ),
                &mut self.peak_connected_share,
            ),
            (
                spec(
                    "peak_rate_factor",
                    1,
                    "×",
                    Assumed,
                    "busiest hour over the year's mean rate: meetings at 14:30 (×4 over the day's mean hour) on the busiest day of the month (×3); applied to changes, pulls and connections",
                ),
                &mut self.peak_rate_factor,
            ),
            (
                spec(
                    "years_kept",
                    0,
                    "",
                    Assumed,
                    "years of records kept online: one committee term (换届, five years)",
                ),
                &mut self.years_kept,
            ),
            (
                spec(
                    "replication_factor",
                    0,
                    "×",
                    Assumed,
                    "copies the distributed SQL engine keeps (CockroachDB's default is 3)",
                ),
                &mut self.replication_factor,
            ),
            (
                spec(
                    "row_overhead_bytes",
                    0,
                    "B",
                    Assumed,
                    "key and MVCC metadata per stored row in the engine; not measured",
                ),
                &mut self.row_overhead_bytes,
            ),
            (
                spec(
                    "audit_row_bytes",
                    0,
                    "B",
                    Assumed,
                    "one `change.accepted` audit row: time, event, device, member, branch and document ids as text, change hash, actor",
                ),
                &mut self.audit_row_bytes,
            ),
            (
                spec(
                    "max_connections_per_node",
                    0,
                    "",
                    Assumed,
                    "planning cap per node; B6 measured 1,000 connections, this is 50 × that and not measured",
                ),
                &mut self.max_connections_per_node,
            ),
            (
                spec("node_cores", 0, "", Assumed, "cores of one node"),
                &mut self.node_cores,
            ),
            (
                spec(
                    "cpu_utilisation",
                    2,
                    "",
                    Assumed,
                    "share of a node's cores the busiest hour may use (headroom for a node failing)",
                ),
                &mut self.cpu_utilisation,
            ),
            (
                spec(
                    "activities_per_month",
                    0,
                    "",
                    Generator,
                    "workload generator default: committee meeting, theme day, group meeting, and a lecture, branch meeting or volunteer service (三会一课)",
                ),
                &mut self.activities_per_month,
            ),
            (
                spec(
                    "attendance",
                    2,
                    "",
                    Generator,
                    "workload generator default: chance an expected member signs in",
                ),
                &mut self.attendance,
            ),
            (
                spec(
                    "petitions_per_branch_year",
                    0,
                    "",
                    Generator,
                    "workload generator default rate (300 in two years): resident requests, each assigned, 3 to 6 progress notes, resolved, rated",
                ),
                &mut self.petitions_per_branch_year,
            ),
            (
                spec(
                    "keepalive_interval_s",
                    0,
                    "s",
                    Code,
                    "client-core `ClientConfig::default().keep_alive`",
                ),
                &mut self.keepalive_interval_s,
            ),
            (
                spec(
                    "idle_unload_s",
                    0,
                    "s",
                    Code,
                    "server `ServerConfig::new(..).idle_unload`: a loaded document idle this long is unloaded",
                ),
                &mut self.idle_unload_s,
            ),
            (
                spec(
                    "max_loaded_docs",
                    0,
                    "",
                    Code,
                    "server `ServerConfig::new(..).max_loaded_docs`: the document cache's cap",
                ),
                &mut self.max_loaded_docs,
            ),
            (
                spec(
                    "server_max_connections",
                    0,
                    "",
                    Code,
                    "server `ServerConfig::new(..).max_connections`: the default cap on a node's connections",
                ),
                &mut self.server_max_connections,
            ),
            (
                spec(
                    "poll_interval_s",
                    0,
                    "s",
                    Code,
                    "server `limits::POLL_INTERVAL`: how often a node reads other processes' writes, and the whole branch hierarchy, when no notice wakes it sooner",
                ),
                &mut self.poll_interval_s,
            ),
            (
                spec(
                    "broadcast_capacity",
                    0,
                    "",
                    Code,
                    "server `limits::BROADCAST_CAPACITY`: notices a node's change broadcast holds; a connection further behind catches up from the catalog",
                ),
                &mut self.broadcast_capacity,
            ),
            (
                spec(
                    "connection_memory_kib",
                    1,
                    "KiB",
                    Benchmarks,
                    "B6: server memory per idle device, 1,000 connected",
                ),
                &mut self.connection_memory_kib,
            ),
            (
                spec(
                    "cold_session_bytes",
                    0,
                    "B",
                    Benchmarks,
                    "B2: a reopened app's reconnect, full QUIC/TLS handshake and manifest, nothing changed",
                ),
                &mut self.cold_session_bytes,
            ),
            (
                spec(
                    "docs_per_branch_year",
                    0,
                    "",
                    Measured,
                    "documents in the generated year (profile, roster, member files, activities, petitions, dues ledger, points book, applicant files, library entries)",
                ),
                &mut self.docs_per_branch_year,
            ),
            (
                spec(
                    "changes_per_branch_year",
                    0,
                    "",
                    Measured,
                    "automerge changes in the generated year: one per workflow operation, as the app makes them",
                ),
                &mut self.changes_per_branch_year,
            ),
            (
                spec(
                    "change_bytes",
                    1,
                    "B",
                    Measured,
                    "mean encoded size of those changes (what a sync message carries)",
                ),
                &mut self.change_bytes,
            ),
            (
                spec(
                    "author_message_bytes",
                    1,
                    "B",
                    Measured,
                    "what the `member:<id>` message a device puts on each change adds to it (the generator writes none); 43 sign-ins with and without",
                ),
                &mut self.author_message_bytes,
            ),
            (
                spec(
                    "author_message_stored_bytes",
                    1,
                    "B",
                    Measured,
                    "what the same message adds per change to the saved document",
                ),
                &mut self.author_message_stored_bytes,
            ),
            (
                spec(
                    "saved_bytes_per_branch_year",
                    0,
                    "B",
                    Measured,
                    "the generated year's documents saved (`save()`, what the server keeps after compaction)",
                ),
                &mut self.saved_bytes_per_branch_year,
            ),
            (
                spec(
                    "push_frame_bytes",
                    1,
                    "B",
                    Measured,
                    "protocol frames, both ways, for a device pushing one change: every change of the year replayed through automerge's sync as docs/sync-design.md runs it (SyncDoc, Ack), saved sync states reloaded each time",
                ),
                &mut self.push_frame_bytes,
            ),
            (
                spec(
                    "pull_frame_bytes",
                    1,
                    "B",
                    Measured,
                    "protocol frames, both ways, for another device pulling that change (DocChanged, SyncDoc)",
                ),
                &mut self.pull_frame_bytes,
            ),
            (
                spec(
                    "sync_state_bytes",
                    1,
                    "B",
                    Measured,
                    "mean saved sync state the server stores per (device, document) after those syncs",
                ),
                &mut self.sync_state_bytes,
            ),
            (
                spec(
                    "member_readers_per_change",
                    2,
                    "",
                    Measured,
                    "roster members who may read the document of a change, mean over the year's changes (the server's own `access::decide`)",
                ),
                &mut self.member_readers_per_change,
            ),
            (
                spec(
                    "resident_readers_per_change",
                    3,
                    "",
                    Measured,
                    "resident phones that may read it (a petition's submitter)",
                ),
                &mut self.resident_readers_per_change,
            ),
            (
                spec(
                    "oversight_share_changes",
                    3,
                    "",
                    Measured,
                    "share of changes an ancestor's committee may read (profile, roster, activities, petitions, dues ledger, points book)",
                ),
                &mut self.oversight_share_changes,
            ),
            (
                spec(
                    "member_readers_per_doc",
                    2,
                    "",
                    Measured,
                    "roster members who may read a document, mean over the year's documents",
                ),
                &mut self.member_readers_per_doc,
            ),
            (
                spec(
                    "resident_readers_per_doc",
                    3,
                    "",
                    Measured,
                    "resident phones that may read a document",
                ),
                &mut self.resident_readers_per_doc,
            ),
            (
                spec(
                    "oversight_share_docs",
                    3,
                    "",
                    Measured,
                    "share of documents an ancestor's committee may read",
                ),
                &mut self.oversight_share_docs,
            ),
            (
                spec(
                    "catalog_entry_bytes",
                    0,
                    "B",
                    Measured,
                    "heap per document of a catalog laid out as the server's (id → attributes, heads and two positions; feed position → id): 200,000 entries with the generated year's attributes, counted by the allocator",
                ),
                &mut self.catalog_entry_bytes,
            ),
            (
                spec(
                    "loaded_doc_bytes",
                    0,
                    "B",
                    Measured,
                    "heap per loaded automerge document, the generated year's documents loaded, counted by the allocator",
                ),
                &mut self.loaded_doc_bytes,
            ),
            (
                spec(
                    "push_udp_factor",
                    3,
                    "×",
                    Live,
                    "UDP payload over protocol frames for live one-change pushes (QUIC and TLS, ACKs)",
                ),
                &mut self.push_udp_factor,
            ),
            (
                spec(
                    "pull_udp_factor",
                    3,
                    "×",
                    Live,
                    "the same for live pulls by connected devices",
                ),
                &mut self.pull_udp_factor,
            ),
            (
                spec(
                    "reconnect_bytes",
                    0,
                    "B",
                    Live,
                    "UDP bytes of a running app's reconnect after the network came back, nothing changed (handshake, Hello, manifest)",
                ),
                &mut self.reconnect_bytes,
            ),
            (
                spec(
                    "keepalive_bytes",
                    1,
                    "B",
                    Live,
                    "UDP bytes, both ways, per keep-alive of an idle connection",
                ),
                &mut self.keepalive_bytes,
            ),
            (
                spec(
                    "cpu_ms_push",
                    2,
                    "ms",
                    Live,
                    "server CPU per pushed change (server in its own process, SQLite with fsync; B5 saw 1.3 ms with 200 devices)",
                ),
                &mut self.cpu_ms_push,
            ),
            (
                spec(
                    "cpu_ms_pull",
                    2,
                    "ms",
                    Live,
                    "server CPU per connected device pulling a change (its sync and sync-state write)",
                ),
                &mut self.cpu_ms_pull,
            ),
            (
                spec(
                    "cpu_ms_session",
                    2,
                    "ms",
                    Live,
                    "server CPU per reconnect of a running app (handshake, Hello, manifest)",
                ),
                &mut self.cpu_ms_session,
            ),
        ]
    }

    /// Every input with its spec and value.
    pub fn rows(&self) -> Vec<(Spec, f64)> {
        let mut copy = self.clone();
        copy.slots().into_iter().map(|(s, v)| (s, *v)).collect()
    }

    /// Sets the input named `key`; false if there is none.
    pub fn set(&mut self, key: &str, value: f64) -> bool {
        match self.slots().into_iter().find(|(s, _)| s.key == key) {
            Some((_, slot)) => {
                *slot = value;
                true
            }
            None => false,
        }
    }

    /// The inputs as printed: each rounded to its decimals.
    pub fn rounded(&self) -> Inputs {
        let mut copy = self.clone();
        for (spec, slot) in copy.slots() {
            *slot = round_to(*slot, spec.decimals);
        }
        copy
    }

    /// The inputs table, in Markdown.
    pub fn table(&self) -> String {
        let mut out = String::from("| input | value | source | what it is |\n|---|---:|---|---|\n");
        for (spec, value) in self.rows() {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                spec.key,
                input_value(value, &spec),
                spec.source.word(),
                spec.note
            );
        }
        out
    }
}

/// `value` rounded to `decimals` places, as printing and parsing it would.
pub fn round_to(value: f64, decimals: usize) -> f64 {
    format!("{value:.decimals$}").parse().unwrap_or(value)
}

/// An input's value as the table prints it: thousands separated, with its unit.
pub fn input_value(value: f64, spec: &Spec) -> String {
    let number = group_thousands(&format!("{value:.*}", spec.decimals));
    if spec.unit.is_empty() {
        number
    } else {
        format!("{number} {}", spec.unit)
    }
}

#[cfg(test)]
/// Parses an input's value as [`input_value`] prints it.
pub fn parse_input_value(text: &str, spec: &Spec) -> Option<f64> {
    let number = text.trim().strip_suffix(spec.unit).unwrap_or(text).trim();
    number.replace(',', "").parse().ok()
}

fn group_thousands(number: &str) -> String {
    let (sign, rest) = match number.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", number),
    };
    let (int, frac) = match rest.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (rest, None),
    };
    let mut grouped = String::new();
    for (i, digit) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match frac {
        Some(frac) => format!("{sign}{grouped}.{frac}"),
        None => format!("{sign}{grouped}"),
    }
}

/// `x` to three significant figures, thousands separated; millions and
/// billions in words.
pub fn count(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".to_owned();
    }
    let a = x.abs();
    if a >= 1e9 {
        format!("{} billion", sig3(x / 1e9))
    } else if a >= 1e6 {
        format!("{} million", sig3(x / 1e6))
    } else {
        sig3(x)
    }
}

/// `x` to three significant figures, thousands separated.
fn sig3(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    // Round first, so a carry into the next power of ten (999.7 → 1,000)
    // decides the number of decimals.
    let rounded: f64 = format!("{x:.2e}").parse().unwrap_or(x);
    let magnitude = rounded.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).max(0) as usize;
    group_thousands(&format!("{rounded:.decimals$}"))
}

/// A whole number, thousands separated.
fn whole(x: f64) -> String {
    group_thousands(&format!("{x:.0}"))
}

/// A rate per second.
fn per_s(x: f64) -> String {
    format!("{} /s", count(x))
}

/// Bytes in decimal units, three significant figures.
fn bytes(x: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = x;
    let mut unit = 0;
    while value.abs() >= 999.5 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{} {}", sig3(value), units[unit])
}

/// Memory in binary units, three significant figures.
fn memory(x: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = x;
    let mut unit = 0;
    while value.abs() >= 1023.5 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{} {}", sig3(value), units[unit])
}

/// One row of the load table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadRow {
    /// What the figure is.
    pub figure: String,
    /// Its value, formatted.
    pub value: String,
    /// How it is computed, in words.
    pub how: String,
}

/// The load table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// Sections, each a heading and its rows.
    pub sections: Vec<(String, Vec<LoadRow>)>,
    /// The key figures in sentences.
    pub summary: Vec<String>,
}

impl Load {
    /// The key figures as a Markdown list.
    pub fn summary_list(&self) -> String {
        self.summary.iter().map(|s| format!("- {s}\n")).collect()
    }

    /// The table in Markdown: one table, sections as bold rows.
    pub fn table(&self) -> String {
        let mut out = String::from("| figure | value | how |\n|---|---:|---|\n");
        for (heading, rows) in &self.sections {
            let _ = writeln!(out, "| **{heading}** | | |");
            for row in rows {
                let _ = writeln!(out, "| {} | {} | {} |", row.figure, row.value, row.how);
            }
        }
        out
    }
}

const DAY_S: f64 = 86_400.0;

fn row(rows: &mut Vec<LoadRow>, figure: &str, value: String, how: &str) {
    rows.push(LoadRow {
        figure: figure.to_owned(),
        value,
        how: how.to_owned(),
    });
}

/// Computes the load from `inputs` (rounded to their printed precision first).
pub fn load(inputs: &Inputs) -> Load {
    let i = inputs.rounded();
    let mut sections = Vec::new();
    let mut rows = Vec::new();

    // One branch.
    let changes_branch_day = i.changes_per_branch_year * i.unmodelled_factor / 365.0;
    let ancestor_devices = i.ancestor_levels * i.ancestor_committee * i.devices_per_member;
    let readers_per_change = i.member_readers_per_change * i.devices_per_member
        + i.resident_readers_per_change
        + i.oversight_share_changes * ancestor_devices
        - 1.0;
    let readers_per_doc = i.member_readers_per_doc * i.devices_per_member
        + i.resident_readers_per_doc
        + i.oversight_share_docs * ancestor_devices;
    row(
        &mut rows,
        "documents a branch adds in a year",
        whole(i.docs_per_branch_year),
        "measured in the generated year",
    );
    row(
        &mut rows,
        "changes a branch makes in a day",
        count(changes_branch_day),
        "changes_per_branch_year × unmodelled_factor / 365",
    );
    row(
        &mut rows,
        "devices that pull each change",
        count(readers_per_change),
        "member readers × devices_per_member + resident readers + oversight share × ancestor devices − the writer; every reader connected (upper bound)",
    );
    sections.push(("One branch".to_owned(), std::mem::take(&mut rows)));

    // The country.
    let member_devices = i.branches * i.members_per_branch * i.devices_per_member;
    let changes_day = i.branches * changes_branch_day;
    let changes_s = changes_day / DAY_S;
    let peak_changes_s = changes_s * i.peak_rate_factor;
    let pulls_day = changes_day * readers_per_change;
    let peak_pulls_s = pulls_day / DAY_S * i.peak_rate_factor;
    let sessions_day = member_devices * i.sessions_per_device_day;
    let peak_sessions_s = sessions_day / DAY_S * i.peak_rate_factor;
    row(
        &mut rows,
        "member devices",
        count(member_devices),
        "branches × members_per_branch × devices_per_member",
    );
    row(
        &mut rows,
        "resident phones registered in a year, at most",
        count(i.branches * i.petitions_per_branch_year),
        "branches × petitions_per_branch_year (a new phone for every request)",
    );
    row(
        &mut rows,
        "changes a day",
        count(changes_day),
        "branches × changes a branch makes in a day",
    );
    row(
        &mut rows,
        "changes, mean",
        per_s(changes_s),
        "changes a day / 86,400 s",
    );
    row(
        &mut rows,
        "changes, busiest hour",
        per_s(peak_changes_s),
        "mean × peak_rate_factor",
    );
    row(
        &mut rows,
        "pulls (a device syncing a change it did not make), busiest hour",
        per_s(peak_pulls_s),
        "changes × devices that pull each change",
    );
    row(
        &mut rows,
        "change-feed notices, busiest hour",
        per_s(peak_changes_s),
        "one per stored change",
    );
    row(
        &mut rows,
        "`DocChanged` messages sent, busiest hour",
        per_s(peak_pulls_s),
        "one per pull",
    );
    row(
        &mut rows,
        "connections opened, busiest hour",
        per_s(peak_sessions_s),
        "member devices × sessions_per_device_day / 86,400 s × peak_rate_factor",
    );
    sections.push(("The country".to_owned(), std::mem::take(&mut rows)));

    // Bytes.
    let push_bytes =
        changes_day * (i.push_frame_bytes + i.author_message_bytes) * i.push_udp_factor;
    let pull_bytes = pulls_day * (i.pull_frame_bytes + i.author_message_bytes) * i.pull_udp_factor;
    let warm = (i.sessions_per_device_day - i.cold_sessions_per_device_day).max(0.0);
    let session_bytes = member_devices
        * (i.cold_sessions_per_device_day * i.cold_session_bytes + warm * i.reconnect_bytes);
    let keepalive_bytes = member_devices * i.connected_hours_per_device_day * 3600.0
        / i.keepalive_interval_s
        * i.keepalive_bytes;
    let total_bytes = push_bytes + pull_bytes + session_bytes + keepalive_bytes;
    row(
        &mut rows,
        "changes pushed",
        bytes(push_bytes),
        "changes × (push_frame_bytes + author_message_bytes) × push_udp_factor",
    );
    row(
        &mut rows,
        "changes pulled",
        bytes(pull_bytes),
        "pulls × (pull_frame_bytes + author_message_bytes) × pull_udp_factor",
    );
    row(
        &mut rows,
        "connection set-ups",
        bytes(session_bytes),
        "member devices × (cold sessions × cold_session_bytes + warm sessions × reconnect_bytes)",
    );
    row(
        &mut rows,
        "keep-alives",
        bytes(keepalive_bytes),
        "member devices × connected hours × 3,600 s / keepalive_interval_s × keepalive_bytes",
    );
    row(&mut rows, "total", bytes(total_bytes), "the four above");
    row(
        &mut rows,
        "per member device, a month",
        bytes(total_bytes / member_devices * 30.0),
        "total / member devices × 30",
    );
    sections.push((
        "Bytes on the wire (UDP payload), a day".to_owned(),
        std::mem::take(&mut rows),
    ));

    // Nodes.
    let peak_connected = member_devices * i.peak_connected_share;
    let nodes_for_connections = (peak_connected / i.max_connections_per_node).ceil();
    let peak_cores = (peak_changes_s * i.cpu_ms_push
        + peak_pulls_s * i.cpu_ms_pull
        + peak_sessions_s * i.cpu_ms_session)
        / 1000.0;
    let nodes_for_cpu = (peak_cores / (i.node_cores * i.cpu_utilisation)).ceil();
    let nodes = nodes_for_connections.max(nodes_for_cpu).max(1.0);
    let conns_per_node = peak_connected / nodes;
    let heard_partitioned = peak_changes_s / nodes;
    row(
        &mut rows,
        "devices connected, busiest hour",
        count(peak_connected),
        "member devices × peak_connected_share",
    );
    row(
        &mut rows,
        "nodes for the connections",
        whole(nodes_for_connections),
        "devices connected / max_connections_per_node",
    );
    row(
        &mut rows,
        "nodes at the default connection cap",
        whole((peak_connected / i.server_max_connections).ceil()),
        "devices connected / server_max_connections",
    );
    row(
        &mut rows,
        "CPU cores busy, busiest hour",
        count(peak_cores),
        "changes × cpu_ms_push + pulls × cpu_ms_pull + connections opened × cpu_ms_session",
    );
    row(
        &mut rows,
        "of which storing changes",
        count(peak_changes_s * i.cpu_ms_push / 1000.0),
        "changes × cpu_ms_push",
    );
    row(
        &mut rows,
        "of which pulls",
        count(peak_pulls_s * i.cpu_ms_pull / 1000.0),
        "pulls × cpu_ms_pull",
    );
    row(
        &mut rows,
        "of which connection set-ups",
        count(peak_sessions_s * i.cpu_ms_session / 1000.0),
        "connections opened × cpu_ms_session",
    );
    row(
        &mut rows,
        "nodes for the CPU",
        whole(nodes_for_cpu),
        "cores busy / (node_cores × cpu_utilisation)",
    );
    row(&mut rows, "nodes", whole(nodes), "the larger of the two");
    row(
        &mut rows,
        "connections per node",
        count(conns_per_node),
        "devices connected / nodes",
    );
    row(
        &mut rows,
        "changes stored per node",
        per_s(peak_changes_s / nodes),
        "busiest hour, spread evenly",
    );
    row(
        &mut rows,
        "pulls served per node",
        per_s(peak_pulls_s / nodes),
        "busiest hour",
    );
    row(
        &mut rows,
        "notices a node hears, feed partitioned by subtree",
        per_s(heard_partitioned),
        "changes / nodes: a node follows only the subtrees it serves",
    );
    row(
        &mut rows,
        "access checks per node, one broadcast to every connection (as built)",
        per_s(heard_partitioned * conns_per_node),
        "notices heard × connections per node",
    );
    row(
        &mut rows,
        "access checks per node, one channel per branch (planned)",
        per_s(peak_pulls_s / nodes),
        "only the branch's own connections hear a notice: one check per pull",
    );
    row(
        &mut rows,
        "notices a node hears, one national feed",
        per_s(peak_changes_s),
        "every change in the country",
    );
    row(
        &mut rows,
        "access checks per node, one national feed, as built",
        per_s(peak_changes_s * conns_per_node),
        "national notices × connections per node",
    );
    row(
        &mut rows,
        "time one national feed takes to fill a node's broadcast",
        format!("{} s", count(i.broadcast_capacity / peak_changes_s)),
        "broadcast_capacity / national notices: a connection that falls this far behind catches up from the catalog",
    );
    sections.push(("Nodes, busiest hour".to_owned(), std::mem::take(&mut rows)));

    // Memory.
    let total_docs = i.branches * i.docs_per_branch_year * i.years_kept;
    let catalog_all = total_docs * i.catalog_entry_bytes;
    let docs_in_window = (peak_changes_s / nodes * i.idle_unload_s).ceil();
    row(
        &mut rows,
        "connections",
        memory(conns_per_node * i.connection_memory_kib * 1024.0),
        "connections per node × connection_memory_kib",
    );
    row(
        &mut rows,
        "documents in the database after the years kept",
        count(total_docs),
        "branches × docs_per_branch_year × years_kept",
    );
    row(
        &mut rows,
        "catalog of every document, as built",
        memory(catalog_all),
        "documents × catalog_entry_bytes: each node loads all of it at start",
    );
    row(
        &mut rows,
        "catalog of the node's own subtrees (planned)",
        memory(catalog_all / nodes),
        "catalog / nodes",
    );
    row(
        &mut rows,
        "documents changed on a node within the idle-unload time",
        whole(docs_in_window),
        "changes per node × idle_unload_s (at most; each change touches one document)",
    );
    row(
        &mut rows,
        "document cache to hold them",
        memory(docs_in_window * i.loaded_doc_bytes),
        "× loaded_doc_bytes; the default cap is max_loaded_docs",
    );
    sections.push(("Memory on one node".to_owned(), std::mem::take(&mut rows)));

    // Database.
    let txns = peak_changes_s * 2.0 + peak_pulls_s + peak_sessions_s;
    let rows_written = peak_changes_s * 4.0 + peak_pulls_s + peak_sessions_s;
    row(
        &mut rows,
        "transactions, as built",
        per_s(txns),
        "2 per change (its chunk, the writer's sync state) + 1 per pull (its sync state) + 1 per connection (last seen)",
    );
    row(
        &mut rows,
        "rows written, as built",
        per_s(rows_written),
        "4 per change (chunk, document row, audit row, sync state) + 1 per pull + 1 per connection",
    );
    row(
        &mut rows,
        "of which sync states of pulls",
        per_s(peak_pulls_s),
        "one per pull",
    );
    row(
        &mut rows,
        "transactions with pulls' sync states kept in node memory (planned)",
        per_s(peak_changes_s * 2.0),
        "2 per change; last-seen times batched",
    );
    row(
        &mut rows,
        "branch rows each node reads for the hierarchy, as built",
        per_s(i.branches / i.poll_interval_s),
        "branches / poll_interval_s: the whole hierarchy at every poll, more often when notices wake it",
    );
    row(
        &mut rows,
        "the same, all nodes",
        per_s(i.branches / i.poll_interval_s * nodes),
        "× nodes",
    );
    sections.push((
        "Database, busiest hour".to_owned(),
        std::mem::take(&mut rows),
    ));

    // Storage.
    let docs_bytes = i.branches
        * (i.saved_bytes_per_branch_year
            + i.changes_per_branch_year * i.author_message_stored_bytes)
        * i.unmodelled_factor;
    let audit_rows = i.branches * i.changes_per_branch_year * i.unmodelled_factor;
    let audit_bytes = audit_rows * i.audit_row_bytes;
    let state_rows = i.branches * i.docs_per_branch_year * readers_per_doc;
    let state_bytes = state_rows * i.sync_state_bytes;
    let doc_rows = i.branches * i.docs_per_branch_year;
    let overhead = (doc_rows + audit_rows + state_rows) * i.row_overhead_bytes;
    let one_copy = docs_bytes + audit_bytes + state_bytes + overhead;
    row(
        &mut rows,
        "documents",
        bytes(docs_bytes),
        "branches × (saved_bytes_per_branch_year + changes × author_message_stored_bytes) × unmodelled_factor",
    );
    row(
        &mut rows,
        "audit log",
        bytes(audit_bytes),
        "one row per change × audit_row_bytes",
    );
    row(
        &mut rows,
        "sync states",
        bytes(state_bytes),
        "one per (device, document) it reads × sync_state_bytes",
    );
    row(
        &mut rows,
        "row overhead",
        bytes(overhead),
        "(document, audit and sync-state rows) × row_overhead_bytes",
    );
    row(&mut rows, "one copy", bytes(one_copy), "the four above");
    row(
        &mut rows,
        "replicated",
        bytes(one_copy * i.replication_factor),
        "× replication_factor",
    );
    row(
        &mut rows,
        "replicated, after the years kept",
        bytes(one_copy * i.replication_factor * i.years_kept),
        "× years_kept",
    );
    sections.push(("Storage growth, a year".to_owned(), rows));

    let summary = vec![
        format!(
            "{} branches of {} members: {} member devices, {} changes a day ({} on average, \
             {} in the busiest hour), each pulled by up to {} other devices.",
            whole(i.branches),
            whole(i.members_per_branch),
            count(member_devices),
            count(changes_day),
            per_s(changes_s),
            per_s(peak_changes_s),
            count(readers_per_change),
        ),
        format!(
            "Busiest hour: {} devices connected; at {} connections a node that takes {} nodes, \
             while the CPU needs {}.",
            count(peak_connected),
            whole(i.max_connections_per_node),
            whole(nodes_for_connections),
            whole(nodes_for_cpu),
        ),
        format!(
            "Database, busiest hour: {} transactions as built, {} of them pulls' sync states; \
             {} with those kept in node memory.",
            per_s(txns),
            per_s(peak_pulls_s),
            per_s(peak_changes_s * 2.0),
        ),
        format!(
            "On the wire: {} a day, {} per member device a month; keep-alives and connection \
             set-ups are {}% of it, the changes themselves {}%.",
            bytes(total_bytes),
            bytes(total_bytes / member_devices * 30.0),
            count(100.0 * (keepalive_bytes + session_bytes) / total_bytes),
            count(100.0 * (push_bytes + pull_bytes) / total_bytes),
        ),
        format!(
            "Memory per node: {} for its connections; the catalog of every document would be {} \
             (each node loads all of it today), {} for the node's own subtrees.",
            memory(conns_per_node * i.connection_memory_kib * 1024.0),
            memory(catalog_all),
            memory(catalog_all / nodes),
        ),
        format!(
            "Storage: {} a year, {} replicated, {} after {} years.",
            bytes(one_copy),
            bytes(one_copy * i.replication_factor),
            bytes(one_copy * i.replication_factor * i.years_kept),
            whole(i.years_kept),
        ),
    ];
    Load { sections, summary }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_to_three_figures() {
        assert_eq!(count(0.1234), "0.123");
        assert_eq!(count(12.345), "12.3");
        assert_eq!(count(570.6), "571");
        assert_eq!(count(6847.0), "6,850");
        assert_eq!(count(999.7), "1,000");
        assert_eq!(count(99.96), "100");
        assert_eq!(whole(48.0), "48");
        assert_eq!(count(38_700_123.0), "38.7 million");
        assert_eq!(count(3.754e9), "3.75 billion");
        assert_eq!(bytes(1_234_567.0), "1.23 MB");
        assert_eq!(bytes(999.0), "999 B");
        assert_eq!(memory(1536.0), "1.50 KiB");
    }

    #[test]
    fn inputs_print_and_parse_back() {
        let inputs = Inputs::stated();
        for (spec, value) in inputs.rows() {
            if value.is_nan() {
                continue;
            }
            let text = input_value(value, &spec);
            assert_eq!(parse_input_value(&text, &spec), Some(value), "{}", spec.key);
        }
        assert_eq!(group_thousands("3000000"), "3,000,000");
        assert_eq!(group_thousands("4559"), "4,559");
        assert_eq!(group_thousands("141.5"), "141.5");
    }
}
