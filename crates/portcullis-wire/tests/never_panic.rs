//! Property tests: arbitrary bytes into every decoder, framer and the sniffer never panic, and
//! whatever decodes re-encodes to the same bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use bytes::{Bytes, BytesMut};
use portcullis_wire::postgres::*;
use portcullis_wire::sniff::sniff;
use proptest::prelude::*;

const FRONTEND_TAGS: &[u8] = b"QPBEDCSHFXdcfp";
const BACKEND_TAGS: &[u8] = b"RKSZENv";

fn tag() -> impl Strategy<Value = u8> {
    prop_oneof![
        proptest::sample::select(FRONTEND_TAGS.to_vec()),
        proptest::sample::select(BACKEND_TAGS.to_vec()),
        any::<u8>()
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn sniff_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
        let _ = sniff(&bytes);
    }

    #[test]
    fn framer_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256), max in 0usize..512) {
        let framer = Framer::new().with_max_message_len(max);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(frame)) = framer.split(&mut buf) {
            prop_assert!(frame.body.len() + 4 <= framer.max_message_len());
        }
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = framer.split_startup(&mut buf);
    }

    #[test]
    fn initial_packet_never_panics(code in any::<u32>(), body in proptest::collection::vec(any::<u8>(), 0..128)) {
        let packet = StartupPacket { code, body: Bytes::from(body) };
        if let Ok(p) = InitialPacket::decode(&packet) {
            // Whatever decodes encodes back to the same bytes.
            let mut a = BytesMut::new();
            p.encode(&mut a).unwrap();
            let mut b = BytesMut::new();
            packet.encode(&mut b).unwrap();
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn startup_params_never_panic(params in proptest::collection::vec(("[a-z_\\x00\\xff]{0,6}", "[ -~\\x00]{0,6}"), 0..6)) {
        let mut body = Vec::new();
        for (n, v) in &params {
            body.extend_from_slice(n.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let _ = InitialPacket::decode(&StartupPacket { code: 0x0003_0000, body: Bytes::from(body) });
    }

    #[test]
    fn message_decoders_never_panic(tag in tag(), body in proptest::collection::vec(any::<u8>(), 0..128)) {
        let frame = Frame::new(tag, Bytes::from(body));
        if let Ok(m) = FrontendMessage::decode(&frame) {
            let mut out = BytesMut::new();
            m.encode(&mut out).unwrap();
            let mut whole = BytesMut::new();
            frame.encode(&mut whole).unwrap();
            prop_assert_eq!(out, whole);
        }
        if let Ok(m) = BackendMessage::decode(&frame) {
            let mut out = BytesMut::new();
            m.encode(&mut out).unwrap();
            let mut whole = BytesMut::new();
            frame.encode(&mut whole).unwrap();
            prop_assert_eq!(out, whole);
        }
    }

    #[test]
    fn query_roundtrip(sql in "[^\\x00]{0,200}") {
        let q = Query::new(sql.as_str());
        let f = q.to_frame().unwrap();
        let d = Query::from_frame(&f).unwrap();
        prop_assert_eq!(d.sql.to_str().unwrap(), sql.as_str());
    }

    #[test]
    fn bind_roundtrip(
        params in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)), 0..20),
        formats in proptest::collection::vec(0i16..2, 0..3),
    ) {
        let b = Bind {
            portal: "p".into(),
            statement: "s".into(),
            param_formats: formats.clone(),
            params: params.into_iter().map(|p| p.map(Bytes::from)).collect(),
            result_formats: formats,
        };
        let f = b.to_frame().unwrap();
        // Read in place, the same values, and each parameter's format by the
        // none/one/each convention.
        let v = portcullis_wire::postgres::BindView::parse(&f.body).unwrap();
        prop_assert_eq!(v.params().len(), b.params.len());
        for (i, (got, want)) in v.params().zip(&b.params).enumerate() {
            prop_assert_eq!(got, want.as_deref());
            let binary = match b.param_formats.as_slice() {
                [] => false,
                [one] => *one == 1,
                many => many.get(i) == Some(&1),
            };
            prop_assert_eq!(v.is_binary(i), binary, "parameter {}", i);
        }
        prop_assert_eq!(Bind::from_frame(&f).unwrap(), b);
    }
}

proptest! {
    /// Once the sniffer decides, more bytes never change its mind (the proxy may act on the
    /// first decision it gets).
    #[test]
    fn sniff_decisions_are_stable(bytes in proptest::collection::vec(
        prop_oneof![Just(0u8), Just(0x16), Just(0x03), Just(0x04), Just(0xd2), Just(0x16), Just(0x2f), Just(b'G'), Just(b'E'), Just(b'T'), Just(b' '), any::<u8>()],
        0..12,
    )) {
        let whole = sniff(&bytes);
        for n in 0..bytes.len() {
            let prefix = sniff(&bytes[..n]);
            if prefix != portcullis_wire::sniff::Sniffed::Incomplete {
                prop_assert_eq!(prefix, whole);
            }
        }
    }
}
