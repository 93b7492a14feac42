//! Entry points for the cargo-fuzz targets in `fuzz/` (one per parser) and
//! for the bounded smoke test that runs them in `cargo test`. Each must
//! return normally for any input: a panic is a bug.

use std::time::{Duration, Instant};

use crate::crypto::{Secret, TestRng};
use crate::eap::{EapPeer, EapType};
use crate::wire::{parse_chain, Message, PayloadType};
use crate::{AuthMethod, Identity, Session, Settings};

/// IKE message parser: parse, and if it parses, emit and parse again; the
/// payloads must survive the round trip.
pub fn wire_message(data: &[u8]) {
    if let Ok(m) = Message::parse(data) {
        let bytes = m.emit();
        let again = Message::parse(&bytes).expect("an emitted message parses");
        assert_eq!(
            again.payloads, m.payloads,
            "payloads survive parse -> emit -> parse"
        );
    }
}

/// Every payload parser: the first byte picks the payload type.
pub fn wire_payloads(data: &[u8]) {
    if let Some((&t, rest)) = data.split_first() {
        if let Ok((p, _)) = parse_chain(PayloadType(t), rest) {
            let mut w = crate::wire::Writer::new();
            crate::wire::emit_chain(&p, PayloadType::NONE, &mut w);
            let (q, _) = parse_chain(PayloadType(t), &w.buf).expect("an emitted chain parses");
            assert_eq!(p, q);
        }
    }
}

/// The EAP peer (Identity, MD5, GTC, MS-CHAPv2) on arbitrary requests.
pub fn eap(data: &[u8]) {
    let mut peer = EapPeer::new(
        "alice".into(),
        vec![EapType::MsChapV2, EapType::Md5, EapType::Gtc],
    );
    let pw = Secret::new(b"pw".to_vec());
    let mut rng = TestRng::new(1);
    for chunk in data.split(|&b| b == 0xfe) {
        let _ = peer.handle(chunk, Some(&pw), &mut rng);
    }
}

/// EAP-AnyConnect framing and the gateway's config-auth documents.
pub fn anyconnect_xml(data: &[u8]) {
    let _ = crate::eap::anyconnect::Frame::parse(data)
        .map(|f| f.xml().map(crate::eap::anyconnect::xml::parse));
    let _ = crate::eap::anyconnect::xml::parse(data);
}

/// The PEM reader (certificates, plain and encrypted keys) and the client
/// key loader on what it yields, or on the input as DER.
pub fn pem_keys(data: &[u8]) {
    let _ = crate::crypto::pem::certificates(data);
    for pass in [None, Some(&b"correct horse"[..])] {
        if let Ok(der) = crate::crypto::pem::private_key(data, pass) {
            let _ = crate::crypto::sig::ClientKey::from_der(der.expose());
        }
    }
    let _ = crate::crypto::sig::ClientKey::from_der(data);
}

/// The AnyConnect XML profile reader.
pub fn profile_xml(data: &[u8]) {
    if let Ok(s) = core::str::from_utf8(data) {
        let _ = crate::profile::parse(s);
    }
}

/// A session in its first state fed arbitrary datagrams on both ports and
/// timeouts: no panic, and a session never emits after it closed. The fuzz
/// target is the driver here: it passes `now`, later times derive from it.
pub fn session_datagram(data: &[u8], now: Instant) {
    let gw = "198.51.100.1:500".parse().expect("literal");
    let local = "198.51.100.2:500".parse().expect("literal");
    let nat = "198.51.100.1:4500".parse().expect("literal");
    let mut s = Settings::new(
        gw,
        local,
        Identity::KeyId("alice".into()),
        AuthMethod::Psk(Secret::new(b"k".to_vec())),
    );
    s.trust.unix_time = 1_800_000_000;
    let Ok(mut session) = Session::new(s, Box::new(TestRng::new(7)), now) else {
        return;
    };
    let mut buf = Vec::new();
    for (i, chunk) in data.split(|&b| b == 0xfe).enumerate() {
        let from = if i % 2 == 0 { gw } else { nat };
        let t = now + Duration::from_millis(100 * i as u64);
        let mut d = chunk.to_vec();
        let _ = session.handle_datagram(t, from, &mut d);
        session.handle_timeout(t);
        while session.poll_transmit(&mut buf).is_some() {}
        while session.poll_event().is_some() {}
    }
}

