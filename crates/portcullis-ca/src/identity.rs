//! Identity <-> X.509: the one place that knows how identities sit in certificate subjects.
//!
//! See [`crate::oid`] for the field table. Decoding accepts certificates from anywhere (a
//! client's TLS handshake, a forwarded header), so it is strict, bounded, and returns an error
//! for anything unexpected instead of guessing.

use std::net::IpAddr;

use portcullis_core::database::DbProtocol;
use portcullis_core::identity::{DbRoute, HostIdentity, Identity, SystemRole, Traits};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::cert::NameAttribute;
use crate::error::{CaError, Result};
use crate::oid::{std_oid, Field};

/// Largest certificate we try to decode.
pub const MAX_CERT_LEN: usize = 64 * 1024;
/// Most roles one identity may carry.
pub const MAX_ROLES: usize = 256;
/// Largest traits document.
pub const MAX_TRAITS_LEN: usize = 32 * 1024;

/// The subject attributes of a user certificate.
pub fn user_subject(id: &Identity) -> Result<Vec<NameAttribute>> {
    if id.roles.len() > MAX_ROLES {
        return Err(CaError::Request(format!(
            "{} roles is more than the {MAX_ROLES} a certificate can carry",
            id.roles.len()
        )));
    }
    let mut attrs: Vec<NameAttribute> = vec![
        (std_oid::ORGANIZATION, id.cluster_name.clone()),
        (std_oid::COMMON_NAME, id.username.clone()),
    ];
    for role in &id.roles {
        attrs.push((Field::Roles.content(), role.clone()));
    }
    if !id.traits.is_empty() {
        let json = serde_json::to_string(&id.traits)
            .map_err(|e| CaError::Request(format!("traits: {e}")))?;
        if json.len() > MAX_TRAITS_LEN {
            return Err(CaError::Request(format!(
                "traits take {} bytes, more than the {MAX_TRAITS_LEN} a certificate can carry",
                json.len()
            )));
        }
        attrs.push((Field::Traits.content(), json));
    }
    attrs.push((Field::MfaVerified.content(), id.mfa_verified.to_string()));
    if let Some(ip) = id.login_ip {
        attrs.push((Field::LoginIp.content(), ip.to_string()));
    }
    if let Some(route) = &id.route {
        attrs.push((Field::RouteService.content(), route.service_name.clone()));
        attrs.push((
            Field::RouteProtocol.content(),
            route.protocol.as_str().to_owned(),
        ));
        attrs.push((Field::RouteDbUser.content(), route.db_user.clone()));
        if let Some(name) = &route.db_name {
            attrs.push((Field::RouteDbName.content(), name.clone()));
        }
    }
    Ok(attrs)
}

/// The subject attributes of a host certificate.
pub fn host_subject(id: &HostIdentity) -> Result<Vec<NameAttribute>> {
    if id.system_roles.is_empty() {
        return Err(CaError::Request(
            "a host identity needs at least one system role".into(),
        ));
    }
    let mut attrs: Vec<NameAttribute> = vec![
        (std_oid::ORGANIZATION, id.cluster_name.clone()),
        (std_oid::COMMON_NAME, id.host_id.clone()),
        (Field::NodeName.content(), id.node_name.clone()),
    ];
    for role in &id.system_roles {
        attrs.push((Field::SystemRoles.content(), role.as_str().to_owned()));
    }
    Ok(attrs)
}

/// Subject fields collected from a certificate, before they are assembled into an identity.
#[derive(Default)]
struct Collected {
    common_name: Vec<String>,
    organization: Vec<String>,
    fields: Vec<(Field, String)>,
    expires: Option<OffsetDateTime>,
}

impl Collected {
    fn one(&self, field: Field) -> Result<Option<&str>> {
        let mut it = self.fields.iter().filter(|(f, _)| *f == field);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(CaError::Certificate(format!(
                "field {} appears more than once",
                field.dotted()
            )));
        }
        Ok(first)
    }

    fn all(&self, field: Field) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(f, _)| *f == field)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn single(values: &[String], what: &str) -> Result<String> {
        match values {
            [one] => Ok(one.clone()),
            [] => Err(CaError::Certificate(format!("the subject has no {what}"))),
            _ => Err(CaError::Certificate(format!(
                "the subject has more than one {what}"
            ))),
        }
    }
}

