//! Encryption and integrity of the Encrypted payload (RFC 7296 §3.14) and the
//! Encrypted Fragment payload (RFC 7383 §2.5): AES-CBC / 3DES-CBC with a
//! truncated HMAC, and AES-GCM with a 16-byte ICV (RFC 5282 §3, §5).
//!
//! ```text
//! +---------------+---------------+   message header (authenticated)
//! | Next Payload  |C|  RESERVED   |   Payload Length   (SK generic header)
//! ~                     Initialization Vector                     ~
//! ~                    Encrypted IKE Payloads                     ~
//! ~               |             Padding (0-255 octets)            ~
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |  Pad Length   |
//! ~                    Integrity Checksum Data                    ~
//! ```

use aws_lc_rs::{aead, cipher as aes, constant_time, hmac, iv::FixedLength};
use des::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};

use super::{Rng, Secret};
use crate::wire::{EncrId, IntegId};

/// A negotiated encryption algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encr {
    /// AES-CBC with a 16, 24 or 32-byte key.
    AesCbc(usize),
    /// AES-GCM with a 16-byte ICV and a 16 or 32-byte key (+4 salt).
    AesGcm16(usize),
    /// 3DES-CBC (legacy, opt-in).
    TripleDes,
}

impl Encr {
    /// From a transform ID and key length attribute (bits).
    pub fn new(id: EncrId, key_bits: Option<u16>) -> Option<Encr> {
        match (id, key_bits) {
            (EncrId::AES_CBC, Some(b @ (128 | 192 | 256))) => Some(Encr::AesCbc(b as usize / 8)),
            (EncrId::AES_GCM_16, Some(b @ (128 | 256))) => Some(Encr::AesGcm16(b as usize / 8)),
            (EncrId::TRIPLE_DES, None) => Some(Encr::TripleDes),
            _ => None,
        }
    }

    /// Key material to derive (GCM includes the 4-byte salt, RFC 5282 §7.1).
    pub fn key_len(self) -> usize {
        match self {
            Encr::AesCbc(n) => n,
            Encr::AesGcm16(n) => n + 4,
            Encr::TripleDes => 24,
        }
    }

    /// Whether this is an AEAD (no separate integrity transform).
    pub fn is_aead(self) -> bool {
        matches!(self, Encr::AesGcm16(_))
    }

    fn iv_len(self) -> usize {
        match self {
            Encr::AesCbc(_) => 16,
            Encr::AesGcm16(_) => 8,
            Encr::TripleDes => 8,
        }
    }

    fn block(self) -> usize {
        match self {
            Encr::AesCbc(_) => 16,
            Encr::AesGcm16(_) => 1,
            Encr::TripleDes => 8,
        }
    }

    /// Human-readable name, like strongSwan's.
    pub fn name(self) -> String {
        match self {
            Encr::AesCbc(n) => format!("AES_CBC_{}", n * 8),
            Encr::AesGcm16(n) => format!("AES_GCM_16_{}", n * 8),
            Encr::TripleDes => "3DES_CBC".into(),
        }
    }
}

/// A negotiated integrity algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Integ {
    /// HMAC-SHA1-96.
    Sha1_96,
    /// HMAC-SHA2-256-128.
    Sha256_128,
    /// HMAC-SHA2-384-192.
    Sha384_192,
    /// HMAC-SHA2-512-256.
    Sha512_256,
}

impl Integ {
    /// From a transform ID.
    pub fn new(id: IntegId) -> Option<Integ> {
        Some(match id {
            IntegId::HMAC_SHA1_96 => Integ::Sha1_96,
            IntegId::HMAC_SHA2_256_128 => Integ::Sha256_128,
            IntegId::HMAC_SHA2_384_192 => Integ::Sha384_192,
            IntegId::HMAC_SHA2_512_256 => Integ::Sha512_256,
            _ => return None,
        })
    }

    fn alg(self) -> hmac::Algorithm {
        match self {
            Integ::Sha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Integ::Sha256_128 => hmac::HMAC_SHA256,
            Integ::Sha384_192 => hmac::HMAC_SHA384,
            Integ::Sha512_256 => hmac::HMAC_SHA512,
        }
    }

