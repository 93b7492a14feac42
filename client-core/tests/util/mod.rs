//! The in-process session harness (quinn-proto's `tests/util.rs` `Pair` is
//! the model): a real [`Session`], a scripted responder built on the crate's
//! own codec and key schedule, a deterministic RNG and a simulated clock.
//! Nothing here needs root, sockets or time to pass: a test reads what the
//! client sent, asserts on it, and hands back what a gateway would answer.
#![allow(dead_code)] // each test file uses its own part of the harness

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use acclient_core::crypto::auth::{nat_hash, shared_key_auth, signed_octets};
use acclient_core::crypto::cipher::Protection;
use acclient_core::crypto::dh::KeyPair;
use acclient_core::crypto::keymat::{self, IkeKeys, KeyLengths};
use acclient_core::crypto::{Secret, TestRng};
use acclient_core::ike::proposals::{self, IkeSuite};
use acclient_core::settings::{AuthMethod as LocalAuth, Identity, Settings};
use acclient_core::wire::{
    emit_chain, parse_chain, Auth, AuthMethod, Cert, CertEncoding, CfgAttr, CfgAttribute, CfgType,
    ConfigPayload, ExchangeType, Flags, Header, Id, IdType, Ke, Message, Notify, NotifyType,
    Payload, PayloadBody, PayloadType, ProtocolId, SaPayload, TrafficSelector, TsPayload, Writer,
    HEADER_LEN,
};
use acclient_core::{Event, Received, Session, State};

/// The gateway's addresses (documentation range) and ours.
pub const GW: &str = "198.51.100.1:500";
pub const GW_NAT: &str = "198.51.100.1:4500";
pub const CLIENT: &str = "198.51.100.2:500";
pub const PSK: &[u8] = b"harness-psk-0123456789";
/// The gateway's identity (its certificate names it too).
pub const GW_ID: &str = "vpn.example.com";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

/// PSK settings for alice against the scripted gateway.
pub fn psk_settings() -> Settings {
    Settings::new(
        addr(GW),
        addr(CLIENT),
        Identity::Email("alice@example.com".into()),
        LocalAuth::Psk(Secret::new(PSK.to_vec())),
    )
}

/// A message the client sent, opened by the gateway.
pub struct Opened {
    pub header: Header,
    pub first: PayloadType,
    pub plaintext: Vec<u8>,
}

impl Opened {
    pub fn payloads(&self) -> Vec<Payload<'_>> {
        parse_chain(self.first, &self.plaintext)
            .expect("the client's message parses")
            .0
    }

    pub fn exchange(&self) -> ExchangeType {
        self.header.exchange
    }

    /// The payload types in order, e.g. `["IDi", "AUTH", ...]` as
    /// `PayloadType`s: what flow comments list.
    pub fn types(&self) -> Vec<PayloadType> {
        self.payloads().iter().map(|p| p.body.ty()).collect()
    }
}

/// One IKE SA as the gateway holds it.
pub struct GwSa {
    pub spi_i: [u8; 8],
    pub spi_r: [u8; 8],
    pub suite: IkeSuite,
    pub keys: IkeKeys,
    /// Whether the client is this SA's original initiator.
    pub client_initiated: bool,
    out: Protection,
    inp: Protection,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub msg1: Vec<u8>,
    pub msg2: Vec<u8>,
    /// The gateway's own next request ID.
    pub next_id: u32,
}

