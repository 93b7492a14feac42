//! IKE_AUTH against the scripted gateway (RFC 7296 §1.2, §2.15, §2.16):
//! PSK, EAP-MSCHAPv2 with its MSK, EAP-AnyConnect with two form rounds,
//! CFG_REPLY with Cisco attributes, and the untrusted-certificate prompt.

mod util;

use acclient_core::crypto::Secret;
use acclient_core::eap::anyconnect::{Frame, TLV_XML};
use acclient_core::eap::{mschapv2, EapType};
use acclient_core::settings::{AnyConnectClient, AuthMethod as LocalAuth, Identity, Settings};
use acclient_core::wire::{
    Auth, AuthMethod, Id, PayloadBody, PayloadType, TrafficSelector, TsPayload,
};
use acclient_core::{Answer, DisconnectReason, Event, PromptKind, State};
use util::*;

fn ts() -> TsPayload {
    TsPayload {
        selectors: vec![TrafficSelector::any_v4()],
    }
}

fn prompts(events: &[Event]) -> Vec<(acclient_core::PromptId, PromptKind)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Prompt(p) => Some((p.id, p.kind.clone())),
            _ => None,
        })
        .collect()
}

/// PSK both ways; the CFG_REPLY's address and DNS become the tunnel.
// IKE_SA_INIT { SA, KE, Ni, N(NAT_D)* } -->   <-- { SA, KE, Nr, N(NAT_D)* }
// IKE_AUTH { IDi, AUTH, CP(CFG_REQUEST), SA, TSi, TSr, N(INITIAL_CONTACT) } -->
//   <-- IKE_AUTH { IDr, AUTH, CP(CFG_REPLY), SA, TSi, TSr }
#[test]
fn psk_login() {
    let mut p = Pair::new(psk_settings());
    let auth = p.connect_psk();
    assert_eq!(
        auth.types(),
        [
            PayloadType::IDI,
            PayloadType::AUTH,
            PayloadType::CP,
            PayloadType::SA,
            PayloadType::TSI,
            PayloadType::TSR,
            PayloadType::NOTIFY
        ]
    );
    let pl = auth.payloads();
    let (Some(PayloadBody::IdI(idi)), Some(PayloadBody::Auth(a))) =
        (find(&pl, PayloadType::IDI), find(&pl, PayloadType::AUTH))
    else {
        panic!("IDi and AUTH")
    };
    assert!(
        p.gw.client_auth_ok(a.data, &idi.body(), PSK),
        "our PSK AUTH verifies"
    );
    let ev = p.events();
    let cfg = ev
        .iter()
        .find_map(|e| match e {
            Event::Connected(c) => Some(c.clone()),
            _ => None,
        })
        .expect("Connected");
    assert_eq!(cfg.addresses, vec![("192.0.2.10".parse().unwrap(), 32)]);
    assert_eq!(
        cfg.dns,
        vec!["198.51.100.53".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(p.client.can_send(), "ESP keys installed in the session");
    assert_eq!(p.client.child_spis().map(|c| c.1), Some(0x5151_0001));
}

/// A gateway whose PSK AUTH does not verify is refused (exit code 3).
#[test]
fn wrong_gateway_psk_is_refused() {
    let mut p = Pair::new(psk_settings());
    let init = p.sent_one();
    let a = p.gw.sa_init_response(&init);
    p.deliver_500(a);
    let req = p.recv();
    let idr = gw_id();
    let bad = p.gw.mac_auth(b"not the psk", &idr);
    let resp = p.gw.respond(
        &req,
        &[
            acclient_core::wire::Payload::from(PayloadBody::IdR(idr.clone())),
            acclient_core::wire::Payload::from(PayloadBody::Auth(Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: &bad,
            })),
        ],
    );
    p.deliver(resp);
    assert_eq!(p.client.state(), State::Closed);
    let r = p.events().into_iter().find_map(|e| match e {
        Event::Disconnected(r) => Some(r),
        _ => None,
    });
    assert!(
        matches!(r, Some(DisconnectReason::GatewayAuthFailed(_))),
        "{r:?}"
    );
    // DELETE once to the gateway we have keys with (best effort).
    let d = p.recv();
    assert_eq!(d.types(), [PayloadType::DELETE]);
}

fn eap_settings(gw: &Gateway) -> Settings {
    let mut s = Settings::new(
        addr(GW),
        addr(CLIENT),
        Identity::Email("alice@example.com".into()),
        LocalAuth::Eap(vec![EapType::MsChapV2]),
    );
    s.username = Some("alice".into());
    s.password = Some(Secret::new(b"pw-alice".to_vec()));
    s.trust.pins = vec![pin_of(&gw.cert)];
    s
}

/// EAP-MSCHAPv2: the gateway's certificate AUTH, the method's rounds, then
/// AUTH keyed from the MSK both ways (§2.16).
// IKE_AUTH { IDi, CERTREQ, CP(CFG_REQUEST), SA, TSi, TSr, N(INITIAL_CONTACT) } -->
//   <-- IKE_AUTH { IDr, CERT, AUTH, EAP(Request/MSCHAPv2 Challenge) }
// IKE_AUTH { EAP(Response/MSCHAPv2 Response) } -->
//   <-- IKE_AUTH { EAP(Request/MSCHAPv2 Success) }
// IKE_AUTH { EAP(Response/MSCHAPv2 Success) } -->   <-- IKE_AUTH { EAP(Success) }
// IKE_AUTH { AUTH(MSK) } -->   <-- IKE_AUTH { AUTH(MSK), CP(CFG_REPLY), SA, TSi, TSr }
#[test]
fn eap_mschapv2_login() {
    let mut p = Pair::with(Gateway::new(), eap_settings);
    let init = p.sent_one();
    let a = p.gw.sa_init_response(&init);
    p.deliver_500(a);
    let req = p.recv();
    assert!(!req.types().contains(&PayloadType::AUTH), "no AUTH: EAP");
    assert!(req.types().contains(&PayloadType::CERTREQ));
    let pl = req.payloads();
    let Some(PayloadBody::IdI(idi)) = find(&pl, PayloadType::IDI) else {
        panic!()
    };
    let idi_body = idi.body();
    let child_offer = sa_of(&pl);
    let idr = gw_id();
    let sig = p.gw.sig_auth(&idr);
    let challenge = [0x11u8; 16];
    let mut ms = vec![1u8, 7, 0, 0, 16];
    ms.extend_from_slice(&challenge);
    ms.extend_from_slice(b"gw");
    let l = ms.len() as u16;
    ms[2..4].copy_from_slice(&l.to_be_bytes());
    let eap_req = eap(1, 0x21, 26, &ms);
    let cert = p.gw.cert.clone();
    let resp = p.gw.respond(
        &req,
        &[
            acclient_core::wire::Payload::from(PayloadBody::IdR(idr.clone())),
            cert_payload(&cert),
            acclient_core::wire::Payload::from(PayloadBody::Auth(Auth {
                method: AuthMethod::ECDSA_SHA256_P256,
                data: &sig,
            })),
            acclient_core::wire::Payload::from(PayloadBody::Eap(&eap_req)),
        ],
    );
    p.deliver(resp);
    let ev = p.events();
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Progress(acclient_core::Progress::GatewayAuthenticated { scheme, .. }) if scheme == "ECDSA_WITH_SHA256")),
        "{ev:?}"
    );
    // The method by its name, not a Debug spelling ("MsChapV2").
    assert!(
        ev.iter().any(
            |e| matches!(e, Event::Progress(acclient_core::Progress::Eap(m)) if m == "MSCHAPv2")
        ),
        "{ev:?}"
    );
    let r1 = p.recv();
    let e = eap_of(&r1.payloads());
    assert_eq!((e[0], e[1], e[4]), (2, 0x21, 26), "Response/MSCHAPv2");
    let (success, msk) =
        mschapv2::authenticate(&challenge, &e[10..], b"alice", b"pw-alice").expect("NT-Response");
    let mut ok = vec![3u8, 7, 0, 0];
    ok.extend_from_slice(success.as_bytes());
    ok.extend_from_slice(b" M=welcome");
    let l = ok.len() as u16;
    ok[2..4].copy_from_slice(&l.to_be_bytes());
    let eap_ok = eap(1, 0x22, 26, &ok);
    let resp = p.gw.respond(
        &r1,
        &[acclient_core::wire::Payload::from(PayloadBody::Eap(
            &eap_ok,
        ))],
    );
    p.deliver(resp);
    let r2 = p.recv();
    assert_eq!(
        &eap_of(&r2.payloads())[4..],
        &[26, 3],
        "Response/MSCHAPv2 Success"
    );
    let success_pkt = [3u8, 0x22, 0, 4];
    let resp = p.gw.respond(
        &r2,
        &[acclient_core::wire::Payload::from(PayloadBody::Eap(
            &success_pkt,
        ))],
    );
    p.deliver(resp);
    let r3 = p.recv();
    let pl3 = r3.payloads();
    let Some(PayloadBody::Auth(a)) = find(&pl3, PayloadType::AUTH) else {
        panic!("final AUTH")
    };
    assert!(
        p.gw.client_auth_ok(a.data, &idi_body, msk.expose()),
        "AUTH keyed from the MSK"
    );
    let fin = p.gw.mac_auth(msk.expose(), &idr);
    let ts = ts();
    let attrs = [(1u16, vec![192, 0, 2, 20])];
    let extra = vec![
        acclient_core::wire::Payload::from(PayloadBody::Auth(Auth {
            method: AuthMethod::SHARED_KEY_MIC,
            data: &fin,
        })),
        cfg_reply(&attrs),
    ];
    let payloads = final_payloads(&mut p.gw, &child_offer, extra, &ts);
    let resp = p.gw.respond(&r3, &payloads);
    p.deliver(resp);
    assert_eq!(p.client.state(), State::Established);
}

