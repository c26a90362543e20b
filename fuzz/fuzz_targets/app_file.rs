//! The app file parser: accepted files read back through JSON unchanged.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| solum_build::fuzzing::app_file(data));
