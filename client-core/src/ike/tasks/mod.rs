//! One module per exchange concern (strongSwan's `sa/ikev2/tasks/`): each
//! task builds its request and processes the answer, or answers the
//! gateway's request, and *returns* what it wants the session to do (install
//! an SA, raise a prompt, fail) instead of calling back into it. Tasks reach
//! the layer below — sending through [`Exchange`](super::exchange::Exchange),
//! arming timers, queueing events — through [`Ctx`].
//!
//! | module | exchange | RFC 7296 |
//! |---|---|---|
//! | `ike_init` | IKE_SA_INIT, COOKIE, INVALID_KE_PAYLOAD | §1.2, §2.6, §1.3 |
//! | `ike_natd` | NAT_DETECTION_*_IP | §2.23 |
//! | `ike_auth` | IKE_AUTH: gateway AUTH, EAP rounds, final AUTH | §1.2, §2.15, §2.16 |
//! | `ike_eap` | EAP methods and EAP-AnyConnect inside IKE_AUTH | §2.16, RFC 3748 |
//! | `ike_config` | CP(CFG_REQUEST) / CP(CFG_REPLY) | §2.19, §3.15 |
//! | `child_create` | the first CHILD SA; CHILD SAs the gateway creates | §1.3.1, §2.17 |
//! | `child_rekey` | our CHILD SA rekey | §1.3.3, §2.8 |
//! | `ike_rekey` | IKE SA rekeys, ours and the gateway's | §1.3.2, §2.18 |
//! | `ike_delete` | INFORMATIONAL DELETE both ways | §1.4.1 |
//! | `ike_dpd` | liveness: DPD probes, NAT-T keepalives | §1.4, RFC 3948 §2.3 |

use std::collections::VecDeque;
use std::time::Instant;

use super::exchange::{Exchange, Request};
use crate::crypto::Rng;
use crate::event::{Event, Prompt, PromptId, PromptKind};
use crate::settings::Settings;
use crate::timer::TimerTable;
use crate::wire::{ExchangeType, Payload};

pub(crate) mod child_create;
pub(crate) mod child_rekey;
pub(crate) mod ike_auth;
pub(crate) mod ike_config;
pub(crate) mod ike_delete;
pub(crate) mod ike_dpd;
pub(crate) mod ike_eap;
pub(crate) mod ike_init;
pub(crate) mod ike_natd;
pub(crate) mod ike_rekey;

/// What a task may use while it runs: the layer below and the session's
/// outputs, never the session itself.
pub(crate) struct Ctx<'a> {
    pub(crate) now: Instant,
    pub(crate) settings: &'a Settings,
    pub(crate) rng: &'a mut dyn Rng,
    pub(crate) ex: &'a mut Exchange,
    pub(crate) timers: &'a mut TimerTable,
    pub(crate) events: &'a mut VecDeque<Event>,
    pub(crate) prompt_seq: &'a mut u32,
}

impl Ctx<'_> {
    /// Sends a request on the current IKE SA as the outstanding one.
    pub(crate) fn send(&mut self, exchange: ExchangeType, payloads: &[Payload<'_>], r: Request) {
        self.ex.send_request(
            self.now,
            self.timers,
            self.rng,
            self.settings,
            exchange,
            payloads,
            r,
        );
    }

    /// Answers the gateway's request.
    pub(crate) fn respond(
        &mut self,
        old: bool,
        exchange: ExchangeType,
        id: u32,
        payloads: &[Payload<'_>],
    ) {
        self.ex
            .send_response(self.rng, self.settings, old, exchange, id, payloads);
    }

    /// Random bytes.
    pub(crate) fn random<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill(&mut b);
        b
    }

    /// A fresh 32-byte nonce (§2.10: at least half the PRF key size).
    pub(crate) fn nonce(&mut self) -> Vec<u8> {
        self.random::<32>().to_vec()
    }

    /// A fresh inbound ESP SPI (top bits set, so it never collides with the
    /// non-ESP marker or the reserved range 1..255, RFC 4303 §2.1).
    pub(crate) fn esp_spi(&mut self) -> u32 {
        u32::from_be_bytes(self.random::<4>()) | 0xc000_0000
    }

    /// Raises a prompt; its answer comes back through `Session::answer`.
    pub(crate) fn prompt(&mut self, kind: PromptKind) -> PromptId {
        *self.prompt_seq += 1;
        let id = PromptId(*self.prompt_seq);
        self.events.push_back(Event::Prompt(Prompt { id, kind }));
        id
    }
}
