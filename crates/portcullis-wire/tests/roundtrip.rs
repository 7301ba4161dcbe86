//! Encode → frame → decode round trips for every message, plus byte-exact checks against
//! what real clients and servers send.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use bytes::{Bytes, BytesMut};
use portcullis_wire::postgres::*;

/// Encodes `msg`, frames it back, decodes it, and checks the frame is the whole buffer.
fn roundtrip<M: Message + std::fmt::Debug + PartialEq>(msg: &M) -> Frame {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf).unwrap();
    let wire_len = buf.len();
    let frame = Framer::new().split(&mut buf).unwrap().expect("whole frame");
    assert!(buf.is_empty(), "{} left bytes over", M::NAME);
    assert_eq!(frame.tag, M::TAG);
    assert_eq!(frame.wire_len(), wire_len);
    assert_eq!(&M::from_frame(&frame).unwrap(), msg);
    assert_eq!(msg.to_frame().unwrap(), frame);
    frame
}

fn frontend(msg: FrontendMessage) {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf).unwrap();
    let frame = Framer::new().split(&mut buf).unwrap().unwrap();
    assert_eq!(FrontendMessage::decode(&frame).unwrap(), msg);
}

fn backend(msg: BackendMessage) {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf).unwrap();
    let frame = Framer::new().split(&mut buf).unwrap().unwrap();
    assert_eq!(BackendMessage::decode(&frame).unwrap(), msg);
}

#[test]
fn query() {
    let q = Query::new("select 1;");
    let f = roundtrip(&q);
    assert_eq!(&f.body[..], b"select 1;\0");
    frontend(FrontendMessage::Query(q));
}

#[test]
fn query_bytes_match_psql() {
    let mut buf = BytesMut::new();
    Query::new("SELECT 1").encode(&mut buf).unwrap();
    assert_eq!(&buf[..], b"Q\0\0\0\x0dSELECT 1\0");
}

#[test]
fn query_keeps_non_utf8_text() {
    // LATIN1 client_encoding: relayed as is, shown lossily in the audit log.
    let q = Query::new(PgString::from_bytes(Bytes::from_static(b"select '\xe9'")));
    roundtrip(&q);
    assert!(q.sql.to_str().is_err());
    assert_eq!(q.sql.to_string_lossy(), "select '\u{fffd}'");
}

#[test]
fn parse() {
    let p = Parse {
        name: "s1".into(),
        query: "select $1::int, $2".into(),
        param_types: vec![23, 0],
    };
    roundtrip(&p);
    frontend(FrontendMessage::Parse(p));
    roundtrip(&Parse {
        name: "".into(),
        query: "".into(),
        param_types: vec![],
    });
}

#[test]
fn bind() {
    let b = Bind {
        portal: "p".into(),
        statement: "s1".into(),
        param_formats: vec![1],
        params: vec![
            Some(Bytes::from_static(b"\0\0\0\x2a")),
            None,
            Some(Bytes::new()),
        ],
        result_formats: vec![0, 1],
    };
    roundtrip(&b);
    frontend(FrontendMessage::Bind(b));
}

