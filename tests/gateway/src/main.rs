//! `acgateway`: a test IKEv2 responder that behaves like the Cisco ASA of
//! seed 004 towards an AnyConnect client — same message sequence and payload
//! order, RSA certificate AUTH, EAP-AnyConnect hello / auth-request /
//! complete with a user database and an optional group list, Cisco
//! fragmentation of its large answers at `--mtu`, a CFG_REPLY with the seed's
//! Cisco attributes, and a CHILD SA. It reuses the core's codec and crypto;
//! the responder logic here is its own. For tests and the demo only.
//!
//! Every message it receives or sends is logged on stderr as one line,
//! `IKE_AUTH request 1 [ V IDi CERTREQ CP SA TSi TSr N ]`, which tests read.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use acclient_core::crypto::auth::{nat_hash, shared_key_auth, signed_octets};
use acclient_core::crypto::cipher::Protection;
use acclient_core::crypto::dh::KeyPair;
use acclient_core::crypto::keymat::{self, IkeKeys, KeyLengths};
use acclient_core::crypto::{Rng, SystemRng};
use acclient_core::driver::tun::{RecvBatch, SendBatch};
use acclient_core::eap::anyconnect::{Frame, TLV_XML};
use acclient_core::ike::proposals::{self, IkeSuite};
use acclient_core::ike::{cisco, cisco_frag, describe};
use acclient_core::wire::*;

struct Args {
    listen: IpAddr,
    cert: Vec<u8>,
    key: aws_lc_rs::rsa::KeyPair,
    users: Vec<(String, String)>,
    groups: Vec<String>,
    mtu: usize,
    pool: Ipv4Addr,
    dns: Option<Ipv4Addr>,
    protected: (Ipv4Addr, u8),
    loss: u32,
    knobs: Knobs,
}

/// Second login rounds and fault injection.
#[derive(Default)]
struct Knobs {
    /// After the password: a challenge form whose `answer` must be this code.
    otp: Option<String>,
    /// After the password: "password expired", a new-password form.
    expire_password: bool,
    /// UNITY_BANNER in the CFG_REPLY.
    banner: Option<String>,
    /// Send every datagram twice.
    dup: bool,
    /// Drop Cisco fragment N of the first fragmented answer, once.
    drop_fragment: Option<u8>,
    /// Always drop Cisco fragment N.
    stall_fragment: Option<u8>,
    /// Ask for a client certificate chaining to this CA (DER) before the form.
    client_ca: Option<Vec<u8>>,
    /// Only for this tunnel group (default: every group).
    cert_group: Option<String>,
    /// Delay every answer by this many milliseconds.
    delay_ms: u64,
    /// Send a DPD (empty INFORMATIONAL request) to every established SA this often (seconds).
    dpd: u64,
    /// Ask for posture assessment (host scan) before the login form.
    host_scan: bool,
    /// Send a broken document: `xml` (auth-request), `tlv` (EAP TLV), `cp` (CFG_REPLY).
    malformed: Option<String>,
    /// Carry traffic: a TUN device of this name routes the pool (ESP data plane).
    tun: Option<String>,
    /// Only accept this ESP suite: `gcm256` or `cbc256-sha1`.
    esp_suite: Option<String>,
    /// Every 10th ESP packet to a client also goes out replayed, corrupted and with a bogus SPI.
    esp_faults: bool,
    /// Split-include subnets in the CFG_REPLY (INTERNAL_IP4_SUBNET).
    split: Vec<(Ipv4Addr, u8)>,
    /// Cisco DPD interval attribute (seconds, default 30).
    dpd_attr: u32,
    /// Cisco NAT-T keepalive attribute (seconds, default 20).
    keepalive_attr: u32,
    /// Pick extended sequence numbers when the client offers them.
    esn: bool,
    /// Cisco default domain and split-DNS list (comma separated).
    domain: Option<String>,
    split_dns: Option<String>,
    /// How long a session can be resumed with its token (seconds; 0: never).
    resume_timeout: u64,
    /// The OTP code is good for one login only, like a real one-time password.
    otp_once: bool,
}

