//! Time to first token of the streaming tutor: the fake provider called directly with the
//! streaming request the backend sends, the backend's `ai-tutor-stream`, and the same
//! route through the gateway, measured in one run, requests interleaved so that the
//! three targets share the machine's conditions.
//!
//! Time to first token is from sending the request to receiving the first piece of the
//! answer's text (an OpenAI `data:` chunk with content, or an `event: token`); the time
//! to the end of the stream is reported beside it. One request at a time, on a kept-alive
//! connection per target, as a browser tab does.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use studyflow_backend::functions::ai_tutor_professional::conversation;
use studyflow_backend::prompts::Prompts;

use crate::report::ms;
use studyflow_testkit::stack::{Stack, StackOptions};

/// The three ways to the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The fake provider's streaming chat completions, called directly.
    Direct,
    /// `POST /functions/v1/ai-tutor-stream` on the backend.
    Backend,
    /// The same through the gateway.
    Gateway,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Direct, Target::Backend, Target::Gateway];

    pub fn label(self) -> &'static str {
        match self {
            Target::Direct => "fake provider, direct",
            Target::Backend => "backend (ai-tutor-stream)",
            Target::Gateway => "gateway → backend",
        }
    }
}

/// Every sample of one target, in milliseconds.
#[derive(Debug, Clone)]
pub struct Samples {
    pub target: Target,
    pub first_token_ms: Vec<f64>,
    pub end_ms: Vec<f64>,
}

/// `q` (0–1) of sorted `values`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    values
}

const MESSAGE: &str = "Explain how photosynthesis works";

/// The request the backend sends the provider for [`MESSAGE`] (`AI_CHAIN_TUTOR_STREAM=deepseek`).
fn direct_body() -> anyhow::Result<Value> {
    let prompts = Prompts::shipped().map_err(|why| anyhow::anyhow!("shipped prompts: {why}"))?;
    let messages = conversation(&prompts, "ai-tutor-stream", MESSAGE, &json!({}), None)
        .map_err(|why| anyhow::anyhow!("the tutor's prompt: {why}"))?;
    Ok(json!({
        "model": "deepseek-chat",
        "messages": messages,
        "stream": true,
        "temperature": 0.7,
        "max_tokens": 2000,
        "stream_options": {"include_usage": true},
    }))
}

/// A token of a signed-up student of their own, so that the per-user AI rate limit (60 a
/// minute) never shapes the measurement. The backend answers 401 to a token whose user
/// does not exist, as Supabase's `getUser` does, so the student is signed up first
/// (before the clock starts).
async fn student(stack: &Stack) -> anyhow::Result<String> {
    let name = format!("bench-{}", uuid::Uuid::new_v4());
    let (id, email) = studyflow_testkit::stack::user_identity(&name);
    studyflow_testkit::database::ensure_user(&stack.database_url, id, &email).await?;
    Ok(studyflow_testkit::stack::user_token(&name, 600))
}

/// One request: (time to first token, time to the end), in milliseconds.
async fn one(
    client: &reqwest::Client,
    target: Target,
    stack: &Stack,
) -> anyhow::Result<(f64, f64)> {
    let (url, body, marker) = match target {
        Target::Direct => (
            format!("{}/chat/completions", stack.providers_url),
            direct_body()?,
            "\"content\":\"",
        ),
        Target::Backend => (
            format!("{}/functions/v1/ai-tutor-stream", stack.backend_url),
            json!({"message": MESSAGE}),
            "event: token",
        ),
        Target::Gateway => (
            format!("{}/functions/v1/ai-tutor-stream", stack.gateway_url),
            json!({"message": MESSAGE}),
            "event: token",
        ),
    };
    let mut request = client.post(url).json(&body);
    request = match target {
        Target::Direct => request.bearer_auth("fake-deepseek-key"),
        Target::Backend | Target::Gateway => request.bearer_auth(student(stack).await?),
    };
    let started = Instant::now();
    let response = request.send().await?;
    if !response.status().is_success() {
        bail!("{} answered {}", target.label(), response.status());
    }
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    let mut first = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if first.is_none() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            // The role chunk (`"content":""`) carries no text yet.
            if seen.replace("\"content\":\"\"", "").contains(marker) {
                first = Some(started.elapsed());
            }
        }
    }
    let end = started.elapsed();
    let first = first.with_context(|| format!("{}: no token in the stream", target.label()))?;
    Ok((first.as_secs_f64() * 1e3, end.as_secs_f64() * 1e3))
}

