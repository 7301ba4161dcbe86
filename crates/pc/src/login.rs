//! `pc login`, `pc status`, `pc logout`, `pc invite accept`.

use std::str::FromStr;

use anyhow::{anyhow, bail, Context};
use portcullis_api::{
    AcceptInviteRequest, AcceptInviteResponse, CaInfo, InviteDescription, InviteRequest,
    LoginRequest, LoginResponse, PingResponse,
};
use portcullis_ca::identity_file::Zeroizing;
use portcullis_ca::KeyPair;
use portcullis_client::api::{ApiClient, ClientError};
use portcullis_client::pg_service;
use portcullis_client::profile::{self, Home, Profile, ProfileError};
use portcullis_client::trust::{self, Known, KnownProxies};
use portcullis_core::duration::Duration;
use serde::Serialize;
use time::OffsetDateTime;

use crate::cli::{Format, LoginArgs, TrustArgs};
use crate::output::{self, validity};
use crate::prompt;
use crate::session::{proxy_error, Session};

/// A proxy whose host CA we decided to trust, and what it told us about the cluster.
struct TrustedProxy {
    host_ca_der: Vec<u8>,
    ping: PingResponse,
}

/// First contact (or a later one): fetch the CAs without verification, decide on the host CA
/// by `known_proxies`, `--ca-pin`, the user or `--insecure`, then ping over a verified
/// connection.
async fn trust_proxy(home: &Home, proxy: &str, args: &TrustArgs) -> anyhow::Result<TrustedProxy> {
    profile::validate_proxy_addr(proxy)?;
    let boot = ApiClient::with_tls_config(proxy, trust::bootstrap_tls_config()?)?;
    let cas: Vec<CaInfo> = boot
        .get("/v1/cas")
        .await
        .map_err(|e| proxy_error(proxy, e))?;
    let (host_ca_der, pin) = trust::host_ca(proxy, &cas)?;
    let known = KnownProxies::at(home.known_proxies_path());
    let state = known.check(proxy, &pin)?;
    if let Some(expected) = &args.ca_pin {
        trust::check_pin(proxy, expected, &pin)?;
    }
    if state == Known::Unknown {
        if args.ca_pin.is_some() {
            // Checked above.
        } else if args.insecure {
            eprintln!(
                "warning: trusting host CA {pin} of {proxy} without verification (--insecure)"
            );
        } else {
            // The cluster's name, for the question; nothing from this answer is trusted.
            let cluster = boot
                .get::<PingResponse>("/v1/ping")
                .await
                .map(|p| p.cluster_name)
                .unwrap_or_else(|_| "?".into());
            if !prompt::interactive() {
                bail!(
                    "first connection to {proxy}: the cluster {cluster:?} presents host CA pin \
                     {pin}; check it with your administrator (pcctl status shows it) and pass \
                     --ca-pin={pin}"
                );
            }
            let question = format!(
                "The cluster {cluster:?} at {proxy} presents host CA pin {pin}.\n\
                 Compare it with the pin your administrator gave you (pcctl status). Trust it? [y/N] "
            );
            if !prompt::confirm(&question)? {
                bail!("not trusted; nothing was changed. To trust it without asking, pass --ca-pin={pin}");
            }
        }
        known.remember(proxy, &pin)?;
        eprintln!("Added {proxy} to {}", known.path().display());
    }
    let api = ApiClient::anonymous(proxy, std::slice::from_ref(&host_ca_der))?;
    let ping: PingResponse = api
        .get("/v1/ping")
        .await
        .map_err(|e| proxy_error(proxy, e))?;
    if ping.host_ca_pin != pin {
        bail!(
            "the proxy at {proxy} announces host CA pin {} but serves {pin}; refusing to continue, \
             ask your administrator",
            ping.host_ca_pin
        );
    }
    Ok(TrustedProxy { host_ca_der, ping })
}

