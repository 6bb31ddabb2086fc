//! Texts of the `TypeError`s V8 throws at the places where the legacy code trips over
//! unexpected input. The contract does not fix these texts; matching them keeps the
//! diff reports free of noise.

use serde_json::Value;

/// What a missing or `null` value is called in V8's messages.
fn nullish(value: Option<&Value>) -> &'static str {
    match value {
        Some(Value::Null) => "null",
        _ => "undefined",
    }
}

/// `x.prop` where `x` is `null` or `undefined`.
pub fn cannot_read(of: Option<&Value>, property: &str) -> String {
    format!(
        "Cannot read properties of {} (reading '{property}')",
        nullish(of)
    )
}

/// `const { property } = expression` where the value is `null` or `undefined`.
pub fn cannot_destructure(property: &str, expression: &str, of: Option<&Value>) -> String {
    format!(
        "Cannot destructure property '{property}' of '{expression}' as it is {}.",
        nullish(of)
    )
}

/// `expression()` where `expression` is not a function (e.g. `messages.map`).
pub fn not_a_function(expression: &str) -> String {
    format!("{expression} is not a function")
}

/// `receiver.method(…)`: the error when `receiver` has no such method (`null` and
/// `undefined` cannot be read at all; anything else lacks the method).
pub fn method_missing(receiver: Option<&Value>, expression: &str, method: &str) -> String {
    match receiver {
        None | Some(Value::Null) => cannot_read(receiver, method),
        Some(_) => not_a_function(&format!("{expression}.{method}")),
    }
}

/// Reads `value[key]` the way JavaScript does for JSON data: objects have their own
/// keys; `null` and `undefined` throw; everything else yields `undefined` (arrays and
/// strings have no such data properties in our uses).
pub fn get<'a>(value: Option<&'a Value>, key: &str) -> Result<Option<&'a Value>, String> {
    match value {
        None | Some(Value::Null) => Err(cannot_read(value, key)),
        Some(Value::Object(map)) => Ok(map.get(key)),
        Some(_) => Ok(None),
    }
}

/// `value?.[key]`: `undefined` when `value` is `null` or `undefined`.
pub fn get_opt<'a>(value: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    match value {
        Some(Value::Object(map)) => map.get(key),
        _ => None,
    }
}

/// `value?.[index]` on an array (strings and other values give `undefined` here, which
/// is what the legacy paths that use it get from provider JSON).
pub fn index_opt(value: Option<&Value>, index: usize) -> Option<&Value> {
    match value {
        Some(Value::Array(items)) => items.get(index),
        _ => None,
    }
}

/// `value[index]` (throws on `null`/`undefined`).
pub fn index(value: Option<&Value>, index: usize) -> Result<Option<&Value>, String> {
    match value {
        None | Some(Value::Null) => Err(cannot_read(value, &index.to_string())),
        Some(Value::Array(items)) => Ok(items.get(index)),
        Some(Value::Object(map)) => Ok(map.get(&index.to_string())),
        Some(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn texts_match_v8() {
        assert_eq!(
            cannot_read(None, "map"),
            "Cannot read properties of undefined (reading 'map')"
        );
        assert_eq!(
            cannot_read(Some(&Value::Null), "role"),
            "Cannot read properties of null (reading 'role')"
        );
        assert_eq!(
            cannot_destructure("type", "(intermediate value)", Some(&Value::Null)),
            "Cannot destructure property 'type' of '(intermediate value)' as it is null."
        );
        assert_eq!(
            method_missing(Some(&json!(5)), "messages", "map"),
            "messages.map is not a function"
        );
        assert_eq!(get(Some(&json!("s")), "x"), Ok(None));
        assert!(get(None, "x").is_err());
    }
}
