//! Configuration payloads (RFC 7296 §2.19, §3.15): what IKE_AUTH asks for in
//! CP(CFG_REQUEST) — the standard attributes, or AnyConnect's 36 in seed
//! 004's order — and how a CP(CFG_REPLY) becomes [`TunnelConfig`].

use std::net::{IpAddr, Ipv4Addr};

use crate::event::TunnelConfig;
use crate::ike::cisco;
use crate::settings::{AuthMethod, Settings};
use crate::wire::{CfgAttr, ConfigPayload};

/// The attributes of our CFG_REQUEST: (type, value), values empty except
/// what AnyConnect announces (version, host name, MTU).
pub(crate) fn request(settings: &Settings) -> Vec<(CfgAttr, Vec<u8>)> {
    let mut attrs: Vec<(CfgAttr, Vec<u8>)> = match &settings.auth {
        AuthMethod::AnyConnect(a) => cisco::request(&a.app_version, &a.hostname, a.mtu),
        _ => [
            CfgAttr::INTERNAL_IP4_ADDRESS,
            CfgAttr::INTERNAL_IP4_NETMASK,
            CfgAttr::INTERNAL_IP4_DNS,
            CfgAttr::INTERNAL_IP4_NBNS,
            CfgAttr::INTERNAL_DNS_DOMAIN,
        ]
        .into_iter()
        .map(|t| (t, Vec::new()))
        .collect(),
    };
    if settings.request_ipv6 {
        attrs.push((CfgAttr::INTERNAL_IP6_ADDRESS, Vec::new()));
        attrs.push((CfgAttr::INTERNAL_IP6_DNS, Vec::new()));
    }
    attrs
}

fn prefix_of_mask(m: [u8; 4]) -> u8 {
    u32::from_be_bytes(m).leading_ones() as u8
}

