//! The IKEv2 initiator as a sans-IO state machine (RFC 7296 §1.2–§1.5, §2).
//!
//! Inputs are `handle_*` calls carrying datagrams, the current time and the
//! user's answers; outputs are drained with `poll_transmit`, `poll_timeout`
//! and `poll_event`, in that order, after every input (quinn-proto style).
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
//! IDs follow the window of one (§2.3) with retransmitted requests answered
//! from a cache (§2.1).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tracing::{debug, info, trace, warn};

use super::describe;
use super::fragment::{FragError, Reassembly};
use super::proposals::{self, EspSuite, IkeSuite};
use crate::crypto::auth::{nat_hash, shared_key_auth, signed_octets};
use crate::crypto::cipher::Protection;
use crate::crypto::dh::KeyPair;
use crate::crypto::keymat::{self, IkeKeys, KeyLengths};
use crate::crypto::sig;
use crate::crypto::{Rng, Secret};
use crate::eap::{EapPeer, Step};
use crate::event::*;
use crate::settings::{AuthMethod as LocalAuth, Identity, Settings};
use crate::wire::{
    self, emit_chain, parse_chain, Auth, AuthMethod, Cert, CertEncoding, CfgAttr, CfgAttribute,
    CfgType, ConfigPayload, Delete, Direction, ExchangeType, Flags, HashAlgorithm, Header, Id,
    IdType, Ke, Message, Notify, NotifyType, Payload, PayloadBody, PayloadType, ProtocolId,
    SaPayload, Skf, TrafficSelector, TsPayload, Writer, HEADER_LEN,
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
pub enum Received {
    /// An IKE message or keepalive, handled; look at the poll_* outputs.
    Consumed,
    /// An ESP packet (non-zero SPI on the NAT-T port), for the data plane.
    Esp,
    /// Dropped, with the reason in the log (never ends the session).
    Dropped(&'static str),
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// Timers (one enum, one table; quinn `timer.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    Retransmit = 0,
    Reassembly = 1,
    /// Our own IKE SA rekey (RFC 7296 §2.8), before the lifetime runs out.
    IkeRekey = 2,
    /// Our own CHILD SA rekey.
    ChildRekey = 3,
    /// Dead peer detection: probe when the gateway has been silent.
    Dpd = 4,
    /// NAT-T keepalive (RFC 3948 §2.3), only when we are behind a NAT.
    Keepalive = 5,
}
const TIMERS: usize = 6;

/// The keys and parameters of an established IKE SA.
struct IkeSa {
    spi_i: [u8; 8],
    spi_r: [u8; 8],
    /// Whether we are the original initiator (I flag, which keys we send with).
    initiator: bool,
    suite: IkeSuite,
    keys: IkeKeys,
    out: Protection,
    inp: Protection,
    next_id: u32,
    peer_next_id: u32,
    cached_response: Option<(u32, Vec<Vec<u8>>)>,
}

impl IkeSa {
    fn new(
        suite: IkeSuite,
        keys: IkeKeys,
        spi_i: [u8; 8],
        spi_r: [u8; 8],
        initiator: bool,
    ) -> IkeSa {
        let (ei, er) = (keys.sk_ei.clone(), keys.sk_er.clone());
        let (ai, ar) = (keys.sk_ai.clone(), keys.sk_ar.clone());
        let mk = |ek, ak| Protection {
            encr: suite.encr,
            integ: suite.integ,
            ek,
            ak,
        };
        let (out, inp) = if initiator {
            (mk(ei, ai), mk(er, ar))
        } else {
            (mk(er, ar), mk(ei, ai))
        };
        IkeSa {
            spi_i,
            spi_r,
            initiator,
            suite,
            keys,
            out,
            inp,
            next_id: 0,
            peer_next_id: 0,
            cached_response: None,
        }
    }
}

struct ChildSa {
    spi_in: u32,
    spi_out: u32,
    suite: EspSuite,
    ts_local: Vec<TrafficSelector>,
    ts_remote: Vec<TrafficSelector>,
}

/// What our outstanding request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    SaInit,
    Auth,
    Delete,
    ChildRekey,
    IkeRekey,
    DeleteChild,
    /// An empty INFORMATIONAL as a liveness check (§1.4, DPD).
    Dpd,
}

struct Outstanding {
    id: u32,
    datagrams: Vec<Vec<u8>>,
    tries: u32,
    purpose: Purpose,
}

/// What a pending prompt will resume.
enum Pending {
    Password {
        eap: Vec<u8>,
    },
    Form,
    Cert {
        plaintext: Vec<u8>,
        first: PayloadType,
        reason: String,
        summary: sig::CertSummary,
    },
}

/// Data kept between IKE_SA_INIT and the end of IKE_AUTH.
struct InitData {
    dh: KeyPair,
    ni: Vec<u8>,
    nr: Vec<u8>,
    offer: SaPayload,
    cookie: Option<Vec<u8>>,
    msg1: Vec<u8>,
    msg2: Vec<u8>,
    idi_body: Vec<u8>,
    idr_body: Option<Vec<u8>>,
    child_spi: u32,
    esp_offer: SaPayload,
    eap: Option<EapPeer>,
    anyconnect: Option<crate::eap::anyconnect::peer::AnyConnectPeer>,
    msk: Option<Secret>,
    gateway_verified: bool,
    eap_done: bool,
    password: Option<Secret>,
    /// DH groups already sent in IKE_SA_INIT: INVALID_KE_PAYLOAD may move us
    /// to each offered group once (RFC 7296 §1.2), never back.
    groups_tried: Vec<wire::DhId>,
    /// IKE_SA_INIT requests sent with a COOKIE so far.
    cookie_rounds: u8,
}

/// COOKIE retries of one IKE_SA_INIT before giving up.
const MAX_COOKIE_ROUNDS: u8 = 3;

/// One IKEv2 session with one gateway.
pub struct Session {
    settings: Settings,
    rng: Box<dyn Rng>,
    state: State,
    spi_i: [u8; 8],
    nat_t: bool,
    peer_fragmentation: bool,
    /// The gateway sent Cisco's FRAGMENTATION vendor ID.
    peer_cisco_fragmentation: bool,
    cisco_frags: super::cisco_frag::CiscoReassembly,
    cisco_frag_id: u16,
    init: Option<InitData>,
    ike: Option<IkeSa>,
    /// The IKE SA replaced by a gateway rekey, kept to answer its DELETE.
    old_ike: Option<IkeSa>,
    child: Option<ChildSa>,
    /// CHILD SAs replaced by a rekey, waiting for the gateway's DELETE: (in, out).
    old_children: Vec<(u32, u32)>,
    outstanding: Option<Outstanding>,
    reassembly: Option<Reassembly>,
    timers: [Option<Instant>; TIMERS],
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    prompt_seq: u32,
    pending: Option<(PromptId, Pending)>,
    config: TunnelConfig,
    stats: Stats,
    last_reassembly_error: Option<String>,
    /// Our in-flight rekey: nonce, DH key (IKE), offered SA, new SPI.
    rekey: Option<RekeyData>,
    /// The AnyConnect `complete` document (session id, secret token), for reconnects.
    anyconnect_session: Option<crate::eap::anyconnect::xml::Complete>,
    /// The gateway took an earlier session back without a login.
    anyconnect_resumed: bool,
    /// Last time anything authentic arrived from the gateway (IKE or ESP).
    last_inbound: Option<Instant>,
    /// NAT-D said our address is translated.
    behind_nat: bool,
    /// A NAT-T keepalive is due in the next `poll_transmit`.
    keepalive_due: bool,
    /// Probe the gateway now, whatever was heard last (after a suspend).
    force_probe: bool,
}

struct RekeyData {
    ni: Vec<u8>,
    dh: Option<KeyPair>,
    offer: SaPayload,
    new_spi: Vec<u8>,
}

impl Session {
    /// Starts a session: generates our SPI, DH key and nonce and queues
    /// IKE_SA_INIT.
    pub fn new(
        settings: Settings,
        mut rng: Box<dyn Rng>,
        now: Instant,
    ) -> Result<Session, DisconnectReason> {
        settings.validate().map_err(DisconnectReason::Local)?;
        let mut spi_i = [0u8; 8];
        rng.fill(&mut spi_i);
        let mut s = Session {
            settings,
            rng,
            state: State::SaInit,
            spi_i,
            nat_t: false,
            peer_fragmentation: false,
            peer_cisco_fragmentation: false,
            cisco_frags: Default::default(),
            cisco_frag_id: 0,
            init: None,
            ike: None,
            old_ike: None,
            child: None,
            old_children: Vec::new(),
            outstanding: None,
            reassembly: None,
            timers: [None; TIMERS],
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            prompt_seq: 0,
            pending: None,
            config: TunnelConfig::default(),
            stats: Stats::default(),
            last_reassembly_error: None,
            rekey: None,
            anyconnect_session: None,
            anyconnect_resumed: false,
            last_inbound: None,
            behind_nat: false,
            keepalive_due: false,
            force_probe: false,
        };
        if let LocalAuth::Eap(m) = &s.settings.auth {
            if m.is_empty() {
                return Err(DisconnectReason::Local("no EAP method enabled".into()));
            }
        }
        let group = wire::DhId::ECP_384;
        s.start_sa_init(now, group, None)?;
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

    /// The tunnel configuration once connected.
    pub fn tunnel_config(&self) -> Option<&TunnelConfig> {
        (self.state == State::Established).then_some(&self.config)
    }

    /// Negotiated IKE algorithms.
    pub fn ike_suite(&self) -> Option<String> {
        self.ike.as_ref().map(|i| i.suite.name())
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
        match &self.ike {
            Some(i) => (i.spi_i, i.spi_r),
            None => (self.spi_i, [0; 8]),
        }
    }

    /// CHILD SA SPIs (inbound, outbound).
    pub fn child_spis(&self) -> Option<(u32, u32)> {
        self.child.as_ref().map(|c| (c.spi_in, c.spi_out))
    }

    /// The AnyConnect session (id and secret token) once logged in: what a
    /// reconnect presents instead of asking the user again.
    pub fn anyconnect_session(&self) -> Option<&crate::eap::anyconnect::xml::Complete> {
        self.anyconnect_session.as_ref()
    }

    /// Whether this login resumed an earlier AnyConnect session (no form was
    /// shown: the gateway accepted the offered session token).
    pub fn anyconnect_resumed(&self) -> bool {
        self.anyconnect_resumed
    }

    /// Whether we float to UDP 4500.
    pub fn nat_t(&self) -> bool {
        self.nat_t
    }

    /// One line of Wireshark's `ikev2_decryption_table` UAT (hex fields bare,
    /// algorithm names quoted) for the current IKE SA.
    /// This exposes keys on purpose: only call it when the user asked for a key log.
    pub fn keylog_line(&self) -> Option<String> {
        let ike = self.ike.as_ref()?;
        let h = crate::crypto::hex;
        use crate::crypto::cipher::{Encr, Integ};
        let encr = match ike.suite.encr {
            Encr::AesCbc(16) => "AES-CBC-128 [RFC3602]",
            Encr::AesCbc(24) => "AES-CBC-192 [RFC3602]",
            Encr::AesCbc(_) => "AES-CBC-256 [RFC3602]",
            Encr::AesGcm16(16) => "AES-GCM-128 with 16 octet ICV [RFC5282]",
            Encr::AesGcm16(_) => "AES-GCM-256 with 16 octet ICV [RFC5282]",
            Encr::TripleDes => "3DES [RFC2451]",
        };
        let integ = match ike.suite.integ {
            None => "NONE [RFC4306]",
            Some(Integ::Sha1_96) => "HMAC_SHA1_96 [RFC2404]",
            Some(Integ::Sha256_128) => "HMAC_SHA2_256_128 [RFC4868]",
            Some(Integ::Sha384_192) => "HMAC_SHA2_384_192 [RFC4868]",
            Some(Integ::Sha512_256) => "HMAC_SHA2_512_256 [RFC4868]",
        };
        let k = &ike.keys;
        Some(format!(
            "{},{},{},{},\"{encr}\",{},{},\"{integ}\"",
            h(&ike.spi_i),
            h(&ike.spi_r),
            h(k.sk_ei.expose()),
            h(k.sk_er.expose()),
            h(k.sk_ai.expose()),
            h(k.sk_ar.expose())
        ))
    }

    // ----- B. inputs -----

    /// Feeds a datagram received from `remote`. On the NAT-T port the caller
    /// passes the UDP payload as is (with the non-ESP marker).
    pub fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, data: &[u8]) -> Received {
        if self.state == State::Closed {
            return Received::Dropped("session closed");
        }
        let data = if remote.port() == self.settings.nat_port {
            if data == [0xff] {
                return Received::Consumed; // NAT-T keepalive (RFC 3948 §2.3)
            }
            match data {
                [0, 0, 0, 0, rest @ ..] => rest,
                _ if data.len() >= 8 => return Received::Esp,
                _ => return self.drop("runt datagram on NAT-T port"),
            }
        } else {
            data
        };
        self.stats.ike_received += 1;
        let r = self.handle_ike(now, data, true);
        self.check_timers();
        r
    }

    /// Processes one IKE message (no marker). `outer` is false for a message
    /// reassembled from Cisco fragments, which may not be fragmented again.
    fn handle_ike(&mut self, now: Instant, data: &[u8], outer: bool) -> Received {
        let hdr = match Header::parse(data) {
            Ok(h) => h,
            Err(e) => return self.drop_w(e),
        };
        if hdr.spi_i != self.spi_i && !self.matches_any_sa(&hdr) {
            return self.drop("unknown IKE SPI");
        }
        if hdr.next_payload == PayloadType::CISCO_FRAGMENT {
            if !outer {
                return self.drop("Cisco fragment inside a Cisco fragment");
            }
            let (max_f, max_b) = (self.settings.max_fragments, self.settings.max_reassembled);
            match self.cisco_frags.add(data, max_f, max_b) {
                Ok(Some(whole)) => {
                    debug!(
                        "reassembled a Cisco-fragmented IKE message ({} bytes)",
                        whole.len()
                    );
                    return self.handle_ike(now, &whole, false);
                }
                Ok(None) => {
                    if self.timers[Timer::Reassembly as usize].is_none() {
                        self.timers[Timer::Reassembly as usize] =
                            Some(now + self.settings.reassembly_timeout);
                    }
                    return Received::Consumed;
                }
                Err(e) => {
                    debug!("Cisco fragment refused: {e:?}");
                    return self.drop("bad Cisco fragment");
                }
            }
        }
        let to_old = self
            .old_ike
            .as_ref()
            .is_some_and(|o| o.spi_i == hdr.spi_i && o.spi_r == hdr.spi_r);
        if to_old && hdr.flags.response() {
            // The answer to our DELETE of the IKE SA we rekeyed: it is gone now.
            debug!("old IKE SA deleted after our rekey");
            self.old_ike = None;
            return Received::Consumed;
        }
        if hdr.flags.response() {
            self.on_response(now, &hdr, data)
        } else {
            self.on_request(now, &hdr, data)
        }
    }

    /// Call when `poll_timeout` has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(t) = self.timers[Timer::Reassembly as usize] {
            if now >= t {
                self.timers[Timer::Reassembly as usize] = None;
                if !self.cisco_frags.is_empty() {
                    warn!(
                        "incomplete Cisco-fragmented message dropped after {:?}",
                        self.settings.reassembly_timeout
                    );
                    self.cisco_frags.clear();
                }
                if let Some(r) = self.reassembly.take() {
                    let msg = format!(
                        "{} of {} fragments of message {} missing after {:?}",
                        r.missing(),
                        r.total(),
                        r.message_id,
                        self.settings.reassembly_timeout
                    );
                    warn!("{msg}");
                    // The gateway retransmits whole messages, so a retransmit
                    // of our request lets it try again; only if our own
                    // retransmits run out is this fatal. Remember why.
                    if self.outstanding.is_none() {
                        self.fail(DisconnectReason::Reassembly(msg));
                        return;
                    }
                    self.last_reassembly_error = Some(msg);
                }
            }
        }
        if let Some(t) = self.timers[Timer::Retransmit as usize] {
            if now >= t {
                self.retransmit(now);
            }
        }
        self.liveness_timers(now);
        for (timer, purpose) in [
            (Timer::IkeRekey, Purpose::IkeRekey),
            (Timer::ChildRekey, Purpose::ChildRekey),
        ] {
            if let Some(t) = self.timers[timer as usize] {
                if now >= t && self.state == State::Established {
                    if self.outstanding.is_some() {
                        // Window of one (§2.3): try again when the exchange in flight is done.
                        self.timers[timer as usize] = Some(now + Duration::from_secs(1));
                    } else {
                        self.timers[timer as usize] = None;
                        self.start_rekey(now, purpose);
                    }
                }
            }
        }
    }

    /// Tells the session that an authentic ESP packet arrived (the driver
    /// opened it with this session's keys): the gateway is alive, no DPD
    /// probe is needed (RFC 3706 spirit: probe only an idle peer).
    pub fn note_inbound(&mut self, now: Instant) {
        self.last_inbound = Some(now);
    }

    /// Checks the gateway now with a DPD probe: the driver calls this when
    /// the machine was asleep (the monotonic clock stood still while the
    /// gateway's did not, so its SAs or even the session may be gone).
    pub fn probe_now(&mut self, now: Instant) {
        if self.state == State::Established && self.dpd_interval().is_some() {
            self.force_probe = true;
            self.timers[Timer::Dpd as usize] = Some(now);
        }
    }

    /// Asks for a CHILD SA rekey now (the data plane saw its sequence
    /// counter near the end, or a user/test asked).
    pub fn rekey_child(&mut self, now: Instant) {
        if self.state == State::Established {
            self.timers[Timer::ChildRekey as usize] = Some(now);
        }
    }

    /// Asks for an IKE SA rekey now.
    pub fn rekey_ike(&mut self, now: Instant) {
        if self.state == State::Established {
            self.timers[Timer::IkeRekey as usize] = Some(now);
        }
    }

    /// When our own IKE and CHILD rekeys are due (for `status`).
    pub fn rekey_deadlines(&self) -> (Option<Instant>, Option<Instant>) {
        (
            self.timers[Timer::IkeRekey as usize],
            self.timers[Timer::ChildRekey as usize],
        )
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
            self.last_inbound,
            self.outstanding
                .as_ref()
                .is_some_and(|o| o.purpose == Purpose::Dpd),
        )
    }

    /// Whether NAT-D found our own address translated (keepalives are sent).
    pub fn behind_nat(&self) -> bool {
        self.behind_nat
    }

    fn keepalive_interval(&self) -> Duration {
        match self.config.cisco.keepalive_interval {
            Some(s) if s > 0 => Duration::from_secs(s as u64),
            _ => self.settings.keepalive_interval,
        }
    }

    /// Arms DPD and keepalives once established.
    fn arm_liveness(&mut self, now: Instant) {
        self.last_inbound = Some(now);
        self.timers[Timer::Dpd as usize] = self.dpd_interval().and_then(|i| now.checked_add(i / 2));
        self.timers[Timer::Keepalive as usize] = self
            .behind_nat
            .then(|| now.checked_add(self.keepalive_interval()))
            .flatten();
    }

    fn liveness_timers(&mut self, now: Instant) {
        if self.state != State::Established {
            return;
        }
        if self.timers[Timer::Keepalive as usize].is_some_and(|t| now >= t) {
            self.keepalive_due = true;
            self.timers[Timer::Keepalive as usize] = Some(now + self.keepalive_interval());
        }
        let Some(t) = self.timers[Timer::Dpd as usize] else {
            return;
        };
        if now < t {
            return;
        }
        let Some(interval) = self.dpd_interval() else {
            self.timers[Timer::Dpd as usize] = None;
            return;
        };
        let idle_since = self.last_inbound.unwrap_or(now);
        let due = idle_since + interval / 2;
        if now < due && !std::mem::take(&mut self.force_probe) {
            self.timers[Timer::Dpd as usize] = Some(due);
            return;
        }
        if self.outstanding.is_some() {
            // Any exchange in flight is itself a liveness check: its
            // retransmits end the session if the gateway is gone.
            self.timers[Timer::Dpd as usize] = Some(now + interval / 2);
            return;
        }
        debug!("gateway silent for {:?}: DPD probe", now - idle_since);
        self.send_request(now, ExchangeType::INFORMATIONAL, &[], Purpose::Dpd);
        let step = dpd_step(interval);
        self.timers[Timer::Retransmit as usize] = Some(now + step);
        self.timers[Timer::Dpd as usize] = Some(now + interval / 2);
    }

    /// Answers a prompt.
    pub fn answer(&mut self, now: Instant, id: PromptId, answer: Answer) -> Result<(), ApiMisuse> {
        let Some((pid, pending)) = self.pending.take() else {
            return Err(ApiMisuse::NoPrompt);
        };
        if pid != id {
            self.pending = Some((pid, pending));
            return Err(ApiMisuse::WrongPrompt);
        }
        match (pending, answer) {
            (Pending::Form, Answer::HostScan(ok)) => {
                if !ok {
                    self.fail(DisconnectReason::AuthFailed(
                        "the gateway requires posture assessment (host scan); give --csd-wrapper SCRIPT".into(),
                    ));
                    return Ok(());
                }
                let reply = self
                    .init
                    .as_mut()
                    .and_then(|i| i.anyconnect.as_mut())
                    .map(|p| p.host_scan_done());
                match reply {
                    Some(Ok(eap)) => {
                        let p = [Payload::from(PayloadBody::Eap(&eap))];
                        self.send_request(now, ExchangeType::IKE_AUTH, &p, Purpose::Auth);
                    }
                    _ => return Err(ApiMisuse::NoPrompt),
                }
            }
            (Pending::Form, Answer::Form(answers)) => {
                let reply = self
                    .init
                    .as_mut()
                    .and_then(|i| i.anyconnect.as_mut())
                    .map(|p| p.answer(&answers.0));
                match reply {
                    Some(Ok(eap)) => {
                        let p = [Payload::from(PayloadBody::Eap(eap.expose()))];
                        self.send_request(now, ExchangeType::IKE_AUTH, &p, Purpose::Auth);
                    }
                    _ => return Err(ApiMisuse::NoPrompt),
                }
            }
            (Pending::Password { eap }, Answer::Secret(pw)) => {
                if let Some(init) = self.init.as_mut() {
                    init.password = Some(pw);
                }
                self.on_eap(now, &eap);
            }
            (
                Pending::Cert {
                    plaintext,
                    first,
                    reason,
                    summary,
                },
                Answer::Accept(yes),
            ) => {
                if yes {
                    info!("certificate {} accepted by the user", summary.pin);
                    self.settings.trust.pins.push(summary.pin.clone());
                    self.on_auth_response(now, first, &plaintext);
                } else {
                    self.fail(DisconnectReason::CertificateRefused {
                        reason,
                        subject: summary.subject,
                        pin: summary.pin,
                    });
                }
            }
            (p, _) => {
                self.pending = Some((pid, p));
                return Err(ApiMisuse::WrongAnswerType);
            }
        }
        self.check_timers();
        Ok(())
    }

    /// Closes the session: sends DELETE for the IKE SA if one exists
    /// (RFC 7296 §1.4.1) and ends after its answer or a short timeout.
    pub fn close(&mut self, now: Instant) {
        match self.state {
            State::Closed | State::Closing => {}
            _ if self.ike.is_some()
                && self
                    .init
                    .as_ref()
                    .is_none_or(|i| i.gateway_verified || i.msg2.is_empty()) =>
            {
                let d = Delete {
                    protocol: ProtocolId::IKE,
                    spi_size: 0,
                    spis: &[],
                };
                let payloads = [Payload::from(PayloadBody::Delete(d))];
                self.state = State::Closing;
                self.send_request(now, ExchangeType::INFORMATIONAL, &payloads, Purpose::Delete);
            }
            _ => self.finish(DisconnectReason::LocallyClosed),
        }
        self.check_timers();
    }

    // ----- D. outputs -----

    /// The next datagram to send, written into `buf`.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        if std::mem::take(&mut self.keepalive_due) {
            buf.clear();
            buf.push(0xff);
            let mut destination = self.settings.gateway;
            destination.set_port(self.settings.nat_port);
            return Some(Transmit {
                destination,
                size: 1,
                nat_t: true,
            });
        }
        let d = self.transmits.pop_front()?;
        buf.clear();
        if self.nat_t {
            buf.extend_from_slice(&[0, 0, 0, 0]);
        }
        buf.extend_from_slice(&d);
        self.stats.ike_sent += 1;
        let mut destination = self.settings.gateway;
        if self.nat_t {
            destination.set_port(self.settings.nat_port);
        }
        Some(Transmit {
            destination,
            size: buf.len(),
            nat_t: self.nat_t,
        })
    }

    /// When to call `handle_timeout` next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    /// The next event for the front end.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// Wrong use of the API by the caller (never caused by the network).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiMisuse {
    /// No prompt is pending.
    #[error("no prompt is pending")]
    NoPrompt,
    /// The answer is for another prompt.
    #[error("the answer is for another prompt")]
    WrongPrompt,
    /// The answer does not fit the prompt.
    #[error("the answer does not fit the prompt")]
    WrongAnswerType,
}

