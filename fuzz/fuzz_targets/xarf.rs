#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| botwatch_feeds::fuzzing::run("xarf", data));
