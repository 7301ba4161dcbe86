//! The RBAC checker: given a user's [`Role`]s and traits, may they reach this database as this
//! db user and db name, or call this admin API?
//!
//! Auth (when issuing a database certificate and serving the admin API), the proxy and the
//! database agent (again, before dialling the database) all run this same code, so a decision
//! never depends on which service made it. Patterns are compiled once in
//! [`AccessChecker::new`]; every check is then a few string and linear-time regex matches.
//!
//! # Semantics
//!
//! **Deny first.** Every role's `deny` is evaluated before any `allow`, and any match denies:
//! a database whose labels satisfy some role's `deny.db_labels`, *or* a db user matching some
//! role's `deny.db_users`, *or* a db name matching some role's `deny.db_names` is refused —
//! whatever any role allows. The three deny fields are independent of each other.
//!
//! **Allow within one role.** A session is allowed when a *single* role allows the database's
//! labels *and* the db user *and* the db name. Role A allowing `env=dev` as `x` plus role B
//! allowing `env=prod` as `y` does not grant `y` on `env=dev`.
//!
//! **Label selectors.** A selector (`db_labels`) matches a database when *every* key in it is
//! satisfied: the database has that label, with a value matching *any* of the listed values.
//! The key `*` with the value `*` matches every database, including one with no labels. An
//! empty selector matches nothing, so a role without `allow.db_labels` grants no database.
//!
//! **Values** (label values, db users, db names) are patterns matched against the whole string:
//! `*` alone matches anything; a value containing `*` is a glob where `*` matches any sequence
//! (nothing else is special); a value written `^...$` is a regex, always anchored at both ends
//! (so `^a|b$` means "exactly `a` or exactly `b`"); anything else is compared literally, case
//! sensitively. Regexes use the `regex` crate (linear time) with a compiled-size limit.
//!
//! **Templates.** A value may contain one `{{internal.NAME}}` or `{{external.NAME}}` (spaces
//! inside the braces allowed), with literal text around it (`pre-{{internal.x}}`). Both
//! namespaces read the identity's [`Traits`]. The value expands to one pattern per trait value;
//! a missing trait (or one with no values) expands to nothing, and empty trait values are
//! skipped, so a template can only ever grant what the traits name.
//!
//! **Trait values are literal.** Teleport treats an expanded value as a pattern, so a trait
//! value `*` (or `^.*$`) becomes a wildcard. Portcullis does not: the text the role author wrote
//! around the template keeps its meaning (a `*` in `app-*-{{internal.team}}` is still a
//! wildcard, a `^...$` is still a regex), but the trait value itself only ever matches itself
//! (it is regex-escaped). Traits often come from an identity provider, from SCIM, or from
//! fields users can influence; the role author, not whoever controls a trait, should decide
//! what is a wildcard. A trait value `*` therefore allows only a db user literally named `*`.
//!
//! **No db name.** For protocols without a database name (e.g. Redis), [`check_database`] is
//! called with `None` and only `db_labels` and `db_users` are checked, on both sides: a
//! `deny.db_names` entry cannot refuse such a session, and `allow.db_names` need not match.
//! An empty db user is always refused.
//!
//! **Invalid patterns.** [`Role::validate`] refuses bad regexes, templates and selectors when
//! a role is written. If one reaches the checker anyway (a role stored before a rule was
//! tightened), it fails closed and never panics: in `allow` it matches nothing; in `deny` it
//! matches everything it is compared with, so a broken deny entry refuses rather than silently
//! vanishing. A `*` label key with a value other than `*` counts as invalid.
//!
//! **Admin rules.** [`check_rule`] refuses when any role's `deny.rules` names the resource (or
//! `*`) and the verb (or `*`), and otherwise allows when any role's `allow.rules` does.
//!
//! **Options** merge across all of the user's roles, most restrictive winning: the smallest
//! `max_session_ttl` and `client_idle_timeout`; `disconnect_expired_cert` and `require_mfa`
//! if any role sets them to `true`.
//!
//! [`check_database`]: AccessChecker::check_database
//! [`check_rule`]: AccessChecker::check_rule

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use regex::{Regex, RegexBuilder};

use crate::database::Database;
use crate::identity::Traits;
use crate::role::{parse_template, LabelSelector, Role, RoleConditions, Rule, Template, WILDCARD};