#[test]
fn bind_65535_params_ok_65536_refused() {
    let mut b = Bind {
        portal: "".into(),
        statement: "".into(),
        param_formats: vec![],
        params: vec![None; 65_535],
        result_formats: vec![],
    };
    roundtrip(&b);
    b.params.push(None);
    let mut buf = BytesMut::from(&b"keep"[..]);
    let err = b.encode(&mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            portcullis_wire::WireError::TooMany {
                count: 65_536,
                max: 65_535,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        &buf[..],
        b"keep",
        "failed encode must leave the buffer as it was"
    );
}

#[test]
fn execute_describe_close() {
    roundtrip(&Execute {
        portal: "".into(),
        max_rows: 0,
    });
    roundtrip(&Execute {
        portal: "c1".into(),
        max_rows: 100,
    });
    roundtrip(&Describe {
        target: Target::Statement,
        name: "s1".into(),
    });
    roundtrip(&Describe {
        target: Target::Portal,
        name: "".into(),
    });
    roundtrip(&Close {
        target: Target::Portal,
        name: "p".into(),
    });
    frontend(FrontendMessage::Execute(Execute {
        portal: "x".into(),
        max_rows: 5,
    }));
    frontend(FrontendMessage::Describe(Describe {
        target: Target::Portal,
        name: "x".into(),
    }));
    frontend(FrontendMessage::Close(Close {
        target: Target::Statement,
        name: "x".into(),
    }));
}

#[test]
fn empty_messages() {
    assert_eq!(roundtrip(&Sync).body.len(), 0);
    roundtrip(&Flush);
    roundtrip(&Terminate);
    roundtrip(&CopyDone);
    frontend(FrontendMessage::Sync(Sync));
    frontend(FrontendMessage::Flush(Flush));
    frontend(FrontendMessage::Terminate(Terminate));
    frontend(FrontendMessage::CopyDone(CopyDone));
    let mut buf = BytesMut::new();
    Terminate.encode(&mut buf).unwrap();
    assert_eq!(&buf[..], b"X\0\0\0\x04");
}

#[test]
fn function_call() {
    let f = FunctionCall {
        function_oid: 952,
        arg_formats: vec![1],
        args: vec![Some(Bytes::from_static(&[0, 0, 0, 1])), None],
        result_format: 1,
    };
    roundtrip(&f);
    frontend(FrontendMessage::FunctionCall(f));
}

#[test]
fn copy_messages() {
    roundtrip(&CopyData {
        data: Bytes::from_static(b"1\tfoo\n"),
    });
    roundtrip(&CopyData { data: Bytes::new() });
    roundtrip(&CopyFail {
        message: "cancelled by user".into(),
    });
    frontend(FrontendMessage::CopyData(CopyData {
        data: Bytes::from_static(b"x"),
    }));
    frontend(FrontendMessage::CopyFail(CopyFail {
        message: "no".into(),
    }));
}

#[test]
fn password_is_raw_and_not_printed() {
    let p = PasswordMessage {
        data: Bytes::from_static(b"hunter2\0"),
    };
    roundtrip(&p);
    assert!(!format!("{p:?}").contains("hunter2"));
    frontend(FrontendMessage::Password(p));
}

#[test]
fn unknown_frontend_tag_is_other() {
    frontend(FrontendMessage::Other(Frame::new(
        b'?',
        Bytes::from_static(b"abc"),
    )));
}

#[test]
fn authentication() {
    for a in [
        Authentication::Ok,
        Authentication::KerberosV5,
        Authentication::CleartextPassword,
        Authentication::Md5Password { salt: [1, 2, 3, 4] },
        Authentication::Gss,
        Authentication::GssContinue(Bytes::from_static(b"gss")),
        Authentication::Sspi,
        Authentication::Sasl {
            mechanisms: vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()],
        },
        Authentication::SaslContinue(Bytes::from_static(b"r=abc,s=def,i=4096")),
        Authentication::SaslFinal(Bytes::from_static(b"v=xyz")),
    ] {
        roundtrip(&a);
        backend(BackendMessage::Authentication(a));
    }
    let mut buf = BytesMut::new();
    Authentication::Ok.encode(&mut buf).unwrap();
    assert_eq!(&buf[..], b"R\0\0\0\x08\0\0\0\0");
}

#[test]
fn backend_key_data_both_versions() {
    let v30 = BackendKeyData {
        process_id: 4242,
        secret_key: Bytes::from_static(&[9, 8, 7, 6]),
    };
    roundtrip(&v30);
    let v32 = BackendKeyData {
        process_id: 1,
        secret_key: Bytes::from(vec![0xab; 32]),
    };
    roundtrip(&v32);
    roundtrip(&BackendKeyData {
        process_id: 1,
        secret_key: Bytes::from(vec![1; 256]),
    });
    backend(BackendMessage::BackendKeyData(v32));
    assert!(BackendKeyData {
        process_id: 1,
        secret_key: Bytes::from(vec![1; 257])
    }
    .to_frame()
    .is_err());
    assert!(BackendKeyData {
        process_id: 1,
        secret_key: Bytes::new()
    }
    .to_frame()
    .is_err());
}

