//! The message layer under the tasks: our one outstanding request with its
//! retransmission back-off (RFC 7296 §2.1, §2.3 window of one), the cached
//! response for the gateway's retransmitted requests (§2.1), message IDs,
//! and sealing / opening encrypted messages — SK (§3.14), SKF fragments
//! (RFC 7383) and Cisco's fragments of the encrypted message (payload 132).
//!
//! It knows nothing about what a message means: [`Exchange::receive`]
//! returns the plaintext of an authentic message for the session to decode
//! and check once, and tasks hand it payloads to send.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tracing::{debug, trace, warn};

use super::cisco_frag::{self, CiscoReassembly};
use super::describe;
use super::fragment::{FragError, Reassembly};
use super::sa::IkeSa;
use crate::crypto::Rng;
use crate::error::{IkeDrop, PeerMisbehaved};
use crate::settings::Settings;
use crate::timer::{Timer, TimerTable};
use crate::wire::{
    self, emit_chain, parse_chain, Direction, ExchangeType, Flags, Header, Payload, PayloadBody,
    PayloadType, Skf, Writer, HEADER_LEN,
};

/// What our outstanding request is for: decides how it is retransmitted
/// and which task its answer goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// IKE_SA_INIT (plaintext).
    SaInit,
    /// An IKE_AUTH round.
    Auth,
    /// DELETE of the IKE SA: we are leaving.
    Delete,
    /// Our CHILD SA rekey (CREATE_CHILD_SA).
    ChildRekey,
    /// Our IKE SA rekey (CREATE_CHILD_SA).
    IkeRekey,
    /// DELETE of the CHILD SA our rekey replaced.
    DeleteChild,
    /// An empty INFORMATIONAL as a liveness check (§1.4, DPD).
    Dpd,
}

struct Outstanding {
    id: u32,
    exchange: ExchangeType,
    datagrams: Vec<Vec<u8>>,
    tries: u32,
    request: Request,
}

/// An authentic message (or what became of a datagram), for the session.
pub(crate) enum Inbound {
    /// Handled here: a fragment kept, a cached response re-sent, the old
    /// IKE SA's DELETE answered.
    Consumed,
    /// The IKE_SA_INIT response (plaintext, whole message).
    SaInitResponse(Vec<u8>),
    /// The answer to our outstanding request; the request is done.
    Response {
        request: Request,
        exchange: ExchangeType,
        first: PayloadType,
        plaintext: Vec<u8>,
    },
    /// A request from the gateway, in window; answer it with
    /// [`Exchange::send_response`] under the same `old` and `id`.
    Request {
        old: bool,
        exchange: ExchangeType,
        id: u32,
        first: PayloadType,
        plaintext: Vec<u8>,
    },
}

/// When our retransmissions run out.
pub(crate) struct GaveUp {
    pub(crate) request: Request,
    pub(crate) tries: u32,
    /// Why fragments never completed, if that is the likely reason.
    pub(crate) reassembly: Option<String>,
}

/// DPD retransmissions after the first probe; with [`dpd_step`] spacing the
/// whole check spans half the interval, so a dead gateway is declared within
/// one interval of the last thing heard from it.
pub(crate) const DPD_PROBES: u32 = 4;

/// The spacing of DPD probes within half an interval.
pub(crate) fn dpd_step(interval: Duration) -> Duration {
    (interval / (2 * (DPD_PROBES + 1))).max(Duration::from_millis(100))
}