fn pem_der(text: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let s = text.find(&begin)? + begin.len();
    let e = text[s..].find(&end)? + s;
    let b64: String = text[s..e].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

fn usage(msg: &str) -> ! {
    eprintln!("acgateway: {msg}\nusage: acgateway --listen ADDR --cert PEM --key PEM --user NAME:PASSWORD... [--group NAME]... [--mtu 544] [--pool 192.0.2.10] [--dns ADDR] [--protected NET/LEN] [--loss PERCENT]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = std::env::args().skip(1);
    let (mut listen, mut cert, mut key) = (None, None, None);
    let (mut users, mut groups) = (Vec::new(), Vec::new());
    let (mut mtu, mut pool, mut dns, mut protected, mut loss) = (
        544,
        Ipv4Addr::new(192, 0, 2, 10),
        None,
        (Ipv4Addr::UNSPECIFIED, 0),
        0,
    );
    let mut knobs = Knobs {
        dpd_attr: 30,
        keepalive_attr: 20,
        resume_timeout: 1800,
        ..Default::default()
    };
    while let Some(flag) = a.next() {
        let mut val = || {
            a.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--listen" => listen = Some(val().parse().unwrap_or_else(|_| usage("bad --listen"))),
            "--cert" => {
                let t = std::fs::read_to_string(val()).unwrap_or_else(|e| usage(&e.to_string()));
                cert = Some(
                    pem_der(&t, "CERTIFICATE").unwrap_or_else(|| usage("no certificate in --cert")),
                );
            }
            "--key" => {
                let t = std::fs::read_to_string(val()).unwrap_or_else(|e| usage(&e.to_string()));
                let k = pem_der(&t, "RSA PRIVATE KEY")
                    .and_then(|d| aws_lc_rs::rsa::KeyPair::from_der(&d).ok())
                    .or_else(|| {
                        pem_der(&t, "PRIVATE KEY")
                            .and_then(|d| aws_lc_rs::rsa::KeyPair::from_pkcs8(&d).ok())
                    });
                key =
                    Some(k.unwrap_or_else(|| {
                        usage("--key must be an RSA key (PKCS#1 or PKCS#8 PEM)")
                    }));
            }
            "--user" => {
                let v = val();
                let (u, p) = v
                    .split_once(':')
                    .unwrap_or_else(|| usage("--user NAME:PASSWORD"));
                users.push((u.to_string(), p.to_string()));
            }
            "--group" => groups.push(val()),
            "--mtu" => mtu = val().parse().unwrap_or_else(|_| usage("bad --mtu")),
            "--pool" => pool = val().parse().unwrap_or_else(|_| usage("bad --pool")),
            "--dns" => dns = Some(val().parse().unwrap_or_else(|_| usage("bad --dns"))),
            "--protected" => {
                let v = val();
                let (n, l) = v
                    .split_once('/')
                    .unwrap_or_else(|| usage("--protected NET/LEN"));
                protected = (
                    n.parse().unwrap_or_else(|_| usage("bad net")),
                    l.parse().unwrap_or_else(|_| usage("bad len")),
                );
            }
            "--loss" => loss = val().parse().unwrap_or_else(|_| usage("bad --loss")),
            "--otp" => knobs.otp = Some(val()),
            "--otp-once" => knobs.otp_once = true,
            "--resume-timeout" => {
                knobs.resume_timeout = val()
                    .parse()
                    .unwrap_or_else(|_| usage("bad --resume-timeout"))
            }
            "--expire-password" => knobs.expire_password = true,
            "--banner" => knobs.banner = Some(val()),
            "--dup" => knobs.dup = true,
            "--host-scan" => knobs.host_scan = true,
            "--cert-group" => knobs.cert_group = Some(val()),
            "--delay-ms" => {
                knobs.delay_ms = val().parse().unwrap_or_else(|_| usage("bad --delay-ms"))
            }
            "--dpd" => knobs.dpd = val().parse().unwrap_or_else(|_| usage("bad --dpd")),
            "--client-ca" => {
                let t = std::fs::read_to_string(val()).unwrap_or_else(|e| usage(&e.to_string()));
                knobs.client_ca = Some(
                    pem_der(&t, "CERTIFICATE")
                        .unwrap_or_else(|| usage("no certificate in --client-ca")),
                );
            }
            "--drop-fragment" => {
                knobs.drop_fragment = Some(
                    val()
                        .parse()
                        .unwrap_or_else(|_| usage("bad --drop-fragment")),
                )
            }
            "--stall-fragment" => {
                knobs.stall_fragment = Some(
                    val()
                        .parse()
                        .unwrap_or_else(|_| usage("bad --stall-fragment")),
                )
            }
            "--malformed" => knobs.malformed = Some(val()),
            "--tun" => knobs.tun = Some(val()),
            "--esp-suite" => knobs.esp_suite = Some(val()),
            "--esp-faults" => knobs.esp_faults = true,
            "--esn" => knobs.esn = true,
            "--domain" => knobs.domain = Some(val()),
            "--split-dns" => knobs.split_dns = Some(val()),
            "--keepalive-attr" => {
                knobs.keepalive_attr = val()
                    .parse()
                    .unwrap_or_else(|_| usage("bad --keepalive-attr"))
            }
            "--dpd-attr" => {
                knobs.dpd_attr = val().parse().unwrap_or_else(|_| usage("bad --dpd-attr"))
            }
            "--split" => {
                let v = val();
                let (n, l) = v
                    .split_once('/')
                    .and_then(|(n, l)| Some((n.parse().ok()?, l.parse().ok()?)))
                    .unwrap_or_else(|| usage("--split NET/LEN"));
                knobs.split.push((n, l));
            }
            other => usage(&format!("unknown option {other}")),
        }
    }
    Args {
        listen: listen.unwrap_or_else(|| usage("--listen is required")),
        cert: cert.unwrap_or_else(|| usage("--cert is required")),
        key: key.unwrap_or_else(|| usage("--key is required")),
        users,
        groups,
        mtu,
        pool,
        dns,
        protected,
        loss,
        knobs,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Auth1,
    Init,
    AuthReply,
    Ack,
    FinalAuth,
    Up,
}

struct Sa {
    spi_i: [u8; 8],
    suite: IkeSuite,
    keys: IkeKeys,
    out: Protection,
    inp: Protection,
    ni: Vec<u8>,
    nr: Vec<u8>,
    msg1: Vec<u8>,
    msg2: Vec<u8>,
    idi_body: Vec<u8>,
    idr_body: Vec<u8>,
    stage: Stage,
    eap_id: u8,
    group: Option<String>,
    user: Option<String>,
    attempts: u32,
    /// Pending second round: 0 none, 1 new password, 2 OTP.
    round: u8,
    opaque: String,
    child_offer: SaPayload,
    last: Option<(u32, Vec<Vec<u8>>)>,
    frag_id: u16,
    reasm: cisco_frag::CiscoReassembly,
    lease: Ipv4Addr,
    token: String,
    /// Our `session-id` (0 until `complete`).
    session_id: u32,
    /// Where the client's NAT-T datagrams come from (for our own requests).
    peer: Option<SocketAddr>,
    /// Message ID of our next request (DPD).
    next_req: u32,
}

/// A session a client may resume with its token (by `session-token`).
struct Resumable {
    session_id: u32,
    user: Option<String>,
    group: Option<String>,
    lease: Ipv4Addr,
    until: std::time::Instant,
}

struct Gw {
    dp: Arc<DataPlane>,
    a: Args,
    sas: HashMap<[u8; 8], Sa>,
    sessions: HashMap<String, Resumable>,
    next_session: u32,
    otp_used: bool,
    next_lease: u32,
    rng: SystemRng,
    drop_state: u32,
}

fn log(s: &str) {
    eprintln!("acgateway: {s}");
}

fn xml_head(kind: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"{kind}\">\n<version who=\"sg\">9.0(2)8</version>\n")
}

/// What the gateway reads from a client document.
struct ClientDoc {
    /// `type` of `config-auth` (init, auth-reply, ack).
    ty: String,
    /// `group-select`.
    group: Option<String>,
    /// Children of `<auth>`: name → value.
    auth: Vec<(String, String)>,
    /// `session-token` / `session-id` (a reconnect's offer; empty otherwise).
    session: (String, String),
}

fn client_doc(xml: &[u8]) -> Option<ClientDoc> {
    use quick_xml::events::Event as X;
    let mut r = quick_xml::Reader::from_reader(xml);
    let (mut ty, mut group, mut auth, mut path, mut text) =
        (None, None, Vec::new(), Vec::<String>::new(), String::new());
    let mut session = (String::new(), String::new());
    loop {
        match r.read_event().ok()? {
            X::Start(e) => {
                let n = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if n == "config-auth" {
                    ty = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == b"type")
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned());
                }
                path.push(n);
                text.clear();
            }
            X::Text(t) => text.push_str(&t.unescape().ok()?),
            X::End(_) => {
                let n = path.pop()?;
                match path.last().map(String::as_str) {
                    Some("config-auth") if n == "group-select" => {
                        group = Some(text.trim().to_string())
                    }
                    Some("config-auth") if n == "session-token" => {
                        session.0 = text.trim().to_string()
                    }
                    Some("config-auth") if n == "session-id" => session.1 = text.trim().to_string(),
                    Some("auth") => auth.push((n, text.trim().to_string())),
                    _ => {}
                }
                text.clear();
            }
            X::Eof => break,
            _ => {}
        }
    }
    Some(ClientDoc {
        ty: ty?,
        group,
        auth,
        session,
    })
}

