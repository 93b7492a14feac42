//! IKE_AUTH as initiator (RFC 7296 §1.2, §2.15, §2.16): the gateway proves
//! itself (PSK or certificate), we prove ourselves with a PSK AUTH or with
//! EAP rounds, then AUTH keyed from the MSK (or SK_pi/SK_pr when the method
//! made none, as EAP-AnyConnect does).
//!
//! ```text
//! HDR, SK {[V(GRANITE)], IDi, [CERTREQ], [IDr], [AUTH], CP(CFG_REQUEST), SAi2, TSi, TSr, N(INITIAL_CONTACT)}  -->
//!                      <--  HDR, SK {IDr, [CERT+], AUTH, EAP}        (or CP, SAr2, TSi, TSr with PSK)
//! HDR, SK {EAP}  -->   <--  HDR, SK {EAP}                            (rounds, prompts between them)
//! HDR, SK {AUTH} -->   <--  HDR, SK {AUTH, CP(CFG_REPLY), SAr2, TSi, TSr}
//! ```
//! The states are types: each variant holds what that step needs.

use std::net::{IpAddr, SocketAddr};

use tracing::info;

use super::child_create;
use super::ike_config;
use super::ike_eap::{EapMethod, EapStep, Resume};
use super::Ctx;
use crate::crypto::auth::{shared_key_auth, signed_octets};
use crate::crypto::sig::{self, CertSummary};
use crate::crypto::Secret;
use crate::eap::anyconnect::xml::Complete;
use crate::error::{ApiMisuse, DisconnectReason, PeerMisbehaved};
use crate::event::{Answer, Event, Progress, PromptId, PromptKind};
use crate::ike::cisco;
use crate::ike::exchange::Request;
use crate::settings::{AuthMethod as LocalAuth, Identity};
use crate::wire::{
    Auth, AuthMethod, Cert, CertEncoding, CfgAttribute, CfgType, ConfigPayload, ExchangeType, Id,
    IdType, Notify, NotifyType, Payload, PayloadBody, PayloadType, SaPayload,
};

/// What IKE_AUTH signs and what its CHILD SA was offered with.
pub(crate) struct AuthData {
    /// Our IKE_SA_INIT request and the gateway's response, as sent (§2.15).
    pub(crate) msg1: Vec<u8>,
    pub(crate) msg2: Vec<u8>,
    pub(crate) ni: Vec<u8>,
    pub(crate) nr: Vec<u8>,
    /// Our IDi payload body (type, reserved, data) — what AUTH covers.
    pub(crate) idi_body: Vec<u8>,
    /// The CHILD SA's inbound SPI and the ESP proposals offered with it.
    pub(crate) child_spi: u32,
    pub(crate) esp_offer: SaPayload,
}

enum State {
    /// The first response: IDr, [CERT+], AUTH (and EAP's first request).
    ExpectGatewayAuth,
    /// The gateway's certificate is not trusted: the user decides. The
    /// response waits here, to be processed again if accepted.
    AwaitingTrust {
        prompt: PromptId,
        first: PayloadType,
        plaintext: Vec<u8>,
        reason: String,
        summary: CertSummary,
    },
    /// EAP rounds: the gateway's next request.
    ExpectEap { idr_body: Vec<u8> },
    /// A prompt inside EAP (password, form, host scan); no request is
    /// outstanding while the user answers (we are the initiator).
    AwaitingAnswer {
        idr_body: Vec<u8>,
        prompt: PromptId,
        resume: Resume,
    },
    /// EAP succeeded; our final AUTH is outstanding.
    ExpectFinalAuth {
        idr_body: Vec<u8>,
        msk: Option<Secret>,
    },
}

/// IKE_AUTH in progress.
pub(crate) struct IkeAuth {
    data: AuthData,
    eap: Option<EapMethod>,
    state: State,
    /// A certificate the user accepted at the prompt (pin-sha256).
    accepted_pin: Option<String>,
}

/// IKE_AUTH is done: what the session keeps.
pub(crate) struct Established {
    pub(crate) data: AuthData,
    pub(crate) anyconnect: Option<Complete>,
    pub(crate) resumed: bool,
}

