//! User-side settings for one connection: gateway, identity, credentials,
//! trust and algorithm preferences. Plain data, filled by a front end.

use std::net::SocketAddr;
use std::time::Duration;

use crate::crypto::Secret;
use crate::eap::EapType;

/// How we prove who we are.
#[derive(Clone, Debug)]
pub enum AuthMethod {
    /// Pre-shared key, both ways (RFC 7296 §2.15).
    Psk(Secret),
    /// EAP with one of these methods, the gateway proving itself with a certificate.
    Eap(Vec<EapType>),
    /// Cisco AnyConnect: EAP-AnyConnect ("aggregate auth") forms, the gateway
    /// proving itself with a certificate (anyconnect-ikev2.md).
    AnyConnect(AnyConnectClient),
}

/// How we present ourselves to an AnyConnect head-end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnyConnectClient {
    /// Tunnel group (the profile's `UserGroup`), sent as group-select / group-access.
    pub group: Option<String>,
    /// `version who="vpn"`.
    pub version: String,
    /// `device-id` (platform).
    pub device_id: String,
    /// APPLICATION_VERSION: `AnyConnect <OS> <version>`, which the ASA parses for posture.
    pub app_version: String,
    /// Host name for UNITY_DDNS_HOSTNAME.
    pub hostname: String,
    /// Proposed tunnel MTU (Cisco attribute 28711).
    pub mtu: u16,
    /// Client certificate for gateways that send `<client-cert-request/>`.
    pub client_cert: Option<ClientCert>,
    /// An earlier session to offer in `init` (a reconnect): the gateway may
    /// take it back without a login. Memory only.
    pub resume: Option<crate::eap::anyconnect::xml::Resume>,
}

/// A client certificate chain and its private key (RSA or ECDSA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    /// DER certificates, end entity first.
    pub chain: Vec<Vec<u8>>,
    /// PKCS#1, SEC1 or PKCS#8 DER private key.
    pub key: Secret,
}

impl ClientCert {
    /// A chain and key that belong together: the key is one we can sign
    /// with and the private half of the first certificate's public key.
    /// Checked here, at load time, so a mismatch is named before a login
    /// rather than refused by the gateway after one.
    pub fn new(chain: Vec<Vec<u8>>, key: Secret) -> Result<Self, String> {
        let signer =
            crate::crypto::sig::ClientKey::from_der(key.expose()).map_err(|e| e.to_string())?;
        let ee = chain
            .first()
            .ok_or("the certificate file holds no certificate")?;
        if !signer.matches(ee) {
            return Err(format!(
                "the private key ({}) does not belong to the certificate {}",
                signer.algorithm(),
                crate::crypto::sig::summarize(ee)
                    .map(|s| s.subject)
                    .unwrap_or_else(|_| "(unparsable)".into())
            ));
        }
        Ok(ClientCert { chain, key })
    }
}

/// The `device-id` values Cisco head-ends know (openconnect's `--os`).
pub const DEVICE_IDS: &[&str] = &[
    "linux",
    "linux-64",
    "win",
    "mac-intel",
    "android",
    "apple-ios",
];

/// What a front end may override of how we describe ourselves to the
/// head-end (ASAs gate access on these with DAP): openconnect's
/// `--useragent`, `--os`, `--version-string`, `--local-hostname`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ClientDescription {
    /// CP APPLICATION_VERSION (attribute 7), e.g. `AnyConnect Windows 4.10.07073`.
    pub useragent: Option<String>,
    /// `device-id` of the XML `init` (one of [`DEVICE_IDS`]).
    pub os: Option<String>,
    /// `<version who="vpn">` of the XML messages.
    pub version: Option<String>,
    /// Cisco's host name attribute (28682).
    pub hostname: Option<String>,
}

