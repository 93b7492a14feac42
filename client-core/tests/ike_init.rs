//! IKE_SA_INIT against the scripted gateway (RFC 7296 §1.2, §1.3, §2.6):
//! COOKIE, INVALID_KE_PAYLOAD and its bound, NO_PROPOSAL_CHOSEN, and an
//! answer in Cisco's fragments.

mod util;

use acclient_core::ike::cisco_frag;
use acclient_core::wire::{
    DhId, Flags, Header, Message, Notify, NotifyType, Payload, PayloadBody, PayloadType,
};
use acclient_core::{DisconnectReason, Event, PeerMisbehaved, Received, State};
use util::*;

fn ke_and_nonce(d: &[u8]) -> (Option<DhId>, Vec<u8>) {
    let m = Message::parse(d).unwrap();
    let ke = m.payloads.iter().find_map(|p| match &p.body {
        PayloadBody::Ke(k) => Some(k.group),
        _ => None,
    });
    let ni = m.payloads.iter().find_map(|p| match &p.body {
        PayloadBody::Nonce(n) => Some(n.to_vec()),
        _ => None,
    });
    (ke, ni.unwrap())
}

fn disconnect_reason(events: Vec<Event>) -> Option<DisconnectReason> {
    events.into_iter().find_map(|e| match e {
        Event::Disconnected(r) => Some(r),
        _ => None,
    })
}

/// RFC 7296 §2.6: the retry carries the COOKIE first and "all other
/// payloads unchanged" (the same Ni and KE: the cookie covers Ni); the
/// same cookie asked for again ends the session instead of looping.
#[test]
fn cookie_retry_repeats_the_request() {
    let mut p = Pair::new(psk_settings());
    // IKE_SA_INIT { SA, KEi, Ni, N(NAT_D)*, N(FRAG_SUP), N(SIG_HASH), V } -->
    let first = p.sent_one();
    let before: Vec<_> = Message::parse(&first).unwrap().payloads;
    let cookie = [0xc0u8; 20];
    //   <-- IKE_SA_INIT { N(COOKIE) }
    let answer = p.gw.sa_init_notify(&first, NotifyType::COOKIE, &cookie);
    assert_eq!(p.deliver_500(answer), Received::Consumed);
    // IKE_SA_INIT { N(COOKIE), SA, KEi, Ni, ... } -->
    let retry = p.sent_one();
    let after = Message::parse(&retry).unwrap().payloads;
    assert_eq!(
        after[0].body,
        PayloadBody::Notify(Notify::new(NotifyType::COOKIE, &cookie))
    );
    assert_eq!(&after[1..], &before[..], "all other payloads unchanged");
    //   <-- IKE_SA_INIT { N(COOKIE) }   (the same cookie: ours was refused)
    let again = p.gw.sa_init_notify(&retry, NotifyType::COOKIE, &cookie);
    p.deliver_500(again);
    assert_eq!(p.client.state(), State::Closed);
    assert_eq!(
        disconnect_reason(p.events()),
        Some(DisconnectReason::PeerMisbehaved(
            PeerMisbehaved::CookieRepeated(2)
        ))
    );
}

/// A cookie answered, then the real answer: the session goes on to IKE_AUTH.
#[test]
fn cookie_then_sa_init() {
    let mut p = Pair::new(psk_settings());
    let first = p.sent_one();
    let answer = p.gw.sa_init_notify(&first, NotifyType::COOKIE, b"cookie-1");
    p.deliver_500(answer);
    let retry = p.sent_one();
    let answer = p.gw.sa_init_response(&retry);
    p.deliver_500(answer);
    assert_eq!(p.client.state(), State::Authenticating);
}

/// A gateway alternating INVALID_KE_PAYLOAD groups once made the client
/// restart 27 940 times in 4 s. Each offered group is tried once (RFC 7296
/// §1.2): asked for one already sent, the session ends.
#[test]
fn invalid_ke_restarts_once_per_group() {
    let mut p = Pair::new(psk_settings());
    // IKE_SA_INIT { SA, KE(ECP-384), Ni, ... } -->
    let first = p.sent_one();
    let (group, ni) = ke_and_nonce(&first);
    assert_eq!(group, Some(DhId::ECP_384));
    //   <-- IKE_SA_INIT { N(INVALID_KE_PAYLOAD, Curve25519) }
    let x25519 = DhId::CURVE25519.0.to_be_bytes();
    let a =
        p.gw.sa_init_notify(&first, NotifyType::INVALID_KE_PAYLOAD, &x25519);
    p.deliver_500(a);
    // IKE_SA_INIT { SA, KE(Curve25519), Ni, ... } -->
    let second = p.sent_one();
    let (group, ni2) = ke_and_nonce(&second);
    assert_eq!(group, Some(DhId::CURVE25519));
    assert_eq!(ni, ni2, "Ni is kept across restarts");
    //   <-- IKE_SA_INIT { N(INVALID_KE_PAYLOAD, ECP-384) }   (already tried)
    let ecp = DhId::ECP_384.0.to_be_bytes();
    let a =
        p.gw.sa_init_notify(&second, NotifyType::INVALID_KE_PAYLOAD, &ecp);
    p.deliver_500(a);
    assert!(p.sent().is_empty(), "no third IKE_SA_INIT");
    assert_eq!(
        disconnect_reason(p.events()),
        Some(DisconnectReason::PeerMisbehaved(
            PeerMisbehaved::InvalidKeRepeated(DhId::ECP_384)
        ))
    );
}

