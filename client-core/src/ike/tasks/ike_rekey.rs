//! IKE SA rekeys (RFC 7296 §1.3.2, §2.18): ours, and the gateway's, which
//! we answer. Either way the new SA's SKEYSEED comes from the old SK_d and
//! a fresh DH exchange; the old SA lives on only to carry its DELETE.
//!
//! ```text
//! HDR, SK {SA(IKE, new SPIi), Ni, KEi}  -->   <--  HDR, SK {SA(new SPIr), Nr, KEr}
//! HDR(old SA), SK {D(IKE)}  -->
//! ```

use tracing::info;

use super::child_create::{refuse, Offer};
use super::Ctx;
use crate::crypto::dh::KeyPair;
use crate::crypto::keymat::{self, KeyLengths};
use crate::error::{DisconnectReason, PeerMisbehaved};
use crate::ike::exchange::Request;
use crate::ike::proposals::{self, IkeSuite};
use crate::ike::sa::IkeSa;
use crate::wire::{
    ExchangeType, Ke, NotifyType, Payload, PayloadBody, Proposal, ProtocolId, SaPayload,
};

/// Our IKE SA rekey in flight.
pub(crate) struct IkeRekey {
    ni: Vec<u8>,
    dh: KeyPair,
    offer: SaPayload,
    new_spi: [u8; 8],
}

/// What the answer leads to.
pub(crate) enum IkeRekeyStep {
    /// The new IKE SA (we are its original initiator).
    Rekeyed(Box<IkeSa>),
    /// Refused: try again later.
    RetryLater(NotifyType),
    /// The session ends.
    Failed(DisconnectReason),
}

fn lengths(suite: &IkeSuite) -> KeyLengths {
    KeyLengths {
        integ: suite.integ.map_or(0, |i| i.key_len()),
        encr: suite.encr.key_len(),
    }
}

impl IkeRekey {
    /// Sends our CREATE_CHILD_SA for the IKE SA; `None` if no SA or no key.
    pub(crate) fn start(ctx: &mut Ctx<'_>) -> Option<IkeRekey> {
        let group = ctx.ex.ike.as_ref()?.suite.dh;
        let ni = ctx.nonce();
        let dh = match KeyPair::generate(group, ctx.rng) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("cannot rekey the IKE SA: {e}");
                return None;
            }
        };
        let new_spi = ctx.random::<8>();
        // Offer what we offer at IKE_SA_INIT, with the group in use first:
        // a rekey is no time to renegotiate.
        let s = ctx.settings;
        let mut offer = proposals::ike_proposals(s.legacy, s.legacy_group1, group);
        for p in &mut offer.proposals {
            p.spi = new_spi.to_vec();
        }
        let payloads = [
            Payload::from(PayloadBody::Sa(offer.clone())),
            Payload::from(PayloadBody::Nonce(&ni)),
            Payload::from(PayloadBody::Ke(Ke {
                group,
                data: dh.public(),
            })),
        ];
        ctx.send(ExchangeType::CREATE_CHILD_SA, &payloads, Request::IkeRekey);
        Some(IkeRekey {
            ni,
            dh,
            offer,
            new_spi,
        })
    }

    /// Processes the gateway's answer.
    pub(crate) fn process(self, ctx: &Ctx<'_>, payloads: &[Payload<'_>]) -> IkeRekeyStep {
        let fail = |p: PeerMisbehaved| IkeRekeyStep::Failed(p.into());
        let (mut sa, mut nr, mut ke) = (None, None, None);
        for p in payloads {
            match &p.body {
                PayloadBody::Sa(s) => sa = Some(s),
                PayloadBody::Nonce(n) => nr = Some(n.to_vec()),
                PayloadBody::Ke(k) => ke = Some(k),
                PayloadBody::Notify(n) if n.ty.is_error() => return IkeRekeyStep::RetryLater(n.ty),
                _ => {}
            }
        }
        let (Some(sa), Some(nr)) = (sa, nr) else {
            return fail(PeerMisbehaved::MissingPayload(
                "CREATE_CHILD_SA response without SA and Nr",
            ));
        };
        let Some(new_spi_r) = sa
            .proposals
            .first()
            .and_then(|p| <[u8; 8]>::try_from(&p.spi[..]).ok())
        else {
            return fail(PeerMisbehaved::BadSpi(
                "IKE rekey response without an 8-byte SPI",
            ));
        };
        // select_ike compares SPIs with our offer's: ours, not the gateway's.
        let mut chosen = sa.clone();
        for p in &mut chosen.proposals {
            p.spi = self.new_spi.to_vec();
        }
        let suite = match proposals::select_ike(&self.offer, &chosen) {
            Ok(s) => s,
            Err(e) => return fail(PeerMisbehaved::SelectedUnofferedProposal(e.0)),
        };
        let Some(ke) = ke else {
            return fail(PeerMisbehaved::MissingPayload(
                "IKE rekey response without KE",
            ));
        };
        let gir = match self.dh.shared(ke.data) {
            Ok(g) => g,
            Err(e) => return fail(PeerMisbehaved::InvalidKePublic(e.to_string())),
        };
        let Some(ike) = ctx.ex.ike.as_ref() else {
            return IkeRekeyStep::Failed(DisconnectReason::Local("no IKE SA".into()));
        };
        let seed = keymat::rekey_skeyseed(
            &ike.suite.prf,
            ike.keys.sk_d.expose(),
            gir.expose(),
            &self.ni,
            &nr,
        );
        let keys = keymat::ike_keys(
            &suite.prf,
            seed.expose(),
            &self.ni,
            &nr,
            &self.new_spi,
            &new_spi_r,
            lengths(&suite),
        );
        info!("IKE_SA rekeyed: {}", suite.name());
        IkeRekeyStep::Rekeyed(Box::new(IkeSa::new(
            suite,
            keys,
            self.new_spi,
            new_spi_r,
            true,
        )))
    }
}

