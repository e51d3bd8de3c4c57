//! TLS to a server drc connects to (`[mysql.tls]`, `[[peers]]`' `[peers.mysql.tls]`),
//! and the rule for files holding secrets.
//!
//! # Invariants
//! * A `[… .tls]` table present means TLS, and by default the server's certificate is
//!   verified against `ca` and checked to be issued for the host drc connects to
//!   (`verify-full`). Weaker modes are spelled out in the config, never fallen into.
//! * With `ca` set, only that CA is trusted (the built-in public roots are not): a
//!   certificate from any other CA is refused.
//! * Files are read when the connection settings are built (start-up), so a missing or
//!   malformed file is an error naming the setting and the path, not a failed
//!   handshake later.
//! * A file holding a secret (password, token, private key) that its group or others
//!   can read is refused (or only warned about, with `secret_files = "warn"`).

pub use crate::tls::{SecretFiles, TlsConfig, TlsMode};
use std::path::{Path, PathBuf};
use std::sync::Arc;

impl TlsConfig {
    /// mysql_async's TLS settings; `None` when disabled. Reads the files now.
    pub fn mysql(&self, base_dir: &Path, section: &str) -> Result<Option<mysql_async::SslOpts>, String> {
        crate::tls::install_default_provider();
        use mysql_async::{ClientIdentity, SslOpts};
        if self.mode == TlsMode::Disabled {
            return Ok(None);
        }
        let read = |what, p: &PathBuf| read_pem(base_dir, section, what, p);
        let mut ssl = SslOpts::default();
        if let Some(ca) = &self.ca {
            ssl = ssl
                .with_root_certs(vec![read(CA, ca)?.into()])
                .with_disable_built_in_roots(true);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            let id = ClientIdentity::new(read(CERT, cert)?.into(), read(KEY, key)?.into());
            ssl = ssl.with_client_identity(Some(id));
        }
        ssl = match self.mode {
            TlsMode::Disabled => unreachable!("returned above"),
            TlsMode::Required => ssl
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
            TlsMode::VerifyCa => ssl.with_danger_skip_domain_validation(true),
            TlsMode::VerifyFull => ssl.with_danger_tls_hostname_override(self.server_name.clone()),
        };
        Ok(Some(ssl))
    }
}

