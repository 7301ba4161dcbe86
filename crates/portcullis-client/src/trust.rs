//! Trusting a proxy on first use, the way SSH trusts a host key.
//!
//! The first `pc login` to a proxy fetches the cluster's CA certificates over a TLS connection
//! that verifies nothing ([`bootstrap_tls_config`]), computes the host CA's pin (SHA-256 of its
//! SubjectPublicKeyInfo, what `pcctl status` prints) and decides whether to trust it: against
//! `--ca-pin`, by asking the user, or with `--insecure`. The pin is then remembered in
//! `known_proxies`; every later connection verifies the proxy against the stored CA, and a
//! proxy that presents a different CA is refused as a possible man in the middle.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_api::CaInfo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use thiserror::Error;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::files;

/// Why a proxy's CA is not trusted, or the trust store could not be used.
#[derive(Debug, Error)]
pub enum TrustError {
    /// A CA certificate could not be read.
    #[error("the proxy sent an unusable {what}: {detail}")]
    BadCa {
        /// Which certificate.
        what: String,
        /// Cause.
        detail: String,
    },
    /// The proxy sent no host CA.
    #[error("the proxy at {0} did not send a host CA certificate; is it a Portcullis proxy?")]
    NoHostCa(String),
    /// `--ca-pin` does not match what the proxy presents.
    #[error(
        "the proxy at {proxy} presents host CA pin {actual}, but --ca-pin is {expected}; \
         refusing to log in. Check the pin with your administrator (pcctl status shows it)"
    )]
    PinMismatch {
        /// The proxy.
        proxy: String,
        /// What `--ca-pin` said.
        expected: String,
        /// What the proxy presented.
        actual: String,
    },
    /// The proxy's CA differs from the one remembered for it.
    #[error(
        "WARNING: the host CA of {proxy} has changed! It was {known}, it is now {actual}. \
         Someone may be intercepting your connection (man in the middle), or the cluster was \
         re-created. Refusing to connect. If your administrator confirms the new pin, remove \
         the line for {proxy} from {file} and log in again"
    )]
    Changed {
        /// The proxy.
        proxy: String,
        /// The remembered pin.
        known: String,
        /// What it presents now.
        actual: String,
        /// The `known_proxies` file.
        file: PathBuf,
    },
    /// `--ca-pin` is not of the form `sha256:<64 hex>`.
    #[error("--ca-pin {0:?} is not of the form sha256:<64 hex digits>; copy it from pcctl status")]
    BadPinSyntax(String),
    /// Reading or writing `known_proxies` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, TrustError>;

/// The pin (`sha256:<hex>` of the SubjectPublicKeyInfo) of a DER certificate.
pub fn pin_of_cert_der(der: &[u8]) -> Result<String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| TrustError::BadCa {
        what: "certificate".into(),
        detail: e.to_string(),
    })?;
    Ok(portcullis_ca::fingerprint(cert.public_key().raw))
}

/// The host CA from a `/v1/cas` (or login) answer: its DER and its pin, computed here rather
/// than taken from the answer.
pub fn host_ca(proxy: &str, cas: &[CaInfo]) -> Result<(Vec<u8>, String)> {
    let info = cas
        .iter()
        .find(|c| c.kind == "host")
        .ok_or_else(|| TrustError::NoHostCa(proxy.to_owned()))?;
    let mut ders =
        portcullis_ca::cert::certs_from_pem(&info.cert_pem).map_err(|e| TrustError::BadCa {
            what: "host CA certificate".into(),
            detail: e.to_string(),
        })?;
    let der = match (ders.pop(), ders.is_empty()) {
        (Some(d), true) => d,
        _ => {
            return Err(TrustError::BadCa {
                what: "host CA certificate".into(),
                detail: "expected exactly one certificate".into(),
            })
        }
    };
    let pin = pin_of_cert_der(&der)?;
    Ok((der, pin))
}

/// Normalises a pin given on the command line (`sha256:` prefix, lower-case hex).
pub fn parse_pin(s: &str) -> Result<String> {
    let t = s.trim();
    let hex = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .ok_or_else(|| TrustError::BadPinSyntax(s.to_owned()))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TrustError::BadPinSyntax(s.to_owned()));
    }
    Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// Compares `--ca-pin` with what the proxy presents.
pub fn check_pin(proxy: &str, expected: &str, actual: &str) -> Result<()> {
    let expected = parse_pin(expected)?;
    if expected == actual {
        Ok(())
    } else {
        Err(TrustError::PinMismatch {
            proxy: proxy.to_owned(),
            expected,
            actual: actual.to_owned(),
        })
    }
}

/// `known_proxies`: one `<proxy> <pin>` per line; `#` comments and blank lines are kept.
#[derive(Debug, Clone)]
pub struct KnownProxies {
    path: PathBuf,
}

/// What `known_proxies` says about a proxy and the pin it presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// Never seen: decide whether to trust it.
    Unknown,
    /// Seen with this very pin: trusted.
    Trusted,
}

