//! Which network remotes may be contacted (SSRF guard): an allow-list of host names, and the
//! addresses a name resolves to checked before connecting, so that a repository URL (or a
//! DNS answer) cannot point the service at itself, its neighbours on a link, or a cloud
//! provider's metadata endpoint, which hands out credentials to whoever asks.
//!
//! The check is made on the addresses the transport then connects to (the resolved addresses
//! are pinned for `git://`, HTTP(S) and SSH alike), so a name that resolves differently a
//! moment later (DNS rebinding) still reaches only a checked address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use super::GitError;

/// Cloud metadata endpoints (AWS, GCP and Azure: 169.254.169.254; AWS over IPv6: fd00:ec2::254;
/// Alibaba: 100.100.100.200). Never contacted unless named literally in the allow-list:
/// allowing private addresses in general does not allow these.
const METADATA: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
];

/// One entry of the allow-list: an exact host name or address, or `*.domain` for any name
/// below `domain` (not `domain` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl std::str::FromStr for HostPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let host = s.trim().trim_start_matches('[').trim_end_matches(']');
        let name = host.strip_prefix("*.").unwrap_or(host);
        if name.is_empty()
            || name.contains(['*', '/', ':', '@', ' ']) && name.parse::<Ipv6Addr>().is_err()
        {
            return Err(format!("{s:?} is not a host name, an address, or *.domain"));
        }
        Ok(Self(host.to_ascii_lowercase()))
    }
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        match self.0.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => self.0 == host,
        }
    }
}

/// The guard's configuration.
#[derive(Debug, Clone, Default)]
pub struct HostGuard {
    /// When not empty, the only hosts that may be contacted.
    pub allow: Vec<HostPattern>,
    /// Whether loopback, link-local and other local-only addresses may be contacted (a
    /// remote on this machine, as `configsync up` and tests use). Metadata endpoints stay
    /// refused unless listed literally in `allow`.
    pub allow_private: bool,
}

impl HostGuard {
    /// Checks `host` against the allow-list, resolves it, and returns the addresses that may
    /// be connected to, or why none may. `shown` is the URL for messages.
    pub fn resolve(&self, shown: &str, host: &str, port: u16) -> Result<Vec<SocketAddr>, GitError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let refused = |reason: String| GitError::HostRefused {
            url: shown.to_string(),
            host: host.to_string(),
            reason,
        };
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(host)) {
            return Err(refused(
                "the host is not in the allow-list (--allow-host)".into(),
            ));
        }
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => (host, port)
                .to_socket_addrs()
                .map_err(|e| GitError::Unreachable {
                    url: shown.to_string(),
                    reason: format!("cannot resolve {host}: {e}"),
                })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(GitError::Unreachable {
                url: shown.to_string(),
                reason: format!("{host} resolves to no address"),
            });
        }
        // Every address must pass, not just one: a name that also resolves to a refused
        // address is refused, whichever the transport would have tried first.
        for addr in &addrs {
            let literal = self.allow.iter().any(|p| p.matches(&addr.ip().to_string()));
            if let Some(class) = refused_class(addr.ip())
                && !literal
                && (class == AddressClass::Metadata || !self.allow_private)
            {
                return Err(refused(format!(
                    "it resolves to {}, a {} address{}",
                    addr.ip(),
                    class.name(),
                    class.hint()
                )));
            }
        }
        Ok(addrs)
    }
}

/// Why an address is not contacted by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Metadata,
    Loopback,
    LinkLocal,
    Unspecified,
    Multicast,
}

impl AddressClass {
    fn name(self) -> &'static str {
        match self {
            Self::Metadata => "cloud metadata",
            Self::Loopback => "loopback",
            Self::LinkLocal => "link-local",
            Self::Unspecified => "unspecified",
            Self::Multicast => "multicast or broadcast",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Self::Metadata => " (allowed only by naming the address itself in --allow-host)",
            _ => " (allowed by --allow-private-hosts)",
        }
    }
}

