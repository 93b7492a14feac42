//! ESP (RFC 4303) for the data plane, carried in UDP (RFC 3948): packets are
//! sealed into and opened from caller-owned buffers, no allocation per packet.
//!
//! ```text
//! | SPI (4) | Sequence Number (4) | IV | Payload ... | Padding | Pad Len | Next Hdr | ICV |
//! ```
//! AES-GCM (RFC 4106): the IV is the 64-bit sequence number (unique per key),
//! nonce = salt | IV, AAD = SPI | Seq. AES-CBC (RFC 3602) with HMAC (RFC 2404,
//! RFC 4868): IV = AES_K(seq), unpredictable without the key (NIST SP 800-38A
//! App. C), ICV over SPI .. ciphertext. The anti-replay window is checked
//! before any cryptography and committed only after the ICV verified.

mod replay;

pub use replay::ReplayWindow;

use aws_lc_rs::{aead, cipher as aes, constant_time, hmac, iv::FixedLength};

use crate::crypto::cipher::{Encr, Integ};
use crate::event::ChildSaInfo;

/// Why an ESP packet was dropped (counted, never fatal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Not for our SPI.
    UnknownSpi,
    /// Sequence number already seen or left of the window.
    Replay,
    /// ICV mismatch / AEAD tag failure.
    Integrity,
    /// Too short, bad padding, or not a whole number of blocks.
    Malformed,
    /// The output buffer is too small.
    Buffer,
    /// Outbound sequence numbers exhausted: rekey first.
    SequenceExhausted,
}

enum Cipher {
    Gcm(aead::LessSafeKey, [u8; 4]),
    // Boxed once per SA (the keys are large), never per packet.
    Cbc(Box<CbcKeys>),
}

struct CbcKeys {
    enc: aes::EncryptingKey,
    dec: aes::DecryptingKey,
    ecb: aes::EncryptingKey,
    mac: hmac::Key,
    icv: usize,
}

fn cipher(encr: Encr, integ: Option<Integ>, ek: &[u8], ak: &[u8]) -> Option<Cipher> {
    match encr {
        Encr::AesGcm16(n) => {
            let alg = if n == 16 {
                &aead::AES_128_GCM
            } else {
                &aead::AES_256_GCM
            };
            let key = aead::LessSafeKey::new(aead::UnboundKey::new(alg, &ek[..n]).ok()?);
            Some(Cipher::Gcm(key, ek[n..n + 4].try_into().ok()?))
        }
        Encr::AesCbc(n) => {
            let alg = match n {
                16 => &aes::AES_128,
                24 => &aes::AES_192,
                _ => &aes::AES_256,
            };
            let k = || aes::UnboundCipherKey::new(alg, ek).ok();
            let i = integ?;
            let halg = match i {
                Integ::Sha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                Integ::Sha256_128 => hmac::HMAC_SHA256,
                Integ::Sha384_192 => hmac::HMAC_SHA384,
                Integ::Sha512_256 => hmac::HMAC_SHA512,
            };
            Some(Cipher::Cbc(Box::new(CbcKeys {
                enc: aes::EncryptingKey::cbc(k()?).ok()?,
                dec: aes::DecryptingKey::cbc(k()?).ok()?,
                ecb: aes::EncryptingKey::ecb(k()?).ok()?,
                mac: hmac::Key::new(halg, ak),
                icv: i.icv_len(),
            })))
        }
        Encr::TripleDes => None,
    }
}

/// One direction pair of a CHILD SA.
pub struct EspSa {
    spi_out: u32,
    spi_in: u32,
    seq_out: u32,
    out: Cipher,
    inp: Cipher,
    replay: ReplayWindow,
}

impl core::fmt::Debug for EspSa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "EspSa({:08x}_i {:08x}_o)", self.spi_in, self.spi_out)
    }
}

const HDR: usize = 8;

impl EspSa {
    /// From the keys the session handed out (no ESN; 3DES is not offered for ESP data).
    pub fn new(c: &ChildSaInfo) -> Option<EspSa> {
        Some(EspSa {
            spi_out: c.spi_out,
            spi_in: c.spi_in,
            seq_out: 0,
            out: cipher(c.encr, c.integ, c.encr_out.expose(), c.integ_out.expose())?,
            inp: cipher(c.encr, c.integ, c.encr_in.expose(), c.integ_in.expose())?,
            replay: ReplayWindow::default(),
        })
    }

