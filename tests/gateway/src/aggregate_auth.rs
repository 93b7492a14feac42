//! The EAP-AnyConnect aggregate-auth server (anyconnect-ikev2.md §1): hello,
//! auth-request forms by [`Round`], client certificates, host scan, session
//! resumption, complete.

use acclient_core::crypto::auth::signed_octets;
use acclient_core::eap::anyconnect::{Frame, TLV_XML};
use acclient_core::ike::cisco;
use acclient_core::wire::*;

use super::*;

pub(crate) fn xml_head(kind: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"{kind}\">\n<version who=\"sg\">9.0(2)8</version>\n")
}

/// What the gateway reads from a client document.
pub(crate) struct ClientDoc {
    /// `type` of `config-auth` (init, auth-reply, ack).
    pub(crate) ty: String,
    /// `group-select`.
    pub(crate) group: Option<String>,
    /// Children of `<auth>`: name → value.
    pub(crate) auth: Vec<(String, String)>,
    /// `session-token` / `session-id` (a reconnect's offer; empty otherwise).
    pub(crate) session: (String, String),
    /// `device-id` / `version` (what the client reports in `init`).
    pub(crate) client: (String, String),
}

pub(crate) fn client_doc(xml: &[u8]) -> Option<ClientDoc> {
    use quick_xml::events::Event as X;
    let mut r = quick_xml::Reader::from_reader(xml);
    let (mut ty, mut group, mut auth, mut path, mut text) =
        (None, None, Vec::new(), Vec::<String>::new(), String::new());
    let mut session = (String::new(), String::new());
    let mut client = (String::new(), String::new());
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
                    Some("config-auth") if n == "device-id" => client.0 = text.trim().to_string(),
                    Some("config-auth") if n == "version" => client.1 = text.trim().to_string(),
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
        client,
    })
}

impl Gw {
    pub(crate) fn eap_req(&mut self, spi_r: [u8; 8], xml: &str) -> Vec<u8> {
        let sa = self.sas.get_mut(&spi_r).expect("SA exists");
        sa.eap_id = sa.eap_id.wrapping_add(1);
        Frame::build(1, sa.eap_id, &[(TLV_XML, xml.as_bytes())])
    }

