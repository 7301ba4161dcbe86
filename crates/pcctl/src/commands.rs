//! What each command does.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use portcullis_api::{
    ClusterStatus, CreateTokenRequest, CreateTokenResponse, CreateUserRequest, CreateUserResponse,
    InviteView, SignDbCertRequest, SignDbCertResponse, SignDbClientCertRequest, TokenView,
    UpdateUserRequest, UserView,
};
use portcullis_ca::KeyPair;
use portcullis_client::api::{segment, ApiClient};
use portcullis_client::files;
use portcullis_core::duration::Duration;
use portcullis_core::role::Role;

use crate::cli::{
    AuthCmd, Cli, Command, Format, LocksCmd, SignArgs, SignFormat, TokensCmd, UsersCmd,
};
use crate::context;
use crate::output::{structured, table, time};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let api = context::client(&cli)?;
    match cli.command {
        Command::Status(f) => status(&api, f.format).await,
        Command::Users(cmd) => users(&api, cmd).await,
        Command::Create(args) => create(&api, &args.file, args.force).await,
        Command::Get(args) => get(&api, &args.kind, args.name.as_deref(), args.format).await,
        Command::Rm(args) => rm(&api, &args.resource).await,
        Command::Tokens(cmd) => tokens(&api, cmd).await,
        Command::Auth(AuthCmd::Sign(args)) => sign(&api, args).await,
        Command::Locks(cmd) => locks(&api, cmd).await,
        Command::Audit(cmd) => crate::audit::run(&api, cmd).await,
    }
}

async fn status(api: &ApiClient, format: Format) -> anyhow::Result<()> {
    let s: ClusterStatus = api.get("/v1/cluster").await?;
    if structured(format, &s)? {
        return Ok(());
    }
    println!("Cluster:  {}", s.cluster_name);
    println!("Version:  {}", s.version);
    println!(
        "Users:    {}   Roles: {}   Join tokens: {}",
        s.users, s.roles, s.tokens
    );
    println!("Certificate authorities:");
    for ca in &s.cas {
        println!(
            "  {:<5} pin {}  expires {}",
            ca.kind,
            ca.pin,
            time(ca.not_after)
        );
    }
    println!("  ssh   {}", s.ssh_user_ca_fingerprint);
    Ok(())
}

fn traits(db_users: &[String], db_names: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut t = BTreeMap::new();
    if !db_users.is_empty() {
        t.insert("db_users".to_owned(), db_users.to_vec());
    }
    if !db_names.is_empty() {
        t.insert("db_names".to_owned(), db_names.to_vec());
    }
    t
}

fn print_invite(user: &str, invite: &InviteView) {
    println!(
        "Invite for {user:?} (one use, valid until {}):",
        time(invite.expires)
    );
    println!("  {}", invite.token);
    println!("Send it to {user} privately. They set a password (and enrol TOTP) with:");
    println!(
        "  pc invite accept {} --proxy=PROXY_HOST:3080",
        invite.token
    );
}

