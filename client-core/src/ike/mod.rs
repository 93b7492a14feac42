//! The IKE SA: exchanges, fragmentation and the sans-IO session
//! (RFC 7296 §1–§2, RFC 7383).

pub(crate) mod children;
pub mod cisco;
pub mod cisco_frag;
pub mod describe;
pub(crate) mod exchange;
pub mod fragment;
pub mod proposals;
pub(crate) mod sa;
pub mod session;
pub(crate) mod tasks;
