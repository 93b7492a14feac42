//! Errors grouped by who is at fault (rustls `error/`, quinn's
//! `ConnectionError`): the gateway broke the protocol ([`PeerMisbehaved`],
//! each mapped to the notify we answer with, RFC 7296 §3.10.1), a datagram
//! was not for us or not authentic ([`IkeDrop`], counted, never fatal), the
//! caller misused the API ([`ApiMisuse`]), or the session ended
//! ([`DisconnectReason`]).

use crate::wire::{self, DhId, NotifyType};

/// The gateway broke the protocol: what it did. Ends the session; when it
/// was a request, the answer carries [`PeerMisbehaved::notify`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerMisbehaved {
    /// It asked for a COOKIE again: the same one (ours was refused) or too often.
    #[error("the gateway asked for a cookie {0} times")]
    CookieRepeated(u8),
    /// INVALID_KE_PAYLOAD for a group we already sent (RFC 7296 §1.2: each
    /// offered group is tried once; a gateway alternating them loops forever).
    #[error("INVALID_KE_PAYLOAD asks for {0:?} again, which we already sent (a gateway alternating groups)")]
    InvalidKeRepeated(DhId),
    /// INVALID_KE_PAYLOAD for a group we did not offer (or none).
    #[error("INVALID_KE_PAYLOAD asks for {0:?}, which we did not offer")]
    InvalidKeNotOffered(Option<DhId>),
    /// It chose something we did not offer, or more than one proposal.
    #[error("{0}")]
    SelectedUnofferedProposal(String),
    /// Its KE is for another group than the one chosen.
    #[error("the gateway's KE does not match the chosen DH group")]
    KeGroupMismatch,
    /// Its KE is not a valid public value.
    #[error("{0}")]
    InvalidKePublic(String),
    /// A message that does not parse.
    #[error("{exchange}: {error}")]
    Malformed {
        /// Which message (e.g. "IKE_AUTH response").
        exchange: &'static str,
        /// What the codec found.
        error: wire::Error,
    },
    /// A payload set that breaks the rule table (RFC 7296 §3 per exchange).
    #[error("{exchange}: {error}")]
    PayloadRules {
        /// Which message.
        exchange: &'static str,
        /// Which payload is unexpected or missing.
        error: wire::Error,
    },
    /// Payloads this step requires are absent.
    #[error("{0}")]
    MissingPayload(&'static str),
    /// An SPI of the wrong size.
    #[error("{0}")]
    BadSpi(&'static str),
    /// EAP broke its own rules (RFC 3748).
    #[error("{0}")]
    Eap(String),
    /// EAP-AnyConnect framing or XML broke.
    #[error("{0}")]
    AnyConnect(String),
    /// It did not start EAP although we asked for it (no AUTH from us).
    #[error("the gateway did not start EAP")]
    EapNotStarted,
}

impl PeerMisbehaved {
    /// The notify that answers a request that misbehaved this way.
    pub fn notify(&self) -> NotifyType {
        match self {
            PeerMisbehaved::SelectedUnofferedProposal(_) => NotifyType::NO_PROPOSAL_CHOSEN,
            PeerMisbehaved::InvalidKePublic(_) | PeerMisbehaved::KeGroupMismatch => {
                NotifyType::INVALID_KE_PAYLOAD
            }
            PeerMisbehaved::Malformed { error, .. }
            | PeerMisbehaved::PayloadRules { error, .. }
                if error.kind == wire::ErrorKind::UnsupportedCritical =>
            {
                NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD
            }
            _ => NotifyType::INVALID_SYNTAX,
        }
    }
}

impl From<PeerMisbehaved> for DisconnectReason {
    fn from(p: PeerMisbehaved) -> DisconnectReason {
        DisconnectReason::PeerMisbehaved(p)
    }
}

impl From<PeerMisbehaved> for NotifyType {
    fn from(p: PeerMisbehaved) -> NotifyType {
        p.notify()
    }
}

/// Why an IKE datagram was dropped without an answer (RFC 7296 §2.21.1:
/// unauthenticated errors must not end anything). Counted in `Stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IkeDrop {
    /// The session is over.
    #[error("session closed")]
    Closed,
    /// Shorter than a non-ESP marker on the NAT-T port.
    #[error("runt datagram on NAT-T port")]
    Runt,
    /// The header or payload chain does not parse.
    #[error("malformed IKE message")]
    Malformed,
    /// SPIs of no IKE SA of ours.
    #[error("unknown IKE SPI")]
    UnknownSpi,
    /// A Cisco fragment inside a reassembled Cisco-fragmented message.
    #[error("Cisco fragment inside a Cisco fragment")]
    NestedFragment,
    /// A Cisco fragment that breaks its framing or bounds.
    #[error("bad Cisco fragment")]
    BadCiscoFragment,
    /// A response while no request is outstanding.
    #[error("response without a request")]
    UnsolicitedResponse,
    /// A response whose message ID, I flag or exchange is not our request's.
    #[error("response out of window")]
    OutOfWindow,
    /// A request whose message ID is not the next one (§2.3).
    #[error("request message ID out of window")]
    RequestOutOfWindow,
    /// A request before IKE_AUTH completed.
    #[error("request during IKE_AUTH")]
    RequestTooEarly,
    /// Integrity check failed (SK or SKF).
    #[error("integrity check failed")]
    Integrity,
    /// Plaintext payloads where only SK / SKF may be.
    #[error("unprotected payloads in an encrypted message")]
    Unprotected,
    /// RFC 7383 fragments that break their bounds.
    #[error("bad fragment ({0})")]
    Fragment(&'static str),
    /// An IKE_SA_INIT response without SA, KE or Nr.
    #[error("IKE_SA_INIT response without SA, KE or Nr")]
    IncompleteSaInit,
}

/// Why a datagram was dropped: IKE (no answer, RFC 7296 §2.21.1) or ESP
/// (counted by reason, RFC 4303 §3.4). Never ends the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// An IKE datagram.
    #[error("{0}")]
    Ike(IkeDrop),
    /// An ESP packet.
    #[error("ESP: {0:?}")]
    Esp(crate::esp::DropReason),
}

