//! The one canonical spelling of a request path.
//!
//! A path can be written many ways that an upstream reads as the same resource:
//! `/functions/v1/test-keys`, `//functions/v1/test-keys`, `/functions/v1/./test-keys`,
//! `/functions/v1/x/../test-keys`, `/functions/v1/test%2Dkeys`. The gateway routes, blocks
//! and forwards on [`canonical_path`]'s answer only, so every spelling gets the decision
//! of the path it names:
//!
//! - percent-encoded unreserved characters (`A–Z a–z 0–9 - . _ ~`, RFC 3986 §2.3) are
//!   decoded; every other escape is kept, with upper-case hex digits (§6.2.2.1);
//! - repeated slashes are collapsed;
//! - dot segments are removed (§5.2.4), a trailing slash is kept.
//!
//! A path is refused ([`PathError`]) when its meaning depends on who reads it: an encoded
//! separator (`%2F`, `%5C`) or a backslash, a NUL, a malformed escape, or `..` segments
//! that climb above the root.

use std::borrow::Cow;
use std::fmt;

/// Why a path has no canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not starting with `/`.
    NotAbsolute,
    /// `%2F` or `%5C`: a separator that some upstreams decode and some do not.
    EncodedSeparator,
    /// A raw `\`, which some upstreams read as `/`.
    Backslash,
    /// `%00`, or a raw control character.
    ControlCharacter,
    /// `%` not followed by two hex digits.
    MalformedEscape,
    /// More `..` segments than there are segments to remove.
    AboveRoot,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAbsolute => "the path must start with `/`",
            Self::EncodedSeparator => "the path contains an encoded `/` or `\\`",
            Self::Backslash => "the path contains a `\\`",
            Self::ControlCharacter => "the path contains a control character",
            Self::MalformedEscape => "the path contains a `%` not followed by two hex digits",
            Self::AboveRoot => "the path climbs above the root with `..`",
        })
    }
}

impl std::error::Error for PathError {}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Whether `path` is already canonical by a cheap look: no escapes, backslashes or
/// control characters, no empty or dot segments (but a trailing empty one). One pass
/// over the bytes; the common case allocates nothing.
fn is_plainly_canonical(path: &str) -> bool {
    let Some((&b'/', rest)) = path.as_bytes().split_first() else {
        return false;
    };
    // The segment being read: its length, and how many of its bytes are dots.
    let (mut len, mut dots) = (0usize, 0usize);
    let dot_segment = |len: usize, dots: usize| dots == len && (len == 1 || len == 2);
    for &byte in rest {
        match byte {
            b'%' | b'\\' => return false,
            b'/' => {
                if len == 0 || dot_segment(len, dots) {
                    return false;
                }
                (len, dots) = (0, 0);
            }
            b'.' => (len, dots) = (len + 1, dots + 1),
            byte if byte.is_ascii_control() => return false,
            _ => len += 1,
        }
    }
    !dot_segment(len, dots)
}

/// Decodes unreserved escapes and normalises the others' hex digits.
fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b'%' => {
                let (Some(high), Some(low)) = (
                    bytes.get(i + 1).copied().and_then(hex_value),
                    bytes.get(i + 2).copied().and_then(hex_value),
                ) else {
                    return Err(PathError::MalformedEscape);
                };
                let decoded = high << 4 | low;
                match decoded {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                    b if is_unreserved(b) => out.push(char::from(b)),
                    b => {
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        out.push('%');
                        out.push(char::from(HEX[usize::from(b >> 4)]));
                        out.push(char::from(HEX[usize::from(b & 0xf)]));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b if b.is_ascii_control() => return Err(PathError::ControlCharacter),
            _ => {
                // Copy the run up to the next byte that needs a look (keeps UTF-8 whole).
                let end = bytes[i..]
                    .iter()
                    .position(|&b| b == b'%' || b == b'\\' || b.is_ascii_control())
                    .map_or(bytes.len(), |n| i + n);
                out.push_str(&path[i..end]);
                i = end;
            }
        }
    }
    Ok(out)
}

