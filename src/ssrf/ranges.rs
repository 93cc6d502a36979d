//! Which IP addresses a webhook may reach: a pure classification, no I/O.
//!
//! [`refusal`] names the special-purpose range an address lies in (loopback, RFC 1918,
//! link-local and cloud metadata, CGNAT, multicast, documentation, …), or None for a
//! public unicast address. IPv6 forms that embed an IPv4 address (IPv4-mapped,
//! IPv4-compatible, NAT64, 6to4) are judged by the address they embed. [`Cidr`] is the
//! operator's allow-list entry. Unit-tested at the bottom; `guard.rs` applies both.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 range and why it is refused.
type V4Range = (u32, u8, &'static str);

/// Special-purpose IPv4 ranges (IANA registry, RFC 6890 and successors), refused.
const V4_REFUSED: &[V4Range] = &[
    (
        0x0000_0000,
        8,
        "an unspecified or \"this network\" address (0.0.0.0/8)",
    ),
    (0x0a00_0000, 8, "a private address (RFC 1918, 10.0.0.0/8)"),
    (
        0x6440_0000,
        10,
        "a carrier-grade NAT address (100.64.0.0/10)",
    ),
    (0x7f00_0000, 8, "a loopback address (127.0.0.0/8)"),
    (
        0xa9fe_0000,
        16,
        "a link-local address (169.254.0.0/16, incl. cloud metadata)",
    ),
    (
        0xac10_0000,
        12,
        "a private address (RFC 1918, 172.16.0.0/12)",
    ),
    (
        0xc000_0000,
        24,
        "an IETF protocol assignment (192.0.0.0/24)",
    ),
    (0xc000_0200, 24, "a documentation address (192.0.2.0/24)"),
    (
        0xc058_6300,
        24,
        "a 6to4 relay anycast address (192.88.99.0/24)",
    ),
    (
        0xc0a8_0000,
        16,
        "a private address (RFC 1918, 192.168.0.0/16)",
    ),
    (0xc612_0000, 15, "a benchmarking address (198.18.0.0/15)"),
    (0xc633_6400, 24, "a documentation address (198.51.100.0/24)"),
    (0xcb00_7100, 24, "a documentation address (203.0.113.0/24)"),
    (0xe000_0000, 4, "a multicast address (224.0.0.0/4)"),
    (0xffff_ffff, 32, "the broadcast address (255.255.255.255)"),
    (0xf000_0000, 4, "a reserved address (240.0.0.0/4)"),
];

/// Why `ip` must not be a webhook destination; None if it is public unicast.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    V4_REFUSED
        .iter()
        .find(|(net, len, _)| prefix_match_u32(bits, *net, *len))
        .map(|(_, _, why)| *why)
}

fn prefix_match_u32(bits: u32, net: u32, len: u8) -> bool {
    len == 0 || (bits ^ net) >> (32 - u32::from(len)) == 0
}