    /// Key length (RFC 4868 §2.1.1: the full hash length).
    pub fn key_len(self) -> usize {
        self.alg().digest_algorithm().output_len()
    }

    /// Truncated ICV length.
    pub fn icv_len(self) -> usize {
        match self {
            Integ::Sha1_96 => 12,
            Integ::Sha256_128 => 16,
            Integ::Sha384_192 => 24,
            Integ::Sha512_256 => 32,
        }
    }

    /// Human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Integ::Sha1_96 => "HMAC_SHA1_96",
            Integ::Sha256_128 => "HMAC_SHA2_256_128",
            Integ::Sha384_192 => "HMAC_SHA2_384_192",
            Integ::Sha512_256 => "HMAC_SHA2_512_256",
        }
    }

    /// The truncated MAC of `data` under `key`.
    pub fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let t = hmac::sign(&hmac::Key::new(self.alg(), key), data);
        t.as_ref()[..self.icv_len()].to_vec()
    }
}

/// Why an encrypted payload could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Too short for IV + ICV, or not a whole number of blocks.
    #[error("encrypted payload has an impossible length")]
    BadLength,
    /// The ICV does not match (or the AEAD tag fails).
    #[error("integrity check failed")]
    Integrity,
    /// The padding length points outside the plaintext.
    #[error("bad padding")]
    Padding,
}

/// Keys for one direction of an IKE SA.
#[derive(Clone, Debug)]
pub struct Protection {
    /// Encryption algorithm.
    pub encr: Encr,
    /// Integrity algorithm (None for AEAD).
    pub integ: Option<Integ>,
    /// SK_e (with salt for GCM).
    pub ek: Secret,
    /// SK_a.
    pub ak: Secret,
}

impl Protection {
    fn icv_len(&self) -> usize {
        match (self.encr, self.integ) {
            (Encr::AesGcm16(_), _) => 16,
            (_, Some(i)) => i.icv_len(),
            (_, None) => 0,
        }
    }

    /// Bytes added around `plaintext_len` bytes of payloads (IV, padding, pad
    /// length, ICV): used to size fragments.
    pub fn overhead(&self, plaintext_len: usize) -> usize {
        let b = self.encr.block();
        let padded = (plaintext_len + 1).div_ceil(b) * b;
        self.encr.iv_len() + (padded - plaintext_len) + self.icv_len()
    }

    /// Encrypts `plaintext` into `msg`, which holds the IKE header and the
    /// SK/SKF payload headers so far; `len_at` is the offset of that payload's
    /// 16-bit Payload Length. Patches both lengths, appends IV, ciphertext and
    /// ICV.
    pub fn seal(&self, rng: &mut dyn Rng, msg: &mut Vec<u8>, len_at: usize, plaintext: &[u8]) {
        let b = self.encr.block();
        let pad = (b - (plaintext.len() + 1) % b) % b;
        let iv_len = self.encr.iv_len();
        let body_len = iv_len + plaintext.len() + pad + 1 + self.icv_len();
        let payload_len = (msg.len() - (len_at - 2)) + body_len;
        msg[len_at..len_at + 2].copy_from_slice(&(payload_len as u16).to_be_bytes());
        let total = (msg.len() + body_len) as u32;
        msg[24..28].copy_from_slice(&total.to_be_bytes());

        let mut iv = vec![0u8; iv_len];
        rng.fill(&mut iv);
        let aad_end = msg.len();
        msg.extend_from_slice(&iv);
        let ct_start = msg.len();
        msg.extend_from_slice(plaintext);
        msg.extend(core::iter::repeat_n(0u8, pad));
        msg.push(pad as u8);
        match self.encr {
            Encr::AesGcm16(n) => {
                let (key, salt) = self.ek.expose().split_at(n);
                let nonce = gcm_nonce(salt, &iv);
                let key = gcm_key(n, key);
                let (head, ct) = msg.split_at_mut(ct_start);
                // Sealing only fails for inputs above 2^36 bytes.
                let tag = key
                    .seal_in_place_separate_tag(nonce, aead::Aad::from(&head[..aad_end]), ct)
                    .expect("AES-GCM seal");
                msg.extend_from_slice(tag.as_ref());
            }
            Encr::AesCbc(_) => {
                let k = aes::EncryptingKey::cbc(aes_unbound(self.ek.expose()))
                    .expect("AES key length checked by Encr::new");
                let ctx = aes::EncryptionContext::Iv128(FixedLength::from(
                    <[u8; 16]>::try_from(&iv[..]).expect("16-byte IV"),
                ));
                k.less_safe_encrypt(&mut msg[ct_start..], ctx)
                    .expect("CBC input is block aligned");
                self.append_icv(msg);
            }
            Encr::TripleDes => {
                tdes_cbc(self.ek.expose(), &iv, &mut msg[ct_start..], true);
                self.append_icv(msg);
            }
        }
    }

