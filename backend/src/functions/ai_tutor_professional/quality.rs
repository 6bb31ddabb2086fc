//! The tutor's answer quality score, computed as the legacy computes it, with
//! JavaScript string semantics: lengths in UTF-16 units, JavaScript's `\s` class,
//! `split(/\s+/)` with its leading empty piece, and ASCII-only case-insensitive matching
//! (the legacy regexes have no `u` flag, so no non-ASCII letter matches an ASCII one).

use serde_json::{Value, json};

use crate::js::text::{is_js_whitespace, split_whitespace_runs, utf16_len};
use crate::js::value::number;

/// Criteria scoring below this get a recommendation.
const THRESHOLD: f64 = 0.7;

/// The four criteria, in the legacy's order, with their suggestion texts.
const SUGGESTIONS: [(&str, &str); 4] = [
    ("accuracy", "Verify facts and ensure contextual relevance"),
    (
        "completeness",
        "Add more detail and cover additional aspects",
    ),
    ("clarity", "Simplify language and improve structure"),
    (
        "educationalValue",
        "Include examples and encourage critical thinking",
    ),
];

/// The `quality` object of a tutor answer: `{overall, breakdown, recommendations,
/// confidence}`.
pub fn assess(content: &str, message: &str) -> Value {
    let values = [
        accuracy(content, message),
        completeness(content),
        clarity(content),
        educational_value(content),
    ];
    let overall = values.iter().fold(0.0, |sum, v| sum + v) / values.len() as f64;
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let breakdown: Vec<Value> = SUGGESTIONS
        .iter()
        .zip(values)
        .map(|((name, _), value)| json!({"name": name, "value": number(value)}))
        .collect();
    let recommendations: Vec<Value> = SUGGESTIONS
        .iter()
        .zip(values)
        .filter(|(_, value)| *value < THRESHOLD)
        .map(|((name, suggestion), value)| {
            json!({
                "criterion": name,
                "issue": format!("{name} score below threshold"),
                "suggestion": suggestion,
                "priority": if value < 0.5 { "high" } else { "medium" },
            })
        })
        .collect();
    json!({
        "overall": number(overall),
        "breakdown": breakdown,
        "recommendations": recommendations,
        "confidence": number(f64::max(0.0, 1.0 - (max - min))),
    })
}

/// (number of true checks) / 3.
fn score(checks: [bool; 3]) -> f64 {
    checks.iter().filter(|c| **c).count() as f64 / 3.0
}

/// `/a|b|c/i.test(text)` for lower-case ASCII alternatives.
fn matches_any(text: &str, alternatives: &[&str]) -> bool {
    let lower = text.to_ascii_lowercase();
    alternatives.iter().any(|a| lower.contains(a))
}

/// `/there are(?!\s)/i.test(text)`: "there are" not followed by whitespace (end of text
/// included).
fn there_are_without_space(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.match_indices("there are").any(|(at, found)| {
        lower[at + found.len()..]
            .chars()
            .next()
            .is_none_or(|next| !is_js_whitespace(next))
    })
}

fn accuracy(content: &str, message: &str) -> f64 {
    let cites_sources = matches_any(
        content,
        &["according to", "research shows", "studies indicate"],
    );
    let no_common_errors =
        !(matches_any(content, &["their are"]) || there_are_without_space(content));
    score([cites_sources, no_common_errors, relevant(content, message)])
}

/// Word overlap: content words longer than 3 (UTF-16) that occur among the message's
/// words, duplicates counted, relative to the number of message words, >= 0.3.
fn relevant(content: &str, message: &str) -> bool {
    let content = content.to_lowercase();
    let message = message.to_lowercase();
    let content_words = split_whitespace_runs(&content);
    let message_words = split_whitespace_runs(&message);
    let overlap = content_words
        .iter()
        .filter(|word| utf16_len(word) > 3 && message_words.contains(word))
        .count();
    overlap as f64 / message_words.len() as f64 >= 0.3
}

fn completeness(content: &str) -> f64 {
    // The legacy's answer-type detection returns true in every case.
    let answers_question = true;
    let length = utf16_len(content);
    let adequate_length = (100..=3000).contains(&length);
    let next_steps = matches_any(content, &["next", "further", "practice", "try", "consider"]);
    score([answers_question, adequate_length, next_steps])
}

