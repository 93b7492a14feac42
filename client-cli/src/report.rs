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
    let g = |p: &str| -> String {
        match v.pointer(p) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => "-".into(),
            Some(x) => x.to_string(),
        }
    };
    // The layout of IOS `show crypto ikev2 sa detail` and `show crypto ipsec sa`.
    println!(
        "IKEv2 SA: Status {}, {} reconnect(s), up {} s",
        g("/state"),
        g("/reconnects"),
        g("/uptime_s")
    );
    println!(
        "  Local {}  Remote {}  NAT-T {}{}",
        g("/local"),
        g("/remote"),
        g("/nat_t"),
        if v.pointer("/behind_nat") == Some(&serde_json::Value::Bool(true)) {
            " (we are behind NAT)"
        } else {
            ""
        }
    );
    println!("      Encryption/PRF/DH: {}", g("/ike/algorithms"));
    println!(
        "      Local spi: {}  Remote spi: {}",
        g("/ike/spi_i"),
        g("/ike/spi_r")
    );
    println!(
        "      Rekey in: {} sec, rekeys done: {}",
        g("/ike/rekey_in_s"),
        g("/ike/rekeys")
    );
    println!("      DPD configured for {} seconds, last heard {} s ago, probe in flight: {}, answered {}",
        g("/dpd/interval_s"), g("/dpd/last_heard_s"), g("/dpd/probe_in_flight"), g("/dpd/answered"));
    if v.pointer("/session_id").is_some_and(|x| !x.is_null()) {
        println!(
            "      AnyConnect session: {}{}",
            g("/session_id"),
            if v.pointer("/session_resumed") == Some(&serde_json::Value::Bool(true)) {
                " (resumed with its token after a reconnect)"
            } else {
                ""
            }
        );
    }
    println!(
        "      IKE messages: {} sent, {} received, {} retransmits, {} dropped",
        g("/ike/sent"),
        g("/ike/received"),
        g("/ike/retransmits"),
        g("/ike/dropped")
    );
    println!();
    println!(
        "interface: {}  addresses: {}  MTU {}",
        g("/interface"),
        v.pointer("/addresses")
            .and_then(|a| a.as_array())
            .map(|a| a
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(" "))
            .unwrap_or_default(),
        g("/mtu")
    );
    println!(
        "   local  ident: {}",
        v.pointer("/child/ts_local")
            .map(|x| x.to_string())
            .unwrap_or_default()
    );
    println!(
        "   remote ident: {}",
        v.pointer("/child/ts_remote")
            .map(|x| x.to_string())
            .unwrap_or_default()
    );
    println!(
        "    #pkts encaps: {}, #bytes: {}, #send errors: {}",
        g("/esp/tx_packets"),
        g("/esp/tx_bytes"),
        g("/esp/drop_tx")
    );
    println!(
        "    #pkts decaps: {}, #bytes: {}",
        g("/esp/rx_packets"),
        g("/esp/rx_bytes")
    );
    println!("    #pkts replay failed: {}, #pkts auth failed (ICV): {}, #pkts invalid spi: {}, #pkts malformed: {}",
        g("/esp/drop_replay"), g("/esp/drop_integrity"), g("/esp/drop_unknown_spi"), g("/esp/drop_malformed"));
    println!(
        "    #pkts IPv6 blocked (no IPv6 in the tunnel): {}",
        g("/esp/drop_ipv6")
    );
    println!("    #NAT-T keepalives sent: {}", g("/esp/keepalives"));
    println!("     inbound esp sas:");
    println!(
        "      spi: 0x{}  transform: {}",
        g("/child/spi_in"),
        g("/child/algorithms")
    );
    println!(
        "        sa timing: rekey in (sec): {}",
        g("/child/rekey_in_s")
    );
    println!("     outbound esp sas:");
    println!(
        "      spi: 0x{}  transform: {}",
        g("/child/spi_out"),
        g("/child/algorithms")
    );
    Ok(0)
}

/// The human-readable summary of a connection (connect and probe).
pub(crate) fn print_connected(
    p: &Plan,
    cfg: &acclient_core::TunnelConfig,
    st: Option<&driver::Status>,
    ms: u128,
) {
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let nets = |v: &[(std::net::IpAddr, u8)]| {
        v.iter()
            .map(|(a, l)| format!("{a}/{l}"))
            .collect::<Vec<_>>()
    };
    println!("Connected to {} ({}) in {ms} ms", p.label, p.gateway);
    println!("  address:     {}", list(nets(&cfg.addresses)));
    println!(
        "  DNS:         {}",
        list(cfg.dns.iter().map(|d| d.to_string()).collect())
    );
    if !cfg.nbns.is_empty() {
        println!(
            "  NBNS:        {}",
            list(cfg.nbns.iter().map(|d| d.to_string()).collect())
        );
    }
    if !cfg.subnets.is_empty() {
        println!("  subnets:     {}", list(nets(&cfg.subnets)));
    }
    if !cfg.domains.is_empty() {
        println!("  domains:     {}", cfg.domains.join(", "));
    }
    // The banner was shown (and accepted) when it arrived: not again here.
    println!(
        "  local TS:    {}",
        list(cfg.ts_local.iter().map(|t| t.to_string()).collect())
    );
    println!(
        "  remote TS:   {}",
        list(cfg.ts_remote.iter().map(|t| t.to_string()).collect())
    );
    if let Some(s) = st {
        println!(
            "  IKE SA:      {}, SPIs {}_i {}_r{}",
            s.ike.algorithms.clone().unwrap_or_default(),
            s.ike.spi_i,
            s.ike.spi_r,
            if s.nat_t { ", NAT-T (UDP 4500)" } else { "" }
        );
        println!(
            "  CHILD SA:    {}, SPIs {}_i {}_o, tunnel mode",
            s.child.algorithms.clone().unwrap_or_default(),
            s.child.spi_in.as_deref().unwrap_or("00000000"),
            s.child.spi_out.as_deref().unwrap_or("00000000"),
        );
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

pub(crate) fn print_result(
    p: &Plan,
    cfg: &acclient_core::TunnelConfig,
    st: Option<&driver::Status>,
    ms: u128,
    json: bool,
) {
    if json {
        // The same schema as `status --json`; the connect time as measured here.
        let mut st = st.cloned().unwrap_or_default();
        st.connect_ms = Some(ms as u64);
        println!("{}", status_json(&st));
    } else {
        print_connected(p, cfg, st, ms);
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
