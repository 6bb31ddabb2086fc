//! What the gateway captures of one shadowed request: the request, the answer the client
//! got, and the other side's answer to the copy.

use std::io::Read;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// A request as the gateway received it (body up to the capture cap).
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The headers as parsed off the wire: the map holds `Bytes` handles on the parsed
    /// head, so capturing them copies no name or value.
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body was longer than the cap and is cut.
    pub truncated: bool,
}

/// A response (body up to the capture cap, as sent: possibly compressed).
#[derive(Debug, Clone)]
pub struct CapturedResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub truncated: bool,
}

/// A served answer and the shadow side's answer to the same request.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub route: String,
    pub request_id: String,
    /// `legacy` or `new`: which side answered the client.
    pub served_by: String,
    pub request: CapturedRequest,
    pub served: CapturedResponse,
    pub shadow: CapturedResponse,
}

impl CapturedResponse {
    /// A whole (not truncated) response. A pair that is not a valid header name and
    /// value is left out.
    pub fn whole(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: header_map(headers),
            body: body.into(),
            truncated: false,
        }
    }

    /// The first value of header `name` (case-insensitive), if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_text(&self.headers, name)
    }

    /// The body with its `content-encoding` (gzip, deflate, br) undone. A body that does
    /// not decode (for instance cut by the cap) is returned as captured.
    pub fn decoded_body(&self) -> Bytes {
        let encoding = self
            .headers
            .get(http::header::CONTENT_ENCODING)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .unwrap_or("");
        decode(encoding, &self.body).unwrap_or_else(|| self.body.clone())
    }
}

/// `pairs` as a header map, leaving out a pair that is not a valid name and value.
pub fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// The first value of `name` in `headers`, if present and text (visible ASCII).
pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The headers as text pairs, in the map's order; a value that is not UTF-8 is shown
/// with replacement characters.
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn decode(encoding: &str, body: &Bytes) -> Option<Bytes> {
    let mut out = Vec::new();
    let read = match encoding.to_ascii_lowercase().as_str() {
        "" | "identity" => return Some(body.clone()),
        "gzip" | "x-gzip" => flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(&body[..]).read_to_end(&mut out),
        "br" => brotli::Decompressor::new(&body[..], 4096).read_to_end(&mut out),
        _ => return None,
    };
    read.ok().map(|_| Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> CapturedResponse {
        CapturedResponse::whole(status, headers, body)
    }

    #[test]
    fn gzip_and_brotli_bodies_are_decoded() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(br#"{"a":1}"#).expect("gzip");
        let gz = response(
            200,
            &[("Content-Encoding", "gzip")],
            gz.finish().expect("gzip"),
        );
        assert_eq!(&gz.decoded_body()[..], br#"{"a":1}"#);

        let mut br = Vec::new();
        brotli::CompressorWriter::new(&mut br, 4096, 5, 22)
            .write_all(b"hello")
            .expect("brotli");
        let br = response(200, &[("content-encoding", "br")], br);
        assert_eq!(&br.decoded_body()[..], b"hello");
    }

    #[test]
    fn json_answers_agree_as_values() {
        let request = CapturedRequest {
            method: "GET".into(),
            uri: "/x".into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            truncated: false,
        };
        let exchange = |a: &'static str, b: &'static str, status: u16| Exchange {
            route: "r".into(),
            request_id: "id".into(),
            served_by: "legacy".into(),
            request: request.clone(),
            served: response(200, &[], a),
            shadow: response(status, &[], b),
        };
        assert!(exchange(r#"{"a":1,"b":2}"#, r#"{"b":2.0,"a":1}"#, 200).answers_agree());
        assert!(!exchange(r#"{"a":1}"#, r#"{"a":2}"#, 200).answers_agree());
        assert!(!exchange("same", "same", 500).answers_agree());
        assert!(exchange("plain", "plain", 200).answers_agree());
    }
}
