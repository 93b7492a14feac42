//! Security Association payload (RFC 7296 §3.3): proposals, transforms and
//! transform attributes.
//!
//! ```text
//! Proposal substructure                 Transform substructure
//! +---------------+---------------+     +---------------+---------------+
//! | Last Substruc |   RESERVED    |     | Last Substruc |   RESERVED    |
//! |        Proposal Length        |     |       Transform Length        |
//! | Proposal Num  |  Protocol ID  |     |Transform Type |   RESERVED    |
//! |    SPI Size   |Num  Transforms|     |          Transform ID         |
//! ~                 SPI (variable)      ~     ~   Transform Attributes  ~
//! ~                <Transforms>         ~
//! ```

use super::{Error, ErrorKind, PayloadType, ProtocolId, Reader, Result, TransformType, Writer};

const CTX: PayloadType = PayloadType::SA;
/// Attribute type of the key length (RFC 7296 §3.3.5), sent in TV format.
pub const ATTR_KEY_LENGTH: u16 = 14;

/// A transform attribute (RFC 7296 §3.3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribute {
    /// TV format (AF bit set): a 16-bit value.
    Tv {
        /// Attribute type without the AF bit.
        ty: u16,
        /// Value.
        value: u16,
    },
    /// TLV format: a variable value.
    Tlv {
        /// Attribute type.
        ty: u16,
        /// Value.
        value: Vec<u8>,
    },
}

/// One transform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transform {
    /// Transform type.
    pub ty: TransformType,
    /// Transform ID (meaning depends on `ty`).
    pub id: u16,
    /// Attributes; in practice only the key length.
    pub attributes: Vec<Attribute>,
}

impl Transform {
    /// A transform without attributes.
    pub fn new(ty: TransformType, id: u16) -> Self {
        Transform {
            ty,
            id,
            attributes: Vec::new(),
        }
    }

    /// A transform with a key-length attribute (AES).
    pub fn with_key_len(ty: TransformType, id: u16, bits: u16) -> Self {
        Transform {
            ty,
            id,
            attributes: vec![Attribute::Tv {
                ty: ATTR_KEY_LENGTH,
                value: bits,
            }],
        }
    }

    /// The key length attribute, if any.
    pub fn key_len(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Tv {
                ty: ATTR_KEY_LENGTH,
                value,
            } => Some(*value),
            _ => None,
        })
    }

    fn parse(r: &mut Reader<'_>) -> Result<(Transform, bool)> {
        let last = r.u8()?;
        let _reserved = r.u8()?;
        let len = r.u16()? as usize;
        if len < 8 {
            return Err(Error::new(ErrorKind::BadLength, CTX));
        }
        let mut body = r.sub(len, 4)?;
        let ty = TransformType(body.u8()?);
        let _reserved = body.u8()?;
        let id = body.u16()?;
        let mut attributes = Vec::new();
        while !body.is_empty() {
            let t = body.u16()?;
            if t & 0x8000 != 0 {
                attributes.push(Attribute::Tv {
                    ty: t & 0x7fff,
                    value: body.u16()?,
                });
            } else {
                let l = body.u16()? as usize;
                attributes.push(Attribute::Tlv {
                    ty: t,
                    value: body.take(l)?.to_vec(),
                });
            }
        }
        let more = match last {
            0 => false,
            3 => true,
            _ => return Err(Error::new(ErrorKind::Malformed, CTX)),
        };
        Ok((Transform { ty, id, attributes }, more))
    }

    fn emit(&self, w: &mut Writer, last: bool) {
        let start = w.buf.len();
        w.u8(if last { 0 } else { 3 });
        w.u8(0);
        let at = w.placeholder_u16();
        w.u8(self.ty.0);
        w.u8(0);
        w.u16(self.id);
        for a in &self.attributes {
            match a {
                Attribute::Tv { ty, value } => {
                    w.u16(ty | 0x8000);
                    w.u16(*value);
                }
                Attribute::Tlv { ty, value } => {
                    w.u16(*ty & 0x7fff);
                    w.u16(value.len() as u16);
                    w.bytes(value);
                }
            }
        }
        w.patch_u16(at, start);
    }
}

