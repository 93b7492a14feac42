//! Diffie-Hellman groups (RFC 7296 §3.4): MODP (RFC 2409 §6, RFC 3526),
//! ECP (RFC 5903, public value x | y without the 0x04 prefix, shared secret
//! = x coordinate) and Curve25519 (RFC 8031).

use aws_lc_rs::agreement;
use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};

use super::{Rng, Secret};
use crate::wire::DhId;

/// Why a key exchange failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DhError {
    /// The group is not implemented.
    #[error("Diffie-Hellman group {0} is not supported")]
    Unsupported(DhId),
    /// The peer's public value has the wrong length or is not a valid point / element.
    #[error("invalid peer public value for {0}")]
    BadPeerValue(DhId),
}

/// Whether we implement `group` at all (legacy ones included).
pub fn supported(group: DhId) -> bool {
    modp_prime(group).is_some()
        || matches!(
            group,
            DhId::ECP_256 | DhId::ECP_384 | DhId::ECP_521 | DhId::CURVE25519
        )
}

/// Whether `group` is only acceptable as explicit opt-in legacy.
pub fn is_legacy(group: DhId) -> bool {
    matches!(group, DhId::MODP_768 | DhId::MODP_1024 | DhId::MODP_1536)
}

fn modp_prime(group: DhId) -> Option<(&'static str, u32)> {
    Some(match group {
        DhId::MODP_768 => (MODP_768, 768),
        DhId::MODP_1024 => (MODP_1024, 1024),
        DhId::MODP_1536 => (MODP_1536, 1536),
        DhId::MODP_2048 => (MODP_2048, 2048),
        DhId::MODP_3072 => (MODP_3072, 3072),
        DhId::MODP_4096 => (MODP_4096, 4096),
        _ => return None,
    })
}

fn ec_alg(group: DhId) -> Option<(&'static agreement::Algorithm, usize)> {
    Some(match group {
        DhId::ECP_256 => (&agreement::ECDH_P256, 32),
        DhId::ECP_384 => (&agreement::ECDH_P384, 48),
        DhId::ECP_521 => (&agreement::ECDH_P521, 66),
        DhId::CURVE25519 => (&agreement::X25519, 32),
        _ => return None,
    })
}

fn hex_to_bytes(h: &str) -> Vec<u8> {
    h.as_bytes()
        .chunks(2)
        .map(|c| {
            let s = core::str::from_utf8(c).unwrap_or("00");
            u8::from_str_radix(s, 16).unwrap_or(0)
        })
        .collect()
}

enum Private {
    Modp {
        params: BoxedMontyParams,
        x: BoxedUint,
        bits: u32,
        p: BoxedUint,
    },
    Ec(agreement::PrivateKey),
}

/// Our half of a key exchange.
pub struct KeyPair {
    group: DhId,
    private: Private,
    public: Vec<u8>,
}

impl core::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyPair")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Generates a key pair with randomness from `rng`.
    pub fn generate(group: DhId, rng: &mut dyn Rng) -> Result<KeyPair, DhError> {
        if let Some((hex, bits)) = modp_prime(group) {
            let p = BoxedUint::from_be_slice(&hex_to_bytes(hex), bits)
                .map_err(|_| DhError::Unsupported(group))?;
            let odd = Option::from(Odd::new(p.clone())).ok_or(DhError::Unsupported(group))?;
            let params = BoxedMontyParams::new(odd);
            // A 512-bit exponent gives > 2x the strength of every MODP group
            // we offer (RFC 3526 §8), at a fraction of a full-size exponent's cost.
            let mut xb = [0u8; 64];
            rng.fill(&mut xb);
            xb[0] |= 0x80;
            let x = BoxedUint::from_be_slice(&xb, bits).map_err(|_| DhError::Unsupported(group))?;
            let g = BoxedMontyForm::new(
                BoxedUint::from_be_slice(&[2], bits).map_err(|_| DhError::Unsupported(group))?,
                params.clone(),
            );
            let y = g.pow(&x).retrieve();
            let public = pad(&y.to_be_bytes(), bits as usize / 8);
            return Ok(KeyPair {
                group,
                private: Private::Modp { params, x, bits, p },
                public,
            });
        }
        let (alg, len) = ec_alg(group).ok_or(DhError::Unsupported(group))?;
        // Draw scalars from `rng` so tests are reproducible; retry on the
        // (negligible) chance of a value outside the group order.
        for _ in 0..64 {
            let mut k = vec![0u8; len];
            rng.fill(&mut k);
            if group == DhId::ECP_521 {
                k[0] &= 0x01;
            }
            let Ok(sk) = agreement::PrivateKey::from_private_key(alg, &k) else {
                continue;
            };
            let Ok(pk) = sk.compute_public_key() else {
                continue;
            };
            let raw = pk.as_ref();
            let public = if group == DhId::CURVE25519 {
                raw.to_vec()
            } else {
                raw[1..].to_vec()
            };
            return Ok(KeyPair {
                group,
                private: Private::Ec(sk),
                public,
            });
        }
        Err(DhError::Unsupported(group))
    }

    /// The group.
    pub fn group(&self) -> DhId {
        self.group
    }

    /// Our public value as carried in a KE payload.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// g^ir from the peer's KE data.
    pub fn shared(&self, peer: &[u8]) -> Result<Secret, DhError> {
        let bad = DhError::BadPeerValue(self.group);
        match &self.private {
            Private::Modp { params, x, bits, p } => {
                let n = *bits as usize / 8;
                if peer.len() != n {
                    return Err(bad);
                }
                let y = BoxedUint::from_be_slice(peer, *bits).map_err(|_| bad)?;
                // RFC 6989 §2.1: reject 0, 1 and p-1 (and anything >= p).
                let one = BoxedUint::from_be_slice(&[1], *bits).map_err(|_| bad)?;
                let pm1 = p.wrapping_sub(&one);
                if y <= one || y >= pm1 {
                    return Err(bad);
                }
                let z = BoxedMontyForm::new(y, params.clone()).pow(x).retrieve();
                Ok(Secret::new(pad(&z.to_be_bytes(), n)))
            }
            Private::Ec(sk) => {
                let (alg, len) = ec_alg(self.group).ok_or(bad)?;
                let encoded = if self.group == DhId::CURVE25519 {
                    if peer.len() != 32 {
                        return Err(bad);
                    }
                    peer.to_vec()
                } else {
                    if peer.len() != 2 * len {
                        return Err(bad);
                    }
                    [&[4u8][..], peer].concat()
                };
                let peer = agreement::UnparsedPublicKey::new(alg, encoded);
                agreement::agree(sk, &peer, bad, |k| Ok(Secret::from(k)))
            }
        }
    }
}

