//! Cisco's private configuration attributes (28672 and up) as AnyConnect
//! requests them and an ASA answers them (shared/protocol/anyconnect-ikev2.md
//! §6, seed 004). Meanings of 28704+ come from the seed's values against the
//! client's own log; the uncertain ones are kept raw.

use crate::crypto::Secret;
pub use crate::event::CiscoSettings;
use crate::wire::CfgAttr;

/// Vendor ID "CISCO(COPYRIGHT)&Copyright (c) 2009 Cisco Systems, Inc.".
pub const VID_COPYRIGHT: &[u8] = b"CISCO(COPYRIGHT)&Copyright (c) 2009 Cisco Systems, Inc.";
/// Vendor ID "CISCO-ANYCONNECT-EAP".
pub const VID_ANYCONNECT_EAP: &[u8] = b"CISCO-ANYCONNECT-EAP";
/// Vendor ID "CISCO-DELETE-REASON".
pub const VID_DELETE_REASON: &[u8] = b"CISCO-DELETE-REASON";
/// The 16-byte "GRANITE" vendor ID AnyConnect puts first in IKE_AUTH (seed 004's bytes; opaque).
pub const VID_GRANITE: [u8; 16] = [
    0x58, 0xaf, 0xf6, 0x11, 0x52, 0x8d, 0xb0, 0x2c, 0xb8, 0xda, 0x30, 0x46, 0xbe, 0x91, 0x56, 0xfa,
];

/// UNITY_BANNER.
pub const BANNER: u16 = 28672;
/// UNITY_SAVE_PASSWD (2 bytes, non-zero: the user may save the password).
pub const SAVE_PASSWD: u16 = 28673;
/// UNITY_DEF_DOMAIN.
pub const DEF_DOMAIN: u16 = 28674;
/// UNITY_SPLITDNS_NAME (comma-separated list).
pub const SPLIT_DNS: u16 = 28675;
/// UNITY_PFS (1 byte).
pub const PFS: u16 = 28679;
/// UNITY_DDNS_HOSTNAME: our host name.
pub const HOSTNAME: u16 = 28682;
/// Session timeout, seconds (u32).
pub const SESSION_TIMEOUT: u16 = 28704;
/// Disconnect (reconnect) timeout, seconds (u32) — order inferred from the seed's log.
pub const DISCONNECT_TIMEOUT: u16 = 28705;
/// Idle timeout, seconds (u32).
pub const IDLE_TIMEOUT: u16 = 28706;
/// DPD interval, seconds (u32).
pub const DPD: u16 = 28709;
/// NAT-T keepalive interval, seconds (u32).
pub const KEEPALIVE: u16 = 28710;
/// Tunnel MTU (u16): we propose, the gateway confirms.
pub const MTU: u16 = 28711;
/// The whole aggregate-auth `complete` XML, NUL-terminated. Secret.
pub const COMPLETE_XML: u16 = 28727;

/// The attributes of AnyConnect's CFG_REQUEST, in seed 004's order.
const REQUEST_ORDER: [u16; 36] = [
    1,
    2,
    3,
    4,
    5,
    7,
    8,
    13,
    HOSTNAME,
    28704,
    28705,
    28706,
    28707,
    28708,
    DPD,
    KEEPALIVE,
    BANNER,
    28684,
    MTU,
    DEF_DOMAIN,
    28712,
    SPLIT_DNS,
    PFS,
    28683,
    28717,
    28718,
    28719,
    28720,
    28721,
    28722,
    28723,
    28724,
    28725,
    28726,
    COMPLETE_XML,
    28729,
];

/// AnyConnect's CFG_REQUEST attributes: everything empty except our
/// application version (`AnyConnect <OS> <version>`, parsed by the ASA for
/// posture), host name and proposed MTU.
pub fn request(app_version: &str, hostname: &str, mtu: u16) -> Vec<(CfgAttr, Vec<u8>)> {
    REQUEST_ORDER
        .iter()
        .map(|&t| {
            let v = match t {
                7 => app_version.as_bytes().to_vec(),
                HOSTNAME => hostname.as_bytes().to_vec(),
                MTU => mtu.to_be_bytes().to_vec(),
                _ => Vec::new(),
            };
            (CfgAttr(t), v)
        })
        .collect()
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .trim_end_matches('\0')
        .to_string()
}

fn u32_of(v: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes)
}

