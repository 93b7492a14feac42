//! Traffic Selector payloads (RFC 7296 §3.13).
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Number of TSs |                 RESERVED                      |
//! ~                       <Traffic Selectors>                     ~
//!
//! |   TS Type     |IP Protocol ID |       Selector Length         |
//! |           Start Port          |           End Port            |
//! ~                         Starting Address                      ~
//! ~                         Ending Address                        ~
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Error, ErrorKind, PayloadType, Reader, Result, TsType, Writer};

/// One traffic selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficSelector {
    /// Address family (or an unknown type, kept as raw bytes).
    pub ty: TsType,
    /// IP protocol (0 = any).
    pub protocol: u8,
    /// First port.
    pub start_port: u16,
    /// Last port.
    pub end_port: u16,
    /// First address (raw bytes; 4 or 16 for known types).
    pub start: Vec<u8>,
    /// Last address.
    pub end: Vec<u8>,
}

impl TrafficSelector {
    /// All of IPv4, any protocol and port.
    pub fn any_v4() -> Self {
        Self::range(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::BROADCAST),
        )
    }

    /// All of IPv6.
    pub fn any_v6() -> Self {
        Self::range(
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::from([0xff; 16])),
        )
    }

    /// An address range, any protocol and port. Both ends must be the same family.
    pub fn range(start: IpAddr, end: IpAddr) -> Self {
        let (ty, s, e) = match (start, end) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (
                TsType::IPV4_ADDR_RANGE,
                a.octets().to_vec(),
                b.octets().to_vec(),
            ),
            (IpAddr::V6(a), IpAddr::V6(b)) => (
                TsType::IPV6_ADDR_RANGE,
                a.octets().to_vec(),
                b.octets().to_vec(),
            ),
            (a, _) => {
                let b = a.to_canonical();
                return Self::range(b, b);
            }
        };
        TrafficSelector {
            ty,
            protocol: 0,
            start_port: 0,
            end_port: 65535,
            start: s,
            end: e,
        }
    }

    /// Start and end as addresses, for known types.
    pub fn addrs(&self) -> Option<(IpAddr, IpAddr)> {
        let conv = |b: &[u8]| -> Option<IpAddr> {
            match b.len() {
                4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?))),
                16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
                _ => None,
            }
        };
        Some((conv(&self.start)?, conv(&self.end)?))
    }
}

impl core::fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.addrs() {
            Some((a, b)) => {
                write!(f, "{a}-{b}")?;
                if self.protocol != 0 {
                    write!(f, " proto {}", self.protocol)?;
                }
                if (self.start_port, self.end_port) != (0, 65535) {
                    write!(f, " ports {}-{}", self.start_port, self.end_port)?;
                }
                Ok(())
            }
            None => write!(f, "{:?}", self.ty),
        }
    }
}

/// A TSi or TSr payload body.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TsPayload {
    /// Selectors in order.
    pub selectors: Vec<TrafficSelector>,
}

impl TsPayload {
    /// Parses a TS payload body; `ctx` is TSI or TSR for error reports.
    pub fn parse(body: &[u8], ctx: PayloadType) -> Result<TsPayload> {
        let mut r = Reader::new(body, ctx);
        let count = r.u8()? as usize;
        r.take(3)?;
        let mut selectors = Vec::with_capacity(count.min(16));
        for _ in 0..count {
            let ty = TsType(r.u8()?);
            let protocol = r.u8()?;
            let len = r.u16()? as usize;
            let mut s = r.sub(len, 4)?;
            let start_port = s.u16()?;
            let end_port = s.u16()?;
            let alen = match ty {
                TsType::IPV4_ADDR_RANGE => 4,
                TsType::IPV6_ADDR_RANGE => 16,
                _ => s.rest().len() / 2,
            };
            let start = s.take(alen)?.to_vec();
            let end = s.take(alen)?.to_vec();
            if !s.is_empty() {
                return Err(Error::new(ErrorKind::BadLength, ctx));
            }
            selectors.push(TrafficSelector {
                ty,
                protocol,
                start_port,
                end_port,
                start,
                end,
            });
        }
        if !r.is_empty() {
            return Err(Error::new(ErrorKind::BadLength, ctx));
        }
        Ok(TsPayload { selectors })
    }

    /// Writes the body.
    pub fn emit(&self, w: &mut Writer) {
        w.u8(self.selectors.len() as u8);
        w.bytes(&[0, 0, 0]);
        for s in &self.selectors {
            let start = w.buf.len();
            w.u8(s.ty.0);
            w.u8(s.protocol);
            let at = w.placeholder_u16();
            w.u16(s.start_port);
            w.u16(s.end_port);
            w.bytes(&s.start);
            w.bytes(&s.end);
            w.patch_u16(at, start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_v4_v6() {
        let ts = TsPayload {
            selectors: vec![TrafficSelector::any_v4(), TrafficSelector::any_v6()],
        };
        let mut w = Writer::new();
        ts.emit(&mut w);
        assert_eq!(w.buf.len(), 4 + 16 + 40);
        // RFC 7296 §3.13.1: IPv4 selector is 16 bytes long.
        assert_eq!(&w.buf[4..8], &[7, 0, 0, 16]);
        assert_eq!(TsPayload::parse(&w.buf, PayloadType::TSI).unwrap(), ts);
        assert_eq!(ts.selectors[0].to_string(), "0.0.0.0-255.255.255.255");
    }

    #[test]
    fn bad_inputs() {
        let ts = TsPayload {
            selectors: vec![TrafficSelector::any_v4()],
        };
        let mut w = Writer::new();
        ts.emit(&mut w);
        for cut in 0..w.buf.len() {
            assert!(TsPayload::parse(&w.buf[..cut], PayloadType::TSR).is_err());
        }
        let mut bad = w.buf.clone();
        bad[7] = 20; // selector length larger than the payload
        let e = TsPayload::parse(&bad, PayloadType::TSR).unwrap_err();
        assert_eq!(
            (e.kind, e.payload),
            (ErrorKind::BadLength, PayloadType::TSR)
        );
        let mut bad = w.buf.clone();
        bad[0] = 2; // claims two selectors
        assert_eq!(
            TsPayload::parse(&bad, PayloadType::TSR).unwrap_err().kind,
            ErrorKind::Truncated
        );
    }
}
