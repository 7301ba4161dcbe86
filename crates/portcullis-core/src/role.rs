//! Role resources: what a group of users may reach and do, written as YAML close to Teleport's.
//!
//! ```yaml
//! kind: role
//! version: v1
//! metadata: { name: developer, description: "optional" }
//! spec:
//!   options: { max_session_ttl: 8h, client_idle_timeout: 30m, disconnect_expired_cert: true }
//!   allow:
//!     db_labels: { env: [staging, dev] }      # a value is a string or a list of strings
//!     db_users: ["{{internal.db_users}}", readonly]
//!     db_names: ["*"]
//!     rules: [ { resources: [user, role], verbs: [list, read] } ]
//!   deny:
//!     db_labels: { env: production }
//! ```
//!
//! This module owns the resource's shape, parsing and validation; what the fields *mean* when a
//! user connects is defined (and documented) in [`crate::rbac`]. Parsing is strict — unknown
//! fields are errors — because a misspelt `deny` key silently ignored is a security hole.
//!
//! Values in `db_labels`, `db_users` and `db_names` are patterns: a glob where `*` matches any
//! sequence, a full regex when written `^...$`, and they may contain one template
//! `{{internal.NAME}}` or `{{external.NAME}}` that expands from the user's traits.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::duration::Duration;
use crate::names;

/// The only accepted value of a role's `kind` field.
pub const ROLE_KIND: &str = "role";

/// The only accepted value of a role's `version` field; bumped if the format ever changes.
pub const ROLE_VERSION: &str = "v1";

/// The resources that admin-API `rules` can name, besides `*`, so that a typo in a rule is
/// caught when the role is written instead of silently granting nothing.
///
/// `cluster` covers cluster status and CA information, `event` the audit log, `session`
/// recorded sessions, `cert` signing database certificates (`pcctl auth sign`).
pub const KNOWN_RESOURCES: [&str; 9] = [
    "user", "role", "token", "lock", "database", "cluster", "event", "session", "cert",
];

/// The verbs that admin-API `rules` can name, besides `*`.
pub const KNOWN_VERBS: [&str; 5] = ["list", "read", "create", "update", "delete"];

/// The wildcard accepted in rules (resources and verbs) and as a pattern value.
pub const WILDCARD: &str = "*";

/// Name of the preset role that reaches every database as the user's own db users and names.
pub const PRESET_ACCESS: &str = "access";
/// Name of the preset role that administers the cluster but reaches no database.
pub const PRESET_EDITOR: &str = "editor";
/// Name of the preset role that reads the audit log and sessions.
pub const PRESET_AUDITOR: &str = "auditor";

/// Label selectors: label key → accepted value patterns. In YAML a value may be one string or a
/// list of strings.
pub type LabelSelector = BTreeMap<String, Vec<String>>;

/// A role resource, as stored in the backend and edited by administrators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Always [`ROLE_KIND`]; present so a file says what it is, as in Teleport.
    pub kind: String,
    /// Always [`ROLE_VERSION`].
    pub version: String,
    /// Name and description.
    pub metadata: RoleMetadata,
    /// What the role grants and refuses.
    #[serde(default)]
    pub spec: RoleSpec,
}

/// Identifies a role.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMetadata {
    /// Unique role name; users' certificates list these.
    pub name: String,
    /// Free text for administrators.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// The body of a role.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// Session limits; merged across a user's roles, most restrictive winning.
    #[serde(default, skip_serializing_if = "RoleOptions::is_empty")]
    pub options: RoleOptions,
    /// What the role grants.
    #[serde(default)]
    pub allow: RoleConditions,
    /// What the role refuses; evaluated before any `allow`, and any match refuses.
    #[serde(default, skip_serializing_if = "RoleConditions::is_empty")]
    pub deny: RoleConditions,
}

/// Session limits a role imposes. Every option is optional: unset means this role adds no
/// constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleOptions {
    /// Longest lifetime of a certificate issued to a holder of this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_session_ttl: Option<Duration>,
    /// Idle time after which a database session is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_idle_timeout: Option<Duration>,
    /// Whether sessions end when the certificate that opened them expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_expired_cert: Option<bool>,
    /// Whether the login must have passed a second factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_mfa: Option<bool>,
}

