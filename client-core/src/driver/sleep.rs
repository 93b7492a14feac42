//! Suspend detection: `CLOCK_MONOTONIC` (std's `Instant`, tokio's timers)
//! stands still while the machine sleeps, `CLOCK_BOOTTIME` does not, so
//! BOOTTIME running ahead means the gateway's clock moved and ours did not
//! (DPD and rekeys must be checked at once).

use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
