//! MySQL bytes reach the proxy from unauthenticated clients and the agent from clients and
//! servers: framing and every decoder must never panic, and whatever decodes and re-encodes
//! must be a fixed point (decoding the encoding and encoding again gives the same bytes).
//!
//! The first 8 bytes choose the negotiated capability flags; the rest is the byte stream.
#![no_main]
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use portcullis_wire::mysql::{
    use_statements, AuthMoreData, AuthReply, AuthSwitchRequest, Command, EofPacket, ErrPacket,
    HandshakeResponse41, HandshakeV10, OkPacket, PacketFramer, PreparedStatements,
    ServerGreeting, SessionStateChange, SslRequest, StmtPrepareOk,
};
use portcullis_wire::WireError;

/// Decode, encode, decode, encode: the two encodings must match.
fn fixed_point<T>(
    payload: &Bytes,
    decode: impl Fn(Bytes) -> Result<T, WireError>,
    encode: impl Fn(&T, &mut BytesMut) -> Result<(), WireError>,
) {
    let Ok(first) = decode(payload.clone()) else {
        return;
    };
    let mut a = BytesMut::new();
    if encode(&first, &mut a).is_err() {
        return;
    }
    let second = decode(a.clone().freeze()).expect("an encoder's output must decode");
    let mut b = BytesMut::new();
    encode(&second, &mut b).expect("re-encoding must succeed");
    assert_eq!(a, b, "encoding is not a fixed point");
}

fn payloads(caps: u64, payload: &Bytes, statements: &mut PreparedStatements) {
    fixed_point(payload, HandshakeV10::decode, |m, d| m.encode(d));
    let _ = ServerGreeting::decode(payload.clone());
    fixed_point(payload, SslRequest::decode, |m, d| m.encode(d));
    fixed_point(payload, HandshakeResponse41::decode, |m, d| m.encode(d));
    fixed_point(payload, AuthSwitchRequest::decode, |m, d| m.encode(d));
    fixed_point(payload, AuthMoreData::decode, |m, d| {
        m.encode(d);
        Ok(())
    });
    let _ = AuthReply::decode(payload.clone(), caps);
    fixed_point(payload, |p| OkPacket::decode(p, caps), |m, d| m.encode(d, caps));
    if let Ok(ok) = OkPacket::decode(payload.clone(), caps) {
        let _ = ok.schema_change();
    }
    fixed_point(payload, ErrPacket::decode, |m, d| m.encode(d));
    fixed_point(payload, |p| EofPacket::decode(p, caps), |m, d| {
        m.encode(d, caps);
        Ok(())
    });
    let _ = SessionStateChange::parse_all(payload.clone());
    if let Ok(ok) = StmtPrepareOk::decode(payload.clone()) {
        statements.on_prepare_ok(&ok);
    }
    let snapshot = statements.clone();
    fixed_point(payload, |p| Command::decode(p, caps, &snapshot), |m, d| m.encode(d, caps));
    if let Ok(cmd) = Command::decode(payload.clone(), caps, statements) {
        if let Command::Query(q) = &cmd {
            let _ = use_statements(&q.query.to_string_lossy());
        }
        if let Command::StmtExecute(e) = &cmd {
            for p in &e.params {
                let _ = p.to_string();
            }
        }
        statements.on_command(&cmd);
    }
}

fuzz_target!(|data: &[u8]| {
    let (caps, stream) = match data.split_first_chunk::<8>() {
        Some((c, rest)) => (u64::from_le_bytes(*c), rest),
        None => (0, data),
    };
    let mut statements = PreparedStatements::new();
    // Logical packets, with a small limit too so the "too large" path is reached.
    for framer in [PacketFramer::new(), PacketFramer::new().with_max_packet_len(64)] {
        let mut buf = BytesMut::from(stream);
        while let Ok(Some(p)) = framer.split_logical(&mut buf) {
            assert!(p.payload.len() <= framer.max_packet_len());
            payloads(caps, &p.payload, &mut statements);
        }
    }
    // Physical packets, as a relay reads them.
    let mut framer = PacketFramer::new().with_max_packet_len(64);
    let mut buf = BytesMut::from(stream);
    while let Ok(Some(p)) = framer.split_physical(&mut buf) {
        assert_eq!(&p.raw[4..], &p.packet.payload[..]);
    }
    // The whole stream as one payload, for inputs the framer never gets past.
    payloads(caps, &Bytes::copy_from_slice(stream), &mut statements);
});
