//! The report: what every group measured, as tables on the console while it runs
//! and as one Markdown file (with the same content as JSON beside it) at the end.
//!
//! A run is a list of groups ([`GroupReport`]: `nop`, `net`, ...); a group holds
//! sections ([`Section`]: one workload each), a section holds text, tables and
//! notes, and the verdicts of its targets ([`Verdict`]). The submodules turn each
//! group's results into sections: [`compare`] (nop, spawn, cross), [`net`],
//! [`fs`], [`close`], [`instructions`] and [`fallback`]. Ratios are always
//! taken round by round (contender A's figure in round r over B's in the same
//! round, two runs made under the same conditions) and reported as the median
//! of those, with the smallest and the largest.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::machine::Machine;
use crate::measure::Spread;

pub mod close;
pub mod compare;
pub mod fallback;
pub mod fs;
pub mod instructions;
pub mod net;

/// A table: a header row and rows of cells, all as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// The column headings.
    pub header: Vec<String>,
    /// The rows, each as many cells as the header (shorter rows are padded).
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headings and no rows yet.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn columns(&self) -> usize {
        self.rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0)
    }

    /// The table for a terminal: columns padded to their widest cell, the first
    /// left-aligned and the others right-aligned, indented by two spaces.
    pub fn console(&self) -> String {
        let columns = self.columns();
        let cell = |row: &[String], c: usize| row.get(c).map_or("", String::as_str).to_string();
        let mut widths = vec![0; columns];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (c, width) in widths.iter_mut().enumerate() {
                *width = (*width).max(cell(row, c).chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::from(" ");
            for (c, width) in widths.iter().enumerate() {
                let text = cell(row, c);
                let pad = width - text.chars().count();
                line.push(' ');
                if c == 0 {
                    line.push_str(&text);
                    line.push_str(&" ".repeat(pad));
                } else {
                    line.push_str(&" ".repeat(pad + 1));
                    line.push_str(&text);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// The table in Markdown.
    pub fn markdown(&self) -> String {
        let columns = self.columns();
        let line = |row: &[String]| {
            let cells: Vec<String> = (0..columns)
                .map(|c| row.get(c).map_or(String::new(), |text| escape(text)))
                .collect();
            format!("| {} |\n", cells.join(" | "))
        };
        let mut out = line(&self.header);
        out.push_str(&format!("|{}\n", "---|".repeat(columns)));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

fn escape(cell: &str) -> String {
    cell.replace('|', "\\|")
}

/// One piece of a section, in the order it was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Block {
    /// A line about how the section was measured.
    Text(String),
    /// A table.
    Table(Table),
    /// A remark under a table: a warning, where threads ran, what went wrong.
    Note(String),
}

/// One workload's part of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    /// Its heading.
    pub title: String,
    /// Text, tables and notes.
    pub blocks: Vec<Block>,
    /// The targets it checked.
    pub verdicts: Vec<Verdict>,
}

impl Section {
    /// An empty section headed `title`.
    pub fn new(title: impl Into<String>) -> Section {
        Section {
            title: title.into(),
            blocks: Vec::new(),
            verdicts: Vec::new(),
        }
    }

    /// Adds a line of text.
    pub fn text(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Text(text.into()));
    }

    /// Adds a table, unless it has no rows.
    pub fn table(&mut self, table: Table) {
        if !table.is_empty() {
            self.blocks.push(Block::Table(table));
        }
    }

    /// Adds a note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.blocks.push(Block::Note(note.into()));
    }

    /// The section for a terminal.
    pub fn console(&self) -> String {
        let mut out = format!("\n{}\n", self.title);
        let mut after_table = false;
        for block in &self.blocks {
            match block {
                Block::Text(text) => {
                    if after_table {
                        out.push('\n');
                    }
                    out.push_str(&format!("  {text}\n"));
                    after_table = false;
                }
                Block::Table(table) => {
                    if after_table {
                        out.push('\n');
                    }
                    out.push_str(&table.console());
                    after_table = true;
                }
                Block::Note(note) => out.push_str(&format!("  note: {note}\n")),
            }
        }
        out
    }

    /// The section in Markdown, under a third-level heading.
    pub fn markdown(&self) -> String {
        let mut out = format!("### {}\n\n", self.title);
        let mut notes = false;
        for block in &self.blocks {
            if notes && !matches!(block, Block::Note(_)) {
                out.push('\n');
                notes = false;
            }
            match block {
                Block::Text(text) => out.push_str(&format!("{text}\n\n")),
                Block::Table(table) => {
                    out.push_str(&table.markdown());
                    out.push('\n');
                }
                Block::Note(note) => {
                    out.push_str(&format!("- {note}\n"));
                    notes = true;
                }
            }
        }
        if notes {
            out.push('\n');
        }
        out
    }
}

/// Which side of its limit a figure must stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bound {
    /// The figure must be at least the limit.
    AtLeast,
    /// The figure must be at most the limit.
    AtMost,
}

/// What a figure held to a target counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    /// A ratio of two contenders' figures.
    Times,
    /// User-space instructions per operation.
    InstructionsPerOp,
}