/// Certificate lifetime when no role sets `max_session_ttl` (see DESIGN.md, Trust).
pub const DEFAULT_SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// Upper bound on a compiled role regex, so that a hostile or careless pattern cannot make
/// every check slow or memory-hungry.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Which side of a role a pattern belongs to; decides how an invalid pattern behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// A compiled value pattern.
#[derive(Debug, Clone)]
enum Pattern {
    Any,
    Exact(String),
    Regex(Regex),
    /// Could not be compiled; see the module docs ("Invalid patterns").
    Invalid,
}

impl Pattern {
    fn matches(&self, s: &str, effect: Effect) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(e) => e == s,
            Pattern::Regex(r) => r.is_match(s),
            Pattern::Invalid => effect == Effect::Deny,
        }
    }
}

/// A value after template expansion: its text (for listings) and its matcher.
#[derive(Debug, Clone)]
struct Value {
    text: String,
    pattern: Pattern,
}

fn any_matches(values: &[Value], s: &str, effect: Effect) -> bool {
    values.iter().any(|v| v.pattern.matches(s, effect))
}

fn build_regex(source: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(source)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

fn to_pattern(source: &str) -> Pattern {
    build_regex(source).map_or(Pattern::Invalid, Pattern::Regex)
}

/// `^inner$` → `inner`, for values in regex form.
fn regex_body(value: &str) -> Option<&str> {
    value.strip_prefix('^')?.strip_suffix('$')
}

fn anchored(body: &str) -> String {
    format!(r"\A(?:{body})\z")
}

/// A glob as a regex fragment: `*` is any sequence, everything else literal.
fn glob_body(glob: &str) -> String {
    let parts: Vec<String> = glob.split('*').map(regex::escape).collect();
    format!("(?s:{})", parts.join(".*"))
}

/// Compiles a value that contains no template.
fn compile_plain(value: &str) -> Pattern {
    if value == WILDCARD {
        Pattern::Any
    } else if let Some(body) = regex_body(value) {
        to_pattern(&anchored(body))
    } else if value.contains('*') {
        to_pattern(&anchored(&glob_body(value)))
    } else {
        Pattern::Exact(value.to_owned())
    }
}

/// Regex source for a template expanded with `trait_value`, or `None` when it is a plain
/// literal. The trait value is always escaped: it matches only itself.
fn templated_regex(t: &Template<'_>, trait_value: &str) -> Option<String> {
    let escaped = regex::escape(trait_value);
    match (t.prefix.strip_prefix('^'), t.suffix.strip_suffix('$')) {
        (Some(pre), Some(suf)) => Some(anchored(&format!("{pre}{escaped}{suf}"))),
        _ if t.prefix.contains('*') || t.suffix.contains('*') => Some(anchored(&format!(
            "{}{escaped}{}",
            glob_body(t.prefix),
            glob_body(t.suffix)
        ))),
        _ => None,
    }
}

fn compile_templated(t: &Template<'_>, trait_value: &str) -> Value {
    let text = format!("{}{trait_value}{}", t.prefix, t.suffix);
    let pattern = match templated_regex(t, trait_value) {
        Some(source) => to_pattern(&source),
        None => Pattern::Exact(text.clone()),
    };
    Value { text, pattern }
}

/// Expands and compiles one value as written in a role: zero or more patterns.
fn compile_value(value: &str, traits: &Traits) -> Vec<Value> {
    match parse_template(value) {
        Err(_) => vec![Value {
            text: value.to_owned(),
            pattern: Pattern::Invalid,
        }],
        Ok(None) => vec![Value {
            text: value.to_owned(),
            pattern: compile_plain(value),
        }],
        Ok(Some(t)) => traits
            .get(t.trait_name)
            .into_iter()
            .flatten()
            .filter(|v| !v.is_empty())
            .map(|v| compile_templated(&t, v))
            .collect(),
    }
}

fn compile_values(values: &[String], traits: &Traits) -> Vec<Value> {
    values
        .iter()
        .flat_map(|v| compile_value(v, traits))
        .collect()
}

/// Checks that a pattern value as written in a role would compile; `Err` is a message for the
/// operator. Used by [`Role::validate`].
pub(crate) fn check_pattern_source(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("an empty value matches nothing; remove it".into());
    }
    let source = match parse_template(value)? {
        // Any trait value is escaped, so one placeholder proves the shape compiles.
        Some(t) => templated_regex(&t, "x"),
        None if value == WILDCARD => None,
        None => match regex_body(value) {
            Some(body) => Some(anchored(body)),
            None if value.contains('*') => Some(anchored(&glob_body(value))),
            None => None,
        },
    };
    match source.map(|s| build_regex(&s)) {
        Some(Err(e)) => {
            let detail = e.to_string();
            let detail = detail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default()
                .trim()
                .trim_start_matches("error: ");
            Err(format!(
                "regex {value:?} does not compile ({detail}); fix it, or use a glob such as \
                 \"dev-*\""
            ))
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Clone)]
enum LabelKey {
    /// `*: *` — satisfied by every database.
    Any,
    Named(String),
    /// `*` with a value other than `*`.
    Invalid,
}

#[derive(Debug, Clone)]
struct LabelMatcher {
    key: LabelKey,
    values: Vec<Pattern>,
}

/// A compiled `db_labels`. Empty matches nothing.
#[derive(Debug, Clone)]
struct Selector(Vec<LabelMatcher>);

impl Selector {
    fn compile(selector: &LabelSelector, traits: &Traits) -> Self {
        let matchers = selector
            .iter()
            .map(|(key, values)| {
                let key = if key == WILDCARD {
                    if !values.is_empty() && values.iter().all(|v| v == WILDCARD) {
                        LabelKey::Any
                    } else {
                        LabelKey::Invalid
                    }
                } else {
                    LabelKey::Named(key.clone())
                };
                let values = compile_values(values, traits)
                    .into_iter()
                    .map(|v| v.pattern)
                    .collect();
                LabelMatcher { key, values }
            })
            .collect();
        Selector(matchers)
    }

    fn matches(&self, labels: &BTreeMap<String, String>, effect: Effect) -> bool {
        !self.0.is_empty()
            && self.0.iter().all(|m| match &m.key {
                LabelKey::Any => true,
                LabelKey::Invalid => effect == Effect::Deny,
                LabelKey::Named(key) => labels
                    .get(key)
                    .is_some_and(|v| m.values.iter().any(|p| p.matches(v, effect))),
            })
    }
}

#[derive(Debug, Clone)]
struct Conditions {
    labels: Selector,
    db_users: Vec<Value>,
    db_names: Vec<Value>,
    rules: Vec<Rule>,
}

impl Conditions {
    fn compile(c: &RoleConditions, traits: &Traits) -> Self {
        Conditions {
            labels: Selector::compile(&c.db_labels, traits),
            db_users: compile_values(&c.db_users, traits),
            db_names: compile_values(&c.db_names, traits),
            rules: c.rules.clone(),
        }
    }

    fn rule_matches(&self, resource: &str, verb: &str) -> bool {
        let hit = |list: &[String], want: &str| list.iter().any(|x| x == WILDCARD || x == want);
        self.rules
            .iter()
            .any(|r| hit(&r.resources, resource) && hit(&r.verbs, verb))
    }
}

#[derive(Debug, Clone)]
struct CompiledRole {
    name: String,
    allow: Conditions,
    deny: Conditions,
}

/// Session limits after merging all of a user's roles, most restrictive winning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EffectiveOptions {
    /// Smallest `max_session_ttl` of any role; `None` when no role sets one.
    pub max_session_ttl: Option<std::time::Duration>,
    /// Smallest `client_idle_timeout` of any role; `None` means no idle timeout.
    pub client_idle_timeout: Option<std::time::Duration>,
    /// End sessions when the certificate expires, if any role asks for it.
    pub disconnect_expired_cert: bool,
    /// Require a second factor at login, if any role asks for it.
    pub require_mfa: bool,
}