fn read_password(password_stdin: bool, prompt_text: &str) -> anyhow::Result<Zeroizing<String>> {
    if password_stdin {
        return prompt::stdin_line("password");
    }
    if !prompt::interactive() {
        bail!("standard input is not a terminal, so pc cannot ask for the password; pipe it in and pass --password-stdin");
    }
    let p = prompt::secret(prompt_text)?;
    if p.is_empty() {
        bail!("the password is empty; run the command again and type it");
    }
    Ok(p)
}

/// The TOTP code: `--otp`, or asked for when the cluster uses a second factor.
fn read_otp(otp: Option<String>, required: bool, optional: bool) -> anyhow::Result<Option<String>> {
    if let Some(code) = otp {
        return Ok(Some(code.trim().to_owned()));
    }
    if !required && !optional {
        return Ok(None);
    }
    if !prompt::interactive() {
        if required {
            bail!("this cluster requires a TOTP code and standard input is not a terminal; pass --otp=CODE with the current code from your authenticator app");
        }
        return Ok(None);
    }
    let hint = if required {
        ""
    } else {
        " (empty if you have none)"
    };
    let code = prompt::line(&format!("TOTP code from your authenticator app{hint}: "))?;
    if code.is_empty() {
        if required {
            bail!("a TOTP code is required; run the command again and type the current code");
        }
        return Ok(None);
    }
    Ok(Some(code))
}

fn login_user(arg: Option<String>) -> anyhow::Result<String> {
    let user = match arg {
        Some(u) => u,
        None => std::env::var("USER")
            .map_err(|_| anyhow!("pass --user=NAME (no $USER to default to)"))?,
    };
    profile::validate_name("user", &user)?;
    Ok(user)
}

/// `pc login`.
pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let home = Home::from_env()?;
    let user = login_user(args.user)?;
    let proxy = args.proxy;
    let ttl_seconds = match &args.ttl {
        None => None,
        Some(t) => {
            let d = Duration::from_str(t).map_err(|e| anyhow!("--ttl: {e}"))?;
            let secs = d.0.as_secs();
            if secs == 0 {
                bail!("--ttl must be at least one second, e.g. --ttl=8h");
            }
            Some(secs)
        }
    };
    let trusted = trust_proxy(&home, &proxy, &args.trust).await?;
    let factor = trusted.ping.second_factor.as_str();
    let password = read_password(args.password_stdin, &format!("Password for {user}: "))?;
    let otp = read_otp(args.otp, factor == "on", factor == "optional")?;

    let key = KeyPair::generate()?;
    let api = ApiClient::anonymous(&proxy, std::slice::from_ref(&trusted.host_ca_der))?;
    let request = LoginRequest {
        user: user.clone(),
        password: password.to_string(),
        otp,
        public_key: key.public_key().to_pem(),
        ttl_seconds,
    };
    let resp: LoginResponse = match api.post("/v1/login", &request).await {
        Ok(r) => r,
        Err(ClientError::Api { message, .. }) => bail!("login refused: {message}"),
        Err(e) => return Err(proxy_error(&proxy, e)),
    };
    drop(request);
    let cert_der = portcullis_ca::cert::certs_from_pem(&resp.cert_pem)
        .ok()
        .and_then(|mut v| v.pop())
        .ok_or_else(|| {
            anyhow!("the proxy sent an unreadable certificate; try again or ask your administrator")
        })?;
    let identity = portcullis_ca::decode_user_identity(&cert_der)
        .context("the proxy sent a certificate pc cannot read")?;

    // A new key makes database certificates from an earlier login useless: drop them.
    forget_db_certs(
        &home,
        &Profile {
            proxy: proxy.clone(),
            user: user.clone(),
            cluster: String::new(),
            mysql_port: None,
        },
    )?;
    home.write(&home.key_path(&proxy, &user), key.to_pem().as_bytes())?;
    home.write(&home.cert_path(&proxy, &user), resp.cert_pem.as_bytes())?;
    home.write(
        &home.host_ca_path(&proxy),
        portcullis_ca::cert::to_pem(&trusted.host_ca_der).as_bytes(),
    )?;
    home.save_profile(&Profile {
        proxy: proxy.clone(),
        user: user.clone(),
        cluster: trusted.ping.cluster_name.clone(),
        mysql_port: trusted.ping.mysql_port,
    })?;

    let now = OffsetDateTime::now_utc();
    outln!(
        "Logged in as {} to cluster {} via {}.",
        resp.user,
        trusted.ping.cluster_name,
        proxy
    );
    outln!("Roles:       {}", resp.roles.join(", "));
    outln!(
        "Valid until: {} ({})",
        output::time(identity.expires),
        validity(identity.expires, now)
    );
    outln!("Next:        pc db ls");
    Ok(())
}

