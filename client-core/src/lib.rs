//! acclient-core: an IKEv2 (RFC 7296) remote-access initiator, sans-IO.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod crypto;
pub mod eap;
pub mod wire;
