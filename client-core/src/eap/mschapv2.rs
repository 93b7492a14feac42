//! EAP-MS-CHAPv2 peer (RFC 2759 §8, draft-kamath-pppext-eap-mschapv2 §2)
//! and its MSK (RFC 3079 §3.3–§3.4).
//!
//! ```text
//! Challenge:  | OpCode=1 | MS-CHAPv2-ID | MS-Length | Value-Size=16 | Challenge | Name
//! Response:   | OpCode=2 | MS-CHAPv2-ID | MS-Length | Value-Size=49 |
//!             |   Peer-Challenge(16) | Reserved(8) | NT-Response(24) | Flags | Name
//! Success:    | OpCode=3 | ... "S=<40 hex> M=<message>"   → peer answers OpCode 3
//! Failure:    | OpCode=4 | ... "E=691 R=0 C=... V=3 M=..."
//! ```

use des::cipher::{BlockCipherEncrypt, KeyInit};
use md4::{Digest, Md4};

use crate::crypto::{Rng, Secret};

#[derive(Debug)]
pub(super) enum Error {
    Failure(String),
    Protocol(String),
}

#[derive(Default, Debug)]
pub(super) struct State {
    expect_auth: Option<Secret>,
}

const MAGIC1: &[u8] = b"Magic server to client signing constant";
const MAGIC2: &[u8] = b"Pad to make it do more than one iteration";
const MPPE_MAGIC1: &[u8] = b"This is the MPPE Master Key";
const MPPE_MAGIC2: &[u8] =
    b"On the client side, this is the send key; on the server side, it is the receive key.";
const MPPE_MAGIC3: &[u8] =
    b"On the client side, this is the receive key; on the server side, it is the send key.";

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut c = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    for p in parts {
        c.update(p);
    }
    c.finish().as_ref().try_into().expect("SHA-1 is 20 bytes")
}

fn nt_password_hash(password: &[u8]) -> [u8; 16] {
    // RFC 2759 §8.3: MD4 over the Unicode (UTF-16LE) password.
    let s = String::from_utf8_lossy(password);
    let utf16: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    Md4::digest(&utf16).into()
}

fn des_expand(k7: &[u8]) -> [u8; 8] {
    // RFC 2759 §8.6 DesEncrypt: 56-bit key spread over 8 bytes (parity ignored).
    let mut k = [0u8; 8];
    let mut bits: u64 = 0;
    for &b in k7 {
        bits = (bits << 8) | b as u64;
    }
    for (i, o) in k.iter_mut().enumerate() {
        *o = (((bits >> (49 - 7 * i)) & 0x7f) as u8) << 1;
    }
    k
}

fn challenge_response(challenge: &[u8; 8], hash: &[u8; 16]) -> [u8; 24] {
    let mut z = [0u8; 21];
    z[..16].copy_from_slice(hash);
    let mut out = [0u8; 24];
    for i in 0..3 {
        let c =
            des::Des::new_from_slice(&des_expand(&z[7 * i..7 * i + 7])).expect("8-byte DES key");
        let mut block = *challenge;
        c.encrypt_block((&mut block).into());
        out[8 * i..8 * i + 8].copy_from_slice(&block);
    }
    out
}

fn challenge_hash(peer: &[u8; 16], auth: &[u8; 16], user: &[u8]) -> [u8; 8] {
    sha1(&[peer, auth, user])[..8].try_into().expect("8 of 20")
}

fn authenticator_response(pw_hash: &[u8; 16], nt: &[u8; 24], ch: &[u8; 8]) -> String {
    let hh: [u8; 16] = Md4::digest(pw_hash).into();
    let d = sha1(&[&hh, nt, MAGIC1]);
    let d = sha1(&[&d, ch, MAGIC2]);
    format!("S={}", crate::crypto::hex(&d).to_uppercase())
}

/// MSK = MasterReceiveKey | MasterSendKey, as the EAP server sees them
/// (RFC 3079 §3.4 with the server's magics), padded to 64 bytes.
fn msk(pw_hash: &[u8; 16], nt: &[u8; 24]) -> Secret {
    let hh: [u8; 16] = Md4::digest(pw_hash).into();
    let master = &sha1(&[&hh, nt, MPPE_MAGIC1])[..16];
    let start = |magic: &[u8]| sha1(&[master, &[0u8; 40], magic, &[0xf2u8; 40]])[..16].to_vec();
    let mut k = start(MPPE_MAGIC2);
    k.extend_from_slice(&start(MPPE_MAGIC3));
    k.resize(64, 0);
    Secret::new(k)
}

