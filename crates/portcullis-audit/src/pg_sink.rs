//! Events in a PostgreSQL table, so several auth servers can share one log:
//!
//! ```sql
//! portcullis_events(uid uuid primary key, time timestamptz, event text, "user" text,
//!                   sid text, db_service text, data jsonb)
//! ```
//!
//! with indexes on time, user, event and sid. Inserts are `ON CONFLICT (uid) DO NOTHING`, so
//! a batch re-sent (a retry, or the same event reaching two auth servers) is stored once.
//!
//! The connection string is a `postgres://user[:password]@host[:port]/db?…` URL. TLS uses
//! rustls and is on by default: `sslmode=verify-full` (the default) verifies the server
//! against `sslrootcert` (required) and its host name, and presents `sslcert`/`sslkey` when
//! given (client-certificate login). `sslmode=disable` is plaintext, for loopback only.
//! `require`/`verify-ca`/`prefer` are refused rather than silently weaker.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;

use crate::search::{format_time, Head, Order, Page, Position, Query};
use crate::sink::{Sink, SinkError, SinkResult};

/// The table's name.
pub const TABLE: &str = "portcullis_events";

const SCHEMA: &str = r#"
BEGIN;
SELECT pg_advisory_xact_lock(7262170001);
CREATE TABLE IF NOT EXISTS portcullis_events (
    uid uuid PRIMARY KEY,
    time timestamptz NOT NULL,
    event text NOT NULL,
    "user" text,
    sid text,
    db_service text,
    data jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS portcullis_events_time ON portcullis_events (time, uid);
CREATE INDEX IF NOT EXISTS portcullis_events_user ON portcullis_events ("user", time);
CREATE INDEX IF NOT EXISTS portcullis_events_event ON portcullis_events (event, time);
CREATE INDEX IF NOT EXISTS portcullis_events_sid ON portcullis_events (sid, time);
COMMIT;
"#;

const INSERT: &str = r#"INSERT INTO portcullis_events (uid, time, event, "user", sid, db_service, data)
SELECT u::uuid, t::timestamptz, e, us, s, db, d::jsonb
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
    AS x(u, t, e, us, s, db, d)
ON CONFLICT (uid) DO NOTHING"#;

/// How TLS is used.
#[derive(Clone)]
enum Tls {
    Disable,
    VerifyFull(Arc<rustls::ClientConfig>),
}

/// The PostgreSQL sink.
pub struct PgSink {
    config: tokio_postgres::Config,
    tls: Tls,
    describe: String,
    client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
}

impl std::fmt::Debug for PgSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSink")
            .field("target", &self.describe)
            .finish()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b.get(i), b.get(i + 1..i + 3)) {
            (Some(b'%'), Some(hex)) => match std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(v) => {
                    out.push(v);
                    i += 3;
                }
                None => {
                    out.push(b'%');
                    i += 1;
                }
            },
            (Some(c), _) => {
                out.push(*c);
                i += 1;
            }
            (None, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn tls_config(
    url: &str,
    root: Option<&str>,
    cert: Option<&str>,
    key: Option<&str>,
) -> SinkResult<rustls::ClientConfig> {
    let ctx = |what: &str, path: &str| format!("audit sink {url}: {what} {path}");
    let root = root.ok_or_else(|| {
        SinkError(format!(
            "audit sink {url}: sslmode=verify-full needs sslrootcert=/path/ca.crt \
             (or sslmode=disable on loopback)"
        ))
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(root).map_err(|e| SinkError::new(&ctx("reading", root), e))?
    {
        let c = c.map_err(|e| SinkError::new(&ctx("reading", root), e))?;
        roots
            .add(c)
            .map_err(|e| SinkError::new(&ctx("CA certificate", root), e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SinkError::new("TLS", e))?
        .with_root_certificates(roots);
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| SinkError::new(&ctx("reading", cert), e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SinkError::new(&ctx("reading", cert), e))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| SinkError::new(&ctx("reading", key), e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| SinkError::new(&ctx("client certificate", cert), e))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(SinkError(format!(
            "audit sink {url}: sslcert and sslkey go together"
        ))),
    }
}

impl PgSink {
    /// Parses the connection string; connects on first use (so auth starts even while the
    /// database is down, and agents keep their events until it is back).
    pub fn new(url: &str) -> SinkResult<Self> {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let (mut mode, mut root, mut cert, mut key) = (None, None, None, None);
        let mut rest = Vec::new();
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let v = percent_decode(v);
            match k {
                "sslmode" => mode = Some(v),
                "sslrootcert" => root = Some(v),
                "sslcert" => cert = Some(v),
                "sslkey" => key = Some(v),
                _ => rest.push(kv),
            }
        }
        let mut pg_url = base.to_owned();
        let mode = mode.unwrap_or_else(|| "verify-full".into());
        let redacted = base
            .split_once('@')
            .map(|(_, host)| format!("postgres://{host}"))
            .unwrap_or_else(|| base.to_owned());
        let describe = format!("{redacted} (sslmode={mode})");
        let tls = match mode.as_str() {
            "disable" => {
                rest.push("sslmode=disable");
                Tls::Disable
            }
            "verify-full" => {
                rest.push("sslmode=require");
                Tls::VerifyFull(Arc::new(tls_config(
                    &redacted,
                    root.as_deref(),
                    cert.as_deref(),
                    key.as_deref(),
                )?))
            }
            other => {
                return Err(SinkError(format!(
                    "audit sink {redacted}: sslmode={other} is not supported; use \
                     verify-full (with sslrootcert) or disable (loopback only)"
                )))
            }
        };
        pg_url.push('?');
        pg_url.push_str(&rest.join("&"));
        let mut config = tokio_postgres::Config::from_str(&pg_url)
            .map_err(|e| SinkError::new(&format!("audit sink {redacted}"), e))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("portcullis-auth");
        Ok(Self {
            config,
            tls,
            describe,
            client: tokio::sync::Mutex::new(None),
        })
    }

    async fn connect(&self) -> SinkResult<tokio_postgres::Client> {
        let ctx = format!("connecting to {}", self.describe);
        let client = match &self.tls {
            Tls::Disable => {
                let (client, conn) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| pg_err(&ctx, &e))?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::warn!(error = %e, "audit database connection ended");
                    }
                });
                client
            }
            Tls::VerifyFull(cfg) => {
                let (client, conn) = self
                    .config
                    .connect(MakeRustls(Arc::clone(cfg)))
                    .await
                    .map_err(|e| pg_err(&ctx, &e))?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::warn!(error = %e, "audit database connection ended");
                    }
                });
                client
            }
        };
        client
            .batch_execute(SCHEMA)
            .await
            .map_err(|e| pg_err(&format!("creating {TABLE}"), &e))?;
        Ok(client)
    }

    /// Runs `f` with a live client, reconnecting once if the connection was lost.
    async fn with_client<T>(
        &self,
        f: impl for<'c> Fn(
            &'c tokio_postgres::Client,
        ) -> Pin<
            Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + Send + 'c>,
        >,
    ) -> SinkResult<T> {
        let mut guard = self.client.lock().await;
        for attempt in 0..2 {
            if guard.as_ref().map(|c| c.is_closed()).unwrap_or(true) {
                *guard = Some(self.connect().await?);
            }
            let Some(client) = guard.as_ref() else {
                continue;
            };
            match f(client).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_closed() && attempt == 0 => {
                    *guard = None;
                }
                Err(e) => {
                    if e.is_closed() {
                        *guard = None;
                    }
                    return Err(pg_err(&self.describe, &e));
                }
            }
        }
        Err(SinkError(format!("{}: connection lost", self.describe)))
    }
}

