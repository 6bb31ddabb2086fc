//! Text bodies: a unified diff, for bodies that are not JSON.

use similar::TextDiff;

/// Unified hunks (3 lines of context) between two texts, or `None` when equal.
pub fn unified(left: &str, right: &str) -> Option<String> {
    if left == right {
        return None;
    }
    let diff = TextDiff::from_lines(left, right);
    Some(
        diff.unified_diff()
            .context_radius(3)
            .header("served", "shadow")
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_show_the_changed_lines() {
        let hunks = unified("a\nb\nc\n", "a\nB\nc\n").expect("differs");
        assert!(hunks.contains("-b") && hunks.contains("+B"), "{hunks}");
        assert!(unified("same", "same").is_none());
    }
}
