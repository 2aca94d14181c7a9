//! CIDR blocks for address policies, and the client address as trusted
//! proxies report it.

use std::net::IpAddr;
use std::str::FromStr;

use http::request;

static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub(crate) fn parse(list: &[String]) -> Result<Self, String> {
        list.iter()
            .map(|s| s.parse())
            .collect::<Result<Vec<Cidr>, String>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client's address: the TCP peer, unless the peer is a trusted
    /// proxy; then the nearest address in `X-Forwarded-For` that is not a
    /// trusted proxy (the rightmost untrusted entry), so a client cannot
    /// choose its own address by sending the header itself. `None` when a
    /// trusted proxy sent something that is not a list of addresses.
    pub(crate) fn client(&self, req: &request::Parts, peer: IpAddr) -> Option<IpAddr> {
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut hops: Vec<&str> = Vec::new();
        for v in req.headers.get_all(&X_FORWARDED_FOR) {
            hops.extend(v.to_str().ok()?.split(','));
        }
        for hop in hops.iter().rev() {
            let ip: IpAddr = hop.trim().parse().ok()?;
            if !self.trusts(ip) {
                return Some(ip);
            }
        }
        // Every hop is a trusted proxy: the first one is the client.
        hops.first()
            .and_then(|h| h.trim().parse().ok())
            .or(Some(peer))
    }
}

/// An IPv4 or IPv6 network. IPv4-mapped IPv6 addresses match IPv4 blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    /// The address as 128 bits (IPv4 mapped into `::ffff:0:0/96`).
    bits: u128,
    /// Prefix length over the 128 bits.
    len: u8,
}

fn to_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(u128::from(v6), |v4| u128::from(v4.to_ipv6_mapped())),
    }
}

fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

impl Cidr {
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        to_bits(ip) & mask(self.len) == self.bits
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid address or CIDR block `{s}`");
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let ip: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let (max, offset) = match ip {
            IpAddr::V4(_) => (32, 96),
            IpAddr::V6(_) => (128, 0),
        };
        let len = len.unwrap_or(max);
        if len > max {
            return Err(format!(
                "invalid CIDR block `{s}`: the prefix is longer than {max} bits"
            ));
        }
        let len = len + offset;
        let bits = to_bits(ip);
        if bits & !mask(len) != 0 {
            return Err(format!(
                "invalid CIDR block `{s}`: host bits are set below the prefix"
            ));
        }
        Ok(Cidr { bits, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_and_v6_blocks() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.1.2.3")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.8")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        assert!(!all.contains(ip("2001:db8::1")));
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains(ip("2001:db8::1")));
    }

    #[test]
    fn bad_blocks_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.1/8",
            "nope",
            "10.0.0.0/x",
            "2001:db8::/129",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} was accepted");
        }
    }
}