/// What an IKE_AUTH response (or an answer) leads to.
pub(crate) enum AuthStep {
    /// A request was sent or a prompt raised: go on.
    Continue(Box<IkeAuth>),
    /// The user accepted the certificate: process this response again.
    Reprocess(Box<IkeAuth>, PayloadType, Vec<u8>),
    /// Authenticated both ways; the response carries the CHILD SA.
    Established(Box<Established>),
    /// The login ends.
    Failed(DisconnectReason),
}

fn id_payload(identity: &Identity, local: SocketAddr) -> (IdType, Vec<u8>) {
    match identity {
        Identity::Fqdn(s) => (IdType::FQDN, s.as_bytes().to_vec()),
        Identity::Email(s) => (IdType::RFC822_ADDR, s.as_bytes().to_vec()),
        Identity::KeyId(s) => (IdType::KEY_ID, s.as_bytes().to_vec()),
        Identity::Group(s) => (IdType::ID_GROUP, s.as_bytes().to_vec()),
        Identity::Address => match local.ip() {
            IpAddr::V4(a) => (IdType::IPV4_ADDR, a.octets().to_vec()),
            IpAddr::V6(a) => (IdType::IPV6_ADDR, a.octets().to_vec()),
        },
    }
}

/// Parses a textual remote identity the way strongSwan does: an IP address,
/// an FQDN, or user@fqdn.
fn remote_id_bytes(s: &str) -> (IdType, Vec<u8>) {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => (IdType::IPV4_ADDR, a.octets().to_vec()),
        Ok(IpAddr::V6(a)) => (IdType::IPV6_ADDR, a.octets().to_vec()),
        Err(_) if s.contains('@') => (IdType::RFC822_ADDR, s.as_bytes().to_vec()),
        Err(_) => (IdType::FQDN, s.as_bytes().to_vec()),
    }
}

/// CERTREQ data: the SHA-1 of each trust anchor's SPKI (§3.7), so that
/// gateways send the certificate that chains to one we know.
fn certreq(anchors: &[Vec<u8>]) -> Vec<u8> {
    use x509_parser::prelude::FromDer;
    anchors
        .iter()
        .filter_map(|a| {
            let (_, c) = x509_parser::certificate::X509Certificate::from_der(a).ok()?;
            Some(
                aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                    c.tbs_certificate.subject_pki.raw,
                )
                .as_ref()
                .to_vec(),
            )
        })
        .flatten()
        .collect()
}

