//! Cisco's proprietary IKE fragmentation (payload 132), which ASA and IOS
//! use inside IKEv2 when both sides sent the FRAGMENTATION vendor ID
//! (shared/protocol/anyconnect-ikev2.md §5; seed 004: "Fragment MTU: 544").
//!
//! ```text
//! IKE header (28): Next Payload 132, exchange / flags / Message ID of the original
//! +---------------+---------------+-------------------------------+
//! | Next Payload=0|   RESERVED    |     Payload Length = 8 + n    |
//! |          Fragment ID          | Fragment Num  | Flags (1=LAST)|
//! ~                    Fragment data (n bytes)                    ~
//! ```
//! Unlike RFC 7383, the fragments carry pieces of the *already encrypted*
//! message, header included: reassemble, then process it as if it had
//! arrived whole. Reassembly is keyed by fragment ID, not message ID.

use std::collections::BTreeMap;

use crate::wire::{Header, PayloadType, Writer, HEADER_LEN};

/// The FRAGMENTATION vendor ID: MD5("FRAGMENTATION").
pub const VID_FRAGMENTATION: [u8; 16] = [
    0x40, 0x48, 0xb7, 0xd5, 0x6e, 0xbc, 0xe8, 0x85, 0x25, 0xe7, 0xde, 0x7f, 0x00, 0xd6, 0xc2, 0xd3,
];
const LAST: u8 = 0x01;
const FRAG_HEADER: usize = 8;

/// The fragment number is one byte: a message never has more pieces.
const MAX_FRAGMENTS: usize = 255;

/// Splits an encrypted IKE `message` into Cisco fragments of at most `mtu`
/// bytes each (IKE header + fragment payload), with fragment ID `id`.
/// The number field is one byte, so a message that would need more than
/// 255 fragments at `mtu` gets larger fragments instead of wrapping numbers.
pub fn split(message: &[u8], id: u16, mtu: usize) -> Vec<Vec<u8>> {
    let Ok(h) = Header::parse(message) else {
        return vec![message.to_vec()];
    };
    let room = mtu
        .saturating_sub(HEADER_LEN + FRAG_HEADER)
        .max(64)
        .max(message.len().div_ceil(MAX_FRAGMENTS));
    let chunks: Vec<&[u8]> = message.chunks(room).collect();
    let n = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut w = Writer::new();
            Header {
                next_payload: PayloadType::CISCO_FRAGMENT,
                length: (HEADER_LEN + FRAG_HEADER + c.len()) as u32,
                ..h
            }
            .emit(&mut w);
            w.u8(0);
            w.u8(0);
            w.u16((FRAG_HEADER + c.len()) as u16);
            w.u16(id);
            w.u8(i as u8 + 1);
            w.u8(if i + 1 == n { LAST } else { 0 });
            w.bytes(c);
            w.buf
        })
        .collect()
}

/// Why a Cisco fragment was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CiscoFragError {
    /// The fragment payload is malformed (number 0, bad length).
    Malformed,
    /// More fragments or bytes than we accept.
    TooLarge,
}

/// The fragments of one message so far.
#[derive(Debug, Default)]
struct Pending {
    parts: BTreeMap<u8, Vec<u8>>,
    /// Number of the fragment flagged LAST, once seen.
    last: Option<u8>,
    bytes: usize,
}

/// Collects Cisco fragments per fragment ID.
#[derive(Debug, Default)]
pub struct CiscoReassembly {
    messages: BTreeMap<u16, Pending>,
}

impl CiscoReassembly {
    /// Adds one datagram whose header says Next Payload 132. Returns the
    /// whole original message once all fragments of its ID are in.
    pub fn add(
        &mut self,
        datagram: &[u8],
        max_fragments: u16,
        max_bytes: usize,
    ) -> Result<Option<Vec<u8>>, CiscoFragError> {
        let p = datagram
            .get(HEADER_LEN..)
            .ok_or(CiscoFragError::Malformed)?;
        if p.len() < FRAG_HEADER || u16::from_be_bytes([p[2], p[3]]) as usize != p.len() {
            return Err(CiscoFragError::Malformed);
        }
        let id = u16::from_be_bytes([p[4], p[5]]);
        let (num, flags) = (p[6], p[7]);
        if num == 0 || num as u16 > max_fragments {
            return Err(CiscoFragError::Malformed);
        }
        if self.messages.len() > 4 && !self.messages.contains_key(&id) {
            // Bound the number of messages in flight; the lowest ID loses.
            if let Some(&k) = self.messages.keys().next() {
                self.messages.remove(&k);
            }
        }
        let m = self.messages.entry(id).or_default();
        if flags & LAST != 0 {
            m.last = Some(num);
        }
        // A fragment sent again under the same number replaces the earlier
        // one and is counted at its new size, so re-sending bigger pieces
        // cannot grow the buffer past `max_bytes`.
        let data = &p[FRAG_HEADER..];
        if let Some(old) = m.parts.insert(num, data.to_vec()) {
            m.bytes -= old.len();
        }
        m.bytes += data.len();
        if m.bytes > max_bytes || m.last.is_some_and(|l| m.parts.keys().any(|k| *k > l)) {
            self.messages.remove(&id);
            return Err(CiscoFragError::TooLarge);
        }
        if !m
            .last
            .is_some_and(|l| (1..=l).all(|k| m.parts.contains_key(&k)))
        {
            return Ok(None);
        }
        let m = self.messages.remove(&id).unwrap_or_default();
        Ok(Some(m.parts.into_values().flatten().collect()))
    }

