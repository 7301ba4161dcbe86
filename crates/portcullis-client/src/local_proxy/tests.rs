use super::*;

use portcullis_ca::identity_file::Zeroizing;
use portcullis_ca::{CaKind, CertAuthority, KeyPair};
use portcullis_core::database::DbProtocol;
use portcullis_core::identity::{DbRoute, HostIdentity, Identity, SystemRole};
use rustls::server::WebPkiClientVerifier;
use time::OffsetDateTime;
use tokio::io::duplex;
use tokio_rustls::TlsAcceptor;

fn startup_bytes(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = (3u32 << 16).to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

fn code_packet(code: u32) -> Vec<u8> {
    let mut out = 8u32.to_be_bytes().to_vec();
    out.extend_from_slice(&code.to_be_bytes());
    out
}

#[test]
fn parses_requests_and_startup() {
    assert_eq!(
        parse_startup(&code_packet(SSL_REQUEST)).unwrap(),
        Some((StartupPacket::SslRequest, 8))
    );
    assert_eq!(
        parse_startup(&code_packet(GSSENC_REQUEST)).unwrap(),
        Some((StartupPacket::GssEncRequest, 8))
    );
    let s = startup_bytes(&[("user", "app"), ("database", "shop")]);
    let (p, used) = parse_startup(&s).unwrap().unwrap();
    assert_eq!(used, s.len());
    assert_eq!(p.param("user"), Some("app"));
    assert_eq!(p.param("database"), Some("shop"));
    assert_eq!(p.param("nope"), None);
    let mut cancel = 16u32.to_be_bytes().to_vec();
    cancel.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
    cancel.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(matches!(
        parse_startup(&cancel).unwrap(),
        Some((StartupPacket::Cancel { .. }, 16))
    ));
}

#[test]
fn split_reads_need_more_bytes() {
    let s = startup_bytes(&[("user", "app")]);
    for cut in 0..s.len() {
        assert_eq!(parse_startup(&s[..cut]).unwrap(), None, "cut at {cut}");
    }
    // Extra bytes after the packet are left for the caller.
    let mut two = s.clone();
    two.extend_from_slice(b"Qextra");
    assert_eq!(parse_startup(&two).unwrap().unwrap().1, s.len());
}

#[test]
fn refuses_oversize_short_and_garbage() {
    let mut big = 20_000u32.to_be_bytes().to_vec();
    big.extend_from_slice(&(3u32 << 16).to_be_bytes());
    assert_eq!(parse_startup(&big), Err(StartupError::TooLarge(20_000)));
    // The limit is checked from the length alone, before the body arrives.
    assert!(parse_startup(&big[..4]).is_err());
    assert_eq!(
        parse_startup(&[0, 0, 0, 4, 0, 0, 0, 0]),
        Err(StartupError::TooShort(4))
    );
    assert_eq!(
        parse_startup(b"GET / HTTP/1.1\r\n"),
        Err(StartupError::TooLarge(u32::from_be_bytes(*b"GET ")))
    );
    assert_eq!(
        parse_startup(&code_packet(1234)),
        Err(StartupError::UnsupportedVersion(1234))
    );
    assert_eq!(
        parse_startup(&[0x16, 3, 1, 0, 0]),
        Err(StartupError::DirectTls)
    );
    // Unterminated parameters.
    let mut bad = 12u32.to_be_bytes().to_vec();
    bad.extend_from_slice(&(3u32 << 16).to_be_bytes());
    bad.extend_from_slice(b"user");
    assert!(matches!(
        parse_startup(&bad),
        Err(StartupError::Malformed(_))
    ));
    // Bytes after the final NUL.
    let mut trailing = 14u32.to_be_bytes().to_vec();
    trailing.extend_from_slice(&(3u32 << 16).to_be_bytes());
    trailing.extend_from_slice(b"\0xyzw\0");
    assert!(matches!(
        parse_startup(&trailing),
        Err(StartupError::Malformed(_))
    ));
    // An SSLRequest with a body.
    let mut ssl_body = 12u32.to_be_bytes().to_vec();
    ssl_body.extend_from_slice(&SSL_REQUEST.to_be_bytes());
    ssl_body.extend_from_slice(&[0; 4]);
    assert!(parse_startup(&ssl_body).is_err());
}

#[tokio::test]
async fn answers_ssl_and_gssenc_with_n_then_reads_startup_in_pieces() {
    let (mut client, mut server) = duplex(64);
    let task = tokio::spawn(async move { accept_startup(&mut server).await });
    let mut answer = [0u8; 1];
    client
        .write_all(&code_packet(GSSENC_REQUEST))
        .await
        .unwrap();
    client.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"N");
    client.write_all(&code_packet(SSL_REQUEST)).await.unwrap();
    client.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"N");
    let s = startup_bytes(&[("user", "app"), ("database", "shop")]);
    for byte in &s {
        client.write_all(&[*byte]).await.unwrap();
        tokio::task::yield_now().await;
    }
    let (packet, leftover) = task.await.unwrap().unwrap();
    assert_eq!(packet.param("user"), Some("app"));
    assert!(leftover.is_empty());
}

