//! EAP peer (RFC 3748) for IKEv2 (RFC 7296 §2.16): Identity, MD5-Challenge
//! (§5.4), GTC (RFC 3748 §5.6) and MS-CHAPv2 (RFC 2759, draft-kamath-pppext-
//! eap-mschapv2; MSK per RFC 3079 §3.3).
//!
//! ```text
//!  0                   1                   2                   3
//! |     Code      |  Identifier   |            Length             |
//! |     Type      |  Type-Data ...
//! ```

pub mod anyconnect;
pub mod mschapv2;

use md5::{Digest, Md5};

use crate::crypto::Secret;

/// EAP codes.
const REQUEST: u8 = 1;
const RESPONSE: u8 = 2;
const SUCCESS: u8 = 3;
const FAILURE: u8 = 4;

/// EAP method types we know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EapType {
    /// 1.
    Identity,
    /// 2.
    Notification,
    /// 3.
    Nak,
    /// 4.
    Md5,
    /// 6.
    Gtc,
    /// 26.
    MsChapV2,
    /// Anything else.
    Other(u8),
}

impl EapType {
    /// The method's usual name, for progress lines ("MSCHAPv2", not a Debug name).
    pub fn name(self) -> String {
        match self {
            EapType::Identity => "Identity".into(),
            EapType::Notification => "Notification".into(),
            EapType::Nak => "Nak".into(),
            EapType::Md5 => "MD5".into(),
            EapType::Gtc => "GTC".into(),
            EapType::MsChapV2 => "MSCHAPv2".into(),
            EapType::Other(o) => format!("type {o}"),
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => EapType::Identity,
            2 => EapType::Notification,
            3 => EapType::Nak,
            4 => EapType::Md5,
            6 => EapType::Gtc,
            26 => EapType::MsChapV2,
            o => EapType::Other(o),
        }
    }
    fn to_u8(self) -> u8 {
        match self {
            EapType::Identity => 1,
            EapType::Notification => 2,
            EapType::Nak => 3,
            EapType::Md5 => 4,
            EapType::Gtc => 6,
            EapType::MsChapV2 => 26,
            EapType::Other(o) => o,
        }
    }
}

/// A one-line description of an EAP message for logs (no secrets).
pub fn describe(msg: &[u8]) -> String {
    let code = match msg.first() {
        Some(1) => "REQ",
        Some(2) => "RES",
        Some(3) => "SUCC",
        Some(4) => "FAIL",
        _ => "?",
    };
    match msg.get(4) {
        Some(_) if anyconnect::Frame::is_anyconnect(msg) => format!("EAP/{code}/AnyConnect"),
        Some(t) if msg.len() > 4 => format!("EAP/{code}/{:?}", EapType::from_u8(*t)),
        _ => format!("EAP/{code}"),
    }
}

/// What the peer side should do after an EAP message from the gateway.
#[derive(Debug)]
pub enum Step {
    /// Send this EAP response.
    Respond(Vec<u8>),
    /// The method needs the user's password first; call again with it.
    NeedPassword,
    /// EAP Success; the MSK if the method made one (MD5 and GTC do not).
    Success(Option<Secret>),
    /// The gateway refused us (EAP Failure, or a method-level failure).
    Failure(String),
    /// The message makes no sense in this state.
    Protocol(String),
    /// EAP Failure after we declined every method the gateway asked for:
    /// not a credentials problem but a configuration one (says which).
    Declined(String),
}

/// A method the gateway proposed and we turned down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declined {
    /// Cisco's EAP-AnyConnect (an AnyConnect head-end).
    AnyConnect,
    Method(EapType),
}

/// The EAP peer for one IKE_AUTH.
#[derive(Debug)]
pub struct EapPeer {
    identity: String,
    allowed: Vec<EapType>,
    mschap: Option<mschapv2::State>,
    msk: Option<Secret>,
    /// Methods the gateway asked for that we declined (with Nak), so that
    /// its EAP Failure can be explained.
    declined: Vec<Declined>,
    used: Option<EapType>,
}

