//! EAP inside IKE_AUTH (RFC 7296 §2.16, RFC 3748): the standard methods
//! (MSCHAPv2, MD5, GTC) and Cisco's EAP-AnyConnect aggregate auth
//! (anyconnect-ikev2.md §1), whose forms become prompts for the user.
//!
//! ```text
//! <--  HDR, SK {EAP(Request)}     HDR, SK {EAP(Response)}  -->   (rounds)
//! <--  HDR, SK {EAP(Success)}     (then the final AUTH, see ike_auth)
//! ```

use tracing::debug;

use super::Ctx;
use crate::crypto::Secret;
use crate::eap::anyconnect::form::{Form, FormHints};
use crate::eap::anyconnect::peer::{AcStep, AnyConnectPeer};
use crate::eap::anyconnect::xml::{ClientInfo, Complete};
use crate::eap::{EapPeer, Step};
use crate::error::{ApiMisuse, DisconnectReason, PeerMisbehaved};
use crate::event::{Answer, Event, Progress, PromptId, PromptKind};
use crate::settings::{AuthMethod, Settings};

/// The EAP method of this login.
pub(crate) enum EapMethod {
    /// A standard method; the password comes with the settings or a prompt.
    Standard {
        peer: EapPeer,
        password: Option<Secret>,
    },
    /// EAP-AnyConnect; `announced` once its progress line went out.
    AnyConnect(Box<AnyConnectPeer>, bool),
}

/// What a pending prompt will resume.
pub(crate) enum Resume {
    /// The standard method needs the password to answer this request.
    Password { eap: Vec<u8> },
    /// An AnyConnect login form.
    Form,
    /// AnyConnect posture assessment (host scan).
    HostScan,
}

/// What to do next.
pub(crate) enum EapStep {
    /// Send this EAP payload in the next IKE_AUTH request.
    Send(Vec<u8>),
    /// A prompt was raised; wait for its answer.
    Prompt(PromptId, Resume),
    /// The gateway asks for a client certificate (AnyConnect).
    CertRequest,
    /// EAP Success; the MSK keys the final AUTH if the method made one.
    Success(Option<Secret>),
    /// The login ends.
    Failed(DisconnectReason),
}

impl EapMethod {
    /// The declined-methods explanation of a standard method's peer (see
    /// [`EapPeer::declined`]).
    pub(crate) fn declined(&self) -> Option<String> {
        match self {
            EapMethod::Standard { peer, .. } => peer.declined(),
            EapMethod::AnyConnect(..) => None,
        }
    }

    /// The method the settings ask for, if any (PSK logins have none).
    /// `identity` is our IDi's data, the default EAP identity.
    pub(crate) fn new(settings: &Settings, identity: &[u8]) -> Option<EapMethod> {
        match &settings.auth {
            AuthMethod::Eap(methods) => {
                let user = settings
                    .username
                    .clone()
                    .unwrap_or_else(|| String::from_utf8_lossy(identity).into_owned());
                Some(EapMethod::Standard {
                    peer: EapPeer::new(user, methods.clone()),
                    password: settings.password.clone(),
                })
            }
            AuthMethod::AnyConnect(a) => {
                let me = ClientInfo {
                    version: a.version.clone(),
                    device_id: a.device_id.clone(),
                };
                Some(EapMethod::AnyConnect(
                    Box::new(AnyConnectPeer::new(me, a.group.clone(), a.resume.clone())),
                    false,
                ))
            }
            AuthMethod::Psk(_) => None,
        }
    }

    /// The AnyConnect dialogue, if that is the method.
    pub(crate) fn anyconnect(&self) -> Option<&AnyConnectPeer> {
        match self {
            EapMethod::AnyConnect(p, _) => Some(p),
            EapMethod::Standard { .. } => None,
        }
    }

    /// The AnyConnect `complete` document and whether it resumed a session.
    pub(crate) fn anyconnect_session(&self) -> (Option<Complete>, bool) {
        match self.anyconnect() {
            Some(p) => (p.session().cloned(), p.resumed()),
            None => (None, false),
        }
    }