/// ESP from the network: arbitrary packets (with our SPI, so the checks
/// past the SPI run) into every suite, with and without ESN, never panic;
/// and what we seal always opens to the same bytes.
pub fn esp_packet(data: &[u8]) {
    use crate::crypto::cipher::{Encr, Integ};
    use crate::esp::EspSa;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let suites = [
        (Encr::AesGcm16(32), None),
        (Encr::AesGcm16(16), None),
        (Encr::AesCbc(32), Some(Integ::Sha1_96)),
        (Encr::AesCbc(16), Some(Integ::Sha512_256)),
    ];
    let (encr, integ) = suites[(mode as usize) % suites.len()];
    let esn = mode & 0x10 != 0;
    let key = |n: usize, b: u8| Secret::new(vec![b; n]);
    let info = |spi_in: u32, spi_out: u32, a: u8, b: u8| crate::esp::ChildSaInfo {
        spi_in,
        spi_out,
        encr,
        integ,
        esn,
        encr_out: key(encr.key_len(), a),
        integ_out: key(integ.map_or(0, |i| i.key_len()), a),
        encr_in: key(encr.key_len(), b),
        integ_in: key(integ.map_or(0, |i| i.key_len()), b),
        ts_local: vec![],
        ts_remote: vec![],
    };
    let (Some(mut a), Some(mut b)) = (EspSa::new(&info(1, 2, 3, 4)), EspSa::new(&info(2, 1, 4, 3)))
    else {
        return;
    };
    if mode & 0x20 != 0 {
        let mut out = vec![0u8; rest.len() + 64];
        if let Ok(n) = a.encapsulate(rest, &mut out) {
            let opened = b.decapsulate(&mut out[..n]).map(|p| p.to_vec());
            // A first byte of 6 marks IPv6 (next header 41), anything else IPv4.
            assert_eq!(opened.as_deref(), Ok(rest), "seal/open round trip");
        }
    } else {
        let mut p = rest.to_vec();
        if p.len() >= 4 {
            p[..4].copy_from_slice(&2u32.to_be_bytes());
        }
        let _ = b.decapsulate(&mut p);
        let _ = b.decapsulate(&mut rest.to_vec());
    }
}

/// The gateway's side of a PSK session, just enough to reach ESTABLISHED
/// with the deterministic RNG and then seal arbitrary plaintext as if the
/// gateway had sent it: the fuzzer's bytes reach the parsers behind SK.
struct Peer {
    out: crate::crypto::cipher::Protection,
    spi_i: [u8; 8],
    spi_r: [u8; 8],
    next_id: u32,
}

const FUZZ_GW: &str = "198.51.100.1:500";
const FUZZ_NAT: &str = "198.51.100.1:4500";
const FUZZ_PSK: &[u8] = b"fuzz-psk";

impl Peer {
    fn seal(
        &self,
        exchange: crate::wire::ExchangeType,
        id: u32,
        response: bool,
        first: u8,
        body: &[u8],
    ) -> Vec<u8> {
        use crate::wire::{Flags, Header, Writer, HEADER_LEN};
        let mut w = Writer::new();
        Header {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            next_payload: PayloadType::SK,
            version: 0x20,
            exchange,
            flags: Flags(if response { Flags::RESPONSE } else { 0 }),
            message_id: id,
            length: 0,
        }
        .emit(&mut w);
        w.bytes(&[first, 0, 0, 0]);
        let mut msg = w.buf;
        self.out
            .seal(&mut TestRng::new(id as u8), &mut msg, HEADER_LEN + 2, body);
        let mut d = vec![0, 0, 0, 0];
        d.extend_from_slice(&msg);
        d
    }
}

fn strip(d: &[u8]) -> &[u8] {
    d.strip_prefix(&[0, 0, 0, 0]).unwrap_or(d)
}

