//! Reading the JSON object a chat model was asked for, as the legacy analytics and
//! recommendations functions do: `data.choices[0].message.content`, then the span from
//! the first `{` to the last `}` (`/\{[\s\S]*\}/`), else the whole text, then
//! `JSON.parse`; a parse failure means "use the fallback".

use serde_json::Value;

use crate::js::errors::{cannot_read, get, index, method_missing};
use crate::js::json::parse;

/// `data.choices[0].message.content` (plain property reads: `TypeError` on the way).
pub fn content(data: &Value) -> Result<Option<Value>, String> {
    let choices = get(Some(data), "choices")?;
    let first = index(choices, 0)?;
    let message = get(first, "message")?;
    Ok(get(message, "content")?.cloned())
}

/// The parsed object of `content`, or `None` when it does not parse.
pub fn extract(content: Option<&Value>) -> Result<Option<Value>, String> {
    let text = match content {
        Some(Value::String(text)) => text,
        None | Some(Value::Null) => return Err(cannot_read(content, "match")),
        Some(_) => return Err(method_missing(content, "aiResponse", "match")),
    };
    let span = match (text.find('{'), text.rfind('}')) {
        (Some(start), Some(end)) if start < end => &text[start..=end],
        _ => text.as_str(),
    };
    Ok(parse(span).ok())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn extraction_takes_the_outermost_braces() {
        let text = json!("Here:\n```json\n{\"a\": {\"b\": 1}}\n```\nbye }");
        // First "{" to last "}": includes the trailing " bye }"? No: the span ends at
        // the last "}", which is after "bye", so the span does not parse.
        assert_eq!(extract(Some(&text)), Ok(None));
        let clean = json!("Sure: {\"a\": [1, 2]} done");
        assert_eq!(extract(Some(&clean)), Ok(Some(json!({"a": [1, 2]}))));
        assert_eq!(extract(Some(&json!("42"))), Ok(Some(json!(42))));
        assert_eq!(extract(Some(&json!("} no {"))), Ok(None));
        assert!(extract(None).is_err());
        assert_eq!(
            extract(Some(&json!(5))).expect_err("TypeError"),
            "aiResponse.match is not a function"
        );
    }

    #[test]
    fn content_reads_like_javascript() {
        let data = json!({"choices": [{"message": {"content": "x"}}]});
        assert_eq!(content(&data), Ok(Some(json!("x"))));
        assert_eq!(
            content(&json!({})).expect_err("TypeError"),
            "Cannot read properties of undefined (reading '0')"
        );
        assert_eq!(
            content(&json!({"choices": []})).expect_err("TypeError"),
            "Cannot read properties of undefined (reading 'message')"
        );
    }
}