async fn users(api: &ApiClient, cmd: UsersCmd) -> anyhow::Result<()> {
    match cmd {
        UsersCmd::Add {
            name,
            roles,
            db_users,
            db_names,
            password_stdin,
            format,
        } => {
            let password = if password_stdin {
                let mut s = String::new();
                std::io::stdin()
                    .take(4096)
                    .read_to_string(&mut s)
                    .context("reading the password from standard input")?;
                let p = s.trim_end_matches(['\r', '\n']).to_owned();
                if p.is_empty() {
                    bail!("--password-stdin: standard input was empty; pipe the password in");
                }
                Some(p)
            } else {
                None
            };
            let req = CreateUserRequest {
                name: name.clone(),
                roles,
                traits: traits(&db_users, &db_names),
                password,
            };
            let resp: CreateUserResponse = api.post("/v1/users", &req).await?;
            if structured(format, &resp)? {
                return Ok(());
            }
            println!(
                "User {name:?} created with roles {}.",
                resp.user.roles.join(",")
            );
            if let Some(invite) = &resp.invite {
                print_invite(&name, invite);
            }
            if let Some(totp) = &resp.totp {
                println!("Password set. TOTP device enrolled (shown once; store it in an authenticator):");
                println!("  secret: {}", totp.secret);
                println!("  uri:    {}", totp.uri);
            }
            Ok(())
        }
        UsersCmd::Ls(f) => {
            let users: Vec<UserView> = api.get("/v1/users").await?;
            if structured(f.format, &users)? {
                return Ok(());
            }
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    let traits = u
                        .traits
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.join(",")))
                        .collect::<Vec<_>>()
                        .join(" ");
                    let status = match u.locked_until {
                        Some(t) => format!("locked until {}", time(t)),
                        None => u.status.clone(),
                    };
                    vec![
                        u.name.clone(),
                        u.roles.join(","),
                        status,
                        if u.totp_enrolled { "yes" } else { "no" }.into(),
                        traits,
                    ]
                })
                .collect();
            table(&["User", "Roles", "Status", "TOTP", "Traits"], &rows);
            Ok(())
        }
        UsersCmd::Update {
            name,
            set_roles,
            set_db_users,
            set_db_names,
        } => {
            let mut t = BTreeMap::new();
            if let Some(v) = set_db_users {
                t.insert(
                    "db_users".to_owned(),
                    v.into_iter().filter(|s| !s.is_empty()).collect(),
                );
            }
            if let Some(v) = set_db_names {
                t.insert(
                    "db_names".to_owned(),
                    v.into_iter().filter(|s| !s.is_empty()).collect(),
                );
            }
            if set_roles.is_none() && t.is_empty() {
                bail!("nothing to change: give --set-roles, --set-db-users or --set-db-names");
            }
            let req = UpdateUserRequest {
                roles: set_roles,
                traits: if t.is_empty() { None } else { Some(t) },
            };
            let u: UserView = api
                .put(&format!("/v1/users/{}", segment(&name)), &req)
                .await?;
            println!("User {:?} updated: roles {}.", u.name, u.roles.join(","));
            Ok(())
        }
        UsersCmd::Reset { name } => {
            let invite: InviteView = api
                .post(
                    &format!("/v1/users/{}/reset", segment(&name)),
                    &serde_json::json!({}),
                )
                .await?;
            println!("User {name:?} reset: password and TOTP cleared, lockout lifted.");
            print_invite(&name, &invite);
            Ok(())
        }
        UsersCmd::Rm { name } => {
            api.delete(&format!("/v1/users/{}", segment(&name))).await?;
            println!("User {name:?} removed.");
            Ok(())
        }
    }
}

async fn create(api: &ApiClient, file: &Path, force: bool) -> anyhow::Result<()> {
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().take(1024 * 1024).read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let roles =
        Role::from_yaml_stream(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if roles.is_empty() {
        bail!("{}: no resources found", file.display());
    }
    for role in roles {
        let path = format!("/v1/roles/{}?force={force}", segment(role.name()));
        let _: serde_json::Value = api.put(&path, &role).await?;
        println!(
            "role {:?} {}",
            role.name(),
            if force { "written" } else { "created" }
        );
    }
    Ok(())
}

async fn get(
    api: &ApiClient,
    kind: &str,
    name: Option<&str>,
    format: Format,
) -> anyhow::Result<()> {
    match kind {
        "roles" | "role" => {
            let roles: Vec<serde_json::Value> = match name {
                Some(n) => vec![api.get(&format!("/v1/roles/{}", segment(n))).await?],
                None => api.get("/v1/roles").await?,
            };
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&roles)?),
                Format::Yaml => {
                    for (i, r) in roles.iter().enumerate() {
                        if i > 0 {
                            println!("---");
                        }
                        print!("{}", serde_norway::to_string(r)?);
                    }
                }
                Format::Text => {
                    let mut rows = Vec::new();
                    for v in roles {
                        let r: Role = serde_json::from_value(v)?;
                        let labels = r
                            .spec
                            .allow
                            .db_labels
                            .iter()
                            .map(|(k, v)| format!("{k}={}", v.join("|")))
                            .collect::<Vec<_>>()
                            .join(" ");
                        let rules = r
                            .spec
                            .allow
                            .rules
                            .iter()
                            .map(|rule| {
                                format!("{}:{}", rule.resources.join(","), rule.verbs.join(","))
                            })
                            .collect::<Vec<_>>()
                            .join(" ");
                        rows.push(vec![
                            r.metadata.name.clone(),
                            labels,
                            r.spec.allow.db_users.join(","),
                            r.spec.allow.db_names.join(","),
                            rules,
                        ]);
                    }
                    table(
                        &["Role", "DB labels", "DB users", "DB names", "Rules"],
                        &rows,
                    );
                }
            }
            Ok(())
        }
        "users" | "user" => match name {
            Some(n) => {
                let u: UserView = api.get(&format!("/v1/users/{}", segment(n))).await?;
                if !structured(format, &u)? {
                    println!("{}", serde_norway::to_string(&u)?);
                }
                Ok(())
            }
            None => users(api, UsersCmd::Ls(crate::cli::FormatArg { format })).await,
        },
        "tokens" | "token" => tokens(api, TokensCmd::Ls(crate::cli::FormatArg { format })).await,
        other => bail!("unknown resource kind {other:?}: use roles, users or tokens"),
    }
}

