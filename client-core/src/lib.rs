//! acclient-core: an IKEv2 (RFC 7296) remote-access initiator, sans-IO.
//!
//! The protocol engine ([`Session`]) takes datagrams, the current time and
//! the user's answers, and returns datagrams, a deadline and [`Event`]s. It
//! owns no socket, reads no clock and never blocks. The `driver` module
//! (feature `driver`) is the thin tokio layer that does the I/O.
//!
//! Call order, after every input (`handle_datagram`, `handle_timeout`,
//! `answer`, `close`): drain `poll_transmit`, then `poll_event`, then sleep
//! until `poll_timeout`.
#![warn(missing_docs)]
// Denied, not forbidden: crypto/rsa_sha1.rs is the one audited exception.
#![deny(unsafe_code)]

#[cfg(feature = "driver")]
pub mod agent;
pub mod crypto;
pub mod dns;
#[cfg(feature = "driver")]
pub mod driver;
pub mod eap;
pub mod error;
pub mod esp;
pub mod event;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod ike;
pub mod ipc;
pub mod journal;
pub mod profile;
pub mod routes;
#[cfg(feature = "secrets")]
pub mod secrets;
pub mod settings;
pub mod status;
pub mod stdio;
mod timer;
pub mod wire;

/// Tests play the driver: this is the `now` they start the engine with.
/// Outside `driver` and tests, nothing in this crate reads a clock.
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the tests' one clock reading
pub(crate) fn test_now() -> std::time::Instant {
    std::time::Instant::now()
}

pub use error::{ApiMisuse, DropReason, IkeDrop, PeerMisbehaved};
pub use event::{
    Answer, DisconnectReason, Event, Progress, Prompt, PromptId, PromptKind, TunnelConfig,
};
pub use ike::session::{Received, Session, State, Stats, Transmit};
pub use settings::{AuthMethod, Identity, Settings, Trust};
