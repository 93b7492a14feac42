//! CHILD SAs (RFC 7296 §1.3.1, §2.17): the one IKE_AUTH creates for us, and
//! those the gateway creates or rekeys with CREATE_CHILD_SA, which we answer.
//!
//! ```text
//! (in IKE_AUTH)  SAi2, TSi, TSr  -->      <--  SAr2, TSi, TSr (+ CP(CFG_REPLY))
//!          <--  HDR, SK {[N(REKEY_SA)], SA, Ni, [KEi], TSi, TSr}      (the gateway's)
//! HDR, SK {SA, Nr, [KEr], TSi, TSr}  -->
//! ```

use tracing::info;

use super::ike_auth::AuthData;
use super::ike_config;
use super::Ctx;
use crate::crypto::dh::KeyPair;
use crate::crypto::keymat::{self, KeyLengths};
use crate::error::{DisconnectReason, PeerMisbehaved};
use crate::esp::ChildSaInfo;
use crate::event::TunnelConfig;
use crate::ike::proposals::{self, EspSuite};
use crate::ike::sa::ChildSa;
use crate::settings::Settings;
use crate::wire::{
    CfgType, ExchangeType, Ke, Notify, NotifyType, Payload, PayloadBody, Proposal, ProtocolId,
    SaPayload, TrafficSelector, TsPayload,
};

/// Our inbound SPI and the ESP proposals for the first CHILD SA.
pub(crate) fn offer(ctx: &mut Ctx<'_>) -> (u32, SaPayload) {
    let spi = ctx.esp_spi();
    (
        spi,
        proposals::esp_proposals(spi, ctx.settings.legacy, None),
    )
}

/// TSi / TSr of IKE_AUTH: everything (the gateway narrows, §2.9).
pub(crate) fn selectors(settings: &Settings) -> (TsPayload, TsPayload) {
    let mut tsi = vec![TrafficSelector::any_v4()];
    let mut tsr = vec![TrafficSelector::any_v4()];
    if settings.request_ipv6 {
        tsi.push(TrafficSelector::any_v6());
        tsr.push(TrafficSelector::any_v6());
    }
    (TsPayload { selectors: tsi }, TsPayload { selectors: tsr })
}

pub(crate) fn key_lengths(suite: &EspSuite) -> KeyLengths {
    KeyLengths {
        integ: suite.integ.map_or(0, |i| i.key_len()),
        encr: suite.encr.key_len(),
    }
}

