//! Cryptographic algorithms behind small types, with no protocol state
//! (RFC 7296 §2.13–§2.18, §3.3.2, §3.14; RFC 5282; RFC 5903; RFC 3526).
//!
//! aws-lc-rs provides HMAC, AES-CBC (unpadded), AES-GCM, ECDH and X25519;
//! MODP groups use crypto-bigint's constant-time Montgomery exponentiation;
//! 3DES (opt-in legacy) uses RustCrypto's `des`.

pub mod auth;
pub mod cipher;
pub mod dh;
pub mod keymat;
pub mod pem;
pub mod pkcs7;
pub mod prf;
mod rsa_sha1;
pub mod sig;

use core::fmt;

/// A source of random bytes. The engine never reaches for OS randomness by
/// itself: the caller passes one in, so tests can be deterministic.
pub trait Rng: Send {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// The kernel's CSPRNG (getrandom(2)), read directly: aws-lc's own DRBG
/// costs ~32 ms to seed on first use, a third of a connect.
#[derive(Default, Debug)]
pub struct SystemRng;

impl Rng for SystemRng {
    fn fill(&mut self, buf: &mut [u8]) {
        // getrandom(2) only fails if the kernel has no entropy source at all,
        // in which case no key could be made safely anyway.
        getrandom::getrandom(buf).expect("the kernel CSPRNG (getrandom) failed");
    }
}

/// A deterministic RNG for tests and fuzzing: SHA-256 in counter mode over a seed.
#[derive(Debug, Clone)]
pub struct TestRng {
    seed: [u8; 32],
    counter: u64,
}

impl TestRng {
    /// A generator with the given seed.
    pub fn new(seed: u8) -> Self {
        TestRng {
            seed: [seed; 32],
            counter: 0,
        }
    }
}

impl Rng for TestRng {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(32) {
            let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
            ctx.update(&self.seed);
            ctx.update(&self.counter.to_be_bytes());
            self.counter += 1;
            let d = ctx.finish();
            chunk.copy_from_slice(&d.as_ref()[..chunk.len()]);
        }
    }
}

/// Key material that is wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps bytes.
    pub fn new(v: Vec<u8>) -> Self {
        Secret(v)
    }
    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&[u8]> for Secret {
    fn from(v: &[u8]) -> Self {
        Secret(v.to_vec())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
        // Keep the wipe from being optimised away as a dead store.
        core::hint::black_box(&self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted; {} bytes])", self.0.len())
    }
}

/// Hex encoding for logs and key logs.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "Secret([redacted; 7 bytes])");
    }

    #[test]
    fn test_rng_is_deterministic() {
        let (mut a, mut b) = (TestRng::new(1), TestRng::new(1));
        let (mut x, mut y) = ([0u8; 40], [0u8; 40]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert_ne!(x[..32], x[8..40]);
    }
}
