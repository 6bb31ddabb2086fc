//! Parity: the request corpus of `tests/parity/corpus.json` sent to the legacy stand-in
//! and to the backend (both as real processes, sharing one database), answers compared
//! as JSON values with `studyflow_diffing::diff_json` after removing the contract's noise
//! paths and intentional fixes; status and CORS headers compared too. What each side
//! sent the (fake) providers is compared too, request by request: provider, path,
//! credentials present, and the body byte for byte as JSON (model, every message,
//! temperature, max tokens, stream flag). The stand-in builds its prompts with plain
//! JavaScript strings and the backend with its templates (`backend/prompts`), so this
//! is what checks the templates' JavaScript semantics. Then encryption round trips
//! across the two sides, both ways, and a prompt change in `PROMPTS_DIR` reaching the
//! provider without a rebuild.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use studyflow_testkit::stack::{Stack, StackOptions};

const CORPUS: &str = include_str!("../parity/corpus.json");

#[derive(Debug, Deserialize)]
struct Corpus {
    noise: BTreeMap<String, Vec<String>>,
    intentional_fixes: BTreeMap<String, Vec<String>>,
    /// Embeddings, compared by direction.
    #[serde(default)]
    vectors: BTreeMap<String, Vec<String>>,
    seed: Vec<String>,
    requests: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    function: String,
    #[serde(default = "post")]
    method: String,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    raw: Option<String>,
    #[serde(default)]
    noise: Vec<String>,
}

fn post() -> String {
    "POST".into()
}

/// What one side answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// `content-type` and every `access-control-*` header.
    headers: BTreeMap<String, String>,
    body: Value,
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    case: &Case,
    authorization: Option<&str>,
) -> Answer {
    let method = Method::from_bytes(case.method.as_bytes()).expect("method");
    let mut request = client.request(method, format!("{base}/functions/v1/{}", case.function));
    for (name, value) in &case.headers {
        request = request.header(name, value);
    }
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    if let Some(body) = &case.body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    } else if let Some(raw) = &case.raw {
        request = request
            .header("content-type", "application/json")
            .body(raw.clone());
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| {
            name.as_str() == "content-type" || name.as_str().starts_with("access-control-")
        })
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Removes the value at `pointer` (a JSON pointer without escapes), if present.
fn remove(value: &mut Value, pointer: &str) {
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return;
    };
    let target = if parent.is_empty() {
        Some(value)
    } else {
        value.pointer_mut(parent)
    };
    if let Some(Value::Object(map)) = target {
        map.shift_remove(key);
    }
}