impl Gw {
    fn sign(&self, suite: &IkeSuite, octets: &[u8]) -> (AuthMethod, Vec<u8>) {
        use aws_lc_rs::signature as sg;
        let mut sig = vec![0u8; self.a.key.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        // Method 1 with the PRF's hash ("RSA hash follows the PRF"); with a
        // SHA-1 PRF, RFC 7427 with sha256WithRSAEncryption instead (aws-lc
        // does not sign PKCS#1 SHA-1).
        let enc: &'static dyn sg::RsaEncoding = match suite.prf.id() {
            PrfId::HMAC_SHA2_384 => &sg::RSA_PKCS1_SHA384,
            PrfId::HMAC_SHA2_512 => &sg::RSA_PKCS1_SHA512,
            _ => &sg::RSA_PKCS1_SHA256,
        };
        self.a
            .key
            .sign(enc, &rng, octets, &mut sig)
            .expect("RSA signing");
        if suite.prf.id() == PrfId::HMAC_SHA1 {
            let algid = [
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05,
                0x00,
            ];
            let mut d = vec![algid.len() as u8];
            d.extend_from_slice(&algid);
            d.extend_from_slice(&sig);
            return (AuthMethod::DIGITAL_SIGNATURE, d);
        }
        (AuthMethod::RSA_SIG, sig)
    }

