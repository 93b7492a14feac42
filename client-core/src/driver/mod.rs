//! The thin tokio driver: the only code here that touches sockets, clocks or
//! files. It pumps a [`Session`]: drain `poll_transmit` into UDP, forward
//! `poll_event` to the front end, then wait for a datagram, the session's
//! deadline or a command (quinn's `ConnectionDriver`, boringtun's loop).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

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
}

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
    /// NAT-T in use.
    pub nat_t: bool,
    /// Counters.
    pub stats: Stats,
    /// Our IKE and NAT-T socket addresses.
    pub local: (SocketAddr, SocketAddr),
    /// AnyConnect session id (the token itself stays in the session).
    pub session_id: Option<String>,
    /// ESP packets sent / received / dropped, and echo replies seen.
    pub esp: EspCounters,
}

/// Data-plane counters (until the TUN device lands: the `--ping` probe).
#[derive(Clone, Copy, Debug, Default)]
pub struct EspCounters {
    /// ESP packets sent.
    pub sent: u64,
    /// ESP packets opened.
    pub received: u64,
    /// ESP packets dropped (replay, ICV, unknown SPI, malformed).
    pub dropped: u64,
    /// ICMP echo replies to our probe pings.
    pub echo_replies: u64,
}

/// Our two UDP sockets: IKE (500) and NAT-T (4500).
#[derive(Debug)]
pub struct Sockets {
    ike: UdpSocket,
    nat: UdpSocket,
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
        Ok(Sockets { ike, nat })
    }

    /// Local address of the IKE socket (after `connect`, the real source IP).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.ike.local_addr()
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
}

/// Most datagrams handled per wakeup before yielding (bounded work, boringtun's MAX_ITR).
const MAX_PER_WAKEUP: usize = 64;

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

fn status(s: &Session, socks: &Sockets) -> Status {
    Status {
        state: s.state(),
        ike_spis: s.ike_spis(),
        ike_suite: s.ike_suite(),
        esp_suite: s.esp_suite(),
        child_spis: s.child_spis(),
        nat_t: s.nat_t(),
        stats: s.stats(),
        local: socks.locals(),
        session_id: s.anyconnect_session().map(|c| c.session_id.clone()),
        esp: EspCounters::default(),
    }
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

/// Runs `session` until it ends; returns why.
pub async fn run(
    mut session: Session,
    socks: Sockets,
    opts: DriverOptions,
    events: mpsc::UnboundedSender<Event>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) -> DisconnectReason {
    let mut out = Vec::with_capacity(2048);
    let mut rbuf = vec![0u8; 65536];
    let mut nbuf = vec![0u8; 65536];
    let mut logged_spis = None;
    let mut commands_open = true;
    let mut esp: Option<crate::esp::EspSa> = None;
    let mut counters = EspCounters::default();
    let mut ebuf = vec![0u8; 2048];
    loop {
        while let Some(t) = session.poll_transmit(&mut out) {
            let sock = if t.nat_t { &socks.nat } else { &socks.ike };
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
            if let Event::ChildSa(info) = &ev {
                esp = crate::esp::EspSa::new(info);
            }
            if let (Event::Connected(cfg), Some((dst, count)), Some(sa)) =
                (&ev, opts.ping, esp.as_mut())
            {
                let src = cfg.addresses.iter().find_map(|(a, _)| match a {
                    IpAddr::V4(v) => Some(*v),
                    _ => None,
                });
                for seq in 1..=count {
                    let ip = echo_request(src.unwrap_or(Ipv4Addr::UNSPECIFIED), dst, seq);
                    if let Ok(n) = sa.encapsulate(&ip, &mut ebuf) {
                        if socks.nat.send(&ebuf[..n]).await.is_ok() {
                            counters.sent += 1;
                        }
                    }
                }
            }
            if let Event::Disconnected(r) = &ev {
                let r = r.clone();
                let _ = events.send(ev);
                return r;
            }
            let _ = events.send(ev);
        }
        let deadline = session.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            r = socks.ike.recv_from(&mut rbuf) => {
                let now = Instant::now();
                match r {
                    Ok((n, from)) => { session.handle_datagram(now, from, &rbuf[..n]); }
                    Err(e) => debug!("IKE socket: {e}"),
                }
                for _ in 0..MAX_PER_WAKEUP {
                    match socks.ike.try_recv_from(&mut rbuf) {
                        Ok((n, from)) => { session.handle_datagram(Instant::now(), from, &rbuf[..n]); }
                        Err(_) => break,
                    }
                }
            }
            r = socks.nat.recv_from(&mut nbuf) => {
                match r {
                    Ok((n, from)) => {
                        if session.handle_datagram(Instant::now(), from, &nbuf[..n]) == Received::Esp {
                            match esp.as_mut().map(|sa| sa.decapsulate(&mut nbuf[..n])) {
                                Some(Ok(ip)) => {
                                    counters.received += 1;
                                    // ICMP echo reply (type 0) carrying our identifier.
                                    if ip.len() >= 28 && ip[9] == 1 && ip[20] == 0 && ip[24..26] == [0xac, 0xac] {
                                        counters.echo_replies += 1;
                                    }
                                }
                                Some(Err(e)) => {
                                    counters.dropped += 1;
                                    debug!("ESP packet dropped: {e:?}");
                                }
                                None => counters.dropped += 1,
                            }
                        }
                    }
                    Err(e) => debug!("NAT-T socket: {e}"),
                }
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
                        let mut st = status(&session, &socks);
                        st.esp = counters;
                        let _ = tx.send(st);
                    }
                    Some(Command::Close) => session.close(now),
                    None => { commands_open = false; session.close(now) }
                }
            }
        }
    }
}