impl GwSa {
    fn new(
        suite: IkeSuite,
        keys: IkeKeys,
        spi_i: [u8; 8],
        spi_r: [u8; 8],
        client_initiated: bool,
    ) -> GwSa {
        let mk = |ek: &Secret, ak: &Secret| Protection {
            encr: suite.encr,
            integ: suite.integ,
            ek: ek.clone(),
            ak: ak.clone(),
        };
        // The gateway sends with the responder keys of an SA the client
        // initiated, with the initiator keys of one it initiated.
        let (out, inp) = if client_initiated {
            (mk(&keys.sk_er, &keys.sk_ar), mk(&keys.sk_ei, &keys.sk_ai))
        } else {
            (mk(&keys.sk_ei, &keys.sk_ai), mk(&keys.sk_er, &keys.sk_ar))
        };
        GwSa {
            spi_i,
            spi_r,
            suite,
            keys,
            client_initiated,
            out,
            inp,
            ni: vec![],
            nr: vec![],
            msg1: vec![],
            msg2: vec![],
            next_id: 0,
        }
    }
}

/// The scripted responder.
pub struct Gateway {
    pub rng: TestRng,
    pub sa: Option<GwSa>,
    /// The SA a rekey replaced.
    pub old: Option<GwSa>,
    /// DER certificate and signing key (ECDSA P-256), for EAP logins.
    pub cert: Vec<u8>,
    key: aws_lc_rs::signature::EcdsaKeyPair,
}

/// The gateway's certificate's pin, for `Settings::trust.pins`.
pub fn pin_of(der: &[u8]) -> String {
    acclient_core::crypto::sig::summarize(der)
        .expect("our certificate parses")
        .pin
}

impl Gateway {
    pub fn new() -> Gateway {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = rcgen::CertificateParams::new(vec![GW_ID.to_string()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, GW_ID);
        let cert = params
            .self_signed(&key)
            .expect("self-signed")
            .der()
            .to_vec();
        let signer = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
        )
        .expect("PKCS#8");
        Gateway {
            rng: TestRng::new(42),
            sa: None,
            old: None,
            cert,
            key: signer,
        }
    }

    fn sa(&self) -> &GwSa {
        self.sa.as_ref().expect("an IKE SA")
    }

    /// The answer to IKE_SA_INIT: the client's first proposal with its KE
    /// group, our KE and nonce, NAT-D hashes for a path without NAT.
    pub fn sa_init_response(&mut self, request: &[u8]) -> Vec<u8> {
        let m = Message::parse(request).expect("IKE_SA_INIT parses");
        let (mut sa, mut ke, mut ni) = (None, None, None);
        for p in &m.payloads {
            match &p.body {
                PayloadBody::Sa(s) => sa = Some(s.clone()),
                PayloadBody::Ke(k) => ke = Some(k.clone()),
                PayloadBody::Nonce(n) => ni = Some(n.to_vec()),
                _ => {}
            }
        }
        let (sa, ke, ni) = (sa.expect("SA"), ke.expect("KE"), ni.expect("Ni"));
        let chosen = proposals::choose_from_peer(&sa, ProtocolId::IKE, Some(ke.group))
            .expect("a proposal with the KE's group");
        let suite = proposals::select_ike(
            &sa,
            &SaPayload {
                proposals: vec![chosen.clone()],
            },
        )
        .expect("suite");
        let dh = KeyPair::generate(suite.dh, &mut self.rng).expect("DH");
        let gir = dh.shared(ke.data).expect("shared secret");
        let mut spi_r = [0u8; 8];
        acclient_core::crypto::Rng::fill(&mut self.rng, &mut spi_r);
        let nr = vec![0x4e; 32];
        let spi_i = m.header.spi_i;
        let src = nat_hash(&spi_i, &spi_r, addr(GW));
        let dst = nat_hash(&spi_i, &spi_r, addr(CLIENT));
        let resp = Message {
            header: Header {
                spi_r,
                flags: Flags(Flags::RESPONSE),
                ..m.header
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
                Payload::from(PayloadBody::Notify(Notify::new(
                    NotifyType::NAT_DETECTION_SOURCE_IP,
                    &src,
                ))),
                Payload::from(PayloadBody::Notify(Notify::new(
                    NotifyType::NAT_DETECTION_DESTINATION_IP,
                    &dst,
                ))),
            ],
            inner_first: PayloadType::NONE,
        };
        let bytes = resp.emit();
        let seed = keymat::skeyseed(&suite.prf, &ni, &nr, gir.expose());
        let keys = keymat::ike_keys(
            &suite.prf,
            seed.expose(),
            &ni,
            &nr,
            &spi_i,
            &spi_r,
            lengths(&suite),
        );
        let mut gs = GwSa::new(suite, keys, spi_i, spi_r, true);
        gs.ni = ni;
        gs.nr = nr;
        gs.msg1 = request.to_vec();
        gs.msg2 = bytes.clone();
        self.sa = Some(gs);
        bytes
    }

