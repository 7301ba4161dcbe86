//! What the command-line tools (`pcctl`, `pc`) share: a client for the auth API over mutual
//! TLS ([`api`]), and writing files that hold secrets ([`files`]); for `pc`, the login state on
//! disk ([`profile`]), trust on first use of a proxy ([`trust`]), the libpq service file
//! ([`pg_service`]) and the local database tunnel ([`local_proxy`]).
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod files;
pub mod local_proxy;
pub mod paths;
pub mod pg_service;
pub mod profile;
pub mod trust;

/// Parses the command line; a usage error becomes one line on stderr (with a pointer to
/// `--help`) and exit code 2, while `--help` and `--version` print as usual.
pub fn parse_args<T: clap::Parser>(program: &str) -> T {
    match T::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("error: {first}; see `{program} --help`");
            std::process::exit(2);
        }
    }
}