/// Removes the database certificates of `p` and the service sections named after them.
fn forget_db_certs(home: &Home, p: &Profile) -> anyhow::Result<()> {
    let names = home.db_cert_names(p)?;
    if names.is_empty() {
        return Ok(());
    }
    let path = pg_service::default_path()?;
    pg_service::remove_file_sections(&path, |n| names.iter().any(|x| x == n))?;
    std::fs::remove_dir_all(home.db_dir(&p.proxy, &p.user))
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        })
        .with_context(|| format!("removing {}", home.db_dir(&p.proxy, &p.user).display()))?;
    Ok(())
}

#[derive(Serialize)]
struct DbCertStatus {
    name: String,
    protocol: String,
    db_user: String,
    db_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    expires: OffsetDateTime,
    valid: String,
}

#[derive(Serialize)]
struct StatusView {
    proxy: String,
    cluster: String,
    user: String,
    roles: Vec<String>,
    db_users: Vec<String>,
    db_names: Vec<String>,
    mfa_verified: bool,
    #[serde(with = "time::serde::rfc3339")]
    expires: OffsetDateTime,
    valid: String,
    databases: Vec<DbCertStatus>,
}

/// `pc status`.
pub fn status(format: Format) -> anyhow::Result<()> {
    let s = Session::load()?;
    let now = OffsetDateTime::now_utc();
    let mut databases = Vec::new();
    for name in s.home.db_cert_names(&s.profile)? {
        let path = s
            .home
            .db_cert_path(&s.profile.proxy, &s.profile.user, &name);
        let Ok(der) = profile::read_single_cert(&path) else {
            continue;
        };
        let Ok(id) = portcullis_ca::decode_user_identity(&der) else {
            continue;
        };
        let Some(route) = id.route else { continue };
        databases.push(DbCertStatus {
            name,
            protocol: route.protocol.to_string(),
            db_user: route.db_user,
            db_name: route.db_name,
            expires: id.expires,
            valid: validity(id.expires, now),
        });
    }
    let trait_of = |k: &str| s.identity.traits.get(k).cloned().unwrap_or_default();
    let view = StatusView {
        proxy: s.profile.proxy.clone(),
        cluster: s.identity.cluster_name.clone(),
        user: s.identity.username.clone(),
        roles: s.identity.roles.clone(),
        db_users: trait_of("db_users"),
        db_names: trait_of("db_names"),
        mfa_verified: s.identity.mfa_verified,
        expires: s.identity.expires,
        valid: validity(s.identity.expires, now),
        databases,
    };
    if format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        let none = |v: &[String]| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                v.join(", ")
            }
        };
        outln!("> Profile:   {}", view.proxy);
        outln!("  Cluster:   {}", view.cluster);
        outln!("  User:      {}", view.user);
        outln!("  Roles:     {}", none(&view.roles));
        outln!("  DB users:  {}", none(&view.db_users));
        outln!("  DB names:  {}", none(&view.db_names));
        outln!(
            "  MFA:       {}",
            if view.mfa_verified { "yes" } else { "no" }
        );
        outln!(
            "  Valid:     until {} ({})",
            output::time(view.expires),
            view.valid
        );
        if !view.databases.is_empty() {
            outln!("  Databases:");
            for d in &view.databases {
                outln!(
                    "    {}  {}  user={}{}  {}",
                    d.name,
                    d.protocol,
                    d.db_user,
                    d.db_name
                        .as_ref()
                        .map(|n| format!(" db={n}"))
                        .unwrap_or_default(),
                    d.valid
                );
            }
        }
    }
    if view.expires <= now {
        bail!(
            "your certificate has expired; run pc login --proxy={} --user={}",
            view.proxy,
            view.user
        );
    }
    Ok(())
}