    /// An unencrypted IKE_SA_INIT answer carrying only `ty` (COOKIE,
    /// INVALID_KE_PAYLOAD, NO_PROPOSAL_CHOSEN).
    pub fn sa_init_notify(&self, request: &[u8], ty: NotifyType, data: &[u8]) -> Vec<u8> {
        let m = Message::parse(request).expect("IKE_SA_INIT parses");
        Message {
            header: Header {
                spi_r: [0; 8],
                flags: Flags(Flags::RESPONSE),
                ..m.header
            },
            payloads: vec![Payload::from(PayloadBody::Notify(Notify::new(ty, data)))],
            inner_first: PayloadType::NONE,
        }
        .emit()
    }

    /// Opens a datagram the client sent on port 4500 (marker included).
    pub fn open(&self, datagram: &[u8]) -> Opened {
        let data = datagram
            .strip_prefix(&[0, 0, 0, 0])
            .expect("the non-ESP marker");
        let h = Header::parse(data).expect("IKE header");
        let sa = [&self.sa, &self.old]
            .into_iter()
            .flatten()
            .find(|s| s.spi_i == h.spi_i && s.spi_r == h.spi_r)
            .expect("an SA of ours");
        let (_, first) = parse_chain(h.next_payload, &data[HEADER_LEN..]).expect("SK chain");
        let plaintext = sa.inp.open(data, HEADER_LEN + 4).expect("integrity");
        Opened {
            header: h,
            first,
            plaintext,
        }
    }

