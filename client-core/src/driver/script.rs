//! vpnc-script support: the environment openconnect and vpnc give a
//! script (`reason`, `TUNDEV`, `INTERNAL_IP4_*`, `CISCO_SPLIT_INC_*`, …),
//! and running it for pre-init / connect / disconnect / reconnect.
//!
//! The split lists come from the same route plan acclient follows itself
//! (`routes::plan`): the pushed subnets, else a narrowed TSr, plus
//! `--split-include`; `--split-exclude` as `CISCO_SPLIT_EXC`. A full tunnel
//! sends no `CISCO_SPLIT_INC`, so the script routes everything, as with
//! openconnect. Without an IPv6 address the blocking halves (`::/1`,
//! `8000::/1`) go out as `CISCO_IPV6_SPLIT_INC`, so the script too keeps
//! IPv6 from leaking around a full tunnel.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use tracing::debug;

use crate::event::TunnelConfig;
use crate::routes::{Prefix, RouteOptions, Via};

/// The environment of a vpnc-script (the variables openconnect and vpnc set).
pub fn script_env(
    reason: &str,
    dev: &str,
    gateway: IpAddr,
    cfg: &TunnelConfig,
    mtu: u32,
    opts: &RouteOptions,
) -> Vec<(String, String)> {
    let mut e: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| e.push((k.to_string(), v));
    set("reason", reason.into());
    set("VPNGATEWAY", gateway.to_string());
    set("TUNDEV", dev.into());
    set("VPNPID", std::process::id().to_string());
    set("INTERNAL_IP4_MTU", mtu.to_string());
    let mask = |l: u8| Ipv4Addr::from(if l == 0 { 0 } else { u32::MAX << (32 - l) });
    for (a, l) in &cfg.addresses {
        match a {
            IpAddr::V4(v) => {
                let l = (*l).min(32);
                set("INTERNAL_IP4_ADDRESS", v.to_string());
                set("INTERNAL_IP4_NETMASK", mask(l).to_string());
                set("INTERNAL_IP4_NETMASKLEN", l.to_string());
                // The script routes NETADDR/NETMASKLEN to the device.
                set(
                    "INTERNAL_IP4_NETADDR",
                    Ipv4Addr::from(u32::from(*v) & u32::from(mask(l))).to_string(),
                );
            }
            IpAddr::V6(v) => {
                set("INTERNAL_IP6_ADDRESS", v.to_string());
                set("INTERNAL_IP6_NETMASK", format!("{v}/{l}"));
            }
        }
    }
    let v4 = |v: &[IpAddr], six: bool| {
        v.iter()
            .filter(|a| a.is_ipv6() == six)
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let d4 = v4(&cfg.dns, false);
    if !d4.is_empty() {
        set("INTERNAL_IP4_DNS", d4);
    }
    let d6 = v4(&cfg.dns, true);
    if !d6.is_empty() {
        set("INTERNAL_IP6_DNS", d6);
    }
    let n4 = v4(&cfg.nbns, false);
    if !n4.is_empty() {
        set("INTERNAL_IP4_NBNS", n4);
    }
    let domains = crate::dns::names(cfg.cisco.default_domain.iter().chain(&cfg.domains));
    if !domains.is_empty() {
        set("CISCO_DEF_DOMAIN", domains.join(" "));
    }
    let split = crate::dns::names(&cfg.cisco.split_dns);
    if !split.is_empty() {
        set("CISCO_SPLIT_DNS", split.join(","));
    }
    if let Some(b) = &cfg.cisco.banner {
        set("CISCO_BANNER", b.clone());
    }
    if let Some(t) = cfg.cisco.idle_timeout {
        set("IDLE_TIMEOUT", t.to_string());
    }
    // The script keeps the LAN and routes the gateway itself.
    let opts = RouteOptions {
        local_lan: true,
        ..opts.clone()
    };
    let routes = crate::routes::plan(cfg, gateway, &[], &opts);
    let has_v6 = cfg.addresses.iter().any(|(a, _)| a.is_ipv6());
    let full = |v6: bool| {
        routes
            .iter()
            .any(|r| r.via == Via::Tunnel && r.dst.len == 1 && r.dst.addr.is_ipv6() == v6)
    };
    let pick = |via: Via, v6: bool| -> Vec<Prefix> {
        routes
            .iter()
            .filter(|r| r.via == via && r.dst.addr.is_ipv6() == v6)
            .filter(|r| r.dst != Prefix::host(gateway))
            .map(|r| r.dst)
            .collect()
    };
    let mut list = |name: &str, v6: bool, prefixes: &[Prefix]| {
        if prefixes.is_empty() {
            return;
        }
        for (i, p) in prefixes.iter().enumerate() {
            set(&format!("{name}_{i}_ADDR"), p.addr.to_string());
            if !v6 {
                set(&format!("{name}_{i}_MASK"), mask(p.len).to_string());
            }
            set(&format!("{name}_{i}_MASKLEN"), p.len.to_string());
            if !v6 {
                set(&format!("{name}_{i}_PROTOCOL"), "0".into());
                set(&format!("{name}_{i}_SPORT"), "0".into());
                set(&format!("{name}_{i}_DPORT"), "0".into());
            }
        }
        set(name, prefixes.len().to_string());
    };
    if !full(false) {
        list("CISCO_SPLIT_INC", false, &pick(Via::Tunnel, false));
    }
    // IPv6: a split list, or the blocking halves when the tunnel has no
    // IPv6 (the script would otherwise leave IPv6 on the LAN's routes).
    if !full(true) || !has_v6 {
        list("CISCO_IPV6_SPLIT_INC", true, &pick(Via::Tunnel, true));
    }
    list("CISCO_SPLIT_EXC", false, &pick(Via::Underlay, false));
    list("CISCO_IPV6_SPLIT_EXC", true, &pick(Via::Underlay, true));
    e
}

/// `reason=pre-init`, before the tunnel device is made (the script may
/// load the tun module), as openconnect runs it.
pub(crate) async fn run_pre_init(path: &PathBuf) -> io::Result<()> {
    let st = tokio::process::Command::new(path)
        .env("reason", "pre-init")
        .env("VPNPID", std::process::id().to_string())
        .status()
        .await
        .map_err(|e| io::Error::other(format!("cannot run {} pre-init: {e}", path.display())))?;
    if !st.success() {
        return Err(io::Error::other(format!(
            "{} pre-init failed: {st}",
            path.display()
        )));
    }
    Ok(())
}

pub(crate) async fn run_script(
    path: &PathBuf,
    reason: &str,
    dev: &str,
    gw: IpAddr,
    cfg: &TunnelConfig,
    mtu: u32,
    opts: &RouteOptions,
) -> io::Result<()> {
    let env = script_env(reason, dev, gw, cfg, mtu, opts);
    let st = tokio::process::Command::new(path)
        .envs(env)
        .status()
        .await
        .map_err(|e| io::Error::other(format!("cannot run {} {reason}: {e}", path.display())))?;
    if !st.success() {
        return Err(io::Error::other(format!(
            "{} {reason} failed: {st}",
            path.display()
        )));
    }
    debug!("vpnc-script {reason} done");
    Ok(())
}
