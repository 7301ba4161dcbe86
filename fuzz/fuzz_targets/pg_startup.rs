//! A connection's first PostgreSQL packet comes from anyone on the internet: framing and
//! decoding it must never panic, and whatever decodes must re-encode to the same bytes.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portcullis_wire::postgres::{Framer, InitialPacket};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    if let Ok(Some(packet)) = Framer::new().split_startup(&mut buf) {
        if let Ok(initial) = InitialPacket::decode(&packet) {
            let mut a = BytesMut::new();
            let mut b = BytesMut::new();
            if initial.encode(&mut a).is_ok() && packet.encode(&mut b).is_ok() {
                assert_eq!(a, b, "re-encoding changed the packet");
            }
        }
    }
});
