//! DNS through systemd-resolved's D-Bus API (`org.freedesktop.resolve1`,
//! systemd's `org.freedesktop.resolve1(5)`), when it runs: the tunnel's
//! servers and domains are set *on the tunnel link*, so nothing global is
//! edited and nothing needs putting back after a crash — resolved forgets
//! a link's settings when the link goes away with our process.
//!
//! * Full tunnel: the link is the default DNS route (`~.`), so every query
//!   goes to the gateway's servers.
//! * Split tunnel: only the pushed domains (search domains and Cisco's
//!   split-DNS list, as routing domains) go to them; the rest stays local.

use std::io;
use std::net::IpAddr;

use tracing::{debug, info};

const DEST: &str = "org.freedesktop.resolve1";
const PATH: &str = "/org/freedesktop/resolve1";
const IFACE: &str = "org.freedesktop.resolve1.Manager";

fn err(what: &str, e: zbus::Error) -> io::Error {
    io::Error::other(format!("systemd-resolved {what}: {e}"))
}

/// A connection to a running systemd-resolved, or None when there is none
/// on the system bus (`$DBUS_SYSTEM_BUS_ADDRESS` or the standard socket).
pub async fn connect() -> Option<zbus::Connection> {
    // Bounded: a wedged bus must not hold up the tunnel.
    let conn = match tokio::time::timeout(
        std::time::Duration::from_secs(3),
        zbus::Connection::system(),
    )
    .await
    .unwrap_or_else(|_| Err(zbus::Error::Failure("timed out".into())))
    {
        Ok(c) => c,
        Err(e) => {
            debug!("no system bus ({e}): DNS through /etc/resolv.conf");
            return None;
        }
    };
    let ask = conn.call_method(
        Some("org.freedesktop.DBus"),
        "/org/freedesktop/DBus",
        Some("org.freedesktop.DBus"),
        "NameHasOwner",
        &(DEST,),
    );
    let owned = tokio::time::timeout(std::time::Duration::from_secs(3), ask)
        .await
        .ok()
        .and_then(|r| r.ok())
        .and_then(|m| m.body().deserialize::<bool>().ok())
        .unwrap_or(false);
    if !owned {
        debug!("systemd-resolved is not running: DNS through /etc/resolv.conf");
        return None;
    }
    Some(conn)
}

/// What to set on the link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkDns {
    /// Servers.
    pub servers: Vec<IpAddr>,
    /// Search domains (also routing domains).
    pub search: Vec<String>,
    /// Routing-only domains (Cisco split DNS).
    pub routing: Vec<String>,
    /// All queries go here (full tunnel).
    pub default_route: bool,
}

impl LinkDns {
    /// The `SetLinkDomains` argument: (domain, routing-only) pairs; a full
    /// tunnel adds `~.` so the link takes every query.
    pub fn domains(&self) -> Vec<(String, bool)> {
        let mut v: Vec<(String, bool)> = self.search.iter().map(|d| (d.clone(), false)).collect();
        for d in &self.routing {
            if !v.iter().any(|(x, _)| x == d) {
                v.push((d.clone(), true));
            }
        }
        if self.default_route {
            v.push((".".into(), true));
        }
        v
    }
}

/// Configures DNS for link `ifindex`.
pub async fn set_link(conn: &zbus::Connection, ifindex: u32, dns: &LinkDns) -> io::Result<()> {
    let idx = ifindex as i32;
    let servers: Vec<(i32, Vec<u8>)> = dns
        .servers
        .iter()
        .map(|a| match a {
            IpAddr::V4(v) => (2, v.octets().to_vec()),  // AF_INET
            IpAddr::V6(v) => (10, v.octets().to_vec()), // AF_INET6
        })
        .collect();
    conn.call_method(Some(DEST), PATH, Some(IFACE), "SetLinkDNS", &(idx, servers))
        .await
        .map_err(|e| err("SetLinkDNS", e))?;
    conn.call_method(
        Some(DEST),
        PATH,
        Some(IFACE),
        "SetLinkDomains",
        &(idx, dns.domains()),
    )
    .await
    .map_err(|e| err("SetLinkDomains", e))?;
    conn.call_method(
        Some(DEST),
        PATH,
        Some(IFACE),
        "SetLinkDefaultRoute",
        &(idx, dns.default_route),
    )
    .await
    .map_err(|e| err("SetLinkDefaultRoute", e))?;
    info!(
        "DNS via systemd-resolved on link {ifindex}: {} ({})",
        dns.servers
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        if dns.default_route {
            "all queries".to_string()
        } else {
            format!(
                "only {}",
                dns.domains()
                    .iter()
                    .map(|d| d.0.clone())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    );
    Ok(())
}

/// Drops what we set on link `ifindex` (before the link itself goes).
pub async fn revert_link(conn: &zbus::Connection, ifindex: u32) {
    if let Err(e) = conn
        .call_method(
            Some(DEST),
            PATH,
            Some(IFACE),
            "RevertLink",
            &(ifindex as i32,),
        )
        .await
    {
        debug!("systemd-resolved RevertLink: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_for_full_and_split_tunnels() {
        let mut d = LinkDns {
            servers: vec!["203.0.113.53".parse().unwrap()],
            search: vec!["corp.example".into()],
            routing: vec!["corp.example".into(), "lab.example".into()],
            default_route: false,
        };
        assert_eq!(
            d.domains(),
            [
                ("corp.example".to_string(), false),
                ("lab.example".to_string(), true)
            ]
        );
        d.default_route = true;
        assert_eq!(d.domains().last(), Some(&(".".to_string(), true)));
    }
}
