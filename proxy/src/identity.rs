//! Who is asking: the sticky canary bucket, the client's address, and the callers the
//! rollback guard counts.
//!
//! The bucket is Unleash's `normalizedNumber`: murmur3 (x86, 32-bit, seed 0) of
//! `"<group>:<user>"`, modulo 100, plus 1. Using the same function as the Unleash SDKs
//! means a percentage set in Unleash splits users exactly as the gateway does. A client
//! choosing its own bucket with a forged token gains nothing, so the bucket reads tokens
//! unverified; the guard's count of distinct callers does not (see [`Clients`]).

use std::cell::RefCell;
use std::io::Cursor;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::header_names as known;

/// `peer` as a header value (`unknown` without one). Formatting an address costs more
/// than the rest of the request's forwarding headers, and the requests of one connection,
/// or of every client behind one load balancer, share it: each thread keeps the last
/// one.
fn address_value(peer: Option<IpAddr>) -> HeaderValue {
    thread_local! {
        static LAST: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
    }
    let Some(ip) = peer else {
        return HeaderValue::from_static("unknown");
    };
    LAST.with_borrow_mut(|last| match last {
        Some((cached, value)) if *cached == ip => value.clone(),
        _ => {
            let value = HeaderValue::try_from(ip.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
            *last = Some((ip, value.clone()));
            value
        }
    })
}

/// How the gateway tells clients apart where it matters: the address behind trusted
/// load balancers, and identities that cannot be forged.
pub struct Clients {
    trusted_proxies: Vec<ipnet::IpNet>,
    verifier: Option<TokenVerifier>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("trusted_proxies", &self.trusted_proxies)
            .field("verifies_tokens", &self.verifier.is_some())
            .finish()
    }
}

