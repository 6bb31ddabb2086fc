//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};

use serde_json::Value;
use studyflow_testkit::stack::{self, DEV_ADMIN_TOKEN, Stack};

/// Writes a routes file that puts `route` in `phase` (every other route stays as shipped).
pub fn routes_file_with(dir: &Path, route: &str, phase: &str) -> PathBuf {
    routes_file_with_phases(dir, &[(route, phase)])
}

/// Writes the shipped routes file with the given routes moved to the given phases.
pub fn routes_file_with_phases(dir: &Path, phases: &[(&str, &str)]) -> PathBuf {
    let shipped = studyflow_flags::DEFAULT_ROUTES_FILE;
    let mut out = String::new();
    let mut current: Option<&str> = None;
    for line in shipped.lines() {
        if let Some(name) = line.trim_start().strip_prefix("- name: ") {
            current = phases.iter().find(|(r, _)| *r == name).map(|(_, p)| *p);
        }
        match current {
            Some(phase) if line.trim_start().starts_with("phase: ") => {
                out.push_str(&format!("    phase: {phase}\n"))
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    let name: Vec<String> = phases.iter().map(|(r, p)| format!("{r}-{p}")).collect();
    let path = dir.join(format!("routes-{}.yaml", name.join("-")));
    std::fs::write(&path, out).expect("write routes file");
    path
}

/// Runs `tests/js/<file>` with Node's test runner (TAP) and `env`; whether it passed, and
/// what it printed.
pub async fn node_test(file: &str, env: &[(&str, String)]) -> (bool, String) {
    let root = stack::repo_root();
    let mut command = tokio::process::Command::new("node");
    command
        .arg("--test")
        .arg("--test-reporter=tap")
        .arg(root.join("tests/js").join(file))
        .current_dir(root.join("tests"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    studyflow_testkit::process::run_to_end(&mut command).await
}

/// Runs a Node test file from `tests/js` against the stack's gateway, expecting every
/// answer to come from `side`. Panics with the runner's output when a test fails.
pub async fn run_node_test(stack: &Stack, file: &str, side: &str) {
    run_node_test_with(stack, file, side, &[]).await;
}

/// [`run_node_test`] with more environment for the test file.
pub async fn run_node_test_with(stack: &Stack, file: &str, side: &str, env: &[(&str, String)]) {
    let mut all = vec![
        ("STUDYFLOW_GATEWAY_URL", stack.gateway_url.clone()),
        ("STUDYFLOW_ANON_KEY", stack.anon_key()),
        ("STUDYFLOW_EXPECT_SIDE", side.to_owned()),
    ];
    all.extend(env.iter().cloned());
    let (success, report) = node_test(file, &all).await;
    assert!(success, "{file} failed with the route on {side}:\n{report}");
    let passed = report
        .lines()
        .find_map(|line| line.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u32>().ok());
    assert!(
        report.contains("# fail 0") && passed.is_some_and(|n| n > 0),
        "{file}: no passing tests reported:\n{report}"
    );
}

/// The gateway's diff report of the last hour (admin API).
pub async fn diff_overview(stack: &Stack) -> Value {
    reqwest::Client::new()
        .get(format!("{}/diffs?since=1h", stack.admin_url))
        .bearer_auth(DEV_ADMIN_TOKEN)
        .send()
        .await
        .expect("report")
        .json()
        .await
        .expect("json")
}

/// One route's summary in a diff report (`null` when the route has none).
pub fn route_summary<'a>(overview: &'a Value, name: &str) -> &'a Value {
    overview["routes"]
        .as_array()
        .and_then(|routes| routes.iter().find(|r| r["route"] == name))
        .unwrap_or(&Value::Null)
}