/// Takes a CFG_REPLY into `cfg`. Values of the wrong length are ignored,
/// never trusted; attributes we do not interpret are kept raw (secret ones,
/// like Cisco's `complete` XML, never land there).
pub(crate) fn apply(cfg: &mut TunnelConfig, cp: &ConfigPayload<'_>) {
    let mut v4_addr = None;
    let mut v4_mask = None;
    for a in &cp.attributes {
        let v = a.value;
        let v4 = || <[u8; 4]>::try_from(v).ok();
        let v6 = |v: &[u8]| <[u8; 16]>::try_from(v).ok().map(IpAddr::from);
        match a.ty {
            CfgAttr::INTERNAL_IP4_ADDRESS => v4_addr = v4().map(Ipv4Addr::from),
            CfgAttr::INTERNAL_IP4_NETMASK => v4_mask = v4(),
            CfgAttr::INTERNAL_IP4_DNS => cfg.dns.extend(v4().map(IpAddr::from)),
            CfgAttr::INTERNAL_IP4_NBNS => cfg.nbns.extend(v4().map(IpAddr::from)),
            CfgAttr::INTERNAL_ADDRESS_EXPIRY if v.len() == 4 => {
                cfg.address_expiry = v4().map(u32::from_be_bytes)
            }
            CfgAttr::INTERNAL_IP4_SUBNET if v.len() == 8 => {
                let a: [u8; 4] = v[..4].try_into().unwrap_or([0; 4]);
                let m: [u8; 4] = v[4..].try_into().unwrap_or([0; 4]);
                cfg.subnets.push((IpAddr::from(a), prefix_of_mask(m)));
            }
            // §3.15.1: 16-byte address plus 1-byte prefix length.
            CfgAttr::INTERNAL_IP6_ADDRESS if v.len() == 17 => {
                cfg.addresses.extend(v6(&v[..16]).map(|a| (a, v[16])));
            }
            CfgAttr::INTERNAL_IP6_DNS if v.len() == 16 => cfg.dns.extend(v6(v)),
            CfgAttr::INTERNAL_IP6_SUBNET if v.len() == 17 => {
                cfg.subnets.extend(v6(&v[..16]).map(|a| (a, v[16])));
            }
            CfgAttr::INTERNAL_DNS_DOMAIN if !v.is_empty() => {
                cfg.domains.push(String::from_utf8_lossy(v).into_owned())
            }
            _ if v.is_empty() => {}
            other => {
                if !cisco::apply(&mut cfg.cisco, other.0, v) {
                    cfg.unknown.push((other.0, v.to_vec()))
                }
            }
        }
    }
    if let Some(a) = v4_addr {
        let prefix = v4_mask.map_or(32, prefix_of_mask);
        cfg.addresses.insert(0, (IpAddr::V4(a), prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CfgAttribute, CfgType};

    #[test]
    fn cfg_reply_decoding() {
        let addr = [192, 0, 2, 7];
        let mask = [255, 255, 255, 0];
        let dns = [203, 0, 113, 53];
        let subnet = [203, 0, 113, 0, 255, 255, 255, 0];
        let mut v6 = [0u8; 17];
        v6[..2].copy_from_slice(&[0x20, 0x01]);
        v6[2..4].copy_from_slice(&[0x0d, 0xb8]);
        v6[15] = 1;
        v6[16] = 64;
        let attr = |ty, value| CfgAttribute { ty, value };
        let cp = ConfigPayload {
            cfg_type: CfgType::CFG_REPLY,
            attributes: vec![
                attr(CfgAttr::INTERNAL_IP4_ADDRESS, &addr),
                attr(CfgAttr::INTERNAL_IP4_NETMASK, &mask),
                attr(CfgAttr::INTERNAL_IP4_DNS, &dns),
                attr(CfgAttr::INTERNAL_IP4_SUBNET, &subnet),
                attr(CfgAttr::INTERNAL_IP6_ADDRESS, &v6),
                attr(CfgAttr::INTERNAL_DNS_DOMAIN, b"example.com"),
                attr(CfgAttr(28711), &[0x05, 0x7e]),
                attr(CfgAttr(28727), b"<config-auth>token</config-auth>\0"),
                attr(CfgAttr(28683), &[0x80, 0x0b, 0, 1]),
            ],
        };
        let mut cfg = TunnelConfig::default();
        apply(&mut cfg, &cp);
        assert_eq!(cfg.addresses[0], ("192.0.2.7".parse().unwrap(), 24));
        assert_eq!(cfg.addresses[1], ("2001:db8::1".parse().unwrap(), 64));
        assert_eq!(cfg.dns, vec!["203.0.113.53".parse::<IpAddr>().unwrap()]);
        assert_eq!(cfg.subnets, vec![("203.0.113.0".parse().unwrap(), 24)]);
        assert_eq!(cfg.domains, vec!["example.com".to_string()]);
        assert_eq!(cfg.cisco.mtu, Some(1406));
        assert!(cfg.cisco.complete_xml.is_some());
        assert_eq!(cfg.unknown, vec![(28683, vec![0x80, 0x0b, 0, 1])]);
        assert!(!format!("{cfg:?}").contains("token"), "no secret in Debug");
    }

    /// Known attributes of the wrong length are never trusted: ignored, or
    /// kept raw like an unknown one, never half-read.
    #[test]
    fn wrong_lengths_are_not_used() {
        let attr = |ty, value| CfgAttribute { ty, value };
        let cp = ConfigPayload {
            cfg_type: CfgType::CFG_REPLY,
            attributes: vec![
                attr(CfgAttr::INTERNAL_IP4_DNS, &[1, 2, 3]),
                attr(CfgAttr::INTERNAL_IP6_DNS, &[1; 15]),
                attr(CfgAttr::INTERNAL_IP4_SUBNET, &[1; 7]),
            ],
        };
        let mut cfg = TunnelConfig::default();
        apply(&mut cfg, &cp);
        assert!(cfg.dns.is_empty() && cfg.subnets.is_empty());
        assert_eq!(cfg.unknown.len(), 2, "kept raw, not used");
    }

    #[test]
    fn request_attributes() {
        let mut s = Settings::new(
            "198.51.100.1:500".parse().unwrap(),
            "198.51.100.2:500".parse().unwrap(),
            crate::settings::Identity::KeyId("a".into()),
            AuthMethod::Psk(crate::crypto::Secret::new(b"k".to_vec())),
        );
        assert_eq!(request(&s).len(), 5);
        s.request_ipv6 = true;
        assert_eq!(request(&s).last().unwrap().0, CfgAttr::INTERNAL_IP6_DNS);
        s.auth = AuthMethod::AnyConnect(crate::settings::AnyConnectClient::new(None, "h".into()));
        assert_eq!(
            request(&s).len(),
            38,
            "seed 004's 36 plus the two IPv6 ones"
        );
    }
}