    fn append_icv(&self, msg: &mut Vec<u8>) {
        if let Some(i) = self.integ {
            let icv = i.mac(self.ak.expose(), msg);
            msg.extend_from_slice(&icv);
        }
    }

    /// Verifies and decrypts. `msg` is the whole message; `body_at` is where
    /// the IV starts (right after the SK header, or the SKF fragment fields);
    /// the payload must run to the end of the message. Returns the payloads'
    /// plaintext.
    pub fn open(&self, msg: &[u8], body_at: usize) -> Result<Vec<u8>, OpenError> {
        let iv_len = self.encr.iv_len();
        let icv_len = self.icv_len();
        if msg.len() < body_at + iv_len + icv_len + 1 {
            return Err(OpenError::BadLength);
        }
        let iv = &msg[body_at..body_at + iv_len];
        let ct_end = msg.len() - icv_len;
        let mut pt = msg[body_at + iv_len..ct_end].to_vec();
        if !pt.len().is_multiple_of(self.encr.block()) {
            return Err(OpenError::BadLength);
        }
        match self.encr {
            Encr::AesGcm16(n) => {
                let (key, salt) = self.ek.expose().split_at(n);
                let nonce = gcm_nonce(salt, iv);
                let key = gcm_key(n, key);
                pt.extend_from_slice(&msg[ct_end..]);
                let plain = key
                    .open_in_place(nonce, aead::Aad::from(&msg[..body_at]), &mut pt)
                    .map_err(|_| OpenError::Integrity)?;
                let l = plain.len();
                pt.truncate(l);
            }
            Encr::AesCbc(_) | Encr::TripleDes => {
                let integ = self.integ.ok_or(OpenError::Integrity)?;
                let want = integ.mac(self.ak.expose(), &msg[..ct_end]);
                constant_time::verify_slices_are_equal(&want, &msg[ct_end..])
                    .map_err(|_| OpenError::Integrity)?;
                if let Encr::AesCbc(_) = self.encr {
                    let k = aes::DecryptingKey::cbc(aes_unbound(self.ek.expose()))
                        .expect("AES key length checked by Encr::new");
                    let ctx = aes::DecryptionContext::Iv128(FixedLength::from(
                        <[u8; 16]>::try_from(iv).map_err(|_| OpenError::BadLength)?,
                    ));
                    let l = k
                        .decrypt(&mut pt, ctx)
                        .map_err(|_| OpenError::BadLength)?
                        .len();
                    pt.truncate(l);
                } else {
                    tdes_cbc(self.ek.expose(), iv, &mut pt, false);
                }
            }
        }
        let pad = *pt.last().ok_or(OpenError::Padding)? as usize;
        if pad + 1 > pt.len() {
            return Err(OpenError::Padding);
        }
        pt.truncate(pt.len() - pad - 1);
        Ok(pt)
    }
}

fn aes_unbound(key: &[u8]) -> aes::UnboundCipherKey {
    let alg = match key.len() {
        16 => &aes::AES_128,
        24 => &aes::AES_192,
        _ => &aes::AES_256,
    };
    aes::UnboundCipherKey::new(alg, key).expect("AES key length checked by Encr::new")
}

fn gcm_key(n: usize, key: &[u8]) -> aead::LessSafeKey {
    let alg = if n == 16 {
        &aead::AES_128_GCM
    } else {
        &aead::AES_256_GCM
    };
    aead::LessSafeKey::new(
        aead::UnboundKey::new(alg, key).expect("GCM key length checked by Encr::new"),
    )
}