/// Answers the gateway's rekey of the IKE SA; it becomes the new SA's
/// original initiator (§2.18). Returns the new SA once answered.
pub(crate) fn respond(ctx: &mut Ctx<'_>, id: u32, offer: &Offer<'_>) -> Option<Box<IkeSa>> {
    let c = match offer.choose(ctx, ProtocolId::IKE) {
        Ok(c) => c,
        Err(n) => {
            refuse(ctx, id, n);
            return None;
        }
    };
    let (Some(gir), Some(dh)) = (&c.gir, &c.dh) else {
        refuse(ctx, id, NotifyType::INVALID_SYNTAX);
        return None;
    };
    let Ok(new_spi_i) = <[u8; 8]>::try_from(&c.peer.spi[..]) else {
        refuse(ctx, id, NotifyType::INVALID_SYNTAX);
        return None;
    };
    let new_spi_r = ctx.random::<8>();
    let mut ours = c.ours.clone();
    ours.spi = new_spi_r.to_vec();
    let suite = proposals::select_ike(
        &SaPayload {
            proposals: vec![c.peer.clone()],
        },
        &SaPayload {
            proposals: vec![Proposal {
                num: ours.num,
                ..ours.clone()
            }],
        },
    );
    let Ok(suite) = suite else {
        refuse(ctx, id, NotifyType::NO_PROPOSAL_CHOSEN);
        return None;
    };
    let ike = ctx.ex.ike.as_ref()?;
    let seed = keymat::rekey_skeyseed(
        &suite.prf,
        ike.keys.sk_d.expose(),
        gir.expose(),
        &offer.ni,
        &c.nr,
    );
    let keys = keymat::ike_keys(
        &suite.prf,
        seed.expose(),
        &offer.ni,
        &c.nr,
        &new_spi_i,
        &new_spi_r,
        lengths(&suite),
    );
    let resp = [
        Payload::from(PayloadBody::Sa(SaPayload {
            proposals: vec![ours],
        })),
        Payload::from(PayloadBody::Nonce(&c.nr)),
        Payload::from(PayloadBody::Ke(Ke {
            group: dh.group(),
            data: dh.public(),
        })),
    ];
    ctx.respond(false, ExchangeType::CREATE_CHILD_SA, id, &resp);
    info!("IKE_SA rekeyed by the gateway: {}", suite.name());
    Some(Box::new(IkeSa::new(
        suite, keys, new_spi_i, new_spi_r, false,
    )))
}
