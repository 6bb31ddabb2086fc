//! The operator console in headless Chromium against a running stack (see
//! `tests/js/console.browser.test.mjs`), writing the screenshots the README shows.

use std::process::Stdio;

use studyflow_testkit::stack::{self, DEV_ADMIN_TOKEN, Stack, StackOptions};

#[tokio::test]
async fn the_console_runs_a_canary_and_a_rollback_in_a_browser() {
    let mut options = StackOptions::for_test("console").expect("options");
    options
        .backend_env
        .push(("TEST_ALTER_FIELD".into(), "auth-validation:/message".into()));
    // Every pair of this route differs, so the automatic rollback guard would take the
    // canary back to shadow after its first 20 compared pairs, part-way through the
    // browser's 200 users. The guard has its own tests; here it stays out of the way.
    options
        .gateway_env
        .push(("STUDYFLOW_GATEWAY__GUARD__ENABLED".into(), "false".into()));
    let database = options.database.clone();
    let dir = options.log_dir.clone();
    let stack = Stack::start(options).await.expect("stack starts");
    let root = stack::repo_root();
    let output = tokio::process::Command::new("node")
        .arg("--test")
        .arg("--test-reporter=tap")
        .arg(root.join("tests/js/console.browser.test.mjs"))
        .current_dir(root.join("tests"))
        .env("STUDYFLOW_GATEWAY_URL", &stack.gateway_url)
        .env("STUDYFLOW_ADMIN_URL", &stack.admin_url)
        .env("STUDYFLOW_ADMIN_TOKEN", DEV_ADMIN_TOKEN)
        .env("STUDYFLOW_SCREENSHOTS", &dir)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("node runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && report.contains("# fail 0"),
        "browser test failed:\n{report}"
    );
    for shot in ["console-routes.png", "console-sample.png"] {
        assert!(dir.join(shot).exists(), "{shot} written");
        // The README shows these: every run keeps them current.
        std::fs::copy(dir.join(shot), root.join("docs").join(shot)).expect("copy screenshot");
    }
    stack.stop().await;
    let _ = studyflow_testkit::database::drop(&database).await;
    let _ = studyflow_testkit::database::drop(&format!("{database}_diffs")).await;
}
