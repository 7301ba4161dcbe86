//! The sniffer sees the first bytes of every connection to the public port: it must never
//! panic, and a longer input must never turn a decision back into "incomplete".
#![no_main]
use libfuzzer_sys::fuzz_target;
use portcullis_wire::sniff::{sniff, Sniffed};

fuzz_target!(|data: &[u8]| {
    let whole = sniff(data);
    for n in 0..data.len() {
        let prefix = sniff(data.get(..n).unwrap_or_default());
        if prefix != Sniffed::Incomplete {
            assert_eq!(prefix, whole, "decision changed with more bytes");
        }
    }
});
