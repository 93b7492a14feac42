//! The client side of the EAP-AnyConnect dialogue (anyconnect-ikev2.md §1,
//! §8): hello → init, auth-request → (user answers the form) → auth-reply,
//! complete → ack, then EAP Success. A pure state machine: the session feeds
//! EAP requests and the user's answers; nothing here blocks or prompts.

use super::xml::{self, AuthRequest, ClientInfo, Complete, GatewayDoc, Resume};
use super::{Frame, TLV_XML};
use crate::crypto::Secret;

/// What to do after a message from the gateway.
#[derive(Debug)]
pub enum AcStep {
    /// Send this EAP response.
    Respond(Vec<u8>),
    /// Show this form and call [`AnyConnectPeer::answer`] with the answers.
    Form(Box<AuthRequest>),
    /// The gateway asks for a client certificate: sign, then call
    /// [`AnyConnectPeer::cert_reply`].
    CertRequest,
    /// The gateway wants posture assessment: run the host-scan wrapper, then
    /// call [`AnyConnectPeer::host_scan_done`].
    HostScan(xml::HostScan),
    /// EAP Success: authentication is over (no MSK: AUTH uses SK_pi/SK_pr).
    Success,
    /// The gateway refused us, or asks for something we cannot do.
    Failure(String),
    /// The gateway broke the protocol.
    Protocol(String),
}

/// The EAP-AnyConnect peer for one IKE_AUTH.
#[derive(Debug)]
pub struct AnyConnectPeer {
    me: ClientInfo,
    group: Option<String>,
    pending: Option<(u8, Box<AuthRequest>)>,
    session: Option<Complete>,
    /// An earlier session offered in `init`, until the gateway answers.
    resume: Option<Resume>,
    /// Whether the gateway showed any form (or asked for anything) in this
    /// dialogue: a `complete` without one resumed the offered session.
    asked: bool,
}

impl AnyConnectPeer {
    /// A peer describing itself as `me`, asking for tunnel group `group`,
    /// offering to resume `resume` (from an earlier `complete`) if given.
    pub fn new(me: ClientInfo, group: Option<String>, resume: Option<Resume>) -> Self {
        AnyConnectPeer {
            me,
            group,
            pending: None,
            session: None,
            resume,
            asked: false,
        }
    }

    /// Whether the gateway took the offered session back without a login.
    pub fn resumed(&self) -> bool {
        self.resume.is_some() && self.session.is_some() && !self.asked
    }

    /// The `complete` document (session id and token) once received.
    pub fn session(&self) -> Option<&Complete> {
        self.session.as_ref()
    }

    /// Handles one EAP message from the gateway.
    pub fn handle(&mut self, eap: &[u8]) -> AcStep {
        match eap.first() {
            Some(3) => {
                return if self.session.is_some() {
                    AcStep::Success
                } else {
                    AcStep::Protocol(
                        "EAP Success before the aggregate-auth 'complete' document".into(),
                    )
                }
            }
            Some(4) => return AcStep::Failure("the gateway ended the login (EAP Failure)".into()),
            Some(1) => {}
            _ => return AcStep::Protocol("unexpected EAP code in EAP-AnyConnect".into()),
        }
        let frame = match Frame::parse(eap) {
            Ok(f) => f,
            Err(e) => return AcStep::Protocol(e.to_string()),
        };
        let doc = match frame
            .xml()
            .map_err(|e| e.to_string())
            .and_then(|x| xml::parse(x).map_err(|e| e.to_string()))
        {
            Ok(d) => d,
            Err(e) => return AcStep::Protocol(e),
        };
        let id = frame.id;
        match doc {
            GatewayDoc::Hello(_) => {
                let x = xml::init(&self.me, self.group.as_deref(), &[], self.resume.as_ref());
                self.respond(id, x.expose())
            }
            GatewayDoc::AuthRequest(req) => {
                if !self.asked && self.resume.is_some() {
                    tracing::info!("the gateway did not resume the session; logging in again");
                }
                self.asked = true;
                if let Some(hs) = &req.host_scan {
                    let hs = hs.clone();
                    self.pending = Some((id, req));
                    return AcStep::HostScan(hs);
                }
                if req.client_cert_request {
                    self.pending = Some((id, req));
                    return AcStep::CertRequest;
                }
                if req.authentication_complete {
                    let reply = xml::auth_reply(&self.me, req.opaque.as_deref(), &[], None);
                    return self.respond(id, reply.expose());
                }
                self.pending = Some((id, req.clone()));
                AcStep::Form(req)
            }
            GatewayDoc::Complete(c) => {
                self.session = Some(c);
                if self.resumed() {
                    tracing::info!("the gateway resumed the offered session");
                }
                self.respond(id, &xml::ack(&self.me))
            }
        }
    }

