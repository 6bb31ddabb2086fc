//! Value-level comparison of two JSON documents, under [`CompiledRules`].

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::path::{pointer_push, shape_with};
use crate::rules::{ArrayMatch, CompiledRules};

/// How two values differ at one path. *Left* is the served side's answer, *right* the
/// other side's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
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

/// Which part of a response a difference is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    Status,
    Header,
    Body,
}

/// One difference between the two documents.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Difference {
    pub section: Section,
    /// JSON pointer to the differing value in the body (`""` is the whole body), or the
    /// header's name, or `""` for the status.
    pub path: String,
    pub kind: DiffKind,
    pub left: Option<Value>,
    pub right: Option<Value>,
    /// The path is declared noise by the route's rules.
    pub declared_noise: bool,
    /// A text diff (unified hunks) when the bodies are not JSON.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hunks: Option<String>,
    /// Token positions (1-based) of `path` that are array indexes.
    #[serde(skip, default)]
    index_depths: Vec<usize>,
}

impl Difference {
    pub(crate) fn outside_body(
        section: Section,
        path: &str,
        left: Option<Value>,
        right: Option<Value>,
    ) -> Self {
        let kind = match (&left, &right) {
            (Some(_), None) => DiffKind::MissingRight,
            (None, Some(_)) => DiffKind::MissingLeft,
            _ => DiffKind::Changed,
        };
        Self {
            section,
            path: path.to_owned(),
            kind,
            left,
            right,
            declared_noise: false,
            hunks: None,
            index_depths: Vec::new(),
        }
    }

    pub(crate) fn with_hunks(mut self, hunks: String) -> Self {
        self.hunks = Some(hunks);
        self
    }

    pub(crate) fn declared(mut self, noise: bool) -> Self {
        self.declared_noise = noise;
        self
    }

    /// The path with array indexes replaced by `*`, prefixed by its section for status
    /// and headers: `/items/*/id`, `header:content-type`, `status`. Differences are
    /// grouped by shape.
    pub fn shape(&self) -> String {
        match self.section {
            Section::Status => "status".into(),
            Section::Header => format!("header:{}", self.path),
            Section::Body => shape_with(&self.path, |depth| self.index_depths.contains(&depth)),
        }
    }
}

/// Every difference between `left` and `right` with default rules, in document order.
pub fn diff_json(left: &Value, right: &Value) -> Vec<Difference> {
    diff_json_with(left, right, &CompiledRules::default())
}

/// Every difference between `left` and `right` under `rules`, in document order.
pub fn diff_json_with(left: &Value, right: &Value, rules: &CompiledRules) -> Vec<Difference> {
    let mut walker = Walker {
        rules,
        out: Vec::new(),
        tokens: Vec::new(),
        pointer: String::new(),
        indexes: Vec::new(),
    };
    walker.walk(left, right);
    walker.out
}

struct Walker<'a> {
    rules: &'a CompiledRules,
    out: Vec<Difference>,
    tokens: Vec<String>,
    pointer: String,
    indexes: Vec<usize>,
}