#[test]
fn parameter_status_ready_for_query_negotiate() {
    let p = ParameterStatus::new("server_version", "18.0");
    roundtrip(&p);
    backend(BackendMessage::ParameterStatus(p));
    for status in [
        TransactionStatus::Idle,
        TransactionStatus::InTransaction,
        TransactionStatus::Failed,
    ] {
        roundtrip(&ReadyForQuery { status });
        backend(BackendMessage::ReadyForQuery(ReadyForQuery { status }));
    }
    let n = NegotiateProtocolVersion {
        newest_minor: 0,
        unrecognized_options: vec!["_pq_.foo".into()],
    };
    roundtrip(&n);
    backend(BackendMessage::NegotiateProtocolVersion(n));
}

#[test]
fn error_response_builder() {
    let e = ErrorResponse::fatal(
        sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
        "TLS is required",
    )
    .hint("connect with sslmode=verify-full and the certificate from `pc db login`")
    .detail("plaintext connection refused");
    let f = roundtrip(&e);
    assert!(f
        .body
        .starts_with(b"SFATAL\0VFATAL\0C28000\0MTLS is required\0H"));
    assert_eq!(f.body.last(), Some(&0));
    let d = ErrorResponse::from_frame(&f).unwrap();
    assert_eq!(d.severity().unwrap(), "FATAL");
    assert_eq!(d.sqlstate().unwrap(), "28000");
    assert_eq!(d.message().unwrap(), "TLS is required");
    assert!(d
        .field(ErrorField::HINT)
        .unwrap()
        .to_string()
        .contains("pc db login"));
    assert_eq!(
        d.field(ErrorField::DETAIL).unwrap(),
        "plaintext connection refused"
    );
    backend(BackendMessage::ErrorResponse(ErrorResponse::error(
        "42501", "denied",
    )));
}

#[test]
fn notice_response() {
    let n = NoticeResponse {
        fields: vec![
            ErrorField::new(b'S', "NOTICE"),
            ErrorField::new(b'M', "relation exists, skipping"),
        ],
    };
    roundtrip(&n);
    assert_eq!(n.message().unwrap(), "relation exists, skipping");
    backend(BackendMessage::NoticeResponse(n));
}

#[test]
fn undecoded_backend_messages_are_other() {
    // DataRow, RowDescription, CommandComplete are relayed untouched.
    backend(BackendMessage::Other(Frame::new(
        b'D',
        Bytes::from_static(b"\0\x01\0\0\0\x011"),
    )));
    backend(BackendMessage::Other(Frame::new(
        b'C',
        Bytes::from_static(b"SELECT 1\0"),
    )));
}

#[test]
fn wrong_tag_is_refused() {
    let f = Query::new("x").to_frame().unwrap();
    let err = Parse::from_frame(&f).unwrap_err();
    assert_eq!(
        err,
        portcullis_wire::WireError::UnexpectedTag {
            expected: b'P',
            found: b'Q'
        }
    );
    assert_eq!(err.to_string(), "expected message type 'P', found 'Q'");
}

#[test]
fn decoding_does_not_copy_the_body() {
    let mut buf = BytesMut::new();
    Query::new("select * from big").encode(&mut buf).unwrap();
    let start = buf.as_ptr() as usize;
    let frame = Framer::new().split(&mut buf).unwrap().unwrap();
    assert_eq!(
        frame.body.as_ptr() as usize,
        start + Frame::HEADER_LEN,
        "frame body is a view of the read buffer"
    );
    let FrontendMessage::Query(q) = FrontendMessage::decode(&frame).unwrap() else {
        panic!()
    };
    assert_eq!(
        q.sql.as_bytes().as_ptr(),
        frame.body.as_ptr(),
        "decoded SQL is a view of the frame"
    );
}

#[test]
fn frame_header_for_vectored_writes() {
    let f = Frame::new(b'D', Bytes::from_static(b"abc"));
    assert_eq!(f.header().unwrap(), [b'D', 0, 0, 0, 7]);
    let mut buf = BytesMut::new();
    f.encode(&mut buf).unwrap();
    assert_eq!(&buf[..], b"D\0\0\0\x07abc");
}