/// The tunnel and its CHILD SA from the last IKE_AUTH response
/// (CP(CFG_REPLY), SAr2, TSi, TSr).
pub(crate) fn from_auth(
    ctx: &Ctx<'_>,
    data: &AuthData,
    payloads: &[Payload<'_>],
) -> Result<(ChildSa, ChildSaInfo, TunnelConfig), DisconnectReason> {
    let mut cfg = TunnelConfig::default();
    let (mut sa, mut tsi, mut tsr) = (None, None, None);
    for p in payloads {
        match &p.body {
            PayloadBody::Cp(cp) if cp.cfg_type == CfgType::CFG_REPLY => {
                ike_config::apply(&mut cfg, cp)
            }
            PayloadBody::Sa(s) => sa = Some(s),
            PayloadBody::TsI(t) => tsi = Some(t.selectors.clone()),
            PayloadBody::TsR(t) => tsr = Some(t.selectors.clone()),
            PayloadBody::Notify(n) if n.ty.is_error() => {
                return Err(DisconnectReason::PeerNotify(n.ty));
            }
            _ => {}
        }
    }
    let (Some(sa), Some(tsi), Some(tsr)) = (sa, tsi, tsr) else {
        return Err(PeerMisbehaved::MissingPayload(
            "IKE_AUTH response without SA, TSi and TSr for the CHILD SA",
        )
        .into());
    };
    let (suite, spi_out) = proposals::select_esp(&data.esp_offer, sa)
        .map_err(|e| PeerMisbehaved::SelectedUnofferedProposal(e.0))?;
    let ike = ctx
        .ex
        .ike
        .as_ref()
        .ok_or(DisconnectReason::Local("no IKE SA".into()))?;
    let keys = keymat::child_keys(
        &ike.suite.prf,
        ike.keys.sk_d.expose(),
        None,
        &data.ni,
        &data.nr,
        key_lengths(&suite),
    );
    cfg.ts_local = tsi.clone();
    cfg.ts_remote = tsr.clone();
    let child = ChildSa {
        spi_in: data.child_spi,
        spi_out,
        suite,
        ts_local: tsi,
        ts_remote: tsr,
    };
    let info = child.with_keys(keys, true);
    info!(
        "CHILD_SA established with SPIs {:08x}_i {:08x}_o, {} TS {} === {}",
        child.spi_in,
        spi_out,
        suite.name(),
        join(&child.ts_local),
        join(&child.ts_remote)
    );
    Ok((child, info, cfg))
}

fn join(ts: &[TrafficSelector]) -> String {
    ts.iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The parts of a gateway's CREATE_CHILD_SA request.
pub(crate) struct Offer<'a> {
    pub(crate) sa: &'a SaPayload,
    pub(crate) ni: Vec<u8>,
    pub(crate) ke: Option<Ke<'a>>,
    pub(crate) rekey: bool,
    pub(crate) tsi: Option<TsPayload>,
    pub(crate) tsr: Option<TsPayload>,
}

impl<'a> Offer<'a> {
    /// Reads the request; `None` when SA or Ni is missing.
    pub(crate) fn parse(payloads: &'a [Payload<'a>]) -> Option<Offer<'a>> {
        let (mut sa, mut ni, mut ke, mut rekey) = (None, None, None, false);
        let (mut tsi, mut tsr) = (None, None);
        for p in payloads {
            match &p.body {
                PayloadBody::Sa(s) => sa = Some(s),
                PayloadBody::Nonce(n) => ni = Some(n.to_vec()),
                PayloadBody::Ke(k) => ke = Some(k.clone()),
                PayloadBody::Notify(n) if n.ty == NotifyType::REKEY_SA => rekey = true,
                PayloadBody::TsI(t) => tsi = Some(t.clone()),
                PayloadBody::TsR(t) => tsr = Some(t.clone()),
                _ => {}
            }
        }
        Some(Offer {
            sa: sa?,
            ni: ni?,
            ke,
            rekey,
            tsi,
            tsr,
        })
    }

    /// Whether it is for the IKE SA (a rekey, §1.3.2) rather than ESP.
    pub(crate) fn is_ike(&self) -> bool {
        self.sa
            .proposals
            .iter()
            .any(|p| p.protocol == ProtocolId::IKE)
    }

    /// Our choice among its proposals, our DH key for its KE and the shared
    /// secret, and the proposal as the gateway sent it.
    pub(crate) fn choose(
        &self,
        ctx: &mut Ctx<'_>,
        protocol: ProtocolId,
    ) -> Result<Chosen, NotifyType> {
        let group = self.ke.as_ref().map(|k| k.group);
        let chosen = proposals::choose_from_peer(self.sa, protocol, group)
            .ok_or(NotifyType::NO_PROPOSAL_CHOSEN)?;
        let dh = match group {
            Some(g) => {
                Some(KeyPair::generate(g, ctx.rng).map_err(|_| NotifyType::NO_PROPOSAL_CHOSEN)?)
            }
            None => None,
        };
        let gir = match (&dh, &self.ke) {
            (Some(d), Some(k)) => Some(d.shared(k.data).map_err(|_| NotifyType::INVALID_SYNTAX)?),
            _ => None,
        };
        let peer = self
            .sa
            .proposals
            .iter()
            .find(|p| p.num == chosen.num)
            .cloned()
            .ok_or(NotifyType::NO_PROPOSAL_CHOSEN)?;
        Ok(Chosen {
            ours: chosen,
            peer,
            dh,
            gir,
            nr: ctx.nonce(),
        })
    }
}

