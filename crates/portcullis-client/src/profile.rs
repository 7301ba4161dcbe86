//! The user's login state on disk, under `~/.portcullis/` (`$PORTCULLIS_HOME` overrides):
//!
//! ```text
//! profile.json                      current proxy, user and cluster
//! known_proxies                     trusted host CA pin per proxy (see [`crate::trust`])
//! cas/<proxy>.pem                   the proxy's host CA certificate
//! keys/<proxy>/<user>.key           the private key (0600)
//! keys/<proxy>/<user>.crt           the user certificate
//! keys/<proxy>/<user>-db/<db>.crt   database certificates (same key)
//! ```
//!
//! Directories are 0700 and every file is written with [`crate::files::write_private`], so a
//! reader never sees half a key and no other user can read any of it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use portcullis_ca::identity_file::{IdentityFile, Zeroizing};
use portcullis_ca::KeyPair;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::files;

/// Why the profile store could not be used.
#[derive(Debug, Error)]
pub enum ProfileError {
    /// Neither `$PORTCULLIS_HOME` nor `$HOME` is set.
    #[error("cannot find the home directory: set HOME or PORTCULLIS_HOME")]
    NoHome,
    /// No login yet (or after `pc logout`).
    #[error("not logged in; run pc login --proxy=HOST:PORT --user=NAME")]
    NotLoggedIn,
    /// A name that would end up in a path is unsafe.
    #[error("{0}")]
    BadName(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// A stored file is damaged.
    #[error("{path} is damaged ({detail}); run pc logout, then pc login again")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, ProfileError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ProfileError + '_ {
    move |source| ProfileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The current login: which proxy, as whom, in which cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The proxy's `host:port`, as given to `pc login --proxy`.
    pub proxy: String,
    /// The login name.
    pub user: String,
    /// The cluster's name, from the proxy's ping.
    pub cluster: String,
    /// The proxy's MySQL port, from its ping (MySQL clients connect there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql_port: Option<u16>,
}

/// A proxy address as a file name: `host:port` becomes `host_port`. libpq reads a `sslkey`
/// path containing a colon as `engine:key` ("could not load SSL engine"), so paths handed to
/// PostgreSQL clients must not contain one.
pub fn path_component(proxy: &str) -> String {
    proxy.replace([':', '[', ']'], "_")
}

/// Checks a proxy address that ends up in file names: `host:port`, host made of letters,
/// digits, `.` and `-` (or a bracketed IPv6 address), port a number.
pub fn validate_proxy_addr(addr: &str) -> Result<()> {
    let bad = |why: &str| {
        ProfileError::BadName(format!(
            "proxy address {addr:?} {why}; pass --proxy=HOST:PORT, e.g. --proxy=proxy.example.com:3080"
        ))
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("has no valid port"));
    }
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad("has a port out of range"));
    }
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !host.is_empty()
            && host.len() <= 253
            && !host.starts_with(['.', '-'])
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    if !host_ok {
        return Err(bad("has an invalid host name"));
    }
    Ok(())
}

/// Checks a user or database name that ends up in file names and service-file sections.
pub fn validate_name(kind: &'static str, name: &str) -> Result<()> {
    portcullis_core::names::validate_name(kind, name)
        .map_err(|e| ProfileError::BadName(e.to_string()))
}