#[tokio::test]
async fn endless_ssl_requests_and_early_close_are_errors() {
    let (mut client, mut server) = duplex(1024);
    let task = tokio::spawn(async move { accept_startup(&mut server).await });
    for _ in 0..4 {
        client.write_all(&code_packet(SSL_REQUEST)).await.unwrap();
        let mut answer = [0u8; 1];
        client.read_exact(&mut answer).await.unwrap();
    }
    assert!(matches!(
        task.await.unwrap(),
        Err(TunnelError::Startup(StartupError::TooManyRequests))
    ));

    let (mut client, mut server) = duplex(1024);
    let task = tokio::spawn(async move { accept_startup(&mut server).await });
    client.write_all(&[0, 0]).await.unwrap();
    drop(client);
    assert!(matches!(
        task.await.unwrap(),
        Err(TunnelError::ClientClosed)
    ));
}

#[test]
fn error_response_is_a_valid_message() {
    let e = error_response("no route\0here");
    assert_eq!(e[0], b'E');
    let len = u32::from_be_bytes([e[1], e[2], e[3], e[4]]) as usize;
    assert_eq!(len + 1, e.len());
    assert!(e.windows(8).any(|w| w == b"Mno rout"));
    assert_eq!(*e.last().unwrap(), 0);
}

/// A stand-in for the proxy: answers the SSLRequest with `S`, does TLS with a host
/// certificate for localhost, requires a client certificate from the user CA, then echoes the
/// startup packet it received, and reports the client certificate's route.
struct FakeProxy {
    addr: String,
    host_ca: CertAuthority,
    user_ca: CertAuthority,
    task: tokio::task::JoinHandle<(Vec<u8>, Option<DbRoute>)>,
}

async fn fake_proxy(answer: u8) -> FakeProxy {
    let now = OffsetDateTime::now_utc();
    let host_ca = CertAuthority::generate(CaKind::Host, "example", now).unwrap();
    let user_ca = CertAuthority::generate(CaKind::User, "example", now).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = host_ca
        .issue_host(
            &HostIdentity {
                host_id: "proxy-1".into(),
                node_name: "proxy".into(),
                cluster_name: "example".into(),
                system_roles: vec![SystemRole::Proxy],
                expires: now + time::Duration::hours(1),
            },
            &key.public_key(),
            vec!["localhost".into()],
            vec!["127.0.0.1".parse().unwrap()],
            now,
        )
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(user_ca.cert_der().to_vec()))
        .unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("localhost:{}", listener.local_addr().unwrap().port());
    let task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut req = [0u8; 8];
        tcp.read_exact(&mut req).await.unwrap();
        assert_eq!(req.to_vec(), code_packet(SSL_REQUEST));
        tcp.write_all(&[answer]).await.unwrap();
        if answer != b'S' {
            return (Vec::new(), None);
        }
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        assert_eq!(alpn, None, "no ALPN after an SSLRequest");
        let peer = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        let route = portcullis_ca::decode_user_identity(&peer).unwrap().route;
        let mut buf = Vec::new();
        let packet = loop {
            if let Some((p, used)) = parse_startup(&buf).unwrap() {
                buf.drain(..used);
                break p;
            }
            let mut chunk = [0u8; 256];
            let n = tls.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
        };
        let StartupPacket::Startup { raw, .. } = packet else {
            panic!("expected a startup message");
        };
        tls.write_all(b"R-echo:").await.unwrap();
        tls.write_all(&raw).await.unwrap();
        tls.flush().await.unwrap();
        let mut rest = Vec::new();
        let _ = tls.read_to_end(&mut rest).await;
        (rest, route)
    });
    FakeProxy {
        addr,
        host_ca,
        user_ca,
        task,
    }
}

