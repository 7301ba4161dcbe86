//! Every audit event: its name, its code, and the fields it carries.

use serde_json::Value;
use time::OffsetDateTime;

/// The fields every event carries, in this order, before its own.
pub const COMMON_FIELDS: [&str; 5] = ["uid", "time", "event", "code", "cluster_name"];

/// One field an event kind carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The JSON key.
    pub name: &'static str,
    /// Whether every event of the kind has it (otherwise: only when it applies).
    pub always: bool,
}

const fn always(name: &'static str) -> Field {
    Field { name, always: true }
}

const fn optional(name: &'static str) -> Field {
    Field {
        name,
        always: false,
    }
}

/// Fields every event of a database session carries (`Session::base_fields` in the agent).
const SESSION: [Field; 10] = [
    always("user"),
    always("sid"),
    always("db_service"),
    always("db_protocol"),
    always("db_uri"),
    always("db_user"),
    // Redis has no database name.
    optional("db_name"),
    always("db_roles"),
    always("server_id"),
    always("addr.remote"),
];

macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $code:literal, [$($field:expr),* $(,)?] $(+ $base:ident)?; )*) => {
        /// The kinds of event: each with its name (`event`), code (`code`) and fields. Names and
        /// codes are Teleport's where Teleport has the event; see `docs/audit-events.md`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $( $(#[$doc])* $variant, )*
        }

        impl EventKind {
            /// Every kind.
            pub const ALL: &'static [EventKind] = &[ $( Self::$variant, )* ];

            /// The `event` field.
            pub fn name(self) -> &'static str {
                match self { $( Self::$variant => $name, )* }
            }

            /// The `code` field.
            pub fn code(self) -> &'static str {
                match self { $( Self::$variant => $code, )* }
            }

            /// `","event":"<name>","code":"<code>"`: what every event of this kind writes
            /// after its time, in one copy (names and codes need no escaping; a test checks).
            fn name_and_code(self) -> &'static str {
                match self {
                    $( Self::$variant => concat!("\",\"event\":\"", $name, "\",\"code\":\"", $code, "\""), )*
                }
            }

            /// The fields this kind carries besides [`COMMON_FIELDS`].
            pub fn fields(self) -> Vec<Field> {
                match self {
                    $( Self::$variant => {
                        #[allow(unused_mut)]
                        let mut v: Vec<Field> = Vec::new();
                        $( v.extend_from_slice(&$base); )?
                        v.extend_from_slice(&[$($field),*]);
                        v
                    } )*
                }
            }
        }
    };
}

