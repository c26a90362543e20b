//! Image references: what parses prints as text that parses to the same reference.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| solum_build::fuzzing::image_reference(data));
