//! The final IKE_AUTH: AUTH from SK_pi/SK_pr, the CFG_REPLY with seed 004's
//! Cisco attributes, and the CHILD SA.

use std::net::{IpAddr, Ipv4Addr};

use acclient_core::crypto::auth::{shared_key_auth, signed_octets};
use acclient_core::crypto::keymat::{self, KeyLengths};
use acclient_core::crypto::Rng;
use acclient_core::ike::cisco;
use acclient_core::ike::proposals;
use acclient_core::wire::*;

use super::*;
use crate::ike::restrict;

impl Gw {
    pub(crate) fn final_auth(
        &mut self,
        spi_r: [u8; 8],
        id: u32,
        payloads: &[Payload<'_>],
    ) -> Vec<Vec<u8>> {
        let lease_n = self.next_lease;
        let (pool, dns, protected) = (self.a.pool, self.a.dns, self.a.protected);
        let sa = self.sas.get_mut(&spi_r).expect("SA");
        let auth = payloads.iter().find_map(|p| match &p.body {
            PayloadBody::Auth(a) => Some(a.data.to_vec()),
            _ => None,
        });
        if payloads.len() != 1 {
            log("the final IKE_AUTH request must carry AUTH only");
        }
        let prf = sa.suite.prf;
        let i_oct = signed_octets(&sa.msg1, &sa.nr, &prf, sa.keys.sk_pi.expose(), &sa.idi_body);
        if auth.as_deref() != Some(&shared_key_auth(&prf, sa.keys.sk_pi.expose(), &i_oct)[..]) {
            log("the client's AUTH (keyed from SK_pi) does not verify");
            let n = [Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::AUTHENTICATION_FAILED,
                &[],
            )))];
            return self.seal(spi_r, ExchangeType::IKE_AUTH, id, &n);
        }
        let r_oct = signed_octets(&sa.msg2, &sa.ni, &prf, sa.keys.sk_pr.expose(), &sa.idr_body);
        let my_auth = shared_key_auth(&prf, sa.keys.sk_pr.expose(), &r_oct);
        let mut offer = restrict(&sa.child_offer, self.a.knobs.esp_suite.as_deref());
        if self.a.knobs.esn {
            for p in &mut offer.proposals {
                p.transforms
                    .retain(|t| t.ty != TransformType::ESN || t.id == EsnId::ESN.0);
            }
        }
        let Some(mut esp) = proposals::choose_from_peer(&offer, ProtocolId::ESP, None) else {
            let n = [Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::NO_PROPOSAL_CHOSEN,
                &[],
            )))];
            return self.seal(spi_r, ExchangeType::IKE_AUTH, id, &n);
        };
        let client_spi = offer
            .proposals
            .iter()
            .find(|p| p.num == esp.num)
            .map(|p| p.spi.clone())
            .unwrap_or_default();
        let mut spi = [0u8; 4];
        self.rng.fill(&mut spi);
        esp.spi = spi.to_vec();
        let sa = self.sas.get_mut(&spi_r).expect("SA");
        // A resumed session already has its old address.
        if sa.lease.is_unspecified() {
            sa.lease = Ipv4Addr::from(u32::from(pool) + lease_n);
            self.next_lease += 1;
        }
        if self.a.knobs.resume_timeout > 0 {
            self.sessions.insert(
                sa.token.clone(),
                Resumable {
                    session_id: sa.session_id,
                    user: sa.user.clone(),
                    group: sa.group.clone(),
                    lease: sa.lease,
                    until: std::time::Instant::now()
                        + std::time::Duration::from_secs(self.a.knobs.resume_timeout),
                },
            );
        }
        if let Ok((suite, _)) = proposals::select_esp(
            &SaPayload {
                proposals: vec![esp.clone()],
            },
            &SaPayload {
                proposals: vec![esp.clone()],
            },
        ) {
            let l = KeyLengths {
                integ: suite.integ.map_or(0, |i| i.key_len()),
                encr: suite.encr.key_len(),
            };
            let k = keymat::child_keys(
                &sa.suite.prf,
                sa.keys.sk_d.expose(),
                None,
                &sa.ni,
                &sa.nr,
                l,
            );
            let info = acclient_core::esp::ChildSaInfo {
                spi_in: u32::from_be_bytes(spi),
                spi_out: client_spi
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes)
                    .unwrap_or(0),
                encr: suite.encr,
                integ: suite.integ,
                esn: suite.esn,
                encr_out: k.encr_r,
                integ_out: k.integ_r,
                encr_in: k.encr_i,
                integ_in: k.integ_i,
                ts_local: vec![],
                ts_remote: vec![],
            };
            if let (Some(peer), Some(e)) = (sa.peer, acclient_core::esp::EspSa::new(&info)) {
                log(&format!(
                    "ESP {}{} SPIs {:08x}_i {:08x}_o for {}",
                    suite.name(),
                    if suite.esn { " with ESN" } else { "" },
                    info.spi_in,
                    info.spi_out,
                    sa.lease
                ));
                self.dp.add(sa.lease, peer, e);
            }
        }
        sa.stage = Stage::Up;
        let lease = sa.lease;
        let complete_xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><config-auth client=\"vpn\" type=\"complete\"><version who=\"sg\">9.0(2)8</version><session-id>{}</session-id><session-token>{}</session-token></config-auth>\0", sa.session_id, sa.token);
        let octets = lease.octets();
        let mask = [255u8, 255, 255, 255];
        let dns_o = dns.map(|d| d.octets());
        let (u0, u1800, u20) = (
            0u32.to_be_bytes(),
            1800u32.to_be_bytes(),
            self.a.knobs.keepalive_attr.to_be_bytes(),
        );
        let mtu = 1406u16.to_be_bytes();
        let dpd_attr = self.a.knobs.dpd_attr.to_be_bytes();
        let split: Vec<[u8; 8]> = self
            .a
            .knobs
            .split
            .iter()
            .map(|(n, l)| {
                let m = if *l == 0 { 0 } else { u32::MAX << (32 - l) };
                let mut v = [0u8; 8];
                v[..4].copy_from_slice(&n.octets());
                v[4..].copy_from_slice(&m.to_be_bytes());
                v
            })
            .collect();
        let mut attrs = vec![
            CfgAttribute {
                ty: CfgAttr::INTERNAL_IP4_ADDRESS,
                value: &octets,
            },
            CfgAttribute {
                ty: CfgAttr::INTERNAL_IP4_NETMASK,
                value: &mask,
            },
            CfgAttribute {
                ty: CfgAttr::APPLICATION_VERSION,
                value: b"ASA 100.7(6)116\0",
            },
            CfgAttribute {
                ty: CfgAttr(cisco::PFS),
                value: &[0],
            },
            CfgAttribute {
                ty: CfgAttr(cisco::SESSION_TIMEOUT),
                value: &u0,
            },
            CfgAttribute {
                ty: CfgAttr(cisco::DISCONNECT_TIMEOUT),
                value: &u1800,
            },
            CfgAttribute {
                ty: CfgAttr(cisco::IDLE_TIMEOUT),
                value: &u1800,
            },
            CfgAttribute {
                ty: CfgAttr(cisco::DPD),
                value: &dpd_attr,
            },
            CfgAttribute {
                ty: CfgAttr(cisco::KEEPALIVE),
                value: &u20,
            },
            CfgAttribute {
                ty: CfgAttr(cisco::MTU),
                value: &mtu,
            },
            CfgAttribute {
                ty: CfgAttr(cisco::COMPLETE_XML),
                value: complete_xml.as_bytes(),
            },
        ];
        for v in &split {
            attrs.push(CfgAttribute {
                ty: CfgAttr::INTERNAL_IP4_SUBNET,
                value: v,
            });
        }
        let domain = self.a.knobs.domain.clone().unwrap_or_default();
        let split_dns = self.a.knobs.split_dns.clone().unwrap_or_default();
        if !domain.is_empty() {
            attrs.push(CfgAttribute {
                ty: CfgAttr(cisco::DEF_DOMAIN),
                value: domain.as_bytes(),
            });
        }
        if !split_dns.is_empty() {
            attrs.push(CfgAttribute {
                ty: CfgAttr(cisco::SPLIT_DNS),
                value: split_dns.as_bytes(),
            });
        }
        let banner = self.a.knobs.banner.clone().unwrap_or_default();
        if !banner.is_empty() {
            attrs.push(CfgAttribute {
                ty: CfgAttr(cisco::BANNER),
                value: banner.as_bytes(),
            });
        }
        // Cisco's "save password" permission (Unity SAVE_PASSWD, 2 bytes).
        let save = 1u16.to_be_bytes();
        if self.a.knobs.save_password {
            attrs.push(CfgAttribute {
                ty: CfgAttr(cisco::SAVE_PASSWD),
                value: &save,
            });
        }
        // Fault knob: a CP whose first attribute claims more bytes than there are.
        let bad_cp = [2u8, 0, 0, 0, 0, 1, 0xff, 0xff, 192, 0, 2];
        let broken = self.a.knobs.malformed.as_deref() == Some("cp");
        if let Some(d) = &dns_o {
            attrs.insert(
                2,
                CfgAttribute {
                    ty: CfgAttr::INTERNAL_IP4_DNS,
                    value: d,
                },
            );
        }
        let tsi = TsPayload {
            selectors: vec![TrafficSelector::range(IpAddr::V4(lease), IpAddr::V4(lease))],
        };
        let net = u32::from(protected.0);
        let last = if protected.1 == 0 {
            u32::MAX
        } else {
            net | (u32::MAX >> protected.1)
        };
        let tsr = TsPayload {
            selectors: vec![TrafficSelector::range(
                IpAddr::V4(Ipv4Addr::from(net)),
                IpAddr::V4(Ipv4Addr::from(last)),
            )],
        };
        let p = [
            Payload::from(PayloadBody::Auth(Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: &my_auth,
            })),
            if broken {
                log("fault knob: sending a malformed CFG_REPLY");
                Payload::from(PayloadBody::Unknown(PayloadType::CP, &bad_cp))
            } else {
                Payload::from(PayloadBody::Cp(ConfigPayload {
                    cfg_type: CfgType::CFG_REPLY,
                    attributes: attrs,
                }))
            },
            Payload::from(PayloadBody::Sa(SaPayload {
                proposals: vec![esp],
            })),
            Payload::from(PayloadBody::TsI(tsi)),
            Payload::from(PayloadBody::TsR(tsr)),
            Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::ESP_TFC_PADDING_NOT_SUPPORTED,
                &[],
            ))),
            Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::NON_FIRST_FRAGMENTS_ALSO,
                &[],
            ))),
        ];
        log(&format!("CHILD_SA established, address {lease} assigned"));
        self.seal(spi_r, ExchangeType::IKE_AUTH, id, &p)
    }
}
