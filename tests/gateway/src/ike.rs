//! The IKE responder: IKE_SA_INIT (RFC 7296 §1.2), sealing with Cisco
//! fragmentation, the message loop, and its own DPD requests.

use std::net::{Ipv4Addr, SocketAddr};

use acclient_core::crypto::auth::nat_hash;
use acclient_core::crypto::cipher::Protection;
use acclient_core::crypto::dh::KeyPair;
use acclient_core::crypto::keymat::{self, KeyLengths};
use acclient_core::crypto::Rng;
use acclient_core::ike::proposals::{self, IkeSuite};
use acclient_core::ike::{cisco, cisco_frag, describe};
use acclient_core::wire::*;

use super::*;

impl Gw {
    /// Method 1 with the PRF's hash ("RSA hash follows the PRF"), SHA-1
    /// for a SHA-1 PRF as seed 004's ASA does.
    pub(crate) fn sign(&self, suite: &IkeSuite, octets: &[u8]) -> (AuthMethod, Vec<u8>) {
        let sig = self
            .a
            .key
            .sign(suite.prf.id(), octets)
            .expect("RSA signing");
        (AuthMethod::RSA_SIG, sig)
    }

    /// Encrypts a response and splits it Cisco-style above the MTU.
    pub(crate) fn seal(
        &mut self,
        spi_r: [u8; 8],
        exchange: ExchangeType,
        id: u32,
        payloads: &[Payload<'_>],
    ) -> Vec<Vec<u8>> {
        let mtu = self.a.mtu;
        let Some(sa) = self.sas.get_mut(&spi_r) else {
            return vec![];
        };
        log(&format!(
            "sending {exchange:?} response {id} {}",
            describe::summary(payloads)
        ));
        let mut inner = Writer::new();
        let first = emit_chain(payloads, PayloadType::NONE, &mut inner);
        let mut w = Writer::new();
        Header {
            spi_i: sa.spi_i,
            spi_r,
            next_payload: PayloadType::SK,
            version: 0x20,
            exchange,
            flags: Flags(Flags::RESPONSE),
            message_id: id,
            length: 0,
        }
        .emit(&mut w);
        w.bytes(&[first.0, 0, 0, 0]);
        let mut msg = w.buf;
        sa.out
            .seal(&mut self.rng, &mut msg, HEADER_LEN + 2, &inner.buf);
        let out = if msg.len() > mtu {
            sa.frag_id += 1;
            let f = cisco_frag::split(&msg, sa.frag_id, mtu);
            log(&format!(
                "Fragment MTU: {mtu}, fragments: {}, Fragment ID: {}",
                f.len(),
                sa.frag_id
            ));
            f
        } else {
            vec![msg]
        };
        sa.last = Some((id, out.clone()));
        out
    }

    pub(crate) fn handle(&mut self, from: SocketAddr, data: &[u8]) -> Vec<Vec<u8>> {
        let Ok(h) = Header::parse(data) else {
            return vec![];
        };
        if h.exchange == ExchangeType::IKE_SA_INIT {
            return self.sa_init(from, data).into_iter().collect();
        }
        let Some(sa) = self.sas.get_mut(&h.spi_r) else {
            log("unknown IKE SA");
            return vec![];
        };
        if h.flags.response() {
            // The only requests we send are DPDs.
            if sa.inp.open(data, HEADER_LEN + 4).is_ok() {
                log(&format!("DPD response {} received", h.message_id));
            }
            return vec![];
        }
        if from.port() != 500 {
            sa.peer = Some(from);
        }
        if h.next_payload == PayloadType::CISCO_FRAGMENT {
            return match sa.reasm.add(data, 64, 65536) {
                Ok(Some(whole)) => {
                    log(&format!(
                        "reassembled a Cisco-fragmented message from the client ({} bytes)",
                        whole.len()
                    ));
                    self.handle(from, &whole)
                }
                _ => vec![],
            };
        }
        if let Some((id, dg)) = &sa.last {
            if *id == h.message_id {
                log(&format!("retransmitting response {id}"));
                return dg.clone();
            }
        }
        let Ok(pt) = sa.inp.open(data, HEADER_LEN + 4) else {
            log("integrity check failed");
            return vec![];
        };
        let first = h.next_payload;
        let (_, inner_first) = match parse_chain(first, &data[HEADER_LEN..]) {
            Ok(x) => x,
            Err(_) => return vec![],
        };
        let Ok((payloads, _)) = parse_chain(inner_first, &pt) else {
            log("malformed payloads");
            return vec![];
        };
        log(&format!(
            "received {:?} request {} {}",
            h.exchange,
            h.message_id,
            describe::summary(&payloads)
        ));
        match h.exchange {
            ExchangeType::IKE_AUTH => self.ike_auth(h.spi_r, h.message_id, &payloads),
            ExchangeType::INFORMATIONAL => {
                let delete = payloads.iter().any(
                    |p| matches!(&p.body, PayloadBody::Delete(d) if d.protocol == ProtocolId::IKE),
                );
                let out = self.seal(h.spi_r, ExchangeType::INFORMATIONAL, h.message_id, &[]);
                if delete {
                    log("received DELETE for IKE_SA");
                    self.sas.remove(&h.spi_r);
                }
                out
            }
            _ => self.seal(
                h.spi_r,
                h.exchange,
                h.message_id,
                &[Payload::from(PayloadBody::Notify(Notify::new(
                    NotifyType::NO_ADDITIONAL_SAS,
                    &[],
                )))],
            ),
        }
    }

    pub(crate) fn sa_init(&mut self, from: SocketAddr, data: &[u8]) -> Option<Vec<u8>> {
        let m = Message::parse(data).ok()?;
        log(&format!(
            "received IKE_SA_INIT request 0 {}",
            describe::summary(&m.payloads)
        ));
        let (mut sa, mut ke, mut ni) = (None, None, None);
        for p in &m.payloads {
            match &p.body {
                PayloadBody::Sa(s) => sa = Some(s.clone()),
                PayloadBody::Ke(k) => ke = Some(k.clone()),
                PayloadBody::Nonce(n) => ni = Some(n.to_vec()),
                _ => {}
            }
        }
        let (sa, ke, ni) = (sa?, ke?, ni?);
        let hdr = |spi_r: [u8; 8]| Header {
            spi_r,
            flags: Flags(Flags::RESPONSE),
            ..m.header
        };
        let mut sa = sa;
        if let Some(prf) = self.a.knobs.ike_prf {
            for p in &mut sa.proposals {
                p.transforms
                    .retain(|t| t.ty != TransformType::PRF || t.id == prf.0);
            }
            sa.proposals
                .retain(|p| p.of_type(TransformType::PRF).next().is_some());
        }
        let Some(chosen) = proposals::choose_from_peer(&sa, ProtocolId::IKE, Some(ke.group)) else {
            // Ask for the first group of theirs we can do (RFC 7296 §1.2).
            let want = sa
                .proposals
                .iter()
                .flat_map(|p| p.of_type(TransformType::DH))
                .map(|t| DhId(t.id))
                .find(|g| acclient_core::crypto::dh::supported(*g));
            let n = match want {
                Some(g) => Notify::new(
                    NotifyType::INVALID_KE_PAYLOAD,
                    Box::leak(Box::new(g.0.to_be_bytes())),
                ),
                None => Notify::new(NotifyType::NO_PROPOSAL_CHOSEN, &[]),
            };
            let resp = Message {
                header: hdr([0; 8]),
                payloads: vec![Payload::from(PayloadBody::Notify(n))],
                inner_first: PayloadType::NONE,
            };
            log(&format!(
                "sending IKE_SA_INIT response 0 {}",
                describe::summary(&resp.payloads)
            ));
            return Some(resp.emit());
        };
        let suite = proposals::select_ike(
            &sa,
            &SaPayload {
                proposals: vec![chosen.clone()],
            },
        )
        .ok()?;
        let dh = KeyPair::generate(suite.dh, &mut self.rng).ok()?;
        let gir = dh.shared(ke.data).ok()?;
        let mut spi_r = [0u8; 8];
        self.rng.fill(&mut spi_r);
        let mut nr = vec![0u8; 32];
        self.rng.fill(&mut nr);
        let spi_i = m.header.spi_i;
        let src = nat_hash(&spi_i, &spi_r, SocketAddr::new(self.a.listen, 500));
        let dst = nat_hash(&spi_i, &spi_r, from);
        let resp = Message {
            header: hdr(spi_r),
            payloads: vec![
                Payload::from(PayloadBody::Sa(SaPayload {
                    proposals: vec![chosen],
                })),
                Payload::from(PayloadBody::Ke(Ke {
                    group: suite.dh,
                    data: dh.public(),
                })),
                Payload::from(PayloadBody::Nonce(&nr)),
                Payload::from(PayloadBody::VendorId(cisco::VID_DELETE_REASON)),
                Payload::from(PayloadBody::VendorId(cisco::VID_COPYRIGHT)),
                Payload::from(PayloadBody::VendorId(cisco::VID_ANYCONNECT_EAP)),
                Payload::from(PayloadBody::Notify(Notify::new(
                    NotifyType::NAT_DETECTION_SOURCE_IP,
                    &src,
                ))),
                Payload::from(PayloadBody::Notify(Notify::new(
                    NotifyType::NAT_DETECTION_DESTINATION_IP,
                    &dst,
                ))),
                Payload::from(PayloadBody::VendorId(&cisco_frag::VID_FRAGMENTATION)),
            ],
            inner_first: PayloadType::NONE,
        };
        let bytes = resp.emit();
        log(&format!(
            "sending IKE_SA_INIT response 0 {} ({})",
            describe::summary(&resp.payloads),
            suite.name()
        ));
        let seed = keymat::skeyseed(&suite.prf, &ni, &nr, gir.expose());
        let l = KeyLengths {
            integ: suite.integ.map_or(0, |i| i.key_len()),
            encr: suite.encr.key_len(),
        };
        let keys = keymat::ike_keys(&suite.prf, seed.expose(), &ni, &nr, &spi_i, &spi_r, l);
        let mk =
            |ek: &acclient_core::crypto::Secret, ak: &acclient_core::crypto::Secret| Protection {
                encr: suite.encr,
                integ: suite.integ,
                ek: ek.clone(),
                ak: ak.clone(),
            };
        let (out, inp) = (mk(&keys.sk_er, &keys.sk_ar), mk(&keys.sk_ei, &keys.sk_ai));
        let mut token = [0u8; 24];
        self.rng.fill(&mut token);
        use base64::Engine as _;
        self.sas.insert(
            spi_r,
            Sa {
                spi_i,
                suite,
                keys,
                out,
                inp,
                ni,
                nr,
                msg1: data.to_vec(),
                msg2: bytes.clone(),
                idi_body: vec![],
                idr_body: vec![],
                stage: Stage::Auth1,
                eap_id: 0,
                group: None,
                user: None,
                attempts: 0,
                round: Round::Login,
                opaque: String::new(),
                child_offer: SaPayload::default(),
                last: None,
                frag_id: 0,
                reasm: Default::default(),
                lease: Ipv4Addr::UNSPECIFIED,
                peer: None,
                next_req: 0,
                session_id: 0,
                token: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token),
            },
        );
        Some(bytes)
    }

