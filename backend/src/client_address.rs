//! The client's address as the backend records it (`security_audit_log.ip_address` of
//! its own security events).
//!
//! `X-Forwarded-For` is only as good as whoever wrote it: a client can send any value.
//! So it is read only when the TCP peer is a trusted proxy (`TRUSTED_PROXIES`, by default
//! the loopback addresses, where a gateway on the same host connects from); the client is
//! then the right-most address of the header that is not itself a trusted proxy, each
//! trusted hop having appended the address it was connected from. From any other peer the
//! header is ignored and the peer's own address is the client.
//!
//! security-monitor keeps reading the headers itself, as the legacy does: its rows and
//! answers are the contract's.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The header a proxy appends the address of its own client to.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// Proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses a comma-separated list of addresses (`10.0.0.7`, `::1`) and CIDR ranges
    /// (`10.0.0.0/8`, `fd00::/8`); empty items are skipped, so `""` trusts nobody.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let network = match item.parse::<IpNet>() {
                Ok(network) => network.trunc(),
                Err(_) => item
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("`{item}` is neither an IP address nor a CIDR range"))?,
            };
            networks.push(network);
        }
        Ok(Self { networks })
    }

    /// Whether `address` belongs to a trusted proxy.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.networks.iter().any(|n| n.contains(&address))
    }

    /// The client of a request that came from `peer` (`None`: unknown peer, unknown
    /// client) with these headers.
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.contains(peer) {
            return Some(peer);
        }
        let mut client = peer;
        // Later header lines were appended later: walk values and items right to left.
        'values: for value in headers.get_all(FORWARDED_FOR).iter().rev() {
            let Ok(text) = value.to_str() else {
                break;
            };
            for hop in text.rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
                // Something that is no address ends the chain: the nearest trusted hop
                // is the best the backend knows.
                let Some(address) = parse_hop(hop) else {
                    break 'values;
                };
                client = address;
                if !self.contains(address) {
                    break 'values;
                }
            }
        }
        Some(client)
    }
}

/// One `X-Forwarded-For` item: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let address = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })?;
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    fn forwarded(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(FORWARDED_FOR, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn lists_parse_and_name_what_is_wrong() {
        let trusted =
            TrustedProxies::parse("127.0.0.1/32, ::1/128,10.1.2.3 ,fd00::/8,").expect("valid");
        assert!(trusted.contains(ip("127.0.0.1")));
        assert!(trusted.contains(ip("::ffff:127.0.0.1")));
        assert!(trusted.contains(ip("::1")));
        assert!(trusted.contains(ip("10.1.2.3")));
        assert!(trusted.contains(ip("fd12::1")));
        assert!(!trusted.contains(ip("127.0.0.2")));
        assert!(!trusted.contains(ip("10.1.2.4")));
        assert_eq!(
            TrustedProxies::parse("").expect("empty"),
            TrustedProxies::default()
        );
        let error = TrustedProxies::parse("127.0.0.1,localhost").expect_err("refused");
        assert!(error.contains("`localhost`"), "{error}");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let trusted = TrustedProxies::parse("127.0.0.1,10.0.0.0/8").expect("valid");
        let forged = forwarded(&["203.0.113.9"]);
        assert_eq!(
            trusted.client_address(Some(ip("198.51.100.4")), &forged),
            Some(ip("198.51.100.4"))
        );
        assert_eq!(
            trusted.client_address(Some(ip("127.0.0.1")), &forged),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(trusted.client_address(None, &forged), None);
        assert_eq!(
            trusted.client_address(Some(ip("127.0.0.1")), &HeaderMap::new()),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = TrustedProxies::parse("127.0.0.1,10.0.0.0/8").expect("valid");
        let peer = Some(ip("127.0.0.1"));
        // What the client wrote itself (left) is not believed.
        let chain = forwarded(&["1.1.1.1, 203.0.113.9, 10.0.0.5"]);
        assert_eq!(
            trusted.client_address(peer, &chain),
            Some(ip("203.0.113.9"))
        );
        // Several header lines read as one list, in order.
        let lines = forwarded(&["1.1.1.1", "203.0.113.9:4711", "10.0.0.5"]);
        assert_eq!(
            trusted.client_address(peer, &lines),
            Some(ip("203.0.113.9"))
        );
        let v6 = forwarded(&["[2001:db8::7]:443, 10.0.0.5"]);
        assert_eq!(trusted.client_address(peer, &v6), Some(ip("2001:db8::7")));
        // Every hop trusted: the left-most is the client.
        let inside = forwarded(&["10.0.0.9, 10.0.0.5"]);
        assert_eq!(trusted.client_address(peer, &inside), Some(ip("10.0.0.9")));
        // Garbage ends the chain at the nearest trusted hop.
        let garbage = forwarded(&["203.0.113.9, unknown, 10.0.0.5"]);
        assert_eq!(trusted.client_address(peer, &garbage), Some(ip("10.0.0.5")));
        let garbage = forwarded(&["203.0.113.9, nonsense"]);
        assert_eq!(
            trusted.client_address(peer, &garbage),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn with_nobody_trusted_the_peer_is_the_client() {
        let nobody = TrustedProxies::parse("").expect("valid");
        let forged = forwarded(&["203.0.113.9"]);
        assert_eq!(
            nobody.client_address(Some(ip("::ffff:127.0.0.1")), &forged),
            Some(ip("127.0.0.1"))
        );
    }
}
