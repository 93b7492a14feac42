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
//! ```

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
            _ => None,
        }
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
