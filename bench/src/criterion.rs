//! Reads criterion's results (`target/criterion/**/new/`) into a Markdown table.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// One benchmark's mean time.
#[derive(Debug, Clone)]
pub struct Estimate {
    pub group: String,
    pub function: String,
    pub mean_ns: f64,
}

/// Every result under `dir` whose group starts with `prefix`.
pub fn read(dir: &Path, prefix: &str) -> anyhow::Result<Vec<Estimate>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(folder) = stack.pop() {
        for entry in
            std::fs::read_dir(&folder).with_context(|| format!("reading {}", folder.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.file_name().is_some_and(|n| n == "benchmark.json")
                && path.parent().is_some_and(|p| p.ends_with("new"))
            {
                let meta: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
                let estimates: Value = serde_json::from_str(&std::fs::read_to_string(
                    path.with_file_name("estimates.json"),
                )?)?;
                let group = meta["group_id"].as_str().unwrap_or_default().to_owned();
                if group.starts_with(prefix) {
                    out.push(Estimate {
                        group,
                        function: meta["function_id"].as_str().unwrap_or_default().to_owned(),
                        mean_ns: estimates["mean"]["point_estimate"]
                            .as_f64()
                            .unwrap_or(f64::NAN),
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| a.group.cmp(&b.group).then(a.mean_ns.total_cmp(&b.mean_ns)));
    Ok(out)
}

fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The diff engine table: each group's functions with their ratio to the floor (the
/// function whose name starts with `floor`).
pub fn table(title: &str, floor: &str, estimates: &[Estimate]) -> String {
    let mut out = format!(
        "## {title}\n\n`cargo bench --workspace --bench diff` (criterion: 1 s warm-up, 3 s of samples, mean time per comparison). \
         The floor is a plain `serde_json::Value` equality check walking two equal documents whole. Differing documents: about 1 task in 7 changes status, and a timestamp differs.\n\n\
         | documents | comparison | mean time | × floor |\n|---|---|---:|---:|\n"
    );
    let mut groups: Vec<&str> = estimates.iter().map(|e| e.group.as_str()).collect();
    groups.dedup();
    for group in groups {
        let base = estimates
            .iter()
            .find(|e| e.group == group && e.function.starts_with(floor))
            .map_or(f64::NAN, |e| e.mean_ns);
        for e in estimates.iter().filter(|e| e.group == group) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.1} |",
                e.group,
                e.function,
                time(e.mean_ns),
                e.mean_ns / base
            );
        }
    }
    out
}