    /// Our inbound SPI.
    pub fn spi_in(&self) -> u32 {
        self.spi_in
    }

    /// Seals an IP packet into `out`; returns the ESP packet length.
    pub fn encapsulate(&mut self, ip: &[u8], out: &mut [u8]) -> Result<usize, DropReason> {
        let next = match ip.first().map(|b| b >> 4) {
            Some(6) => 41,
            _ => 4,
        };
        self.seq_out = self
            .seq_out
            .checked_add(1)
            .ok_or(DropReason::SequenceExhausted)?;
        let seq = self.seq_out;
        let (iv_len, block, icv) = match &self.out {
            Cipher::Gcm(..) => (8, 4, 16),
            Cipher::Cbc(k) => (16, 16, k.icv),
        };
        let pad = (block - (ip.len() + 2) % block) % block;
        let ct_len = ip.len() + pad + 2;
        let total = HDR + iv_len + ct_len + icv;
        if out.len() < total {
            return Err(DropReason::Buffer);
        }
        out[..4].copy_from_slice(&self.spi_out.to_be_bytes());
        out[4..8].copy_from_slice(&seq.to_be_bytes());
        let ct = HDR + iv_len;
        out[ct..ct + ip.len()].copy_from_slice(ip);
        for i in 0..pad {
            out[ct + ip.len() + i] = (i + 1) as u8; // RFC 4303 §2.4: 1, 2, 3, ...
        }
        out[ct + ip.len() + pad] = pad as u8;
        out[ct + ip.len() + pad + 1] = next;
        match &self.out {
            Cipher::Gcm(key, salt) => {
                let iv = (seq as u64).to_be_bytes();
                out[HDR..HDR + 8].copy_from_slice(&iv);
                let mut n = [0u8; 12];
                n[..4].copy_from_slice(salt);
                n[4..].copy_from_slice(&iv);
                let (head, rest) = out.split_at_mut(ct);
                let tag = key
                    .seal_in_place_separate_tag(
                        aead::Nonce::assume_unique_for_key(n),
                        aead::Aad::from(&head[..HDR]),
                        &mut rest[..ct_len],
                    )
                    .map_err(|_| DropReason::Buffer)?;
                out[ct + ct_len..total].copy_from_slice(tag.as_ref());
            }
            Cipher::Cbc(k) => {
                let CbcKeys {
                    enc, ecb, mac, icv, ..
                } = &**k;
                let mut iv = [0u8; 16];
                iv[12..].copy_from_slice(&seq.to_be_bytes());
                iv[..4].copy_from_slice(&self.spi_out.to_be_bytes());
                ecb.less_safe_encrypt(&mut iv, aes::EncryptionContext::None)
                    .map_err(|_| DropReason::Buffer)?;
                out[HDR..HDR + 16].copy_from_slice(&iv);
                enc.less_safe_encrypt(
                    &mut out[ct..ct + ct_len],
                    aes::EncryptionContext::Iv128(FixedLength::from(iv)),
                )
                .map_err(|_| DropReason::Buffer)?;
                let t = hmac::sign(mac, &out[..ct + ct_len]);
                out[ct + ct_len..total].copy_from_slice(&t.as_ref()[..*icv]);
            }
        }
        Ok(total)
    }

