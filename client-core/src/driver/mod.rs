//! The thin tokio driver: the only code here that touches sockets, clocks,
//! the TUN device or the OS network configuration. It pumps a [`Session`]: drain `poll_transmit` into UDP, forward
//! `poll_event` to the front end, then wait for a datagram, the session's
//! deadline or a command (quinn's `ConnectionDriver`, boringtun's loop).

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

pub use crate::eap::anyconnect::xml::Resume;
use crate::esp::{EspIn, EspOut, EspSa};
use crate::event::{ChildSaInfo, Progress, TunnelConfig};
use crate::{Answer, DisconnectReason, Event, PromptId, Received, Session, State, Stats};

/// A request from the front end.
#[derive(Debug)]
pub enum Command {
    /// Answer a prompt.
    Answer(PromptId, Answer),
    /// Ask for a status snapshot.
    Status(oneshot::Sender<Status>),
    /// Disconnect cleanly.
    Close,
    /// Rekey the CHILD SA now (or the IKE SA with `true`).
    Rekey(bool),
}

pub mod netconfig;
pub mod resolved;
pub mod tun;
pub mod udp;

/// A snapshot of the session for `probe` and `status`.
#[derive(Clone, Debug)]
pub struct Status {
    /// State.
    pub state: State,
    /// IKE SPIs (initiator, responder).
    pub ike_spis: ([u8; 8], [u8; 8]),
    /// IKE algorithms.
    pub ike_suite: Option<String>,
    /// ESP algorithms.
    pub esp_suite: Option<String>,
    /// CHILD SA SPIs (in, out).
    pub child_spis: Option<(u32, u32)>,
    /// NAT-T in use (UDP 4500).
    pub nat_t: bool,
    /// NAT-D found our address translated (keepalives are sent).
    pub behind_nat: bool,
    /// Counters.
    pub stats: Stats,
    /// Our IKE and NAT-T socket addresses.
    pub local: (SocketAddr, SocketAddr),
    /// The gateway.
    pub remote: SocketAddr,
    /// AnyConnect session id (the token itself stays in the session).
    pub session_id: Option<String>,
    /// The current login resumed an earlier AnyConnect session.
    pub resumed: bool,
    /// Data-plane counters.
    pub esp: EspCounters,
    /// The tunnel device, when one is up.
    pub interface: Option<String>,
    /// Seconds until our own IKE / CHILD rekey.
    pub rekey_in: (Option<u64>, Option<u64>),
    /// DPD interval (s), seconds since the gateway was last heard, probe in flight.
    pub dpd: (Option<u64>, Option<u64>, bool),
    /// Seconds since connected.
    pub uptime: Option<u64>,
    /// Reconnections so far.
    pub reconnects: u32,
    /// Tunnel MTU.
    pub mtu: Option<u32>,
    /// Traffic selectors (ours, the gateway's).
    pub ts: (Vec<String>, Vec<String>),
    /// Assigned addresses.
    pub addresses: Vec<String>,
}

pub use crate::esp::EspCounters;

/// Our two UDP sockets: IKE (500) and NAT-T (4500).
#[derive(Debug)]
pub struct Sockets {
    ike: UdpSocket,
    nat: UdpSocket,
    remote: SocketAddr,
}

impl Sockets {
    /// Binds both sockets, connected to `gateway`'s IKE and NAT-T ports.
    /// `source` picks the local address; ports are `ike_port` and `nat_port`
    /// (0 = any, which works but makes the gateway see a NAT).
    pub async fn bind(
        gateway: SocketAddr,
        nat_port: u16,
        source: Option<IpAddr>,
        ike_port: u16,
        local_nat_port: u16,
    ) -> io::Result<Sockets> {
        let any = match gateway.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let ip = source.unwrap_or(any);
        let ike = UdpSocket::bind(SocketAddr::new(ip, ike_port)).await?;
        ike.connect(gateway).await?;
        let nat = UdpSocket::bind(SocketAddr::new(ip, local_nat_port)).await?;
        nat.connect(SocketAddr::new(gateway.ip(), nat_port)).await?;
        if !udp::enable_gro(&nat) {
            debug!("UDP GRO unavailable: one datagram per receive");
        }
        Ok(Sockets {
            ike,
            nat,
            remote: gateway,
        })
    }