impl Unit {
    /// `value` in this unit: `0.74x`, `612 instructions/op`.
    pub fn show(self, value: f64) -> String {
        match self {
            Unit::Times => format!("{value:.2}x"),
            Unit::InstructionsPerOp => format!("{value:.0} instructions/op"),
        }
    }
}

/// A target of the project: a limit a figure must stay on one side of.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Which side.
    pub bound: Bound,
    /// The limit.
    pub limit: f64,
    /// What the figure counts.
    pub unit: Unit,
}

impl Target {
    /// A ratio that must be at least `limit`.
    pub const fn at_least(limit: f64) -> Target {
        Target {
            bound: Bound::AtLeast,
            limit,
            unit: Unit::Times,
        }
    }

    /// A ratio that must be at most `limit`.
    pub const fn at_most(limit: f64) -> Target {
        Target {
            bound: Bound::AtMost,
            limit,
            unit: Unit::Times,
        }
    }

    /// The same bound, for a figure of `unit`.
    pub const fn in_unit(mut self, unit: Unit) -> Target {
        self.unit = unit;
        self
    }

    /// Whether `value` meets it.
    pub fn met_by(self, value: f64) -> bool {
        match self.bound {
            Bound::AtLeast => value >= self.limit,
            Bound::AtMost => value <= self.limit,
        }
    }

    /// `>= 0.80x`, `<= 200 instructions/op`.
    pub fn describe(self) -> String {
        let sign = match self.bound {
            Bound::AtLeast => ">=",
            Bound::AtMost => "<=",
        };
        format!("{sign} {}", self.unit.show(self.limit))
    }

    /// The verdict on `value`, for a table's last column: `target >= 0.80x: met`.
    pub fn cell(self, value: f64) -> String {
        self.cell_for("target", value)
    }

    /// The verdict on `value` of the figure called `figure`:
    /// `CPU per msg <= 1.10x: met`.
    pub fn cell_for(self, figure: &str, value: f64) -> String {
        let word = if self.met_by(value) { "met" } else { "MISSED" };
        format!("{figure} {}: {word}", self.describe())
    }
}

/// A figure held to a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Workload and figure, e.g. `nop, 64 in flight: ours / raw`.
    pub what: String,
    /// The figure: the median of the per-round figures.
    pub value: f64,
    /// The target it was held to.
    pub target: Target,
}

impl Verdict {
    /// Whether the target was met.
    pub fn met(&self) -> bool {
        self.target.met_by(self.value)
    }
}

/// What one group reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    /// The group's name on the command line: `nop`, `net`, ...
    pub name: String,
    /// How the group measures, in a line or two each.
    pub about: Vec<String>,
    /// Its workloads.
    pub sections: Vec<Section>,
    /// The parts that did not run, each with why.
    pub skipped: Vec<String>,
    /// The runs that failed, each with its error.
    pub failures: Vec<String>,
    /// `/proc/loadavg` when the group started.
    pub load_start: String,
    /// `/proc/loadavg` when the group ended.
    pub load_end: String,
}

impl GroupReport {
    /// Starts the report of group `name` and prints its heading.
    pub fn start(name: &str) -> GroupReport {
        let load_start = crate::machine::load_average();
        println!("\n== {name} == (load average {load_start})");
        GroupReport {
            name: name.to_string(),
            about: Vec::new(),
            sections: Vec::new(),
            skipped: Vec::new(),
            failures: Vec::new(),
            load_start,
            load_end: String::new(),
        }
    }

    /// Adds, and prints, a line about how the group measures.
    pub fn about(&mut self, line: impl Into<String>) {
        let line = line.into();
        println!("{line}");
        self.about.push(line);
    }

    /// Adds, and prints, a workload's section.
    pub fn section(&mut self, section: Section) {
        print!("{}", section.console());
        self.sections.push(section);
    }

    /// Notes, and prints, that a part did not run, and why.
    pub fn skip(&mut self, why: impl Into<String>) {
        let why = why.into();
        println!("skipped: {why}");
        self.skipped.push(why);
    }

    /// Notes, and prints, that a run failed.
    pub fn fail(&mut self, what: impl Into<String>) {
        let what = what.into();
        eprintln!("{}: failed: {what}", self.name);
        println!("failed: {what}");
        self.failures.push(what);
    }

    /// Ends the group: notes the load average.
    pub fn end(mut self) -> GroupReport {
        self.load_end = crate::machine::load_average();
        println!("({} done; load average {})", self.name, self.load_end);
        self
    }