impl KnownProxies {
    /// The file at `path`.
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<String> {
        match fs::read_to_string(&self.path) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(TrustError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// The pin remembered for `proxy`.
    pub fn pin_of(&self, proxy: &str) -> Result<Option<String>> {
        Ok(self.read()?.lines().find_map(|line| {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next()) {
                (Some(p), Some(pin)) if p == proxy && !p.starts_with('#') => Some(pin.to_owned()),
                _ => None,
            }
        }))
    }

    /// Whether `pin` is the one remembered for `proxy`; a different one is
    /// [`TrustError::Changed`].
    pub fn check(&self, proxy: &str, pin: &str) -> Result<Known> {
        match self.pin_of(proxy)? {
            None => Ok(Known::Unknown),
            Some(known) if known == pin => Ok(Known::Trusted),
            Some(known) => Err(TrustError::Changed {
                proxy: proxy.to_owned(),
                known,
                actual: pin.to_owned(),
                file: self.path.clone(),
            }),
        }
    }

    /// Remembers `pin` for `proxy` (replacing an earlier line for it), keeping every other
    /// line as it was.
    pub fn remember(&self, proxy: &str, pin: &str) -> Result<()> {
        let old = self.read()?;
        let mut out = String::with_capacity(old.len() + proxy.len() + pin.len() + 2);
        if old.is_empty() {
            out.push_str("# Proxies whose host CA pc trusts, like ssh's known_hosts.\n");
        }
        for line in old.split_inclusive('\n') {
            let is_ours = line.split_whitespace().next() == Some(proxy);
            if !is_ours {
                out.push_str(line);
            }
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{proxy} {pin}\n"));
        let io = |source| TrustError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            files::create_private_dir(dir).map_err(io)?;
        }
        files::write_private(&self.path, out.as_bytes()).map_err(|source| TrustError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Accepts any server certificate (signatures on the handshake are still checked). Only for
/// fetching the CA certificates on first contact, whose pin is then checked by the caller.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS configuration that verifies nothing about the server: only for the first, anonymous
/// `GET /v1/cas`, whose answer is then pinned.
pub fn bootstrap_tls_config() -> std::result::Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
            .with_no_client_auth(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_ca::{CaKind, CertAuthority};

    fn ca_info(ca: &CertAuthority) -> CaInfo {
        CaInfo {
            kind: ca.kind().as_str().to_owned(),
            pin: ca.pin(),
            cert_fingerprint: String::new(),
            cert_pem: ca.cert_pem(),
            not_after: time::OffsetDateTime::now_utc(),
        }
    }

    #[test]
    fn pin_matches_what_auth_publishes() {
        let now = time::OffsetDateTime::now_utc();
        let host = CertAuthority::generate(CaKind::Host, "example", now).unwrap();
        let user = CertAuthority::generate(CaKind::User, "example", now).unwrap();
        let (der, pin) = host_ca("p:1", &[ca_info(&user), ca_info(&host)]).unwrap();
        assert_eq!(pin, host.pin());
        assert_eq!(der, host.cert_der());
        assert!(matches!(
            host_ca("p:1", &[ca_info(&user)]),
            Err(TrustError::NoHostCa(_))
        ));
        let mut broken = ca_info(&host);
        broken.cert_pem = "garbage".into();
        assert!(host_ca("p:1", &[broken]).is_err());
    }

    #[test]
    fn ca_pin_comparison() {
        let pin = format!("sha256:{}", "ab".repeat(32));
        check_pin("p:1", &pin, &pin).unwrap();
        check_pin("p:1", &pin.to_uppercase().replace("SHA256", "sha256"), &pin).unwrap();
        let other = format!("sha256:{}", "cd".repeat(32));
        let err = check_pin("p:1", &other, &pin).unwrap_err().to_string();
        assert!(err.contains(&pin) && err.contains(&other), "{err}");
        assert!(matches!(
            check_pin("p:1", "ab", &pin),
            Err(TrustError::BadPinSyntax(_))
        ));
        assert!(parse_pin("sha256:zz").is_err());
    }

    #[test]
    fn known_proxies_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("home/known_proxies");
        let kp = KnownProxies::at(path.clone());
        let a = format!("sha256:{}", "aa".repeat(32));
        let b = format!("sha256:{}", "bb".repeat(32));
        assert_eq!(kp.check("p1:3080", &a).unwrap(), Known::Unknown);
        kp.remember("p1:3080", &a).unwrap();
        assert_eq!(kp.check("p1:3080", &a).unwrap(), Known::Trusted);
        let err = kp.check("p1:3080", &b).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("man in the middle") && msg.contains("known_proxies"));
        assert!(msg.contains(&a) && msg.contains(&b));
        // Another proxy, a user comment, then re-pinning p1 keeps the rest.
        kp.remember("p2:3080", &b).unwrap();
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("# my note\n");
        fs::write(&path, &text).unwrap();
        kp.remember("p1:3080", &b).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("# my note\n"));
        assert_eq!(text.matches("p1:3080").count(), 1);
        assert_eq!(kp.check("p1:3080", &b).unwrap(), Known::Trusted);
        assert_eq!(kp.check("p2:3080", &b).unwrap(), Known::Trusted);
        // A prefix of a known proxy's name is a different proxy.
        assert_eq!(kp.check("p1:308", &a).unwrap(), Known::Unknown);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn bootstrap_config_builds() {
        bootstrap_tls_config().unwrap();
    }
}