    /// Local address of the IKE socket (after `connect`, the real source IP).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.ike.local_addr()
    }

    /// Asks the kernel for a large receive buffer on the ESP socket, past
    /// the global default (`SO_RCVBUFFORCE` as root, else `SO_RCVBUF`):
    /// bursts at line rate otherwise overflow it and cost retransmissions.
    pub fn grow_buffers(&self, bytes: usize) {
        use nix::sys::socket::{setsockopt, sockopt};
        let s = &self.nat;
        if setsockopt(s, sockopt::RcvBufForce, &bytes).is_err() {
            let _ = setsockopt(s, sockopt::RcvBuf, &bytes);
        }
        if setsockopt(s, sockopt::SndBufForce, &bytes).is_err() {
            let _ = setsockopt(s, sockopt::SndBuf, &bytes);
        }
    }

    fn locals(&self) -> (SocketAddr, SocketAddr) {
        let z = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        (
            self.ike.local_addr().unwrap_or(z),
            self.nat.local_addr().unwrap_or(z),
        )
    }
}

/// Options of the driver itself.
#[derive(Debug, Default, Clone)]
pub struct DriverOptions {
    /// Append Wireshark `ikev2_decryption_table` lines here (contains keys!).
    pub ike_keylog: Option<PathBuf>,
    /// After connecting, send this many ICMP echo requests through ESP to
    /// this address (a data-plane check that needs no TUN device).
    pub ping: Option<(std::net::Ipv4Addr, u16)>,
    /// After the machine slept, end the session instead of checking the
    /// gateway (the profile's AutoReconnectBehavior DisconnectOnSuspend).
    pub disconnect_on_suspend: bool,
}

/// What to do when the machine wakes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnWake {
    /// Probe the gateway now (DPD); a dead one means a reconnect.
    Probe,
    /// Close the session: the profile says DisconnectOnSuspend.
    Disconnect,
}

/// The wake-up policy: only an established tunnel is ended on suspend (a
/// login in progress just goes on, its retransmissions notice a lost path).
pub fn on_wake(opts: &DriverOptions, established: bool) -> OnWake {
    if opts.disconnect_on_suspend && established {
        OnWake::Disconnect
    } else {
        OnWake::Probe
    }
}

/// How the tunnel device and the OS are set up.
#[derive(Debug, Clone)]
pub struct TunnelOptions {
    /// TUN device name.
    pub interface: String,
    /// Route policy (split include / exclude, LocalLanAccess).
    pub routes: crate::routes::RouteOptions,
    /// Change DNS.
    pub dns: bool,
    /// Run this vpnc-script instead of configuring addresses, routes and DNS.
    pub script: Option<PathBuf>,
    /// Journal and backups.
    pub state_dir: PathBuf,
    /// MTU override.
    pub mtu: Option<u32>,
}

/// Most datagrams handled per wakeup before yielding (bounded work, boringtun's MAX_ITR).
const MAX_PER_WAKEUP: usize = 64;
/// An old inbound SA keeps working this long after a rekey (make-before-break:
/// packets the gateway sealed before it switched still arrive).
const OLD_SA_GRACE: Duration = Duration::from_secs(20);
/// Largest packet through the tunnel plus ESP overhead.
const BUF: usize = 65536;

/// An IPv4 ICMP echo request with correct checksums.
fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, seq: u16) -> Vec<u8> {
    fn sum(b: &[u8]) -> u16 {
        let mut s: u32 = b
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
            .sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
    let mut icmp = vec![8, 0, 0, 0, 0xac, 0xac];
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(b"acclient data-plane probe");
    let c = sum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = sum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

fn write_keylog(path: &PathBuf, line: &str) {
    use std::io::Write;
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = r {
        warn!("cannot write IKE key log {}: {e}", path.display());
    }
}

/// The ESP state of the data plane: the current outbound half, inbound
/// halves by SPI (the previous ones live on for [`OLD_SA_GRACE`]).
#[derive(Default)]
struct DataPlane {
    out: Option<EspOut>,
    inbound: Vec<(EspIn, Option<Instant>)>,
    counters: EspCounters,
    mtu: u32,
}

impl DataPlane {
    fn install(&mut self, info: &ChildSaInfo, now: Instant) {
        let Some(EspSa { out, inp }) = EspSa::new(info) else {
            warn!("CHILD SA with an unsupported ESP suite: no data plane");
            return;
        };
        for (_, retire) in &mut self.inbound {
            retire.get_or_insert(now + OLD_SA_GRACE);
        }
        self.inbound.retain(|(_, r)| r.is_none_or(|t| t > now));
        self.inbound.push((inp, None));
        self.out = Some(out);
    }

    fn open<'a>(
        &mut self,
        pkt: &'a mut [u8],
        now: Instant,
    ) -> Result<&'a [u8], crate::esp::DropReason> {
        let spi = crate::esp::spi_of(pkt).ok_or(crate::esp::DropReason::Malformed)?;
        let Some((sa, _)) = self
            .inbound
            .iter_mut()
            .find(|(s, r)| s.spi() == spi && r.is_none_or(|t| t > now))
        else {
            return Err(crate::esp::DropReason::UnknownSpi);
        };
        sa.decapsulate(pkt)
    }
}

