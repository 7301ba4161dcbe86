//! The config file: parsing and validating must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = portcullis::config::Config::from_yaml(text, "fuzz") {
            let _ = c.validate("fuzz");
        }
    }
});
