//! The arguments of the attributes: `#[process(id = "...", crate = path)]`,
//! `#[step]`, `#[compensate(step)]`, `#[job_id]` and `#[ssproc(crate = path)]`.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Ident, LitStr, Meta, Path, Token};

use crate::diag::Diag;

mod kw {
    syn::custom_keyword!(id);
}

/// The arguments of `#[process(...)]`.
#[derive(Default)]
pub(crate) struct ProcessArgs {
    /// The process id, a checked non-empty string.
    pub(crate) id: Option<LitStr>,
    /// The path generated code names the `ssproc` crate by.
    pub(crate) krate: Option<Path>,
    /// Whether `id` was given at all, valid or not.
    id_given: bool,
}

impl ProcessArgs {
    /// Reads the arguments, recording every mistake in `diag`.
    pub(crate) fn parse(tokens: TokenStream, diag: &mut Diag) -> Self {
        let mut args = Self::default();
        let parser = |input: ParseStream| args.parse_list(input, diag);
        match parser.parse2(tokens) {
            Ok(()) if !args.id_given => diag.error(
                Span::call_site(),
                "missing `id` argument, like `#[process(id = \"order-fulfilment\")]`",
            ),
            Ok(()) => {}
            Err(error) => diag.push(error),
        }
        args
    }

    fn parse_list(&mut self, input: ParseStream, diag: &mut Diag) -> syn::Result<()> {
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::id) {
                let name = input.parse::<kw::id>()?;
                expect_eq(input, name.span, "`id = \"...\"`")?;
                self.id_given = true;
                let value: syn::Expr = input.parse()?;
                if let Some(id) = check_id(value, diag) {
                    set_once(&mut self.id, id, name.span, "id", diag);
                }
            } else if lookahead.peek(Token![crate]) {
                let name = input.parse::<Token![crate]>()?;
                expect_eq(input, name.span, "`crate = path`")?;
                let path = input.call(Path::parse_mod_style)?;
                set_once(&mut self.krate, path, name.span, "crate", diag);
            } else if input.peek(Ident::peek_any) {
                let name = input.call(Ident::parse_any)?;
                diag.error(
                    name.span(),
                    format_args!("unknown argument `{name}`, expected `id` or `crate`"),
                );
                skip_value(input)?;
            } else {
                return Err(lookahead.error());
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(())
    }
}

/// Reads the `=` after an argument name, or fails on the name.
fn expect_eq(input: ParseStream, name: Span, usage: &str) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        Ok(())
    } else {
        Err(syn::Error::new(name, format_args!("expected {usage}")))
    }
}

/// Accepts a non-empty string literal without NUL characters.
fn check_id(value: syn::Expr, diag: &mut Diag) -> Option<LitStr> {
    let syn::Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Str(id),
        ..
    }) = value
    else {
        diag.error_at(
            value,
            "expected a string literal for `id`, like `id = \"order-fulfilment\"`",
        );
        return None;
    };
    let text = id.value();
    if text.is_empty() {
        diag.error(id.span(), "`id` must not be empty");
        return None;
    }
    if text.contains('\0') {
        diag.error(id.span(), "`id` must not contain a NUL character");
        return None;
    }
    Some(id)
}

/// Stores `value` unless the argument was given already.
fn set_once<T>(slot: &mut Option<T>, value: T, name: Span, what: &str, diag: &mut Diag) {
    if slot.is_some() {
        diag.error(name, format_args!("duplicate `{what}` argument"));
    } else {
        *slot = Some(value);
    }
}

/// Skips `= value` after an unknown argument, up to the next comma.
fn skip_value(input: ParseStream) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

/// Checks that a marker attribute such as `#[step]` has no arguments.
pub(crate) fn check_bare(attr: &Attribute, diag: &mut Diag) {
    match &attr.meta {
        Meta::Path(_) => {}
        Meta::List(list) => diag.error(
            list.delimiter.span().join(),
            format_args!("`#[{}]` takes no arguments", path_name(&list.path)),
        ),
        Meta::NameValue(pair) => diag.error_at(
            &pair.value,
            format_args!("`#[{}]` takes no arguments", path_name(&pair.path)),
        ),
    }
}