/// Wrong use of the API by the caller (never caused by the network).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiMisuse {
    /// No prompt is pending.
    #[error("no prompt is pending")]
    NoPrompt,
    /// The answer is for another prompt.
    #[error("the answer is for another prompt")]
    WrongPrompt,
    /// The answer does not fit the prompt.
    #[error("the answer does not fit the prompt")]
    WrongAnswerType,
}

/// Why the session ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectReason {
    /// We closed it.
    #[error("disconnected")]
    LocallyClosed,
    /// The user asked for a fresh session (SIGUSR2, as with openconnect):
    /// closed cleanly and reconnected.
    #[error("a reconnect was asked for")]
    ReconnectRequested,
    /// The gateway rejected our credentials.
    #[error("the gateway rejected the credentials{}", detail(.0))]
    AuthFailed(String),
    /// The gateway's certificate was not accepted.
    #[error("the gateway's certificate was refused: {reason} (subject {subject}, {pin})")]
    CertificateRefused {
        /// Why.
        reason: String,
        /// Subject DN.
        subject: String,
        /// pin-sha256 fingerprint.
        pin: String,
    },
    /// No EAP method in common (we declined what the gateway asked for).
    #[error("{0}")]
    EapMethodRefused(String),
    /// The gateway could not be authenticated (bad AUTH, wrong identity).
    #[error("the gateway could not be authenticated: {0}")]
    GatewayAuthFailed(String),
    /// No common algorithms.
    #[error("the gateway accepts none of our proposals (NO_PROPOSAL_CHOSEN){}", detail(.0))]
    NoProposalChosen(String),
    /// The gateway did not answer.
    #[error("no answer from the gateway after {0} retransmissions")]
    TimedOut(u32),
    /// The gateway's host said nothing listens there (ICMP port or host
    /// unreachable on our connected socket) before it ever answered.
    #[error("{0}")]
    Unreachable(String),
    /// An established session's gateway stopped answering DPD probes.
    #[error("the gateway stopped answering (dead peer detection, nothing heard for {0} s)")]
    DeadPeer(u64),
    /// Fragments missing for too long.
    #[error("incomplete fragmented message from the gateway: {0}")]
    Reassembly(String),
    /// The gateway deleted the IKE SA.
    #[error("the gateway closed the session")]
    PeerDeleted,
    /// The gateway sent an error notify.
    #[error("the gateway reported {n}{t}", n = .0, t = notify_text(*.0))]
    PeerNotify(NotifyType),
    /// The gateway broke the protocol.
    #[error("protocol error from the gateway: {0}")]
    PeerMisbehaved(PeerMisbehaved),
    /// A local problem (bad settings, unsupported algorithm).
    #[error("{0}")]
    Local(String),
    /// The machine slept and the profile's AutoReconnectBehavior is
    /// DisconnectOnSuspend: closed, not reconnected.
    #[error("the machine slept for {0} s; the profile says DisconnectOnSuspend, so the session was closed")]
    Suspended(u64),
}

fn detail(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" ({s})")
    }
}

fn notify_text(n: NotifyType) -> &'static str {
    match n {
        NotifyType::AUTHENTICATION_FAILED => ": the gateway rejected the credentials",
        NotifyType::NO_PROPOSAL_CHOSEN => ": no common algorithms",
        NotifyType::INTERNAL_ADDRESS_FAILURE => ": no internal address available",
        NotifyType::FAILED_CP_REQUIRED => ": the gateway requires a configuration request",
        NotifyType::TS_UNACCEPTABLE => ": traffic selectors not acceptable",
        NotifyType::SINGLE_PAIR_REQUIRED => ": a single address pair is required",
        NotifyType::NO_ADDITIONAL_SAS => ": the gateway accepts no more SAs",
        NotifyType::TEMPORARY_FAILURE => ": temporary failure, try again",
        NotifyType::INVALID_SYNTAX => ": our message was malformed",
        NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD => ": unsupported critical payload",
        NotifyType::INVALID_MAJOR_VERSION => ": IKE version not supported",
        _ => "",
    }
}

impl DisconnectReason {
    /// A stable exit code for front ends (documented in the README).
    pub fn exit_code(&self) -> i32 {
        match self {
            DisconnectReason::LocallyClosed => 0,
            DisconnectReason::PeerDeleted => 6,
            DisconnectReason::AuthFailed(_) | DisconnectReason::EapMethodRefused(_) => 2,
            DisconnectReason::PeerNotify(NotifyType::AUTHENTICATION_FAILED) => 2,
            DisconnectReason::CertificateRefused { .. }
            | DisconnectReason::GatewayAuthFailed(_) => 3,
            DisconnectReason::TimedOut(_)
            | DisconnectReason::DeadPeer(_)
            | DisconnectReason::Unreachable(_) => 4,
            DisconnectReason::Local(_) => 1,
            DisconnectReason::Suspended(_) => 7,
            _ => 5,
        }
    }
}
