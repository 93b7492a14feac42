//! The IKEv2 initiator as a sans-IO state machine (RFC 7296 §1.2–§1.5, §2):
//! the API a driver calls, and the task queue behind it.
//!
//! Inputs are `handle_*` calls carrying datagrams, the current time and the
//! user's answers; outputs are drained with `poll_transmit`, `poll_timeout`
//! and `poll_event`, in that order, after every input (quinn-proto style).
//! ESP is part of it: an inbound ESP datagram is opened in place and comes
//! back as [`Received::ToTun`]; outbound packets go through
//! [`Session::encapsulate`].
//!
//! ```text
//! Initiator                         Responder
//! HDR, SAi1, KEi, Ni, N(NAT_D)*, N(FRAG_SUP), N(SIG_HASH)  -->        IKE_SA_INIT
//!                       <--  HDR, SAr1, KEr, Nr, [CERTREQ], N(NAT_D)*
//!   ... float to UDP 4500 with the non-ESP marker (RFC 3948 §2.2) ...
//! HDR, SK {IDi, [IDr], [AUTH], [CERTREQ], CP(CFG_REQUEST), SAi2, TSi, TSr}  -->   IKE_AUTH
//!                       <--  HDR, SK {IDr, [CERT+], AUTH, [EAP] | CP(CFG_REPLY), SAr2, TSi, TSr}
//! HDR, SK {EAP}  -->  ... <--  HDR, SK {EAP (Success)}                     (EAP rounds, §2.16)
//! HDR, SK {AUTH}  -->   <--  HDR, SK {AUTH, CP(CFG_REPLY), SAr2, TSi, TSr}
//! ```
//! After that the gateway may send INFORMATIONAL (DPD, DELETE) and
//! CREATE_CHILD_SA (rekeys, §1.3.2/§1.3.3) requests, which we answer; message
//! IDs follow the window of one (§2.3), so our own rekeys wait in a queue
//! while another exchange is in flight. Each exchange is a task in
//! `tasks/`; the message layer is `exchange.rs`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{info, trace};

use super::children::Children;
use super::describe;
use super::exchange::{Exchange, Request};
use super::tasks::child_rekey::ChildRekey;
use super::tasks::ike_auth::IkeAuth;
use super::tasks::ike_delete;
use super::tasks::ike_dpd::Liveness;
use super::tasks::ike_init::IkeInit;
use super::tasks::ike_rekey::IkeRekey;
use super::tasks::Ctx;
use crate::crypto::Rng;
use crate::eap::anyconnect::xml::Complete;
use crate::error::{ApiMisuse, DropReason, IkeDrop};
use crate::esp::EspCounters;
use crate::event::{Answer, DisconnectReason, Event, PromptId, TunnelConfig};
use crate::settings::{AuthMethod, Settings};
use crate::timer::{Timer, TimerTable};
use crate::wire::ExchangeType;

/// Where the session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// IKE_SA_INIT sent, waiting for the answer.
    SaInit,
    /// IKE_AUTH in progress (including EAP rounds and prompts).
    Authenticating,
    /// IKE SA and CHILD SA are up.
    Established,
    /// We sent DELETE and wait for the answer.
    Closing,
    /// Nothing more will happen.
    Closed,
}

/// A datagram to send: the bytes are `buf[..size]` of the `poll_transmit` buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// Length.
    pub size: usize,
    /// Send from our NAT-T socket (port 4500) rather than the IKE one.
    pub nat_t: bool,
}

/// What happened to an incoming datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// An IKE message or keepalive, handled; look at the poll_* outputs.
    Consumed,
    /// An authentic ESP packet, opened in place: the inner IP packet for
    /// the TUN device (empty for an RFC 4303 dummy packet).
    ToTun(&'a [u8]),
    /// Dropped and counted (never ends the session).
    Dropped(DropReason),
}

/// Counters of the control plane (ESP's are [`Session::esp_counters`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// IKE datagrams sent (including retransmits and fragments).
    pub ike_sent: u64,
    /// IKE datagrams received.
    pub ike_received: u64,
    /// Retransmissions.
    pub retransmits: u64,
    /// Datagrams dropped (bad SPI, integrity, out of window, malformed).
    pub dropped: u64,
    /// Gateway DPD requests answered.
    pub dpd_answered: u64,
    /// IKE SA rekeys.
    pub ike_rekeys: u64,
    /// CHILD SA rekeys.
    pub child_rekeys: u64,
}

