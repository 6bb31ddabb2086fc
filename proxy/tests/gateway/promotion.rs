//! Diff-gated promotion: `promote` refuses without enough evidence (printing it), moves
//! the route one step forward with it, and `--force` goes past the gate with an audited
//! reason.

use crate::harness::{Gateway, TestUpstream};

const PROMOTION: &str = "promotion:\n  min_pairs: 10\n  max_mismatch_rate: 0.1\n  max_error_rate: 0.1\n  canary_steps: [5, 50, 100]\n";

#[tokio::test]
async fn promotion_refuses_without_evidence_and_proceeds_with_it() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes =
        "routes:\n  - {name: tasks, path: /noisy, phase: shadow, diff: {noise: [/id, /at]}}\n";
    let gateway = Gateway::start(routes, &legacy.url, &new.url, PROMOTION).await;

    let (ok, out) = gateway
        .cli(&["promote", "tasks", "--reason", "looks fine"])
        .await;
    assert!(!ok, "refused without evidence: {out}");
    assert!(
        out.contains("does NOT hold")
            && out.contains("[FAIL] compared pairs")
            && out.contains("shadow -> canary 5%"),
        "{out}"
    );
    assert_eq!(gateway.route("tasks").await["phase"], "shadow");

    for _ in 0..15 {
        gateway.get("/noisy").await;
    }
    assert!(gateway.wait_counter("tasks", "pairs_noise", 10).await >= 10);
    let (ok, out) = gateway
        .cli(&["promote", "tasks", "--reason", "15 pairs, noise only"])
        .await;
    println!("{out}");
    assert!(ok, "{out}");
    assert!(
        out.contains("gate holds") && out.contains("[ok] compared pairs"),
        "{out}"
    );
    assert!(
        out.contains("tasks: shadow -> canary 5% (promote by cli-operator)"),
        "{out}"
    );
    let route = gateway.route("tasks").await;
    assert_eq!(route["percent"], 5);

    // A new phase starts with no evidence: the next step is refused again …
    let (ok, out) = gateway
        .cli(&["promote", "tasks", "--percent", "50", "--reason", "hurry"])
        .await;
    assert!(!ok, "{out}");
    // … unless forced, which the audit log records with the failed checks.
    let (ok, out) = gateway
        .cli(&[
            "promote",
            "tasks",
            "--percent",
            "50",
            "--force",
            "--reason",
            "launch day",
        ])
        .await;
    assert!(ok, "{out}");
    let route = gateway.route("tasks").await;
    assert_eq!(route["percent"], 50);
    let entry = &route["audit"][0];
    assert_eq!(entry["action"], "promote_forced");
    assert!(
        entry["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("launch day [forced past the gate: compared pairs 0")),
        "{entry}"
    );
}
