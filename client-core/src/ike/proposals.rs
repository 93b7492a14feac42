//! Our IKE and ESP proposals and the check of the gateway's choice
//! (RFC 7296 §2.7, §3.3.6).

use crate::crypto::cipher::{Encr, Integ};
use crate::crypto::prf::Prf;
use crate::wire::{
    DhId, EncrId, EsnId, IntegId, PrfId, Proposal, ProtocolId, SaPayload, Transform,
    TransformType as T,
};

/// The negotiated IKE SA algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IkeSuite {
    /// Encryption.
    pub encr: Encr,
    /// Integrity (None with AEAD).
    pub integ: Option<Integ>,
    /// PRF.
    pub prf: Prf,
    /// DH group.
    pub dh: DhId,
}

impl IkeSuite {
    /// strongSwan-style name, e.g. `AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384`.
    pub fn name(&self) -> String {
        let mut s = self.encr.name();
        if let Some(i) = self.integ {
            s += "/";
            s += i.name();
        }
        format!("{s}/PRF_{:?}/{:?}", self.prf.id(), self.dh)
    }
}

/// The negotiated CHILD SA algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EspSuite {
    /// Encryption.
    pub encr: Encr,
    /// Integrity (None with AEAD).
    pub integ: Option<Integ>,
    /// Extended sequence numbers.
    pub esn: bool,
    /// DH group for PFS in CREATE_CHILD_SA (None = no PFS).
    pub dh: Option<DhId>,
}

impl EspSuite {
    /// Name for display.
    pub fn name(&self) -> String {
        match self.integ {
            Some(i) => format!("{}/{}", self.encr.name(), i.name()),
            None => self.encr.name(),
        }
    }
}

/// Encryption transforms shared by IKE and ESP: AEAD (GCM) for proposal 1,
/// CBC for proposal 2 (3DES only as legacy).
fn ciphers(legacy: bool) -> (Vec<Transform>, Vec<Transform>) {
    let aead = [256, 128]
        .map(|b| Transform::with_key_len(T::ENCR, EncrId::AES_GCM_16.0, b))
        .to_vec();
    let mut cbc = [256, 192, 128]
        .map(|b| Transform::with_key_len(T::ENCR, EncrId::AES_CBC.0, b))
        .to_vec();
    if legacy {
        cbc.push(Transform::new(T::ENCR, EncrId::TRIPLE_DES.0));
    }
    (aead, cbc)
}

fn groups(legacy: bool, group1: bool) -> Vec<DhId> {
    let mut g = vec![
        DhId::ECP_384,
        DhId::ECP_256,
        DhId::CURVE25519,
        DhId::MODP_2048,
        DhId::ECP_521,
        DhId::MODP_3072,
        DhId::MODP_4096,
    ];
    if legacy {
        g.extend([DhId::MODP_1536, DhId::MODP_1024]);
    }
    if group1 {
        g.push(DhId::MODP_768);
    }
    g
}

/// Our IKE proposals, modern first: AEAD, then CBC with HMAC. `first_group`
/// is the group of our KE payload and is listed first (RFC 7296 §1.2).
pub fn ike_proposals(legacy: bool, group1: bool, first_group: DhId) -> SaPayload {
    let mut g = groups(legacy, group1);
    g.retain(|x| *x != first_group);
    g.insert(0, first_group);
    let mut prfs = vec![
        PrfId::HMAC_SHA2_384,
        PrfId::HMAC_SHA2_256,
        PrfId::HMAC_SHA2_512,
    ];
    if legacy {
        prfs.push(PrfId::HMAC_SHA1);
    }
    let (mut aead, mut cbc) = ciphers(legacy);
    let mut integ: Vec<Transform> = [
        IntegId::HMAC_SHA2_256_128,
        IntegId::HMAC_SHA2_384_192,
        IntegId::HMAC_SHA2_512_256,
    ]
    .iter()
    .map(|i| Transform::new(T::INTEG, i.0))
    .collect();
    if legacy {
        integ.push(Transform::new(T::INTEG, IntegId::HMAC_SHA1_96.0));
    }
    let tail = |v: &mut Vec<Transform>| {
        v.extend(prfs.iter().map(|p| Transform::new(T::PRF, p.0)));
        v.extend(g.iter().map(|d| Transform::new(T::DH, d.0)));
    };
    tail(&mut aead);
    cbc.extend(integ);
    tail(&mut cbc);
    SaPayload {
        proposals: vec![
            Proposal {
                num: 1,
                protocol: ProtocolId::IKE,
                spi: vec![],
                transforms: aead,
            },
            Proposal {
                num: 2,
                protocol: ProtocolId::IKE,
                spi: vec![],
                transforms: cbc,
            },
        ],
    }
}

