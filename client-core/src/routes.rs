//! Which routes a tunnel needs: a pure function of the gateway's
//! configuration (RFC 7296 §3.15 config mode, §2.9 traffic selectors), the
//! user's choices and the machine's LAN prefixes, so the policy can be read
//! and tested without touching the kernel.
//!
//! * Full tunnel: `0.0.0.0/1` + `128.0.0.0/1` (and `::/1` + `8000::/1` when
//!   an IPv6 address was assigned) through the tunnel. Without an IPv6
//!   address, `::/1` + `8000::/1` still point into the tunnel device, where
//!   the data plane drops and counts IPv6: nothing leaks around a full
//!   tunnel (Cisco's client blocks it too), unless the user allows the
//!   bypass. The machine's own
//!   default route stays untouched, so putting things back is only removing
//!   what we added, and the two halves beat it by prefix length.
//! * Split include: exactly the pushed subnets (or the narrowed TSr).
//! * The gateway itself is always reached the way it was before (a host
//!   route through the underlay) when a tunnel route would cover it.
//! * Split exclude: through the underlay.
//! * LocalLanAccess off in a full tunnel (Cisco's default): the LAN
//!   prefixes are tunnelled too, as two halves that beat the connected
//!   route; on, the connected routes win as usual.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::event::TunnelConfig;
use crate::wire::TrafficSelector;

/// An IP prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    /// Network address (host bits cleared).
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl Prefix {
    /// `addr/len` with the host bits cleared; None if `len` is too long.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        match addr {
            IpAddr::V4(a) if len <= 32 => {
                let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                Some(Prefix {
                    addr: IpAddr::V4(Ipv4Addr::from(u32::from(a) & m)),
                    len,
                })
            }
            IpAddr::V6(a) if len <= 128 => {
                let m = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                Some(Prefix {
                    addr: IpAddr::V6(Ipv6Addr::from(u128::from(a) & m)),
                    len,
                })
            }
            _ => None,
        }
    }

    /// A host prefix (/32 or /128).
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    fn bits(&self) -> u8 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// Whether `ip` lies inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        Prefix::new(ip, self.len).is_some_and(|p| p.addr == self.addr)
    }

    /// The two halves (one bit longer), None for a host prefix.
    pub fn halves(&self) -> Option<[Prefix; 2]> {
        if self.len >= self.bits() {
            return None;
        }
        let lo = Prefix::new(self.addr, self.len + 1)?;
        let hi = match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) | (1 << (31 - self.len)))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) | (1 << (127 - self.len)))),
        };
        Some([lo, Prefix::new(hi, self.len + 1)?])
    }

    /// Every prefix of `v`, or an error naming the first that is not one
    /// (`what` says where it came from: a flag, a request field).
    pub fn parse_all(v: &[String], what: &str) -> Result<Vec<Prefix>, String> {
        v.iter()
            .map(|x| {
                Prefix::parse(x)
                    .ok_or_else(|| format!("{what} {x:?} is not an address/length prefix"))
            })
            .collect()
    }

    /// Parses `ADDR/LEN` (or a bare address as a host prefix).
    pub fn parse(s: &str) -> Option<Prefix> {
        match s.split_once('/') {
            Some((a, l)) => Prefix::new(a.trim().parse().ok()?, l.trim().parse().ok()?),
            None => Some(Prefix::host(s.trim().parse().ok()?)),
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Where a route points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Via {
    /// Into the tunnel device.
    Tunnel,
    /// The way the gateway was reached before the tunnel (next hop and device).
    Underlay,
}

/// One route to add.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// Destination.
    pub dst: Prefix,
    /// Where to.
    pub via: Via,
}

/// The user's side of the routing decision.
#[derive(Clone, Debug, Default)]
pub struct RouteOptions {
    /// Allow the local LAN while a full tunnel is up.
    pub local_lan: bool,
    /// Extra split-include prefixes (added to the gateway's).
    pub include: Vec<Prefix>,
    /// Split-exclude prefixes.
    pub exclude: Vec<Prefix>,
    /// Let IPv6 take the machine's own routes when a full tunnel carries
    /// none (`--allow-ipv6-bypass`); by default it is blocked.
    pub ipv6_bypass: bool,
}

/// The prefixes a list of traffic selectors covers, or None if one of them
/// is "everything" of its family (then config-mode subnets decide).
fn ts_prefixes(ts: &[TrafficSelector]) -> Vec<Prefix> {
    let mut v = Vec::new();
    for t in ts {
        let Some((a, b)) = t.addrs() else { continue };
        v.extend(range_prefixes(a, b));
    }
    v
}

/// The smallest set of prefixes covering [a, b] (same family).
pub fn range_prefixes(a: IpAddr, b: IpAddr) -> Vec<Prefix> {
    let (mut lo, hi, bits) = match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32u32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128u32),
        _ => return Vec::new(),
    };
    let mk = |v: u128, len: u8| {
        let ip = if bits == 32 {
            IpAddr::V4(Ipv4Addr::from(v as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(v))
        };
        Prefix { addr: ip, len }
    };
    let mut out = Vec::new();
    while lo <= hi && out.len() < 64 {
        // Largest block starting at lo that fits in [lo, hi].
        let mut size_bits = if lo == 0 {
            bits
        } else {
            lo.trailing_zeros().min(bits)
        };
        while size_bits > 0 {
            let span = if size_bits >= 128 {
                u128::MAX
            } else {
                (1u128 << size_bits) - 1
            };
            if lo.checked_add(span).is_some_and(|e| e <= hi) {
                break;
            }
            size_bits -= 1;
        }
        out.push(mk(lo, (bits - size_bits) as u8));
        let span = if size_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << size_bits) - 1
        };
        match lo.checked_add(span).and_then(|e| e.checked_add(1)) {
            Some(n) if bits == 128 || n <= u32::MAX as u128 => lo = n,
            _ => break,
        }
    }
    out
}

