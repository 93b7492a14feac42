//! NAT detection (RFC 7296 §2.23): the NAT_DETECTION_SOURCE_IP /
//! DESTINATION_IP hashes we send in IKE_SA_INIT, and what the gateway's
//! say about translation on the path.

use std::net::SocketAddr;

use crate::crypto::auth::nat_hash;
use crate::wire::{Notify, NotifyType, Payload, PayloadBody};

/// The two hashes of our IKE_SA_INIT request (responder SPI still zero).
pub(crate) fn request_hashes(
    spi_i: &[u8; 8],
    local: SocketAddr,
    gateway: SocketAddr,
) -> [Vec<u8>; 2] {
    [
        nat_hash(spi_i, &[0; 8], local),
        nat_hash(spi_i, &[0; 8], gateway),
    ]
}

/// The notifies carrying `hashes` (source first).
pub(crate) fn notifies(hashes: &[Vec<u8>; 2]) -> [Payload<'_>; 2] {
    [
        Payload::from(PayloadBody::Notify(Notify::new(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            &hashes[0],
        ))),
        Payload::from(PayloadBody::Notify(Notify::new(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            &hashes[1],
        ))),
    ]
}

/// What the gateway's hashes say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Nat {
    /// The gateway's own address is translated.
    pub(crate) gateway_behind: bool,
    /// Our address is translated: keepalives are needed (RFC 3948 §2.3).
    pub(crate) we_behind: bool,
}

impl Nat {
    /// Any NAT on the path.
    pub(crate) fn any(&self) -> bool {
        self.gateway_behind || self.we_behind
    }
}

/// Compares the gateway's hashes in its IKE_SA_INIT response with the
/// addresses as we see them. A gateway that sends none reports no NAT.
pub(crate) fn evaluate(
    payloads: &[Payload<'_>],
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
    local: SocketAddr,
    gateway: SocketAddr,
) -> Nat {
    let hashes = |ty: NotifyType| -> Vec<&[u8]> {
        payloads
            .iter()
            .filter_map(|p| match &p.body {
                PayloadBody::Notify(n) if n.ty == ty => Some(n.data),
                _ => None,
            })
            .collect()
    };
    let src = hashes(NotifyType::NAT_DETECTION_SOURCE_IP);
    let dst = hashes(NotifyType::NAT_DETECTION_DESTINATION_IP);
    let gw_hash = nat_hash(spi_i, spi_r, gateway);
    let my_hash = nat_hash(spi_i, spi_r, local);
    Nat {
        gateway_behind: !src.is_empty() && !src.contains(&&gw_hash[..]),
        we_behind: !dst.is_empty() && !dst.contains(&&my_hash[..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_decide_who_is_behind_nat() {
        let spi_i = [1; 8];
        let spi_r = [2; 8];
        let gw: SocketAddr = "198.51.100.1:500".parse().unwrap();
        let me: SocketAddr = "192.0.2.10:500".parse().unwrap();
        let seen: SocketAddr = "203.0.113.7:61000".parse().unwrap();
        fn n(ty: NotifyType, h: &[u8]) -> Payload<'_> {
            Payload::from(PayloadBody::Notify(Notify::new(ty, h)))
        }
        let src = nat_hash(&spi_i, &spi_r, gw);
        let as_seen = nat_hash(&spi_i, &spi_r, seen);
        let exact = nat_hash(&spi_i, &spi_r, me);
        let none = evaluate(&[], &spi_i, &spi_r, me, gw);
        assert_eq!(none, Nat::default(), "no hashes: no NAT");
        let p = [
            n(NotifyType::NAT_DETECTION_SOURCE_IP, &src),
            n(NotifyType::NAT_DETECTION_DESTINATION_IP, &exact),
        ];
        assert!(!evaluate(&p, &spi_i, &spi_r, me, gw).any());
        let p = [
            n(NotifyType::NAT_DETECTION_SOURCE_IP, &src),
            n(NotifyType::NAT_DETECTION_DESTINATION_IP, &as_seen),
        ];
        let nat = evaluate(&p, &spi_i, &spi_r, me, gw);
        assert!(nat.we_behind && !nat.gateway_behind);
    }
}