async fn rm(api: &ApiClient, resource: &str) -> anyhow::Result<()> {
    let Some((kind, name)) = resource.split_once('/') else {
        bail!("name the resource as KIND/NAME, e.g. role/developer, user/alice, token/3f2a9c");
    };
    match kind {
        "role" | "roles" => {
            api.delete(&format!("/v1/roles/{}", segment(name))).await?;
            println!("role {name:?} removed");
        }
        "user" | "users" => {
            api.delete(&format!("/v1/users/{}", segment(name))).await?;
            println!("user {name:?} removed");
        }
        "token" | "tokens" => {
            api.delete(&format!("/v1/tokens/{}", segment(name))).await?;
            println!("token {name:?} removed");
        }
        other => bail!("unknown resource kind {other:?}: use role, user or token"),
    }
    Ok(())
}

async fn tokens(api: &ApiClient, cmd: TokensCmd) -> anyhow::Result<()> {
    match cmd {
        TokensCmd::Add {
            kind,
            ttl,
            single_use,
            format,
        } => {
            let ttl = Duration::from_str(&ttl).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
            let req = CreateTokenRequest {
                roles: kind,
                ttl_seconds: Some(ttl.as_std().as_secs()),
                single_use,
            };
            let resp: CreateTokenResponse = api.post("/v1/tokens", &req).await?;
            if structured(format, &resp)? {
                return Ok(());
            }
            let proxy = resp
                .proxy_addr
                .clone()
                .unwrap_or_else(|| "PROXY_HOST:3080".into());
            println!(
                "Join token for {} (id {}, valid until {}{}):",
                resp.view.roles.join(","),
                resp.view.id,
                time(resp.view.expires),
                if resp.view.single_use {
                    ", single use"
                } else {
                    ""
                }
            );
            println!("  {}", resp.token);
            println!();
            println!("Start a database agent with it:");
            println!(
                "  portcullis start --roles={} --token={} --ca-pin={} --proxy={proxy} -c /etc/portcullis.yaml",
                resp.view.roles.join(","),
                resp.token,
                resp.ca_pin
            );
            println!("(list the databases it serves under db_service.databases in that file)");
            Ok(())
        }
        TokensCmd::Ls(f) => {
            let list: Vec<TokenView> = api.get("/v1/tokens").await?;
            if structured(f.format, &list)? {
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.roles.join(","),
                        time(t.expires),
                        if t.single_use { "yes" } else { "no" }.into(),
                    ]
                })
                .collect();
            table(&["Id", "Type", "Expires", "Single use"], &rows);
            Ok(())
        }
        TokensCmd::Rm { id } => {
            api.delete(&format!("/v1/tokens/{}", segment(&id))).await?;
            println!("token {id:?} removed");
            Ok(())
        }
    }
}

fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