fn clarity(content: &str) -> f64 {
    let words = split_whitespace_runs(content);
    let total: usize = words.iter().map(|w| utf16_len(w)).sum();
    let simple_language = total as f64 / words.len() as f64 <= 8.0;
    let transitions = matches_any(
        content,
        &["first", "then", "however", "therefore", "because"],
    );
    let examples = matches_any(content, &["example", "instance", "such as"]);
    score([simple_language, transitions, examples])
}

fn educational_value(content: &str) -> f64 {
    let objectives = matches_any(content, &["learn", "understand", "master"]);
    let examples = matches_any(content, &["example", "instance", "demonstrate"]);
    let thinking = matches_any(content, &["why", "how", "what if", "consider", "analyze"]);
    score([objectives, examples, thinking])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(quality: &Value) -> Vec<f64> {
        quality["breakdown"]
            .as_array()
            .expect("breakdown")
            .iter()
            .map(|c| c["value"].as_f64().expect("number"))
            .collect()
    }

    /// Values computed by hand with the legacy's JavaScript (`assessQuality`).
    #[test]
    fn empty_answer() {
        // "".split(/\s+/) is [""]: one word of length 0, mean 0 <= 8.
        let q = assess("", "What is x?");
        assert_eq!(values(&q), vec![1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 0.0]);
        assert_eq!(q["overall"].as_f64(), Some(0.25));
        assert_eq!(q["confidence"].as_f64(), Some(1.0 - 1.0 / 3.0));
        let recs = q["recommendations"].as_array().expect("array");
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[0]["priority"], "high");
        assert_eq!(recs[3]["criterion"], "educationalValue");
        assert_eq!(recs[3]["issue"], "educationalValue score below threshold");
    }

    #[test]
    fn a_rich_answer_scores_full_marks() {
        let content = "According to research, first understand why derivatives matter. \
                       For example, the derivative of x squared is 2x. Next, practice \
                       with further problems so you master the rules of derivatives.";
        let q = assess(content, "explain derivatives");
        // accuracy: cites, no errors, overlap: "derivatives" once (the one followed by
        // "." is another word), "explain" is absent → 1/2 message words >= 0.3.
        assert_eq!(values(&q), vec![1.0, 1.0, 1.0, 1.0]);
        assert_eq!(q["overall"], json!(1));
        assert_eq!(q["confidence"], json!(1));
        assert_eq!(q["recommendations"], json!([]));
    }

    #[test]
    fn there_are_lookahead_and_ascii_only_case_folding() {
        assert!(there_are_without_space("There are"));
        assert!(there_are_without_space("there are, sadly"));
        assert!(!there_are_without_space("there are many"));
        // U+00A0 and U+FEFF are JavaScript whitespace.
        assert!(!there_are_without_space("there are\u{a0}many"));
        assert!(!there_are_without_space("there are\u{feff}many"));
        // U+0085 is not.
        assert!(there_are_without_space("there are\u{85}many"));
        // Kelvin sign and long s do not match k and s without the `u` flag.
        assert!(!matches_any("\u{212a}now", &["know"]));
        assert!(!matches_any("in\u{17f}tance", &["instance"]));
        assert!(matches_any("INSTANCE", &["instance"]));
    }

    #[test]
    fn lengths_are_utf16_units() {
        // 50 emoji are 100 UTF-16 units: adequate length.
        let emoji = "😀".repeat(50);
        assert_eq!(completeness(&emoji), 2.0 / 3.0);
        // 99 units are not.
        let short = format!("{}a", "😀".repeat(49));
        assert_eq!(completeness(&short), 1.0 / 3.0);
        // One 9-unit word ("😀😀😀😀a" is 9 units): mean length 9 > 8.
        assert_eq!(clarity("😀😀😀😀a"), 0.0);
        // Leading whitespace adds an empty word: (0 + 9) / 2 <= 8.
        assert_eq!(clarity(" 😀😀😀😀a"), 1.0 / 3.0);
    }

    #[test]
    fn overlap_counts_duplicates_and_the_leading_empty_word() {
        // Message " calculus" splits into ["", "calculus"]: 2 words.
        // Content words "calculus" x1 → 1/2 >= 0.3.
        assert!(relevant("calculus", " calculus"));
        // Message of 7 words, content repeats one long word twice → 2/7 < 0.3.
        assert!(!relevant(
            "limit limit",
            "what is the limit of this function"
        ));
        // Three times → 3/7 >= 0.3.
        assert!(relevant(
            "limit limit limit",
            "what is the limit of this function"
        ));
        // Words of 3 units never count.
        assert!(!relevant("sum sum sum", "sum"));
    }
}
