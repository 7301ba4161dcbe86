//! PostgreSQL client bytes reach the agent from any authenticated user: framing and decoding
//! must never panic, and whatever decodes must re-encode to the same bytes.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portcullis_wire::postgres::{BindView, Framer, FrontendMessage};

fuzz_target!(|data: &[u8]| {
    // A small limit too, so the "too large" path is reached.
    for framer in [Framer::new(), Framer::new().with_max_message_len(64)] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(frame)) = framer.split(&mut buf) {
            // A Bind read in place (the audit path): every parameter can be walked.
            if let Ok(v) = BindView::parse(&frame.body) {
                let n = v.params().len();
                assert_eq!(v.params().count(), n);
                for i in 0..n {
                    let _ = v.is_binary(i);
                }
            }
            if let Ok(msg) = FrontendMessage::decode(&frame) {
                let mut a = BytesMut::new();
                let mut b = BytesMut::new();
                if msg.encode(&mut a).is_ok() && frame.encode(&mut b).is_ok() {
                    assert_eq!(a, b, "re-encoding changed the message");
                }
            }
        }
    }
});
