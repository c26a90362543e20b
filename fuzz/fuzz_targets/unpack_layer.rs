//! The layer unpacker: arbitrary bytes as a plain, gzip or two-layer input; nothing may
//! be written outside the unpack root, and a plain input reads the same with and without
//! the tar guard (unless the guard refuses it).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| solum_build::fuzzing::unpack_layer(data));