/// The task whose request is outstanding or whose prompt is pending.
enum Task {
    Init(Box<IkeInit>),
    Auth(Box<IkeAuth>),
    ChildRekey(ChildRekey),
    IkeRekey(IkeRekey),
}

/// Work waiting for the window (§2.3: one request at a time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Queued {
    ChildRekey,
    IkeRekey,
    /// DELETE of the CHILD SA (our inbound SPI) our rekey replaced.
    DeleteChild(u32),
}

/// One IKEv2 session with one gateway.
pub struct Session {
    settings: Settings,
    rng: Box<dyn Rng>,
    state: State,
    ex: Exchange,
    timers: TimerTable,
    events: VecDeque<Event>,
    prompt_seq: u32,
    stats: Stats,
    task: Option<Task>,
    queue: VecDeque<Queued>,
    children: Children,
    config: TunnelConfig,
    liveness: Liveness,
    /// The AnyConnect `complete` document (session id, secret token), for reconnects.
    anyconnect_session: Option<Complete>,
    /// The gateway took an earlier session back without a login.
    anyconnect_resumed: bool,
}

/// A task's view of the session: the layer below and the outputs
/// (disjoint fields, so the session's own state stays usable).
macro_rules! ctx {
    ($s:ident, $now:expr) => {
        Ctx {
            now: $now,
            settings: &$s.settings,
            rng: $s.rng.as_mut(),
            ex: &mut $s.ex,
            timers: &mut $s.timers,
            events: &mut $s.events,
            prompt_seq: &mut $s.prompt_seq,
        }
    };
}

// The task queue: dispatch of what arrives, tasks started and finished
// (strongSwan's task_manager_v2). It sees Session's fields; tasks do not.
mod task_manager;

impl Session {
    /// Starts a session: checks the settings, generates our SPI, DH key and
    /// nonce and queues IKE_SA_INIT.
    pub fn new(
        settings: Settings,
        mut rng: Box<dyn Rng>,
        now: Instant,
    ) -> Result<Session, DisconnectReason> {
        settings.validate().map_err(DisconnectReason::Local)?;
        if matches!(&settings.auth, AuthMethod::Eap(m) if m.is_empty()) {
            return Err(DisconnectReason::Local("no EAP method enabled".into()));
        }
        let mut spi_i = [0u8; 8];
        rng.fill(&mut spi_i);
        let mut s = Session {
            settings,
            rng,
            state: State::SaInit,
            ex: Exchange::new(spi_i),
            timers: TimerTable::default(),
            events: VecDeque::new(),
            prompt_seq: 0,
            stats: Stats::default(),
            task: None,
            queue: VecDeque::new(),
            children: Children::default(),
            config: TunnelConfig::default(),
            liveness: Liveness::default(),
            anyconnect_session: None,
            anyconnect_resumed: false,
        };
        let init = IkeInit::start(&mut ctx!(s, now))?;
        s.task = Some(Task::Init(init));
        Ok(s)
    }

    // ----- A. getters -----

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Data-plane counters.
    pub fn esp_counters(&self) -> EspCounters {
        self.children.esp.counters
    }

    /// The tunnel configuration once connected.
    pub fn tunnel_config(&self) -> Option<&TunnelConfig> {
        (self.state == State::Established).then_some(&self.config)
    }

    /// Negotiated IKE algorithms.
    pub fn ike_suite(&self) -> Option<String> {
        self.ex.ike.as_ref().map(|i| i.suite.name())
    }

    /// Negotiated ESP algorithms.
    pub fn esp_suite(&self) -> Option<String> {
        self.children.current().map(|c| c.suite.name())
    }

    /// The CHILD SA's ESP algorithms (to size the tunnel MTU).
    pub fn child_suite(
        &self,
    ) -> Option<(
        crate::crypto::cipher::Encr,
        Option<crate::crypto::cipher::Integ>,
    )> {
        self.children
            .current()
            .map(|c| (c.suite.encr, c.suite.integ))
    }