/// Runs IKE_SA_INIT and a PSK IKE_AUTH. The IKE_AUTH response carries a
/// valid IDr and AUTH; what follows them is `auth_tail` when given (first
/// payload type, then raw payload bytes: CP, SA, TS as the fuzzer likes),
/// else a well-formed CP(CFG_REPLY), SA, TSi, TSr.
fn established(now: Instant, auth_tail: Option<&[u8]>) -> Option<(Session, Peer)> {
    use crate::crypto::auth::{shared_key_auth, signed_octets};
    use crate::crypto::cipher::Protection;
    use crate::crypto::dh::KeyPair;
    use crate::crypto::keymat;
    use crate::ike::proposals;
    use crate::wire::{
        emit_chain, Auth, AuthMethod, CfgAttr, CfgAttribute, CfgType, ConfigPayload, Flags, Header,
        Id, IdType, Ke, Payload, PayloadBody, ProtocolId, SaPayload, TrafficSelector, TsPayload,
        Writer, HEADER_LEN,
    };
    let gw = FUZZ_GW.parse().ok()?;
    let nat = FUZZ_NAT.parse().ok()?;
    let s = Settings::new(
        gw,
        "198.51.100.2:500".parse().ok()?,
        Identity::KeyId("alice".into()),
        crate::AuthMethod::Psk(Secret::new(FUZZ_PSK.to_vec())),
    );
    let mut session = Session::new(s, Box::new(TestRng::new(7)), now).ok()?;
    let mut buf = Vec::new();
    session.poll_transmit(&mut buf)?;
    let req = Message::parse(&buf).ok()?;
    let (mut sa, mut ke, mut ni) = (None, None, None);
    for p in &req.payloads {
        match &p.body {
            PayloadBody::Sa(x) => sa = Some(x.clone()),
            PayloadBody::Ke(k) => ke = Some(k.clone()),
            PayloadBody::Nonce(n) => ni = Some(n.to_vec()),
            _ => {}
        }
    }
    let (sa, ke, ni) = (sa?, ke?, ni?);
    let chosen = proposals::choose_from_peer(&sa, ProtocolId::IKE, Some(ke.group))?;
    let suite = proposals::select_ike(
        &sa,
        &SaPayload {
            proposals: vec![chosen.clone()],
        },
    )
    .ok()?;
    let mut rng = TestRng::new(9);
    let dh = KeyPair::generate(suite.dh, &mut rng).ok()?;
    let gir = dh.shared(ke.data).ok()?;
    let (spi_i, spi_r, nr) = (req.header.spi_i, [7u8; 8], vec![5u8; 32]);
    let msg1 = buf.clone();
    let mut msg2 = Message {
        header: Header {
            spi_r,
            flags: Flags(Flags::RESPONSE),
            ..req.header
        },
        payloads: vec![
            Payload::from(PayloadBody::Sa(SaPayload {
                proposals: vec![chosen],
            })),
            Payload::from(PayloadBody::Ke(Ke {
                group: suite.dh,
                data: dh.public(),
            })),
            Payload::from(PayloadBody::Nonce(&nr)),
        ],
        inner_first: PayloadType::NONE,
    }
    .emit();
    let l = keymat::KeyLengths {
        integ: suite.integ.map_or(0, |i| i.key_len()),
        encr: suite.encr.key_len(),
    };
    let seed = keymat::skeyseed(&suite.prf, &ni, &nr, gir.expose());
    let keys = keymat::ike_keys(&suite.prf, seed.expose(), &ni, &nr, &spi_i, &spi_r, l);
    let protection = |ek: &Secret, ak: &Secret| Protection {
        encr: suite.encr,
        integ: suite.integ,
        ek: ek.clone(),
        ak: ak.clone(),
    };
    let inp = protection(&keys.sk_ei, &keys.sk_ai);
    let peer = Peer {
        out: protection(&keys.sk_er, &keys.sk_ar),
        spi_i,
        spi_r,
        next_id: 0,
    };
    let msg2_copy = msg2.clone();
    session.handle_datagram(now, gw, &mut msg2);
    session.poll_transmit(&mut buf)?;
    let auth_req = strip(&buf).to_vec();
    let h = Header::parse(&auth_req).ok()?;
    let (_, first) = parse_chain(h.next_payload, &auth_req[HEADER_LEN..]).ok()?;
    let pt = inp.open(&auth_req, HEADER_LEN + 4).ok()?;
    let (payloads, _) = parse_chain(first, &pt).ok()?;
    let offer = payloads.iter().find_map(|p| match &p.body {
        PayloadBody::Sa(x) => Some(x.clone()),
        _ => None,
    })?;
    let _ = msg1;
    let idr = Id {
        ty: IdType::FQDN,
        data: b"vpn.example.com",
    };
    let octets = signed_octets(
        &msg2_copy,
        &ni,
        &suite.prf,
        keys.sk_pr.expose(),
        &idr.body(),
    );
    let auth = shared_key_auth(&suite.prf, FUZZ_PSK, &octets);
    let head = [
        Payload::from(PayloadBody::IdR(idr.clone())),
        Payload::from(PayloadBody::Auth(Auth {
            method: AuthMethod::SHARED_KEY_MIC,
            data: &auth,
        })),
    ];
    let mut w = Writer::new();
    let (first, body) = match auth_tail {
        Some(t) => {
            let (&next, rest) = t.split_first().unwrap_or((&0, &[]));
            let f = emit_chain(&head, PayloadType(next), &mut w);
            w.bytes(rest);
            (f, w.buf)
        }
        None => {
            let mut child = proposals::choose_from_peer(&offer, ProtocolId::ESP, None)?;
            child.spi = 0x5151_0001u32.to_be_bytes().to_vec();
            let addr = [192u8, 0, 2, 10];
            let ts = TsPayload {
                selectors: vec![TrafficSelector::any_v4()],
            };
            let mut all = head.to_vec();
            all.push(Payload::from(PayloadBody::Cp(ConfigPayload {
                cfg_type: CfgType::CFG_REPLY,
                attributes: vec![CfgAttribute {
                    ty: CfgAttr::INTERNAL_IP4_ADDRESS,
                    value: &addr,
                }],
            })));
            all.push(Payload::from(PayloadBody::Sa(SaPayload {
                proposals: vec![child],
            })));
            all.push(Payload::from(PayloadBody::TsI(ts.clone())));
            all.push(Payload::from(PayloadBody::TsR(ts)));
            let f = emit_chain(&all, PayloadType::NONE, &mut w);
            (f, w.buf)
        }
    };
    let mut d = peer.seal(h.exchange, h.message_id, true, first.0, &body);
    session.handle_datagram(now, nat, &mut d);
    Some((session, peer))
}

