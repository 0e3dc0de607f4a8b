//! `DbUrl`, the one type that holds a database password and never shows it: parsed from the
//! app's forms (`postgresql://`, `postgres://`, `postgresql+asyncpg://`, percent-encoded
//! passwords), masked in `Display` and `Debug`, handed to child processes without the password.
//!
//! A password may also come as a query parameter, as libpq allows
//! (`postgresql://u@h/d?password=...`): it is the password, taken out of the parameters into the
//! same field, so that it is masked and kept off command lines like one in the userinfo. libpq
//! silently takes the later of the two when both are given; here two that differ are refused
//! (neither value named), since a wrong guess would be tried against a production server.
//! `sslpassword` (the client key's passphrase) is refused: libpq reads it from the connection
//! string only (no environment variable, and `PGPASSWORD` is not it), so pg_dump and psql could
//! get it only on their command line, where any process of the machine reads it; and the
//! xtask's own connections present no client certificate, so nothing else could use it.

use std::fmt;

use anyhow::{bail, Context, Result};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use url::Url;

/// A PostgreSQL connection URL. The password (from the userinfo or a `password=` parameter) is
/// kept apart, percent-decoded, and never shown: `Display` and `Debug` print `****` in its place,
/// and the forms handed to child processes carry no password (it goes through `PGPASSWORD` in
/// their environment).
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    user: String,
    password: Option<String>,
    host: String,
    port: u16,
    dbname: String,
    /// Query parameters for libpq (`sslmode=require`, ...), in their given order.
    params: Vec<(String, String)>,
}

impl DbUrl {
    /// Parses `postgresql://`, `postgres://` and SQLAlchemy forms such as `postgresql+asyncpg://`.
    /// Errors never repeat the input: it may hold a password.
    pub fn parse(input: &str) -> Result<DbUrl> {
        let input = input.trim();
        let (scheme, _) = input
            .split_once("://")
            .context("not a URL: expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE")?;
        let driver_free = scheme.split('+').next().unwrap_or_default();
        if driver_free != "postgresql" && driver_free != "postgres" {
            bail!(
                "unsupported scheme `{scheme}`: expected postgresql://, postgres:// or \
                 postgresql+asyncpg://"
            );
        }
        // Parse with a scheme the url crate treats as opaque, so that it neither lowercases
        // nor otherwise rewrites anything but percent-encoding.
        let url = Url::parse(&format!("postgresql://{}", &input[scheme.len() + 3..]))
            .map_err(|e| anyhow::anyhow!("malformed database URL: {e} (are special characters in the password percent-encoded? `@` is %40, `:` is %3A, `/` is %2F, `%` is %25, `?` is %3F, `#` is %23)"))?;
        let decode = |s: &str, what: &str| -> Result<String> {
            percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| anyhow::anyhow!("the {what} is not valid UTF-8 once percent-decoded"))
        };
        let host = url.host_str().filter(|h| !h.is_empty()).context(
            "the URL names no host: expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
        )?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let user = decode(url.username(), "user name")?;
        if user.is_empty() {
            bail!("the URL names no user: expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE");
        }
        let password = url.password().map(|p| decode(p, "password")).transpose()?;
        let dbname = decode(url.path().trim_start_matches('/'), "database name")?;
        if dbname.is_empty() || dbname.contains('/') {
            bail!(
                "the URL names no database: expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
            );
        }
        if url.fragment().is_some() {
            bail!("the URL has a `#` fragment: a `#` in the password must be written %23");
        }
        let mut params = Vec::new();
        let mut query_password: Option<String> = None;
        for piece in url.query().unwrap_or_default().split('&') {
            let key = piece.split_once('=').map_or(piece, |(k, _)| k);
            let key = percent_decode_str(key).decode_utf8_lossy();
            match key.as_ref() {
                "password" => {
                    // libpq decodes %XX only (a `+` stays a `+`), unlike the form decoding below.
                    let value = piece.split_once('=').map_or("", |(_, v)| v);
                    let value = decode(value, "password parameter")?;
                    if query_password.replace(value).is_some() {
                        bail!(
                            "the URL gives `password=` twice: give the password once, in the \
                             userinfo (postgresql://USER:PASSWORD@HOST/DB) or as ?password="
                        );
                    }
                    continue;
                }
                "sslpassword" => bail!(
                    "the URL has an `sslpassword` parameter, which cannot be kept secret: libpq \
                     reads it only from the connection string, so pg_dump and psql would get it \
                     on their command line, which other processes can read. Use a client key \
                     without a passphrase (sslkey= in the URL, or PGSSLKEY) and remove \
                     sslpassword from the URL"
                ),
                _ => {}
            }
            params.extend(url::form_urlencoded::parse(piece.as_bytes()).map(|(k, v)| {
                match k.as_ref() {
                    // asyncpg's spelling of libpq's sslmode.
                    "ssl" => ("sslmode".to_string(), v.into_owned()),
                    _ => (k.into_owned(), v.into_owned()),
                }
            }));
        }
        let password = match (password, query_password) {
            (Some(a), Some(b)) if a != b => bail!(
                "the URL gives two different passwords, one before the `@` and one as \
                 ?password=: libpq would use the second one without a word; keep only the one \
                 that is right"
            ),
            (a, b) => a.or(b),
        };
        Ok(DbUrl {
            user,
            password,
            host,
            port: url.port().unwrap_or(5432),
            dbname,
            params,
        })
    }

    pub fn user(&self) -> &str {
        &self.user
    }
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn dbname(&self) -> &str {
        &self.dbname
    }
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The same server and credentials, another database (e.g. `postgres` for DROP DATABASE).
    pub fn with_dbname(&self, dbname: &str) -> DbUrl {
        DbUrl {
            dbname: dbname.to_string(),
            ..self.clone()
        }
    }

    /// The same database seen at another address (the container's view of a published port).
    pub fn with_address(&self, host: &str, port: u16) -> DbUrl {
        DbUrl {
            host: host.to_string(),
            port,
            ..self.clone()
        }
    }

    pub fn same_database(&self, other: &DbUrl) -> bool {
        self.host.eq_ignore_ascii_case(&other.host)
            && self.port == other.port
            && self.dbname == other.dbname
    }

    pub fn is_loopback(&self) -> bool {
        matches!(self.host.as_str(), "localhost" | "::1") || self.host.starts_with("127.")
    }

    /// libpq URI without the password, for a tool's `--dbname=` argument.
    pub fn to_libpq_uri(&self) -> String {
        self.render(None)
    }

    /// The full URL with the password, for a child's environment only (Alembic's DATABASE_URL).
    pub fn to_secret_uri(&self) -> String {
        self.render(self.password.as_deref())
    }

    fn render(&self, password: Option<&str>) -> String {
        let mut out = format!("postgresql://{}", encode(&self.user));
        if let Some(p) = password {
            out.push(':');
            out.push_str(&encode(p));
        }
        out.push('@');
        if self.host.contains(':') {
            out.push_str(&format!("[{}]", self.host));
        } else {
            out.push_str(&self.host);
        }
        out.push_str(&format!(":{}/{}", self.port, encode(&self.dbname)));
        if !self.params.is_empty() {
            let query: Vec<String> = self
                .params
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            out.push('?');
            out.push_str(&query.join("&"));
        }
        out
    }
}