/// The message layer of one session.
pub(crate) struct Exchange {
    /// Our SPI of the first IKE SA (IKE_SA_INIT).
    pub(crate) spi_i: [u8; 8],
    /// We float to UDP 4500 (with the non-ESP marker).
    pub(crate) nat_t: bool,
    /// The gateway's identity (IDr) and how it proved it, once verified.
    pub(crate) peer: Option<(String, String)>,
    /// The gateway supports RFC 7383.
    pub(crate) peer_fragmentation: bool,
    /// The gateway sent Cisco's FRAGMENTATION vendor ID.
    pub(crate) peer_cisco_fragmentation: bool,
    /// The current IKE SA.
    pub(crate) ike: Option<IkeSa>,
    /// The IKE SA replaced by a rekey, kept to answer (or see answered) its DELETE.
    pub(crate) old_ike: Option<IkeSa>,
    /// When the last authentic IKE message (or fragment) arrived.
    pub(crate) heard: Option<Instant>,
    cisco_frags: CiscoReassembly,
    cisco_frag_id: u16,
    reassembly: Option<Reassembly>,
    outstanding: Option<Outstanding>,
    transmits: VecDeque<Vec<u8>>,
    last_reassembly_error: Option<String>,
}

impl Exchange {
    pub(crate) fn new(spi_i: [u8; 8]) -> Exchange {
        Exchange {
            spi_i,
            nat_t: false,
            peer: None,
            peer_fragmentation: false,
            peer_cisco_fragmentation: false,
            ike: None,
            old_ike: None,
            heard: None,
            cisco_frags: CiscoReassembly::default(),
            cisco_frag_id: 0,
            reassembly: None,
            outstanding: None,
            transmits: VecDeque::new(),
            last_reassembly_error: None,
        }
    }

    /// What is outstanding, if anything.
    pub(crate) fn outstanding(&self) -> Option<Request> {
        self.outstanding.as_ref().map(|o| o.request)
    }

    /// Forgets the outstanding request (the session ended).
    pub(crate) fn abandon(&mut self) {
        self.outstanding = None;
    }

    /// The next datagram to send (IKE message, without the NAT-T marker).
    pub(crate) fn pop_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// Stops the timers nothing needs any more.
    pub(crate) fn sync_timers(&self, timers: &mut TimerTable) {
        if self.outstanding.is_none() {
            timers.stop(Timer::Retransmit);
        }
        if self.reassembly.is_none() && self.cisco_frags.is_empty() {
            timers.stop(Timer::Reassembly);
        }
    }

    // ----- sending -----

    /// Sends IKE_SA_INIT (plaintext `bytes`, message 0) as the outstanding
    /// request, replacing any earlier one (a COOKIE or INVALID_KE restart).
    pub(crate) fn send_sa_init(
        &mut self,
        now: Instant,
        timers: &mut TimerTable,
        rng: &mut dyn Rng,
        settings: &Settings,
        bytes: Vec<u8>,
    ) {
        self.transmits.push_back(bytes.clone());
        self.outstanding = Some(Outstanding {
            id: 0,
            exchange: ExchangeType::IKE_SA_INIT,
            datagrams: vec![bytes],
            tries: 0,
            request: Request::SaInit,
        });
        self.arm_retransmit(now, timers, rng, settings);
    }