/// `pc logout`.
pub fn logout() -> anyhow::Result<()> {
    let home = Home::from_env()?;
    let profile = match home.load_profile() {
        Ok(p) => p,
        // A damaged profile is still logged out of.
        Err(ProfileError::Corrupt { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let service_file = pg_service::default_path()?;
    let sections = pg_service::remove_file_sections(&service_file, |_| true)?;
    let had_keys = home.root().join("keys").exists() || home.profile_path().exists();
    home.remove_all()?;
    match profile {
        Some(p) => outln!("Logged out {} from {}.", p.user, p.proxy),
        None if had_keys => outln!("Removed stored keys and certificates."),
        None => outln!("Not logged in; nothing to remove."),
    }
    if !sections.is_empty() {
        outln!(
            "Removed {} from {}.",
            sections
                .iter()
                .map(|s| format!("[{s}]"))
                .collect::<Vec<_>>()
                .join(", "),
            service_file.display()
        );
    }
    Ok(())
}

/// `pc invite accept`.
pub async fn accept_invite(
    token: &str,
    proxy: &str,
    password_stdin: bool,
    otp: Option<String>,
    trust_args: &TrustArgs,
) -> anyhow::Result<()> {
    let home = Home::from_env()?;
    let trusted = trust_proxy(&home, proxy, trust_args).await?;
    let api = ApiClient::anonymous(proxy, std::slice::from_ref(&trusted.host_ca_der))?;
    let token_req = InviteRequest {
        token: token.trim().to_owned(),
    };
    let invite: InviteDescription = match api.post("/v1/invites/describe", &token_req).await {
        Ok(d) => d,
        Err(ClientError::Api { message, .. }) => bail!("the invite was refused: {message}"),
        Err(e) => return Err(proxy_error(proxy, e)),
    };
    outln!(
        "Invite for {} on cluster {} (valid until {}).",
        invite.user,
        trusted.ping.cluster_name,
        output::time(invite.expires)
    );
    if let Some(totp) = &invite.totp {
        outln!();
        outln!("Add this TOTP device to your authenticator app (as a QR code of the URI, or type the secret):");
        outln!("  URI:    {}", totp.uri);
        outln!("  Secret: {}", totp.secret);
        outln!();
    }
    let password = if password_stdin {
        prompt::stdin_line("password")?
    } else {
        let first = read_password(false, "New password (at least 12 characters): ")?;
        let again = read_password(false, "Repeat the new password: ")?;
        if *first != *again {
            bail!("the two passwords differ; run the command again");
        }
        first
    };
    let otp = read_otp(otp, invite.totp_required, false)?;
    let accept = AcceptInviteRequest {
        token: token_req.token.clone(),
        password: password.to_string(),
        otp,
    };
    let done: AcceptInviteResponse = match api.post("/v1/invites/accept", &accept).await {
        Ok(r) => r,
        Err(ClientError::Api { message, .. }) => bail!("setting the password failed: {message}"),
        Err(e) => return Err(proxy_error(proxy, e)),
    };
    drop(accept);
    outln!("Password set for {}.", done.user);
    outln!("Now run: pc login --proxy={proxy} --user={}", done.user);
    Ok(())
}