event_kinds! {
    /// A successful login.
    UserLogin => "user.login", "T1000I",
        [always("user"), always("method"), always("success"), always("mfa_verified"), always("addr.remote")];
    /// A refused login.
    UserLoginFailure => "user.login", "T1000W",
        [always("user"), always("method"), always("success"), always("error"), always("addr.remote")];
    /// A user was created (or creating one failed).
    UserCreate => "user.create", "T1002I",
        [always("user"), always("name"), always("roles"), optional("traits"), always("password_set"), always("success"), optional("error")];
    /// A user's roles or traits changed, or the user was reset (`reset: true`).
    UserUpdate => "user.update", "T1003I",
        [always("user"), always("name"), optional("roles"), optional("traits"), optional("reset"), always("success"), optional("error")];
    /// A user set their password by accepting an invite.
    UserPasswordChange => "user.password_change", "T1005I",
        [always("user"), always("totp_enrolled"), always("success")];
    /// A user was deleted.
    UserDelete => "user.delete", "T1004I",
        [always("user"), always("name"), always("success"), optional("error")];
    /// A role was created.
    RoleCreated => "role.created", "T9000I",
        [always("user"), always("name"), always("success"), optional("error")];
    /// A role was replaced (`--force`).
    RoleUpdated => "role.updated", "T9002I",
        [always("user"), always("name"), always("success"), optional("error")];
    /// A role was deleted.
    RoleDeleted => "role.deleted", "T9001I",
        [always("user"), always("name"), always("success"), optional("error")];
    /// A join token was created (identified by its id, never its secret).
    JoinTokenCreate => "join_token.create", "TJT00I",
        [always("user"), optional("name"), always("roles"), always("join_method"), optional("expires"), optional("single_use"), always("success"), optional("error")];
    /// A join token was deleted (Portcullis; Teleport has no such event).
    JoinTokenDelete => "join_token.delete", "TJT01I",
        [always("user"), always("name"), always("success"), optional("error")];
    /// A user was locked.
    LockCreated => "lock.created", "TLK00I",
        [always("user"), optional("name"), always("target"), optional("message"), optional("expires"), always("success"), optional("error")];
    /// A lock was removed.
    LockDeleted => "lock.deleted", "TLK01I",
        [always("user"), always("name"), always("success"), optional("error")];
    /// A certificate was issued.
    CertCreate => "cert.create", "TC000I",
        [always("user"), always("cert_type"), always("identity")];
    /// A service joined the cluster with a token.
    InstanceJoin => "instance.join", "TJ002I",
        [always("user"), always("node_name"), always("role"), always("method"), always("host_id"), always("token_id"), always("success"), always("addr.remote")];
    /// A service's attempt to join was refused.
    InstanceJoinFailure => "instance.join", "TJ002E",
        [optional("node_name"), optional("role"), always("method"), always("success"), always("error"), always("addr.remote")];
    /// A database agent's tunnel to the proxy is up (Portcullis).
    AgentConnect => "agent.connect", "TPC00I",
        [always("user"), always("server_id"), always("node_name"), always("addr.remote")];
    /// A database agent's tunnel to the proxy ended (Portcullis).
    AgentDisconnect => "agent.disconnect", "TPC01I",
        [always("user"), always("server_id"), always("node_name"), always("addr.remote"), always("reason")];
    /// Events were lost before they reached the audit log (Portcullis).
    AuditGap => "audit.gap", "TPC02W",
        [always("lost"), always("reason"), always("server_id")];
    /// A user was refused an action by their roles (Portcullis).
    AccessDenied => "access.denied", "TPC03W",
        [always("user"), always("success"), always("error"), optional("resource"), optional("verb"), optional("db_service"), optional("db_user"), optional("db_name")];
    /// A database session started.
    DbSessionStart => "db.session.start", "TDB00I", [always("success")] + SESSION;
    /// A database session was refused.
    DbSessionStartFailure => "db.session.start", "TDB00W",
        [optional("user"), always("sid"), optional("db_service"), always("db_protocol"), optional("db_uri"), optional("db_user"), optional("db_name"), optional("db_roles"), optional("server_id"), always("addr.remote"), always("success"), always("error")];
    /// A database session ended; `reason` (the message the client was sent) when Portcullis
    /// ended it: certificate expired, user locked, idle timeout.
    DbSessionEnd => "db.session.end", "TDB01I", [optional("reason"), optional("end_reason")] + SESSION;
    /// A query sent as text: PostgreSQL's simple protocol, MySQL's COM_QUERY, a Redis command.
    /// (A prepared statement's execution is its protocol's `statements.execute` event, which
    /// carries the statement's `db_query` too.)
    DbSessionQuery => "db.session.query", "TDB02I",
        [always("db_query"), always("db_query_parameters"), optional("db_query_length")] + SESSION;
    /// A query that failed.
    DbSessionQueryFailed => "db.session.query.failed", "TDB02W",
        [always("db_query"), always("db_query_parameters"), optional("db_query_length"), always("error")] + SESSION;
    /// PostgreSQL Parse.
    PostgresParse => "db.session.postgres.statements.parse", "TPG00I",
        [always("statement_name"), always("query")] + SESSION;
    /// PostgreSQL Bind.
    PostgresBind => "db.session.postgres.statements.bind", "TPG01I",
        [always("statement_name"), always("portal_name"), always("parameters")] + SESSION;
    /// PostgreSQL Execute.
    PostgresExecute => "db.session.postgres.statements.execute", "TPG02I",
        [always("portal_name"), optional("statement_name"), optional("db_query"), optional("db_query_parameters"), optional("db_query_length")] + SESSION;
    /// PostgreSQL Close.
    PostgresClose => "db.session.postgres.statements.close", "TPG03I",
        [optional("statement_name"), optional("portal_name")] + SESSION;
    /// PostgreSQL FunctionCall.
    PostgresFunctionCall => "db.session.postgres.function", "TPG04I",
        [always("function_oid"), always("function_args")] + SESSION;
    /// MySQL COM_STMT_PREPARE.
    MysqlStatementPrepare => "db.session.mysql.statements.prepare", "TMY00I",
        [always("query")] + SESSION;
    /// MySQL COM_STMT_EXECUTE, with the decoded parameters and the statement's text.
    MysqlStatementExecute => "db.session.mysql.statements.execute", "TMY01I",
        [always("statement_id"), always("parameters"), optional("db_query"), optional("db_query_length")] + SESSION;
    /// MySQL COM_STMT_SEND_LONG_DATA.
    MysqlStatementSendLongData => "db.session.mysql.statements.send_long_data", "TMY02I",
        [always("statement_id"), always("parameter_id"), always("data_size")] + SESSION;
    /// MySQL COM_STMT_CLOSE.
    MysqlStatementClose => "db.session.mysql.statements.close", "TMY03I",
        [always("statement_id")] + SESSION;
    /// MySQL COM_STMT_RESET.
    MysqlStatementReset => "db.session.mysql.statements.reset", "TMY04I",
        [always("statement_id")] + SESSION;
    /// MySQL COM_STMT_FETCH.
    MysqlStatementFetch => "db.session.mysql.statements.fetch", "TMY05I",
        [always("statement_id"), always("rows_count")] + SESSION;
    /// MySQL COM_INIT_DB (the client's `USE`).
    MysqlInitDb => "db.session.mysql.init_db", "TMY07I",
        [always("schema_name")] + SESSION;
    /// MySQL COM_CREATE_DB.
    MysqlCreateDb => "db.session.mysql.create_db", "TMY08I",
        [always("schema_name")] + SESSION;
    /// MySQL COM_DROP_DB.
    MysqlDropDb => "db.session.mysql.drop_db", "TMY09I",
        [always("schema_name")] + SESSION;
    /// MySQL COM_SHUTDOWN.
    MysqlShutDown => "db.session.mysql.shut_down", "TMY10I", [] + SESSION;
    /// MySQL COM_PROCESS_KILL.
    MysqlProcessKill => "db.session.mysql.process_kill", "TMY11I",
        [always("process_id")] + SESSION;
    /// MySQL COM_DEBUG.
    MysqlDebug => "db.session.mysql.debug", "TMY12I", [] + SESSION;
    /// MySQL COM_REFRESH.
    MysqlRefresh => "db.session.mysql.refresh", "TMY13I", [] + SESSION;
}

impl EventKind {
    /// The kind with this name and code.
    pub fn from_name_code(name: &str, code: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.name() == name && k.code() == code)
    }
}