/// A session driven to ESTABLISHED, then fed arbitrary *decrypted* payload
/// chains, sealed with the real keys so they pass the integrity check:
/// the first input byte picks whether the IKE_AUTH response's tail (CFG_REPLY,
/// Cisco attributes, SA, TS) is the fuzzer's too; then each chunk (split at
/// 0xfe) is a gateway INFORMATIONAL or CREATE_CHILD_SA request, or the answer
/// to our own CHILD / IKE rekey. No panic, and nothing is sent after Closed.
pub fn session_established(data: &[u8], now: Instant) {
    use crate::wire::ExchangeType;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (auth_tail, rest) = if mode & 1 == 1 {
        match rest.iter().position(|&b| b == 0xfe) {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (Some(rest), &[][..]),
        }
    } else {
        (None, rest)
    };
    let Some((mut session, mut peer)) = established(now, auth_tail) else {
        return;
    };
    let nat = FUZZ_NAT.parse().expect("literal");
    let mut buf = Vec::new();
    while session.poll_transmit(&mut buf).is_some() {}
    for (i, chunk) in rest.split(|&b| b == 0xfe).enumerate() {
        let t = now + Duration::from_millis(50 * i as u64);
        let Some((&sel, chunk)) = chunk.split_first() else {
            continue;
        };
        let (&first, body) = chunk.split_first().unwrap_or((&0, &[]));
        let closed = session.state() == crate::State::Closed;
        let mut d = match sel % 4 {
            0 | 1 => {
                let ex = if sel % 4 == 0 {
                    ExchangeType::INFORMATIONAL
                } else {
                    ExchangeType::CREATE_CHILD_SA
                };
                let id = peer.next_id;
                peer.next_id += 1;
                peer.seal(ex, id, false, first, body)
            }
            k => {
                if k == 2 {
                    session.rekey_child(t);
                } else {
                    session.rekey_ike(t);
                }
                session.handle_timeout(t);
                let mut id = None;
                while session.poll_transmit(&mut buf).is_some() {
                    if let Ok(h) = crate::wire::Header::parse(strip(&buf)) {
                        id = Some((h.message_id, h.exchange));
                    }
                }
                let Some((id, ex)) = id else { continue };
                peer.seal(ex, id, true, first, body)
            }
        };
        let _ = session.handle_datagram(t, nat, &mut d);
        session.handle_timeout(t);
        let sent = std::iter::from_fn(|| session.poll_transmit(&mut buf)).count();
        assert!(
            !(closed && sent > 0),
            "a closed session sent {sent} datagrams"
        );
        while session.poll_event().is_some() {}
    }
}