/// A TLS server configuration (the admin endpoint's): the certificate chain in
/// `cert` and its key in `key`, PEM files relative to `base_dir`; `section` names
/// the table in errors. No client certificate is asked for.
pub fn server_config(
    base_dir: &Path,
    section: &str,
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, e: &dyn std::fmt::Display| format!("[{section}] {what}: {e}");
    let chain = CertificateDer::pem_slice_iter(&read_pem(base_dir, section, ("tls_cert", "CERTIFICATE"), cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("tls_cert", &e))?;
    let key = PrivateKeyDer::from_pem_slice(&read_pem(base_dir, section, ("tls_key", "PRIVATE KEY"), key)?)
        .map_err(|e| bad("tls_key", &e))?;
    let config = rustls::ServerConfig::builder_with_provider(crate::tls::ring())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("tls_cert", &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad("tls_key", &format!("does not match tls_cert or cannot be used: {e}")))?;
    Ok(Arc::new(config))
}

// The settings naming PEM files, and the label each file must hold.
const CA: (&str, &str) = ("ca", "CERTIFICATE");
const CERT: (&str, &str) = ("cert", "CERTIFICATE");
const KEY: (&str, &str) = ("key", "PRIVATE KEY");

/// Reads the PEM file of setting `what` (with the label it must hold), relative to
/// `base_dir`; the error names the section, the setting and the path.
fn read_pem(base_dir: &Path, section: &str, (what, label): (&str, &str), p: &Path) -> Result<Vec<u8>, String> {
    let path = base_dir.join(p);
    let bytes = crate::tls::read_pem_file(&path).map_err(|e| format!("[{section}] {what} {}: {e}", path.display()))?;
    if !String::from_utf8_lossy(&bytes).contains(&format!("{label}-----")) {
        return Err(format!(
            "[{section}] {what} {}: not a PEM file with a {} (expected a line like \"-----BEGIN {label}-----\")",
            path.display(),
            label.to_ascii_lowercase()
        ));
    }
    Ok(bytes)
}

impl TlsConfig {
    /// A rustls client configuration for a connection to `host` (the Redis
    /// connections); `None` when disabled. Reads the files now. With `ca`, only that
    /// CA is trusted; without it, the public roots (Mozilla's list, as for MySQL).
    pub fn rustls(
        &self,
        base_dir: &Path,
        section: &str,
        host: &str,
    ) -> Result<Option<crate::redis::endpoint::Tls>, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        if self.mode == TlsMode::Disabled {
            return Ok(None);
        }
        let bad = |what: &str, e: &dyn std::fmt::Display| format!("[{section}] {what}: {e}");
        let provider = crate::tls::ring();
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(ca) => {
                let pem = read_pem(base_dir, section, CA, ca)?;
                for c in CertificateDer::pem_slice_iter(&pem) {
                    let c = c.map_err(|e| bad("ca", &e))?;
                    roots.add(c).map_err(|e| bad("ca", &e))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let full = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| bad("ca", &e))?;
        let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match self.mode {
            TlsMode::VerifyFull => full,
            TlsMode::VerifyCa => Arc::new(NameNotChecked(full)),
            TlsMode::Required => Arc::new(NothingChecked(provider.clone())),
            TlsMode::Disabled => unreachable!("returned above"),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("mode", &e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_slice_iter(&read_pem(base_dir, section, CERT, cert)?)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad("cert", &e))?;
                let key = PrivateKeyDer::from_pem_slice(&read_pem(base_dir, section, KEY, key)?)
                    .map_err(|e| bad("key", &e))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| bad("cert", &e))?
            }
            _ => builder.with_no_client_auth(),
        };
        let name = self.server_name.as_deref().unwrap_or(host).to_string();
        let server_name =
            ServerName::try_from(name.clone()).map_err(|e| bad("server_name", &format!("{name:?}: {e}")))?;
        Ok(Some(crate::redis::endpoint::Tls {
            config: Arc::new(config),
            server_name,
            section: section.to_string(),
        }))
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name is not checked.
#[derive(Debug)]
struct NameNotChecked(Arc<rustls::client::WebPkiServerVerifier>);

/// `required`: encrypted, the certificate not checked (the handshake's signatures are).
#[derive(Debug)]
struct NothingChecked(Arc<rustls::crypto::CryptoProvider>);

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

impl ServerCertVerifier for NameNotChecked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(NotValidForName | NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

impl ServerCertVerifier for NothingChecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Checks that `file` (relative to `base_dir`), holding a secret, is readable by its
/// owner only; `setting` names it in the message. A file that does not exist is left
/// to the reader (whose error names it).
pub fn check_secret_file(base_dir: &Path, setting: &str, file: &Path, policy: SecretFiles) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let path = base_dir.join(file);
    let Ok(meta) = std::fs::metadata(&path) else {
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let what = format!(
        "{setting} {}: the file holds a secret and its group or others can read it (mode {mode:03o}); run `chmod 600 {}` (or set secret_files = \"warn\" to start anyway)",
        path.display(),
        path.display()
    );
    match policy {
        SecretFiles::Refuse => Err(what),
        SecretFiles::Warn => {
            tracing::warn!("{what}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<TlsConfig, String> {
        let t: TlsConfig = toml::from_str(s).map_err(|e| e.to_string())?;
        t.validate_mysql("mysql.tls")?;
        Ok(t)
    }

    #[test]
    fn modes_default_to_verify_full_and_take_the_mysql_clients_names() {
        assert_eq!(parse("").unwrap().mode, TlsMode::VerifyFull);
        assert_eq!(parse("mode = \"VERIFY_IDENTITY\"").unwrap().mode, TlsMode::VerifyFull);
        assert!(parse("mode = \"VERIFY_CA\"").unwrap_err().contains("server_name"));
        // (drc's own TLS path, Redis's, has it)
        let t: TlsConfig = toml::from_str("mode = \"verify-ca\"").unwrap();
        assert!(t.validate("redis.tls").is_ok());
        assert!(t.rustls(Path::new("."), "redis.tls", "127.0.0.1").unwrap().is_some());
        assert_eq!(parse("mode = \"require\"").unwrap().mode, TlsMode::Required);
        assert!(parse("mode = \"prefer\"").unwrap_err().contains("unknown variant"));
        assert!(parse("cafile = \"x\"").unwrap_err().contains("unknown field"));
    }

    #[test]
    fn contradictions_are_refused_with_the_fix() {
        assert!(parse("cert = \"c.pem\"").unwrap_err().contains("both cert and key"));
        assert!(parse("mode = \"disabled\"\nca = \"ca.pem\"")
            .unwrap_err()
            .contains("remove them"));
        assert!(parse("mode = \"required\"\nca = \"ca.pem\"")
            .unwrap_err()
            .contains("verify-full"));
    }

    #[test]
    fn files_are_read_at_once_and_must_be_pem() {
        let dir = std::env::temp_dir().join(format!("drc-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("not.pem"), "hello").unwrap();
        let t = parse("ca = \"missing.pem\"").unwrap();
        let e = t.mysql(&dir, "mysql.tls").unwrap_err();
        assert!(e.contains("[mysql.tls] ca") && e.contains("missing.pem"), "{e}");
        let t = parse("ca = \"not.pem\"").unwrap();
        let e = t.mysql(&dir, "mysql.tls").unwrap_err();
        assert!(e.contains("not a PEM file with a certificate"), "{e}");
        assert!(parse("mode = \"disabled\"")
            .unwrap()
            .mysql(&dir, "mysql.tls")
            .unwrap()
            .is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused_or_warned() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("drc-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = check_secret_file(&dir, "[mysql] password_file", Path::new("pw"), SecretFiles::Refuse).unwrap_err();
        assert!(e.contains("mode 640") && e.contains("chmod 600"), "{e}");
        assert!(!e.contains("s3cret"));
        check_secret_file(&dir, "[mysql] password_file", Path::new("pw"), SecretFiles::Warn).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_secret_file(&dir, "[mysql] password_file", Path::new("pw"), SecretFiles::Refuse).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
