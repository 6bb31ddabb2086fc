//! The diff engine on typical answers (2 KiB) and large ones (256 KiB), beside a plain
//! `serde_json::Value` equality check, the least any comparison must cost.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use studyflow_diffing::{CompiledRules, DiffRules, diff_json, diff_json_with};

/// A list of tasks of about `bytes` bytes; `variant` changes a few fields.
fn document(bytes: usize, variant: u64) -> Value {
    let mut tasks = Vec::new();
    let mut size = 0;
    let mut i = 0u64;
    while size < bytes {
        let task = json!({
            "id": format!("5f8c1a52-7c3e-4b6e-9a51-{:012x}", i),
            "title": format!("Read chapter {i}"),
            "status": if (i + variant).is_multiple_of(7) { "completed" } else { "todo" },
            "priority": "medium",
            "estimated_duration": 30 + i % 5,
            "tags": ["physics", "exam"],
            "created_at": "2026-11-28T07:00:00.000Z",
        });
        size += task.to_string().len();
        tasks.push(task);
        i += 1;
    }
    json!({"success": true, "generated_at": format!("2026-11-28T07:00:0{variant}.000Z"), "tasks": tasks})
}

fn rules() -> CompiledRules {
    let rules: DiffRules = serde_json::from_value(json!({
        "noise": ["/generated_at"],
        "arrays": [{"path": "/tasks", "match_by": "id"}],
    }))
    .expect("rules");
    rules.compile().expect("compile")
}

fn bench(c: &mut Criterion) {
    let rules = rules();
    for (label, bytes) in [("2KiB", 2 * 1024), ("256KiB", 256 * 1024)] {
        let mut group = c.benchmark_group(format!("compare {label}"));
        let (a, b) = (document(bytes, 0), document(bytes, 1));
        let same = a.clone();
        let (text_a, text_b) = (a.to_string(), b.to_string());
        // The floor: `==` on two equal documents walks them whole (on different ones it
        // stops at the first difference, which says nothing about the cost of a diff).
        group.bench_function(
            BenchmarkId::new("serde_json Value == (equal)", label),
            |bench| bench.iter(|| black_box(&a) == black_box(&same)),
        );
        group.bench_function(BenchmarkId::new("diff_json (equal)", label), |bench| {
            bench.iter(|| diff_json(black_box(&a), black_box(&same)))
        });
        group.bench_function(BenchmarkId::new("diff_json (differing)", label), |bench| {
            bench.iter(|| diff_json(black_box(&a), black_box(&b)))
        });
        group.bench_function(
            BenchmarkId::new("diff_json with rules (differing)", label),
            |bench| bench.iter(|| diff_json_with(black_box(&a), black_box(&b), &rules)),
        );
        group.bench_function(
            BenchmarkId::new("parse both + diff_json with rules (differing)", label),
            |bench| {
                bench.iter(|| {
                    let x: Value = serde_json::from_str(black_box(&text_a)).expect("json");
                    let y: Value = serde_json::from_str(black_box(&text_b)).expect("json");
                    diff_json_with(&x, &y, &rules)
                })
            },
        );
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