/// Route planning with hostile pushed routes: arbitrary addresses,
/// subnets, selectors and user prefixes. No panic, one route per
/// destination, and whatever the tunnel covers, the gateway itself is
/// reached outside it.
pub fn routes_plan(data: &[u8]) {
    use crate::routes::{plan, Prefix, RouteOptions, Via};
    use crate::wire::TrafficSelector;
    use std::net::IpAddr;
    let mut it = data.chunks_exact(18);
    let mut next = || -> Option<(IpAddr, u8)> {
        let c = it.next()?;
        let a: IpAddr = if c[0] & 1 == 0 {
            IpAddr::from(<[u8; 4]>::try_from(&c[1..5]).ok()?)
        } else {
            IpAddr::from(<[u8; 16]>::try_from(&c[1..17]).ok()?)
        };
        Some((a, c[17]))
    };
    let Some((gateway, _)) = next() else { return };
    let mut cfg = crate::TunnelConfig::default();
    let mut opts = RouteOptions {
        local_lan: data.len().is_multiple_of(2),
        ..Default::default()
    };
    let mut lan = Vec::new();
    let mut k = 0usize;
    while let Some((a, l)) = next() {
        match k % 6 {
            0 => cfg.addresses.push((a, l)),
            1 => cfg.subnets.push((a, l)),
            2 => {
                // Any order, any families: a hostile TSr.
                let end = next().map_or(a, |(b, _)| b);
                cfg.ts_remote.push(TrafficSelector::range(a, end));
            }
            3 => opts.include.extend(Prefix::new(a, l)),
            4 => opts.exclude.extend(Prefix::new(a, l)),
            _ => lan.extend(Prefix::new(a, l)),
        }
        k += 1;
    }
    let routes = plan(&cfg, gateway, &lan, &opts);
    for (i, r) in routes.iter().enumerate() {
        assert!(
            !routes[i + 1..].iter().any(|o| o.dst == r.dst),
            "two routes for {}",
            r.dst
        );
    }
    let best = routes
        .iter()
        .filter(|r| r.dst.contains(gateway))
        .max_by_key(|r| r.dst.len);
    if let Some(b) = best {
        assert_eq!(
            b.via,
            Via::Underlay,
            "the gateway {gateway} would be routed into the tunnel"
        );
    }
}

