//! The tunnel that outlives one IKE session: the TUN device, the addresses,
//! routes and DNS given to the OS (through the undo journal of
//! `netconfig`), or a vpnc-script doing that instead.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use tracing::{info, warn};

use super::script::run_script;

use super::{netconfig, tun, TunnelOptions};
use crate::esp::EspCounters;
use crate::event::TunnelConfig;

/// The tunnel that outlives one IKE session: TUN device, OS settings and
/// data-plane state survive a reconnect, so traffic is held, not leaked.
pub struct Tunnel {
    opts: Option<TunnelOptions>,
    pub(crate) tun: Option<tun::Tun>,
    net: Option<netconfig::NetConfig>,
    applied: Option<TunnelConfig>,
    /// Tunnel MTU once up.
    pub(crate) mtu: u32,
    /// What the driver itself counts (sends, keepalives) plus the ESP
    /// counters of sessions that ended: the totals survive a reconnect.
    pub(crate) io: EspCounters,
    pub(crate) connected_at: Option<Instant>,
    pub(crate) reconnects: u32,
    pub(crate) gateway: Option<IpAddr>,
    /// The routes in force (empty before the tunnel is up, and with a
    /// vpnc-script, which routes by itself).
    pub(crate) routes: Vec<crate::routes::Route>,
    /// A vpnc-script configures the network.
    pub(crate) scripted: bool,
    /// The session was lost and is being replaced.
    pub(crate) outage: Option<Outage>,
}

/// A reconnect under way, for `status`.
#[derive(Clone, Debug)]
pub(crate) struct Outage {
    /// When the session was lost.
    pub(crate) since: Instant,
    /// Attempts so far.
    pub(crate) attempt: u32,
    /// Why the last one failed (or the session was lost).
    pub(crate) reason: String,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tunnel({:?})", self.tun)
    }
}

impl Tunnel {
    /// A tunnel with a TUN device and OS setup (`Some`), or a control-plane-only
    /// session (`None`: `probe`).
    pub fn new(opts: Option<TunnelOptions>) -> Tunnel {
        Tunnel {
            opts,
            tun: None,
            net: None,
            applied: None,
            mtu: 0,
            io: EspCounters::default(),
            connected_at: None,
            reconnects: 0,
            gateway: None,
            routes: Vec::new(),
            scripted: false,
            outage: None,
        }
    }

    /// A tunnel whose TUN device exists from the start, so a missing
    /// privilege or a bad device name is reported before anyone logs in.
    /// A vpnc-script is run with `reason=pre-init` first.
    pub async fn open(opts: TunnelOptions) -> io::Result<Tunnel> {
        if let Some(script) = &opts.script {
            super::script::run_pre_init(script).await?;
        }
        let dev = tun::Tun::create(&opts.interface)?;
        let mut t = Tunnel::new(Some(opts));
        t.tun = Some(dev);
        Ok(t)
    }

    /// Whether it ever came up (worth reconnecting).
    pub fn was_up(&self) -> bool {
        self.connected_at.is_some()
    }

    /// The TUN device's name, when up.
    pub fn interface(&self) -> Option<&str> {
        self.tun.as_ref().map(|t| t.name())
    }

