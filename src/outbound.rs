//! Outbound HTTP, guarded: the one HTTP client every call Herald makes to a host outside
//! the cluster goes through (provider APIs, customer notices and deletion receipts), and
//! the rule of which addresses it may connect to.
//!
//! A URL names a host; what matters is the address connected to. A tenant's webhook
//! URL that resolves to 10.0.0.5, 169.254.169.254 (cloud metadata) or 127.0.0.1 would
//! make Herald a probe of the platform's own network. So:
//!
//! - [`refusal`] is the rule, a pure function of the address: only global unicast
//!   addresses pass (not private, loopback, link-local, CGNAT, ULA, IPv4-mapped,
//!   documentation, multicast, …).
//! - The client resolves names itself ([`GuardedResolver`]) and drops every address
//!   the rule refuses before connecting; none left is an error.
//! - reqwest does not call a resolver for a URL whose host is an IP literal, so
//!   [`HttpClient::request`] checks such a host against the same rule first.
//! - No proxy (an environment's proxy would connect on our behalf, unchecked) and no
//!   redirects (a redirect could lead to another host, and carry a bearer token).
//!
//! - A data-plane Job that sends data out (an export, a data-subject answer) connects
//!   itself, not through this client: [`approve_destination`] resolves and checks its
//!   destination by the same rule before the Job exists, and the Job's egress policy
//!   allows only the approved addresses (src/controller/tenant/destination.rs).
//!
//! [`Egress::allow_loopback`] lets loopback through, for the e2e tests and local
//! development only (`herald run --allow-loopback-egress`); nothing else ever passes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{Ipv4Net, Ipv6Net};
use std::sync::Arc;
use std::time::Duration;

/// Timeout of one HTTP request (connect, send, answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of establishing the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which addresses outbound calls may reach besides global unicast ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Egress {
    /// Loopback (127.0.0.0/8, ::1) too: tests and local development only.
    pub allow_loopback: bool,
}

impl Egress {
    /// `Err(class)` when `ip` may not be connected to under this policy.
    pub fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        match refusal(ip) {
            None => Ok(()),
            Some("loopback") if self.allow_loopback => Ok(()),
            Some(class) => Err(class),
        }
    }
}

/// Why `ip` is not a global unicast address (its class), or `None` when it is one.
/// Pure: the whole rule of where Herald may connect.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => refusal_v4(a),
        IpAddr::V6(a) => refusal_v6(a),
    }
}

/// An IPv4 network for the tables below (checked when compiled: a prefix over 32 fails
/// the build).
const fn v4(a: [u8; 4], len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a[0], a[1], a[2], a[3]), len)
}

/// An IPv6 network for the tables below (a prefix over 128 fails the build).
const fn v6(s: [u16; 8], len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        len,
    )
}

/// The IPv4 networks that are not globally reachable, with their class: IANA's IPv4
/// Special-Purpose Address Registry (RFC 6890 and its updates), entries whose
/// "globally reachable" is false or N/A. The first match names the class, so a more
/// specific network comes before one that contains it.
pub const V4_REFUSED: &[(Ipv4Net, &str)] = &[
    (v4([0, 0, 0, 0], 8), "unspecified"),
    (v4([127, 0, 0, 0], 8), "loopback"),
    (v4([10, 0, 0, 0], 8), "private"),
    (v4([172, 16, 0, 0], 12), "private"),
    (v4([192, 168, 0, 0], 16), "private"),
    (v4([100, 64, 0, 0], 10), "shared (CGNAT)"),
    (v4([169, 254, 0, 0], 16), "link-local (cloud metadata)"),
    (v4([192, 0, 0, 0], 24), "IETF protocol assignments"),
    (v4([192, 0, 2, 0], 24), "documentation"),
    (v4([198, 51, 100, 0], 24), "documentation"),
    (v4([203, 0, 113, 0], 24), "documentation"),
    // MCAST-TEST-NET (RFC 6676), inside multicast: named for what it is.
    (v4([233, 252, 0, 0], 24), "documentation"),
    (v4([198, 18, 0, 0], 15), "benchmarking"),
    (v4([192, 88, 99, 0], 24), "6to4 relay"),
    (v4([224, 0, 0, 0], 4), "multicast"),
    // 240.0.0.0/4 includes the limited broadcast address 255.255.255.255.
    (v4([240, 0, 0, 0], 4), "reserved"),
];