    fn seal(
        &self,
        old: bool,
        exchange: ExchangeType,
        id: u32,
        response: bool,
        payloads: &[Payload<'_>],
    ) -> Vec<u8> {
        let sa = if old { &self.old } else { &self.sa };
        let sa = sa.as_ref().expect("an IKE SA");
        let mut inner = Writer::new();
        let first = emit_chain(payloads, PayloadType::NONE, &mut inner);
        let mut flags = if sa.client_initiated {
            0
        } else {
            Flags::INITIATOR
        };
        if response {
            flags |= Flags::RESPONSE;
        }
        let mut w = Writer::new();
        Header {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            next_payload: PayloadType::SK,
            version: 0x20,
            exchange,
            flags: Flags(flags),
            message_id: id,
            length: 0,
        }
        .emit(&mut w);
        w.bytes(&[first.0, 0, 0, 0]);
        let mut msg = w.buf;
        let mut rng = TestRng::new(id as u8);
        sa.out.seal(&mut rng, &mut msg, HEADER_LEN + 2, &inner.buf);
        let mut d = vec![0, 0, 0, 0];
        d.extend_from_slice(&msg);
        d
    }

    /// The answer to `req`, sealed (with the marker).
    pub fn respond(&self, req: &Opened, payloads: &[Payload<'_>]) -> Vec<u8> {
        let old = self
            .old
            .as_ref()
            .is_some_and(|o| o.spi_i == req.header.spi_i && o.spi_r == req.header.spi_r);
        self.seal(
            old,
            req.header.exchange,
            req.header.message_id,
            true,
            payloads,
        )
    }

    /// A request of the gateway's own (DPD, DELETE, rekeys), on the current SA.
    pub fn request(&mut self, exchange: ExchangeType, payloads: &[Payload<'_>]) -> Vec<u8> {
        let id = self.sa().next_id;
        let d = self.seal(false, exchange, id, false, payloads);
        if let Some(sa) = self.sa.as_mut() {
            sa.next_id += 1;
        }
        d
    }

    /// Opens the client's answer to one of our requests.
    pub fn open_response(&self, datagram: &[u8]) -> Opened {
        let o = self.open(datagram);
        assert!(o.header.flags.response(), "a response");
        o
    }

    /// AUTH data proving the PSK (RFC 7296 §2.15), for IDr `idr`.
    pub fn psk_auth(&self, idr: &Id<'_>) -> Vec<u8> {
        self.mac_auth(PSK, idr)
    }

    /// AUTH keyed with `key` (a PSK, or the MSK / SK_pr after EAP).
    pub fn mac_auth(&self, key: &[u8], idr: &Id<'_>) -> Vec<u8> {
        let sa = self.sa();
        let octets = signed_octets(
            &sa.msg2,
            &sa.ni,
            &sa.suite.prf,
            sa.keys.sk_pr.expose(),
            &idr.body(),
        );
        shared_key_auth(&sa.suite.prf, key, &octets)
    }

    /// The final AUTH after an EAP method without MSK (keyed from SK_pr).
    pub fn sk_pr_auth(&self, idr: &Id<'_>) -> Vec<u8> {
        let k = self.sa().keys.sk_pr.expose().to_vec();
        self.mac_auth(&k, idr)
    }

    /// ECDSA P-256 AUTH (method 9) with the gateway's certificate key.
    pub fn sig_auth(&self, idr: &Id<'_>) -> Vec<u8> {
        let sa = self.sa();
        let octets = signed_octets(
            &sa.msg2,
            &sa.ni,
            &sa.suite.prf,
            sa.keys.sk_pr.expose(),
            &idr.body(),
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.key
            .sign(&rng, &octets)
            .expect("ECDSA")
            .as_ref()
            .to_vec()
    }

    /// Whether the client's AUTH (keyed with `key`) verifies for its IDi.
    pub fn client_auth_ok(&self, auth: &[u8], idi_body: &[u8], key: &[u8]) -> bool {
        let sa = self.sa();
        let octets = signed_octets(
            &sa.msg1,
            &sa.nr,
            &sa.suite.prf,
            sa.keys.sk_pi.expose(),
            idi_body,
        );
        shared_key_auth(&sa.suite.prf, key, &octets) == auth
    }

    /// Our answer to the client's CHILD SA offer: its first proposal with
    /// our SPI, and selectors narrowed to `tsr` (ours).
    pub fn child_answer(&mut self, offer: &SaPayload, spi: u32) -> SaPayload {
        let mut p =
            proposals::choose_from_peer(offer, ProtocolId::ESP, None).expect("ESP proposal");
        p.spi = spi.to_be_bytes().to_vec();
        SaPayload { proposals: vec![p] }
    }

    /// Rekeys the IKE SA as the client's rekey response does (§2.18): the
    /// new SA from the old SK_d, with `ni` theirs and our fresh `nr`.
    #[allow(clippy::too_many_arguments)] // the inputs of §2.18, named
    pub fn rekeyed(
        &mut self,
        suite: IkeSuite,
        gir: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: [u8; 8],
        spi_r: [u8; 8],
        client_initiated: bool,
    ) {
        let old = self.sa.take().expect("an IKE SA");
        let seed =
            keymat::rekey_skeyseed(&old.suite.prf, old.keys.sk_d.expose(), gir.expose(), ni, nr);
        let keys = keymat::ike_keys(
            &suite.prf,
            seed.expose(),
            ni,
            nr,
            &spi_i,
            &spi_r,
            lengths(&suite),
        );
        self.sa = Some(GwSa::new(suite, keys, spi_i, spi_r, client_initiated));
        self.old = Some(old);
    }
}

impl Default for Gateway {
    fn default() -> Self {
        Gateway::new()
    }
}

pub fn lengths(suite: &IkeSuite) -> KeyLengths {
    KeyLengths {
        integ: suite.integ.map_or(0, |i| i.key_len()),
        encr: suite.encr.key_len(),
    }
}

/// The gateway's IDr.
pub fn gw_id() -> Id<'static> {
    Id {
        ty: IdType::FQDN,
        data: GW_ID.as_bytes(),
    }
}

/// A CFG_REPLY with an address, a DNS server and Cisco attributes
/// (28709 DPD, 28711 MTU, 28672 banner), as an ASA sends them.
pub fn cfg_reply<'a>(attrs: &'a [(u16, Vec<u8>)]) -> Payload<'a> {
    Payload::from(PayloadBody::Cp(ConfigPayload {
        cfg_type: CfgType::CFG_REPLY,
        attributes: attrs
            .iter()
            .map(|(t, v)| CfgAttribute {
                ty: CfgAttr(*t),
                value: v,
            })
            .collect(),
    }))
}

/// The client and the gateway, and the simulated clock between them.
pub struct Pair {
    pub client: Session,
    pub gw: Gateway,
    pub now: Instant,
}

impl Pair {
    /// A session with `settings`, at time zero of the simulated clock.
    pub fn new(settings: Settings) -> Pair {
        Pair::with(Gateway::new(), |_| settings)
    }