#[tokio::test]
async fn legacy_and_backend_answer_the_corpus_alike() {
    let corpus: Corpus = serde_json::from_str(CORPUS).expect("corpus parses");
    assert!(
        corpus.requests.len() >= 40,
        "the corpus holds at least 40 requests"
    );
    let functions: std::collections::BTreeSet<&str> = corpus
        .requests
        .iter()
        .map(|c| c.function.as_str())
        .collect();
    assert_eq!(
        functions.len(),
        9,
        "every function is in the corpus: {functions:?}"
    );

    let mut options = StackOptions::for_test("parity").expect("options");
    let database = options.database.clone();
    // The shared Redis: keep this stack's rate-limit windows apart from other tests'.
    options
        .backend_env
        .push(("REDIS_KEY_PREFIX".into(), format!("{database}:")));
    let stack = Stack::start(options).await.expect("stack starts");

    let db = sqlx::PgPool::connect(&stack.database_url)
        .await
        .expect("db");
    for statement in &corpus.seed {
        sqlx::query(statement).execute(&db).await.expect("seed");
    }

    let stranger = studyflow_testkit::tokens::access_token(
        &stack.jwt_secret,
        &uuid::Uuid::new_v4().to_string(),
        "stranger@gmail.com",
        3600,
    );
    let authorization = |auth: Option<&str>| -> Option<String> {
        match auth? {
            "demo" => Some(format!("Bearer {}", stack.demo_token(3600))),
            "expired" => Some(format!("Bearer {}", stack.demo_token(-3600))),
            "garbage" => Some("Bearer not-a-token".into()),
            "anon" => Some(format!("Bearer {}", stack.anon_key())),
            "stranger" => Some(format!("Bearer {stranger}")),
            other => panic!("unknown auth {other}"),
        }
    };

    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    let mut provider_cases = 0;
    let (_, mut seen) = sent_to_providers(&client, &stack.providers_url, 0).await;
    for case in &corpus.requests {
        let auth = authorization(case.auth.as_deref());
        let legacy = send(&client, &stack.legacy_url, case, auth.as_deref()).await;
        let (legacy_sent, after_legacy) =
            sent_to_providers(&client, &stack.providers_url, seen).await;
        let backend = send(&client, &stack.backend_url, case, auth.as_deref()).await;
        let (backend_sent, after_backend) =
            sent_to_providers(&client, &stack.providers_url, after_legacy).await;
        seen = after_backend;
        if !legacy_sent.is_empty() {
            provider_cases += 1;
        }
        if legacy_sent != backend_sent {
            failures.push(json!({
                "case": case.name,
                "provider requests differ": {"legacy": legacy_sent, "backend": backend_sent},
            }));
        }

        let mut ignored: Vec<&String> = case.noise.iter().collect();
        for table in [&corpus.noise, &corpus.intentional_fixes] {
            if let Some(paths) = table.get(&case.function) {
                ignored.extend(paths);
            }
        }
        let (mut left, mut right) = (legacy.body.clone(), backend.body.clone());
        for pointer in &ignored {
            // Noise must be noise on both sides: present in one only is a difference.
            let (l, r) = (
                left.pointer(pointer).is_some(),
                right.pointer(pointer).is_some(),
            );
            if l == r {
                remove(&mut left, pointer);
                remove(&mut right, pointer);
            }
        }
        let rules = studyflow_diffing::DiffRules {
            vectors: corpus
                .vectors
                .get(&case.function)
                .into_iter()
                .flatten()
                .map(|path| studyflow_diffing::VectorRule {
                    path: path.clone(),
                    min_cosine: 0.9999,
                })
                .collect(),
            ..Default::default()
        }
        .compile()
        .expect("vector rules");
        let differences = studyflow_diffing::diff_json_with(&left, &right, &rules);
        if legacy.status != backend.status
            || legacy.headers != backend.headers
            || !differences.is_empty()
        {
            failures.push(json!({
                "case": case.name,
                "legacy": {"status": legacy.status, "headers": legacy.headers, "body": legacy.body},
                "backend": {"status": backend.status, "headers": backend.headers, "body": backend.body},
                "differences": differences.iter().map(|d| json!({"path": d.path, "kind": d.kind, "legacy": d.left, "backend": d.right})).collect::<Vec<_>>(),
            }));
        }
    }
    println!(
        "parity: {} requests ({provider_cases} calling a provider), {} differing",
        corpus.requests.len(),
        failures.len()
    );
    assert!(
        provider_cases >= 15,
        "the corpus exercises the provider calls: {provider_cases} cases did"
    );
    assert!(
        failures.is_empty(),
        "answers differ:\n{}",
        serde_json::to_string_pretty(&failures).unwrap_or_default()
    );

    encryption_round_trips(&client, &stack).await;

    db.close().await;
    stack.stop().await;
    forget_redis_keys(&format!("{database}:")).await;
    studyflow_testkit::database::drop(&database)
        .await
        .expect("drop database");
}

/// What the fake providers received after request number `after`, without the numbers,
/// and the number of the last request.
async fn sent_to_providers(
    client: &reqwest::Client,
    providers_url: &str,
    after: u64,
) -> (Vec<Value>, u64) {
    let recorded: Value = client
        .get(format!("{providers_url}/_fake/requests"))
        .send()
        .await
        .expect("fake providers answer")
        .json()
        .await
        .expect("json");
    let mut last = after;
    let mut sent = Vec::new();
    for entry in recorded["requests"].as_array().into_iter().flatten() {
        let seq = entry["seq"].as_u64().unwrap_or(0);
        if seq <= after {
            continue;
        }
        last = last.max(seq);
        let mut entry = entry.clone();
        if let Some(fields) = entry.as_object_mut() {
            fields.shift_remove("seq");
        }
        sent.push(entry);
    }
    (sent, last)
}