impl Clients {
    /// `trusted_proxies` may set `X-Forwarded-For`; tokens signed with `jwt_secret` (the
    /// project's, HS256) identify their `sub`.
    pub fn new(trusted_proxies: Vec<ipnet::IpNet>, jwt_secret: Option<&[u8]>) -> Self {
        Self {
            trusted_proxies,
            verifier: jwt_secret.map(TokenVerifier::hs256),
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the connection's peer, or, when the peer is a trusted
    /// proxy, the last address in `X-Forwarded-For` that is not itself trusted.
    pub fn address(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusted(peer) {
            return Some(peer);
        }
        let forwarded: Vec<&str> = headers
            .get_all(known::FORWARDED_FOR.name())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        forwarded
            .iter()
            .rev()
            .map_while(|entry| entry.trim().parse::<IpAddr>().ok())
            .find(|ip| !self.trusted(*ip))
            .or(Some(peer))
    }

    /// `X-Forwarded-For` and `X-Forwarded-Proto` as the upstreams should see them: what
    /// a trusted load balancer says, with its address appended; from anyone else, only
    /// what the gateway sees.
    pub fn forwarded(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> (HeaderValue, HeaderValue) {
        let http = HeaderValue::from_static("http");
        let trusted = peer.is_some_and(|ip| self.trusted(ip));
        if !trusted {
            return (address_value(peer), http);
        }
        let values: Vec<&str> = headers
            .get_all(known::FORWARDED_FOR.name())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let chain = match values.is_empty() {
            true => address_value(peer),
            false => {
                let peer = address_value(peer);
                let peer = peer.to_str().unwrap_or("unknown");
                HeaderValue::try_from(format!("{}, {peer}", values.join(", ")))
                    .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
            }
        };
        let proto = match headers
            .get(known::FORWARDED_PROTO.name())
            .map(|v| v.as_bytes())
        {
            Some(b"https") => HeaderValue::from_static("https"),
            _ => http,
        };
        (chain, proto)
    }

    /// Who a new-side error is charged to when the guard counts distinct callers: the
    /// `sub` of a bearer token that verifies, else an `apikey` that verifies, else the
    /// client's address. A token that does not verify (or any token, when no JWT secret
    /// is configured) counts as its sender's address, so forged subjects from one
    /// machine count once.
    pub fn guard_caller(&self, headers: &HeaderMap, address: Option<IpAddr>) -> String {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(verifier) = &self.verifier {
            let bearer = text("authorization").and_then(|v| v.strip_prefix("Bearer "));
            if let Some(sub) = bearer.and_then(|t| verifier.verify(t)).and_then(|c| c.sub) {
                return format!("sub:{sub}");
            }
            if let Some(key) = text("apikey").filter(|k| verifier.verify(k).is_some()) {
                return format!("apikey:{key}");
            }
        }
        address.map_or_else(
            || "address:unknown".to_owned(),
            |ip| format!("address:{ip}"),
        )
    }
}

/// Checks tokens signed with the project's JWT secret: signature, `exp` and `nbf`.
struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

#[derive(serde::Deserialize)]
struct VerifiedClaims {
    sub: Option<String>,
}

impl TokenVerifier {
    fn hs256(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Supabase's audiences vary by key (`authenticated`, none for the anon key).
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = 30;
        Self {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    fn verify(&self, token: &str) -> Option<VerifiedClaims> {
        if token.len() > 16 * 1024 {
            return None;
        }
        jsonwebtoken::decode::<VerifiedClaims>(token, &self.key, &self.validation)
            .ok()
            .map(|data| data.claims)
            .filter(|claims| claims.sub.as_ref().is_none_or(|s| !s.is_empty()))
    }
}

/// The identity a request is bucketed by: the JWT `sub` of a bearer token when it carries
/// one, else the `apikey` header, else the client address.
pub fn request_identity<'a>(
    authorization: Option<&'a str>,
    apikey: Option<&'a str>,
    client_addr: Option<&'a str>,
) -> Option<std::borrow::Cow<'a, str>> {
    if let Some(sub) = authorization
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(jwt_subject)
    {
        return Some(sub.into());
    }
    apikey
        .filter(|key| !key.is_empty())
        .or(client_addr)
        .map(Into::into)
}

/// The `sub` claim of a JWT, read without verifying it (the upstreams verify tokens; the
/// gateway only needs a stable identity). Anon keys carry no `sub`.
fn jwt_subject(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Claims {
        sub: Option<String>,
    }
    let claims: Claims = unverified_claims(token)?;
    claims.sub.filter(|sub| !sub.is_empty())
}

/// A JWT's claims, read without verifying it: only where another party verifies the
/// token (the upstreams, Supabase Auth). `None` for anything that is not a JWT.
pub fn unverified_claims<T: serde::de::DeserializeOwned>(token: &str) -> Option<T> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 8 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Unleash's sticky bucket (1–100) of `user` within `group`.
pub fn bucket(group: &str, user: &str) -> u8 {
    let key = format!("{group}:{user}");
    let hash = murmur3::murmur3_32(&mut Cursor::new(key.as_bytes()), 0).unwrap_or(0);
    // `hash % 100` is below 100, so the sum always fits.
    (hash % 100) as u8 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";

    fn signed(claims: serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .expect("sign")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn the_guard_counts_only_subjects_it_can_verify() {
        let clients = Clients::new(Vec::new(), Some(SECRET));
        let address = Some("10.0.0.7".parse().expect("ip"));
        let exp = chrono::Utc::now().timestamp() + 600;
        let good = format!(
            "Bearer {}",
            signed(serde_json::json!({"sub": "u1", "exp": exp}), SECRET)
        );
        let forged = format!(
            "Bearer {}",
            signed(
                serde_json::json!({"sub": "u2", "exp": exp}),
                b"another-secret-of-32-bytes-or-more"
            )
        );
        let expired = format!(
            "Bearer {}",
            signed(serde_json::json!({"sub": "u3", "exp": 1000}), SECRET)
        );
        let caller =
            |auth: &str| clients.guard_caller(&headers(&[("authorization", auth)]), address);
        assert_eq!(caller(&good), "sub:u1");
        assert_eq!(caller(&forged), "address:10.0.0.7");
        assert_eq!(caller(&expired), "address:10.0.0.7");
        assert_eq!(
            caller("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
            "address:10.0.0.7"
        );
        let anon = signed(serde_json::json!({"role": "anon", "exp": exp}), SECRET);
        assert_eq!(
            clients.guard_caller(&headers(&[("apikey", &anon)]), address),
            format!("apikey:{anon}")
        );
        // Without the secret nothing is verified: every caller is its address.
        let blind = Clients::new(Vec::new(), None);
        assert_eq!(
            blind.guard_caller(&headers(&[("authorization", &good)]), address),
            "address:10.0.0.7"
        );
    }

    #[test]
    fn the_address_comes_from_forwarded_for_only_behind_a_trusted_proxy() {
        let clients = Clients::new(vec!["10.0.0.0/8".parse().expect("net")], None);
        let forwarded = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")]);
        let lb = Some("10.0.0.1".parse().expect("ip"));
        let stranger = Some("5.5.5.5".parse().expect("ip"));
        assert_eq!(
            clients.address(&forwarded, lb),
            Some("1.2.3.4".parse().expect("ip"))
        );
        assert_eq!(clients.address(&forwarded, stranger), stranger);
        let junk = headers(&[("x-forwarded-for", "nonsense")]);
        assert_eq!(clients.address(&junk, lb), lb);
        let (chain, proto) = clients.forwarded(&forwarded, stranger);
        assert_eq!(
            (chain.to_str().ok(), proto.to_str().ok()),
            (Some("5.5.5.5"), Some("http"))
        );
        assert_eq!(
            clients.forwarded(&forwarded, lb).0,
            "6.6.6.6, 1.2.3.4, 10.0.0.2, 10.0.0.1"
        );
    }

    #[test]
    fn bearer_subject_wins_over_apikey_and_address() {
        // {"alg":"HS256"}.{"sub":"user-1","role":"authenticated"}.sig
        let token =
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEiLCJyb2xlIjoiYXV0aGVudGljYXRlZCJ9.c2ln";
        let auth = format!("Bearer {token}");
        assert_eq!(
            request_identity(Some(&auth), Some("key"), Some("1.2.3.4")).as_deref(),
            Some("user-1")
        );
    }

    #[test]
    fn tokens_without_subject_fall_back_to_apikey_then_address() {
        // {"alg":"HS256"}.{"role":"anon"}.sig
        let anon = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2ln";
        assert_eq!(
            request_identity(Some(anon), Some("key"), None).as_deref(),
            Some("key")
        );
        assert_eq!(
            request_identity(Some("Bearer junk"), None, Some("1.2.3.4")).as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(request_identity(None, Some(""), None), None);
    }
}
