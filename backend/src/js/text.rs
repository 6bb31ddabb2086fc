//! String semantics: lengths in UTF-16 code units and JavaScript's whitespace class.

/// `s.length` in JavaScript: UTF-16 code units, so an emoji counts 2.
pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Whether `c` is in JavaScript's `\s` class (WhiteSpace and LineTerminator).
///
/// Differs from [`char::is_whitespace`]: U+FEFF is JavaScript whitespace, U+0085 is not.
pub fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// `s.split(/\s+/)`: pieces between whitespace runs, keeping the empty first (last) piece
/// when `s` starts (ends) with whitespace; `""` gives `[""]`.
pub fn split_whitespace_runs(s: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_run = false;
    for (index, c) in s.char_indices() {
        if is_js_whitespace(c) {
            if !in_run {
                pieces.push(&s[start..index]);
                in_run = true;
            }
            start = index + c.len_utf8();
        } else {
            in_run = false;
        }
    }
    pieces.push(&s[start..]);
    pieces
}

/// `s.trim()`: strips JavaScript whitespace at both ends.
pub fn trim(s: &str) -> &str {
    s.trim_matches(is_js_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_utf16_units() {
        assert_eq!(utf16_len("abc"), 3);
        assert_eq!(utf16_len("é"), 1);
        assert_eq!(utf16_len("😀"), 2);
        assert_eq!(utf16_len("a😀b"), 4);
    }

    #[test]
    fn whitespace_class_is_javascripts() {
        for c in [
            '\t', '\u{b}', '\u{a0}', '\u{2007}', '\u{3000}', '\u{feff}', '\u{2028}',
        ] {
            assert!(is_js_whitespace(c), "{c:?}");
        }
        // NEL is Unicode whitespace but not JavaScript's; zero-width space is neither.
        assert!(!is_js_whitespace('\u{85}'));
        assert!(!is_js_whitespace('\u{200b}'));
        assert!(!is_js_whitespace('x'));
    }

    #[test]
    fn split_keeps_leading_and_trailing_empty_pieces() {
        assert_eq!(split_whitespace_runs(""), vec![""]);
        assert_eq!(split_whitespace_runs(" "), vec!["", ""]);
        assert_eq!(split_whitespace_runs("a b"), vec!["a", "b"]);
        assert_eq!(
            split_whitespace_runs("  a \t\n b  "),
            vec!["", "a", "b", ""]
        );
        assert_eq!(split_whitespace_runs("a\u{feff}b"), vec!["a", "b"]);
        assert_eq!(split_whitespace_runs("a\u{85}b"), vec!["a\u{85}b"]);
    }
}
