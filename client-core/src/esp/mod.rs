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
pub(crate) mod table;

pub use replay::ReplayWindow;
pub use table::OLD_SA_GRACE;

use aws_lc_rs::{aead, cipher as aes, constant_time, hmac, iv::FixedLength};

use std::fmt;

use crate::crypto::cipher::{Encr, Integ};
use crate::crypto::Secret;
use crate::wire::TrafficSelector;

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
    /// IPv6 from the tunnel device while the tunnel has no IPv6 address:
    /// blocked, so it neither leaks around a full tunnel nor goes to a
    /// gateway that cannot route it.
    Ipv6Blocked,
}

/// A CHILD SA's parameters and keys: what the data plane is built from.
/// Inside the engine only (the session installs it); the test gateway builds
/// its own.
#[derive(Clone)]
pub struct ChildSaInfo {
    /// SPI the gateway sends to (ours, inbound).
    pub spi_in: u32,
    /// SPI we send to (the gateway's, outbound).
    pub spi_out: u32,
    /// Encryption algorithm.
    pub encr: crate::crypto::cipher::Encr,
    /// Integrity (None for AEAD).
    pub integ: Option<crate::crypto::cipher::Integ>,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Keys: outbound encryption / integrity.
    pub encr_out: Secret,
    /// See above.
    pub integ_out: Secret,
    /// Keys: inbound encryption / integrity.
    pub encr_in: Secret,
    /// See above.
    pub integ_in: Secret,
    /// Our traffic selectors.
    pub ts_local: Vec<TrafficSelector>,
    /// The gateway's traffic selectors.
    pub ts_remote: Vec<TrafficSelector>,
}

impl fmt::Debug for ChildSaInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSaInfo")
            .field("spi_in", &format_args!("{:08x}", self.spi_in))
            .field("spi_out", &format_args!("{:08x}", self.spi_out))
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .finish_non_exhaustive()
    }
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

/// Sequence numbers left before a 32-bit counter runs out at which the
/// data plane asks for a CHILD SA rekey (RFC 4303 §3.3.3: never cycle).
pub const REKEY_MARGIN: u64 = 1 << 20;

/// The outbound half of a CHILD SA: owns the sequence counter.
pub struct EspOut {
    spi: u32,
    seq: u64,
    esn: bool,
    cipher: Cipher,
}

/// The inbound half of a CHILD SA: owns the anti-replay window.
pub struct EspIn {
    spi: u32,
    esn: bool,
    cipher: Cipher,
    replay: ReplayWindow,
}

/// Both halves of one CHILD SA. The driver may keep them apart (an old
/// inbound half lives on for a while after a rekey, make-before-break).
pub struct EspSa {
    /// Outbound half.
    pub out: EspOut,
    /// Inbound half.
    pub inp: EspIn,
}

impl core::fmt::Debug for EspSa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "EspSa({:08x}_i {:08x}_o)", self.inp.spi, self.out.spi)
    }
}

const HDR: usize = 8;

/// The SPI of an ESP packet, if it is long enough to have one.
pub fn spi_of(pkt: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(pkt.get(..4)?.try_into().ok()?))
}

/// Per-packet overhead of a suite for an IPv4 outer header in UDP (used to
/// size the tunnel MTU): IP 20 + UDP 8 + ESP 8 + IV + max padding + 2 + ICV.
pub fn overhead(encr: Encr, integ: Option<Integ>) -> usize {
    match encr {
        Encr::AesGcm16(_) => 20 + 8 + HDR + 8 + 3 + 2 + 16,
        _ => 20 + 8 + HDR + 16 + 15 + 2 + integ.map_or(12, |i| i.icv_len()),
    }
}

impl EspSa {
    /// From the keys the session handed out (3DES is not offered for ESP data).
    pub fn new(c: &ChildSaInfo) -> Option<EspSa> {
        Some(EspSa {
            out: EspOut {
                spi: c.spi_out,
                seq: 0,
                esn: c.esn,
                cipher: cipher(c.encr, c.integ, c.encr_out.expose(), c.integ_out.expose())?,
            },
            inp: EspIn {
                spi: c.spi_in,
                esn: c.esn,
                cipher: cipher(c.encr, c.integ, c.encr_in.expose(), c.integ_in.expose())?,
                replay: ReplayWindow::default(),
            },
        })
    }

    /// Our inbound SPI.
    pub fn spi_in(&self) -> u32 {
        self.inp.spi
    }

    /// Seals an IP packet (see [`EspOut::encapsulate`]).
    pub fn encapsulate(&mut self, ip: &[u8], out: &mut [u8]) -> Result<usize, DropReason> {
        self.out.encapsulate(ip, out)
    }

