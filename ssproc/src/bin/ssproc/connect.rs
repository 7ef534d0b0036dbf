//! Reaching the database named on the command line, without ever printing
//! its password.

use std::ops::Range;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, PgPool};

use crate::error::CliError;

/// How long connecting may take before the command gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A small pool on `url`, connected once so that a wrong URL fails here
/// with its cause.
///
/// Errors show the URL with its password masked.
pub(crate) async fn connect(url: Option<&str>) -> Result<PgPool, CliError> {
    let Some(url) = url.filter(|url| !url.trim().is_empty()) else {
        return Err(CliError::new(
            "no database given: pass --database-url or set DATABASE_URL",
        ));
    };
    let password = password(url);
    let shown = redact_url(url);
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(CliError::new(format!(
            "invalid database URL {shown}: expected postgres:// or postgresql://"
        )));
    }
    let options: PgConnectOptions = url.parse().map_err(|error: sqlx::Error| {
        CliError::from_error(Some(&format!("invalid database URL {shown}")), &error)
            .redact(password)
    })?;
    let context = format!("could not connect to {shown}");
    let failed = |error: sqlx::Error| CliError::from_error(Some(&context), &error).redact(password);

    // A pool retries a refused connection until its timeout and then
    // reports only the timeout; one direct connection reports the cause.
    let first = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .map_err(|_| CliError::new(format!("{context}: timed out after {CONNECT_TIMEOUT:?}")))?
        .map_err(failed)?;
    let _ = first.close().await;

    Ok(PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy_with(options))
}

/// `url` with the password of its user info, and of a `password` query
/// parameter, replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    match password_range(url) {
        Some(range) => format!("{}***{}", &url[..range.start], &url[range.end..]),
        None => url.to_owned(),
    }
}

/// The password in `url`, from its user info or its `password` parameter.
fn password(url: &str) -> Option<&str> {
    password_range(url).map(|range| &url[range])
}

/// Where the password sits in `url`.
fn password_range(url: &str) -> Option<Range<usize>> {
    let start = url.find("://").map_or(0, |scheme_end| scheme_end + 3);
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if let Some(at) = authority.rfind('@') {
        if let Some(colon) = authority[..at].find(':') {
            return Some(start + colon + 1..start + at);
        }
    }
    let query_start = url.find('?')? + 1;
    let query_end = url[query_start..]
        .find('#')
        .map_or(url.len(), |end| query_start + end);
    let mut offset = query_start;
    for pair in url[query_start..query_end].split('&') {
        if let Some(value) = pair.strip_prefix("password=") {
            let value_start = offset + "password=".len();
            return Some(value_start..value_start + value.len());
        }
        offset += pair.len() + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn masks_the_password_of_the_user_info() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.example:5432/jobs"),
            "postgres://app:***@db.example:5432/jobs"
        );
    }

    #[test]
    fn masks_a_password_parameter() {
        assert_eq!(
            redact_url("postgres://db/jobs?user=app&password=s3cret&sslmode=require"),
            "postgres://db/jobs?user=app&password=***&sslmode=require"
        );
    }

    #[test]
    fn keeps_a_url_without_password() {
        let url = "postgres://app@127.0.0.1/jobs";
        assert_eq!(redact_url(url), url);
    }

    #[test]
    fn a_password_holding_at_signs_stays_hidden() {
        assert_eq!(
            redact_url("postgres://app:p@ss@db/jobs"),
            "postgres://app:***@db/jobs"
        );
    }
}
