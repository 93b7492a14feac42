//! The CHILD SAs of a session and their ESP halves, with one owner (RFC
//! 7296 §1.3, §2.8): the current SA as the control plane knows it, those a
//! rekey replaced (until the gateway deletes them, §1.4.1), and the data
//! plane's table with the replaced inbound halves' grace period.

use std::time::Instant;

use super::sa::ChildSa;
use crate::esp::table::SaTable;
use crate::esp::ChildSaInfo;
use crate::timer::{Timer, TimerTable};

/// The CHILD SAs and the ESP table.
#[derive(Default)]
pub(crate) struct Children {
    current: Option<ChildSa>,
    /// Replaced by a rekey, waiting for the gateway's DELETE: (in, out).
    replaced: Vec<(u32, u32)>,
    /// The data plane: ESP keys live only here.
    pub(crate) esp: SaTable,
}

impl Children {
    /// The current CHILD SA.
    pub(crate) fn current(&self) -> Option<&ChildSa> {
        self.current.as_ref()
    }

    /// Makes `child` current with `keys`; a replaced inbound half keeps
    /// working for the grace period. `rekey`: the old one waits for the
    /// gateway's DELETE (its rekey); otherwise ours is deleted by us.
    pub(crate) fn install(
        &mut self,
        now: Instant,
        timers: &mut TimerTable,
        child: ChildSa,
        keys: &ChildSaInfo,
        keep_replaced: bool,
    ) -> Option<ChildSa> {
        self.esp.install(keys, now);
        timers.put(Timer::OldSaGrace, self.esp.next_retirement());
        let old = self.current.replace(child);
        if keep_replaced {
            if let Some(o) = &old {
                self.replaced.push((o.spi_in, o.spi_out));
            }
        }
        old
    }

    /// The gateway deletes ESP SAs by its inbound SPIs (our outbound):
    /// returns our inbound SPIs for the answer (§1.4.1).
    pub(crate) fn delete(&mut self, now: Instant, timers: &mut TimerTable, out: &[u32]) -> Vec<u8> {
        let mut ours = Vec::new();
        for o in out {
            if let Some(pos) = self.replaced.iter().position(|(_, x)| x == o) {
                let (i, _) = self.replaced.remove(pos);
                ours.extend_from_slice(&i.to_be_bytes());
            } else if self.current.as_ref().is_some_and(|c| c.spi_out == *o) {
                if let Some(c) = self.current.take() {
                    ours.extend_from_slice(&c.spi_in.to_be_bytes());
                    self.esp.remove_current(now);
                    timers.put(Timer::OldSaGrace, self.esp.next_retirement());
                }
            }
        }
        ours
    }

    /// The grace timer fired.
    pub(crate) fn retire(&mut self, now: Instant, timers: &mut TimerTable) {
        self.esp.retire(now);
        timers.put(Timer::OldSaGrace, self.esp.next_retirement());
    }
}
