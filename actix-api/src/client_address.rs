//! Who the client is, behind the proxies we were told to trust: rate limits are kept per client
//! address, so behind an ingress they must see the client, not the ingress, and no client may
//! pick its own address by sending a forwarding header.

use std::net::{IpAddr, SocketAddr};

use actix_web::HttpRequest;
use ipnet::IpNet;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TRUSTED_PROXIES: {0:?} is neither an address nor a CIDR")]
pub struct BadProxy(String);

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// A comma-separated list of addresses and CIDRs.
    pub fn parse(list: &str) -> Result<Self, BadProxy> {
        let nets = list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| BadProxy(entry.to_owned()))
        });
        Ok(Self(nets.collect::<Result<_, _>>()?))
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client of a request that came from `peer` with these forwarding hops (oldest
    /// first): walking back from the peer through trusted proxies, the first address not
    /// trusted. A hop that cannot be read ends the walk at the last trusted one.
    pub fn client(&self, peer: IpAddr, hops: &[Option<IpAddr>]) -> IpAddr {
        let mut client = canonical(peer);
        for hop in hops.iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match hop {
                Some(address) => client = canonical(*address),
                None => break,
            }
        }
        client
    }

    /// The client of an HTTP request (its TCP peer when nothing is trusted).
    pub fn client_of(&self, req: &HttpRequest) -> IpAddr {
        let peer = req.peer_addr().map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        if self.0.is_empty() || !self.trusts(peer) {
            return canonical(peer);
        }
        self.client(peer, &forwarded_hops(req))
    }
}

/// IPv4 addresses mapped into IPv6 (a dual-stack listener's view) as plain IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The hops a request passed, oldest first: RFC 7239 `Forwarded: for=…` when present, else
/// `X-Forwarded-For`. Each header line appends to the list.
fn forwarded_hops(req: &HttpRequest) -> Vec<Option<IpAddr>> {
    let headers = req.headers();
    let forwarded: Vec<&str> = headers.get_all("forwarded").filter_map(|v| v.to_str().ok()).collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|line| line.split(','))
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (key, value) = pair.trim().split_once('=')?;
                        key.eq_ignore_ascii_case("for").then_some(value)
                    })
                    .and_then(|value| address(value.trim_matches('"')))
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(','))
        .map(|hop| address(hop.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn address(value: &str) -> Option<IpAddr> {
    value
        .parse::<IpAddr>()
        .ok()
        .or_else(|| value.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| value.trim_start_matches('[').trim_end_matches(']').parse().ok())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_peers_may_name_the_client() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.0.2.7").unwrap();
        let hops = [Some(ip("203.0.113.9")), Some(ip("10.1.2.3"))];
        // Through two trusted proxies: the first address before them.
        assert_eq!(trusted.client(ip("192.0.2.7"), &hops), ip("203.0.113.9"));
        // A client sending its own header straight to us names nobody.
        assert_eq!(trusted.client(ip("198.51.100.1"), &hops), ip("198.51.100.1"));
        // A forged entry left of the real client is never reached.
        let forged = [Some(ip("1.1.1.1")), Some(ip("203.0.113.9"))];
        assert_eq!(trusted.client(ip("10.0.0.1"), &forged), ip("203.0.113.9"));
        // Unreadable hop: the walk stops at the last trusted address.
        assert_eq!(trusted.client(ip("10.0.0.1"), &[None]), ip("10.0.0.1"));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
        assert!(TrustedProxies::parse("").unwrap().0.is_empty());
    }

    #[test]
    fn headers_are_read_as_proxies_write_them() {
        let trusted = TrustedProxies::parse("127.0.0.1").unwrap();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let req = TestRequest::default()
            .peer_addr(peer)
            .insert_header(("x-forwarded-for", "203.0.113.9:1234, 127.0.0.1"))
            .to_http_request();
        assert_eq!(trusted.client_of(&req), ip("203.0.113.9"));
        let req = TestRequest::default()
            .peer_addr(peer)
            .insert_header(("forwarded", r#"for="[2001:db8::7]:4711";proto=https, for=127.0.0.1"#))
            .to_http_request();
        assert_eq!(trusted.client_of(&req), ip("2001:db8::7"));
        let untrusted = TrustedProxies::default();
        let req =
            TestRequest::default().peer_addr(peer).insert_header(("x-forwarded-for", "203.0.113.9")).to_http_request();
        assert_eq!(untrusted.client_of(&req), ip("127.0.0.1"));
    }
}
