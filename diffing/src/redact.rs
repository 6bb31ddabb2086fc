//! Masks secrets before anything is stored or shown: credential headers (and any header
//! whose name says it holds a token, key, secret, session or password), secret-looking
//! JSON keys, tokens and keys inside any text, and patterns configured by the operator.
//!
//! Samples of a *sensitive* route keep no value at all ([`Redactor::private_body`] and
//! friends): each JSON leaf becomes a typed placeholder with a short digest, so a sample
//! still shows the structure and whether two values are equal, never what they are.

use std::fmt::Write as _;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;
use sha2::{Digest, Sha256};

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

/// Words that make a header a credential whatever its full name (`x-refresh-token`,
/// `x-session-id`, `x-client-secret`, …).
const SECRET_HEADER_WORDS: [&str; 7] = [
    "token", "secret", "key", "auth", "cookie", "session", "password",
];

/// Headers of a sensitive route's samples shown as they are: they describe the message,
/// not the user.
const PLAIN_HEADERS: [&str; 10] = [
    "content-type",
    "content-length",
    "content-encoding",
    "cache-control",
    "accept",
    "accept-encoding",
    "vary",
    "date",
    "x-request-id",
    "x-studyflow-served-by",
];

/// Mixed into every digest: random per process and never stored, so a digest of a short
/// value (a card number, a PIN) cannot be reversed by trying every candidate. Digests
/// compare within one gateway process (the two sides of a pair, repeated requests).
static DIGEST_SALT: LazyLock<[u8; 32]> = LazyLock::new(rand::random);

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
    pub fn new(patterns: &[String]) -> crate::Result<Self> {
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

    /// A header pair with its value masked when it is a credential: a known credential
    /// header, or any header whose name contains token, secret, key, auth, cookie,
    /// session or password.
    pub fn header(&self, name: &str, value: &str) -> String {
        if secret_header(name) {
            MASK.to_owned()
        } else {
            self.text(value)
        }
    }

    /// A header value of a sensitive route: credentials masked, a few descriptive
    /// headers (content type, length, caching) as they are, any other value digested.
    pub fn private_header(&self, name: &str, value: &str) -> String {
        if secret_header(name) {
            MASK.to_owned()
        } else if PLAIN_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            self.text(value)
        } else {
            placeholder("text", value.as_bytes())
        }
    }

    /// A JSON value of a sensitive route: objects and arrays keep their keys and
    /// lengths, every string, number and boolean becomes a typed placeholder with a
    /// digest (`"<string sha256:1a2b3c4d len=16>"`); `null` stays.
    pub fn private_json(&self, value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.private_json(v)))
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.private_json(v)).collect())
            }
            Value::String(s) => Value::from(placeholder("string", s.as_bytes())),
            Value::Number(n) => Value::from(placeholder("number", n.to_string().as_bytes())),
            Value::Bool(b) => Value::from(placeholder("bool", b.to_string().as_bytes())),
            Value::Null => Value::Null,
        }
    }

    /// A body of a sensitive route as stored: JSON through [`Self::private_json`],
    /// anything else as its length and digest. An empty body stays empty.
    pub fn private_body(&self, bytes: &[u8]) -> Value {
        if bytes.is_empty() {
            return Value::from("");
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => self.private_json(&value),
            Err(_) if std::str::from_utf8(bytes).is_ok() => Value::from(placeholder("text", bytes)),
            Err(_) => Value::from(placeholder("bytes", bytes)),
        }
    }

    /// A request target of a sensitive route: the path as it is (it names the route),
    /// every query value digested.
    pub fn private_uri(&self, uri: &str) -> String {
        let Some((path, query)) = uri.split_once('?') else {
            return self.text(uri);
        };
        let query = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) => format!("{name}={}", placeholder("text", value.as_bytes())),
                None => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        format!("{}?{query}", self.text(path))
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

fn secret_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_HEADERS.contains(&lower.as_str())
        || SECRET_HEADER_WORDS.iter().any(|w| lower.contains(w))
}

/// `<kind sha256:xxxxxxxx len=N>`: what a value was, never the value.
fn placeholder(kind: &str, bytes: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(*DIGEST_SALT)
        .chain_update(bytes)
        .finalize();
    let mut short = String::with_capacity(8);
    for byte in &digest[..4] {
        let _ = write!(short, "{byte:02x}");
    }
    format!("<{kind} sha256:{short} len={}>", bytes.len())
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

    #[test]
    fn secret_looking_headers_are_masked_on_every_route() {
        let r = Redactor::default();
        for name in [
            "x-refresh-token",
            "X-Session-Id",
            "x-client-secret",
            "x-encryption-key",
            "x-user-password",
            "x-auth-user",
        ] {
            assert_eq!(r.header(name, "s3cr3t-value"), MASK, "{name}");
        }
        assert_eq!(r.header("accept-language", "de"), "de");
    }

    #[test]
    fn sensitive_samples_keep_shapes_and_digests_only() {
        let r = Redactor::default();
        let card = "4111111111111111";
        let body = json!({"action": "encrypt", "data": card, "n": 42, "ok": true, "none": null, "list": ["a"]});
        let private = r.private_body(body.to_string().as_bytes());
        // Every leaf is a placeholder or null: no value kept as it was. Leaves are
        // walked rather than the text searched, since a digest's hex may read "42".
        assert!(!private.to_string().contains(card), "{private}");
        let mut leaves = vec![&private];
        while let Some(value) = leaves.pop() {
            match value {
                Value::Object(map) => leaves.extend(map.values()),
                Value::Array(items) => leaves.extend(items),
                Value::Null => {}
                Value::String(s) => assert!(s.starts_with('<') && s.contains(" sha256:"), "{s}"),
                other => panic!("{other} kept in {private}"),
            }
        }
        let data = private["data"].as_str().expect("placeholder");
        assert!(
            data.starts_with("<string sha256:") && data.ends_with(" len=16>"),
            "{data}"
        );
        assert!(
            private["n"]
                .as_str()
                .is_some_and(|n| n.starts_with("<number sha256:"))
        );
        assert!(
            private["ok"]
                .as_str()
                .is_some_and(|b| b.starts_with("<bool sha256:"))
        );
        assert!(private["none"].is_null());
        assert_eq!(private["list"].as_array().map(Vec::len), Some(1));
        // Equal values get equal digests, different values different ones.
        let again = r.private_json(&json!({"data": card, "other": "4111111111111112"}));
        assert_eq!(again["data"], private["data"]);
        assert_ne!(again["other"], private["data"]);

        let plain = r.private_body(format!("card={card}").as_bytes());
        assert!(
            plain
                .as_str()
                .is_some_and(|p| p.starts_with("<text sha256:") && p.ends_with(" len=21>"))
        );
        assert!(!r.private_header("x-card", card).contains(card));
        assert_eq!(r.private_header("x-refresh-token", card), MASK);
        assert_eq!(
            r.private_header("content-type", "application/json"),
            "application/json"
        );
        let uri = r.private_uri(&format!("/functions/v1/encryption?card={card}&flag"));
        assert!(
            uri.starts_with("/functions/v1/encryption?card=<text sha256:")
                && !uri.contains(card)
                && uri.ends_with("&flag"),
            "{uri}"
        );
    }
}