/// A refused request. Its [`Display`](fmt::Display) is for the user: what was refused and what
/// to do. Which role refused, and why, is in [`reason`](Self::reason), for the audit log only —
/// role names and policy structure are not shown to the person being refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDenied {
    message: String,
    reason: String,
}

impl AccessDenied {
    fn new(message: String, reason: String) -> Self {
        AccessDenied { message, reason }
    }

    /// The internal reason (which role denied, or which check no role passed), for audit.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for AccessDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AccessDenied {}

/// Decides what one user may do, from their roles and traits; built once per request or
/// connection and then queried.
#[derive(Debug, Clone)]
pub struct AccessChecker {
    roles: Vec<CompiledRole>,
    options: EffectiveOptions,
}

fn min_opt(
    a: Option<std::time::Duration>,
    b: Option<std::time::Duration>,
) -> Option<std::time::Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl AccessChecker {
    /// Compiles the user's roles (already fetched) against the identity's traits.
    pub fn new(roles: Vec<Role>, traits: &Traits) -> Self {
        let mut options = EffectiveOptions::default();
        let compiled = roles
            .iter()
            .map(|role| {
                let o = &role.spec.options;
                options.max_session_ttl =
                    min_opt(options.max_session_ttl, o.max_session_ttl.map(|d| d.0));
                options.client_idle_timeout = min_opt(
                    options.client_idle_timeout,
                    o.client_idle_timeout.map(|d| d.0),
                );
                options.disconnect_expired_cert |= o.disconnect_expired_cert == Some(true);
                options.require_mfa |= o.require_mfa == Some(true);
                CompiledRole {
                    name: role.metadata.name.clone(),
                    allow: Conditions::compile(&role.spec.allow, traits),
                    deny: Conditions::compile(&role.spec.deny, traits),
                }
            })
            .collect();
        AccessChecker {
            roles: compiled,
            options,
        }
    }

    fn labels_denied_by(&self, db: &Database) -> Option<&CompiledRole> {
        self.roles
            .iter()
            .find(|r| r.deny.labels.matches(&db.labels, Effect::Deny))
    }

    fn label_allowing_roles<'a>(
        &'a self,
        db: &'a Database,
    ) -> impl Iterator<Item = &'a CompiledRole> + 'a {
        self.roles
            .iter()
            .filter(|r| r.allow.labels.matches(&db.labels, Effect::Allow))
    }

