//! What the diff store keeps of a differing pair, and how it is made: the exchange and
//! its differences with every secret masked by the [`Redactor`] (for a `sensitive` route,
//! shapes and digests only: see [`Redactor::private_body`]). The gateway writes these
//! types and the admin pages read the same types back.

use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::capture::{CapturedResponse, Exchange, header_pairs};
use crate::json::{DiffKind, Difference, Section};
use crate::redact::Redactor;

/// A request as stored: method, masked address, headers and body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedactedRequest {
    pub method: String,
    pub uri: String,
    /// Name and masked value, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

/// An answer as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedactedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// The body was longer than the capture cap and is cut.
    #[serde(default)]
    pub truncated: bool,
}

/// A shadowed exchange as stored: the request, the answer the client got and the other
/// side's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedactedExchange {
    /// `legacy` or `new`: which side answered the client.
    pub served_by: String,
    /// The route is `sensitive`: no value was stored, only types, digests and lengths.
    #[serde(default)]
    pub sensitive: bool,
    pub request: RedactedRequest,
    pub served: RedactedResponse,
    pub shadow: RedactedResponse,
}

impl RedactedExchange {
    /// The side that answered the copy.
    pub fn shadowed_by(&self) -> &'static str {
        if self.served_by == "legacy" {
            "new"
        } else {
            "legacy"
        }
    }
}

/// One difference as stored, with its path shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDifference {
    pub section: Section,
    pub path: String,
    pub kind: DiffKind,
    /// The served side's value, masked.
    pub left: Option<Value>,
    /// The shadow side's value, masked.
    pub right: Option<Value>,
    pub declared_noise: bool,
    /// The text diff of bodies that are not JSON, masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hunks: Option<Value>,
    /// `path` with array indexes as `*`.
    pub shape: String,
}

impl Redactor {
    /// `exchange` with every header, address and body masked.
    pub fn exchange(&self, exchange: &Exchange, sensitive: bool) -> RedactedExchange {
        let request = &exchange.request;
        let uri = if sensitive {
            self.private_uri(&request.uri)
        } else {
            self.text(&request.uri)
        };
        RedactedExchange {
            served_by: exchange.served_by.clone(),
            sensitive,
            request: RedactedRequest {
                method: request.method.clone(),
                uri,
                headers: self.headers(&request.headers, sensitive),
                body: self.any_body(&request.body, sensitive),
            },
            served: self.response(&exchange.served, sensitive),
            shadow: self.response(&exchange.shadow, sensitive),
        }
    }

    /// `difference` with both values (and a text diff) masked.
    pub fn difference(&self, difference: &Difference, sensitive: bool) -> StoredDifference {
        let mask = |value: &Option<Value>| {
            value
                .as_ref()
                .map(|v| self.difference_value(difference, v, sensitive))
        };
        let hunks = difference.hunks.as_deref().map(|text| {
            if sensitive {
                self.private_body(text.as_bytes())
            } else {
                Value::from(self.text(text))
            }
        });
        StoredDifference {
            section: difference.section,
            path: difference.path.clone(),
            kind: difference.kind,
            left: mask(&difference.left),
            right: mask(&difference.right),
            declared_noise: difference.declared_noise,
            hunks,
            shape: difference.shape(),
        }
    }

    fn difference_value(&self, difference: &Difference, value: &Value, sensitive: bool) -> Value {
        match (difference.section, value.as_str(), sensitive) {
            // A status code says nothing about the user.
            (Section::Status, _, _) => value.clone(),
            (Section::Header, Some(text), false) => {
                Value::from(self.header(&difference.path, text))
            }
            (Section::Header, Some(text), true) => {
                Value::from(self.private_header(&difference.path, text))
            }
            (_, _, true) => self.private_json(value),
            (_, _, false) => self.json(value),
        }
    }

    fn headers(&self, headers: &HeaderMap, sensitive: bool) -> Vec<(String, String)> {
        header_pairs(headers)
            .into_iter()
            .map(|(name, value)| {
                let masked = if sensitive {
                    self.private_header(&name, &value)
                } else {
                    self.header(&name, &value)
                };
                (name, masked)
            })
            .collect()
    }

    fn any_body(&self, bytes: &[u8], sensitive: bool) -> Value {
        if sensitive {
            self.private_body(bytes)
        } else {
            self.body(bytes)
        }
    }

    fn response(&self, response: &CapturedResponse, sensitive: bool) -> RedactedResponse {
        RedactedResponse {
            status: response.status,
            headers: self.headers(&response.headers, sensitive),
            body: self.any_body(&response.decoded_body(), sensitive),
            truncated: response.truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::capture::CapturedRequest;

    fn exchange() -> Exchange {
        let answer = |body: &'static str| {
            CapturedResponse::whole(200, &[("content-type", "application/json")], body)
        };
        Exchange {
            route: "tasks".into(),
            request_id: "r1".into(),
            served_by: "legacy".into(),
            request: CapturedRequest {
                method: "POST".into(),
                uri: "/functions/v1/tasks?token=abc".into(),
                headers: crate::capture::header_map(&[("authorization", "Bearer secret-token")]),
                body: Bytes::from_static(br#"{"password":"hunter2","title":"x"}"#),
                truncated: false,
            },
            served: answer(r#"{"id":1}"#),
            shadow: answer(r#"{"id":2}"#),
        }
    }

    #[test]
    fn stored_exchanges_keep_their_shape_and_lose_their_secrets() {
        let redactor = Redactor::new(&[]).expect("no patterns");
        let stored = redactor.exchange(&exchange(), false);
        let text = serde_json::to_string(&stored).expect("serialises");
        assert!(
            !text.contains("secret-token") && !text.contains("hunter2"),
            "{text}"
        );
        assert_eq!(stored.served.body, json!({"id": 1}));
        assert_eq!(stored.shadowed_by(), "new");
        let back: RedactedExchange = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, stored);
        let private = redactor.exchange(&exchange(), true);
        assert!(
            !serde_json::to_string(&private)
                .expect("serialises")
                .contains("\"id\":1")
        );
    }

    #[test]
    fn stored_differences_carry_their_shape() {
        let redactor = Redactor::new(&[]).expect("no patterns");
        let differences = crate::diff_json(&json!({"items": [1, 2]}), &json!({"items": [1, 3]}));
        let stored = redactor.difference(&differences[0], false);
        assert_eq!(stored.shape, "/items/*");
        assert_eq!(
            (stored.left, stored.right),
            (Some(json!(2)), Some(json!(3)))
        );
    }
}