    /// A session whose settings may depend on the gateway (its pin).
    #[allow(clippy::disallowed_methods)] // the simulated clock's epoch
    pub fn with(gw: Gateway, settings: impl FnOnce(&Gateway) -> Settings) -> Pair {
        // The one clock reading of a test: everything after is simulated.
        let now = Instant::now();
        let s = settings(&gw);
        let client = Session::new(s, Box::new(TestRng::new(7)), now).expect("settings are valid");
        Pair { client, gw, now }
    }

    /// Everything the client wants to send now.
    pub fn sent(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(t) = self.client.poll_transmit(&mut buf) {
            out.push(buf[..t.size].to_vec());
        }
        out
    }

    /// The one datagram the client wants to send now.
    pub fn sent_one(&mut self) -> Vec<u8> {
        let mut s = self.sent();
        assert_eq!(s.len(), 1, "exactly one datagram");
        s.pop().expect("one")
    }

    /// The one encrypted message the client sent, opened by the gateway.
    pub fn recv(&mut self) -> Opened {
        let d = self.sent_one();
        self.gw.open(&d)
    }

    /// The client's one answer to a gateway request, opened.
    pub fn recv_response(&mut self) -> Opened {
        let d = self.sent_one();
        self.gw.open_response(&d)
    }

    /// Delivers an IKE_SA_INIT answer (port 500, no marker).
    pub fn deliver_500(&mut self, mut d: Vec<u8>) -> Received<'static> {
        own(self.client.handle_datagram(self.now, addr(GW), &mut d))
    }

