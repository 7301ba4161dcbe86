//! A corpus of hostile input: every case returns `Ok(None)` (incomplete) or a specific error,
//! never panics, and never allocates a length the peer merely claims.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use bytes::{BufMut, Bytes, BytesMut};
use portcullis_wire::postgres::*;
use portcullis_wire::sniff::{sniff, Sniffed};
use portcullis_wire::WireError;

fn frame_err(bytes: &[u8]) -> WireError {
    let mut buf = BytesMut::from(bytes);
    Framer::new().split(&mut buf).unwrap_err()
}

fn startup(bytes: &[u8]) -> Result<Option<InitialPacket>, WireError> {
    InitialPacket::split(&mut BytesMut::from(bytes))
}

fn startup_err(bytes: &[u8]) -> WireError {
    startup(bytes).unwrap_err()
}

/// A startup packet with the given code and body, correctly framed.
fn packet(code: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.put_i32(i32::try_from(body.len() + 8).unwrap());
    v.put_u32(code);
    v.extend_from_slice(body);
    v
}

const V3: u32 = 0x0003_0000;

#[test]
fn huge_and_negative_lengths() {
    assert_eq!(
        frame_err(b"Q\xff\xff\xff\xff"),
        WireError::InvalidLength { len: -1, min: 4 }
    );
    assert_eq!(
        frame_err(b"Q\x80\0\0\0"),
        WireError::InvalidLength {
            len: i64::from(i32::MIN),
            min: 4
        }
    );
    assert_eq!(
        frame_err(b"Q\0\0\0\x03"),
        WireError::InvalidLength { len: 3, min: 4 }
    );
    assert_eq!(
        frame_err(b"Q\0\0\0\0"),
        WireError::InvalidLength { len: 0, min: 4 }
    );
    assert_eq!(
        frame_err(b"D\x7f\xff\xff\xff"),
        WireError::MessageTooLarge {
            len: i32::MAX as usize,
            max: DEFAULT_MAX_MESSAGE_LEN
        }
    );
    let small = Framer::new().with_max_message_len(1024);
    assert_eq!(
        small.check(b"Q\0\0\x04\x01").unwrap_err(),
        WireError::MessageTooLarge {
            len: 1025,
            max: 1024
        }
    );
    assert_eq!(
        small.check(b"Q\0\0\x04\x00").unwrap(),
        None,
        "exactly the limit is allowed"
    );
    // The error comes from the header alone: nothing was reserved for the claimed length.
    assert_eq!(
        Framer::new().check(b"Q\x10\0\0\0").unwrap(),
        None,
        "256 MiB exactly is allowed"
    );
    let mut buf = BytesMut::from(&b"Q\x10\0\0\x01"[..]);
    let cap = buf.capacity();
    assert!(Framer::new().split(&mut buf).is_err());
    assert_eq!(buf.capacity(), cap);
    assert_eq!(
        startup_err(&[0xff, 0xff, 0xff, 0xff]),
        WireError::InvalidLength { len: -1, min: 8 }
    );
    assert_eq!(
        startup_err(&[0x80, 0, 0, 0]),
        WireError::InvalidLength {
            len: i64::from(i32::MIN),
            min: 8
        }
    );
    assert_eq!(
        startup_err(&[0, 0, 0, 3]),
        WireError::InvalidLength { len: 3, min: 8 }
    );
    assert_eq!(
        startup_err(&[0, 0, 0, 7, 0, 3, 0]),
        WireError::InvalidLength { len: 7, min: 8 }
    );
}

#[test]
fn large_claimed_length_is_just_incomplete() {
    // 200 MiB claimed, 5 bytes present: wait for more, allocate nothing.
    let mut buf = BytesMut::from(&b"d\x0c\x80\0\0"[..]);
    assert_eq!(Framer::new().split(&mut buf).unwrap(), None);
    assert_eq!(buf.len(), 5);
}