/// Why Portcullis ended a database session, as a stable token for the agent to record next to
/// the message in `db.session.end`'s `reason` (not yet written: see `docs/audit-events.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEndReason {
    /// The user's certificate expired (roles with `disconnect_expired_cert`).
    CertExpired,
    /// An administrator locked the user.
    Locked,
    /// No client traffic for `client_idle_timeout`.
    IdleTimeout,
}

impl SessionEndReason {
    /// Every reason.
    pub const ALL: [SessionEndReason; 3] = [Self::CertExpired, Self::Locked, Self::IdleTimeout];

    /// The stable token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CertExpired => "cert_expired",
            Self::Locked => "locked",
            Self::IdleTimeout => "idle_timeout",
        }
    }
}

/// One event, built directly as JSON text: `uid`, `time`, `event`, `code` and `cluster_name`,
/// then the fields its kind carries.
///
/// Events are written on the hot path of every query, so they are never a tree of values:
/// fields are appended as JSON text (session-wide fields can be appended as one pre-serialised
/// fragment, see [`Event::with_fragment`]), and the finished line is shipped and stored as is.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    buf: Vec<u8>,
    uid: uuid::Uuid,
    kind: EventKind,
}

/// Appends `,"key":<value as JSON>` to `buf`.
fn push_field(buf: &mut Vec<u8>, key: &str, value: &impl serde::Serialize) {
    push_field_key(buf, key);
    push_json(buf, value);
}

fn push_json<T: serde::Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) {
    let mark = buf.len();
    // Serialising plain data cannot fail; fall back to null if it ever did.
    if serde_json::to_writer(&mut *buf, value).is_err() {
        buf.truncate(mark);
        buf.extend_from_slice(b"null");
    }
}

/// Appends `,"key":`. Our keys are field names from this crate and its callers, which need
/// no escaping: checked without branching per byte and copied whole (this runs for every
/// field of every event); anything else goes through serde_json. Inlined, so that for a key
/// written as a literal (all of them on the hot path) the check folds away at compile time.
#[inline(always)]
fn push_field_key(buf: &mut Vec<u8>, key: &str) {
    let k = key.as_bytes();
    let needs_escape = k.iter().fold(false, |bad, &b| {
        bad | !(0x20..0x7f).contains(&b) | (b == b'"') | (b == b'\\')
    });
    if needs_escape {
        buf.push(b',');
        push_json(buf, key);
        buf.push(b':');
    } else {
        buf.reserve(k.len() + 4);
        buf.extend_from_slice(b",\"");
        buf.extend_from_slice(k);
        buf.extend_from_slice(b"\":");
    }
}

/// An event's `time`, formatted once: the events one read of client messages produces (a
/// Bind and its Execute) happened at the same instant and share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    text: [u8; STAMP_MAX],
    len: usize,
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const STAMP_MAX: usize = 30;
/// `YYYY-MM-DDTHH:MM:SS`.
const SECOND_LEN: usize = 19;

impl Stamp {
    /// The current time.
    pub fn now() -> Self {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Self::unix(d.as_secs(), d.subsec_nanos()),
            Err(_) => Self::at(OffsetDateTime::now_utc()),
        }
    }

    /// `secs.nanos` after the Unix epoch. Every client message takes a stamp, and most fall
    /// in the same second as the thread's previous one: its date and time of day are
    /// formatted once per second and thread, and only the fraction each time.
    fn unix(secs: u64, nanos: u32) -> Self {
        thread_local! {
            static SECOND: std::cell::Cell<Option<(u64, [u8; SECOND_LEN])>> =
                const { std::cell::Cell::new(None) };
        }
        let prefix = match SECOND.with(std::cell::Cell::get) {
            Some((s, prefix)) if s == secs => prefix,
            _ => {
                let Some(t) = i64::try_from(secs)
                    .ok()
                    .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                else {
                    return Self::at(OffsetDateTime::now_utc());
                };
                let whole = Self::at(t);
                let mut prefix = [0u8; SECOND_LEN];
                prefix.copy_from_slice(
                    whole
                        .as_bytes()
                        .get(..SECOND_LEN)
                        .unwrap_or(&[0; SECOND_LEN]),
                );
                SECOND.with(|c| c.set(Some((secs, prefix))));
                prefix
            }
        };
        // `prefix` `.nnnnnnnnn` (trailing zeros dropped, none at all for a whole second) `Z`,
        // written into place: this runs for every client message.
        let mut text = [0u8; STAMP_MAX];
        let (head, fraction) = text.split_at_mut(SECOND_LEN);
        head.copy_from_slice(&prefix);
        let mut len = SECOND_LEN;
        if nanos > 0 {
            let (mut n, mut digits) = (nanos, 9);
            while n % 10 == 0 {
                n /= 10;
                digits -= 1;
            }
            if let Some((dot, rest)) = fraction.split_first_mut() {
                *dot = b'.';
                for d in rest.iter_mut().take(digits).rev() {
                    *d = b'0' + (n % 10) as u8;
                    n /= 10;
                }
            }
            len += 1 + digits;
        }
        if let Some(z) = text.get_mut(len) {
            *z = b'Z';
            len += 1;
        }
        Self { text, len }
    }

    /// `t`, in UTC (formatted in place: one per client message, so no allocation).
    pub fn at(t: OffsetDateTime) -> Self {
        let mut stamp = StampWriter(Self {
            text: [0u8; STAMP_MAX],
            len: 0,
        });
        push_rfc3339(&mut stamp, t);
        stamp.0
    }

    fn as_bytes(&self) -> &[u8] {
        self.text.get(..self.len).unwrap_or_default()
    }
}