    /// DPD requests (empty INFORMATIONAL) for every established SA.
    pub(crate) fn dpd_requests(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        let Self { sas, rng, .. } = self;
        for (spi_r, sa) in sas.iter_mut().filter(|(_, s)| s.stage == Stage::Up) {
            let Some(peer) = sa.peer else { continue };
            let mut w = Writer::new();
            Header {
                spi_i: sa.spi_i,
                spi_r: *spi_r,
                next_payload: PayloadType::SK,
                version: 0x20,
                exchange: ExchangeType::INFORMATIONAL,
                flags: Flags(0),
                message_id: sa.next_req,
                length: 0,
            }
            .emit(&mut w);
            w.bytes(&[0, 0, 0, 0]);
            let mut msg = w.buf;
            sa.out.seal(rng, &mut msg, HEADER_LEN + 2, &[]);
            log(&format!("sending DPD request {}", sa.next_req));
            sa.next_req += 1;
            out.push((peer, msg));
        }
        out
    }

    /// Fault knob: drop this share of datagrams (both directions).
    pub(crate) fn lose(&mut self) -> bool {
        if self.a.loss == 0 {
            return false;
        }
        self.drop_state = self
            .drop_state
            .wrapping_mul(1_103_515_245)
            .wrapping_add(12345);
        (self.drop_state >> 16) % 100 < self.a.loss
    }
}

/// Only the transforms of one ESP suite (`--esp-suite`), to measure each.
pub(crate) fn restrict(offer: &SaPayload, suite: Option<&str>) -> SaPayload {
    let Some(suite) = suite else {
        return offer.clone();
    };
    let (encr, integ) = match suite {
        "gcm256" => (EncrId::AES_GCM_16.0, None),
        "cbc256-sha1" => (EncrId::AES_CBC.0, Some(IntegId::HMAC_SHA1_96.0)),
        other => {
            log(&format!("unknown --esp-suite {other}: accepting any"));
            return offer.clone();
        }
    };
    let mut out = offer.clone();
    for p in &mut out.proposals {
        p.transforms.retain(|t| match t.ty {
            TransformType::ENCR => t.id == encr && t.key_len() == Some(256),
            TransformType::INTEG => Some(t.id) == integ,
            _ => true,
        });
    }
    out.proposals
        .retain(|p| p.of_type(TransformType::ENCR).next().is_some());
    out
}