    /// Takes one EAP request from the gateway.
    pub(crate) fn handle(&mut self, ctx: &mut Ctx<'_>, msg: &[u8]) -> EapStep {
        match self {
            EapMethod::Standard { peer, password } => {
                let before = peer.method();
                let step = peer.handle(msg, password.as_ref(), ctx.rng);
                let after = peer.method();
                if before != after {
                    if let Some(m) = after {
                        ctx.events
                            .push_back(Event::Progress(Progress::Eap(m.name())));
                    }
                }
                match step {
                    Step::Respond(r) => EapStep::Send(r),
                    Step::NeedPassword => {
                        let user = ctx.settings.username.clone().unwrap_or_default();
                        let id = ctx.prompt(PromptKind::Password { user });
                        EapStep::Prompt(id, Resume::Password { eap: msg.to_vec() })
                    }
                    Step::Success(msk) => EapStep::Success(msk),
                    Step::Failure(m) => EapStep::Failed(DisconnectReason::AuthFailed(m)),
                    Step::Protocol(m) => EapStep::Failed(PeerMisbehaved::Eap(m).into()),
                    Step::Declined(m) => EapStep::Failed(DisconnectReason::EapMethodRefused(m)),
                }
            }
            EapMethod::AnyConnect(peer, announced) => {
                debug!("EAP-AnyConnect: {}", crate::eap::describe(msg));
                if !std::mem::replace(announced, true) {
                    ctx.events
                        .push_back(Event::Progress(Progress::Eap("AnyConnect".into())));
                }
                match peer.handle(msg) {
                    AcStep::Respond(r) => EapStep::Send(r),
                    AcStep::CertRequest => EapStep::CertRequest,
                    AcStep::HostScan(hs) => {
                        let id = ctx.prompt(PromptKind::HostScan(hs));
                        EapStep::Prompt(id, Resume::HostScan)
                    }
                    AcStep::Form(req) => {
                        // The fill rules live in the core (form.rs): every
                        // front end gets the same typed form.
                        let hints = FormHints {
                            user: ctx.settings.username.clone(),
                            group: match &ctx.settings.auth {
                                AuthMethod::AnyConnect(a) => a.group.clone(),
                                _ => None,
                            },
                        };
                        let form = Box::new(Form::new(&req, &hints));
                        let id = ctx.prompt(PromptKind::AuthForm(form));
                        EapStep::Prompt(id, Resume::Form)
                    }
                    AcStep::Success => EapStep::Success(None),
                    AcStep::Failure(m) => EapStep::Failed(DisconnectReason::AuthFailed(m)),
                    AcStep::Protocol(m) => EapStep::Failed(PeerMisbehaved::AnyConnect(m).into()),
                }
            }
        }
    }

    /// The user answered the prompt `resume` was waiting for. On a wrong
    /// answer type the prompt stays pending (the `Resume` comes back).
    pub(crate) fn answer(
        &mut self,
        ctx: &mut Ctx<'_>,
        resume: Resume,
        answer: Answer,
    ) -> Result<EapStep, (Resume, ApiMisuse)> {
        match (resume, answer) {
            (Resume::Password { eap }, Answer::Secret(pw)) => {
                let EapMethod::Standard { password, .. } = self else {
                    return Err((Resume::Password { eap }, ApiMisuse::WrongAnswerType));
                };
                *password = Some(pw);
                // The request that needed it, taken again with the password.
                Ok(self.handle(ctx, &eap))
            }
            (Resume::Form, Answer::Form(answers)) => match self {
                EapMethod::AnyConnect(peer, _) => match peer.answer(&answers.0) {
                    Ok(eap) => Ok(EapStep::Send(eap.expose().to_vec())),
                    Err(_) => Err((Resume::Form, ApiMisuse::NoPrompt)),
                },
                EapMethod::Standard { .. } => Err((Resume::Form, ApiMisuse::WrongAnswerType)),
            },
            (Resume::HostScan, Answer::HostScan(false)) => Ok(EapStep::Failed(
                DisconnectReason::AuthFailed(
                    "the gateway requires posture assessment (host scan); give --csd-wrapper SCRIPT"
                        .into(),
                ),
            )),
            (Resume::HostScan, Answer::HostScan(true)) => match self {
                EapMethod::AnyConnect(peer, _) => match peer.host_scan_done() {
                    Ok(eap) => Ok(EapStep::Send(eap)),
                    Err(_) => Err((Resume::HostScan, ApiMisuse::NoPrompt)),
                },
                EapMethod::Standard { .. } => Err((Resume::HostScan, ApiMisuse::WrongAnswerType)),
            },
            (resume, _) => Err((resume, ApiMisuse::WrongAnswerType)),
        }
    }

    /// The certificate TLVs for a `<client-cert-request/>` (AnyConnect).
    pub(crate) fn cert_reply(&mut self, pkcs7: &[u8], signature: &[u8]) -> Option<Vec<u8>> {
        match self {
            EapMethod::AnyConnect(p, _) => p.cert_reply(pkcs7, signature).ok(),
            EapMethod::Standard { .. } => None,
        }
    }
}