/// INVALID_KE_PAYLOAD for a group we never offered: refused, not followed.
#[test]
fn invalid_ke_for_an_unoffered_group() {
    let mut p = Pair::new(psk_settings());
    let first = p.sent_one();
    let modp768 = DhId(1).0.to_be_bytes();
    let a =
        p.gw.sa_init_notify(&first, NotifyType::INVALID_KE_PAYLOAD, &modp768);
    p.deliver_500(a);
    assert!(matches!(
        disconnect_reason(p.events()),
        Some(DisconnectReason::PeerMisbehaved(
            PeerMisbehaved::InvalidKeNotOffered(Some(DhId(1)))
        ))
    ));
}

/// NO_PROPOSAL_CHOSEN ends the session with its own reason (exit code 5,
/// and the CLI suggests --legacy).
#[test]
fn no_proposal_chosen() {
    let mut p = Pair::new(psk_settings());
    let first = p.sent_one();
    //   <-- IKE_SA_INIT { N(NO_PROPOSAL_CHOSEN) }
    let a =
        p.gw.sa_init_notify(&first, NotifyType::NO_PROPOSAL_CHOSEN, &[]);
    p.deliver_500(a);
    assert_eq!(p.client.state(), State::Closed);
    let r = disconnect_reason(p.events()).unwrap();
    assert_eq!(r, DisconnectReason::NoProposalChosen(String::new()));
    assert_eq!(r.exit_code(), 5);
}

/// Unanswered IKE_SA_INIT: retransmitted with back-off (0.5, 1, 2, 4, 4 …
/// s, ±10 %) on the simulated clock, then "no answer" after 7 tries.
#[test]
fn retransmission_backoff_then_timeout() {
    let mut p = Pair::new(psk_settings());
    let first = p.sent_one();
    let mut gaps = Vec::new();
    let mut last = p.now;
    for _ in 0..7 {
        let due = p.client.poll_timeout().unwrap();
        gaps.push((due - last).as_secs_f64());
        p.advance(due - p.now);
        last = p.now;
        assert_eq!(p.sent_one(), first, "the same bytes again");
    }
    let want = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0];
    for (g, w) in gaps.iter().zip(want) {
        assert!((g / w - 1.0).abs() <= 0.101, "gap {g} s, want {w} s ± 10 %");
    }
    let due = p.client.poll_timeout().unwrap();
    p.advance(due - p.now);
    assert_eq!(
        disconnect_reason(p.events()),
        Some(DisconnectReason::TimedOut(7))
    );
    assert_eq!(p.client.stats().retransmits, 7);
}

/// A gateway answer delivered as Cisco fragments (payload 132, out of
/// order) is reassembled and processed: here INVALID_KE_PAYLOAD asking for
/// Curve25519, so the session retries IKE_SA_INIT with that group.
#[test]
fn cisco_fragmented_answer_is_reassembled_and_processed() {
    let mut p = Pair::new(psk_settings());
    let req = p.sent_one();
    let m = Message::parse(&req).unwrap();
    assert!(m
        .payloads
        .iter()
        .any(|p| p.body == PayloadBody::VendorId(&cisco_frag::VID_FRAGMENTATION)));
    let group = DhId::CURVE25519.0.to_be_bytes();
    // Padded with a large vendor ID so the answer needs several fragments.
    let filler = [0x55u8; 300];
    let resp = Message {
        header: Header {
            spi_r: [9; 8],
            flags: Flags(Flags::RESPONSE),
            ..m.header
        },
        payloads: vec![
            Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::INVALID_KE_PAYLOAD,
                &group,
            ))),
            Payload::from(PayloadBody::VendorId(&filler)),
        ],
        inner_first: PayloadType::NONE,
    }
    .emit();
    let frags = cisco_frag::split(&resp, 1, 200);
    assert!(frags.len() >= 2);
    for f in frags.iter().rev() {
        assert_eq!(p.deliver_500(f.clone()), Received::Consumed);
    }
    let (ke, _) = ke_and_nonce(&p.sent_one());
    assert_eq!(ke, Some(DhId::CURVE25519));
}