async fn sign(api: &ApiClient, args: SignArgs) -> anyhow::Result<()> {
    let ttl = Duration::from_str(&args.ttl).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
    let crt = with_ext(&args.out, "crt");
    let key_path = with_ext(&args.out, "key");
    let cas = with_ext(&args.out, "cas");
    let writes: Vec<&PathBuf> = match args.format {
        SignFormat::Mongodb => vec![&crt, &cas],
        _ => vec![&crt, &key_path, &cas],
    };
    if !args.overwrite {
        if let Some(existing) = writes.iter().find(|p| p.exists()) {
            bail!(
                "{} exists; pass --overwrite to replace it",
                existing.display()
            );
        }
    }
    let key = KeyPair::generate()?;
    let public_key = key.public_key().to_pem();
    let resp: SignDbCertResponse = match args.format {
        SignFormat::Db | SignFormat::Mongodb => {
            if args.host.is_empty() {
                bail!("--host is required: the DNS names or IPs clients reach the database by, e.g. --host=db.internal,10.0.0.5");
            }
            api.post(
                "/v1/certs/db",
                &SignDbCertRequest {
                    hosts: args.host.clone(),
                    public_key,
                    ttl_seconds: ttl.as_std().as_secs(),
                },
            )
            .await?
        }
        SignFormat::DbClient => {
            let Some(db_user) = args.db_user.clone() else {
                bail!("--db-user is required with --format=db-client");
            };
            api.post(
                "/v1/certs/db-client",
                &SignDbClientCertRequest {
                    db_user,
                    public_key,
                    ttl_seconds: ttl.as_std().as_secs(),
                },
            )
            .await?
        }
    };
    match args.format {
        SignFormat::Mongodb => {
            let combined = format!("{}{}", resp.cert_pem, key.to_pem().as_str());
            files::write_private(&crt, combined.as_bytes())
                .with_context(|| format!("writing {}", crt.display()))?;
        }
        _ => {
            files::write_public(&crt, resp.cert_pem.as_bytes())
                .with_context(|| format!("writing {}", crt.display()))?;
            files::write_private(&key_path, key.to_pem().as_bytes())
                .with_context(|| format!("writing {}", key_path.display()))?;
        }
    }
    files::write_public(&cas, resp.ca_pem.as_bytes())
        .with_context(|| format!("writing {}", cas.display()))?;
    for p in writes {
        println!("wrote {}", p.display());
    }
    println!("valid for {ttl}; see docs/database-certificates.md for the server settings.");
    Ok(())
}

async fn locks(api: &ApiClient, cmd: LocksCmd) -> anyhow::Result<()> {
    match cmd {
        LocksCmd::Add { user, message, ttl } => {
            let ttl_seconds = match ttl {
                Some(t) => Some(
                    Duration::from_str(&t)
                        .map_err(|e| anyhow::anyhow!("--ttl: {e}"))?
                        .as_std()
                        .as_secs(),
                ),
                None => None,
            };
            let lock: portcullis_api::LockView = api
                .post(
                    "/v1/locks",
                    &portcullis_api::CreateLockRequest {
                        user: user.clone(),
                        message,
                        ttl_seconds,
                    },
                )
                .await?;
            println!(
                "Locked {user:?} (lock {}{}). Live sessions end within seconds; new ones are refused.",
                lock.id,
                lock.expires.map(|e| format!(", until {}", time(e))).unwrap_or_default()
            );
            Ok(())
        }
        LocksCmd::Ls(f) => {
            let list: Vec<portcullis_api::LockView> = api.get("/v1/locks").await?;
            if structured(f.format, &list)? {
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|l| {
                    vec![
                        l.id.clone(),
                        l.user.clone(),
                        l.expires.map(time).unwrap_or_else(|| "never".into()),
                        l.created_by.clone(),
                        l.message.clone(),
                    ]
                })
                .collect();
            table(&["Id", "User", "Expires", "By", "Message"], &rows);
            Ok(())
        }
        LocksCmd::Rm { id } => {
            api.delete(&format!("/v1/locks/{}", segment(&id))).await?;
            println!("lock {id:?} removed");
            Ok(())
        }
    }
}
