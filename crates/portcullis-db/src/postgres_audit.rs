//! What a PostgreSQL client's messages put in the audit log: a simple Query becomes a
//! `db.session.query`; the extended protocol's Parse, Bind, Execute and Close their
//! `db.session.postgres.statements.*` events, as Teleport writes them, and the Execute event
//! also carries the statement's text (`db_query`) and the bound parameters
//! (`db_query_parameters`), so one event says what ran; a FunctionCall its
//! `db.session.postgres.function`.
//!
//! An Execute used to write a `db.session.query` as well. It no longer does: a SIEM rule
//! written for Teleport sees the same events here as there, and a prepared workload writes two
//! events per execution rather than three (a third less to ship, store and pay a SIEM for).
//!
//! This runs for every message a client sends, before the database sees it, so it is kept
//! cheap: a statement's text is serialised once, when it is parsed, and its parameters once,
//! when they are bound; events are written straight into the session's [`Lines`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use portcullis_audit::{EventKind, Fragment, Json, LineEvent, Lines, Stamp};
use portcullis_wire::postgres::{
    Bind, BindView, Close, Execute, Frame, FunctionCall, Message, Parse, PgString, Query, Target,
};

use crate::query_text::{query_fragment, AuditedQuery};

/// Prepared statements and portals remembered per session for auditing Execute.
pub const MAX_TRACKED: usize = 10_000;

/// What the events of one client message are made with.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The session's shared fields, starting with `cluster_name` ([`Fragment::cluster`]).
    pub head: &'a Fragment,
    /// When the message arrived.
    pub stamp: Stamp,
    /// The longest query text or parameter list stored.
    pub max_query_bytes: usize,
}

impl Context<'_> {
    fn event<'l>(&self, out: &'l mut Lines, kind: EventKind) -> LineEvent<'l> {
        out.event(kind, &self.stamp, self.head)
    }
}

/// One session's audit state: what a later Execute's event needs (the statement's text and
/// the parameters), serialised once when the statement is parsed and bound.
#[derive(Default)]
pub struct ClientAudit {
    /// Prepared statement name → the statement.
    statements: Named<Statement>,
    /// Portal name → what was bound to it.
    portals: Named<Portal>,
}

/// Statements or portals by name, at most [`MAX_TRACKED`] named ones. The unnamed one (`""`:
/// what most drivers bind every portal to, and JDBC its first statements) has a slot of its
/// own, so finding it is a branch rather than a hash and a key comparison through a pointer
/// (the lookups showed up as cache misses under load). Named ones are hashed with foldhash,
/// seeded per process: SipHash took more than the rest of the lookup, and the table is
/// bounded anyway.
pub(crate) struct Named<T> {
    unnamed: Option<T>,
    named: HashMap<String, T, foldhash::fast::RandomState>,
}

impl<T> Default for Named<T> {
    fn default() -> Self {
        Self {
            unnamed: None,
            named: HashMap::default(),
        }
    }
}

impl<T> Named<T> {
    pub(crate) fn get(&self, name: &str) -> Option<&T> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }

    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut T> {
        if name.is_empty() {
            self.unnamed.as_mut()
        } else {
            self.named.get_mut(name)
        }
    }

    /// Stores `value` under `name`, in place of what was there; a new name is dropped once
    /// [`MAX_TRACKED`] are held (its Execute then reports no query text).
    pub(crate) fn put(&mut self, name: &str, value: T) {
        if name.is_empty() {
            self.unnamed = Some(value);
        } else if let Some(slot) = self.named.get_mut(name) {
            *slot = value;
        } else if self.named.len() < MAX_TRACKED {
            self.named.insert(name.to_owned(), value);
        }
    }

    pub(crate) fn remove(&mut self, name: &str) {
        if name.is_empty() {
            self.unnamed = None;
        } else {
            self.named.remove(name);
        }
    }
}

/// A parsed statement.
struct Statement {
    /// Its name, shared with the portals bound to it.
    name: Arc<str>,
    /// Its `db_query` fields.
    query: Arc<Fragment>,
}

/// A bound portal: the statement as it was when bound (PostgreSQL keeps a portal's plan when
/// its statement is closed or replaced) and the parameters.
struct Portal {
    statement: Arc<str>,
    query: Option<Arc<Fragment>>,
    params: Json,
}

fn text(s: &PgString) -> String {
    s.to_string_lossy().into_owned()
}

/// Query text as stored: masked, made UTF-8 and cut to `max` bytes.
pub(crate) fn audited_query(raw: &PgString, max: usize) -> AuditedQuery {
    let lossy = raw.to_string_lossy();
    let invalid_utf8 = matches!(lossy, Cow::Owned(_));
    let masked_text = crate::mask::mask_sql(&lossy);
    let masked = matches!(masked_text, Cow::Owned(_));
    AuditedQuery::new(
        masked_text.into_owned(),
        raw.len(),
        invalid_utf8,
        masked,
        max,
    )
}

/// A parameter or function argument as text: NULL, base64 for binary values, else the text
/// (borrowed when it is valid UTF-8 and short, as most are).
fn param_text(p: Option<&[u8]>, binary: bool) -> Cow<'_, str> {
    match p {
        None => Cow::Borrowed("NULL"),
        Some(b) if binary => crate::query_text::param_text(b, |b| {
            use base64::Engine as _;
            Cow::Owned(format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(b)
            ))
        }),
        Some(b) => crate::query_text::param_text(b, portcullis_wire::utf8_lossy),
    }
}

