//! The one classifier of MySQL/MariaDB client errors (reader, applier, heartbeats,
//! operator commands): which are transient (retry from the durable position) and
//! which are definite (stop and say what to fix).

use crate::error::Error;

/// Server error codes that a retry can outlive: lock waits and deadlocks (the
/// transaction rolled back), a server shutting down or a connection killed or lost.
pub const TRANSIENT_CODES: &[u16] = &[
    1040, // too many connections
    1053, // server shutdown in progress
    1152, // aborted connection
    1158, 1159, 1160, 1161, // network read/write errors and timeouts
    1205, // lock wait timeout
    1213, // deadlock
    1317, // query interrupted
    1684, // information_schema skipped a table under concurrent DDL (`LocalTable::load`)
    1927, // MariaDB: connection killed
    2006, 2013, // server gone, lost connection
    4031, // MySQL 8: disconnected for inactivity
];

/// Access denied, unknown database, missing privilege: fix the setup.
const SETUP_CODES: &[u16] = &[1044, 1045, 1049, 1142, 1227, 1698];

/// What to fix when `e` is a TLS failure (the server's certificate refused, TLS not
/// offered): these do not pass with time, so they are definite.
pub fn tls_hint(e: &mysql_async::Error) -> Option<String> {
    let text = e.to_string();
    let hint = if text.contains("UnknownIssuer") || text.contains("UnknownCA") {
        "the server's certificate is not signed by the CA drc trusts: check [mysql.tls] ca (the CA that issued the server's ssl_cert, with any intermediate certificates)"
    } else if text.contains("not valid for name") || text.contains("NotValidForName") {
        "the server's certificate is not issued for the host drc connects to: connect by a name the certificate lists (above), or set [mysql.tls] server_name to one of them"
    } else if text.contains("Expired") || text.contains("NotValidYet") {
        "the server's certificate is outside its validity period (or this host's clock is wrong)"
    } else if text.contains("does not have this capability") || text.contains("NoClientSslFlagFromServer") {
        "the server does not offer TLS: set ssl_cert and ssl_key on the server, or remove [mysql.tls]"
    } else if text.contains("invalid peer certificate") || text.contains("CertificateRequired") {
        "the TLS handshake failed on a certificate: check [mysql.tls] (ca, cert, key) against the server's ssl_ca/ssl_cert"
    } else {
        return None;
    };
    Some(format!("TLS: {text}: {hint}"))
}

/// Classifies `e` from the connection to `addr`; `context` says what drc was doing
/// (for the reader: the position it wanted).
pub fn classify(addr: &str, context: &str, e: mysql_async::Error) -> Error {
    use mysql_async::Error as E;
    if let Some(hint) = tls_hint(&e) {
        return Error::Server {
            addr: addr.into(),
            what: format!("{context}: {hint}"),
        };
    }
    match &e {
        E::Server(s) if s.code == 1236 => Error::Purged {
            addr: addr.into(),
            wanted: context.into(),
            server_msg: s.message.clone(),
        },
        E::Server(s) if SETUP_CODES.contains(&s.code) => Error::Server {
            addr: addr.into(),
            what: format!(
                "{context}: {} (error {}); check the user and grants in docs/OPERATIONS.md",
                s.message, s.code
            ),
        },
        E::Server(s) if TRANSIENT_CODES.contains(&s.code) => Error::Transient {
            addr: addr.into(),
            what: format!("{context}: server error {}: {}", s.code, s.message),
        },
        E::Server(s) => Error::Server {
            addr: addr.into(),
            what: format!("{context}: server error {}: {}", s.code, s.message),
        },
        E::Url(_) => Error::Server {
            addr: addr.into(),
            what: format!("{context}: {e}"),
        },
        _ => Error::Transient {
            addr: addr.into(),
            what: format!("{context}: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16) -> mysql_async::Error {
        mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: "m".into(),
            state: "HY000".into(),
        })
    }

    #[test]
    fn codes_are_classified_once() {
        assert!(matches!(classify("a", "x", server(1236)), Error::Purged { .. }));
        assert!(matches!(classify("a", "x", server(1045)), Error::Server { .. }));
        assert!(classify("a", "x", server(1213)).is_transient());
        assert!(classify("a", "x", server(2013)).is_transient());
        // a missing table is the setup's problem, not the network's
        assert!(!classify("a", "x", server(1146)).is_transient());
        for c in TRANSIENT_CODES {
            assert!(!SETUP_CODES.contains(c) && *c != 1236);
        }
    }
}