    pub(crate) async fn bring_up(
        &mut self,
        cfg: &TunnelConfig,
        suite_overhead: usize,
        gateway: IpAddr,
    ) -> io::Result<()> {
        let Some(opts) = self.opts.clone() else {
            return Ok(());
        };
        if self.applied.as_ref().is_some_and(|a| same_network(a, cfg)) {
            // A reconnect that got the same settings: nothing to change (a
            // vpnc-script hears about it, as with openconnect).
            if let (Some(script), Some(t)) = (&opts.script, &self.tun) {
                run_script(
                    script,
                    "reconnect",
                    t.name(),
                    gateway,
                    cfg,
                    self.mtu,
                    &opts.routes,
                )
                .await?;
            }
            return Ok(());
        }
        self.take_down().await;
        if self.tun.is_none() {
            self.tun = Some(tun::Tun::create(&opts.interface)?);
        }
        let name = self
            .tun
            .as_ref()
            .map(|t| t.name().to_string())
            .unwrap_or_default();
        if let Some(script) = &opts.script {
            let mtu = opts.mtu.or(cfg.cisco.mtu.map(u32::from)).unwrap_or(1400);
            self.mtu = mtu;
            run_script(script, "connect", &name, gateway, cfg, mtu, &opts.routes).await?;
            self.scripted = true;
            self.applied = Some(cfg.clone());
            return Ok(());
        }
        let mut net = netconfig::NetConfig::start(&opts.state_dir).await?;
        let under = netconfig::underlay(net.handle(), gateway).await?;
        let link_mtu = netconfig::link_mtu(net.handle(), under.oif)
            .await
            .unwrap_or(1500);
        // RFC 4459: fit the ESP packet into the path instead of fragmenting it.
        let computed =
            link_mtu.saturating_sub(suite_overhead as u32 + if gateway.is_ipv6() { 20 } else { 0 });
        let mtu = opts
            .mtu
            .unwrap_or_else(|| cfg.cisco.mtu.map_or(computed, |m| (m as u32).min(computed)))
            .max(576);
        self.mtu = mtu;
        let routes = crate::routes::plan(cfg, gateway, &under.lan, &opts.routes);
        // Gateway-supplied names are checked before they reach the resolver.
        let search = crate::dns::names(cfg.cisco.default_domain.iter().chain(&cfg.domains));
        let full_tunnel = routes
            .iter()
            .any(|r| r.via == crate::routes::Via::Tunnel && r.dst.len == 1);
        let setup = netconfig::NetSetup {
            addresses: cfg.addresses.clone(),
            mtu,
            routes,
            dns: if opts.dns {
                cfg.dns.clone()
            } else {
                Vec::new()
            },
            search,
            split_dns: crate::dns::names(&cfg.cisco.split_dns),
            full_tunnel,
            gateway: gateway.to_string(),
        };
        let index = netconfig::link_index(net.handle(), &name).await?;
        let r = net.apply(&name, index, &setup, &under).await;
        self.net = Some(net);
        r?;
        info!(
            "{name} up: {} MTU {mtu}, {} routes",
            cfg.addresses
                .iter()
                .map(|(a, l)| format!("{a}/{l}"))
                .collect::<Vec<_>>()
                .join(" "),
            setup.routes.len()
        );
        self.routes = setup.routes;
        self.applied = Some(cfg.clone());
        Ok(())
    }

    pub(crate) async fn take_down(&mut self) {
        self.routes.clear();
        if let Some(net) = self.net.take() {
            net.teardown().await;
        }
        if let (Some(opts), Some(cfg)) = (&self.opts, self.applied.take()) {
            if let Some(script) = &opts.script {
                let name = self
                    .tun
                    .as_ref()
                    .map(|t| t.name().to_string())
                    .unwrap_or_default();
                let gw = self.gateway.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                if let Err(e) = run_script(
                    script,
                    "disconnect",
                    &name,
                    gw,
                    &cfg,
                    self.mtu,
                    &opts.routes,
                )
                .await
                {
                    warn!("{e}");
                }
            }
        }
    }

    /// Puts routes, DNS and the device back (on disconnect or signal).
    pub async fn close(mut self) {
        self.take_down().await;
        self.tun = None;
    }
}

/// Whether a reconnect got the settings the OS already has.
fn same_network(a: &TunnelConfig, b: &TunnelConfig) -> bool {
    a.addresses == b.addresses
        && a.dns == b.dns
        && a.subnets == b.subnets
        && a.domains == b.domains
        && a.ts_remote == b.ts_remote
        && a.cisco.mtu == b.cisco.mtu
        && a.cisco.split_dns == b.cisco.split_dns
        && a.cisco.default_domain == b.cisco.default_domain
}