/// Reads the step a `#[compensate(step)]` attribute names.
pub(crate) fn compensated_step(attr: &Attribute, diag: &mut Diag) -> Option<Ident> {
    const USAGE: &str = "`#[compensate]` needs the name of the step it undoes, \
                         like `#[compensate(reserve_stock)]`";
    let list = match &attr.meta {
        Meta::List(list) if !list.tokens.is_empty() => list,
        Meta::List(list) => {
            diag.error(list.delimiter.span().join(), USAGE);
            return None;
        }
        Meta::Path(path) => {
            diag.error_at(path, USAGE);
            return None;
        }
        Meta::NameValue(pair) => {
            diag.error_at(&pair.value, USAGE);
            return None;
        }
    };
    let one_name = |input: ParseStream| {
        let name = input.call(Ident::parse_any)?;
        input.parse::<Option<Token![,]>>()?;
        Ok(name)
    };
    match one_name.parse2(list.tokens.clone()) {
        Ok(step) => Some(step),
        Err(_) => {
            diag.error_at(&list.tokens, "expected the name of one step of this block");
            None
        }
    }
}

/// Reads `#[ssproc(crate = path)]`, the container attribute of
/// `#[derive(JobData)]`.
pub(crate) fn crate_attr(attr: &Attribute, diag: &mut Diag) -> Option<Path> {
    let parser = |input: ParseStream| -> syn::Result<Path> {
        if !input.peek(Token![crate]) && input.peek(Ident::peek_any) {
            let name = input.call(Ident::parse_any)?;
            let message = format!("unknown argument `{name}`, expected `crate = path`");
            return Err(syn::Error::new(name.span(), message));
        }
        let name = input.parse::<Token![crate]>()?;
        expect_eq(input, name.span, "`crate = path`")?;
        let path = input.call(Path::parse_mod_style)?;
        if !input.is_empty() {
            return Err(input.error("expected only `crate = path`"));
        }
        Ok(path)
    };
    match attr.parse_args_with(parser) {
        Ok(path) => Some(path),
        Err(error) => {
            diag.push(error);
            None
        }
    }
}

fn path_name(path: &Path) -> String {
    path.get_ident().map(Ident::to_string).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use quote::{quote, ToTokens};

    use super::ProcessArgs;
    use crate::diag::Diag;

    fn parse(tokens: proc_macro2::TokenStream) -> (ProcessArgs, Vec<String>) {
        let mut diag = Diag::default();
        let args = ProcessArgs::parse(tokens, &mut diag);
        let messages = diag
            .finish()
            .into_iter()
            .flat_map(|all| all.into_iter().map(|one| one.to_string()))
            .collect();
        (args, messages)
    }

    #[test]
    fn reads_id_and_crate_in_any_order() {
        let (args, errors) = parse(quote!(crate = ::my::ssproc, id = "orders",));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(args.id.map(|id| id.value()).as_deref(), Some("orders"));
        let krate = args.krate.map(|path| path.to_token_stream().to_string());
        assert_eq!(krate.as_deref(), Some(":: my :: ssproc"));
    }

    #[test]
    fn reports_every_bad_argument() {
        let (args, errors) = parse(quote!(id = "", retries = 3, id = 7, crate = a, crate = b));
        assert!(args.id.is_none());
        assert_eq!(
            errors,
            [
                "`id` must not be empty",
                "unknown argument `retries`, expected `id` or `crate`",
                "expected a string literal for `id`, like `id = \"order-fulfilment\"`",
                "duplicate `crate` argument",
            ]
        );
    }

    #[test]
    fn requires_id() {
        let (_, errors) = parse(quote!());
        assert_eq!(
            errors,
            ["missing `id` argument, like `#[process(id = \"order-fulfilment\")]`"]
        );
        let (_, errors) = parse(quote!(id));
        assert_eq!(errors, ["expected `id = \"...\"`"]);
    }
}