    /// Drops everything (on timeout).
    pub fn clear(&mut self) {
        self.messages.clear();
    }

    /// Whether fragments are waiting.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ExchangeType, Flags};

    fn message(len: usize) -> Vec<u8> {
        let h = Header {
            spi_i: [0x58, 0xaf, 0xf7, 0x11, 0x41, 0xba, 0x43, 0x6b],
            spi_r: [0xfc, 0x69, 0x63, 0x30, 0xe6, 0xb9, 0x4d, 0x7f],
            next_payload: PayloadType::SK,
            version: 0x20,
            exchange: ExchangeType::IKE_AUTH,
            flags: Flags(Flags::RESPONSE),
            message_id: 1,
            length: len as u32,
        };
        let mut w = Writer::new();
        h.emit(&mut w);
        w.buf.extend((0..len - HEADER_LEN).map(|i| i as u8));
        w.buf
    }

    /// Seed 004: the ASA split its 1292, 4300 and 4396-byte IKE_AUTH
    /// responses at "Fragment MTU: 544" into 3, 9 and 9 fragments.
    #[test]
    fn seed_fragment_counts_at_mtu_544() {
        for (len, want) in [(1292, 3), (4300, 9), (4396, 9)] {
            let m = message(len);
            let f = split(&m, 2, 544);
            assert_eq!(f.len(), want, "{len} bytes");
            assert!(f.iter().all(|d| d.len() <= 544));
            assert_eq!(f[0][16], 132, "next payload = Cisco fragment");
            assert_eq!(
                u32::from_be_bytes(f[0][20..24].try_into().unwrap()),
                1,
                "message ID of the original"
            );
            assert_eq!(f.last().unwrap()[HEADER_LEN + 7], LAST);
            let mut r = CiscoReassembly::default();
            let mut out = None;
            for d in &f {
                out = r.add(d, 64, 65536).unwrap();
            }
            assert_eq!(out.unwrap(), m);
        }
    }

    #[test]
    fn out_of_order_duplicates_and_interleaved_ids() {
        let (a, b) = (message(1292), message(900));
        let (fa, fb) = (split(&a, 7, 544), split(&b, 8, 544));
        let mut r = CiscoReassembly::default();
        assert_eq!(
            r.add(&fa[2], 64, 65536).unwrap(),
            None,
            "last first: count known, parts missing"
        );
        assert_eq!(r.add(&fb[1], 64, 65536).unwrap(), None);
        assert_eq!(r.add(&fa[0], 64, 65536).unwrap(), None);
        assert_eq!(r.add(&fa[0], 64, 65536).unwrap(), None, "duplicate ignored");
        assert_eq!(r.add(&fb[0], 64, 65536).unwrap(), Some(b));
        assert_eq!(r.add(&fa[1], 64, 65536).unwrap(), Some(a));
        assert!(r.is_empty());
    }

    #[test]
    fn bounds_and_malformed() {
        let f = split(&message(4396), 3, 544);
        let mut r = CiscoReassembly::default();
        let mut err = None;
        for d in &f {
            if let Err(e) = r.add(d, 64, 2000) {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(CiscoFragError::TooLarge));
        let mut bad = f[0].clone();
        bad[HEADER_LEN + 6] = 0;
        assert_eq!(
            r.add(&bad, 64, 65536).unwrap_err(),
            CiscoFragError::Malformed
        );
        assert_eq!(
            r.add(&f[0][..30], 64, 65536).unwrap_err(),
            CiscoFragError::Malformed
        );
        assert_eq!(
            r.add(&f[0], 0, 65536).unwrap_err(),
            CiscoFragError::Malformed
        );
    }

    /// Re-sending fragment 1 under the same number with ever bigger data
    /// counts the new size: the byte limit holds (it once grew to 28 MB).
    #[test]
    fn resent_fragment_is_counted_at_its_new_size() {
        let small = split(&message(200), 5, 544);
        let big = split(&message(1400), 5, 2000);
        assert_eq!((small.len(), big.len()), (1, 1));
        let mut first_small = small[0].clone();
        first_small[HEADER_LEN + 7] = 0; // not LAST: the message stays open
        let mut first_big = big[0].clone();
        first_big[HEADER_LEN + 7] = 0;
        let mut r = CiscoReassembly::default();
        assert_eq!(r.add(&first_small, 64, 1000).unwrap(), None);
        assert_eq!(
            r.add(&first_big, 64, 1000).unwrap_err(),
            CiscoFragError::TooLarge,
            "1400 bytes under the same number exceed a 1000-byte limit"
        );
        // A same-size duplicate is no growth.
        assert_eq!(r.add(&first_small, 64, 1000).unwrap(), None);
        assert_eq!(r.add(&first_small, 64, 1000).unwrap(), None);
    }

    /// A message needing more than 255 fragments at the given size gets
    /// bigger fragments: numbers stay 1..=255 and it reassembles.
    #[test]
    fn numbering_never_wraps() {
        let m = message(60_000);
        let f = split(&m, 9, 100);
        assert!(f.len() <= 255, "{} fragments", f.len());
        let nums: Vec<u8> = f.iter().map(|d| d[HEADER_LEN + 6]).collect();
        assert_eq!(nums, (1..=f.len() as u8).collect::<Vec<_>>());
        let mut r = CiscoReassembly::default();
        let mut out = None;
        for d in &f {
            out = r.add(d, 255, 65536).unwrap();
        }
        assert_eq!(out.unwrap(), m);
    }
}