/// Fills a [`Stamp`]; bytes past its end are dropped (none are: RFC 3339 fits).
struct StampWriter(Stamp);

impl Extend<u8> for StampWriter {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
        for b in bytes {
            if let Some(slot) = self.0.text.get_mut(self.0.len) {
                *slot = b;
                self.0.len += 1;
            }
        }
    }
}

/// Formats `t` as RFC 3339 in UTC with the fraction's trailing zeros dropped (none when it
/// is zero) — what the `time` crate's `Rfc3339` writes for a UTC time, without its general
/// formatting machinery, since every event needs one.
fn push_rfc3339(buf: &mut impl Extend<u8>, t: OffsetDateTime) {
    let t = t.to_offset(time::UtcOffset::UTC);
    let (hour, minute, second, nanos) = t.to_hms_nano();
    let year = u32::try_from(t.year()).unwrap_or(0).min(9999);
    push_digits(buf, year, 4);
    buf.extend([b'-']);
    push_digits(buf, u32::from(u8::from(t.month())), 2);
    buf.extend([b'-']);
    push_digits(buf, u32::from(t.day()), 2);
    buf.extend([b'T']);
    push_digits(buf, u32::from(hour), 2);
    buf.extend([b':']);
    push_digits(buf, u32::from(minute), 2);
    buf.extend([b':']);
    push_digits(buf, u32::from(second), 2);
    push_fraction(buf, nanos);
    buf.extend([b'Z']);
}

/// `.nnn…` without trailing zeros, or nothing when `nanos` is zero.
fn push_fraction(buf: &mut impl Extend<u8>, nanos: u32) {
    if nanos > 0 {
        let mut n = nanos;
        let mut width = 9;
        while n % 10 == 0 {
            n /= 10;
            width -= 1;
        }
        buf.extend([b'.']);
        push_digits(buf, n, width);
    }
}

/// Appends the last `width` decimal digits of `n`, zero-padded.
fn push_digits(buf: &mut impl Extend<u8>, n: u32, width: u32) {
    let mut div = 10u32.pow(width.saturating_sub(1));
    while div > 0 {
        buf.extend([b'0' + ((n / div) % 10) as u8]);
        div /= 10;
    }
}

/// A pre-serialised run of fields (`,"a":1,"b":"x"`), for fields every event of a session
/// shares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fragment(Vec<u8>);

impl Fragment {
    /// An empty fragment.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds a field.
    pub fn with(mut self, key: &str, value: impl serde::Serialize) -> Self {
        push_field(&mut self.0, key, &value);
        self
    }

    /// Appends another fragment's fields.
    pub fn extend(&mut self, other: &Fragment) {
        self.0.extend_from_slice(&other.0);
    }

    /// `cluster_name` followed by `fields`: the head [`Event::stamped`] takes, so that its
    /// events read like [`Event::new`]'s.
    pub fn cluster(cluster: &str, fields: &Fragment) -> Self {
        let mut f = Self::new().with("cluster_name", cluster);
        f.extend(fields);
        f
    }
}

/// A value serialised once, for several events (a statement's bound parameters go into its
/// `statements.bind` event and into every `db.session.query` that executes it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Json(Vec<u8>);

impl Json {
    /// `value` as JSON text.
    pub fn of(value: &impl serde::Serialize) -> Self {
        let mut text = Vec::new();
        push_json(&mut text, value);
        Self(text)
    }

    /// Replaces the value with an array of strings: what [`Json::of`] writes for them, sized
    /// once and without serde, reusing this value's memory (a Bind's parameters, for every
    /// prepared execution: a portal bound again and again keeps one buffer for them).
    pub fn set_strings<S: AsRef<str>>(&mut self, items: &[S]) {
        let size = items.iter().map(|s| s.as_ref().len() + 3).sum::<usize>() + 2;
        let text = &mut self.0;
        text.clear();
        text.reserve(size);
        text.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            push_str(text, item.as_ref());
        }
        text.push(b']');
    }
}

/// Random v4 uids drawn at once per thread: one fill from the thread's generator per
/// [`UID_POOL`] uids, rather than a thread-local lookup and reference count per event.
struct UidPool {
    random: [[u8; 16]; UID_POOL],
    next: usize,
}

/// Uids drawn per refill.
const UID_POOL: usize = 32;

thread_local! {
    static UIDS: std::cell::RefCell<UidPool> = const {
        std::cell::RefCell::new(UidPool { random: [[0; 16]; UID_POOL], next: UID_POOL })
    };
}

/// A new event's `uid`: a random (version 4) uuid from the thread's cryptographically secure
/// generator, as `Uuid::new_v4` makes them — unguessable, so no one can claim another
/// agent's next event id — drawn [`UID_POOL`] at a time (it runs for every event).
fn new_uid() -> uuid::Uuid {
    UIDS.with(|pool| {
        let Ok(mut pool) = pool.try_borrow_mut() else {
            return uuid::Uuid::new_v4();
        };
        if pool.next >= UID_POOL {
            use rand::RngCore as _;
            let mut bytes = [0u8; 16 * UID_POOL];
            rand::thread_rng().fill_bytes(&mut bytes);
            for (slot, chunk) in pool.random.iter_mut().zip(bytes.chunks_exact(16)) {
                slot.copy_from_slice(chunk);
            }
            pool.next = 0;
        }
        let at = pool.next;
        pool.next += 1;
        let random = pool.random.get(at).copied().unwrap_or_default();
        // The random bytes are used once: clear them so no later read of this memory sees
        // an id before its event exists.
        if let Some(slot) = pool.random.get_mut(at) {
            *slot = [0; 16];
        }
        uuid::Builder::from_random_bytes(random).into_uuid()
    })
}

