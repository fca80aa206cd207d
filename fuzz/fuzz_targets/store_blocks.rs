#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| botwatch_store::blocks::fuzz(data));