    /// Encrypts a response and splits it Cisco-style above the MTU.
    fn seal(
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

    fn handle(&mut self, from: SocketAddr, data: &[u8]) -> Vec<Vec<u8>> {
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

    fn sa_init(&mut self, from: SocketAddr, data: &[u8]) -> Option<Vec<u8>> {
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
                round: 0,
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

    fn eap_req(&mut self, spi_r: [u8; 8], xml: &str) -> Vec<u8> {
        let sa = self.sas.get_mut(&spi_r).expect("SA exists");
        sa.eap_id = sa.eap_id.wrapping_add(1);
        Frame::build(1, sa.eap_id, &[(TLV_XML, xml.as_bytes())])
    }

    fn auth_request(&mut self, spi_r: [u8; 8], error: bool) -> String {
        let sa = &self.sas[&spi_r];
        let group = sa
            .group
            .clone()
            .or_else(|| self.a.groups.first().cloned())
            .unwrap_or_else(|| "DefaultRAGroup".into());
        let opaque = format!("<opaque is-for=\"sg\">\n<tunnel-group>{group}</tunnel-group>\n<config-hash>1367268141499</config-hash>\n</opaque>");
        let mut x =
            xml_head("auth-request") + &opaque + "\n<sport>443</sport>\n<auth id=\"main\">\n";
        if error {
            x += "<error id=\"88\" param1=\"\" param2=\"\">Login failed.</error>\n";
        }
        x += "<form>\n";
        if self.a.groups.len() > 1 && sa.group.is_none() {
            x += "<select name=\"group_list\" label=\"GROUP:\">\n";
            for g in &self.a.groups {
                x += &format!("<option>{g}</option>\n");
            }
            x += "</select>\n";
        }
        x += "<input type=\"text\" name=\"username\" label=\"Username:\"></input>\n<input type=\"password\" name=\"password\" label=\"Password:\"></input>\n</form>\n</auth>\n</config-auth>\n";
        self.sas.get_mut(&spi_r).expect("SA").opaque = opaque;
        x
    }

    /// Round 1: password expired (new + confirm); round 2: OTP challenge.
    fn second_form(&mut self, spi_r: [u8; 8], round: u8, error: bool) -> String {
        let opaque = self.sas[&spi_r].opaque.clone();
        let mut x = xml_head("auth-request") + &opaque + "\n";
        if round == 1 {
            x += "<auth id=\"main\">\n<message>Your password has expired. Choose a new one.</message>\n";
            if error {
                x += "<error id=\"88\" param1=\"\" param2=\"\">The new password was refused.</error>\n";
            }
            x += "<form>\n<input type=\"password\" name=\"new_password\" label=\"New Password:\"></input>\n<input type=\"password\" name=\"verify_password\" label=\"Verify Password:\"></input>\n</form>\n</auth>\n</config-auth>\n";
        } else {
            x += "<auth id=\"challenge\">\n<message>Enter the code from your token.</message>\n";
            if error {
                x += "<error id=\"88\" param1=\"\" param2=\"\">Wrong code.</error>\n";
            }
            x += "<form>\n<input type=\"password\" name=\"answer\" label=\"Code:\"></input>\n</form>\n</auth>\n</config-auth>\n";
        }
        x
    }

    fn ike_auth(&mut self, spi_r: [u8; 8], id: u32, payloads: &[Payload<'_>]) -> Vec<Vec<u8>> {
        let stage = self.sas[&spi_r].stage;
        let eap = payloads.iter().find_map(|p| match &p.body {
            PayloadBody::Eap(e) => Some(e.to_vec()),
            _ => None,
        });
        let fail = |gw: &mut Gw, why: &str| {
            log(why);
            let n = [Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::AUTHENTICATION_FAILED,
                &[],
            )))];
            gw.seal(spi_r, ExchangeType::IKE_AUTH, id, &n)
        };
        match stage {
            Stage::Auth1 => {
                let idi = payloads.iter().find_map(|p| match &p.body {
                    PayloadBody::IdI(i) => Some(i.body()),
                    _ => None,
                });
                let offer = payloads.iter().find_map(|p| match &p.body {
                    PayloadBody::Sa(s) => Some(s.clone()),
                    _ => None,
                });
                if payloads
                    .iter()
                    .any(|p| matches!(p.body, PayloadBody::Auth(_)))
                {
                    return fail(
                        self,
                        "expected EAP (no AUTH payload) from an AnyConnect client",
                    );
                }
                let (Some(idi), Some(offer)) = (idi, offer) else {
                    return fail(self, "IKE_AUTH without IDi or SA");
                };
                use x509_parser::prelude::FromDer;
                let Ok((_, c)) = x509_parser::certificate::X509Certificate::from_der(&self.a.cert)
                else {
                    return vec![];
                };
                let idr_data = c.tbs_certificate.subject.as_raw().to_vec();
                let idr = Id {
                    ty: IdType::DER_ASN1_DN,
                    data: &idr_data,
                };
                let idr_body = idr.body();
                let sa = self.sas.get_mut(&spi_r).expect("SA");
                sa.idi_body = idi;
                sa.idr_body = idr_body.clone();
                sa.child_offer = offer;
                sa.stage = Stage::Init;
                let octets = signed_octets(
                    &sa.msg2,
                    &sa.ni,
                    &sa.suite.prf,
                    sa.keys.sk_pr.expose(),
                    &idr_body,
                );
                let suite = sa.suite;
                let (method, sig) = self.sign(&suite, &octets);
                let hello = xml_head("hello") + "</config-auth>\n";
                let e = self.eap_req(spi_r, &hello);
                let cert = self.a.cert.clone();
                let p = [
                    Payload::from(PayloadBody::VendorId(&cisco::VID_GRANITE)),
                    Payload::from(PayloadBody::IdR(idr)),
                    Payload::from(PayloadBody::Cert(Cert {
                        encoding: CertEncoding::X509_SIGNATURE,
                        data: &cert,
                    })),
                    Payload::from(PayloadBody::Auth(Auth { method, data: &sig })),
                    Payload::from(PayloadBody::Eap(&e)),
                ];
                self.seal(spi_r, ExchangeType::IKE_AUTH, id, &p)
            }
            Stage::Init | Stage::AuthReply | Stage::Ack => {
                let Some(eap) = eap else {
                    return fail(self, "expected an EAP response");
                };
                let Some(xml) = Frame::parse(&eap)
                    .ok()
                    .and_then(|f| f.xml().ok().map(<[u8]>::to_vec))
                else {
                    return fail(self, "not an EAP-AnyConnect response");
                };
                let Some(ClientDoc {
                    ty,
                    group,
                    auth,
                    session,
                }) = client_doc(&xml)
                else {
                    return fail(self, "malformed XML from the client");
                };
                log(&format!("EAP-AnyConnect: received {ty}"));
                match (stage, ty.as_str()) {
                    (Stage::Init, "init") => {
                        if let Some(g) = group.filter(|g| self.a.groups.contains(g)) {
                            self.sas.get_mut(&spi_r).expect("SA").group = Some(g);
                        }
                        if !session.0.is_empty() && self.sas[&spi_r].round != 4 {
                            if let Some(out) = self.try_resume(spi_r, id, &session) {
                                return out;
                            }
                        }
                        let mut x = self.auth_request(spi_r, false);
                        let cert_group = match &self.a.knobs.cert_group {
                            Some(g) => self.sas[&spi_r].group.as_ref() == Some(g),
                            None => true,
                        };
                        if self.a.knobs.client_ca.is_some()
                            && cert_group
                            && self.sas[&spi_r].round != 4
                        {
                            let opaque = self.sas[&spi_r].opaque.clone();
                            x = xml_head("auth-request")
                                + &opaque
                                + "\n<client-cert-request/>\n</config-auth>\n";
                            let sa = self.sas.get_mut(&spi_r).expect("SA");
                            sa.round = 4;
                            sa.stage = Stage::Init;
                            let e = self.eap_req(spi_r, &x);
                            return self.seal(
                                spi_r,
                                ExchangeType::IKE_AUTH,
                                id,
                                &[Payload::from(PayloadBody::Eap(&e))],
                            );
                        }
                        if self.sas[&spi_r].round == 4 {
                            // The second init: PKCS#7 chain (TLV 3) and signature (TLV 1).
                            let frame = Frame::parse(&eap).ok();
                            let tlv = |t: u16| {
                                frame.as_ref().and_then(|f| {
                                    f.tlvs.iter().find(|x| x.0 == t).map(|x| x.1.to_vec())
                                })
                            };
                            let (Some(p7), Some(sig)) = (tlv(3), tlv(1)) else {
                                return fail(
                                    self,
                                    "certificate requested, but the client sent none",
                                );
                            };
                            let Some(chain) = acclient_core::crypto::pkcs7::certificates(&p7)
                                .filter(|c| !c.is_empty())
                            else {
                                return fail(self, "unreadable PKCS#7 chain");
                            };
                            let sa = &self.sas[&spi_r];
                            let octets = signed_octets(
                                &sa.msg1,
                                &sa.nr,
                                &sa.suite.prf,
                                sa.keys.sk_pi.expose(),
                                &sa.idi_body,
                            );
                            let now = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_secs())
                                .unwrap_or(0);
                            let ca = self.a.knobs.client_ca.clone().unwrap_or_default();
                            let ok_chain = acclient_core::crypto::sig::verify_client_chain(
                                &chain[0],
                                &chain[1..],
                                &[ca],
                                now,
                            );
                            let ok_sig = acclient_core::crypto::sig::verify_auth(
                                AuthMethod::RSA_SIG,
                                &sig,
                                &octets,
                                &chain[0],
                                sa.suite.prf.id(),
                            );
                            if let Err(e) = ok_chain
                                .map_err(|e| e.to_string())
                                .and(ok_sig.map(|_| ()).map_err(|e| e.to_string()))
                            {
                                return fail(self, &format!("client certificate refused: {e}"));
                            }
                            let subject = acclient_core::crypto::sig::summarize(&chain[0])
                                .map(|s| s.subject)
                                .unwrap_or_default();
                            log(&format!(
                                "client certificate {subject} accepted (chain and signature)"
                            ));
                            self.sas.get_mut(&spi_r).expect("SA").round = 0;
                        }
                        if self.a.knobs.host_scan {
                            let opaque = self.sas[&spi_r].opaque.clone();
                            x = xml_head("auth-request") + &opaque + "\n<host-scan>\n<host-scan-ticket>TICKET42</host-scan-ticket>\n<host-scan-token>TOKEN42</host-scan-token>\n<host-scan-base-uri>/CACHE</host-scan-base-uri>\n<host-scan-wait-uri>/+CSCOE+/sdesktop/wait.html</host-scan-wait-uri>\n</host-scan>\n</config-auth>\n";
                            self.sas.get_mut(&spi_r).expect("SA").round = 3;
                        }
                        self.sas.get_mut(&spi_r).expect("SA").stage = Stage::AuthReply;
                        if self.a.knobs.malformed.as_deref() == Some("xml") {
                            log("fault knob: sending a truncated auth-request");
                            x.truncate(x.len() / 2);
                        }
                        let mut e = self.eap_req(spi_r, &x);
                        if self.a.knobs.malformed.as_deref() == Some("tlv") {
                            log("fault knob: sending an EAP-AnyConnect TLV longer than its packet");
                            e[14..16].copy_from_slice(&0xfff0u16.to_be_bytes());
                        }
                        self.seal(
                            spi_r,
                            ExchangeType::IKE_AUTH,
                            id,
                            &[Payload::from(PayloadBody::Eap(&e))],
                        )
                    }
                    (Stage::AuthReply, "auth-reply") => {
                        let sa = &self.sas[&spi_r];
                        if !String::from_utf8_lossy(&xml).contains(&sa.opaque) {
                            return fail(
                                self,
                                "the client did not echo the opaque element byte for byte",
                            );
                        }
                        if let Some(g) = group {
                            self.sas.get_mut(&spi_r).expect("SA").group = Some(g);
                        }
                        let round = self.sas[&spi_r].round;
                        if round == 3 {
                            // Host scan: the token must come back; then the login form.
                            if !String::from_utf8_lossy(&xml)
                                .contains("<host-scan-token>TOKEN42</host-scan-token>")
                            {
                                return fail(self, "host-scan token missing from the auth-reply");
                            }
                            log("host scan token received");
                            self.sas.get_mut(&spi_r).expect("SA").round = 0;
                            let x = self.auth_request(spi_r, false);
                            let e = self.eap_req(spi_r, &x);
                            return self.seal(
                                spi_r,
                                ExchangeType::IKE_AUTH,
                                id,
                                &[Payload::from(PayloadBody::Eap(&e))],
                            );
                        }
                        if round > 0 {
                            let answer = auth
                                .iter()
                                .find(|(k, _)| k == "password")
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default();
                            let ok = match round {
                                1 => !answer.is_empty(),
                                _ => {
                                    let fresh = !(self.a.knobs.otp_once && self.otp_used);
                                    fresh && self.a.knobs.otp.as_deref() == Some(answer.as_str())
                                }
                            };
                            if ok && round == 2 {
                                self.otp_used = true;
                            }
                            log(&format!(
                                "second round {}: {}",
                                if round == 1 { "new password" } else { "OTP" },
                                if ok { "accepted" } else { "refused" }
                            ));
                            if !ok {
                                let x = self.second_form(spi_r, round, true);
                                let e = self.eap_req(spi_r, &x);
                                return self.seal(
                                    spi_r,
                                    ExchangeType::IKE_AUTH,
                                    id,
                                    &[Payload::from(PayloadBody::Eap(&e))],
                                );
                            }
                            let next = if round == 1 && self.a.knobs.otp.is_some() {
                                2
                            } else {
                                0
                            };
                            self.sas.get_mut(&spi_r).expect("SA").round = next;
                            if next > 0 {
                                let x = self.second_form(spi_r, next, false);
                                let e = self.eap_req(spi_r, &x);
                                return self.seal(
                                    spi_r,
                                    ExchangeType::IKE_AUTH,
                                    id,
                                    &[Payload::from(PayloadBody::Eap(&e))],
                                );
                            }
                            return self.complete(spi_r, id);
                        }
                        let get = |n: &str| {
                            auth.iter()
                                .find(|(k, _)| k == n)
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default()
                        };
                        let (user, pass) = (get("username"), get("password"));
                        let ok = self.a.users.iter().any(|(u, p)| *u == user && *p == pass);
                        let sa = self.sas.get_mut(&spi_r).expect("SA");
                        sa.attempts += 1;
                        if !ok {
                            log(&format!(
                                "authentication of user '{user}' failed (attempt {})",
                                sa.attempts
                            ));
                            if sa.attempts >= 3 {
                                let f = [4u8, sa.eap_id, 0, 4]; // EAP Failure
                                return self.seal(
                                    spi_r,
                                    ExchangeType::IKE_AUTH,
                                    id,
                                    &[Payload::from(PayloadBody::Eap(&f))],
                                );
                            }
                            let x = self.auth_request(spi_r, true);
                            let e = self.eap_req(spi_r, &x);
                            return self.seal(
                                spi_r,
                                ExchangeType::IKE_AUTH,
                                id,
                                &[Payload::from(PayloadBody::Eap(&e))],
                            );
                        }
                        log(&format!(
                            "user '{user}' authenticated (group {})",
                            sa.group.clone().unwrap_or_default()
                        ));
                        sa.user = Some(user);
                        let round = if self.a.knobs.expire_password {
                            1
                        } else if self.a.knobs.otp.is_some() {
                            2
                        } else {
                            0
                        };
                        if round > 0 {
                            self.sas.get_mut(&spi_r).expect("SA").round = round;
                            let x = self.second_form(spi_r, round, false);
                            let e = self.eap_req(spi_r, &x);
                            return self.seal(
                                spi_r,
                                ExchangeType::IKE_AUTH,
                                id,
                                &[Payload::from(PayloadBody::Eap(&e))],
                            );
                        }
                        self.complete(spi_r, id)
                    }
                    (Stage::Ack, "ack") => {
                        let sa = self.sas.get_mut(&spi_r).expect("SA");
                        sa.stage = Stage::FinalAuth;
                        let s = [3u8, sa.eap_id, 0, 4];
                        self.seal(
                            spi_r,
                            ExchangeType::IKE_AUTH,
                            id,
                            &[Payload::from(PayloadBody::Eap(&s))],
                        )
                    }
                    (_, other) => fail(self, &format!("unexpected {other} document")),
                }
            }
            Stage::FinalAuth => self.final_auth(spi_r, id, payloads),
            Stage::Up => fail(self, "IKE_AUTH after the SA is up"),
        }
    }