/// Appends an event's opening: `{"uid":…,"time":…,"event":…,"code":…` (no closing brace).
fn push_head(buf: &mut Vec<u8>, uid: uuid::Uuid, kind: EventKind, stamp: &Stamp) {
    // `{"uid":"` + 36 + `","time":"`, built on the stack and copied once.
    let mut start = [0u8; 8 + 36 + 10];
    let (open, rest) = start.split_at_mut(8);
    let (hex, time) = rest.split_at_mut(36);
    open.copy_from_slice(b"{\"uid\":\"");
    hex.copy_from_slice(&uuid_text(uid));
    time.copy_from_slice(b"\",\"time\":\"");
    let tail = kind.name_and_code();
    buf.reserve(start.len() + stamp.len + tail.len());
    buf.extend_from_slice(&start);
    buf.extend_from_slice(stamp.as_bytes());
    buf.extend_from_slice(tail.as_bytes());
}

/// A uuid's hyphenated lowercase text (`8-4-4-4-12` hex digits), eight digits per step with
/// integer arithmetic instead of a table lookup per digit: it runs for every event.
fn uuid_text(uid: uuid::Uuid) -> [u8; 36] {
    let v = uid.as_u128();
    let mut hex = [0u8; 32];
    for (i, chunk) in hex.chunks_exact_mut(8).enumerate() {
        // Bits 127..96 first.
        let word = (v >> (96 - 32 * i)) as u32;
        chunk.copy_from_slice(&hex8(word).to_be_bytes());
    }
    let mut out = [b'-'; 36];
    for (from, to, len) in [(0, 0, 8), (8, 9, 4), (12, 14, 4), (16, 19, 4), (20, 24, 12)] {
        if let (Some(d), Some(s)) = (out.get_mut(to..to + len), hex.get(from..from + len)) {
            d.copy_from_slice(s);
        }
    }
    out
}