/// Our ESP proposals for SPI `spi`; `pfs` adds a DH transform (CREATE_CHILD_SA).
pub fn esp_proposals(spi: u32, legacy: bool, pfs: Option<DhId>) -> SaPayload {
    let (mut aead, mut cbc) = ciphers(legacy);
    // SHA-1-96 stays in the default ESP set: Cisco head-ends are often
    // configured with "integrity sha-1" for ESP (seed 004) and it is still
    // sound as an HMAC.
    for i in [
        IntegId::HMAC_SHA2_256_128,
        IntegId::HMAC_SHA2_384_192,
        IntegId::HMAC_SHA2_512_256,
        IntegId::HMAC_SHA1_96,
    ] {
        cbc.push(Transform::new(T::INTEG, i.0));
    }
    for v in [&mut aead, &mut cbc] {
        if let Some(g) = pfs {
            v.push(Transform::new(T::DH, g.0));
        }
        // Both: a gateway that wants 64-bit sequence numbers (RFC 4303 §2.2.1) may pick ESN.
        v.push(Transform::new(T::ESN, EsnId::NO_ESN.0));
        v.push(Transform::new(T::ESN, EsnId::ESN.0));
    }
    let spi = spi.to_be_bytes().to_vec();
    SaPayload {
        proposals: vec![
            Proposal {
                num: 1,
                protocol: ProtocolId::ESP,
                spi: spi.clone(),
                transforms: aead,
            },
            Proposal {
                num: 2,
                protocol: ProtocolId::ESP,
                spi,
                transforms: cbc,
            },
        ],
    }
}

/// Why the gateway's choice is unacceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadChoice(pub String);

fn single(p: &Proposal, ty: T) -> Result<Option<&Transform>, BadChoice> {
    let mut it = p.of_type(ty);
    let first = it.next();
    if it.next().is_some() {
        return Err(BadChoice(format!(
            "the gateway chose more than one {ty:?} transform"
        )));
    }
    Ok(first)
}

fn offered(ours: &SaPayload, chosen: &Proposal) -> Result<(), BadChoice> {
    let Some(mine) = ours
        .proposals
        .iter()
        .find(|p| p.num == chosen.num && p.protocol == chosen.protocol)
    else {
        return Err(BadChoice(format!(
            "the gateway chose proposal {} which we did not offer",
            chosen.num
        )));
    };
    for t in &chosen.transforms {
        if !mine.transforms.contains(t) {
            return Err(BadChoice(format!(
                "the gateway chose {:?} {} which we did not offer",
                t.ty, t.id
            )));
        }
    }
    Ok(())
}

fn encr_integ(p: &Proposal) -> Result<(Encr, Option<Integ>), BadChoice> {
    let e = single(p, T::ENCR)?.ok_or(BadChoice("no encryption transform chosen".into()))?;
    let encr = Encr::new(EncrId(e.id), e.key_len())
        .ok_or(BadChoice(format!("unsupported encryption {}", e.id)))?;
    let integ = match single(p, T::INTEG)? {
        Some(t) if t.id != IntegId::NONE.0 => Some(
            Integ::new(IntegId(t.id))
                .ok_or(BadChoice(format!("unsupported integrity {}", t.id)))?,
        ),
        _ => None,
    };
    if encr.is_aead() == integ.is_some() {
        return Err(BadChoice(
            "integrity transform does not fit the cipher".into(),
        ));
    }
    Ok((encr, integ))
}

/// Checks the gateway's IKE SA choice against what we offered.
pub fn select_ike(ours: &SaPayload, theirs: &SaPayload) -> Result<IkeSuite, BadChoice> {
    let [p] = &theirs.proposals[..] else {
        return Err(BadChoice(
            "the gateway must choose exactly one proposal".into(),
        ));
    };
    offered(ours, p)?;
    let (encr, integ) = encr_integ(p)?;
    let prf = single(p, T::PRF)?
        .and_then(|t| Prf::new(PrfId(t.id)))
        .ok_or(BadChoice("no usable PRF chosen".into()))?;
    let dh = single(p, T::DH)?
        .map(|t| DhId(t.id))
        .ok_or(BadChoice("no DH group chosen".into()))?;
    Ok(IkeSuite {
        encr,
        integ,
        prf,
        dh,
    })
}

/// Checks the gateway's ESP choice; returns the suite and its SPI.
pub fn select_esp(ours: &SaPayload, theirs: &SaPayload) -> Result<(EspSuite, u32), BadChoice> {
    let [p] = &theirs.proposals[..] else {
        return Err(BadChoice(
            "the gateway must choose exactly one ESP proposal".into(),
        ));
    };
    if p.protocol != ProtocolId::ESP {
        return Err(BadChoice("the CHILD SA proposal is not ESP".into()));
    }
    // Compare transforms, not SPIs (theirs differs from ours by design).
    let mut cmp = p.clone();
    cmp.spi = ours
        .proposals
        .first()
        .map(|x| x.spi.clone())
        .unwrap_or_default();
    let mut ours_cmp = ours.clone();
    for o in &mut ours_cmp.proposals {
        o.spi = cmp.spi.clone();
    }
    offered(&ours_cmp, &cmp)?;
    let (encr, integ) = encr_integ(p)?;
    let esn = single(p, T::ESN)?
        .map(|t| t.id == EsnId::ESN.0)
        .unwrap_or(false);
    let dh = single(p, T::DH)?
        .map(|t| DhId(t.id))
        .filter(|d| *d != DhId::NONE);
    let spi: [u8; 4] = p.spi[..]
        .try_into()
        .map_err(|_| BadChoice("ESP SPI is not 4 bytes".into()))?;
    Ok((
        EspSuite {
            encr,
            integ,
            esn,
            dh,
        },
        u32::from_be_bytes(spi),
    ))
}