/// Ciphertexts from either side decrypt on the other.
async fn encryption_round_trips(client: &reqwest::Client, stack: &Stack) {
    let authorization = format!("Bearer {}", stack.demo_token(3600));
    let call = |base: String, body: Value| {
        let request = client
            .post(format!("{base}/functions/v1/encryption"))
            .header("authorization", &authorization)
            .json(&body);
        async move {
            let response = request.send().await.expect("answered");
            assert_eq!(response.status().as_u16(), 200);
            let body: Value = response.json().await.expect("json");
            body["result"].as_str().expect("result").to_owned()
        }
    };
    let sides = [
        ("legacy", stack.legacy_url.clone()),
        ("backend", stack.backend_url.clone()),
    ];
    for plaintext in [
        json!("Meet at 10:00"),
        json!("ünïcödé ✓ 😀 and \"quotes\"\n"),
        json!(12345),
        json!("x".repeat(5000)),
    ] {
        for (from_name, from) in &sides {
            for (to_name, to) in &sides {
                if from_name == to_name {
                    continue;
                }
                let sealed = call(
                    from.clone(),
                    json!({"action": "encrypt", "data": plaintext}),
                )
                .await;
                let opened = call(to.clone(), json!({"action": "decrypt", "data": sealed})).await;
                let expected = match &plaintext {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                assert_eq!(opened, expected, "{from_name} → {to_name}");
            }
        }
    }
}

/// Deletes the stack's rate-limit windows (they would expire within a minute anyway).
async fn forget_redis_keys(prefix: &str) {
    let Ok(client) = redis::Client::open(studyflow_testkit::stack::redis_url()) else {
        return;
    };
    let Ok(mut redis) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut redis)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query_async(&mut redis).await;
    }
}

/// An operator's template in `PROMPTS_DIR` reaches the provider with the built binary as
/// it is; `prompts render` prints what is sent, and a broken template stops start-up
/// with its file and line.
#[tokio::test]
async fn a_prompt_change_in_prompts_dir_reaches_the_provider_without_a_rebuild() {
    let root = studyflow_testkit::stack::repo_root();
    let shipped = std::fs::read_to_string(root.join("backend/prompts/ai-tutor-professional.jinja"))
        .expect("shipped template");
    let ours = shipped.replace(
        "You are an expert educational AI tutor.",
        "You are a patient tutor for first-year students.",
    );
    assert_ne!(ours, shipped);
    let dir = std::env::temp_dir().join(format!("prompts-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("prompts dir");
    std::fs::write(dir.join("ai-tutor-professional.jinja"), &ours).expect("template");

    let mut options = StackOptions::for_test("prompts").expect("options");
    let database = options.database.clone();
    options
        .backend_env
        .push(("PROMPTS_DIR".into(), dir.display().to_string()));
    let stack = Stack::start(options).await.expect("stack starts");
    let body = json!({"message": "Explain osmosis", "context": {"subject": "Biology"}});
    let client = reqwest::Client::new();
    let answer = client
        .post(format!(
            "{}/functions/v1/ai-tutor-professional",
            stack.backend_url
        ))
        .json(&body)
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status().as_u16(), 200);
    let (sent, _) = sent_to_providers(&client, &stack.providers_url, 0).await;
    let sent = &sent.last().expect("the provider was called")["body"];
    assert_eq!(
        sent["messages"][0]["content"]
            .as_str()
            .map(|s| s.lines().next()),
        Some(Some(
            "You are a patient tutor for first-year students. You specialize in Biology."
        )),
        "the operator's wording reached the provider: {sent}"
    );

    // `prompts render` shows exactly that request.
    let backend = studyflow_testkit::stack::bin_dir()
        .expect("binaries")
        .join("studyflow-backend");
    let rendered = std::process::Command::new(&backend)
        .args(["prompts", "render", "ai-tutor-professional", "--body"])
        .arg(body.to_string())
        .env("PROMPTS_DIR", &dir)
        .output()
        .expect("prompts render runs");
    assert!(rendered.status.success(), "{rendered:?}");
    let rendered: Value = serde_json::from_slice(&rendered.stdout).expect("json");
    assert_eq!(&rendered, sent);

    // A broken template: `prompts check` and start-up both refuse, naming file and line.
    std::fs::write(
        dir.join("ai-tutor-professional.jinja"),
        ours.replace("{{ message }}", "{{ mesage }}"),
    )
    .expect("template");
    let checked = std::process::Command::new(&backend)
        .args(["prompts", "check"])
        .arg(&dir)
        .output()
        .expect("prompts check runs");
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(!checked.status.success());
    assert!(
        stderr.contains("ai-tutor-professional.jinja, line ")
            && stderr.contains("unknown variable `mesage`"),
        "{stderr}"
    );
    let serve = std::process::Command::new(&backend)
        .env("PROMPTS_DIR", &dir)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", &stack.database_url)
        .output()
        .expect("backend runs");
    assert!(!serve.status.success(), "start-up stops");
    assert!(
        String::from_utf8_lossy(&serve.stderr).contains("unknown variable `mesage`"),
        "{serve:?}"
    );

    stack.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    studyflow_testkit::database::drop(&database)
        .await
        .expect("drop database");
}
