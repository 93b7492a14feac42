//! Pseudo-random functions and prf+ (RFC 7296 §2.13, RFC 4868).

use aws_lc_rs::hmac;

use crate::wire::PrfId;

/// A negotiated PRF (HMAC based; AES-XCBC is not offered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prf {
    id: PrfId,
    alg: hmac::Algorithm,
}

impl Prf {
    /// The PRF for a transform ID, if supported.
    pub fn new(id: PrfId) -> Option<Prf> {
        let alg = match id {
            PrfId::HMAC_SHA1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            PrfId::HMAC_SHA2_256 => hmac::HMAC_SHA256,
            PrfId::HMAC_SHA2_384 => hmac::HMAC_SHA384,
            PrfId::HMAC_SHA2_512 => hmac::HMAC_SHA512,
            _ => return None,
        };
        Some(Prf { id, alg })
    }

    /// The transform ID.
    pub fn id(&self) -> PrfId {
        self.id
    }

    /// Output (and preferred key) length in bytes.
    pub fn output_len(&self) -> usize {
        self.alg.digest_algorithm().output_len()
    }

    /// prf(key, data parts concatenated).
    pub fn compute(&self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let k = hmac::Key::new(self.alg, key);
        let mut ctx = hmac::Context::with_key(&k);
        for p in parts {
            ctx.update(p);
        }
        ctx.sign().as_ref().to_vec()
    }

    /// prf+(K, S) truncated to `len` bytes (RFC 7296 §2.13):
    /// T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n).
    ///
    /// At most 255 blocks can be produced; callers ask for far less
    /// (the largest request is < 400 bytes).
    pub fn plus(&self, key: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
        let k = hmac::Key::new(self.alg, key);
        let mut out = Vec::with_capacity(len + self.output_len());
        let mut prev: Vec<u8> = Vec::new();
        let mut n: u8 = 1;
        while out.len() < len {
            let mut ctx = hmac::Context::with_key(&k);
            ctx.update(&prev);
            ctx.update(seed);
            ctx.update(&[n]);
            prev = ctx.sign().as_ref().to_vec();
            out.extend_from_slice(&prev);
            n = n.wrapping_add(1);
        }
        out.truncate(len);
        out
    }
}
