//! Where things live on disk, agreed between the daemon and the command-line tools.

use std::path::{Path, PathBuf};

/// Whether this process runs as root (real uid 0).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The data directory when none is configured: `$PORTCULLIS_DATA_DIR`, else
/// `/var/lib/portcullis` for root, else `~/.local/share/portcullis`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PORTCULLIS_DATA_DIR") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME") {
        Some(home) if !running_as_root() => PathBuf::from(home).join(".local/share/portcullis"),
        _ => PathBuf::from("/var/lib/portcullis"),
    }
}

/// Where auth leaves what `pcctl` on the same host needs.
pub fn admin_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("admin")
}

/// The admin identity file auth writes for `pcctl` on its host.
pub fn admin_identity_path(data_dir: &Path) -> PathBuf {
    admin_dir(data_dir).join("identity.pem")
}

/// The file holding auth's actual listen address (useful with port 0).
pub fn auth_addr_path(data_dir: &Path) -> PathBuf {
    admin_dir(data_dir).join("auth_addr")
}
