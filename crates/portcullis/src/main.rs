//! `portcullis`: the daemon. See `portcullis --help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::config::{Config, LogFormat, LogLevel};

/// Portcullis: identity-aware access to databases behind your network edge.
#[derive(Parser)]
#[command(name = "portcullis", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the services the config file switches on (with no file: a single-node auth).
    Start(Box<StartArgs>),
    /// Run a single-node cluster for a first try: auth, proxy and agent, a PostgreSQL it
    /// starts itself, and a first user; prints the commands to log in and query.
    Demo(DemoArgs),
    /// Print a complete, commented sample config with every default.
    Configure,
    /// Print the version.
    Version,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Where the demo keeps its state (and its PostgreSQL). Default: the data dir with -demo.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct StartArgs {
    /// Config file (YAML). `portcullis configure` prints a sample.
    #[arg(short, long, env = "PORTCULLIS_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides data_dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides cluster_name.
    #[arg(long)]
    cluster_name: Option<String>,
    /// Overrides auth_service.listen_addr.
    #[arg(long)]
    auth_listen: Option<SocketAddr>,
    /// Which services to run, overriding the file: comma-separated auth,proxy,db.
    #[arg(long, value_delimiter = ',')]
    roles: Option<Vec<String>>,
    /// Join token for a db or proxy service (db_service.join_token).
    #[arg(long)]
    token: Option<String>,
    /// The proxy address an agent dials (db_service.proxy_addr).
    #[arg(long)]
    proxy: Option<String>,
    /// The cluster's host CA pin (db_service.ca_pin).
    #[arg(long)]
    ca_pin: Option<String>,
    /// Overrides log.level.
    #[arg(long, value_enum)]
    log_level: Option<CliLogLevel>,
    /// Overrides log.format.
    #[arg(long, value_enum)]
    log_format: Option<CliLogFormat>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CliLogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CliLogFormat {
    Text,
    Json,
}

fn apply_flags(config: &mut Config, a: &StartArgs) -> Result<(), String> {
    if let Some(d) = &a.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(n) = &a.cluster_name {
        config.cluster_name = n.clone();
    }
    if let Some(l) = a.auth_listen {
        config.auth_service.listen_addr = l;
    }
    if let Some(roles) = &a.roles {
        config.auth_service.enabled = false;
        config.proxy_service.enabled = false;
        config.db_service.enabled = false;
        for r in roles {
            match r.trim() {
                "auth" => config.auth_service.enabled = true,
                "proxy" => config.proxy_service.enabled = true,
                "db" => config.db_service.enabled = true,
                other => {
                    return Err(format!(
                        "--roles: unknown service {other:?}; use auth, proxy, db"
                    ))
                }
            }
        }
    }
    if let Some(t) = &a.token {
        config.db_service.join_token = Some(t.clone());
    }
    if let Some(p) = &a.proxy {
        config.db_service.proxy_addr = Some(p.clone());
    }
    if let Some(p) = &a.ca_pin {
        config.db_service.ca_pin = Some(p.clone());
    }
    if let Some(l) = a.log_level {
        config.log.level = match l {
            CliLogLevel::Trace => LogLevel::Trace,
            CliLogLevel::Debug => LogLevel::Debug,
            CliLogLevel::Info => LogLevel::Info,
            CliLogLevel::Warn => LogLevel::Warn,
            CliLogLevel::Error => LogLevel::Error,
        };
    }
    if let Some(f) = a.log_format {
        config.log.format = match f {
            CliLogFormat::Text => LogFormat::Text,
            CliLogFormat::Json => LogFormat::Json,
        };
    }
    Ok(())
}

async fn start(args: StartArgs) -> anyhow::Result<()> {
    let (mut config, source) = match &args.config {
        Some(path) => (Config::load(path)?, path.display().to_string()),
        None => (Config::default(), "defaults".to_owned()),
    };
    apply_flags(&mut config, &args).map_err(anyhow::Error::msg)?;
    config.validate(&source)?;
    portcullis::logging::init(&config.log);
    let running = portcullis::run::start(&config).await?;
    if let Some(addr) = running.auth_addr {
        eprintln!(
            "Portcullis auth for cluster {:?} is listening on {addr}.\nAdminister it with: pcctl -d {} status",
            config.cluster_name,
            config.data_dir.display()
        );
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    use portcullis::demo;
    let data_dir = args.data_dir.unwrap_or_else(|| {
        let mut d = portcullis::config::default_data_dir().into_os_string();
        d.push("-demo");
        PathBuf::from(d)
    });
    portcullis_client::files::create_private_dir(&data_dir)?;
    let pg_dir = data_dir.join("postgres");
    std::fs::create_dir_all(&pg_dir)?;
    let port_file = pg_dir.join("port");
    let port: u16 = match std::fs::read_to_string(&port_file)
        .ok()
        .and_then(|p| p.trim().parse().ok())
    {
        Some(p) => p,
        None => {
            let p = std::net::TcpListener::bind(("127.0.0.1", 15432))
                .or_else(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())?;
            std::fs::write(&port_file, p.to_string())?;
            p
        }
    };
    let config = demo::config(&data_dir, port);
    portcullis::logging::init(&config.log);
    let running = portcullis::run::start(&config).await?;
    let auth = running
        .auth
        .clone()
        .ok_or_else(|| anyhow::anyhow!("internal: the demo runs auth"))?;
    if !pg_dir.join("tls/server.crt").exists() {
        demo::write_server_cert(&auth, &pg_dir)?;
    }
    // PostgreSQL runs as its own user: let it traverse (not list) the data dir to reach its
    // directory; everything secret in there is 0600/0700 on its own.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o711))?;
    }
    let pg_dir2 = pg_dir.clone();
    let pg = tokio::task::spawn_blocking(move || demo::start_postgres(&pg_dir2)).await??;
    let pw_file = data_dir.join("demo-password");
    let password = match std::fs::read_to_string(&pw_file) {
        Ok(p) => p.trim().to_owned(),
        Err(_) => {
            let p = portcullis_auth::secret::new_token()
                .chars()
                .take(20)
                .collect::<String>();
            let req = portcullis_api::CreateUserRequest {
                name: demo::DEMO_USER.into(),
                roles: vec!["access".into()],
                traits: [
                    ("db_users".to_owned(), vec!["app".to_owned()]),
                    ("db_names".to_owned(), vec!["shop".to_owned()]),
                ]
                .into(),
                password: Some(p.clone()),
            };
            auth.create_user(req, "portcullis demo")
                .await
                .map_err(|e| anyhow::anyhow!("creating the demo user: {e}"))?;
            portcullis_client::files::write_private(&pw_file, p.as_bytes())?;
            p
        }
    };
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .unwrap_or_default();
    let proxy = running
        .proxy_addr
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!(
        "\nPortcullis demo is running (Ctrl-C stops it).\n\
         \n  cluster: demo   proxy: {proxy}   data: {dd}\n  database {db}: PostgreSQL on 127.0.0.1:{port}, certificate login via the cluster's db CA\n  user: {user}   password: {password}   (second factor off in the demo)\n\
         \nIn another terminal:\n\
         \n  printf '%s\\n' '{password}' | {pc} login --proxy={proxy} --user={user} --password-stdin --ca-pin={pin}\n  {pc} db ls\n  {pc} db login {db} --db-user=app --db-name=shop\n  psql \"service={db}\" -c 'select current_user, current_database()'\n\
         \nAdminister it:  {pcctl} -d {dd} status\n",
        dd = data_dir.display(),
        db = demo::DEMO_DB,
        user = demo::DEMO_USER,
        pc = bin.join("pc").display(),
        pcctl = bin.join("pcctl").display(),
        pin = auth.host_ca().pin(),
    );
    wait_for_signal().await;
    running.stop().await;
    drop(pg);
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the daemon's async main on a multi-threaded runtime; errors (with their chain) go to
/// stderr.
fn run_daemon(main: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli: Cli = portcullis_client::parse_args("portcullis");
    match cli.command {
        Command::Configure => {
            print!("{}", portcullis::sample::SAMPLE_CONFIG);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("portcullis {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Demo(args) => run_daemon(demo(args)),
        Command::Start(args) => run_daemon(start(*args)),
    }
}