    /// Answers `<client-cert-request/>`: `init` again, with the PKCS#7 chain
    /// (TLV 3) and the signature (TLV 1), in the order AnyConnect uses.
    pub fn cert_reply(&mut self, pkcs7: &[u8], signature: &[u8]) -> Result<Vec<u8>, &'static str> {
        let (id, _) = self
            .pending
            .take()
            .ok_or("no certificate request is pending")?;
        // A certificate request means a new login: no session to offer.
        let x = xml::init(&self.me, self.group.as_deref(), &["multiple-cert"], None);
        Ok(Frame::build(
            2,
            id,
            &[
                (super::TLV_PKCS7, pkcs7),
                (super::TLV_SIGNATURE, signature),
                (TLV_XML, x.expose()),
            ],
        ))
    }

    /// After the host-scan wrapper ran: echo the token in an auth-reply.
    pub fn host_scan_done(&mut self) -> Result<Vec<u8>, &'static str> {
        let (id, req) = self.pending.take().ok_or("no host scan is pending")?;
        let token = req
            .host_scan
            .as_ref()
            .map(|h| h.token.clone())
            .unwrap_or_default();
        let reply = xml::auth_reply(&self.me, req.opaque.as_deref(), &[], Some(&token));
        Ok(Frame::build(2, id, &[(TLV_XML, reply.expose())]))
    }

    /// Answers the pending form: (input name, value) pairs.
    pub fn answer(&mut self, answers: &[(String, Secret)]) -> Result<Secret, &'static str> {
        let (id, req) = self.pending.take().ok_or("no form is pending")?;
        let reply = xml::auth_reply(&self.me, req.opaque.as_deref(), answers, None);
        Ok(Secret::new(Frame::build(
            2,
            id,
            &[(TLV_XML, reply.expose())],
        )))
    }

    fn respond(&self, id: u8, xml: &[u8]) -> AcStep {
        AcStep::Respond(Frame::build(2, id, &[(TLV_XML, xml)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: u8, xml: &str) -> Vec<u8> {
        Frame::build(1, id, &[(TLV_XML, xml.as_bytes())])
    }

    /// The whole seed 004 dialogue: hello (id 1) → init, auth-request (id 2)
    /// → form → auth-reply, complete (id 3) → ack, Success.
    #[test]
    fn seed_004_dialogue() {
        let me = ClientInfo {
            version: "3.0.1047".into(),
            device_id: "win".into(),
        };
        let mut p = AnyConnectPeer::new(me, Some("ASA-IKEV2".into()), None);
        let hello = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"hello\">\n<version who=\"sg\">9.0(2)8</version>\n</config-auth>";
        let AcStep::Respond(init) = p.handle(&req(1, hello)) else {
            panic!()
        };
        assert_eq!(
            (init[0], init[1], init.len()),
            (2, 1, 252),
            "seed: EAP Resp id 1, Length 252"
        );

        let ar = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"auth-request\">\n<version who=\"sg\">9.0(2)8</version>\n<opaque is-for=\"sg\">\n<tunnel-group>ASA-IKEV2</tunnel-group>\n<config-hash>1367268141499</config-hash>\n</opaque>\n<auth id=\"main\">\n<form>\n<input type=\"text\" name=\"username\" label=\"Username:\"></input>\n<input type=\"password\" name=\"password\" label=\"Password:\"></input>\n</form>\n</auth>\n</config-auth>";
        let AcStep::Form(form) = p.handle(&req(2, ar)) else {
            panic!()
        };
        assert_eq!(form.inputs.len(), 2);
        let reply = p
            .answer(&[
                ("password".into(), Secret::new(b"cisco123".to_vec())),
                ("username".into(), Secret::new(b"Anu".to_vec())),
            ])
            .unwrap();
        let f = Frame::parse(reply.expose()).unwrap();
        assert_eq!((f.code, f.id), (2, 2));
        assert!(String::from_utf8_lossy(f.xml().unwrap())
            .contains("<tunnel-group>ASA-IKEV2</tunnel-group>"));
        assert!(p.answer(&[]).is_err(), "one answer per form");

        assert!(
            matches!(p.handle(&[3, 3, 0, 4]), AcStep::Protocol(_)),
            "Success before complete is refused"
        );
        let complete = "<config-auth client=\"vpn\" type=\"complete\"><version who=\"sg\">9.0(2)8</version><session-id>32768</session-id><session-token>18wA0TtGmDxPKPQCJywC7fB7EWLCEgz-ZtjYpAyXx2yJH0H3G3H8t5xpBOx3Ixag</session-token><auth id=\"success\"><message id=\"0\" param1=\"\" param2=\"\"></message></auth></config-auth>";
        let AcStep::Respond(ack) = p.handle(&req(3, complete)) else {
            panic!()
        };
        assert_eq!(
            (ack[1], ack.len()),
            (3, 173),
            "seed: EAP Resp id 3, Length 173"
        );
        assert_eq!(p.session().unwrap().session_id, "32768");
        assert!(matches!(p.handle(&[3, 3, 0, 4]), AcStep::Success));
    }

    #[test]
    fn refusals_are_clear() {
        let me = ClientInfo {
            version: "1".into(),
            device_id: "linux-64".into(),
        };
        let mut p = AnyConnectPeer::new(me, None, None);
        let hs = "<config-auth client=\"vpn\" type=\"auth-request\"><opaque is-for=\"sg\">o</opaque><host-scan><host-scan-ticket>T</host-scan-ticket><host-scan-token>K</host-scan-token></host-scan></config-auth>";
        let AcStep::HostScan(h) = p.handle(&req(2, hs)) else {
            panic!()
        };
        assert_eq!((h.ticket.as_str(), h.token.as_str()), ("T", "K"));
        let r = p.host_scan_done().unwrap();
        let x = String::from_utf8(Frame::parse(&r).unwrap().xml().unwrap().to_vec()).unwrap();
        assert!(
            x.contains("<host-scan-token>K</host-scan-token>")
                && x.contains("<opaque is-for=\"sg\">o</opaque>"),
            "{x}"
        );
        let cc = "<config-auth client=\"vpn\" type=\"auth-request\"><client-cert-request/></config-auth>";
        assert!(matches!(p.handle(&req(2, cc)), AcStep::CertRequest));
        let r = p.cert_reply(b"P7", b"SIG").unwrap();
        let f = Frame::parse(&r).unwrap();
        assert_eq!(
            f.tlvs.iter().map(|t| t.0).collect::<Vec<_>>(),
            vec![3, 1, 0],
            "PKCS7, signature, XML"
        );
        assert!(String::from_utf8_lossy(f.xml().unwrap()).contains("type=\"init\""));
        assert!(matches!(
            p.handle(&req(2, "<config-auth type=\"auth-request\"><auth>")),
            AcStep::Protocol(_)
        ));
        assert!(
            matches!(p.handle(&[1, 2, 0, 5, 26]), AcStep::Protocol(_)),
            "not the Cisco expanded type"
        );
        assert!(matches!(p.handle(&[4, 2, 0, 4]), AcStep::Failure(_)));
        let done = "<config-auth client=\"vpn\" type=\"auth-request\"><opaque is-for=\"sg\"/><auth id=\"main\"><authentication-complete/></auth></config-auth>";
        assert!(
            matches!(p.handle(&req(4, done)), AcStep::Respond(_)),
            "no input needed: post at once"
        );
    }

    const HELLO: &str = "<config-auth client=\"vpn\" type=\"hello\"><version who=\"sg\">9.0(2)8</version></config-auth>";
    const COMPLETE: &str = "<config-auth client=\"vpn\" type=\"complete\"><session-id>32768</session-id><session-token>T&amp;K</session-token><auth id=\"success\"/></config-auth>";

    fn resuming() -> AnyConnectPeer {
        let me = ClientInfo {
            version: "1".into(),
            device_id: "linux-64".into(),
        };
        let r = Resume {
            session_id: "32768".into(),
            token: Secret::new(b"T&K".to_vec()),
        };
        AnyConnectPeer::new(me, Some("G".into()), Some(r))
    }

    /// A reconnect offers the old session in `init`; a gateway that still
    /// holds it answers `complete` at once: no form, no credentials.
    #[test]
    fn resume_accepted() {
        let mut p = resuming();
        let AcStep::Respond(init) = p.handle(&req(1, HELLO)) else {
            panic!()
        };
        let x = String::from_utf8(Frame::parse(&init).unwrap().xml().unwrap().to_vec()).unwrap();
        assert!(
            x.contains("<session-token>T&amp;K</session-token>\n<session-id>32768</session-id>"),
            "{x}"
        );
        assert!(x.contains("<group-select>G</group-select>"), "{x}");
        assert!(matches!(p.handle(&req(2, COMPLETE)), AcStep::Respond(_)));
        assert!(p.resumed());
        assert_eq!(p.session().unwrap().session_token.expose(), b"T&K");
        assert!(matches!(p.handle(&[3, 2, 0, 4]), AcStep::Success));
    }

    /// A gateway that no longer knows the session shows its login form: the
    /// dialogue goes on as a fresh login and is not counted as resumed.
    #[test]
    fn resume_refused_falls_back_to_login() {
        let mut p = resuming();
        assert!(matches!(p.handle(&req(1, HELLO)), AcStep::Respond(_)));
        let ar = "<config-auth client=\"vpn\" type=\"auth-request\"><opaque is-for=\"sg\">o</opaque><auth id=\"main\"><form><input type=\"password\" name=\"password\" label=\"P\"/></form></auth></config-auth>";
        assert!(matches!(p.handle(&req(2, ar)), AcStep::Form(_)));
        let reply = p
            .answer(&[("password".into(), Secret::new(b"pw".to_vec()))])
            .unwrap();
        let x = String::from_utf8_lossy(Frame::parse(reply.expose()).unwrap().xml().unwrap())
            .into_owned();
        assert!(
            x.contains("<session-token></session-token>"),
            "a fresh login's auth-reply leaves the slots empty, as in seed 004: {x}"
        );
        assert!(matches!(p.handle(&req(3, COMPLETE)), AcStep::Respond(_)));
        assert!(!p.resumed());
        let first = AnyConnectPeer::new(
            ClientInfo {
                version: "1".into(),
                device_id: "linux-64".into(),
            },
            None,
            None,
        );
        assert!(!first.resumed());
    }

    /// The offered token never shows in debug output.
    #[test]
    fn resume_token_is_redacted() {
        let p = resuming();
        assert!(!format!("{p:?}").contains("T&K"));
    }
}
