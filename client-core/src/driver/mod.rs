//! The thin tokio driver: the only code here that touches sockets, clocks,
//! the TUN device or the OS network configuration. It pumps a [`Session`]
//! (quinn's `ConnectionDriver`, boringtun's loop): drain `poll_transmit`
//! into UDP, forward `poll_event` to the front end, then wait for a
//! datagram, a TUN packet, the session's deadline or a command — each
//! handled by one `drive_*` step, with bounded work per wakeup.

// The one place of the crate that owns sockets, tokio and the clock
// (client-core/clippy.toml refuses them everywhere else).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

pub use crate::eap::anyconnect::xml::Resume;
pub use crate::esp::EspCounters;
use crate::event::Progress;
use crate::{Answer, DisconnectReason, Event, PromptId, Received, Session};

pub mod netconfig;
mod probe;
pub mod resolved;
mod script;
mod sleep;
mod sockets;
mod start;
mod status;
pub mod tun;
mod tunnel;
pub mod udp;

pub use script::script_env;
pub use sleep::SleepDetector;
pub use sockets::Sockets;
pub use start::{new_session, reconnector, Endpoint};
pub use status::{
    ChildStatus, CiscoStatus, DpdStatus, EspStatus, IkeStatus, Lifetimes, ReconnectStatus, Status,
    UnknownAttribute, STATUS_VERSION,
};
pub use tunnel::Tunnel;

/// Binds the Unix socket `dir/name` with its final owner group `gid` and
/// `mode` from the start: bound inside a fresh 0700 directory, given its
/// group and mode there, then renamed into place — there is no moment when
/// anyone else could connect (a bind-then-chmod leaves one).
pub fn bind_unix(
    dir: &std::path::Path,
    name: &str,
    mode: u32,
    gid: Option<u32>,
) -> io::Result<(tokio::net::UnixListener, PathBuf)> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let final_path = dir.join(name);
    let private = dir.join(format!(".{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let tmp = private.join(name);
    let r = (|| {
        let l = tokio::net::UnixListener::bind(&tmp)?;
        if let Some(g) = gid {
            nix::unistd::chown(&tmp, None, Some(nix::unistd::Gid::from_raw(g)))
                .map_err(io::Error::from)?;
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, &final_path)?;
        Ok((l, final_path))
    })();
    let _ = std::fs::remove_dir_all(&private);
    r
}

pub use crate::stdio::QuietStderr;

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
    /// Close this session cleanly and log in again (SIGUSR2), keeping the
    /// tunnel device and routes in place.
    Reconnect,
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
    /// The host name to report in [`Status::host`] (the profile entry).
    pub host: Option<String>,
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
/// TUN reads per wakeup; each may be a whole TCP burst (TSO).
const TUN_READS_PER_WAKEUP: usize = 8;
/// Largest packet through the tunnel plus ESP overhead.
const BUF: usize = 65536;

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
        DisconnectReason::DeadPeer(_)
            | DisconnectReason::TimedOut(_)
            | DisconnectReason::Local(_)
            | DisconnectReason::Unreachable(_)
            | DisconnectReason::ReconnectRequested
    )
}