impl ClientAudit {
    /// No statements or portals yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the events of one client message to `out` (none for messages the audit log
    /// does not record, or that do not decode: the database refuses those).
    pub fn message(&mut self, a: &Context<'_>, frame: &Frame, out: &mut Lines) {
        // Only the messages recorded are decoded (not Describe, Sync or a password); one that
        // does not decode records nothing.
        match frame.tag {
            // The message every prepared execution sends: read in place.
            Bind::TAG => {
                if let Ok(b) = BindView::parse(&frame.body) {
                    self.bind(a, &b, out);
                }
            }
            Query::TAG => {
                let Ok(q) = Query::from_frame(frame) else {
                    return;
                };
                let q = audited_query(&q.sql, a.max_query_bytes);
                let mut e = a.event(out, EventKind::DbSessionQuery);
                query_field(&mut e, "db_query", &q);
                e.set("db_query_parameters", Vec::<String>::new());
            }
            Parse::TAG => {
                let Ok(p) = Parse::from_frame(frame) else {
                    return;
                };
                let name = text(&p.name);
                let query = audited_query(&p.query, a.max_query_bytes);
                {
                    let mut e = a.event(out, EventKind::PostgresParse);
                    e.set_str("statement_name", &name);
                    query_field(&mut e, "query", &query);
                }
                let statement = Statement {
                    name: Arc::from(name.as_str()),
                    query: Arc::new(query_fragment("db_query", &query)),
                };
                self.statements.put(&name, statement);
            }
            Execute::TAG => {
                let Ok(x) = Execute::from_frame(frame) else {
                    return;
                };
                let portal = x.portal.to_string_lossy();
                let bound = self.portals.get(&portal);
                let mut e = a.event(out, EventKind::PostgresExecute);
                e.set_str("portal_name", &portal);
                if let Some(p) = bound {
                    e.set_str("statement_name", &p.statement);
                    if let Some(q) = &p.query {
                        e.add_fragment(q);
                        e.set_json("db_query_parameters", &p.params);
                    }
                }
            }
            Close::TAG => {
                let Ok(c) = Close::from_frame(frame) else {
                    return;
                };
                let name = text(&c.name);
                let mut e = a.event(out, EventKind::PostgresClose);
                match c.target {
                    Target::Statement => {
                        self.statements.remove(&name);
                        e.set_str("statement_name", &name);
                    }
                    Target::Portal => {
                        self.portals.remove(&name);
                        e.set_str("portal_name", &name);
                    }
                }
            }
            FunctionCall::TAG => {
                let Ok(f) = FunctionCall::from_frame(frame) else {
                    return;
                };
                // Capped like a Bind's parameters: a call may carry 65,535 arguments.
                let args = crate::query_text::capped_params(
                    f.args.iter().map(|a| param_text(a.as_deref(), true)),
                    a.max_query_bytes,
                );
                let mut e = a.event(out, EventKind::PostgresFunctionCall);
                e.set("function_oid", f.function_oid);
                e.set("function_args", args);
            }
            _ => {}
        }
    }

    /// A Bind's `statements.bind` event; the portal remembers the statement and the
    /// parameters, serialised once, for the Execute that follows.
    fn bind(&mut self, a: &Context<'_>, b: &BindView<'_>, out: &mut Lines) {
        let name = portcullis_wire::utf8_lossy(b.statement);
        let (statement, query) = match self.statements.get(&name) {
            Some(known) => (Arc::clone(&known.name), Some(Arc::clone(&known.query))),
            None => (Arc::from(&*name), None),
        };
        let portal_name = portcullis_wire::utf8_lossy(b.portal);
        // The buffer of the portal this Bind replaces (drivers bind the same one over and
        // over) takes the new parameters.
        let mut params = self
            .portals
            .get_mut(&portal_name)
            .map(|p| std::mem::take(&mut p.params))
            .unwrap_or_default();
        params.set_strings(&crate::query_text::capped_params(
            b.params()
                .enumerate()
                .map(|(i, p)| param_text(p, b.is_binary(i))),
            a.max_query_bytes,
        ));
        {
            let mut e = a.event(out, EventKind::PostgresBind);
            e.set_str("statement_name", &statement);
            e.set_str("portal_name", &portal_name);
            e.set_json("parameters", &params);
        }
        let bound = Portal {
            statement,
            query,
            params,
        };
        // Pipelined clients bind the same (often unnamed) portal over and over: its entry is
        // reused rather than a key allocated each time.
        self.portals.put(&portal_name, bound);
    }
}

/// [`crate::query_text::query_field`] for an event written into [`Lines`].
fn query_field(e: &mut LineEvent<'_>, key: &str, q: &AuditedQuery) {
    if q.truncated || q.invalid_utf8 || q.masked {
        e.add_fragment(&query_fragment(key, q));
    } else {
        e.set_str(key, &q.text);
    }
}

#[cfg(test)]
#[path = "postgres_audit_tests.rs"]
mod tests;