fn id_payload(identity: &Identity, local: SocketAddr) -> (IdType, Vec<u8>) {
    match identity {
        Identity::Fqdn(s) => (IdType::FQDN, s.as_bytes().to_vec()),
        Identity::Email(s) => (IdType::RFC822_ADDR, s.as_bytes().to_vec()),
        Identity::KeyId(s) => (IdType::KEY_ID, s.as_bytes().to_vec()),
        Identity::Group(s) => (IdType::ID_GROUP, s.as_bytes().to_vec()),
        Identity::Address => match local.ip() {
            IpAddr::V4(a) => (IdType::IPV4_ADDR, a.octets().to_vec()),
            IpAddr::V6(a) => (IdType::IPV6_ADDR, a.octets().to_vec()),
        },
    }
}

/// Parses a textual remote identity the way strongSwan does: an IP address,
/// an FQDN, or user@fqdn.
fn remote_id_bytes(s: &str) -> (IdType, Vec<u8>) {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => (IdType::IPV4_ADDR, a.octets().to_vec()),
        Ok(IpAddr::V6(a)) => (IdType::IPV6_ADDR, a.octets().to_vec()),
        Err(_) if s.contains('@') => (IdType::RFC822_ADDR, s.as_bytes().to_vec()),
        Err(_) => (IdType::FQDN, s.as_bytes().to_vec()),
    }
}

fn prefix_of_mask(m: [u8; 4]) -> u8 {
    u32::from_be_bytes(m).leading_ones() as u8
}

impl Session {
    fn matches_any_sa(&self, h: &Header) -> bool {
        [&self.ike, &self.old_ike].iter().any(|s| {
            s.as_ref()
                .is_some_and(|s| s.spi_i == h.spi_i && s.spi_r == h.spi_r)
        })
    }

    fn drop(&mut self, why: &'static str) -> Received {
        self.stats.dropped += 1;
        debug!("dropped datagram: {why}");
        Received::Dropped(why)
    }

    fn drop_w(&mut self, e: wire::Error) -> Received {
        self.stats.dropped += 1;
        debug!("dropped datagram: {e}");
        Received::Dropped("malformed IKE message")
    }

    fn fail(&mut self, reason: DisconnectReason) {
        warn!("{reason}");
        // Once an IKE SA exists, tell the gateway we are gone (best effort,
        // not retransmitted) so it does not keep a half-open SA and lease.
        if self.ike.is_some()
            && self.state != State::Closed
            && !matches!(reason, DisconnectReason::TimedOut(_))
        {
            self.send_ike_delete_once(false);
        }
        self.finish(reason);
    }

