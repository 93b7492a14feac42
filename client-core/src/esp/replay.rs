//! The ESP anti-replay window (RFC 4303 §3.4.3, Appendix A2): 1024 packets,
//! a bitmap of u64 words; `check` before the ICV, `commit` after.

const WORDS: usize = 16;
const SIZE: u64 = (WORDS * 64) as u64;

/// A sliding window over sequence numbers.
#[derive(Clone, Debug, Default)]
pub struct ReplayWindow {
    top: u64,
    bits: [u64; WORDS],
}

/// Already seen, or too old.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replayed;

impl ReplayWindow {
    fn bit(&self, seq: u64) -> (usize, u64) {
        let i = (seq % SIZE) as usize;
        (i / 64, 1u64 << (i % 64))
    }

    /// The full 64-bit number for the low 32 bits on the wire (ESN,
    /// RFC 4303 Appendix A2.2): the high half is the window's, or one more
    /// / one less when the low half wrapped relative to the window.
    pub fn infer(&self, seq_lo: u32) -> u64 {
        let tl = self.top as u32;
        let th = (self.top >> 32) as u32;
        let w = SIZE as u32;
        let hi = if tl >= w - 1 {
            if seq_lo > tl - w {
                th
            } else {
                th.wrapping_add(1)
            }
        } else if seq_lo >= tl.wrapping_sub(w - 1) && th > 0 {
            th - 1
        } else {
            th
        };
        ((hi as u64) << 32) | seq_lo as u64
    }

    /// Whether `seq` may be accepted (does not change the window).
    pub fn check(&self, seq: u64) -> Result<(), Replayed> {
        if seq == 0 || (self.top >= SIZE && seq <= self.top - SIZE) {
            return Err(Replayed);
        }
        if seq > self.top {
            return Ok(());
        }
        let (w, b) = self.bit(seq);
        if self.bits[w] & b != 0 {
            Err(Replayed)
        } else {
            Ok(())
        }
    }

    /// Records `seq` as received (after its ICV verified).
    pub fn commit(&mut self, seq: u64) {
        if seq > self.top {
            let advance = seq - self.top;
            if advance >= SIZE {
                self.bits = [0; WORDS];
            } else {
                for s in self.top + 1..=seq {
                    let (w, b) = self.bit(s);
                    self.bits[w] &= !b;
                }
            }
            self.top = seq;
        }
        let (w, b) = self.bit(seq);
        self.bits[w] |= b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_semantics() {
        let mut r = ReplayWindow::default();
        assert!(r.check(0).is_err());
        for s in [5u64, 3, 4, 1000, 2000] {
            r.check(s).unwrap();
            r.commit(s);
            assert!(r.check(s).is_err(), "{s} seen");
        }
        assert!(r.check(6).is_err(), "left of the window (2000 - 1024)");
        r.check(1500).unwrap();
        r.check(2001).unwrap();
        r.commit(5000);
        assert!(r.check(3976).is_err());
        r.check(3977).unwrap();
    }
}
