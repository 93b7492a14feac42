//! IKE message fragmentation (RFC 7383): reassembly of the gateway's
//! Encrypted Fragment payloads, with bounds on count, size and time.
//! (Splitting our own messages lives with the sender in `session.rs`.)

use std::time::Instant;

use crate::wire::PayloadType;

/// Why reassembly failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FragError {
    /// Too many fragments announced.
    TooMany(u16),
    /// The reassembled message would be too large.
    TooLarge(usize),
    /// Fragments of one message disagree on the total.
    Inconsistent,
}

/// Fragments of one message being collected.
#[derive(Debug)]
pub struct Reassembly {
    /// Message ID the fragments belong to.
    pub message_id: u32,
    total: u16,
    parts: Vec<Option<Vec<u8>>>,
    first: PayloadType,
    bytes: usize,
    /// When the first fragment arrived.
    pub started: Instant,
}

impl Reassembly {
    /// Starts collecting fragments of `message_id`.
    pub fn new(
        message_id: u32,
        total: u16,
        max_fragments: u16,
        now: Instant,
    ) -> Result<Self, FragError> {
        if total > max_fragments {
            return Err(FragError::TooMany(total));
        }
        Ok(Reassembly {
            message_id,
            total,
            parts: vec![None; total as usize],
            first: PayloadType::NONE,
            bytes: 0,
            started: now,
        })
    }

    /// Adds decrypted fragment `number` (1-based). `next` is the SKF payload's
    /// Next Payload (meaningful only in fragment 1, RFC 7383 §2.5). Returns the
    /// whole plaintext and its first payload type once every fragment is in.
    /// Duplicates are ignored.
    pub fn add(
        &mut self,
        number: u16,
        total: u16,
        next: PayloadType,
        plaintext: Vec<u8>,
        max_bytes: usize,
    ) -> Result<Option<(PayloadType, Vec<u8>)>, FragError> {
        if total != self.total || number == 0 || number > total {
            return Err(FragError::Inconsistent);
        }
        let slot = &mut self.parts[number as usize - 1];
        if slot.is_some() {
            return Ok(None);
        }
        self.bytes += plaintext.len();
        if self.bytes > max_bytes {
            return Err(FragError::TooLarge(self.bytes));
        }
        if number == 1 {
            self.first = next;
        }
        *slot = Some(plaintext);
        if self.parts.iter().all(Option::is_some) {
            let whole = self
                .parts
                .iter_mut()
                .flat_map(|p| p.take().unwrap_or_default())
                .collect();
            return Ok(Some((self.first, whole)));
        }
        Ok(None)
    }

    /// How many fragments are still missing.
    pub fn missing(&self) -> usize {
        self.parts.iter().filter(|p| p.is_none()).count()
    }

    /// Total announced.
    pub fn total(&self) -> u16 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_and_duplicates() {
        let now = crate::test_now();
        let mut r = Reassembly::new(1, 3, 16, now).unwrap();
        assert_eq!(
            r.add(3, 3, PayloadType::NONE, b"cc".to_vec(), 100).unwrap(),
            None
        );
        assert_eq!(
            r.add(3, 3, PayloadType::NONE, b"cc".to_vec(), 100).unwrap(),
            None
        );
        assert_eq!(
            r.add(1, 3, PayloadType::IDR, b"aa".to_vec(), 100).unwrap(),
            None
        );
        assert_eq!(r.missing(), 1);
        let (first, whole) = r
            .add(2, 3, PayloadType::NONE, b"bb".to_vec(), 100)
            .unwrap()
            .unwrap();
        assert_eq!((first, &whole[..]), (PayloadType::IDR, &b"aabbcc"[..]));
    }

    #[test]
    fn bounds() {
        let now = crate::test_now();
        assert_eq!(
            Reassembly::new(1, 65, 64, now).unwrap_err(),
            FragError::TooMany(65)
        );
        let mut r = Reassembly::new(1, 2, 64, now).unwrap();
        assert_eq!(
            r.add(1, 3, PayloadType::NONE, vec![], 10).unwrap_err(),
            FragError::Inconsistent
        );
        assert_eq!(
            r.add(1, 2, PayloadType::NONE, vec![0; 11], 10).unwrap_err(),
            FragError::TooLarge(11)
        );
    }
}
