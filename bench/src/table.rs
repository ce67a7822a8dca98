//! The results table: one row per figure, both systems, the ratio
//! Branchline / samod and the target for it; and the table of
//! deployments (one row per backend and node count) of N1.

use std::fmt::Write as _;

/// How a figure is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Bytes.
    Bytes,
    /// A plain count.
    Count,
    /// Per second.
    PerSec,
    /// A dimensionless ratio.
    Ratio,
}

/// What a target asks of a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Branchline / samod must be at most this.
    RatioAtMost(f64),
    /// Branchline / samod must be at least this.
    RatioAtLeast(f64),
    /// Branchline's own value must be at most this.
    ValueAtMost(f64),
    /// Branchline's own value must be at least this.
    ValueAtLeast(f64),
}

/// One figure for both systems.
#[derive(Debug, Clone)]
pub struct Row {
    /// The workload, e.g. "B1".
    pub workload: &'static str,
    /// What is measured.
    pub metric: String,
    /// Its unit.
    pub unit: Unit,
    /// Branchline's value.
    pub branchline: f64,
    /// samod's value, where samod has one.
    pub samod: Option<f64>,
    /// The target, if it sets one for this figure.
    pub target: Option<Target>,
}

impl Row {
    /// A row with no target.
    pub fn new(
        workload: &'static str,
        metric: impl Into<String>,
        unit: Unit,
        branchline: f64,
        samod: Option<f64>,
    ) -> Self {
        Self {
            workload,
            metric: metric.into(),
            unit,
            branchline,
            samod,
            target: None,
        }
    }

    /// The same row with a target.
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// Branchline / samod.
    pub fn ratio(&self) -> Option<f64> {
        self.samod.filter(|s| *s > 0.0).map(|s| self.branchline / s)
    }

    /// Whether the target is met, if there is one.
    pub fn met(&self) -> Option<bool> {
        match self.target? {
            Target::RatioAtMost(max) => self.ratio().map(|r| r <= max),
            Target::RatioAtLeast(min) => self.ratio().map(|r| r >= min),
            Target::ValueAtMost(max) => Some(self.branchline <= max),
            Target::ValueAtLeast(min) => Some(self.branchline >= min),
        }
    }
}

fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Ms => format!("{v:.1} ms"),
        Unit::Bytes if v >= 1024.0 * 1024.0 => format!("{:.2} MiB", v / 1024.0 / 1024.0),
        Unit::Bytes if v >= 10.0 * 1024.0 => format!("{:.1} KiB", v / 1024.0),
        Unit::Bytes => format!("{v:.0} B"),
        Unit::Count => format!("{v:.0}"),
        Unit::PerSec => format!("{v:.0}/s"),
        Unit::Ratio => format!("{v:.3}"),
    }
}

fn target_text(target: Option<Target>, unit: Unit) -> String {
    match target {
        None => String::new(),
        Some(Target::RatioAtMost(r)) => format!("ratio ≤ {r}"),
        Some(Target::RatioAtLeast(r)) => format!("ratio ≥ {r}"),
        Some(Target::ValueAtMost(v)) => format!("≤ {}", value(unit, v)),
        Some(Target::ValueAtLeast(v)) => format!("≥ {}", value(unit, v)),
    }
}

/// The table as Markdown (it reads as plain text too).
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| | figure | Branchline | samod | Branchline / samod | target | met |\n");
    out.push_str("|---|---|---:|---:|---:|---|---|\n");
    for row in rows {
        let samod = row.samod.map_or("n/a".to_owned(), |s| value(row.unit, s));
        let ratio = row.ratio().map_or("".to_owned(), |r| format!("{r:.3}"));
        let met = match row.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.workload,
            row.metric,
            value(row.unit, row.branchline),
            samod,
            ratio,
            target_text(row.target, row.unit),
            met
        );
    }
    out
}

/// One deployment's figures in N1: a backend with some number of nodes.
#[derive(Debug, Clone)]
pub struct DeploymentRow {
    /// "SQLite" or "PostgreSQL".
    pub backend: &'static str,
    /// Server nodes (processes) sharing the database.
    pub nodes: usize,
    /// Devices pushing at once.
    pub devices: usize,
    /// Changes stored and acknowledged.
    pub changes: usize,
    /// Changes stored and acknowledged per second of the push window.
    pub per_sec: f64,
    /// Ack latency p50, ms.
    pub ack_p50: f64,
    /// Ack latency p99, ms.
    pub ack_p99: f64,
    /// CPU of all nodes together per change, ms.
    pub node_cpu_per_change: f64,
    /// Edits of one activity tried from node 1 to the last node.
    pub edits_tried: usize,
    /// Their propagation p50 and p99, ms, if every one arrived.
    pub edits: Option<(f64, f64)>,
    /// The edit (from 0) that never arrived, if one did not.
    pub missed: Option<usize>,
    /// New activities timed from node 1 to the last node.
    pub created: usize,
    /// Their propagation p50, ms.
    pub created_p50: f64,
    /// Their p99, ms.
    pub created_p99: f64,
}

/// N1's table as Markdown: one row per deployment.
pub fn deployments_markdown(rows: &[DeploymentRow]) -> String {
    let mut out = String::new();
    out.push_str(
        "| backend | nodes | ingest: changes/s | ack p50 | ack p99 | node CPU per change \
         | edit, node 1 → node k: p50 | p99 | new activity, node 1 → node k: p50 | p99 |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in rows {
        let (edit_p50, edit_p99) = match (row.edits, row.missed) {
            (Some((p50, p99)), _) => (
                value(Unit::Ms, p50),
                format!("{} (of {})", value(Unit::Ms, p99), row.edits_tried),
            ),
            (None, Some(i)) => (
                format!("**edit {} of {} never arrived**", i + 1, row.edits_tried),
                String::new(),
            ),
            (None, None) => (String::new(), String::new()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} ({} changes, {} devices) | {} | {} | {:.2} ms | {} | {} | {} | {} (of {}) |",
            row.backend,
            row.nodes,
            value(Unit::PerSec, row.per_sec),
            row.changes,
            row.devices,
            value(Unit::Ms, row.ack_p50),
            value(Unit::Ms, row.ack_p99),
            row.node_cpu_per_change,
            edit_p50,
            edit_p99,
            value(Unit::Ms, row.created_p50),
            value(Unit::Ms, row.created_p99),
            row.created,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_compare_the_ratio_or_the_value() {
        let row = Row::new("B1", "time", Unit::Ms, 30.0, Some(100.0));
        assert_eq!(
            row.clone().target(Target::RatioAtMost(0.3)).met(),
            Some(true)
        );
        assert_eq!(
            row.clone().target(Target::RatioAtLeast(3.0)).met(),
            Some(false)
        );
        assert_eq!(
            row.clone().target(Target::ValueAtMost(20.0)).met(),
            Some(false)
        );
        assert_eq!(row.target(Target::ValueAtLeast(20.0)).met(), Some(true));
    }
}
