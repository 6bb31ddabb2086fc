//! semantic-search: the backend's embeddings (candle) against an independent reference
//! computed here, the NumPy forward pass of `tests/reference/minilm.py` on the same
//! weights; the legacy's error answers; the backend's own limits; no model, no service.

use std::process::Stdio;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::support::TestApp;

/// Varied inputs: empty, one word, questions, long (past 256 tokens), non-ASCII, noise.
fn sentences() -> Vec<String> {
    let mut all: Vec<String> = [
        "",
        "hello",
        "This is an example sentence",
        "What is the derivative of x squared?",
        "Explain photosynthesis to a ten-year-old.",
        "The mitochondria is the powerhouse of the cell.",
        "Quelle est la capitale de l'Australie ? Canberra, pas Sydney.",
        "Die Würde des Menschen ist unantastbar.",
        "東京は日本の首都です。",
        "Привет, как дела?",
        "I love studying with spaced repetition 😀✓",
        "   leading and trailing spaces   ",
        "UPPER CASE AND lower case",
        "x = (-b ± √(b² − 4ac)) / 2a",
        "https://example.com/path?query=1&other=two",
        "tab\tseparated\nand\nnew lines",
        "a",
        "12345 67890",
        "Pomodoro: 25 minutes of focus, then a 5 minute break.",
        "Graph theory: Dijkstra's algorithm finds shortest paths with non-negative weights.",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    all.push("Studying for exams takes patience and practice. ".repeat(60));
    all.push(format!(
        "{} tail words that the model never reads",
        "word ".repeat(300)
    ));
    all.push("ünïcödé ".repeat(200));
    all
}

/// The reference vectors of `texts`.
async fn reference(texts: &[String]) -> Vec<Vec<f64>> {
    let root = studyflow_testkit::stack::repo_root();
    let mut child = tokio::process::Command::new("python3")
        .arg(root.join("tests/reference/minilm.py"))
        .arg("embed")
        .env("PYTHONPATH", studyflow_testkit::stack::python_deps())
        .env(
            "EMBEDDING_MODEL_DIR",
            studyflow_testkit::stack::embedding_model_dir(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the reference (scripts/setup.sh installs its packages)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(json!(texts).to_string().as_bytes())
        .await
        .expect("texts written");
    drop(stdin);
    let output = child.wait_with_output().await.expect("reference ran");
    assert!(output.status.success(), "the reference failed");
    serde_json::from_slice(&output.stdout).expect("reference vectors")
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn vector(answer: &Value) -> Vec<f64> {
    answer["embedding"]
        .as_array()
        .expect("an embedding array")
        .iter()
        .map(|x| x.as_f64().expect("numbers"))
        .collect()
}

async fn with_model() -> TestApp {
    TestApp::start_with("semantic", |config| {
        config.embedding.model_dir = Some(studyflow_testkit::stack::embedding_model_dir());
        config.embedding.max_query_chars = 20_000;
    })
    .await
}

#[tokio::test]
async fn embeddings_match_an_independent_reference() {
    let app = with_model().await;
    let texts = sentences();
    assert!(texts.len() >= 20);
    let expected = reference(&texts).await;
    let mut worst = 1.0_f64;
    for (text, expected) in texts.iter().zip(&expected) {
        let answer = app
            .post("semantic-search", &[], json!({"query": text}))
            .await;
        assert_eq!(answer.status, 200, "{text:?}: {}", answer.text);
        let got = vector(&answer.body);
        assert_eq!(got.len(), 384);
        let norm = got.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{text:?}: norm {norm}");
        let similarity = cosine(&got, expected);
        worst = worst.min(similarity);
        assert!(
            similarity >= 0.9999,
            "{text:?}: cosine {similarity} with the reference"
        );
    }
    println!(
        "semantic-search: {} sentences, lowest cosine with the reference {worst:.7}",
        texts.len()
    );
    app.finish().await;
}

/// Requests that arrive together are computed in batches (padded to the longest); each
/// answer is the one it would get alone.
#[tokio::test]
async fn concurrent_requests_are_batched_without_changing_answers() {
    let app = with_model().await;
    let texts = sentences();
    let mut alone = Vec::new();
    for text in &texts {
        alone.push(vector(
            &app.post("semantic-search", &[], json!({"query": text}))
                .await
                .body,
        ));
    }
    let together = futures_util::future::join_all(texts.iter().map(|text| {
        let app = &app;
        async move {
            vector(
                &app.post("semantic-search", &[], json!({"query": text}))
                    .await
                    .body,
            )
        }
    }))
    .await;
    for ((text, a), b) in texts.iter().zip(&alone).zip(&together) {
        let similarity = cosine(a, b);
        assert!(similarity >= 0.99999, "{text:?}: {similarity}");
    }
    app.finish().await;
}

#[tokio::test]
async fn bad_requests_get_the_legacy_answers_and_long_queries_a_413() {
    let app = with_model().await;
    let worker_error = json!({"code": "WORKER_ERROR", "message": "Function exited due to an error (please check logs)"});
    for body in [
        &b"{not json"[..],
        b"",
        b"null",
        b"[1]",
        b"{\"query\": 42}",
        b"{}",
    ] {
        let answer = app.post_raw("semantic-search", &[], body).await;
        assert_eq!(answer.status, 500, "{}", String::from_utf8_lossy(body));
        assert_eq!(answer.body, worker_error);
        assert!(
            !answer
                .headers
                .keys()
                .any(|name| name.as_str().starts_with("access-control-")),
            "no CORS headers, as the legacy"
        );
        assert_eq!(answer.header("content-type"), Some("application/json"));
    }
    let options = app
        .request(Method::OPTIONS, "semantic-search", &[], None)
        .await;
    assert_eq!(options.status, 500, "OPTIONS is an ordinary request here");

    let long = app
        .post("semantic-search", &[], json!({"query": "é".repeat(20_001)}))
        .await;
    assert_eq!(long.status, 413);
    assert_eq!(
        long.body,
        json!({"error": "query is too long: at most 20000 characters"})
    );
    app.finish().await;
}

#[tokio::test]
async fn without_the_model_the_function_answers_503_and_ready_says_why() {
    let app = TestApp::start("nomodel").await;
    let answer = app
        .post("semantic-search", &[], json!({"query": "hello"}))
        .await;
    assert_eq!(answer.status, 503);
    assert!(
        answer.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("EMBEDDING_MODEL_DIR is not set")),
        "{}",
        answer.text
    );
    let ready = app.request(Method::GET, "/ready", &[], None).await;
    assert_eq!(ready.status, 200, "the rest of the backend serves");
    assert_eq!(ready.body["status"], "degraded");
    assert!(
        ready.body["checks"]["embedding"]
            .as_str()
            .is_some_and(|e| e.contains("EMBEDDING_MODEL_DIR is not set")),
        "{}",
        ready.text
    );
    app.finish().await;

    let broken = std::env::temp_dir().join(format!("no-model-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&broken).expect("dir");
    let app = TestApp::start_with("badmodel", |config| {
        config.embedding.model_dir = Some(broken.clone());
    })
    .await;
    let answer = app
        .post("semantic-search", &[], json!({"query": "hello"}))
        .await;
    assert_eq!(answer.status, 503);
    assert!(
        answer.text.contains("config.json is missing"),
        "{}",
        answer.text
    );
    app.finish().await;
    let _ = std::fs::remove_dir_all(&broken);
}
