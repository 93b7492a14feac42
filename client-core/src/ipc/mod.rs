//! The agent's IPC: what a front end (the `acclient` CLI, the desktop app)
//! and `acclientd` say to each other over `acclientd.sock`. One JSON object
//! per line, each a [`Request`] (front end → agent) or a [`Reply`] (agent →
//! front end), tagged by `"type"`; the first exchange is `hello` with
//! [`IPC_VERSION`]. Plain serde data: shared by every front end, no I/O.
//!
//! The agent never opens a path a front end names: certificates, keys and
//! pre-shared keys travel as content in [`ConnectRequest`], so a user cannot
//! make root read a file the user could not read.
//!
//! ```text
//! → {"type":"hello","version":1}                 ← {"type":"hello","version":1,"agent":"0.1.0"}
//! → {"type":"connect", ...ConnectRequest}        ← {"type":"event","event":{"kind":"progress",...}}
//!                                                ← {"type":"event","event":{"kind":"prompt","id":1,...}}
//! → {"type":"answer","id":1,"answer":{...}}      ← {"type":"event","event":{"kind":"connected",...}}
//! → {"type":"disconnect"}                        ← {"type":"event","event":{"kind":"disconnected",...}}
//! → {"type":"state"}                             ← {"type":"state","state":"Established","host":"ASA"}
//! ```

use serde::{Deserialize, Serialize};

use crate::eap::anyconnect::form::Field;

#[cfg(feature = "ipc-client")]
pub mod client;
#[cfg(feature = "ipc-client")]
pub mod known;

/// The protocol version; a front end refuses an agent that speaks another.
pub const IPC_VERSION: u32 = 1;
/// The socket's name in the state directory.
pub const SOCKET: &str = "acclientd.sock";
/// The group whose members may use the agent (besides root).
pub const GROUP: &str = "acclient";
/// The longest line either side accepts (a connect with a CA bundle fits).
pub const MAX_LINE: usize = 1 << 20;

/// A front end's request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// The first line: the front end's protocol version.
    Hello {
        /// [`IPC_VERSION`].
        version: u32,
    },
    /// Start a session (one at a time).
    Connect(Box<ConnectRequest>),
    /// Answer the prompt `id` (only the front end that asked to connect).
    Answer {
        /// The prompt's id.
        id: u32,
        /// The answer.
        answer: Answer,
    },
    /// End the session: DELETE, everything put back.
    Disconnect,
    /// What is going on (Cisco's `vpn state`).
    State,
    /// The full status snapshot.
    Status,
    /// Keep receiving events although this front end did not connect.
    Watch,
    /// Close the session cleanly and log in again, keeping the tunnel
    /// (openconnect's SIGUSR2).
    Reconnect,
}

/// Everything the agent needs to connect, as content. Fields a front end
/// leaves out take their defaults.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectRequest {
    /// What to call the host (profile entry or server as typed).
    pub host: String,
    /// The gateway, `address[:port]` (the front end resolved names).
    pub server: String,
    /// Log in with EAP-AnyConnect.
    pub anyconnect: bool,
    /// Standard EAP methods allowed (mschapv2, md5, gtc); empty: any.
    pub eap: Vec<String>,
    /// Pre-shared key authentication (content, not a path).
    pub psk: Option<String>,
    /// User name.
    pub user: Option<String>,
    /// Tunnel group.
    pub group: Option<String>,
    /// Our IKE identity when it is not derived from the user.
    pub identity: Option<String>,
    /// The identity the gateway must present.
    pub remote_id: Option<String>,
    /// Trust anchors, PEM content.
    pub ca_pem: Option<String>,
    /// Accepted certificate pins (pin-sha256: / pin-sha512:).
    pub pins: Vec<String>,
    /// Client certificate chain, DER, end entity first (AnyConnect).
    pub client_cert: Vec<Vec<u8>>,
    /// Its private key, DER (PKCS#1 or PKCS#8).
    pub client_key: Option<Vec<u8>>,
    /// Also offer legacy algorithms.
    pub legacy: bool,
    /// Ask for IPv6 too (an address and IPv6 traffic selectors).
    pub ipv6: bool,
    /// How we describe ourselves to an AnyConnect head-end.
    pub client: crate::settings::ClientDescription,
    /// In a full tunnel without an IPv6 address, let IPv6 bypass the tunnel
    /// (default: blocked).
    pub allow_ipv6_bypass: bool,
    /// Largest IKE datagram before fragmenting.
    pub fragment_size: Option<usize>,
    /// Rekey lifetimes, seconds.
    pub ike_lifetime: Option<u64>,
    /// See `ike_lifetime`.
    pub child_lifetime: Option<u64>,
    /// DPD interval (s; 0 off).
    pub dpd: Option<u64>,
    /// Retransmissions of a request.
    pub retries: Option<u32>,
    /// Reconnect when the gateway is lost.
    pub reconnect: bool,
    /// How long reconnect attempts go on (s; default 600).
    pub reconnect_timeout: Option<u64>,
    /// After a suspend: end the session instead of probing.
    pub disconnect_on_suspend: bool,
    /// Keep the local LAN reachable in a full tunnel.
    pub local_lan: bool,
    /// More prefixes into the tunnel (CIDR).
    pub split_include: Vec<String>,
    /// Prefixes kept outside (CIDR).
    pub split_exclude: Vec<String>,
    /// Leave DNS alone.
    pub no_dns: bool,
    /// Tunnel MTU override.
    pub mtu: Option<u32>,
    /// TUN device name.
    pub interface: Option<String>,
}