fn pad(b: &[u8], n: usize) -> Vec<u8> {
    // to_be_bytes() has the precision's width; keep the last n bytes, left-padded.
    let b = if b.len() > n { &b[b.len() - n..] } else { b };
    let mut v = vec![0u8; n - b.len()];
    v.extend_from_slice(b);
    v
}

/// MODP group 1 (768-bit) prime, big-endian hex (RFC 2409).
const MODP_768: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3620FFFFFFFFFFFFFFFF",
);
/// MODP group 2 (1024-bit) prime, big-endian hex (RFC 2409).
const MODP_1024: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
);
/// MODP group 5 (1536-bit) prime, big-endian hex (RFC 3526).
const MODP_1536: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF",
);
/// MODP group 14 (2048-bit) prime, big-endian hex (RFC 3526).
const MODP_2048: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
);
/// MODP group 15 (3072-bit) prime, big-endian hex (RFC 3526).
const MODP_3072: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
);
/// MODP group 16 (4096-bit) prime, big-endian hex (RFC 3526).
const MODP_4096: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7",
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8",
    "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2",
    "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9",
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::TestRng;

    #[test]
    fn every_group_agrees_with_itself() {
        for g in [
            DhId::MODP_768,
            DhId::MODP_1024,
            DhId::MODP_1536,
            DhId::MODP_2048,
            DhId::MODP_3072,
            DhId::MODP_4096,
            DhId::ECP_256,
            DhId::ECP_384,
            DhId::ECP_521,
            DhId::CURVE25519,
        ] {
            let mut rng = TestRng::new(g.0 as u8);
            let a = KeyPair::generate(g, &mut rng).unwrap();
            let b = KeyPair::generate(g, &mut rng).unwrap();
            let (sa, sb) = (a.shared(b.public()).unwrap(), b.shared(a.public()).unwrap());
            assert_eq!(sa, sb, "{g:?}");
            assert!(!sa.is_empty());
        }
    }

    #[test]
    fn public_value_lengths() {
        let mut rng = TestRng::new(9);
        for (g, len) in [
            (DhId::MODP_2048, 256),
            (DhId::ECP_256, 64),
            (DhId::ECP_384, 96),
            (DhId::ECP_521, 132),
            (DhId::CURVE25519, 32),
        ] {
            assert_eq!(
                KeyPair::generate(g, &mut rng).unwrap().public().len(),
                len,
                "{g:?}"
            );
        }
    }

    #[test]
    fn bad_peer_values_refused() {
        let mut rng = TestRng::new(3);
        let a = KeyPair::generate(DhId::MODP_2048, &mut rng).unwrap();
        let mut one = vec![0u8; 256];
        one[255] = 1;
        assert_eq!(
            a.shared(&one).unwrap_err(),
            DhError::BadPeerValue(DhId::MODP_2048)
        );
        assert!(a.shared(&[1, 2, 3]).is_err());
        let p = hex_to_bytes(MODP_2048);
        assert!(a.shared(&p).is_err());
        let e = KeyPair::generate(DhId::ECP_256, &mut rng).unwrap();
        assert!(e.shared(&[7u8; 64]).is_err(), "not on the curve");
        assert!(KeyPair::generate(DhId(99), &mut rng).is_err());
    }
}