impl AnyConnectClient {
    /// Applies a front end's description, refusing what a gateway could not
    /// take (control characters, overlong values, an unknown device id).
    pub fn describe(&mut self, d: &ClientDescription) -> Result<(), String> {
        let check = |what: &str, v: &str| -> Result<String, String> {
            if v.is_empty() || v.len() > 128 || v.chars().any(|c| c.is_control()) {
                return Err(format!(
                    "{what} {v:?}: 1 to 128 printable characters, please"
                ));
            }
            Ok(v.to_string())
        };
        if let Some(u) = &d.useragent {
            self.app_version = check("--useragent", u)?;
        }
        if let Some(o) = &d.os {
            if !DEVICE_IDS.contains(&o.as_str()) {
                return Err(format!("--os {o:?}: one of {}", DEVICE_IDS.join(", ")));
            }
            self.device_id = o.clone();
        }
        if let Some(v) = &d.version {
            self.version = check("--version-string", v)?;
        }
        if let Some(h) = &d.hostname {
            self.hostname = check("--local-hostname", h)?;
        }
        Ok(())
    }

    /// Defaults for this build of acclient on Linux.
    pub fn new(group: Option<String>, hostname: String) -> Self {
        let v = env!("CARGO_PKG_VERSION");
        AnyConnectClient {
            group,
            version: v.to_string(),
            device_id: "linux-64".into(),
            app_version: format!("AnyConnect Linux {v}"),
            hostname,
            mtu: 1406,
            client_cert: None,
            resume: None,
        }
    }
}

/// Our identity (IDi).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// ID_FQDN.
    Fqdn(String),
    /// ID_RFC822_ADDR (user@domain).
    Email(String),
    /// ID_KEY_ID (opaque string).
    KeyId(String),
    /// The IPv4/IPv6 address we send from.
    Address,
    /// Cisco's group identity (type 201), `*$AnyConnectClient$*` unless the
    /// profile's `IKEIdentity` says otherwise.
    Group(String),
}

/// The identity AnyConnect sends when the profile has no `IKEIdentity` (seed 004).
pub const ANYCONNECT_IDENTITY: &str = "*$AnyConnectClient$*";

impl Identity {
    /// A sensible identity for a user name: e-mail form if it has an `@`, key-id otherwise.
    pub fn for_user(user: &str) -> Identity {
        if user.contains('@') {
            Identity::Email(user.to_string())
        } else {
            Identity::KeyId(user.to_string())
        }
    }
}

/// How the gateway's certificate is trusted.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// DER trust anchors (from `--cafile` or the system store).
    pub anchors: Vec<Vec<u8>>,
    /// Accepted `pin-sha256:` pins (SPKI hashes); a match skips chain checks.
    pub pins: Vec<String>,
    /// Current time (seconds since the Unix epoch) for validity checks; the
    /// engine never reads a clock, so the caller passes it.
    pub unix_time: u64,
}

/// Retransmission policy (RFC 7296 §2.1).
#[derive(Clone, Copy, Debug)]
pub struct Retransmit {
    /// First timeout.
    pub initial: Duration,
    /// Retransmissions before giving up.
    pub tries: u32,
    /// Upper bound of a single timeout.
    pub max: Duration,
}

impl Retransmit {
    /// The most retransmissions (at least 1) whose waits, this schedule's,
    /// fit in `budget`: a profile's AuthenticationTimeout as a retry count.
    pub fn tries_within(&self, budget: Duration) -> u32 {
        let (mut total, mut t, mut tries) = (self.initial, self.initial, 0u32);
        while tries < 30 {
            t = (t * 2).min(self.max);
            if total + t > budget {
                break;
            }
            total += t;
            tries += 1;
        }
        tries.max(1)
    }
}

impl Default for Retransmit {
    fn default() -> Self {
        // 0.5, 1, 2, 4, 4, 4, 4, 4 s: gives up after ~27 s, what a user of an
        // interactive client expects while riding out a lossy link
        // (strongSwan's default is ~165 s; 30 % loss fails an exchange with 0.3^8).
        Retransmit {
            initial: Duration::from_millis(500),
            tries: 7,
            max: Duration::from_secs(4),
        }
    }
}

