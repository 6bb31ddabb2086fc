//! Where the two sides live and how to connect to them.

use std::collections::BTreeMap;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

use pingora::upstreams::peer::{HttpPeer, Peer};
use studyflow_flags::Side;

use crate::{Error, Result};

/// One upstream, resolved once at start.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub side: Side,
    /// `Host` header value (with the port when it is not the scheme's default).
    authority: String,
    /// `authority` as a header value, built once.
    host_header: http::HeaderValue,
    /// The peer of a request without a route timeout, built once and cloned per request.
    peer: HttpPeer,
    /// `peer`'s key among kept-alive connections, hashed once.
    reuse_key: u64,
    read_timeout: Duration,
}

impl Upstream {
    /// Parses `http(s)://host[:port]` (no path) and resolves the host.
    pub fn from_url(
        side: Side,
        text: &str,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Self> {
        let fail = |reason: String| Error::Upstream {
            name: side.name().to_owned(),
            reason,
        };
        let url = url::Url::parse(text).map_err(|e| fail(format!("`{text}` is not a URL: {e}")))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(fail(format!("scheme `{other}` is not http or https"))),
        };
        if url.path() != "/" || url.query().is_some() {
            return Err(fail(format!("`{text}` must not have a path or query")));
        }
        let host = url
            .host_str()
            .ok_or_else(|| fail(format!("`{text}` has no host")))?
            .to_owned();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| fail(format!("`{text}` has no port")))?;
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| fail(format!("cannot resolve `{host}`: {e}")))?
            .next()
            .ok_or_else(|| fail(format!("`{host}` resolves to no address")))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let host_header = http::HeaderValue::from_str(&authority)
            .map_err(|_| fail(format!("`{authority}` is not a Host header value")))?;
        // The host name is the peer's SNI.
        let mut peer = HttpPeer::new(addr, tls, host);
        peer.options.connection_timeout = Some(connect_timeout);
        peer.options.read_timeout = Some(read_timeout);
        Ok(Self {
            side,
            authority,
            host_header,
            reuse_key: peer.reuse_hash(),
            peer,
            read_timeout,
        })
    }

    /// A pingora peer for one request to this upstream; `timeout` (a route's own)
    /// replaces the configured connect and read timeouts.
    pub fn peer(&self, timeout: Option<Duration>) -> Box<HttpPeer> {
        let mut peer = Box::new(self.peer.clone());
        if let Some(timeout) = timeout {
            peer.options.connection_timeout = Some(timeout);
            peer.options.read_timeout = Some(timeout);
        }
        peer
    }

    /// The peer of a request without a route timeout, and its key among kept-alive
    /// connections, without a copy of either.
    pub fn default_peer(&self) -> (&HttpPeer, u64) {
        (&self.peer, self.reuse_key)
    }

    /// The `Host` header this upstream expects, as a header value.
    pub fn host_header(&self) -> &http::HeaderValue {
        &self.host_header
    }

    /// How long to wait for an answer when no route timeout applies.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// The `Host` header this upstream expects.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

/// Whether a pingora error is an upstream that did not answer in time (connecting, the
/// TLS handshake, reading or writing), as opposed to one that failed.
pub fn timed_out(error: &pingora::Error) -> bool {
    matches!(
        error.etype(),
        pingora::ErrorType::ConnectTimedout
            | pingora::ErrorType::ReadTimedout
            | pingora::ErrorType::WriteTimedout
            | pingora::ErrorType::TLSHandshakeTimedout
    )
}

/// The default upstream of each side and the named ones routes may pick.
#[derive(Debug, Clone)]
pub struct Upstreams {
    legacy: Arc<Upstream>,
    new: Arc<Upstream>,
    named: BTreeMap<String, Arc<Upstream>>,
}

impl Upstreams {
    pub fn new(legacy: Upstream, new: Upstream, named: BTreeMap<String, Upstream>) -> Self {
        Self {
            legacy: Arc::new(legacy),
            new: Arc::new(new),
            named: named.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
        }
    }

    pub fn default(&self, side: Side) -> Arc<Upstream> {
        Arc::clone(match side {
            Side::Legacy => &self.legacy,
            Side::New => &self.new,
        })
    }

    pub fn named(&self, name: &str) -> Option<Arc<Upstream>> {
        self.named.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use pingora::upstreams::peer::Peer;

    use super::*;

    fn parse(text: &str) -> Result<Upstream> {
        Upstream::from_url(
            Side::Legacy,
            text,
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
    }

    #[test]
    fn urls_give_address_and_host_header() {
        let port = |up: &Upstream| up.peer._address.as_inet().map(|a| a.port());
        let up = parse("http://127.0.0.1:54321").expect("valid");
        assert_eq!(port(&up), Some(54321));
        assert_eq!(up.authority(), "127.0.0.1:54321");
        assert_eq!(up.host_header(), "127.0.0.1:54321");
        assert!(!up.peer.tls());
        let up = parse("https://127.0.0.1").expect("valid");
        assert_eq!(port(&up), Some(443));
        assert_eq!(up.authority(), "127.0.0.1");
        assert!(up.peer.tls());
    }

    #[test]
    fn bad_urls_name_the_side() {
        let err = parse("ftp://x").expect_err("bad scheme").to_string();
        assert!(err.starts_with("upstream `legacy`"), "{err}");
        assert!(parse("http://127.0.0.1:1/functions").is_err());
        assert!(parse("not a url").is_err());
    }
}