impl RoleOptions {
    /// Whether no option is set, so serialization can leave the section out.
    pub fn is_empty(&self) -> bool {
        *self == RoleOptions::default()
    }
}

/// One side (`allow` or `deny`) of a role.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConditions {
    /// Which databases, by their labels. Empty matches no database.
    #[serde(
        default,
        deserialize_with = "de_label_selector",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub db_labels: LabelSelector,
    /// Which accounts on those databases.
    #[serde(
        default,
        deserialize_with = "de_string_or_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub db_users: Vec<String>,
    /// Which database names (schemas) on those databases.
    #[serde(
        default,
        deserialize_with = "de_string_or_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub db_names: Vec<String>,
    /// Admin API permissions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

impl RoleConditions {
    /// Whether nothing is set, so serialization can leave the section out.
    pub fn is_empty(&self) -> bool {
        *self == RoleConditions::default()
    }
}

/// An admin-API permission: these verbs on these resources.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Names from [`KNOWN_RESOURCES`], or `*`.
    pub resources: Vec<String>,
    /// Names from [`KNOWN_VERBS`], or `*`.
    pub verbs: Vec<String>,
}

impl Rule {
    /// A rule from string slices, for presets and tests.
    pub fn new(resources: &[&str], verbs: &[&str]) -> Self {
        Rule {
            resources: resources.iter().map(|s| (*s).to_owned()).collect(),
            verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// Reading a role from YAML failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// The text is not YAML, or does not have the shape of a role (unknown field, wrong type).
    #[error("invalid role YAML: {0}")]
    Parse(String),
    /// The role parsed but breaks a rule; see [`InvalidRole`].
    #[error(transparent)]
    Invalid(#[from] InvalidRole),
}

/// A role broke one or more rules; the message lists each with its field path and a fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid role {role:?}: {}", DisplayProblems(.problems))]
pub struct InvalidRole {
    role: String,
    problems: Vec<RoleProblem>,
}

impl InvalidRole {
    /// The role's name as written (possibly itself the problem).
    pub fn role(&self) -> &str {
        &self.role
    }

    /// Every problem found, in document order; never empty.
    pub fn problems(&self) -> &[RoleProblem] {
        &self.problems
    }
}

/// One rule a role broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleProblem {
    /// Where, e.g. `spec.allow.db_users[1]`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for RoleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

struct DisplayProblems<'a>(&'a [RoleProblem]);

impl fmt::Display for DisplayProblems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl Role {
    /// An empty role (grants nothing) named `name`, for building roles in code.
    pub fn new(name: &str) -> Self {
        Role {
            kind: ROLE_KIND.to_owned(),
            version: ROLE_VERSION.to_owned(),
            metadata: RoleMetadata {
                name: name.to_owned(),
                description: String::new(),
            },
            spec: RoleSpec::default(),
        }
    }

    /// The role's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Parses one YAML document and [validates](Self::validate) it.
    pub fn from_yaml(text: &str) -> Result<Role, RoleError> {
        let role: Role =
            serde_norway::from_str(text).map_err(|e| RoleError::Parse(e.to_string()))?;
        role.validate()?;
        Ok(role)
    }

    /// Parses a `---`-separated stream of role documents (as `pcctl create -f` accepts),
    /// validating each. Empty documents are skipped.
    pub fn from_yaml_stream(text: &str) -> Result<Vec<Role>, RoleError> {
        let mut roles = Vec::new();
        for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
            let value = serde_norway::Value::deserialize(doc)
                .map_err(|e| RoleError::Parse(format!("document {}: {e}", i + 1)))?;
            if value.is_null() {
                continue;
            }
            let role: Role = serde_norway::from_value(value)
                .map_err(|e| RoleError::Parse(format!("document {}: {e}", i + 1)))?;
            role.validate()?;
            roles.push(role);
        }
        Ok(roles)
    }

    /// The role as YAML, for `pcctl get role`.
    pub fn to_yaml(&self) -> Result<String, RoleError> {
        serde_norway::to_string(self).map_err(|e| RoleError::Parse(e.to_string()))
    }

    /// Checks everything serde cannot: kind and version, the name, zero durations, label keys,
    /// patterns (templates and regexes), and rule resources and verbs. Reports every problem,
    /// each with its field path and a fix.
    pub fn validate(&self) -> Result<(), InvalidRole> {
        let mut problems = Vec::new();
        let mut problem = |path: String, message: String| {
            problems.push(RoleProblem { path, message });
        };
        if self.kind != ROLE_KIND {
            problem(
                "kind".into(),
                format!("must be {ROLE_KIND:?}, not {:?}", self.kind),
            );
        }
        if self.version != ROLE_VERSION {
            problem(
                "version".into(),
                format!("must be {ROLE_VERSION:?}, not {:?}", self.version),
            );
        }
        if let Err(e) = names::validate_name("role", &self.metadata.name) {
            problem("metadata.name".into(), e.to_string());
        }
        let options = &self.spec.options;
        for (field, value) in [
            ("max_session_ttl", options.max_session_ttl),
            ("client_idle_timeout", options.client_idle_timeout),
        ] {
            if value.is_some_and(Duration::is_zero) {
                problem(
                    format!("spec.options.{field}"),
                    "must be longer than 0; remove the option to leave it unset".into(),
                );
            }
        }
        for (side, cond) in [("allow", &self.spec.allow), ("deny", &self.spec.deny)] {
            validate_conditions(&format!("spec.{side}"), cond, &mut problem);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(InvalidRole {
                role: self.metadata.name.clone(),
                problems,
            })
        }
    }
}

fn validate_conditions(
    path: &str,
    cond: &RoleConditions,
    problem: &mut impl FnMut(String, String),
) {
    for (key, values) in &cond.db_labels {
        let key_path = format!("{path}.db_labels.{key}");
        if key.is_empty() {
            problem(
                format!("{path}.db_labels"),
                "a label key is empty; name the label to match".into(),
            );
        } else if key.contains("{{") || key.contains("}}") {
            problem(
                key_path.clone(),
                "templates are only allowed in label values, not keys".into(),
            );
        }
        if values.is_empty() {
            problem(
                key_path.clone(),
                "list at least one value, or remove the key".into(),
            );
        }
        if key == WILDCARD && values.iter().any(|v| v != WILDCARD) {
            problem(
                key_path.clone(),
                "the key \"*\" only works with the value \"*\" (every database); \
                 name a label key to match other values"
                    .into(),
            );
        }
        for (i, v) in values.iter().enumerate() {
            if let Err(msg) = crate::rbac::check_pattern_source(v) {
                problem(format!("{key_path}[{i}]"), msg);
            }
        }
    }
    for (field, values) in [("db_users", &cond.db_users), ("db_names", &cond.db_names)] {
        for (i, v) in values.iter().enumerate() {
            if let Err(msg) = crate::rbac::check_pattern_source(v) {
                problem(format!("{path}.{field}[{i}]"), msg);
            }
        }
    }
    for (i, rule) in cond.rules.iter().enumerate() {
        let rule_path = format!("{path}.rules[{i}]");
        for (field, values, known) in [
            ("resources", &rule.resources, &KNOWN_RESOURCES[..]),
            ("verbs", &rule.verbs, &KNOWN_VERBS[..]),
        ] {
            if values.is_empty() {
                problem(
                    format!("{rule_path}.{field}"),
                    format!("list at least one of {}, or *", known.join(", ")),
                );
            }
            for (j, v) in values.iter().enumerate() {
                if v != WILDCARD && !known.contains(&v.as_str()) {
                    problem(
                        format!("{rule_path}.{field}[{j}]"),
                        format!("unknown {:?}: use one of {}, or *", v, known.join(", ")),
                    );
                }
            }
        }
    }
}

/// A value of the form `prefix{{namespace.name}}suffix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Template<'a> {
    pub(crate) prefix: &'a str,
    pub(crate) trait_name: &'a str,
    pub(crate) suffix: &'a str,
}

