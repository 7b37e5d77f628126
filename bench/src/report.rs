//! The results: rows of figures with their baselines, printed as a markdown table and written to
//! `bench/results/<date>[-<bench>].md` and `.json` with the same numbers.

use crate::stats::Summary;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What a figure counts, and how its numbers are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Seconds.
    Secs,
    /// MiB (2^20 bytes).
    Mib,
    /// Percent of one core.
    CpuPercent,
    /// Events per second (placements, lines).
    PerSec,
    /// Bytes per second.
    BytesPerSec,
}

impl Unit {
    /// `412 ms`, `1.23 s`, `9.8 MiB`, `3.1 %`, `3,750 /s`.
    pub fn show(self, value: f64) -> String {
        match self {
            Unit::Ms => format!("{} ms", sig(value)),
            Unit::Secs => format!("{} s", sig(value)),
            Unit::Mib => format!("{} MiB", sig(value)),
            Unit::CpuPercent => format!("{} %", sig(value)),
            Unit::PerSec => format!("{} /s", sig(value)),
            Unit::BytesPerSec => {
                if value >= 1024.0 * 1024.0 {
                    format!("{} MiB/s", sig(value / (1024.0 * 1024.0)))
                } else if value >= 1024.0 {
                    format!("{} KiB/s", sig(value / 1024.0))
                } else {
                    format!("{} B/s", sig(value))
                }
            }
        }
    }

    /// Just the number, in the same scale as [`Unit::show`] (for min/max ranges).
    fn bare(self, value: f64) -> String {
        let shown = self.show(value);
        shown
            .split_once(' ')
            .map_or(shown.clone(), |(n, _)| n.to_owned())
    }
}

/// Three significant digits, thousands separated, no exponent: `0.0123`, `1.23`, `412`, `12,345`.
pub fn sig(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    let abs = value.abs();
    let decimals = if abs >= 100.0 || abs == 0.0 {
        0
    } else if abs >= 10.0 {
        1
    } else if abs >= 1.0 {
        2
    } else {
        // 0.0123 → 4 decimals; 0.09999 rounds to 0.100, not 0.1000.
        let decimals = |x: f64| (2 - x.log10().floor() as i32).clamp(2, 9);
        let d = decimals(abs);
        let rounded = (abs * 10f64.powi(d)).round() / 10f64.powi(d);
        decimals(rounded) as usize
    };
    let text = format!("{value:.decimals$}");
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), ""), |(i, f)| (i, f));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

/// Whether a smaller or a larger figure is the better one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Lower,
    Higher,
}

/// A measured figure, or why there is none.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Measured {
    Value(Summary),
    Unavailable { reason: String },
}

/// What a figure is compared with.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Baseline {
    /// Measured in the same run, the same way.
    Measured { name: String, summary: Summary },
    /// Measured in the same run, but not available (swarm refused, …).
    Unavailable { name: String, reason: String },
    /// A figure quoted from elsewhere (other hardware): context, not a measurement.
    Reference { name: String, value: f64 },
    /// Nothing to compare with.
    None,
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The benchmark (subcommand) that measured it.
    pub bench: String,
    pub figure: String,
    pub unit: Unit,
    pub better: Better,
    pub berth: Measured,
    pub baseline: Baseline,
    /// Berth / baseline (medians), when both are numbers.
    pub ratio: Option<f64>,
    /// True when the ratio is against a quoted reference, not a measurement of this run.
    pub ratio_is_reference: bool,
    pub note: String,
}

impl Row {
    pub fn new(bench: &str, figure: impl Into<String>, unit: Unit, berth: Measured) -> Self {
        Self {
            bench: bench.to_owned(),
            figure: figure.into(),
            unit,
            better: Better::Lower,
            berth,
            baseline: Baseline::None,
            ratio: None,
            ratio_is_reference: false,
            note: String::new(),
        }
    }

