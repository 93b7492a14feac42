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

use tracing::{debug, info, trace, warn};

use super::describe;
use super::exchange::{Exchange, Inbound, Request};
use super::sa::{ChildSa, IkeSa};
use super::tasks::child_create::{self, Offer};
use super::tasks::child_rekey::{self, ChildRekey, RekeyStep};
use super::tasks::ike_auth::{AuthStep, Established, IkeAuth};
use super::tasks::ike_delete;
use super::tasks::ike_dpd::Liveness;
use super::tasks::ike_init::{IkeInit, InitDone, InitStep};
use super::tasks::ike_rekey::{self, IkeRekey, IkeRekeyStep};
use super::tasks::Ctx;
use crate::crypto::Rng;
use crate::eap::anyconnect::xml::Complete;
use crate::error::{ApiMisuse, DropReason, IkeDrop, PeerMisbehaved};
use crate::esp::table::SaTable;
use crate::esp::EspCounters;
use crate::event::{Answer, DisconnectReason, Event, Progress, PromptId, TunnelConfig};
use crate::settings::{AuthMethod, Settings};
use crate::timer::{Timer, TimerTable};
use crate::wire::{
    self, parse_chain, Direction, ExchangeType, Message, Notify, NotifyType, Payload, PayloadBody,
    PayloadType,
};

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
    child: Option<ChildSa>,
    /// CHILD SAs replaced by a rekey, waiting for the gateway's DELETE: (in, out).
    replaced: Vec<(u32, u32)>,
    esp: SaTable,
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
            child: None,
            replaced: Vec::new(),
            esp: SaTable::default(),
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
        self.esp.counters
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
        self.child.as_ref().map(|c| c.suite.name())
    }

    /// The CHILD SA's ESP algorithms (to size the tunnel MTU).
    pub fn child_suite(
        &self,
    ) -> Option<(
        crate::crypto::cipher::Encr,
        Option<crate::crypto::cipher::Integ>,
    )> {
        self.child.as_ref().map(|c| (c.suite.encr, c.suite.integ))
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
        self.child.as_ref().map(|c| (c.spi_in, c.spi_out))
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
                    return match self.esp.open(data, now) {
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
                    let (dpd, ka) = (self.dpd_interval(), self.keepalive_interval());
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
                Timer::OldSaGrace => {
                    self.esp.retire(now);
                    self.timers
                        .put(Timer::OldSaGrace, self.esp.next_retirement());
                }
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

    /// Closes the session: sends DELETE for the IKE SA if one exists and the
    /// gateway proved itself (RFC 7296 §1.4.1), and ends after its answer or
    /// a short timeout.
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
        let r = self.esp.seal(ip, out);
        if self.esp.take_rekey_due() {
            info!("ESP sequence numbers running out: rekeying the CHILD SA");
            self.rekey_child(now);
        }
        r
    }

    /// The size of `ip_len` bytes once sealed, when an outbound SA exists.
    pub fn sealed_len(&self, ip_len: usize) -> Option<usize> {
        self.esp.sealed_len(ip_len)
    }

    /// Whether packets can be sealed (an outbound SA exists).
    pub fn can_send(&self) -> bool {
        self.esp.can_send()
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

/// The static name of a message for errors ("IKE_AUTH response").
fn message_name(exchange: ExchangeType, dir: Direction) -> &'static str {
    match (exchange, dir) {
        (ExchangeType::IKE_AUTH, Direction::Response) => "IKE_AUTH response",
        (ExchangeType::CREATE_CHILD_SA, Direction::Response) => "CREATE_CHILD_SA response",
        (ExchangeType::CREATE_CHILD_SA, Direction::Request) => "CREATE_CHILD_SA request",
        (ExchangeType::INFORMATIONAL, Direction::Response) => "INFORMATIONAL response",
        (ExchangeType::INFORMATIONAL, Direction::Request) => "INFORMATIONAL request",
        (_, Direction::Response) => "response",
        (_, Direction::Request) => "request",
    }
}

/// Why a message was not decoded.
enum Undecodable {
    /// It does not parse.
    Parse(PeerMisbehaved),
    /// It parses but breaks the rule table.
    Rules(PeerMisbehaved),
}

/// The one place every encrypted message is decoded and checked against
/// `wire/rules.rs` before any task sees it (style §6.4.6).
fn decode(
    exchange: ExchangeType,
    dir: Direction,
    first: PayloadType,
    plaintext: &[u8],
) -> Result<Vec<Payload<'_>>, Undecodable> {
    let name = message_name(exchange, dir);
    let (payloads, _) = parse_chain(first, plaintext).map_err(|error| {
        Undecodable::Parse(PeerMisbehaved::Malformed {
            exchange: name,
            error,
        })
    })?;
    debug!("received {name} {}", describe::summary(&payloads));
    trace!("{name} payloads:\n{}", describe::detail(&payloads));
    wire::check_payloads(exchange, dir, &payloads).map_err(|error| {
        Undecodable::Rules(PeerMisbehaved::PayloadRules {
            exchange: name,
            error,
        })
    })?;
    Ok(payloads)
}

