//! What the engine tells its front end, and what the front end answers.

use std::net::IpAddr;

use crate::crypto::sig::CertSummary;
use crate::crypto::Secret;
pub use crate::error::DisconnectReason;
use crate::wire::TrafficSelector;

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
    pub cisco: CiscoSettings,
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

/// Something the front end should know.
#[derive(Clone, Debug)]
pub enum Event {
    /// A step of the connection.
    Progress(Progress),
    /// A question; the session waits for [`crate::Session::answer`].
    Prompt(Prompt),
    /// IKE SA and CHILD SA are up.
    Connected(Box<TunnelConfig>),
    /// The session ended; nothing more will happen.
    Disconnected(DisconnectReason),
}

/// Cisco session settings from a CFG_REPLY (plain data; decoded by
/// `ike::cisco::apply`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CiscoSettings {
    /// Login banner.
    pub banner: Option<String>,
    /// UNITY_SAVE_PASSWD: whether the user may save the password.
    pub save_password: Option<bool>,
    /// Default DNS domain.
    pub default_domain: Option<String>,
    /// Split-DNS domains.
    pub split_dns: Vec<String>,
    /// PFS for CHILD SA rekeys.
    pub pfs: Option<bool>,
    /// Seconds; 0 = none.
    pub session_timeout: Option<u32>,
    /// Seconds.
    pub disconnect_timeout: Option<u32>,
    /// Seconds.
    pub idle_timeout: Option<u32>,
    /// DPD interval, seconds.
    pub dpd_interval: Option<u32>,
    /// NAT-T keepalive interval, seconds.
    pub keepalive_interval: Option<u32>,
    /// Tunnel MTU.
    pub mtu: Option<u16>,
    /// Gateway application version (attribute 7).
    pub gateway_version: Option<String>,
    /// The `complete` XML (session token inside): never printed.
    pub complete_xml: Option<Secret>,
}
