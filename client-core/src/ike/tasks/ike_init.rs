//! IKE_SA_INIT (RFC 7296 §1.2), with the two restarts a responder may ask
//! for: a COOKIE (§2.6) and another DH group (INVALID_KE_PAYLOAD, §1.3).
//!
//! ```text
//! HDR, SAi1, KEi, Ni, N(NAT_D)*, N(FRAG_SUP), N(SIG_HASH), V+  -->
//!                  <--  HDR, SAr1, KEr, Nr, [CERTREQ], N(NAT_D)*
//!                  <--  HDR, N(COOKIE)             (retry: COOKIE first, the rest unchanged)
//!                  <--  HDR, N(INVALID_KE_PAYLOAD) (retry with that group, once per group)
//! ```

use tracing::{debug, info, trace};

use super::ike_natd::{self, Nat};
use super::Ctx;
use crate::crypto::dh::KeyPair;
use crate::crypto::keymat::{self, IkeKeys, KeyLengths};
use crate::error::{DisconnectReason, PeerMisbehaved};
use crate::event::{Event, Progress};
use crate::ike::proposals::{self, IkeSuite};
use crate::ike::{cisco, cisco_frag, describe};
use crate::settings::AuthMethod;
use crate::wire::{
    DhId, ExchangeType, Flags, HashAlgorithm, Header, Ke, Message, Notify, NotifyType, Payload,
    PayloadBody, PayloadType, SaPayload, TransformType,
};

/// COOKIE retries of one IKE_SA_INIT before giving up.
const MAX_COOKIE_ROUNDS: u8 = 3;

/// The group of our first KE (the strongest common one; strongSwan asks for
/// x25519 with INVALID_KE, one extra round trip by design).
pub(crate) const FIRST_GROUP: DhId = DhId::ECP_384;

/// IKE_SA_INIT in flight.
pub(crate) struct IkeInit {
    dh: KeyPair,
    ni: Vec<u8>,
    offer: SaPayload,
    cookie: Option<Vec<u8>>,
    /// Our request as sent (the AUTH payload signs it, §2.15).
    msg1: Vec<u8>,
    /// Groups already sent: INVALID_KE may move us to each offered group
    /// once (§1.2), never back.
    groups_tried: Vec<DhId>,
    /// Requests sent with a COOKIE so far.
    cookie_rounds: u8,
}

/// What IKE_SA_INIT established: the keys and what IKE_AUTH signs.
pub(crate) struct InitDone {
    pub(crate) suite: IkeSuite,
    pub(crate) keys: IkeKeys,
    pub(crate) spi_r: [u8; 8],
    pub(crate) ni: Vec<u8>,
    pub(crate) nr: Vec<u8>,
    pub(crate) msg1: Vec<u8>,
    pub(crate) msg2: Vec<u8>,
    pub(crate) nat: Nat,
    /// RFC 7383 fragmentation offered by the gateway.
    pub(crate) fragmentation: bool,
    /// Cisco's FRAGMENTATION vendor ID sent by the gateway.
    pub(crate) cisco_fragmentation: bool,
}

/// What the answer to IKE_SA_INIT leads to.
pub(crate) enum InitStep {
    /// Sent again (COOKIE or another group); wait for that answer.
    Retry(Box<IkeInit>),
    /// The IKE SA exists.
    Done(Box<InitDone>),
    /// The session ends.
    Failed(DisconnectReason),
}

impl IkeInit {
    /// Sends the first IKE_SA_INIT.
    pub(crate) fn start(ctx: &mut Ctx<'_>) -> Result<Box<IkeInit>, DisconnectReason> {
        let dh = KeyPair::generate(FIRST_GROUP, ctx.rng)
            .map_err(|e| DisconnectReason::Local(e.to_string()))?;
        let ni = ctx.nonce();
        let init = Box::new(IkeInit {
            dh,
            ni,
            offer: SaPayload::default(),
            cookie: None,
            msg1: Vec::new(),
            groups_tried: vec![FIRST_GROUP],
            cookie_rounds: 0,
        });
        ctx.events.push_back(Event::Progress(Progress::Contacting));
        Ok(init.send(ctx))
    }