const TEMPLATE_HINT: &str = "write {{internal.NAME}} or {{external.NAME}}";

/// Finds the template in a pattern value, if any. `Err` carries a message for the operator.
pub(crate) fn parse_template(value: &str) -> Result<Option<Template<'_>>, String> {
    let Some((prefix, rest)) = value.split_once("{{") else {
        if value.contains("}}") {
            return Err(format!("unbalanced \"}}}}\" in {value:?}; {TEMPLATE_HINT}"));
        }
        return Ok(None);
    };
    if prefix.contains("}}") {
        return Err(format!("unbalanced \"}}}}\" in {value:?}; {TEMPLATE_HINT}"));
    }
    let Some((inner, suffix)) = rest.split_once("}}") else {
        return Err(format!(
            "unbalanced \"{{{{\" in {value:?}: it is never closed; {TEMPLATE_HINT}"
        ));
    };
    if inner.contains("{{") {
        return Err(format!(
            "unbalanced \"{{{{\" in {value:?}: templates cannot nest; {TEMPLATE_HINT}"
        ));
    }
    if suffix.contains("{{") || suffix.contains("}}") {
        return Err(format!(
            "{value:?} has more than one template; use one template per value"
        ));
    }
    let inner = inner.trim();
    let (namespace, trait_name) = inner.split_once('.').unwrap_or((inner, ""));
    // Both namespaces read the identity's traits; they stay distinct in the syntax so
    // policies say where a value comes from and Teleport roles translate unchanged.
    if !matches!(namespace, "internal" | "external") {
        return Err(format!(
            "unknown template namespace {namespace:?} in {value:?}; {TEMPLATE_HINT}"
        ));
    }
    let valid_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/');
    if trait_name.is_empty() || !trait_name.chars().all(valid_char) {
        return Err(format!(
            "bad trait name in {value:?}: a trait name uses letters, digits and _ - . : /; \
             {TEMPLATE_HINT}"
        ));
    }
    Ok(Some(Template {
        prefix,
        trait_name,
        suffix,
    }))
}