fn eap(code: u8, id: u8, ty: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![code, id, 0, 0, ty];
    v.extend_from_slice(data);
    let l = v.len() as u16;
    v[2..4].copy_from_slice(&l.to_be_bytes());
    v
}

fn head(kind: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"{kind}\">\n<version who=\"sg\">9.0(2)8</version>\n")
}

fn xml_of(eap: &[u8]) -> String {
    let f = Frame::parse(eap).expect("EAP-AnyConnect frame");
    String::from_utf8(f.xml().expect("XML TLV").to_vec()).unwrap()
}

fn ac_settings(gw: &Gateway) -> Settings {
    let mut s = Settings::new(
        addr(GW),
        addr(CLIENT),
        Identity::Group("*$AnyConnectClient$*".into()),
        LocalAuth::AnyConnect(AnyConnectClient::new(Some("ENG".into()), "laptop".into())),
    );
    s.username = Some("alice".into());
    s.trust.pins = vec![pin_of(&gw.cert)];
    s
}

/// EAP-AnyConnect with two form rounds (password, then a one-time code),
/// the fill rules from the core, and a CFG_REPLY with Cisco attributes.
// IKE_AUTH { V(GRANITE), IDi, CERTREQ, CP(36 attributes), SA, TSi, TSr, N } -->
//   <-- IKE_AUTH { IDr, CERT, AUTH, EAP(hello) }
// IKE_AUTH { EAP(init) } -->   <-- IKE_AUTH { EAP(auth-request: user, password) }
//   (prompt; the user answers)
// IKE_AUTH { EAP(auth-reply) } -->   <-- IKE_AUTH { EAP(auth-request: code) }
// IKE_AUTH { EAP(auth-reply) } -->   <-- IKE_AUTH { EAP(complete) }
// IKE_AUTH { EAP(ack) } -->   <-- IKE_AUTH { EAP(Success) }
// IKE_AUTH { AUTH(SK_pi) } -->   <-- IKE_AUTH { AUTH(SK_pr), CP(CFG_REPLY), SA, TSi, TSr }
#[test]
fn anyconnect_two_rounds() {
    let mut p = Pair::with(Gateway::new(), ac_settings);
    let init = p.sent_one();
    let a = p.gw.sa_init_response(&init);
    p.deliver_500(a);
    let req = p.recv();
    assert_eq!(req.types()[0], PayloadType::VENDOR_ID, "GRANITE first");
    let pl = req.payloads();
    let child_offer = sa_of(&pl);
    let Some(PayloadBody::Cp(cp)) = find(&pl, PayloadType::CP) else {
        panic!()
    };
    assert_eq!(cp.attributes.len(), 36, "AnyConnect's CFG_REQUEST");
    let idr = gw_id();
    let sig = p.gw.sig_auth(&idr);
    let cert = p.gw.cert.clone();
    let hello = head("hello") + "</config-auth>\n";
    let e = Frame::build(1, 1, &[(TLV_XML, hello.as_bytes())]);
    let resp = p.gw.respond(
        &req,
        &[
            acclient_core::wire::Payload::from(PayloadBody::IdR(idr.clone())),
            cert_payload(&cert),
            acclient_core::wire::Payload::from(PayloadBody::Auth(Auth {
                method: AuthMethod::ECDSA_SHA256_P256,
                data: &sig,
            })),
            acclient_core::wire::Payload::from(PayloadBody::Eap(&e)),
        ],
    );
    p.deliver(resp);
    let r = p.recv();
    let ev = p.events();
    assert!(
        ev.iter().any(
            |e| matches!(e, Event::Progress(acclient_core::Progress::Eap(m)) if m == "AnyConnect")
        ),
        "an EAP progress line for AnyConnect hosts too: {ev:?}"
    );
    let init_xml = xml_of(&eap_of(&r.payloads()));
    assert!(init_xml.contains("type=\"init\""), "{init_xml}");
    assert!(init_xml.contains("<group-select>ENG</group-select>"));
    // Round 1: group list, user name, password.
    let form = head("auth-request")
        + "<opaque is-for=\"sg\"><tunnel-group>ENG</tunnel-group></opaque>\n<auth id=\"main\">\n<form>\n<select name=\"group_list\" label=\"GROUP:\"><option>ENG</option><option>SALES</option></select>\n<input type=\"text\" name=\"username\" label=\"Username:\"></input>\n<input type=\"password\" name=\"password\" label=\"Password:\"></input>\n</form>\n</auth>\n</config-auth>\n";
    let e = Frame::build(1, 2, &[(TLV_XML, form.as_bytes())]);
    let resp = p.gw.respond(
        &r,
        &[acclient_core::wire::Payload::from(PayloadBody::Eap(&e))],
    );
    p.deliver(resp);
    assert!(
        p.sent().is_empty(),
        "nothing outstanding while the user answers"
    );
    let ev = p.events();
    let [(id, PromptKind::AuthForm(form))] = &prompts(&ev)[..] else {
        panic!("one form prompt: {ev:?}")
    };
    let names: Vec<&str> = form.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["group_list", "username", "password"]);
    assert_eq!(
        form.fields[0].prefill.as_deref(),
        Some("ENG"),
        "the profile's group"
    );
    assert_eq!(
        form.fields[1].prefill.as_deref(),
        Some("alice"),
        "the known user"
    );
    // A group that is not offered is refused by the core, with the choices.
    let e = form
        .answer(vec![
            ("group_list".into(), Secret::new(b"HR".to_vec())),
            ("password".into(), Secret::new(b"pw".to_vec())),
        ])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "group \"HR\" is not offered (choices: ENG, SALES)"
    );
    let answer = form
        .answer(vec![("password".into(), Secret::new(b"pw-alice".to_vec()))])
        .unwrap();
    p.client
        .answer(p.now, *id, Answer::Form(answer))
        .expect("the pending prompt");
    let r = p.recv();
    let reply = xml_of(&eap_of(&r.payloads()));
    assert!(reply.contains("<username>alice</username>"), "{reply}");
    assert!(reply.contains("<password>pw-alice</password>"));
    assert!(reply.contains("<group-select>ENG</group-select>"));
    // Round 2: a one-time code.
    let otp = head("auth-request")
        + "<auth id=\"challenge\">\n<message>Enter the code from your token.</message>\n<form>\n<input type=\"password\" name=\"answer\" label=\"Code:\"></input>\n</form>\n</auth>\n</config-auth>\n";
    let e = Frame::build(1, 3, &[(TLV_XML, otp.as_bytes())]);
    let resp = p.gw.respond(
        &r,
        &[acclient_core::wire::Payload::from(PayloadBody::Eap(&e))],
    );
    p.deliver(resp);
    let ev = p.events();
    let [(id, PromptKind::AuthForm(form))] = &prompts(&ev)[..] else {
        panic!("the code prompt")
    };
    assert_eq!(form.message, "Enter the code from your token.");
    let answer = form
        .answer(vec![("answer".into(), Secret::new(b"123456".to_vec()))])
        .unwrap();
    p.client.answer(p.now, *id, Answer::Form(answer)).unwrap();
    let r = p.recv();
    assert!(
        xml_of(&eap_of(&r.payloads())).contains("<password>123456</password>"),
        "answer → password"
    );
    let complete = head("complete")
        + "<session-id>32768</session-id>\n<session-token>TOKEN-SECRET</session-token>\n<auth id=\"success\">\n<message id=\"0\" param1=\"\" param2=\"\"></message>\n</auth>\n</config-auth>\n";
    let e = Frame::build(1, 4, &[(TLV_XML, complete.as_bytes())]);
    let resp = p.gw.respond(
        &r,
        &[acclient_core::wire::Payload::from(PayloadBody::Eap(&e))],
    );
    p.deliver(resp);
    let r = p.recv();
    assert!(xml_of(&eap_of(&r.payloads())).contains("type=\"ack\""));
    let success = [3u8, 4, 0, 4];
    let resp = p.gw.respond(
        &r,
        &[acclient_core::wire::Payload::from(PayloadBody::Eap(
            &success,
        ))],
    );
    p.deliver(resp);
    // The final AUTH, keyed from SK_pi: EAP-AnyConnect makes no MSK.
    let r = p.recv();
    let Some(PayloadBody::Auth(a)) = find(&r.payloads(), PayloadType::AUTH).cloned() else {
        panic!("final AUTH")
    };
    let sk_pi = p.gw.sa.as_ref().unwrap().keys.sk_pi.expose().to_vec();
    let Some(PayloadBody::IdI(idi)) = find(&pl, PayloadType::IDI) else {
        panic!()
    };
    assert!(p.gw.client_auth_ok(a.data, &idi.body(), &sk_pi));
    // CFG_REPLY with Cisco attributes (seed 004's values).
    let fin = p.gw.sk_pr_auth(&idr);
    let attrs = [
        (1u16, vec![192, 0, 2, 30]),
        (28672, b"Authorized use only.".to_vec()),
        (28709, 30u32.to_be_bytes().to_vec()),
        (28710, 20u32.to_be_bytes().to_vec()),
        (28711, vec![0x05, 0x7e]),
        (28675, b"corp.example,lab.example".to_vec()),
    ];
    let ts = ts();
    let extra = vec![
        acclient_core::wire::Payload::from(PayloadBody::Auth(Auth {
            method: AuthMethod::SHARED_KEY_MIC,
            data: &fin,
        })),
        cfg_reply(&attrs),
    ];
    let payloads = final_payloads(&mut p.gw, &child_offer, extra, &ts);
    let resp = p.gw.respond(&r, &payloads);
    p.deliver(resp);
    assert_eq!(p.client.state(), State::Established);
    let cfg = p.client.tunnel_config().unwrap();
    assert_eq!(cfg.cisco.banner.as_deref(), Some("Authorized use only."));
    assert_eq!(cfg.cisco.mtu, Some(1406));
    assert_eq!(cfg.cisco.split_dns, ["corp.example", "lab.example"]);
    assert_eq!(
        p.client.dpd_interval(),
        Some(std::time::Duration::from_secs(30)),
        "28709 wins"
    );
    let s = p
        .client
        .anyconnect_session()
        .expect("the complete document");
    assert_eq!(s.session_id, "32768");
    assert!(
        !format!("{s:?}").contains("TOKEN-SECRET"),
        "the token never in Debug"
    );
    assert!(!p.client.anyconnect_resumed());
}

