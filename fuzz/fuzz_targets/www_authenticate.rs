//! The registry's WWW-Authenticate parser: a Bearer challenge reads back the same.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| solum_build::fuzzing::www_authenticate(data));
