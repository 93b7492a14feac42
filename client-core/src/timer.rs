//! Every deadline of a session: one enum, one table, one dispatch
//! (quinn-proto's `connection/timer.rs`). There is no `Option<Instant>`
//! field per feature; a new deadline is a new [`Timer`] variant.

use std::time::{Duration, Instant};

/// What a deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Retransmit the outstanding request (RFC 7296 §2.1), or give up.
    Retransmit = 0,
    /// Drop a partially reassembled message (RFC 7383 §2.6.2, Cisco's scheme).
    Reassembly = 1,
    /// Our own IKE SA rekey (§2.8), before the lifetime runs out.
    IkeRekey = 2,
    /// Our own CHILD SA rekey.
    ChildRekey = 3,
    /// Dead peer detection: probe when the gateway has been silent (§1.4).
    Dpd = 4,
    /// NAT-T keepalive (RFC 3948 §2.3), only when we are behind a NAT.
    Keepalive = 5,
    /// An inbound ESP SA replaced by a rekey stops working (make-before-break:
    /// packets the gateway sealed before it switched still arrive for a while).
    OldSaGrace = 6,
}

impl Timer {
    const COUNT: usize = 7;
    /// In the order `handle_timeout` serves them when several are due.
    pub(crate) const ALL: [Timer; Timer::COUNT] = [
        Timer::Reassembly,
        Timer::Retransmit,
        Timer::Keepalive,
        Timer::Dpd,
        Timer::IkeRekey,
        Timer::ChildRekey,
        Timer::OldSaGrace,
    ];
}

/// The deadlines in force.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TimerTable {
    data: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    /// Arms `timer` at `at`.
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.data[timer as usize] = Some(at);
    }

    /// Arms `timer` `after` from `now`; a deadline past what `Instant` can
    /// hold means never (settings are bounded, this is the last guard).
    pub(crate) fn set_after(&mut self, timer: Timer, now: Instant, after: Duration) {
        self.data[timer as usize] = now.checked_add(after);
    }

    /// Arms `timer` at `at`, or disarms it.
    pub(crate) fn put(&mut self, timer: Timer, at: Option<Instant>) {
        self.data[timer as usize] = at;
    }

    /// The deadline of `timer`.
    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.data[timer as usize]
    }

    /// Disarms `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.data[timer as usize] = None;
    }

    /// Disarms everything (the session closed).
    pub(crate) fn stop_all(&mut self) {
        self.data = [None; Timer::COUNT];
    }

    /// Whether `timer` is armed and due at `now`.
    pub(crate) fn is_due(&self, timer: Timer, now: Instant) -> bool {
        self.data[timer as usize].is_some_and(|t| now >= t)
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.data.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_wins_and_overflow_means_never() {
        let now = crate::test_now();
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set_after(Timer::Dpd, now, Duration::from_secs(10));
        t.set_after(Timer::Retransmit, now, Duration::from_secs(1));
        assert_eq!(t.next(), Some(now + Duration::from_secs(1)));
        assert!(t.is_due(Timer::Retransmit, now + Duration::from_secs(1)));
        assert!(!t.is_due(Timer::Dpd, now + Duration::from_secs(1)));
        t.set_after(Timer::IkeRekey, now, Duration::MAX);
        assert_eq!(t.get(Timer::IkeRekey), None, "overflow: never, no panic");
        t.stop_all();
        assert_eq!(t.next(), None);
    }
}
