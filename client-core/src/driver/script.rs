//! vpnc-script support: the environment openconnect and vpnc give a
//! script (`reason`, `TUNDEV`, `INTERNAL_IP4_*`, `CISCO_SPLIT_INC_*`, …),
//! and running it for connect / disconnect / reconnect.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use tracing::debug;

use crate::event::TunnelConfig;

/// The environment of a vpnc-script (the variables openconnect and vpnc set).
pub fn script_env(
    reason: &str,
    dev: &str,
    gateway: IpAddr,
    cfg: &TunnelConfig,
    mtu: u32,
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
                set("INTERNAL_IP4_ADDRESS", v.to_string());
                set("INTERNAL_IP4_NETMASK", mask(*l).to_string());
                set("INTERNAL_IP4_NETMASKLEN", l.to_string());
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
    let (mut n4, mut n6) = (0, 0);
    for (a, l) in &cfg.subnets {
        if a.is_ipv4() && *l > 0 {
            set(&format!("CISCO_SPLIT_INC_{n4}_ADDR"), a.to_string());
            set(&format!("CISCO_SPLIT_INC_{n4}_MASK"), mask(*l).to_string());
            set(&format!("CISCO_SPLIT_INC_{n4}_MASKLEN"), l.to_string());
            set(&format!("CISCO_SPLIT_INC_{n4}_PROTOCOL"), "0".into());
            set(&format!("CISCO_SPLIT_INC_{n4}_SPORT"), "0".into());
            set(&format!("CISCO_SPLIT_INC_{n4}_DPORT"), "0".into());
            n4 += 1;
        } else if a.is_ipv6() && *l > 0 {
            set(&format!("CISCO_IPV6_SPLIT_INC_{n6}_ADDR"), a.to_string());
            set(&format!("CISCO_IPV6_SPLIT_INC_{n6}_MASKLEN"), l.to_string());
            n6 += 1;
        }
    }
    if n4 > 0 {
        set("CISCO_SPLIT_INC", n4.to_string());
    }
    if n6 > 0 {
        set("CISCO_IPV6_SPLIT_INC", n6.to_string());
    }
    e
}

pub(crate) async fn run_script(
    path: &PathBuf,
    reason: &str,
    dev: &str,
    gw: IpAddr,
    cfg: &TunnelConfig,
    mtu: u32,
) -> io::Result<()> {
    let env = script_env(reason, dev, gw, cfg, mtu);
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
