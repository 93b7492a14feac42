//! What a person reads about a session: `acclient status` (through the
//! agent or the in-process control socket), the summary printed once
//! connected, and the probe's result line; the JSON form is the driver's
//! versioned `Status`.

use super::*;
/// The one JSON schema of `status --json`, `probe --json` and the control
/// socket: the driver's serde `Status` (with its `version`).
pub(crate) fn status_json(s: &driver::Status) -> serde_json::Value {
    serde_json::to_value(s).unwrap_or_default()
}

/// `acclient status`: asks the running `connect` over its control socket.
pub(crate) async fn status_cmd(json: bool) -> Result<i32> {
    use tokio::io::AsyncReadExt;
    let v: serde_json::Value = match agent_client::status().await {
        Some(r) => r?,
        None => {
            let path = driver::netconfig::state_dir().join("control.sock");
            let mut c = match tokio::net::UnixStream::connect(&path).await {
                Ok(c) => c,
                // A root `connect --no-agent` keeps its socket to root: say
                // so rather than "not connected" while a tunnel runs.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(anyhow!(
                        "{} belongs to a root `acclient connect`; only root can read its status (sudo acclient status)",
                        path.display()
                    ))
                }
                Err(_) => {
                    return Err(anyhow!(
                        "not connected: neither acclientd ({}) nor an `acclient connect` ({}) is running",
                        agent_client::socket_path().display(),
                        path.display()
                    ))
                }
            };
            let mut buf = String::new();
            c.read_to_string(&mut buf).await?;
            serde_json::from_str(&buf).context("bad status answer")?
        }
    };
    if json {
        println!("{v}");
        return Ok(0);
    }
    let st: driver::Status = serde_json::from_value(v).context("bad status answer")?;
    print!("{}", human_status(&st));
    Ok(0)
}

/// Seconds as `HH:MM:SS` (days as `Nd HH:MM:SS`).
pub(crate) fn hms(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

fn or_dash(v: &[String], sep: &str) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(sep)
    }
}

/// Where traffic goes and why it is in UDP, in words.
fn transport_line(s: &driver::Status) -> String {
    let how = match s.udp_encapsulation.as_str() {
        "forced" => "UDP encapsulation: forced (no NAT seen; acclient always uses UDP 4500, as AnyConnect does)".to_string(),
        "NAT" if s.behind_nat => format!(
            "UDP encapsulation: behind NAT{}",
            s.cisco
                .keepalive_s
                .map(|k| format!(" (keepalives every {k} s)"))
                .unwrap_or_default()
        ),
        "NAT" => "UDP encapsulation: the gateway is behind NAT".into(),
        _ => "IKE on UDP 500, ESP not encapsulated".into(),
    };
    format!("  remote {}  local {}\n  {how}\n", s.remote, s.local)
}

/// The tunnel's shape: full or split, with the routes in force.
fn tunnel_lines(s: &driver::Status) -> String {
    let mut out = String::new();
    let via = |what: &str| -> Vec<String> {
        s.routes
            .iter()
            .filter_map(|r| r.strip_suffix(what).map(|p| p.trim().to_string()))
            .collect()
    };
    let (tun, lan) = (via(" tunnel"), via(" underlay"));
    let dev = s.interface.as_deref().unwrap_or("the tunnel");
    match s.tunnel.as_deref() {
        Some("full") => {
            out += &format!(
                "  tunnel: full (all traffic): {} via {dev}\n",
                or_dash(&tun, ", ")
            )
        }
        Some("split") => out += &format!("  tunnel: split: {} via {dev}\n", or_dash(&tun, ", ")),
        Some("script") => out += "  tunnel: routes and DNS set by the vpnc-script\n",
        _ => {}
    }
    if !lan.is_empty() {
        out += &format!("          outside it: {}\n", lan.join(", "));
    }
    if let Some(i) = &s.interface {
        out += &format!(
            "  device: {i}, MTU {}, addresses {}\n",
            s.mtu.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            or_dash(&s.addresses, ", ")
        );
    } else if !s.addresses.is_empty() {
        out += &format!("  addresses: {}\n", s.addresses.join(", "));
    }
    let mut dns = format!("  DNS: {}", or_dash(&s.dns, ", "));
    if !s.domains.is_empty() {
        dns += &format!("; domains {}", s.domains.join(", "));
    }
    out + &dns + "\n"
}