impl EapPeer {
    /// A peer answering as `identity`, willing to use `allowed` methods.
    pub fn new(identity: String, allowed: Vec<EapType>) -> Self {
        EapPeer {
            identity,
            allowed,
            mschap: None,
            msk: None,
            used: None,
            declined: Vec::new(),
        }
    }

    /// Why the login cannot work, when every method the gateway asked for
    /// was declined and none ran.
    pub fn declined(&self) -> Option<String> {
        (self.used.is_none() && !self.declined.is_empty()).then(|| self.declined_text())
    }

    fn declined_text(&self) -> String {
        if self.declined.contains(&Declined::AnyConnect) {
            return "the gateway asked for EAP-AnyConnect (it is an AnyConnect head-end) \
                    and we declined it: connect with --anyconnect or --profile"
                .into();
        }
        let asked: Vec<String> = self
            .declined
            .iter()
            .map(|d| match d {
                Declined::AnyConnect => "AnyConnect".into(),
                Declined::Method(t) => t.name(),
            })
            .collect();
        let ours: Vec<String> = self.allowed.iter().map(|t| t.name()).collect();
        format!(
            "no common EAP method: the gateway asked for EAP-{} and we offered {} (choose with --eap)",
            asked.join(", EAP-"),
            ours.join(", ")
        )
    }

    /// The method that ran, once one did.
    pub fn method(&self) -> Option<EapType> {
        self.used
    }

    /// Handles one EAP message; `password` is None until the user gave it.
    /// `rng` supplies the MS-CHAPv2 peer challenge.
    pub fn handle(
        &mut self,
        msg: &[u8],
        password: Option<&Secret>,
        rng: &mut dyn crate::crypto::Rng,
    ) -> Step {
        if msg.len() < 4 {
            return Step::Protocol("EAP message shorter than its header".into());
        }
        let (code, id) = (msg[0], msg[1]);
        match code {
            SUCCESS => return Step::Success(self.msk.clone()),
            FAILURE if self.used.is_none() && !self.declined.is_empty() => {
                return Step::Declined(self.declined_text())
            }
            FAILURE => return Step::Failure("EAP failure".into()),
            REQUEST => {}
            other => return Step::Protocol(format!("unexpected EAP code {other}")),
        }
        let Some(&t) = msg.get(4) else {
            return Step::Protocol("EAP request without a type".into());
        };
        let data = &msg[5..];
        let ty = EapType::from_u8(t);
        match ty {
            EapType::Identity => Step::Respond(packet(id, ty, self.identity.as_bytes())),
            EapType::Notification => Step::Respond(packet(id, ty, &[])),
            _ if !self.allowed.contains(&ty) => {
                // RFC 3748 §5.3.1: Legacy Nak with the methods we would accept.
                let want: Vec<u8> = self.allowed.iter().map(|t| t.to_u8()).collect();
                // RFC 3748 §5.7 expanded type 254 with vendor 9: Cisco's EAP-AnyConnect.
                let d = if t == 254 && data.get(..3) == Some(&[0, 0, 9]) {
                    Declined::AnyConnect
                } else {
                    Declined::Method(ty)
                };
                if !self.declined.contains(&d) {
                    self.declined.push(d);
                }
                if want.is_empty() {
                    return Step::Failure(format!(
                        "the gateway asked for EAP {ty:?}, which is not enabled"
                    ));
                }
                Step::Respond(packet(id, EapType::Nak, &want))
            }
            EapType::Md5 => {
                let Some(pw) = password else {
                    return Step::NeedPassword;
                };
                let Some((&n, rest)) = data.split_first() else {
                    return Step::Protocol("empty EAP-MD5 challenge".into());
                };
                let Some(challenge) = rest.get(..n as usize) else {
                    return Step::Protocol("truncated EAP-MD5 challenge".into());
                };
                self.used = Some(ty);
                // RFC 1994 §4.1: MD5(Identifier | secret | challenge).
                let mut h = Md5::new();
                h.update([id]);
                h.update(pw.expose());
                h.update(challenge);
                let mut v = vec![16u8];
                v.extend_from_slice(&h.finalize());
                Step::Respond(packet(id, ty, &v))
            }
            EapType::Gtc => {
                let Some(pw) = password else {
                    return Step::NeedPassword;
                };
                self.used = Some(ty);
                Step::Respond(packet(id, ty, pw.expose()))
            }
            EapType::MsChapV2 => {
                let Some(pw) = password else {
                    return Step::NeedPassword;
                };
                self.used = Some(ty);
                let st = self.mschap.get_or_insert_with(mschapv2::State::default);
                match st.handle(id, data, &self.identity, pw, rng) {
                    Ok((resp, msk)) => {
                        if msk.is_some() {
                            self.msk = msk;
                        }
                        Step::Respond(packet(id, ty, &resp))
                    }
                    Err(mschapv2::Error::Failure(m)) => Step::Failure(m),
                    Err(mschapv2::Error::Protocol(m)) => Step::Protocol(m),
                }
            }
            other => Step::Protocol(format!("unexpected EAP type {other:?}")),
        }
    }
}