/// A PostgreSQL error with the server's message (tokio-postgres prints only "db error").
fn pg_err(ctx: &str, e: &tokio_postgres::Error) -> SinkError {
    match e.as_db_error() {
        Some(db) => SinkError(format!("{ctx}: {}: {}", db.severity(), db.message())),
        None => match std::error::Error::source(e) {
            Some(src) => SinkError(format!("{ctx}: {e}: {src}")),
            None => SinkError::new(ctx, e),
        },
    }
}

/// The uuid stored for an event's uid: the uid itself, or (for non-UUID uids) a stable
/// hash of it, as auth deduplicates.
pub fn stored_uid(uid: &str) -> uuid::Uuid {
    match uuid::Uuid::parse_str(uid) {
        Ok(u) => u,
        Err(_) => {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            uid.hash(&mut h);
            uuid::Uuid::from_u128(u128::from(h.finish()) | (1u128 << 127))
        }
    }
}

/// `line` (a JSON object) with the escapes PostgreSQL's jsonb refuses — `\u0000` and
/// surrogates that are not a high-low pair — spelled out as text (`\\u0000`: a backslash
/// and `u0000`), so one odd query text cannot make every batch of its round fail.
pub fn jsonb_safe(line: &str) -> std::borrow::Cow<'_, str> {
    fn hex4(b: Option<&[u8]>) -> Option<u32> {
        let s = std::str::from_utf8(b?).ok()?;
        u32::from_str_radix(s, 16).ok()
    }
    let bytes = line.as_bytes();
    if !bytes.contains(&b'\\') {
        return std::borrow::Cow::Borrowed(line);
    }
    let (mut out, mut copied, mut i, mut changed) = (String::new(), 0, 0, false);
    while i < bytes.len() {
        if bytes.get(i) != Some(&b'\\') {
            i += 1;
            continue;
        }
        // An escape; in JSON text a backslash appears nowhere else.
        if bytes.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        let refused = match hex4(bytes.get(i + 2..i + 6)) {
            Some(0) => true,
            Some(0xD800..=0xDBFF) => {
                let low = (bytes.get(i + 6..i + 8) == Some(b"\\u".as_slice()))
                    .then(|| hex4(bytes.get(i + 8..i + 12)))
                    .flatten();
                if matches!(low, Some(0xDC00..=0xDFFF)) {
                    i += 12;
                    continue;
                }
                true
            }
            Some(0xDC00..=0xDFFF) => true,
            _ => false,
        };
        if refused {
            out.push_str(line.get(copied..i).unwrap_or_default());
            out.push_str("\\\\");
            copied = i + 1;
            changed = true;
        }
        i += 6;
    }
    if !changed {
        return std::borrow::Cow::Borrowed(line);
    }
    out.push_str(line.get(copied..).unwrap_or_default());
    std::borrow::Cow::Owned(out)
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

