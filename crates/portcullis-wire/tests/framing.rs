//! Split reads: a stream fed one byte at a time, or in random chunks, frames exactly as it does
//! when it arrives whole. No parser may assume one read is one message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use bytes::{Bytes, BytesMut};
use portcullis_wire::postgres::*;
use proptest::prelude::*;

/// A realistic client session: startup, then simple and extended queries, a COPY, and Terminate.
fn client_stream() -> (BytesMut, Vec<FrontendMessage>) {
    let mut buf = BytesMut::new();
    InitialPacket::Startup(
        StartupMessage::new(ProtocolVersion::V3_2, "alice").with_param("database", "shop"),
    )
    .encode(&mut buf)
    .unwrap();
    let msgs = vec![
        FrontendMessage::Query(Query::new("begin")),
        FrontendMessage::Parse(Parse {
            name: "s".into(),
            query: "select $1".into(),
            param_types: vec![25],
        }),
        FrontendMessage::Bind(Bind {
            portal: "".into(),
            statement: "s".into(),
            param_formats: vec![],
            params: vec![Some(Bytes::from(vec![b'x'; 300])), None],
            result_formats: vec![],
        }),
        FrontendMessage::Describe(Describe {
            target: Target::Portal,
            name: "".into(),
        }),
        FrontendMessage::Execute(Execute {
            portal: "".into(),
            max_rows: 0,
        }),
        FrontendMessage::Sync(Sync),
        FrontendMessage::CopyData(CopyData {
            data: Bytes::from_static(b"1\t2\n"),
        }),
        FrontendMessage::CopyDone(CopyDone),
        FrontendMessage::FunctionCall(FunctionCall {
            function_oid: 1,
            arg_formats: vec![],
            args: vec![],
            result_format: 0,
        }),
        FrontendMessage::Other(Frame::new(b'~', Bytes::from_static(b"unknown"))),
        FrontendMessage::Terminate(Terminate),
    ];
    for m in &msgs {
        m.encode(&mut buf).unwrap();
    }
    (buf, msgs)
}

/// Feeds `stream` into a persistent buffer in the given chunk sizes, framing after every read.
fn feed(
    stream: &[u8],
    chunks: impl IntoIterator<Item = usize>,
) -> (InitialPacket, Vec<FrontendMessage>) {
    let framer = Framer::new();
    let mut buf = BytesMut::new();
    let mut startup = None;
    let mut msgs = Vec::new();
    let mut pos = 0;
    let mut chunks = chunks.into_iter();
    while pos < stream.len() {
        let n = chunks
            .next()
            .unwrap_or(usize::MAX)
            .max(1)
            .min(stream.len() - pos);
        buf.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        loop {
            if startup.is_none() {
                match framer.split_startup(&mut buf).unwrap() {
                    Some(p) => startup = Some(InitialPacket::decode(&p).unwrap()),
                    None => break,
                }
            } else {
                match framer.split(&mut buf).unwrap() {
                    Some(f) => msgs.push(FrontendMessage::decode(&f).unwrap()),
                    None => break,
                }
            }
        }
    }
    assert!(buf.is_empty(), "bytes left over");
    (startup.expect("startup packet"), msgs)
}

#[test]
fn whole_stream_at_once() {
    let (stream, expected) = client_stream();
    let (startup, msgs) = feed(&stream, [usize::MAX]);
    assert!(matches!(startup, InitialPacket::Startup(ref s) if s.user() == Some("alice")));
    assert_eq!(msgs, expected);
}

#[test]
fn byte_by_byte() {
    let (stream, expected) = client_stream();
    let (_, msgs) = feed(&stream, std::iter::repeat(1));
    assert_eq!(msgs, expected);
}

#[test]
fn check_reports_incomplete_until_the_last_byte() {
    let mut whole = BytesMut::new();
    Query::new("select 42").encode(&mut whole).unwrap();
    let framer = Framer::new();
    for n in 0..whole.len() {
        assert_eq!(
            framer.check(&whole[..n]).unwrap(),
            None,
            "prefix of {n} bytes"
        );
    }
    assert_eq!(framer.check(&whole).unwrap(), Some(whole.len()));
    let mut partial = BytesMut::from(&whole[..whole.len() - 1]);
    assert_eq!(framer.split(&mut partial).unwrap(), None);
    assert_eq!(
        partial.len(),
        whole.len() - 1,
        "an incomplete split leaves the buffer alone"
    );
}

#[test]
fn backend_stream_in_chunks() {
    let msgs = vec![
        BackendMessage::Authentication(Authentication::Ok),
        BackendMessage::ParameterStatus(ParameterStatus::new("server_version", "18.0")),
        BackendMessage::BackendKeyData(BackendKeyData {
            process_id: 9,
            secret_key: Bytes::from(vec![7; 32]),
        }),
        BackendMessage::ReadyForQuery(ReadyForQuery {
            status: TransactionStatus::Idle,
        }),
        BackendMessage::Other(Frame::new(b'D', Bytes::from(vec![0; 1000]))),
    ];
    let mut stream = BytesMut::new();
    for m in &msgs {
        m.encode(&mut stream).unwrap();
    }
    for chunk in [1, 2, 3, 7, 64, 999] {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in stream.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(f) = Framer::new().split(&mut buf).unwrap() {
                out.push(BackendMessage::decode(&f).unwrap());
            }
        }
        assert_eq!(out, msgs, "chunk size {chunk}");
    }
}

proptest! {
    #[test]
    fn random_chunk_sizes(chunks in proptest::collection::vec(1usize..64, 1..400)) {
        let (stream, expected) = client_stream();
        let (_, msgs) = feed(&stream, chunks.into_iter().cycle());
        prop_assert_eq!(msgs, expected);
    }
}
