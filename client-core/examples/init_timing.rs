//! Prints how long the first RNG draw and the first key generations take.
// A benchmark plays the driver: it reads the clock.
#![allow(clippy::disallowed_methods)]
use acclient_core::crypto::{dh::KeyPair, Rng, SystemRng};
use acclient_core::wire::DhId;
use std::time::Instant;
fn main() {
    let t = Instant::now();
    let mut b = [0u8; 8];
    SystemRng.fill(&mut b);
    println!("first SystemRng fill: {:?}", t.elapsed());
    for g in [
        DhId::ECP_384,
        DhId::ECP_384,
        DhId::CURVE25519,
        DhId::ECP_256,
        DhId::MODP_2048,
    ] {
        let t = Instant::now();
        let _ = KeyPair::generate(g, &mut SystemRng).unwrap();
        println!("{g:?} keygen: {:?}", t.elapsed());
    }
}