/// The eight lowercase hex digits of `x`, most significant first in the returned word's
/// big-endian bytes.
fn hex8(x: u32) -> u64 {
    // Spread the nibbles into bytes: 0x12345678 → 0x0102030405060708.
    let mut v = u64::from(x);
    v = ((v & 0xFFFF_0000) << 16) | (v & 0xFFFF);
    v = ((v & 0x0000_FF00_0000_FF00) << 8) | (v & 0x0000_00FF_0000_00FF);
    v = ((v & 0x00F0_00F0_00F0_00F0) << 4) | (v & 0x000F_000F_000F_000F);
    // Bytes holding 10..=15 get 'a' - '0' - 10 = 39 more than '0' + digit.
    let letters = ((v + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    v + 0x3030_3030_3030_3030 + letters * 39
}

impl Event {
    /// A new event of `kind` in `cluster`, with a fresh `uid` and the current time.
    pub fn new(kind: EventKind, cluster: &str) -> Self {
        // Room for the fields callers usually add.
        let mut e = Self::begin(kind, &Stamp::now(), 768);
        push_field(&mut e.buf, "cluster_name", &cluster);
        e
    }

    /// A new event of `kind` with a fresh `uid`, time `stamp`, and `head`'s fields first —
    /// which must start with `cluster_name` (see [`Fragment::cluster`]). For the hot path:
    /// a session serialises its shared fields once and the events of one message share one
    /// clock read.
    pub fn stamped(kind: EventKind, stamp: &Stamp, head: &Fragment) -> Self {
        let mut e = Self::begin(kind, stamp, head.0.len());
        e.buf.extend_from_slice(&head.0);
        e
    }

    /// `uid`, `time`, `event` and `code`, with room for `more` bytes of fields and the usual
    /// few after them.
    fn begin(kind: EventKind, stamp: &Stamp, more: usize) -> Self {
        let uid = new_uid();
        let mut buf = Vec::with_capacity(256 + more);
        push_head(&mut buf, uid, kind, stamp);
        Self { buf, uid, kind }
    }

    /// Adds a field (each key once per event).
    pub fn with(mut self, key: &str, value: impl serde::Serialize) -> Self {
        push_field(&mut self.buf, key, &value);
        self
    }

    /// Adds a field in place (each key once per event).
    pub fn set(&mut self, key: &str, value: impl serde::Serialize) {
        push_field(&mut self.buf, key, &value);
    }

    /// Adds pre-serialised fields.
    pub fn with_fragment(mut self, fragment: &Fragment) -> Self {
        self.buf.extend_from_slice(&fragment.0);
        self
    }

    /// Adds pre-serialised fields in place.
    pub fn add_fragment(&mut self, fragment: &Fragment) {
        self.buf.extend_from_slice(&fragment.0);
    }

    /// Adds a field whose value was serialised before.
    pub fn with_json(mut self, key: &str, value: &Json) -> Self {
        self.set_json(key, value);
        self
    }

    /// Adds a field whose value was serialised before, in place.
    pub fn set_json(&mut self, key: &str, value: &Json) {
        push_field_key(&mut self.buf, key);
        self.buf.extend_from_slice(&value.0);
    }

    /// What kind of event it is (a database's `audit_queries: false` keeps only some kinds).
    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// The unique id.
    pub fn uid(&self) -> uuid::Uuid {
        self.uid
    }

    /// The finished JSON object, one line.
    pub fn into_json(mut self) -> String {
        self.buf.push(b'}');
        // Built from `&str`s and serde_json's output: always UTF-8 (checked, not assumed).
        String::from_utf8(self.buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The finished JSON object as bytes (UTF-8: built from `&str`s and serde_json's
    /// output), without the newline — for the spool, which takes bytes and so needs no second
    /// UTF-8 check.
    pub fn into_line(mut self) -> Vec<u8> {
        self.buf.push(b'}');
        self.buf
    }

    /// As a JSON value (tests and tools; not for the hot path).
    pub fn into_value(self) -> Value {
        serde_json::from_str(&self.into_json()).unwrap_or(Value::Null)
    }
}

/// Finished events as JSON lines, each ending in `\n`, in one buffer: what a client message
/// produced, as the spool stores it.
///
/// On the hot path a session keeps one `Lines`, writes each message's events straight into
/// it ([`Lines::event`]) and hands it to the spool, which copies it in one piece: no
/// allocation per event, nothing joined afterwards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lines {
    buf: Vec<u8>,
    count: usize,
}

impl Lines {
    /// No events.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts an event of `kind` with a fresh `uid`, time `stamp` and `head`'s fields first
    /// (as [`Event::stamped`]); it is finished when the returned writer is dropped.
    pub fn event(&mut self, kind: EventKind, stamp: &Stamp, head: &Fragment) -> LineEvent<'_> {
        push_head(&mut self.buf, new_uid(), kind, stamp);
        self.buf.extend_from_slice(&head.0);
        LineEvent { lines: self }
    }

    /// Appends a finished event.
    pub fn push(&mut self, event: Event) {
        self.push_line(&event.into_line());
    }

    /// Appends one finished JSON object (without a newline).
    pub fn push_line(&mut self, line: &[u8]) {
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        self.count += 1;
    }

    /// Every line, each ending in `\n`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Empties it, keeping the memory for the next message's events — up to
    /// [`Lines::KEEP`]: a session that once sent a megabyte-sized query does not hold a
    /// megabyte for the rest of its life.
    pub fn clear(&mut self) {
        if self.buf.capacity() > Self::KEEP {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        self.count = 0;
    }

    /// Most memory [`Lines::clear`] keeps.
    pub const KEEP: usize = 64 * 1024;

    /// Each event's JSON text, without its newline.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.buf.split(|&b| b == b'\n').take(self.count)
    }
}

impl From<Vec<Event>> for Lines {
    fn from(events: Vec<Event>) -> Self {
        let mut lines = Lines::new();
        for e in events {
            lines.push(e);
        }
        lines
    }
}

/// An event being written into [`Lines`]; dropping it closes the object and ends the line.
#[derive(Debug)]
pub struct LineEvent<'a> {
    lines: &'a mut Lines,
}

impl LineEvent<'_> {
    /// Adds a field (each key once per event).
    pub fn set(&mut self, key: &str, value: impl serde::Serialize) {
        push_field(&mut self.lines.buf, key, &value);
    }

    /// Adds a string field: the same text [`LineEvent::set`] writes for a `&str`, without
    /// going through serde.
    #[inline(always)]
    pub fn set_str(&mut self, key: &str, value: &str) {
        let buf = &mut self.lines.buf;
        push_field_key(buf, key);
        push_str(buf, value);
    }

    /// Adds pre-serialised fields.
    pub fn add_fragment(&mut self, fragment: &Fragment) {
        self.lines.buf.extend_from_slice(&fragment.0);
    }

    /// Adds a field whose value was serialised before.
    #[inline(always)]
    pub fn set_json(&mut self, key: &str, value: &Json) {
        let buf = &mut self.lines.buf;
        push_field_key(buf, key);
        buf.extend_from_slice(&value.0);
    }
}

impl Drop for LineEvent<'_> {
    fn drop(&mut self) {
        self.lines.buf.extend_from_slice(b"}\n");
        self.lines.count += 1;
    }
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it: runs of bytes
/// that need no escape are copied whole.
pub(crate) fn push_str(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    buf.reserve(bytes.len() + 2);
    buf.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        buf.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0x08 => buf.extend_from_slice(b"\\b"),
            0x0c => buf.extend_from_slice(b"\\f"),
            _ => {
                let hex = |n: u8| if n < 10 { b'0' + n } else { b'a' + n - 10 };
                buf.extend_from_slice(b"\\u00");
                buf.push(hex(b >> 4));
                buf.push(hex(b & 0xf));
            }
        }
        start = i + 1;
    }
    buf.extend_from_slice(bytes.get(start..).unwrap_or_default());
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_and_codes_identify_kinds_and_follow_the_style() {
        let mut pairs = HashSet::new();
        let mut codes = HashSet::new();
        for k in EventKind::ALL {
            assert!(
                pairs.insert((k.name(), k.code())),
                "{k:?} repeats a name and code"
            );
            assert!(
                codes.insert(k.code()),
                "{k:?}: code {} used twice",
                k.code()
            );
            assert_eq!(EventKind::from_name_code(k.name(), k.code()), Some(*k));
            let c = k.code();
            assert!(c.starts_with('T') && c.len() >= 5, "{k:?}: code {c}");
            assert!(
                matches!(c.chars().last(), Some('I' | 'W' | 'E')),
                "{k:?}: code {c}"
            );
            assert!(
                k.name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{k:?}: name {}",
                k.name()
            );
        }
        assert_eq!(EventKind::from_name_code("user.login", "T9999I"), None);
    }

    #[test]
    fn fields_are_listed_once_and_never_repeat_the_common_ones() {
        for k in EventKind::ALL {
            let fields = k.fields();
            assert!(!fields.is_empty(), "{k:?} lists no fields");
            let mut seen = HashSet::new();
            for f in &fields {
                assert!(seen.insert(f.name), "{k:?} lists {} twice", f.name);
                assert!(!COMMON_FIELDS.contains(&f.name), "{k:?} lists {}", f.name);
            }
        }
        // Session events carry the session's fields.
        let end: Vec<_> = EventKind::DbSessionEnd
            .fields()
            .into_iter()
            .filter(|f| f.always)
            .map(|f| f.name)
            .collect();
        for f in ["user", "sid", "db_service", "db_user", "server_id"] {
            assert!(end.contains(&f), "db.session.end lacks {f}");
        }
    }

    #[test]
    fn failures_and_admin_changes_say_whether_they_succeeded() {
        use EventKind::*;
        for k in [
            UserLoginFailure,
            UserCreate,
            UserUpdate,
            UserDelete,
            RoleCreated,
            RoleUpdated,
            RoleDeleted,
            JoinTokenCreate,
            JoinTokenDelete,
            LockCreated,
            LockDeleted,
            InstanceJoinFailure,
            AccessDenied,
            DbSessionStartFailure,
        ] {
            let f = k.fields();
            assert!(f.contains(&always("success")), "{k:?}");
            assert!(f.iter().any(|f| f.name == "error"), "{k:?}");
        }
        assert_eq!(
            SessionEndReason::ALL.map(SessionEndReason::as_str),
            ["cert_expired", "locked", "idle_timeout"]
        );
    }

    #[test]
    fn keys_needing_escapes_are_escaped() {
        let v = Event::new(EventKind::DbSessionQuery, "c")
            .with("plain_key.x", 1)
            .with("quo\"te", 2)
            .with("back\\slash", 3)
            .with("ctl\u{1}", 4)
            .with("ünï", 5)
            .into_value();
        assert_eq!(v["plain_key.x"], 1);
        assert_eq!(v["quo\"te"], 2);
        assert_eq!(v["back\\slash"], 3);
        assert_eq!(v["ctl\u{1}"], 4);
        assert_eq!(v["ünï"], 5);
    }

    #[test]
    fn times_are_written_as_the_time_crate_writes_rfc3339() {
        use time::format_description::well_known::Rfc3339;
        let base = time::macros::datetime!(2024-02-29 23:59:59 UTC);
        for nanos in [0, 1, 10, 120_000_000, 123_456_789, 999_999_999, 500] {
            let t = base + time::Duration::nanoseconds(nanos);
            let mut ours = Vec::new();
            push_rfc3339(&mut ours, t);
            assert_eq!(ours, t.format(&Rfc3339).unwrap().as_bytes(), "{nanos} ns");
        }
        let mut ours = Vec::new();
        let offset = time::macros::datetime!(2026-01-01 01:30:00.25 +02:00);
        push_rfc3339(&mut ours, offset);
        assert_eq!(ours, b"2025-12-31T23:30:00.25Z");
    }

    #[test]
    fn builds_valid_json_with_every_common_field() {
        let shared = Fragment::new()
            .with("user", "al\"ice")
            .with("db_roles", vec!["a", "b"]);
        let e = Event::new(EventKind::DbSessionQuery, "c1")
            .with_fragment(&shared)
            .with("db_query", "select '\n' -- \u{0}")
            .with("n", 3);
        let uid = e.uid().to_string();
        let v = e.into_value();
        assert_eq!(v["uid"], uid);
        assert_eq!(v["event"], "db.session.query");
        assert_eq!(v["code"], "TDB02I");
        assert_eq!(v["cluster_name"], "c1");
        assert_eq!(v["user"], "al\"ice");
        assert_eq!(v["db_roles"], serde_json::json!(["a", "b"]));
        assert_eq!(v["db_query"], "select '\n' -- \u{0}");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn a_stamped_event_reads_like_a_new_one() {
        let stamp = Stamp::at(time::macros::datetime!(2026-11-21 20:15:15.070 UTC));
        let fields = Fragment::new().with("user", "alice").with("sid", "s-1");
        let head = Fragment::cluster("c1", &fields);
        let a = Event::stamped(EventKind::DbSessionQuery, &stamp, &head)
            .with("db_query", "select \"x\"\n");
        let b = Event::new(EventKind::DbSessionQuery, "c1")
            .with_fragment(&fields)
            .with("db_query", "select \"x\"\n");
        let (line, other) = (a.into_line(), b.into_json());
        let text = String::from_utf8(line).unwrap();
        // The same fields in the same order; only uid and time differ.
        let strip = |t: &str| t.get(t.find("\"event\"").unwrap()..).unwrap().to_owned();
        assert_eq!(strip(&text), strip(&other));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["time"], "2026-11-21T20:15:15.07Z");
        assert!(text.starts_with("{\"uid\":\""));
        // Events of one message share the stamp but never the uid.
        let c = Event::stamped(EventKind::DbSessionQuery, &stamp, &head).into_value();
        assert_eq!(c["time"], v["time"]);
        assert_ne!(c["uid"], v["uid"]);
    }

    #[test]
    fn stamps_from_the_per_second_cache_match_full_formatting() {
        // Same second (cached), a new second, back again, zero and full fractions, a year
        // boundary, and the epoch itself.
        let cases = [
            (1_795_000_000, 123_456_789),
            (1_795_000_000, 1),
            (1_795_000_000, 0),
            (1_795_000_001, 100_000_000),
            (1_795_000_000, 999_999_999),
            (1_798_761_599, 500),
            (1_798_761_600, 0),
            (0, 7),
            (1_795_000_000, 10),
            (1_795_000_000, 120_000_000),
            (1_795_000_000, 100_000_001),
        ];
        for (secs, nanos) in cases {
            let t = OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(secs) * 1_000_000_000 + i128::from(nanos),
            )
            .unwrap();
            assert_eq!(
                std::str::from_utf8(Stamp::unix(secs, nanos).as_bytes()).unwrap(),
                std::str::from_utf8(Stamp::at(t).as_bytes()).unwrap(),
                "{secs}.{nanos:09}"
            );
        }
        let now = Stamp::now();
        assert!(now.as_bytes().ends_with(b"Z") && now.as_bytes().len() >= 20);
    }

    #[test]
    fn uids_are_written_as_the_uuid_crate_writes_them() {
        let mut ids = vec![uuid::Uuid::nil(), uuid::Uuid::max()];
        ids.extend((0..16).map(|i| uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_u128 << (i * 4))));
        ids.extend((0..10_000).map(|_| uuid::Uuid::new_v4()));
        for id in ids {
            assert_eq!(
                std::str::from_utf8(&uuid_text(id)).unwrap(),
                id.hyphenated().to_string()
            );
        }
    }

    #[test]
    fn pooled_uids_are_random_v4_and_never_repeat_within_or_across_threads() {
        let draw = || {
            (0..10 * UID_POOL + 3)
                .map(|_| new_uid())
                .collect::<Vec<_>>()
        };
        let mut all = draw();
        let others = std::thread::spawn(draw).join().unwrap();
        all.extend(others);
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "a uid repeated");
        for id in &all {
            assert_eq!(id.get_version(), Some(uuid::Version::Random));
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        }
        // Random bits, not a counter: about half of all bits are set.
        let ones: u32 = all.iter().map(|id| id.as_u128().count_ones()).sum();
        let bits = 122 * all.len() as u32;
        assert!(ones > bits * 45 / 100 && ones < bits * 55 / 100 + 6 * all.len() as u32);
    }

    #[test]
    fn string_arrays_are_written_as_serde_json_writes_them() {
        let cases: [&[&str]; 5] = [
            &[],
            &["7384"],
            &["", "NULL", "a\"b\\c"],
            &["line\nbreak\ttab\u{1}", "é ✓ 𝄞"],
            &["\u{7f}", "</script>"],
        ];
        let mut reused = Json::default();
        reused.set_strings(&["a much longer first value than the others"]);
        for items in cases {
            let mut fresh = Json::default();
            fresh.set_strings(items);
            assert_eq!(fresh, Json::of(&items), "{items:?}");
            reused.set_strings(items);
            assert_eq!(reused, Json::of(&items), "{items:?}, reusing a buffer");
        }
    }

    #[test]
    fn each_kind_writes_its_name_and_code_as_json() {
        for &kind in EventKind::ALL {
            let tail = kind.name_and_code();
            assert_eq!(
                tail,
                format!(
                    "\",\"event\":{},\"code\":{}",
                    serde_json::to_string(kind.name()).unwrap(),
                    serde_json::to_string(kind.code()).unwrap()
                )
            );
        }
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_escapes_them() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é\u{2028}\u{fffd}😀 plain \\\" end");
        for s in [
            all.as_str(),
            "",
            "\"",
            "\\",
            "a\u{0}b",
            "\u{7f}",
            "only text",
        ] {
            let mut buf = Vec::new();
            push_str(&mut buf, s);
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }

    #[test]
    fn events_written_as_lines_read_like_events() {
        let stamp = Stamp::now();
        let head = Fragment::cluster("c1", &Fragment::new().with("sid", "s-1"));
        let params = Json::of(&["1", "it's \"x\"\n"]);
        let mut lines = Lines::new();
        {
            let mut e = lines.event(EventKind::PostgresBind, &stamp, &head);
            e.set_str("statement_name", "s\u{1}");
            e.set_str("portal_name", "");
            e.set_json("parameters", &params);
        }
        lines.event(EventKind::PostgresExecute, &stamp, &head);
        lines.push(Event::new(EventKind::UserLogin, "c1").with("user", "alice"));
        let bind = Event::stamped(EventKind::PostgresBind, &stamp, &head)
            .with("statement_name", "s\u{1}")
            .with("portal_name", "")
            .with_json("parameters", &params)
            .into_json();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines.as_bytes().iter().filter(|&&b| b == b'\n').count(), 3);
        let got: Vec<&[u8]> = lines.iter().collect();
        let strip = |t: &[u8]| {
            let t = std::str::from_utf8(t).unwrap();
            t.get(t.find("\"time\"").unwrap()..).unwrap().to_owned()
        };
        // Byte for byte what an Event writes, apart from the uid.
        assert_eq!(strip(got[0]), strip(bind.as_bytes()));
        let uids: HashSet<String> = got
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_slice(l).unwrap();
                v["uid"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(uids.len(), 3, "every event has its own uid");
        lines.clear();
        assert!(lines.is_empty() && lines.as_bytes().is_empty());
        assert_eq!(lines.iter().count(), 0);
        // Small buffers are kept for the next message; a large one is let go.
        lines.push_line(&[b'x'; 100]);
        let small = lines.buf.capacity();
        lines.clear();
        assert_eq!(lines.buf.capacity(), small);
        lines.push_line(&vec![b'x'; Lines::KEEP + 1]);
        lines.clear();
        assert!(
            lines.buf.capacity() <= Lines::KEEP,
            "{}",
            lines.buf.capacity()
        );
    }
}