/// The IPv6 networks that are not globally reachable, with their class: IANA's IPv6
/// Special-Purpose Address Registry, entries whose "globally reachable" is false or
/// N/A (first match names the class). Networks that embed or translate to an IPv4
/// address are refused whole: what they reach is an IPv4 host the table above would
/// have to judge, behind a translator. Outside 2000::/3 everything is refused anyway
/// ("reserved"); these name the class, and catch the ranges inside 2000::/3.
pub const V6_REFUSED: &[(Ipv6Net, &str)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    (v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96), "IPv4-mapped"),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 96), "IPv4-compatible"),
    (v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96), "NAT64"),
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "NAT64 (local)"),
    (v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), "6to4"),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), "Teredo"),
    (v6([0x0100, 0, 0, 0, 0, 0, 0, 0], 64), "discard"),
    // The dummy prefix (RFC 9780): for addresses that must never be reached.
    (v6([0x0100, 0, 0, 1, 0, 0, 0, 0], 64), "dummy"),
    (v6([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32), "documentation"),
    // The second documentation prefix (RFC 9637), inside global unicast 2000::/3.
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "documentation"),
    (v6([0x2001, 0x0002, 0, 0, 0, 0, 0, 0], 48), "benchmarking"),
    // Overlay routable cryptographic hash identifiers (RFC 4843, deprecated, and RFC
    // 7343): identifiers, not locators; no host answers at one.
    (v6([0x2001, 0x0010, 0, 0, 0, 0, 0, 0], 28), "ORCHID"),
    (v6([0x2001, 0x0020, 0, 0, 0, 0, 0, 0], 28), "ORCHIDv2"),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "unique local (ULA)"),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local"),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

/// Global unicast (RFC 4291): every IPv6 address outside it is reserved.
const V6_GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

fn refusal_v4(a: Ipv4Addr) -> Option<&'static str> {
    V4_REFUSED
        .iter()
        .find(|(net, _)| net.contains(&a))
        .map(|(_, class)| *class)
}

fn refusal_v6(a: Ipv6Addr) -> Option<&'static str> {
    if let Some((_, class)) = V6_REFUSED.iter().find(|(net, _)| net.contains(&a)) {
        return Some(class);
    }
    (!V6_GLOBAL_UNICAST.contains(&a)).then_some("reserved")
}

/// How the text of a [`Refused`] begins: a failure persisted as text (a notice's
/// `lastFailure`) is told apart by it.
pub const REFUSED_PREFIX: &str = "egress refused:";

/// An outbound call the guard refused: the address class, never the URL (it may hold
/// a token in its query) or the host. Its text begins with [`REFUSED_PREFIX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("egress refused: the address is {class}, not global unicast")]
pub struct Refused {
    /// The refused address's class ([`refusal`]).
    pub class: &'static str,
}

/// Whether a reqwest error is (or wraps) a [`Refused`] from the resolver, and its class.
pub fn refused_in(e: &reqwest::Error) -> Option<Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(*r);
        }
        source = s.source();
    }
    None
}