fn initial(p: &InitialPacket) -> BytesMut {
    let mut buf = BytesMut::new();
    p.encode(&mut buf).unwrap();
    let bytes = buf.clone();
    let packet = Framer::new().split_startup(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    assert_eq!(&InitialPacket::decode(&packet).unwrap(), p);
    let mut again = BytesMut::new();
    packet.encode(&mut again).unwrap();
    assert_eq!(again, bytes);
    bytes
}

#[test]
fn ssl_and_gss_requests() {
    assert_eq!(
        &initial(&InitialPacket::SslRequest)[..],
        &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]
    );
    assert_eq!(
        &initial(&InitialPacket::GssEncRequest)[..],
        &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]
    );
}

#[test]
fn cancel_requests_30_and_32() {
    let c30 = InitialPacket::CancelRequest(CancelRequest {
        process_id: 77,
        secret_key: Bytes::from_static(&[1, 2, 3, 4]),
    });
    assert_eq!(initial(&c30).len(), 16);
    let c32 = InitialPacket::CancelRequest(CancelRequest {
        process_id: 77,
        secret_key: Bytes::from(vec![5; 32]),
    });
    assert_eq!(initial(&c32).len(), 44);
    initial(&InitialPacket::CancelRequest(CancelRequest {
        process_id: -1,
        secret_key: Bytes::from(vec![5; 256]),
    }));
}

#[test]
fn startup_message() {
    let s = StartupMessage::new(ProtocolVersion::V3_0, "alice")
        .with_param("database", "shop")
        .with_param("application_name", "psql")
        .with_param("options", "-c search_path=app")
        .with_param("client_encoding", "UTF8");
    let bytes = initial(&InitialPacket::Startup(s.clone()));
    assert_eq!(&bytes[4..8], &[0, 3, 0, 0]);
    assert!(bytes.ends_with(b"UTF8\0\0"));
    assert_eq!(s.user(), Some("alice"));
    assert_eq!(s.database(), Some("shop"));
    assert_eq!(s.application_name(), Some("psql"));

    let s32 = StartupMessage::new(ProtocolVersion::V3_2, "bob").with_param("_pq_.test", "on");
    initial(&InitialPacket::Startup(s32.clone()));
    assert_eq!(s32.database(), Some("bob"), "database defaults to the user");
}

#[test]
fn agent_rewrites_startup_from_route() {
    let mut s =
        StartupMessage::new(ProtocolVersion::V3_0, "mallory").with_param("database", "postgres");
    s.set_param("user", "app");
    s.set_param("database", "shop");
    assert_eq!(s.params[0], ("user".to_owned(), "app".to_owned()));
    assert_eq!(s.database(), Some("shop"));
    initial(&InitialPacket::Startup(s));
}

#[test]
fn startup_encode_refuses_what_a_server_would() {
    let mut buf = BytesMut::new();
    let no_user = StartupMessage {
        protocol_version: ProtocolVersion::V3_0,
        params: vec![],
    };
    assert!(no_user.encode(&mut buf).is_err());
    let v2 = StartupMessage::new(ProtocolVersion { major: 2, minor: 0 }, "a");
    assert!(v2.encode(&mut buf).is_err());
    let nul = StartupMessage::new(ProtocolVersion::V3_0, "a\0b");
    assert!(nul.encode(&mut buf).is_err());
    let big =
        StartupMessage::new(ProtocolVersion::V3_0, "a").with_param("options", "x".repeat(10_000));
    assert!(big.encode(&mut buf).is_err());
    let dup = StartupMessage {
        protocol_version: ProtocolVersion::V3_0,
        params: vec![("user".into(), "a".into()), ("user".into(), "b".into())],
    };
    assert!(dup.encode(&mut buf).is_err());
    assert!(buf.is_empty());
}

#[test]
fn protocol_version_display() {
    assert_eq!(ProtocolVersion::V3_2.to_string(), "3.2");
    assert_eq!(ProtocolVersion::from_code(196_610), ProtocolVersion::V3_2);
    assert_eq!(ProtocolVersion::V3_0.code(), 196_608);
}

#[test]
fn detached_string_owns_its_bytes() {
    let f = Parse {
        name: "s".into(),
        query: "select 1".into(),
        param_types: vec![],
    }
    .to_frame()
    .unwrap();
    let p = Parse::from_frame(&f).unwrap();
    let kept = p.query.detached();
    assert_eq!(kept, p.query);
    assert_ne!(kept.as_bytes().as_ptr(), p.query.as_bytes().as_ptr());
}
