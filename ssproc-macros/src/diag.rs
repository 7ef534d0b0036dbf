//! The error collector: every mistake of an input is reported in one go.

use std::fmt::Display;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;

/// Gathers the errors found while reading and checking an input, so that all
/// of them reach the user at once instead of one per compile.
///
/// Dropping a collector that still holds errors is a bug in the macro (the
/// errors would be lost), so it panics.
#[derive(Default)]
pub(crate) struct Diag {
    errors: Vec<syn::Error>,
}

impl Diag {
    /// Records a ready-made error, such as one from a parser.
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// Records `message` at `span`.
    pub(crate) fn error(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Records `message` over the whole of `tokens`.
    pub(crate) fn error_at(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Whether nothing went wrong so far.
    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// All errors as one, or `None` when there were none.
    #[must_use]
    pub(crate) fn finish(mut self) -> Option<syn::Error> {
        std::mem::take(&mut self.errors)
            .into_iter()
            .reduce(|mut all, next| {
                all.combine(next);
                all
            })
    }

    /// All errors as `compile_error!` invocations; empty when there were none.
    pub(crate) fn into_tokens(self) -> TokenStream {
        self.finish()
            .map(|error| error.to_compile_error())
            .unwrap_or_default()
    }
}

impl Drop for Diag {
    fn drop(&mut self) {
        if !self.errors.is_empty() && !std::thread::panicking() {
            panic!(
                "ssproc-macros dropped {} unreported errors",
                self.errors.len()
            );
        }
    }
}