    /// A reconnect offered an earlier session: a live token with its id is
    /// taken back (straight to `complete`, same user, group and address);
    /// anything else is logged and the client gets the login form.
    fn try_resume(
        &mut self,
        spi_r: [u8; 8],
        id: u32,
        (token, sid): &(String, String),
    ) -> Option<Vec<Vec<u8>>> {
        let now = std::time::Instant::now();
        self.sessions.retain(|_, r| r.until > now);
        let known = self
            .sessions
            .get(token)
            .filter(|r| r.session_id.to_string() == *sid);
        let Some(r) = known else {
            log(&format!(
                "session {sid} not resumed (token unknown or expired): full login"
            ));
            return None;
        };
        log(&format!(
            "session {sid} of user '{}' resumed from its token: no login",
            r.user.clone().unwrap_or_default()
        ));
        let (user, group, lease, session_id) =
            (r.user.clone(), r.group.clone(), r.lease, r.session_id);
        let sa = self.sas.get_mut(&spi_r).expect("SA");
        sa.user = user;
        sa.group = group;
        sa.lease = lease;
        sa.session_id = session_id;
        sa.token = token.clone();
        Some(self.complete(spi_r, id))
    }

    /// The `complete` document, then wait for `ack`.
    fn complete(&mut self, spi_r: [u8; 8], id: u32) -> Vec<Vec<u8>> {
        let sa = self.sas.get_mut(&spi_r).expect("SA");
        sa.stage = Stage::Ack;
        if sa.session_id == 0 {
            sa.session_id = 32768 + self.next_session;
            self.next_session += 1;
        }
        let x = xml_head("complete")
                            + &format!("<session-id>{}</session-id>\n<session-token>{}</session-token>\n<auth id=\"success\">\n<message id=\"0\" param1=\"\" param2=\"\"></message>\n</auth>\n</config-auth>\n", sa.session_id, sa.token);
        let e = self.eap_req(spi_r, &x);
        self.seal(
            spi_r,
            ExchangeType::IKE_AUTH,
            id,
            &[Payload::from(PayloadBody::Eap(&e))],
        )
    }

