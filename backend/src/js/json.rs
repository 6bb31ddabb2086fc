//! `JSON.parse` and `JSON.stringify` as V8 does them.
//!
//! [`parse`] accepts exactly what `JSON.parse` accepts and, on failure, returns V8's
//! `SyntaxError` message, so an error answer that quotes it reads the same as the
//! legacy's. Numbers become doubles as in JavaScript. [`stringify`] and
//! [`stringify_pretty`] write JavaScript's property order (integer-like keys first) and
//! number formatting, so prompts built from request data are byte-identical.

use serde_json::{Map, Value};

use super::value::{format_number, number};

/// Deeper nesting is refused (V8 would run out of stack much later; this keeps the
/// recursive walks over the value safe on a worker thread's stack).
const MAX_DEPTH: usize = 200;

/// Sources shorter than this are quoted whole in "Unexpected token" messages.
const MIN_LENGTH_FOR_CONTEXT: usize = 21;
/// Characters quoted on each side of the unexpected token in longer sources.
const CONTEXT_CHARS: usize = 10;

/// `await request.json()`: the body decoded as UTF-8 (invalid sequences replaced),
/// then `JSON.parse`d.
pub fn parse_body(body: &[u8]) -> Result<Value, String> {
    parse(&String::from_utf8_lossy(body))
}

/// `JSON.parse(text)`; the error is V8's message text.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut parser = Parser {
        source: text,
        units: text.encode_utf16().collect(),
        pos: 0,
        depth: 0,
    };
    let value = parser.value()?;
    parser.skip_whitespace();
    if parser.pos < parser.units.len() {
        return Err(parser.positioned("Unexpected non-whitespace character after JSON"));
    }
    Ok(value)
}