    pub(crate) fn auth_request(&mut self, spi_r: [u8; 8], error: bool) -> String {
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

    /// NewPassword: the password expired (new + confirm); Otp: a code.
    pub(crate) fn second_form(&mut self, spi_r: [u8; 8], round: Round, error: bool) -> String {
        let opaque = self.sas[&spi_r].opaque.clone();
        let mut x = xml_head("auth-request") + &opaque + "\n";
        if round == Round::NewPassword {
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

    pub(crate) fn ike_auth(
        &mut self,
        spi_r: [u8; 8],
        id: u32,
        payloads: &[Payload<'_>],
    ) -> Vec<Vec<u8>> {
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
                // What the client says it is (an ASA's DAP decides on these).
                for p in payloads {
                    if let PayloadBody::Cp(cp) = &p.body {
                        for a in &cp.attributes {
                            let v = String::from_utf8_lossy(a.value);
                            match a.ty.0 {
                                7 => log(&format!("client application version: {v}")),
                                cisco::HOSTNAME => log(&format!("client host name: {v}")),
                                _ => {}
                            }
                        }
                    }
                }
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
                    client,
                }) = client_doc(&xml)
                else {
                    return fail(self, "malformed XML from the client");
                };
                log(&format!("EAP-AnyConnect: received {ty}"));
                if ty == "init" {
                    log(&format!(
                        "client device-id: {}, version: {}",
                        client.0, client.1
                    ));
                }
                match (stage, ty.as_str()) {
                    (Stage::Init, "init") => {
                        if let Some(g) = group.filter(|g| self.a.groups.contains(g)) {
                            self.sas.get_mut(&spi_r).expect("SA").group = Some(g);
                        }
                        if !session.0.is_empty() && self.sas[&spi_r].round != Round::ClientCert {
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
                            && self.sas[&spi_r].round != Round::ClientCert
                        {
                            let opaque = self.sas[&spi_r].opaque.clone();
                            x = xml_head("auth-request")
                                + &opaque
                                + "\n<client-cert-request/>\n</config-auth>\n";
                            let sa = self.sas.get_mut(&spi_r).expect("SA");
                            sa.round = Round::ClientCert;
                            sa.stage = Stage::Init;
                            let e = self.eap_req(spi_r, &x);
                            return self.seal(
                                spi_r,
                                ExchangeType::IKE_AUTH,
                                id,
                                &[Payload::from(PayloadBody::Eap(&e))],
                            );
                        }
                        if self.sas[&spi_r].round == Round::ClientCert {
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
                            let ok_sig = tlv_signature(&chain[0], sa.suite.prf.id(), &octets, &sig);
                            if let Err(e) = ok_chain.map_err(|e| e.to_string()).and(ok_sig) {
                                return fail(self, &format!("client certificate refused: {e}"));
                            }
                            let subject = acclient_core::crypto::sig::summarize(&chain[0])
                                .map(|s| s.subject)
                                .unwrap_or_default();
                            log(&format!(
                                "client certificate {subject} accepted (chain and signature)"
                            ));
                            self.sas.get_mut(&spi_r).expect("SA").round = Round::Login;
                        }
                        if self.a.knobs.host_scan {
                            let opaque = self.sas[&spi_r].opaque.clone();
                            x = xml_head("auth-request") + &opaque + "\n<host-scan>\n<host-scan-ticket>TICKET42</host-scan-ticket>\n<host-scan-token>TOKEN42</host-scan-token>\n<host-scan-base-uri>/CACHE</host-scan-base-uri>\n<host-scan-wait-uri>/+CSCOE+/sdesktop/wait.html</host-scan-wait-uri>\n</host-scan>\n</config-auth>\n";
                            self.sas.get_mut(&spi_r).expect("SA").round = Round::HostScan;
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
                        if round == Round::HostScan {
                            // Host scan: the token must come back; then the login form.
                            if !String::from_utf8_lossy(&xml)
                                .contains("<host-scan-token>TOKEN42</host-scan-token>")
                            {
                                return fail(self, "host-scan token missing from the auth-reply");
                            }
                            log("host scan token received");
                            self.sas.get_mut(&spi_r).expect("SA").round = Round::Login;
                            let x = self.auth_request(spi_r, false);
                            let e = self.eap_req(spi_r, &x);
                            return self.seal(
                                spi_r,
                                ExchangeType::IKE_AUTH,
                                id,
                                &[Payload::from(PayloadBody::Eap(&e))],
                            );
                        }
                        if round != Round::Login {
                            let answer = auth
                                .iter()
                                .find(|(k, _)| k == "password")
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default();
                            let ok = match round {
                                Round::NewPassword => !answer.is_empty(),
                                _ => {
                                    let fresh = !(self.a.knobs.otp_once && self.otp_used);
                                    fresh && self.a.knobs.otp.as_deref() == Some(answer.as_str())
                                }
                            };
                            if ok && round == Round::Otp {
                                self.otp_used = true;
                            }
                            log(&format!(
                                "second round {}: {}",
                                if round == Round::NewPassword {
                                    "new password"
                                } else {
                                    "OTP"
                                },
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
                            let next = if round == Round::NewPassword && self.a.knobs.otp.is_some()
                            {
                                Round::Otp
                            } else {
                                Round::Login
                            };
                            self.sas.get_mut(&spi_r).expect("SA").round = next;
                            if next != Round::Login {
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
                            Round::NewPassword
                        } else if self.a.knobs.otp.is_some() {
                            Round::Otp
                        } else {
                            Round::Login
                        };
                        if round != Round::Login {
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
    pub(crate) fn try_resume(
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
    pub(crate) fn complete(&mut self, spi_r: [u8; 8], id: u32) -> Vec<Vec<u8>> {
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
}

/// Checks TLV 1 as a gateway that follows the PRF does: RSA PKCS#1 v1.5
/// with exactly the PRF's hash (SHA-1 for a SHA-1 PRF, not "SHA-1 or
/// SHA-256"), ECDSA fixed r | s with the curve's hash (RFC 4754).
fn tlv_signature(
    ee: &[u8],
    prf: PrfId,
    signed: &[u8],
    sig: &[u8],
) -> std::result::Result<(), String> {
    use aws_lc_rs::signature as sg;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, c) = X509Certificate::from_der(ee).map_err(|_| "unparsable certificate".to_string())?;
    let spki = &c.tbs_certificate.subject_pki;
    let key = spki.subject_public_key.data.as_ref();
    let alg: &'static dyn sg::VerificationAlgorithm =
        match (spki.algorithm.algorithm.to_id_string().as_str(), key.len()) {
            ("1.2.840.113549.1.1.1", _) => match prf {
                PrfId::HMAC_SHA1 => &sg::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                PrfId::HMAC_SHA2_384 => &sg::RSA_PKCS1_2048_8192_SHA384,
                PrfId::HMAC_SHA2_512 => &sg::RSA_PKCS1_2048_8192_SHA512,
                _ => &sg::RSA_PKCS1_2048_8192_SHA256,
            },
            ("1.2.840.10045.2.1", 65) => &sg::ECDSA_P256_SHA256_FIXED,
            ("1.2.840.10045.2.1", 97) => &sg::ECDSA_P384_SHA384_FIXED,
            ("1.2.840.10045.2.1", 133) => &sg::ECDSA_P521_SHA512_FIXED,
            (oid, _) => return Err(format!("unsupported client key {oid}")),
        };
    sg::UnparsedPublicKey::new(alg, key)
        .verify(signed, sig)
        .map_err(|_| {
            format!("RSA/ECDSA signature verification failed for EAP anyconnect tlv (PRF {prf:?})")
        })
}
