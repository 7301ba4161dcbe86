//! Certificates arrive from clients: decoding them must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = portcullis_ca::decode_user_identity(data);
    let _ = portcullis_ca::decode_host_identity(data);
    let _ = portcullis_ca::PublicKey::from_spki_der(data);
});
