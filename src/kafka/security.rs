//! TLS and SASL to the Kafka brokers (`[kafka.tls]`, `[kafka.sasl]`), as librdkafka
//! settings.
//!
//! # Invariants
//! * `[kafka.tls]` is the same table as `[mysql.tls]`: present means TLS, and by default
//!   the broker's certificate is verified against `ca` and checked against the host name
//!   drc connects to (`verify-full`: librdkafka's `https` endpoint identification).
//! * Secrets come from `password_env` or `password_file` (or inline, for tests), never
//!   from `[kafka] options`: a secret-bearing librdkafka key there is refused, so a
//!   password cannot end up in a config that is shared or printed.
//! * Security is set in one place: with `[kafka.tls]` or `[kafka.sasl]`, the librdkafka
//!   keys they own (`security.protocol`, `ssl.*`, `sasl.*`) may not also be set in
//!   `options`.
//! * `PLAIN` sends the password as it is: it is refused without TLS.
//! * The settings are built once, at config load (files read, password resolved), and
//!   never printed: [`Security`]'s `Debug` shows the keys, not the values.

use crate::tls::{TlsConfig, TlsMode};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[kafka.sasl]`: who drc is to the brokers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSasl {
    /// `mechanism = "SCRAM-SHA-512"` (default), `"SCRAM-SHA-256"` or `"PLAIN"` (TLS
    /// only).
    #[serde(default)]
    pub mechanism: SaslMechanism,
    /// `username = "drc"`.
    pub username: String,
    /// Name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password (mode 0600; trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Inline password, for test setups only.
    #[serde(default)]
    pub password: Option<String>,
}

/// The SASL mechanisms drc offers (librdkafka's names).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum SaslMechanism {
    #[default]
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "PLAIN")]
    Plain,
}

impl SaslMechanism {
    fn name(self) -> &'static str {
        match self {
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::Plain => "PLAIN",
        }
    }
}

/// librdkafka keys that carry a secret: never accepted in `[kafka] options`.
const SECRET_KEYS: &[&str] = &[
    "sasl.password",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
];

/// The librdkafka settings `[kafka.tls]` and `[kafka.sasl]` make; built at load.
#[derive(Clone, Default)]
pub struct Security {
    settings: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // keys only: the values include the password
        f.debug_list().entries(self.settings.iter().map(|(k, _)| k)).finish()
    }
}

impl Security {
    /// The settings, to be applied after drc's defaults and the config's `options`.
    pub(crate) fn settings(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.settings.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// Checks the tables and the options against each other, reads the password, and
    /// builds the settings. `resolve` turns a configured path into the file to read;
    /// `password` resolves `[kafka.sasl]`'s password from its one source.
    pub fn build(
        tls: Option<&TlsConfig>,
        sasl: Option<&KafkaSasl>,
        options: &std::collections::BTreeMap<String, String>,
        resolve: impl Fn(&Path) -> PathBuf,
        password: impl FnOnce(&KafkaSasl) -> Result<Option<String>, String>,
    ) -> Result<Security, String> {
        if let Some(k) = options.keys().find(|k| SECRET_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "[kafka] options: {k:?} holds a secret; secrets come from an environment variable or a file only: use [kafka.sasl] password_env or password_file (or a key file in [kafka.tls])"
            ));
        }
        let tls = tls.filter(|t| t.mode != TlsMode::Disabled);
        if tls.is_some() || sasl.is_some() {
            if let Some(k) = options
                .keys()
                .find(|k| *k == "security.protocol" || k.starts_with("ssl.") || k.starts_with("sasl."))
            {
                return Err(format!(
                    "[kafka] options: {k:?} is set by [kafka.tls] / [kafka.sasl]: set it in one place (remove it from options)"
                ));
            }
        }
        let mut s = Vec::new();
        let protocol = match (tls.is_some(), sasl.is_some()) {
            (false, false) => return Ok(Security::default()),
            (true, true) => "SASL_SSL",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
        };
        s.push(("security.protocol", protocol.to_string()));
        if let Some(t) = tls {
            t.validate("kafka.tls")?;
            if t.server_name.is_some() {
                return Err(
                    "[kafka.tls] server_name: librdkafka checks each broker's certificate against the host name that broker advertises; remove server_name, and give the brokers certificates for their advertised names".into(),
                );
            }
            let file = |key: &str, p: &Path| -> Result<String, String> {
                let path = resolve(p);
                std::fs::metadata(&path).map_err(|e| format!("[kafka.tls] {key} {}: {e}", path.display()))?;
                Ok(path.display().to_string())
            };
            if let Some(ca) = &t.ca {
                s.push(("ssl.ca.location", file("ca", ca)?));
            }
            if let (Some(cert), Some(key)) = (&t.cert, &t.key) {
                s.push(("ssl.certificate.location", file("cert", cert)?));
                s.push(("ssl.key.location", file("key", key)?));
            }
            let (verify, identify) = match t.mode {
                TlsMode::Required => ("false", "none"),
                TlsMode::VerifyCa => ("true", "none"),
                TlsMode::VerifyFull | TlsMode::Disabled => ("true", "https"),
            };
            s.push(("enable.ssl.certificate.verification", verify.into()));
            s.push(("ssl.endpoint.identification.algorithm", identify.into()));
        }
        if let Some(a) = sasl {
            if a.mechanism == SaslMechanism::Plain && tls.is_none() {
                return Err(
                    "[kafka.sasl] mechanism = \"PLAIN\" without [kafka.tls] sends the password in the clear: add [kafka.tls], or use \"SCRAM-SHA-512\"".into(),
                );
            }
            if a.username.is_empty() {
                return Err("[kafka.sasl] username is empty".into());
            }
            let set = [
                a.password_env.is_some(),
                a.password_file.is_some(),
                a.password.is_some(),
            ];
            if set.iter().filter(|x| **x).count() != 1 {
                return Err("[kafka.sasl] set exactly one of password_env, password_file, password".into());
            }
            let pass = password(a)?.unwrap_or_default();
            s.push(("sasl.mechanism", a.mechanism.name().into()));
            s.push(("sasl.username", a.username.clone()));
            s.push(("sasl.password", pass));
        }
        Ok(Security { settings: s })
    }
}

/// What to fix for a librdkafka error met while connecting, when it is about TLS or
/// SASL; `None` for other errors.
pub fn hint(reason: &str) -> Option<&'static str> {
    let r = reason.to_ascii_lowercase();
    // the broker's address reads "sasl_ssl://…": match what failed, not the scheme
    if r.contains("certificate") || r.contains("ssl handshake") || r.contains("local: ssl error") {
        Some("check [kafka.tls]: ca must hold the CA that signed the brokers' certificates, issued for the host names they advertise; and the listener must speak TLS")
    } else if r.contains("authentication") {
        Some("check [kafka.sasl] mechanism, username and password (and that the broker has this user for that mechanism)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    struct K {
        #[serde(default)]
        tls: Option<TlsConfig>,
        #[serde(default)]
        sasl: Option<KafkaSasl>,
        #[serde(default)]
        options: BTreeMap<String, String>,
    }

    fn build(toml_text: &str) -> Result<Security, String> {
        let k: K = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        let dir = std::env::temp_dir();
        Security::build(
            k.tls.as_ref(),
            k.sasl.as_ref(),
            &k.options,
            |p| dir.join(p),
            |a| Ok(a.password.clone()),
        )
    }

    fn get<'a>(s: &'a Security, key: &str) -> Option<&'a str> {
        s.settings().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    #[test]
    fn sasl_over_tls_is_sasl_ssl_verified_against_the_host() {
        let s = build("[tls]\n[sasl]\nusername = \"drc\"\npassword = \"pw\"\n").unwrap();
        assert_eq!(get(&s, "security.protocol"), Some("SASL_SSL"));
        assert_eq!(get(&s, "sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(get(&s, "ssl.endpoint.identification.algorithm"), Some("https"));
        assert_eq!(get(&s, "enable.ssl.certificate.verification"), Some("true"));
        let dbg = format!("{s:?}");
        assert!(dbg.contains("sasl.password") && !dbg.contains("\"pw\""), "{dbg}");
    }

    #[test]
    fn each_combination_has_its_protocol_and_mode() {
        let s = build("[sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"u\"\npassword = \"p\"\n").unwrap();
        assert_eq!(get(&s, "security.protocol"), Some("SASL_PLAINTEXT"));
        let s = build("[tls]\nmode = \"verify-ca\"\n").unwrap();
        assert_eq!(get(&s, "security.protocol"), Some("SSL"));
        assert_eq!(get(&s, "ssl.endpoint.identification.algorithm"), Some("none"));
        let s = build("[tls]\nmode = \"required\"\n").unwrap();
        assert_eq!(get(&s, "enable.ssl.certificate.verification"), Some("false"));
        let s = build("[tls]\nmode = \"disabled\"\n").unwrap();
        assert_eq!(s.settings().count(), 0);
        assert_eq!(build("").unwrap().settings().count(), 0);
    }

    #[test]
    fn secrets_in_options_plain_in_the_clear_and_double_settings_are_refused() {
        let e = build("[options]\n\"sasl.password\" = \"x\"\n").unwrap_err();
        assert!(e.contains("password_file"), "{e}");
        let e = build("[sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword = \"p\"\n").unwrap_err();
        assert!(e.contains("in the clear"), "{e}");
        let e = build("[tls]\n[options]\n\"security.protocol\" = \"ssl\"\n").unwrap_err();
        assert!(e.contains("one place"), "{e}");
        let e = build("[sasl]\nusername = \"u\"\n").unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
        let e = build("[tls]\nserver_name = \"x\"\n").unwrap_err();
        assert!(e.contains("advertise"), "{e}");
        let e = build("[tls]\nca = \"no-such-ca-file.pem\"\n").unwrap_err();
        assert!(e.contains("[kafka.tls] ca"), "{e}");
        // without tables, plain options stay as they were
        assert_eq!(
            build("[options]\n\"security.protocol\" = \"ssl\"\n")
                .unwrap()
                .settings()
                .count(),
            0
        );
    }

    #[test]
    fn hints_name_the_table_to_fix() {
        assert!(hint("SASL authentication error: Authentication failed")
            .unwrap()
            .contains("[kafka.sasl]"));
        assert!(hint("SSL handshake failed: certificate verify failed")
            .unwrap()
            .contains("[kafka.tls]"));
        // librdkafka's words for both, with the broker's address in them
        let sasl = "Global error: Authentication (Local: Authentication failure): sasl_ssl://127.0.0.1:9095/bootstrap: SASL authentication error: SASL SCRAM authentication failed: broker responded with invalid-proof";
        assert!(hint(sasl).unwrap().contains("[kafka.sasl]"));
        let tls = "Global error: SSL (Local: SSL error): sasl_ssl://127.0.0.1:9095/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed";
        assert!(hint(tls).unwrap().contains("[kafka.tls]"));
        assert!(hint("Connection refused").is_none());
    }
}
