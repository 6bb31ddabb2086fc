// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

use crate::*;
use bytes::Bytes;
use http::header;

#[derive(Debug, Clone)]
pub struct CaseHeaderName(Bytes);

impl CaseHeaderName {
    pub fn new(name: String) -> Self {
        CaseHeaderName(name.into())
    }
}

impl CaseHeaderName {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    pub fn from_slice(buf: &[u8]) -> Self {
        CaseHeaderName(Bytes::copy_from_slice(buf))
    }
}

/// A trait that converts into case-sensitive header names.
pub trait IntoCaseHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName;

    // StudyFlow patch: the header name and its spelling together, so that a name known
    // ahead ([KnownHeaderName]) is not parsed again on every insert.
    /// The header name (for the header map) and its spelling (for the case map).
    fn into_header_names(self) -> Result<(HeaderName, CaseHeaderName)>
    where
        Self: Sized,
    {
        let case_header_name = self.into_case_header_name();
        let header_name = HeaderName::try_from(case_header_name.as_slice())
            .or_err(InvalidHTTPHeader, "invalid header name")?;
        Ok((header_name, case_header_name))
    }

    // StudyFlow patch: the header name alone, for a head that keeps no spellings
    // (`build_no_case`): a parsed name's spelling is not worked out only to be dropped.
    /// The header name (for the header map) without its spelling.
    fn into_header_name(self) -> Result<HeaderName>
    where
        Self: Sized,
    {
        HeaderName::try_from(self.into_case_header_name().as_slice())
            .or_err(InvalidHTTPHeader, "invalid header name")
    }
}

// StudyFlow patch: a header name parsed once, with the spelling it is written with.
/// A header name checked once, ahead of the requests that use it.
///
/// Inserting a `&str` or a [HeaderName] parses the name again and, for a name outside
/// `http`'s standard list, copies it into a new allocation, on every call. A
/// `KnownHeaderName` is built once (in a `const`) and only cloned.
#[derive(Debug, Clone)]
pub struct KnownHeaderName {
    name: HeaderName,
    case: CaseHeaderName,
}

impl KnownHeaderName {
    /// The name as it is written on the wire. Like [HeaderName::from_static], it panics
    /// (at compile time in a `const`) unless `name` is a valid lowercase header name.
    pub const fn from_static(name: &'static str) -> Self {
        KnownHeaderName {
            name: HeaderName::from_static(name),
            case: CaseHeaderName(Bytes::from_static(name.as_bytes())),
        }
    }

    /// A name known only at run time (from a configuration file, say), checked once
    /// and written as it is spelled.
    pub fn new(name: impl IntoCaseHeaderName) -> Result<Self> {
        let (name, case) = name.into_header_names()?;
        Ok(KnownHeaderName { name, case })
    }

    /// The name in `http`'s form.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }
}

impl IntoCaseHeaderName for KnownHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        self.case
    }

    fn into_header_names(self) -> Result<(HeaderName, CaseHeaderName)> {
        Ok((self.name, self.case))
    }

    fn into_header_name(self) -> Result<HeaderName> {
        Ok(self.name)
    }
}

impl IntoCaseHeaderName for &KnownHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        self.case.clone()
    }

    fn into_header_names(self) -> Result<(HeaderName, CaseHeaderName)> {
        Ok((self.name.clone(), self.case.clone()))
    }

    fn into_header_name(self) -> Result<HeaderName> {
        Ok(self.name.clone())
    }
}

impl IntoCaseHeaderName for CaseHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        self
    }
}

impl IntoCaseHeaderName for String {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(self.into())
    }
}

impl IntoCaseHeaderName for &'static str {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(self.into())
    }
}

impl IntoCaseHeaderName for HeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(titled_header_name(&self))
    }
    // StudyFlow patch: the name is parsed already.
    fn into_header_names(self) -> Result<(HeaderName, CaseHeaderName)> {
        let case_header_name = CaseHeaderName(titled_header_name(&self));
        Ok((self, case_header_name))
    }

    fn into_header_name(self) -> Result<HeaderName> {
        Ok(self)
    }
}

impl IntoCaseHeaderName for &HeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(titled_header_name(self))
    }
    // StudyFlow patch: the name is parsed already.
    fn into_header_names(self) -> Result<(HeaderName, CaseHeaderName)> {
        let case_header_name = CaseHeaderName(titled_header_name(&self));
        Ok((self.clone(), case_header_name))
    }

    fn into_header_name(self) -> Result<HeaderName> {
        Ok(self.clone())
    }
}

impl IntoCaseHeaderName for Bytes {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(self)
    }
}

fn titled_header_name(header_name: &HeaderName) -> Bytes {
    titled_header_name_str(header_name).map_or_else(
        || Bytes::copy_from_slice(header_name.as_str().as_bytes()),
        |s| Bytes::from_static(s.as_bytes()),
    )
}

pub(crate) fn titled_header_name_str(header_name: &HeaderName) -> Option<&'static str> {
    Some(match *header_name {
        header::ACCEPT_RANGES => "Accept-Ranges",
        header::AGE => "Age",
        header::CACHE_CONTROL => "Cache-Control",
        header::CONNECTION => "Connection",
        header::CONTENT_TYPE => "Content-Type",
        header::CONTENT_ENCODING => "Content-Encoding",
        header::CONTENT_LENGTH => "Content-Length",
        header::DATE => "Date",
        header::TRANSFER_ENCODING => "Transfer-Encoding",
        header::HOST => "Host",
        header::SERVER => "Server",
        header::SET_COOKIE => "Set-Cookie",
        // TODO: add more const header here to map to their titled case
        // TODO: automatically upper case the first letter?
        _ => {
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_header_names_keep_their_spelling() {
        static REQUEST_ID: KnownHeaderName = KnownHeaderName::from_static("x-request-id");
        let (name, case) = (&REQUEST_ID).into_header_names().unwrap();
        assert_eq!(name, "x-request-id");
        assert_eq!(case.as_slice(), b"x-request-id");
        let spelled = KnownHeaderName::new("X-Route-Note").unwrap();
        assert_eq!(spelled.name(), "x-route-note");
        assert_eq!(spelled.into_case_header_name().as_slice(), b"X-Route-Note");
        assert!(KnownHeaderName::new("bad name").is_err());
    }

    #[test]
    fn test_case_header_name() {
        assert_eq!("FoO".into_case_header_name().as_slice(), b"FoO");
        assert_eq!("FoO".to_string().into_case_header_name().as_slice(), b"FoO");
        assert_eq!(header::SERVER.into_case_header_name().as_slice(), b"Server");
    }
}