#[async_trait::async_trait]
impl Sink for PgSink {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn write_batch(&self, lines: Arc<Vec<u8>>) -> SinkResult<()> {
        let lines: Vec<&str> = lines
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| match std::str::from_utf8(l) {
                Ok(l) => Some(l),
                Err(_) => {
                    tracing::warn!("audit: not storing a line that is not UTF-8");
                    None
                }
            })
            .collect();
        let n = lines.len();
        let (mut u, mut t, mut e, mut us, mut s, mut db, mut d) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for &line in &lines {
            let Some((head, pos)) = Head::parse(line) else {
                tracing::warn!("audit: not storing a line without uid, time and event");
                continue;
            };
            u.push(stored_uid(&head.uid).to_string());
            t.push(format_time(pos.time()));
            e.push(head.event.to_string());
            us.push(head.user.map(|v| v.to_string()));
            s.push(head.sid.map(|v| v.to_string()));
            db.push(head.db_service.map(|v| v.to_string()));
            // jsonb refuses \u0000 and unpaired surrogates: store such (rare) events with
            // those escapes spelled out as text.
            d.push(jsonb_safe(line).into_owned());
        }
        if u.is_empty() {
            return Ok(());
        }
        let params: Arc<Params> = Arc::new(vec![
            Box::new(u),
            Box::new(t),
            Box::new(e),
            Box::new(us),
            Box::new(s),
            Box::new(db),
            Box::new(d),
        ]);
        self.with_client(move |c| {
            let params = Arc::clone(&params);
            Box::pin(async move {
                let refs: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                c.execute(INSERT, &refs).await
            })
        })
        .await
        .map(drop)
    }

    async fn search(&self, query: &Query) -> SinkResult<Page> {
        let limit = query.page_size();
        let mut sql = String::from(
            "SELECT uid::text, floor(extract(epoch from time) * 1000000)::int8, data::text \
             FROM portcullis_events WHERE true",
        );
        let mut params: Params = Vec::new();
        let mut add = |sql: &mut String, clause: &str, p: Box<dyn ToSql + Sync + Send>| {
            params.push(p);
            sql.push_str(&clause.replace("$?", &format!("${}", params.len())));
        };
        if let Some(from) = query.from {
            add(
                &mut sql,
                " AND time >= $?::text::timestamptz",
                Box::new(format_time(from)),
            );
        }
        if let Some(to) = query.to {
            add(
                &mut sql,
                " AND time < $?::text::timestamptz",
                Box::new(format_time(to)),
            );
        }
        if let Some(v) = &query.user {
            add(&mut sql, " AND \"user\" = $?", Box::new(v.clone()));
        }
        if let Some(v) = &query.db {
            add(&mut sql, " AND db_service = $?", Box::new(v.clone()));
        }
        if let Some(v) = &query.sid {
            add(&mut sql, " AND sid = $?", Box::new(v.clone()));
        }
        if let Some(v) = &query.event {
            match v.strip_suffix('*') {
                Some(prefix) => add(
                    &mut sql,
                    " AND left(event, length($?::text)) = $?::text",
                    Box::new(prefix.to_owned()),
                ),
                None => add(&mut sql, " AND event = $?", Box::new(v.clone())),
            }
        }
        if let Some(v) = &query.contains {
            add(
                &mut sql,
                " AND strpos(lower(data::text), lower($?::text)) > 0",
                Box::new(v.clone()),
            );
        }
        if let Some(c) = &query.after {
            let uid = uuid::Uuid::parse_str(&c.uid)
                .map_err(|_| SinkError("cursor: not a cursor from a previous page".into()))?;
            let op = match query.order {
                Order::NewestFirst => "<",
                Order::OldestFirst => ">",
            };
            add(
                &mut sql,
                &format!(" AND (time, uid) {op} ($?::text::timestamptz, "),
                Box::new(format_time(c.time())),
            );
            add(&mut sql, "$?::text::uuid)", Box::new(uid.to_string()));
        }
        let dir = match query.order {
            Order::NewestFirst => "DESC",
            Order::OldestFirst => "ASC",
        };
        add(
            &mut sql,
            &format!(" ORDER BY time {dir}, uid {dir} LIMIT $?"),
            Box::new(limit as i64),
        );
        let params = Arc::new(params);
        let sql = Arc::new(sql);
        let rows = self
            .with_client(move |c| {
                let params = Arc::clone(&params);
                let sql = Arc::clone(&sql);
                Box::pin(async move {
                    let refs: Vec<&(dyn ToSql + Sync)> = params
                        .iter()
                        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                        .collect();
                    c.query(sql.as_str(), &refs).await
                })
            })
            .await?;
        let mut events = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in &rows {
            let uid: String = row
                .try_get(0)
                .map_err(|e| SinkError::new("reading events", e))?;
            let micros: i64 = row
                .try_get(1)
                .map_err(|e| SinkError::new("reading events", e))?;
            let data: String = row
                .try_get(2)
                .map_err(|e| SinkError::new("reading events", e))?;
            events.push(data);
            last = Some(Position { micros, uid });
        }
        let next_cursor = if events.len() >= limit {
            last.map(|p| p.to_cursor())
        } else {
            None
        };
        Ok(Page {
            events,
            next_cursor,
        })
    }
}