    fn finish(&mut self, reason: DisconnectReason) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.outstanding = None;
        self.timers = [None; TIMERS];
        self.pending = None;
        self.events.push_back(Event::Disconnected(reason));
    }

    fn check_timers(&mut self) {
        if self.outstanding.is_none() {
            self.timers[Timer::Retransmit as usize] = None;
        }
        if self.reassembly.is_none() && self.cisco_frags.is_empty() {
            self.timers[Timer::Reassembly as usize] = None;
        }
    }

    fn backoff(&mut self, tries: u32) -> Duration {
        let r = &self.settings.retransmit;
        let base = r.initial.saturating_mul(1u32 << tries.min(16)).min(r.max);
        // ±10 % jitter so many clients behind one gateway outage do not retry in lockstep.
        let mut j = [0u8; 1];
        self.rng.fill(&mut j);
        let f = 0.9 + (j[0] as f64 / 255.0) * 0.2;
        base.mul_f64(f)
    }

    fn arm_retransmit(&mut self, now: Instant) {
        let tries = self.outstanding.as_ref().map_or(0, |o| o.tries);
        let d = self.backoff(tries);
        self.timers[Timer::Retransmit as usize] = Some(now + d);
    }

    fn retransmit(&mut self, now: Instant) {
        let max = if self.state == State::Closing {
            1
        } else {
            self.settings.retransmit.tries
        };
        let Some(o) = self.outstanding.as_mut() else {
            self.timers[Timer::Retransmit as usize] = None;
            return;
        };
        if o.purpose == Purpose::Dpd {
            if o.tries >= DPD_PROBES {
                let silent = self
                    .last_inbound
                    .map_or(0, |t| now.saturating_duration_since(t).as_secs());
                self.fail(DisconnectReason::DeadPeer(silent));
                return;
            }
            o.tries += 1;
            self.stats.retransmits += 1;
            let d = o.datagrams.clone();
            self.transmits.extend(d);
            let step = self.dpd_interval().map_or(Duration::from_secs(1), dpd_step);
            self.timers[Timer::Retransmit as usize] = Some(now + step);
            return;
        }
        if o.tries >= max {
            let tries = o.tries;
            if self.state == State::Closing {
                self.finish(DisconnectReason::LocallyClosed);
            } else if let Some(m) = self.last_reassembly_error.take() {
                self.fail(DisconnectReason::Reassembly(m));
            } else if !self.cisco_frags.is_empty() {
                self.fail(DisconnectReason::Reassembly(format!(
                    "Cisco fragments still missing after {tries} retransmissions"
                )));
            } else {
                self.fail(DisconnectReason::TimedOut(tries));
            }
            return;
        }
        o.tries += 1;
        debug!(
            "retransmit {} of request {} ({:?})",
            o.tries, o.id, o.purpose
        );
        self.stats.retransmits += 1;
        let d = o.datagrams.clone();
        self.transmits.extend(d);
        self.arm_retransmit(now);
    }

    // ----- IKE_SA_INIT -----

    fn start_sa_init(
        &mut self,
        now: Instant,
        group: wire::DhId,
        cookie: Option<Vec<u8>>,
    ) -> Result<(), DisconnectReason> {
        // RFC 7296 §2.6: a retry with a COOKIE repeats "all other payloads
        // unchanged" — the gateway's cookie covers Ni, so a fresh nonce would
        // earn another COOKIE request. Ni (and the DH key, if the group
        // stays) carry over; only INVALID_KE_PAYLOAD changes the KE.
        let previous = self.init.take();
        let first_attempt = previous.is_none();
        let mut groups_tried = previous
            .as_ref()
            .map(|p| p.groups_tried.clone())
            .unwrap_or_default();
        groups_tried.push(group);
        let previous_cookie_rounds = previous.as_ref().map_or(0, |p| p.cookie_rounds);
        let (dh, ni) = match previous {
            Some(p) if p.dh.group() == group => (p.dh, p.ni),
            Some(p) => (
                KeyPair::generate(group, self.rng.as_mut())
                    .map_err(|e| DisconnectReason::Local(e.to_string()))?,
                p.ni,
            ),
            None => {
                let mut ni = vec![0u8; 32];
                self.rng.fill(&mut ni);
                (
                    KeyPair::generate(group, self.rng.as_mut())
                        .map_err(|e| DisconnectReason::Local(e.to_string()))?,
                    ni,
                )
            }
        };
        let offer =
            proposals::ike_proposals(self.settings.legacy, self.settings.legacy_group1, group);
        let src = nat_hash(&self.spi_i, &[0; 8], self.settings.local);
        let dst = nat_hash(&self.spi_i, &[0; 8], self.settings.gateway);
        let hashes: Vec<u8> = [
            HashAlgorithm::SHA2_256,
            HashAlgorithm::SHA2_384,
            HashAlgorithm::SHA2_512,
        ]
        .iter()
        .flat_map(|h| h.0.to_be_bytes())
        .collect();
        let mut payloads = Vec::new();
        if let Some(c) = &cookie {
            // RFC 7296 §2.6: the COOKIE notify comes first.
            payloads.push(Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::COOKIE,
                c,
            ))));
        }
        payloads.extend([
            Payload::from(PayloadBody::Sa(offer.clone())),
            Payload::from(PayloadBody::Ke(Ke {
                group,
                data: dh.public(),
            })),
            Payload::from(PayloadBody::Nonce(&ni)),
            Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                &src,
            ))),
            Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                &dst,
            ))),
            Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                &[],
            ))),
            Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::SIGNATURE_HASH_ALGORITHMS,
                &hashes,
            ))),
            // Cisco head-ends fragment with their own scheme only if we ask.
            Payload::from(PayloadBody::VendorId(&super::cisco_frag::VID_FRAGMENTATION)),
        ]);
        if matches!(self.settings.auth, LocalAuth::AnyConnect(_)) {
            // What the AnyConnect client sends (anyconnect-ikev2.md §4).
            for v in [
                super::cisco::VID_COPYRIGHT,
                super::cisco::VID_ANYCONNECT_EAP,
                super::cisco::VID_DELETE_REASON,
            ] {
                payloads.push(Payload::from(PayloadBody::VendorId(v)));
            }
        }
        let msg = Message {
            header: Header {
                spi_i: self.spi_i,
                spi_r: [0; 8],
                next_payload: PayloadType::NONE,
                version: 0x20,
                exchange: ExchangeType::IKE_SA_INIT,
                flags: Flags(Flags::INITIATOR),
                message_id: 0,
                length: 0,
            },
            payloads,
            inner_first: PayloadType::NONE,
        };
        let bytes = msg.emit();
        debug!(
            "sending IKE_SA_INIT request 0 {}",
            describe::summary(&msg.payloads)
        );
        trace!(
            "IKE_SA_INIT request payloads:\n{}",
            describe::detail(&msg.payloads)
        );
        let cookie_rounds = previous_cookie_rounds + u8::from(cookie.is_some());
        let init = InitData {
            groups_tried,
            cookie_rounds,
            dh,
            ni,
            nr: Vec::new(),
            offer,
            cookie,
            msg1: bytes.clone(),
            msg2: Vec::new(),
            idi_body: Vec::new(),
            idr_body: None,
            child_spi: 0,
            esp_offer: SaPayload::default(),
            eap: None,
            anyconnect: None,
            msk: None,
            gateway_verified: false,
            eap_done: false,
            password: self.settings.password.clone(),
        };
        self.init = Some(init);
        self.transmits.push_back(bytes.clone());
        self.outstanding = Some(Outstanding {
            id: 0,
            datagrams: vec![bytes],
            tries: 0,
            purpose: Purpose::SaInit,
        });
        self.arm_retransmit(now);
        if first_attempt {
            self.events.push_back(Event::Progress(Progress::Contacting));
        }
        Ok(())
    }

    fn on_sa_init_response(&mut self, now: Instant, hdr: &Header, data: &[u8]) -> Received {
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => return self.drop_w(e),
        };
        debug!(
            "received IKE_SA_INIT response 0 {}",
            describe::summary(&msg.payloads)
        );
        trace!(
            "IKE_SA_INIT response payloads:\n{}",
            describe::detail(&msg.payloads)
        );
        if let Err(e) = wire::check_payloads(
            ExchangeType::IKE_SA_INIT,
            Direction::Response,
            &msg.payloads,
        ) {
            return self.drop_w(e);
        }
        for n in msg.notifies() {
            match n.ty {
                NotifyType::COOKIE => {
                    let cookie = n.data.to_vec();
                    // A gateway that rotated its secret may ask again with a
                    // new cookie (§2.6); the same one again means it refused
                    // ours. Bounded, so a gateway cannot keep us looping.
                    let (same, rounds) = self.init.as_ref().map_or((false, 0), |i| {
                        (i.cookie.as_deref() == Some(&cookie[..]), i.cookie_rounds)
                    });
                    if same || rounds >= MAX_COOKIE_ROUNDS {
                        self.fail(DisconnectReason::Protocol(format!(
                            "the gateway asked for a cookie {} times",
                            rounds + 1
                        )));
                        return Received::Consumed;
                    }
                    info!("gateway requested a COOKIE, retrying");
                    let group = self
                        .init
                        .as_ref()
                        .map_or(wire::DhId::ECP_384, |i| i.dh.group());
                    if let Err(e) = self.start_sa_init(now, group, Some(cookie)) {
                        self.fail(e);
                    }
                    return Received::Consumed;
                }
                NotifyType::INVALID_KE_PAYLOAD => {
                    let want = n
                        .data
                        .get(..2)
                        .map(|b| wire::DhId(u16::from_be_bytes([b[0], b[1]])));
                    let offered = self.init.as_ref().is_some_and(|i| {
                        i.offer.proposals.iter().any(|p| {
                            p.of_type(wire::TransformType::DH)
                                .any(|t| Some(wire::DhId(t.id)) == want)
                        })
                    });
                    let tried = want.is_some_and(|g| {
                        self.init
                            .as_ref()
                            .is_some_and(|i| i.groups_tried.contains(&g))
                    });
                    match want {
                        Some(g) if offered && tried => {
                            self.fail(DisconnectReason::Protocol(format!(
                                "INVALID_KE_PAYLOAD asks for {g:?} again, which we already sent (a gateway alternating groups)"
                            )))
                        }
                        Some(g) if offered => {
                            info!("gateway asked for DH group {g:?}, retrying");
                            let cookie = self.init.as_ref().and_then(|i| i.cookie.clone());
                            if let Err(e) = self.start_sa_init(now, g, cookie) {
                                self.fail(e);
                            }
                        }
                        _ => self.fail(DisconnectReason::Protocol(format!(
                            "INVALID_KE_PAYLOAD asks for {want:?}, which we did not offer"
                        ))),
                    }
                    return Received::Consumed;
                }
                NotifyType::NO_PROPOSAL_CHOSEN => {
                    self.fail(DisconnectReason::NoProposalChosen(String::new()));
                    return Received::Consumed;
                }
                t if t.is_error() => {
                    self.fail(DisconnectReason::PeerNotify(t));
                    return Received::Consumed;
                }
                _ => {}
            }
        }
        let Some(init) = self.init.as_mut() else {
            return Received::Dropped("no IKE_SA_INIT outstanding");
        };
        let mut sa = None;
        let mut ke = None;
        let mut nr = None;
        let (mut nat_src, mut nat_dst) = (Vec::new(), Vec::new());
        let mut frag = false;
        let mut cisco_frag = false;
        for p in &msg.payloads {
            match &p.body {
                PayloadBody::Sa(s) => sa = Some(s),
                PayloadBody::Ke(k) => ke = Some(k),
                PayloadBody::Nonce(n) => nr = Some(n.to_vec()),
                PayloadBody::Notify(n) if n.ty == NotifyType::NAT_DETECTION_SOURCE_IP => {
                    nat_src.push(n.data.to_vec())
                }
                PayloadBody::Notify(n) if n.ty == NotifyType::NAT_DETECTION_DESTINATION_IP => {
                    nat_dst.push(n.data.to_vec())
                }
                PayloadBody::Notify(n) if n.ty == NotifyType::IKEV2_FRAGMENTATION_SUPPORTED => {
                    frag = true
                }
                PayloadBody::VendorId(v)
                    if v.starts_with(&super::cisco_frag::VID_FRAGMENTATION) =>
                {
                    cisco_frag = true
                }
                _ => {}
            }
        }
        let (Some(sa), Some(ke), Some(nr)) = (sa, ke, nr) else {
            return self.drop("IKE_SA_INIT response without SA, KE or Nr");
        };
        let suite = match proposals::select_ike(&init.offer, sa) {
            Ok(s) => s,
            Err(e) => {
                self.fail(DisconnectReason::Protocol(e.0));
                return Received::Consumed;
            }
        };
        if suite.dh != init.dh.group() || ke.group != suite.dh {
            self.fail(DisconnectReason::Protocol(
                "the gateway's KE does not match the chosen DH group".into(),
            ));
            return Received::Consumed;
        }
        let gir = match init.dh.shared(ke.data) {
            Ok(g) => g,
            Err(e) => {
                self.fail(DisconnectReason::Protocol(e.to_string()));
                return Received::Consumed;
            }
        };
        let spi_r = hdr.spi_r;
        let seed = keymat::skeyseed(&suite.prf, &init.ni, &nr, gir.expose());
        let integ_len = suite.integ.map_or(0, |i| i.key_len());
        let keys = keymat::ike_keys(
            &suite.prf,
            seed.expose(),
            &init.ni,
            &nr,
            &self.spi_i,
            &spi_r,
            KeyLengths {
                integ: integ_len,
                encr: suite.encr.key_len(),
            },
        );
        init.nr = nr;
        init.msg2 = data.to_vec();
        // NAT detection (§2.23): compare the hashes the gateway computed.
        let gw_hash = nat_hash(&self.spi_i, &spi_r, self.settings.gateway);
        let my_hash = nat_hash(&self.spi_i, &spi_r, self.settings.local);
        let gw_natted = !nat_src.is_empty() && !nat_src.contains(&gw_hash);
        let me_natted = !nat_dst.is_empty() && !nat_dst.contains(&my_hash);
        if gw_natted || me_natted {
            info!(
                "NAT detected ({})",
                if me_natted {
                    "we are behind NAT"
                } else {
                    "the gateway is behind NAT"
                }
            );
        }
        // Float to 4500 always, as AnyConnect does: it keeps ESP in UDP and
        // works with gateways that fake NAT-D (strongSwan libipsec).
        self.nat_t = true;
        self.peer_fragmentation = frag;
        self.peer_cisco_fragmentation = cisco_frag;
        self.outstanding = None;
        let nat = gw_natted || me_natted;
        self.behind_nat = me_natted;
        self.ike = Some(IkeSa::new(suite, keys, self.spi_i, spi_r, true));
        if let Some(ike) = self.ike.as_mut() {
            ike.next_id = 1;
        }
        self.events.push_back(Event::Progress(Progress::SaInitDone {
            proposal: suite.name(),
            nat,
        }));
        info!("IKE_SA_INIT done: {}", suite.name());
        self.state = State::Authenticating;
        self.send_auth(now);
        Received::Consumed
    }

    // ----- encrypted messages -----

    /// Builds the datagrams of an encrypted message (fragmenting if needed).
    fn seal(
        &mut self,
        old: bool,
        exchange: ExchangeType,
        id: u32,
        response: bool,
        payloads: &[Payload<'_>],
    ) -> Vec<Vec<u8>> {
        let mut inner = Writer::new();
        let first = emit_chain(payloads, PayloadType::NONE, &mut inner);
        let Self {
            ike,
            old_ike,
            rng,
            settings,
            peer_fragmentation,
            peer_cisco_fragmentation,
            cisco_frag_id,
            ..
        } = self;
        let Some(sa) = (if old { old_ike.as_ref() } else { ike.as_ref() }) else {
            return vec![];
        };
        let mut flags = if sa.initiator { Flags::INITIATOR } else { 0 };
        if response {
            flags |= Flags::RESPONSE;
        }
        let header = |next: PayloadType| Header {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            next_payload: next,
            version: 0x20,
            exchange,
            flags: Flags(flags),
            message_id: id,
            length: 0,
        };
        let marker = if self.nat_t { 4 } else { 0 };
        let whole = HEADER_LEN + 4 + inner.buf.len() + sa.out.overhead(inner.buf.len());
        // RFC 7383 §2.5.1: only fragment if the peer supports it, and never IKE_SA_INIT.
        if !*peer_fragmentation || whole + marker <= settings.fragment_size {
            let mut w = Writer::new();
            header(PayloadType::SK).emit(&mut w);
            w.bytes(&[first.0, 0, 0, 0]);
            let mut buf = w.buf;
            sa.out
                .seal(rng.as_mut(), &mut buf, HEADER_LEN + 2, &inner.buf);
            if !*peer_fragmentation
                && *peer_cisco_fragmentation
                && buf.len() + marker > settings.fragment_size
            {
                // Cisco's scheme fragments the encrypted message (RFC 7383 is preferred when offered).
                *cisco_frag_id = cisco_frag_id.wrapping_add(1);
                let f = super::cisco_frag::split(
                    &buf,
                    *cisco_frag_id,
                    settings.fragment_size.saturating_sub(marker),
                );
                debug!(
                    "splitting IKE message ({} bytes) into {} Cisco fragments",
                    buf.len(),
                    f.len()
                );
                return f;
            }
            return vec![buf];
        }
        let room = settings
            .fragment_size
            .saturating_sub(marker + HEADER_LEN + 8 + sa.out.overhead(0) + 16)
            .max(64);
        let chunks: Vec<&[u8]> = inner.buf.chunks(room).collect();
        let total = chunks.len() as u16;
        debug!("splitting IKE message ({whole} bytes) into {total} fragments");
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let num = i as u16 + 1;
                let mut w = Writer::new();
                header(PayloadType::SKF).emit(&mut w);
                w.bytes(&[if num == 1 { first.0 } else { 0 }, 0, 0, 0]);
                w.u16(num);
                w.u16(total);
                let mut buf = w.buf;
                sa.out.seal(rng.as_mut(), &mut buf, HEADER_LEN + 2, c);
                buf
            })
            .collect()
    }

    fn send_request(
        &mut self,
        now: Instant,
        exchange: ExchangeType,
        payloads: &[Payload<'_>],
        purpose: Purpose,
    ) {
        let Some(id) = self.ike.as_ref().map(|i| i.next_id) else {
            return;
        };
        debug!(
            "sending {exchange:?} request {id} {}",
            describe::summary(payloads)
        );
        trace!(
            "{exchange:?} request {id} payloads:\n{}",
            describe::detail(payloads)
        );
        let datagrams = self.seal(false, exchange, id, false, payloads);
        if let Some(ike) = self.ike.as_mut() {
            ike.next_id += 1;
        }
        self.transmits.extend(datagrams.iter().cloned());
        self.outstanding = Some(Outstanding {
            id,
            datagrams,
            tries: 0,
            purpose,
        });
        self.arm_retransmit(now);
    }

    fn send_response(
        &mut self,
        old: bool,
        exchange: ExchangeType,
        id: u32,
        payloads: &[Payload<'_>],
    ) {
        debug!(
            "sending {exchange:?} response {id} {}",
            describe::summary(payloads)
        );
        trace!(
            "{exchange:?} response {id} payloads:\n{}",
            describe::detail(payloads)
        );
        let datagrams = self.seal(old, exchange, id, true, payloads);
        self.transmits.extend(datagrams.iter().cloned());
        let sa = if old {
            self.old_ike.as_mut()
        } else {
            self.ike.as_mut()
        };
        if let Some(sa) = sa {
            sa.cached_response = Some((id, datagrams));
            sa.peer_next_id = id.wrapping_add(1);
        }
    }

    /// Verifies and decrypts an SK message, or adds an SKF fragment.
    /// Returns the first inner payload type and the plaintext when complete.
    fn open(
        &mut self,
        now: Instant,
        old: bool,
        hdr: &Header,
        data: &[u8],
    ) -> Result<Option<(PayloadType, Vec<u8>)>, &'static str> {
        let (payloads, inner_first) = parse_chain(hdr.next_payload, &data[HEADER_LEN..])
            .map_err(|_| "malformed IKE message")?;
        let sa = if old {
            self.old_ike.as_ref()
        } else {
            self.ike.as_ref()
        }
        .ok_or("no IKE SA")?;
        let Some(last) = payloads.last() else {
            return Err("unencrypted message after IKE_SA_INIT");
        };
        // Everything before the encrypted payload must be... nothing (§3.14 allows
        // only it after the header in practice); refuse plaintext payloads.
        if payloads.len() != 1 {
            return Err("unprotected payloads in an encrypted message");
        }
        match &last.body {
            PayloadBody::Sk(_) => {
                let pt = sa
                    .inp
                    .open(data, HEADER_LEN + 4)
                    .map_err(|_| "integrity check failed")?;
                self.last_inbound = Some(now);
                Ok(Some((inner_first, pt)))
            }
            PayloadBody::Skf(Skf { number, total, .. }) => {
                let (number, total) = (*number, *total);
                let pt = sa
                    .inp
                    .open(data, HEADER_LEN + 8)
                    .map_err(|_| "integrity check failed on a fragment")?;
                self.last_inbound = Some(now);
                let max_f = self.settings.max_fragments;
                let max_b = self.settings.max_reassembled;
                if self
                    .reassembly
                    .as_ref()
                    .is_none_or(|r| r.message_id != hdr.message_id)
                {
                    match Reassembly::new(hdr.message_id, total, max_f, now) {
                        Ok(r) => self.reassembly = Some(r),
                        Err(e) => return Err(frag_err(e)),
                    }
                    self.timers[Timer::Reassembly as usize] =
                        Some(now + self.settings.reassembly_timeout);
                }
                let r = self.reassembly.as_mut().ok_or("no reassembly")?;
                trace!("received fragment #{number} of {total}");
                match r.add(number, total, inner_first, pt, max_b) {
                    Ok(Some(done)) => {
                        debug!("received fragment #{number} of {total}, reassembled fragmented IKE message ({} bytes)", done.1.len());
                        self.reassembly = None;
                        self.timers[Timer::Reassembly as usize] = None;
                        Ok(Some(done))
                    }
                    Ok(None) => Ok(None),
                    Err(e) => {
                        self.reassembly = None;
                        Err(frag_err(e))
                    }
                }
            }
            _ => Err("unencrypted message after IKE_SA_INIT"),
        }
    }

    fn on_response(&mut self, now: Instant, hdr: &Header, data: &[u8]) -> Received {
        let Some(o) = self.outstanding.as_ref() else {
            debug!(
                "{:?} response {} without a request in flight",
                hdr.exchange, hdr.message_id
            );
            return self.drop("response without a request");
        };
        // §3.1: the I flag marks the original initiator's messages; the peer's
        // must carry the opposite of ours.
        let we_initiated = self.ike.as_ref().is_none_or(|i| i.initiator);
        if hdr.message_id != o.id || hdr.flags.initiator() == we_initiated {
            return self.drop("response out of window");
        }
        let purpose = o.purpose;
        if purpose == Purpose::SaInit {
            if hdr.exchange != ExchangeType::IKE_SA_INIT || hdr.spi_i != self.spi_i {
                return self.drop("unexpected response to IKE_SA_INIT");
            }
            return self.on_sa_init_response(now, hdr, data);
        }
        if self
            .ike
            .as_ref()
            .is_none_or(|i| i.spi_i != hdr.spi_i || i.spi_r != hdr.spi_r)
        {
            return self.drop("response for another IKE SA");
        }
        let (first, pt) = match self.open(now, false, hdr, data) {
            Ok(Some(x)) => x,
            Ok(None) => return Received::Consumed,
            Err(e) => return self.drop(e),
        };
        self.outstanding = None;
        match purpose {
            Purpose::Auth => self.on_auth_response(now, first, &pt),
            Purpose::Delete => {
                debug!("IKE SA deleted");
                self.finish(DisconnectReason::LocallyClosed);
            }
            Purpose::ChildRekey | Purpose::IkeRekey => {
                self.on_rekey_response(now, purpose, first, &pt)
            }
            Purpose::DeleteChild => debug!("old CHILD SA deleted"),
            Purpose::Dpd => {
                debug!("DPD answered");
                self.stats.dpd_answered += 1;
            }
            Purpose::SaInit => {}
        }
        Received::Consumed
    }

    // ----- IKE_AUTH -----

    fn send_auth(&mut self, now: Instant) {
        let (idt, idd) = id_payload(&self.settings.identity, self.settings.local);
        let mut spi = [0u8; 4];
        self.rng.fill(&mut spi);
        let child_spi = u32::from_be_bytes(spi) | 0xc000_0000;
        let esp_offer = proposals::esp_proposals(child_spi, self.settings.legacy, None);
        let idr = self.settings.remote_id.as_deref().map(remote_id_bytes);
        let idi = Id {
            ty: idt,
            data: &idd,
        };
        let idi_body = idi.body();
        let anyconnect = match &self.settings.auth {
            LocalAuth::AnyConnect(a) => Some(a.clone()),
            _ => None,
        };
        let mut payloads = Vec::new();
        if anyconnect.is_some() {
            // Seed 004: the first IKE_AUTH starts with the 16-byte "GRANITE" VID.
            payloads.push(Payload::from(PayloadBody::VendorId(
                &super::cisco::VID_GRANITE,
            )));
        }
        payloads.push(Payload::from(PayloadBody::IdI(idi)));
        // CERTREQ with the SHA-1 of each trust anchor's SPKI (§3.7), so that
        // gateways send the certificate that chains to one we know.
        let certreq: Vec<u8> = self
            .settings
            .trust
            .anchors
            .iter()
            .filter_map(|a| {
                use x509_parser::prelude::FromDer;
                let (_, c) = x509_parser::certificate::X509Certificate::from_der(a).ok()?;
                Some(
                    aws_lc_rs::digest::digest(
                        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                        c.tbs_certificate.subject_pki.raw,
                    )
                    .as_ref()
                    .to_vec(),
                )
            })
            .flatten()
            .collect();
        let eap = matches!(
            self.settings.auth,
            LocalAuth::Eap(_) | LocalAuth::AnyConnect(_)
        );
        if eap {
            payloads.push(Payload::from(PayloadBody::CertReq(Cert {
                encoding: CertEncoding::X509_SIGNATURE,
                data: &certreq,
            })));
        }
        if let Some((t, d)) = &idr {
            payloads.push(Payload::from(PayloadBody::IdR(Id { ty: *t, data: d })));
        }
        let Some(init) = self.init.as_mut() else {
            return;
        };
        let Some(ike) = self.ike.as_ref() else { return };
        let auth_data;
        if let LocalAuth::Psk(psk) = &self.settings.auth {
            let octets = signed_octets(
                &init.msg1,
                &init.nr,
                &ike.suite.prf,
                ike.keys.sk_pi.expose(),
                &idi_body,
            );
            auth_data = shared_key_auth(&ike.suite.prf, psk.expose(), &octets);
            payloads.push(Payload::from(PayloadBody::Auth(Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: &auth_data,
            })));
        }
        let empty: [u8; 0] = [];
        let mut attrs = vec![
            CfgAttribute {
                ty: CfgAttr::INTERNAL_IP4_ADDRESS,
                value: &empty,
            },
            CfgAttribute {
                ty: CfgAttr::INTERNAL_IP4_NETMASK,
                value: &empty,
            },
            CfgAttribute {
                ty: CfgAttr::INTERNAL_IP4_DNS,
                value: &empty,
            },
            CfgAttribute {
                ty: CfgAttr::INTERNAL_IP4_NBNS,
                value: &empty,
            },
            CfgAttribute {
                ty: CfgAttr::INTERNAL_DNS_DOMAIN,
                value: &empty,
            },
        ];
        let cisco_attrs = anyconnect
            .as_ref()
            .map(|a| super::cisco::request(&a.app_version, &a.hostname, a.mtu));
        if let Some(c) = &cisco_attrs {
            attrs = c
                .iter()
                .map(|(t, v)| CfgAttribute { ty: *t, value: v })
                .collect();
        }
        if self.settings.request_ipv6 {
            attrs.push(CfgAttribute {
                ty: CfgAttr::INTERNAL_IP6_ADDRESS,
                value: &empty,
            });
            attrs.push(CfgAttribute {
                ty: CfgAttr::INTERNAL_IP6_DNS,
                value: &empty,
            });
        }
        payloads.push(Payload::from(PayloadBody::Cp(ConfigPayload {
            cfg_type: CfgType::CFG_REQUEST,
            attributes: attrs,
        })));
        payloads.push(Payload::from(PayloadBody::Sa(esp_offer.clone())));
        let mut tsi = vec![TrafficSelector::any_v4()];
        let mut tsr = vec![TrafficSelector::any_v4()];
        if self.settings.request_ipv6 {
            tsi.push(TrafficSelector::any_v6());
            tsr.push(TrafficSelector::any_v6());
        }
        payloads.push(Payload::from(PayloadBody::TsI(TsPayload {
            selectors: tsi,
        })));
        payloads.push(Payload::from(PayloadBody::TsR(TsPayload {
            selectors: tsr,
        })));
        payloads.push(Payload::from(PayloadBody::Notify(Notify::new(
            NotifyType::INITIAL_CONTACT,
            &[],
        ))));
        init.idi_body = idi_body;
        init.child_spi = child_spi;
        init.esp_offer = esp_offer;
        if let LocalAuth::Eap(methods) = &self.settings.auth {
            let user = self
                .settings
                .username
                .clone()
                .unwrap_or_else(|| String::from_utf8_lossy(&idd).into_owned());
            init.eap = Some(EapPeer::new(user, methods.clone()));
        }
        if let Some(a) = anyconnect {
            let me = crate::eap::anyconnect::xml::ClientInfo {
                version: a.version,
                device_id: a.device_id,
            };
            init.anyconnect = Some(crate::eap::anyconnect::peer::AnyConnectPeer::new(
                me, a.group, a.resume,
            ));
        }
        let owned: Vec<Payload<'_>> = payloads;
        self.send_request(now, ExchangeType::IKE_AUTH, &owned, Purpose::Auth);
    }

    fn on_auth_response(&mut self, now: Instant, first: PayloadType, pt: &[u8]) {
        let payloads = match parse_chain(first, pt) {
            Ok((p, _)) => p,
            Err(e) => {
                return self.fail(DisconnectReason::Protocol(format!(
                    "IKE_AUTH response: {e}"
                )))
            }
        };
        debug!(
            "received IKE_AUTH response {}",
            describe::summary(&payloads)
        );
        trace!(
            "IKE_AUTH response payloads:\n{}",
            describe::detail(&payloads)
        );
        if let Err(e) = wire::check_payloads(ExchangeType::IKE_AUTH, Direction::Response, &payloads)
        {
            return self.fail(DisconnectReason::Protocol(format!(
                "IKE_AUTH response: {e}"
            )));
        }
        let mut auth_error = None;
        for p in &payloads {
            if let PayloadBody::Notify(n) = &p.body {
                if n.ty.is_error() {
                    auth_error.get_or_insert(n.ty);
                }
            }
        }
        let idr = payloads.iter().find_map(|p| match &p.body {
            PayloadBody::IdR(id) => Some(id.clone()),
            _ => None,
        });
        let auth = payloads.iter().find_map(|p| match &p.body {
            PayloadBody::Auth(a) => Some(a.clone()),
            _ => None,
        });
        let eap = payloads.iter().find_map(|p| match &p.body {
            PayloadBody::Eap(e) => Some(e.to_vec()),
            _ => None,
        });
        if let Some(n) = auth_error {
            if auth.is_none() || n == NotifyType::AUTHENTICATION_FAILED {
                let reason = match n {
                    NotifyType::AUTHENTICATION_FAILED => {
                        DisconnectReason::AuthFailed(String::new())
                    }
                    NotifyType::NO_PROPOSAL_CHOSEN => {
                        DisconnectReason::NoProposalChosen("for the CHILD SA".into())
                    }
                    other => DisconnectReason::PeerNotify(other),
                };
                return self.fail(reason);
            }
        }
        let Some(init) = self.init.as_ref() else {
            return;
        };
        let eap_mode = init.eap.is_some() || init.anyconnect.is_some();
        if !init.gateway_verified {
            // First response: the gateway authenticates (IDr, [CERT], AUTH).
            let (Some(idr), Some(auth)) = (idr, auth.clone()) else {
                return self.fail(DisconnectReason::Protocol(
                    "IKE_AUTH response without IDr and AUTH".into(),
                ));
            };
            if let Some(want) = &self.settings.remote_id {
                let (t, d) = remote_id_bytes(want);
                if idr.ty != t || idr.data != &d[..] {
                    return self.fail(DisconnectReason::GatewayAuthFailed(format!(
                        "it identified as {idr}, expected {want}"
                    )));
                }
            }
            let scheme = match self.verify_gateway(&payloads, &idr, &auth) {
                Ok(Some(s)) => s,
                Ok(None) => {
                    // Parked on a certificate prompt; resume in answer().
                    if let Some((
                        _,
                        Pending::Cert {
                            plaintext,
                            first: f,
                            ..
                        },
                    )) = self.pending.as_mut()
                    {
                        *plaintext = pt.to_vec();
                        *f = first;
                    }
                    return;
                }
                Err(r) => return self.fail(r),
            };
            if let Some(init) = self.init.as_mut() {
                init.gateway_verified = true;
                init.idr_body = Some(idr.body());
            }
            self.events
                .push_back(Event::Progress(Progress::GatewayAuthenticated {
                    id: idr.to_string(),
                    scheme,
                }));
            if !eap_mode {
                return self.establish(now, &payloads);
            }
            match eap {
                Some(e) => self.on_eap(now, &e),
                None => self.fail(DisconnectReason::Protocol(
                    "the gateway did not start EAP".into(),
                )),
            }
            return;
        }
        if let (true, Some(init)) = (eap_mode, self.init.as_ref()) {
            if init.eap_done {
                // Final response: AUTH keyed from the MSK or SK_pr (§2.16).
                let Some(auth) = auth else {
                    return self.fail(DisconnectReason::Protocol(
                        "final IKE_AUTH response without AUTH".into(),
                    ));
                };
                let Some(ike) = self.ike.as_ref() else { return };
                let idr = init.idr_body.clone().unwrap_or_default();
                let octets = signed_octets(
                    &init.msg2,
                    &init.ni,
                    &ike.suite.prf,
                    ike.keys.sk_pr.expose(),
                    &idr,
                );
                let key = init
                    .msk
                    .as_ref()
                    .map(|m| m.expose().to_vec())
                    .unwrap_or_else(|| ike.keys.sk_pr.expose().to_vec());
                let want = shared_key_auth(&ike.suite.prf, &key, &octets);
                if auth.method != AuthMethod::SHARED_KEY_MIC
                    || aws_lc_rs::constant_time::verify_slices_are_equal(&want, auth.data).is_err()
                {
                    return self.fail(DisconnectReason::GatewayAuthFailed(
                        "the final AUTH after EAP does not verify".into(),
                    ));
                }
                return self.establish(now, &payloads);
            }
            match eap {
                Some(e) => self.on_eap(now, &e),
                None => self.fail(DisconnectReason::Protocol(
                    "IKE_AUTH response without EAP".into(),
                )),
            }
        }
    }

    /// Checks the gateway's AUTH: PSK, or certificate chain + signature.
    /// Ok(None) means a prompt was raised.
    fn verify_gateway(
        &mut self,
        payloads: &[Payload<'_>],
        idr: &Id<'_>,
        auth: &Auth<'_>,
    ) -> Result<Option<String>, DisconnectReason> {
        let init = self
            .init
            .as_ref()
            .ok_or(DisconnectReason::Local("no init".into()))?;
        let ike = self
            .ike
            .as_ref()
            .ok_or(DisconnectReason::Local("no IKE SA".into()))?;
        let octets = signed_octets(
            &init.msg2,
            &init.ni,
            &ike.suite.prf,
            ike.keys.sk_pr.expose(),
            &idr.body(),
        );
        if let LocalAuth::Psk(psk) = &self.settings.auth {
            let want = shared_key_auth(&ike.suite.prf, psk.expose(), &octets);
            if auth.method == AuthMethod::SHARED_KEY_MIC
                && aws_lc_rs::constant_time::verify_slices_are_equal(&want, auth.data).is_ok()
            {
                return Ok(Some("PSK".into()));
            }
            return Err(DisconnectReason::GatewayAuthFailed(
                "its pre-shared key AUTH does not verify (wrong PSK?)".into(),
            ));
        }
        let certs: Vec<&[u8]> = payloads
            .iter()
            .filter_map(|p| match &p.body {
                PayloadBody::Cert(c) if c.encoding == CertEncoding::X509_SIGNATURE => Some(c.data),
                _ => None,
            })
            .collect();
        let Some((ee, inter)) = certs.split_first() else {
            return Err(DisconnectReason::GatewayAuthFailed(
                "it sent no certificate".into(),
            ));
        };
        let summary =
            sig::summarize(ee).map_err(|e| DisconnectReason::GatewayAuthFailed(e.to_string()))?;
        let scheme = sig::verify_auth(auth.method, auth.data, &octets, ee, ike.suite.prf.id())
            .map_err(|e| DisconnectReason::GatewayAuthFailed(e.to_string()))?;
        let pinned = self
            .settings
            .trust
            .pins
            .iter()
            .any(|p| summary.matches_pin(p));
        if !pinned {
            let inter: Vec<Vec<u8>> = inter.iter().map(|c| c.to_vec()).collect();
            let chain = sig::verify_chain(
                ee,
                &inter,
                &self.settings.trust.anchors,
                self.settings.trust.unix_time,
            )
            .and_then(|_| sig::verify_identity(ee, idr));
            if let Err(e) = chain {
                let reason = e.to_string();
                info!(
                    "gateway certificate not trusted: {reason}; subject {}, {}",
                    summary.subject, summary.pin
                );
                self.prompt_seq += 1;
                let id = PromptId(self.prompt_seq);
                self.events.push_back(Event::Prompt(Prompt {
                    id,
                    kind: PromptKind::TrustCertificate {
                        summary: summary.clone(),
                        reason: reason.clone(),
                    },
                }));
                self.pending = Some((
                    id,
                    Pending::Cert {
                        plaintext: Vec::new(),
                        first: PayloadType::NONE,
                        reason,
                        summary,
                    },
                ));
                return Ok(None);
            }
        }
        info!("authentication of '{idr}' with {scheme} successful");
        Ok(Some(scheme.to_string()))
    }

    fn on_eap(&mut self, now: Instant, msg: &[u8]) {
        if self.init.as_ref().is_some_and(|i| i.anyconnect.is_some()) {
            return self.on_anyconnect(now, msg);
        }
        let Self { init, rng, .. } = self;
        let Some(init) = init.as_mut() else { return };
        let Some(peer) = init.eap.as_mut() else {
            return;
        };
        let before = peer.method();
        let step = peer.handle(msg, init.password.as_ref(), rng.as_mut());
        let after = peer.method();
        let user = self.settings.username.clone().unwrap_or_default();
        if before != after {
            if let Some(m) = after {
                self.events
                    .push_back(Event::Progress(Progress::Eap(format!("{m:?}"))));
            }
        }
        match step {
            Step::Respond(r) => {
                let p = [Payload::from(PayloadBody::Eap(&r))];
                self.send_request(now, ExchangeType::IKE_AUTH, &p, Purpose::Auth);
            }
            Step::NeedPassword => {
                self.prompt_seq += 1;
                let id = PromptId(self.prompt_seq);
                self.pending = Some((id, Pending::Password { eap: msg.to_vec() }));
                self.events.push_back(Event::Prompt(Prompt {
                    id,
                    kind: PromptKind::Password { user },
                }));
            }
            Step::Success(msk) => self.send_final_auth(now, msk),
            Step::Failure(m) => self.fail(DisconnectReason::AuthFailed(m)),
            Step::Protocol(m) => self.fail(DisconnectReason::Protocol(m)),
        }
    }

    /// EAP-AnyConnect rounds (anyconnect-ikev2.md §1): forms become prompts.
    fn on_anyconnect(&mut self, now: Instant, msg: &[u8]) {
        use crate::eap::anyconnect::peer::AcStep;
        let Some(peer) = self.init.as_mut().and_then(|i| i.anyconnect.as_mut()) else {
            return;
        };
        debug!("EAP-AnyConnect: {}", crate::eap::describe(msg));
        match peer.handle(msg) {
            AcStep::Respond(r) => {
                let p = [Payload::from(PayloadBody::Eap(&r))];
                self.send_request(now, ExchangeType::IKE_AUTH, &p, Purpose::Auth);
            }
            AcStep::CertRequest => {
                // TLV 1 is the signature an IKE initiator would put in a
                // method-1 AUTH: over RealMessage1 | Nr | prf(SK_pi, IDi').
                let cert = match &self.settings.auth {
                    LocalAuth::AnyConnect(a) => a.client_cert.clone(),
                    _ => None,
                };
                let Some(cert) = cert else {
                    return self.fail(DisconnectReason::AuthFailed(
                        "the gateway asks for a client certificate; give --cert and --key".into(),
                    ));
                };
                let (Some(init), Some(ike)) = (self.init.as_mut(), self.ike.as_ref()) else {
                    return;
                };
                let octets = signed_octets(
                    &init.msg1,
                    &init.nr,
                    &ike.suite.prf,
                    ike.keys.sk_pi.expose(),
                    &init.idi_body,
                );
                let sig = sig::RsaSigner::from_der(cert.key.expose())
                    .and_then(|s| s.sign(ike.suite.prf.id(), &octets));
                let sig = match sig {
                    Ok(s) => s,
                    Err(e) => return self.fail(DisconnectReason::Local(e.to_string())),
                };
                let p7 = crate::crypto::pkcs7::certs_only(&cert.chain);
                let Some(Ok(eap)) = init.anyconnect.as_mut().map(|p| p.cert_reply(&p7, &sig))
                else {
                    return;
                };
                info!("answering the gateway's certificate request");
                let p = [Payload::from(PayloadBody::Eap(&eap))];
                self.send_request(now, ExchangeType::IKE_AUTH, &p, Purpose::Auth);
            }
            AcStep::HostScan(hs) => {
                self.prompt_seq += 1;
                let id = PromptId(self.prompt_seq);
                self.pending = Some((id, Pending::Form));
                self.events.push_back(Event::Prompt(Prompt {
                    id,
                    kind: PromptKind::HostScan(hs),
                }));
            }
            AcStep::Form(req) => {
                let hints = crate::eap::anyconnect::form::FormHints {
                    user: self.settings.username.clone(),
                    group: match &self.settings.auth {
                        LocalAuth::AnyConnect(a) => a.group.clone(),
                        _ => None,
                    },
                };
                let form = Box::new(crate::eap::anyconnect::form::Form::new(&req, &hints));
                self.prompt_seq += 1;
                let id = PromptId(self.prompt_seq);
                self.pending = Some((id, Pending::Form));
                self.events.push_back(Event::Prompt(Prompt {
                    id,
                    kind: PromptKind::AuthForm(form),
                }));
            }
            AcStep::Success => self.send_final_auth(now, None),
            AcStep::Failure(m) => self.fail(DisconnectReason::AuthFailed(m)),
            AcStep::Protocol(m) => self.fail(DisconnectReason::Protocol(m)),
        }
    }

    /// After EAP Success: AUTH keyed from the MSK, or from SK_pi when the
    /// method made none (RFC 7296 §2.16).
    fn send_final_auth(&mut self, now: Instant, msk: Option<Secret>) {
        {
            let Some(init) = self.init.as_mut() else {
                return;
            };
            init.msk = msk;
            init.eap_done = true;
            let Some(ike) = self.ike.as_ref() else { return };
            let octets = signed_octets(
                &init.msg1,
                &init.nr,
                &ike.suite.prf,
                ike.keys.sk_pi.expose(),
                &init.idi_body,
            );
            let key = init
                .msk
                .as_ref()
                .map(|m| m.expose().to_vec())
                .unwrap_or_else(|| ike.keys.sk_pi.expose().to_vec());
            let a = shared_key_auth(&ike.suite.prf, &key, &octets);
            let p = [Payload::from(PayloadBody::Auth(Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: &a,
            }))];
            self.send_request(now, ExchangeType::IKE_AUTH, &p, Purpose::Auth);
        }
    }

    /// Reads CP, SA and TS of the last IKE_AUTH response and goes up.
    fn establish(&mut self, now: Instant, payloads: &[Payload<'_>]) {
        let Some(init) = self.init.take() else { return };
        self.anyconnect_session = init.anyconnect.as_ref().and_then(|p| p.session().cloned());
        self.anyconnect_resumed = init.anyconnect.as_ref().is_some_and(|p| p.resumed());
        let Some(ike) = self.ike.as_ref() else { return };
        let mut cfg = TunnelConfig::default();
        let (mut sa, mut tsi, mut tsr) = (None, None, None);
        for p in payloads {
            match &p.body {
                PayloadBody::Cp(cp) if cp.cfg_type == CfgType::CFG_REPLY => apply_cfg(&mut cfg, cp),
                PayloadBody::Sa(s) => sa = Some(s),
                PayloadBody::TsI(t) => tsi = Some(t.selectors.clone()),
                PayloadBody::TsR(t) => tsr = Some(t.selectors.clone()),
                PayloadBody::Notify(n) if n.ty.is_error() => {
                    return self.fail(DisconnectReason::PeerNotify(n.ty));
                }
                _ => {}
            }
        }
        let (Some(sa), Some(tsi), Some(tsr)) = (sa, tsi, tsr) else {
            return self.fail(DisconnectReason::Protocol(
                "IKE_AUTH response without SA, TSi and TSr for the CHILD SA".into(),
            ));
        };
        let (suite, spi_out) = match proposals::select_esp(&init.esp_offer, sa) {
            Ok(x) => x,
            Err(e) => return self.fail(DisconnectReason::Protocol(e.0)),
        };
        let l = KeyLengths {
            integ: suite.integ.map_or(0, |i| i.key_len()),
            encr: suite.encr.key_len(),
        };
        let keys = keymat::child_keys(
            &ike.suite.prf,
            ike.keys.sk_d.expose(),
            None,
            &init.ni,
            &init.nr,
            l,
        );
        cfg.ts_local = tsi.clone();
        cfg.ts_remote = tsr.clone();
        let child = ChildSa {
            spi_in: init.child_spi,
            spi_out,
            suite,
            ts_local: tsi.clone(),
            ts_remote: tsr.clone(),
        };
        let info = child_info(&child, keys, true);
        info!(
            "CHILD_SA established with SPIs {:08x}_i {:08x}_o, {} TS {} === {}",
            init.child_spi,
            spi_out,
            suite.name(),
            tsi.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(","),
            tsr.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        self.child = Some(child);
        self.config = cfg.clone();
        self.state = State::Established;
        self.arm_lifetime(now, Timer::IkeRekey);
        self.arm_lifetime(now, Timer::ChildRekey);
        self.arm_liveness(now);
        self.events.push_back(Event::ChildSa(Box::new(info)));
        self.events.push_back(Event::Connected(Box::new(cfg)));
    }

    // ----- requests from the gateway -----

    fn on_request(&mut self, now: Instant, hdr: &Header, data: &[u8]) -> Received {
        let old = self
            .old_ike
            .as_ref()
            .is_some_and(|o| o.spi_i == hdr.spi_i && o.spi_r == hdr.spi_r);
        let Some(sa) = (if old {
            self.old_ike.as_ref()
        } else {
            self.ike.as_ref()
        }) else {
            return self.drop("request before the IKE SA exists");
        };
        if sa.spi_i != hdr.spi_i || sa.spi_r != hdr.spi_r {
            return self.drop("request for another IKE SA");
        }
        if self.state == State::SaInit || (self.state == State::Authenticating && !old) {
            return self.drop("request during IKE_AUTH");
        }
        // §2.2: a retransmitted request gets the cached response again.
        if let Some((id, dgrams)) = &sa.cached_response {
            if *id == hdr.message_id {
                let d = dgrams.clone();
                debug!("retransmitting response {id} for a retransmitted request");
                self.transmits.extend(d);
                return Received::Consumed;
            }
        }
        if hdr.message_id != sa.peer_next_id {
            return self.drop("request message ID out of window");
        }
        let (first, pt) = match self.open(now, old, hdr, data) {
            Ok(Some(x)) => x,
            Ok(None) => return Received::Consumed,
            Err(e) => return self.drop(e),
        };
        let payloads = match parse_chain(first, &pt) {
            Ok((p, _)) => p,
            Err(e) => {
                debug!("malformed {:?} request: {e}", hdr.exchange);
                return self.drop("malformed request");
            }
        };
        debug!(
            "received {:?} request {} {}",
            hdr.exchange,
            hdr.message_id,
            describe::summary(&payloads)
        );
        trace!(
            "{:?} request payloads:\n{}",
            hdr.exchange,
            describe::detail(&payloads)
        );
        if let Err(e) = wire::check_payloads(hdr.exchange, Direction::Request, &payloads) {
            debug!("{e}");
            let n = [Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::INVALID_SYNTAX,
                &[],
            )))];
            self.send_response(old, hdr.exchange, hdr.message_id, &n);
            return Received::Consumed;
        }
        match hdr.exchange {
            ExchangeType::INFORMATIONAL => self.on_informational(old, hdr.message_id, &payloads),
            ExchangeType::CREATE_CHILD_SA if !old => {
                self.on_create_child(now, hdr.message_id, &payloads)
            }
            other => {
                debug!("unsupported {other:?} request");
                let n = [Payload::from(PayloadBody::Notify(Notify::new(
                    NotifyType::NO_ADDITIONAL_SAS,
                    &[],
                )))];
                self.send_response(old, other, hdr.message_id, &n);
            }
        }
        Received::Consumed
    }

    fn on_informational(&mut self, old: bool, id: u32, payloads: &[Payload<'_>]) {
        let mut delete_ike = false;
        let mut our_spis = Vec::new();
        for p in payloads {
            if let PayloadBody::Delete(d) = &p.body {
                match d.protocol {
                    ProtocolId::IKE => delete_ike = true,
                    ProtocolId::ESP => {
                        for s in d.iter_spis() {
                            let Ok(b) = <[u8; 4]>::try_from(s) else {
                                continue;
                            };
                            let out = u32::from_be_bytes(b);
                            // §1.4.1: answer with the SPIs of our inbound halves.
                            if let Some(pos) = self.old_children.iter().position(|(_, o)| *o == out)
                            {
                                let (i, _) = self.old_children.remove(pos);
                                our_spis.extend_from_slice(&i.to_be_bytes());
                            } else if self.child.as_ref().is_some_and(|c| c.spi_out == out) {
                                if let Some(c) = self.child.take() {
                                    our_spis.extend_from_slice(&c.spi_in.to_be_bytes());
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        if delete_ike {
            self.send_response(old, ExchangeType::INFORMATIONAL, id, &[]);
            if old {
                debug!("old IKE SA deleted after rekey");
                self.old_ike = None;
            } else {
                self.finish(DisconnectReason::PeerDeleted);
            }
            return;
        }
        if our_spis.is_empty() {
            let dpd = payloads.is_empty();
            self.send_response(old, ExchangeType::INFORMATIONAL, id, &[]);
            if dpd {
                self.stats.dpd_answered += 1;
                self.events
                    .push_back(Event::Progress(Progress::DpdAnswered));
            }
        } else {
            let d = Delete {
                protocol: ProtocolId::ESP,
                spi_size: 4,
                spis: &our_spis,
            };
            self.send_response(
                old,
                ExchangeType::INFORMATIONAL,
                id,
                &[Payload::from(PayloadBody::Delete(d))],
            );
            if self.child.is_none() && self.state == State::Established {
                info!("the gateway deleted our only CHILD SA");
            }
        }
    }

    fn on_create_child(&mut self, now: Instant, id: u32, payloads: &[Payload<'_>]) {
        // A gateway-initiated exchange supersedes ours if both collide (§2.25).
        let mut sa = None;
        let mut ni = None;
        let mut ke = None;
        let mut rekey_spi = None;
        let (mut tsi, mut tsr) = (None, None);
        for p in payloads {
            match &p.body {
                PayloadBody::Sa(s) => sa = Some(s),
                PayloadBody::Nonce(n) => ni = Some(n.to_vec()),
                PayloadBody::Ke(k) => ke = Some(k.clone()),
                PayloadBody::Notify(n) if n.ty == NotifyType::REKEY_SA => {
                    rekey_spi = Some(n.spi.to_vec())
                }
                PayloadBody::TsI(t) => tsi = Some(t.clone()),
                PayloadBody::TsR(t) => tsr = Some(t.clone()),
                _ => {}
            }
        }
        let refuse = |s: &mut Self, n: NotifyType| {
            let p = [Payload::from(PayloadBody::Notify(Notify::new(n, &[])))];
            s.send_response(false, ExchangeType::CREATE_CHILD_SA, id, &p);
        };
        let (Some(sa), Some(ni)) = (sa, ni) else {
            return refuse(self, NotifyType::INVALID_SYNTAX);
        };
        let is_ike = sa.proposals.iter().any(|p| p.protocol == ProtocolId::IKE);
        let Some(ike) = self.ike.as_ref() else { return };
        let prf = ike.suite.prf;
        let mut nr = vec![0u8; 32];
        self.rng.fill(&mut nr);
        let ke_group = ke.as_ref().map(|k| k.group);
        let protocol = if is_ike {
            ProtocolId::IKE
        } else {
            ProtocolId::ESP
        };
        let Some(mut chosen) = proposals::choose_from_peer(sa, protocol, ke_group) else {
            return refuse(self, NotifyType::NO_PROPOSAL_CHOSEN);
        };
        let our_dh = match ke_group {
            Some(g) => match KeyPair::generate(g, self.rng.as_mut()) {
                Ok(k) => Some(k),
                Err(_) => return refuse(self, NotifyType::NO_PROPOSAL_CHOSEN),
            },
            None => None,
        };
        let gir = match (&our_dh, &ke) {
            (Some(d), Some(k)) => match d.shared(k.data) {
                Ok(s) => Some(s),
                Err(_) => return refuse(self, NotifyType::INVALID_SYNTAX),
            },
            _ => None,
        };
        let peer_prop = sa.proposals.iter().find(|p| p.num == chosen.num).cloned();
        if is_ike {
            // §1.3.2 / §2.18: the gateway rekeys the IKE SA; it becomes the
            // new SA's original initiator.
            let (Some(gir), Some(pp)) = (gir, peer_prop) else {
                return refuse(self, NotifyType::INVALID_SYNTAX);
            };
            let Ok(new_spi_i) = <[u8; 8]>::try_from(&pp.spi[..]) else {
                return refuse(self, NotifyType::INVALID_SYNTAX);
            };
            let mut new_spi_r = [0u8; 8];
            self.rng.fill(&mut new_spi_r);
            chosen.spi = new_spi_r.to_vec();
            let p = proposals::select_ike(
                &SaPayload {
                    proposals: vec![pp],
                },
                &SaPayload {
                    proposals: vec![Proposal {
                        num: chosen.num,
                        ..chosen.clone()
                    }],
                },
            );
            let Ok(suite) = p else {
                return refuse(self, NotifyType::NO_PROPOSAL_CHOSEN);
            };
            let seed =
                keymat::rekey_skeyseed(&suite.prf, ike.keys.sk_d.expose(), gir.expose(), &ni, &nr);
            let l = KeyLengths {
                integ: suite.integ.map_or(0, |i| i.key_len()),
                encr: suite.encr.key_len(),
            };
            let keys = keymat::ike_keys(
                &suite.prf,
                seed.expose(),
                &ni,
                &nr,
                &new_spi_i,
                &new_spi_r,
                l,
            );
            let Some(d) = &our_dh else { return };
            let resp = [
                Payload::from(PayloadBody::Sa(SaPayload {
                    proposals: vec![chosen.clone()],
                })),
                Payload::from(PayloadBody::Nonce(&nr)),
                Payload::from(PayloadBody::Ke(Ke {
                    group: d.group(),
                    data: d.public(),
                })),
            ];
            self.send_response(false, ExchangeType::CREATE_CHILD_SA, id, &resp);
            let new = IkeSa::new(suite, keys, new_spi_i, new_spi_r, false);
            self.old_ike = self.ike.replace(new);
            self.stats.ike_rekeys += 1;
            self.arm_lifetime(now, Timer::IkeRekey);
            info!("IKE_SA rekeyed by the gateway: {}", suite.name());
            self.events.push_back(Event::Progress(Progress::IkeRekeyed));
            return;
        }
        // CHILD SA (rekey or new): §1.3.1 / §1.3.3.
        let (Some(tsi), Some(tsr)) = (tsi, tsr) else {
            return refuse(self, NotifyType::INVALID_SYNTAX);
        };
        let Some(pp) = peer_prop else { return };
        let Ok(peer_spi) = <[u8; 4]>::try_from(&pp.spi[..]) else {
            return refuse(self, NotifyType::INVALID_SYNTAX);
        };
        let mut spi = [0u8; 4];
        self.rng.fill(&mut spi);
        let spi_in = u32::from_be_bytes(spi) | 0xc000_0000;
        chosen.spi = spi_in.to_be_bytes().to_vec();
        let (suite, spi_out) = match proposals::select_esp(
            &SaPayload {
                proposals: vec![pp],
            },
            &SaPayload {
                proposals: vec![chosen.clone()],
            },
        ) {
            Ok((s, _)) => (s, u32::from_be_bytes(peer_spi)),
            Err(_) => return refuse(self, NotifyType::NO_PROPOSAL_CHOSEN),
        };
        let l = KeyLengths {
            integ: suite.integ.map_or(0, |i| i.key_len()),
            encr: suite.encr.key_len(),
        };
        // The gateway initiated this exchange: the first keys are its outbound (our inbound).
        let keys = keymat::child_keys(
            &prf,
            ike.keys.sk_d.expose(),
            gir.as_ref().map(|g| g.expose()),
            &ni,
            &nr,
            l,
        );
        let mut resp = vec![
            Payload::from(PayloadBody::Sa(SaPayload {
                proposals: vec![chosen.clone()],
            })),
            Payload::from(PayloadBody::Nonce(&nr)),
        ];
        if let Some(d) = &our_dh {
            resp.push(Payload::from(PayloadBody::Ke(Ke {
                group: d.group(),
                data: d.public(),
            })));
        }
        // We are the responder of this exchange: TSi is the gateway's side.
        resp.push(Payload::from(PayloadBody::TsI(tsi.clone())));
        resp.push(Payload::from(PayloadBody::TsR(tsr.clone())));
        self.send_response(false, ExchangeType::CREATE_CHILD_SA, id, &resp);
        if rekey_spi.is_some() {
            if let Some(old) = self.child.take() {
                self.old_children.push((old.spi_in, old.spi_out));
            }
            self.stats.child_rekeys += 1;
            self.events
                .push_back(Event::Progress(Progress::ChildRekeyed));
        }
        info!(
            "CHILD_SA rekeyed by the gateway: SPIs {spi_in:08x}_i {spi_out:08x}_o, {}",
            suite.name()
        );
        let child = ChildSa {
            spi_in,
            spi_out,
            suite,
            ts_local: tsr.selectors,
            ts_remote: tsi.selectors,
        };
        // The gateway initiated this exchange: the first KEYMAT half is its outbound.
        let info = child_info(&child, keys, false);
        self.child = Some(child);
        self.arm_lifetime(now, Timer::ChildRekey);
        self.events.push_back(Event::ChildSa(Box::new(info)));
    }
}

impl Session {
    /// Arms our own rekey at 90 % (minus up to 10 % jitter) of the lifetime.
    fn arm_lifetime(&mut self, now: Instant, timer: Timer) {
        let life = match timer {
            Timer::IkeRekey => self.settings.ike_lifetime,
            Timer::ChildRekey => self.settings.child_lifetime,
            _ => None,
        };
        self.timers[timer as usize] = life.and_then(|l| {
            let mut j = [0u8; 1];
            self.rng.fill(&mut j);
            // Settings::validate bounds the lifetime; checked all the same.
            now.checked_add(l.mul_f64(0.8 + 0.1 * (j[0] as f64 / 255.0)))
        });
    }

    /// Starts our own CREATE_CHILD_SA rekey of the CHILD SA (§1.3.3) or the
    /// IKE SA (§1.3.2).
    fn start_rekey(&mut self, now: Instant, purpose: Purpose) {
        let Some(ike) = self.ike.as_ref() else { return };
        let mut ni = vec![0u8; 32];
        self.rng.fill(&mut ni);
        if purpose == Purpose::IkeRekey {
            let group = ike.suite.dh;
            let dh = match KeyPair::generate(group, self.rng.as_mut()) {
                Ok(k) => k,
                Err(e) => return warn!("cannot rekey the IKE SA: {e}"),
            };
            let mut spi = [0u8; 8];
            self.rng.fill(&mut spi);
            // Offer exactly the current suite: a rekey is no time to renegotiate.
            let mut offer =
                proposals::ike_proposals(self.settings.legacy, self.settings.legacy_group1, group);
            for p in &mut offer.proposals {
                p.spi = spi.to_vec();
            }
            let payloads = [
                Payload::from(PayloadBody::Sa(offer.clone())),
                Payload::from(PayloadBody::Nonce(&ni)),
                Payload::from(PayloadBody::Ke(Ke {
                    group,
                    data: dh.public(),
                })),
            ];
            self.send_request(
                now,
                ExchangeType::CREATE_CHILD_SA,
                &payloads,
                Purpose::IkeRekey,
            );
            self.rekey = Some(RekeyData {
                ni,
                dh: Some(dh),
                offer,
                new_spi: spi.to_vec(),
            });
            return;
        }
        let Some(child) = self.child.as_ref() else {
            return;
        };
        let mut spi = [0u8; 4];
        self.rng.fill(&mut spi);
        let new_spi = u32::from_be_bytes(spi) | 0xc000_0000;
        let offer = proposals::esp_proposals(new_spi, self.settings.legacy, None);
        let old_in = child.spi_in.to_be_bytes();
        let (tsl, tsr) = (child.ts_local.clone(), child.ts_remote.clone());
        let payloads = [
            Payload::from(PayloadBody::Notify(Notify {
                protocol: ProtocolId::ESP,
                spi: &old_in,
                ty: NotifyType::REKEY_SA,
                data: &[],
            })),
            Payload::from(PayloadBody::Sa(offer.clone())),
            Payload::from(PayloadBody::Nonce(&ni)),
            Payload::from(PayloadBody::TsI(TsPayload { selectors: tsl })),
            Payload::from(PayloadBody::TsR(TsPayload { selectors: tsr })),
        ];
        self.send_request(
            now,
            ExchangeType::CREATE_CHILD_SA,
            &payloads,
            Purpose::ChildRekey,
        );
        self.rekey = Some(RekeyData {
            ni,
            dh: None,
            offer,
            new_spi: new_spi.to_be_bytes().to_vec(),
        });
    }

    fn on_rekey_response(&mut self, now: Instant, purpose: Purpose, first: PayloadType, pt: &[u8]) {
        let Some(rk) = self.rekey.take() else { return };
        let payloads = match parse_chain(first, pt) {
            Ok((p, _)) => p,
            Err(e) => {
                return self.fail(DisconnectReason::Protocol(format!(
                    "CREATE_CHILD_SA response: {e}"
                )))
            }
        };
        debug!(
            "received CREATE_CHILD_SA response {}",
            describe::summary(&payloads)
        );
        // The same rule table as every other message (§3.10.1 and table 3.x
        // of RFC 7296): a rekey answer is not trusted more than the rest.
        if let Err(e) = wire::check_payloads(
            ExchangeType::CREATE_CHILD_SA,
            Direction::Response,
            &payloads,
        ) {
            return self.fail(DisconnectReason::Protocol(format!(
                "CREATE_CHILD_SA response: {e}"
            )));
        }
        let mut sa = None;
        let mut nr = None;
        let mut ke = None;
        for p in &payloads {
            match &p.body {
                PayloadBody::Sa(s) => sa = Some(s),
                PayloadBody::Nonce(n) => nr = Some(n.to_vec()),
                PayloadBody::Ke(k) => ke = Some(k.clone()),
                PayloadBody::Notify(n) if n.ty.is_error() => {
                    // e.g. TEMPORARY_FAILURE during a rekey collision (§2.25): try later.
                    info!("the gateway refused our rekey ({:?}); retrying later", n.ty);
                    let t = if purpose == Purpose::IkeRekey {
                        Timer::IkeRekey
                    } else {
                        Timer::ChildRekey
                    };
                    self.timers[t as usize] = Some(now + Duration::from_secs(10));
                    return;
                }
                _ => {}
            }
        }
        let (Some(sa), Some(nr)) = (sa, nr) else {
            return self.fail(DisconnectReason::Protocol(
                "CREATE_CHILD_SA response without SA and Nr".into(),
            ));
        };
        let Some(ike) = self.ike.as_ref() else { return };
        if purpose == Purpose::IkeRekey {
            let Some(p) = sa.proposals.first() else {
                return;
            };
            let Ok(new_spi_r) = <[u8; 8]>::try_from(&p.spi[..]) else {
                return self.fail(DisconnectReason::Protocol(
                    "IKE rekey response without an 8-byte SPI".into(),
                ));
            };
            let mut chosen = sa.clone();
            for p in &mut chosen.proposals {
                p.spi = rk.new_spi.clone();
            }
            let suite = match proposals::select_ike(&rk.offer, &chosen) {
                Ok(s) => s,
                Err(e) => return self.fail(DisconnectReason::Protocol(e.0)),
            };
            let (Some(dh), Some(ke)) = (rk.dh, ke) else {
                return self.fail(DisconnectReason::Protocol(
                    "IKE rekey response without KE".into(),
                ));
            };
            let gir = match dh.shared(ke.data) {
                Ok(g) => g,
                Err(e) => return self.fail(DisconnectReason::Protocol(e.to_string())),
            };
            let Ok(new_spi_i) = <[u8; 8]>::try_from(&rk.new_spi[..]) else {
                return;
            };
            let seed = keymat::rekey_skeyseed(
                &ike.suite.prf,
                ike.keys.sk_d.expose(),
                gir.expose(),
                &rk.ni,
                &nr,
            );
            let l = KeyLengths {
                integ: suite.integ.map_or(0, |i| i.key_len()),
                encr: suite.encr.key_len(),
            };
            let keys = keymat::ike_keys(
                &suite.prf,
                seed.expose(),
                &rk.ni,
                &nr,
                &new_spi_i,
                &new_spi_r,
                l,
            );
            let new = IkeSa::new(suite, keys, new_spi_i, new_spi_r, true);
            let old = self.ike.replace(new);
            self.old_ike = old;
            // Delete the old IKE SA on the old SA (best effort: the gateway
            // also drops it when its lifetime ends).
            self.send_ike_delete_once(true);
            self.stats.ike_rekeys += 1;
            info!("IKE_SA rekeyed: {}", suite.name());
            self.events.push_back(Event::Progress(Progress::IkeRekeyed));
            self.arm_lifetime(now, Timer::IkeRekey);
            return;
        }
        // CHILD SA rekey: we initiated, so the first KEYMAT half is our outbound.
        let (suite, spi_out) = match proposals::select_esp(&rk.offer, sa) {
            Ok(x) => x,
            Err(e) => return self.fail(DisconnectReason::Protocol(e.0)),
        };
        let Ok(spi_in) = <[u8; 4]>::try_from(&rk.new_spi[..]).map(u32::from_be_bytes) else {
            return;
        };
        let l = KeyLengths {
            integ: suite.integ.map_or(0, |i| i.key_len()),
            encr: suite.encr.key_len(),
        };
        let keys = keymat::child_keys(&ike.suite.prf, ike.keys.sk_d.expose(), None, &rk.ni, &nr, l);
        let Some(old) = self.child.take() else { return };
        let child = ChildSa {
            spi_in,
            spi_out,
            suite,
            ts_local: old.ts_local.clone(),
            ts_remote: old.ts_remote.clone(),
        };
        let info = child_info(&child, keys, true);
        info!(
            "CHILD_SA rekeyed: SPIs {spi_in:08x}_i {spi_out:08x}_o, {}",
            suite.name()
        );
        self.child = Some(child);
        self.stats.child_rekeys += 1;
        self.events.push_back(Event::ChildSa(Box::new(info)));
        self.events
            .push_back(Event::Progress(Progress::ChildRekeyed));
        self.arm_lifetime(now, Timer::ChildRekey);
        // Make-before-break: the new SA is installed; now delete the old one (§1.4.1).
        let spis = old.spi_in.to_be_bytes();
        let d = Delete {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: &spis,
        };
        self.send_request(
            now,
            ExchangeType::INFORMATIONAL,
            &[Payload::from(PayloadBody::Delete(d))],
            Purpose::DeleteChild,
        );
    }
}

use crate::wire::Proposal;

impl Session {
    /// Sends DELETE for the current (or the rekeyed old) IKE SA once, without
    /// waiting for the answer: we are leaving either way, and the gateway
    /// would otherwise keep the SA until its own timeout.
    fn send_ike_delete_once(&mut self, old: bool) {
        let sa = if old {
            self.old_ike.as_ref()
        } else {
            self.ike.as_ref()
        };
        let Some(id) = sa.map(|s| s.next_id) else {
            return;
        };
        let d = Delete {
            protocol: ProtocolId::IKE,
            spi_size: 0,
            spis: &[],
        };
        let dg = self.seal(
            old,
            ExchangeType::INFORMATIONAL,
            id,
            false,
            &[Payload::from(PayloadBody::Delete(d))],
        );
        self.transmits.extend(dg);
    }
}

/// The data-plane view of a CHILD SA. RFC 7296 §2.17 takes KEYMAT for the
/// initiator→responder direction first, where "initiator" is whoever started
/// the exchange that created this SA (the gateway, for its rekeys).
/// DPD retransmissions after the first probe; with [`dpd_step`] spacing the
/// whole check spans half the interval, so a dead gateway is declared within
/// one interval of the last thing heard from it.
const DPD_PROBES: u32 = 4;

fn dpd_step(interval: Duration) -> Duration {
    (interval / (2 * (DPD_PROBES + 1))).max(Duration::from_millis(100))
}

fn child_info(c: &ChildSa, keys: keymat::ChildKeys, we_initiated: bool) -> ChildSaInfo {
    let keymat::ChildKeys {
        encr_i,
        integ_i,
        encr_r,
        integ_r,
    } = keys;
    let (encr_out, integ_out, encr_in, integ_in) = if we_initiated {
        (encr_i, integ_i, encr_r, integ_r)
    } else {
        (encr_r, integ_r, encr_i, integ_i)
    };
    ChildSaInfo {
        spi_in: c.spi_in,
        spi_out: c.spi_out,
        encr: c.suite.encr,
        integ: c.suite.integ,
        esn: c.suite.esn,
        encr_out,
        integ_out,
        encr_in,
        integ_in,
        ts_local: c.ts_local.clone(),
        ts_remote: c.ts_remote.clone(),
    }
}

fn frag_err(e: FragError) -> &'static str {
    match e {
        FragError::TooMany(_) => "too many fragments announced",
        FragError::TooLarge(_) => "reassembled message too large",
        FragError::Inconsistent => "inconsistent fragment numbers",
    }
}

fn apply_cfg(cfg: &mut TunnelConfig, cp: &ConfigPayload<'_>) {
    let mut v4_addr = None;
    let mut v4_mask = None;
    for a in &cp.attributes {
        let v = a.value;
        let v4 = || <[u8; 4]>::try_from(v).ok();
        match a.ty {
            CfgAttr::INTERNAL_IP4_ADDRESS => v4_addr = v4().map(std::net::Ipv4Addr::from),
            CfgAttr::INTERNAL_IP4_NETMASK => v4_mask = v4(),
            CfgAttr::INTERNAL_IP4_DNS => cfg.dns.extend(v4().map(IpAddr::from)),
            CfgAttr::INTERNAL_IP4_NBNS => cfg.nbns.extend(v4().map(IpAddr::from)),
            CfgAttr::INTERNAL_ADDRESS_EXPIRY if v.len() == 4 => {
                cfg.address_expiry = v4().map(u32::from_be_bytes)
            }
            CfgAttr::INTERNAL_IP4_SUBNET if v.len() == 8 => {
                let a: [u8; 4] = v[..4].try_into().unwrap_or([0; 4]);
                let m: [u8; 4] = v[4..].try_into().unwrap_or([0; 4]);
                cfg.subnets.push((IpAddr::from(a), prefix_of_mask(m)));
            }
            // §3.15.1: 16-byte address plus 1-byte prefix length.
            CfgAttr::INTERNAL_IP6_ADDRESS if v.len() == 17 => {
                let a: [u8; 16] = v[..16].try_into().unwrap_or([0; 16]);
                cfg.addresses.push((IpAddr::from(a), v[16]));
            }
            CfgAttr::INTERNAL_IP6_DNS if v.len() == 16 => {
                let a: [u8; 16] = v.try_into().unwrap_or([0; 16]);
                cfg.dns.push(IpAddr::from(a));
            }
            CfgAttr::INTERNAL_IP6_SUBNET if v.len() == 17 => {
                let a: [u8; 16] = v[..16].try_into().unwrap_or([0; 16]);
                cfg.subnets.push((IpAddr::from(a), v[16]));
            }
            CfgAttr::INTERNAL_DNS_DOMAIN if !v.is_empty() => {
                cfg.domains.push(String::from_utf8_lossy(v).into_owned())
            }
            _ if v.is_empty() => {}
            other => {
                if !cfg.cisco.apply(other.0, v) {
                    cfg.unknown.push((other.0, v.to_vec()))
                }
            }
        }
    }
    if let Some(a) = v4_addr {
        let prefix = v4_mask.map_or(32, prefix_of_mask);
        cfg.addresses.insert(0, (IpAddr::V4(a), prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cfg_reply_decoding() {
        let addr = [192, 0, 2, 7];
        let mask = [255, 255, 255, 0];
        let dns = [203, 0, 113, 53];
        let subnet = [203, 0, 113, 0, 255, 255, 255, 0];
        let mut v6 = [0u8; 17];
        v6[..2].copy_from_slice(&[0x20, 0x01]);
        v6[2..4].copy_from_slice(&[0x0d, 0xb8]);
        v6[15] = 1;
        v6[16] = 64;
        let cp = ConfigPayload {
            cfg_type: CfgType::CFG_REPLY,
            attributes: vec![
                CfgAttribute {
                    ty: CfgAttr::INTERNAL_IP4_ADDRESS,
                    value: &addr,
                },
                CfgAttribute {
                    ty: CfgAttr::INTERNAL_IP4_NETMASK,
                    value: &mask,
                },
                CfgAttribute {
                    ty: CfgAttr::INTERNAL_IP4_DNS,
                    value: &dns,
                },
                CfgAttribute {
                    ty: CfgAttr::INTERNAL_IP4_SUBNET,
                    value: &subnet,
                },
                CfgAttribute {
                    ty: CfgAttr::INTERNAL_IP6_ADDRESS,
                    value: &v6,
                },
                CfgAttribute {
                    ty: CfgAttr::INTERNAL_DNS_DOMAIN,
                    value: b"example.com",
                },
                CfgAttribute {
                    ty: CfgAttr(28711),
                    value: &[0x05, 0x7e],
                },
                CfgAttribute {
                    ty: CfgAttr(28727),
                    value: b"<config-auth>token</config-auth>\0",
                },
                CfgAttribute {
                    ty: CfgAttr(28683),
                    value: &[0x80, 0x0b, 0, 1],
                },
            ],
        };
        let mut cfg = TunnelConfig::default();
        apply_cfg(&mut cfg, &cp);
        assert_eq!(cfg.addresses[0], ("192.0.2.7".parse().unwrap(), 24));
        assert_eq!(cfg.addresses[1], ("2001:db8::1".parse().unwrap(), 64));
        assert_eq!(cfg.dns, vec!["203.0.113.53".parse::<IpAddr>().unwrap()]);
        assert_eq!(cfg.subnets, vec![("203.0.113.0".parse().unwrap(), 24)]);
        assert_eq!(cfg.domains, vec!["example.com".to_string()]);
        assert_eq!(cfg.cisco.mtu, Some(1406));
        assert!(cfg.cisco.complete_xml.is_some());
        assert_eq!(cfg.unknown, vec![(28683, vec![0x80, 0x0b, 0, 1])]);
        assert!(!format!("{cfg:?}").contains("token"), "no secret in Debug");
    }

    /// A gateway answer delivered as Cisco fragments (payload 132, out of
    /// order) is reassembled and processed: here INVALID_KE_PAYLOAD asking
    /// for Curve25519, so the session retries IKE_SA_INIT with that group.
    #[test]
    fn cisco_fragmented_answer_is_reassembled_and_processed() {
        let gw: SocketAddr = "198.51.100.1:500".parse().unwrap();
        let local: SocketAddr = "198.51.100.2:500".parse().unwrap();
        let s = Settings::new(
            gw,
            local,
            Identity::KeyId("a".into()),
            LocalAuth::Psk(Secret::new(b"k".to_vec())),
        );
        let now = crate::test_now();
        let mut session = Session::new(s, Box::new(crate::crypto::TestRng::new(3)), now).unwrap();
        let mut buf = Vec::new();
        assert!(session.poll_transmit(&mut buf).is_some());
        let req = Message::parse(&buf).unwrap();
        assert!(
            req.payloads
                .iter()
                .any(|p| p.body
                    == PayloadBody::VendorId(&super::super::cisco_frag::VID_FRAGMENTATION))
        );
        let group = wire::DhId::CURVE25519.0.to_be_bytes();
        // Pad with a large vendor ID so the answer needs several fragments.
        let filler = [0x55u8; 300];
        let resp = Message {
            header: Header {
                spi_r: [9; 8],
                flags: Flags(Flags::RESPONSE),
                ..req.header
            },
            payloads: vec![
                Payload::from(PayloadBody::Notify(Notify::new(
                    NotifyType::INVALID_KE_PAYLOAD,
                    &group,
                ))),
                Payload::from(PayloadBody::VendorId(&filler)),
            ],
            inner_first: PayloadType::NONE,
        }
        .emit();
        let frags = super::super::cisco_frag::split(&resp, 1, 200);
        assert!(frags.len() >= 2);
        for f in frags.iter().rev() {
            assert_eq!(session.handle_datagram(now, gw, f), Received::Consumed);
        }
        assert!(
            session.poll_transmit(&mut buf).is_some(),
            "a new IKE_SA_INIT"
        );
        let again = Message::parse(&buf).unwrap();
        let ke = again.payloads.iter().find_map(|p| match &p.body {
            PayloadBody::Ke(k) => Some(k.group),
            _ => None,
        });
        assert_eq!(ke, Some(wire::DhId::CURVE25519));
    }

    fn psk_session() -> (Session, SocketAddr, Instant) {
        let gw: SocketAddr = "198.51.100.1:500".parse().unwrap();
        let local: SocketAddr = "198.51.100.2:500".parse().unwrap();
        let s = Settings::new(
            gw,
            local,
            Identity::KeyId("a".into()),
            LocalAuth::Psk(Secret::new(b"k".to_vec())),
        );
        let now = crate::test_now();
        let session = Session::new(s, Box::new(crate::crypto::TestRng::new(3)), now).unwrap();
        (session, gw, now)
    }

    /// The gateway's answer to the request in `buf`: just this notify.
    fn notify_answer(buf: &[u8], ty: NotifyType, data: &[u8]) -> Vec<u8> {
        let req = Message::parse(buf).unwrap();
        Message {
            header: Header {
                spi_r: [0; 8],
                flags: Flags(Flags::RESPONSE),
                ..req.header
            },
            payloads: vec![Payload::from(PayloadBody::Notify(Notify::new(ty, data)))],
            inner_first: PayloadType::NONE,
        }
        .emit()
    }

    fn sent_ke_and_nonce(buf: &[u8]) -> (Option<wire::DhId>, Vec<u8>) {
        let m = Message::parse(buf).unwrap();
        let ke = m.payloads.iter().find_map(|p| match &p.body {
            PayloadBody::Ke(k) => Some(k.group),
            _ => None,
        });
        let ni = m.payloads.iter().find_map(|p| match &p.body {
            PayloadBody::Nonce(n) => Some(n.to_vec()),
            _ => None,
        });
        (ke, ni.unwrap())
    }

    /// A gateway alternating INVALID_KE_PAYLOAD groups once made the client
    /// restart 27 940 times in 4 s. Each offered group is tried once
    /// (RFC 7296 §1.2): asked for one already sent, the session ends.
    // IKE_SA_INIT { SA, KE(ECP-384), Ni, ... } -->
    //   <-- N(INVALID_KE_PAYLOAD, Curve25519)
    // IKE_SA_INIT { SA, KE(Curve25519), Ni, ... } -->
    //   <-- N(INVALID_KE_PAYLOAD, ECP-384)          (already tried: give up)
    #[test]
    fn invalid_ke_restarts_once_per_group() {
        let (mut session, gw, now) = psk_session();
        let mut buf = Vec::new();
        session.poll_transmit(&mut buf).unwrap();
        let (first, ni) = sent_ke_and_nonce(&buf);
        assert_eq!(first, Some(wire::DhId::ECP_384));
        let x25519 = wire::DhId::CURVE25519.0.to_be_bytes();
        let answer = notify_answer(&buf, NotifyType::INVALID_KE_PAYLOAD, &x25519);
        session.handle_datagram(now, gw, &answer);
        session.poll_transmit(&mut buf).unwrap();
        let (second, ni2) = sent_ke_and_nonce(&buf);
        assert_eq!(second, Some(wire::DhId::CURVE25519));
        assert_eq!(ni, ni2, "Ni is kept across restarts (a cookie covers it)");
        let ecp = wire::DhId::ECP_384.0.to_be_bytes();
        let answer = notify_answer(&buf, NotifyType::INVALID_KE_PAYLOAD, &ecp);
        session.handle_datagram(now, gw, &answer);
        assert!(
            session.poll_transmit(&mut buf).is_none(),
            "no third IKE_SA_INIT"
        );
        assert_eq!(session.state(), State::Closed);
        let Some(Event::Progress(_)) = session.poll_event() else {
            panic!("Contacting first")
        };
        match session.poll_event() {
            Some(Event::Disconnected(DisconnectReason::Protocol(m))) => {
                assert!(m.contains("again"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    /// RFC 7296 §2.6: the retry carries the COOKIE first and "all other
    /// payloads unchanged" (the same Ni and KE); the same cookie asked for
    /// again ends the session instead of looping.
    // IKE_SA_INIT { SA, KEi, Ni, ... } -->   <-- N(COOKIE)
    // IKE_SA_INIT { N(COOKIE), SA, KEi, Ni, ... } -->   <-- N(COOKIE) (same)
    #[test]
    fn cookie_retry_repeats_the_request() {
        let (mut session, gw, now) = psk_session();
        let mut buf = Vec::new();
        session.poll_transmit(&mut buf).unwrap();
        let first = Message::parse(&buf).unwrap();
        let first_payloads: Vec<_> = first.payloads.iter().map(|p| p.body.clone()).collect();
        let cookie = [0xc0u8; 20];
        let answer = notify_answer(&buf, NotifyType::COOKIE, &cookie);
        session.handle_datagram(now, gw, &answer);
        let mut again = Vec::new();
        session.poll_transmit(&mut again).unwrap();
        let retry = Message::parse(&again).unwrap();
        assert_eq!(
            retry.payloads[0].body,
            PayloadBody::Notify(Notify::new(NotifyType::COOKIE, &cookie))
        );
        let rest: Vec<_> = retry.payloads[1..].iter().map(|p| p.body.clone()).collect();
        assert_eq!(rest, first_payloads, "all other payloads unchanged");
        let answer = notify_answer(&again, NotifyType::COOKIE, &cookie);
        session.handle_datagram(now, gw, &answer);
        assert_eq!(session.state(), State::Closed);
    }
}