/// The two IPv6 halves into the tunnel device, which carries no IPv6 and
/// so drops it; an IPv6 gateway keeps its underlay route.
fn block_v6(routes: &mut Vec<Route>, gateway: IpAddr) {
    let any = Prefix::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);
    for h in any.and_then(|p| p.halves()).into_iter().flatten() {
        routes.push(Route {
            dst: h,
            via: Via::Tunnel,
        });
    }
    if gateway.is_ipv6() {
        routes.push(Route {
            dst: Prefix::host(gateway),
            via: Via::Underlay,
        });
    }
}

/// The routes for `cfg`, given the gateway's address and the prefixes of
/// the LAN the machine sits on. Sorted, without duplicates.
pub fn plan(
    cfg: &TunnelConfig,
    gateway: IpAddr,
    lan: &[Prefix],
    opts: &RouteOptions,
) -> Vec<Route> {
    let mut routes = Vec::new();
    let has_v6 = cfg.addresses.iter().any(|(a, _)| a.is_ipv6());
    let mut v4_full = false;
    for v6 in [false, true] {
        if v6 && !has_v6 {
            if v4_full && !opts.ipv6_bypass {
                block_v6(&mut routes, gateway);
            }
            continue;
        }
        let fam = |p: &Prefix| p.addr.is_ipv6() == v6;
        // The gateway's split: its pushed subnets, else a narrowed TSr;
        // the user's --split-include adds to it (never replaces it).
        let mut include: Vec<Prefix> = cfg
            .subnets
            .iter()
            .filter_map(|(a, l)| Prefix::new(*a, *l))
            .filter(fam)
            .collect();
        let ts: Vec<Prefix> = ts_prefixes(&cfg.ts_remote)
            .into_iter()
            .filter(fam)
            .collect();
        if include.is_empty() && !ts.iter().any(|p| p.len == 0) {
            include = ts; // the gateway narrowed TSr: that is the split
        }
        let full = include.is_empty() || include.iter().any(|p| p.len == 0);
        include.extend(opts.include.iter().copied().filter(fam));
        v4_full |= full && !v6;
        if full {
            let any = Prefix::new(
                if v6 {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                },
                0,
            );
            for h in any.and_then(|p| p.halves()).into_iter().flatten() {
                routes.push(Route {
                    dst: h,
                    via: Via::Tunnel,
                });
            }
            if !opts.local_lan {
                for p in lan.iter().filter(|p| fam(p)) {
                    for h in p.halves().into_iter().flatten() {
                        routes.push(Route {
                            dst: h,
                            via: Via::Tunnel,
                        });
                    }
                }
            }
        } else {
            for p in include {
                routes.push(Route {
                    dst: p,
                    via: Via::Tunnel,
                });
            }
        }
        for p in opts.exclude.iter().filter(|p| fam(p)) {
            routes.push(Route {
                dst: *p,
                via: Via::Underlay,
            });
        }
        if gateway.is_ipv6() == v6
            && routes
                .iter()
                .any(|r| r.via == Via::Tunnel && r.dst.contains(gateway))
        {
            routes.push(Route {
                dst: Prefix::host(gateway),
                via: Via::Underlay,
            });
        }
    }
    routes.sort();
    routes.dedup();
    // One route per destination: where the tunnel and the underlay claim
    // the same prefix (a pushed subnet that is the gateway itself, or an
    // exclude equal to an include), the underlay wins — the gateway must
    // stay reachable outside the tunnel and an exclusion must hold.
    let underlay: Vec<Prefix> = routes
        .iter()
        .filter(|r| r.via == Via::Underlay)
        .map(|r| r.dst)
        .collect();
    routes.retain(|r| r.via == Via::Underlay || !underlay.contains(&r.dst));
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        Prefix::parse(s).unwrap()
    }

    fn show(r: &[Route]) -> Vec<String> {
        r.iter().map(|r| format!("{} {:?}", r.dst, r.via)).collect()
    }

    fn cfg(subnets: &[&str], tsr: Option<(&str, &str)>, v6: bool) -> TunnelConfig {
        let mut c = TunnelConfig {
            addresses: vec![("192.0.2.5".parse().unwrap(), 32)],
            ..Default::default()
        };
        if v6 {
            c.addresses.push(("2001:db8:1::5".parse().unwrap(), 64));
        }
        for s in subnets {
            let x = p(s);
            c.subnets.push((x.addr, x.len));
        }
        c.ts_remote = match tsr {
            Some((a, b)) => vec![TrafficSelector::range(
                a.parse().unwrap(),
                b.parse().unwrap(),
            )],
            None => vec![TrafficSelector::any_v4()],
        };
        c
    }

    const GW: &str = "198.51.100.1";

    #[test]
    fn full_tunnel_keeps_the_gateway_and_tunnels_the_lan_unless_allowed() {
        let lan = [p("198.51.100.0/24")];
        let gw = GW.parse().unwrap();
        let r = plan(&cfg(&[], None, false), gw, &lan, &RouteOptions::default());
        assert_eq!(
            show(&r),
            [
                "0.0.0.0/1 Tunnel",
                "128.0.0.0/1 Tunnel",
                "198.51.100.0/25 Tunnel",
                "198.51.100.1/32 Underlay",
                "198.51.100.128/25 Tunnel",
                "::/1 Tunnel",
                "8000::/1 Tunnel",
            ]
        );
        let o = RouteOptions {
            local_lan: true,
            ipv6_bypass: true,
            ..Default::default()
        };
        let r = plan(&cfg(&[], None, false), gw, &lan, &o);
        assert_eq!(
            show(&r),
            [
                "0.0.0.0/1 Tunnel",
                "128.0.0.0/1 Tunnel",
                "198.51.100.1/32 Underlay"
            ]
        );
    }

    /// A full tunnel without an IPv6 address still takes IPv6 into the
    /// tunnel device (to be dropped) unless bypass is allowed; a split
    /// tunnel leaves IPv6 alone; an IPv6 gateway stays reachable.
    #[test]
    fn ipv6_blocked_in_a_full_tunnel_without_an_ipv6_address() {
        let v4gw: IpAddr = GW.parse().unwrap();
        let r = plan(&cfg(&[], None, false), v4gw, &[], &RouteOptions::default());
        assert!(show(&r).contains(&"::/1 Tunnel".to_string()), "{r:?}");
        assert!(show(&r).contains(&"8000::/1 Tunnel".to_string()), "{r:?}");
        let r = plan(
            &cfg(&["203.0.113.0/24"], None, false),
            v4gw,
            &[],
            &RouteOptions::default(),
        );
        assert_eq!(show(&r), ["203.0.113.0/24 Tunnel"]);
        let v6gw: IpAddr = "2001:db8:100::1".parse().unwrap();
        let r = plan(&cfg(&[], None, false), v6gw, &[], &RouteOptions::default());
        assert_eq!(
            show(&r),
            [
                "0.0.0.0/1 Tunnel",
                "128.0.0.0/1 Tunnel",
                "::/1 Tunnel",
                "2001:db8:100::1/128 Underlay",
                "8000::/1 Tunnel",
            ]
        );
    }

    #[test]
    fn split_include_from_config_or_narrowed_ts_and_excludes() {
        let gw = GW.parse().unwrap();
        let lan = [p("198.51.100.0/24")];
        let o = RouteOptions {
            exclude: vec![p("203.0.113.128/25")],
            ..Default::default()
        };
        let r = plan(
            &cfg(&["203.0.113.0/24", "192.0.2.128/25"], None, false),
            gw,
            &lan,
            &o,
        );
        assert_eq!(
            show(&r),
            [
                "192.0.2.128/25 Tunnel",
                "203.0.113.0/24 Tunnel",
                "203.0.113.128/25 Underlay"
            ]
        );
        let r = plan(
            &cfg(&[], Some(("203.0.113.0", "203.0.113.255")), false),
            gw,
            &lan,
            &RouteOptions::default(),
        );
        assert_eq!(show(&r), ["203.0.113.0/24 Tunnel"]);
        // --split-include adds to a narrowed TSr, it does not replace it.
        let o = RouteOptions {
            include: vec![p("192.0.2.128/25")],
            ..Default::default()
        };
        let r = plan(
            &cfg(&[], Some(("203.0.113.0", "203.0.113.255")), false),
            gw,
            &lan,
            &o,
        );
        assert_eq!(show(&r), ["192.0.2.128/25 Tunnel", "203.0.113.0/24 Tunnel"]);
        // An include covering the gateway keeps the gateway on the underlay.
        let r = plan(
            &cfg(&["198.51.100.0/25"], None, false),
            gw,
            &lan,
            &RouteOptions::default(),
        );
        assert_eq!(
            show(&r),
            ["198.51.100.0/25 Tunnel", "198.51.100.1/32 Underlay"]
        );
    }

    #[test]
    fn ipv6_only_with_an_ipv6_address() {
        let gw = GW.parse().unwrap();
        let mut c = cfg(&[], None, true);
        c.ts_remote.push(TrafficSelector::any_v6());
        let r = plan(&c, gw, &[], &RouteOptions::default());
        assert_eq!(
            show(&r),
            [
                "0.0.0.0/1 Tunnel",
                "128.0.0.0/1 Tunnel",
                "198.51.100.1/32 Underlay",
                "::/1 Tunnel",
                "8000::/1 Tunnel"
            ]
        );
    }

    #[test]
    fn ranges_to_prefixes() {
        let r = |a: &str, b: &str| {
            range_prefixes(a.parse().unwrap(), b.parse().unwrap())
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(r("0.0.0.0", "255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(r("203.0.113.0", "203.0.113.255"), ["203.0.113.0/24"]);
        assert_eq!(
            r("203.0.113.1", "203.0.113.6"),
            [
                "203.0.113.1/32",
                "203.0.113.2/31",
                "203.0.113.4/31",
                "203.0.113.6/32"
            ]
        );
        assert_eq!(r("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), ["::/0"]);
        assert_eq!(r("192.0.2.5", "192.0.2.5"), ["192.0.2.5/32"]);
        assert!(Prefix::parse("192.0.2.0/33").is_none());
        assert_eq!(p("203.0.113.200/25").to_string(), "203.0.113.128/25");
    }
}
