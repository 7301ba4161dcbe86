//! Every event line an agent sends reaches auth's `event_head`, which accepts or refuses it
//! before it is stored: it must never panic, and whatever its one-pass walk accepts,
//! serde_json must accept with the same uid and event (a stored line that a reader cannot
//! parse would break search and export).
#![no_main]
use libfuzzer_sys::fuzz_target;
use portcullis_audit::head::{event_head, serde_head};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reference = if text.trim_start().starts_with('{') {
        serde_head(text).ok().filter(|h| !h.uid.is_empty() && !h.event.is_empty())
    } else {
        None
    };
    match event_head(text) {
        Ok(head) => assert_eq!(Some(head), reference, "accepted {text:?}"),
        Err(_) => assert!(reference.is_none(), "refused {text:?}"),
    }
});