/// What a reconnect attempt cannot cure by trying again: our credentials
/// or the gateway's identity refused, or we (or the suspend policy) closed.
fn permanent(r: &DisconnectReason) -> bool {
    matches!(
        r,
        DisconnectReason::LocallyClosed
            | DisconnectReason::AuthFailed(_)
            | DisconnectReason::EapMethodRefused(_)
            | DisconnectReason::CertificateRefused { .. }
            | DisconnectReason::GatewayAuthFailed(_)
            | DisconnectReason::Suspended(_)
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
    let started = Instant::now();
    // One outage spans every attempt until a session is up again: its start
    // bounds the retries (give_up_after) and its count paces them, even when
    // each attempt fails at once (ICMP unreachable, a protocol error).
    let mut outage: Option<(Instant, u32)> = None;
    loop {
        let ups = (tunnel.was_up(), tunnel.reconnects);
        let r = Driver::new(
            &mut session,
            &socks,
            &opts,
            &mut tunnel,
            &events,
            &mut commands,
            started,
        )
        .run()
        .await;
        // ESP totals survive the session (status after a reconnect).
        tunnel.io = tunnel.io.add(&session.esp_counters());
        let Some((make, policy)) = reconnect.as_mut() else {
            let _ = events.send(Event::Disconnected(r.clone()));
            return (r, tunnel);
        };
        let came_up = (tunnel.was_up(), tunnel.reconnects) != ups;
        // Mid-outage (this attempt never came up) a refusal may be the
        // gateway still coming back: only what retrying cannot fix ends it.
        let retry = reconnectable(&r) || (outage.is_some() && !came_up && !permanent(&r));
        if !tunnel.was_up() || !retry {
            let _ = events.send(Event::Disconnected(r.clone()));
            return (r, tunnel);
        }
        if let Some(c) = session.anyconnect_session() {
            resume = Some(Resume::from(c));
        }
        // Free the ports: the new session binds the same ones.
        drop(socks);
        if came_up {
            outage = None; // this session came up: a new outage starts
        }
        let (lost_at, attempt) = outage.get_or_insert((Instant::now(), 0));
        let lost_at = *lost_at;
        let mut reason = r.to_string();
        let next = loop {
            *attempt += 1;
            let attempt = *attempt;
            if lost_at.elapsed() > policy.give_up_after {
                break None;
            }
            let _ = events.send(Event::Progress(Progress::Reconnecting {
                attempt,
                reason: reason.clone(),
            }));
            tunnel.outage = Some(tunnel::Outage {
                since: lost_at,
                attempt,
                reason: reason.clone(),
            });
            // 1, 2, 4, 8, 10, 10 ... seconds: quick for a blip, gentle for an outage.
            let wait =
                tokio::time::sleep(Duration::from_secs((1u64 << (attempt - 1).min(4)).min(10)));
            tokio::pin!(wait);
            // `status` is answered between attempts too (with the session
            // that was lost and the outage); only Close ends the wait.
            let closed = loop {
                tokio::select! {
                    _ = &mut wait => break false,
                    c = commands.recv() => match c {
                        Some(Command::Status(tx)) => {
                            let _ = tx.send(status::snapshot(
                                &session,
                                None,
                                &tunnel,
                                opts.host.as_deref(),
                                None,
                                Instant::now(),
                            ));
                        }
                        Some(Command::Close) | None => break true,
                        Some(_) => {}
                    },
                }
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
    }
}

/// What woke the run loop.
enum Wake {
    Ike(io::Result<(usize, SocketAddr)>),
    Nat(io::Result<()>),
    Tun(io::Result<()>),
    Deadline,
    Command(Option<Command>),
}

/// One IKE session over its sockets and the tunnel.
struct Driver<'a> {
    session: &'a mut Session,
    socks: &'a Sockets,
    opts: &'a DriverOptions,
    tunnel: &'a mut Tunnel,
    events: &'a mpsc::UnboundedSender<Event>,
    commands: &'a mut mpsc::UnboundedReceiver<Command>,
    started: Instant,
    connect_ms: Option<u64>,
    out: Vec<u8>,
    rbuf: Vec<u8>,
    nbuf: Vec<u8>,
    ebuf: Vec<u8>,
    /// Room for jumbo frames; 128 packets per read at most.
    rb: tun::RecvBatch,
    sb: tun::SendBatch,
    batch: udp::GsoBatch,
    cmsg: Vec<u8>,
    sleep: SleepDetector,
    /// Set when we closed the session because the machine slept.
    suspended: Option<u64>,
    /// Set when we closed it because the user asked for a reconnect.
    reconnect_asked: bool,
    /// Set when we closed it because the gateway's host refused us (ICMP).
    refused: Option<String>,
    logged_spis: Option<([u8; 8], [u8; 8])>,
    commands_open: bool,
    nat_peer: SocketAddr,
}

impl<'a> Driver<'a> {
    fn new(
        session: &'a mut Session,
        socks: &'a Sockets,
        opts: &'a DriverOptions,
        tunnel: &'a mut Tunnel,
        events: &'a mpsc::UnboundedSender<Event>,
        commands: &'a mut mpsc::UnboundedReceiver<Command>,
        started: Instant,
    ) -> Self {
        tunnel.gateway = Some(socks.remote.ip());
        Driver {
            session,
            socks,
            opts,
            tunnel,
            events,
            commands,
            started,
            connect_ms: None,
            out: Vec::with_capacity(2048),
            rbuf: vec![0u8; BUF],
            nbuf: vec![0u8; BUF],
            ebuf: vec![0u8; BUF],
            rb: tun::RecvBatch::new(9000),
            sb: tun::SendBatch::default(),
            batch: udp::GsoBatch::default(),
            cmsg: udp::gro_cmsg_space(),
            sleep: SleepDetector::new(),
            suspended: None,
            reconnect_asked: false,
            refused: None,
            logged_spis: None,
            commands_open: true,
            nat_peer: socks.nat_peer(),
        }
    }

    /// Runs until the session ends; returns why.
    async fn run(mut self) -> DisconnectReason {
        loop {
            self.drive_transmit().await;
            self.drive_keylog();
            if let Some(r) = self.drive_events().await {
                return r;
            }
            if self.drive_sleep() {
                continue;
            }
            match self.wait().await {
                Wake::Ike(r) => self.drive_udp_ike(r),
                Wake::Nat(r) => self.drive_udp_nat(r).await,
                Wake::Tun(r) => self.drive_tun(r).await,
                Wake::Deadline => self.session.handle_timeout(Instant::now()),
                Wake::Command(c) => self.drive_command(c),
            }
        }
    }

    async fn wait(&mut self) -> Wake {
        let deadline = self
            .session
            .poll_timeout()
            .map(tokio::time::Instant::from_std);
        // Only the TUN device is borrowed by the wait, never the session
        // (it is not Sync and must not be held across an await).
        let tun = self.tunnel.tun.as_ref().filter(|_| self.session.can_send());
        let tun_ready = async move {
            match tun {
                Some(t) => t.readable().await,
                None => std::future::pending().await,
            }
        };
        let sleep = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let open = self.commands_open;
        tokio::select! {
            r = self.socks.ike.recv_from(&mut self.rbuf) => Wake::Ike(r),
            // ERROR too: a pending ICMP error on the connected socket
            // (EPOLLERR without data) would not wake a plain readable().
            r = self.socks.nat.ready(tokio::io::Interest::READABLE | tokio::io::Interest::ERROR) => {
                Wake::Nat(r.map(|_| ()))
            }
            r = tun_ready => Wake::Tun(r),
            _ = sleep => Wake::Deadline,
            c = self.commands.recv(), if open => Wake::Command(c),
        }
    }

    /// Sends what the session queued (IKE, retransmits, keepalives).
    async fn drive_transmit(&mut self) {
        while let Some(t) = self.session.poll_transmit(&mut self.out) {
            let sock = if t.nat_t {
                &self.socks.nat
            } else {
                &self.socks.ike
            };
            if self.out[..t.size] == [0xff] {
                self.tunnel.io.keepalives += 1;
            }
            if let Err(e) = sock.send(&self.out[..t.size]).await {
                // Unreachable networks and ICMP errors: the retransmit timer decides.
                debug!("send to {} failed: {e}", t.destination);
            }
        }
    }

    /// Appends the IKE SA's keys to the key log once per SA, when asked for.
    fn drive_keylog(&mut self) {
        let Some(path) = &self.opts.ike_keylog else {
            return;
        };
        let spis = self.session.ike_spis();
        if self.logged_spis != Some(spis) {
            if let Some(line) = self.session.keylog_line() {
                probe::write_keylog(path, &line);
                self.logged_spis = Some(spis);
            }
        }
    }

    /// Forwards the session's events; brings the tunnel up on Connected.
    /// Returns why the session ended, once it did.
    async fn drive_events(&mut self) -> Option<DisconnectReason> {
        while let Some(ev) = self.session.poll_event() {
            match &ev {
                Event::Connected(cfg) => {
                    if let Err(r) = self.connected(cfg).await {
                        return Some(r);
                    }
                }
                Event::Disconnected(r) => {
                    return Some(match (self.suspended, self.refused.take()) {
                        (Some(secs), _) => DisconnectReason::Suspended(secs),
                        (None, Some(m)) => DisconnectReason::Unreachable(m),
                        (None, None) if self.reconnect_asked => {
                            DisconnectReason::ReconnectRequested
                        }
                        (None, None) => r.clone(),
                    });
                }
                _ => {}
            }
            let _ = self.events.send(ev);
        }
        None
    }

    async fn connected(&mut self, cfg: &crate::TunnelConfig) -> Result<(), DisconnectReason> {
        let now = Instant::now();
        let gateway = self.socks.remote.ip();
        let overhead = self
            .session
            .child_suite()
            .map_or(73, |(e, i)| crate::esp::overhead(e, i));
        if let Err(e) = self.tunnel.bring_up(cfg, overhead, gateway).await {
            let r = DisconnectReason::Local(format!("tunnel setup failed: {e}"));
            self.session.close(now);
            self.drive_transmit().await;
            self.tunnel.take_down().await;
            self.tunnel.connected_at = None;
            return Err(r);
        }
        self.connect_ms
            .get_or_insert(now.saturating_duration_since(self.started).as_millis() as u64);
        let again = self.tunnel.connected_at.is_some();
        self.tunnel.connected_at.get_or_insert(now);
        self.tunnel.outage = None;
        if again {
            self.tunnel.reconnects += 1;
            let _ = self.events.send(Event::Progress(Progress::Reconnected {
                resumed: self.session.anyconnect_resumed(),
            }));
        }
        if let Some((dst, count)) = self.opts.ping {
            let src = cfg.addresses.iter().find_map(|(a, _)| match a {
                IpAddr::V4(v) => Some(*v),
                _ => None,
            });
            for seq in 1..=count {
                let ip = probe::echo_request(src.unwrap_or(Ipv4Addr::UNSPECIFIED), dst, seq);
                if let Ok(n) = self.session.encapsulate(now, &ip, &mut self.ebuf) {
                    if self.socks.nat.send(&self.ebuf[..n]).await.is_ok() {
                        self.tunnel.io.tx_packets += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// After a suspend: probe the gateway, or end the session
    /// (DisconnectOnSuspend). True when the loop should start over.
    fn drive_sleep(&mut self) -> bool {
        let Some(gap) = self.sleep.slept() else {
            return false;
        };
        let now = Instant::now();
        match on_wake(self.opts, self.tunnel.connected_at.is_some()) {
            OnWake::Disconnect => {
                info!("the machine slept for {gap:?}: disconnecting (DisconnectOnSuspend)");
                self.suspended = Some(gap.as_secs());
                self.session.close(now);
            }
            OnWake::Probe => {
                info!("the machine slept for {gap:?}: checking that the gateway is still there");
                self.session.probe_now(now);
            }
        }
        true
    }

    /// IKE on port 500 (before the float to 4500).
    fn drive_udp_ike(&mut self, first: io::Result<(usize, SocketAddr)>) {
        let now = Instant::now();
        match first {
            Ok((n, from)) => {
                self.session.handle_datagram(now, from, &mut self.rbuf[..n]);
            }
            Err(e) => self.socket_error(now, &e, self.socks.remote),
        }
        for _ in 0..MAX_PER_WAKEUP {
            match self.socks.ike.try_recv_from(&mut self.rbuf) {
                Ok((n, from)) => {
                    self.session.handle_datagram(now, from, &mut self.rbuf[..n]);
                }
                Err(_) => break,
            }
        }
    }

    /// An error on a connected UDP socket: ICMP port / host unreachable
    /// before the gateway ever answered ends the attempt at once, as
    /// openconnect's "Connection refused" does, instead of ~27 s of
    /// retransmissions; during a session it is only a hint: probe now.
    fn socket_error(&mut self, now: Instant, e: &io::Error, to: SocketAddr) {
        let unreachable = matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused | io::ErrorKind::HostUnreachable
        );
        if !unreachable {
            return debug!("socket: {e}");
        }
        if self.session.state() == crate::State::SaInit && self.refused.is_none() {
            info!("{to}: {e}");
            self.refused = Some(format!(
                "the gateway {to} refused the connection ({e}): nothing answers IKE there"
            ));
            self.session.close(now);
        } else {
            info!("{to}: {e}: checking the gateway");
            self.session.probe_hint(now);
        }
    }

    /// The NAT-T socket: IKE with the non-ESP marker, and ESP, which the
    /// session opens in place; inner packets go to the TUN device in
    /// batches (GRO on both sides).
    async fn drive_udp_nat(&mut self, ready: io::Result<()>) {
        if let Err(e) = ready {
            debug!("NAT-T socket: {e}");
        }
        let now = Instant::now();
        // A pending ICMP error (SO_ERROR) wakes us with ERROR readiness
        // only: take it, and clear that readiness (try_io with an error
        // interest clears it on WouldBlock), or wait() would spin.
        if let Ok(Some(e)) = self.socks.nat.take_error() {
            let peer = self.nat_peer;
            self.socket_error(now, &e, peer);
        }
        let _ = self.socks.nat.try_io(tokio::io::Interest::ERROR, || {
            Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
        });
        for _ in 0..MAX_PER_WAKEUP {
            let nat = &self.socks.nat;
            let (nbuf, cmsg) = (&mut self.nbuf, &mut self.cmsg);
            let (n, seg, from) = match nat.try_io(tokio::io::Interest::READABLE, || {
                udp::recv_gro(nat, nbuf, cmsg)
            }) {
                Ok(x) => x,
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        let peer = self.nat_peer;
                        self.socket_error(now, &e, peer);
                    }
                    break;
                }
            };
            let from = from.unwrap_or(self.nat_peer);
            // GRO may hand over several datagrams of `seg` bytes back to back.
            let mut off = 0;
            while off < n {
                let end = (off + seg.max(1)).min(n);
                let d = &mut self.nbuf[off..end];
                off = end;
                if let Received::ToTun(ip) = self.session.handle_datagram(now, from, d) {
                    if ip.is_empty() {
                        continue;
                    }
                    self.sb.push(ip);
                    if self.sb.is_full() {
                        if let Some(t) = &self.tunnel.tun {
                            if let Err(e) = t.send(&mut self.sb).await {
                                debug!("TUN write: {e}");
                            }
                        }
                    }
                }
            }
        }
        if let Some(t) = &self.tunnel.tun {
            if let Err(e) = t.send(&mut self.sb).await {
                debug!("TUN write: {e}");
            }
        }
    }

    /// Packets from the TUN device: sealed by the session into one GSO
    /// batch per run of equal sizes.
    async fn drive_tun(&mut self, ready: io::Result<()>) {
        if let Err(e) = ready {
            debug!("TUN: {e}");
        }
        let now = Instant::now();
        for _ in 0..TUN_READS_PER_WAKEUP {
            let Some(t) = self.tunnel.tun.as_ref() else {
                break;
            };
            match t.try_recv(&mut self.rb) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    debug!("TUN read: {e}");
                    break;
                }
            }
            for ip in self.rb.packets() {
                let Some(len) = self.session.sealed_len(ip.len()) else {
                    break;
                };
                if self.batch.reserve(len).is_none() {
                    flush_batch(&mut self.batch, self.socks, &mut self.tunnel.io).await;
                }
                match self.batch.reserve(len) {
                    Some(room) => {
                        if let Ok(m) = self.session.encapsulate(now, ip, room) {
                            self.batch.commit(m);
                        }
                    }
                    None => self.tunnel.io.drop_tx += 1,
                }
            }
        }
        flush_batch(&mut self.batch, self.socks, &mut self.tunnel.io).await;
    }

    fn drive_command(&mut self, c: Option<Command>) {
        let now = Instant::now();
        match c {
            Some(Command::Answer(id, a)) => {
                if let Err(e) = self.session.answer(now, id, a) {
                    warn!("{e}");
                }
            }
            Some(Command::Status(tx)) => {
                let _ = tx.send(self.status(now));
            }
            Some(Command::Rekey(ike)) => {
                if ike {
                    self.session.rekey_ike(now)
                } else {
                    self.session.rekey_child(now)
                }
            }
            Some(Command::Close) => self.session.close(now),
            Some(Command::Reconnect) => {
                info!("reconnect asked for: closing this session and logging in again");
                self.reconnect_asked = true;
                self.session.close(now)
            }
            None => {
                self.commands_open = false;
                self.session.close(now)
            }
        }
    }

    fn status(&self, now: Instant) -> Status {
        status::snapshot(
            self.session,
            Some(self.socks),
            self.tunnel,
            self.opts.host.as_deref(),
            self.connect_ms,
            now,
        )
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
}