/// Resolves with the system resolver and keeps only the addresses [`Egress`] permits.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    policy: Egress,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if reserved_name(&host) {
                // Answered as the DNS would answer (no such name), without asking it.
                return Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "a name under a reserved top-level domain (RFC 2606) never resolves",
                ))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let (kept, refused) = keep_permitted(policy, resolved);
            if kept.is_empty() {
                let class = refused.unwrap_or("unresolvable");
                return Err(Box::new(Refused { class }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `host` is under a top-level domain reserved never to resolve (RFC 2606:
/// `.example`, `.invalid`, `.test`): the examples' and tests' fictional endpoints. Such
/// a name is not looked up at all, so no query for it leaves the machine.
pub fn reserved_name(host: &str) -> bool {
    let tld = host
        .trim_end_matches('.')
        .rsplit('.')
        .next()
        .unwrap_or_default();
    ["example", "invalid", "test"]
        .iter()
        .any(|r| tld.eq_ignore_ascii_case(r))
}

/// The permitted addresses of `resolved`, and the class of the first refused one.
fn keep_permitted(
    policy: Egress,
    resolved: impl Iterator<Item = SocketAddr>,
) -> (Vec<SocketAddr>, Option<&'static str>) {
    let mut refused = None;
    let kept = resolved
        .filter(|a| match policy.check(a.ip()) {
            Ok(()) => true,
            Err(class) => {
                refused.get_or_insert(class);
                false
            }
        })
        .collect();
    (kept, refused)
}

/// The guarded HTTP client. Cheap to clone: it shares the connection pool.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    policy: Egress,
}

impl HttpClient {
    /// rustls on ring (installed as the process default if none is), platform
    /// certificate verification, timeouts, the guarded resolver, no proxy, no redirects.
    pub fn new(policy: Egress) -> Result<Self, reqwest::Error> {
        // Err means a provider is already installed (kube's, or a test's): keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let inner = reqwest::Client::builder()
            .tls_backend_rustls()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { inner, policy })
    }

    /// The policy this client connects under: data-plane destinations are approved
    /// under the same one ([`approve_destination`]).
    pub fn policy(&self) -> Egress {
        self.policy
    }

    /// A request to `url`, refused before anything is sent when its host is an IP
    /// literal the policy refuses (names are checked by the resolver at connect time).
    /// A URL that does not parse is left to reqwest, which refuses it when sent.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
    ) -> Result<reqwest::RequestBuilder, Refused> {
        check_literal(self.policy, &url)?;
        Ok(self.inner.request(method, url))
    }
}

/// `Err` when `url`'s host is an IP literal the policy refuses.
pub fn check_literal(policy: Egress, url: &reqwest::Url) -> Result<(), Refused> {
    let ip = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<IpAddr>().ok());
    match ip.map(|ip| policy.check(ip)) {
        Some(Err(class)) => Err(Refused { class }),
        _ => Ok(()),
    }
}

/// A destination a data-plane Job sends to, as the guard approved it: the addresses its
/// host resolved to that the policy permits (sorted, each once), and the port. The
/// Job's egress NetworkPolicy allows exactly these, on this port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approved {
    /// The permitted addresses.
    pub addrs: Vec<IpAddr>,
    /// The URL's port (443 for https unless it names another).
    pub port: u16,
}

/// The host and port of a destination URL, or why it has none worth resolving. Pure.
/// An IP literal host is returned as it is written (brackets removed).
pub fn host_and_port(url: &str) -> Result<(String, u16), Refused> {
    let parsed = reqwest::Url::parse(url).map_err(|_| Refused { class: "not a URL" })?;
    let host = parsed
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        .filter(|h| !h.is_empty())
        .ok_or(Refused { class: "not a URL" })?;
    let port = parsed
        .port_or_known_default()
        .ok_or(Refused { class: "not a URL" })?;
    Ok((host, port))
}

/// The addresses of `resolved` that `policy` permits, as an [`Approved`] on `port`, or
/// the class of the first refused one when none is left (`unresolvable` when there was
/// none). The same rule the operator's own client applies at connect time. Pure.
pub fn approve(
    policy: Egress,
    resolved: impl Iterator<Item = IpAddr>,
    port: u16,
) -> Result<Approved, Refused> {
    let (kept, refused) = keep_permitted(policy, resolved.map(|ip| SocketAddr::new(ip, port)));
    let mut addrs: Vec<IpAddr> = kept.iter().map(SocketAddr::ip).collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(Refused {
            class: refused.unwrap_or("unresolvable"),
        });
    }
    Ok(Approved { addrs, port })
}