/// `acclient status`: as informative as `swanctl --list-sas` and Cisco's
/// `vpn stats`, in words.
pub(crate) fn human_status(s: &driver::Status) -> String {
    let host = s.host.as_deref().unwrap_or(&s.gateway);
    let mut out = String::new();
    if let Some(r) = &s.reconnecting {
        out += &format!(
            "Reconnecting to {host} ({}): attempt {}, connection lost {} ago: {}\n",
            s.gateway,
            r.attempt,
            hms(r.lost_s),
            r.reason
        );
        out += &tunnel_lines(s);
        out += &format!(
            "  totals: {} packets in, {} out\n",
            s.esp.rx_packets, s.esp.tx_packets
        );
        return out;
    }
    out += &format!(
        "{} to {host}, up {}, {} reconnect{}\n",
        if s.state == "Established" {
            "Connected"
        } else {
            s.state.as_str()
        },
        s.uptime_s.map(hms).unwrap_or_else(|| "-".into()),
        s.reconnects,
        if s.reconnects == 1 { "" } else { "s" }
    );
    out += &transport_line(s);
    out += &format!(
        "  gateway: {}{}\n",
        s.remote_id.as_deref().unwrap_or("-"),
        s.remote_auth
            .as_deref()
            .map(|a| format!(" (authenticated: {a})"))
            .unwrap_or_default()
    );
    out += &format!(
        "  we: {}{}\n",
        s.local_id,
        s.user
            .as_deref()
            .map(|u| format!(", user {u}"))
            .unwrap_or_default()
    );
    out += &tunnel_lines(s);
    out += &format!(
        "IKE SA: {}, SPIs {}_i {}_r\n",
        s.ike.algorithms.as_deref().unwrap_or("-"),
        s.ike.spi_i,
        s.ike.spi_r
    );
    let life = |l: Option<u64>, r: Option<u64>, n: u64| {
        format!(
            "lifetime {}, rekey in {}, rekeys {n}",
            l.map(hms).unwrap_or_else(|| "-".into()),
            r.map(hms).unwrap_or_else(|| "-".into())
        )
    };
    out += &format!(
        "  {}\n",
        life(s.lifetimes.ike_s, s.ike.rekey_in_s, s.ike.rekeys)
    );
    out += &format!(
        "  DPD {}, last heard {} ago{}, {} gateway probe(s) answered\n",
        s.dpd
            .interval_s
            .map(|d| format!("every {d} s"))
            .unwrap_or_else(|| "off".into()),
        s.dpd.last_heard_s.map(hms).unwrap_or_else(|| "-".into()),
        if s.dpd.probe_in_flight {
            ", probing now"
        } else {
            ""
        },
        s.dpd.answered
    );
    out += &format!(
        "  messages: {} sent, {} received, {} retransmits, {} dropped\n",
        s.ike.sent, s.ike.received, s.ike.retransmits, s.ike.dropped
    );
    if let Some(id) = &s.session_id {
        out += &format!(
            "  AnyConnect session {id}{}\n",
            if s.session_resumed {
                " (resumed with its token after a reconnect)"
            } else {
                ""
            }
        );
    }
    out += &format!(
        "CHILD SA: {}, {} mode, SPIs {}_i {}_o\n",
        s.child.algorithms.as_deref().unwrap_or("-"),
        s.child.mode,
        s.child.spi_in.as_deref().unwrap_or("-"),
        s.child.spi_out.as_deref().unwrap_or("-")
    );
    out += &format!("  local  {}\n", or_dash(&s.child.ts_local, ", "));
    out += &format!("  remote {}\n", or_dash(&s.child.ts_remote, ", "));
    out += &format!(
        "  {}\n",
        life(s.lifetimes.child_s, s.child.rekey_in_s, s.child.rekeys)
    );
    let e = &s.esp;
    out += &format!(
        "  in  {} packets, {} bytes\n  out {} packets, {} bytes\n",
        e.rx_packets, e.rx_bytes, e.tx_packets, e.tx_bytes
    );
    out += &format!(
        "  dropped: {} replayed, {} failed ICV, {} unknown SPI, {} malformed, {} IPv6 blocked (no IPv6 in the tunnel), {} send errors\n",
        e.drop_replay, e.drop_integrity, e.drop_unknown_spi, e.drop_malformed, e.drop_ipv6, e.drop_tx
    );
    out += &format!("  NAT-T keepalives sent: {}\n", e.keepalives);
    out
}