    /// Delivers a datagram on the NAT-T port (marker or ESP).
    pub fn deliver(&mut self, mut d: Vec<u8>) -> Received<'static> {
        own(self.client.handle_datagram(self.now, addr(GW_NAT), &mut d))
    }

    /// Moves the clock forward by `d`, serving every deadline on the way,
    /// as a driver would.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.client.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.client.handle_timeout(self.now);
        }
        self.now = end;
    }

    /// The events so far.
    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }

    /// IKE_SA_INIT and a PSK IKE_AUTH with a plain CFG_REPLY: established.
    pub fn connect_psk(&mut self) -> Opened {
        // IKE_SA_INIT { SA, KE, Ni, N(NAT_D)*, ... } -->  <-- { SA, KE, Nr, N(NAT_D)* }
        let init = self.sent_one();
        let answer = self.gw.sa_init_response(&init);
        assert_eq!(self.deliver_500(answer), Received::Consumed);
        // IKE_AUTH { IDi, AUTH, CP(CFG_REQUEST), SA, TSi, TSr, N(INITIAL_CONTACT) } -->
        let d = self.sent_one();
        let auth = self.gw.open(&d);
        let resp = self.auth_response_psk(&auth);
        //   <-- IKE_AUTH { IDr, AUTH, CP(CFG_REPLY), SA, TSi, TSr }
        self.deliver(resp);
        assert_eq!(self.client.state(), State::Established);
        auth
    }

    /// The gateway's PSK answer to the client's IKE_AUTH `auth`.
    pub fn auth_response_psk(&mut self, auth: &Opened) -> Vec<u8> {
        let p = auth.payloads();
        let offer = p
            .iter()
            .find_map(|p| match &p.body {
                PayloadBody::Sa(s) => Some(s.clone()),
                _ => None,
            })
            .expect("SAi2");
        let chosen = self.gw.child_answer(&offer, 0x5151_0001);
        let idr = gw_id();
        let a = self.gw.psk_auth(&idr);
        let attrs = [(1u16, vec![192, 0, 2, 10]), (3, vec![198, 51, 100, 53])];
        let ts = TsPayload {
            selectors: vec![TrafficSelector::any_v4()],
        };
        self.gw.respond(
            auth,
            &[
                Payload::from(PayloadBody::IdR(idr.clone())),
                Payload::from(PayloadBody::Auth(Auth {
                    method: AuthMethod::SHARED_KEY_MIC,
                    data: &a,
                })),
                cfg_reply(&attrs),
                Payload::from(PayloadBody::Sa(chosen)),
                Payload::from(PayloadBody::TsI(ts.clone())),
                Payload::from(PayloadBody::TsR(ts)),
            ],
        )
    }
}

/// The CHILD SA answer (SA, TSi, TSr) to the SAi2 in `req`, with `extra`
/// payloads (IDr, AUTH, CP…) first.
pub fn final_payloads<'a>(
    gw: &mut Gateway,
    req_sa: &SaPayload,
    extra: Vec<Payload<'a>>,
    ts: &'a TsPayload,
) -> Vec<Payload<'a>> {
    let chosen = gw.child_answer(req_sa, 0x5151_0001);
    let mut v = extra;
    v.push(Payload::from(PayloadBody::Sa(chosen)));
    v.push(Payload::from(PayloadBody::TsI(ts.clone())));
    v.push(Payload::from(PayloadBody::TsR(ts.clone())));
    v
}

/// The SA payload of a message.
pub fn sa_of(p: &[Payload<'_>]) -> SaPayload {
    p.iter()
        .find_map(|p| match &p.body {
            PayloadBody::Sa(s) => Some(s.clone()),
            _ => None,
        })
        .expect("an SA payload")
}

/// The EAP payload of a message.
pub fn eap_of(p: &[Payload<'_>]) -> Vec<u8> {
    p.iter()
        .find_map(|p| match &p.body {
            PayloadBody::Eap(e) => Some(e.to_vec()),
            _ => None,
        })
        .expect("an EAP payload")
}

/// The first payload of type `ty` in `p`.
pub fn find<'p, 'a>(p: &'p [Payload<'a>], ty: PayloadType) -> Option<&'p PayloadBody<'a>> {
    p.iter().map(|p| &p.body).find(|b| b.ty() == ty)
}

/// The certificate payload for `der`.
pub fn cert_payload(der: &[u8]) -> Payload<'_> {
    Payload::from(PayloadBody::Cert(Cert {
        encoding: CertEncoding::X509_SIGNATURE,
        data: der,
    }))
}

fn own(r: Received<'_>) -> Received<'static> {
    match r {
        Received::Consumed => Received::Consumed,
        Received::Dropped(d) => Received::Dropped(d),
        Received::ToTun(_) => panic!("ESP in an IKE test"),
    }
}
