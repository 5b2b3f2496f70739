//! Where deliveries may go: internal addresses (loopback, private, link-local,
//! CGNAT, unique-local, multicast, unspecified, ...) are refused unless an
//! operator allows their network. Used by the sender's DNS resolver, before
//! each send to a literal IP, and when an endpoint is registered.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not a network like 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix must be 0..={max}"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`) is judged as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240 // reserved
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || ip.segments()[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d
        || (first == 0x64 && ip.segments()[1] == 0xff9b) // NAT64 64:ff9b::/96 reaches IPv4 space
}

/// Whether an address is internal (not a public destination).
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

/// Which destinations deliveries may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Internal networks allowed anyway (e.g. `10.1.0.0/16` for in-cluster
    /// receivers, `127.0.0.0/8` for local development).
    pub allow: Vec<Cidr>,
}

impl NetworkPolicy {
    /// Whether deliveries may connect to `ip`: public, or internal and allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_internal(ip) || self.allow.iter().any(|c| c.contains(ip))
    }

    /// Why a URL is refused when its host is an IP address this policy forbids.
    /// The host is read the way the HTTP client reads it (WHATWG URL parsing),
    /// so `127.1`, `0177.0.0.1`, `0x7f000001`, `2130706433`, `127.0.0.1.` and
    /// percent-encoded spellings are all the IP they stand for.
    pub fn refuses_url(&self, url: &str) -> Option<String> {
        self.refuses(&url::Url::parse(url).ok()?)
    }

    /// [`NetworkPolicy::refuses_url`] for a URL already parsed.
    pub fn refuses(&self, url: &url::Url) -> Option<String> {
        let ip = host_ip(url)?;
        (!self.permits(ip)).then(|| {
            format!("{ip} is an internal address; allow its network in [delivery] allow_networks to deliver there")
        })
    }
}

/// The host of an `http(s)://` URL when it is an IP address in any spelling
/// the URL parser accepts (`10.0.0.1`, `[::1]`, `127.1`, `0x7f.1`, ...).
pub fn literal_ip(url: &str) -> Option<IpAddr> {
    host_ip(&url::Url::parse(url).ok()?)
}

fn host_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(is_internal(ip(s)), "{s}");
        }
        for s in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(ip(s)), "{s}");
        }
    }

    #[test]
    fn allowed_networks() {
        let policy = NetworkPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
        };
        assert!(policy.permits(ip("127.0.0.2")));
        assert!(policy.permits(ip("::ffff:127.0.0.1")));
        assert!(policy.permits(ip("fd12::1")));
        assert!(!policy.permits(ip("10.0.0.1")));
        assert!(!policy.permits(ip("::1")));
        assert!(
            NetworkPolicy::default()
                .refuses_url("http://127.0.0.1:9000/x")
                .is_some()
        );
        assert!(policy.refuses_url("http://127.0.0.1:9000/x").is_none());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
    }

    #[test]
    fn literal_hosts() {
        assert_eq!(literal_ip("http://10.0.0.1:80/a"), Some(ip("10.0.0.1")));
        assert_eq!(literal_ip("https://[::1]:8443/"), Some(ip("::1")));
        assert_eq!(literal_ip("https://example.com/x"), None);
        assert_eq!(literal_ip("https://127.example.com/x"), None);
    }

    /// Every spelling of an internal address the URL parser (and so the HTTP
    /// client) accepts is that address, and refused.
    #[test]
    fn internal_spellings_are_refused() {
        let policy = NetworkPolicy::default();
        for (url, want) in [
            ("http://127.1:9000/", "127.0.0.1"),
            ("http://0177.0.0.1:9000/", "127.0.0.1"),
            ("http://127.0.0.1.:9000/", "127.0.0.1"),
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://0x7f.0.0.1/", "127.0.0.1"),
            ("http://0x7F.1/", "127.0.0.1"),
            ("http://017700000001/", "127.0.0.1"),
            ("http://%31%32%37.0.0.1/", "127.0.0.1"),
            ("http://127.000.000.001/", "127.0.0.1"),
            ("http://10.1/", "10.0.0.1"),
            ("http://169.254.169.254/latest", "169.254.169.254"),
            ("http://0/", "0.0.0.0"),
            ("http://[::1]/", "::1"),
            ("http://[0:0:0:0:0:0:0:1]/", "::1"),
            ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1"),
            ("http://[::ffff:7f00:1]/", "::ffff:7f00:1"),
            ("http://[::127.0.0.1]/", "::7f00:1"),
            ("http://[fe80::1]/", "fe80::1"),
            ("http://[fd00::1]:8080/", "fd00::1"),
            ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe"),
            ("HTTP://LOCALHOST.:80/", ""),
        ] {
            if want.is_empty() {
                // A name, not an IP: the resolver judges what it resolves to.
                assert_eq!(literal_ip(url), None, "{url}");
                continue;
            }
            assert_eq!(literal_ip(url), Some(ip(want)), "{url}");
            assert!(policy.refuses_url(url).is_some(), "{url} must be refused");
        }
    }
}
