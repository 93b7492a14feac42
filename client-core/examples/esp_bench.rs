//! ESP seal + open throughput in one process (no I/O), 1400-byte packets,
//! about one second per cipher. Prints Gbit/s; a measurement, not a test.
// A benchmark plays the driver: it reads the clock.
#![allow(clippy::disallowed_methods)]
use std::time::{Duration, Instant};

use acclient_core::crypto::cipher::{Encr, Integ};
use acclient_core::crypto::Secret;
use acclient_core::esp::ChildSaInfo;
use acclient_core::esp::EspSa;

fn main() {
    for (name, encr, integ) in [
        ("AES-GCM-256", Encr::AesGcm16(32), None),
        ("AES-GCM-128", Encr::AesGcm16(16), None),
        (
            "AES-CBC-256/HMAC-SHA1-96",
            Encr::AesCbc(32),
            Some(Integ::Sha1_96),
        ),
        (
            "AES-CBC-256/HMAC-SHA2-256-128",
            Encr::AesCbc(32),
            Some(Integ::Sha256_128),
        ),
    ] {
        let ek = Secret::new(vec![1; encr.key_len()]);
        let ak = Secret::new(vec![2; integ.map_or(0, |i| i.key_len())]);
        let info = |i, o| ChildSaInfo {
            spi_in: i,
            spi_out: o,
            encr,
            integ,
            esn: false,
            encr_out: ek.clone(),
            integ_out: ak.clone(),
            encr_in: ek.clone(),
            integ_in: ak.clone(),
            ts_local: vec![],
            ts_remote: vec![],
        };
        let (mut a, mut b) = (
            EspSa::new(&info(1, 2)).unwrap(),
            EspSa::new(&info(2, 1)).unwrap(),
        );
        let mut ip = vec![0x45u8; 1400];
        ip[1..]
            .iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = i as u8);
        let mut buf = vec![0u8; 1600];
        let (t, mut n) = (Instant::now(), 0u64);
        while t.elapsed() < Duration::from_secs(1) {
            let len = a.encapsulate(&ip, &mut buf).unwrap();
            let inner = b.decapsulate(&mut buf[..len]).unwrap();
            assert_eq!(inner.len(), ip.len());
            n += 1;
        }
        let secs = t.elapsed().as_secs_f64();
        println!("{name:32} seal+open {:>8.0} packets/s  {:>6.2} Gbit/s of 1400-byte packets (one core, both directions' crypto)", n as f64 / secs, n as f64 * 1400.0 * 8.0 / secs / 1e9);
    }
}