/// The lines printed once connected (`connect`, in-process or through the
/// agent, and `probe`): the same facts as `status`, shorter.
pub(crate) fn summary(host: &str, s: &driver::Status) -> String {
    let mut out = format!(
        "Connected to {host} ({}) in {} ms\n",
        s.remote,
        s.connect_ms.unwrap_or(0)
    );
    out += &format!(
        "  gateway: {}{}\n",
        s.remote_id.as_deref().unwrap_or("-"),
        s.remote_auth
            .as_deref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default()
    );
    out += &format!("  address: {}\n", or_dash(&s.addresses, ", "));
    out += &format!("  DNS:     {}\n", or_dash(&s.dns, ", "));
    if !s.nbns.is_empty() {
        out += &format!("  NBNS:    {}\n", s.nbns.join(", "));
    }
    if !s.subnets.is_empty() {
        out += &format!("  subnets: {}\n", s.subnets.join(", "));
    }
    if !s.domains.is_empty() {
        out += &format!("  domains: {}\n", s.domains.join(", "));
    }
    out += &format!("  local TS:  {}\n", or_dash(&s.ts_local, ", "));
    out += &format!("  remote TS: {}\n", or_dash(&s.ts_remote, ", "));
    if let Some(t) = &s.tunnel {
        out += &format!("  tunnel:  {t}\n");
    }
    out += &format!(
        "  IKE SA:  {}, SPIs {}_i {}_r, {}\n",
        s.ike.algorithms.as_deref().unwrap_or("-"),
        s.ike.spi_i,
        s.ike.spi_r,
        match s.udp_encapsulation.as_str() {
            "forced" => "UDP 4500 (forced, no NAT)",
            "NAT" => "UDP 4500 (NAT)",
            _ => "UDP 500",
        }
    );
    out += &format!(
        "  CHILD SA: {}, SPIs {}_i {}_o, tunnel mode\n",
        s.child.algorithms.as_deref().unwrap_or("-"),
        s.child.spi_in.as_deref().unwrap_or("-"),
        s.child.spi_out.as_deref().unwrap_or("-")
    );
    out
}

/// The human-readable summary of a connection (connect and probe).
pub(crate) fn print_connected(p: &Plan, st: Option<&driver::Status>, ms: u128) {
    if crate::output::quiet() {
        return;
    }
    let mut st = st.cloned().unwrap_or_default();
    st.connect_ms = Some(ms as u64);
    print!("{}", summary(&p.label, &st));
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

pub(crate) fn print_result(p: &Plan, st: Option<&driver::Status>, ms: u128, json: bool) {
    if json {
        // The same schema as `status --json`; the connect time as measured here.
        let mut st = st.cloned().unwrap_or_default();
        st.connect_ms = Some(ms as u64);
        println!("{}", status_json(&st));
    } else {
        print_connected(p, st, ms);
        if let Some(s) = st {
            let c = &s.stats;
            println!(
                "  IKE packets: {} sent, {} received, {} retransmits, {} dropped; DPD answered {}; rekeys IKE {} CHILD {}",
                c.ike_sent, c.ike_received, c.retransmits, c.dropped, c.dpd_answered, c.ike_rekeys, c.child_rekeys
            );
        }
        println!("Disconnected (DELETE sent).");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_clock_time() {
        assert_eq!(hms(0), "00:00:00");
        assert_eq!(hms(5980), "01:39:40");
        assert_eq!(hms(90061), "1d 01:01:01");
    }

    /// Between reconnect attempts there is no IKE SA to show: the outage is
    /// what `status` says, with the tunnel that stays in place.
    #[test]
    fn a_reconnect_is_shown_as_one() {
        let s = driver::Status {
            gateway: "198.51.100.1".into(),
            host: Some("Corp VPN".into()),
            state: "SaInit".into(),
            tunnel: Some("full".into()),
            routes: vec!["0.0.0.0/1 tunnel".into(), "198.51.100.1/32 underlay".into()],
            interface: Some("acvpn0".into()),
            reconnecting: Some(driver::ReconnectStatus {
                attempt: 3,
                lost_s: 42,
                reason: "no answer from the gateway".into(),
            }),
            ..Default::default()
        };
        let h = human_status(&s);
        assert!(
            h.starts_with("Reconnecting to Corp VPN (198.51.100.1): attempt 3, connection lost 00:00:42 ago: no answer from the gateway\n"),
            "{h}"
        );
        assert!(
            h.contains("tunnel: full (all traffic): 0.0.0.0/1 via acvpn0"),
            "{h}"
        );
        assert!(!h.contains("IKE SA"), "{h}");
    }
}