fn packet(id: u8, ty: EapType, data: &[u8]) -> Vec<u8> {
    let len = (5 + data.len()) as u16;
    let mut v = vec![RESPONSE, id];
    v.extend_from_slice(&len.to_be_bytes());
    v.push(ty.to_u8());
    v.extend_from_slice(data);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::TestRng;

    fn req(id: u8, ty: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![REQUEST, id, 0, 0, ty];
        v.extend_from_slice(data);
        let l = v.len() as u16;
        v[2..4].copy_from_slice(&l.to_be_bytes());
        v
    }

    #[test]
    fn identity_then_md5() {
        let mut p = EapPeer::new("alice".into(), vec![EapType::Md5]);
        let mut rng = TestRng::new(0);
        let Step::Respond(r) = p.handle(&req(1, 1, &[]), None, &mut rng) else {
            panic!()
        };
        assert_eq!(r, [2, 1, 0, 10, 1, b'a', b'l', b'i', b'c', b'e']);
        let ch = [16u8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        assert!(matches!(
            p.handle(&req(2, 4, &ch), None, &mut rng),
            Step::NeedPassword
        ));
        let pw = Secret::new(b"pw".to_vec());
        let Step::Respond(r) = p.handle(&req(2, 4, &ch), Some(&pw), &mut rng) else {
            panic!()
        };
        let mut h = Md5::new();
        h.update([2u8]);
        h.update(b"pw");
        h.update(&ch[1..]);
        assert_eq!(&r[6..], &h.finalize()[..]);
        assert!(matches!(
            p.handle(&[3, 3, 0, 4], None, &mut rng),
            Step::Success(None)
        ));
    }

    #[test]
    fn declined_anyconnect_names_the_option() {
        let mut p = EapPeer::new("a".into(), vec![EapType::MsChapV2]);
        let mut rng = TestRng::new(0);
        let mut m = vec![1, 3, 0, 13, 254, 0, 0, 9, 0x44, 0x42, 0x52, 0x50, 0];
        m[3] = m.len() as u8;
        assert!(matches!(p.handle(&m, None, &mut rng), Step::Respond(_)));
        let why = p.declined().expect("declined");
        assert!(
            why.contains("EAP-AnyConnect") && why.contains("--anyconnect"),
            "{why}"
        );
    }

    #[test]
    fn nak_for_unwanted_method_and_failure() {
        let mut p = EapPeer::new("a".into(), vec![EapType::MsChapV2]);
        let mut rng = TestRng::new(0);
        let Step::Respond(r) = p.handle(&req(5, 4, &[1, 0]), None, &mut rng) else {
            panic!()
        };
        assert_eq!(r, [2, 5, 0, 6, 3, 26]);
        // Failure after the Nak, no method run: a method mismatch, named.
        match p.handle(&[4, 6, 0, 4], None, &mut rng) {
            Step::Declined(m) => assert!(
                m.contains("asked for EAP-MD5") && m.contains("offered MSCHAPv2"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            p.handle(&[1, 6], None, &mut rng),
            Step::Protocol(_)
        ));
        assert!(matches!(
            p.handle(&req(7, 4, &[200]), Some(&Secret::default()), &mut rng),
            Step::Respond(_)
        ));
    }
}
