//! The proxy's public port under hand-made PostgreSQL bytes: plaintext startups, encryption
//! requests, malformed and stalled clients (each closed, never left hanging), and
//! PostgreSQL 17's direct TLS (ALPN `postgresql`) with a client speaking the protocol by hand.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::assert_success;
use common::pg::PgStack;

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
const GSSENC_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];

fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = u32::try_from(body.len() + 4)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    out.extend(body);
    out
}

fn stack_with_alice() -> PgStack {
    let stack = PgStack::start("");
    stack.add_user("alice", "access", "app", "shop");
    stack.login("alice");
    stack.db_login("pg1", "app", "shop");
    stack
}

/// Reads until the peer closes (EOF or reset) or `limit` passes; returns what was read and
/// whether the connection was closed.
fn read_to_close(tcp: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, false);
        }
        tcp.set_read_timeout(Some(left)).unwrap();
        match tcp.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return (got, false)
            }
            Err(_) => return (got, true),
        }
    }
}

#[test]
fn plaintext_startup_and_encryption_requests() {
    let stack = stack_with_alice();
    let addr = stack.proxy_addr.clone();

    // A plaintext StartupMessage: an ErrorResponse saying TLS is required, then close.
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.write_all(&startup_message("app", "shop")).unwrap();
    let (reply, closed) = read_to_close(&mut tcp, Duration::from_secs(5));
    assert!(closed, "not closed after the refusal");
    assert_eq!(reply.first(), Some(&b'E'), "{reply:?}");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("FATAL") && text.contains("TLS"), "{text}");
    println!("plaintext startup: {text:?}");

    // GSSENCRequest: N; then the client may ask for TLS on the same connection: S.
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(&GSSENC_REQUEST).unwrap();
    let mut one = [0u8; 1];
    tcp.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"N");
    tcp.write_all(&SSL_REQUEST).unwrap();
    tcp.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"S");
}

/// Malformed and stalled clients are closed within the hello timeout (10 s), all at once,
/// while psql sessions keep working.
#[test]
fn bad_input_is_closed_and_others_keep_working() {
    let stack = stack_with_alice();
    let addr = stack.proxy_addr.clone();
    let mut startup_cut = startup_message("app", "shop");
    startup_cut.truncate(12);
    let mut long_startup = 100u32.to_be_bytes().to_vec();
    long_startup.extend_from_slice(&196_608u32.to_be_bytes());
    long_startup.extend_from_slice(b"user\0app\0");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("huge length", vec![0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0]),
        ("negative length", vec![0xff, 0xff, 0xff, 0xf0, 0, 3, 0, 0]),
        ("zero length", vec![0, 0, 0, 0, 0, 0, 0, 0]),
        ("truncated startup header", startup_cut),
        ("truncated startup body", long_startup),
        (
            "garbage",
            b"\x01\x02garbage that is no protocol at all\r\n".to_vec(),
        ),
        (
            "TLS ClientHello cut short",
            vec![
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
            ],
        ),
        ("SSLRequest then nothing", SSL_REQUEST.to_vec()),
        (
            "SSLRequest then garbage",
            [&SSL_REQUEST[..], b"definitely not a ClientHello........"].concat(),
        ),
        ("nothing at all", Vec::new()),
    ];
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(name, bytes)| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut tcp = TcpStream::connect(&addr).unwrap();
                if !bytes.is_empty() {
                    tcp.write_all(&bytes).unwrap();
                }
                let (reply, closed) = read_to_close(&mut tcp, Duration::from_secs(14));
                (name, closed, started.elapsed(), reply)
            })
        })
        .collect();
    // Meanwhile, psql works: a session spanning the whole time and short ones.
    let long = stack.spawn_psql("pg1", "select pg_sleep(3), 'long'");
    for i in 0..5 {
        let got = assert_success("psql", &stack.psql("pg1", &format!("select {i}")));
        assert_eq!(got.trim(), i.to_string());
        std::thread::sleep(Duration::from_millis(500));
    }
    let (out, ended) = common::pg::wait_child(long, Duration::from_secs(10));
    assert!(ended && out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("long"));
    let mut failed = Vec::new();
    for h in handles {
        let (name, closed, took, reply) = h.join().unwrap();
        println!(
            "{name}: closed={closed} after {took:?}, answered {:?}",
            String::from_utf8_lossy(&reply)
        );
        if !closed || took > Duration::from_secs(12) {
            failed.push(format!("{name}: closed={closed} after {took:?}"));
        }
    }
    assert!(failed.is_empty(), "not closed in time: {failed:?}");
    let got = assert_success("psql after", &stack.psql("pg1", "select 'still fine'"));
    assert_eq!(got.trim(), "still fine");
}

async fn read_message<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> (u8, Vec<u8>) {
    let tag = r.read_u8().await.unwrap();
    let len = r.read_u32().await.unwrap() as usize;
    let mut body = vec![0u8; len - 4];
    r.read_exact(&mut body).await.unwrap();
    (tag, body)
}

/// PostgreSQL 17 direct TLS: TLS from the first byte with ALPN `postgresql` and the routed
/// client certificate, then the protocol by hand.
#[test]
fn direct_tls_with_alpn() {
    let stack = stack_with_alice();
    let svc = stack.service_params("pg1");
    let mut config =
        common::pg::tls_client_config(&svc["sslrootcert"], &svc["sslcert"], &svc["sslkey"]);
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    let server_name = ServerName::try_from(svc["host"].clone()).unwrap();
    let addr = stack.proxy_addr.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        tokio::time::timeout(Duration::from_secs(20), async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(server_name, tcp)
                .await
                .expect("direct TLS handshake");
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"postgresql"[..]));
            tls.write_all(&startup_message("app", "shop"))
                .await
                .unwrap();
            let mut saw_auth_ok = false;
            let mut saw_key = false;
            loop {
                let (tag, body) = read_message(&mut tls).await;
                match tag {
                    b'R' => {
                        assert_eq!(&body[..4], &[0, 0, 0, 0], "not AuthenticationOk");
                        saw_auth_ok = true;
                    }
                    b'K' => saw_key = true,
                    b'S' => {}
                    b'Z' => break,
                    b'E' => panic!("refused: {}", String::from_utf8_lossy(&body)),
                    other => panic!("unexpected message {:?}", other as char),
                }
            }
            assert!(saw_auth_ok && saw_key);
            let sql = b"select 40 + 2 as answer\0";
            let mut q = vec![b'Q'];
            q.extend_from_slice(&u32::try_from(sql.len() + 4).unwrap().to_be_bytes());
            q.extend_from_slice(sql);
            tls.write_all(&q).await.unwrap();
            let mut data = None;
            loop {
                let (tag, body) = read_message(&mut tls).await;
                match tag {
                    b'D' => {
                        // 2-byte column count, 4-byte length, value.
                        data = Some(String::from_utf8_lossy(&body[6..]).into_owned());
                    }
                    b'Z' => break,
                    b'E' => panic!("query failed: {}", String::from_utf8_lossy(&body)),
                    _ => {}
                }
            }
            assert_eq!(data.as_deref(), Some("42"));
            tls.write_all(&[b'X', 0, 0, 0, 4]).await.unwrap();
            let _ = tls.shutdown().await;
        })
        .await
        .expect("direct TLS session timed out");
    });
    stack.wait_for_event("direct TLS query", |e| {
        e["event"] == "db.session.query"
            && e["db_query"].as_str() == Some("select 40 + 2 as answer")
    });
}
