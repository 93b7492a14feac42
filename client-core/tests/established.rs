//! An established session against the scripted gateway: ESP through the
//! session, CHILD and IKE rekeys from both sides (RFC 7296 §1.3.2, §1.3.3,
//! §2.8), DELETE both ways (§1.4.1), DPD both ways (§1.4) and the
//! response cache (§2.1), all on the simulated clock.

mod util;

use std::time::Duration;

use acclient_core::crypto::dh::KeyPair;
use acclient_core::crypto::keymat::{self, KeyLengths};
use acclient_core::esp::{ChildSaInfo, EspSa, OLD_SA_GRACE};
use acclient_core::ike::proposals;
use acclient_core::wire::{
    Delete, ExchangeType, Ke, Notify, NotifyType, Payload, PayloadBody, PayloadType, ProtocolId,
    SaPayload, TrafficSelector, TsPayload,
};
use acclient_core::{DisconnectReason, DropReason, Event, Received, State};
use util::*;

/// The gateway's ESP SA for the first CHILD SA (it is the responder of
/// IKE_AUTH: KEYMAT's second half is its outbound).
fn gateway_esp(p: &Pair, gw_spi: u32) -> EspSa {
    let sa = p.gw.sa.as_ref().unwrap();
    let (client_in, _) = p.client.child_spis().unwrap();
    let (encr, integ) = p.client.child_suite().unwrap();
    let l = KeyLengths {
        integ: integ.map_or(0, |i| i.key_len()),
        encr: encr.key_len(),
    };
    let k = keymat::child_keys(
        &sa.suite.prf,
        sa.keys.sk_d.expose(),
        None,
        &sa.ni,
        &sa.nr,
        l,
    );
    EspSa::new(&ChildSaInfo {
        spi_in: gw_spi,
        spi_out: client_in,
        encr,
        integ,
        esn: false,
        encr_out: k.encr_r,
        integ_out: k.integ_r,
        encr_in: k.encr_i,
        integ_in: k.integ_i,
        ts_local: vec![],
        ts_remote: vec![],
    })
    .expect("supported suite")
}

fn ip_packet(n: u8) -> Vec<u8> {
    let mut v = vec![
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 10,
    ];
    v.extend_from_slice(&[n; 8]);
    v
}

fn reason(p: &mut Pair) -> Option<DisconnectReason> {
    p.events().into_iter().find_map(|e| match e {
        Event::Disconnected(r) => Some(r),
        _ => None,
    })
}

