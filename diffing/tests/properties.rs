//! Properties of the diff engine over arbitrary JSON documents.

use proptest::prelude::*;
use serde_json::{Map, Value};
use studyflow_diffing::{diff_json, path_shape};

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        "[a-z0-9 ]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #[test]
    fn a_document_never_differs_from_itself(doc in json()) {
        prop_assert!(diff_json(&doc, &doc).is_empty());
    }

    #[test]
    fn differences_are_symmetric_in_count(a in json(), b in json()) {
        prop_assert_eq!(diff_json(&a, &b).len(), diff_json(&b, &a).len());
    }

    #[test]
    fn a_changed_leaf_is_found_at_its_path(doc in json(), extra in "[a-z]{1,6}") {
        let mut changed = doc.clone();
        let path = match &mut changed {
            Value::Object(map) => {
                let key = format!("__{extra}");
                map.insert(key.clone(), Value::from("added"));
                format!("/{key}")
            }
            Value::Array(items) => {
                items.push(Value::from("added"));
                format!("/{}", items.len() - 1)
            }
            other => {
                *other = Value::from(vec![Value::from("replaced")]);
                String::new()
            }
        };
        let diffs = diff_json(&doc, &changed);
        prop_assert!(!diffs.is_empty());
        prop_assert!(diffs.iter().any(|d| d.path == path || (d.path.is_empty() && path.is_empty()) || path.starts_with(&d.path)));
    }

    #[test]
    fn every_path_resolves_in_the_document_that_has_it(a in json(), b in json()) {
        for difference in diff_json(&a, &b) {
            let present = if difference.left.is_some() { &a } else { &b };
            prop_assert!(present.pointer(&difference.path).is_some(), "{} not in document", difference.path);
        }
    }

    #[test]
    fn shapes_replace_every_array_index(indexes in prop::collection::vec(0usize..50, 1..4)) {
        let path: String = indexes.iter().map(|i| format!("/items/{i}")).collect();
        prop_assert_eq!(path_shape(&path), "/items/*".repeat(indexes.len()));
    }
}
