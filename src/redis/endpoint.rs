//! One Redis server drc connects to: its address, credentials and TLS settings, and
//! the two kinds of connection drc opens to it (a command connection through the
//! `redis` crate, and the raw stream the replication reader speaks on).
//!
//! # Invariants
//! * Both kinds of connection go through [`Endpoint::stream`]: TCP, then TLS when the
//!   endpoint has it, with the same verification. There is no second TLS path.
//! * The password never leaves this type except to the server: `Debug` shows the
//!   address and the user only.

use redis::aio::MultiplexedConnection;
use redis::RedisResult;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// How long a TCP connect and TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS to one server: the client configuration (roots, client certificate, how much
/// of the certificate is checked) and the name the certificate must be issued for.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
    /// The config table these come from (`redis.tls`), for messages.
    pub section: String,
}

/// One Redis server.
#[derive(Clone)]
pub struct Endpoint {
    /// `host:port`.
    pub addr: String,
    /// (user, password) for `AUTH`.
    pub auth: Option<(String, String)>,
    pub tls: Option<Tls>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .field("user", &self.auth.as_ref().map(|(u, _)| u))
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// A byte stream to a server, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Endpoint {
    /// A plain endpoint without credentials (tests, tools).
    pub fn plain(addr: &str) -> Endpoint {
        Endpoint {
            addr: addr.to_string(),
            auth: None,
            tls: None,
        }
    }

    /// Connects, and completes the TLS handshake when the endpoint has TLS.
    pub async fn stream(&self) -> std::io::Result<Box<dyn Io>> {
        let connect = async {
            let tcp = TcpStream::connect(&self.addr).await?;
            tcp.set_nodelay(true).ok();
            match &self.tls {
                None => Ok(Box::new(tcp) as Box<dyn Io>),
                Some(t) => {
                    let tls = tokio_rustls::TlsConnector::from(t.config.clone())
                        .connect(t.server_name.clone(), tcp)
                        .await
                        .map_err(|e| std::io::Error::new(e.kind(), tls_hint(&e, t)))?;
                    Ok(Box::new(tls) as Box<dyn Io>)
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
                ))
            })
    }

    /// A command connection, authenticated. No response timeout (a large key's DEL
    /// or a server stalled by a fork answers late, not never; the connection's own
    /// failure is what ends a session).
    pub async fn connection(&self) -> RedisResult<MultiplexedConnection> {
        let stream = self.stream().await?;
        let mut info = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some((u, p)) = &self.auth {
            info = info.set_username(u).set_password(p);
        }
        let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let (con, driver) = MultiplexedConnection::new_with_config(&info, stream, cfg).await?;
        tokio::spawn(driver);
        Ok(con)
    }
}

/// How a refused certificate's message starts: retrying cannot help, the config must
/// change ([`is_refused`]).
const REFUSED: &str = "TLS refused:";

/// Whether an error (of a connection to an endpoint) is a refused certificate.
pub fn is_refused(e: &dyn std::fmt::Display) -> bool {
    e.to_string().contains(REFUSED)
}

/// A TLS handshake error, with what to fix when the cause is clear.
fn tls_hint(e: &std::io::Error, t: &Tls) -> String {
    let section = &t.section;
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let what = match inner {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature => format!(
                "the server's certificate is not signed by the CA drc trusts ({c:?}): set [{section}] ca to the CA that issued it"
            ),
            rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. } => format!(
                "the server's certificate is not issued for the host {:?} ({c:?}): connect by a name it lists, or set [{section}] server_name",
                t.server_name.to_str()
            ),
            other => format!("the server's certificate was refused: {other:?}"),
        },
        _ => return format!("TLS: {e}"),
    };
    format!("{REFUSED} {what}")
}
