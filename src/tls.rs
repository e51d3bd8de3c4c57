//! The TLS table of one connection drc makes (`[mysql.tls]`, `[redis.tls]`,
//! `[kafka.tls]`, and the peers'), as configured: what it says and whether it is
//! consistent. Building a client from it (rustls, mysql_async, librdkafka settings)
//! belongs to the parts that connect (`config::tls`, `kafka::security`).
//!
//! # Invariants
//! * A `[… .tls]` table present means TLS, and by default the server's certificate is
//!   verified against `ca` and checked to be issued for the host drc connects to
//!   (`verify-full`). Weaker modes are spelled out in the config, never fallen into.
//! * A file holding a secret (password, token, private key) that its group or others
//!   can read is refused (or only warned about, with `secret_files = "warn"`).

use serde::Deserialize;
use std::path::PathBuf;

/// How much of the server's identity is checked. The mysql client's names are accepted
/// too (`DISABLED`, `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS (as without the table).
    #[serde(rename = "disabled", alias = "DISABLED")]
    Disabled,
    /// Encrypted; the certificate is not checked (protects against passive listeners
    /// only).
    #[serde(rename = "required", alias = "REQUIRED", alias = "require")]
    Required,
    /// The certificate must be signed by `ca` (any host name).
    #[serde(rename = "verify-ca", alias = "VERIFY_CA")]
    VerifyCa,
    /// The certificate must be signed by `ca` and issued for the host connected to
    /// (or `server_name`). The default.
    #[default]
    #[serde(rename = "verify-full", alias = "VERIFY_IDENTITY", alias = "verify-identity")]
    VerifyFull,
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Required => "required",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        })
    }
}

/// `[mysql.tls]`: TLS to one server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// `mode = "verify-full"` (default), `"verify-ca"`, `"required"` or `"disabled"`.
    #[serde(default)]
    pub mode: TlsMode,
    /// PEM file of the CA certificate(s) the server's certificate must chain to:
    /// `ca = "/etc/drc/tls/ca.pem"`. Without it, the public roots (Mozilla's list).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), for servers that require one (`REQUIRE X509`):
    /// `cert = "/etc/drc/tls/drc.pem"`; with `key`.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM; a secret: mode 0600):
    /// `key = "/etc/drc/tls/drc.key"`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The name the server's certificate must be issued for, when it is not the host
    /// connected to (an IP address, a load balancer): `server_name = "db1.zone-a"`.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// What to do about a secret file its group or others can read.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SecretFiles {
    /// Refuse to start, naming the file and the fix (default).
    #[default]
    Refuse,
    /// Start, with a warning in the log.
    Warn,
}

impl TlsConfig {
    /// Checks the table's consistency (`section`: e.g. `mysql.tls`).
    pub fn validate(&self, section: &str) -> Result<(), String> {
        if self.cert.is_some() != self.key.is_some() {
            return Err(format!(
                "[{section}] set both cert and key (a client certificate and its key), or neither"
            ));
        }
        if self.mode == TlsMode::Disabled && (self.ca.is_some() || self.cert.is_some() || self.server_name.is_some()) {
            return Err(format!(
                "[{section}] mode = \"disabled\" with ca, cert or server_name set: remove them, or choose a mode"
            ));
        }
        if self.mode == TlsMode::Required && self.ca.is_some() {
            return Err(format!(
                "[{section}] mode = \"required\" does not check the certificate, so ca would be ignored: use mode = \"verify-full\" (or \"verify-ca\")"
            ));
        }
        Ok(())
    }

    /// [`Self::validate`], and what drc's MySQL client cannot do.
    pub fn validate_mysql(&self, section: &str) -> Result<(), String> {
        self.validate(section)?;
        if self.mode == TlsMode::VerifyCa {
            // mysql_async 0.37's skip_domain_validation looks for "NotValidForName" in
            // rustls 0.23's message, which now reads "certificate not valid for name":
            // the name is checked anyway (found 2026-12-07)
            return Err(format!(
                "[{section}] mode = \"verify-ca\" is not available with drc's MySQL client (it checks the name anyway): use mode = \"verify-full\" with server_name = a name the server's certificate lists"
            ));
        }
        Ok(())
    }

    /// The secret files this table names (the private key).
    pub fn secret_files(&self) -> impl Iterator<Item = &PathBuf> {
        self.key.iter()
    }
}

/// Makes ring the process's rustls provider, once. drc's own TLS names ring itself,
/// but some clients build their TLS from the process default (mysql_async, the
/// ZooKeeper client), and with a second provider compiled in (the ZooKeeper client's
/// rustls brings aws-lc-rs) rustls has no default until one is installed.
pub fn install_default_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // (an Err means another provider was installed first: that one serves)
        let _ = std::sync::Arc::unwrap_or_clone(ring()).install_default();
    });
}

/// The crypto provider of every TLS connection drc makes itself: ring, as
/// mysql_async's (rustls now prefers aws-lc-rs for its post-quantum key exchange; drc
/// keeps one provider for all its connections).
pub fn ring() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// A PEM file's bytes, at most 1 MiB: a certificate, key or CA bundle is far smaller,
/// and a path to a device or a huge file is an error, not an endless read.
pub fn read_pem_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    const MAX: u64 = 1 << 20;
    let mut out = Vec::new();
    std::fs::File::open(path)?.take(MAX + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "over 1 MiB: not a PEM certificate or key",
        ));
    }
    Ok(out)
}
