//! The crash journal's record format: one line per change acclient made
//! to the machine outside its tunnel device, written before the change so a
//! crash can be undone by the next start (`driver::netconfig` does the I/O).
//! Pure data: the journal is read back as untrusted input, so parsing is
//! total and bounded (fuzz target `journal`).
//!
//! ```text
//! route 192.0.2.1/32 198.51.100.254 3     (dst, next hop or "-", interface index)
//! resolv /run/acclient/resolv.conf.orig   (put /etc/resolv.conf back from here)
//! tun acvpn0                              (informational)
//! gateway 198.51.100.1                    (its host route may be undone)
//! exclude 192.0.2.0/24                    (its underlay route may be undone)
//! netns 4026531840                        (written in this network namespace)
//! ```
//!
//! Replay trusts only what acclient itself could have written: a route is
//! undone only when it is the host route to a recorded gateway or a
//! recorded exclusion, a DNS backup only from inside the state directory,
//! and nothing at all in another network namespace ([`Journal::check`]).

use std::net::IpAddr;
use std::path::PathBuf;

use crate::routes::Prefix;

/// A change to undo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Undo {
    /// Delete a route we added outside the tunnel.
    Route {
        /// Destination.
        dst: Prefix,
        /// Next hop, if any.
        via: Option<IpAddr>,
        /// Output interface index.
        oif: u32,
    },
    /// Put `/etc/resolv.conf` back from this backup.
    Resolv(PathBuf),
    /// The tunnel device (informational: it vanishes with our process).
    Tun(String),
    /// The gateway of this run: the host route to it may be undone.
    Gateway(IpAddr),
    /// A split-exclude prefix of this run: its underlay route may be undone.
    Exclude(Prefix),
    /// The network namespace the journal was written in (the inode of
    /// `/proc/self/ns/net`): a replay elsewhere refuses it.
    Netns(u64),
}

impl Undo {
    /// The journal line for this change.
    pub fn line(&self) -> String {
        match self {
            Undo::Route { dst, via, oif } => format!(
                "route {dst} {} {oif}",
                via.map_or("-".to_string(), |v| v.to_string())
            ),
            Undo::Resolv(p) => format!("resolv {}", p.display()),
            Undo::Tun(n) => format!("tun {n}"),
            Undo::Gateway(g) => format!("gateway {g}"),
            Undo::Exclude(p) => format!("exclude {p}"),
            Undo::Netns(i) => format!("netns {i}"),
        }
    }

    /// Reads a journal line; `None` for a line this version does not know.
    pub fn parse(line: &str) -> Option<Undo> {
        let mut w = line.split_whitespace();
        match w.next()? {
            "route" => {
                let dst = Prefix::parse(w.next()?)?;
                let via = match w.next()? {
                    "-" => None,
                    v => Some(v.parse().ok()?),
                };
                let oif = w.next()?.parse().ok()?;
                Some(Undo::Route { dst, via, oif })
            }
            "resolv" => Some(Undo::Resolv(PathBuf::from(line.split_once(' ')?.1))),
            "tun" => Some(Undo::Tun(w.next()?.to_string())),
            "gateway" => Some(Undo::Gateway(w.next()?.parse().ok()?)),
            "exclude" => Some(Undo::Exclude(Prefix::parse(w.next()?)?)),
            "netns" => Some(Undo::Netns(w.next()?.parse().ok()?)),
            _ => None,
        }
    }
}

/// A journal read back, checked against what this run could have made.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Journal {
    /// The operations to undo, in the order they were recorded.
    pub ops: Vec<Undo>,
    /// What was refused, one line each, for the log.
    pub refused: Vec<String>,
}

impl Journal {
    /// Reads `text`, keeping only what acclient could have recorded for a
    /// state directory `dir` in network namespace `netns`. Fails whole when
    /// it was written in another namespace.
    pub fn check(text: &str, dir: &std::path::Path, netns: u64) -> Result<Journal, String> {
        let all: Vec<Undo> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(Undo::parse)
            .collect();
        if let Some(other) = all.iter().find_map(|u| match u {
            Undo::Netns(i) if *i != netns => Some(*i),
            _ => None,
        }) {
            return Err(format!(
                "the journal was written in another network namespace (net:[{other}]); run restore there"
            ));
        }
        let gateways: Vec<IpAddr> = all
            .iter()
            .filter_map(|u| match u {
                Undo::Gateway(g) => Some(*g),
                _ => None,
            })
            .collect();
        let excludes: Vec<Prefix> = all
            .iter()
            .filter_map(|u| match u {
                Undo::Exclude(p) => Some(*p),
                _ => None,
            })
            .collect();
        let mut j = Journal::default();
        for u in all {
            let ok = match &u {
                Undo::Route { dst, .. } => {
                    gateways.iter().any(|g| Prefix::host(*g) == *dst) || excludes.contains(dst)
                }
                Undo::Resolv(p) => p.parent() == Some(dir),
                _ => true,
            };
            if ok {
                j.ops.push(u);
            } else {
                j.refused.push(u.line());
            }
        }
        Ok(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_junk_is_refused() {
        for l in [
            "route 192.0.2.1/32 198.51.100.254 3",
            "route 2001:db8::/32 - 7",
            "resolv /run/acclient/resolv.conf.orig",
            "tun acvpn0",
            "gateway 198.51.100.1",
            "exclude 192.0.2.0/24",
            "netns 4026531840",
        ] {
            let u = Undo::parse(l).unwrap_or_else(|| panic!("{l}"));
            assert_eq!(u.line(), l);
        }
        for l in [
            "",
            "route",
            "route 192.0.2.1/33 - 3",
            "route 192.0.2.1/32 x 3",
            "reboot now",
        ] {
            assert_eq!(Undo::parse(l), None, "{l:?}");
        }
    }
}
