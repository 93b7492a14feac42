//! The generic payload header and every IKEv2 payload body
//! (RFC 7296 §3.2–§3.16, RFC 7383 §2.5).
//!
//! ```text
//! Generic Payload Header (RFC 7296 §3.2)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! The Encrypted (SK) and Encrypted Fragment (SKF) payloads end a chain: their
//! Next Payload names the first payload *inside* the ciphertext, which the
//! session parses again with [`parse_chain`] after decryption.

use super::{
    AuthMethod, CertEncoding, ConfigPayload, DhId, Error, ErrorKind, ExchangeType, Header, IdType,
    NotifyType, PayloadType, ProtocolId, Reader, Result, SaPayload, TsPayload, Writer, HEADER_LEN,
};

/// Key Exchange payload body (§3.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ke<'a> {
    /// Diffie-Hellman group.
    pub group: DhId,
    /// Public value.
    pub data: &'a [u8],
}

/// Identification payload body (§3.5), IDi or IDr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Id<'a> {
    /// ID type.
    pub ty: IdType,
    /// Identification data.
    pub data: &'a [u8],
}

impl Id<'_> {
    /// The bytes signed in AUTH: the body after the generic header
    /// ("RestOfInitIDPayload", RFC 7296 §2.15).
    pub fn body(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + self.data.len());
        v.extend_from_slice(&[self.ty.0, 0, 0, 0]);
        v.extend_from_slice(self.data);
        v
    }
}

impl core::fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.ty {
            IdType::IPV4_ADDR if self.data.len() == 4 => {
                let a: [u8; 4] = self.data.try_into().map_err(|_| core::fmt::Error)?;
                write!(f, "{}", std::net::Ipv4Addr::from(a))
            }
            IdType::IPV6_ADDR if self.data.len() == 16 => {
                let a: [u8; 16] = self.data.try_into().map_err(|_| core::fmt::Error)?;
                write!(f, "{}", std::net::Ipv6Addr::from(a))
            }
            IdType::FQDN | IdType::RFC822_ADDR | IdType::KEY_ID => {
                write!(f, "{}", String::from_utf8_lossy(self.data).escape_debug())
            }
            IdType::DER_ASN1_DN => {
                use x509_parser::prelude::FromDer;
                match x509_parser::x509::X509Name::from_der(self.data) {
                    Ok((_, n)) => write!(f, "{n}"),
                    Err(_) => write!(f, "DN of {} bytes", self.data.len()),
                }
            }
            IdType::ID_GROUP => write!(f, "{}", String::from_utf8_lossy(self.data).escape_debug()),
            _ => write!(f, "{:?}:{} bytes", self.ty, self.data.len()),
        }
    }
}

/// Certificate or certificate request body (§3.6, §3.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cert<'a> {
    /// Encoding.
    pub encoding: CertEncoding,
    /// Certificate DER, or concatenated SHA-1 SPKI hashes in a CERTREQ.
    pub data: &'a [u8],
}

/// Authentication payload body (§3.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth<'a> {
    /// Method.
    pub method: AuthMethod,
    /// Authentication data.
    pub data: &'a [u8],
}

/// Notify payload body (§3.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify<'a> {
    /// Protocol the SPI belongs to (NONE when there is no SPI).
    pub protocol: ProtocolId,
    /// SPI (often empty).
    pub spi: &'a [u8],
    /// Notify type.
    pub ty: NotifyType,
    /// Notification data.
    pub data: &'a [u8],
}

impl<'a> Notify<'a> {
    /// A notify without SPI.
    pub fn new(ty: NotifyType, data: &'a [u8]) -> Self {
        Notify {
            protocol: ProtocolId::NONE,
            spi: &[],
            ty,
            data,
        }
    }
}

/// Delete payload body (§3.11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete<'a> {
    /// IKE (no SPIs) or ESP.
    pub protocol: ProtocolId,
    /// SPI size (0 for IKE, 4 for ESP).
    pub spi_size: u8,
    /// Concatenated SPIs.
    pub spis: &'a [u8],
}

