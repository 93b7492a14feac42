//! Payload-level decode of IKE messages for `-vv` logs, in the spirit of the
//! Cisco debug lines in the seeds. Secrets are never printed: AUTH data,
//! nonces, KE values and EAP contents are reduced to their lengths and types.

use crate::wire::{CfgAttr, Payload, PayloadBody, TransformType};

/// Short form, like strongSwan: `[ IDi AUTH CPRQ(ADDR DNS) SA TSi TSr ]`.
pub fn summary(payloads: &[Payload<'_>]) -> String {
    let mut s = String::from("[");
    for p in payloads {
        s.push(' ');
        s += &match &p.body {
            PayloadBody::Sa(_) => "SA".into(),
            PayloadBody::Ke(_) => "KE".into(),
            PayloadBody::IdI(_) => "IDi".into(),
            PayloadBody::IdR(_) => "IDr".into(),
            PayloadBody::Cert(_) => "CERT".into(),
            PayloadBody::CertReq(_) => "CERTREQ".into(),
            PayloadBody::Auth(_) => "AUTH".into(),
            PayloadBody::Nonce(_) => "No".into(),
            PayloadBody::Notify(n) => format!("N({:?})", n.ty),
            PayloadBody::Delete(_) => "D".into(),
            PayloadBody::VendorId(_) => "V".into(),
            PayloadBody::TsI(_) => "TSi".into(),
            PayloadBody::TsR(_) => "TSr".into(),
            PayloadBody::Sk(_) => "SK".into(),
            PayloadBody::Skf(f) => format!("EF({}/{})", f.number, f.total),
            PayloadBody::Cp(c) => format!("CP({:?})", c.cfg_type),
            PayloadBody::Eap(e) => crate::eap::describe(e),
            PayloadBody::Unknown(t, _) => format!("{t:?}"),
        };
    }
    s + " ]"
}

/// One line per payload with its fields.
pub fn detail(payloads: &[Payload<'_>]) -> String {
    let mut out = String::new();
    for p in payloads {
        let crit = if p.critical { " critical" } else { "" };
        let line = match &p.body {
            PayloadBody::Sa(sa) => {
                let mut l = String::from("SA");
                for pr in &sa.proposals {
                    l += &format!(
                        "\n    proposal {} {:?} spi {} bytes, {} transforms:",
                        pr.num,
                        pr.protocol,
                        pr.spi.len(),
                        pr.transforms.len()
                    );
                    for t in &pr.transforms {
                        let name = match t.ty {
                            TransformType::ENCR => format!("{:?}", crate::wire::EncrId(t.id)),
                            TransformType::PRF => format!("{:?}", crate::wire::PrfId(t.id)),
                            TransformType::INTEG => format!("{:?}", crate::wire::IntegId(t.id)),
                            TransformType::DH => format!("{:?}", crate::wire::DhId(t.id)),
                            TransformType::ESN => format!("{:?}", crate::wire::EsnId(t.id)),
                            _ => format!("{}", t.id),
                        };
                        let kl = t.key_len().map(|k| format!("_{k}")).unwrap_or_default();
                        l += &format!(" {:?}:{name}{kl}", t.ty);
                    }
                }
                l
            }
            PayloadBody::Ke(k) => format!("KE group {:?}, {} bytes", k.group, k.data.len()),
            PayloadBody::IdI(id) => format!("IDi type {:?}: {id}", id.ty),
            PayloadBody::IdR(id) => format!("IDr type {:?}: {id}", id.ty),
            PayloadBody::Cert(c) => {
                format!("CERT encoding {:?}, {} bytes", c.encoding, c.data.len())
            }
            PayloadBody::CertReq(c) => format!(
                "CERTREQ encoding {:?}, {} CA hashes",
                c.encoding,
                c.data.len() / 20
            ),
            PayloadBody::Auth(a) => format!("AUTH method {:?}, {} bytes", a.method, a.data.len()),
            PayloadBody::Nonce(n) => format!("Nonce, {} bytes", n.len()),
            PayloadBody::Notify(n) => format!(
                "N {:?} protocol {:?} spi {} bytes, {} data bytes",
                n.ty,
                n.protocol,
                n.spi.len(),
                n.data.len()
            ),
            PayloadBody::Delete(d) => format!(
                "D protocol {:?}, {} SPIs",
                d.protocol,
                d.iter_spis().count()
            ),
            PayloadBody::VendorId(v) => format!(
                "VID {} bytes {}",
                v.len(),
                crate::crypto::hex(&v[..v.len().min(16)])
            ),
            PayloadBody::TsI(ts) | PayloadBody::TsR(ts) => {
                let n = if p.body.ty() == crate::wire::PayloadType::TSI {
                    "TSi"
                } else {
                    "TSr"
                };
                let list: Vec<String> = ts.selectors.iter().map(|s| s.to_string()).collect();
                format!("{n} {}", list.join(", "))
            }
            PayloadBody::Sk(b) => format!("SK {} bytes", b.len()),
            PayloadBody::Skf(f) => format!(
                "SKF fragment {}/{} {} bytes",
                f.number,
                f.total,
                f.data.len()
            ),
            PayloadBody::Cp(c) => {
                let attrs: Vec<String> = c
                    .attributes
                    .iter()
                    .map(|a| {
                        let name =
                            a.ty.name()
                                .map(str::to_string)
                                .unwrap_or_else(|| format!("unknown {}", a.ty.0));
                        match a.ty {
                            // Values of known address attributes are not secret.
                            CfgAttr::INTERNAL_IP4_ADDRESS
                            | CfgAttr::INTERNAL_IP4_DNS
                            | CfgAttr::INTERNAL_IP4_NETMASK
                                if a.value.len() == 4 =>
                            {
                                format!(
                                    "{name}={}",
                                    std::net::Ipv4Addr::from(
                                        <[u8; 4]>::try_from(a.value).unwrap_or([0; 4])
                                    )
                                )
                            }
                            _ => format!("{name} len {}", a.value.len()),
                        }
                    })
                    .collect();
                format!("CP {:?}: {}", c.cfg_type, attrs.join(", "))
            }
            PayloadBody::Eap(e) => format!("{} length {}", crate::eap::describe(e), e.len()),
            PayloadBody::Unknown(t, b) => format!("{t:?} {} bytes", b.len()),
        };
        out += &format!("  {line}{crit}\n");
    }
    out
}

/// One line of Wireshark's `ikev2_decryption_table` UAT (hex fields bare,
/// algorithm names quoted) for `sa`. It contains the SA's keys: only for a
/// key log the user asked for.
pub(crate) fn keylog_line(sa: &super::sa::IkeSa) -> String {
    use crate::crypto::cipher::{Encr, Integ};
    let h = crate::crypto::hex;
    let encr = match sa.suite.encr {
        Encr::AesCbc(16) => "AES-CBC-128 [RFC3602]",
        Encr::AesCbc(24) => "AES-CBC-192 [RFC3602]",
        Encr::AesCbc(_) => "AES-CBC-256 [RFC3602]",
        Encr::AesGcm16(16) => "AES-GCM-128 with 16 octet ICV [RFC5282]",
        Encr::AesGcm16(_) => "AES-GCM-256 with 16 octet ICV [RFC5282]",
        Encr::TripleDes => "3DES [RFC2451]",
    };
    let integ = match sa.suite.integ {
        None => "NONE [RFC4306]",
        Some(Integ::Sha1_96) => "HMAC_SHA1_96 [RFC2404]",
        Some(Integ::Sha256_128) => "HMAC_SHA2_256_128 [RFC4868]",
        Some(Integ::Sha384_192) => "HMAC_SHA2_384_192 [RFC4868]",
        Some(Integ::Sha512_256) => "HMAC_SHA2_512_256 [RFC4868]",
    };
    let k = &sa.keys;
    format!(
        "{},{},{},{},\"{encr}\",{},{},\"{integ}\"",
        h(&sa.spi_i),
        h(&sa.spi_r),
        h(k.sk_ei.expose()),
        h(k.sk_er.expose()),
        h(k.sk_ai.expose()),
        h(k.sk_ar.expose())
    )
}
