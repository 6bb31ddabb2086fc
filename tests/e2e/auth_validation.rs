//! `auth-validation` through the gateway with the real supabase-js client, served by the
//! legacy stand-in and then by the new backend: the same contract both times.

use studyflow_testkit::stack::{Stack, StackOptions};

use crate::harness::{routes_file_with, run_node_test};

#[tokio::test]
async fn supabase_js_gets_the_contract_from_legacy_and_from_the_backend() {
    let options = StackOptions::for_test("authval").expect("options");
    let database = options.database.clone();
    let dir = options.log_dir.clone();
    let mut stack = Stack::start(options).await.expect("stack starts");

    run_node_test(&stack, "auth-validation.test.mjs", "legacy").await;

    let primary = routes_file_with(&dir, "auth-validation", "primary");
    stack
        .restart_gateway(Some(primary))
        .await
        .expect("gateway restarts");
    run_node_test(&stack, "auth-validation.test.mjs", "new").await;

    stack.stop().await;
    studyflow_testkit::database::drop(&database)
        .await
        .expect("drop database");
}
