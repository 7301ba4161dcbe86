//! `pc`: log in to a Portcullis cluster and reach its databases. See `pc --help`.

#[macro_use]
mod output;
mod cli;
mod db;
mod login;
mod prompt;
mod session;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli: cli::Cli = portcullis_client::parse_args("pc");
    portcullis_client::cli::run_main(run(cli))
}

async fn run(cli: cli::Cli) -> anyhow::Result<()> {
    use cli::{Command, DbCmd, InviteCmd, ProxyCmd};
    match cli.command {
        Command::Login(args) => login::login(args).await,
        Command::Status(f) => login::status(f.format),
        Command::Logout => login::logout(),
        Command::Invite(InviteCmd::Accept {
            token,
            proxy,
            password_stdin,
            otp,
            trust,
        }) => login::accept_invite(&token, &proxy, password_stdin, otp, &trust).await,
        Command::Db(DbCmd::Ls(f)) => db::ls(f.format).await,
        Command::Db(DbCmd::Login(t)) => db::login(&t).await,
        Command::Db(DbCmd::Logout { name }) => db::logout(name.as_deref()),
        Command::Db(DbCmd::Env { name }) => db::env(&name),
        Command::Db(DbCmd::Config { name, format }) => db::config(&name, format),
        Command::Db(DbCmd::Connect(t)) => db::connect(&t).await,
        Command::Proxy(ProxyCmd::Db { target, port }) => db::proxy(&target, port).await,
    }
}
