//! The operator console in headless Chromium against a running stack (see
//! `tests/js/console.browser.test.mjs`), writing the screenshots the README shows.

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
    let env = [
        ("STUDYFLOW_GATEWAY_URL", stack.gateway_url.clone()),
        ("STUDYFLOW_ADMIN_URL", stack.admin_url.clone()),
        ("STUDYFLOW_ADMIN_TOKEN", DEV_ADMIN_TOKEN.to_owned()),
        ("STUDYFLOW_SCREENSHOTS", dir.display().to_string()),
    ];
    let (success, report) = crate::harness::node_test("console.browser.test.mjs", &env).await;
    assert!(
        success && report.contains("# fail 0"),
        "browser test failed:\n{report}"
    );
    for shot in ["console-routes.png", "console-sample.png"] {
        assert!(dir.join(shot).exists(), "{shot} written");
        // The README shows these: every run keeps them current.
        std::fs::copy(dir.join(shot), stack::repo_root().join("docs").join(shot))
            .expect("copy screenshot");
    }
    stack.stop().await;
    let _ = studyflow_testkit::database::drop(&database).await;
    let _ = studyflow_testkit::database::drop(&format!("{database}_diffs")).await;
}