    /// A figure from samples (`Unavailable` when there are none).
    pub fn samples(bench: &str, figure: impl Into<String>, unit: Unit, samples: &[f64]) -> Self {
        Self::new(bench, figure, unit, measured(samples))
    }

    pub fn higher_is_better(mut self) -> Self {
        self.better = Better::Higher;
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// Compares with a baseline measured in this run.
    pub fn against(mut self, name: impl Into<String>, samples: &[f64]) -> Self {
        let name = name.into();
        self.baseline = match Summary::of(samples) {
            Some(summary) => Baseline::Measured { name, summary },
            None => Baseline::Unavailable {
                name,
                reason: "no sample".into(),
            },
        };
        self.update_ratio();
        self
    }

    /// Compares with a baseline that could not be measured.
    pub fn against_unavailable(
        mut self,
        name: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        self.baseline = Baseline::Unavailable {
            name: name.into(),
            reason: reason.into(),
        };
        self.update_ratio();
        self
    }

    /// Compares with a quoted figure (other hardware).
    pub fn against_reference(mut self, name: impl Into<String>, value: f64) -> Self {
        self.baseline = Baseline::Reference {
            name: name.into(),
            value,
        };
        self.update_ratio();
        self
    }

    fn update_ratio(&mut self) {
        let Measured::Value(berth) = &self.berth else {
            self.ratio = None;
            return;
        };
        let (base, reference) = match &self.baseline {
            Baseline::Measured { summary, .. } => (summary.median, false),
            Baseline::Reference { value, .. } => (*value, true),
            _ => {
                self.ratio = None;
                return;
            }
        };
        self.ratio = (base != 0.0 && base.is_finite()).then(|| berth.median / base);
        self.ratio_is_reference = reference;
    }

    fn berth_cell(&self) -> String {
        match &self.berth {
            Measured::Value(s) => self.unit.show(s.median),
            Measured::Unavailable { reason } => format!("n/a ({reason})"),
        }
    }

    fn baseline_cell(&self) -> String {
        match &self.baseline {
            Baseline::Measured { name, summary } => {
                format!("{name}: {}", self.unit.show(summary.median))
            }
            Baseline::Unavailable { name, reason } => format!("{name}: n/a ({reason})"),
            Baseline::Reference { name, value } => {
                format!("{name}: {} (quoted)", self.unit.show(*value))
            }
            Baseline::None => "—".into(),
        }
    }

    fn ratio_cell(&self) -> String {
        match self.ratio {
            Some(r) if self.ratio_is_reference => format!("{}× (vs quoted)", sig(r)),
            Some(r) => format!("{}×", sig(r)),
            None => "—".into(),
        }
    }

    fn rounds_cell(&self) -> String {
        let berth = match &self.berth {
            Measured::Value(s) => s.rounds.to_string(),
            Measured::Unavailable { .. } => "0".into(),
        };
        match &self.baseline {
            Baseline::Measured { summary, .. } => format!("{berth} / {}", summary.rounds),
            _ => berth,
        }
    }

    fn range_cell(&self) -> String {
        let range = |s: &Summary| format!("{}–{}", self.unit.bare(s.min), self.unit.show(s.max));
        let berth = match &self.berth {
            Measured::Value(s) => range(s),
            Measured::Unavailable { .. } => "—".into(),
        };
        match &self.baseline {
            Baseline::Measured { summary, .. } => format!("{berth}; {}", range(summary)),
            _ => berth,
        }
    }

    fn figure_cell(&self) -> String {
        match self.better {
            Better::Lower => self.figure.clone(),
            Better::Higher => format!("{} (higher is better)", self.figure),
        }
    }
}

/// `Value` from the samples, or `Unavailable("no sample")`.
pub fn measured(samples: &[f64]) -> Measured {
    match Summary::of(samples) {
        Some(s) => Measured::Value(s),
        None => Measured::Unavailable {
            reason: "no sample".into(),
        },
    }
}

/// Where and how the run happened.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub os: String,
    pub docker: String,
    pub storage_driver: String,
    pub rustc: String,
    pub commit: String,
    /// 1-minute load average when the run started, and when it ended.
    pub load_at_start: f64,
    pub load_at_end: f64,
    /// cargo/rustc processes seen when the run started (other builds on the machine).
    pub busy_at_start: Vec<String>,
    /// Other builds' processes (cargo, rustc, cc…) that started during the run (checked every
    /// 5 s), by the benchmark that was running: `scale (rustc ×12, cargo ×1)`.
    pub busy_during: Vec<String>,
}

