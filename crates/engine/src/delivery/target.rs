//! Which URLs freshet may POST to: the guard against server-side request forgery.
//!
//! A webhook URL is chosen by a client, so without a guard freshet could be made to call the
//! cloud metadata service or services on the operator's private network. Checks happen twice:
//! when an endpoint is saved (scheme, credentials, literal addresses) and at every delivery,
//! through [`GuardedResolver`], against the addresses the name resolves to *then* — so a DNS
//! record changed after the check (DNS rebinding) is caught too. Loopback is refused unless
//! the profile allows it (the development profile does); operators may allow-list ranges.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
    sync::Arc,
};

use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
};

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// An IP range, e.g. `10.1.0.0/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(ip)) => prefix_eq(&n.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(ip)) => prefix_eq(&n.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (bytes, bits) = ((prefix / 8) as usize, prefix % 8);
    a[..bytes] == b[..bytes] && (bits == 0 || (a[bytes] ^ b[bytes]) >> (8 - bits) == 0)
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = s.split_once('/').unwrap_or((s, ""));
        let network: IpAddr = ip
            .parse()
            .map_err(|_| format!("`{s}` is not an IP range"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}` has a bad prefix length"))?
        };
        Ok(Self { network, prefix })
    }
}

/// Why a target is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("is not a valid absolute URL")]
    Malformed,
    #[error("must be at most {MAX_URL_LEN} characters")]
    TooLong,
    #[error("must use http or https")]
    Scheme,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("must name a host")]
    NoHost,
    #[error("points at {0}, a {1} address, which this freshet does not deliver to")]
    Address(IpAddr, AddressKind),
    #[error("could not be resolved: {0}")]
    Unresolvable(String),
}

/// The kinds of address refused by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressKind {
    Loopback,
    Private,
    LinkLocal,
    CarrierNat,
    Metadata,
    Unspecified,
    Multicast,
    Reserved,
}

impl fmt::Display for AddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::Private => "private-network",
            Self::LinkLocal => "link-local",
            Self::CarrierNat => "carrier-grade NAT",
            Self::Metadata => "cloud metadata",
            Self::Unspecified => "unspecified",
            Self::Multicast => "multicast",
            Self::Reserved => "reserved",
        })
    }
}

/// Classifies an address; `None` for ordinary public addresses.
pub fn classify(ip: IpAddr) -> Option<AddressKind> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4 written as IPv6 must not slip past the IPv4 rules.
            if let Some(v4) = embedded_v4(v6) {
                return classify_v4(v4);
            }
            let seg = v6.segments();
            if v6.is_loopback() {
                Some(AddressKind::Loopback)
            } else if v6.is_unspecified() {
                Some(AddressKind::Unspecified)
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some(AddressKind::Metadata)
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some(AddressKind::LinkLocal)
            } else if seg[0] & 0xfe00 == 0xfc00 || seg[..3] == [0x64, 0xff9b, 1] {
                // The local-use NAT64 prefix (RFC 8215) is the operator's own network, and
                // where it puts the IPv4 address is the operator's choice: refused whole.
                Some(AddressKind::Private)
            } else if seg[0] & 0xff00 == 0xff00 {
                Some(AddressKind::Multicast)
            } else {
                None
            }
        }
    }
}

/// The IPv4 address an IPv6 address wraps, in any of the forms a host or a translator would
/// turn into IPv4 traffic: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated
/// (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, but not `::` and `::1`, which are IPv6's
/// own), NAT64 (`64:ff9b::/96`), 6to4 (`2002:AABB:CCDD::/48`) and Teredo (`2001:0::/32`, the client's address inverted in the last 32 bits).
pub fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(v4(hi, lo)),
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        [0x2001, 0, _, _, _, _, hi, lo] => Some(v4(!hi, !lo)),
        _ => None,
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressKind> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) => {
            AddressKind::Metadata
        }
        (0, ..) => AddressKind::Unspecified,
        (127, ..) => AddressKind::Loopback,
        (10, ..) | (192, 168, _) => AddressKind::Private,
        (172, b, _) if (16..32).contains(&b) => AddressKind::Private,
        (100, b, _) if (64..128).contains(&b) => AddressKind::CarrierNat,
        (169, 254, _) => AddressKind::LinkLocal,
        (192, 0, 0) | (198, 18..=19, _) => AddressKind::Reserved,
        (224..=239, ..) => AddressKind::Multicast,
        (240..=255, ..) => AddressKind::Reserved,
        _ => return None,
    })
}

/// What may be delivered to.
#[derive(Clone, Debug, Default)]
pub struct TargetPolicy {
    /// Allow loopback addresses (the development profile).
    pub allow_loopback: bool,
    /// Ranges the operator allows despite their kind.
    pub allowed: Vec<Cidr>,
}

impl TargetPolicy {
    /// Checks one address.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        match classify(ip) {
            None => Ok(()),
            Some(_) if self.is_allow_listed(ip) => Ok(()),
            Some(AddressKind::Loopback) if self.allow_loopback => Ok(()),
            Some(kind) => Err(Refusal::Address(ip, kind)),
        }
    }

    /// An allow-listed range holds the address, or the IPv4 address it wraps.
    fn is_allow_listed(&self, ip: IpAddr) -> bool {
        let v4 = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allowed
            .iter()
            .any(|c| c.contains(ip) || v4.is_some_and(|v4| c.contains(v4)))
    }

    /// Checks a URL as far as can be done without resolving it.
    pub fn check_url(&self, raw: &str) -> Result<Url, Refusal> {
        if raw.len() > MAX_URL_LEN {
            return Err(Refusal::TooLong);
        }
        let url = Url::parse(raw).map_err(|_| Refusal::Malformed)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        match url.host() {
            None => return Err(Refusal::NoHost),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(url::Host::Domain(_)) => {}
        }
        Ok(url)
    }
}

/// A resolver for the delivery client that drops refused addresses, failing when none remain.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    policy: Arc<TargetPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<TargetPolicy>) -> Self {
        Self { policy }
    }

    /// Resolves `host` and keeps the allowed addresses.
    pub async fn resolve_checked(&self, host: &str) -> Result<Vec<SocketAddr>, Refusal> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| Refusal::Unresolvable(e.to_string()))?
            .collect();
        let mut first_refusal = None;
        let allowed: Vec<_> = addrs
            .into_iter()
            .filter(|a| match self.policy.check_ip(a.ip()) {
                Ok(()) => true,
                Err(r) => {
                    first_refusal.get_or_insert(r);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), first_refusal) {
            (false, _) => Ok(allowed),
            (true, Some(refusal)) => Err(refusal),
            (true, None) => Err(Refusal::Unresolvable(format!("{host} has no addresses"))),
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addrs = this.resolve_checked(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> TargetPolicy {
        TargetPolicy::default()
    }

    #[test]
    fn refused_addresses_by_kind() {
        let cases = [
            ("127.0.0.1", AddressKind::Loopback),
            ("127.8.9.10", AddressKind::Loopback),
            ("::1", AddressKind::Loopback),
            ("10.0.0.1", AddressKind::Private),
            ("172.16.0.1", AddressKind::Private),
            ("172.31.255.255", AddressKind::Private),
            ("192.168.1.1", AddressKind::Private),
            ("fd12::1", AddressKind::Private),
            ("169.254.169.254", AddressKind::Metadata),
            ("fd00:ec2::254", AddressKind::Metadata),
            ("100.100.100.200", AddressKind::Metadata),
            ("169.254.10.1", AddressKind::LinkLocal),
            ("fe80::1", AddressKind::LinkLocal),
            ("100.64.0.1", AddressKind::CarrierNat),
            ("0.0.0.0", AddressKind::Unspecified),
            ("::", AddressKind::Unspecified),
            ("224.0.0.1", AddressKind::Multicast),
            ("255.255.255.255", AddressKind::Reserved),
            ("::ffff:10.0.0.1", AddressKind::Private),
            ("::ffff:169.254.169.254", AddressKind::Metadata),
            ("64:ff9b::7f00:1", AddressKind::Loopback),
            ("64:ff9b:1::8.8.8.8", AddressKind::Private),
        ];
        for (ip, kind) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(classify(ip), Some(kind), "{ip}");
            assert_eq!(strict().check_ip(ip), Err(Refusal::Address(ip, kind)));
        }
        for public in [
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert_eq!(classify(public.parse().unwrap()), None, "{public}");
        }
    }

    /// Every IPv6 form that carries an IPv4 address is judged by that address.
    #[test]
    fn ipv6_forms_wrapping_ipv4_are_judged_by_the_ipv4_address() {
        type Wrap = fn(Ipv4Addr) -> Ipv6Addr;
        let forms: [(&str, Wrap); 6] = [
            ("mapped", |v4| v4.to_ipv6_mapped()),
            ("compatible", |v4| v4.to_ipv6_compatible()),
            ("translated", |v4| {
                let [a, b, c, d] = v4.octets();
                Ipv6Addr::new(
                    0,
                    0,
                    0,
                    0,
                    0xffff,
                    0,
                    u16::from_be_bytes([a, b]),
                    u16::from_be_bytes([c, d]),
                )
            }),
            ("nat64", |v4| {
                let [a, b, c, d] = v4.octets();
                Ipv6Addr::new(
                    0x64,
                    0xff9b,
                    0,
                    0,
                    0,
                    0,
                    u16::from_be_bytes([a, b]),
                    u16::from_be_bytes([c, d]),
                )
            }),
            ("6to4", |v4| {
                let [a, b, c, d] = v4.octets();
                Ipv6Addr::new(
                    0x2002,
                    u16::from_be_bytes([a, b]),
                    u16::from_be_bytes([c, d]),
                    0x1234,
                    0,
                    0,
                    0,
                    1,
                )
            }),
            ("teredo", |v4| {
                let [a, b, c, d] = v4.octets();
                Ipv6Addr::new(
                    0x2001,
                    0,
                    0x4136,
                    0xe378,
                    0x8000,
                    0x63bf,
                    !u16::from_be_bytes([a, b]),
                    !u16::from_be_bytes([c, d]),
                )
            }),
        ];
        let inner = [
            ("127.0.0.1", Some(AddressKind::Loopback)),
            ("10.1.2.3", Some(AddressKind::Private)),
            ("192.168.0.10", Some(AddressKind::Private)),
            ("172.20.0.1", Some(AddressKind::Private)),
            ("169.254.169.254", Some(AddressKind::Metadata)),
            ("100.64.0.1", Some(AddressKind::CarrierNat)),
            ("93.184.216.34", None),
        ];
        for (name, wrap) in forms {
            for (v4, kind) in inner {
                let v4: Ipv4Addr = v4.parse().unwrap();
                let v6 = wrap(v4);
                assert_eq!(embedded_v4(v6), Some(v4), "{name} {v6}");
                assert_eq!(classify(IpAddr::V6(v6)), kind, "{name} {v6}");
                if let Some(kind) = kind {
                    let url = format!("http://[{v6}]:8080/hook");
                    assert_eq!(
                        strict().check_url(&url),
                        Err(Refusal::Address(IpAddr::V6(v6), kind)),
                        "{url}"
                    );
                }
            }
        }
        // IPv6's own loopback and unspecified addresses are not IPv4-compatible ones.
        assert_eq!(embedded_v4(Ipv6Addr::LOCALHOST), None);
        assert_eq!(embedded_v4(Ipv6Addr::UNSPECIFIED), None);
        assert_eq!(embedded_v4("2606:4700::1111".parse().unwrap()), None);
        // Written as an IPv4 literal inside the brackets, as a tester would.
        for url in [
            "http://[::127.0.0.1]/",
            "http://[::ffff:0:10.0.0.1]/",
            "http://[2002:a9fe:a9fe::]/",
            "http://[::ffff:7f00:1]/",
        ] {
            assert!(
                matches!(strict().check_url(url), Err(Refusal::Address(..))),
                "{url}"
            );
        }
    }

    #[test]
    fn allow_listed_ranges_hold_the_ipv4_address_an_ipv6_one_wraps() {
        let ops = TargetPolicy {
            allowed: vec!["10.1.0.0/16".parse().unwrap()],
            ..Default::default()
        };
        assert!(ops.check_ip("::ffff:10.1.2.3".parse().unwrap()).is_ok());
        assert!(ops.check_ip("2002:a01:203::1".parse().unwrap()).is_ok());
        assert!(ops.check_ip("::ffff:10.2.0.1".parse().unwrap()).is_err());
        let dev = TargetPolicy {
            allow_loopback: true,
            ..Default::default()
        };
        assert!(dev.check_ip("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(dev.check_ip("2002:7f00:1::".parse().unwrap()).is_ok());
        assert!(dev.check_ip("2002:a00:1::".parse().unwrap()).is_err());
    }

    #[test]
    fn loopback_and_allow_listed_ranges_can_be_allowed() {
        let dev = TargetPolicy {
            allow_loopback: true,
            ..Default::default()
        };
        assert!(dev.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert!(dev.check_ip("::1".parse().unwrap()).is_ok());
        assert!(
            dev.check_ip("10.0.0.1".parse().unwrap()).is_err(),
            "loopback only"
        );
        let ops = TargetPolicy {
            allowed: vec!["10.1.0.0/16".parse().unwrap()],
            ..Default::default()
        };
        assert!(ops.check_ip("10.1.2.3".parse().unwrap()).is_ok());
        assert!(ops.check_ip("10.2.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn urls_are_checked_before_resolution() {
        let p = strict();
        assert_eq!(p.check_url("ftp://example.com/x"), Err(Refusal::Scheme));
        assert_eq!(p.check_url("not a url"), Err(Refusal::Malformed));
        assert_eq!(
            p.check_url("https://user:pw@example.com/"),
            Err(Refusal::Credentials)
        );
        assert!(matches!(
            p.check_url("http://169.254.169.254/latest"),
            Err(Refusal::Address(_, AddressKind::Metadata))
        ));
        assert!(matches!(
            p.check_url("http://[::1]:8080/"),
            Err(Refusal::Address(_, AddressKind::Loopback))
        ));
        assert!(matches!(
            p.check_url("http://0x7f000001/"),
            Err(Refusal::Address(_, AddressKind::Loopback))
        ));
        assert_eq!(
            p.check_url(&format!("https://example.com/{}", "a".repeat(MAX_URL_LEN))),
            Err(Refusal::TooLong)
        );
        assert!(p.check_url("https://example.com/hooks?x=1").is_ok());
    }

    #[test]
    fn cidr_parsing_and_matching() {
        let c: Cidr = "192.168.0.0/23".parse().unwrap();
        assert!(c.contains("192.168.1.255".parse().unwrap()));
        assert!(!c.contains("192.168.2.0".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let single: Cidr = "10.0.0.7".parse().unwrap();
        assert!(single.contains("10.0.0.7".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope/8".parse::<Cidr>().is_err());
    }

    /// A name that resolves to loopback is refused at delivery time; nothing is sent anywhere.
    #[tokio::test]
    async fn resolver_refuses_names_of_forbidden_addresses() {
        let strict = GuardedResolver::new(Arc::new(strict()));
        assert!(matches!(
            strict.resolve_checked("localhost").await,
            Err(Refusal::Address(_, AddressKind::Loopback))
        ));
        let dev = GuardedResolver::new(Arc::new(TargetPolicy {
            allow_loopback: true,
            ..Default::default()
        }));
        let addrs = dev.resolve_checked("localhost").await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