/// One proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal number (1-based; the responder echoes the chosen one).
    pub num: u8,
    /// IKE or ESP.
    pub protocol: ProtocolId,
    /// SPI (empty in an initial IKE proposal, 4 bytes for ESP, 8 for an IKE rekey).
    pub spi: Vec<u8>,
    /// Transforms in the sender's order of preference.
    pub transforms: Vec<Transform>,
}

impl Proposal {
    /// Transform IDs of one type, in order.
    pub fn of_type(&self, ty: TransformType) -> impl Iterator<Item = &Transform> {
        self.transforms.iter().filter(move |t| t.ty == ty)
    }
}

/// The SA payload body: a list of proposals.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SaPayload {
    /// Proposals, in order.
    pub proposals: Vec<Proposal>,
}

impl SaPayload {
    /// Parses an SA payload body.
    pub fn parse(body: &[u8]) -> Result<SaPayload> {
        let mut r = Reader::new(body, CTX);
        let mut proposals = Vec::new();
        loop {
            let last = r.u8()?;
            let _reserved = r.u8()?;
            let len = r.u16()? as usize;
            if len < 8 {
                return Err(Error::new(ErrorKind::BadLength, CTX));
            }
            let mut p = r.sub(len, 4)?;
            let num = p.u8()?;
            let protocol = ProtocolId(p.u8()?);
            let spi_size = p.u8()? as usize;
            let count = p.u8()? as usize;
            let spi = p.take(spi_size)?.to_vec();
            let mut transforms = Vec::with_capacity(count);
            let mut more = count > 0;
            while more {
                let (t, m) = Transform::parse(&mut p)?;
                transforms.push(t);
                more = m;
            }
            if transforms.len() != count || !p.is_empty() {
                return Err(Error::new(ErrorKind::Malformed, CTX));
            }
            proposals.push(Proposal {
                num,
                protocol,
                spi,
                transforms,
            });
            match last {
                0 => break,
                2 => continue,
                _ => return Err(Error::new(ErrorKind::Malformed, CTX)),
            }
        }
        if !r.is_empty() {
            return Err(Error::new(ErrorKind::BadLength, CTX));
        }
        Ok(SaPayload { proposals })
    }