/// Takes one attribute of a CFG_REPLY into `c`; returns false if it is
/// not one of Cisco's (the caller keeps it raw).
pub fn apply(this: &mut CiscoSettings, ty: u16, v: &[u8]) -> bool {
    match ty {
        7 => this.gateway_version = Some(text(v)),
        BANNER => this.banner = Some(text(v)),
        SAVE_PASSWD => this.save_password = Some(v.iter().any(|b| *b != 0)),
        DEF_DOMAIN => this.default_domain = Some(text(v)),
        SPLIT_DNS => this.split_dns.extend(
            text(v)
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        ),
        PFS => this.pfs = v.first().map(|b| *b != 0),
        SESSION_TIMEOUT => this.session_timeout = u32_of(v),
        DISCONNECT_TIMEOUT => this.disconnect_timeout = u32_of(v),
        IDLE_TIMEOUT => this.idle_timeout = u32_of(v),
        DPD => this.dpd_interval = u32_of(v),
        KEEPALIVE => this.keepalive_interval = u32_of(v),
        MTU => this.mtu = <[u8; 2]>::try_from(v).ok().map(u16::from_be_bytes),
        COMPLETE_XML => this.complete_xml = Some(Secret::new(v.to_vec())),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CfgAttribute, CfgType, ConfigPayload, Writer};

    /// Seed 004, first IKE_AUTH: "CFG ... 長度：196", 36 attributes, values only
    /// in 7 (27 bytes), 28682 (15) and 28711 (2, = 1406).
    /// SAVE_PASSWD: the gateway's say on keeping the password (a front
    /// end keeps one only when this is true and the user asks).
    #[test]
    fn save_passwd_attribute() {
        let mut c = CiscoSettings::default();
        assert!(apply(&mut c, SAVE_PASSWD, &[0, 1]));
        assert_eq!(c.save_password, Some(true));
        assert!(apply(&mut c, SAVE_PASSWD, &[0, 0]));
        assert_eq!(c.save_password, Some(false));
    }

    #[test]
    fn seed_cfg_request_is_196_bytes() {
        let attrs = request("AnyConnect Windows 3.0.1047", "winxp64template", 1406);
        assert_eq!(attrs.len(), 36);
        let cp = ConfigPayload {
            cfg_type: CfgType::CFG_REQUEST,
            attributes: attrs
                .iter()
                .map(|(t, v)| CfgAttribute { ty: *t, value: v })
                .collect(),
        };
        let mut w = Writer::new();
        cp.emit(&mut w);
        assert_eq!(
            w.buf.len() + 4,
            196,
            "CP payload length incl. generic header"
        );
        assert_eq!(attrs[18], (CfgAttr(MTU), vec![0x05, 0x7e]));
    }

    /// Seed 004's CFG_REPLY values and the client's log: MTU 1406, DPD 30 s,
    /// keepalive 20 s, idle and disconnect 1800 s, session timeout 0.
    #[test]
    fn seed_cfg_reply_values() {
        let mut c = CiscoSettings::default();
        for (t, v) in [
            (7u16, &b"ASA 100.7(6)116\0"[..]),
            (28679, &[0][..]),
            (SESSION_TIMEOUT, &0u32.to_be_bytes()[..]),
            (DISCONNECT_TIMEOUT, &1800u32.to_be_bytes()[..]),
            (IDLE_TIMEOUT, &1800u32.to_be_bytes()[..]),
            (DPD, &30u32.to_be_bytes()[..]),
            (KEEPALIVE, &20u32.to_be_bytes()[..]),
            (MTU, &[0x05, 0x7e][..]),
            (COMPLETE_XML, &b"<?xml version=\"1.0\"?><config-auth><session-token>SECRET</session-token></config-auth>\0"[..]),
        ] {
            assert!(apply(&mut c, t, v));
        }
        assert!(
            !apply(&mut c, 28683, &[0x80, 0x0b, 0, 1]),
            "unknown meaning: kept raw by the caller"
        );
        assert_eq!(
            (c.mtu, c.dpd_interval, c.keepalive_interval, c.idle_timeout),
            (Some(1406), Some(30), Some(20), Some(1800))
        );
        assert_eq!(c.gateway_version.as_deref(), Some("ASA 100.7(6)116"));
        assert_eq!(c.pfs, Some(false));
        assert!(
            !format!("{c:?}").contains("SECRET"),
            "the complete XML is never in Debug output"
        );
        // Malformed lengths are ignored, not trusted.
        let mut d = CiscoSettings::default();
        apply(&mut d, DPD, &[1, 2]);
        assert_eq!(d.dpd_interval, None);
    }
}