    /// IKE SPIs (initiator, responder) of the current IKE SA.
    pub fn ike_spis(&self) -> ([u8; 8], [u8; 8]) {
        match &self.ex.ike {
            Some(i) => (i.spi_i, i.spi_r),
            None => (self.ex.spi_i, [0; 8]),
        }
    }

    /// CHILD SA SPIs (inbound, outbound).
    pub fn child_spis(&self) -> Option<(u32, u32)> {
        self.children.current().map(|c| (c.spi_in, c.spi_out))
    }

    /// The AnyConnect session (id and secret token) once logged in: what a
    /// reconnect presents instead of asking the user again.
    pub fn anyconnect_session(&self) -> Option<&Complete> {
        self.anyconnect_session.as_ref()
    }

    /// Whether this login resumed an earlier AnyConnect session (no form was
    /// shown: the gateway accepted the offered session token).
    pub fn anyconnect_resumed(&self) -> bool {
        self.anyconnect_resumed
    }

    /// Whether we float to UDP 4500.
    pub fn nat_t(&self) -> bool {
        self.ex.nat_t
    }

    /// One line of Wireshark's `ikev2_decryption_table` UAT for the current
    /// IKE SA. This exposes keys on purpose: only call it when the user
    /// asked for a key log.
    pub fn keylog_line(&self) -> Option<String> {
        self.ex.ike.as_ref().map(describe::keylog_line)
    }

    /// When our own IKE and CHILD rekeys are due (for `status`).
    pub fn rekey_deadlines(&self) -> (Option<Instant>, Option<Instant>) {
        (
            self.timers.get(Timer::IkeRekey),
            self.timers.get(Timer::ChildRekey),
        )
    }

    /// Our own IKE and CHILD SA lifetimes (rekeys at 80–90 % of them).
    pub fn lifetimes(&self) -> (Option<Duration>, Option<Duration>) {
        (self.settings.ike_lifetime, self.settings.child_lifetime)
    }

    /// The DPD interval in force (the gateway's, else ours), if any.
    pub fn dpd_interval(&self) -> Option<Duration> {
        match self.config.cisco.dpd_interval {
            Some(0) => None,
            Some(s) => Some(Duration::from_secs(s as u64)),
            None => self.settings.dpd_interval,
        }
    }

    /// Liveness as `status` shows it: when we last heard from the gateway
    /// and whether a DPD probe is in flight.
    pub fn liveness(&self) -> (Option<Instant>, bool) {
        (
            self.liveness.last_inbound,
            self.ex.outstanding() == Some(Request::Dpd),
        )
    }

    /// Whether NAT-D found our own address translated (keepalives are sent).
    pub fn behind_nat(&self) -> bool {
        self.liveness.behind_nat
    }

    /// Whether NAT-D found the gateway's address translated.
    pub fn gateway_behind_nat(&self) -> bool {
        self.liveness.gateway_behind_nat
    }

    /// The identity we sent (IDi) as text: `ID_GROUP *$AnyConnectClient$*`.
    pub fn local_identity(&self) -> String {
        use crate::settings::Identity as I;
        match &self.settings.identity {
            I::Fqdn(s) => format!("FQDN {s}"),
            I::Email(s) => format!("RFC822 {s}"),
            I::KeyId(s) => format!("KEY_ID {s}"),
            I::Group(s) => format!("ID_GROUP {s}"),
            I::Address => format!("address {}", self.settings.local.ip()),
        }
    }

    /// The gateway's verified identity (IDr) and how it proved it, e.g.
    /// `("C=XX, O=VPN Test, CN=vpn.example.com", "RSA_EMSA_PKCS1_SHA2_384")`.
    pub fn peer_identity(&self) -> Option<(&str, &str)> {
        self.ex.peer.as_ref().map(|(i, a)| (i.as_str(), a.as_str()))
    }

    /// The EAP / form user name, when one was given.
    pub fn username(&self) -> Option<&str> {
        self.settings.username.as_deref()
    }

