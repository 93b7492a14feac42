//! One snapshot of a running session for every front end: `probe --json`,
//! `status --json`, the control socket and the agent's IPC all print this
//! one serde schema, versioned by [`STATUS_VERSION`]. Field names follow
//! what `swanctl --list-sas` and Cisco's `vpn stats` show. Plain data, so a
//! front end reads it without the driver; `driver::status` fills it in.

use serde::{Deserialize, Serialize};

use crate::esp::EspCounters;
use crate::Stats;

/// The schema version; bumped when a field changes meaning or goes away
/// (new fields may appear without a bump). 2: traffic selectors are
/// prefixes (`192.0.2.11/32`), not ranges.
pub const STATUS_VERSION: u32 = 2;

/// A snapshot of the session for `probe` and `status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    /// [`STATUS_VERSION`].
    pub version: u32,
    /// SaInit, Authenticating, Established, Closing, Closed.
    pub state: String,
    /// The profile's host name (or the server as given), if the front end said.
    pub host: Option<String>,
    /// The gateway's IKE address.
    pub gateway: String,
    /// Where traffic goes (the NAT-T address once floated).
    pub remote: String,
    /// Our NAT-T socket's address.
    pub local: String,
    /// Milliseconds from start to the first CHILD SA.
    pub connect_ms: Option<u64>,
    /// Seconds since connected.
    pub uptime_s: Option<u64>,
    /// Reconnections so far.
    pub reconnects: u32,
    /// The tunnel device, when one is up.
    pub interface: Option<String>,
    /// Tunnel MTU.
    pub mtu: Option<u32>,
    /// Assigned addresses (`a/len`).
    pub addresses: Vec<String>,
    /// DNS servers.
    pub dns: Vec<String>,
    /// NBNS (WINS) servers.
    pub nbns: Vec<String>,
    /// Networks pushed by the gateway (`a/len`).
    pub subnets: Vec<String>,
    /// DNS domains.
    pub domains: Vec<String>,
    /// Our traffic selectors, as prefixes (`192.0.2.11/32`, with ` proto N`
    /// / ` ports A-B` when narrowed to them).
    pub ts_local: Vec<String>,
    /// The gateway's traffic selectors.
    pub ts_remote: Vec<String>,
    /// IKE and ESP in UDP 4500.
    pub nat_t: bool,
    /// NAT-D found our address translated (keepalives are sent).
    pub behind_nat: bool,
    /// NAT-D found the gateway's address translated.
    #[serde(default)]
    pub gateway_behind_nat: bool,
    /// Why IKE and ESP are in UDP: `"forced"` (no NAT seen: acclient always
    /// encapsulates, as AnyConnect does), `"NAT"`, or `"none"`.
    #[serde(default)]
    pub udp_encapsulation: String,
    /// The identity we sent (IDi).
    #[serde(default)]
    pub local_id: String,
    /// The EAP / form user name.
    #[serde(default)]
    pub user: Option<String>,
    /// The gateway's verified identity (IDr).
    #[serde(default)]
    pub remote_id: Option<String>,
    /// How the gateway proved it (signature scheme or PSK).
    #[serde(default)]
    pub remote_auth: Option<String>,
    /// `"full"`, `"split"` or `"script"` (a vpnc-script routes), once up.
    #[serde(default)]
    pub tunnel: Option<String>,
    /// The routes in force: `0.0.0.0/1 tunnel`, `198.51.100.1/32 underlay`.
    #[serde(default)]
    pub routes: Vec<String>,
    /// A reconnect under way.
    #[serde(default)]
    pub reconnecting: Option<ReconnectStatus>,
    /// The IKE SA.
    pub ike: IkeStatus,
    /// The CHILD SA.
    pub child: ChildStatus,
    /// Data-plane counters.
    pub esp: EspStatus,
    /// Control-plane counters.
    pub stats: Stats,
    /// Dead peer detection.
    pub dpd: DpdStatus,
    /// Our own rekey lifetimes.
    pub lifetimes: Lifetimes,
    /// Cisco session attributes.
    pub cisco: CiscoStatus,
    /// The login banner.
    pub banner: Option<String>,
    /// AnyConnect session id (the token itself never leaves the session).
    pub session_id: Option<String>,
    /// The current login resumed an earlier AnyConnect session.
    pub session_resumed: bool,
    /// Attributes we do not interpret: type and length only.
    pub unknown_attributes: Vec<UnknownAttribute>,
}