    /// The verdicts of all its sections.
    pub fn verdicts(&self) -> impl Iterator<Item = &Verdict> {
        self.sections.iter().flat_map(|s| &s.verdicts)
    }

    /// Whether a run failed (or the group could not report at all).
    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    /// Reads a group's report from the file a child process wrote it to.
    pub fn read(path: &Path) -> io::Result<GroupReport> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {err}", path.display()),
            )
        })
    }

    /// Writes it to `path`, as JSON, for the parent process.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, serde_json::to_string(self).map_err(io::Error::other)?)
    }

    /// The group in Markdown, under a second-level heading.
    pub fn markdown(&self) -> String {
        let mut out = format!("## {}\n\n", self.name);
        out.push_str(&format!(
            "Load average {} at the start, {} at the end.\n\n",
            self.load_start, self.load_end
        ));
        for line in &self.about {
            out.push_str(&format!("{line}\n\n"));
        }
        for why in &self.skipped {
            out.push_str(&format!("**Skipped:** {why}\n\n"));
        }
        for what in &self.failures {
            out.push_str(&format!("**Failed:** {what}\n\n"));
        }
        for section in &self.sections {
            out.push_str(&section.markdown());
        }
        out
    }
}

/// The whole run: the machine, the command, and every group's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The command line, as this process got it.
    pub command: String,
    /// The working directory it ran in.
    pub directory: String,
    /// How the binary was built and started.
    pub build: String,
    /// When the run started, UTC.
    pub started: String,
    /// How long it took, in seconds.
    pub seconds: f64,
    /// The machine.
    pub machine: Machine,
    /// `/proc/loadavg` at the end.
    pub load_end: String,
    /// The groups, in the order they ran.
    pub groups: Vec<GroupReport>,
}

impl Report {
    /// Every verdict of every group.
    pub fn verdicts(&self) -> impl Iterator<Item = &Verdict> {
        self.groups.iter().flat_map(GroupReport::verdicts)
    }

    /// Prints the closing summary: the targets met and missed, what was skipped
    /// and what failed.
    pub fn print_summary(&self) {
        println!("\n== summary ==");
        let verdicts: Vec<&Verdict> = self.verdicts().collect();
        if verdicts.is_empty() {
            println!("no target was checked");
        } else {
            let met = verdicts.iter().filter(|v| v.met()).count();
            println!("targets met: {met} of {}", verdicts.len());
            for verdict in verdicts.iter().filter(|v| !v.met()) {
                println!(
                    "  missed: {} = {}, target {}",
                    verdict.what,
                    verdict.target.unit.show(verdict.value),
                    verdict.target.describe()
                );
            }
        }
        for group in &self.groups {
            for why in &group.skipped {
                println!("skipped ({}): {why}", group.name);
            }
            for what in &group.failures {
                println!("FAILED ({}): {what}", group.name);
            }
        }
        println!(
            "load average {} at the start, {} at the end; {:.0} s in all",
            self.machine.load_start, self.load_end, self.seconds
        );
    }

    /// The report in Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::from("# Benchmark report\n\n");
        let m = &self.machine;
        let _ = writeln!(out, "- command: `{}`", self.command);
        let _ = writeln!(out, "- directory: `{}`", self.directory);
        let _ = writeln!(out, "- build: {}", self.build);
        if let Some(source) = &m.source {
            let _ = writeln!(out, "- source: {source}");
        }
        let _ = writeln!(
            out,
            "- started: {} (UTC), {:.0} s in all",
            self.started, self.seconds
        );
        let _ = writeln!(out, "- CPUs: {}", m.cpus);
        let _ = writeln!(out, "- memory: {}", m.memory);
        let _ = writeln!(out, "- kernel (uname): `{}`", m.kernel);
        let _ = writeln!(
            out,
            "- load average (1, 5, 15 min): {} at the start, {} at the end",
            m.load_start, self.load_end
        );
        out.push('\n');
        out.push_str("## Targets\n\n");
        let mut targets = Table::new(["what", "figure", "target", "verdict"]);
        for verdict in self.verdicts() {
            targets.row([
                verdict.what.clone(),
                verdict.target.unit.show(verdict.value),
                verdict.target.describe(),
                if verdict.met() { "met" } else { "**MISSED**" }.to_string(),
            ]);
        }
        if targets.is_empty() {
            out.push_str("No target was checked.\n\n");
        } else {
            let met = self.verdicts().filter(|v| v.met()).count();
            let _ = writeln!(out, "{met} of {} met.\n", targets.rows.len());
            out.push_str(&targets.markdown());
            out.push('\n');
        }
        for group in &self.groups {
            out.push_str(&group.markdown());
        }
        out
    }

    /// Writes the Markdown report to `path` and the JSON one beside it (the same
    /// name, `.json`); returns the JSON's path.
    pub fn save(&self, path: &Path) -> io::Result<PathBuf> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.markdown())?;
        let json = path.with_extension("json");
        let text = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        std::fs::write(&json, text)?;
        Ok(json)
    }
}