    fn final_auth(&mut self, spi_r: [u8; 8], id: u32, payloads: &[Payload<'_>]) -> Vec<Vec<u8>> {
        let lease_n = self.next_lease;
        let (pool, dns, protected) = (self.a.pool, self.a.dns, self.a.protected);
        let sa = self.sas.get_mut(&spi_r).expect("SA");
        let auth = payloads.iter().find_map(|p| match &p.body {
            PayloadBody::Auth(a) => Some(a.data.to_vec()),
            _ => None,
        });
        if payloads.len() != 1 {
            log("the final IKE_AUTH request must carry AUTH only");
        }
        let prf = sa.suite.prf;
        let i_oct = signed_octets(&sa.msg1, &sa.nr, &prf, sa.keys.sk_pi.expose(), &sa.idi_body);
        if auth.as_deref() != Some(&shared_key_auth(&prf, sa.keys.sk_pi.expose(), &i_oct)[..]) {
            log("the client's AUTH (keyed from SK_pi) does not verify");
            let n = [Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::AUTHENTICATION_FAILED,
                &[],
            )))];
            return self.seal(spi_r, ExchangeType::IKE_AUTH, id, &n);
        }
        let r_oct = signed_octets(&sa.msg2, &sa.ni, &prf, sa.keys.sk_pr.expose(), &sa.idr_body);
        let my_auth = shared_key_auth(&prf, sa.keys.sk_pr.expose(), &r_oct);
        let mut offer = restrict(&sa.child_offer, self.a.knobs.esp_suite.as_deref());
        if self.a.knobs.esn {
            for p in &mut offer.proposals {
                p.transforms
                    .retain(|t| t.ty != TransformType::ESN || t.id == EsnId::ESN.0);
            }
        }
        let Some(mut esp) = proposals::choose_from_peer(&offer, ProtocolId::ESP, None) else {
            let n = [Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::NO_PROPOSAL_CHOSEN,
                &[],
            )))];
            return self.seal(spi_r, ExchangeType::IKE_AUTH, id, &n);
        };
        let client_spi = offer
            .proposals
            .iter()
            .find(|p| p.num == esp.num)
            .map(|p| p.spi.clone())
            .unwrap_or_default();
        let mut spi = [0u8; 4];
        self.rng.fill(&mut spi);
        esp.spi = spi.to_vec();
        let sa = self.sas.get_mut(&spi_r).expect("SA");
        // A resumed session already has its old address.
        if sa.lease.is_unspecified() {
            sa.lease = Ipv4Addr::from(u32::from(pool) + lease_n);
            self.next_lease += 1;
        }
        if self.a.knobs.resume_timeout > 0 {
            self.sessions.insert(
                sa.token.clone(),
                Resumable {
                    session_id: sa.session_id,
                    user: sa.user.clone(),
                    group: sa.group.clone(),
                    lease: sa.lease,
                    until: std::time::Instant::now()
                        + std::time::Duration::from_secs(self.a.knobs.resume_timeout),
                },
            );
        }
        if let Ok((suite, _)) = proposals::select_esp(
            &SaPayload {
                proposals: vec![esp.clone()],
            },
            &SaPayload {
                proposals: vec![esp.clone()],
            },
        ) {
            let l = KeyLengths {
                integ: suite.integ.map_or(0, |i| i.key_len()),
                encr: suite.encr.key_len(),
            };
            let k = keymat::child_keys(
                &sa.suite.prf,
                sa.keys.sk_d.expose(),
                None,
                &sa.ni,
                &sa.nr,
                l,
            );
            let info = acclient_core::esp::ChildSaInfo {
                spi_in: u32::from_be_bytes(spi),
                spi_out: client_spi
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes)
                    .unwrap_or(0),
                encr: suite.encr,
                integ: suite.integ,
                esn: suite.esn,
                encr_out: k.encr_r,
                integ_out: k.integ_r,
                encr_in: k.encr_i,
                integ_in: k.integ_i,
                ts_local: vec![],
                ts_remote: vec![],
            };
            if let (Some(peer), Some(e)) = (sa.peer, acclient_core::esp::EspSa::new(&info)) {
                log(&format!(
                    "ESP {}{} SPIs {:08x}_i {:08x}_o for {}",
                    suite.name(),
                    if suite.esn { " with ESN" } else { "" },
                    info.spi_in,
                    info.spi_out,
                    sa.lease
                ));
                self.dp.add(sa.lease, peer, e);
            }
        }
        sa.stage = Stage::Up;
        let lease = sa.lease;
        let complete_xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><config-auth client=\"vpn\" type=\"complete\"><version who=\"sg\">9.0(2)8</version><session-id>{}</session-id><session-token>{}</session-token></config-auth>\0", sa.session_id, sa.token);
        let octets = lease.octets();
        let mask = [255u8, 255, 255, 255];
        let dns_o = dns.map(|d| d.octets());
        let (u0, u1800, u20) = (
            0u32.to_be_bytes(),
            1800u32.to_be_bytes(),
            self.a.knobs.keepalive_attr.to_be_bytes(),
        );
        let mtu = 1406u16.to_be_bytes();
        let dpd_attr = self.a.knobs.dpd_attr.to_be_bytes();
        let split: Vec<[u8; 8]> = self
            .a
            .knobs
            .split
            .iter()
            .map(|(n, l)| {
                let m = if *l == 0 { 0 } else { u32::MAX << (32 - l) };
                let mut v = [0u8; 8];
                v[..4].copy_from_slice(&n.octets());
                v[4..].copy_from_slice(&m.to_be_bytes());
                v
            })
            .collect();
        let mut attrs = vec![
            CfgAttribute {
                ty: CfgAttr::INTERNAL_IP4_ADDRESS,
                value: &octets,
            },
            CfgAttribute {
                ty: CfgAttr::INTERNAL_IP4_NETMASK,
                value: &mask,
            },
            CfgAttribute {
                ty: CfgAttr::APPLICATION_VERSION,
                value: b"ASA 100.7(6)116\0",
            },
            CfgAttribute {
                ty: CfgAttr(cisco::PFS),
                value: &[0],
            },
            CfgAttribute {
                ty: CfgAttr(cisco::SESSION_TIMEOUT),
                value: &u0,
            },
            CfgAttribute {
                ty: CfgAttr(cisco::DISCONNECT_TIMEOUT),
                value: &u1800,
            },
            CfgAttribute {
                ty: CfgAttr(cisco::IDLE_TIMEOUT),
                value: &u1800,
            },
            CfgAttribute {
                ty: CfgAttr(cisco::DPD),
                value: &dpd_attr,
            },
            CfgAttribute {
                ty: CfgAttr(cisco::KEEPALIVE),
                value: &u20,
            },
            CfgAttribute {
                ty: CfgAttr(cisco::MTU),
                value: &mtu,
            },
            CfgAttribute {
                ty: CfgAttr(cisco::COMPLETE_XML),
                value: complete_xml.as_bytes(),
            },
        ];
        for v in &split {
            attrs.push(CfgAttribute {
                ty: CfgAttr::INTERNAL_IP4_SUBNET,
                value: v,
            });
        }
        let domain = self.a.knobs.domain.clone().unwrap_or_default();
        let split_dns = self.a.knobs.split_dns.clone().unwrap_or_default();
        if !domain.is_empty() {
            attrs.push(CfgAttribute {
                ty: CfgAttr(cisco::DEF_DOMAIN),
                value: domain.as_bytes(),
            });
        }
        if !split_dns.is_empty() {
            attrs.push(CfgAttribute {
                ty: CfgAttr(cisco::SPLIT_DNS),
                value: split_dns.as_bytes(),
            });
        }
        let banner = self.a.knobs.banner.clone().unwrap_or_default();
        if !banner.is_empty() {
            attrs.push(CfgAttribute {
                ty: CfgAttr(cisco::BANNER),
                value: banner.as_bytes(),
            });
        }
        // Fault knob: a CP whose first attribute claims more bytes than there are.
        let bad_cp = [2u8, 0, 0, 0, 0, 1, 0xff, 0xff, 192, 0, 2];
        let broken = self.a.knobs.malformed.as_deref() == Some("cp");
        if let Some(d) = &dns_o {
            attrs.insert(
                2,
                CfgAttribute {
                    ty: CfgAttr::INTERNAL_IP4_DNS,
                    value: d,
                },
            );
        }
        let tsi = TsPayload {
            selectors: vec![TrafficSelector::range(IpAddr::V4(lease), IpAddr::V4(lease))],
        };
        let net = u32::from(protected.0);
        let last = if protected.1 == 0 {
            u32::MAX
        } else {
            net | (u32::MAX >> protected.1)
        };
        let tsr = TsPayload {
            selectors: vec![TrafficSelector::range(
                IpAddr::V4(Ipv4Addr::from(net)),
                IpAddr::V4(Ipv4Addr::from(last)),
            )],
        };
        let p = [
            Payload::from(PayloadBody::Auth(Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: &my_auth,
            })),
            if broken {
                log("fault knob: sending a malformed CFG_REPLY");
                Payload::from(PayloadBody::Unknown(PayloadType::CP, &bad_cp))
            } else {
                Payload::from(PayloadBody::Cp(ConfigPayload {
                    cfg_type: CfgType::CFG_REPLY,
                    attributes: attrs,
                }))
            },
            Payload::from(PayloadBody::Sa(SaPayload {
                proposals: vec![esp],
            })),
            Payload::from(PayloadBody::TsI(tsi)),
            Payload::from(PayloadBody::TsR(tsr)),
            Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::ESP_TFC_PADDING_NOT_SUPPORTED,
                &[],
            ))),
            Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::NON_FIRST_FRAGMENTS_ALSO,
                &[],
            ))),
        ];
        log(&format!("CHILD_SA established, address {lease} assigned"));
        self.seal(spi_r, ExchangeType::IKE_AUTH, id, &p)
    }

    /// DPD requests (empty INFORMATIONAL) for every established SA.
    fn dpd_requests(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
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
    fn lose(&mut self) -> bool {
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
fn restrict(offer: &SaPayload, suite: Option<&str>) -> SaPayload {
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

/// The ESP data plane: inbound halves by SPI, outbound halves by the
/// client's leased address, each behind its own lock so the two directions
/// do not wait for each other.
#[derive(Default)]
struct DataPlane {
    inbound: Mutex<HashMap<u32, acclient_core::esp::EspIn>>,
    outbound: Mutex<HashMap<Ipv4Addr, (acclient_core::esp::EspOut, SocketAddr)>>,
    tun: Mutex<Option<Arc<tun_rs::SyncDevice>>>,
    faults: bool,
}

impl DataPlane {
    fn add(&self, lease: Ipv4Addr, peer: SocketAddr, sa: acclient_core::esp::EspSa) {
        let acclient_core::esp::EspSa { out, inp } = sa;
        self.inbound.lock().expect("dp").insert(inp.spi(), inp);
        self.outbound.lock().expect("dp").insert(lease, (out, peer));
    }

    fn tun(&self) -> Option<Arc<tun_rs::SyncDevice>> {
        self.tun.lock().expect("dp").clone()
    }

    /// ESP packets from clients (a GRO batch of `seg`-byte datagrams):
    /// open each and hand it to the TUN device, one lock for the batch.
    fn inbound(&self, batch: &mut [u8], seg: usize, out: &mut SendBatch) {
        let tun = self.tun();
        let mut map = self.inbound.lock().expect("dp");
        for pkt in batch.chunks_mut(seg.max(1)) {
            let Some(spi) = acclient_core::esp::spi_of(pkt) else {
                continue;
            };
            let Some(sa) = map.get_mut(&spi) else {
                continue;
            };
            match sa.decapsulate(pkt) {
                Ok(ip) if !ip.is_empty() => {
                    out.push(ip);
                    if out.is_full() {
                        if let Some(t) = &tun {
                            let _ = out.send_sync(t);
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => log(&format!("ESP from a client dropped: {e:?}")),
            }
        }
        // One coalesced write per flow where the kernel allows (TUN GRO).
        if let Some(t) = &tun {
            let _ = out.send_sync(t);
        }
    }

    /// Packets for the pool, read from the TUN device, sealed to their
    /// client, sent in GSO batches (one `sendmsg` per run of packets to the
    /// same client).
    fn outbound_loop(&self, dev: Arc<tun_rs::SyncDevice>, sock: Arc<UdpSocket>) {
        use acclient_core::driver::udp::GsoBatch;
        use std::os::fd::{AsRawFd, BorrowedFd};
        let mut rb = RecvBatch::new(1500);
        let mut batch = GsoBatch::default();
        let mut to: Option<SocketAddr> = None;
        let mut n_out: u64 = 0;
        let _ = dev.set_nonblocking(true);
        let flush = |batch: &mut GsoBatch, to: Option<SocketAddr>| {
            while !batch.is_empty() {
                match batch.flush_to(&*sock, to) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_micros(50))
                    }
                    _ => break,
                }
            }
        };
        loop {
            match rb.recv_sync(&dev) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    flush(&mut batch, to);
                    // SAFETY: `dev` owns the descriptor and outlives this borrow.
                    let fd = unsafe { BorrowedFd::borrow_raw(dev.as_raw_fd()) };
                    let mut p = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
                    let _ = nix::poll::poll(&mut p, nix::poll::PollTimeout::NONE);
                    continue;
                }
                Err(_) => continue,
            };
            // One read may be a whole TCP burst, cut into packets (TUN TSO).
            for buf in rb.packets() {
                let n = buf.len();
                if n < 20 || buf[0] >> 4 != 4 {
                    continue;
                }
                let dst = Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]);
                let mut map = self.outbound.lock().expect("dp");
                let Some((sa, peer)) = map.get_mut(&dst) else {
                    continue;
                };
                let peer = *peer;
                let len = sa.sealed_len(n);
                if to != Some(peer) || batch.reserve(len).is_none() {
                    flush(&mut batch, to);
                    to = Some(peer);
                }
                let fault = self.faults && (n_out + 1).is_multiple_of(10);
                let mut last = Vec::new();
                match batch.reserve(len) {
                    Some(room) => match sa.encapsulate(&buf[..n], room) {
                        Ok(m) => {
                            if fault {
                                last = room[..m].to_vec();
                            }
                            batch.commit(m)
                        }
                        Err(_) => continue,
                    },
                    None => continue,
                }
                n_out += 1;
                if fault {
                    // Fault knob: a corrupted packet with a fresh sequence number
                    // (ICV, checked only after the replay window lets it through),
                    // the packet just sent again (replay), and one with a SPI
                    // nobody has.
                    let mut bad = vec![0u8; len + 64];
                    let k = sa.encapsulate(&buf[..n], &mut bad).unwrap_or(0);
                    bad.truncate(k);
                    if k > 0 {
                        bad[k / 2] ^= 0x55;
                    }
                    drop(map);
                    flush(&mut batch, to);
                    let mut spi = last.clone();
                    if spi.len() >= 4 {
                        spi[..4].copy_from_slice(&0x0bad_5b15u32.to_be_bytes());
                    }
                    for d in [&last, &bad, &spi] {
                        let _ = sock.send_to(d, peer);
                    }
                    log("fault knob: sent a replayed, a corrupted and an unknown-SPI ESP packet");
                }
            }
        }
    }
}