    /// Can the user see/reach this database at all (labels only)? Used for `pc db ls`.
    pub fn can_access_database(&self, db: &Database) -> bool {
        self.labels_denied_by(db).is_none() && self.label_allowing_roles(db).next().is_some()
    }

    /// Full check for a session: labels AND db user AND db name (see the module docs).
    pub fn check_database(
        &self,
        db: &Database,
        db_user: &str,
        db_name: Option<&str>,
    ) -> Result<(), AccessDenied> {
        let target = describe_target(db, db_user, db_name);
        if db_user.is_empty() {
            return Err(AccessDenied::new(
                format!(
                    "a db_user is required to connect to database {:?}; pass one with --db-user",
                    db.name
                ),
                "empty db_user".into(),
            ));
        }
        for role in &self.roles {
            let what = if role.deny.labels.matches(&db.labels, Effect::Deny) {
                Some("deny.db_labels match the database".to_owned())
            } else if any_matches(&role.deny.db_users, db_user, Effect::Deny) {
                Some(format!("deny.db_users matches {db_user:?}"))
            } else {
                db_name
                    .filter(|n| any_matches(&role.deny.db_names, n, Effect::Deny))
                    .map(|n| format!("deny.db_names matches {n:?}"))
            };
            if let Some(what) = what {
                return Err(AccessDenied::new(
                    format!(
                        "access to {target} is denied by your roles; ask an administrator \
                         if you need it"
                    ),
                    format!("role {:?} denies {target}: {what}", role.name),
                ));
            }
        }
        let by_labels: Vec<&CompiledRole> = self.label_allowing_roles(db).collect();
        if by_labels.is_empty() {
            return Err(AccessDenied::new(
                format!(
                    "no role allows database {:?}; ask an administrator for a role whose \
                     db_labels match it",
                    db.name
                ),
                format!(
                    "no role's allow.db_labels match database {:?} (roles: {})",
                    db.name,
                    self.role_list()
                ),
            ));
        }
        let by_user: Vec<&CompiledRole> = by_labels
            .iter()
            .copied()
            .filter(|r| any_matches(&r.allow.db_users, db_user, Effect::Allow))
            .collect();
        if by_user.is_empty() {
            return Err(AccessDenied::new(
                format!(
                    "ask an administrator for a role that allows db_user {db_user:?} on \
                     database {:?}",
                    db.name
                ),
                format!(
                    "roles matching database {:?} by labels ({}) do not allow db_user {db_user:?}",
                    db.name,
                    names(&by_labels)
                ),
            ));
        }
        let Some(db_name) = db_name else {
            return Ok(());
        };
        if by_user
            .iter()
            .any(|r| any_matches(&r.allow.db_names, db_name, Effect::Allow))
        {
            return Ok(());
        }
        Err(AccessDenied::new(
            format!(
                "ask an administrator for a role that allows db_user {db_user:?} with db_name \
                 {db_name:?} on database {:?}",
                db.name
            ),
            format!(
                "roles allowing db_user {db_user:?} on database {:?} ({}) do not allow db_name \
                 {db_name:?}",
                db.name,
                names(&by_user)
            ),
        ))
    }