fn prefix_match_u128(bits: u128, net: u128, len: u8) -> bool {
    len == 0 || (bits ^ net) >> (128 - u32::from(len)) == 0
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    let embedded = |v4: u32| -> Option<&'static str> {
        refusal_v4(Ipv4Addr::from(v4)).map(|_| "an IPv6 form of a refused IPv4 address")
    };
    if ip.is_unspecified() {
        return Some("the unspecified address (::)");
    }
    if ip.is_loopback() {
        return Some("a loopback address (::1)");
    }
    // ::ffff:a.b.c.d (mapped): a dual-stack socket connects to a.b.c.d itself.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return embedded(u32::from(v4));
    }
    // ::a.b.c.d (IPv4-compatible, deprecated) and ::ffff:0:a.b.c.d (IPv4-translated).
    if prefix_match_u128(bits, 0, 96) || prefix_match_u128(bits, 0xffff_0000_0000, 96) {
        return Some("a deprecated IPv4-compatible or IPv4-translated address");
    }
    // 64:ff9b::/96, the well-known NAT64 prefix: the gateway connects to the embedded address.
    if prefix_match_u128(bits, 0x0064_ff9b << 96, 96) {
        return embedded(bits as u32);
    }
    // 2002::/16, 6to4 (deprecated, RFC 7526): refused whatever it embeds, since a
    // relay would reach the embedded IPv4 address.
    if prefix_match_u128(bits, 0x2002 << 112, 16) {
        return embedded((bits >> 80) as u32).or(Some("a 6to4 address (2002::/16)"));
    }
    const V6_REFUSED: &[(u128, u8, &str)] = &[
        (
            0x0064_ff9b_0001 << 80,
            48,
            "a local-use NAT64 address (64:ff9b:1::/48)",
        ),
        (0x0100 << 112, 64, "a discard-only address (100::/64)"),
        (
            0x2001 << 112,
            23,
            "an IETF protocol assignment, incl. Teredo (2001::/23)",
        ),
        (
            0x2001_0db8 << 96,
            32,
            "a documentation address (2001:db8::/32)",
        ),
        (0x3fff << 112, 20, "a documentation address (3fff::/20)"),
        (0x5f00 << 112, 16, "a segment-routing address (5f00::/16)"),
        (
            0xfc00 << 112,
            7,
            "a unique local address (fc00::/7, incl. fd00:ec2::254 metadata)",
        ),
        (0xfe80 << 112, 10, "a link-local address (fe80::/10)"),
        (0xfec0 << 112, 10, "a site-local address (fec0::/10)"),
        (0xff00 << 112, 8, "a multicast address (ff00::/8)"),
    ];
    if let Some((_, _, why)) = V6_REFUSED
        .iter()
        .find(|(net, len, _)| prefix_match_u128(bits, *net, *len))
    {
        return Some(why);
    }
    // Global unicast is 2000::/3; everything else is unassigned or special.
    if !prefix_match_u128(bits, 0x2000 << 112, 3) {
        return Some("an address outside IPv6 global unicast (2000::/3)");
    }
    None
}

/// An allow-list entry: `10.1.0.0/16`, `fd00::/8`, or a single address (`/32`, `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this range. An IPv4-mapped IPv6 address is compared as
    /// the IPv4 address it maps to, since that is where a connection to it goes.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_match_u32(u32::from(ip), u32::from(net), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match_u128(u128::from(ip), u128::from(net), self.prefix)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR range like 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> bool {
        refusal(text.parse().expect("ip")).is_some()
    }

    #[test]
    fn special_purpose_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "240.0.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.8",
            "192.88.99.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:0:8.8.8.8",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:0a00:0001::1",
            "2002:0808:0808::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "fc00::1",
            "fd00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "1::1",
            "4000::1",
        ] {
            assert!(refused(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "169.255.0.1",
            "11.0.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(
                !refused(ip),
                "{ip} must pass: {:?}",
                refusal(ip.parse().unwrap())
            );
        }
    }

    #[test]
    fn cidrs_parse_and_match() {
        let loopback: Cidr = "127.0.0.0/8".parse().expect("cidr");
        assert!(loopback.contains("127.0.0.1".parse().unwrap()));
        assert!(loopback.contains("::ffff:127.0.0.2".parse().unwrap()));
        assert!(!loopback.contains("128.0.0.1".parse().unwrap()));
        assert!(!loopback.contains("::1".parse().unwrap()));
        let one: Cidr = "10.1.2.3".parse().expect("single address");
        assert_eq!(one.to_string(), "10.1.2.3/32");
        assert!(one.contains("10.1.2.3".parse().unwrap()));
        assert!(!one.contains("10.1.2.4".parse().unwrap()));
        let ula: Cidr = "fd00::/8".parse().expect("v6");
        assert!(ula.contains("fd00:ec2::254".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().expect("everything");
        assert!(all.contains("10.0.0.1".parse().unwrap()));
        for bad in [
            "",
            "10.0.0.0/33",
            "fd00::/129",
            "localhost",
            "10.0.0/8",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