    /// Opens an ESP packet (see [`EspIn::decapsulate`]).
    pub fn decapsulate<'a>(&mut self, pkt: &'a mut [u8]) -> Result<&'a [u8], DropReason> {
        self.inp.decapsulate(pkt)
    }
}

impl EspOut {
    /// The gateway's SPI we send to.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// Packets sealed so far (the last sequence number used).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Whether the counter is close enough to its end that a rekey is due.
    pub fn rekey_due(&self) -> bool {
        let max = if self.esn { u64::MAX } else { u32::MAX as u64 };
        self.seq >= max - REKEY_MARGIN
    }

    #[cfg(test)]
    fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// The ESP packet length for an inner packet of `ip_len` bytes.
    pub fn sealed_len(&self, ip_len: usize) -> usize {
        let (iv_len, block, icv) = match &self.cipher {
            Cipher::Gcm(..) => (8, 4, 16),
            Cipher::Cbc(k) => (16, 16, k.icv),
        };
        let pad = (block - (ip_len + 2) % block) % block;
        HDR + iv_len + ip_len + pad + 2 + icv
    }

    /// Seals an IP packet into `out`; returns the ESP packet length.
    pub fn encapsulate(&mut self, ip: &[u8], out: &mut [u8]) -> Result<usize, DropReason> {
        let next = match ip.first().map(|b| b >> 4) {
            Some(6) => 41,
            _ => 4,
        };
        let max = if self.esn { u64::MAX } else { u32::MAX as u64 };
        if self.seq >= max {
            return Err(DropReason::SequenceExhausted);
        }
        let (iv_len, block, icv) = match &self.cipher {
            Cipher::Gcm(..) => (8, 4, 16),
            Cipher::Cbc(k) => (16, 16, k.icv),
        };
        let pad = (block - (ip.len() + 2) % block) % block;
        let ct_len = ip.len() + pad + 2;
        let total = HDR + iv_len + ct_len + icv;
        if out.len() < total {
            return Err(DropReason::Buffer);
        }
        self.seq += 1;
        let seq = self.seq;
        let (hi, lo) = ((seq >> 32) as u32, seq as u32);
        out[..4].copy_from_slice(&self.spi.to_be_bytes());
        out[4..8].copy_from_slice(&lo.to_be_bytes());
        let ct = HDR + iv_len;
        out[ct..ct + ip.len()].copy_from_slice(ip);
        for i in 0..pad {
            out[ct + ip.len() + i] = (i + 1) as u8; // RFC 4303 §2.4: 1, 2, 3, ...
        }
        out[ct + ip.len() + pad] = pad as u8;
        out[ct + ip.len() + pad + 1] = next;
        match &self.cipher {
            Cipher::Gcm(key, salt) => {
                let iv = seq.to_be_bytes();
                out[HDR..HDR + 8].copy_from_slice(&iv);
                let mut n = [0u8; 12];
                n[..4].copy_from_slice(salt);
                n[4..].copy_from_slice(&iv);
                // RFC 4106 §5: with ESN the AAD is SPI | Seq high | Seq low.
                let mut aad = [0u8; 12];
                aad[..4].copy_from_slice(&self.spi.to_be_bytes());
                let aad_len = if self.esn {
                    aad[4..8].copy_from_slice(&hi.to_be_bytes());
                    aad[8..].copy_from_slice(&lo.to_be_bytes());
                    12
                } else {
                    aad[4..8].copy_from_slice(&lo.to_be_bytes());
                    8
                };
                let tag = key
                    .seal_in_place_separate_tag(
                        aead::Nonce::assume_unique_for_key(n),
                        aead::Aad::from(&aad[..aad_len]),
                        &mut out[ct..ct + ct_len],
                    )
                    .map_err(|_| DropReason::Buffer)?;
                out[ct + ct_len..total].copy_from_slice(tag.as_ref());
            }
            Cipher::Cbc(k) => {
                let CbcKeys {
                    enc, ecb, mac, icv, ..
                } = &**k;
                let mut iv = [0u8; 16];
                iv[8..].copy_from_slice(&seq.to_be_bytes());
                iv[..4].copy_from_slice(&self.spi.to_be_bytes());
                ecb.less_safe_encrypt(&mut iv, aes::EncryptionContext::None)
                    .map_err(|_| DropReason::Buffer)?;
                out[HDR..HDR + 16].copy_from_slice(&iv);
                enc.less_safe_encrypt(
                    &mut out[ct..ct + ct_len],
                    aes::EncryptionContext::Iv128(FixedLength::from(iv)),
                )
                .map_err(|_| DropReason::Buffer)?;
                let t = icv_of(mac, &out[..ct + ct_len], self.esn.then_some(hi));
                out[ct + ct_len..total].copy_from_slice(&t.as_ref()[..*icv]);
            }
        }
        Ok(total)
    }
}