/// Everything a session needs to know before it starts.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Gateway address and IKE port (normally 500).
    pub gateway: SocketAddr,
    /// NAT-T port on both sides (4500).
    pub nat_port: u16,
    /// Our own address as the gateway will see it if there is no NAT (for NAT-D).
    pub local: SocketAddr,
    /// Our identity.
    pub identity: Identity,
    /// The identity the gateway must show (IDr), if the user knows it.
    pub remote_id: Option<String>,
    /// Authentication.
    pub auth: AuthMethod,
    /// User name for EAP (defaults to the identity).
    pub username: Option<String>,
    /// Password for EAP, if known up front (otherwise we prompt).
    pub password: Option<Secret>,
    /// Certificate trust.
    pub trust: Trust,
    /// Also offer legacy algorithms (3DES, SHA-1, MODP 1024/1536).
    pub legacy: bool,
    /// Also offer MODP 768 (group 1), as seed 004's client did. Implies nothing else.
    pub legacy_group1: bool,
    /// Largest IKE datagram we send before fragmenting (RFC 7383 §2.5.1).
    pub fragment_size: usize,
    /// Limits for reassembly: fragments per message and total bytes.
    pub max_fragments: u16,
    /// Max reassembled size.
    pub max_reassembled: usize,
    /// Time a partial message may wait for its other fragments.
    pub reassembly_timeout: Duration,
    /// Ask for an IPv6 address too.
    pub request_ipv6: bool,
    /// Retransmission policy.
    pub retransmit: Retransmit,
    /// Rekey our own IKE SA after this long (None: leave it to the gateway).
    pub ike_lifetime: Option<Duration>,
    /// Rekey our own CHILD SA after this long.
    pub child_lifetime: Option<Duration>,
    /// Dead peer detection: probe after half this long without a word from
    /// the gateway, declare it dead after this long. The gateway's Cisco
    /// attribute 28709 overrides it; None turns DPD off.
    pub dpd_interval: Option<Duration>,
    /// NAT-T keepalive interval when we are behind a NAT (RFC 3948 §2.3);
    /// Cisco attribute 28710 overrides it.
    pub keepalive_interval: Duration,
}

impl Settings {
    /// Defaults for a gateway at `gateway` reached from `local`.
    pub fn new(
        gateway: SocketAddr,
        local: SocketAddr,
        identity: Identity,
        auth: AuthMethod,
    ) -> Self {
        Settings {
            gateway,
            nat_port: 4500,
            local,
            identity,
            remote_id: None,
            auth,
            username: None,
            password: None,
            trust: Trust::default(),
            legacy: false,
            legacy_group1: false,
            fragment_size: 1280,
            max_fragments: 64,
            max_reassembled: 64 * 1024,
            reassembly_timeout: Duration::from_secs(5),
            request_ipv6: false,
            retransmit: Retransmit::default(),
            ike_lifetime: Some(Duration::from_secs(4 * 3600)),
            child_lifetime: Some(Duration::from_secs(3600)),
            dpd_interval: Some(Duration::from_secs(30)),
            keepalive_interval: Duration::from_secs(20),
        }
    }
}

/// Bounds on the numeric settings: what a front end may pass. Outside them
/// a timer would overflow `Instant` or a datagram size would underflow, so
/// [`Settings::validate`] refuses them with the limit named.
pub mod limits {
    use std::ops::RangeInclusive;
    use std::time::Duration;

    /// Our own IKE SA rekey (seconds): 10 s to 30 days.
    pub const IKE_LIFETIME_S: RangeInclusive<u64> = 10..=30 * 86_400;
    /// Our own CHILD SA rekey (seconds): 5 s to 30 days.
    pub const CHILD_LIFETIME_S: RangeInclusive<u64> = 5..=30 * 86_400;
    /// DPD interval (seconds; 0 turns DPD off): at most one day.
    pub const DPD_S: RangeInclusive<u64> = 0..=86_400;
    /// How long a lost session is retried (seconds): 1 s to a week.
    pub const RECONNECT_TIMEOUT_S: RangeInclusive<u64> = 1..=7 * 86_400;
    /// NAT-T keepalive interval (seconds).
    pub const KEEPALIVE_S: RangeInclusive<u64> = 1..=86_400;
    /// Largest IKE datagram before fragmenting: RFC 7383 §2.5.1 wants
    /// fragments to fit the smallest path; below 256 nothing useful fits.
    pub const FRAGMENT_SIZE: RangeInclusive<usize> = 256..=65_535;
    /// Retransmissions of one request.
    pub const RETRIES: RangeInclusive<u32> = 0..=30;
    /// Longest a single retransmission timeout may be.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
}