fn serve(gw: Arc<Mutex<Gw>>, sock: Arc<UdpSocket>, nat: bool) {
    let mut buf = vec![0u8; 65536];
    let dp = gw.lock().expect("gateway lock").dp.clone();
    if nat {
        acclient_core::driver::udp::enable_gro(&*sock);
    }
    let mut cmsg = acclient_core::driver::udp::gro_cmsg_space();
    let mut out = SendBatch::default();
    loop {
        let Ok((total, seg, from)) =
            acclient_core::driver::udp::recv_gro(&*sock, &mut buf, &mut cmsg)
        else {
            continue;
        };
        let Some(from) = from else { continue };
        // GRO hands over several datagrams of `seg` bytes back to back
        // (ESP, and equally sized IKE fragments too).
        // ESP (the common case): the whole batch at once.
        if nat
            && total >= 8
            && buf[..4] != [0, 0, 0, 0]
            && buf[..total]
                .chunks(seg)
                .all(|d| d.len() >= 8 && d[..4] != [0, 0, 0, 0])
        {
            dp.inbound(&mut buf[..total], seg, &mut out);
            continue;
        }
        for d in buf[..total].chunks_mut(seg) {
            if nat && d.len() >= 8 && d[..4] != [0, 0, 0, 0] {
                dp.inbound(d, d.len(), &mut out); // ESP
                continue;
            }
            let data = if nat {
                match &d[..] {
                    [0, 0, 0, 0, rest @ ..] => rest,
                    [0xff] => {
                        log(&format!("NAT-T keepalive from {from}"));
                        continue;
                    }
                    _ => continue,
                }
            } else {
                &d[..]
            };
            handle_ike(&gw, &sock, nat, from, data);
        }
    }
}