/// An untrusted certificate raises a prompt; "no" ends the session with
/// the reason, "yes" goes on with the same response.
#[test]
fn untrusted_certificate_prompt() {
    for accept in [false, true] {
        // A CA we trust that did not sign the gateway's certificate.
        let other = {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "Some Other CA");
            params.self_signed(&key).unwrap().der().to_vec()
        };
        let mut p = Pair::with(Gateway::new(), |gw| {
            let mut s = eap_settings(gw);
            s.trust.pins.clear();
            s.trust.anchors = vec![other.clone()];
            s.trust.unix_time = 1_900_000_000;
            s
        });
        let init = p.sent_one();
        let a = p.gw.sa_init_response(&init);
        p.deliver_500(a);
        let req = p.recv();
        let idr = gw_id();
        let sig = p.gw.sig_auth(&idr);
        let cert = p.gw.cert.clone();
        let mut ms = vec![1u8, 7, 0, 0, 16];
        ms.extend_from_slice(&[0x11; 16]);
        let l = ms.len() as u16;
        ms[2..4].copy_from_slice(&l.to_be_bytes());
        let eap_req = eap(1, 1, 26, &ms);
        let resp = p.gw.respond(
            &req,
            &[
                acclient_core::wire::Payload::from(PayloadBody::IdR(Id {
                    ty: idr.ty,
                    data: idr.data,
                })),
                cert_payload(&cert),
                acclient_core::wire::Payload::from(PayloadBody::Auth(Auth {
                    method: AuthMethod::ECDSA_SHA256_P256,
                    data: &sig,
                })),
                acclient_core::wire::Payload::from(PayloadBody::Eap(&eap_req)),
            ],
        );
        p.deliver(resp);
        let ev = p.events();
        let [(id, PromptKind::TrustCertificate { summary, reason })] = &prompts(&ev)[..] else {
            panic!("a trust prompt: {ev:?}")
        };
        assert_eq!(summary.pin, pin_of(&cert));
        // Why, in words (it once said `certificate not trusted (RequiredEkuNotFoundContext(…))`).
        assert!(reason.starts_with("unknown issuer"), "{reason}");
        assert_eq!(
            p.client.answer(
                p.now,
                acclient_core::PromptId(id.0 + 1),
                Answer::Accept(true)
            ),
            Err(acclient_core::ApiMisuse::WrongPrompt)
        );
        p.client.answer(p.now, *id, Answer::Accept(accept)).unwrap();
        if accept {
            let r = p.recv();
            assert_eq!(eap_of(&r.payloads())[4], 26, "EAP goes on");
            assert_eq!(p.client.state(), State::Authenticating);
        } else {
            assert_eq!(p.client.state(), State::Closed);
            let r = p.events().into_iter().find_map(|e| match e {
                Event::Disconnected(r) => Some(r),
                _ => None,
            });
            assert!(matches!(
                r,
                Some(DisconnectReason::CertificateRefused { .. })
            ));
            // The IKE SA exists (with whoever it is): DELETE once, so it
            // does not linger half open.
            assert_eq!(p.recv().types(), [PayloadType::DELETE]);
        }
    }
}

