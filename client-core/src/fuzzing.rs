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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Rng;

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
        for (i, v) in inputs.iter().enumerate() {
            let mut m = vec![i as u8];
            m.extend_from_slice(v);
            esp_packet(&m);
        }
    }
}