struct Parser<'a> {
    source: &'a str,
    units: Vec<u16>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u16> {
        self.units.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(0x20 | 0x09 | 0x0a | 0x0d)) {
            self.pos += 1;
        }
    }

    /// `<message> at position N (line L column C)`.
    fn positioned(&self, message: &str) -> String {
        let mut line = 1;
        let mut line_start = 0;
        let mut i = 0;
        while i < self.pos {
            let unit = self.units[i];
            if unit == 0x0d && i + 1 < self.pos && self.units[i + 1] == 0x0a {
                i += 1;
            }
            if matches!(self.units[i], 0x0d | 0x0a) {
                line += 1;
                line_start = i + 1;
            }
            i += 1;
        }
        format!(
            "{message} at position {} (line {line} column {})",
            self.pos,
            self.pos - line_start + 1
        )
    }

    /// The message for the token at the cursor when nothing more specific applies.
    fn unexpected(&self) -> String {
        let Some(unit) = self.peek() else {
            return "Unexpected end of JSON input".into();
        };
        match unit {
            0x22 => self.positioned("Unexpected string in JSON"),
            0x2d | 0x30..=0x39 => self.positioned("Unexpected number in JSON"),
            _ => {
                if matches!(
                    self.source,
                    "NaN" | "Infinity" | "undefined" | "[object Object]"
                ) {
                    return format!("\"{}\" is not valid JSON", self.source);
                }
                let token = String::from_utf16_lossy(&[unit]);
                let len = self.units.len();
                let quote =
                    |from: usize, to: usize| String::from_utf16_lossy(&self.units[from..to]);
                if len < MIN_LENGTH_FOR_CONTEXT {
                    format!(
                        "Unexpected token '{token}', \"{}\" is not valid JSON",
                        self.source
                    )
                } else if self.pos < CONTEXT_CHARS {
                    let end = (self.pos + CONTEXT_CHARS).min(len);
                    format!(
                        "Unexpected token '{token}', \"{}\"... is not valid JSON",
                        quote(0, end)
                    )
                } else if self.pos < len - CONTEXT_CHARS {
                    format!(
                        "Unexpected token '{token}', ...\"{}\"... is not valid JSON",
                        quote(self.pos - CONTEXT_CHARS, self.pos + CONTEXT_CHARS)
                    )
                } else {
                    format!(
                        "Unexpected token '{token}', ...\"{}\" is not valid JSON",
                        quote(self.pos - CONTEXT_CHARS, len)
                    )
                }
            }
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_whitespace();
        match self.peek() {
            Some(0x22) => self.string().map(Value::String),
            Some(0x2d | 0x30..=0x39) => self.number(),
            Some(0x7b) => self.nested(Self::object),
            Some(0x5b) => self.nested(Self::array),
            Some(0x74) => self.literal("true", Value::Bool(true)),
            Some(0x66) => self.literal("false", Value::Bool(false)),
            Some(0x6e) => self.literal("null", Value::Null),
            _ => Err(self.unexpected()),
        }
    }

    fn nested(&mut self, parse: fn(&mut Self) -> Result<Value, String>) -> Result<Value, String> {
        if self.depth >= MAX_DEPTH {
            return Err("Maximum call stack size exceeded".into());
        }
        self.depth += 1;
        let value = parse(self);
        self.depth -= 1;
        value
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, String> {
        for expected in word.bytes() {
            match self.peek() {
                Some(unit) if unit == u16::from(expected) => self.pos += 1,
                _ => return Err(self.unexpected()),
            }
        }
        Ok(value)
    }

    fn object(&mut self) -> Result<Value, String> {
        self.pos += 1; // {
        let mut map = Map::new();
        self.skip_whitespace();
        if self.peek() == Some(0x7d) {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        if self.peek() != Some(0x22) {
            return Err(self.positioned("Expected property name or '}' in JSON"));
        }
        loop {
            let key = self.string()?;
            self.skip_whitespace();
            if self.peek() != Some(0x3a) {
                return Err(self.positioned("Expected ':' after property name in JSON"));
            }
            self.pos += 1;
            let value = self.value()?;
            // Like JavaScript: a repeated key keeps its first position, takes the last value.
            map.insert(key, value);
            self.skip_whitespace();
            match self.peek() {
                Some(0x2c) => {
                    self.pos += 1;
                    self.skip_whitespace();
                    if self.peek() != Some(0x22) {
                        return Err(self.positioned("Expected double-quoted property name in JSON"));
                    }
                }
                Some(0x7d) => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                _ => {
                    return Err(self.positioned("Expected ',' or '}' after property value in JSON"));
                }
            }
        }
    }

    fn array(&mut self) -> Result<Value, String> {
        self.pos += 1; // [
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(0x5d) {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_whitespace();
            match self.peek() {
                Some(0x2c) => self.pos += 1,
                Some(0x5d) => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.positioned("Expected ',' or ']' after array element in JSON")),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1; // "
        let mut out: Vec<u16> = Vec::new();
        loop {
            let Some(unit) = self.peek() else {
                return Err(self.positioned("Unterminated string in JSON"));
            };
            match unit {
                0x22 => {
                    self.pos += 1;
                    return Ok(String::from_utf16_lossy(&out));
                }
                0x5c => {
                    self.pos += 1;
                    let Some(escaped) = self.peek() else {
                        return Err(self.positioned("Unterminated string in JSON"));
                    };
                    let decoded = match escaped {
                        0x22 | 0x5c | 0x2f => escaped,
                        0x62 => 0x08,
                        0x66 => 0x0c,
                        0x6e => 0x0a,
                        0x72 => 0x0d,
                        0x74 => 0x09,
                        0x75 => {
                            let mut code: u16 = 0;
                            for _ in 0..4 {
                                self.pos += 1;
                                let digit = self
                                    .peek()
                                    .and_then(|u| char::from_u32(u32::from(u)))
                                    .and_then(|c| c.to_digit(16));
                                let Some(digit) = digit else {
                                    return Err(self.positioned("Bad Unicode escape in JSON"));
                                };
                                code = code * 16 + digit as u16;
                            }
                            code
                        }
                        _ => return Err(self.positioned("Bad escaped character in JSON")),
                    };
                    out.push(decoded);
                    self.pos += 1;
                }
                0x00..=0x1f => {
                    return Err(self.positioned("Bad control character in string literal in JSON"));
                }
                _ => {
                    out.push(unit);
                    self.pos += 1;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        let is_digit = |u: Option<u16>| matches!(u, Some(0x30..=0x39));
        if self.peek() == Some(0x2d) {
            self.pos += 1;
        }
        match self.peek() {
            Some(0x30) => {
                self.pos += 1;
                if is_digit(self.peek()) {
                    return Err(self.positioned("Unexpected number in JSON"));
                }
            }
            Some(0x31..=0x39) => {
                while is_digit(self.peek()) {
                    self.pos += 1;
                }
            }
            _ => return Err(self.positioned("No number after minus sign in JSON")),
        }
        if self.peek() == Some(0x2e) {
            self.pos += 1;
            if !is_digit(self.peek()) {
                return Err(self.positioned("Unterminated fractional number in JSON"));
            }
            while is_digit(self.peek()) {
                self.pos += 1;
            }
        }
        if matches!(self.peek(), Some(0x65 | 0x45)) {
            self.pos += 1;
            if matches!(self.peek(), Some(0x2b | 0x2d)) {
                self.pos += 1;
            }
            if !is_digit(self.peek()) {
                return Err(self.positioned("Exponent part is missing a number in JSON"));
            }
            while is_digit(self.peek()) {
                self.pos += 1;
            }
        }
        let literal = String::from_utf16_lossy(&self.units[start..self.pos]);
        let x = literal.parse::<f64>().unwrap_or(f64::NAN);
        // Out-of-range literals are ±Infinity in JavaScript; JSON.stringify writes null.
        Ok(number(x))
    }
}

/// `JSON.stringify(value)`.
pub fn stringify(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, None, 0);
    out
}

/// `JSON.stringify(value, null, 2)`.
pub fn stringify_pretty(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, Some("  "), 0);
    out
}

/// Whether `key` is an array index (canonical integer below 2^32 − 1), which JavaScript
/// objects list first, in ascending order.
fn array_index(key: &str) -> Option<u32> {
    let index: u32 = key.parse().ok()?;
    (index != u32::MAX && index.to_string() == key).then_some(index)
}

/// The object's properties in JavaScript's enumeration order.
pub fn js_key_order(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut indexed: Vec<(u32, (&String, &Value))> = Vec::new();
    let mut named = Vec::new();
    for entry in map {
        match array_index(entry.0) {
            Some(index) => indexed.push((index, entry)),
            None => named.push(entry),
        }
    }
    indexed.sort_by_key(|(index, _)| *index);
    indexed.into_iter().map(|(_, e)| e).chain(named).collect()
}

fn write_value(out: &mut String, value: &Value, indent: Option<&str>, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.is_finite() => out.push_str(&format_number(x)),
            _ => out.push_str("null"),
        },
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                write_value(out, item, indent, level + 1);
            }
            newline(out, indent, level);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (key, item)) in js_key_order(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                write_string(out, key);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_value(out, item, indent, level + 1);
            }
            newline(out, indent, level);
            out.push('}');
        }
    }
}