fn db_identity(user_ca: &CertAuthority, host_ca: &CertAuthority) -> IdentityFile {
    let now = OffsetDateTime::now_utc();
    let key = KeyPair::generate().unwrap();
    let identity = Identity {
        username: "alice".into(),
        cluster_name: "example".into(),
        roles: vec!["access".into()],
        traits: Default::default(),
        expires: now + time::Duration::hours(1),
        mfa_verified: true,
        login_ip: None,
        route: Some(DbRoute {
            service_name: "pg1".into(),
            protocol: DbProtocol::Postgres,
            db_user: "app".into(),
            db_name: Some("shop".into()),
        }),
    };
    let cert = user_ca
        .issue_user(&identity, &key.public_key(), now)
        .unwrap();
    IdentityFile {
        key_pkcs8: Zeroizing::new(key.pkcs8_der().to_vec()),
        cert_der: cert,
        ca_ders: vec![host_ca.cert_der().to_vec()],
    }
}

#[tokio::test]
async fn tunnel_end_to_end_over_loopback() {
    let proxy = fake_proxy(b'S').await;
    let upstream =
        Arc::new(Upstream::new(&proxy.addr, &db_identity(&proxy.user_ca, &proxy.host_ca)).unwrap());
    let listener = bind(0).await.unwrap();
    let local = listener.local_addr().unwrap();
    assert!(local.ip().is_loopback());
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&errors);
    let server = tokio::spawn(serve(listener, upstream, move |e| {
        sink.lock().unwrap().push(e)
    }));

    let mut client = TcpStream::connect(local).await.unwrap();
    client.write_all(&code_packet(SSL_REQUEST)).await.unwrap();
    let mut answer = [0u8; 1];
    client.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"N");
    let startup = startup_bytes(&[("user", "app"), ("database", "shop")]);
    client.write_all(&startup).await.unwrap();
    let mut echo = vec![0u8; 7 + startup.len()];
    client.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo[..7], b"R-echo:");
    assert_eq!(&echo[7..], &startup[..]);
    client.write_all(b"X\0\0\0\x04").await.unwrap();
    client.shutdown().await.unwrap();
    drop(client);
    let (rest, route) = proxy.task.await.unwrap();
    assert_eq!(rest, b"X\0\0\0\x04");
    let route = route.unwrap();
    assert_eq!(route.service_name, "pg1");
    assert_eq!(route.db_user, "app");
    server.abort();
    assert!(
        errors.lock().unwrap().is_empty(),
        "{:?}",
        errors.lock().unwrap()
    );
}

#[tokio::test]
async fn wrong_host_ca_is_refused_and_the_client_told_why() {
    let proxy = fake_proxy(b'S').await;
    let other = CertAuthority::generate(CaKind::Host, "evil", OffsetDateTime::now_utc()).unwrap();
    let upstream = Upstream::new(&proxy.addr, &db_identity(&proxy.user_ca, &other)).unwrap();
    let (mut client, server) = duplex(4096);
    let task = tokio::spawn(async move { handle_client(server, &upstream).await });
    client
        .write_all(&startup_bytes(&[("user", "app")]))
        .await
        .unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply.first(), Some(&b'E'));
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("host CA"), "{text}");
    assert!(matches!(task.await.unwrap(), Err(TunnelError::Tls { .. })));
    proxy.task.abort();
}

#[tokio::test]
async fn proxy_without_tls_is_reported() {
    let proxy = fake_proxy(b'N').await;
    let upstream =
        Upstream::new(&proxy.addr, &db_identity(&proxy.user_ca, &proxy.host_ca)).unwrap();
    let err = upstream.connect().await.unwrap_err();
    assert!(
        matches!(err, TunnelError::NoTls { answer: 'N', .. }),
        "{err}"
    );
    let _ = proxy.task.await;
}

#[tokio::test]
async fn unreachable_proxy_names_the_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let now = OffsetDateTime::now_utc();
    let host_ca = CertAuthority::generate(CaKind::Host, "x", now).unwrap();
    let user_ca = CertAuthority::generate(CaKind::User, "x", now).unwrap();
    let upstream = Upstream::new(
        &format!("127.0.0.1:{port}"),
        &db_identity(&user_ca, &host_ca),
    )
    .unwrap();
    let err = upstream.connect().await.unwrap_err().to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}