/// The `access` preset: every database, as the db users and db names listed in the user's own
/// traits; no admin permissions.
pub fn preset_access() -> Role {
    let mut role = Role::new(PRESET_ACCESS);
    role.metadata.description =
        "Reach every database as the db users and db names in your user traits".into();
    let allow = &mut role.spec.allow;
    allow
        .db_labels
        .insert(WILDCARD.into(), vec![WILDCARD.into()]);
    allow.db_users = vec!["{{internal.db_users}}".into()];
    allow.db_names = vec!["{{internal.db_names}}".into()];
    role
}

/// The `editor` preset: every verb on every resource except the audit log and recorded
/// sessions; no database access.
pub fn preset_editor() -> Role {
    let mut role = Role::new(PRESET_EDITOR);
    role.metadata.description =
        "Administer users, roles, tokens, locks, databases and the cluster".into();
    let resources: Vec<&str> = KNOWN_RESOURCES
        .into_iter()
        .filter(|r| !matches!(*r, "event" | "session"))
        .collect();
    role.spec.allow.rules = vec![Rule::new(&resources, &KNOWN_VERBS)];
    role
}

/// The `auditor` preset: list and read the audit log and recorded sessions; no database access.
pub fn preset_auditor() -> Role {
    let mut role = Role::new(PRESET_AUDITOR);
    role.metadata.description = "Read the audit log and recorded sessions".into();
    role.spec.allow.rules = vec![Rule::new(&["event", "session"], &["list", "read"])];
    role
}

/// Every preset role, as created on a new cluster.
pub fn presets() -> Vec<Role> {
    vec![preset_access(), preset_editor(), preset_auditor()]
}

// ---- serde helpers: a value that is one string or a list of strings ----

struct StringOrList;

impl<'de> Visitor<'de> for StringOrList {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a list of strings")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(vec![v.to_owned()])
    }

    // Unquoted YAML scalars such as `tier: 1` or `pci: true` are meant as label text.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(vec![v.to_string()])
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(vec![v.to_string()])
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(vec![v.to_string()])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<ScalarString>()? {
            out.push(item.0);
        }
        Ok(out)
    }
}

/// One list item: a string, or an integer/boolean taken as its text.
struct ScalarString(String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ScalarString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

struct StringOrListValue(Vec<String>);

impl<'de> Deserialize<'de> for StringOrListValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StringOrList).map(StringOrListValue)
    }
}

fn de_string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    d.deserialize_any(StringOrList)
}

fn de_label_selector<'de, D: Deserializer<'de>>(d: D) -> Result<LabelSelector, D::Error> {
    let raw = BTreeMap::<String, StringOrListValue>::deserialize(d)?;
    Ok(raw.into_iter().map(|(k, v)| (k, v.0)).collect())
}

#[cfg(test)]
#[path = "role_tests.rs"]
mod tests;
