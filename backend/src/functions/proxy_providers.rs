//! The provider table and message formatting shared by `ai-proxy` and
//! `ai-proxy-secure` (the legacy's `getProvider` and the per-provider message shapes).

use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::js::errors::{cannot_destructure, cannot_read, get_opt, method_missing};
use crate::js::value::truthy;
use crate::providers::{Endpoint, Provider};

/// What the proxy functions destructure from their body,
/// `const { provider, action, messages, prompt, model, temperature, maxTokens } = body`
/// (`prompt`: ai-proxy only).
#[derive(Debug, Clone, Copy)]
pub struct ProxyFields<'a> {
    pub provider: Option<&'a Value>,
    pub action: Option<&'a Value>,
    pub messages: Option<&'a Value>,
    pub prompt: Option<&'a Value>,
    pub model: Option<&'a Value>,
    pub temperature: Option<&'a Value>,
    pub max_tokens: Option<&'a Value>,
}

impl<'a> ProxyFields<'a> {
    /// The fields of `body`: a `null` body throws as destructuring it does, and a
    /// request without provider or action gets the legacy's error.
    pub fn of(body: &'a Value) -> Result<Self, String> {
        if body.is_null() {
            return Err(cannot_destructure(
                "provider",
                "(intermediate value)",
                Some(body),
            ));
        }
        let field = |name: &str| get_opt(Some(body), name);
        let fields = Self {
            provider: field("provider"),
            action: field("action"),
            messages: field("messages"),
            prompt: field("prompt"),
            model: field("model"),
            temperature: field("temperature"),
            max_tokens: field("maxTokens"),
        };
        if !truthy(fields.provider) || !truthy(fields.action) {
            return Err("Missing required parameters: provider and action".into());
        }
        Ok(fields)
    }
}

/// One row of the provider table.
#[derive(Debug, Clone, Copy)]
pub struct ProxyProvider {
    /// The name the request uses (`gemini`, `openai`, `claude`, `deepseek`).
    pub name: &'static str,
    pub endpoint: Endpoint,
    pub default_model: &'static str,
}

impl ProxyProvider {
    /// The row for the request's `provider` value (strict equality, as `switch` does).
    pub fn lookup(provider: Option<&Value>) -> Option<Self> {
        let row = |name, endpoint, default_model| Self {
            name,
            endpoint,
            default_model,
        };
        match provider.and_then(Value::as_str)? {
            "gemini" => Some(row(
                "gemini",
                Endpoint::GeminiGenerateContent,
                "gemini-1.5-flash",
            )),
            "openai" => Some(row(
                "openai",
                Endpoint::OpenAiChatCompletions,
                "gpt-4o-mini",
            )),
            "claude" => Some(row(
                "claude",
                Endpoint::AnthropicMessages,
                "claude-3-haiku-20240307",
            )),
            "deepseek" => Some(row(
                "deepseek",
                Endpoint::DeepSeekChatCompletions,
                "deepseek-chat",
            )),
            _ => None,
        }
    }

    pub fn provider(self) -> Provider {
        self.endpoint.provider()
    }

    /// The configured key (`CLAUDE_API_KEY`/`ANTHROPIC_API_KEY` for claude).
    pub fn key(self, state: &AppState) -> Option<String> {
        state
            .providers
            .key(self.provider())
            .map(|k| k.expose_secret().to_owned())
    }
}

/// `messages.map(m => ({role: m.role === "assistant" ? "model" : "user", parts: [{text: m.content}]}))`.
pub fn gemini_contents(messages: Option<&Value>) -> Result<Value, String> {
    let Some(Value::Array(items)) = messages else {
        return Err(method_missing(messages, "messages", "map"));
    };
    let mut contents = Vec::with_capacity(items.len());
    for item in items {
        if item.is_null() {
            return Err(cannot_read(Some(item), "role"));
        }
        let role = if item.get("role").and_then(Value::as_str) == Some("assistant") {
            "model"
        } else {
            "user"
        };
        let mut part = Map::new();
        if let Some(text) = item.get("content") {
            part.insert("text".into(), text.clone());
        }
        contents.push(json!({"role": role, "parts": [part]}));
    }
    Ok(Value::Array(contents))
}

/// `messages.filter(m => m.role !== "system")`.
pub fn claude_messages(messages: Option<&Value>) -> Result<Value, String> {
    let Some(Value::Array(items)) = messages else {
        return Err(method_missing(messages, "messages", "filter"));
    };
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        if item.is_null() {
            return Err(cannot_read(Some(item), "role"));
        }
        if item.get("role").and_then(Value::as_str) != Some("system") {
            kept.push(item.clone());
        }
    }
    Ok(Value::Array(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_shapes() {
        let messages = json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user"}
        ]);
        assert_eq!(
            gemini_contents(Some(&messages)).expect("array"),
            json!([
                {"role": "user", "parts": [{"text": "be brief"}]},
                {"role": "user", "parts": [{"text": "hi"}]},
                {"role": "model", "parts": [{"text": "hello"}]},
                {"role": "user", "parts": [{}]}
            ])
        );
        assert_eq!(
            claude_messages(Some(&messages))
                .expect("array")
                .as_array()
                .map(Vec::len),
            Some(3)
        );
        assert_eq!(
            gemini_contents(None).expect_err("throws"),
            "Cannot read properties of undefined (reading 'map')"
        );
        assert_eq!(
            claude_messages(Some(&json!("x"))).expect_err("throws"),
            "messages.filter is not a function"
        );
        assert_eq!(
            claude_messages(Some(&json!([null]))).expect_err("throws"),
            "Cannot read properties of null (reading 'role')"
        );
    }
}
