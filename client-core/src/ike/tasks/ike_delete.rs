//! DELETE in INFORMATIONAL exchanges (RFC 7296 §1.4.1): the gateway's, which
//! we answer with the SPIs of our inbound halves, and ours.
//!
//! ```text
//! <--  HDR, SK {D(ESP, gateway's inbound SPIs)}     HDR, SK {D(ESP, ours)}  -->
//! <--  HDR, SK {D(IKE)}                             HDR, SK {}  -->
//! HDR, SK {D(IKE)}  -->                             <--  HDR, SK {}
//! ```

use crate::wire::{Delete, Payload, PayloadBody, ProtocolId};

/// What a request's DELETE payloads name.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Deletes {
    /// The IKE SA (and with it every CHILD SA).
    pub(crate) ike: bool,
    /// ESP SAs by the gateway's inbound SPI (our outbound).
    pub(crate) esp_out: Vec<u32>,
}

/// Reads the DELETE payloads of an INFORMATIONAL request.
pub(crate) fn parse(payloads: &[Payload<'_>]) -> Deletes {
    let mut d = Deletes::default();
    for p in payloads {
        if let PayloadBody::Delete(del) = &p.body {
            match del.protocol {
                ProtocolId::IKE => d.ike = true,
                ProtocolId::ESP => d.esp_out.extend(
                    del.iter_spis()
                        .filter_map(|s| <[u8; 4]>::try_from(s).ok())
                        .map(u32::from_be_bytes),
                ),
                _ => {}
            }
        }
    }
    d
}

/// DELETE of the IKE SA.
pub(crate) fn ike() -> Payload<'static> {
    Payload::from(PayloadBody::Delete(Delete {
        protocol: ProtocolId::IKE,
        spi_size: 0,
        spis: &[],
    }))
}

/// DELETE of ESP SAs by our inbound SPIs (`spis`: 4 bytes each).
pub(crate) fn esp(spis: &[u8]) -> Payload<'_> {
    Payload::from(PayloadBody::Delete(Delete {
        protocol: ProtocolId::ESP,
        spi_size: 4,
        spis,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_are_read() {
        let spis = [0xc0, 0, 0, 1, 0xc0, 0, 0, 2, 9];
        let p = [esp(&spis), ike()];
        assert_eq!(
            parse(&p),
            Deletes {
                ike: true,
                esp_out: vec![0xc000_0001, 0xc000_0002],
            },
            "the odd trailing byte is not an SPI"
        );
        assert_eq!(parse(&[]), Deletes::default());
    }
}