/// A whole run: what was asked, where, and every row.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `all` or the one benchmark that ran.
    pub benchmark: String,
    pub started: String,
    pub duration_secs: f64,
    pub command: String,
    pub machine: Machine,
    pub rows: Vec<Row>,
    /// Benchmarks that failed as a whole, with their error.
    pub failures: Vec<(String, String)>,
    /// Remarks printed under the table (what was skipped and why, …).
    pub remarks: Vec<String>,
}

impl Report {
    /// The markdown page: a header, the machine, the table, the failures and remarks.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "# Berth benchmarks: `{}`, {}\n",
            self.benchmark, self.started
        );
        let _ = writeln!(
            out,
            "Command: `{}` ({} s). Ratios are Berth / baseline on medians: below 1 means Berth \
             is faster or smaller, except on rows marked \"higher is better\".\n",
            self.command,
            sig(self.duration_secs)
        );
        let _ = writeln!(
            out,
            "Machine: {}, {} cores, {:.1} GiB; {}; kernel {}; Docker {} ({}); {}; commit {}.",
            m.cpu,
            m.cores,
            m.memory_gib,
            m.os,
            m.kernel,
            m.docker,
            m.storage_driver,
            m.rustc,
            m.commit
        );
        let busy = if m.busy_at_start.is_empty() {
            "no cargo/rustc running".to_owned()
        } else {
            format!("**other builds running: {}**", m.busy_at_start.join(", "))
        };
        let during = if m.busy_during.is_empty() {
            "none during the run".to_owned()
        } else {
            format!(
                "**other builds started during: {}**",
                m.busy_during.join("; ")
            )
        };
        let _ = writeln!(
            out,
            "Load (1 min) {:.2} at the start and {:.2} at the end (the scale benchmark's hundred \
             agents raise it themselves); {busy}; {during}.\n",
            m.load_at_start, m.load_at_end
        );
        out.push_str(&self.table());
        if !self.failures.is_empty() {
            out.push_str("\nFailed benchmarks:\n\n");
            for (bench, error) in &self.failures {
                let _ = writeln!(out, "- `{bench}`: {}", error.replace('\n', " "));
            }
        }
        let notes: Vec<&Row> = self.rows.iter().filter(|r| !r.note.is_empty()).collect();
        if !notes.is_empty() || !self.remarks.is_empty() {
            out.push_str("\nNotes:\n\n");
            for r in notes {
                let _ = writeln!(out, "- {}: {}", r.figure, r.note);
            }
            for remark in &self.remarks {
                let _ = writeln!(out, "- {remark}");
            }
        }
        out
    }

    /// The table alone (also printed on stdout).
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| Figure | Berth | Baseline | Ratio | Rounds | min–max (Berth; baseline) |\n\
             |---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&r.figure_cell()),
                cell(&r.berth_cell()),
                cell(&r.baseline_cell()),
                r.ratio_cell(),
                r.rounds_cell(),
                cell(&r.range_cell()),
            );
        }
        out
    }

    /// Writes `<dir>/<stem>.md` and `<dir>/<stem>.json`; returns both paths. The JSON keeps
    /// every sample of a figure with up to [`MAX_JSON_SAMPLES`] of them (per-call latencies of
    /// 10,000 placements are summed up by their median, min, max and mean).
    pub fn write(&self, dir: &Path, stem: &str) -> std::io::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let md = dir.join(format!("{stem}.md"));
        let json = dir.join(format!("{stem}.json"));
        std::fs::write(&md, self.markdown())?;
        let mut compact = self.clone();
        for row in &mut compact.rows {
            if let Measured::Value(s) = &mut row.berth {
                s.compact(MAX_JSON_SAMPLES);
            }
            if let Baseline::Measured { summary, .. } = &mut row.baseline {
                summary.compact(MAX_JSON_SAMPLES);
            }
        }
        let text = serde_json::to_string_pretty(&compact).map_err(std::io::Error::other)?;
        std::fs::write(&json, text + "\n")?;
        Ok((md, json))
    }
}