    /// The same request again with `cookie` first, or with a KE of `group`.
    /// RFC 7296 §2.6: "all other payloads unchanged" — the cookie covers Ni,
    /// so the nonce (and the DH key while the group stays) carry over.
    fn restart(
        mut self: Box<Self>,
        ctx: &mut Ctx<'_>,
        group: DhId,
        cookie: Option<Vec<u8>>,
    ) -> Result<Box<IkeInit>, DisconnectReason> {
        if self.dh.group() != group {
            self.dh = KeyPair::generate(group, ctx.rng)
                .map_err(|e| DisconnectReason::Local(e.to_string()))?;
            self.groups_tried.push(group);
        }
        self.cookie_rounds += u8::from(cookie.is_some());
        self.cookie = cookie;
        Ok(self.send(ctx))
    }

    fn send(mut self: Box<Self>, ctx: &mut Ctx<'_>) -> Box<IkeInit> {
        let s = ctx.settings;
        let group = self.dh.group();
        self.offer = proposals::ike_proposals(s.legacy, s.legacy_group1, group);
        let hashes = ike_natd::request_hashes(&ctx.ex.spi_i, s.local, s.gateway);
        let sig_hashes: Vec<u8> = [
            HashAlgorithm::SHA2_256,
            HashAlgorithm::SHA2_384,
            HashAlgorithm::SHA2_512,
        ]
        .iter()
        .flat_map(|h| h.0.to_be_bytes())
        .collect();
        let mut payloads = Vec::new();
        if let Some(c) = &self.cookie {
            // §2.6: the COOKIE notify comes first.
            payloads.push(Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::COOKIE,
                c,
            ))));
        }
        payloads.push(Payload::from(PayloadBody::Sa(self.offer.clone())));
        payloads.push(Payload::from(PayloadBody::Ke(Ke {
            group,
            data: self.dh.public(),
        })));
        payloads.push(Payload::from(PayloadBody::Nonce(&self.ni)));
        payloads.extend(ike_natd::notifies(&hashes));
        payloads.extend([
            Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                &[],
            ))),
            Payload::from(PayloadBody::Notify(Notify::new(
                NotifyType::SIGNATURE_HASH_ALGORITHMS,
                &sig_hashes,
            ))),
            // Cisco head-ends fragment with their own scheme only if we ask.
            Payload::from(PayloadBody::VendorId(&cisco_frag::VID_FRAGMENTATION)),
        ]);
        if matches!(s.auth, AuthMethod::AnyConnect(_)) {
            // What the AnyConnect client sends (anyconnect-ikev2.md §4).
            for v in [
                cisco::VID_COPYRIGHT,
                cisco::VID_ANYCONNECT_EAP,
                cisco::VID_DELETE_REASON,
            ] {
                payloads.push(Payload::from(PayloadBody::VendorId(v)));
            }
        }
        let msg = Message {
            header: Header {
                spi_i: ctx.ex.spi_i,
                spi_r: [0; 8],
                next_payload: PayloadType::NONE,
                version: 0x20,
                exchange: ExchangeType::IKE_SA_INIT,
                flags: Flags(Flags::INITIATOR),
                message_id: 0,
                length: 0,
            },
            payloads,
            inner_first: PayloadType::NONE,
        };
        let bytes = msg.emit();
        debug!(
            "sending IKE_SA_INIT request 0 {}",
            describe::summary(&msg.payloads)
        );
        trace!(
            "IKE_SA_INIT request payloads:\n{}",
            describe::detail(&msg.payloads)
        );
        self.msg1 = bytes.clone();
        ctx.ex
            .send_sa_init(ctx.now, ctx.timers, ctx.rng, ctx.settings, bytes);
        self
    }

    /// Processes the (decoded, rule-checked) response `msg`, received as `data`.
    pub(crate) fn process(
        self: Box<Self>,
        ctx: &mut Ctx<'_>,
        data: &[u8],
        msg: &Message<'_>,
    ) -> InitStep {
        let fail = |p: PeerMisbehaved| InitStep::Failed(DisconnectReason::PeerMisbehaved(p));
        for n in msg.notifies() {
            match n.ty {
                NotifyType::COOKIE => {
                    // A gateway that rotated its secret may ask again with a
                    // new cookie (§2.6); the same one again means it refused
                    // ours. Bounded, so a gateway cannot keep us looping.
                    if self.cookie.as_deref() == Some(n.data)
                        || self.cookie_rounds >= MAX_COOKIE_ROUNDS
                    {
                        return fail(PeerMisbehaved::CookieRepeated(self.cookie_rounds + 1));
                    }
                    info!("gateway requested a COOKIE, retrying");
                    let group = self.dh.group();
                    return step(self.restart(ctx, group, Some(n.data.to_vec())));
                }
                NotifyType::INVALID_KE_PAYLOAD => {
                    let want = n
                        .data
                        .get(..2)
                        .map(|b| DhId(u16::from_be_bytes([b[0], b[1]])));
                    let offered = self.offer.proposals.iter().any(|p| {
                        p.of_type(TransformType::DH)
                            .any(|t| Some(DhId(t.id)) == want)
                    });
                    return match want {
                        Some(g) if offered && self.groups_tried.contains(&g) => {
                            fail(PeerMisbehaved::InvalidKeRepeated(g))
                        }
                        Some(g) if offered => {
                            info!("gateway asked for DH group {g:?}, retrying");
                            let cookie = self.cookie.clone();
                            step(self.restart(ctx, g, cookie))
                        }
                        _ => fail(PeerMisbehaved::InvalidKeNotOffered(want)),
                    };
                }
                NotifyType::NO_PROPOSAL_CHOSEN => {
                    return InitStep::Failed(DisconnectReason::NoProposalChosen(String::new()))
                }
                t if t.is_error() => return InitStep::Failed(DisconnectReason::PeerNotify(t)),
                _ => {}
            }
        }
        let mut sa = None;
        let mut ke = None;
        let mut nr = None;
        let mut fragmentation = false;
        let mut cisco_fragmentation = false;
        for p in &msg.payloads {
            match &p.body {
                PayloadBody::Sa(s) => sa = Some(s),
                PayloadBody::Ke(k) => ke = Some(k),
                PayloadBody::Nonce(n) => nr = Some(n.to_vec()),
                PayloadBody::Notify(n) if n.ty == NotifyType::IKEV2_FRAGMENTATION_SUPPORTED => {
                    fragmentation = true
                }
                PayloadBody::VendorId(v) if v.starts_with(&cisco_frag::VID_FRAGMENTATION) => {
                    cisco_fragmentation = true
                }
                _ => {}
            }
        }
        // The rule table requires SA, KE and Nr in a response without an error.
        let (Some(sa), Some(ke), Some(nr)) = (sa, ke, nr) else {
            return fail(PeerMisbehaved::MissingPayload(
                "IKE_SA_INIT response without SA, KE or Nr",
            ));
        };
        let suite = match proposals::select_ike(&self.offer, sa) {
            Ok(s) => s,
            Err(e) => return fail(PeerMisbehaved::SelectedUnofferedProposal(e.0)),
        };
        if suite.dh != self.dh.group() || ke.group != suite.dh {
            return fail(PeerMisbehaved::KeGroupMismatch);
        }
        let gir = match self.dh.shared(ke.data) {
            Ok(g) => g,
            Err(e) => return fail(PeerMisbehaved::InvalidKePublic(e.to_string())),
        };
        let spi_r = msg.header.spi_r;
        let spi_i = ctx.ex.spi_i;
        let seed = keymat::skeyseed(&suite.prf, &self.ni, &nr, gir.expose());
        let keys = keymat::ike_keys(
            &suite.prf,
            seed.expose(),
            &self.ni,
            &nr,
            &spi_i,
            &spi_r,
            KeyLengths {
                integ: suite.integ.map_or(0, |i| i.key_len()),
                encr: suite.encr.key_len(),
            },
        );
        let s = ctx.settings;
        let nat = ike_natd::evaluate(&msg.payloads, &spi_i, &spi_r, s.local, s.gateway);
        if nat.any() {
            info!(
                "NAT detected ({})",
                if nat.we_behind {
                    "we are behind NAT"
                } else {
                    "the gateway is behind NAT"
                }
            );
        }
        InitStep::Done(Box::new(InitDone {
            suite,
            keys,
            spi_r,
            ni: self.ni,
            nr,
            msg1: self.msg1,
            msg2: data.to_vec(),
            nat,
            fragmentation,
            cisco_fragmentation,
        }))
    }
}

fn step(r: Result<Box<IkeInit>, DisconnectReason>) -> InitStep {
    match r {
        Ok(i) => InitStep::Retry(i),
        Err(e) => InitStep::Failed(e),
    }
}