fn newline(out: &mut String, indent: Option<&str>, level: usize) {
    if let Some(indent) = indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(indent);
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Messages recorded from Deno 2 (V8) for the same inputs.
    #[test]
    fn parse_errors_read_like_v8() {
        let cases = [
            ("", "Unexpected end of JSON input"),
            ("  ", "Unexpected end of JSON input"),
            (
                "not json",
                "Unexpected token 'o', \"not json\" is not valid JSON",
            ),
            (
                "{bad",
                "Expected property name or '}' in JSON at position 1 (line 1 column 2)",
            ),
            (
                "{\"a\":1,}",
                "Expected double-quoted property name in JSON at position 7 (line 1 column 8)",
            ),
            (
                "{\"a\":1} x",
                "Unexpected non-whitespace character after JSON at position 8 (line 1 column 9)",
            ),
            ("{\"a\":", "Unexpected end of JSON input"),
            (
                "[1,2",
                "Expected ',' or ']' after array element in JSON at position 4 (line 1 column 5)",
            ),
            ("'abc", "Unexpected token ''', \"'abc\" is not valid JSON"),
            (
                "\"abc",
                "Unterminated string in JSON at position 4 (line 1 column 5)",
            ),
            (
                "{\"a\":\"\u{1}\"}",
                "Bad control character in string literal in JSON at position 6 (line 1 column 7)",
            ),
            ("nul", "Unexpected end of JSON input"),
            (
                "{\"message\": \"hi\"",
                "Expected ',' or '}' after property value in JSON at position 16 (line 1 column 17)",
            ),
            (
                "12a",
                "Unexpected non-whitespace character after JSON at position 2 (line 1 column 3)",
            ),
            (
                "-",
                "No number after minus sign in JSON at position 1 (line 1 column 2)",
            ),
            (
                "1.",
                "Unterminated fractional number in JSON at position 2 (line 1 column 3)",
            ),
            (
                "1e+",
                "Exponent part is missing a number in JSON at position 3 (line 1 column 4)",
            ),
            (
                "{\"a\" 1}",
                "Expected ':' after property name in JSON at position 5 (line 1 column 6)",
            ),
            (
                "\u{feff}{}",
                "Unexpected token '\u{feff}', \"\u{feff}{}\" is not valid JSON",
            ),
            ("[1,]", "Unexpected token ']', \"[1,]\" is not valid JSON"),
            (
                "{\"a\":01}",
                "Unexpected number in JSON at position 6 (line 1 column 7)",
            ),
            (
                "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": x}",
                "Unexpected token 'x', ...\"aaaaaaa\": x}\" is not valid JSON",
            ),
            (
                "xaaaaaaaaaaaaaaaaaaaa",
                "Unexpected token 'x', \"xaaaaaaaaa\"... is not valid JSON",
            ),
            (
                "xaaaaaaaaaaaaaaaaaaa",
                "Unexpected token 'x', \"xaaaaaaaaaaaaaaaaaaa\" is not valid JSON",
            ),
            (
                "{\"a\":1}\n\n}",
                "Unexpected non-whitespace character after JSON at position 9 (line 3 column 1)",
            ),
            (
                "\"\\x\"",
                "Bad escaped character in JSON at position 2 (line 1 column 3)",
            ),
            (
                "\"\\u12\"",
                "Bad Unicode escape in JSON at position 5 (line 1 column 6)",
            ),
            (
                "{\"a\":tru}",
                "Unexpected token '}', \"{\"a\":tru}\" is not valid JSON",
            ),
            ("undefined", "\"undefined\" is not valid JSON"),
            ("[object Object]", "\"[object Object]\" is not valid JSON"),
            ("tr ue", "Unexpected token ' ', \"tr ue\" is not valid JSON"),
            (
                "\r\n{\r\n x",
                "Expected property name or '}' in JSON at position 6 (line 3 column 2)",
            ),
            (
                "-01",
                "Unexpected number in JSON at position 2 (line 1 column 3)",
            ),
            (
                "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,x,1,1,1]",
                "Unexpected token 'x', ...\"1,1,1,1,1,x,1,1,1]\" is not valid JSON",
            ),
            (
                "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,x,1,1,1,1,1,1,1,1,1,1]",
                "Unexpected token 'x', ...\"1,1,1,1,1,x,1,1,1,1,\"... is not valid JSON",
            ),
            ("é x", "Unexpected token 'é', \"é x\" is not valid JSON"),
        ];
        for (source, message) in cases {
            assert_eq!(parse(source).err().as_deref(), Some(message), "{source:?}");
        }
    }

    #[test]
    fn parses_like_javascript() {
        assert_eq!(
            parse(" {\"a\": [1, 2.5, -0, true, null, \"\\u00e9\\n\"]} ").ok(),
            Some(json!({"a": [1, 2.5, 0, true, null, "é\n"]}))
        );
        assert_eq!(parse("{\"a\":1,\"a\":2}").ok(), Some(json!({"a": 2})));
        assert_eq!(parse("1e400").ok(), Some(Value::Null));
        assert_eq!(parse("1.0").ok(), Some(json!(1)));
        assert_eq!(
            parse_body(b"{\xff}").err().as_deref(),
            Some("Expected property name or '}' in JSON at position 1 (line 1 column 2)")
        );
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn stringify_matches_javascript() {
        let value = parse("{\"b\":1,\"2\":[],\"1\":{},\"01\":1.5,\"4294967295\":\"x\\u0001\\\"\"}")
            .unwrap_or_default();
        assert_eq!(
            stringify(&value),
            "{\"1\":{},\"2\":[],\"b\":1,\"01\":1.5,\"4294967295\":\"x\\u0001\\\"\"}"
        );
        assert_eq!(
            stringify_pretty(&json!({"a": [1, {"b": null}], "c": {}, "d": []})),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n  \"c\": {},\n  \"d\": []\n}"
        );
        assert_eq!(stringify(&json!(1e21)), "1e+21");
        assert_eq!(
            stringify(&json!("tab\tline\u{2028}")),
            "\"tab\\tline\u{2028}\""
        );
    }
}