fn collect(cert_der: &[u8]) -> Result<Collected> {
    if cert_der.len() > MAX_CERT_LEN {
        return Err(CaError::Certificate(format!(
            "{} bytes is larger than the {MAX_CERT_LEN} accepted",
            cert_der.len()
        )));
    }
    let (rest, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| CaError::Certificate(format!("not a DER X.509 certificate ({e})")))?;
    if !rest.is_empty() {
        return Err(CaError::Certificate(
            "trailing bytes after the certificate".into(),
        ));
    }
    let mut out = Collected::default();
    for rdn in cert.subject().iter() {
        for atv in rdn.iter() {
            let oid = atv.attr_type().as_bytes();
            let value = || {
                atv.as_str().map(str::to_owned).map_err(|_| {
                    CaError::Certificate("a subject attribute is not a UTF-8 string".into())
                })
            };
            if oid == std_oid::COMMON_NAME {
                out.common_name.push(value()?);
            } else if oid == std_oid::ORGANIZATION {
                out.organization.push(value()?);
            } else if let Some(field) = Field::from_content(oid) {
                out.fields.push((field, value()?));
            }
        }
    }
    let not_after = cert.validity().not_after.timestamp();
    out.expires = Some(
        OffsetDateTime::from_unix_timestamp(not_after)
            .map_err(|_| CaError::Certificate("expiry out of range".into()))?,
    );
    Ok(out)
}

/// Reads the user identity from a (DER) user certificate. Does not check the signature: call
/// [`crate::CertAuthority::verify`] (or let TLS do it) first.
pub fn decode_user_identity(cert_der: &[u8]) -> Result<Identity> {
    let c = collect(cert_der)?;
    let username = Collected::single(&c.common_name, "common name (user name)")?;
    let cluster_name = Collected::single(&c.organization, "organization (cluster name)")?;
    let roles = c.all(Field::Roles);
    if roles.len() > MAX_ROLES {
        return Err(CaError::Certificate("too many roles".into()));
    }
    let traits: Traits = match c.one(Field::Traits)? {
        None => Traits::new(),
        Some(json) if json.len() <= MAX_TRAITS_LEN => serde_json::from_str(json)
            .map_err(|e| CaError::Certificate(format!("traits are not valid JSON ({e})")))?,
        Some(_) => return Err(CaError::Certificate("traits are too large".into())),
    };
    let mfa_verified = match c.one(Field::MfaVerified)? {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(CaError::Certificate(format!(
                "MFA flag {other:?} is not true/false"
            )))
        }
    };
    let login_ip = c
        .one(Field::LoginIp)?
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| CaError::Certificate(format!("login IP {s:?} is not an address")))
        })
        .transpose()?;
    let route = match c.one(Field::RouteService)? {
        None => None,
        Some(service) => {
            let protocol: DbProtocol = c
                .one(Field::RouteProtocol)?
                .ok_or_else(|| CaError::Certificate("the route has no protocol".into()))?
                .parse()
                .map_err(|e| CaError::Certificate(format!("{e}")))?;
            let db_user = c
                .one(Field::RouteDbUser)?
                .ok_or_else(|| CaError::Certificate("the route has no database user".into()))?
                .to_owned();
            Some(DbRoute {
                service_name: service.to_owned(),
                protocol,
                db_user,
                db_name: c.one(Field::RouteDbName)?.map(str::to_owned),
            })
        }
    };
    Ok(Identity {
        username,
        cluster_name,
        roles,
        traits,
        expires: c
            .expires
            .ok_or_else(|| CaError::Certificate("no expiry".into()))?,
        mfa_verified,
        login_ip,
        route,
    })
}

/// Reads the service identity from a (DER) host certificate. Does not check the signature.
pub fn decode_host_identity(cert_der: &[u8]) -> Result<HostIdentity> {
    let c = collect(cert_der)?;
    let host_id = Collected::single(&c.common_name, "common name (host id)")?;
    let cluster_name = Collected::single(&c.organization, "organization (cluster name)")?;
    let node_name = c.one(Field::NodeName)?.unwrap_or_default().to_owned();
    let system_roles = c
        .all(Field::SystemRoles)
        .iter()
        .map(|r| {
            r.parse::<SystemRole>()
                .map_err(|e| CaError::Certificate(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    if system_roles.is_empty() {
        return Err(CaError::Certificate(
            "not a host certificate: it has no system roles".into(),
        ));
    }
    Ok(HostIdentity {
        host_id,
        node_name,
        cluster_name,
        system_roles,
        expires: c
            .expires
            .ok_or_else(|| CaError::Certificate("no expiry".into()))?,
    })
}
