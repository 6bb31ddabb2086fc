//! Masks secrets before anything is stored or shown: credential headers, secret-looking
//! JSON keys, tokens and keys inside any text, and patterns configured by the operator.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// What replaces a secret.
pub const MASK: &str = "[REDACTED]";

/// Headers whose whole value is a credential.
const SECRET_HEADERS: [&str; 8] = [
    "authorization",
    "proxy-authorization",
    "apikey",
    "x-api-key",
    "x-goog-api-key",
    "cookie",
    "set-cookie",
    "x-supabase-auth",
];

/// JSON keys whose value is a secret, matched case-insensitively on the whole key.
static SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(password|passwd|secret|client_secret|token|access_token|refresh_token|id_token|api[_-]?key|apikey|authorization|private_key|encryption_key|.*_api_key|.*_secret)$")
        .expect("valid regex")
});

/// Secrets that can appear inside any text: JWTs, bearer credentials, provider keys,
/// and `key=`/`apikey=`/`token=` query parameters.
static SECRET_TEXT: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
        r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+",
        r"\b(sk|pk|rk)-(ant-|proj-)?[A-Za-z0-9_-]{16,}",
        r"\bAIza[0-9A-Za-z_-]{20,}",
        r"(?i)([?&](key|apikey|api_key|token|access_token)=)[^&\s#]+",
    ]
    .iter()
    .map(|p| Regex::new(p).expect("valid regex"))
    .collect()
});

/// Masks secrets; extra patterns come from configuration.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    extra: Vec<Regex>,
}

impl Redactor {
    /// A redactor with the built-in rules and `patterns` (regular expressions) on top.
    pub fn new(patterns: &[String]) -> Result<Self, regex::Error> {
        let extra = patterns
            .iter()
            .map(|p| Regex::new(p))
            .collect::<Result<_, _>>()?;
        Ok(Self { extra })
    }

    /// Masks every secret inside `text`.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for pattern in SECRET_TEXT.iter() {
            out = pattern
                .replace_all(&out, |caps: &regex::Captures<'_>| {
                    match caps.get(1).filter(|_| caps.len() > 2) {
                        // Query parameters keep their name: `?key=[REDACTED]`.
                        Some(name) if name.as_str().ends_with('=') => {
                            format!("{}{MASK}", name.as_str())
                        }
                        _ => MASK.to_owned(),
                    }
                })
                .into_owned();
        }
        for pattern in &self.extra {
            out = pattern.replace_all(&out, MASK).into_owned();
        }
        out
    }

    /// A header pair with its value masked when it is a credential.
    pub fn header(&self, name: &str, value: &str) -> String {
        if SECRET_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            MASK.to_owned()
        } else {
            self.text(value)
        }
    }

    /// Masks secret keys' values and secrets inside strings, recursively.
    pub fn json(&self, value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let masked = if SECRET_KEY.is_match(k) && !v.is_null() {
                            Value::from(MASK)
                        } else {
                            self.json(v)
                        };
                        (k.clone(), masked)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.json(v)).collect()),
            Value::String(s) => Value::String(self.text(s)),
            other => other.clone(),
        }
    }

    /// A body as stored: JSON with secrets masked, or masked text.
    pub fn body(&self, bytes: &[u8]) -> Value {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => self.json(&value),
            Err(_) => Value::String(self.text(&String::from_utf8_lossy(bytes))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn credentials_are_masked_everywhere() {
        let r = Redactor::new(&["student-\\d+".into()]).expect("patterns");
        assert_eq!(r.header("Authorization", "Bearer abc"), MASK);
        assert_eq!(r.header("apikey", "anything"), MASK);
        assert_eq!(
            r.header("content-type", "application/json"),
            "application/json"
        );
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl";
        let body = json!({
            "password": "hunter2",
            "nested": {"OPENAI_API_KEY": "x", "note": format!("token {jwt} and sk-proj-abcdefghijklmnopqrstu")},
            "url": "/v1beta/models/g:generateContent?key=AIzaSyA-secret-value-123456&alt=sse",
            "who": "student-42",
            "count": 3
        });
        let masked = r.json(&body).to_string();
        for secret in [
            "hunter2",
            jwt,
            "sk-proj-abcdefghijklmnopqrstu",
            "AIzaSyA-secret",
            "student-42",
        ] {
            assert!(!masked.contains(secret), "{secret} leaked: {masked}");
        }
        assert!(masked.contains("?key=[REDACTED]&alt=sse"), "{masked}");
        assert!(masked.contains("\"count\":3"));
    }
}
