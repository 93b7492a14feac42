//! Filling in the status snapshot ([`crate::status::Status`], the one
//! schema every front end reads) from a running session and its sockets.

use std::time::Instant;

pub use crate::status::*;

use super::sockets::Sockets;
use super::tunnel::Tunnel;
use crate::crypto::hex;
use crate::Session;

fn prefixes(v: &[(std::net::IpAddr, u8)]) -> Vec<String> {
    v.iter().map(|(a, l)| format!("{a}/{l}")).collect()
}

fn strings<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A traffic selector as prefixes, as `swanctl --list-sas` prints them.
fn ts_prefixes(ts: &[crate::wire::TrafficSelector]) -> Vec<String> {
    let mut out = Vec::new();
    for t in ts {
        let Some((a, b)) = t.addrs() else {
            out.push(t.to_string());
            continue;
        };
        let mut tail = String::new();
        if t.protocol != 0 {
            tail += &format!(" proto {}", t.protocol);
        }
        if (t.start_port, t.end_port) != (0, 65535) {
            tail += &format!(" ports {}-{}", t.start_port, t.end_port);
        }
        for p in crate::routes::range_prefixes(a, b) {
            out.push(format!("{p}{tail}"));
        }
    }
    out
}

/// The snapshot of `s` on `socks` (none between reconnect attempts) and
/// `t` at `now`.
pub(crate) fn snapshot(
    s: &Session,
    socks: Option<&Sockets>,
    t: &Tunnel,
    host: Option<&str>,
    connect_ms: Option<u64>,
    now: Instant,
) -> Status {
    let secs = |d: Option<Instant>| d.map(|d| d.saturating_duration_since(now).as_secs());
    let (ike_r, child_r) = s.rekey_deadlines();
    let (heard, probing) = s.liveness();
    let stats = s.stats();
    let cfg = s.tunnel_config();
    let (spi_i, spi_r) = s.ike_spis();
    let (ike_life, child_life) = s.lifetimes();
    let ts = |f: fn(&crate::TunnelConfig) -> &Vec<crate::wire::TrafficSelector>| {
        cfg.map_or_else(Vec::new, |c| ts_prefixes(f(c)))
    };
    let (gateway, remote, local) = match socks {
        Some(k) => {
            let remote = if s.nat_t() { k.nat_peer() } else { k.remote };
            let local = if s.nat_t() {
                k.locals().1
            } else {
                k.locals().0
            };
            (k.remote.to_string(), remote.to_string(), local.to_string())
        }
        None => {
            let g = t.gateway.map(|g| g.to_string()).unwrap_or_default();
            (g.clone(), g, String::new())
        }
    };
    let nat = s.behind_nat() || s.gateway_behind_nat();
    let tunnel = if t.scripted {
        Some("script".to_string())
    } else if t.routes.is_empty() {
        None
    } else if t
        .routes
        .iter()
        .any(|r| r.via == crate::routes::Via::Tunnel && r.dst.len == 1)
    {
        Some("full".into())
    } else {
        Some("split".into())
    };
    let (remote_id, remote_auth) = match s.peer_identity() {
        Some((i, a)) => (Some(i.to_string()), Some(a.to_string())),
        None => (None, None),
    };
    Status {
        version: STATUS_VERSION,
        state: format!("{:?}", s.state()),
        host: host.map(str::to_string),
        gateway,
        remote,
        local,
        connect_ms,
        uptime_s: t
            .connected_at
            .map(|c| now.saturating_duration_since(c).as_secs()),
        reconnects: t.reconnects,
        interface: t.interface().map(str::to_string),
        mtu: (t.mtu > 0).then_some(t.mtu),
        addresses: cfg.map_or_else(Vec::new, |c| prefixes(&c.addresses)),
        dns: cfg.map_or_else(Vec::new, |c| strings(&c.dns)),
        nbns: cfg.map_or_else(Vec::new, |c| strings(&c.nbns)),
        subnets: cfg.map_or_else(Vec::new, |c| prefixes(&c.subnets)),
        domains: cfg.map_or_else(Vec::new, |c| c.domains.clone()),
        ts_local: ts(|c| &c.ts_local),
        ts_remote: ts(|c| &c.ts_remote),
        nat_t: s.nat_t(),
        behind_nat: s.behind_nat(),
        gateway_behind_nat: s.gateway_behind_nat(),
        udp_encapsulation: match (s.nat_t(), nat) {
            (true, true) => "NAT",
            (true, false) => "forced",
            (false, _) => "none",
        }
        .into(),
        local_id: s.local_identity(),
        user: s.username().map(str::to_string),
        remote_id,
        remote_auth,
        tunnel,
        routes: t
            .routes
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r.dst,
                    match r.via {
                        crate::routes::Via::Tunnel => "tunnel",
                        crate::routes::Via::Underlay => "underlay",
                    }
                )
            })
            .collect(),
        reconnecting: t.outage.as_ref().map(|o| ReconnectStatus {
            attempt: o.attempt,
            lost_s: now.saturating_duration_since(o.since).as_secs(),
            reason: o.reason.clone(),
        }),
        ike: IkeStatus {
            spi_i: hex(&spi_i),
            spi_r: hex(&spi_r),
            algorithms: s.ike_suite(),
            nat_t: s.nat_t(),
            rekey_in_s: secs(ike_r),
            sent: stats.ike_sent,
            received: stats.ike_received,
            retransmits: stats.retransmits,
            dropped: stats.dropped,
            rekeys: stats.ike_rekeys,
        },
        child: ChildStatus {
            spi_in: s.child_spis().map(|c| format!("{:08x}", c.0)),
            spi_out: s.child_spis().map(|c| format!("{:08x}", c.1)),
            algorithms: s.esp_suite(),
            mode: "tunnel".into(),
            rekey_in_s: secs(child_r),
            rekeys: stats.child_rekeys,
            ts_local: ts(|c| &c.ts_local),
            ts_remote: ts(|c| &c.ts_remote),
        },
        esp: t.io.add(&s.esp_counters()).into(),
        stats,
        dpd: DpdStatus {
            interval_s: s.dpd_interval().map(|d| d.as_secs()),
            last_heard_s: heard.map(|h| now.saturating_duration_since(h).as_secs()),
            probe_in_flight: probing,
            answered: stats.dpd_answered,
        },
        lifetimes: Lifetimes {
            ike_s: ike_life.map(|d| d.as_secs()),
            child_s: child_life.map(|d| d.as_secs()),
            rekey_at: "80-90 % of the lifetime; gateway-initiated rekeys are answered".into(),
        },
        cisco: cfg.map_or_else(CiscoStatus::default, |c| CiscoStatus {
            mtu: c.cisco.mtu,
            dpd_s: c.cisco.dpd_interval,
            keepalive_s: c.cisco.keepalive_interval,
            idle_timeout_s: c.cisco.idle_timeout,
            session_timeout_s: c.cisco.session_timeout,
            gateway_version: c.cisco.gateway_version.clone(),
            save_password: c.cisco.save_password,
        }),
        banner: cfg.and_then(|c| c.cisco.banner.clone()),
        session_id: s.anyconnect_session().map(|c| c.session_id.clone()),
        session_resumed: s.anyconnect_resumed(),
        unknown_attributes: cfg.map_or_else(Vec::new, |c| {
            c.unknown
                .iter()
                .map(|(t, v)| UnknownAttribute {
                    ty: *t,
                    length: v.len(),
                })
                .collect()
        }),
    }
}