/// Resolves `url`'s host as the operator's client would (the system resolver; a name
/// under a reserved top-level domain is not looked up and is `unresolvable`) and
/// approves the addresses ([`approve`]): what a data-plane Job may connect to, decided
/// before the Job exists.
pub async fn approve_destination(policy: Egress, url: &str) -> Result<Approved, Refused> {
    let (host, port) = host_and_port(url)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return approve(policy, std::iter::once(ip), port);
    }
    if reserved_name(&host) {
        return Err(Refused {
            class: "unresolvable",
        });
    }
    let resolved = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| Refused {
            class: "unresolvable",
        })?;
    approve(policy, resolved.map(|a| a.ip()), port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Option<&'static str> {
        refusal(s.parse().unwrap())
    }

    #[test]
    fn only_global_unicast_addresses_pass() {
        for (addr, want) in [
            ("0.0.0.0", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.254", "shared (CGNAT)"),
            ("169.254.169.254", "link-local (cloud metadata)"),
            ("192.0.0.170", "IETF protocol assignments"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.255", "documentation"),
            ("233.252.0.1", "documentation"),
            ("192.88.99.1", "6to4 relay"),
            ("198.19.255.255", "benchmarking"),
            ("0.1.2.3", "unspecified"),
            ("240.0.0.1", "reserved"),
            ("198.18.0.1", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:10.0.0.1", "IPv4-mapped"),
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("64:ff9b::a00:1", "NAT64"),
            ("2002:a00:1::", "6to4"),
            ("2001:0:4136:e378::1", "Teredo"),
            ("2001:db8::1", "documentation"),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "documentation"),
            ("3fff::1", "documentation"),
            ("3fff:fff:ffff::1", "documentation"),
            ("2001:10::1", "ORCHID"),
            ("2001:1f:ffff::1", "ORCHID"),
            ("2001:20::1", "ORCHIDv2"),
            ("2001:2f:ffff::1", "ORCHIDv2"),
            ("2001:2::1", "benchmarking"),
            ("100::1", "discard"),
            ("100:0:0:1::1", "dummy"),
            ("64:ff9b:1::1", "NAT64 (local)"),
            ("5f00::1", "reserved"),
            ("fd00::1", "unique local (ULA)"),
            ("fc12::1", "unique local (ULA)"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("4000::1", "reserved"),
            ("fd00:ec2::254", "unique local (ULA)"),
        ] {
            assert_eq!(class(addr), Some(want), "{addr}");
        }
        for global in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "192.169.0.1",
            "2a00:1450:4001:80b::200e",
            "2606:4700::1111",
            // Just outside the refused ranges on either side.
            "192.0.1.255",
            "192.0.3.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "3fff:1000::1",
            "2001:f:ffff::1",
            "2001:30::1",
            "2001:db9::1",
            "2001:1::1",
        ] {
            assert_eq!(class(global), None, "{global}");
        }
    }

    #[test]
    fn the_tables_hold_networks_not_hosts() {
        // A network written with host bits set would still match (contains() masks),
        // but would read as a different range than it is: every entry is exact.
        for (net, class) in V4_REFUSED {
            assert_eq!(net.addr(), net.network(), "{net} ({class})");
        }
        for (net, class) in V6_REFUSED {
            assert_eq!(net.addr(), net.network(), "{net} ({class})");
        }
    }

    #[test]
    fn loopback_passes_only_when_allowed_and_nothing_else_does() {
        let dev = Egress {
            allow_loopback: true,
        };
        assert_eq!(dev.check("127.0.0.1".parse().unwrap()), Ok(()));
        assert_eq!(dev.check("::1".parse().unwrap()), Ok(()));
        assert_eq!(dev.check("10.0.0.1".parse().unwrap()), Err("private"));
        assert_eq!(
            dev.check("169.254.169.254".parse().unwrap()),
            Err("link-local (cloud metadata)")
        );
        assert_eq!(
            Egress::default().check("127.0.0.1".parse().unwrap()),
            Err("loopback")
        );
    }

    #[test]
    fn ip_literal_hosts_are_checked_names_are_left_to_the_resolver() {
        let p = Egress::default();
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            check_literal(p, &url("https://169.254.169.254/latest/meta-data")),
            Err(Refused {
                class: "link-local (cloud metadata)"
            })
        );
        assert_eq!(
            check_literal(p, &url("https://[::ffff:a00:1]/x")),
            Err(Refused {
                class: "IPv4-mapped"
            })
        );
        assert_eq!(
            check_literal(p, &url("https://[fd00::1]:8443/")).map_err(|r| r.class),
            Err("unique local (ULA)")
        );
        assert!(check_literal(p, &url("https://8.8.8.8/")).is_ok());
        assert!(check_literal(p, &url("https://hooks.example/")).is_ok());
        let e = Refused { class: "private" }.to_string();
        assert_eq!(
            e,
            "egress refused: the address is private, not global unicast"
        );
    }

    #[test]
    fn names_under_reserved_top_level_domains_are_never_looked_up() {
        for host in [
            "hooks.acme.example",
            "x.invalid",
            "a.b.TEST",
            "platform.example.",
        ] {
            assert!(reserved_name(host), "{host}");
        }
        for host in [
            "example.com",
            "hooks.acme.eu",
            "testing",
            "localhost",
            "notexample",
        ] {
            assert!(!reserved_name(host), "{host}");
        }
    }

    #[tokio::test]
    async fn the_resolver_answers_a_reserved_name_without_asking_the_dns() {
        use reqwest::dns::Resolve;
        let resolver = GuardedResolver {
            policy: Egress::default(),
        };
        let name: reqwest::dns::Name = "hooks.acme.example".parse().unwrap();
        let err = match resolver.resolve(name).await {
            Ok(_) => panic!("a reserved name resolved"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("RFC 2606"), "{err}");
    }

    #[test]
    fn the_resolver_keeps_only_permitted_addresses() {
        let addrs: Vec<SocketAddr> = ["10.0.0.1:0", "8.8.8.8:0", "[fd00::1]:0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let (kept, refused) = keep_permitted(Egress::default(), addrs.clone().into_iter());
        assert_eq!(kept, vec![addrs[1]]);
        assert_eq!(refused, Some("private"));
        let (kept, refused) = keep_permitted(Egress::default(), addrs[..1].iter().copied());
        assert!(kept.is_empty());
        assert_eq!(refused, Some("private"));
    }

    #[test]
    fn a_destination_is_its_host_and_port() {
        assert_eq!(
            host_and_port("https://upload.acme.eu/x?sig=1"),
            Ok(("upload.acme.eu".into(), 443))
        );
        assert_eq!(
            host_and_port("https://upload.acme.eu:8443/"),
            Ok(("upload.acme.eu".into(), 8443))
        );
        assert_eq!(
            host_and_port("http://127.0.0.1:9000/up"),
            Ok(("127.0.0.1".into(), 9000))
        );
        assert_eq!(
            host_and_port("https://[2a00:1450::1]/"),
            Ok(("2a00:1450::1".into(), 443))
        );
        for bad in ["", "not a url", "mailto:a@b.eu", "file:///etc/passwd"] {
            assert_eq!(
                host_and_port(bad),
                Err(Refused { class: "not a URL" }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_destination_is_approved_only_for_permitted_addresses() {
        let ips = |xs: &[&str]| {
            xs.iter()
                .map(|s| s.parse::<IpAddr>().unwrap())
                .collect::<Vec<_>>()
        };
        let p = Egress::default();
        assert_eq!(
            approve(p, ips(&["8.8.8.8", "1.1.1.1", "8.8.8.8"]).into_iter(), 443),
            Ok(Approved {
                addrs: ips(&["1.1.1.1", "8.8.8.8"]),
                port: 443
            })
        );
        // A name resolving to a private and a public address: only the public one.
        assert_eq!(
            approve(p, ips(&["10.0.0.7", "8.8.8.8"]).into_iter(), 443).map(|a| a.addrs),
            Ok(ips(&["8.8.8.8"]))
        );
        for (refused, class) in [
            ("10.0.0.7", "private"),
            ("169.254.169.254", "link-local (cloud metadata)"),
            ("3fff::1", "documentation"),
            ("2001:20::1", "ORCHIDv2"),
            ("127.0.0.1", "loopback"),
        ] {
            assert_eq!(
                approve(p, ips(&[refused]).into_iter(), 443),
                Err(Refused { class }),
                "{refused}"
            );
        }
        assert_eq!(
            approve(p, std::iter::empty(), 443),
            Err(Refused {
                class: "unresolvable"
            })
        );
        let dev = Egress {
            allow_loopback: true,
        };
        assert_eq!(
            approve(dev, ips(&["127.0.0.1"]).into_iter(), 9000),
            Ok(Approved {
                addrs: ips(&["127.0.0.1"]),
                port: 9000
            })
        );
    }

    #[tokio::test]
    async fn a_destination_is_resolved_and_checked_without_asking_the_dns_for_reserved_names() {
        let p = Egress::default();
        assert_eq!(
            approve_destination(p, "https://upload.acme.example/x").await,
            Err(Refused {
                class: "unresolvable"
            })
        );
        assert_eq!(
            approve_destination(p, "https://169.254.169.254/latest").await,
            Err(Refused {
                class: "link-local (cloud metadata)"
            })
        );
        assert_eq!(
            approve_destination(p, "http://127.0.0.1:9/").await,
            Err(Refused { class: "loopback" })
        );
        // localhost resolves on the machine itself (no DNS query leaves it).
        let dev = Egress {
            allow_loopback: true,
        };
        let approved = approve_destination(dev, "http://localhost:9000/up")
            .await
            .unwrap();
        assert_eq!(approved.port, 9000);
        assert!(
            approved.addrs.iter().all(IpAddr::is_loopback),
            "{approved:?}"
        );
        assert_eq!(
            approve_destination(p, "http://localhost:9000/up").await,
            Err(Refused { class: "loopback" })
        );
    }

    /// A loopback server counting the connections it accepted (answers 204 to each).
    async fn counting_server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // The request first (a POST without a body fits one read), then the answer.
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        (port, seen)
    }

    /// The wiring, on loopback only: with loopback denied, neither an IP literal nor a
    /// name resolving to loopback reaches the server; allowed, the same calls do (so
    /// the test can fail).
    #[tokio::test]
    async fn the_client_never_connects_to_a_refused_address() {
        let (port, seen) = counting_server().await;
        let denied = HttpClient::new(Egress::default()).unwrap();
        let literal = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let refused = denied
            .request(reqwest::Method::POST, literal.clone())
            .map(|_| ())
            .unwrap_err();
        assert_eq!(refused.class, "loopback");
        let named = reqwest::Url::parse(&format!("http://localhost:{port}/")).unwrap();
        let e = denied
            .request(reqwest::Method::POST, named.clone())
            .unwrap()
            .send()
            .await
            .unwrap_err();
        assert_eq!(refused_in(&e).map(|r| r.class), Some("loopback"), "{e:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "a refused call connected"
        );

        let allowed = HttpClient::new(Egress {
            allow_loopback: true,
        })
        .unwrap();
        for url in [literal, named] {
            let r = allowed
                .request(reqwest::Method::POST, url)
                .unwrap()
                .send()
                .await;
            assert_eq!(
                r.map(|r| r.status().as_u16()).map_err(|e| format!("{e:?}")),
                Ok(204)
            );
        }
        assert!(seen.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    }
}