impl Walker<'_> {
    fn push(&mut self, kind: DiffKind, left: Option<&Value>, right: Option<&Value>) {
        self.out.push(Difference {
            section: Section::Body,
            path: self.pointer.clone(),
            kind,
            left: left.cloned(),
            right: right.cloned(),
            declared_noise: self.rules.declared_noise(&self.tokens),
            hunks: None,
            index_depths: self.indexes.clone(),
        });
    }

    /// Runs `f` one level deeper, at `token` (an array index when `index`).
    fn descend(&mut self, token: &str, index: bool, f: impl FnOnce(&mut Self)) {
        let saved = self.pointer.len();
        self.pointer = pointer_push(&self.pointer, token);
        self.tokens.push(token.to_owned());
        if index {
            self.indexes.push(self.tokens.len());
        }
        f(self);
        if index {
            self.indexes.pop();
        }
        self.tokens.pop();
        self.pointer.truncate(saved);
    }

    fn walk(&mut self, left: &Value, right: &Value) {
        if self.rules.ignored(&self.tokens) {
            return;
        }
        if self.rules.shape_only(&self.tokens) {
            return self.walk_shape(left, right);
        }
        if let Some(min_cosine) = self.rules.vector(&self.tokens)
            && let Some(cosine) = cosine_similarity(left, right)
        {
            if cosine < min_cosine {
                let summary = |v: &Value| serde_json::json!({"vector": v.as_array().map_or(0, Vec::len), "cosine_similarity": cosine, "min_cosine": min_cosine});
                self.push(
                    DiffKind::Changed,
                    Some(&summary(left)),
                    Some(&summary(right)),
                );
            }
            return;
        }
        match (left, right) {
            (Value::Object(l), Value::Object(r)) => {
                for (key, lv) in l {
                    match r.get(key) {
                        Some(rv) => self.descend(key, false, |w| w.walk(lv, rv)),
                        None => self.descend(key, false, |w| w.missing(DiffKind::MissingRight, lv)),
                    }
                }
                for (key, rv) in r {
                    if !l.contains_key(key) {
                        self.descend(key, false, |w| w.missing(DiffKind::MissingLeft, rv));
                    }
                }
            }
            (Value::Array(l), Value::Array(r)) => self.walk_array(l, r),
            (Value::Number(a), Value::Number(b))
                if !numbers_equal(a, b, self.rules.numeric_tolerance) =>
            {
                self.push(DiffKind::Changed, Some(left), Some(right));
            }
            (Value::String(a), Value::String(b))
                if a != b && !(self.rules.timestamps && same_instant(a, b)) =>
            {
                self.push(DiffKind::Changed, Some(left), Some(right));
            }
            (Value::Number(_), Value::Number(_)) | (Value::String(_), Value::String(_)) => {}
            _ if std::mem::discriminant(left) != std::mem::discriminant(right) => {
                self.push(DiffKind::TypeChanged, Some(left), Some(right));
            }
            _ if left != right => self.push(DiffKind::Changed, Some(left), Some(right)),
            _ => {}
        }
    }

    fn missing(&mut self, kind: DiffKind, value: &Value) {
        if self.rules.ignored(&self.tokens) {
            return;
        }
        let (left, right) = match kind {
            DiffKind::MissingRight => (Some(value), None),
            _ => (None, Some(value)),
        };
        self.push(kind, left, right);
    }

    fn walk_array(&mut self, l: &[Value], r: &[Value]) {
        match self.rules.array_match(&self.tokens) {
            ArrayMatch::ByIndex => {
                if l.len() != r.len() {
                    self.push(
                        DiffKind::LengthChanged,
                        Some(&Value::from(l.len())),
                        Some(&Value::from(r.len())),
                    );
                }
                for (index, (lv, rv)) in l.iter().zip(r).enumerate() {
                    self.descend(&index.to_string(), true, |w| w.walk(lv, rv));
                }
            }
            ArrayMatch::ByKey(key) => {
                // Elements with the key pair by it; elements without it (a query that
                // did not select the key) pair in order among themselves.
                let id = |v: &Value| v.get(&key).map(canonical);
                self.pair_up(l, r, |a, b| id(a) == id(b), true);
            }
            ArrayMatch::AsSet => {
                let canon_r: Vec<String> = r.iter().map(canonical).collect();
                let canon_l: Vec<String> = l.iter().map(canonical).collect();
                let mut lookup: HashMap<&str, Vec<usize>> = HashMap::new();
                for (j, c) in canon_r.iter().enumerate() {
                    lookup.entry(c.as_str()).or_default().push(j);
                }
                let mut used = vec![false; r.len()];
                for (i, c) in canon_l.iter().enumerate() {
                    let found = lookup.get_mut(c.as_str()).and_then(|js| js.pop());
                    match found {
                        Some(j) => used[j] = true,
                        None => self.descend(&i.to_string(), true, |w| {
                            w.missing(DiffKind::MissingRight, &l[i])
                        }),
                    }
                }
                for (j, used) in used.iter().enumerate() {
                    if !used {
                        self.descend(&j.to_string(), true, |w| {
                            w.missing(DiffKind::MissingLeft, &r[j])
                        });
                    }
                }
            }
        }
    }

    /// Pairs elements with `same`; paired elements are compared when `compare`.
    fn pair_up(
        &mut self,
        l: &[Value],
        r: &[Value],
        same: impl Fn(&Value, &Value) -> bool,
        compare: bool,
    ) {
        let mut used = vec![false; r.len()];
        for (i, lv) in l.iter().enumerate() {
            let partner = r
                .iter()
                .enumerate()
                .find(|(j, rv)| !used[*j] && same(lv, rv))
                .map(|(j, _)| j);
            match partner {
                Some(j) => {
                    used[j] = true;
                    if compare {
                        self.descend(&i.to_string(), true, |w| w.walk(lv, &r[j]));
                    }
                }
                None => self.descend(&i.to_string(), true, |w| {
                    w.missing(DiffKind::MissingRight, lv)
                }),
            }
        }
        for (j, used) in used.iter().enumerate() {
            if !used {
                self.descend(&j.to_string(), true, |w| {
                    w.missing(DiffKind::MissingLeft, &r[j])
                });
            }
        }
    }

    /// Same keys and types, values aside.
    fn walk_shape(&mut self, left: &Value, right: &Value) {
        match (left, right) {
            (Value::Object(l), Value::Object(r)) => {
                for (key, lv) in l {
                    match r.get(key) {
                        Some(rv) => self.descend(key, false, |w| w.walk_shape(lv, rv)),
                        None => self.descend(key, false, |w| w.missing(DiffKind::MissingRight, lv)),
                    }
                }
                for (key, rv) in r {
                    if !l.contains_key(key) {
                        self.descend(key, false, |w| w.missing(DiffKind::MissingLeft, rv));
                    }
                }
            }
            (Value::Array(l), Value::Array(r)) => {
                for (index, (lv, rv)) in l.iter().zip(r).enumerate() {
                    self.descend(&index.to_string(), true, |w| w.walk_shape(lv, rv));
                }
            }
            _ if std::mem::discriminant(left) != std::mem::discriminant(right) => {
                self.push(DiffKind::TypeChanged, Some(left), Some(right));
            }
            _ => {}
        }
    }
}

