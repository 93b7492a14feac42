//! The IKE header (RFC 7296 §3.1).
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Initiator's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Responder's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          Message ID                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            Length                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::{Error, ErrorKind, ExchangeType, PayloadType, Reader, Result, Writer};

/// Length of the fixed IKE header.
pub const HEADER_LEN: usize = 28;

/// Header flags (RFC 7296 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// I(nitiator): set by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// V(ersion): we speak nothing higher than 2.0.
    pub const VERSION: u8 = 0x10;
    /// R(esponse).
    pub const RESPONSE: u8 = 0x20;

    /// Whether the I flag is set.
    pub fn initiator(self) -> bool {
        self.0 & Self::INITIATOR != 0
    }
    /// Whether the R flag is set.
    pub fn response(self) -> bool {
        self.0 & Self::RESPONSE != 0
    }
}

/// A parsed IKE header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Initiator's SPI.
    pub spi_i: [u8; 8],
    /// Responder's SPI (zero in the first IKE_SA_INIT request).
    pub spi_r: [u8; 8],
    /// Type of the first payload.
    pub next_payload: PayloadType,
    /// Major (high nibble) and minor version.
    pub version: u8,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// Flags.
    pub flags: Flags,
    /// Message ID.
    pub message_id: u32,
    /// Total message length including the header.
    pub length: u32,
}

impl Header {
    /// Parses and checks the header of `datagram` (which must hold exactly
    /// one IKE message, without a non-ESP marker).
    pub fn parse(datagram: &[u8]) -> Result<Header> {
        let mut r = Reader::new(datagram, PayloadType::NONE);
        let spi_i: [u8; 8] = r.take(8)?.try_into().expect("take(8) returns 8 bytes");
        let spi_r: [u8; 8] = r.take(8)?.try_into().expect("take(8) returns 8 bytes");
        let next_payload = PayloadType(r.u8()?);
        let version = r.u8()?;
        let exchange = ExchangeType(r.u8()?);
        let flags = Flags(r.u8()?);
        let message_id = r.u32()?;
        let length = r.u32()?;
        if version >> 4 != 2 {
            return Err(Error::new(ErrorKind::Malformed, PayloadType::NONE));
        }
        if (length as usize) < HEADER_LEN || length as usize != datagram.len() {
            return Err(Error::new(ErrorKind::BadLength, PayloadType::NONE));
        }
        Ok(Header {
            spi_i,
            spi_r,
            next_payload,
            version,
            exchange,
            flags,
            message_id,
            length,
        })
    }

    /// Writes the header; `length` is written as given (see [`Header::patch_length`]).
    pub fn emit(&self, w: &mut Writer) {
        w.bytes(&self.spi_i);
        w.bytes(&self.spi_r);
        w.u8(self.next_payload.0);
        w.u8(self.version);
        w.u8(self.exchange.0);
        w.u8(self.flags.0);
        w.u32(self.message_id);
        w.u32(self.length);
    }

    /// Sets the length field of an emitted message to its buffer length.
    pub fn patch_length(message: &mut [u8]) {
        let len = message.len() as u32;
        if message.len() >= HEADER_LEN {
            message[24..28].copy_from_slice(&len.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // IKE_SA_INIT request header from seed 004 (ispi 58AFF71141BA436B, length 528).
    fn seed_header() -> Vec<u8> {
        let mut v = vec![0x58, 0xaf, 0xf7, 0x11, 0x41, 0xba, 0x43, 0x6b];
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&[33, 0x20, 34, 0x08, 0, 0, 0, 0, 0, 0, 0x02, 0x10]);
        v.resize(528, 0);
        v
    }

    #[test]
    fn parse_seed_header() {
        let h = Header::parse(&seed_header()).unwrap();
        assert_eq!(h.exchange, ExchangeType::IKE_SA_INIT);
        assert!(h.flags.initiator() && !h.flags.response());
        assert_eq!(h.next_payload, PayloadType::SA);
        assert_eq!(h.length, 528);
    }

    #[test]
    fn emit_roundtrip() {
        let d = seed_header();
        let h = Header::parse(&d).unwrap();
        let mut w = Writer::new();
        h.emit(&mut w);
        assert_eq!(&w.buf[..], &d[..HEADER_LEN]);
    }

    #[test]
    fn truncated_and_bad_length() {
        let d = seed_header();
        assert_eq!(
            Header::parse(&d[..20]).unwrap_err().kind,
            ErrorKind::Truncated
        );
        assert_eq!(
            Header::parse(&d[..100]).unwrap_err().kind,
            ErrorKind::BadLength
        );
        let mut bad = d.clone();
        bad[17] = 0x30; // IKEv3
        assert_eq!(Header::parse(&bad).unwrap_err().kind, ErrorKind::Malformed);
    }
}