/// The profile store rooted at one directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `$PORTCULLIS_HOME`, else `$HOME/.portcullis`, made absolute: its paths are written
    /// into the service file, which libpq reads from any working directory.
    pub fn from_env() -> Result<Self> {
        let root = match std::env::var_os("PORTCULLIS_HOME").filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|h| PathBuf::from(h).join(".portcullis"))
                .ok_or(ProfileError::NoHome)?,
        };
        let root = std::path::absolute(&root).map_err(io_err(&root))?;
        Ok(Self::at(root))
    }

    /// A store at `root` (tests, `--home`).
    pub fn at(root: PathBuf) -> Self {
        Self { root }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `profile.json`.
    pub fn profile_path(&self) -> PathBuf {
        self.root.join("profile.json")
    }

    /// `known_proxies`.
    pub fn known_proxies_path(&self) -> PathBuf {
        self.root.join("known_proxies")
    }

    /// `cas/<proxy>.pem`: the proxy's host CA certificate.
    pub fn host_ca_path(&self, proxy: &str) -> PathBuf {
        self.root
            .join("cas")
            .join(format!("{}.pem", path_component(proxy)))
    }

    /// `keys/<proxy>/`.
    pub fn proxy_key_dir(&self, proxy: &str) -> PathBuf {
        self.root.join("keys").join(path_component(proxy))
    }

    /// `keys/<proxy>/<user>.key`.
    pub fn key_path(&self, proxy: &str, user: &str) -> PathBuf {
        self.proxy_key_dir(proxy).join(format!("{user}.key"))
    }

    /// `keys/<proxy>/<user>.crt`.
    pub fn cert_path(&self, proxy: &str, user: &str) -> PathBuf {
        self.proxy_key_dir(proxy).join(format!("{user}.crt"))
    }

    /// `keys/<proxy>/<user>-db/`.
    pub fn db_dir(&self, proxy: &str, user: &str) -> PathBuf {
        self.proxy_key_dir(proxy).join(format!("{user}-db"))
    }

    /// `keys/<proxy>/<user>-db/<db>.crt`.
    pub fn db_cert_path(&self, proxy: &str, user: &str, db: &str) -> PathBuf {
        self.db_dir(proxy, user).join(format!("{db}.crt"))
    }

    /// Creates `dir` and every directory between it and the root with mode 0700.
    pub fn ensure_dir(&self, dir: &Path) -> Result<()> {
        files::create_private_dir(&self.root).map_err(io_err(&self.root))?;
        if let Ok(rel) = dir.strip_prefix(&self.root) {
            let mut cur = self.root.clone();
            for part in rel.components() {
                cur.push(part);
                files::create_private_dir(&cur).map_err(io_err(&cur))?;
            }
        } else {
            files::create_private_dir(dir).map_err(io_err(dir))?;
        }
        Ok(())
    }

    /// Writes `contents` to `path` (0600, atomically), creating its directories.
    pub fn write(&self, path: &Path, contents: &[u8]) -> Result<()> {
        if let Some(parent) = path.parent() {
            self.ensure_dir(parent)?;
        }
        files::write_private(path, contents).map_err(io_err(path))
    }

    /// The current profile, or `None` when not logged in.
    pub fn load_profile(&self) -> Result<Option<Profile>> {
        let path = self.profile_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let profile: Profile = serde_json::from_str(&text).map_err(|e| ProfileError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        validate_proxy_addr(&profile.proxy)?;
        validate_name("user", &profile.user)?;
        Ok(Some(profile))
    }

    /// The current profile; an error telling to log in when there is none.
    pub fn require_profile(&self) -> Result<Profile> {
        self.load_profile()?.ok_or(ProfileError::NotLoggedIn)
    }

    /// Saves `profile` as the current one.
    pub fn save_profile(&self, profile: &Profile) -> Result<()> {
        let mut json = serde_json::to_vec_pretty(profile).map_err(|e| ProfileError::Corrupt {
            path: self.profile_path(),
            detail: e.to_string(),
        })?;
        json.push(b'\n');
        self.write(&self.profile_path(), &json)
    }

    /// Reads the key, the user certificate and the host CA of `profile`.
    pub fn load_credentials(&self, profile: &Profile) -> Result<Credentials> {
        let key_path = self.key_path(&profile.proxy, &profile.user);
        let key_pem = Zeroizing::new(read_missing_is_logout(&key_path)?);
        let key = KeyPair::from_pem(&key_pem).map_err(|e| ProfileError::Corrupt {
            path: key_path.clone(),
            detail: e.to_string(),
        })?;
        let cert_path = self.cert_path(&profile.proxy, &profile.user);
        let cert_der = read_single_cert(&cert_path)?;
        let ca_path = self.host_ca_path(&profile.proxy);
        let host_ca_der = read_single_cert(&ca_path)?;
        Ok(Credentials {
            key,
            key_path,
            cert_der,
            cert_path,
            host_ca_der,
            host_ca_path: ca_path,
        })
    }

    /// Names of the databases with a certificate stored for `profile`, sorted.
    pub fn db_cert_names(&self, profile: &Profile) -> Result<Vec<String>> {
        let dir = self.db_dir(&profile.proxy, &profile.user);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let file = entry.file_name();
            if let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".crt")) {
                if validate_name("database", name).is_ok() {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Removes everything stored for one proxy and user: key, certificates, database
    /// certificates. Missing files are fine.
    pub fn remove_login(&self, proxy: &str, user: &str) -> Result<()> {
        remove_file(&self.key_path(proxy, user))?;
        remove_file(&self.cert_path(proxy, user))?;
        remove_dir(&self.db_dir(proxy, user))?;
        let dir = self.proxy_key_dir(proxy);
        // Only drop the proxy's directory when no other user's keys are left in it.
        if fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none()) {
            let _ = fs::remove_dir(&dir);
        }
        Ok(())
    }

    /// Removes every key, certificate and CA certificate and the profile: what `pc logout`
    /// undoes. `known_proxies` stays, like `known_hosts`: trust outlives a session.
    pub fn remove_all(&self) -> Result<()> {
        remove_dir(&self.root.join("keys"))?;
        remove_dir(&self.root.join("cas"))?;
        remove_file(&self.profile_path())
    }
}

/// Everything needed to talk to the proxy as the logged-in user.
pub struct Credentials {
    /// The private key.
    pub key: KeyPair,
    /// Where the key is (for libpq's `sslkey`).
    pub key_path: PathBuf,
    /// The user certificate, DER.
    pub cert_der: Vec<u8>,
    /// Where it is.
    pub cert_path: PathBuf,
    /// The host CA certificate, DER: what the proxy's certificate must chain to.
    pub host_ca_der: Vec<u8>,
    /// Where it is (for libpq's `sslrootcert`).
    pub host_ca_path: PathBuf,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key_path", &self.key_path)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The identity for mutual TLS with the proxy, with `cert_der` (the user certificate or a
    /// database certificate made for the same key).
    pub fn identity_with(&self, cert_der: Vec<u8>) -> IdentityFile {
        IdentityFile {
            key_pkcs8: Zeroizing::new(self.key.pkcs8_der().to_vec()),
            cert_der,
            ca_ders: vec![self.host_ca_der.clone()],
        }
    }

    /// The identity of the user certificate.
    pub fn identity(&self) -> IdentityFile {
        self.identity_with(self.cert_der.clone())
    }
}

fn read_missing_is_logout(path: &Path) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ProfileError::NotLoggedIn),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Reads a PEM file holding exactly one certificate, as DER.
pub fn read_single_cert(path: &Path) -> Result<Vec<u8>> {
    let text = read_missing_is_logout(path)?;
    let mut certs =
        portcullis_ca::cert::certs_from_pem(&text).map_err(|e| ProfileError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    match (certs.pop(), certs.is_empty()) {
        (Some(der), true) => Ok(der),
        _ => Err(ProfileError::Corrupt {
            path: path.to_path_buf(),
            detail: "expected exactly one certificate".into(),
        }),
    }
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn remove_dir(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn profile_round_trip_and_modes() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path().join("pc"));
        assert!(home.load_profile().unwrap().is_none());
        assert!(matches!(
            home.require_profile(),
            Err(ProfileError::NotLoggedIn)
        ));
        let p = Profile {
            proxy: "proxy.example.com:3080".into(),
            user: "alice".into(),
            cluster: "example".into(),
            mysql_port: Some(3036),
        };
        home.save_profile(&p).unwrap();
        assert_eq!(home.load_profile().unwrap(), Some(p.clone()));
        assert_eq!(mode(&home.profile_path()), 0o600);
        assert_eq!(mode(home.root()), 0o700);

        let key = KeyPair::generate().unwrap();
        home.write(&home.key_path(&p.proxy, &p.user), key.to_pem().as_bytes())
            .unwrap();
        assert_eq!(mode(&home.key_path(&p.proxy, &p.user)), 0o600);
        assert_eq!(mode(&home.proxy_key_dir(&p.proxy)), 0o700);
        assert_eq!(mode(&home.root().join("keys")), 0o700);
        // No certificate yet: "not logged in", not a raw I/O error.
        assert!(matches!(
            home.load_credentials(&p),
            Err(ProfileError::NotLoggedIn)
        ));

        home.write(&home.db_cert_path(&p.proxy, &p.user, "pg1"), b"x")
            .unwrap();
        home.write(&home.db_cert_path(&p.proxy, &p.user, "pg2"), b"x")
            .unwrap();
        home.write(&home.db_dir(&p.proxy, &p.user).join("notes.txt"), b"x")
            .unwrap();
        assert_eq!(home.db_cert_names(&p).unwrap(), vec!["pg1", "pg2"]);

        home.remove_login(&p.proxy, &p.user).unwrap();
        assert!(!home.proxy_key_dir(&p.proxy).exists());
        home.remove_all().unwrap();
        assert!(home.load_profile().unwrap().is_none());
        // Twice is fine.
        home.remove_all().unwrap();
    }

    #[test]
    fn corrupt_profile_says_what_to_do() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::at(d.path().to_path_buf());
        home.write(&home.profile_path(), b"{not json").unwrap();
        let err = home.load_profile().unwrap_err().to_string();
        assert!(err.contains("pc logout"), "{err}");
        home.write(
            &home.profile_path(),
            br#"{"proxy":"../../etc:1","user":"a","cluster":"c"}"#,
        )
        .unwrap();
        assert!(home.load_profile().is_err());
    }

    #[test]
    fn proxy_addresses() {
        for ok in [
            "proxy.example.com:3080",
            "localhost:1",
            "127.0.0.1:3080",
            "[::1]:3080",
        ] {
            validate_proxy_addr(ok).unwrap();
        }
        for bad in [
            "proxy.example.com",
            "proxy:0",
            "proxy:99999",
            ":3080",
            "../x:3080",
            "a/b:3080",
            ".hidden:3080",
            "proxy:30a",
            "[]:1",
        ] {
            assert!(validate_proxy_addr(bad).is_err(), "{bad}");
        }
        assert!(validate_name("user", "../x").is_err());
        validate_name("user", "alice@example.com").unwrap();
    }
}