/// A value's JSON text with object keys sorted, so equal values give equal text.
fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// The cosine similarity of two arrays of numbers of the same, non-zero length; `None`
/// for anything else (compared element by element then). Two zero vectors are alike.
fn cosine_similarity(left: &Value, right: &Value) -> Option<f64> {
    let (Value::Array(l), Value::Array(r)) = (left, right) else {
        return None;
    };
    if l.is_empty() || l.len() != r.len() {
        return None;
    }
    let (mut dot, mut ll, mut rr) = (0.0, 0.0, 0.0);
    for (a, b) in l.iter().zip(r) {
        let (a, b) = (a.as_f64()?, b.as_f64()?);
        dot += a * b;
        ll += a * a;
        rr += b * b;
    }
    if ll == 0.0 && rr == 0.0 {
        return Some(1.0);
    }
    let cosine = dot / (ll.sqrt() * rr.sqrt());
    // One zero vector (or an overflow): no direction in common.
    Some(if cosine.is_finite() { cosine } else { 0.0 })
}

/// JSON numbers are equal as values (`1` equals `1.0`), within `tolerance`.
fn numbers_equal(l: &serde_json::Number, r: &serde_json::Number, tolerance: f64) -> bool {
    match (l.as_i64(), r.as_i64(), l.as_u64(), r.as_u64()) {
        (Some(a), Some(b), _, _) if tolerance == 0.0 => a == b,
        (_, _, Some(a), Some(b)) if tolerance == 0.0 => a == b,
        _ => match (l.as_f64(), r.as_f64()) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= tolerance,
            _ => false,
        },
    }
}

