//! PostgreSQL server bytes reach the agent from the database: framing and decoding must never
//! panic, and whatever decodes must re-encode to the same bytes.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portcullis_wire::postgres::{BackendMessage, Framer};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = Framer::new().split(&mut buf) {
        if let Ok(msg) = BackendMessage::decode(&frame) {
            let mut a = BytesMut::new();
            let mut b = BytesMut::new();
            if msg.encode(&mut a).is_ok() && frame.encode(&mut b).is_ok() {
                assert_eq!(a, b, "re-encoding changed the message");
            }
        }
    }
});