    /// Sends an encrypted request on the current IKE SA as the outstanding one.
    #[allow(clippy::too_many_arguments)] // the context of one send, kept explicit
    pub(crate) fn send_request(
        &mut self,
        now: Instant,
        timers: &mut TimerTable,
        rng: &mut dyn Rng,
        settings: &Settings,
        exchange: ExchangeType,
        payloads: &[Payload<'_>],
        request: Request,
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
        let datagrams = self.seal(rng, settings, false, exchange, id, false, payloads);
        if let Some(ike) = self.ike.as_mut() {
            ike.next_id += 1;
        }
        self.transmits.extend(datagrams.iter().cloned());
        self.outstanding = Some(Outstanding {
            id,
            exchange,
            datagrams,
            tries: 0,
            request,
        });
        self.arm_retransmit(now, timers, rng, settings);
    }

    /// Sends a request once, not retransmitted and not outstanding: DELETE
    /// of an SA we are leaving either way (the gateway would otherwise keep
    /// it until its own timeout).
    pub(crate) fn send_once(
        &mut self,
        rng: &mut dyn Rng,
        settings: &Settings,
        old: bool,
        exchange: ExchangeType,
        payloads: &[Payload<'_>],
    ) {
        let sa = if old { &self.old_ike } else { &self.ike };
        let Some(id) = sa.as_ref().map(|s| s.next_id) else {
            return;
        };
        let d = self.seal(rng, settings, old, exchange, id, false, payloads);
        self.transmits.extend(d);
    }

    /// Answers the gateway's request `id` and caches the answer (§2.1).
    pub(crate) fn send_response(
        &mut self,
        rng: &mut dyn Rng,
        settings: &Settings,
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
        let datagrams = self.seal(rng, settings, old, exchange, id, true, payloads);
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

    /// Builds the datagrams of an encrypted message (fragmenting if needed).
    #[allow(clippy::too_many_arguments)]
    fn seal(
        &mut self,
        rng: &mut dyn Rng,
        settings: &Settings,
        old: bool,
        exchange: ExchangeType,
        id: u32,
        response: bool,
        payloads: &[Payload<'_>],
    ) -> Vec<Vec<u8>> {
        let mut inner = Writer::new();
        let first = emit_chain(payloads, PayloadType::NONE, &mut inner);
        let Some(sa) = (if old { &self.old_ike } else { &self.ike }).as_ref() else {
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
        let size = settings.fragment_size;
        let whole = HEADER_LEN + 4 + inner.buf.len() + sa.out.overhead(inner.buf.len());
        // RFC 7383 §2.5.1: only fragment if the peer supports it, and never IKE_SA_INIT.
        if !self.peer_fragmentation || whole + marker <= size {
            let mut w = Writer::new();
            header(PayloadType::SK).emit(&mut w);
            w.bytes(&[first.0, 0, 0, 0]);
            let mut buf = w.buf;
            sa.out.seal(rng, &mut buf, HEADER_LEN + 2, &inner.buf);
            if !self.peer_fragmentation
                && self.peer_cisco_fragmentation
                && buf.len() + marker > size
            {
                // Cisco's scheme fragments the encrypted message (RFC 7383 is preferred when offered).
                self.cisco_frag_id = self.cisco_frag_id.wrapping_add(1);
                let f = cisco_frag::split(&buf, self.cisco_frag_id, size.saturating_sub(marker));
                debug!(
                    "splitting IKE message ({} bytes) into {} Cisco fragments",
                    buf.len(),
                    f.len()
                );
                return f;
            }
            return vec![buf];
        }
        let room = size
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
                sa.out.seal(rng, &mut buf, HEADER_LEN + 2, c);
                buf
            })
            .collect()
    }

    // ----- retransmission (§2.1) -----

    fn backoff(&self, rng: &mut dyn Rng, settings: &Settings, tries: u32) -> Duration {
        let r = &settings.retransmit;
        let base = r.initial.saturating_mul(1u32 << tries.min(16)).min(r.max);
        // ±10 % jitter so many clients behind one gateway outage do not retry in lockstep.
        let mut j = [0u8; 1];
        rng.fill(&mut j);
        let f = 0.9 + (j[0] as f64 / 255.0) * 0.2;
        base.mul_f64(f)
    }

    fn arm_retransmit(
        &self,
        now: Instant,
        timers: &mut TimerTable,
        rng: &mut dyn Rng,
        settings: &Settings,
    ) {
        let tries = self.outstanding.as_ref().map_or(0, |o| o.tries);
        let d = self.backoff(rng, settings, tries);
        timers.set_after(Timer::Retransmit, now, d);
    }

    /// The retransmission timer fired: send the request again, or give up.
    /// `closing` allows one retransmission of our DELETE only; a DPD probe
    /// follows its own schedule within `dpd_interval`.
    pub(crate) fn retransmit(
        &mut self,
        now: Instant,
        timers: &mut TimerTable,
        rng: &mut dyn Rng,
        settings: &Settings,
        closing: bool,
        dpd_interval: Option<Duration>,
    ) -> Result<bool, GaveUp> {
        let max = if closing {
            1
        } else {
            settings.retransmit.tries
        };
        let Some(o) = self.outstanding.as_mut() else {
            timers.stop(Timer::Retransmit);
            return Ok(false);
        };
        let limit = if o.request == Request::Dpd {
            DPD_PROBES
        } else {
            max
        };
        if o.tries >= limit {
            let tries = o.tries;
            let reassembly = self.last_reassembly_error.take().or_else(|| {
                (!self.cisco_frags.is_empty())
                    .then(|| format!("Cisco fragments still missing after {tries} retransmissions"))
            });
            return Err(GaveUp {
                request: o.request,
                tries,
                reassembly,
            });
        }
        o.tries += 1;
        debug!(
            "retransmit {} of request {} ({:?})",
            o.tries, o.id, o.request
        );
        self.transmits.extend(o.datagrams.iter().cloned());
        if o.request == Request::Dpd {
            let step = dpd_interval.map_or(Duration::from_secs(1), dpd_step);
            timers.set_after(Timer::Retransmit, now, step);
        } else {
            self.arm_retransmit(now, timers, rng, settings);
        }
        Ok(true)
    }

    /// The reassembly timer fired: drop incomplete fragments. Returns the
    /// reason when an RFC 7383 message was dropped while nothing of ours is
    /// outstanding (nobody will retransmit it: fatal for the caller).
    pub(crate) fn reassembly_timeout(&mut self, settings: &Settings) -> Option<String> {
        if !self.cisco_frags.is_empty() {
            warn!(
                "incomplete Cisco-fragmented message dropped after {:?}",
                settings.reassembly_timeout
            );
            self.cisco_frags.clear();
        }
        let r = self.reassembly.take()?;
        let msg = format!(
            "{} of {} fragments of message {} missing after {:?}",
            r.missing(),
            r.total(),
            r.message_id,
            settings.reassembly_timeout
        );
        warn!("{msg}");
        // The gateway retransmits whole messages, so a retransmit of our
        // request lets it try again; only if our own retransmits run out is
        // this fatal. Remember why.
        if self.outstanding.is_none() {
            return Some(msg);
        }
        self.last_reassembly_error = Some(msg);
        None
    }

    // ----- receiving -----

    /// Takes one IKE message (no NAT-T marker): reassembles fragments,
    /// matches it to our request or the gateway's window, and opens it.
    /// `requests` says whether the gateway may send requests yet (§1.2:
    /// not before IKE_AUTH is done).
    pub(crate) fn receive(
        &mut self,
        now: Instant,
        timers: &mut TimerTable,
        settings: &Settings,
        data: &[u8],
        requests: bool,
    ) -> Result<Inbound, IkeDrop> {
        self.receive_one(now, timers, settings, data, requests, true)
    }

    fn receive_one(
        &mut self,
        now: Instant,
        timers: &mut TimerTable,
        settings: &Settings,
        data: &[u8],
        requests: bool,
        outer: bool,
    ) -> Result<Inbound, IkeDrop> {
        let hdr = Header::parse(data).map_err(|_| IkeDrop::Malformed)?;
        if hdr.spi_i != self.spi_i && !self.matches_any_sa(&hdr) {
            return Err(IkeDrop::UnknownSpi);
        }
        if hdr.next_payload == PayloadType::CISCO_FRAGMENT {
            if !outer {
                return Err(IkeDrop::NestedFragment);
            }
            let (max_f, max_b) = (settings.max_fragments, settings.max_reassembled);
            return match self.cisco_frags.add(data, max_f, max_b) {
                Ok(Some(whole)) => {
                    debug!(
                        "reassembled a Cisco-fragmented IKE message ({} bytes)",
                        whole.len()
                    );
                    self.receive_one(now, timers, settings, &whole, requests, false)
                }
                Ok(None) => {
                    if timers.get(Timer::Reassembly).is_none() {
                        timers.set_after(Timer::Reassembly, now, settings.reassembly_timeout);
                    }
                    Ok(Inbound::Consumed)
                }
                Err(e) => {
                    debug!("Cisco fragment refused: {e:?}");
                    Err(IkeDrop::BadCiscoFragment)
                }
            };
        }
        let to_old = self
            .old_ike
            .as_ref()
            .is_some_and(|o| o.is(&hdr.spi_i, &hdr.spi_r));
        if to_old && hdr.flags.response() {
            // The answer to our DELETE of the IKE SA we rekeyed: it is gone now.
            debug!("old IKE SA deleted after our rekey");
            self.old_ike = None;
            return Ok(Inbound::Consumed);
        }
        if hdr.flags.response() {
            self.response(now, timers, settings, &hdr, data)
        } else {
            self.request(now, timers, settings, &hdr, data, to_old, requests)
        }
    }

    fn matches_any_sa(&self, h: &Header) -> bool {
        [&self.ike, &self.old_ike]
            .iter()
            .any(|s| s.as_ref().is_some_and(|s| s.is(&h.spi_i, &h.spi_r)))
    }

    fn response(
        &mut self,
        now: Instant,
        timers: &mut TimerTable,
        settings: &Settings,
        hdr: &Header,
        data: &[u8],
    ) -> Result<Inbound, IkeDrop> {
        let Some(o) = self.outstanding.as_ref() else {
            debug!(
                "{:?} response {} without a request in flight",
                hdr.exchange, hdr.message_id
            );
            return Err(IkeDrop::UnsolicitedResponse);
        };
        // §3.1: the I flag marks the original initiator's messages; the peer's
        // must carry the opposite of ours. §2.3: the ID and exchange are ours.
        let we_initiated = self.ike.as_ref().is_none_or(|i| i.initiator);
        if hdr.message_id != o.id
            || hdr.flags.initiator() == we_initiated
            || hdr.exchange != o.exchange
        {
            return Err(IkeDrop::OutOfWindow);
        }
        let request = o.request;
        if request == Request::SaInit {
            if hdr.spi_i != self.spi_i {
                return Err(IkeDrop::OutOfWindow);
            }
            // The init task decides whether this ends the request (a COOKIE
            // or INVALID_KE restart replaces it).
            return Ok(Inbound::SaInitResponse(data.to_vec()));
        }
        if self
            .ike
            .as_ref()
            .is_none_or(|i| !i.is(&hdr.spi_i, &hdr.spi_r))
        {
            return Err(IkeDrop::UnknownSpi);
        }
        let Some((first, plaintext)) = self.open(now, timers, settings, false, hdr, data)? else {
            return Ok(Inbound::Consumed);
        };
        self.outstanding = None;
        Ok(Inbound::Response {
            request,
            exchange: hdr.exchange,
            first,
            plaintext,
        })
    }

    /// The IKE_SA_INIT exchange is over (the IKE SA exists).
    pub(crate) fn sa_init_done(&mut self) {
        self.outstanding = None;
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        now: Instant,
        timers: &mut TimerTable,
        settings: &Settings,
        hdr: &Header,
        data: &[u8],
        old: bool,
        requests: bool,
    ) -> Result<Inbound, IkeDrop> {
        let sa = if old { &self.old_ike } else { &self.ike };
        let Some(sa) = sa.as_ref() else {
            return Err(IkeDrop::RequestTooEarly);
        };
        if !sa.is(&hdr.spi_i, &hdr.spi_r) {
            return Err(IkeDrop::UnknownSpi);
        }
        if !requests && !old {
            return Err(IkeDrop::RequestTooEarly);
        }
        // §2.1: a retransmitted request gets the cached response again.
        if let Some((id, dgrams)) = &sa.cached_response {
            if *id == hdr.message_id {
                debug!("retransmitting response {id} for a retransmitted request");
                self.transmits.extend(dgrams.iter().cloned());
                return Ok(Inbound::Consumed);
            }
        }
        if hdr.message_id != sa.peer_next_id {
            return Err(IkeDrop::RequestOutOfWindow);
        }
        let Some((first, plaintext)) = self.open(now, timers, settings, old, hdr, data)? else {
            return Ok(Inbound::Consumed);
        };
        Ok(Inbound::Request {
            old,
            exchange: hdr.exchange,
            id: hdr.message_id,
            first,
            plaintext,
        })
    }

    /// Verifies and decrypts an SK message, or adds an SKF fragment.
    /// Returns the first inner payload type and the plaintext when complete.
    fn open(
        &mut self,
        now: Instant,
        timers: &mut TimerTable,
        settings: &Settings,
        old: bool,
        hdr: &Header,
        data: &[u8],
    ) -> Result<Option<(PayloadType, Vec<u8>)>, IkeDrop> {
        let (payloads, inner_first) =
            parse_chain(hdr.next_payload, &data[HEADER_LEN..]).map_err(|_| IkeDrop::Malformed)?;
        let sa = if old { &self.old_ike } else { &self.ike };
        let sa = sa.as_ref().ok_or(IkeDrop::UnknownSpi)?;
        // §3.14: after IKE_SA_INIT everything is inside SK (or SKF); refuse
        // plaintext payloads beside it.
        let [only] = &payloads[..] else {
            return Err(IkeDrop::Unprotected);
        };
        match &only.body {
            PayloadBody::Sk(_) => {
                let pt = sa
                    .inp
                    .open(data, HEADER_LEN + 4)
                    .map_err(|_| IkeDrop::Integrity)?;
                self.heard = Some(now);
                Ok(Some((inner_first, pt)))
            }
            PayloadBody::Skf(Skf { number, total, .. }) => {
                let (number, total) = (*number, *total);
                let pt = sa
                    .inp
                    .open(data, HEADER_LEN + 8)
                    .map_err(|_| IkeDrop::Integrity)?;
                self.heard = Some(now);
                let (max_f, max_b) = (settings.max_fragments, settings.max_reassembled);
                if self
                    .reassembly
                    .as_ref()
                    .is_none_or(|r| r.message_id != hdr.message_id)
                {
                    let r = Reassembly::new(hdr.message_id, total, max_f, now)
                        .map_err(|e| IkeDrop::Fragment(frag_err(e)))?;
                    self.reassembly = Some(r);
                    timers.set_after(Timer::Reassembly, now, settings.reassembly_timeout);
                }
                let Some(r) = self.reassembly.as_mut() else {
                    return Err(IkeDrop::Fragment("no reassembly"));
                };
                trace!("received fragment #{number} of {total}");
                match r.add(number, total, inner_first, pt, max_b) {
                    Ok(Some(done)) => {
                        debug!("received fragment #{number} of {total}, reassembled fragmented IKE message ({} bytes)", done.1.len());
                        self.reassembly = None;
                        timers.stop(Timer::Reassembly);
                        Ok(Some(done))
                    }
                    Ok(None) => Ok(None),
                    Err(e) => {
                        self.reassembly = None;
                        Err(IkeDrop::Fragment(frag_err(e)))
                    }
                }
            }
            _ => Err(IkeDrop::Unprotected),
        }
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
pub(crate) enum Undecodable {
    /// It does not parse.
    Parse(PeerMisbehaved),
    /// It parses but breaks the rule table.
    Rules(PeerMisbehaved),
}

/// The one place every encrypted message is decoded and checked against
/// `wire/rules.rs` before any task sees it (style §6.4.6).
pub(crate) fn decode(
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

fn frag_err(e: FragError) -> &'static str {
    match e {
        FragError::TooMany(_) => "too many fragments announced",
        FragError::TooLarge(_) => "reassembled message too large",
        FragError::Inconsistent => "inconsistent fragment numbers",
    }
}
