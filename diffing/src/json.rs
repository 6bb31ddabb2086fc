//! Value-level comparison of two JSON documents.

use serde::Serialize;
use serde_json::Value;

use crate::path::{pointer_push, shape_with};

/// How two values differ at one path. *Left* is the served side's answer, *right* the
/// other side's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// The key or element exists only on the left.
    MissingRight,
    /// The key or element exists only on the right.
    MissingLeft,
    /// Same JSON type, different value.
    Changed,
    /// Different JSON types (e.g. string vs number).
    TypeChanged,
    /// Arrays of different lengths (elements are also compared up to the shorter one).
    LengthChanged,
}

/// One difference between the two documents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// JSON pointer to the differing value (`""` is the whole document).
    pub path: String,
    pub kind: DiffKind,
    pub left: Option<Value>,
    pub right: Option<Value>,
    /// Depths (1-based token positions) of `path` that are array indexes.
    #[serde(skip)]
    index_depths: Vec<usize>,
}

impl Difference {
    /// The path with array indexes replaced by `*`, for grouping.
    pub fn shape(&self) -> String {
        shape_with(&self.path, |depth| self.index_depths.contains(&depth))
    }
}

/// Every difference between `left` and `right`, in document order.
pub fn diff_json(left: &Value, right: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut walker = Walker {
        out: &mut out,
        indexes: Vec::new(),
    };
    walker.walk("", 0, left, right);
    out
}

struct Walker<'a> {
    out: &'a mut Vec<Difference>,
    indexes: Vec<usize>,
}

impl Walker<'_> {
    fn push(&mut self, path: &str, kind: DiffKind, left: Option<&Value>, right: Option<&Value>) {
        self.out.push(Difference {
            path: path.to_owned(),
            kind,
            left: left.cloned(),
            right: right.cloned(),
            index_depths: self.indexes.clone(),
        });
    }

    fn walk(&mut self, path: &str, depth: usize, left: &Value, right: &Value) {
        match (left, right) {
            (Value::Object(l), Value::Object(r)) => {
                for (key, lv) in l {
                    let child = pointer_push(path, key);
                    match r.get(key) {
                        Some(rv) => self.walk(&child, depth + 1, lv, rv),
                        None => self.push(&child, DiffKind::MissingRight, Some(lv), None),
                    }
                }
                for (key, rv) in r {
                    if !l.contains_key(key) {
                        let child = pointer_push(path, key);
                        self.push(&child, DiffKind::MissingLeft, None, Some(rv));
                    }
                }
            }
            (Value::Array(l), Value::Array(r)) => {
                if l.len() != r.len() {
                    self.push(
                        path,
                        DiffKind::LengthChanged,
                        Some(&Value::from(l.len())),
                        Some(&Value::from(r.len())),
                    );
                }
                self.indexes.push(depth + 1);
                for (index, (lv, rv)) in l.iter().zip(r).enumerate() {
                    self.walk(&pointer_push(path, &index.to_string()), depth + 1, lv, rv);
                }
                self.indexes.pop();
            }
            (Value::Number(l), Value::Number(r)) if !numbers_equal(l, r) => {
                self.push(path, DiffKind::Changed, Some(left), Some(right));
            }
            (Value::Number(_), Value::Number(_)) => {}
            _ if std::mem::discriminant(left) != std::mem::discriminant(right) => {
                self.push(path, DiffKind::TypeChanged, Some(left), Some(right));
            }
            _ if left != right => self.push(path, DiffKind::Changed, Some(left), Some(right)),
            _ => {}
        }
    }
}

/// JSON numbers are equal as values: `1` equals `1.0`.
fn numbers_equal(l: &serde_json::Number, r: &serde_json::Number) -> bool {
    match (l.as_i64(), r.as_i64(), l.as_u64(), r.as_u64()) {
        (Some(a), Some(b), _, _) => a == b,
        (_, _, Some(a), Some(b)) => a == b,
        _ => l.as_f64() == r.as_f64(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn identical_documents_have_no_differences() {
        let doc = json!({"a": [1, {"b": null}], "c": "x", "d": 1.5});
        assert!(diff_json(&doc, &doc).is_empty());
    }

    #[test]
    fn key_order_and_integer_floats_do_not_matter() {
        let left = json!({"a": 1, "b": 2});
        let right: Value = serde_json::from_str(r#"{"b": 2.0, "a": 1}"#).expect("json");
        assert!(diff_json(&left, &right).is_empty());
    }

    #[test]
    fn each_kind_of_difference_is_reported_with_its_path() {
        let left = json!({"gone": 1, "same": true, "num": 1, "kind": "1", "list": [1, 2, 3]});
        let right = json!({"new": 1, "same": true, "num": 2, "kind": 1, "list": [1, 5]});
        let diffs = diff_json(&left, &right);
        let found: Vec<(&str, DiffKind)> =
            diffs.iter().map(|d| (d.path.as_str(), d.kind)).collect();
        assert!(found.contains(&("/gone", DiffKind::MissingRight)));
        assert!(found.contains(&("/new", DiffKind::MissingLeft)));
        assert!(found.contains(&("/num", DiffKind::Changed)));
        assert!(found.contains(&("/kind", DiffKind::TypeChanged)));
        assert!(found.contains(&("/list", DiffKind::LengthChanged)));
        assert!(found.contains(&("/list/1", DiffKind::Changed)));
        assert_eq!(diffs.len(), 6);
    }

    #[test]
    fn differences_are_symmetric_in_count() {
        let a = json!({"x": [1, 2, {"y": "z"}], "k": null});
        let b = json!({"x": [1, {"y": "z"}], "k": 0, "extra": []});
        assert_eq!(diff_json(&a, &b).len(), diff_json(&b, &a).len());
    }

    #[test]
    fn shapes_group_array_indexes_but_not_numeric_keys() {
        let left = json!({"items": [{"id": 1}, {"id": 2}], "2024": {"v": 1}});
        let right = json!({"items": [{"id": 9}, {"id": 8}], "2024": {"v": 2}});
        let shapes: Vec<String> = diff_json(&left, &right)
            .iter()
            .map(Difference::shape)
            .collect();
        assert_eq!(shapes, vec!["/items/*/id", "/items/*/id", "/2024/v"]);
    }
}