    fn allowed_values(&self, db: &Database, pick: impl Fn(&Conditions) -> &[Value]) -> Vec<String> {
        if !self.can_access_database(db) {
            return Vec::new();
        }
        let denied = |text: &str| {
            self.roles
                .iter()
                .any(|r| any_matches(pick(&r.deny), text, Effect::Deny))
        };
        let set: BTreeSet<String> = self
            .label_allowing_roles(db)
            .flat_map(|r| pick(&r.allow).iter())
            .filter(|v| !matches!(v.pattern, Pattern::Invalid))
            .filter(|v| !denied(&v.text))
            .map(|v| v.text.clone())
            .collect();
        set.into_iter().collect()
    }

    /// The db users the user may use on this database, for listings: templates expanded,
    /// entries matching a deny pattern removed, `*` and other patterns kept as written; sorted.
    /// Advisory — [`check_database`](Self::check_database) is the authority.
    pub fn allowed_db_users(&self, db: &Database) -> Vec<String> {
        self.allowed_values(db, |c| &c.db_users)
    }

    /// The db names the user may open on this database, for listings; as
    /// [`allowed_db_users`](Self::allowed_db_users).
    pub fn allowed_db_names(&self, db: &Database) -> Vec<String> {
        self.allowed_values(db, |c| &c.db_names)
    }

    /// Admin API authorisation: may the user apply `verb` to `resource` (names from
    /// [`KNOWN_VERBS`](crate::role::KNOWN_VERBS) and
    /// [`KNOWN_RESOURCES`](crate::role::KNOWN_RESOURCES))?
    pub fn check_rule(&self, resource: &str, verb: &str) -> Result<(), AccessDenied> {
        if let Some(role) = self
            .roles
            .iter()
            .find(|r| r.deny.rule_matches(resource, verb))
        {
            return Err(AccessDenied::new(
                format!(
                    "{verb} on {resource} is denied by your roles; ask an administrator if \
                     you need it"
                ),
                format!(
                    "role {:?} denies verb {verb:?} on resource {resource:?}",
                    role.name
                ),
            ));
        }
        if self
            .roles
            .iter()
            .any(|r| r.allow.rule_matches(resource, verb))
        {
            return Ok(());
        }
        Err(AccessDenied::new(
            format!(
                "you may not {verb} {resource}; ask an administrator for a role with a rule \
                 allowing verb {verb:?} on resource {resource:?}"
            ),
            format!(
                "no role allows verb {verb:?} on resource {resource:?} (roles: {})",
                self.role_list()
            ),
        ))
    }

    /// Options merged across roles, most restrictive winning.
    pub fn options(&self) -> EffectiveOptions {
        self.options
    }

    /// The certificate lifetime to issue: `requested` (or [`DEFAULT_SESSION_TTL`] when none
    /// was asked for) capped by the smallest `max_session_ttl`, or by [`DEFAULT_SESSION_TTL`]
    /// when no role sets one.
    pub fn session_ttl(&self, requested: Option<std::time::Duration>) -> std::time::Duration {
        let cap = self.options.max_session_ttl.unwrap_or(DEFAULT_SESSION_TTL);
        requested.unwrap_or(DEFAULT_SESSION_TTL).min(cap)
    }

    fn role_list(&self) -> String {
        names(&self.roles.iter().collect::<Vec<_>>())
    }
}

fn names(roles: &[&CompiledRole]) -> String {
    if roles.is_empty() {
        return "none".into();
    }
    roles
        .iter()
        .map(|r| format!("{:?}", r.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_target(db: &Database, db_user: &str, db_name: Option<&str>) -> String {
    match db_name {
        Some(n) => format!(
            "database {:?} as db_user {db_user:?} with db_name {n:?}",
            db.name
        ),
        None => format!("database {:?} as db_user {db_user:?}", db.name),
    }
}

#[cfg(test)]
#[path = "rbac_tests.rs"]
mod tests;
