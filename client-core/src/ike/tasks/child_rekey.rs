//! Our own CHILD SA rekey (RFC 7296 §1.3.3, §2.8), make-before-break: the
//! new SA is installed first, then the old one deleted (§1.4.1).
//!
//! ```text
//! HDR, SK {N(REKEY_SA), SA, Ni, TSi, TSr}  -->
//!                          <--  HDR, SK {SA, Nr, TSi, TSr}
//! HDR, SK {D(ESP, old inbound SPI)}  -->   <--  HDR, SK {D(ESP, ...)}
//! ```

use std::time::Duration;

use tracing::info;

use super::child_create::key_lengths;
use super::Ctx;
use crate::crypto::keymat;
use crate::error::{DisconnectReason, PeerMisbehaved};
use crate::esp::ChildSaInfo;
use crate::ike::exchange::Request;
use crate::ike::proposals;
use crate::ike::sa::ChildSa;
use crate::wire::{
    ExchangeType, Notify, NotifyType, Payload, PayloadBody, ProtocolId, SaPayload, TsPayload,
};

/// How long to wait after the gateway refused a rekey (e.g. TEMPORARY_FAILURE
/// in a collision, §2.25) before trying again.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(10);

/// Our CHILD SA rekey in flight.
pub(crate) struct ChildRekey {
    ni: Vec<u8>,
    offer: SaPayload,
    new_spi: u32,
}

/// What the answer leads to.
pub(crate) enum RekeyStep {
    /// The new SA: install it, then delete the old one.
    Installed { child: ChildSa, keys: ChildSaInfo },
    /// Refused: try again after [`RETRY_AFTER`].
    RetryLater(NotifyType),
    /// The session ends.
    Failed(DisconnectReason),
}

impl ChildRekey {
    /// Sends the CREATE_CHILD_SA request for `child`.
    pub(crate) fn start(ctx: &mut Ctx<'_>, child: &ChildSa) -> ChildRekey {
        let ni = ctx.nonce();
        let new_spi = ctx.esp_spi();
        let offer = proposals::esp_proposals(new_spi, ctx.settings.legacy, None);
        let old_in = child.spi_in.to_be_bytes();
        let payloads = [
            Payload::from(PayloadBody::Notify(Notify {
                protocol: ProtocolId::ESP,
                spi: &old_in,
                ty: NotifyType::REKEY_SA,
                data: &[],
            })),
            Payload::from(PayloadBody::Sa(offer.clone())),
            Payload::from(PayloadBody::Nonce(&ni)),
            Payload::from(PayloadBody::TsI(TsPayload {
                selectors: child.ts_local.clone(),
            })),
            Payload::from(PayloadBody::TsR(TsPayload {
                selectors: child.ts_remote.clone(),
            })),
        ];
        ctx.send(
            ExchangeType::CREATE_CHILD_SA,
            &payloads,
            Request::ChildRekey,
        );
        ChildRekey { ni, offer, new_spi }
    }

    /// Processes the gateway's answer; `old` is the SA being replaced.
    pub(crate) fn process(
        self,
        ctx: &Ctx<'_>,
        payloads: &[Payload<'_>],
        old: &ChildSa,
    ) -> RekeyStep {
        let (mut sa, mut nr) = (None, None);
        for p in payloads {
            match &p.body {
                PayloadBody::Sa(s) => sa = Some(s),
                PayloadBody::Nonce(n) => nr = Some(n.to_vec()),
                PayloadBody::Notify(n) if n.ty.is_error() => return RekeyStep::RetryLater(n.ty),
                _ => {}
            }
        }
        let (Some(sa), Some(nr)) = (sa, nr) else {
            return RekeyStep::Failed(
                PeerMisbehaved::MissingPayload("CREATE_CHILD_SA response without SA and Nr").into(),
            );
        };
        let (suite, spi_out) = match proposals::select_esp(&self.offer, sa) {
            Ok(x) => x,
            Err(e) => {
                return RekeyStep::Failed(PeerMisbehaved::SelectedUnofferedProposal(e.0).into())
            }
        };
        let Some(ike) = ctx.ex.ike.as_ref() else {
            return RekeyStep::Failed(DisconnectReason::Local("no IKE SA".into()));
        };
        // We initiated, so the first KEYMAT half is our outbound.
        let keys = keymat::child_keys(
            &ike.suite.prf,
            ike.keys.sk_d.expose(),
            None,
            &self.ni,
            &nr,
            key_lengths(&suite),
        );
        let child = ChildSa {
            spi_in: self.new_spi,
            spi_out,
            suite,
            ts_local: old.ts_local.clone(),
            ts_remote: old.ts_remote.clone(),
        };
        info!(
            "CHILD_SA rekeyed: SPIs {:08x}_i {spi_out:08x}_o, {}",
            self.new_spi,
            suite.name()
        );
        let keys = child.with_keys(keys, true);
        RekeyStep::Installed { child, keys }
    }
}