impl IkeAuth {
    /// Sends the first IKE_AUTH request (the IKE SA exists in `ctx.ex`).
    pub(crate) fn start(
        ctx: &mut Ctx<'_>,
        msg1: Vec<u8>,
        msg2: Vec<u8>,
        ni: Vec<u8>,
        nr: Vec<u8>,
    ) -> Box<IkeAuth> {
        let s = ctx.settings;
        let (idt, idd) = id_payload(&s.identity, s.local);
        let (child_spi, esp_offer) = child_create::offer(ctx);
        let idi = Id {
            ty: idt,
            data: &idd,
        };
        let idi_body = idi.body();
        let anyconnect = matches!(s.auth, LocalAuth::AnyConnect(_));
        let mut payloads = Vec::new();
        if anyconnect {
            // Seed 004: the first IKE_AUTH starts with the 16-byte "GRANITE" VID.
            payloads.push(Payload::from(PayloadBody::VendorId(&cisco::VID_GRANITE)));
        }
        payloads.push(Payload::from(PayloadBody::IdI(idi)));
        let cr = certreq(&s.trust.anchors);
        if matches!(s.auth, LocalAuth::Eap(_) | LocalAuth::AnyConnect(_)) {
            payloads.push(Payload::from(PayloadBody::CertReq(Cert {
                encoding: CertEncoding::X509_SIGNATURE,
                data: &cr,
            })));
        }
        let idr = s.remote_id.as_deref().map(remote_id_bytes);
        if let Some((t, d)) = &idr {
            payloads.push(Payload::from(PayloadBody::IdR(Id { ty: *t, data: d })));
        }
        let auth_data;
        if let (LocalAuth::Psk(psk), Some(ike)) = (&s.auth, ctx.ex.ike.as_ref()) {
            let octets = signed_octets(
                &msg1,
                &nr,
                &ike.suite.prf,
                ike.keys.sk_pi.expose(),
                &idi_body,
            );
            auth_data = shared_key_auth(&ike.suite.prf, psk.expose(), &octets);
            payloads.push(Payload::from(PayloadBody::Auth(Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: &auth_data,
            })));
        }
        let attrs = ike_config::request(s);
        payloads.push(Payload::from(PayloadBody::Cp(ConfigPayload {
            cfg_type: CfgType::CFG_REQUEST,
            attributes: attrs
                .iter()
                .map(|(t, v)| CfgAttribute { ty: *t, value: v })
                .collect(),
        })));
        payloads.push(Payload::from(PayloadBody::Sa(esp_offer.clone())));
        let (tsi, tsr) = child_create::selectors(s);
        payloads.push(Payload::from(PayloadBody::TsI(tsi)));
        payloads.push(Payload::from(PayloadBody::TsR(tsr)));
        payloads.push(Payload::from(PayloadBody::Notify(Notify::new(
            NotifyType::INITIAL_CONTACT,
            &[],
        ))));
        let eap = EapMethod::new(s, &idd);
        ctx.send(ExchangeType::IKE_AUTH, &payloads, Request::Auth);
        Box::new(IkeAuth {
            data: AuthData {
                msg1,
                msg2,
                ni,
                nr,
                idi_body,
                child_spi,
                esp_offer,
            },
            eap,
            state: State::ExpectGatewayAuth,
            accepted_pin: None,
        })
    }

    /// Whether the gateway proved its identity (a DELETE to it is worth sending).
    pub(crate) fn gateway_verified(&self) -> bool {
        !matches!(
            self.state,
            State::ExpectGatewayAuth | State::AwaitingTrust { .. }
        )
    }

    /// Whether a prompt of this task is pending (for `answer`).
    pub(crate) fn pending_prompt(&self) -> Option<PromptId> {
        match &self.state {
            State::AwaitingTrust { prompt, .. } | State::AwaitingAnswer { prompt, .. } => {
                Some(*prompt)
            }
            _ => None,
        }
    }

    /// Processes an IKE_AUTH response (decoded and rule-checked). `first`
    /// and `plaintext` are kept if a certificate prompt parks it.
    pub(crate) fn process(
        mut self: Box<Self>,
        ctx: &mut Ctx<'_>,
        payloads: &[Payload<'_>],
        first: PayloadType,
        plaintext: &[u8],
    ) -> AuthStep {
        let mut auth_error = None;
        let (mut idr, mut auth, mut eap) = (None, None, None);
        for p in payloads {
            match &p.body {
                PayloadBody::Notify(n) if n.ty.is_error() => {
                    auth_error.get_or_insert(n.ty);
                }
                PayloadBody::IdR(id) => idr = Some(id),
                PayloadBody::Auth(a) => auth = Some(a),
                PayloadBody::Eap(e) => eap = Some(*e),
                _ => {}
            }
        }
        if let Some(n) = auth_error {
            if auth.is_none() || n == NotifyType::AUTHENTICATION_FAILED {
                return AuthStep::Failed(match n {
                    // Many gateways answer a declined method with this
                    // notify rather than EAP Failure: say which it was.
                    NotifyType::AUTHENTICATION_FAILED => {
                        match self.eap.as_ref().and_then(EapMethod::declined) {
                            Some(m) => DisconnectReason::EapMethodRefused(m),
                            None => DisconnectReason::AuthFailed(String::new()),
                        }
                    }
                    NotifyType::NO_PROPOSAL_CHOSEN => {
                        DisconnectReason::NoProposalChosen("for the CHILD SA".into())
                    }
                    other => DisconnectReason::PeerNotify(other),
                });
            }
        }
        let missing = |what| AuthStep::Failed(PeerMisbehaved::MissingPayload(what).into());
        match std::mem::replace(&mut self.state, State::ExpectGatewayAuth) {
            State::ExpectGatewayAuth => {
                let (Some(idr), Some(auth)) = (idr, auth) else {
                    return missing("IKE_AUTH response without IDr and AUTH");
                };
                if let Some(want) = &ctx.settings.remote_id {
                    let (t, d) = remote_id_bytes(want);
                    if idr.ty != t || idr.data != &d[..] {
                        return AuthStep::Failed(DisconnectReason::GatewayAuthFailed(format!(
                            "it identified as {idr}, expected {want}"
                        )));
                    }
                }
                let scheme = match self.verify_gateway(ctx, payloads, idr, auth) {
                    Ok(Ok(scheme)) => scheme,
                    Ok(Err((summary, reason))) => {
                        let prompt = ctx.prompt(PromptKind::TrustCertificate {
                            summary: summary.clone(),
                            reason: reason.clone(),
                        });
                        self.state = State::AwaitingTrust {
                            prompt,
                            first,
                            plaintext: plaintext.to_vec(),
                            reason,
                            summary,
                        };
                        return AuthStep::Continue(self);
                    }
                    Err(r) => return AuthStep::Failed(r),
                };
                ctx.ex.peer = Some((idr.to_string(), scheme.clone()));
                ctx.events
                    .push_back(Event::Progress(Progress::GatewayAuthenticated {
                        id: idr.to_string(),
                        scheme,
                    }));
                let idr_body = idr.body();
                if self.eap.is_none() {
                    return self.established();
                }
                match eap {
                    Some(e) => self.eap_step(ctx, idr_body, e),
                    None => AuthStep::Failed(PeerMisbehaved::EapNotStarted.into()),
                }
            }
            State::ExpectEap { idr_body } => match eap {
                Some(e) => self.eap_step(ctx, idr_body, e),
                None => missing("IKE_AUTH response without EAP"),
            },
            State::ExpectFinalAuth { idr_body, msk } => {
                // Final response: AUTH keyed from the MSK or SK_pr (§2.16).
                let Some(auth) = auth else {
                    return missing("final IKE_AUTH response without AUTH");
                };
                let Some(ike) = ctx.ex.ike.as_ref() else {
                    return missing("no IKE SA");
                };
                let d = &self.data;
                let octets = signed_octets(
                    &d.msg2,
                    &d.ni,
                    &ike.suite.prf,
                    ike.keys.sk_pr.expose(),
                    &idr_body,
                );
                let key = msk.as_ref().map_or(ike.keys.sk_pr.expose(), |m| m.expose());
                let want = shared_key_auth(&ike.suite.prf, key, &octets);
                if auth.method != AuthMethod::SHARED_KEY_MIC
                    || aws_lc_rs::constant_time::verify_slices_are_equal(&want, auth.data).is_err()
                {
                    return AuthStep::Failed(DisconnectReason::GatewayAuthFailed(
                        "the final AUTH after EAP does not verify".into(),
                    ));
                }
                self.established()
            }
            // A response while a prompt is pending cannot happen: nothing is
            // outstanding then. Keep waiting for the answer.
            state @ (State::AwaitingTrust { .. } | State::AwaitingAnswer { .. }) => {
                self.state = state;
                AuthStep::Continue(self)
            }
        }
    }

    fn established(self: Box<Self>) -> AuthStep {
        let (anyconnect, resumed) = self
            .eap
            .as_ref()
            .map_or((None, false), |e| e.anyconnect_session());
        AuthStep::Established(Box::new(Established {
            data: self.data,
            anyconnect,
            resumed,
        }))
    }

    /// The user answered this task's prompt `id`.
    pub(crate) fn answer(
        mut self: Box<Self>,
        ctx: &mut Ctx<'_>,
        id: PromptId,
        answer: Answer,
    ) -> Result<AuthStep, (Box<IkeAuth>, ApiMisuse)> {
        if self.pending_prompt() != Some(id) {
            let e = if self.pending_prompt().is_some() {
                ApiMisuse::WrongPrompt
            } else {
                ApiMisuse::NoPrompt
            };
            return Err((self, e));
        }
        match std::mem::replace(&mut self.state, State::ExpectGatewayAuth) {
            State::AwaitingTrust {
                prompt,
                first,
                plaintext,
                reason,
                summary,
            } => match answer {
                Answer::Accept(true) => {
                    info!("certificate {} accepted by the user", summary.pin);
                    self.accepted_pin = Some(summary.pin);
                    Ok(AuthStep::Reprocess(self, first, plaintext))
                }
                Answer::Accept(false) => {
                    Ok(AuthStep::Failed(DisconnectReason::CertificateRefused {
                        reason,
                        subject: summary.subject,
                        pin: summary.pin,
                    }))
                }
                _ => {
                    self.state = State::AwaitingTrust {
                        prompt,
                        first,
                        plaintext,
                        reason,
                        summary,
                    };
                    Err((self, ApiMisuse::WrongAnswerType))
                }
            },
            State::AwaitingAnswer {
                idr_body,
                prompt,
                resume,
            } => {
                let Some(eap) = self.eap.as_mut() else {
                    return Err((self, ApiMisuse::NoPrompt));
                };
                match eap.answer(ctx, resume, answer) {
                    Ok(step) => Ok(self.after_eap(ctx, idr_body, step)),
                    Err((resume, e)) => {
                        self.state = State::AwaitingAnswer {
                            idr_body,
                            prompt,
                            resume,
                        };
                        Err((self, e))
                    }
                }
            }
            other => {
                self.state = other;
                Err((self, ApiMisuse::NoPrompt))
            }
        }
    }

    fn eap_step(mut self: Box<Self>, ctx: &mut Ctx<'_>, idr_body: Vec<u8>, msg: &[u8]) -> AuthStep {
        let Some(eap) = self.eap.as_mut() else {
            return AuthStep::Failed(PeerMisbehaved::EapNotStarted.into());
        };
        let step = eap.handle(ctx, msg);
        self.after_eap(ctx, idr_body, step)
    }

    fn after_eap(
        mut self: Box<Self>,
        ctx: &mut Ctx<'_>,
        idr_body: Vec<u8>,
        step: EapStep,
    ) -> AuthStep {
        match step {
            EapStep::Send(eap) => {
                let p = [Payload::from(PayloadBody::Eap(&eap))];
                ctx.send(ExchangeType::IKE_AUTH, &p, Request::Auth);
                self.state = State::ExpectEap { idr_body };
                AuthStep::Continue(self)
            }
            EapStep::Prompt(prompt, resume) => {
                self.state = State::AwaitingAnswer {
                    idr_body,
                    prompt,
                    resume,
                };
                AuthStep::Continue(self)
            }
            EapStep::CertRequest => match self.client_cert_reply(ctx) {
                Ok(eap) => {
                    info!("answering the gateway's certificate request");
                    let p = [Payload::from(PayloadBody::Eap(&eap))];
                    ctx.send(ExchangeType::IKE_AUTH, &p, Request::Auth);
                    self.state = State::ExpectEap { idr_body };
                    AuthStep::Continue(self)
                }
                Err(r) => AuthStep::Failed(r),
            },
            EapStep::Success(msk) => {
                // After EAP Success: AUTH keyed from the MSK, or from SK_pi
                // when the method made none (§2.16).
                let Some(ike) = ctx.ex.ike.as_ref() else {
                    return AuthStep::Failed(PeerMisbehaved::MissingPayload("no IKE SA").into());
                };
                let d = &self.data;
                let octets = signed_octets(
                    &d.msg1,
                    &d.nr,
                    &ike.suite.prf,
                    ike.keys.sk_pi.expose(),
                    &d.idi_body,
                );
                let key = msk.as_ref().map_or(ike.keys.sk_pi.expose(), |m| m.expose());
                let a = shared_key_auth(&ike.suite.prf, key, &octets);
                let p = [Payload::from(PayloadBody::Auth(Auth {
                    method: AuthMethod::SHARED_KEY_MIC,
                    data: &a,
                }))];
                ctx.send(ExchangeType::IKE_AUTH, &p, Request::Auth);
                self.state = State::ExpectFinalAuth { idr_body, msk };
                AuthStep::Continue(self)
            }
            EapStep::Failed(r) => AuthStep::Failed(r),
        }
    }

    /// TLV 1 of the certificate answer is the signature an IKE initiator
    /// would put in a method-1 AUTH: over RealMessage1 | Nr | prf(SK_pi, IDi').
    fn client_cert_reply(&mut self, ctx: &mut Ctx<'_>) -> Result<Vec<u8>, DisconnectReason> {
        let cert = match &ctx.settings.auth {
            LocalAuth::AnyConnect(a) => a.client_cert.as_ref(),
            _ => None,
        };
        let Some(cert) = cert else {
            return Err(DisconnectReason::AuthFailed(
                "the gateway asks for a client certificate; give --cert and --key".into(),
            ));
        };
        let ike = ctx
            .ex
            .ike
            .as_ref()
            .ok_or(PeerMisbehaved::MissingPayload("no IKE SA"))?;
        let d = &self.data;
        let octets = signed_octets(
            &d.msg1,
            &d.nr,
            &ike.suite.prf,
            ike.keys.sk_pi.expose(),
            &d.idi_body,
        );
        let sig = sig::ClientKey::from_der(cert.key.expose())
            .and_then(|s| s.sign(ike.suite.prf.id(), &octets))
            .map_err(|e| DisconnectReason::Local(e.to_string()))?;
        let p7 = crate::crypto::pkcs7::certs_only(&cert.chain);
        self.eap
            .as_mut()
            .and_then(|e| e.cert_reply(&p7, &sig))
            .ok_or(DisconnectReason::Local(
                "no certificate request pending".into(),
            ))
    }

    /// Checks the gateway's AUTH: PSK, or certificate chain + signature.
    /// `Ok(Err(..))`: the signature holds but the certificate is not
    /// trusted — what to ask the user.
    fn verify_gateway(
        &self,
        ctx: &Ctx<'_>,
        payloads: &[Payload<'_>],
        idr: &Id<'_>,
        auth: &Auth<'_>,
    ) -> Result<Result<String, (CertSummary, String)>, DisconnectReason> {
        let s = ctx.settings;
        let ike = ctx
            .ex
            .ike
            .as_ref()
            .ok_or(DisconnectReason::Local("no IKE SA".into()))?;
        let d = &self.data;
        let octets = signed_octets(
            &d.msg2,
            &d.ni,
            &ike.suite.prf,
            ike.keys.sk_pr.expose(),
            &idr.body(),
        );
        if let LocalAuth::Psk(psk) = &s.auth {
            let want = shared_key_auth(&ike.suite.prf, psk.expose(), &octets);
            if auth.method == AuthMethod::SHARED_KEY_MIC
                && aws_lc_rs::constant_time::verify_slices_are_equal(&want, auth.data).is_ok()
            {
                return Ok(Ok("PSK".into()));
            }
            return Err(DisconnectReason::GatewayAuthFailed(
                "its pre-shared key AUTH does not verify (wrong PSK?)".into(),
            ));
        }
        let certs: Vec<&[u8]> = payloads
            .iter()
            .filter_map(|p| match &p.body {
                PayloadBody::Cert(c) if c.encoding == CertEncoding::X509_SIGNATURE => Some(c.data),
                _ => None,
            })
            .collect();
        let Some((ee, inter)) = certs.split_first() else {
            return Err(DisconnectReason::GatewayAuthFailed(
                "it sent no certificate".into(),
            ));
        };
        let summary =
            sig::summarize(ee).map_err(|e| DisconnectReason::GatewayAuthFailed(e.to_string()))?;
        let scheme = sig::verify_auth(auth.method, auth.data, &octets, ee, ike.suite.prf.id())
            .map_err(|e| DisconnectReason::GatewayAuthFailed(e.to_string()))?;
        let pinned = s
            .trust
            .pins
            .iter()
            .chain(&self.accepted_pin)
            .any(|p| summary.matches_pin(p));
        if !pinned {
            let inter: Vec<Vec<u8>> = inter.iter().map(|c| c.to_vec()).collect();
            let chain = sig::verify_chain(ee, &inter, &s.trust.anchors, s.trust.unix_time)
                .and_then(|_| sig::verify_identity(ee, idr));
            if let Err(e) = chain {
                let reason = e.to_string();
                info!(
                    "gateway certificate not trusted: {reason}; subject {}, {}",
                    summary.subject, summary.pin
                );
                return Ok(Err((summary, reason)));
            }
        }
        tracing::debug!("authentication of '{idr}' with {scheme} successful");
        Ok(Ok(scheme.to_string()))
    }
}
