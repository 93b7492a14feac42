//! Liveness of an established session: dead peer detection with empty
//! INFORMATIONAL requests (RFC 7296 §1.4, probing only an idle gateway as
//! RFC 3706 does) and NAT-T keepalives when we are behind a NAT (RFC 3948
//! §2.3). Anything authentic from the gateway, IKE or ESP, counts as life.
//!
//! ```text
//! (silent for half the interval)  HDR, SK {}  -->   <--  HDR, SK {}
//! (behind NAT, every keepalive interval)  0xFF  -->
//! ```

use std::time::{Duration, Instant};

use tracing::debug;

use super::Ctx;
use crate::ike::exchange::{dpd_step, Request};
use crate::timer::{Timer, TimerTable};
use crate::wire::ExchangeType;

/// What the session knows about the gateway's liveness.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    /// Last time anything authentic arrived from the gateway (IKE or ESP).
    pub(crate) last_inbound: Option<Instant>,
    /// NAT-D said our address is translated.
    pub(crate) behind_nat: bool,
    /// NAT-D said the gateway's address is translated.
    pub(crate) gateway_behind_nat: bool,
    /// A NAT-T keepalive is due in the next `poll_transmit`.
    keepalive_due: bool,
    /// Probe the gateway now, whatever was heard last (after a suspend).
    force_probe: bool,
    /// An ICMP error hinted the gateway is gone: probe on a short schedule
    /// (until anything authentic is heard again).
    pub(crate) hinted: bool,
}

/// The longest DPD interval a hinted probe is paced by: 4 probes about a
/// second apart instead of spread over half the gateway's interval.
pub(crate) const HINTED_INTERVAL: Duration = Duration::from_secs(10);

impl Liveness {
    /// Arms DPD and keepalives once established.
    pub(crate) fn arm(
        &mut self,
        now: Instant,
        timers: &mut TimerTable,
        dpd: Option<Duration>,
        keepalive: Duration,
    ) {
        self.last_inbound = Some(now);
        timers.put(Timer::Dpd, dpd.and_then(|i| now.checked_add(i / 2)));
        timers.put(
            Timer::Keepalive,
            self.behind_nat
                .then(|| now.checked_add(keepalive))
                .flatten(),
        );
    }

    /// Something authentic arrived.
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_inbound = Some(now);
        self.hinted = false;
    }

    /// The interval that paces probes: the gateway's, or a short one after
    /// an ICMP hint.
    pub(crate) fn pacing(&self, dpd: Option<Duration>) -> Option<Duration> {
        dpd.map(|i| {
            if self.hinted {
                i.min(HINTED_INTERVAL)
            } else {
                i
            }
        })
    }

    /// Asks for a probe at once (the machine slept: the gateway's SAs, or
    /// the session, may be gone).
    pub(crate) fn probe_now(&mut self, now: Instant, timers: &mut TimerTable) {
        self.force_probe = true;
        timers.set(Timer::Dpd, now);
    }

    /// Whether a keepalive should go out now (once).
    pub(crate) fn take_keepalive(&mut self) -> bool {
        std::mem::take(&mut self.keepalive_due)
    }

    /// Serves the Keepalive and Dpd timers. Returns true when a DPD probe
    /// was sent (it is now the outstanding request).
    pub(crate) fn on_timeout(
        &mut self,
        ctx: &mut Ctx<'_>,
        dpd: Option<Duration>,
        keepalive: Duration,
    ) -> bool {
        let now = ctx.now;
        if ctx.timers.is_due(Timer::Keepalive, now) {
            self.keepalive_due = true;
            ctx.timers.set_after(Timer::Keepalive, now, keepalive);
        }
        if !ctx.timers.is_due(Timer::Dpd, now) {
            return false;
        }
        let Some(interval) = dpd else {
            ctx.timers.stop(Timer::Dpd);
            return false;
        };
        let idle_since = self.last_inbound.unwrap_or(now);
        let due = idle_since.checked_add(interval / 2).unwrap_or(now);
        if now < due && !std::mem::take(&mut self.force_probe) {
            ctx.timers.set(Timer::Dpd, due);
            return false;
        }
        ctx.timers.set_after(Timer::Dpd, now, interval / 2);
        if ctx.ex.outstanding().is_some() {
            // Any exchange in flight is itself a liveness check: its
            // retransmits end the session if the gateway is gone.
            return false;
        }
        debug!("gateway silent for {:?}: DPD probe", now - idle_since);
        ctx.send(ExchangeType::INFORMATIONAL, &[], Request::Dpd);
        ctx.timers
            .set_after(Timer::Retransmit, now, dpd_step(interval));
        true
    }
}
