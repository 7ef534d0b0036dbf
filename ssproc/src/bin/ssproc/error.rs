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
        Self::from_error(None, &error)
    }
}

impl From<ssproc::ReadError> for CliError {
    fn from(error: ssproc::ReadError) -> Self {
        Self::from_error(None, &error)
    }
}

/// Database messages can span lines (a detail, a hint); the operator gets
/// them joined.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
