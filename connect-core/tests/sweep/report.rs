//! The summary a sweep prints: counts per invariant and fault kind, then the most frequent ways each
//! invariant broke, with one case to replay.

use std::collections::BTreeMap;

use crate::cases::{KINDS, Violation};

/// Ways of breaking listed per invariant.
const PATTERNS_PER_INVARIANT: usize = 3;
/// A violation's text is cut to this many characters in the summary.
const DETAIL_CHARS: usize = 260;

pub(crate) fn report(scenario: &str, op_calls: u64, cases: usize, violations: &[Violation]) {
    let line = format!(
        "sweep {scenario}: {cases} cases ({op_calls} calls x {} kinds + clean), {} violations",
        KINDS.len(),
        violations.len()
    );
    println!("{line}");
    keep(scenario, &line);
    if violations.is_empty() {
        return;
    }
    table(violations);
    patterns(violations);
}

/// Leaves the summary line in `target/tmp/sweep/`, one file per scenario: a passing test's output is
/// captured, and `scripts/test.sh` prints these counts without running the sweep a second time.
fn keep(scenario: &str, line: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sweep");
    let file: String = scenario
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    // Only a report: a sweep whose summary cannot be written still passes or fails on its invariants.
    let written =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(file), format!("{line}\n")));
    if let Err(e) = written {
        eprintln!(
            "sweep: the summary of {scenario} was not kept in {}: {e}",
            dir.display()
        );
    }
}

fn table(violations: &[Violation]) {
    let kinds: Vec<String> = std::iter::once("clean".to_string())
        .chain(KINDS.iter().map(ToString::to_string))
        .collect();
    let mut counts: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for v in violations {
        *counts
            .entry(v.invariant)
            .or_default()
            .entry(v.kind.as_str())
            .or_default() += 1;
    }
    let header: String = kinds.iter().map(|k| format!("  {k}")).collect();
    println!("  {:<22}{header}", "invariant");
    for (invariant, by_kind) in &counts {
        let row: String = kinds
            .iter()
            .map(|k| {
                let n = by_kind.get(k.as_str()).copied().unwrap_or(0);
                format!("  {n:>w$}", w = k.len())
            })
            .collect();
        println!("  {invariant:<22}{row}");
    }
}

/// One pattern is one invariant broken the same way, whatever the injected error's kind and call number.
fn shape(detail: &str) -> String {
    let blanked: String = detail
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect();
    blanked
        .replace(", after it applied", "")
        .replace(" timeout", " <kind>")
        .replace(" unavailable", " <kind>")
}

fn patterns(violations: &[Violation]) {
    let mut by_shape: BTreeMap<(&str, String), Vec<&Violation>> = BTreeMap::new();
    for v in violations {
        by_shape
            .entry((v.invariant, shape(&v.detail)))
            .or_default()
            .push(v);
    }
    let mut by_invariant: BTreeMap<&str, Vec<Vec<&Violation>>> = BTreeMap::new();
    for ((invariant, _), vs) in by_shape {
        by_invariant.entry(invariant).or_default().push(vs);
    }
    println!("  patterns (count, invariant, one case: kind at the operation's call N, when seen, what):");
    for (invariant, mut shapes) in by_invariant {
        shapes.sort_by_key(|vs| std::cmp::Reverse(vs.len()));
        for vs in shapes.iter().take(PATTERNS_PER_INVARIANT) {
            let v = vs[0];
            let detail: String = v.detail.chars().take(DETAIL_CHARS).collect();
            println!(
                "  {:>5} {invariant}: {} at call {} ({}), {}: {detail}",
                vs.len(),
                v.kind,
                v.call,
                v.at,
                v.phase
            );
        }
        if shapes.len() > PATTERNS_PER_INVARIANT {
            println!(
                "        {invariant}: {} more patterns",
                shapes.len() - PATTERNS_PER_INVARIANT
            );
        }
    }
}