impl std::fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the PSK or the key.
        f.debug_struct("ConnectRequest")
            .field("host", &self.host)
            .field("server", &self.server)
            .field("user", &self.user)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// An answer to a prompt.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// A password.
    Secret {
        /// The password.
        value: String,
    },
    /// Yes / no (certificate, banner).
    Accept {
        /// The decision.
        yes: bool,
    },
    /// Form values by field name.
    Form {
        /// (name, value).
        values: Vec<(String, String)>,
    },
    /// Give up this login (the user closed the dialog).
    Cancel,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Secret { .. } => write!(f, "Secret(..)"),
            Answer::Accept { yes } => write!(f, "Accept({yes})"),
            Answer::Form { values } => {
                let names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
                write!(f, "Form({names:?})")
            }
            Answer::Cancel => write!(f, "Cancel"),
        }
    }
}

/// A question for the user.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "prompt", rename_all = "snake_case")]
pub enum Prompt {
    /// The EAP method needs the password for `user`.
    Password {
        /// For whom.
        user: String,
    },
    /// A login form (the core's typed form; answer with its field names).
    Form {
        /// The form's `<auth id>` (main, challenge, …).
        #[serde(default)]
        id: String,
        /// Title.
        title: String,
        /// Banner text above the fields.
        banner: String,
        /// Message.
        message: String,
        /// The gateway's error line on a retry.
        error: Option<String>,
        /// The fields.
        fields: Vec<Field>,
    },
    /// The gateway asks for posture assessment: the front end runs its
    /// host-scan wrapper (as the user, never the agent as root) and answers
    /// `accept` with whether it succeeded.
    HostScan {
        /// The gateway's parameters for the wrapper.
        scan: crate::eap::anyconnect::xml::HostScan,
    },
    /// The gateway's certificate is not trusted.
    TrustCertificate {
        /// Subject DN.
        subject: String,
        /// Issuer DN.
        issuer: String,
        /// SHA-256 of the certificate, hex.
        sha256: String,
        /// pin-sha256:...
        pin: String,
        /// Why it is not trusted.
        reason: String,
        /// Valid from (x509 time as text).
        #[serde(default)]
        not_before: String,
        /// Valid until.
        #[serde(default)]
        not_after: String,
    },
    /// The login banner: accept to stay connected.
    Banner {
        /// Its text.
        text: String,
    },
}

/// Something the front end should know.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A step of the connection, as a line for the user.
    Progress {
        /// e.g. "IKE SA negotiated: AES_GCM_16_256/...".
        text: String,
    },
    /// A question; answer with [`Request::Answer`].
    Prompt {
        /// Its id.
        id: u32,
        /// The question.
        prompt: Prompt,
    },
    /// Connected: the status at that moment.
    Connected {
        /// The snapshot.
        status: Box<serde_json::Value>,
    },
    /// About once a second while established: the status snapshot.
    Stats {
        /// The snapshot.
        status: Box<serde_json::Value>,
    },
    /// The session ended.
    Disconnected {
        /// Why, for the user.
        reason: String,
        /// The CLI's exit code for it.
        exit_code: i32,
    },
}

/// The agent's line.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// The answer to hello.
    Hello {
        /// [`IPC_VERSION`].
        version: u32,
        /// The agent's version.
        agent: String,
    },
    /// An event of the session this front end connected (or watches).
    Event {
        /// The event.
        event: Event,
    },
    /// The answer to `state`.
    State {
        /// Idle, Connecting, Established, Disconnecting.
        state: String,
        /// The host, when not idle.
        host: Option<String>,
    },
    /// The answer to `status`.
    Status {
        /// The driver's status snapshot (its own versioned schema).
        status: Box<serde_json::Value>,
    },
    /// A request done.
    Ok,
    /// A request refused, with why.
    Error {
        /// One line for the user.
        message: String,
    },
}

/// One line of JSON for `v` (no newline inside: serde_json escapes them).
pub fn line<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string(v).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_hide_secrets() {
        let r = Request::Connect(Box::new(ConnectRequest {
            host: "ASA".into(),
            server: "198.51.100.1:500".into(),
            psk: Some("hunter2".into()),
            ..Default::default()
        }));
        let l = line(&r);
        assert!(l.ends_with('\n') && !l[..l.len() - 1].contains('\n'));
        let back: Request = serde_json::from_str(&l).unwrap();
        assert!(matches!(back, Request::Connect(c) if c.host == "ASA"));
        assert!(!format!("{r:?}").contains("hunter2"), "no secret in Debug");
        let a = Answer::Secret { value: "pw".into() };
        assert_eq!(format!("{a:?}"), "Secret(..)");
        let h: Request = serde_json::from_str(r#"{"type":"hello","version":1}"#).unwrap();
        assert!(matches!(h, Request::Hello { version: 1 }));
        assert!(serde_json::from_str::<Request>(r#"{"type":"reboot"}"#).is_err());
    }
}