    /// Writes the SA payload body.
    pub fn emit(&self, w: &mut Writer) {
        for (i, p) in self.proposals.iter().enumerate() {
            let start = w.buf.len();
            w.u8(if i + 1 == self.proposals.len() { 0 } else { 2 });
            w.u8(0);
            let at = w.placeholder_u16();
            w.u8(p.num);
            w.u8(p.protocol.0);
            w.u8(p.spi.len() as u8);
            w.u8(p.transforms.len() as u8);
            w.bytes(&p.spi);
            for (j, t) in p.transforms.iter().enumerate() {
                t.emit(w, j + 1 == p.transforms.len());
            }
            w.patch_u16(at, start);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::{DhId, EncrId, IntegId, PrfId};

    /// The AnyConnect 3.0 client's IKE proposal from seed 004 (IKE_SA_INIT
    /// request, "建議：1，協定id:IKE，SPI大小：0, #trans:18"): SA payload length 168,
    /// proposal 164, AES-CBC transforms 12 bytes, the rest 8. The debug shows
    /// no key lengths; the three AES transforms are taken as 256/192/128, the
    /// Cisco client's order.
    pub(crate) fn seed_proposal() -> SaPayload {
        use TransformType as T;
        let mut t = vec![
            Transform::with_key_len(T::ENCR, EncrId::AES_CBC.0, 256),
            Transform::with_key_len(T::ENCR, EncrId::AES_CBC.0, 192),
            Transform::with_key_len(T::ENCR, EncrId::AES_CBC.0, 128),
            Transform::new(T::ENCR, EncrId::TRIPLE_DES.0),
            Transform::new(T::ENCR, EncrId::DES.0),
        ];
        for p in [
            PrfId::HMAC_SHA2_512,
            PrfId::HMAC_SHA2_384,
            PrfId::HMAC_SHA2_256,
            PrfId::HMAC_SHA1,
            PrfId::HMAC_MD5,
        ] {
            t.push(Transform::new(T::PRF, p.0));
        }
        for i in [
            IntegId::HMAC_SHA2_512_256,
            IntegId::HMAC_SHA2_384_192,
            IntegId::HMAC_SHA2_256_128,
            IntegId::HMAC_SHA1_96,
            IntegId::HMAC_MD5_96,
        ] {
            t.push(Transform::new(T::INTEG, i.0));
        }
        for g in [DhId::MODP_1536, DhId::MODP_1024, DhId::MODP_768] {
            t.push(Transform::new(T::DH, g.0));
        }
        SaPayload {
            proposals: vec![Proposal {
                num: 1,
                protocol: ProtocolId::IKE,
                spi: vec![],
                transforms: t,
            }],
        }
    }

    #[test]
    fn seed_18_transform_proposal_lengths() {
        let sa = seed_proposal();
        let mut w = Writer::new();
        sa.emit(&mut w);
        // Seed: "SA ... 長度：168" includes the 4-byte generic header; proposal 164.
        assert_eq!(w.buf.len() + 4, 168);
        assert_eq!(u16::from_be_bytes([w.buf[2], w.buf[3]]), 164);
        assert_eq!(w.buf[7], 18, "#trans:18");
        // First transform: "上次轉換：0x3 ... 長度：12", last "上次轉換：0x0 ... 長度：8".
        assert_eq!(&w.buf[8..12], &[3, 0, 0, 12]);
        let last = w.buf.len() - 8;
        assert_eq!(&w.buf[last..last + 4], &[0, 0, 0, 8]);
        let back = SaPayload::parse(&w.buf).unwrap();
        assert_eq!(back, sa);
        assert_eq!(back.proposals[0].transforms[17].id, DhId::MODP_768.0);
        assert_eq!(back.proposals[0].transforms[0].key_len(), Some(256));
    }

    #[test]
    fn truncation_and_bad_lengths() {
        let mut w = Writer::new();
        seed_proposal().emit(&mut w);
        for cut in [0, 3, 7, 11, 50, w.buf.len() - 1] {
            assert!(SaPayload::parse(&w.buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = w.buf.clone();
        bad[2..4].copy_from_slice(&7u16.to_be_bytes()); // proposal shorter than its header
        assert_eq!(
            SaPayload::parse(&bad).unwrap_err().kind,
            ErrorKind::BadLength
        );
        let mut bad = w.buf.clone();
        bad[7] = 17; // count disagrees with the transform chain
        assert_eq!(
            SaPayload::parse(&bad).unwrap_err().kind,
            ErrorKind::Malformed
        );
        let mut bad = w.buf.clone();
        bad[10..12].copy_from_slice(&200u16.to_be_bytes()); // transform overruns proposal
        assert_eq!(
            SaPayload::parse(&bad).unwrap_err().kind,
            ErrorKind::BadLength
        );
    }

    #[test]
    fn unknown_transform_and_tlv_attribute_survive() {
        let sa = SaPayload {
            proposals: vec![Proposal {
                num: 1,
                protocol: ProtocolId::ESP,
                spi: vec![1, 2, 3, 4],
                transforms: vec![Transform {
                    ty: TransformType(99),
                    id: 4242,
                    attributes: vec![Attribute::Tlv {
                        ty: 77,
                        value: vec![9, 9, 9],
                    }],
                }],
            }],
        };
        let mut w = Writer::new();
        sa.emit(&mut w);
        assert_eq!(SaPayload::parse(&w.buf).unwrap(), sa);
    }
}