#[test]
fn startup_packet_over_10k() {
    let mut body = b"user\0alice\0options\0".to_vec();
    body.resize(10_000, b'x');
    body.push(0);
    body.push(0);
    let p = packet(V3, &body);
    assert_eq!(
        startup_err(&p),
        WireError::MessageTooLarge {
            len: p.len(),
            max: MAX_STARTUP_PACKET_LEN
        }
    );
    // Refused from the 4-byte header alone.
    assert_eq!(
        startup_err(&p[..4]),
        WireError::MessageTooLarge {
            len: p.len(),
            max: 10_000
        }
    );
    assert_eq!(
        startup_err(b"\0\0\x27\x11"),
        WireError::MessageTooLarge {
            len: 10_001,
            max: 10_000
        }
    );
    assert_eq!(
        startup(b"\0\0\x27\x10").unwrap(),
        None,
        "exactly 10 000 bytes is allowed"
    );
}

#[test]
fn truncated_messages() {
    // Valid framing, short bodies: each names the field it ran out in.
    let cases: &[(u8, &[u8], &str)] = &[
        (b'Q', b"select 1", "query string"),
        (b'P', b"s\0select\0", "parameter type count"),
        (b'P', b"s\0select\0\0\x02\0\0\0\x17", "parameter type"),
        (b'B', b"\0\0\0\0\0\x01\0\0\0\x10ab", "parameter value"),
        (b'E', b"\0\0\0", "row limit"),
        (b'D', b"", "target"),
        (b'F', b"\0\0", "function OID"),
    ];
    for (tag, body, field) in cases {
        let f = Frame::new(*tag, Bytes::copy_from_slice(body));
        let err = FrontendMessage::decode(&f).unwrap_err();
        match err {
            WireError::Truncated { field: got, .. } | WireError::MissingNul { field: got, .. } => {
                assert_eq!(got, *field, "{}: {err}", *tag as char)
            }
            other => panic!("{}: unexpected {other}", *tag as char),
        }
    }
    let err =
        FrontendMessage::decode(&Frame::new(b'Q', Bytes::from_static(b"select 1"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Query: query string is missing its NUL terminator"
    );
    // Truncated backend messages.
    for (tag, body) in [
        (b'R', &b"\0\0"[..]),
        (b'R', b"\0\0\0\x05\x01\x02"),
        (b'R', b"\0\0\0\x0aSCRAM-SHA-256\0"),
        (b'K', b"\0\0\0\x01"),
        (b'Z', b""),
        (b'S', b"name\0value"),
        (b'E', b"SERROR\0"),
        (b'v', b"\0\0\0\0\0\0\0\x02_pq_.a\0"),
    ] {
        assert!(
            BackendMessage::decode(&Frame::new(tag, Bytes::from_static(body))).is_err(),
            "{}",
            tag as char
        );
    }
}

#[test]
fn bad_values() {
    let bad_null = Frame::new(
        b'B',
        Bytes::from_static(b"\0\0\0\0\0\x01\xff\xff\xff\xfe\0\0"),
    );
    assert_eq!(
        FrontendMessage::decode(&bad_null).unwrap_err(),
        WireError::InvalidValue {
            message: "Bind",
            field: "value length",
            value: -2
        }
    );
    let bad_target = Frame::new(b'C', Bytes::from_static(b"Xname\0"));
    assert!(matches!(
        FrontendMessage::decode(&bad_target),
        Err(WireError::InvalidValue {
            field: "target",
            ..
        })
    ));
    let trailing = Frame::new(b'S', Bytes::from_static(b"x"));
    assert_eq!(
        FrontendMessage::decode(&trailing).unwrap_err(),
        WireError::TrailingBytes {
            message: "Sync",
            count: 1
        }
    );
    let bad_status = Frame::new(b'Z', Bytes::from_static(b"Q"));
    assert!(BackendMessage::decode(&bad_status).is_err());
    let bad_auth = Frame::new(b'R', Bytes::from_static(b"\0\0\0\x63"));
    assert_eq!(
        BackendMessage::decode(&bad_auth).unwrap_err().to_string(),
        "Authentication: invalid authentication code 99"
    );
    let negative_count = Frame::new(b'v', Bytes::from_static(b"\0\0\0\0\xff\xff\xff\xff"));
    assert!(BackendMessage::decode(&negative_count).is_err());
    // A huge count with no items behind it: an error, not a huge Vec.
    let huge_count = Frame::new(b'v', Bytes::from_static(b"\0\0\0\0\x7f\xff\xff\xff"));
    assert!(BackendMessage::decode(&huge_count).is_err());
    let long_key = {
        let mut b = vec![0, 0, 0, 1];
        b.extend_from_slice(&[0; 257]);
        Frame::new(b'K', Bytes::from(b))
    };
    assert!(BackendMessage::decode(&long_key).is_err());
}

#[test]
fn unterminated_params() {
    let p = packet(V3, b"user\0alice");
    assert_eq!(
        startup_err(&p),
        WireError::MissingNul {
            message: "StartupMessage",
            field: "parameter value"
        }
    );
    // No final NUL after the last pair.
    let p = packet(V3, b"user\0alice\0");
    assert_eq!(
        startup_err(&p),
        WireError::MissingNul {
            message: "StartupMessage",
            field: "parameter list"
        }
    );
    let p = packet(V3, b"");
    assert!(matches!(startup_err(&p), WireError::MissingNul { .. }));
}

#[test]
fn odd_number_of_params() {
    // A name with no value: "database" then the terminator is read as its (empty) value, and
    // the list has no end.
    let p = packet(V3, b"user\0alice\0database\0\0");
    assert!(matches!(startup_err(&p), WireError::MissingNul { .. }));
    let p = packet(V3, b"user\0alice\0database\0");
    assert!(matches!(
        startup_err(&p),
        WireError::MissingNul {
            field: "parameter value",
            ..
        }
    ));
}

#[test]
fn bytes_after_the_terminator() {
    let p = packet(V3, b"user\0alice\0\0junk");
    assert_eq!(
        startup_err(&p),
        WireError::TrailingBytes {
            message: "StartupMessage",
            count: 4
        }
    );
    let p = packet(0x04d2_162f, b"x");
    assert_eq!(
        startup_err(&p),
        WireError::TrailingBytes {
            message: "SSLRequest",
            count: 1
        }
    );
}

#[test]
fn non_utf8_params() {
    let p = packet(V3, b"user\0al\xffice\0\0");
    let err = startup_err(&p);
    assert_eq!(
        err.to_string(),
        "StartupMessage: parameter \"user\" is not valid UTF-8"
    );
    let p = packet(V3, b"us\xc3er\0alice\0\0");
    assert!(matches!(startup_err(&p), WireError::InvalidUtf8 { .. }));
}

#[test]
fn startup_without_user() {
    let p = packet(V3, b"database\0shop\0\0");
    assert_eq!(
        startup_err(&p),
        WireError::MissingParameter { name: "user" }
    );
    assert_eq!(
        startup_err(&p).to_string(),
        "startup message has no \"user\" parameter"
    );
}

#[test]
fn duplicate_params() {
    let p = packet(V3, b"user\0alice\0user\0postgres\0\0");
    assert_eq!(
        startup_err(&p),
        WireError::DuplicateParameter {
            name: "user".into()
        }
    );
}

#[test]
fn protocol_versions() {
    let p = packet(0x0002_0000, b"user\0alice\0\0");
    let err = startup_err(&p);
    assert_eq!(
        err,
        WireError::UnsupportedProtocolVersion { major: 2, minor: 0 }
    );
    assert_eq!(
        err.to_string(),
        "unsupported frontend protocol 2.0: only 3.0 and 3.2 are supported"
    );
    for (code, ok) in [
        (0x0003_0000, true),
        (0x0003_0001, false),
        (0x0003_0002, true),
        (0x0003_0003, false),
        (0x0004_0000, false),
    ] {
        assert_eq!(
            startup(&packet(code, b"user\0alice\0\0")).is_ok(),
            ok,
            "{code:#x}"
        );
    }
    let err = startup_err(&packet(0x04d2_1631, b""));
    assert_eq!(err, WireError::UnknownRequestCode { code: 0x04d2_1631 });
    assert_eq!(
        err.to_string(),
        "unknown startup request code 80877105 (1234.5681)"
    );
}

#[test]
fn cancel_key_lengths() {
    let pid = [0, 0, 0, 1];
    assert!(startup(&packet(0x04d2_162e, &pid)).is_err(), "no key");
    assert!(
        startup(&packet(0x04d2_162e, &pid[..2])).is_err(),
        "short pid"
    );
    let mut long = pid.to_vec();
    long.extend_from_slice(&[0; 257]);
    assert!(
        startup(&packet(0x04d2_162e, &long)).is_err(),
        "257-byte key"
    );
    long.pop();
    assert!(
        startup(&packet(0x04d2_162e, &long)).unwrap().is_some(),
        "256-byte key"
    );
}

#[test]
fn tls_client_hello_cut_short() {
    let hello: &[u8] = &[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    assert_eq!(sniff(&hello[..1]), Sniffed::Incomplete);
    for n in 2..hello.len() {
        assert_eq!(sniff(&hello[..n]), Sniffed::Tls);
    }
    // Fed to the startup framer by mistake, it is refused by length, not buffered.
    assert!(matches!(
        startup_err(hello),
        WireError::MessageTooLarge { .. }
    ));
}

#[test]
fn sniff_cases() {
    assert_eq!(sniff(b""), Sniffed::Incomplete);
    assert_eq!(
        sniff(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]),
        Sniffed::PostgresSslRequest
    );
    assert_eq!(
        sniff(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]),
        Sniffed::PostgresGssEncRequest
    );
    assert_eq!(
        sniff(&[0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e]),
        Sniffed::PostgresCancel
    );
    assert_eq!(
        sniff(&[0, 0, 0, 44, 0x04, 0xd2, 0x16, 0x2e]),
        Sniffed::PostgresCancel
    );
    assert_eq!(sniff(&packet(V3, b"user\0a\0\0")), Sniffed::PostgresStartup);
    assert_eq!(
        sniff(&packet(0x0003_0002, b"user\0a\0\0")),
        Sniffed::PostgresStartup
    );
    for n in 0..8 {
        assert_eq!(
            sniff(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f][..n]),
            Sniffed::Incomplete,
            "{n} bytes"
        );
    }
    assert_eq!(sniff(&[0, 0x10]), Sniffed::Unknown, "length over 64 KiB");
    assert_eq!(
        sniff(&[0, 0, 0, 4, 0, 0, 0, 0]),
        Sniffed::Unknown,
        "length under 8"
    );
    assert_eq!(
        sniff(&[0, 0, 0, 9, 0x04, 0xd2, 0x16, 0x2f]),
        Sniffed::Unknown,
        "SSLRequest of 9 bytes"
    );
    assert_eq!(
        sniff(&[0, 0, 0, 8, 0, 9, 0, 0]),
        Sniffed::Unknown,
        "protocol 9"
    );
    assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniffed::Http);
    assert_eq!(sniff(b"OPTIONS * HTTP/1.1\r\n"), Sniffed::Http);
    assert_eq!(sniff(b"DELETE /x"), Sniffed::Http);
    assert_eq!(sniff(b"POST"), Sniffed::Incomplete);
    assert_eq!(sniff(b"GE"), Sniffed::Incomplete);
    assert_eq!(sniff(b"GETS"), Sniffed::Unknown);
    assert_eq!(sniff(b"*1\r\n$4\r\nPING\r\n"), Sniffed::RespPlaintext);
    assert_eq!(sniff(b"*"), Sniffed::RespPlaintext);
    assert_eq!(sniff(b"SSH-2.0-OpenSSH_9.6\r\n"), Sniffed::Unknown);
    assert_eq!(sniff(&[0x16, 0x02]), Sniffed::Unknown);
}

#[test]
fn random_garbage() {
    // A deterministic xorshift stream: no case may panic.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = usize::try_from(next() % 64).unwrap();
        let bytes: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
        let _ = sniff(&bytes);
        let _ = startup(&bytes);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(f)) = Framer::new().split(&mut buf) {
            let _ = FrontendMessage::decode(&f);
            let _ = BackendMessage::decode(&f);
        }
        if let Some((&tag, body)) = bytes.split_first() {
            let f = Frame::new(tag, Bytes::copy_from_slice(body));
            let _ = FrontendMessage::decode(&f);
            let _ = BackendMessage::decode(&f);
        }
    }
}