impl Settings {
    /// Checks every numeric setting against [`limits`]; the error names the
    /// setting, the value and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        fn secs(
            name: &str,
            d: Option<Duration>,
            r: &std::ops::RangeInclusive<u64>,
        ) -> Result<(), String> {
            match d {
                Some(d) if !r.contains(&d.as_secs()) => Err(format!(
                    "{name} {} s is out of range ({}..={} s)",
                    d.as_secs(),
                    r.start(),
                    r.end()
                )),
                _ => Ok(()),
            }
        }
        secs("IKE lifetime", self.ike_lifetime, &limits::IKE_LIFETIME_S)?;
        secs(
            "CHILD lifetime",
            self.child_lifetime,
            &limits::CHILD_LIFETIME_S,
        )?;
        secs("DPD interval", self.dpd_interval, &limits::DPD_S)?;
        secs(
            "keepalive interval",
            Some(self.keepalive_interval),
            &limits::KEEPALIVE_S,
        )?;
        let f = &limits::FRAGMENT_SIZE;
        if !f.contains(&self.fragment_size) {
            return Err(format!(
                "fragment size {} is out of range ({}..={})",
                self.fragment_size,
                f.start(),
                f.end()
            ));
        }
        let r = &self.retransmit;
        if !limits::RETRIES.contains(&r.tries) {
            return Err(format!(
                "{} retransmissions is out of range ({}..={})",
                r.tries,
                limits::RETRIES.start(),
                limits::RETRIES.end()
            ));
        }
        if r.initial.is_zero() || r.initial > r.max || r.max > limits::MAX_TIMEOUT {
            return Err(format!(
                "retransmission timeouts {:?}..{:?} are out of range (0..={:?}, first <= last)",
                r.initial,
                r.max,
                limits::MAX_TIMEOUT
            ));
        }
        if self.reassembly_timeout.is_zero() || self.reassembly_timeout > limits::MAX_TIMEOUT {
            return Err(format!(
                "reassembly timeout {:?} is out of range",
                self.reassembly_timeout
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::new(
            "198.51.100.1:500".parse().unwrap(),
            "198.51.100.2:500".parse().unwrap(),
            Identity::KeyId("a".into()),
            AuthMethod::Psk(Secret::new(b"k".to_vec())),
        )
    }

    /// AuthenticationTimeout as retransmissions of the default schedule
    /// (0.5, 1, 2, 4, 4 … s): 10 s of waiting allow 3, 23.5 s the default 7.
    #[test]
    fn authentication_timeout_becomes_a_retry_count() {
        let r = Retransmit::default();
        assert_eq!(r.tries_within(Duration::from_secs(10)), 3);
        assert_eq!(r.tries_within(Duration::from_millis(23_500)), 7);
        assert_eq!(r.tries_within(Duration::from_secs(120)), 30);
        assert_eq!(r.tries_within(Duration::ZERO), 1);
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(settings().validate(), Ok(()));
    }

    /// The values that once panicked with "overflow when adding duration to
    /// instant" or underflowed the fragment room are refused, naming the setting.
    #[test]
    fn out_of_range_values_are_named() {
        let huge = Some(Duration::from_secs(u64::MAX));
        let mut s = settings();
        s.ike_lifetime = huge;
        assert!(s
            .validate()
            .unwrap_err()
            .starts_with("IKE lifetime 18446744073709551615 s"));
        let mut s = settings();
        s.child_lifetime = huge;
        assert!(s.validate().unwrap_err().starts_with("CHILD lifetime"));
        let mut s = settings();
        s.dpd_interval = huge;
        assert!(s.validate().unwrap_err().starts_with("DPD interval"));
        for n in [0, 3, 255, 65_536] {
            let mut s = settings();
            s.fragment_size = n;
            let e = s.validate().unwrap_err();
            assert!(e.starts_with(&format!("fragment size {n} ")), "{e}");
        }
        let mut s = settings();
        s.retransmit.tries = 1000;
        assert!(s.validate().unwrap_err().contains("retransmissions"));
    }
}