impl Delete<'_> {
    /// The SPIs, each `spi_size` bytes.
    pub fn iter_spis(&self) -> impl Iterator<Item = &[u8]> {
        let n = (self.spi_size as usize).max(1);
        self.spis.chunks_exact(n).filter(move |_| self.spi_size > 0)
    }
}

/// Encrypted Fragment payload header fields (RFC 7383 §2.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skf<'a> {
    /// Fragment number, from 1.
    pub number: u16,
    /// Total fragments.
    pub total: u16,
    /// IV, ciphertext and ICV.
    pub data: &'a [u8],
}

/// A payload body, by type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadBody<'a> {
    /// SA.
    Sa(SaPayload),
    /// KE.
    Ke(Ke<'a>),
    /// IDi.
    IdI(Id<'a>),
    /// IDr.
    IdR(Id<'a>),
    /// CERT.
    Cert(Cert<'a>),
    /// CERTREQ.
    CertReq(Cert<'a>),
    /// AUTH.
    Auth(Auth<'a>),
    /// Ni / Nr.
    Nonce(&'a [u8]),
    /// N.
    Notify(Notify<'a>),
    /// D.
    Delete(Delete<'a>),
    /// V.
    VendorId(&'a [u8]),
    /// TSi.
    TsI(TsPayload),
    /// TSr.
    TsR(TsPayload),
    /// SK: IV, ciphertext and ICV, not yet decrypted.
    Sk(&'a [u8]),
    /// SKF.
    Skf(Skf<'a>),
    /// CP.
    Cp(ConfigPayload<'a>),
    /// EAP message (RFC 3748 §4), parsed by the EAP layer.
    Eap(&'a [u8]),
    /// A payload type we do not know, or Cisco's 132; kept as bytes.
    Unknown(PayloadType, &'a [u8]),
}

impl PayloadBody<'_> {
    /// The payload type of this body.
    pub fn ty(&self) -> PayloadType {
        match self {
            PayloadBody::Sa(_) => PayloadType::SA,
            PayloadBody::Ke(_) => PayloadType::KE,
            PayloadBody::IdI(_) => PayloadType::IDI,
            PayloadBody::IdR(_) => PayloadType::IDR,
            PayloadBody::Cert(_) => PayloadType::CERT,
            PayloadBody::CertReq(_) => PayloadType::CERTREQ,
            PayloadBody::Auth(_) => PayloadType::AUTH,
            PayloadBody::Nonce(_) => PayloadType::NONCE,
            PayloadBody::Notify(_) => PayloadType::NOTIFY,
            PayloadBody::Delete(_) => PayloadType::DELETE,
            PayloadBody::VendorId(_) => PayloadType::VENDOR_ID,
            PayloadBody::TsI(_) => PayloadType::TSI,
            PayloadBody::TsR(_) => PayloadType::TSR,
            PayloadBody::Sk(_) => PayloadType::SK,
            PayloadBody::Skf(_) => PayloadType::SKF,
            PayloadBody::Cp(_) => PayloadType::CP,
            PayloadBody::Eap(_) => PayloadType::EAP,
            PayloadBody::Unknown(t, _) => *t,
        }
    }
}

/// A payload with its critical bit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload<'a> {
    /// The C bit of the generic header.
    pub critical: bool,
    /// The body.
    pub body: PayloadBody<'a>,
}

impl<'a> From<PayloadBody<'a>> for Payload<'a> {
    fn from(body: PayloadBody<'a>) -> Self {
        Payload {
            critical: false,
            body,
        }
    }
}

fn parse_body(ty: PayloadType, body: &[u8]) -> Result<PayloadBody<'_>> {
    let mut r = Reader::new(body, ty);
    Ok(match ty {
        PayloadType::SA => PayloadBody::Sa(SaPayload::parse(body)?),
        PayloadType::KE => {
            let group = DhId(r.u16()?);
            r.take(2)?;
            PayloadBody::Ke(Ke {
                group,
                data: r.take_rest(),
            })
        }
        PayloadType::IDI | PayloadType::IDR => {
            let idty = IdType(r.u8()?);
            r.take(3)?;
            let id = Id {
                ty: idty,
                data: r.take_rest(),
            };
            if ty == PayloadType::IDI {
                PayloadBody::IdI(id)
            } else {
                PayloadBody::IdR(id)
            }
        }
        PayloadType::CERT | PayloadType::CERTREQ => {
            let c = Cert {
                encoding: CertEncoding(r.u8()?),
                data: r.take_rest(),
            };
            if ty == PayloadType::CERT {
                PayloadBody::Cert(c)
            } else {
                PayloadBody::CertReq(c)
            }
        }
        PayloadType::AUTH => {
            let method = AuthMethod(r.u8()?);
            r.take(3)?;
            PayloadBody::Auth(Auth {
                method,
                data: r.take_rest(),
            })
        }
        PayloadType::NONCE => {
            // RFC 7296 §2.10: nonces are 16..=256 bytes.
            if !(16..=256).contains(&body.len()) {
                return Err(Error::new(ErrorKind::BadLength, ty));
            }
            PayloadBody::Nonce(body)
        }
        PayloadType::NOTIFY => {
            let protocol = ProtocolId(r.u8()?);
            let spi_size = r.u8()? as usize;
            let nty = NotifyType(r.u16()?);
            let spi = r.take(spi_size)?;
            PayloadBody::Notify(Notify {
                protocol,
                spi,
                ty: nty,
                data: r.take_rest(),
            })
        }
        PayloadType::DELETE => {
            let protocol = ProtocolId(r.u8()?);
            let spi_size = r.u8()?;
            let n = r.u16()? as usize;
            let spis = r.take(n * spi_size as usize)?;
            if !r.is_empty() {
                return Err(Error::new(ErrorKind::BadLength, ty));
            }
            PayloadBody::Delete(Delete {
                protocol,
                spi_size,
                spis,
            })
        }
        PayloadType::VENDOR_ID => PayloadBody::VendorId(body),
        PayloadType::TSI => PayloadBody::TsI(TsPayload::parse(body, ty)?),
        PayloadType::TSR => PayloadBody::TsR(TsPayload::parse(body, ty)?),
        PayloadType::SK => PayloadBody::Sk(body),
        PayloadType::SKF => {
            let number = r.u16()?;
            let total = r.u16()?;
            if number == 0 || total == 0 || number > total {
                return Err(Error::new(ErrorKind::Malformed, ty));
            }
            PayloadBody::Skf(Skf {
                number,
                total,
                data: r.take_rest(),
            })
        }
        PayloadType::CP => PayloadBody::Cp(ConfigPayload::parse(body)?),
        PayloadType::EAP => {
            // RFC 3748 §4: the EAP length must equal the payload body length.
            let _code = r.u8()?;
            let _id = r.u8()?;
            let len = r.u16()? as usize;
            if len != body.len() {
                return Err(Error::new(ErrorKind::BadLength, ty));
            }
            PayloadBody::Eap(body)
        }
        other => PayloadBody::Unknown(other, body),
    })
}

/// Parses a chain of payloads starting with type `first`. Returns the
/// payloads; an SK or SKF payload ends the chain and carries the type of the
/// first inner payload as its second tuple member.
pub fn parse_chain(first: PayloadType, data: &[u8]) -> Result<(Vec<Payload<'_>>, PayloadType)> {
    let mut r = Reader::new(data, first);
    let mut next = first;
    let mut out = Vec::new();
    let mut inner_first = PayloadType::NONE;
    while next != PayloadType::NONE {
        let this = next;
        let mut hdr = Reader::new(r.rest(), this);
        next = PayloadType(hdr.u8()?);
        let flags = hdr.u8()?;
        let len = hdr.u16()? as usize;
        if len < 4 || len > r.rest().len() {
            return Err(Error::new(ErrorKind::BadLength, this));
        }
        let whole = r.take(len)?;
        let body = parse_body(this, &whole[4..])?;
        let critical = flags & 0x80 != 0;
        if let PayloadBody::Unknown(..) = body {
            // RFC 7296 §2.5: an unknown critical payload fails the message.
            if critical {
                return Err(Error::new(ErrorKind::UnsupportedCritical, this));
            }
        }
        out.push(Payload { critical, body });
        if this == PayloadType::SK || this == PayloadType::SKF {
            inner_first = next;
            next = PayloadType::NONE;
            if !r.is_empty() {
                // §3.14: the Encrypted payload, if present, MUST be the last.
                return Err(Error::new(ErrorKind::Unexpected, this));
            }
        }
    }
    if !r.is_empty() {
        return Err(Error::new(ErrorKind::BadLength, PayloadType::NONE));
    }
    Ok((out, inner_first))
}

fn emit_body(body: &PayloadBody<'_>, w: &mut Writer) {
    match body {
        PayloadBody::Sa(sa) => sa.emit(w),
        PayloadBody::Ke(ke) => {
            w.u16(ke.group.0);
            w.u16(0);
            w.bytes(ke.data);
        }
        PayloadBody::IdI(id) | PayloadBody::IdR(id) => {
            w.bytes(&[id.ty.0, 0, 0, 0]);
            w.bytes(id.data);
        }
        PayloadBody::Cert(c) | PayloadBody::CertReq(c) => {
            w.u8(c.encoding.0);
            w.bytes(c.data);
        }
        PayloadBody::Auth(a) => {
            w.bytes(&[a.method.0, 0, 0, 0]);
            w.bytes(a.data);
        }
        PayloadBody::Notify(n) => {
            w.u8(n.protocol.0);
            w.u8(n.spi.len() as u8);
            w.u16(n.ty.0);
            w.bytes(n.spi);
            w.bytes(n.data);
        }
        PayloadBody::Delete(d) => {
            w.u8(d.protocol.0);
            w.u8(d.spi_size);
            w.u16((d.spis.len() / (d.spi_size as usize).max(1)) as u16);
            w.bytes(d.spis);
        }
        PayloadBody::TsI(ts) | PayloadBody::TsR(ts) => ts.emit(w),
        PayloadBody::Skf(f) => {
            w.u16(f.number);
            w.u16(f.total);
            w.bytes(f.data);
        }
        PayloadBody::Cp(cp) => cp.emit(w),
        PayloadBody::Nonce(b)
        | PayloadBody::VendorId(b)
        | PayloadBody::Sk(b)
        | PayloadBody::Eap(b) => w.bytes(b),
        PayloadBody::Unknown(_, b) => w.bytes(b),
    }
}

/// Emits a chain of payloads; the last one's Next Payload is `last_next`
/// (NONE, or the inner first type when the last payload is SK/SKF).
/// Returns the type of the first payload.
pub fn emit_chain(payloads: &[Payload<'_>], last_next: PayloadType, w: &mut Writer) -> PayloadType {
    for (i, p) in payloads.iter().enumerate() {
        let next = payloads
            .get(i + 1)
            .map(|n| n.body.ty())
            .unwrap_or(last_next);
        let start = w.buf.len();
        w.u8(next.0);
        w.u8(if p.critical { 0x80 } else { 0 });
        let at = w.placeholder_u16();
        emit_body(&p.body, w);
        w.patch_u16(at, start);
    }
    payloads.first().map(|p| p.body.ty()).unwrap_or(last_next)
}

/// A whole parsed (outer) IKE message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The header.
    pub header: Header,
    /// The plaintext payloads (an SK/SKF payload last, if encrypted).
    pub payloads: Vec<Payload<'a>>,
    /// For encrypted messages: type of the first payload inside SK/SKF.
    pub inner_first: PayloadType,
}

impl<'a> Message<'a> {
    /// Parses a datagram holding one IKE message.
    pub fn parse(datagram: &'a [u8]) -> Result<Message<'a>> {
        let header = Header::parse(datagram)?;
        let (payloads, inner_first) = parse_chain(header.next_payload, &datagram[HEADER_LEN..])?;
        Ok(Message {
            header,
            payloads,
            inner_first,
        })
    }

    /// Emits an unencrypted message.
    pub fn emit(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let mut h = self.header;
        h.next_payload = self
            .payloads
            .first()
            .map(|p| p.body.ty())
            .unwrap_or(PayloadType::NONE);
        h.emit(&mut w);
        emit_chain(&self.payloads, self.inner_first, &mut w);
        Header::patch_length(&mut w.buf);
        w.buf
    }

    /// Notifies of a type, in order.
    pub fn notifies(&self) -> impl Iterator<Item = &Notify<'a>> {
        self.payloads.iter().filter_map(|p| match &p.body {
            PayloadBody::Notify(n) => Some(n),
            _ => None,
        })
    }

    /// Whether this is an exchange of type `ty`.
    pub fn is(&self, ty: ExchangeType) -> bool {
        self.header.exchange == ty
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CfgAttr, CfgAttribute, CfgType, Flags};

    /// IDi from seed 004's first IKE_AUTH request: "IDi ... 長度：28 / Id型別：組名稱"
    /// with data `2a 24 41 6e 79 43 6f 6e 6e 65 63 74 43 6c 69 65 6e 74 24 2a`.
    /// The ASA debug names the type "group name"; on the wire that is the
    /// private-use type 201 (shared/protocol/anyconnect-ikev2.md §3).
    const SEED_IDI: [u8; 28] = [
        0x26, 0x00, 0x00, 0x1c, 0xc9, 0x00, 0x00, 0x00, 0x2a, 0x24, 0x41, 0x6e, 0x79, 0x43, 0x6f,
        0x6e, 0x6e, 0x65, 0x63, 0x74, 0x43, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x24, 0x2a,
    ];

    #[test]
    fn seed_idi_parse_and_emit() {
        // The seed's IDi is followed by CERTREQ; parse it as the last payload.
        let mut alone = SEED_IDI;
        alone[0] = 0;
        let (mut ps, _) = parse_chain(PayloadType::IDI, &alone).unwrap();
        let p = ps.remove(0);
        let PayloadBody::IdI(id) = &p.body else {
            panic!("not IDi")
        };
        assert_eq!(id.ty, IdType::ID_GROUP);
        assert_eq!(id.data, b"*$AnyConnectClient$*");
        let mut w = Writer::new();
        emit_chain(std::slice::from_ref(&p), PayloadType::CERTREQ, &mut w);
        assert_eq!(&w.buf[..], &SEED_IDI[..]);
    }

    /// IDr from seed 004 (msg 4): DER_ASN1_DN of `hostname=ASA-IKEV2`, 28 data bytes.
    #[test]
    fn seed_idr_dn() {
        let mut raw = vec![0u8, 0, 0, 36, 9, 0, 0, 0];
        raw.extend_from_slice(&[
            0x30, 0x1a, 0x31, 0x18, 0x30, 0x16, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
            0x01, 0x09, 0x02, 0x16, 0x09,
        ]);
        raw.extend_from_slice(b"ASA-IKEV2");
        let (p, _) = parse_chain(PayloadType::IDR, &raw).unwrap();
        let PayloadBody::IdR(id) = &p[0].body else {
            panic!()
        };
        assert_eq!((id.ty, id.data.len()), (IdType::DER_ASN1_DN, 28));
    }

    fn sample_chain() -> Vec<u8> {
        let nonce = [7u8; 32];
        let addr = [0u8; 0];
        let payloads = vec![
            Payload::from(PayloadBody::Nonce(&nonce)),
            Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                &[1; 20],
            ))),
            Payload::from(PayloadBody::Cp(ConfigPayload {
                cfg_type: CfgType::CFG_REQUEST,
                attributes: vec![CfgAttribute {
                    ty: CfgAttr::INTERNAL_IP4_ADDRESS,
                    value: &addr,
                }],
            })),
            Payload::from(PayloadBody::Delete(Delete {
                protocol: ProtocolId::ESP,
                spi_size: 4,
                spis: &[1, 2, 3, 4, 5, 6, 7, 8],
            })),
            Payload::from(PayloadBody::Auth(Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: &[9; 20],
            })),
            Payload::from(PayloadBody::Eap(&[2, 1, 0, 5, 1])),
            Payload::from(PayloadBody::VendorId(b"acclient")),
            Payload::from(PayloadBody::Cert(Cert {
                encoding: CertEncoding::X509_SIGNATURE,
                data: &[0x30, 3, 1, 2, 3],
            })),
            Payload::from(PayloadBody::CertReq(Cert {
                encoding: CertEncoding::X509_SIGNATURE,
                data: &[0xab; 40],
            })),
            Payload::from(PayloadBody::IdR(Id {
                ty: IdType::FQDN,
                data: b"vpn.example.com",
            })),
            Payload::from(PayloadBody::Ke(Ke {
                group: DhId::ECP_256,
                data: &[4; 64],
            })),
        ];
        let mut w = Writer::new();
        emit_chain(&payloads, PayloadType::NONE, &mut w);
        w.buf
    }

    #[test]
    fn chain_roundtrip_every_simple_payload() {
        let bytes = sample_chain();
        let (p, _) = parse_chain(PayloadType::NONCE, &bytes).unwrap();
        assert_eq!(p.len(), 11);
        let mut w = Writer::new();
        emit_chain(&p, PayloadType::NONE, &mut w);
        assert_eq!(w.buf, bytes);
        let PayloadBody::Delete(d) = &p[3].body else {
            panic!()
        };
        assert_eq!(d.iter_spis().count(), 2);
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let bytes = sample_chain();
        for cut in 0..bytes.len() {
            assert!(parse_chain(PayloadType::NONCE, &bytes[..cut]).is_err() || cut == 0);
        }
    }

    #[test]
    fn bad_lengths_and_critical_unknown() {
        let mut bytes = sample_chain();
        bytes[3] = 3; // payload length below the generic header
        assert_eq!(
            parse_chain(PayloadType::NONCE, &bytes).unwrap_err().kind,
            ErrorKind::BadLength
        );
        // unknown payload type 200, critical
        let raw = [0u8, 0x80, 0, 6, 1, 2];
        let e = parse_chain(PayloadType(200), &raw).unwrap_err();
        assert_eq!(
            (e.kind, e.payload),
            (ErrorKind::UnsupportedCritical, PayloadType(200))
        );
        // same, not critical: kept
        let raw = [0u8, 0x00, 0, 6, 1, 2];
        let (p, _) = parse_chain(PayloadType(200), &raw).unwrap();
        assert_eq!(p[0].body, PayloadBody::Unknown(PayloadType(200), &[1, 2]));
        // EAP length disagreeing with payload length
        let raw = [0u8, 0, 0, 9, 1, 1, 0, 6, 1];
        assert_eq!(
            parse_chain(PayloadType::EAP, &raw).unwrap_err().kind,
            ErrorKind::BadLength
        );
        // nonce too short
        let raw = [0u8, 0, 0, 8, 1, 2, 3, 4];
        assert_eq!(
            parse_chain(PayloadType::NONCE, &raw).unwrap_err().kind,
            ErrorKind::BadLength
        );
    }

    #[test]
    fn message_with_sk_last() {
        let h = Header {
            spi_i: [1; 8],
            spi_r: [2; 8],
            next_payload: PayloadType::NONE,
            version: 0x20,
            exchange: ExchangeType::IKE_AUTH,
            flags: Flags(Flags::INITIATOR),
            message_id: 1,
            length: 0,
        };
        let m = Message {
            header: h,
            payloads: vec![Payload::from(PayloadBody::Sk(&[0xaa; 48]))],
            inner_first: PayloadType::IDI,
        };
        let bytes = m.emit();
        let back = Message::parse(&bytes).unwrap();
        assert_eq!(back.inner_first, PayloadType::IDI);
        assert_eq!(back.header.length as usize, bytes.len());
        assert_eq!(back.payloads, m.payloads);
        // SK followed by garbage is refused
        let mut bad = bytes.clone();
        bad.extend_from_slice(&[0, 0, 0, 4]);
        Header::patch_length(&mut bad);
        assert_eq!(
            Message::parse(&bad).unwrap_err().kind,
            ErrorKind::Unexpected
        );
    }

    #[test]
    fn skf_numbers_checked() {
        let raw = [0u8, 0, 0, 12, 0, 3, 0, 2, 1, 2, 3, 4];
        assert_eq!(
            parse_chain(PayloadType::SKF, &raw).unwrap_err().kind,
            ErrorKind::Malformed
        );
        let raw = [0u8, 0, 0, 12, 0, 2, 0, 2, 1, 2, 3, 4];
        let (p, _) = parse_chain(PayloadType::SKF, &raw).unwrap();
        assert_eq!(
            p[0].body,
            PayloadBody::Skf(Skf {
                number: 2,
                total: 2,
                data: &[1, 2, 3, 4]
            })
        );
    }
}
