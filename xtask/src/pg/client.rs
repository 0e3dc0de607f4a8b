//! The xtask's own SQL connection (tokio-postgres), for what it reads itself: versions, table
//! lists, counts, schema. Connection errors are turned into messages that name the cause
//! (unreachable, authentication, missing database) and the URL with its password masked.

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{config::SslMode, error::SqlState, Client};

use super::ident::quote_ident;
use crate::config::DbUrl;
use crate::pg::version::ToolVersion;

/// How long to wait for a server before calling it unreachable (`XTASK_CONNECT_TIMEOUT`, seconds).
pub fn default_connect_timeout() -> Duration {
    std::env::var("XTASK_CONNECT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(10))
}

/// Why a connection failed, for messages and exit decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectFailure {
    Unreachable,
    Authentication,
    MissingDatabase,
    Other,
}

/// A connection error whose cause has been named.
#[derive(Debug)]
pub struct ConnectError {
    pub kind: ConnectFailure,
    pub message: String,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {}

fn pg_config(url: &DbUrl, timeout: Duration) -> Result<tokio_postgres::Config> {
    let mut config = tokio_postgres::Config::new();
    config
        .user(url.user())
        .host(url.host())
        .port(url.port())
        .dbname(url.dbname())
        .application_name("xtask")
        .connect_timeout(timeout);
    if let Some(password) = url.password() {
        config.password(password);
    }
    config.ssl_mode(match url.param("sslmode").unwrap_or("prefer") {
        "disable" => SslMode::Disable,
        "allow" | "prefer" => SslMode::Prefer,
        "require" | "verify-ca" | "verify-full" => SslMode::Require,
        other => anyhow::bail!(
            "sslmode={other} in {url} is not one of disable, allow, prefer, require, verify-ca, verify-full"
        ),
    });
    Ok(config)
}

/// Connects, with the cause of a failure named. The connection task runs on the current runtime.
pub async fn connect(url: &DbUrl, timeout: Duration) -> Result<Client> {
    let config = pg_config(url, timeout)?;
    // libpq's `require` encrypts without checking the certificate; only verify-* check it.
    let tls = LazyTls {
        verify_cert: matches!(url.param("sslmode"), Some("verify-ca" | "verify-full")),
        verify_hostname: url.param("sslmode") == Some("verify-full"),
    };
    let connecting = config.connect(tls);
    // connect_timeout covers each TCP attempt only. A stalled server (a paused container, a hung
    // host) still completes the TCP handshake in its kernel and then never answers the TLS request
    // or the startup message: this deadline bounds the whole connection startup (TCP, TLS,
    // authentication, the server's first ReadyForQuery).
    let (client, connection) =
        match tokio::time::timeout(timeout + Duration::from_secs(1), connecting).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(classify(url, &e).into()),
            Err(_) => return Err(no_answer(url, timeout).into()),
        };
    tokio::spawn(async move {
        // Errors surface on the next query through the client.
        let _ = connection.await;
    });
    Ok(client)
}

/// TLS for a connection, set up only once the server has accepted TLS: a local server in Docker
/// usually runs without it (`sslmode=prefer` then goes on in clear), and setting TLS up is costly
/// (below; docs/performance.md has the measurement), once per connection otherwise.
#[derive(Clone, Copy)]
struct LazyTls {
    verify_cert: bool,
    verify_hostname: bool,
}

impl<S> MakeTlsConnect<S> for LazyTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = postgres_native_tls::TlsStream<S>;
    type TlsConnect = LazyTlsConnect;
    type Error = std::convert::Infallible;

    fn make_tls_connect(&mut self, domain: &str) -> Result<LazyTlsConnect, Self::Error> {
        Ok(LazyTlsConnect {
            tls: *self,
            domain: domain.to_string(),
        })
    }
}

struct LazyTlsConnect {
    tls: LazyTls,
    domain: String,
}

type TlsResult<S> = Result<postgres_native_tls::TlsStream<S>, Box<dyn Error + Send + Sync>>;

impl<S> TlsConnect<S> for LazyTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = postgres_native_tls::TlsStream<S>;
    type Error = Box<dyn Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = TlsResult<S>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let connector = tls_connector(self.tls.verify_cert, self.tls.verify_hostname)?;
            let tls = postgres_native_tls::TlsConnector::new(connector, &self.domain);
            Ok(tls.connect(stream).await?)
        })
    }
}

/// The TLS settings for connections, built once per process for each kind of check. Building one
/// loads and parses the system's CA certificates; a `TlsConnector` is a shared handle, cheap to
/// clone.
fn tls_connector(verify_cert: bool, verify_hostname: bool) -> Result<native_tls::TlsConnector> {
    static BUILT: Mutex<Vec<((bool, bool), native_tls::TlsConnector)>> = Mutex::new(Vec::new());
    let key = (verify_cert, verify_hostname);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, tls)) = built.iter().find(|(k, _)| *k == key) {
        return Ok(tls.clone());
    }
    let tls = native_tls::TlsConnector::builder()
        .danger_accept_invalid_certs(!verify_cert)
        .danger_accept_invalid_hostnames(!verify_hostname)
        .build()
        .context("setting up TLS")?;
    built.push((key, tls.clone()));
    Ok(tls)
}

