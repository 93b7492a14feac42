#![no_main]
use libfuzzer_sys::fuzz_target;

// The fuzz target plays the driver: it reads the clock once per input.
fuzz_target!(|data: &[u8]| acclient_core::fuzzing::session_established(
    data,
    std::time::Instant::now()
));
