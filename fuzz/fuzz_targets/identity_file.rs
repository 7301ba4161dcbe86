//! Identity files are read from disk: parsing must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = portcullis_ca::identity_file::IdentityFile::from_pem(text);
    }
});