/// The crash journal's parser on arbitrary text: total, and what it reads
/// it writes back the same way.
pub fn journal(data: &[u8]) {
    use crate::journal::Undo;
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if let Some(u) = Undo::parse(line) {
            assert_eq!(Undo::parse(&u.line()), Some(u.clone()), "{line:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Rng;

    /// The established-session target really gets past SK: the session is
    /// up, and an empty INFORMATIONAL (a DPD) sealed by the peer is answered.
    #[test]
    fn established_target_reaches_the_parsers() {
        let now = crate::test_now();
        let (mut s, peer) = established(now, None).expect("handshake");
        assert_eq!(s.state(), crate::State::Established);
        let mut d = peer.seal(crate::wire::ExchangeType::INFORMATIONAL, 0, false, 0, &[]);
        s.handle_datagram(now, FUZZ_NAT.parse().unwrap(), &mut d);
        assert_eq!(s.stats().dpd_answered, 1);
        // With the fuzzer's IKE_AUTH tail, a tail without SA/TS fails cleanly.
        let (s, _) = established(now, Some(&[0])).expect("handshake");
        assert_eq!(s.state(), crate::State::Closed);
        // Hostile routes: the gateway pushed as a subnet stays outside.
        let gw = [0u8, 198, 51, 100, 1]
            .iter()
            .copied()
            .chain([0u8; 13])
            .collect::<Vec<_>>();
        let mut v = gw.clone();
        v.extend(&gw); // an address
        let mut sub = gw.clone();
        sub[17] = 32;
        v.extend(&sub); // the gateway /32 as a pushed subnet
        routes_plan(&v);
    }

    /// Bounded smoke run of every fuzz entry point: random inputs and random
    /// mutations of valid ones (a few thousand each, well under a second).
    #[test]
    fn fuzz_entry_points_smoke() {
        let mut rng = TestRng::new(42);
        let mut seeds: Vec<Vec<u8>> = Vec::new();
        // A valid IKE_SA_INIT-like message with several payloads.
        let sa = crate::ike::proposals::ike_proposals(true, true, crate::wire::DhId::ECP_256);
        let n = [9u8; 32];
        let m = Message {
            header: crate::wire::Header {
                spi_i: [1; 8],
                spi_r: [0; 8],
                next_payload: PayloadType::NONE,
                version: 0x20,
                exchange: crate::wire::ExchangeType::IKE_SA_INIT,
                flags: crate::wire::Flags(0x08),
                message_id: 0,
                length: 0,
            },
            payloads: vec![
                crate::wire::Payload::from(crate::wire::PayloadBody::Sa(sa)),
                crate::wire::Payload::from(crate::wire::PayloadBody::Nonce(&n)),
            ],
            inner_first: PayloadType::NONE,
        };
        seeds.push(m.emit());
        seeds.push(b"<AnyConnectProfile><ServerList><HostEntry><HostName>a</HostName></HostEntry></ServerList></AnyConnectProfile>".to_vec());
        seeds.push(include_bytes!("crypto/testdata/rsa-pkcs8-enc.pem").to_vec());
        seeds.push(include_bytes!("crypto/testdata/ec256-sec1.pem").to_vec());
        seeds.push(vec![
            1, 1, 0, 22, 26, 1, 1, 0, 21, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ]);
        let mut inputs = Vec::new();
        for i in 0..3000usize {
            let mut len = [0u8; 2];
            rng.fill(&mut len);
            let mut v = if i % 2 == 0 {
                let mut v = vec![0u8; (u16::from_be_bytes(len) % 600) as usize];
                rng.fill(&mut v);
                v
            } else {
                seeds[i % seeds.len()].clone()
            };
            for _ in 0..(i % 8) {
                let mut r = [0u8; 3];
                rng.fill(&mut r);
                if !v.is_empty() {
                    let at = (u16::from_be_bytes([r[0], r[1]]) as usize) % v.len();
                    v[at] = r[2];
                }
            }
            if i % 5 == 0 {
                v.truncate(v.len() / 2);
            }
            inputs.push(v);
        }
        for v in &inputs {
            wire_message(v);
            wire_payloads(v);
            eap(v);
            profile_xml(v);
            anyconnect_xml(v);
        }
        for v in inputs.iter().take(300) {
            session_datagram(v, crate::test_now());
        }
        for v in inputs.iter().take(200) {
            session_established(v, crate::test_now());
        }
        for v in &inputs {
            routes_plan(v);
            journal(v);
        }
        for v in inputs.iter().take(600) {
            pem_keys(v);
        }
        for (i, v) in inputs.iter().enumerate() {
            let mut m = vec![i as u8];
            m.extend_from_slice(v);
            esp_packet(&m);
        }
    }
}
