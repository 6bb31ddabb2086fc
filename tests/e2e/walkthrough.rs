//! The README's walkthrough, run as written: every shell block marked `<!-- walkthrough
//! -->` in `README.md`, in order, in one bash session against a fresh stack, with the
//! environment `make run` prints. Each block's output is checked for what the README
//! says it shows.

use std::process::Stdio;

use studyflow_testkit::stack::{self, DEV_ADMIN_TOKEN, Stack, StackOptions};

/// The marked blocks of the README, in order.
fn walkthrough_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = readme;
    while let Some(at) = rest.find("<!-- walkthrough -->") {
        rest = &rest[at..];
        let start = rest.find("```sh\n").expect("a sh block after the marker") + 6;
        let end = rest[start..].find("\n```").expect("the block ends") + start;
        blocks.push(rest[start..end].to_owned());
        rest = &rest[end..];
    }
    blocks
}

/// `uniq -c` lines (`    120 legacy`) as (side, count).
fn counts(output: &str) -> Vec<(String, u64)> {
    output
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let n = words.next()?.parse().ok()?;
            let side = words.next()?;
            (words.next().is_none() && matches!(side, "legacy" | "new"))
                .then(|| (side.to_owned(), n))
        })
        .collect()
}

#[tokio::test]
async fn the_readme_walkthrough_runs_as_written() {
    let root = stack::repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let blocks = walkthrough_blocks(&readme);
    assert_eq!(blocks.len(), 8, "the walkthrough's blocks: {blocks:#?}");

    let options = StackOptions::for_test("walkthrough").expect("options");
    let database = options.database.clone();
    let stack = Stack::start(options).await.expect("stack starts");
    // One session, each block announced so its output can be told apart.
    let script: String = blocks
        .iter()
        .enumerate()
        .map(|(i, block)| format!("echo '::block {i}'\n{block}\n"))
        .collect();
    let output = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&root)
        .env("GATEWAY", &stack.gateway_url)
        .env("STUDYFLOW_ADMIN_URL", &stack.admin_url)
        .env("STUDYFLOW_ADMIN_TOKEN", DEV_ADMIN_TOKEN)
        .env("STUDYFLOW_OPERATOR", "ada")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        output.status.success(),
        "the walkthrough failed:\n{stdout}\n{stderr}"
    );
    let outputs: Vec<&str> = stdout.split("::block ").skip(1).collect();
    assert_eq!(outputs.len(), blocks.len(), "{stdout}");

    // 0: the route starts on legacy.
    assert!(
        outputs[0].contains("auth-validation") && outputs[0].contains("legacy"),
        "{}",
        outputs[0]
    );
    // 1: shadow, every student on legacy, and every copy compared.
    assert_eq!(
        counts(outputs[1]),
        [("legacy".to_owned(), 120)],
        "{}",
        outputs[1]
    );
    assert!(outputs[1].contains("phase      shadow"), "{}", outputs[1]);
    // 2: the gate held on the shadow pairs.
    assert!(
        outputs[2].contains("gate holds") && outputs[2].contains("shadow -> canary 25%"),
        "{}",
        outputs[2]
    );
    // 3: a step right after the last finds no evidence.
    assert!(
        outputs[3].contains("[FAIL] compared pairs       0") && outputs[3].contains("refused"),
        "{}",
        outputs[3]
    );
    // 4: the canary splits the students.
    let split = counts(outputs[4]);
    let on_new = split
        .iter()
        .find(|(s, _)| s == "new")
        .map_or(0, |(_, n)| *n);
    assert!(
        split.len() == 2 && (10..=100).contains(&on_new),
        "200 requests of 40 students split: {split:?}"
    );
    // 5: primary, every student on new.
    assert!(
        outputs[5].contains("canary 100% -> primary"),
        "{}",
        outputs[5]
    );
    assert_eq!(counts(outputs[5]).last(), Some(&("new".to_owned(), 20)));
    // 6: a diff report.
    assert!(outputs[6].contains("auth-validation"), "{}", outputs[6]);
    // 7: rolled back, every student on legacy, overrides dropped.
    assert!(
        outputs[7].contains("primary -> legacy (rollback by ada)"),
        "{}",
        outputs[7]
    );
    assert_eq!(
        counts(outputs[7]),
        [("legacy".to_owned(), 20)],
        "{}",
        outputs[7]
    );

    stack.stop().await;
    let _ = studyflow_testkit::database::drop(&database).await;
    let _ = studyflow_testkit::database::drop(&format!("{database}_diffs")).await;
}