/// What we picked from a gateway's offer.
pub(crate) struct Chosen {
    pub(crate) ours: Proposal,
    pub(crate) peer: Proposal,
    pub(crate) dh: Option<KeyPair>,
    pub(crate) gir: Option<crate::crypto::Secret>,
    pub(crate) nr: Vec<u8>,
}

/// Sends a refusal of the gateway's CREATE_CHILD_SA request `id`.
pub(crate) fn refuse(ctx: &mut Ctx<'_>, id: u32, n: NotifyType) {
    let p = [Payload::from(PayloadBody::Notify(Notify::new(n, &[])))];
    ctx.respond(false, ExchangeType::CREATE_CHILD_SA, id, &p);
}

/// A CHILD SA the gateway created or rekeyed.
pub(crate) struct Created {
    pub(crate) child: ChildSa,
    pub(crate) keys: ChildSaInfo,
    /// It replaces the current one (N(REKEY_SA)).
    pub(crate) rekey: bool,
}

/// Answers the gateway's CREATE_CHILD_SA for an ESP SA (§1.3.1 / §1.3.3).
pub(crate) fn respond(ctx: &mut Ctx<'_>, id: u32, offer: &Offer<'_>) -> Option<Created> {
    let (Some(tsi), Some(tsr)) = (&offer.tsi, &offer.tsr) else {
        refuse(ctx, id, NotifyType::INVALID_SYNTAX);
        return None;
    };
    let c = match offer.choose(ctx, ProtocolId::ESP) {
        Ok(c) => c,
        Err(n) => {
            refuse(ctx, id, n);
            return None;
        }
    };
    let Ok(peer_spi) = <[u8; 4]>::try_from(&c.peer.spi[..]) else {
        refuse(ctx, id, NotifyType::INVALID_SYNTAX);
        return None;
    };
    let spi_in = ctx.esp_spi();
    let mut ours = c.ours.clone();
    ours.spi = spi_in.to_be_bytes().to_vec();
    let suite = match proposals::select_esp(
        &SaPayload {
            proposals: vec![c.peer.clone()],
        },
        &SaPayload {
            proposals: vec![ours.clone()],
        },
    ) {
        Ok((s, _)) => s,
        Err(_) => {
            refuse(ctx, id, NotifyType::NO_PROPOSAL_CHOSEN);
            return None;
        }
    };
    let spi_out = u32::from_be_bytes(peer_spi);
    let ike = ctx.ex.ike.as_ref()?;
    // The gateway initiated this exchange: the first keys are its outbound (our inbound).
    let keys = keymat::child_keys(
        &ike.suite.prf,
        ike.keys.sk_d.expose(),
        c.gir.as_ref().map(|g| g.expose()),
        &offer.ni,
        &c.nr,
        key_lengths(&suite),
    );
    let mut resp = vec![
        Payload::from(PayloadBody::Sa(SaPayload {
            proposals: vec![ours],
        })),
        Payload::from(PayloadBody::Nonce(&c.nr)),
    ];
    if let Some(d) = &c.dh {
        resp.push(Payload::from(PayloadBody::Ke(Ke {
            group: d.group(),
            data: d.public(),
        })));
    }
    // We are the responder of this exchange: TSi is the gateway's side.
    resp.push(Payload::from(PayloadBody::TsI(tsi.clone())));
    resp.push(Payload::from(PayloadBody::TsR(tsr.clone())));
    ctx.respond(false, ExchangeType::CREATE_CHILD_SA, id, &resp);
    info!(
        "CHILD_SA rekeyed by the gateway: SPIs {spi_in:08x}_i {spi_out:08x}_o, {}",
        suite.name()
    );
    let child = ChildSa {
        spi_in,
        spi_out,
        suite,
        ts_local: tsr.selectors.clone(),
        ts_remote: tsi.selectors.clone(),
    };
    let keys = child.with_keys(keys, false);
    Some(Created {
        child,
        keys,
        rekey: offer.rekey,
    })
}