/// The authenticator's side (RFC 2759 §8.7, RFC 3079 §3.4), for test
/// responders: checks a peer's Response to `auth_challenge` against the
/// password and returns the Success message ("S=<40 hex>") and the MSK.
/// `response` is the MS-CHAPv2 Response value after the Value-Size byte:
/// Peer-Challenge (16), reserved (8), NT-Response (24), flags, then the name.
pub fn authenticate(
    auth_challenge: &[u8; 16],
    response: &[u8],
    user: &[u8],
    password: &[u8],
) -> Option<(String, Secret)> {
    let peer: [u8; 16] = response.get(..16)?.try_into().ok()?;
    let nt: [u8; 24] = response.get(24..48)?.try_into().ok()?;
    let ph = nt_password_hash(password);
    let ch = challenge_hash(&peer, auth_challenge, user);
    let want = challenge_response(&ch, &ph);
    aws_lc_rs::constant_time::verify_slices_are_equal(&want, &nt).ok()?;
    Some((authenticator_response(&ph, &nt, &ch), msk(&ph, &nt)))
}

impl State {
    pub(super) fn handle(
        &mut self,
        _eap_id: u8,
        data: &[u8],
        user: &str,
        password: &Secret,
        rng: &mut dyn Rng,
    ) -> Result<(Vec<u8>, Option<Secret>), Error> {
        let proto = |m: &str| Error::Protocol(format!("EAP-MS-CHAPv2: {m}"));
        let (&op, rest) = data.split_first().ok_or_else(|| proto("empty"))?;
        match op {
            1 => {
                let ms_id = *rest.first().ok_or_else(|| proto("truncated challenge"))?;
                if rest.get(3) != Some(&16) || rest.len() < 4 + 16 {
                    return Err(proto("bad challenge value size"));
                }
                let auth: [u8; 16] = rest[4..20].try_into().expect("16 bytes checked");
                let mut peer = [0u8; 16];
                rng.fill(&mut peer);
                let ph = nt_password_hash(password.expose());
                let ch = challenge_hash(&peer, &auth, user.as_bytes());
                let nt = challenge_response(&ch, &ph);
                self.expect_auth = Some(Secret::new(
                    authenticator_response(&ph, &nt, &ch).into_bytes(),
                ));
                let mut v = vec![2, ms_id, 0, 0, 49];
                v.extend_from_slice(&peer);
                v.extend_from_slice(&[0; 8]);
                v.extend_from_slice(&nt);
                v.push(0);
                v.extend_from_slice(user.as_bytes());
                let l = (v.len()) as u16;
                v[2..4].copy_from_slice(&l.to_be_bytes());
                Ok((v, Some(msk(&ph, &nt))))
            }
            3 => {
                let want = self
                    .expect_auth
                    .take()
                    .ok_or_else(|| proto("success before challenge"))?;
                let msg = rest.get(3..).unwrap_or(&[]);
                if msg.len() < 42
                    || aws_lc_rs::constant_time::verify_slices_are_equal(&msg[..42], want.expose())
                        .is_err()
                {
                    return Err(Error::Failure("the gateway's MS-CHAPv2 authenticator response is wrong (not the real server?)".into()));
                }
                Ok((vec![3], None))
            }
            4 => {
                let text = String::from_utf8_lossy(rest.get(3..).unwrap_or(&[])).into_owned();
                let code = text
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("E="))
                    .unwrap_or("?")
                    .to_string();
                let m = text.split("M=").nth(1).unwrap_or("").trim().to_string();
                Err(Error::Failure(format!(
                    "MS-CHAPv2 failure E={code}{}",
                    if m.is_empty() {
                        String::new()
                    } else {
                        format!(": {m}")
                    }
                )))
            }
            o => Err(proto(&format!("unknown OpCode {o}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::unhex;

    // RFC 2759 §9.2 example.
    #[test]
    fn rfc2759_vectors() {
        let auth: [u8; 16] = unhex("5B5D7C7D7B3F2F3E3C2C602132262628")
            .try_into()
            .unwrap();
        let peer: [u8; 16] = unhex("21402324255E262A28295F2B3A337C7E")
            .try_into()
            .unwrap();
        let ch = challenge_hash(&peer, &auth, b"User");
        assert_eq!(ch.to_vec(), unhex("D02E4386BCE91226"));
        let ph = nt_password_hash(b"clientPass");
        assert_eq!(ph.to_vec(), unhex("44EBBA8D5312B8D611474411F56989AE"));
        let nt = challenge_response(&ch, &ph);
        assert_eq!(
            nt.to_vec(),
            unhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
        );
        assert_eq!(
            authenticator_response(&ph, &nt, &ch),
            "S=407A5589115FD0D6209F510FE9C04566932CDA56"
        );
    }

    // RFC 3079 §3.5.3 (same credentials): MasterKey FDECE371...; the example's
    // SendStartKey128 8B7CDC14... is the *server's* send key (IsServer = TRUE,
    // MPPE magic 3), which is the second half of the MSK.
    #[test]
    fn rfc3079_msk_second_half() {
        let nt: [u8; 24] = unhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
            .try_into()
            .unwrap();
        let ph = nt_password_hash(b"clientPass");
        let m = msk(&ph, &nt);
        assert_eq!(
            &m.expose()[16..32],
            &unhex("8B7CDC149B993A1BA118CB153F56DCCB")[..]
        );
        assert_eq!(m.len(), 64);
    }
}
