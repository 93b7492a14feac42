//! Configuration payload (RFC 7296 §3.15).
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   CFG Type    |                    RESERVED                   |
//! ~                   Configuration Attributes                    ~
//!
//! |R|         Attribute Type      |            Length             |
//! ~                             Value                             ~
//! ```
//! Attributes are kept as raw (type, value) pairs here; their meaning is
//! decoded into a tunnel configuration by the session.

use super::{CfgAttr, CfgType, PayloadType, Reader, Result, Writer};

const CTX: PayloadType = PayloadType::CP;

/// One configuration attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CfgAttribute<'a> {
    /// Attribute type (R bit cleared).
    pub ty: CfgAttr,
    /// Value (empty in a request).
    pub value: &'a [u8],
}

/// A CP payload body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigPayload<'a> {
    /// Request, reply, set or ack.
    pub cfg_type: CfgType,
    /// Attributes in order (unknown ones are kept).
    pub attributes: Vec<CfgAttribute<'a>>,
}

impl<'a> ConfigPayload<'a> {
    /// Parses a CP payload body.
    pub fn parse(body: &'a [u8]) -> Result<ConfigPayload<'a>> {
        let mut r = Reader::new(body, CTX);
        let cfg_type = CfgType(r.u8()?);
        r.take(3)?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            let ty = CfgAttr(r.u16()? & 0x7fff);
            let len = r.u16()? as usize;
            attributes.push(CfgAttribute {
                ty,
                value: r.take(len)?,
            });
        }
        Ok(ConfigPayload {
            cfg_type,
            attributes,
        })
    }

    /// Writes the body.
    pub fn emit(&self, w: &mut Writer) {
        w.u8(self.cfg_type.0);
        w.bytes(&[0, 0, 0]);
        for a in &self.attributes {
            w.u16(a.ty.0 & 0x7fff);
            w.u16(a.value.len() as u16);
            w.bytes(a.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ErrorKind;

    #[test]
    fn roundtrip_with_unknown_attribute() {
        let v = [192, 0, 2, 1];
        let cp = ConfigPayload {
            cfg_type: CfgType::CFG_REPLY,
            attributes: vec![
                CfgAttribute {
                    ty: CfgAttr::INTERNAL_IP4_ADDRESS,
                    value: &v,
                },
                CfgAttribute {
                    ty: CfgAttr(28711),
                    value: &[0x05, 0x7e],
                },
            ],
        };
        let mut w = Writer::new();
        cp.emit(&mut w);
        assert_eq!(w.buf.len(), 4 + 8 + 6);
        assert_eq!(ConfigPayload::parse(&w.buf).unwrap(), cp);
        let mut bad = w.buf.clone();
        bad[7] = 9; // attribute longer than the payload
        assert_eq!(
            ConfigPayload::parse(&bad).unwrap_err().kind,
            ErrorKind::Truncated
        );
        assert!(ConfigPayload::parse(&w.buf[..2]).is_err());
    }
}