/// Per-round ratios `top[r] / bottom[r]`, for as many rounds as both have.
pub fn per_round_ratios(top: &[f64], bottom: &[f64]) -> Vec<f64> {
    top.iter().zip(bottom).map(|(a, b)| a / b).collect()
}

/// A ratio's median and spread: `0.74x (0.73 - 0.76)`.
pub fn times(spread: Spread) -> String {
    format!(
        "{:.2}x ({:.2} - {:.2})",
        spread.median, spread.min, spread.max
    )
}

/// A spread of figures shown with `show`: `1.20 M - 1.31 M`.
pub fn range(spread: Spread, show: impl Fn(f64) -> String) -> String {
    format!("{} - {}", show(spread.min), show(spread.max))
}

/// Formats a rate with an SI prefix: `12.34 M`.
pub fn si(value: f64) -> String {
    let (scaled, prefix) = if value >= 1e9 {
        (value / 1e9, "G")
    } else if value >= 1e6 {
        (value / 1e6, "M")
    } else if value >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    format!("{scaled:.2} {prefix}").trim_end().to_string()
}

/// Formats nanoseconds as a whole number with thousands separators: `12,345`.
pub fn nanos(value: f64) -> String {
    grouped(value.round() as u64)
}

/// Formats a count with thousands separators: `1,000,000`.
pub fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Nanoseconds as microseconds with one decimal: `12.3`.
pub fn micros(nanos: f64) -> String {
    format!("{:.1}", nanos / 1e3)
}

/// Nanoseconds as milliseconds with two decimals: `12.34`.
pub fn millis(nanos: f64) -> String {
    format!("{:.2}", nanos / 1e6)
}

#[cfg(test)]
mod tests {
    use super::{grouped, micros, millis, si, Block, Section, Table, Target, Unit, Verdict};

    #[test]
    fn grouped_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(16_000_000), "16,000,000");
    }

    #[test]
    fn si_prefixes_and_units() {
        assert_eq!(si(12_345_678.0), "12.35 M");
        assert_eq!(si(2_500.0), "2.50 k");
        assert_eq!(si(3.0), "3.00");
        assert_eq!(micros(12_345.0), "12.3");
        assert_eq!(millis(2_345_678.0), "2.35");
    }

    #[test]
    fn tables_line_up_and_escape() {
        let mut table = Table::new(["contender", "ops/s"]);
        table.row(["ours", "12.00 M"]);
        table.row(["tokio-uring", "5 | 6"]);
        assert_eq!(
            table.console(),
            "  contender      ops/s\n  ours         12.00 M\n  tokio-uring    5 | 6\n"
        );
        assert_eq!(
            table.markdown(),
            "| contender | ops/s |\n|---|---|\n| ours | 12.00 M |\n| tokio-uring | 5 \\| 6 |\n"
        );
    }

    #[test]
    fn targets_hold_both_ways() {
        assert!(Target::at_least(0.8).met_by(0.8));
        assert!(!Target::at_least(0.8).met_by(0.79));
        assert!(Target::at_most(1.1).met_by(1.0));
        assert!(!Target::at_most(1.1).met_by(1.2));
        let instructions = Target::at_most(200.0).in_unit(Unit::InstructionsPerOp);
        assert_eq!(instructions.describe(), "<= 200 instructions/op");
        assert_eq!(Target::at_least(2.0).cell(2.5), "target >= 2.00x: met");
        assert_eq!(Target::at_least(2.0).cell(1.5), "target >= 2.00x: MISSED");
    }

    #[test]
    fn a_section_survives_json() {
        let mut section = Section::new("nop, 1 in flight");
        section.text("every run on CPU 1");
        let mut table = Table::new(["a", "b"]);
        table.row(["1", "2"]);
        section.table(table);
        section.table(Table::new(["empty"]));
        section.note("a warning");
        section.verdicts.push(Verdict {
            what: "ours / raw".to_string(),
            value: 0.5,
            target: Target::at_least(0.8),
        });
        assert_eq!(section.blocks.len(), 3, "an empty table is left out");
        assert!(matches!(section.blocks[2], Block::Note(_)));
        let json = serde_json::to_string(&section).unwrap();
        let back: Section = serde_json::from_str(&json).unwrap();
        assert_eq!(back, section);
        assert!(section.markdown().contains("| 1 | 2 |\n"));
        assert!(section.markdown().contains("- a warning\n"));
    }
}
