//! The one-line failure every command ends with when it cannot do its work.

use std::error::Error;
use std::fmt;

/// Why a command failed, already worded for the operator, on one line.
#[derive(Debug)]
pub(crate) struct CliError {
    message: String,
}

impl CliError {
    /// A failure described by `message` alone.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: one_line(&message.into()),
        }
    }

    /// `error` with its chain of sources, each said once, after `context`
    /// when there is one.
    pub(crate) fn from_error(context: Option<&str>, error: &(dyn Error + 'static)) -> Self {
        let mut message = context.map(str::to_owned).unwrap_or_default();
        let mut next = Some(error);
        while let Some(error) = next {
            let text = error.to_string();
            if !message.contains(&text) {
                if !message.is_empty() {
                    message.push_str(": ");
                }
                message.push_str(&text);
            }
            next = error.source();
        }
        Self::new(message)
    }

    /// The same failure with every occurrence of `secret` masked.
    pub(crate) fn redact(mut self, secret: Option<&str>) -> Self {
        if let Some(secret) = secret.filter(|secret| !secret.is_empty()) {
            self.message = self.message.replace(secret, "***");
        }
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ssproc::AdminError> for CliError {
    fn from(error: ssproc::AdminError) -> Self {
        Self::from_error(None, &error).with_hint(&error)
    }
}

impl From<ssproc::ReadError> for CliError {
    fn from(error: ssproc::ReadError) -> Self {
        Self::from_error(None, &error).with_hint(&error)
    }
}

impl CliError {
    /// The same failure, with what to do about it where that is known.
    fn with_hint(mut self, error: &(dyn Error + 'static)) -> Self {
        if is_undefined_table(error) {
            self.message
                .push_str(" (run `ssproc migrate` to create the table)");
        }
        self
    }
}

/// Whether `error` or one of its sources is PostgreSQL's `undefined_table`
/// (SQLSTATE 42P01).
fn is_undefined_table(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        let code = error
            .downcast_ref::<sqlx::Error>()
            .and_then(sqlx::Error::as_database_error)
            .and_then(|error| error.code().map(|code| code == "42P01"));
        if code == Some(true) {
            return true;
        }
        next = error.source();
    }
    false
}

/// Database messages can span lines (a detail, a hint); the operator gets
/// them joined.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