/// The server took the connection (or never refused it) but did not finish the startup in time.
fn no_answer(url: &DbUrl, timeout: Duration) -> ConnectError {
    ConnectError {
        kind: ConnectFailure::Unreachable,
        message: format!(
            "cannot reach {url}: no answer within {}s: the server did not answer (is it up, or \
             stalled, paused or overloaded? is the host reachable from here?); --timeout or \
             XTASK_CONNECT_TIMEOUT sets the wait",
            timeout.as_secs()
        ),
    }
}

fn classify(url: &DbUrl, err: &tokio_postgres::Error) -> ConnectError {
    if let Some(db) = err.as_db_error() {
        let refused_by_hba = db.message().contains("pg_hba.conf");
        let (kind, hint) = match *db.code() {
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                if refused_by_hba && db.message().contains("no encryption") =>
            {
                (
                    ConnectFailure::Authentication,
                    "the server takes TLS connections only and the URL says sslmode=disable: \
                     remove it (or use sslmode=require)",
                )
            }
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION if refused_by_hba => (
                ConnectFailure::Authentication,
                "the server's pg_hba.conf has no rule that lets this user into this database from \
                 here: check the user and database in the URL, or ask for access",
            ),
            SqlState::INVALID_PASSWORD | SqlState::INVALID_AUTHORIZATION_SPECIFICATION => (
                ConnectFailure::Authentication,
                "authentication failed: check the user and password in the URL (special \
                 characters in the password must be percent-encoded)",
            ),
            SqlState::INVALID_CATALOG_NAME => (
                ConnectFailure::MissingDatabase,
                "the database does not exist: check the name, or create it (`cargo xtask db-init` \
                 for the local databases)",
            ),
            _ => (ConnectFailure::Other, "the server refused the connection"),
        };
        return ConnectError {
            kind,
            message: format!(
                "cannot connect to {url}: {hint} (server said: {})",
                db.message()
            ),
        };
    }
    // Without a server error, the server was never reached (refused, DNS, timeout, TLS).
    let detail = std::error::Error::source(err)
        .map(|s| s.to_string())
        .unwrap_or_else(|| err.to_string());
    // tokio-postgres names no error kinds; its TLS failures all print this.
    let hint = if err.to_string().contains("TLS handshake") {
        match url.param("sslmode") {
            Some("verify-ca" | "verify-full") => {
                "TLS failed: with sslmode=verify-ca or verify-full the server's certificate must \
                 be signed by a CA this machine trusts (and name the host, for verify-full); \
                 sslmode=require encrypts without checking it"
            }
            _ => "TLS failed: check the sslmode in the URL against what the server offers",
        }
    } else {
        "is the server up and the host/port right?"
    };
    ConnectError {
        kind: ConnectFailure::Unreachable,
        message: format!("cannot reach {url}: {detail} ({hint})"),
    }
}

/// Which kind of connection failure, if the error is one.
pub fn connect_failure(err: &anyhow::Error) -> Option<ConnectFailure> {
    err.chain()
        .find_map(|c| c.downcast_ref::<ConnectError>())
        .map(|c| c.kind)
}

pub async fn server_version(client: &Client) -> Result<ToolVersion> {
    let row = client
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int",
            &[],
        )
        .await
        .context("reading server_version_num")?;
    let num: i32 = row.get(0);
    ToolVersion::from_server_version_num(num as u32)
}

/// Whether a database exists, asked of a maintenance connection.
pub async fn database_exists(admin: &Client, dbname: &str) -> Result<bool> {
    let row = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&dbname])
        .await
        .context("listing databases")?;
    Ok(row.is_some())
}

/// Creates the database when it is missing, connected to the `postgres` maintenance database of
/// the same server with the same credentials. Returns whether it was created.
pub async fn ensure_database(url: &DbUrl, timeout: Duration) -> Result<bool> {
    let admin_url = url.with_dbname("postgres");
    let admin = connect(&admin_url, timeout).await?;
    if database_exists(&admin, url.dbname()).await? {
        return Ok(false);
    }
    admin
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(url.dbname())))
        .await
        .with_context(|| format!("creating database {} on {admin_url}", url.dbname()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_never_answers_is_named_within_the_timeout() {
        // Accepts the TCP connection (as a paused server's kernel does) and never says a word.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = DbUrl::parse(&format!("postgresql://u:secret@127.0.0.1:{port}/d")).unwrap();
        let started = std::time::Instant::now();
        let err = crate::runtime::Runtime::new()
            .unwrap()
            .block_on(connect(&url, Duration::from_secs(1)))
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(connect_failure(&err), Some(ConnectFailure::Unreachable));
        let msg = err.to_string();
        assert!(msg.contains("the server did not answer"), "{msg}");
        assert!(msg.contains("no answer within 1s"), "{msg}");
        assert!(!msg.contains("secret"), "{msg}");
        drop(listener);
    }

    #[test]
    fn unknown_sslmode_is_named() {
        let url = DbUrl::parse("postgresql://u:p@h/d?sslmode=sometimes").unwrap();
        let err = pg_config(&url, Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sslmode=sometimes"), "{err}");
    }
}
