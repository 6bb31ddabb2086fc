//! The names of the headers the gateway adds to requests, answers and shadow copies, or
//! looks up on every request, checked once. pingora would otherwise parse each name, and
//! copy the ones outside `http`'s standard list into a new allocation, on every insert
//! (vendor/pingora-http/PATCHED.md); a lookup by `&str` parses and checks the name too.
//! They are spelled exactly as the `&str` names they replace, so the wire is unchanged.

use pingora::http::KnownHeaderName;

use crate::gateway::{ROUTE as ROUTE_NAME, SERVED_BY as SERVED_BY_NAME};
use crate::shadow::{REQUEST_ID as REQUEST_ID_NAME, SHADOW_HEADER};

pub static HOST: KnownHeaderName = KnownHeaderName::from_static("host");
pub static REQUEST_ID: KnownHeaderName = KnownHeaderName::from_static(REQUEST_ID_NAME);
pub static FORWARDED_FOR: KnownHeaderName = KnownHeaderName::from_static("x-forwarded-for");
pub static FORWARDED_PROTO: KnownHeaderName = KnownHeaderName::from_static("x-forwarded-proto");
pub static ROUTE: KnownHeaderName = KnownHeaderName::from_static(ROUTE_NAME);
pub static SERVED_BY: KnownHeaderName = KnownHeaderName::from_static(SERVED_BY_NAME);
pub static SHADOW: KnownHeaderName = KnownHeaderName::from_static(SHADOW_HEADER);
/// Read, not added: Supabase's API key header, looked up without parsing its name.
pub static APIKEY: KnownHeaderName = KnownHeaderName::from_static("apikey");

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::http::{RequestHeader, ResponseHeader};

    /// The wires of two copies of `$head`, one given `$names` by `&str`, the other by
    /// their known names (request and answer heads share these methods, not a trait).
    macro_rules! wires_by_str_and_known {
        ($head:expr, $names:expr) => {{
            let mut by_str = $head;
            let mut by_known = by_str.clone();
            by_known.reserve_headers($names.len()).expect("room");
            let value = http::HeaderValue::from_static("v");
            for (name, known) in $names {
                by_str.insert_header(name, value.clone()).expect("by name");
                by_known.insert_header(known, value.clone()).expect("known");
            }
            let (mut a, mut b) = (Vec::new(), Vec::new());
            by_str.header_to_h1_wire(&mut a);
            by_known.header_to_h1_wire(&mut b);
            (
                String::from_utf8_lossy(&a).into_owned(),
                String::from_utf8_lossy(&b).into_owned(),
            )
        }};
    }

    /// A known name writes the same bytes as the `&str` name it replaces.
    #[test]
    fn known_names_write_the_wire_their_str_names_wrote() {
        let request = RequestHeader::build("GET", b"/", Some(1)).expect("request head");
        let (a, b) = wires_by_str_and_known!(
            request,
            [
                ("host", &HOST),
                (REQUEST_ID_NAME, &REQUEST_ID),
                ("x-forwarded-for", &FORWARDED_FOR),
                ("x-forwarded-proto", &FORWARDED_PROTO),
                (SHADOW_HEADER, &SHADOW),
            ]
        );
        assert_eq!(a, b);

        let answer = ResponseHeader::build(200, Some(1)).expect("answer head");
        let (a, b) = wires_by_str_and_known!(
            answer,
            [
                (ROUTE_NAME, &ROUTE),
                (SERVED_BY_NAME, &SERVED_BY),
                (REQUEST_ID_NAME, &REQUEST_ID),
            ]
        );
        assert_eq!(a, b);
        assert!(b.contains("x-studyflow-served-by: v\r\n"));
    }
}