/// Responder side for CREATE_CHILD_SA from the gateway: pick the first of its
/// proposals we support (with the KE group it used, if any).
pub fn choose_from_peer(
    theirs: &SaPayload,
    protocol: ProtocolId,
    ke_group: Option<DhId>,
) -> Option<Proposal> {
    for p in theirs.proposals.iter().filter(|p| p.protocol == protocol) {
        let mut chosen = Vec::new();
        let mut ok = true;
        for ty in [T::ENCR, T::INTEG, T::PRF, T::DH, T::ESN] {
            let cands: Vec<&Transform> = p.of_type(ty).collect();
            if cands.is_empty() {
                continue;
            }
            let pick = cands.into_iter().find(|t| match ty {
                T::ENCR => Encr::new(EncrId(t.id), t.key_len()).is_some(),
                T::INTEG => t.id == 0 || Integ::new(IntegId(t.id)).is_some(),
                T::PRF => Prf::new(PrfId(t.id)).is_some(),
                T::DH => match ke_group {
                    Some(g) => t.id == g.0,
                    None => t.id == DhId::NONE.0,
                },
                T::ESN => t.id == EsnId::NO_ESN.0 || t.id == EsnId::ESN.0,
                _ => false,
            });
            match pick {
                Some(t) => chosen.push(t.clone()),
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok
            && encr_integ(&Proposal {
                transforms: chosen.clone(),
                ..p.clone()
            })
            .is_ok()
        {
            return Some(Proposal {
                num: p.num,
                protocol,
                spi: vec![],
                transforms: chosen,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_first_and_legacy_only_on_request() {
        let sa = ike_proposals(false, false, DhId::ECP_384);
        let p1 = &sa.proposals[0];
        assert_eq!(
            p1.transforms[0],
            Transform::with_key_len(T::ENCR, EncrId::AES_GCM_16.0, 256)
        );
        assert_eq!(p1.of_type(T::DH).next().unwrap().id, DhId::ECP_384.0);
        let all: Vec<_> = sa
            .proposals
            .iter()
            .flat_map(|p| p.transforms.iter())
            .collect();
        assert!(!all
            .iter()
            .any(|t| t.ty == T::ENCR && t.id == EncrId::TRIPLE_DES.0));
        assert!(!all
            .iter()
            .any(|t| t.ty == T::DH && t.id == DhId::MODP_1024.0));
        let legacy = ike_proposals(true, true, DhId::ECP_384);
        let all: Vec<_> = legacy
            .proposals
            .iter()
            .flat_map(|p| p.transforms.iter())
            .collect();
        assert!(all
            .iter()
            .any(|t| t.ty == T::DH && t.id == DhId::MODP_768.0));
        assert!(all
            .iter()
            .any(|t| t.ty == T::ENCR && t.id == EncrId::TRIPLE_DES.0));
    }

    #[test]
    fn select_checks_offer() {
        let ours = ike_proposals(false, false, DhId::ECP_256);
        let good = SaPayload {
            proposals: vec![Proposal {
                num: 2,
                protocol: ProtocolId::IKE,
                spi: vec![],
                transforms: vec![
                    Transform::with_key_len(T::ENCR, EncrId::AES_CBC.0, 128),
                    Transform::new(T::INTEG, IntegId::HMAC_SHA2_256_128.0),
                    Transform::new(T::PRF, PrfId::HMAC_SHA2_256.0),
                    Transform::new(T::DH, DhId::CURVE25519.0),
                ],
            }],
        };
        let s = select_ike(&ours, &good).unwrap();
        assert_eq!(
            s.name(),
            "AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE25519"
        );
        let mut bad = good.clone();
        bad.proposals[0].transforms[3] = Transform::new(T::DH, DhId::MODP_1024.0);
        assert!(select_ike(&ours, &bad)
            .unwrap_err()
            .0
            .contains("did not offer"));
        let mut two = good.clone();
        two.proposals.push(good.proposals[0].clone());
        assert!(select_ike(&ours, &two).is_err());
    }

    #[test]
    fn esp_select_and_peer_choice() {
        let ours = esp_proposals(0x11223344, false, None);
        let mut theirs = ours.clone();
        theirs.proposals.truncate(1);
        theirs.proposals[0].transforms = vec![
            Transform::with_key_len(T::ENCR, EncrId::AES_GCM_16.0, 256),
            Transform::new(T::ESN, EsnId::NO_ESN.0),
        ];
        theirs.proposals[0].spi = vec![0xca, 0xfe, 0, 1];
        let (s, spi) = select_esp(&ours, &theirs).unwrap();
        assert_eq!((s.encr, spi), (Encr::AesGcm16(32), 0xcafe0001));
        let pick = choose_from_peer(&ours, ProtocolId::ESP, None).unwrap();
        assert_eq!(pick.transforms.len(), 2);
    }
}
