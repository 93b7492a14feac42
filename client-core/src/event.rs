//! What the engine tells its front end, and what the front end answers.

use std::fmt;
use std::net::IpAddr;

use crate::crypto::sig::CertSummary;
use crate::crypto::Secret;
use crate::wire::{NotifyType, TrafficSelector};

/// Identifies a prompt so its answer can be matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PromptId(pub u32);

/// A question for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptKind {
    /// The EAP method needs the password for `user`.
    Password {
        /// The user name the password is for.
        user: String,
    },
    /// An EAP-AnyConnect login form with the fill rules applied: collect a
    /// value per field, check them with [`Form::answer`](crate::eap::anyconnect::form::Form::answer)
    /// and answer with [`Answer::Form`].
    AuthForm(Box<crate::eap::anyconnect::form::Form>),
    /// The gateway requires posture assessment: run the host-scan (CSD)
    /// wrapper, then answer [`Answer::HostScan`].
    HostScan(crate::eap::anyconnect::xml::HostScan),
    /// The gateway's certificate is not trusted: accept it?
    TrustCertificate {
        /// What to show the user.
        summary: CertSummary,
        /// Why it is not trusted.
        reason: String,
    },
}

/// A prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    /// Its id, for [`crate::Session::answer`].
    pub id: PromptId,
    /// The question.
    pub kind: PromptKind,
}

/// An answer to a prompt.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A secret (password).
    Secret(Secret),
    /// Yes / no (certificate acceptance).
    Accept(bool),
    /// Answers to a login form, checked by `Form::answer`.
    Form(crate::eap::anyconnect::form::FormAnswer),
    /// The host-scan wrapper ran (true) or could not / was not configured (false).
    HostScan(bool),
}

/// A CHILD SA's parameters and keys, for the data plane.
#[derive(Clone)]
pub struct ChildSaInfo {
    /// SPI the gateway sends to (ours, inbound).
    pub spi_in: u32,
    /// SPI we send to (the gateway's, outbound).
    pub spi_out: u32,
    /// Encryption algorithm.
    pub encr: crate::crypto::cipher::Encr,
    /// Integrity (None for AEAD).
    pub integ: Option<crate::crypto::cipher::Integ>,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Keys: outbound encryption / integrity.
    pub encr_out: Secret,
    /// See above.
    pub integ_out: Secret,
    /// Keys: inbound encryption / integrity.
    pub encr_in: Secret,
    /// See above.
    pub integ_in: Secret,
    /// Our traffic selectors.
    pub ts_local: Vec<TrafficSelector>,
    /// The gateway's traffic selectors.
    pub ts_remote: Vec<TrafficSelector>,
}

impl fmt::Debug for ChildSaInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSaInfo")
            .field("spi_in", &format_args!("{:08x}", self.spi_in))
            .field("spi_out", &format_args!("{:08x}", self.spi_out))
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .finish_non_exhaustive()
    }
}

/// What the gateway gave us (config mode, RFC 7296 §3.15) plus the
/// negotiated SAs, as a front end or OS layer needs it.
#[derive(Clone, Debug, Default)]
pub struct TunnelConfig {
    /// Internal addresses with prefix length.
    pub addresses: Vec<(IpAddr, u8)>,
    /// DNS servers.
    pub dns: Vec<IpAddr>,
    /// NBNS (WINS) servers.
    pub nbns: Vec<IpAddr>,
    /// Networks reachable through the tunnel (INTERNAL_IP4/6_SUBNET).
    pub subnets: Vec<(IpAddr, u8)>,
    /// DNS domains.
    pub domains: Vec<String>,
    /// Address lifetime in seconds, if given.
    pub address_expiry: Option<u32>,
    /// Cisco session settings (AnyConnect head-ends), if any were sent.
    pub cisco: crate::ike::cisco::CiscoSettings,
    /// Attributes we do not interpret, kept as (type, value). Known secret
    /// attributes (28727) never land here.
    pub unknown: Vec<(u16, Vec<u8>)>,
    /// Traffic selectors, ours.
    pub ts_local: Vec<TrafficSelector>,
    /// Traffic selectors, the gateway's.
    pub ts_remote: Vec<TrafficSelector>,
}

/// Progress of the connection, for status lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// IKE_SA_INIT sent.
    Contacting,
    /// The gateway answered IKE_SA_INIT; algorithms agreed.
    SaInitDone {
        /// e.g. "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384".
        proposal: String,
        /// Whether a NAT was detected.
        nat: bool,
    },
    /// The gateway proved its identity.
    GatewayAuthenticated {
        /// Its identity.
        id: String,
        /// The signature scheme or "PSK".
        scheme: String,
    },
    /// The EAP method in use.
    Eap(String),
    /// The IKE SA was rekeyed.
    IkeRekeyed,
    /// The CHILD SA was rekeyed.
    ChildRekeyed,
    /// A DPD / liveness check from the gateway was answered.
    DpdAnswered,
    /// The session was lost; reconnecting (attempt number, why).
    Reconnecting {
        /// 1, 2, ...
        attempt: u32,
        /// What ended the previous session.
        reason: String,
    },
    /// Connected again after a loss, same tunnel settings kept.
    Reconnected {
        /// The gateway took the earlier AnyConnect session back (its token)
        /// without a login; false: a fresh login.
        resumed: bool,
    },
}

/// Why the session ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectReason {
    /// We closed it.
    #[error("disconnected")]
    LocallyClosed,
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
    /// The gateway could not be authenticated (bad AUTH, wrong identity).
    #[error("the gateway could not be authenticated: {0}")]
    GatewayAuthFailed(String),
    /// No common algorithms.
    #[error("the gateway accepts none of our proposals (NO_PROPOSAL_CHOSEN){}", detail(.0))]
    NoProposalChosen(String),
    /// The gateway did not answer.
    #[error("no answer from the gateway after {0} retransmissions")]
    TimedOut(u32),
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
    Protocol(String),
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
            DisconnectReason::AuthFailed(_) => 2,
            DisconnectReason::PeerNotify(NotifyType::AUTHENTICATION_FAILED) => 2,
            DisconnectReason::CertificateRefused { .. }
            | DisconnectReason::GatewayAuthFailed(_) => 3,
            DisconnectReason::TimedOut(_) | DisconnectReason::DeadPeer(_) => 4,
            DisconnectReason::Local(_) => 1,
            DisconnectReason::Suspended(_) => 7,
            _ => 5,
        }
    }
}

/// Something the front end should know.
#[derive(Clone, Debug)]
pub enum Event {
    /// A step of the connection.
    Progress(Progress),
    /// A question; the session waits for [`crate::Session::answer`].
    Prompt(Prompt),
    /// IKE SA and CHILD SA are up.
    Connected(Box<TunnelConfig>),
    /// New CHILD SA keys (initially and after every rekey).
    ChildSa(Box<ChildSaInfo>),
    /// The session ended; nothing more will happen.
    Disconnected(DisconnectReason),
}
