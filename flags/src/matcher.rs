use std::fmt;

/// Which request paths a route covers.
///
/// Written in the routes file as one string:
/// - `/functions/v1/auth-validation` matches that path exactly;
/// - `/rest/v1/*` matches `/rest/v1` and everything below it;
/// - `/functions/v1/:name` matches one segment in place of `:name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatcher {
    Exact(String),
    Prefix(String),
    Pattern(Vec<Segment>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param(String),
}

impl PathMatcher {
    /// Parses the routes-file notation; `None` when the text is not an absolute path.
    pub fn parse(text: &str) -> Option<Self> {
        if !text.starts_with('/') {
            return None;
        }
        if let Some(prefix) = text.strip_suffix("/*") {
            return Some(Self::Prefix(prefix.to_owned()));
        }
        if text.split('/').any(|segment| segment.starts_with(':')) {
            let segments = text
                .split('/')
                .skip(1)
                .map(|segment| match segment.strip_prefix(':') {
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(segment.to_owned()),
                })
                .collect();
            return Some(Self::Pattern(segments));
        }
        Some(Self::Exact(text.to_owned()))
    }

    /// The same matcher, but an exact path also covers its trailing slash and everything
    /// below it (`/functions/v1/ai-proxy` covers `/functions/v1/ai-proxy/x`). The root
    /// stays exact.
    pub fn with_subpaths(self) -> Self {
        match self {
            Self::Exact(exact) if exact.len() > 1 => {
                Self::Prefix(exact.trim_end_matches('/').to_owned())
            }
            other => other,
        }
    }

    /// Whether `path` (canonical, without query string) is covered.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => path == exact,
            Self::Prefix(prefix) => path
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
            Self::Pattern(segments) => {
                let mut parts = path.split('/').skip(1);
                let all_match = segments
                    .iter()
                    .all(|segment| match (segment, parts.next()) {
                        (Segment::Literal(literal), Some(part)) => literal == part,
                        (Segment::Param(_), Some(part)) => !part.is_empty(),
                        (_, None) => false,
                    });
                all_match && parts.next().is_none()
            }
        }
    }
}

impl fmt::Display for PathMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(exact) => f.write_str(exact),
            Self::Prefix(prefix) => write!(f, "{prefix}/*"),
            Self::Pattern(segments) => {
                for segment in segments {
                    match segment {
                        Segment::Literal(literal) => write!(f, "/{literal}")?,
                        Segment::Param(name) => write!(f, "/:{name}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(text: &str) -> PathMatcher {
        PathMatcher::parse(text).expect("valid path")
    }

    #[test]
    fn exact_paths_match_only_themselves() {
        let m = matcher("/functions/v1/auth-validation");
        assert!(m.matches("/functions/v1/auth-validation"));
        assert!(!m.matches("/functions/v1/auth-validation/x"));
        assert!(!m.matches("/functions/v1/auth-validatio"));
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let m = matcher("/rest/v1/*");
        assert!(m.matches("/rest/v1"));
        assert!(m.matches("/rest/v1/tasks"));
        assert!(!m.matches("/rest/v10"));
    }

    #[test]
    fn patterns_bind_one_segment_per_parameter() {
        let m = matcher("/functions/v1/:name");
        assert!(m.matches("/functions/v1/encryption"));
        assert!(!m.matches("/functions/v1/"));
        assert!(!m.matches("/functions/v1/a/b"));
        assert_eq!(m.to_string(), "/functions/v1/:name");
    }

    #[test]
    fn exact_paths_with_subpaths_cover_what_is_below_them() {
        let m = matcher("/functions/v1/test-keys").with_subpaths();
        assert!(m.matches("/functions/v1/test-keys"));
        assert!(m.matches("/functions/v1/test-keys/"));
        assert!(m.matches("/functions/v1/test-keys/x/y"));
        assert!(!m.matches("/functions/v1/test-keysx"));
        assert_eq!(matcher("/").with_subpaths(), matcher("/"));
    }

    #[test]
    fn relative_paths_are_refused() {
        assert_eq!(PathMatcher::parse("functions"), None);
    }
}
