//! EAP-AnyConnect ("aggregate auth" over EAP): the framing of Cisco's
//! expanded EAP type (RFC 3748 §5.7, vendor 9, vendor type 0x44425250) and its
//! TLVs (shared/protocol/anyconnect-ikev2.md §2).
//!
//! ```text
//!  0      1      2      3      4      5      6      7      8 ...  12
//! | Code | Id   |    Length   | 0xFE |  Vendor-Id 0x000009  | Vendor-Type 0x44425250 |
//! | TLV type (2) | TLV length (2, value only) | value ... | TLV ... |
//! ```
//! TLV 0 carries the `config-auth` XML, 1 a signature, 3 a PKCS#7 chain.

pub mod form;
pub mod peer;
pub mod xml;

use core::fmt;

/// Cisco's SMI enterprise number.
pub const VENDOR_ID: u32 = 9;
/// "DBRP".
pub const VENDOR_TYPE: u32 = 0x4442_5250;
/// TLV carrying the XML document.
pub const TLV_XML: u16 = 0;
/// TLV carrying the AUTH-style signature (client certificate round).
pub const TLV_SIGNATURE: u16 = 1;
/// TLV carrying the PKCS#7 certs-only chain.
pub const TLV_PKCS7: u16 = 3;
const HEADER: usize = 12;

/// Why an EAP-AnyConnect packet is unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than the 12-byte expanded header, or the EAP length disagrees.
    BadLength,
    /// Not Cisco's expanded type.
    NotAnyConnect,
    /// A TLV runs past the end of the packet.
    TruncatedTlv(u16),
    /// No XML TLV.
    NoXml,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadLength => write!(f, "EAP-AnyConnect packet has a bad length"),
            FrameError::NotAnyConnect => {
                write!(f, "not an EAP-AnyConnect (Cisco expanded type) packet")
            }
            FrameError::TruncatedTlv(t) => {
                write!(f, "EAP-AnyConnect TLV {t} runs past the end of the packet")
            }
            FrameError::NoXml => write!(f, "EAP-AnyConnect packet without an XML document"),
        }
    }
}

impl std::error::Error for FrameError {}

/// A parsed EAP-AnyConnect packet (a borrowed view).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// EAP code (1 request, 2 response).
    pub code: u8,
    /// EAP identifier.
    pub id: u8,
    /// TLVs in order (type, value).
    pub tlvs: Vec<(u16, &'a [u8])>,
}

impl<'a> Frame<'a> {
    /// Whether `eap` is Cisco's expanded type (without validating the rest).
    pub fn is_anyconnect(eap: &[u8]) -> bool {
        eap.len() >= HEADER
            && eap[4] == 254
            && eap[5..8] == VENDOR_ID.to_be_bytes()[1..]
            && eap[8..12] == VENDOR_TYPE.to_be_bytes()
    }

    /// Parses a whole EAP packet.
    pub fn parse(eap: &'a [u8]) -> Result<Frame<'a>, FrameError> {
        if eap.len() < HEADER || u16::from_be_bytes([eap[2], eap[3]]) as usize != eap.len() {
            return Err(FrameError::BadLength);
        }
        if !Self::is_anyconnect(eap) {
            return Err(FrameError::NotAnyConnect);
        }
        let mut tlvs = Vec::new();
        let mut rest = &eap[HEADER..];
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(FrameError::TruncatedTlv(u16::MAX));
            }
            let ty = u16::from_be_bytes([rest[0], rest[1]]);
            let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
            let value = rest.get(4..4 + len).ok_or(FrameError::TruncatedTlv(ty))?;
            tlvs.push((ty, value));
            rest = &rest[4 + len..];
        }
        Ok(Frame {
            code: eap[0],
            id: eap[1],
            tlvs,
        })
    }

    /// The XML document (TLV 0).
    pub fn xml(&self) -> Result<&'a [u8], FrameError> {
        self.tlvs
            .iter()
            .find(|(t, _)| *t == TLV_XML)
            .map(|(_, v)| *v)
            .ok_or(FrameError::NoXml)
    }

    /// Builds an EAP packet with these TLVs (in the given order).
    pub fn build(code: u8, id: u8, tlvs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut v = vec![code, id, 0, 0, 254];
        v.extend_from_slice(&VENDOR_ID.to_be_bytes()[1..]);
        v.extend_from_slice(&VENDOR_TYPE.to_be_bytes());
        for (t, val) in tlvs {
            v.extend_from_slice(&t.to_be_bytes());
            v.extend_from_slice(&(val.len() as u16).to_be_bytes());
            v.extend_from_slice(val);
        }
        let l = v.len() as u16;
        v[2..4].copy_from_slice(&l.to_be_bytes());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_parse_roundtrip_and_errors() {
        let p = Frame::build(
            2,
            7,
            &[
                (TLV_PKCS7, b"chain"),
                (TLV_SIGNATURE, b"sig"),
                (TLV_XML, b"<x/>"),
            ],
        );
        assert_eq!(&p[4..12], &[0xfe, 0, 0, 9, 0x44, 0x42, 0x52, 0x50]);
        let f = Frame::parse(&p).unwrap();
        assert_eq!((f.code, f.id, f.tlvs.len()), (2, 7, 3));
        assert_eq!(f.xml().unwrap(), b"<x/>");
        for cut in 0..p.len() {
            assert!(Frame::parse(&p[..cut]).is_err());
        }
        let mut bad = p.clone();
        bad[11] = 0x51;
        assert_eq!(Frame::parse(&bad).unwrap_err(), FrameError::NotAnyConnect);
        let mut bad = p.clone();
        bad[15] = 200; // TLV length past the end
        assert!(matches!(
            Frame::parse(&bad).unwrap_err(),
            FrameError::TruncatedTlv(3)
        ));
        assert_eq!(
            Frame::parse(&Frame::build(1, 1, &[]))
                .unwrap()
                .xml()
                .unwrap_err(),
            FrameError::NoXml
        );
    }
}