/// Starts the stack (release binaries from `STUDYFLOW_BIN_DIR` or beside this one) and
/// measures `requests` streams per target after `warmup` each.
pub async fn run(work_dir: &Path, requests: usize, warmup: usize) -> anyhow::Result<Vec<Samples>> {
    std::fs::create_dir_all(work_dir)?;
    let mut options = StackOptions::for_bench(work_dir);
    options
        .backend_env
        .push(("AI_CHAIN_TUTOR_STREAM".into(), "deepseek".into()));
    let stack = Stack::start(options).await?;
    let result = measure(&stack, requests, warmup).await;
    stack.stop().await;
    result
}

async fn measure(stack: &Stack, requests: usize, warmup: usize) -> anyhow::Result<Vec<Samples>> {
    // One kept-alive connection per target, as a browser tab keeps one to its origin.
    let clients: Vec<reqwest::Client> = Target::ALL
        .iter()
        .map(|_| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build()
        })
        .collect::<Result<_, _>>()?;
    let mut samples: Vec<Samples> = Target::ALL
        .iter()
        .map(|&target| Samples {
            target,
            first_token_ms: Vec::with_capacity(requests),
            end_ms: Vec::with_capacity(requests),
        })
        .collect();
    for round in 0..warmup + requests {
        // Rotate the order each round so no target always goes first.
        for offset in 0..Target::ALL.len() {
            let index = (round + offset) % Target::ALL.len();
            let (first, end) = one(&clients[index], Target::ALL[index], stack).await?;
            if round >= warmup {
                samples[index].first_token_ms.push(first);
                samples[index].end_ms.push(end);
            }
        }
    }
    Ok(samples)
}

/// The Markdown section.
pub fn table(samples: &[Samples], requests: usize) -> String {
    let mut out = format!(
        "## Time to first token (streaming tutor)\n\n\
         The same answer three ways, {requests} streams each after a warm-up, requests interleaved, one at a \
         time on a kept-alive connection (release builds; the fake provider streams about 40 chunks with no \
         delay between them, so the end of the stream is the provider's whole answer). Time to first token is \
         from sending the request to the first piece of text: an OpenAI `data:` chunk with content when \
         calling the fake directly, an `event: token` from the backend.\n\n\
         | target | TTFT p50 ms | TTFT p90 ms | TTFT p99 ms | TTFT mean ms | end of stream p50 ms |\n\
         |---|---:|---:|---:|---:|---:|\n"
    );
    for s in samples {
        let first = sorted(&s.first_token_ms);
        let end = sorted(&s.end_ms);
        let mean = first.iter().sum::<f64>() / first.len().max(1) as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            s.target.label(),
            ms(quantile(&first, 0.5)),
            ms(quantile(&first, 0.9)),
            ms(quantile(&first, 0.99)),
            ms(mean),
            ms(quantile(&end, 0.5)),
        );
    }
    let direct = samples.iter().find(|s| s.target == Target::Direct);
    if let Some(direct) = direct {
        let base = sorted(&direct.first_token_ms);
        out.push_str(
            "\n| overhead over the direct call | TTFT p50 ms | TTFT p99 ms |\n|---|---:|---:|\n",
        );
        for s in samples.iter().filter(|s| s.target != Target::Direct) {
            let first = sorted(&s.first_token_ms);
            let _ = writeln!(
                out,
                "| {} | +{} | +{} |",
                s.target.label(),
                ms(quantile(&first, 0.5) - quantile(&base, 0.5)),
                ms(quantile(&first, 0.99) - quantile(&base, 0.99)),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_show_each_target_and_the_overheads() {
        let samples = vec![
            Samples {
                target: Target::Direct,
                first_token_ms: vec![1.0, 2.0, 3.0],
                end_ms: vec![5.0, 6.0, 7.0],
            },
            Samples {
                target: Target::Gateway,
                first_token_ms: vec![3.0, 4.0, 5.0],
                end_ms: vec![9.0, 9.0, 9.0],
            },
        ];
        let table = table(&samples, 3);
        assert!(
            table.contains("| fake provider, direct | 2.00 |"),
            "{table}"
        );
        assert!(
            table.contains("| gateway → backend | +2.00 | +2.00 |"),
            "{table}"
        );
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 3.0);
    }
}