fn gcm_nonce(salt: &[u8], iv: &[u8]) -> aead::Nonce {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(salt);
    n[4..].copy_from_slice(iv);
    aead::Nonce::assume_unique_for_key(n)
}

fn tdes_cbc(key: &[u8], iv: &[u8], data: &mut [u8], encrypt: bool) {
    let c = des::TdesEde3::new_from_slice(key).expect("3DES key is 24 bytes");
    let mut prev: [u8; 8] = iv.try_into().expect("3DES IV is 8 bytes");
    for block in data.chunks_exact_mut(8) {
        if encrypt {
            for (b, p) in block.iter_mut().zip(prev) {
                *b ^= p;
            }
            c.encrypt_block(block.try_into().expect("chunk of 8"));
            prev.copy_from_slice(block);
        } else {
            let ct: [u8; 8] = (&*block).try_into().expect("chunk of 8");
            c.decrypt_block(block.try_into().expect("chunk of 8"));
            for (b, p) in block.iter_mut().zip(prev) {
                *b ^= p;
            }
            prev = ct;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{unhex, TestRng};

    fn prot(encr: Encr, integ: Option<Integ>) -> Protection {
        Protection {
            encr,
            integ,
            ek: Secret::new((0..encr.key_len() as u8).collect()),
            ak: Secret::new(vec![0x42; integ.map_or(0, |i| i.key_len())]),
        }
    }

    #[test]
    fn seal_open_roundtrip_every_algorithm() {
        let cases = [
            (Encr::AesCbc(16), Some(Integ::Sha1_96)),
            (Encr::AesCbc(24), Some(Integ::Sha256_128)),
            (Encr::AesCbc(32), Some(Integ::Sha384_192)),
            (Encr::AesCbc(32), Some(Integ::Sha512_256)),
            (Encr::AesGcm16(16), None),
            (Encr::AesGcm16(32), None),
            (Encr::TripleDes, Some(Integ::Sha1_96)),
        ];
        for (e, i) in cases {
            let p = prot(e, i);
            for len in [0usize, 1, 15, 16, 17, 100] {
                let plaintext: Vec<u8> = (0..len as u8).collect();
                let mut msg = vec![0u8; 28];
                msg.extend_from_slice(&[0x23, 0, 0, 0]); // SK generic header
                p.seal(&mut TestRng::new(1), &mut msg, 30, &plaintext);
                assert_eq!(
                    u32::from_be_bytes(msg[24..28].try_into().unwrap()) as usize,
                    msg.len()
                );
                assert_eq!(
                    u16::from_be_bytes([msg[30], msg[31]]) as usize,
                    msg.len() - 28
                );
                assert_eq!(msg.len() - 32 - len, p.overhead(len), "{e:?}");
                assert_eq!(p.open(&msg, 32).unwrap(), plaintext, "{e:?} {len}");
                // flip a bit in the authenticated header, the IV, the ciphertext, the ICV
                for at in [5, 33, msg.len() / 2 + 16, msg.len() - 1] {
                    let mut bad = msg.clone();
                    bad[at.min(msg.len() - 1)] ^= 1;
                    assert!(p.open(&bad, 32).is_err(), "{e:?} flip at {at}");
                }
                assert_eq!(p.open(&msg[..40], 32).unwrap_err(), OpenError::BadLength);
            }
        }
    }

    // RFC 3602 §4 case 2: AES-128-CBC, 32 bytes.
    #[test]
    fn rfc3602_aes_cbc_vector() {
        let key = unhex("c286696d887c9aa0611bbb3e2025a45a");
        let iv: [u8; 16] = unhex("562e17996d093d28ddb3ba695a2e6f58")
            .try_into()
            .unwrap();
        let mut data = unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        let k = aes::EncryptingKey::cbc(aes_unbound(&key)).unwrap();
        k.less_safe_encrypt(
            &mut data,
            aes::EncryptionContext::Iv128(FixedLength::from(iv)),
        )
        .unwrap();
        assert_eq!(
            data,
            unhex("d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1")
        );
    }

    // RFC 2202 test case 2 for HMAC-SHA1, truncated to 96 bits.
    #[test]
    fn rfc2202_hmac_sha1_96() {
        let mac = Integ::Sha1_96.mac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(mac, unhex("effcdf6ae5eb2fa2d27416d5"));
    }
}
