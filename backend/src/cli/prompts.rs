//! `studyflow-backend prompts render|check`: what the backend would send a provider,
//! and whether a directory of templates would start.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::ai_types::{AiUse, ChainEntry};
use crate::config::BackendConfig;
use crate::functions::{
    ai_study_analytics, ai_study_recommendations, ai_tutor_professional, ai_tutor_stream,
};
use crate::js::errors::get;
use crate::js::value::truthy;
use crate::prompts::{FUNCTIONS, Prompts};

#[derive(Debug, clap::Subcommand)]
pub enum PromptsCommand {
    /// Print the provider request (model, messages, temperature, max_tokens) the backend
    /// would send for a request body. ai-study-analytics takes its variables instead:
    /// {"sessions":[…],"tasks":[…],"goals":[…]}.
    Render {
        /// ai-tutor-professional, ai-tutor-stream, ai-study-analytics or ai-study-recommendations.
        function: String,
        /// The request body (JSON).
        #[arg(long, default_value = "{}")]
        body: String,
        /// Templates to use instead of PROMPTS_DIR.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Check a directory of templates as start-up would: syntax, variables, a sample
    /// request. Without DIR, PROMPTS_DIR, else the shipped templates.
    Check { dir: Option<PathBuf> },
}

/// Runs one command; what it prints goes to stdout.
pub fn run(config: &BackendConfig, command: PromptsCommand) -> anyhow::Result<()> {
    match command {
        PromptsCommand::Check { dir } => {
            let dir = dir.or_else(|| config.prompts.dir.clone());
            let prompts = load(dir.as_deref())?;
            for (function, origin) in prompts.origins() {
                println!("{function}: ok ({origin})");
            }
            Ok(())
        }
        PromptsCommand::Render {
            function,
            body,
            dir,
        } => {
            let dir = dir.or_else(|| config.prompts.dir.clone());
            let prompts = load(dir.as_deref())?;
            let request = render(&prompts, config, &function, &body)?;
            println!("{}", serde_json::to_string_pretty(&request)?);
            Ok(())
        }
    }
}

fn load(dir: Option<&Path>) -> anyhow::Result<Prompts> {
    Prompts::load(dir).map_err(|why| anyhow::anyhow!("{why}"))
}

/// The provider request of `function` for `body`.
pub fn render(
    prompts: &Prompts,
    config: &BackendConfig,
    function: &str,
    body: &str,
) -> anyhow::Result<Value> {
    let parsed: Value = serde_json::from_str(body).context("--body is not JSON")?;
    let request = match function {
        "ai-tutor-professional" => {
            let message = get(Some(&parsed), "message").map_err(anyhow::Error::msg)?;
            let Some(Value::String(message)) = message.filter(|m| truthy(Some(m))) else {
                bail!(
                    "the body has no message: the function answers 400 \"Message is required and must be a string\""
                );
            };
            ai_tutor_professional::payload(prompts, message, &parsed)
        }
        "ai-tutor-stream" => ai_tutor_stream::prompt_of(prompts, body.as_bytes())
            .map(|(_, prompt)| {
                json!({
                    "chain": ChainEntry::list_text(config.ai.chain(AiUse::TutorStream)),
                    "messages": prompt.messages.iter().map(|m| json!({"role": m.role.as_str(), "content": m.content})).collect::<Vec<_>>(),
                    "temperature": prompt.temperature,
                    "max_tokens": prompt.max_tokens,
                    "stream": true,
                })
            })
            .map_err(|refusal| format!("the function answers 400 {refusal}")),
        "ai-study-analytics" => ai_study_analytics::payload(prompts, &parsed),
        "ai-study-recommendations" => ai_study_recommendations::payload(prompts, &parsed),
        other => {
            let known: Vec<&str> = FUNCTIONS.iter().map(|spec| spec.function).collect();
            bail!("no prompts for {other:?}; functions with prompts: {}", known.join(", "))
        }
    };
    request.map_err(anyhow::Error::msg)
}
