//! Index and manifest resolution in a layout built from the input, before and after gc.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| solum_build::fuzzing::layout_resolve(data));
