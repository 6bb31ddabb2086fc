//! The new backend beside the legacy stand-in (Deno) on StudyFlow functions, with the
//! fake AI provider behind both, called directly (no gateway), in one run.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::load::{FIXED_RATE, Generator, Load, Measured, SATURATION};
use crate::report::ms;

/// One function call measured on one side.
#[derive(Debug, Clone)]
pub struct FunctionResult {
    pub function: &'static str,
    pub side: &'static str,
    pub mode: &'static str,
    pub measured: Measured,
}

/// Runs `auth-validation` and `ai-tutor-professional` against both sides.
/// Work files go under `<root>/.stack/bench/functions`.
pub async fn run(
    root: &Path,
    duration: Duration,
    connections: usize,
) -> anyhow::Result<Vec<FunctionResult>> {
    let (generator, stack, work_dir) = Generator::with_stack(root, "functions").await?;
    let bodies = [
        (
            "auth-validation",
            json!({"email": "ada.lovelace@gmail.com", "action": "signup"}),
            500u32,
        ),
        (
            "ai-tutor-professional",
            json!({"message": "Explain how photosynthesis works", "context": {"subject": "biology", "difficulty": "beginner"}}),
            200,
        ),
    ];
    let mut results = Vec::new();
    for (function, body, rate) in bodies {
        let file = work_dir.join(format!("{function}.json"));
        std::fs::write(&file, body.to_string())?;
        for (side, base) in [
            ("legacy (Deno)", &stack.legacy_url),
            ("new backend", &stack.backend_url),
        ] {
            for (mode, rate) in [(SATURATION, None), (FIXED_RATE, Some(rate))] {
                let load = Load {
                    url: format!("{base}/functions/v1/{function}"),
                    method: "POST",
                    body: Some(file.clone()),
                    headers: vec![("content-type".into(), "application/json".into())],
                    duration,
                    connections,
                    rate,
                };
                let measured = generator.warm_then_run(&load).await?;
                tracing::info!(
                    function,
                    side,
                    mode,
                    rps = measured.requests_per_sec,
                    p99 = measured.p99_ms,
                    "measured"
                );
                results.push(FunctionResult {
                    function,
                    side,
                    mode,
                    measured,
                });
            }
        }
    }
    stack.stop().await;
    Ok(results)
}

pub fn table(results: &[FunctionResult], duration: Duration, connections: usize) -> String {
    let mut out = format!(
        "## New backend vs legacy stand-in\n\nEach side called directly with the same request, the fake AI provider \
         behind both; {} s per case after a 1 s warm-up, {connections} connections (release build of the backend; \
         the stand-in runs the legacy TypeScript on Deno).\n\n\
         | function | side | load | req/s | p50 ms | p99 ms | p99.9 ms | failed |\n|---|---|---|---:|---:|---:|---:|---:|\n",
        duration.as_secs()
    );
    for r in results {
        let m = &r.measured;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} |",
            r.function,
            r.side,
            r.mode,
            m.requests_per_sec,
            ms(m.p50_ms),
            ms(m.p99_ms),
            ms(m.p999_ms),
            m.failed
        );
    }
    out.push_str("\n| function | throughput new/legacy (saturation) | p99 new vs legacy (fixed rate, ms) |\n|---|---:|---:|\n");
    let mut functions: Vec<&str> = results.iter().map(|r| r.function).collect();
    functions.dedup();
    for function in functions {
        let get = |side: &str, mode: &str| {
            results
                .iter()
                .find(|r| r.function == function && r.side.starts_with(side) && r.mode == mode)
                .map(|r| r.measured)
        };
        let ratio = match (get("new", SATURATION), get("legacy", SATURATION)) {
            (Some(n), Some(l)) => format!("{:.1}×", n.requests_per_sec / l.requests_per_sec),
            _ => "–".into(),
        };
        let p99 = match (get("new", FIXED_RATE), get("legacy", FIXED_RATE)) {
            (Some(n), Some(l)) => format!("{} vs {}", ms(n.p99_ms), ms(l.p99_ms)),
            _ => "–".into(),
        };
        let _ = writeln!(out, "| {function} | {ratio} | {p99} |");
    }
    out
}