/// HMAC over the packet and, with ESN, the implicit high sequence bits
/// appended after it (RFC 4303 §3.3.2.1).
fn icv_of(mac: &hmac::Key, data: &[u8], esn_hi: Option<u32>) -> hmac::Tag {
    let mut c = hmac::Context::with_key(mac);
    c.update(data);
    if let Some(hi) = esn_hi {
        c.update(&hi.to_be_bytes());
    }
    c.sign()
}

impl EspIn {
    /// Our SPI.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// Opens an ESP packet in place; returns the inner IP packet.
    pub fn decapsulate<'a>(&mut self, pkt: &'a mut [u8]) -> Result<&'a [u8], DropReason> {
        if pkt.len() < HDR + 8 + 16 {
            return Err(DropReason::Malformed);
        }
        let spi = u32::from_be_bytes([pkt[0], pkt[1], pkt[2], pkt[3]]);
        if spi != self.spi {
            return Err(DropReason::UnknownSpi);
        }
        let lo = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        let seq = if self.esn {
            self.replay.infer(lo)
        } else {
            lo as u64
        };
        let hi = (seq >> 32) as u32;
        // Cheap checks first (RFC 4303 §3.4.3): replay before cryptography.
        self.replay.check(seq).map_err(|_| DropReason::Replay)?;
        let plain_len = match &self.cipher {
            Cipher::Gcm(key, salt) => {
                let mut n = [0u8; 12];
                n[..4].copy_from_slice(salt);
                n[4..].copy_from_slice(&pkt[HDR..HDR + 8]);
                let mut aad = [0u8; 12];
                aad[..4].copy_from_slice(&pkt[..4]);
                let aad_len = if self.esn {
                    aad[4..8].copy_from_slice(&hi.to_be_bytes());
                    aad[8..].copy_from_slice(&pkt[4..8]);
                    12
                } else {
                    aad[4..8].copy_from_slice(&pkt[4..8]);
                    8
                };
                key.open_in_place(
                    aead::Nonce::assume_unique_for_key(n),
                    aead::Aad::from(&aad[..aad_len]),
                    &mut pkt[HDR + 8..],
                )
                .map_err(|_| DropReason::Integrity)?
                .len()
            }
            Cipher::Cbc(k) => {
                let CbcKeys { dec, mac, icv, .. } = &**k;
                let end = pkt.len().checked_sub(*icv).ok_or(DropReason::Malformed)?;
                let want = icv_of(mac, &pkt[..end], self.esn.then_some(hi));
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
        let iv_len = if matches!(self.cipher, Cipher::Gcm(..)) {
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
        // 59 = no next header: a dummy packet (RFC 4303 §2.6), accepted and empty.
        if next != 4 && next != 41 && next != 59 {
            return Err(DropReason::Malformed);
        }
        self.replay.commit(seq);
        let inner = if next == 59 { 0 } else { inner };
        Ok(&pkt[HDR + iv_len..HDR + iv_len + inner])
    }
}

/// Data-plane counters: what `acclient status` shows next to the SAs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EspCounters {
    /// ESP packets sent.
    pub tx_packets: u64,
    /// Inner bytes sent.
    pub tx_bytes: u64,
    /// ESP packets opened.
    pub rx_packets: u64,
    /// Inner bytes received.
    pub rx_bytes: u64,
    /// Dropped: sequence number replayed or too old.
    pub drop_replay: u64,
    /// Dropped: ICV / tag did not verify.
    pub drop_integrity: u64,
    /// Dropped: SPI not ours.
    pub drop_unknown_spi: u64,
    /// Dropped: malformed (short, bad padding, odd next header).
    pub drop_malformed: u64,
    /// Outbound packets dropped (no SA yet, buffer, send failure).
    pub drop_tx: u64,
    /// Outbound IPv6 dropped: the tunnel has no IPv6 address.
    pub drop_ipv6: u64,
    /// NAT-T keepalives sent.
    pub keepalives: u64,
    /// ICMP echo replies to our `--ping` probe.
    pub echo_replies: u64,
}