/// Shown with the password masked: safe for output, logs and errors.
impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.render(None);
        match &self.password {
            Some(_) => {
                let at = "postgresql://".len() + encode(&self.user).len();
                write!(f, "{}:****{}", &shown[..at], &shown[at..])
            }
            None => f.write_str(&shown),
        }
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({self})")
    }
}

/// RFC 3986's unreserved characters stay as they are; everything else is percent-encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRICKY: &str = "p@ss:w/rd%?#";
    const TRICKY_ENCODED: &str = "p%40ss%3Aw%2Frd%25%3F%23";

    #[test]
    fn parses_app_form_and_decodes_password() {
        let url = DbUrl::parse(&format!(
            "postgresql+asyncpg://sigmasight:{TRICKY_ENCODED}@localhost:5433/sigmasight_db"
        ))
        .unwrap();
        assert_eq!(url.user(), "sigmasight");
        assert_eq!(url.password(), Some(TRICKY));
        assert_eq!(url.host(), "localhost");
        assert_eq!(url.port(), 5433);
        assert_eq!(url.dbname(), "sigmasight_db");
    }

    #[test]
    fn accepts_postgres_scheme_and_default_port() {
        let url = DbUrl::parse("postgres://u:pw@db.example:/app").unwrap();
        assert_eq!(url.port(), 5432);
        let url = DbUrl::parse("postgres://u:pw@db.example/app").unwrap();
        assert_eq!(url.port(), 5432);
        assert_eq!(url.host(), "db.example");
    }

    #[test]
    fn display_and_debug_mask_the_password() {
        let url = DbUrl::parse(&format!("postgresql://u:{TRICKY_ENCODED}@h:1/d")).unwrap();
        for shown in [url.to_string(), format!("{url:?}"), format!("{url:#?}")] {
            assert!(!shown.contains("p@ss"), "{shown}");
            assert!(!shown.contains(TRICKY_ENCODED), "{shown}");
            assert!(shown.contains("u:****@h:1/d"), "{shown}");
        }
    }

    #[test]
    fn libpq_uri_has_no_password_and_secret_uri_round_trips() {
        let url = DbUrl::parse(&format!(
            "postgresql://u:{TRICKY_ENCODED}@h:1/my-db?sslmode=require"
        ))
        .unwrap();
        assert_eq!(
            url.to_libpq_uri(),
            "postgresql://u@h:1/my-db?sslmode=require"
        );
        let again = DbUrl::parse(&url.to_secret_uri()).unwrap();
        assert_eq!(again, url);
        assert_eq!(again.param("sslmode"), Some("require"));
    }

    #[test]
    fn asyncpg_ssl_param_becomes_sslmode() {
        let url = DbUrl::parse("postgresql+asyncpg://u:p@h/d?ssl=require").unwrap();
        assert_eq!(url.param("sslmode"), Some("require"));
    }

    #[test]
    fn errors_name_the_problem_and_never_echo_the_password() {
        let cases = [
            ("mysql://u:s3cretpw@h/d", "unsupported scheme `mysql`"),
            ("u:s3cretpw@h/d", "not a URL"),
            ("postgresql://u:s3cretpw@h", "names no database"),
            ("postgresql://:s3cretpw@h/d", "names no user"),
            ("postgresql://u:s3cret#pw@h/d", "%23"),
        ];
        for (input, expected) in cases {
            let err = format!("{:#}", DbUrl::parse(input).unwrap_err());
            assert!(err.contains(expected), "{input}: {err}");
            assert!(!err.contains("s3cret"), "{input}: {err}");
        }
    }

    #[test]
    fn ipv6_host_round_trips() {
        let url = DbUrl::parse("postgresql://u:p@[::1]:5555/d").unwrap();
        assert_eq!(url.host(), "::1");
        assert!(url.is_loopback());
        assert_eq!(url.to_libpq_uri(), "postgresql://u@[::1]:5555/d");
    }

    #[test]
    fn password_parameter_is_the_password_and_never_shows() {
        let url = DbUrl::parse(&format!(
            "postgresql://u@h:1/d?sslmode=require&password={TRICKY_ENCODED}&application_name=a"
        ))
        .unwrap();
        assert_eq!(url.password(), Some(TRICKY));
        assert_eq!(url.param("password"), None);
        assert_eq!(
            url.to_libpq_uri(),
            "postgresql://u@h:1/d?sslmode=require&application_name=a"
        );
        assert_eq!(
            url.to_string(),
            "postgresql://u:****@h:1/d?sslmode=require&application_name=a"
        );
        for shown in [
            url.to_string(),
            format!("{url:?}"),
            format!("{url:#?}"),
            url.to_libpq_uri(),
        ] {
            assert!(!shown.contains("p@ss"), "{shown}");
            assert!(!shown.contains(TRICKY_ENCODED), "{shown}");
            assert!(!shown.contains("password"), "{shown}");
        }
        // The password moves into the userinfo for a child's environment, and parses back equal.
        let again = DbUrl::parse(&url.to_secret_uri()).unwrap();
        assert_eq!(again, url);
        // libpq decodes %XX only: a `+` in the parameter is a `+`.
        let plus = DbUrl::parse("postgresql://u@h/d?password=a+b%2Bc").unwrap();
        assert_eq!(plus.password(), Some("a+b+c"));
    }

    #[test]
    fn password_in_both_places_must_agree() {
        let same = DbUrl::parse(&format!(
            "postgresql://u:{TRICKY_ENCODED}@h/d?password={TRICKY_ENCODED}"
        ))
        .unwrap();
        assert_eq!(same.password(), Some(TRICKY));
        for input in [
            "postgresql://u:s3cretA@h/d?password=s3cretB",
            "postgresql://u@h/d?password=s3cretA&password=s3cretB",
        ] {
            let err = format!("{:#}", DbUrl::parse(input).unwrap_err());
            assert!(err.contains("password"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn sslpassword_is_refused_without_being_shown() {
        let err = DbUrl::parse(
            "postgresql://u:s3cretA@h/d?sslmode=verify-full&sslkey=/k.pem&sslpassword=s3cretB",
        )
        .unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("sslpassword"), "{err}");
        assert!(err.contains("PGSSLKEY"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