/// The tunnel that outlives one IKE session: TUN device, OS settings and
/// data-plane state survive a reconnect, so traffic is held, not leaked.
pub struct Tunnel {
    opts: Option<TunnelOptions>,
    tun: Option<tun::Tun>,
    net: Option<netconfig::NetConfig>,
    applied: Option<TunnelConfig>,
    dp: DataPlane,
    connected_at: Option<Instant>,
    reconnects: u32,
    gateway: Option<IpAddr>,
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
            dp: DataPlane::default(),
            connected_at: None,
            reconnects: 0,
            gateway: None,
        }
    }

    /// A tunnel whose TUN device exists from the start, so a missing
    /// privilege or a bad device name is reported before anyone logs in.
    pub fn open(opts: TunnelOptions) -> io::Result<Tunnel> {
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

    async fn bring_up(
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
                run_script(script, "reconnect", t.name(), gateway, cfg, self.dp.mtu).await?;
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
            self.dp.mtu = mtu;
            run_script(script, "connect", &name, gateway, cfg, mtu).await?;
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
        self.dp.mtu = mtu;
        let routes = crate::routes::plan(cfg, gateway, &under.lan, &opts.routes);
        let mut search = Vec::new();
        search.extend(cfg.cisco.default_domain.iter().cloned());
        search.extend(cfg.domains.iter().cloned());
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
            split_dns: cfg.cisco.split_dns.clone(),
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
        self.applied = Some(cfg.clone());
        Ok(())
    }

    async fn take_down(&mut self) {
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
                if let Err(e) = run_script(script, "disconnect", &name, gw, &cfg, self.dp.mtu).await
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
    let mut domains = cfg.cisco.default_domain.iter().cloned().collect::<Vec<_>>();
    domains.extend(cfg.domains.iter().cloned());
    if !domains.is_empty() {
        set("CISCO_DEF_DOMAIN", domains.join(" "));
    }
    if !cfg.cisco.split_dns.is_empty() {
        set("CISCO_SPLIT_DNS", cfg.cisco.split_dns.join(","));
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

async fn run_script(
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

fn status(s: &Session, socks: &Sockets, t: &Tunnel, now: Instant) -> Status {
    let secs = |d: Option<Instant>| d.map(|d| d.saturating_duration_since(now).as_secs());
    let (ike_r, child_r) = s.rekey_deadlines();
    let (heard, probing) = s.liveness();
    Status {
        state: s.state(),
        ike_spis: s.ike_spis(),
        ike_suite: s.ike_suite(),
        esp_suite: s.esp_suite(),
        child_spis: s.child_spis(),
        nat_t: s.nat_t(),
        behind_nat: s.behind_nat(),
        stats: s.stats(),
        local: socks.locals(),
        remote: socks.remote,
        session_id: s.anyconnect_session().map(|c| c.session_id.clone()),
        resumed: s.anyconnect_resumed(),
        esp: t.dp.counters,
        interface: t.interface().map(str::to_string),
        rekey_in: (secs(ike_r), secs(child_r)),
        dpd: (
            s.dpd_interval().map(|d| d.as_secs()),
            heard.map(|h| now.saturating_duration_since(h).as_secs()),
            probing,
        ),
        uptime: t
            .connected_at
            .map(|c| now.saturating_duration_since(c).as_secs()),
        reconnects: t.reconnects,
        mtu: (t.dp.mtu > 0).then_some(t.dp.mtu),
        ts: s.tunnel_config().map_or_else(Default::default, |c| {
            (
                c.ts_local.iter().map(|t| t.to_string()).collect(),
                c.ts_remote.iter().map(|t| t.to_string()).collect(),
            )
        }),
        addresses: s.tunnel_config().map_or_else(Vec::new, |c| {
            c.addresses
                .iter()
                .map(|(a, l)| format!("{a}/{l}"))
                .collect()
        }),
    }
}

/// Builds a new session and sockets for a reconnect; given the last
/// AnyConnect session, the new login offers it to the gateway first.
pub type Reconnect = Box<
    dyn FnMut(
            Option<Resume>,
        ) -> Pin<Box<dyn Future<Output = io::Result<(Session, Sockets)>> + Send>>
        + Send,
>;

/// When to give up reconnecting, and how often to try.
#[derive(Debug, Clone, Copy)]
pub struct ReconnectPolicy {
    /// Give up after this long without a session.
    pub give_up_after: Duration,
}

fn reconnectable(r: &DisconnectReason) -> bool {
    matches!(
        r,
        DisconnectReason::DeadPeer(_) | DisconnectReason::TimedOut(_) | DisconnectReason::Local(_)
    )
}

/// Runs sessions over `tunnel` until one ends for good; with `reconnect`,
/// a lost session (DPD, timeouts) is replaced by a new login while the
/// tunnel device and routes stay in place.
pub async fn run(
    mut session: Session,
    mut socks: Sockets,
    opts: DriverOptions,
    mut tunnel: Tunnel,
    mut reconnect: Option<(Reconnect, ReconnectPolicy)>,
    events: mpsc::UnboundedSender<Event>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) -> (DisconnectReason, Tunnel) {
    // The latest AnyConnect session token: a reconnect offers it so the
    // gateway can skip the login (a one-time password cannot be replayed).
    let mut resume: Option<Resume> = None;
    loop {
        let r = run_one(
            &mut session,
            &socks,
            &opts,
            &mut tunnel,
            &events,
            &mut commands,
        )
        .await;
        let Some((make, policy)) = reconnect.as_mut() else {
            let _ = events.send(Event::Disconnected(r.clone()));
            return (r, tunnel);
        };
        if !tunnel.was_up() || !reconnectable(&r) {
            let _ = events.send(Event::Disconnected(r.clone()));
            return (r, tunnel);
        }
        if let Some(c) = session.anyconnect_session() {
            resume = Some(Resume::from(c));
        }
        // Free the ports: the new session binds the same ones.
        drop(socks);
        let lost_at = Instant::now();
        let mut attempt = 0u32;
        let mut reason = r.to_string();
        let next = loop {
            attempt += 1;
            if lost_at.elapsed() > policy.give_up_after {
                break None;
            }
            let _ = events.send(Event::Progress(Progress::Reconnecting {
                attempt,
                reason: reason.clone(),
            }));
            // 1, 2, 4, 8, 10, 10 ... seconds: quick for a blip, gentle for an outage.
            let wait = Duration::from_secs((1u64 << (attempt - 1).min(4)).min(10));
            let closed = tokio::select! {
                _ = tokio::time::sleep(wait) => false,
                c = commands.recv() => matches!(c, Some(Command::Close) | None),
            };
            if closed {
                let r = DisconnectReason::LocallyClosed;
                let _ = events.send(Event::Disconnected(r.clone()));
                return (r, tunnel);
            }
            match make(resume.clone()).await {
                Ok(pair) => break Some(pair),
                Err(e) => reason = e.to_string(),
            }
        };
        let Some((s, k)) = next else {
            let _ = events.send(Event::Disconnected(r.clone()));
            return (r, tunnel);
        };
        session = s;
        socks = k;
        tunnel.reconnects += 1;
    }
}

/// One IKE session; returns why it ended (the caller reports it).
async fn run_one(
    session: &mut Session,
    socks: &Sockets,
    opts: &DriverOptions,
    tunnel: &mut Tunnel,
    events: &mpsc::UnboundedSender<Event>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> DisconnectReason {
    let mut out = Vec::with_capacity(2048);
    let mut rbuf = vec![0u8; BUF];
    let mut nbuf = vec![0u8; BUF];
    // Room for jumbo frames; 128 packets per read at most.
    let mut rb = tun::RecvBatch::new(9000);
    let mut sb = tun::SendBatch::default();
    let mut ebuf = vec![0u8; BUF];
    let mut batch = udp::GsoBatch::default();
    let mut sleep = SleepDetector::new();
    // Set when we closed the session because the machine slept.
    let mut suspended: Option<u64> = None;
    let mut cmsg = udp::gro_cmsg_space();
    let mut logged_spis = None;
    let mut commands_open = true;
    let mut rekey_asked = false;
    let gateway = socks.remote.ip();
    tunnel.gateway = Some(gateway);
    let nat_peer = SocketAddr::new(gateway, session_nat_port(socks));
    loop {
        while let Some(t) = session.poll_transmit(&mut out) {
            let sock = if t.nat_t { &socks.nat } else { &socks.ike };
            if out.len() == 1 && out[0] == 0xff {
                tunnel.dp.counters.keepalives += 1;
            }
            if let Err(e) = sock.send(&out[..t.size]).await {
                // Unreachable networks and ICMP errors: the retransmit timer decides.
                debug!("send to {} failed: {e}", t.destination);
            }
        }
        if let Some(path) = &opts.ike_keylog {
            let spis = session.ike_spis();
            if session.ike_suite().is_some() && logged_spis != Some(spis) {
                if let Some(line) = session.keylog_line() {
                    write_keylog(path, &line);
                    logged_spis = Some(spis);
                }
            }
        }
        while let Some(ev) = session.poll_event() {
            let now = Instant::now();
            match &ev {
                Event::ChildSa(info) => {
                    tunnel.dp.install(info, now);
                    rekey_asked = false;
                }
                Event::Connected(cfg) => {
                    let overhead = session
                        .child_suite()
                        .map_or(73, |(e, i)| crate::esp::overhead(e, i));
                    if let Err(e) = tunnel.bring_up(cfg, overhead, gateway).await {
                        let r = DisconnectReason::Local(format!("tunnel setup failed: {e}"));
                        session.close(now);
                        flush(session, socks, &mut out).await;
                        tunnel.take_down().await;
                        tunnel.connected_at = None;
                        return r;
                    }
                    let again = tunnel.connected_at.is_some();
                    tunnel.connected_at.get_or_insert(now);
                    if again {
                        let _ = events.send(Event::Progress(Progress::Reconnected {
                            resumed: session.anyconnect_resumed(),
                        }));
                    }
                    if let (Some((dst, count)), Some(sa)) = (opts.ping, tunnel.dp.out.as_mut()) {
                        let src = cfg.addresses.iter().find_map(|(a, _)| match a {
                            IpAddr::V4(v) => Some(*v),
                            _ => None,
                        });
                        for seq in 1..=count {
                            let ip = echo_request(src.unwrap_or(Ipv4Addr::UNSPECIFIED), dst, seq);
                            if let Ok(n) = sa.encapsulate(&ip, &mut ebuf) {
                                if socks.nat.send(&ebuf[..n]).await.is_ok() {
                                    tunnel.dp.counters.tx_packets += 1;
                                }
                            }
                        }
                    }
                }
                Event::Disconnected(r) => {
                    if let Some(secs) = suspended {
                        return DisconnectReason::Suspended(secs);
                    }
                    return r.clone();
                }
                _ => {}
            }
            let _ = events.send(ev);
        }
        if let Some(gap) = sleep.slept() {
            let now = Instant::now();
            match on_wake(opts, tunnel.connected_at.is_some()) {
                OnWake::Disconnect => {
                    info!("the machine slept for {gap:?}: disconnecting (DisconnectOnSuspend)");
                    suspended = Some(gap.as_secs());
                    session.close(now);
                }
                OnWake::Probe => {
                    info!(
                        "the machine slept for {gap:?}: checking that the gateway is still there"
                    );
                    session.probe_now(now);
                }
            }
            continue;
        }
        let deadline = session.poll_timeout().map(tokio::time::Instant::from_std);
        let tun_ready = async {
            match (&tunnel.tun, tunnel.dp.out.is_some()) {
                (Some(t), true) => t.readable().await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            r = socks.ike.recv_from(&mut rbuf) => {
                let now = Instant::now();
                match r {
                    Ok((n, from)) => { session.handle_datagram(now, from, &rbuf[..n]); }
                    Err(e) => debug!("IKE socket: {e}"),
                }
                for _ in 0..MAX_PER_WAKEUP {
                    match socks.ike.try_recv_from(&mut rbuf) {
                        Ok((n, from)) => { session.handle_datagram(now, from, &rbuf[..n]); }
                        Err(_) => break,
                    }
                }
            }
            r = socks.nat.readable() => {
                if let Err(e) = r { debug!("NAT-T socket: {e}"); }
                let now = Instant::now();
                let mut authentic = false;
                for _ in 0..MAX_PER_WAKEUP {
                    let (n, seg, from) = match socks.nat.try_io(tokio::io::Interest::READABLE, || udp::recv_gro(&socks.nat, &mut nbuf, &mut cmsg)) {
                        Ok(x) => x,
                        Err(_) => break,
                    };
                    let from = from.unwrap_or(nat_peer);
                    // GRO may hand over several datagrams of `seg` bytes back to back.
                    let mut off = 0;
                    while off < n {
                        let end = (off + seg).min(n);
                        let d = &mut nbuf[off..end];
                        off = end;
                        if session.handle_datagram(now, from, d) != Received::Esp {
                            continue;
                        }
                        let opened = tunnel.dp.open(d, now);
                        let c = &mut tunnel.dp.counters;
                        match opened {
                            Ok(ip) => {
                                authentic = true;
                                c.rx_packets += 1;
                                c.rx_bytes += ip.len() as u64;
                                // ICMP echo reply (type 0) carrying our identifier.
                                if ip.len() >= 28 && ip[0] >> 4 == 4 && ip[9] == 1 && ip[20] == 0 && ip[24..26] == [0xac, 0xac] {
                                    c.echo_replies += 1;
                                }
                                if !ip.is_empty() {
                                    sb.push(ip);
                                }
                                if sb.is_full() {
                                    if let Some(t) = &tunnel.tun {
                                        if let Err(e) = t.send(&mut sb).await { debug!("TUN write: {e}"); }
                                    }
                                }
                            }
                            Err(e) => {
                                c.drop_in(e);
                                debug!("ESP packet dropped: {e:?}");
                            }
                        }
                    }
                }
                if let Some(t) = &tunnel.tun {
                    if let Err(e) = t.send(&mut sb).await { debug!("TUN write: {e}"); }
                }
                if authentic {
                    session.note_inbound(now);
                }
            }
            r = tun_ready => {
                if let Err(e) = r { debug!("TUN: {e}"); }
                // A few frames per wakeup; each may be a whole TCP burst.
                for _ in 0..8 {
                    let Some(t) = tunnel.tun.as_ref() else { break };
                    match t.try_recv(&mut rb) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => { debug!("TUN read: {e}"); break; }
                    }
                    for ip in rb.packets() {
                        let n = ip.len();
                        let Some(sa) = tunnel.dp.out.as_mut() else { break };
                        let len = sa.sealed_len(n);
                        if batch.reserve(len).is_none() {
                            flush_batch(&mut batch, socks, &mut tunnel.dp.counters).await;
                        }
                        let Some(sa) = tunnel.dp.out.as_mut() else { break };
                        let c = &mut tunnel.dp.counters;
                        match batch.reserve(len).map(|room| sa.encapsulate(ip, room)) {
                            Some(Ok(m)) => {
                                batch.commit(m);
                                c.tx_bytes += n as u64;
                            }
                            _ => c.drop_tx += 1,
                        }
                        if !rekey_asked && sa.rekey_due() {
                            rekey_asked = true;
                            info!("ESP sequence numbers running out: rekeying the CHILD SA");
                            session.rekey_child(Instant::now());
                        }
                    }
                }
                flush_batch(&mut batch, socks, &mut tunnel.dp.counters).await;
            }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                session.handle_timeout(Instant::now());
            }
            c = commands.recv(), if commands_open => {
                let now = Instant::now();
                match c {
                    Some(Command::Answer(id, a)) => {
                        if let Err(e) = session.answer(now, id, a) { warn!("{e}"); }
                    }
                    Some(Command::Status(tx)) => {
                        let _ = tx.send(status(session, socks, tunnel, now));
                    }
                    Some(Command::Rekey(ike)) => {
                        if ike { session.rekey_ike(now) } else { session.rekey_child(now) }
                    }
                    Some(Command::Close) => session.close(now),
                    None => { commands_open = false; session.close(now) }
                }
            }
        }
    }
}

/// Notices that the machine slept: `CLOCK_MONOTONIC` (std's `Instant`,
/// tokio's timers) stands still during suspend, `CLOCK_BOOTTIME` does not.
#[derive(Debug, Clone, Copy)]
pub struct SleepDetector {
    mono: Duration,
    boot: Duration,
}

fn clock(id: nix::time::ClockId) -> Duration {
    nix::time::clock_gettime(id).map_or(Duration::ZERO, Duration::from)
}

impl SleepDetector {
    /// Starts watching.
    pub fn new() -> Self {
        SleepDetector {
            mono: clock(nix::time::ClockId::CLOCK_MONOTONIC),
            boot: clock(nix::time::ClockId::CLOCK_BOOTTIME),
        }
    }

    /// How long the machine slept since the last call, if noticeably.
    pub fn slept(&mut self) -> Option<Duration> {
        let mono = clock(nix::time::ClockId::CLOCK_MONOTONIC);
        let boot = clock(nix::time::ClockId::CLOCK_BOOTTIME);
        self.check(mono, boot)
    }

    fn check(&mut self, mono: Duration, boot: Duration) -> Option<Duration> {
        let gap = boot
            .saturating_sub(self.boot)
            .saturating_sub(mono.saturating_sub(self.mono));
        self.mono = mono;
        self.boot = boot;
        (gap > Duration::from_secs(2)).then_some(gap)
    }
}

impl Default for SleepDetector {
    fn default() -> Self {
        Self::new()
    }
}

/// Sends the queued ESP packets, waiting for socket space rather than dropping.
async fn flush_batch(batch: &mut udp::GsoBatch, socks: &Sockets, c: &mut EspCounters) {
    while !batch.is_empty() {
        match socks
            .nat
            .try_io(tokio::io::Interest::WRITABLE, || batch.flush(&socks.nat))
        {
            Ok(k) => c.tx_packets += k as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if socks.nat.writable().await.is_err() {
                    break;
                }
            }
            Err(e) => {
                debug!("ESP send failed: {e}");
                c.drop_tx += 1;
                break;
            }
        }
    }
}

fn session_nat_port(socks: &Sockets) -> u16 {
    socks.nat.peer_addr().map(|a| a.port()).unwrap_or(4500)
}

async fn flush(session: &mut Session, socks: &Sockets, out: &mut Vec<u8>) {
    while let Some(t) = session.poll_transmit(out) {
        let sock = if t.nat_t { &socks.nat } else { &socks.ike };
        let _ = sock.send(&out[..t.size]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_policy() {
        let mut o = DriverOptions::default();
        assert_eq!(on_wake(&o, true), OnWake::Probe, "ReconnectAfterResume");
        o.disconnect_on_suspend = true;
        assert_eq!(on_wake(&o, true), OnWake::Disconnect);
        assert_eq!(
            on_wake(&o, false),
            OnWake::Probe,
            "a login in progress is not ended"
        );
        let r = DisconnectReason::Suspended(3600);
        assert!(!reconnectable(&r), "DisconnectOnSuspend means no reconnect");
        assert_eq!(r.exit_code(), 7);
        assert!(r.to_string().contains("3600 s"), "{r}");
    }

    #[test]
    fn sleep_is_boottime_running_ahead_of_monotonic() {
        let s = |m: u64, b: u64| (Duration::from_secs(m), Duration::from_secs(b));
        let mut d = SleepDetector {
            mono: Duration::from_secs(100),
            boot: Duration::from_secs(150),
        };
        let (m, b) = s(110, 160);
        assert_eq!(d.check(m, b), None, "awake: both advanced 10 s");
        let (m, b) = s(111, 761);
        assert_eq!(
            d.check(m, b),
            Some(Duration::from_secs(600)),
            "slept 10 min"
        );
        let (m, b) = s(112, 762);
        assert_eq!(d.check(m, b), None);
    }
}
