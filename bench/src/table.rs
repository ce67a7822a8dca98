//! The results table: one row per figure, both systems, the ratio
//! Branchline / samod and the target for it.

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
        assert_eq!(row.target(Target::ValueAtMost(20.0)).met(), Some(false));
    }
}