    /// Opens an ESP packet in place; returns the inner IP packet.
    pub fn decapsulate<'a>(&mut self, pkt: &'a mut [u8]) -> Result<&'a [u8], DropReason> {
        if pkt.len() < HDR + 8 + 16 {
            return Err(DropReason::Malformed);
        }
        let spi = u32::from_be_bytes([pkt[0], pkt[1], pkt[2], pkt[3]]);
        if spi != self.spi_in {
            return Err(DropReason::UnknownSpi);
        }
        let seq = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        // Cheap checks first (RFC 4303 §3.4.3): replay before cryptography.
        self.replay
            .check(seq as u64)
            .map_err(|_| DropReason::Replay)?;
        let plain_len = match &self.inp {
            Cipher::Gcm(key, salt) => {
                let mut n = [0u8; 12];
                n[..4].copy_from_slice(salt);
                n[4..].copy_from_slice(&pkt[HDR..HDR + 8]);
                let (head, rest) = pkt.split_at_mut(HDR + 8);
                key.open_in_place(
                    aead::Nonce::assume_unique_for_key(n),
                    aead::Aad::from(&head[..HDR]),
                    rest,
                )
                .map_err(|_| DropReason::Integrity)?
                .len()
            }
            Cipher::Cbc(k) => {
                let CbcKeys { dec, mac, icv, .. } = &**k;
                let end = pkt.len().checked_sub(*icv).ok_or(DropReason::Malformed)?;
                let want = hmac::sign(mac, &pkt[..end]);
                constant_time::verify_slices_are_equal(&want.as_ref()[..*icv], &pkt[end..])
                    .map_err(|_| DropReason::Integrity)?;
                if end < HDR + 32 || !(end - HDR - 16).is_multiple_of(16) {
                    return Err(DropReason::Malformed);
                }
                let iv: [u8; 16] = pkt[HDR..HDR + 16]
                    .try_into()
                    .map_err(|_| DropReason::Malformed)?;
                dec.decrypt(
                    &mut pkt[HDR + 16..end],
                    aes::DecryptionContext::Iv128(FixedLength::from(iv)),
                )
                .map_err(|_| DropReason::Malformed)?
                .len()
            }
        };
        let iv_len = if matches!(self.inp, Cipher::Gcm(..)) {
            8
        } else {
            16
        };
        let body = &pkt[HDR + iv_len..HDR + iv_len + plain_len];
        let (&next, rest) = body.split_last().ok_or(DropReason::Malformed)?;
        let (&pad, rest) = rest.split_last().ok_or(DropReason::Malformed)?;
        let inner = rest
            .len()
            .checked_sub(pad as usize)
            .ok_or(DropReason::Malformed)?;
        if next != 4 && next != 41 {
            return Err(DropReason::Malformed);
        }
        self.replay.commit(seq as u64);
        Ok(&pkt[HDR + iv_len..HDR + iv_len + inner])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Secret;

    fn pair(encr: Encr, integ: Option<Integ>) -> (EspSa, EspSa) {
        let ek = Secret::new((0..encr.key_len() as u8).collect());
        let ek2 = Secret::new((100..100 + encr.key_len() as u8).collect());
        let ak = Secret::new(vec![7; integ.map_or(0, |i| i.key_len())]);
        let info = |spi_in, spi_out, eo: &Secret, ei: &Secret| ChildSaInfo {
            spi_in,
            spi_out,
            encr,
            integ,
            esn: false,
            encr_out: eo.clone(),
            integ_out: ak.clone(),
            encr_in: ei.clone(),
            integ_in: ak.clone(),
            ts_local: vec![],
            ts_remote: vec![],
        };
        (
            EspSa::new(&info(1, 2, &ek, &ek2)).unwrap(),
            EspSa::new(&info(2, 1, &ek2, &ek)).unwrap(),
        )
    }

    #[test]
    fn roundtrip_replay_and_tamper() {
        for (e, i) in [
            (Encr::AesGcm16(32), None),
            (Encr::AesGcm16(16), None),
            (Encr::AesCbc(32), Some(Integ::Sha1_96)),
            (Encr::AesCbc(16), Some(Integ::Sha256_128)),
        ] {
            let (mut a, mut b) = pair(e, i);
            let ip: Vec<u8> = std::iter::once(0x45).chain(1..60u8).collect();
            let mut buf = [0u8; 200];
            let n = a.encapsulate(&ip, &mut buf).unwrap();
            let pkt = buf[..n].to_vec();
            let mut p = pkt.clone();
            assert_eq!(b.decapsulate(&mut p).unwrap(), &ip[..], "{e:?}");
            let mut p = pkt.clone();
            assert_eq!(
                b.decapsulate(&mut p).unwrap_err(),
                DropReason::Replay,
                "replayed packet dropped"
            );
            let n2 = a.encapsulate(&ip, &mut buf).unwrap();
            let mut t = buf[..n2].to_vec();
            t[n2 / 2] ^= 1;
            assert_eq!(b.decapsulate(&mut t).unwrap_err(), DropReason::Integrity);
            let mut ok = buf[..n2].to_vec();
            assert!(
                b.decapsulate(&mut ok).is_ok(),
                "a corrupt copy does not burn the sequence number"
            );
            let mut w = pkt.clone();
            w[3] ^= 9;
            assert_eq!(b.decapsulate(&mut w).unwrap_err(), DropReason::UnknownSpi);
            assert_eq!(
                a.encapsulate(&ip, &mut [0u8; 20]).unwrap_err(),
                DropReason::Buffer
            );
        }
    }
}