/// tokio-postgres TLS over rustls (ring), verifying the server's chain and name.
#[derive(Clone)]
struct MakeRustls(Arc<rustls::ClientConfig>);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls_pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: Arc::clone(&self.0),
            name: ServerName::try_from(domain.to_owned())?,
        })
    }
}

struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(|s| RustlsStream(Box::new(s)))
        })
    }
}

struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_jsonb_refuses_are_spelled_out_and_others_kept() {
        use super::jsonb_safe;
        let same = [
            r#"{"q":"plain"}"#,
            r#"{"q":"a\"b\\c\n\u00e9\u0041"}"#,
            // A surrogate pair (😀) is fine.
            r#"{"q":"\ud83d\ude00"}"#,
            // A backslash followed by the text u0000 is not an escape of NUL.
            r#"{"q":"\\u0000"}"#,
        ];
        for line in same {
            assert!(
                matches!(jsonb_safe(line), std::borrow::Cow::Borrowed(_)),
                "{line}"
            );
        }
        for (line, want) in [
            (r#"{"q":"a\u0000b"}"#, r#"{"q":"a\\u0000b"}"#),
            (r#"{"q":"\\\u0000"}"#, r#"{"q":"\\\\u0000"}"#),
            (r#"{"q":"\ud800x"}"#, r#"{"q":"\\ud800x"}"#),
            (
                r#"{"q":"\udc00\ud800\u0041"}"#,
                r#"{"q":"\\udc00\\ud800\u0041"}"#,
            ),
            (r#"{"q":"\ud83d\u0000"}"#, r#"{"q":"\\ud83d\\u0000"}"#),
        ] {
            let got = jsonb_safe(line);
            assert_eq!(got, want);
            // Still JSON, now with the escapes as text.
            let v: serde_json::Value = serde_json::from_str(&got).unwrap();
            assert!(!v["q"].as_str().unwrap().contains('\0'));
        }
    }

    use super::*;

    #[test]
    fn connection_strings_are_checked_and_redacted() {
        let s =
            PgSink::new("postgres://audit:secret@127.0.0.1:5433/audit?sslmode=disable").unwrap();
        assert!(!s.describe().contains("secret"));
        assert!(s.describe().contains("127.0.0.1:5433/audit"));
        let e = PgSink::new("postgres://a@127.0.0.1/x").unwrap_err();
        assert!(e.to_string().contains("sslrootcert"), "{e}");
        let e = PgSink::new("postgres://a@127.0.0.1/x?sslmode=require").unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        assert_eq!(percent_decode("/a%20b/c"), "/a b/c");
        assert_eq!(stored_uid("x"), stored_uid("x"));
    }
}
