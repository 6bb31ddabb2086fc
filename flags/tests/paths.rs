//! Every spelling of a route's path gets the decision of the path it names.
//!
//! Spellings are generated from the shipped routes table: percent-encoded unreserved
//! characters (either case), repeated slashes, `.` segments, `x/..` detours, a trailing
//! slash and sub-paths. Whatever the spelling, the canonical form must find the same
//! route, so a blocked function stays blocked and a migrated one is served by the side
//! its phase says.

use proptest::prelude::*;
use studyflow_flags::{DEFAULT_ROUTES_FILE, PathMatcher, RoutesFile, canonical_path};

/// One way of writing a single segment.
#[derive(Debug, Clone)]
enum Detour {
    None,
    Dot,
    DoubleSlash,
    Back(String),
}

fn detour() -> impl Strategy<Value = Detour> {
    prop_oneof![
        Just(Detour::None),
        Just(Detour::Dot),
        Just(Detour::DoubleSlash),
        "[a-z]{1,6}".prop_map(Detour::Back),
    ]
}

/// `segment` with each character percent-encoded where `mask` says so.
fn encode(segment: &str, mask: &[bool], lower: bool) -> String {
    segment
        .chars()
        .zip(mask.iter().cycle())
        .map(|(c, &encode)| match encode {
            true if lower => format!("%{:02x}", c as u32),
            true => format!("%{:02X}", c as u32),
            false => c.to_string(),
        })
        .collect()
}

/// A spelling of `path` (canonical, without `*` or `:` parts).
fn spell(path: &str, detours: &[Detour], mask: &[bool], lower: bool, leading: usize) -> String {
    let mut out = "/".repeat(leading);
    for (i, segment) in path.trim_start_matches('/').split('/').enumerate() {
        match &detours[i % detours.len()] {
            Detour::None => {}
            Detour::Dot => out.push_str("./"),
            Detour::DoubleSlash => out.push('/'),
            Detour::Back(name) => {
                out.push_str(name);
                out.push_str("/../");
            }
        }
        out.push_str(&encode(segment, mask, lower));
        out.push('/');
    }
    out.pop();
    out
}

fn routes() -> RoutesFile {
    RoutesFile::parse(DEFAULT_ROUTES_FILE).expect("shipped routes file")
}

/// The exact paths of the shipped routes (prefix routes without their `/*`).
fn route_paths(file: &RoutesFile) -> Vec<String> {
    file.routes
        .iter()
        .map(|r| r.path.to_string().trim_end_matches("/*").to_owned())
        .filter(|p| !p.contains(':') && p.len() > 1)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_spelling_gets_the_decision_of_its_canonical_path(
        index in 0usize..64,
        detours in prop::collection::vec(detour(), 1..5),
        mask in prop::collection::vec(any::<bool>(), 1..8),
        lower in any::<bool>(),
        leading in 1usize..4,
        suffix in prop_oneof![Just(String::new()), Just("/".to_owned()), "/[a-z0-9]{1,8}"],
    ) {
        let file = routes();
        let paths = route_paths(&file);
        let path = format!("{}{suffix}", paths[index % paths.len()]);
        let spelled = spell(&path, &detours, &mask, lower, leading);
        let canonical = canonical_path(&spelled).expect("a spelling has a canonical form");
        prop_assert_eq!(canonical.as_ref(), path.as_str(), "spelled {}", spelled);
        for method in ["GET", "POST"] {
            let expected = file.find(method, &path).map(|r| (&r.name, r.blocked));
            let got = file.find(method, &canonical).map(|r| (&r.name, r.blocked));
            prop_assert_eq!(got, expected, "{} {}", method, spelled);
            prop_assert!(expected.is_some(), "the route covers its own sub-paths: {}", path);
        }
    }

    #[test]
    fn canonical_paths_are_fixed_points_and_never_ambiguous(raw in "/[a-zA-Z0-9%./\\\\~_-]{0,40}") {
        if let Ok(canonical) = canonical_path(&raw) {
            let again = canonical_path(&canonical).expect("a canonical path stays valid");
            prop_assert_eq!(again.as_ref(), canonical.as_ref());
            prop_assert!(canonical.starts_with('/'));
            prop_assert!(!canonical.contains("//"), "{}", canonical);
            for segment in canonical.split('/') {
                prop_assert!(segment != "." && segment != "..", "{}", canonical);
            }
            let upper = canonical.to_ascii_uppercase();
            prop_assert!(!upper.contains("%2F") && !upper.contains("%5C") && !upper.contains("%2E"));
        }
    }

    #[test]
    fn any_text_is_answered_without_panicking(raw in any::<String>()) {
        let _ = canonical_path(&raw);
    }

    #[test]
    fn matchers_take_any_path_and_cover_whole_segments(
        pattern in "/[a-z:*]{1,6}(/[a-z:*]{1,6}){0,3}",
        path in "/[a-z]{0,6}(/[a-z]{0,6}){0,4}",
        tail in "[a-z]{1,6}",
    ) {
        let Some(matcher) = PathMatcher::parse(&pattern) else { return Ok(()) };
        let _ = matcher.matches(&path);
        let function = matcher.clone().with_subpaths();
        if let PathMatcher::Exact(exact) = &matcher {
            // A function covers what is below it, never a longer name beside it.
            let below = format!("{exact}/{tail}");
            let beside = format!("{exact}{tail}");
            prop_assert!(function.matches(exact));
            prop_assert!(function.matches(&below));
            prop_assert!(!function.matches(&beside));
        }
    }
}

#[test]
fn the_reported_spellings_of_test_keys_stay_blocked() {
    let file = routes();
    for spelling in [
        "/functions/v1/test-keys/",
        "/functions/v1/test-keys/x",
        "//functions/v1/test-keys",
        "/functions/v1/./test-keys",
        "/functions/v1/x/../test-keys",
        "/functions/v1/test%2Dkeys",
    ] {
        let canonical = canonical_path(spelling).expect("canonical");
        let route = file.find("POST", &canonical).expect("covered");
        assert!(route.blocked, "{spelling} must stay blocked");
    }
}