/// Two RFC 3339 timestamps naming the same instant (`…Z` vs `…+00:00`, precision).
fn same_instant(a: &str, b: &str) -> bool {
    let looks_like_time =
        |s: &str| s.len() >= 20 && s.as_bytes().get(4) == Some(&b'-') && s.contains('T');
    if !looks_like_time(a) || !looks_like_time(b) {
        return false;
    }
    match (
        chrono::DateTime::parse_from_rfc3339(a),
        chrono::DateTime::parse_from_rfc3339(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rules::{ArrayRule, DiffRules};

    fn rules(yaml: serde_json::Value) -> CompiledRules {
        serde_json::from_value::<DiffRules>(yaml)
            .expect("rules")
            .compile()
            .expect("compile")
    }

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

    #[test]
    fn ignored_paths_are_not_compared_and_noise_is_flagged() {
        let r = rules(json!({"ignore": ["/debug"], "noise": ["/meta/*"]}));
        let left = json!({"debug": 1, "meta": {"id": "a", "at": 1}, "v": 1});
        let right = json!({"meta": {"id": "b", "at": 1}, "v": 2});
        let diffs = diff_json_with(&left, &right, &r);
        assert_eq!(diffs.len(), 2);
        assert!(
            diffs
                .iter()
                .any(|d| d.path == "/meta/id" && d.declared_noise)
        );
        assert!(diffs.iter().any(|d| d.path == "/v" && !d.declared_noise));
    }

    #[test]
    fn vectors_compare_by_direction() {
        let r = rules(json!({"vectors": [{"path": "/embedding", "min_cosine": 0.99}]}));
        let close = diff_json_with(
            &json!({"embedding": [0.6, 0.8, 0.0]}),
            &json!({"embedding": [0.61, 0.79, 0.01]}),
            &r,
        );
        assert!(close.is_empty(), "{close:?}");
        let far = diff_json_with(
            &json!({"embedding": [1.0, 0.0]}),
            &json!({"embedding": [0.0, 1.0]}),
            &r,
        );
        assert_eq!(far.len(), 1);
        assert_eq!(far[0].path, "/embedding");
        assert_eq!(
            far[0].left.as_ref().expect("a summary")["cosine_similarity"],
            json!(0.0)
        );
        let zero = diff_json_with(
            &json!({"embedding": [0.0, 0.0]}),
            &json!({"embedding": [0.0, 1.0]}),
            &r,
        );
        assert_eq!(zero.len(), 1, "a zero vector points nowhere");
        let shorter = diff_json_with(
            &json!({"embedding": [1.0, 0.0]}),
            &json!({"embedding": [1.0]}),
            &r,
        );
        assert_eq!(shorter[0].kind, DiffKind::LengthChanged);
        // Elsewhere, numbers still compare exactly.
        let other = diff_json_with(
            &json!({"other": [0.6, 0.8]}),
            &json!({"other": [0.61, 0.79]}),
            &r,
        );
        assert_eq!(other.len(), 2);
        let bad = serde_json::from_value::<DiffRules>(
            json!({"vectors": [{"path": "/e", "min_cosine": 1.5}]}),
        )
        .expect("rules")
        .compile();
        assert!(bad.is_err());
    }

    #[test]
    fn tolerance_and_timestamps_compare_values_not_text() {
        let r = rules(json!({"numeric_tolerance": 0.01}));
        let left = json!({"score": 0.6666, "at": "2026-01-01T00:00:00.000Z"});
        let right = json!({"score": 0.67, "at": "2026-01-01T00:00:00+00:00"});
        assert!(diff_json_with(&left, &right, &r).is_empty());
        let strict = rules(json!({"timestamps": false}));
        assert_eq!(diff_json_with(&left, &right, &strict).len(), 2);
    }

    #[test]
    fn shape_only_subtrees_compare_keys_and_types() {
        let r = rules(json!({"shape_only": ["/content"]}));
        let left = json!({"content": {"text": "one answer", "n": 1}});
        let right = json!({"content": {"text": "another answer", "n": 5}});
        assert!(diff_json_with(&left, &right, &r).is_empty());
        let wrong = json!({"content": {"text": 5, "n": 1, "extra": true}});
        assert_eq!(diff_json_with(&left, &wrong, &r).len(), 2);
    }

    #[test]
    fn arrays_pair_by_key_or_as_sets() {
        let by_id = DiffRules {
            arrays: vec![ArrayRule {
                path: "/items".into(),
                match_by: Some("id".into()),
                as_set: false,
            }],
            ..DiffRules::default()
        }
        .compile()
        .expect("rules");
        let left = json!({"items": [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]});
        let right = json!({"items": [{"id": 2, "v": "b"}, {"id": 1, "v": "z"}, {"id": 3}]});
        let diffs = diff_json_with(&left, &right, &by_id);
        let found: Vec<(&str, DiffKind)> =
            diffs.iter().map(|d| (d.path.as_str(), d.kind)).collect();
        assert_eq!(
            found,
            vec![
                ("/items/0/v", DiffKind::Changed),
                ("/items/2", DiffKind::MissingLeft)
            ]
        );
        // Elements without the key pair in order among themselves.
        let left = json!({"items": [{"v": "a"}, {"id": 1, "v": "b"}, {"v": "c"}]});
        let right = json!({"items": [{"id": 1, "v": "b"}, {"v": "a"}, {"v": "z"}]});
        let found: Vec<(String, DiffKind)> = diff_json_with(&left, &right, &by_id)
            .into_iter()
            .map(|d| (d.path, d.kind))
            .collect();
        assert_eq!(found, vec![("/items/2/v".to_owned(), DiffKind::Changed)]);

        let as_set = rules(json!({"arrays": [{"path": "/tags", "as_set": true}]}));
        assert!(
            diff_json_with(
                &json!({"tags": ["a", "b", "a"]}),
                &json!({"tags": ["b", "a", "a"]}),
                &as_set
            )
            .is_empty()
        );
        assert_eq!(
            diff_json_with(&json!({"tags": ["a"]}), &json!({"tags": ["b"]}), &as_set).len(),
            2
        );
    }
}
