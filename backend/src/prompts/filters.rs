//! What the prompt templates print and convert, with the JavaScript semantics of the
//! legacy's template literals: `{{ x }}` prints `${x}`, and the filters `json`,
//! `string`, `trim` and `join` are `JSON.stringify`, `String`, `.trim()` and
//! `Array.prototype.join`. The test `truthy` is JavaScript's `!!x`.

use minijinja::value::{Value as Template, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Output, State};
use serde_json::Value;

use crate::js::{json, text, value};

/// Installs the printing rule, the filters and the test on `env`.
pub fn install(env: &mut Environment<'static>) {
    env.set_formatter(|out: &mut Output, _state: &State, value: &Template| {
        out.write_str(&js_string(value)).map_err(Error::from)
    });
    env.add_filter("json", stringify);
    env.add_filter("string", |value: Template| js_string(&value));
    env.add_filter("trim", |value: Template| {
        text::trim(&js_string(&value)).to_owned()
    });
    env.add_filter("join", join);
    env.add_test("truthy", |value: Template| {
        value::truthy(to_json(&value).as_ref())
    });
}

/// The template value as the JSON value JavaScript would hold; `None` is `undefined`.
fn to_json(value: &Template) -> Option<Value> {
    if value.is_undefined() {
        return None;
    }
    // Values come from JSON, so they serialise back to the same JSON.
    Some(serde_json::to_value(value).unwrap_or(Value::Null))
}

/// `String(x)`, which is also what `${x}` prints.
pub fn js_string(value: &Template) -> String {
    if let Some(text) = value.as_str() {
        return text.to_owned();
    }
    value::to_js_string(to_json(value).as_ref())
}

/// `JSON.stringify(x)` or `JSON.stringify(x, null, indent)`. `undefined` stays
/// undefined, so it prints `undefined` as it does inside a template literal.
fn stringify(value: Template, indent: Option<u32>) -> Result<Template, Error> {
    let Some(json) = to_json(&value) else {
        return Ok(Template::UNDEFINED);
    };
    let text = match indent {
        None | Some(0) => json::stringify(&json),
        Some(2) => json::stringify_pretty(&json),
        Some(other) => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("json: an indent of {other} is not supported (use json or json(2))"),
            ));
        }
    };
    Ok(Template::from(text))
}

/// `array.join(separator)`: each element as `String(x)`, `null` and `undefined` as "".
fn join(value: Template, separator: Option<String>) -> Result<String, Error> {
    if !matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("join expects a list, got {}", value.kind()),
        ));
    }
    let separator = separator.unwrap_or_else(|| ",".to_owned());
    let mut parts = Vec::new();
    for item in value.try_iter()? {
        parts.push(if item.is_none() || item.is_undefined() {
            String::new()
        } else {
            js_string(&item)
        });
    }
    Ok(parts.join(&separator))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(source: &str, context: Value) -> String {
        let mut env = Environment::new();
        install(&mut env);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env.render_str(source, context).expect("renders")
    }

    #[test]
    fn printing_is_a_template_literal() {
        let context = json!({"n": 1.0, "big": 1e21, "list": [1, null, "a"], "map": {"a": 1}, "nil": null, "yes": true});
        assert_eq!(
            render(
                "{{ n }}|{{ big }}|{{ list }}|{{ map }}|{{ nil }}|{{ missing }}|{{ yes }}|{{ map.missing.deeper }}",
                context
            ),
            "1|1e+21|1,,a|[object Object]|null|undefined|true|undefined"
        );
    }

    #[test]
    fn json_is_json_stringify() {
        let context = json!({"rows": [{"b": 1.5, "a": "é\u{2028}"}], "empty": []});
        assert_eq!(
            render("{{ rows|json }}", context.clone()),
            "[{\"b\":1.5,\"a\":\"é\u{2028}\"}]"
        );
        assert_eq!(
            render("{{ rows|json(2) }}", context.clone()),
            "[\n  {\n    \"b\": 1.5,\n    \"a\": \"é\u{2028}\"\n  }\n]"
        );
        assert_eq!(render("{{ empty|json(2) }}", context.clone()), "[]");
        assert_eq!(render("{{ missing|json(2) }}", context), "undefined");
    }

    #[test]
    fn string_trim_join_and_truthy_follow_javascript() {
        let context = json!({"s": "\u{feff} hi \u{a0}\n", "zero": 0, "empty": [], "obj": {}, "list": ["a", null, 2]});
        assert_eq!(render("{{ s|trim }}", context.clone()), "hi");
        assert_eq!(
            render("{{ list|join(' / ') }}", context.clone()),
            "a /  / 2"
        );
        assert_eq!(render("{{ list|join }}", context.clone()), "a,,2");
        assert_eq!(
            render(
                "{{ zero is truthy }} {{ empty is truthy }} {{ obj is truthy }} {{ missing is truthy }}",
                context.clone()
            ),
            "false true true false"
        );
        assert_eq!(render("{{ zero|string ~ '!' }}", context), "0!");
    }
}