impl EspCounters {
    /// The sum of two sets of counters (a driver's and a session's, or the
    /// sessions before and after a reconnect).
    pub fn add(&self, o: &EspCounters) -> EspCounters {
        EspCounters {
            tx_packets: self.tx_packets + o.tx_packets,
            tx_bytes: self.tx_bytes + o.tx_bytes,
            rx_packets: self.rx_packets + o.rx_packets,
            rx_bytes: self.rx_bytes + o.rx_bytes,
            drop_replay: self.drop_replay + o.drop_replay,
            drop_integrity: self.drop_integrity + o.drop_integrity,
            drop_unknown_spi: self.drop_unknown_spi + o.drop_unknown_spi,
            drop_malformed: self.drop_malformed + o.drop_malformed,
            drop_tx: self.drop_tx + o.drop_tx,
            drop_ipv6: self.drop_ipv6 + o.drop_ipv6,
            keepalives: self.keepalives + o.keepalives,
            echo_replies: self.echo_replies + o.echo_replies,
        }
    }

    /// Counts one inbound drop.
    pub fn drop_in(&mut self, r: DropReason) {
        match r {
            DropReason::Replay => self.drop_replay += 1,
            DropReason::Integrity => self.drop_integrity += 1,
            DropReason::UnknownSpi => self.drop_unknown_spi += 1,
            _ => self.drop_malformed += 1,
        }
    }

    /// All inbound drops.
    pub fn dropped(&self) -> u64 {
        self.drop_replay + self.drop_integrity + self.drop_unknown_spi + self.drop_malformed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Secret;

    fn pair(encr: Encr, integ: Option<Integ>) -> (EspSa, EspSa) {
        pair_esn(encr, integ, false)
    }

    fn pair_esn(encr: Encr, integ: Option<Integ>, esn: bool) -> (EspSa, EspSa) {
        let ek = Secret::new((0..encr.key_len() as u8).collect());
        let ek2 = Secret::new((100..100 + encr.key_len() as u8).collect());
        let ak = Secret::new(vec![7; integ.map_or(0, |i| i.key_len())]);
        let info = |spi_in, spi_out, eo: &Secret, ei: &Secret| ChildSaInfo {
            spi_in,
            spi_out,
            encr,
            integ,
            esn,
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
            (Encr::AesCbc(24), Some(Integ::Sha384_192)),
            (Encr::AesCbc(32), Some(Integ::Sha512_256)),
        ] {
            let (mut a, mut b) = pair(e, i);
            let ip: Vec<u8> = std::iter::once(0x45).chain(1..60u8).collect();
            let mut buf = [0u8; 200];
            let want = a.out.sealed_len(ip.len());
            let n = a.encapsulate(&ip, &mut buf).unwrap();
            assert_eq!(n, want, "sealed_len predicts the size");
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

    #[test]
    fn esn_crosses_the_32_bit_boundary() {
        for (e, i) in [
            (Encr::AesGcm16(32), None),
            (Encr::AesCbc(32), Some(Integ::Sha1_96)),
        ] {
            let (mut a, mut b) = pair_esn(e, i, true);
            let ip: Vec<u8> = std::iter::once(0x45).chain(1..60u8).collect();
            let mut buf = [0u8; 200];
            a.out.set_seq(u32::MAX as u64 - 3);
            let mut pkts = Vec::new();
            for _ in 0..8 {
                let n = a.encapsulate(&ip, &mut buf).unwrap();
                pkts.push(buf[..n].to_vec());
            }
            assert_eq!(a.out.seq(), u32::MAX as u64 + 5);
            // Delivered slightly out of order across the wrap.
            for k in [0usize, 2, 1, 3, 5, 4, 6, 7] {
                let mut p = pkts[k].clone();
                assert_eq!(b.decapsulate(&mut p).unwrap(), &ip[..], "{e:?} packet {k}");
            }
            let mut p = pkts[5].clone();
            assert_eq!(b.decapsulate(&mut p).unwrap_err(), DropReason::Replay);
            // Without ESN the same keys do not accept it: high bits are authenticated.
            let (mut c, mut d) = pair_esn(e, i, false);
            assert!(!c.out.rekey_due());
            c.out.set_seq(u32::MAX as u64 - 2);
            let n = c.encapsulate(&ip, &mut buf).unwrap();
            let mut p = buf[..n].to_vec();
            assert!(d.decapsulate(&mut p).is_ok());
            assert!(c.out.rekey_due());
            c.encapsulate(&ip, &mut buf).unwrap();
            assert_eq!(
                c.encapsulate(&ip, &mut buf).unwrap_err(),
                DropReason::SequenceExhausted,
                "a 32-bit counter never cycles"
            );
        }
    }
}