/// `--servercert` with the certificate's SHA-256 fingerprint (what the trust
/// prompt shows, colons allowed) trusts it like its pin-sha256 does.
#[test]
fn sha256_fingerprint_pins_the_certificate() {
    let mut p = Pair::with(Gateway::new(), |gw| {
        let mut s = eap_settings(gw);
        let fp = acclient_core::crypto::sig::summarize(&gw.cert)
            .unwrap()
            .sha256;
        let with_colons: Vec<String> = fp
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).to_uppercase())
            .collect();
        s.trust.pins = vec![with_colons.join(":")];
        s
    });
    let init = p.sent_one();
    let a = p.gw.sa_init_response(&init);
    p.deliver_500(a);
    let req = p.recv();
    let idr = gw_id();
    let sig = p.gw.sig_auth(&idr);
    let cert = p.gw.cert.clone();
    let mut ms = vec![1u8, 7, 0, 0, 16];
    ms.extend_from_slice(&[0x11; 16]);
    let l = ms.len() as u16;
    ms[2..4].copy_from_slice(&l.to_be_bytes());
    let eap_req = eap(1, 1, 26, &ms);
    let resp = p.gw.respond(
        &req,
        &[
            acclient_core::wire::Payload::from(PayloadBody::IdR(idr.clone())),
            cert_payload(&cert),
            acclient_core::wire::Payload::from(PayloadBody::Auth(Auth {
                method: AuthMethod::ECDSA_SHA256_P256,
                data: &sig,
            })),
            acclient_core::wire::Payload::from(PayloadBody::Eap(&eap_req)),
        ],
    );
    p.deliver(resp);
    assert!(prompts(&p.events()).is_empty(), "no trust prompt");
    assert_eq!(p.client.state(), State::Authenticating);
    assert!(acclient_core::crypto::sig::is_pin(
        "sha256:ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789"
    ));
    assert!(!acclient_core::crypto::sig::is_pin("abc"));
}