/// The IKE SA.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IkeStatus {
    /// Initiator SPI (hex).
    pub spi_i: String,
    /// Responder SPI (hex).
    pub spi_r: String,
    /// e.g. AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384.
    pub algorithms: Option<String>,
    /// In UDP 4500.
    pub nat_t: bool,
    /// Seconds until our own rekey.
    pub rekey_in_s: Option<u64>,
    /// IKE datagrams sent.
    pub sent: u64,
    /// IKE datagrams received.
    pub received: u64,
    /// Retransmissions.
    pub retransmits: u64,
    /// Datagrams dropped.
    pub dropped: u64,
    /// Rekeys so far.
    pub rekeys: u64,
}

/// The CHILD SA.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ChildStatus {
    /// Our inbound SPI (8 hex digits).
    pub spi_in: Option<String>,
    /// The gateway's SPI we send to.
    pub spi_out: Option<String>,
    /// e.g. AES_GCM_16_256.
    pub algorithms: Option<String>,
    /// Always "tunnel".
    pub mode: String,
    /// Seconds until our own rekey.
    pub rekey_in_s: Option<u64>,
    /// Rekeys so far.
    pub rekeys: u64,
    /// Our traffic selectors.
    pub ts_local: Vec<String>,
    /// The gateway's.
    pub ts_remote: Vec<String>,
}

/// Data-plane counters (with the short names `probe` always printed).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EspStatus {
    /// ESP packets sent.
    pub tx_packets: u64,
    /// Inner bytes sent.
    pub tx_bytes: u64,
    /// ESP packets opened.
    pub rx_packets: u64,
    /// Inner bytes received.
    pub rx_bytes: u64,
    /// Dropped: replayed or too old.
    pub drop_replay: u64,
    /// Dropped: ICV did not verify.
    pub drop_integrity: u64,
    /// Dropped: not our SPI.
    pub drop_unknown_spi: u64,
    /// Dropped: malformed.
    pub drop_malformed: u64,
    /// Outbound drops and send errors.
    pub drop_tx: u64,
    /// Outbound IPv6 dropped: the tunnel has no IPv6 address (blocked,
    /// unless `--allow-ipv6-bypass` routes it around the tunnel).
    #[serde(default)]
    pub drop_ipv6: u64,
    /// NAT-T keepalives sent.
    pub keepalives: u64,
    /// Echo replies to `--ping`.
    pub echo_replies: u64,
    /// = tx_packets.
    pub sent: u64,
    /// = rx_packets.
    pub received: u64,
    /// All inbound drops.
    pub dropped: u64,
}

impl From<EspCounters> for EspStatus {
    fn from(e: EspCounters) -> EspStatus {
        EspStatus {
            tx_packets: e.tx_packets,
            tx_bytes: e.tx_bytes,
            rx_packets: e.rx_packets,
            rx_bytes: e.rx_bytes,
            drop_replay: e.drop_replay,
            drop_integrity: e.drop_integrity,
            drop_unknown_spi: e.drop_unknown_spi,
            drop_malformed: e.drop_malformed,
            drop_tx: e.drop_tx,
            drop_ipv6: e.drop_ipv6,
            keepalives: e.keepalives,
            echo_replies: e.echo_replies,
            sent: e.tx_packets,
            received: e.rx_packets,
            dropped: e.dropped(),
        }
    }
}

/// Dead peer detection.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DpdStatus {
    /// Interval in force (the gateway's, else ours).
    pub interval_s: Option<u64>,
    /// Seconds since anything authentic arrived.
    pub last_heard_s: Option<u64>,
    /// A probe is outstanding.
    pub probe_in_flight: bool,
    /// The gateway's probes answered.
    pub answered: u64,
}

/// A lost session being replaced.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReconnectStatus {
    /// Attempts so far.
    pub attempt: u32,
    /// Seconds since the session was lost.
    pub lost_s: u64,
    /// Why (the loss, or the last attempt's failure).
    pub reason: String,
}

/// Our rekey lifetimes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Lifetimes {
    /// IKE SA.
    pub ike_s: Option<u64>,
    /// CHILD SA.
    pub child_s: Option<u64>,
    /// When we rekey.
    pub rekey_at: String,
}

/// Cisco session attributes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CiscoStatus {
    /// Tunnel MTU attribute.
    pub mtu: Option<u16>,
    /// DPD interval attribute.
    pub dpd_s: Option<u32>,
    /// Keepalive attribute.
    pub keepalive_s: Option<u32>,
    /// Idle timeout.
    pub idle_timeout_s: Option<u32>,
    /// Session timeout.
    pub session_timeout_s: Option<u32>,
    /// The head-end's version string.
    pub gateway_version: Option<String>,
    /// Whether the gateway lets the user save the password (SAVE_PASSWD).
    pub save_password: Option<bool>,
}

/// An attribute kept raw.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UnknownAttribute {
    /// Its type.
    #[serde(rename = "type")]
    pub ty: u16,
    /// Its length.
    pub length: usize,
}