/// Figures with more samples than this keep only their summary in the JSON file.
pub const MAX_JSON_SAMPLES: usize = 500;

/// A table cell: no pipes or newlines.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_significant_digits_with_separators() {
        assert_eq!(sig(412.4), "412");
        assert_eq!(sig(12_345.6), "12,346");
        assert_eq!(sig(1_234_567.0), "1,234,567");
        assert_eq!(sig(1.234), "1.23");
        assert_eq!(sig(12.34), "12.3");
        assert_eq!(sig(0.01234), "0.0123");
        assert_eq!(sig(0.09999), "0.100");
        assert_eq!(sig(0.0), "0");
        assert_eq!(sig(-1500.0), "-1,500");
        assert_eq!(sig(f64::NAN), "n/a");
    }

    #[test]
    fn units_scale_bytes() {
        assert_eq!(Unit::BytesPerSec.show(512.0), "512 B/s");
        assert_eq!(Unit::BytesPerSec.show(2048.0), "2.00 KiB/s");
        assert_eq!(Unit::Ms.show(3.5), "3.50 ms");
    }

    #[test]
    fn ratio_is_berth_over_baseline_medians() {
        let row = Row::samples("x", "latency", Unit::Ms, &[100.0, 300.0, 200.0])
            .against("docker", &[400.0, 400.0]);
        assert_eq!(row.ratio, Some(0.5));
        assert!(!row.ratio_is_reference);
        assert_eq!(row.ratio_cell(), "0.500×");
        assert_eq!(row.rounds_cell(), "3 / 2");
        assert_eq!(row.range_cell(), "100–300 ms; 400–400 ms");
        let quoted = Row::samples("x", "rss", Unit::Mib, &[20.0]).against_reference("Serf", 10.0);
        assert_eq!(quoted.ratio_cell(), "2.00× (vs quoted)");
        let none = Row::samples("x", "rss", Unit::Mib, &[]).against("docker", &[1.0]);
        assert_eq!(none.ratio, None);
        assert_eq!(none.berth_cell(), "n/a (no sample)");
    }

    #[test]
    fn markdown_has_one_line_per_row_and_json_the_numbers() {
        let report = Report {
            benchmark: "all".into(),
            started: "2026-01-01 00:00 UTC".into(),
            duration_secs: 1.0,
            command: "berth-bench all".into(),
            machine: Machine::default(),
            rows: vec![
                Row::samples("ps", "ps -a | 200", Unit::Ms, &[10.0])
                    .against("docker ps -a", &[20.0]),
                Row::samples("scale", "placements", Unit::PerSec, &[1000.0])
                    .higher_is_better()
                    .against_reference("Nomad C1M", 3750.0)
                    .note("other hardware"),
            ],
            failures: vec![("logs".into(), "boom".into())],
            remarks: vec![],
        };
        let md = report.markdown();
        assert!(
            md.contains("| ps -a \\| 200 | 10.0 ms | docker ps -a: 20.0 ms | 0.500× | 1 / 1 |")
        );
        assert!(md.contains("placements (higher is better)"));
        assert!(md.contains("- `logs`: boom"));
        assert!(md.contains("- placements: other hardware"));
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["rows"][0]["ratio"], 0.5);
        assert_eq!(json["rows"][0]["berth"]["median"], 10.0);
        assert_eq!(json["rows"][1]["baseline"]["kind"], "reference");
    }
}
