//! The badger manifest parser: accepted manifests read back from their annotation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| solum_build::fuzzing::badger_manifest(data));