    fn keepalive_interval(&self) -> Duration {
        match self.config.cisco.keepalive_interval {
            Some(s) if s > 0 => Duration::from_secs(s as u64),
            _ => self.settings.keepalive_interval,
        }
    }

    // ----- B. inputs -----

    /// Feeds a datagram received from `remote`. On the NAT-T port the caller
    /// passes the UDP payload as is (with the non-ESP marker); ESP is opened
    /// in place in `data`.
    pub fn handle_datagram<'a>(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        data: &'a mut [u8],
    ) -> Received<'a> {
        if self.state == State::Closed {
            return Received::Dropped(DropReason::Ike(IkeDrop::Closed));
        }
        let ike: &[u8] = if remote.port() == self.settings.nat_port {
            match data {
                [0xff] => return Received::Consumed, // NAT-T keepalive (RFC 3948 §2.3)
                [0, 0, 0, 0, ..] => &data[4..],
                _ if data.len() >= 8 => {
                    return match self.children.esp.open(data, now) {
                        Ok(ip) => {
                            self.liveness.heard(now);
                            Received::ToTun(ip)
                        }
                        Err(e) => {
                            trace!("ESP packet dropped: {e:?}");
                            Received::Dropped(DropReason::Esp(e))
                        }
                    };
                }
                _ => return self.drop(IkeDrop::Runt),
            }
        } else {
            data
        };
        self.stats.ike_received += 1;
        let requests = matches!(self.state, State::Established | State::Closing);
        let r = match self
            .ex
            .receive(now, &mut self.timers, &self.settings, ike, requests)
        {
            Ok(inbound) => {
                if let Some(t) = self.ex.heard.take() {
                    self.liveness.heard(t);
                }
                self.dispatch(now, inbound)
            }
            Err(d) => self.drop(d),
        };
        self.after_input(now);
        r
    }

    /// Call when `poll_timeout` has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in Timer::ALL {
            if self.state == State::Closed {
                return;
            }
            if !self.timers.is_due(timer, now) {
                continue;
            }
            match timer {
                Timer::Reassembly => {
                    self.timers.stop(Timer::Reassembly);
                    if let Some(msg) = self.ex.reassembly_timeout(&self.settings) {
                        self.fail(DisconnectReason::Reassembly(msg));
                    }
                }
                Timer::Retransmit => self.retransmit(now),
                Timer::Keepalive | Timer::Dpd if self.state == State::Established => {
                    let (dpd, ka) = (
                        self.liveness.pacing(self.dpd_interval()),
                        self.keepalive_interval(),
                    );
                    self.liveness.on_timeout(&mut ctx!(self, now), dpd, ka);
                }
                Timer::Keepalive | Timer::Dpd => {}
                Timer::IkeRekey | Timer::ChildRekey if self.state == State::Established => {
                    self.timers.stop(timer);
                    let q = if timer == Timer::IkeRekey {
                        Queued::IkeRekey
                    } else {
                        Queued::ChildRekey
                    };
                    if !self.queue.contains(&q) {
                        self.queue.push_back(q);
                    }
                }
                Timer::IkeRekey | Timer::ChildRekey => {}
                Timer::OldSaGrace => self.children.retire(now, &mut self.timers),
            }
        }
        self.after_input(now);
    }

    /// Checks the gateway now with a DPD probe: the driver calls this when
    /// the machine was asleep (the monotonic clock stood still while the
    /// gateway's did not, so its SAs or even the session may be gone).
    pub fn probe_now(&mut self, now: Instant) {
        if self.state == State::Established && self.dpd_interval().is_some() {
            self.liveness.probe_now(now, &mut self.timers);
        }
    }

    /// An ICMP error on our socket during the session: unauthenticated, so
    /// only a hint (RFC 7296 §2.21.4), never a reason to end the session.
    /// Checks the gateway now with probes paced about a second apart, so a
    /// gateway that is gone is noticed in seconds, not half a DPD interval.
    pub fn probe_hint(&mut self, now: Instant) {
        if self.state == State::Established && self.dpd_interval().is_some() {
            self.liveness.hinted = true;
            self.liveness.probe_now(now, &mut self.timers);
        }
    }

    /// Asks for a CHILD SA rekey now (a user or test asked; the data plane
    /// asks by itself when sequence numbers run out).
    pub fn rekey_child(&mut self, now: Instant) {
        if self.state == State::Established {
            self.timers.set(Timer::ChildRekey, now);
        }
    }

    /// Asks for an IKE SA rekey now.
    pub fn rekey_ike(&mut self, now: Instant) {
        if self.state == State::Established {
            self.timers.set(Timer::IkeRekey, now);
        }
    }

    /// Answers a prompt.
    pub fn answer(&mut self, now: Instant, id: PromptId, answer: Answer) -> Result<(), ApiMisuse> {
        let Some(Task::Auth(auth)) = self.task.take() else {
            return Err(ApiMisuse::NoPrompt);
        };
        match auth.answer(&mut ctx!(self, now), id, answer) {
            Ok(step) => self.after_auth(now, step, &[]),
            Err((auth, e)) => {
                self.task = Some(Task::Auth(auth));
                return Err(e);
            }
        }
        self.after_input(now);
        Ok(())
    }

    /// Closes the session: sends DELETE for the IKE SA if one exists (RFC
    /// 7296 §1.4.1); once the gateway proved itself, ends after its answer
    /// or a short timeout, before that at once.
    pub fn close(&mut self, now: Instant) {
        let verified = match &self.task {
            Some(Task::Auth(a)) => a.gateway_verified(),
            Some(Task::Init(_)) => false,
            _ => true,
        };
        match self.state {
            State::Closed | State::Closing => {}
            _ if self.ex.ike.is_some() && verified => {
                self.task = None;
                self.queue.clear();
                self.state = State::Closing;
                ctx!(self, now).send(
                    ExchangeType::INFORMATIONAL,
                    &[ike_delete::ike()],
                    Request::Delete,
                );
            }
            _ if self.ex.ike.is_some() => {
                // Not yet authenticated: tell it once, without waiting for an
                // answer we would have no reason to believe.
                self.ex.send_once(
                    self.rng.as_mut(),
                    &self.settings,
                    false,
                    ExchangeType::INFORMATIONAL,
                    &[ike_delete::ike()],
                );
                self.finish(DisconnectReason::LocallyClosed);
            }
            _ => self.finish(DisconnectReason::LocallyClosed),
        }
        self.after_input(now);
    }

    // ----- C. data plane -----

    /// Seals an IP packet from the TUN device into `out` (ESP in UDP, no
    /// marker). Asks for a CHILD SA rekey itself when the sequence numbers
    /// near their end.
    pub fn encapsulate(
        &mut self,
        now: Instant,
        ip: &[u8],
        out: &mut [u8],
    ) -> Result<usize, crate::esp::DropReason> {
        let r = self.children.esp.seal(ip, out);
        if self.children.esp.take_rekey_due() {
            info!("ESP sequence numbers running out: rekeying the CHILD SA");
            self.rekey_child(now);
        }
        r
    }

    /// The size of `ip_len` bytes once sealed, when an outbound SA exists.
    pub fn sealed_len(&self, ip_len: usize) -> Option<usize> {
        self.children.esp.sealed_len(ip_len)
    }

    /// Whether packets can be sealed (an outbound SA exists).
    pub fn can_send(&self) -> bool {
        self.children.esp.can_send()
    }

    // ----- D. outputs -----

    /// The next datagram to send, written into `buf`.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        let mut destination = self.settings.gateway;
        if self.liveness.take_keepalive() {
            buf.clear();
            buf.push(0xff);
            destination.set_port(self.settings.nat_port);
            return Some(Transmit {
                destination,
                size: 1,
                nat_t: true,
            });
        }
        let d = self.ex.pop_transmit()?;
        buf.clear();
        let nat_t = self.ex.nat_t;
        if nat_t {
            buf.extend_from_slice(&[0, 0, 0, 0]);
            destination.set_port(self.settings.nat_port);
        }
        buf.extend_from_slice(&d);
        self.stats.ike_sent += 1;
        Some(Transmit {
            destination,
            size: buf.len(),
            nat_t,
        })
    }

    /// When to call `handle_timeout` next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The next event for the front end.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