fn handle_ike(gw: &Mutex<Gw>, sock: &UdpSocket, nat: bool, from: SocketAddr, data: &[u8]) {
    let mut g = gw.lock().expect("gateway lock");
    if g.lose() {
        log("fault knob: dropped a received datagram");
        return;
    }
    let answers = g.handle(from, data);
    let delay = g.a.knobs.delay_ms;
    if delay > 0 {
        drop(g);
        std::thread::sleep(std::time::Duration::from_millis(delay));
        g = gw.lock().expect("gateway lock");
    }
    for d in answers {
        // Fault knobs on Cisco fragments (next payload 132, number at byte 34).
        if d.len() > 35 && d[16] == 132 {
            let n = d[34];
            if g.a.knobs.stall_fragment == Some(n) {
                log(&format!("fault knob: withholding fragment {n}"));
                continue;
            }
            if g.a.knobs.drop_fragment == Some(n) {
                log(&format!("fault knob: dropping fragment {n} once"));
                g.a.knobs.drop_fragment = None;
                continue;
            }
        }
        let mut out = Vec::with_capacity(d.len() + 4);
        if nat {
            out.extend_from_slice(&[0, 0, 0, 0]);
        }
        out.extend_from_slice(&d);
        let _ = sock.send_to(&out, from);
        if g.a.knobs.dup {
            let _ = sock.send_to(&out, from);
        }
    }
}

fn main() {
    let a = parse_args();
    let ike = Arc::new(
        UdpSocket::bind(SocketAddr::new(a.listen, 500))
            .unwrap_or_else(|e| usage(&format!("cannot bind UDP 500: {e}"))),
    );
    let nat = Arc::new(
        UdpSocket::bind(SocketAddr::new(a.listen, 4500))
            .unwrap_or_else(|e| usage(&format!("cannot bind UDP 4500: {e}"))),
    );
    {
        // Bursts at line rate overflow the global default receive buffer.
        use nix::sys::socket::{setsockopt, sockopt};
        let n: usize = 4 << 20;
        if setsockopt(&*nat, sockopt::RcvBufForce, &n).is_err() {
            let _ = setsockopt(&*nat, sockopt::RcvBuf, &n);
        }
        let _ = setsockopt(&*nat, sockopt::SndBufForce, &n);
    }
    log(&format!(
        "listening on {}:500 and :4500, MTU {}, {} users, groups {:?}",
        a.listen,
        a.mtu,
        a.users.len(),
        a.groups
    ));
    let dp = Arc::new(DataPlane {
        faults: a.knobs.esp_faults,
        ..Default::default()
    });
    if let Some(name) = &a.knobs.tun {
        // The pool's /24 is routed into the device; the gateway's address in
        // it is the last one.
        let net = u32::from(a.pool) & 0xffff_ff00;
        let dev = Arc::new(
            tun_rs::DeviceBuilder::new()
                .name(name)
                .ipv4(Ipv4Addr::from(net | 254), 24, None)
                .mtu(1500)
                .offload(true)
                .build_sync()
                .unwrap_or_else(|e| usage(&format!("cannot create TUN {name}: {e}"))),
        );
        *dp.tun.lock().expect("dp") = Some(dev.clone());
        let (d2, n2) = (dp.clone(), nat.clone());
        std::thread::spawn(move || d2.outbound_loop(dev, n2));
        log(&format!("data plane on {name}"));
    }
    let gw = Arc::new(Mutex::new(Gw {
        dp,
        a,
        sas: HashMap::new(),
        sessions: HashMap::new(),
        next_session: 0,
        otp_used: false,
        next_lease: 0,
        rng: SystemRng,
        drop_state: 1,
    }));
    let (g2, n2) = (gw.clone(), nat.clone());
    std::thread::spawn(move || serve(g2, n2, true));
    let dpd = gw.lock().expect("gateway lock").a.knobs.dpd;
    if dpd > 0 {
        let (g3, n3) = (gw.clone(), nat.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(dpd));
            let reqs = g3.lock().expect("gateway lock").dpd_requests();
            for (to, m) in reqs {
                let _ = n3.send_to(&[&[0u8, 0, 0, 0][..], &m].concat(), to);
            }
        });
    }
    serve(gw, ike, false);
}