/// The class of an address that is refused by default, if it is one.
pub fn refused_class(ip: IpAddr) -> Option<AddressClass> {
    // An IPv4 address written as IPv6 (::ffff:127.0.0.1) is that IPv4 address.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if METADATA.contains(&ip) {
        return Some(AddressClass::Metadata);
    }
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => Some(AddressClass::Loopback),
        IpAddr::V4(v4) if v4.is_link_local() => Some(AddressClass::LinkLocal),
        IpAddr::V4(v4) if v4.is_unspecified() || v4.octets()[0] == 0 => {
            Some(AddressClass::Unspecified)
        }
        IpAddr::V4(v4) if v4.is_multicast() || v4.is_broadcast() => Some(AddressClass::Multicast),
        IpAddr::V6(v6) if v6.is_loopback() => Some(AddressClass::Loopback),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(AddressClass::LinkLocal),
        IpAddr::V6(v6) if v6.is_unspecified() => Some(AddressClass::Unspecified),
        IpAddr::V6(v6) if v6.is_multicast() => Some(AddressClass::Multicast),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allow: &[&str], allow_private: bool) -> HostGuard {
        HostGuard {
            allow: allow.iter().map(|a| a.parse().unwrap()).collect(),
            allow_private,
        }
    }

    #[test]
    fn local_and_metadata_addresses_are_classified() {
        for (ip, class) in [
            ("127.0.0.1", AddressClass::Loopback),
            ("127.8.9.10", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("169.254.169.254", AddressClass::Metadata),
            ("::ffff:169.254.169.254", AddressClass::Metadata),
            ("fd00:ec2::254", AddressClass::Metadata),
            ("100.100.100.200", AddressClass::Metadata),
            ("169.254.1.1", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("0.0.0.0", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("224.0.0.1", AddressClass::Multicast),
        ] {
            assert_eq!(refused_class(ip.parse().unwrap()), Some(class), "{ip}");
        }
        // Private networks are where self-hosted forges live: not refused.
        for ip in [
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "fd12::1",
            "140.82.112.3",
        ] {
            assert_eq!(refused_class(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn loopback_needs_the_flag_and_metadata_needs_its_literal_address() {
        let url = "git://x/r";
        let err = guard(&[], false)
            .resolve(url, "127.0.0.1", 9418)
            .unwrap_err();
        assert!(
            err.to_string().contains("127.0.0.1, a loopback address")
                && err.to_string().contains("--allow-private-hosts"),
            "{err}"
        );
        assert!(!err.is_transient());
        assert!(guard(&[], true).resolve(url, "127.0.0.1", 9418).is_ok());
        assert!(guard(&[], true).resolve(url, "[::1]", 9418).is_ok());
        let err = guard(&[], true)
            .resolve(url, "169.254.169.254", 80)
            .unwrap_err();
        assert!(err.to_string().contains("cloud metadata"), "{err}");
        assert!(guard(&[], true).resolve(url, "fd00:ec2::254", 80).is_err());
        assert!(
            guard(&["169.254.169.254"], false)
                .resolve(url, "169.254.169.254", 80)
                .is_ok()
        );
    }

    #[test]
    fn the_allow_list_matches_names_exactly_or_below_a_domain() {
        let g = guard(&["git.example.com", "*.corp.example", "127.0.0.1"], false);
        assert!(
            g.resolve("u", "127.0.0.1", 1).is_ok(),
            "a listed address is allowed"
        );
        for host in [
            "github.com",
            "example.com",
            "corp.example",
            "xgit.example.com",
        ] {
            let err = g.resolve("u", host, 443).unwrap_err();
            assert!(err.to_string().contains("allow-list"), "{host}: {err}");
        }
        assert!(
            HostPattern::from_str("*.corp.example")
                .unwrap()
                .matches("a.b.CORP.example")
        );
        assert!(
            !HostPattern::from_str("*.corp.example")
                .unwrap()
                .matches("corp.example")
        );
        assert!(
            HostPattern::from_str("GIT.example.com")
                .unwrap()
                .matches("git.EXAMPLE.com")
        );
        for bad in ["", "*", "a/b", "u@h", "*.", "h:22"] {
            assert!(HostPattern::from_str(bad).is_err(), "{bad:?}");
        }
        assert!(HostPattern::from_str("[::1]").is_ok());
    }

    use std::str::FromStr;
}
