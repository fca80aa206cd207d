#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| botwatch_enrich::leases::fuzzing::run("leases_kea4", data));
