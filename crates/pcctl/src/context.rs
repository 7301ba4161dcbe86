//! Finding the auth service and the identity to talk to it with.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use portcullis_ca::identity_file::IdentityFile;
use portcullis_client::api::ApiClient;
use portcullis_client::paths;

use crate::cli::Cli;

fn data_dir_from_config(path: &Path) -> anyhow::Result<Option<PathBuf>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    let value: serde_norway::Value = serde_norway::from_str(&text)
        .with_context(|| format!("parsing config {}", path.display()))?;
    Ok(value
        .get("data_dir")
        .and_then(|v| v.as_str())
        .map(PathBuf::from))
}

/// Connects to auth as the configured identity.
pub fn client(cli: &Cli) -> anyhow::Result<ApiClient> {
    let data_dir = match (&cli.data_dir, &cli.config) {
        (Some(d), _) => d.clone(),
        (None, Some(c)) => data_dir_from_config(c)?.unwrap_or_else(paths::default_data_dir),
        (None, None) => paths::default_data_dir(),
    };
    let identity_path = cli
        .identity
        .clone()
        .unwrap_or_else(|| paths::admin_identity_path(&data_dir));
    let text = match std::fs::read_to_string(&identity_path) {
        Ok(t) => t,
        Err(e) if cli.identity.is_none() => bail!(
            "no admin identity at {} ({e}); run pcctl on the auth host (as the user running \
             portcullis, with -d DATA_DIR if it is not the default), or pass --auth-server and --identity",
            identity_path.display()
        ),
        Err(e) => bail!("reading identity {}: {e}", identity_path.display()),
    };
    let identity = IdentityFile::from_pem(&text)
        .with_context(|| format!("identity {}", identity_path.display()))?;
    let addr = match &cli.auth_server {
        Some(a) => a.clone(),
        None => {
            let p = paths::auth_addr_path(&data_dir);
            std::fs::read_to_string(&p)
                .map(|s| s.trim().to_owned())
                .with_context(|| {
                    format!(
                        "reading {} (is auth running?); or pass --auth-server",
                        p.display()
                    )
                })?
        }
    };
    Ok(ApiClient::with_identity(&addr, &identity)?)
}