/// ESP both ways through the session: the gateway's packet comes back as
/// `ToTun`, ours opens at the gateway; a replay and a foreign SPI are
/// dropped and counted, never fatal.
#[test]
fn esp_through_the_session() {
    let mut p = Pair::new(psk_settings());
    p.connect_psk();
    let mut gw = gateway_esp(&p, 0x5151_0001);
    let ip = ip_packet(1);
    let mut buf = vec![0u8; 200];
    let n = gw.encapsulate(&ip, &mut buf).unwrap();
    let mut replay = buf[..n].to_vec();
    let mut d = buf[..n].to_vec();
    match p.client.handle_datagram(p.now, addr(GW_NAT), &mut d) {
        Received::ToTun(inner) => assert_eq!(inner, &ip[..]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.client.handle_datagram(p.now, addr(GW_NAT), &mut replay),
        Received::Dropped(DropReason::Esp(acclient_core::esp::DropReason::Replay))
    ));
    let mut foreign = buf[..n].to_vec();
    foreign[..4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    assert!(matches!(
        p.client.handle_datagram(p.now, addr(GW_NAT), &mut foreign),
        Received::Dropped(DropReason::Esp(acclient_core::esp::DropReason::UnknownSpi))
    ));
    let mut out = vec![0u8; 200];
    let m = p.client.encapsulate(p.now, &ip, &mut out).unwrap();
    assert_eq!(m, p.client.sealed_len(ip.len()).unwrap());
    assert_eq!(gw.decapsulate(&mut out[..m]).unwrap(), &ip[..]);
    let c = p.client.esp_counters();
    assert_eq!((c.rx_packets, c.drop_replay, c.drop_unknown_spi), (1, 1, 1));
    assert_eq!(p.client.state(), State::Established);
}

/// The gateway's DPD is answered; its retransmission gets the cached
/// answer, not a second one (§2.1).
// <-- INFORMATIONAL { }     INFORMATIONAL { } -->
#[test]
fn gateway_dpd_and_response_cache() {
    let mut p = Pair::new(psk_settings());
    p.connect_psk();
    let dpd = p.gw.request(ExchangeType::INFORMATIONAL, &[]);
    p.deliver(dpd.clone());
    let answer = p.sent_one();
    let o = p.gw.open_response(&answer);
    assert_eq!(
        (o.exchange(), o.types().len()),
        (ExchangeType::INFORMATIONAL, 0)
    );
    p.deliver(dpd);
    assert_eq!(p.sent_one(), answer, "the same bytes from the cache");
    assert_eq!(p.client.stats().dpd_answered, 1);
}

/// Our DPD after half the interval of silence; unanswered, four probes
/// spaced within the other half, then the gateway is dead (exit code 4).
// (silent 15 s)  INFORMATIONAL { } -->  ... x4 ...  (dead)
#[test]
fn our_dpd_then_dead_peer() {
    let mut s = psk_settings();
    s.dpd_interval = Some(Duration::from_secs(30));
    let mut p = Pair::new(s);
    p.connect_psk();
    p.events();
    p.advance(Duration::from_millis(14_900));
    assert!(p.sent().is_empty(), "not before half the interval");
    p.advance(Duration::from_millis(200));
    let probe = p.recv();
    assert_eq!(
        (probe.exchange(), probe.types().len()),
        (ExchangeType::INFORMATIONAL, 0)
    );
    assert!(p.client.liveness().1, "probe in flight");
    // Answered: alive, and the next probe waits for more silence.
    let a = p.gw.respond(&probe, &[]);
    p.deliver(a);
    assert_eq!(p.client.stats().dpd_answered, 1);
    assert!(!p.client.liveness().1);
    p.advance(Duration::from_secs(15));
    let probe = p.recv();
    let first = probe.header.message_id;
    // Unanswered: 3 s apart (interval / 10), 4 retransmissions, then dead.
    let mut resent = 0;
    let mut delete = false;
    for _ in 0..10 {
        p.advance(Duration::from_secs(3));
        for d in p.sent() {
            let o = p.gw.open(&d);
            if o.types() == [PayloadType::DELETE] {
                delete = true; // best effort on the way out
                continue;
            }
            assert_eq!(o.header.message_id, first, "the same probe");
            resent += 1;
        }
        if p.client.state() == State::Closed {
            break;
        }
    }
    assert_eq!(resent, 4);
    assert!(delete, "DELETE once when giving up");
    let r = reason(&mut p).unwrap();
    assert!(matches!(r, DisconnectReason::DeadPeer(s) if s >= 15), "{r}");
    assert_eq!(r.exit_code(), 4);
}

/// Our close: DELETE of the IKE SA, then the session ends when the gateway
/// answers (§1.4.1).
// INFORMATIONAL { D(IKE) } -->   <-- INFORMATIONAL { }
#[test]
fn we_delete() {
    let mut p = Pair::new(psk_settings());
    p.connect_psk();
    p.client.close(p.now);
    assert_eq!(p.client.state(), State::Closing);
    let d = p.recv();
    let pl = d.payloads();
    assert!(
        matches!(find(&pl, PayloadType::DELETE), Some(PayloadBody::Delete(x)) if x.protocol == ProtocolId::IKE)
    );
    let a = p.gw.respond(&d, &[]);
    p.deliver(a);
    assert_eq!(reason(&mut p), Some(DisconnectReason::LocallyClosed));
}

/// The gateway's DELETE of the IKE SA is answered and ends the session
/// (exit code 6).
// <-- INFORMATIONAL { D(IKE) }     INFORMATIONAL { } -->
#[test]
fn gateway_deletes() {
    let mut p = Pair::new(psk_settings());
    p.connect_psk();
    let del = Payload::from(PayloadBody::Delete(Delete {
        protocol: ProtocolId::IKE,
        spi_size: 0,
        spis: &[],
    }));
    let r = p.gw.request(ExchangeType::INFORMATIONAL, &[del]);
    p.deliver(r);
    let a = p.recv_response();
    assert!(a.types().is_empty());
    let r = reason(&mut p).unwrap();
    assert_eq!(r, DisconnectReason::PeerDeleted);
    assert_eq!(r.exit_code(), 6);
}

/// A malformed request from the gateway (two SA payloads) is answered
/// with INVALID_SYNTAX and changes nothing (the rule table, §3.10.1).
#[test]
fn request_breaking_the_rules_gets_invalid_syntax() {
    let mut p = Pair::new(psk_settings());
    p.connect_psk();
    let sa = proposals::esp_proposals(0x6161_0001, false, None);
    let n = [0x33u8; 32];
    let r = p.gw.request(
        ExchangeType::CREATE_CHILD_SA,
        &[
            Payload::from(PayloadBody::Sa(sa.clone())),
            Payload::from(PayloadBody::Sa(sa)),
            Payload::from(PayloadBody::Nonce(&n)),
        ],
    );
    p.deliver(r);
    let a = p.recv_response();
    let pl = a.payloads();
    assert!(
        matches!(find(&pl, PayloadType::NOTIFY), Some(PayloadBody::Notify(n)) if n.ty == NotifyType::INVALID_SYNTAX)
    );
    assert_eq!(p.client.state(), State::Established);
}

/// Our CHILD SA rekey, make-before-break: the new SA first, then DELETE of
/// the old one; the old inbound SA still opens for the grace period.
// CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, TSi, TSr } -->   <-- { SA, Nr, TSi, TSr }
// INFORMATIONAL { D(ESP, old inbound SPI) } -->   <-- { D(ESP, theirs) }
#[test]
fn our_child_rekey() {
    let mut p = Pair::new(psk_settings());
    p.connect_psk();
    let mut old_gw = gateway_esp(&p, 0x5151_0001);
    let (old_in, _) = p.client.child_spis().unwrap();
    p.client.rekey_child(p.now);
    p.advance(Duration::ZERO);
    let req = p.recv();
    assert_eq!(req.exchange(), ExchangeType::CREATE_CHILD_SA);
    assert_eq!(
        req.types(),
        [
            PayloadType::NOTIFY,
            PayloadType::SA,
            PayloadType::NONCE,
            PayloadType::TSI,
            PayloadType::TSR
        ]
    );
    let pl = req.payloads();
    let Some(PayloadBody::Notify(n)) = find(&pl, PayloadType::NOTIFY) else {
        panic!()
    };
    assert_eq!(
        (n.ty, n.spi),
        (NotifyType::REKEY_SA, &old_in.to_be_bytes()[..])
    );
    let chosen = p.gw.child_answer(&sa_of(&pl), 0x5151_0002);
    let nr = [0x42u8; 32];
    let ts = TsPayload {
        selectors: vec![TrafficSelector::any_v4()],
    };
    let a = p.gw.respond(
        &req,
        &[
            Payload::from(PayloadBody::Sa(chosen)),
            Payload::from(PayloadBody::Nonce(&nr)),
            Payload::from(PayloadBody::TsI(ts.clone())),
            Payload::from(PayloadBody::TsR(ts)),
        ],
    );
    p.deliver(a);
    let (new_in, new_out) = p.client.child_spis().unwrap();
    assert_ne!(new_in, old_in);
    assert_eq!(new_out, 0x5151_0002);
    assert_eq!(p.client.stats().child_rekeys, 1);
    // INFORMATIONAL { D(ESP, old) } -->
    let del = p.recv();
    let pl = del.payloads();
    let Some(PayloadBody::Delete(d)) = find(&pl, PayloadType::DELETE) else {
        panic!("DELETE of the old CHILD SA")
    };
    assert_eq!(d.spis, &old_in.to_be_bytes()[..]);
    // Packets the gateway sealed before it switched still open.
    let mut buf = vec![0u8; 200];
    let n = old_gw.encapsulate(&ip_packet(2), &mut buf).unwrap();
    let mut late = buf[..n].to_vec();
    assert!(matches!(
        p.client.handle_datagram(p.now, addr(GW_NAT), &mut buf[..n]),
        Received::ToTun(_)
    ));
    let n2 = old_gw.encapsulate(&ip_packet(3), &mut late).unwrap();
    p.advance(OLD_SA_GRACE + Duration::from_secs(1));
    assert!(matches!(
        p.client
            .handle_datagram(p.now, addr(GW_NAT), &mut late[..n2]),
        Received::Dropped(DropReason::Esp(acclient_core::esp::DropReason::UnknownSpi))
    ));
}

/// The gateway's CHILD SA rekey is answered; its DELETE of the old SA is
/// answered with our old inbound SPI.
// <-- CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, TSi, TSr }     { SA, Nr, TSi, TSr } -->
// <-- INFORMATIONAL { D(ESP, old) }     { D(ESP, our old inbound SPI) } -->
#[test]
fn gateway_child_rekey() {
    let mut p = Pair::new(psk_settings());
    p.connect_psk();
    let (old_in, old_out) = p.client.child_spis().unwrap();
    let offer = proposals::esp_proposals(0x6161_0001, false, None);
    let ni = [0x24u8; 32];
    let old = old_out.to_be_bytes();
    let ts = TsPayload {
        selectors: vec![TrafficSelector::any_v4()],
    };
    let r = p.gw.request(
        ExchangeType::CREATE_CHILD_SA,
        &[
            Payload::from(PayloadBody::Notify(Notify {
                protocol: ProtocolId::ESP,
                spi: &old,
                ty: NotifyType::REKEY_SA,
                data: &[],
            })),
            Payload::from(PayloadBody::Sa(offer)),
            Payload::from(PayloadBody::Nonce(&ni)),
            Payload::from(PayloadBody::TsI(ts.clone())),
            Payload::from(PayloadBody::TsR(ts)),
        ],
    );
    p.deliver(r);
    let a = p.recv_response();
    assert_eq!(
        a.types(),
        [
            PayloadType::SA,
            PayloadType::NONCE,
            PayloadType::TSI,
            PayloadType::TSR
        ]
    );
    let (new_in, new_out) = p.client.child_spis().unwrap();
    assert_eq!(new_out, 0x6161_0001);
    assert_ne!(new_in, old_in);
    assert_eq!(p.client.stats().child_rekeys, 1);
    let spis = old_out.to_be_bytes();
    let del = Payload::from(PayloadBody::Delete(Delete {
        protocol: ProtocolId::ESP,
        spi_size: 4,
        spis: &spis,
    }));
    let r = p.gw.request(ExchangeType::INFORMATIONAL, &[del]);
    p.deliver(r);
    let a = p.recv_response();
    let pl = a.payloads();
    let Some(PayloadBody::Delete(d)) = find(&pl, PayloadType::DELETE) else {
        panic!()
    };
    assert_eq!(d.spis, &old_in.to_be_bytes()[..], "our inbound half");
    assert_eq!(p.client.state(), State::Established);
}

/// Our IKE SA rekey (§2.18): the new SA from the old SK_d, the old one
/// deleted on itself; the gateway's next request on the new SA is answered.
// CREATE_CHILD_SA { SA(IKE, new SPIi), Ni, KEi } -->   <-- { SA(new SPIr), Nr, KEr }
// (old SA) INFORMATIONAL { D(IKE) } -->
#[test]
fn our_ike_rekey() {
    let mut p = Pair::new(psk_settings());
    p.connect_psk();
    let (old_i, old_r) = p.client.ike_spis();
    p.client.rekey_ike(p.now);
    p.advance(Duration::ZERO);
    let req = p.recv();
    assert_eq!(
        req.types(),
        [PayloadType::SA, PayloadType::NONCE, PayloadType::KE]
    );
    let pl = req.payloads();
    let sa = sa_of(&pl);
    let Some(PayloadBody::Ke(ke)) = find(&pl, PayloadType::KE) else {
        panic!()
    };
    let Some(PayloadBody::Nonce(ni)) = find(&pl, PayloadType::NONCE) else {
        panic!()
    };
    let mut chosen = proposals::choose_from_peer(&sa, ProtocolId::IKE, Some(ke.group)).unwrap();
    let new_spi_i: [u8; 8] = sa.proposals[0].spi[..].try_into().unwrap();
    let new_spi_r = [0x77u8; 8];
    chosen.spi = new_spi_r.to_vec();
    let suite = proposals::select_ike(
        &sa,
        &SaPayload {
            proposals: vec![chosen.clone()],
        },
    )
    .unwrap();
    let dh = KeyPair::generate(ke.group, &mut p.gw.rng).unwrap();
    let gir = dh.shared(ke.data).unwrap();
    let nr = [0x52u8; 32];
    let a = p.gw.respond(
        &req,
        &[
            Payload::from(PayloadBody::Sa(SaPayload {
                proposals: vec![chosen],
            })),
            Payload::from(PayloadBody::Nonce(&nr)),
            Payload::from(PayloadBody::Ke(Ke {
                group: ke.group,
                data: dh.public(),
            })),
        ],
    );
    let ni = ni.to_vec();
    p.deliver(a);
    assert_eq!(p.client.ike_spis(), (new_spi_i, new_spi_r));
    assert_eq!(p.client.stats().ike_rekeys, 1);
    p.gw.rekeyed(suite, &gir, &ni, &nr, new_spi_i, new_spi_r, true);
    let del = p.recv();
    assert_eq!(
        (del.header.spi_i, del.header.spi_r),
        (old_i, old_r),
        "on the old SA"
    );
    assert_eq!(del.types(), [PayloadType::DELETE]);
    let dpd = p.gw.request(ExchangeType::INFORMATIONAL, &[]);
    p.deliver(dpd);
    let a = p.recv_response();
    assert_eq!(a.header.spi_i, new_spi_i, "answered on the new SA");
}

/// The gateway's IKE SA rekey: it becomes the new SA's original initiator;
/// its DELETE of the old SA is answered on the old SA and the session lives on.
// <-- CREATE_CHILD_SA { SA(IKE, new SPIi), Ni, KEi }     { SA(new SPIr), Nr, KEr } -->
// <-- (old SA) INFORMATIONAL { D(IKE) }     (old SA) INFORMATIONAL { } -->
#[test]
fn gateway_ike_rekey() {
    let mut p = Pair::new(psk_settings());
    p.connect_psk();
    let group = p.gw.sa.as_ref().unwrap().suite.dh;
    let gw_spi = [0x99u8; 8];
    let mut offer = proposals::ike_proposals(false, false, group);
    for pr in &mut offer.proposals {
        pr.spi = gw_spi.to_vec();
    }
    let dh = KeyPair::generate(group, &mut p.gw.rng).unwrap();
    let ni = [0x61u8; 32];
    let r = p.gw.request(
        ExchangeType::CREATE_CHILD_SA,
        &[
            Payload::from(PayloadBody::Sa(offer.clone())),
            Payload::from(PayloadBody::Nonce(&ni)),
            Payload::from(PayloadBody::Ke(Ke {
                group,
                data: dh.public(),
            })),
        ],
    );
    p.deliver(r);
    let a = p.recv_response();
    let pl = a.payloads();
    let chosen = sa_of(&pl);
    let Some(PayloadBody::Ke(ke)) = find(&pl, PayloadType::KE) else {
        panic!()
    };
    let Some(PayloadBody::Nonce(nr)) = find(&pl, PayloadType::NONCE) else {
        panic!()
    };
    let client_spi: [u8; 8] = chosen.proposals[0].spi[..].try_into().unwrap();
    let mut ours = chosen.clone();
    ours.proposals[0].spi = gw_spi.to_vec();
    let suite = proposals::select_ike(&offer, &ours).unwrap();
    let gir = dh.shared(ke.data).unwrap();
    let nr = nr.to_vec();
    p.gw.rekeyed(suite, &gir, &ni, &nr, gw_spi, client_spi, false);
    assert_eq!(p.client.ike_spis(), (gw_spi, client_spi));
    assert_eq!(p.client.stats().ike_rekeys, 1);
    // The old SA goes: the gateway deletes it on itself.
    std::mem::swap(&mut p.gw.sa, &mut p.gw.old);
    let del = Payload::from(PayloadBody::Delete(Delete {
        protocol: ProtocolId::IKE,
        spi_size: 0,
        spis: &[],
    }));
    let r = p.gw.request(ExchangeType::INFORMATIONAL, &[del]);
    std::mem::swap(&mut p.gw.sa, &mut p.gw.old);
    p.deliver(r);
    let a = p.recv_response();
    assert!(a.types().is_empty());
    assert_eq!(p.client.state(), State::Established, "only the old SA went");
    let dpd = p.gw.request(ExchangeType::INFORMATIONAL, &[]);
    p.deliver(dpd);
    let a = p.recv_response();
    assert_eq!(a.header.spi_i, gw_spi);
}

/// Our rekeys wait for the window (§2.3): with a DPD probe outstanding,
/// a due CHILD rekey starts only once the probe is answered.
#[test]
fn rekeys_wait_for_the_window() {
    let mut s = psk_settings();
    s.dpd_interval = Some(Duration::from_secs(10));
    let mut p = Pair::new(s);
    p.connect_psk();
    p.advance(Duration::from_secs(5));
    let probe = p.recv();
    p.client.rekey_child(p.now);
    p.advance(Duration::ZERO);
    assert!(p.sent().is_empty(), "one request at a time");
    let a = p.gw.respond(&probe, &[]);
    p.deliver(a);
    let req = p.recv();
    assert_eq!(req.exchange(), ExchangeType::CREATE_CHILD_SA);
    assert_eq!(req.header.message_id, probe.header.message_id + 1);
}

/// A rekey answer goes through the rule table like every other message
/// (it once skipped it): two SA payloads end the session as a protocol
/// error, not as a rekey.
// CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, TSi, TSr } -->   <-- { SA, SA, Nr, TSi, TSr }
#[test]
fn rekey_response_breaking_the_rules_is_refused() {
    let mut p = Pair::new(psk_settings());
    p.connect_psk();
    p.client.rekey_child(p.now);
    p.advance(Duration::ZERO);
    let req = p.recv();
    let chosen = p.gw.child_answer(&sa_of(&req.payloads()), 0x5151_0002);
    let nr = [0x42u8; 32];
    let ts = TsPayload {
        selectors: vec![TrafficSelector::any_v4()],
    };
    let a = p.gw.respond(
        &req,
        &[
            Payload::from(PayloadBody::Sa(chosen.clone())),
            Payload::from(PayloadBody::Sa(chosen)),
            Payload::from(PayloadBody::Nonce(&nr)),
            Payload::from(PayloadBody::TsI(ts.clone())),
            Payload::from(PayloadBody::TsR(ts)),
        ],
    );
    p.deliver(a);
    assert_eq!(p.client.stats().child_rekeys, 0);
    let r = reason(&mut p).unwrap();
    assert!(
        matches!(
            r,
            DisconnectReason::PeerMisbehaved(acclient_core::PeerMisbehaved::PayloadRules { .. })
        ),
        "{r}"
    );
}
