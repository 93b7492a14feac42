#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| acclient_core::fuzzing::pem_keys(data));
