//! The streaming tutor through the whole stack, and the key vault's CLI.
//!
//! - `ai-tutor-stream` is served by the new backend through the gateway (the shipped
//!   routes file), its events reaching the client as the fake provider writes them: the
//!   first token arrives long before the provider has finished. The provider's key comes
//!   from the vault only.
//! - `studyflow-backend vault …` stores, lists and rotates keys, refuses a wrong or stale
//!   master key, and never prints a key.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use studyflow_testkit::database;
use studyflow_testkit::stack::{self, Stack, StackOptions};
use tokio::io::AsyncWriteExt;

/// What one CLI run printed, and whether it succeeded.
#[derive(Debug)]
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `studyflow-backend <args>` against `database_url`, `stdin` piped in.
async fn backend_cli(
    database_url: &str,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> Run {
    let binary = stack::bin_dir().expect("bin dir").join("studyflow-backend");
    let mut command = tokio::process::Command::new(binary);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the backend binary runs");
    if let Some(mut pipe) = child.stdin.take() {
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).await.expect("stdin");
        }
        drop(pipe);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the CLI finishes")
        .expect("output");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn generate_key(database_url: &str) -> String {
    let run = backend_cli(database_url, &[], &["vault", "generate-key"], None).await;
    assert!(run.ok, "{run:?}");
    run.stdout.trim().to_owned()
}

#[tokio::test]
async fn the_vault_cli_stores_lists_and_rotates_keys_without_printing_them() {
    let name = format!(
        "studyflow_test_vaultcli_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let url = database::create(&name).await.expect("database");
    let secret = "sk-cli-secret-0123456789";
    let first = generate_key(&url).await;
    assert_eq!(first.len(), 44, "base64 of 32 bytes");
    let v1 = [
        ("VAULT_MASTER_KEY", first.as_str()),
        ("VAULT_KEY_VERSION", "1"),
    ];

    let put = backend_cli(
        &url,
        &v1,
        &["vault", "put", "openai"],
        Some(&format!("{secret}\n")),
    )
    .await;
    assert!(put.ok, "{put:?}");
    assert!(
        put.stdout
            .contains("Stored the openai key under master key version 1 (sha256:"),
        "{put:?}"
    );
    let from_env = backend_cli(
        &url,
        &[v1[0], v1[1], ("GEMINI_SECRET", "gemini-cli-secret-42")],
        &["vault", "put", "gemini", "--from-env", "GEMINI_SECRET"],
        None,
    )
    .await;
    assert!(from_env.ok, "{from_env:?}");

    let list = backend_cli(&url, &[], &["vault", "list"], None).await;
    assert!(list.ok, "{list:?}");
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{list:?}");
    assert!(lines[1].starts_with("openai") && lines[1].contains("key version 1"));

    // Rotation: new key, online; the old one still reads until the rotation is finished.
    let second = generate_key(&url).await;
    let rotate = backend_cli(
        &url,
        &[v1[0], v1[1], ("NEW_VAULT_MASTER_KEY", second.as_str())],
        &["vault", "rotate", "--new-key-env", "NEW_VAULT_MASTER_KEY"],
        None,
    )
    .await;
    assert!(rotate.ok, "{rotate:?}");
    assert!(
        rotate
            .stdout
            .contains("Rotated 2 key(s) from master key version 1 to 2"),
        "{rotate:?}"
    );
    let list = backend_cli(&url, &[], &["vault", "list"], None).await;
    assert!(list.stdout.contains("key version 2"), "{list:?}");
    assert!(
        list.stdout.contains("also readable with key version 1"),
        "{list:?}"
    );

    // The old key may not write any more; a wrong key for version 2 is refused.
    let stale = backend_cli(&url, &v1, &["vault", "put", "deepseek"], Some("ds-key\n")).await;
    assert!(!stale.ok);
    assert!(
        stale.stderr.contains("older than the vault's newest"),
        "{stale:?}"
    );
    let wrong = generate_key(&url).await;
    let refused = backend_cli(
        &url,
        &[
            ("VAULT_MASTER_KEY", wrong.as_str()),
            ("VAULT_KEY_VERSION", "2"),
        ],
        &["vault", "put", "deepseek"],
        Some("ds-key\n"),
    )
    .await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("is not the key of that version"),
        "{refused:?}"
    );

    let v2 = [
        ("VAULT_MASTER_KEY", second.as_str()),
        ("VAULT_KEY_VERSION", "2"),
    ];
    let finish = backend_cli(&url, &v2, &["vault", "finish-rotation"], None).await;
    assert!(finish.ok, "{finish:?}");
    assert!(
        finish.stdout.contains("2 old ciphertext(s) dropped"),
        "{finish:?}"
    );
    let list = backend_cli(&url, &[], &["vault", "list"], None).await;
    assert!(!list.stdout.contains("also readable"), "{list:?}");

    for run in [&put, &from_env, &list, &rotate, &stale, &refused, &finish] {
        for text in [
            secret,
            "gemini-cli-secret-42",
            first.as_str(),
            second.as_str(),
        ] {
            assert!(
                !run.stdout.contains(text) && !run.stderr.contains(text),
                "a secret was printed: {run:?}"
            );
        }
    }
    // Every command left a security event.
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let events: Vec<String> =
        sqlx::query_scalar("select event_type from public.security_audit_log order by created_at")
            .fetch_all(&pool)
            .await
            .expect("events");
    for event in [
        "vault_write",
        "vault_list",
        "vault_rotation_started",
        "vault_rotation_completed",
        "vault_key_rejected",
        "vault_rotation_finished",
    ] {
        assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
    }
    pool.close().await;
    database::drop(&name).await.expect("drop database");
}

#[tokio::test]
async fn the_streaming_tutor_reaches_the_client_through_the_gateway_as_it_is_written() {
    let mut options = StackOptions::for_test("stream").expect("options");
    let database = options.database.clone();
    // The OpenAI key lives in the vault only.
    let url = database::prepare(&database).await.expect("database");
    let master = generate_key(&url).await;
    let put = backend_cli(
        &url,
        &[("VAULT_MASTER_KEY", master.as_str())],
        &["vault", "put", "openai"],
        Some("fake-openai-key-from-the-vault\n"),
    )
    .await;
    assert!(put.ok, "{put:?}");
    options.backend_env.extend([
        ("VAULT_MASTER_KEY".to_owned(), master.clone()),
        ("OPENAI_API_KEY".to_owned(), String::new()),
        ("AI_CHAIN_TUTOR_STREAM".to_owned(), "openai".to_owned()),
        ("REDIS_KEY_PREFIX".to_owned(), format!("{database}:")),
    ]);
    let stack = Stack::start(options).await.expect("stack starts");

    let client = reqwest::Client::new();
    let started = Instant::now();
    let response = client
        .post(format!(
            "{}/functions/v1/ai-tutor-stream",
            stack.gateway_url
        ))
        .header("content-type", "application/json")
        .header("apikey", stack.anon_key())
        .bearer_auth(stack.demo_token(3600))
        .json(&json!({"message": "Explain how rainbows form [[fake:chunk_delay_ms=100]]"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("x-studyflow-served-by"), "new");
    assert_eq!(header("x-studyflow-route"), "ai-tutor-stream");
    assert_eq!(header("content-type"), "text/event-stream");
    assert_eq!(header("x-frame-options"), "DENY");

    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut first_token_at = None;
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.expect("bytes")));
        if first_token_at.is_none() && text.contains("event: token") {
            first_token_at = Some(started.elapsed());
        }
    }
    let ended_at = started.elapsed();
    let first_token_at = first_token_at.expect("a token event");
    println!("first token after {first_token_at:?}, stream ended after {ended_at:?}");
    // About 40 chunks 100 ms apart: the first token came while the provider was writing.
    assert!(
        ended_at - first_token_at >= Duration::from_millis(1500),
        "the first token did not arrive before the provider had finished"
    );
    let done = text
        .split("\n\n")
        .find_map(|event| {
            event
                .strip_prefix("event: done\ndata: ")
                .and_then(|data| serde_json::from_str::<Value>(data).ok())
        })
        .expect("a done event");
    assert_eq!(
        done["metadata"]["provider"], "openai",
        "answered with the vault's key"
    );
    assert!(
        done["usage"]["completionTokens"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );

    stack.stop().await;
    let _ = database::drop(&database).await;
    let _ = database::drop(&format!("{database}_diffs")).await;
}