/// The canonical form of a request path (without its query string); borrowed when the
/// path is already canonical.
pub fn canonical_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if is_plainly_canonical(path) {
        return Ok(Cow::Borrowed(path));
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = decode_unreserved(path)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded[1..].split('/') {
        trailing_slash = false;
        match segment {
            // An empty segment is a repeated slash, or the end of a trailing one.
            "" => trailing_slash = !segments.is_empty(),
            "." => trailing_slash = !segments.is_empty(),
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = !segments.is_empty();
            }
            name => segments.push(name),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(path: &str) -> String {
        canonical_path(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .into_owned()
    }

    /// The plain look's rule spelled out segment by segment.
    fn plain_by_segments(path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        if rest
            .bytes()
            .any(|b| b == b'%' || b == b'\\' || b.is_ascii_control())
        {
            return false;
        }
        let segments: Vec<&str> = rest.split('/').collect();
        segments.iter().enumerate().all(|(i, segment)| {
            (!segment.is_empty() || i + 1 == segments.len()) && *segment != "." && *segment != ".."
        })
    }

    proptest::proptest! {
        #[test]
        fn the_plain_look_reads_segments_as_they_are_spelled(
            path in "[/a.%\\\\\\x00\\x7f]{0,12}",
        ) {
            proptest::prop_assert_eq!(is_plainly_canonical(&path), plain_by_segments(&path));
        }
    }

    #[test]
    fn plain_paths_are_borrowed() {
        for path in ["/", "/functions/v1/auth-validation", "/rest/v1/tasks/"] {
            assert!(matches!(canonical_path(path), Ok(Cow::Borrowed(p)) if p == path));
        }
    }

    #[test]
    fn every_spelling_of_a_function_names_it() {
        for spelling in [
            "//functions/v1/test-keys",
            "/functions//v1///test-keys",
            "/functions/v1/./test-keys",
            "/functions/v1/x/../test-keys",
            "/functions/v1/test%2Dkeys",
            "/functions/v1/test%2dkeys",
            "/%66unctions/v1/test-keys",
            "/functions/v1/x/%2E%2E/test-keys",
            "/functions/v1/test-keys/.",
        ] {
            let expected = if spelling.ends_with("/.") {
                "/functions/v1/test-keys/"
            } else {
                "/functions/v1/test-keys"
            };
            assert_eq!(canonical(spelling), expected, "{spelling}");
        }
        assert_eq!(
            canonical("/functions/v1/test-keys/"),
            "/functions/v1/test-keys/"
        );
    }

    #[test]
    fn other_escapes_are_kept_with_upper_case_digits() {
        assert_eq!(canonical("/a/b%20c%3f"), "/a/b%20c%3F");
        assert_eq!(canonical("/a/%c3%a9t%C3%A9"), "/a/%C3%A9t%C3%A9");
        assert_eq!(canonical("/a/été/./b"), "/a/été/b");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        assert_eq!(
            canonical_path("/functions/v1/a%2Fb"),
            Err(PathError::EncodedSeparator)
        );
        assert_eq!(
            canonical_path("/functions/v1/a%5cb"),
            Err(PathError::EncodedSeparator)
        );
        assert_eq!(canonical_path("/a\\b"), Err(PathError::Backslash));
        assert_eq!(canonical_path("/a%00"), Err(PathError::ControlCharacter));
        assert_eq!(canonical_path("/a%zz"), Err(PathError::MalformedEscape));
        assert_eq!(canonical_path("/a%2"), Err(PathError::MalformedEscape));
        assert_eq!(canonical_path("/../a"), Err(PathError::AboveRoot));
        assert_eq!(canonical_path("/a/../../b"), Err(PathError::AboveRoot));
        assert_eq!(canonical_path("a/b"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn dot_segments_to_the_root_leave_the_root() {
        assert_eq!(canonical("/a/.."), "/");
        assert_eq!(canonical("/."), "/");
        assert_eq!(canonical("//"), "/");
    }
}
