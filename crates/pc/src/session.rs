//! The logged-in state: profile, key, certificate, and an API client built from them; and
//! turning client errors into messages that say what to do next.

use anyhow::{anyhow, bail};
use portcullis_client::api::{ApiClient, ClientError};
use portcullis_client::profile::{Credentials, Home, Profile};
use portcullis_core::identity::Identity;
use time::OffsetDateTime;

use crate::output;

/// Everything a command needs once logged in.
pub struct Session {
    /// The store.
    pub home: Home,
    /// Current proxy and user.
    pub profile: Profile,
    /// Key, certificate, host CA.
    pub creds: Credentials,
    /// What the user certificate says.
    pub identity: Identity,
}

impl Session {
    /// Loads the current login; errors tell to run `pc login`.
    pub fn load() -> anyhow::Result<Self> {
        let home = Home::from_env()?;
        let profile = home.require_profile()?;
        let creds = home.load_credentials(&profile)?;
        let identity = portcullis_ca::decode_user_identity(&creds.cert_der)
            .map_err(|e| anyhow!("{}: {e}; run pc login again", creds.cert_path.display()))?;
        Ok(Self {
            home,
            profile,
            creds,
            identity,
        })
    }

    /// A client for the proxy's API as this user; refuses locally when the certificate has
    /// expired, rather than letting the TLS handshake fail obscurely.
    pub fn api(&self) -> anyhow::Result<ApiClient> {
        let now = OffsetDateTime::now_utc();
        if self.identity.expires <= now {
            bail!(
                "your certificate for {} expired at {}; run pc login --proxy={} --user={}",
                self.profile.proxy,
                output::time(self.identity.expires),
                self.profile.proxy,
                self.profile.user
            );
        }
        Ok(ApiClient::with_identity(
            &self.profile.proxy,
            &self.creds.identity(),
        )?)
    }

    /// Maps an API error from an authenticated call.
    pub fn api_error(&self, e: ClientError) -> anyhow::Error {
        match e {
            ClientError::Api {
                status: 401,
                message,
                ..
            } => anyhow!(
                "{message}; your login is no longer accepted: run pc login --proxy={} --user={}",
                self.profile.proxy,
                self.profile.user
            ),
            other => proxy_error(&self.profile.proxy, other),
        }
    }

    /// The host name libpq should connect to (the proxy's, without IPv6 brackets).
    pub fn proxy_host_port(&self) -> (String, String) {
        split_host_port(&self.profile.proxy)
    }
}

/// `host:port` → (host without brackets, port).
pub fn split_host_port(addr: &str) -> (String, String) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            p.to_owned(),
        ),
        None => (addr.to_owned(), String::new()),
    }
}

/// Maps an error talking to the proxy: unreachable, TLS trouble, or the server's own message
/// (shown verbatim).
pub fn proxy_error(proxy: &str, e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Connect { detail, .. } => {
            let detail = detail
                .split("; is the auth service running")
                .next()
                .unwrap_or_default()
                .to_owned();
            if detail.contains("UnknownIssuer") || detail.contains("NotValidForName") {
                anyhow!(
                    "the proxy at {proxy} presented a certificate that does not match the host \
                     CA pc trusts for it ({detail}); if the cluster was re-created, run pc logout \
                     and pc login again, otherwise ask your administrator"
                )
            } else {
                anyhow!(
                    "cannot reach the proxy at {proxy}: {detail}; check the address and that \
                     the proxy is running"
                )
            }
        }
        ClientError::Api { message, .. } => anyhow!("{message}"),
        ClientError::Protocol(m) => anyhow!(
            "talking to the proxy at {proxy}: {m}; is {proxy} a Portcullis proxy of a compatible version?"
        ),
        ClientError::Setup(m) => anyhow!("{m}"),
    }
}
