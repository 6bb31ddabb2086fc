//! Compares the two answers of an [`Exchange`]: status, chosen headers, and the body as
//! JSON, as an event stream, or as text.

use http::{HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::Value;

use crate::capture::{CapturedResponse, Exchange};
use crate::json::{Difference, Section, diff_json_with};
use crate::path::pointer_push;
use crate::rules::CompiledRules;
use crate::{sse, text};

/// How the bodies were compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    Json,
    EventStream,
    Text,
    Binary,
    /// One side's body was cut at the capture cap: bodies were not compared.
    Truncated,
}

/// The differences of one exchange.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub body: BodyKind,
    pub differences: Vec<Difference>,
}

impl Comparison {
    pub fn is_equal(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Compares the served answer (left) with the shadow answer (right).
pub fn compare(exchange: &Exchange, rules: &CompiledRules) -> Comparison {
    compare_responses(&exchange.served, &exchange.shadow, rules)
}

/// Compares two captured responses under `rules`.
pub fn compare_responses(
    left: &CapturedResponse,
    right: &CapturedResponse,
    rules: &CompiledRules,
) -> Comparison {
    let mut differences = Vec::new();
    if left.status != right.status {
        differences.push(Difference::outside_body(
            Section::Status,
            "",
            Some(Value::from(left.status)),
            Some(Value::from(right.status)),
        ));
    }
    compare_headers(left, right, rules, &mut differences);
    let body = if left.truncated || right.truncated {
        BodyKind::Truncated
    } else {
        compare_bodies(left, right, rules, &mut differences)
    };
    Comparison { body, differences }
}

fn compare_headers(
    left: &CapturedResponse,
    right: &CapturedResponse,
    rules: &CompiledRules,
    out: &mut Vec<Difference>,
) {
    // Each name once: `keys` yields a name once however many values it has, and the
    // right side adds only names the left lacks. Equal answers build nothing.
    let mut differing: Vec<&HeaderName> = Vec::new();
    for name in left.headers.keys() {
        if rules.compares_header(name.as_str()) && left.headers.get(name) != right.headers.get(name)
        {
            differing.push(name);
        }
    }
    for name in right.headers.keys() {
        if !left.headers.contains_key(name) && rules.compares_header(name.as_str()) {
            differing.push(name);
        }
    }
    differing.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    let text = |value: &HeaderValue| Value::from(String::from_utf8_lossy(value.as_bytes()));
    for name in differing {
        out.push(Difference::outside_body(
            Section::Header,
            name.as_str(),
            left.headers.get(name).map(text),
            right.headers.get(name).map(text),
        ));
    }
}

fn is_event_stream(response: &CapturedResponse) -> bool {
    response
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"))
}

fn compare_bodies(
    left: &CapturedResponse,
    right: &CapturedResponse,
    rules: &CompiledRules,
    out: &mut Vec<Difference>,
) -> BodyKind {
    let (lb, rb) = (left.decoded_body(), right.decoded_body());
    let event_streams = is_event_stream(left) && is_event_stream(right);
    if lb == rb {
        // Equal bytes are equal values under every rule: only the kind of body is left
        // to tell, and telling JSON needs no tree.
        return if event_streams {
            BodyKind::EventStream
        } else if serde_json::from_slice::<serde::de::IgnoredAny>(&lb).is_ok() {
            BodyKind::Json
        } else if std::str::from_utf8(&lb).is_ok() {
            BodyKind::Text
        } else {
            BodyKind::Binary
        };
    }
    if event_streams {
        let (le, re) = (
            sse::parse(&String::from_utf8_lossy(&lb)),
            sse::parse(&String::from_utf8_lossy(&rb)),
        );
        // Each event compares as `{event, data}` with JSON data parsed, at /<index>.
        let as_value = |events: &[sse::Event]| {
            Value::Array(
                events
                    .iter()
                    .map(|e| {
                        let data = serde_json::from_str(&e.data)
                            .unwrap_or_else(|_| Value::String(e.data.clone()));
                        serde_json::json!({"event": e.name, "data": data})
                    })
                    .collect(),
            )
        };
        out.extend(diff_json_with(&as_value(&le), &as_value(&re), rules));
        return BodyKind::EventStream;
    }
    match (
        serde_json::from_slice::<Value>(&lb),
        serde_json::from_slice::<Value>(&rb),
    ) {
        (Ok(l), Ok(r)) => {
            out.extend(diff_json_with(&l, &r, rules));
            BodyKind::Json
        }
        _ => match (std::str::from_utf8(&lb), std::str::from_utf8(&rb)) {
            (Ok(l), Ok(r)) => {
                if let Some(hunks) = text::unified(l, r) {
                    let diff = Difference::outside_body(
                        Section::Body,
                        "",
                        Some(Value::from(l)),
                        Some(Value::from(r)),
                    )
                    .with_hunks(hunks)
                    .declared(rules.declared_noise(&[]));
                    out.push(diff);
                }
                BodyKind::Text
            }
            _ => {
                if lb != rb {
                    out.push(Difference::outside_body(
                        Section::Body,
                        &pointer_push("", "bytes"),
                        Some(Value::from(lb.len())),
                        Some(Value::from(rb.len())),
                    ));
                }
                BodyKind::Binary
            }
        },
    }
}

impl Exchange {
    /// Whether the two answers agree under default rules (status, compared headers,
    /// body as a value).
    pub fn answers_agree(&self) -> bool {
        compare(self, &CompiledRules::default()).is_equal()
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::rules::DiffRules;

    fn response(status: u16, headers: &[(&str, &str)], body: &'static str) -> CapturedResponse {
        CapturedResponse::whole(status, headers, body)
    }

    fn default_rules() -> CompiledRules {
        DiffRules::default().compile().expect("rules")
    }

    #[test]
    fn status_headers_and_json_body_are_compared() {
        let left = response(
            200,
            &[("Content-Type", "application/json"), ("Date", "x")],
            r#"{"a":1}"#,
        );
        let right = response(
            500,
            &[("content-type", "text/plain"), ("date", "y")],
            r#"{"a":2}"#,
        );
        let c = compare_responses(&left, &right, &default_rules());
        let shapes: Vec<String> = c.differences.iter().map(Difference::shape).collect();
        assert_eq!(shapes, vec!["status", "header:content-type", "/a"]);
        assert_eq!(c.body, BodyKind::Json);
    }

    #[test]
    fn event_streams_compare_event_by_event() {
        let left = response(
            200,
            &[("content-type", "text/event-stream")],
            "data: {\"t\":\"a\",\"id\":1}\n\ndata: [DONE]\n\n",
        );
        let right = response(
            200,
            &[("content-type", "text/event-stream")],
            "data: {\"id\":1,\"t\":\"b\"}\n\ndata: [DONE]\n\n",
        );
        let c = compare_responses(&left, &right, &default_rules());
        assert_eq!(c.body, BodyKind::EventStream);
        let shapes: Vec<String> = c.differences.iter().map(Difference::shape).collect();
        assert_eq!(shapes, vec!["/*/data/t"]);
    }

    #[test]
    fn text_bodies_get_unified_hunks() {
        let left = response(200, &[("content-type", "text/plain")], "one\ntwo\n");
        let right = response(200, &[("content-type", "text/plain")], "one\nthree\n");
        let c = compare_responses(&left, &right, &default_rules());
        assert_eq!(c.body, BodyKind::Text);
        assert!(
            c.differences[0]
                .hunks
                .as_deref()
                .is_some_and(|h| h.contains("+three"))
        );
    }

    #[test]
    fn equal_bodies_are_equal_and_keep_their_kind() {
        let json = [("content-type", "application/json")];
        let sse = [("content-type", "text/event-stream")];
        for (headers, body, kind) in [
            (&json[..], r#"{"a":[1,{"b":null}]}"#, BodyKind::Json),
            (&sse[..], "data: {\"a\":1}\n\n", BodyKind::EventStream),
            (&json[..], "not json", BodyKind::Text),
        ] {
            let c = compare_responses(
                &response(200, headers, body),
                &response(200, headers, body),
                &default_rules(),
            );
            assert!(c.is_equal(), "{body}: {:?}", c.differences);
            assert_eq!(c.body, kind, "{body}");
        }
        let bytes = CapturedResponse {
            status: 200,
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from_static(&[0xff, 0xfe]),
            truncated: false,
        };
        let c = compare_responses(&bytes, &bytes, &default_rules());
        assert_eq!((c.is_equal(), c.body), (true, BodyKind::Binary));
    }

    #[test]
    fn truncated_bodies_are_not_compared() {
        let mut left = response(200, &[], "{\"a\":");
        left.truncated = true;
        let right = response(200, &[], "{\"a\":1}");
        let c = compare_responses(&left, &right, &default_rules());
        assert_eq!(c.body, BodyKind::Truncated);
        assert!(c.is_equal());
    }
}
