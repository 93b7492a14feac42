//! The task queue of a session (strongSwan's `task_manager_v2.c`): every
//! authentic message goes through [`decode`] once, then to the task whose
//! request it answers, or to the responder side for the gateway's requests
//! (RFC 7296 §1.4 INFORMATIONAL, §1.3 CREATE_CHILD_SA); queued work starts
//! when the window of one (§2.3) is free. Tasks return what they want done;
//! this applies it to the session.

use std::time::Instant;

use tracing::{debug, info, trace, warn};

use super::{Queued, Session, State, Task};
use crate::error::{DropReason, IkeDrop};
use crate::event::{DisconnectReason, Event, Progress};
use crate::ike::describe;
use crate::ike::exchange::{decode, Inbound, Request, Undecodable};
use crate::ike::sa::{ChildSa, IkeSa};
use crate::ike::tasks::child_create::{self, Offer};
use crate::ike::tasks::child_rekey::{self, ChildRekey, RekeyStep};
use crate::ike::tasks::ike_auth::{AuthStep, Established, IkeAuth};
use crate::ike::tasks::ike_delete;
use crate::ike::tasks::ike_init::{InitDone, InitStep};
use crate::ike::tasks::ike_rekey::{self, IkeRekey, IkeRekeyStep};
use crate::ike::tasks::Ctx;
use crate::timer::Timer;
use crate::wire::{
    self, Direction, ExchangeType, Message, Notify, NotifyType, Payload, PayloadBody, PayloadType,
};
use crate::Received;

impl Session {
    pub(super) fn drop(&mut self, why: IkeDrop) -> Received<'static> {
        self.stats.dropped += 1;
        debug!("dropped datagram: {why}");
        Received::Dropped(DropReason::Ike(why))
    }

    /// Starts queued work when the window is free, and stops idle timers.
    pub(super) fn after_input(&mut self, now: Instant) {
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
                    if let Some(child) = self.children.current() {
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

    pub(super) fn dispatch(&mut self, now: Instant, inbound: Inbound) -> Received<'static> {
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

    pub(super) fn on_sa_init(&mut self, now: Instant, data: &[u8]) -> Received<'static> {
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

    pub(super) fn sa_init_done(&mut self, now: Instant, d: InitDone) {
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
        self.liveness.gateway_behind_nat = d.nat.gateway_behind;
        self.events.push_back(Event::Progress(Progress::SaInitDone {
            proposal: d.suite.name(),
            nat: d.nat.any(),
        }));
        debug!("IKE_SA_INIT done: {}", d.suite.name());
        self.state = State::Authenticating;
        let auth = IkeAuth::start(&mut ctx!(self, now), d.msg1, d.msg2, d.ni, d.nr);
        self.task = Some(Task::Auth(auth));
    }

    // ----- responses to our requests -----

    pub(super) fn on_response(
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
                let Some(old) = self.children.current().cloned() else {
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

    pub(super) fn after_auth(&mut self, now: Instant, step: AuthStep, payloads: &[Payload<'_>]) {
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
    pub(super) fn establish(&mut self, now: Instant, e: Established, payloads: &[Payload<'_>]) {
        let (child, keys, cfg) = match child_create::from_auth(&ctx!(self, now), &e.data, payloads)
        {
            Ok(x) => x,
            Err(r) => return self.fail(r),
        };
        self.anyconnect_session = e.anyconnect;
        self.anyconnect_resumed = e.resumed;
        self.children
            .install(now, &mut self.timers, child, &keys, false);
        self.children.esp.ipv6 = cfg.addresses.iter().any(|(a, _)| a.is_ipv6());
        self.config = cfg.clone();
        self.state = State::Established;
        self.arm_lifetime(now, Timer::IkeRekey);
        self.arm_lifetime(now, Timer::ChildRekey);
        let (dpd, ka) = (self.dpd_interval(), self.keepalive_interval());
        self.liveness.arm(now, &mut self.timers, dpd, ka);
        self.events.push_back(Event::Connected(Box::new(cfg)));
    }

    pub(super) fn after_child_rekey(&mut self, now: Instant, step: RekeyStep, old: ChildSa) {
        match step {
            RekeyStep::Installed { child, keys } => {
                self.children
                    .install(now, &mut self.timers, child, &keys, false);
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

    pub(super) fn retry_later(&mut self, now: Instant, timer: Timer, n: NotifyType) {
        // e.g. TEMPORARY_FAILURE during a rekey collision (§2.25): try later.
        info!("the gateway refused our rekey ({n:?}); retrying later");
        self.timers.set_after(timer, now, child_rekey::RETRY_AFTER);
    }

    // ----- requests from the gateway -----

    pub(super) fn on_request(
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

    pub(super) fn on_informational(
        &mut self,
        now: Instant,
        old: bool,
        id: u32,
        payloads: &[Payload<'_>],
    ) {
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
        let ours = self
            .children
            .delete(now, &mut self.timers, &deletes.esp_out);
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
            if self.children.current().is_none() && self.state == State::Established {
                info!("the gateway deleted our only CHILD SA");
            }
        }
    }

    pub(super) fn on_create_child(&mut self, now: Instant, id: u32, payloads: &[Payload<'_>]) {
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
            self.stats.child_rekeys += 1;
            self.events
                .push_back(Event::Progress(Progress::ChildRekeyed));
        }
        // The gateway's rekey: it deletes the old SA itself.
        self.children
            .install(now, &mut self.timers, c.child, &c.keys, c.rekey);
        self.arm_lifetime(now, Timer::ChildRekey);
    }

    // ----- timers and endings -----

    /// Arms our own rekey at 80–90 % of the lifetime (jitter, so many
    /// clients do not rekey in lockstep).
    pub(super) fn arm_lifetime(&mut self, now: Instant, timer: Timer) {
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

    pub(super) fn retransmit(&mut self, now: Instant) {
        let closing = self.state == State::Closing;
        let dpd = self.liveness.pacing(self.dpd_interval());
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

    pub(super) fn fail(&mut self, reason: DisconnectReason) {
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

    pub(super) fn finish(&mut self, reason: DisconnectReason) {
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