impl Session {
    fn drop(&mut self, why: IkeDrop) -> Received<'static> {
        self.stats.dropped += 1;
        debug!("dropped datagram: {why}");
        Received::Dropped(DropReason::Ike(why))
    }

    /// Starts queued work when the window is free, and stops idle timers.
    fn after_input(&mut self, now: Instant) {
        while self.state == State::Established
            && self.task.is_none()
            && self.ex.outstanding().is_none()
        {
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            let mut ctx = ctx!(self, now);
            match q {
                Queued::ChildRekey => {
                    if let Some(child) = &self.child {
                        self.task = Some(Task::ChildRekey(ChildRekey::start(&mut ctx, child)));
                    }
                }
                Queued::IkeRekey => {
                    if let Some(r) = IkeRekey::start(&mut ctx) {
                        self.task = Some(Task::IkeRekey(r));
                    }
                }
                Queued::DeleteChild(spi_in) => {
                    // Make-before-break: the new SA is installed; now delete the old one (§1.4.1).
                    let spis = spi_in.to_be_bytes();
                    ctx.send(
                        ExchangeType::INFORMATIONAL,
                        &[ike_delete::esp(&spis)],
                        Request::DeleteChild,
                    );
                }
            }
        }
        self.ex.sync_timers(&mut self.timers);
    }

    fn dispatch(&mut self, now: Instant, inbound: Inbound) -> Received<'static> {
        match inbound {
            Inbound::Consumed => Received::Consumed,
            Inbound::SaInitResponse(data) => self.on_sa_init(now, &data),
            Inbound::Response {
                request,
                exchange,
                first,
                plaintext,
            } => {
                match decode(exchange, Direction::Response, first, &plaintext) {
                    Ok(payloads) => self.on_response(now, request, first, &plaintext, &payloads),
                    Err(Undecodable::Parse(p) | Undecodable::Rules(p)) => self.fail(p.into()),
                }
                Received::Consumed
            }
            Inbound::Request {
                old,
                exchange,
                id,
                first,
                plaintext,
            } => match decode(exchange, Direction::Request, first, &plaintext) {
                Ok(payloads) => {
                    self.on_request(now, old, exchange, id, &payloads);
                    Received::Consumed
                }
                Err(Undecodable::Parse(p)) => {
                    debug!("malformed {exchange:?} request: {p}");
                    self.drop(IkeDrop::Malformed)
                }
                Err(Undecodable::Rules(p)) => {
                    debug!("{p}");
                    let n = [Payload::from(PayloadBody::Notify(Notify::new(
                        p.notify(),
                        &[],
                    )))];
                    ctx!(self, now).respond(old, exchange, id, &n);
                    Received::Consumed
                }
            },
        }
    }

    // ----- IKE_SA_INIT -----

    fn on_sa_init(&mut self, now: Instant, data: &[u8]) -> Received<'static> {
        // Unauthenticated: anything odd is dropped, not fatal (§2.21.1).
        let Ok(msg) = Message::parse(data) else {
            return self.drop(IkeDrop::Malformed);
        };
        debug!(
            "received IKE_SA_INIT response 0 {}",
            describe::summary(&msg.payloads)
        );
        trace!(
            "IKE_SA_INIT response payloads:\n{}",
            describe::detail(&msg.payloads)
        );
        if wire::check_payloads(
            ExchangeType::IKE_SA_INIT,
            Direction::Response,
            &msg.payloads,
        )
        .is_err()
        {
            return self.drop(IkeDrop::IncompleteSaInit);
        }
        let Some(Task::Init(init)) = self.task.take() else {
            return self.drop(IkeDrop::UnsolicitedResponse);
        };
        match init.process(&mut ctx!(self, now), data, &msg) {
            InitStep::Retry(i) => self.task = Some(Task::Init(i)),
            InitStep::Failed(r) => self.fail(r),
            InitStep::Done(d) => self.sa_init_done(now, *d),
        }
        Received::Consumed
    }

    fn sa_init_done(&mut self, now: Instant, d: InitDone) {
        let ex = &mut self.ex;
        ex.sa_init_done();
        // Float to 4500 always, as AnyConnect does: it keeps ESP in UDP and
        // works with gateways that fake NAT-D (strongSwan libipsec).
        ex.nat_t = true;
        ex.peer_fragmentation = d.fragmentation;
        ex.peer_cisco_fragmentation = d.cisco_fragmentation;
        let mut sa = IkeSa::new(d.suite, d.keys, ex.spi_i, d.spi_r, true);
        sa.next_id = 1;
        ex.ike = Some(sa);
        self.liveness.behind_nat = d.nat.we_behind;
        self.events.push_back(Event::Progress(Progress::SaInitDone {
            proposal: d.suite.name(),
            nat: d.nat.any(),
        }));
        info!("IKE_SA_INIT done: {}", d.suite.name());
        self.state = State::Authenticating;
        let auth = IkeAuth::start(&mut ctx!(self, now), d.msg1, d.msg2, d.ni, d.nr);
        self.task = Some(Task::Auth(auth));
    }

    // ----- responses to our requests -----

    fn on_response(
        &mut self,
        now: Instant,
        request: Request,
        first: PayloadType,
        plaintext: &[u8],
        payloads: &[Payload<'_>],
    ) {
        match (request, self.task.take()) {
            (Request::Auth, Some(Task::Auth(auth))) => {
                let step = auth.process(&mut ctx!(self, now), payloads, first, plaintext);
                self.after_auth(now, step, payloads);
            }
            (Request::ChildRekey, Some(Task::ChildRekey(rk))) => {
                let Some(old) = self.child.clone() else {
                    return;
                };
                let step = rk.process(&ctx!(self, now), payloads, &old);
                self.after_child_rekey(now, step, old);
            }
            (Request::IkeRekey, Some(Task::IkeRekey(rk))) => {
                match rk.process(&ctx!(self, now), payloads) {
                    IkeRekeyStep::Rekeyed(new) => {
                        self.ex.old_ike = self.ex.ike.replace(*new);
                        // Delete the old IKE SA on the old SA (best effort: the
                        // gateway also drops it when its lifetime ends).
                        self.ex.send_once(
                            self.rng.as_mut(),
                            &self.settings,
                            true,
                            ExchangeType::INFORMATIONAL,
                            &[ike_delete::ike()],
                        );
                        self.stats.ike_rekeys += 1;
                        self.events.push_back(Event::Progress(Progress::IkeRekeyed));
                        self.arm_lifetime(now, Timer::IkeRekey);
                    }
                    IkeRekeyStep::RetryLater(n) => self.retry_later(now, Timer::IkeRekey, n),
                    IkeRekeyStep::Failed(r) => self.fail(r),
                }
            }
            (Request::Delete, _) => {
                debug!("IKE SA deleted");
                self.finish(DisconnectReason::LocallyClosed);
            }
            (Request::DeleteChild, task) => {
                debug!("old CHILD SA deleted");
                self.task = task;
            }
            (Request::Dpd, task) => {
                debug!("DPD answered");
                self.stats.dpd_answered += 1;
                self.task = task;
            }
            (_, task) => self.task = task,
        }
    }

    fn after_auth(&mut self, now: Instant, step: AuthStep, payloads: &[Payload<'_>]) {
        match step {
            AuthStep::Continue(a) => self.task = Some(Task::Auth(a)),
            AuthStep::Reprocess(a, first, plaintext) => {
                match decode(
                    ExchangeType::IKE_AUTH,
                    Direction::Response,
                    first,
                    &plaintext,
                ) {
                    Ok(payloads) => {
                        let step = a.process(&mut ctx!(self, now), &payloads, first, &plaintext);
                        self.after_auth(now, step, &payloads);
                    }
                    Err(Undecodable::Parse(p) | Undecodable::Rules(p)) => self.fail(p.into()),
                }
            }
            AuthStep::Established(e) => self.establish(now, *e, payloads),
            AuthStep::Failed(r) => self.fail(r),
        }
    }

    /// Reads CP, SA and TS of the last IKE_AUTH response and goes up.
    fn establish(&mut self, now: Instant, e: Established, payloads: &[Payload<'_>]) {
        let (child, keys, cfg) = match child_create::from_auth(&ctx!(self, now), &e.data, payloads)
        {
            Ok(x) => x,
            Err(r) => return self.fail(r),
        };
        self.anyconnect_session = e.anyconnect;
        self.anyconnect_resumed = e.resumed;
        self.install_child(now, child, &keys);
        self.config = cfg.clone();
        self.state = State::Established;
        self.arm_lifetime(now, Timer::IkeRekey);
        self.arm_lifetime(now, Timer::ChildRekey);
        let (dpd, ka) = (self.dpd_interval(), self.keepalive_interval());
        self.liveness.arm(now, &mut self.timers, dpd, ka);
        self.events.push_back(Event::Connected(Box::new(cfg)));
    }

    fn install_child(&mut self, now: Instant, child: ChildSa, keys: &crate::esp::ChildSaInfo) {
        self.esp.install(keys, now);
        self.timers
            .put(Timer::OldSaGrace, self.esp.next_retirement());
        self.child = Some(child);
    }

    fn after_child_rekey(&mut self, now: Instant, step: RekeyStep, old: ChildSa) {
        match step {
            RekeyStep::Installed { child, keys } => {
                self.install_child(now, child, &keys);
                self.stats.child_rekeys += 1;
                self.events
                    .push_back(Event::Progress(Progress::ChildRekeyed));
                self.arm_lifetime(now, Timer::ChildRekey);
                self.queue.push_front(Queued::DeleteChild(old.spi_in));
            }
            RekeyStep::RetryLater(n) => self.retry_later(now, Timer::ChildRekey, n),
            RekeyStep::Failed(r) => self.fail(r),
        }
    }

    fn retry_later(&mut self, now: Instant, timer: Timer, n: NotifyType) {
        // e.g. TEMPORARY_FAILURE during a rekey collision (§2.25): try later.
        info!("the gateway refused our rekey ({n:?}); retrying later");
        self.timers.set_after(timer, now, child_rekey::RETRY_AFTER);
    }

    // ----- requests from the gateway -----

    fn on_request(
        &mut self,
        now: Instant,
        old: bool,
        exchange: ExchangeType,
        id: u32,
        payloads: &[Payload<'_>],
    ) {
        match exchange {
            ExchangeType::INFORMATIONAL => self.on_informational(now, old, id, payloads),
            ExchangeType::CREATE_CHILD_SA if !old => self.on_create_child(now, id, payloads),
            other => {
                debug!("unsupported {other:?} request");
                let n = [Payload::from(PayloadBody::Notify(Notify::new(
                    NotifyType::NO_ADDITIONAL_SAS,
                    &[],
                )))];
                ctx!(self, now).respond(old, other, id, &n);
            }
        }
    }

    fn on_informational(&mut self, now: Instant, old: bool, id: u32, payloads: &[Payload<'_>]) {
        let deletes = ike_delete::parse(payloads);
        let mut ctx = ctx!(self, now);
        if deletes.ike {
            ctx.respond(old, ExchangeType::INFORMATIONAL, id, &[]);
            if old {
                debug!("old IKE SA deleted after rekey");
                self.ex.old_ike = None;
            } else {
                self.finish(DisconnectReason::PeerDeleted);
            }
            return;
        }
        // §1.4.1: answer with the SPIs of our inbound halves.
        let mut ours = Vec::new();
        for out in deletes.esp_out {
            if let Some(pos) = self.replaced.iter().position(|(_, o)| *o == out) {
                let (i, _) = self.replaced.remove(pos);
                ours.extend_from_slice(&i.to_be_bytes());
            } else if self.child.as_ref().is_some_and(|c| c.spi_out == out) {
                if let Some(c) = self.child.take() {
                    ours.extend_from_slice(&c.spi_in.to_be_bytes());
                    self.esp.remove_current(now);
                    self.timers
                        .put(Timer::OldSaGrace, self.esp.next_retirement());
                }
            }
        }
        let mut ctx = ctx!(self, now);
        if ours.is_empty() {
            ctx.respond(old, ExchangeType::INFORMATIONAL, id, &[]);
            if payloads.is_empty() {
                self.stats.dpd_answered += 1;
                self.events
                    .push_back(Event::Progress(Progress::DpdAnswered));
            }
        } else {
            ctx.respond(
                old,
                ExchangeType::INFORMATIONAL,
                id,
                &[ike_delete::esp(&ours)],
            );
            if self.child.is_none() && self.state == State::Established {
                info!("the gateway deleted our only CHILD SA");
            }
        }
    }

    fn on_create_child(&mut self, now: Instant, id: u32, payloads: &[Payload<'_>]) {
        // A gateway-initiated exchange is answered even while ours is in
        // flight (§2.25 collisions resolve by the nonces; we simply let
        // both complete).
        let mut ctx = ctx!(self, now);
        let Some(offer) = Offer::parse(payloads) else {
            return child_create::refuse(&mut ctx, id, NotifyType::INVALID_SYNTAX);
        };
        if offer.is_ike() {
            // §1.3.2 / §2.18: the gateway rekeys the IKE SA.
            if let Some(new) = ike_rekey::respond(&mut ctx, id, &offer) {
                self.ex.old_ike = self.ex.ike.replace(*new);
                self.stats.ike_rekeys += 1;
                self.arm_lifetime(now, Timer::IkeRekey);
                self.events.push_back(Event::Progress(Progress::IkeRekeyed));
            }
            return;
        }
        // CHILD SA (rekey or new): §1.3.1 / §1.3.3.
        let Some(c) = child_create::respond(&mut ctx, id, &offer) else {
            return;
        };
        if c.rekey {
            if let Some(old) = self.child.take() {
                self.replaced.push((old.spi_in, old.spi_out));
            }
            self.stats.child_rekeys += 1;
            self.events
                .push_back(Event::Progress(Progress::ChildRekeyed));
        }
        self.install_child(now, c.child, &c.keys);
        self.arm_lifetime(now, Timer::ChildRekey);
    }

    // ----- timers and endings -----

    /// Arms our own rekey at 80–90 % of the lifetime (jitter, so many
    /// clients do not rekey in lockstep).
    fn arm_lifetime(&mut self, now: Instant, timer: Timer) {
        let life = match timer {
            Timer::IkeRekey => self.settings.ike_lifetime,
            Timer::ChildRekey => self.settings.child_lifetime,
            _ => None,
        };
        let at = life.and_then(|l| {
            let mut j = [0u8; 1];
            self.rng.fill(&mut j);
            now.checked_add(l.mul_f64(0.8 + 0.1 * (j[0] as f64 / 255.0)))
        });
        self.timers.put(timer, at);
    }

    fn retransmit(&mut self, now: Instant) {
        let closing = self.state == State::Closing;
        let dpd = self.dpd_interval();
        match self.ex.retransmit(
            now,
            &mut self.timers,
            self.rng.as_mut(),
            &self.settings,
            closing,
            dpd,
        ) {
            Ok(sent) => self.stats.retransmits += u64::from(sent),
            Err(g) if g.request == Request::Dpd => {
                let silent = self
                    .liveness
                    .last_inbound
                    .map_or(0, |t| now.saturating_duration_since(t).as_secs());
                self.fail(DisconnectReason::DeadPeer(silent));
            }
            Err(_) if closing => self.finish(DisconnectReason::LocallyClosed),
            Err(g) => match g.reassembly {
                Some(m) => self.fail(DisconnectReason::Reassembly(m)),
                None => self.fail(DisconnectReason::TimedOut(g.tries)),
            },
        }
    }

    fn fail(&mut self, reason: DisconnectReason) {
        warn!("{reason}");
        // Once an IKE SA exists, tell the gateway we are gone (best effort,
        // not retransmitted) so it does not keep a half-open SA and lease.
        if self.ex.ike.is_some()
            && self.state != State::Closed
            && !matches!(reason, DisconnectReason::TimedOut(_))
        {
            self.ex.send_once(
                self.rng.as_mut(),
                &self.settings,
                false,
                ExchangeType::INFORMATIONAL,
                &[ike_delete::ike()],
            );
        }
        self.finish(reason);
    }

    fn finish(&mut self, reason: DisconnectReason) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.ex.abandon();
        self.timers.stop_all();
        self.task = None;
        self.queue.clear();
        self.events.push_back(Event::Disconnected(reason));
    }
}
