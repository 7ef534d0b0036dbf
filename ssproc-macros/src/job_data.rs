//! `#[derive(JobData)]`: the job id is the `#[job_id]` field, displayed.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Field, Fields, Path};

use crate::args;
use crate::diag::Diag;
use crate::expand::respan;

/// Expands `#[derive(JobData)]` on `input`.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<DeriveInput>(input) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let mut diag = Diag::default();
    let mut krate: Option<Path> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("ssproc")) {
        if let Some(path) = args::crate_attr(attr, &mut diag) {
            if krate.is_some() {
                diag.error_at(attr, "duplicate `crate` argument");
            }
            krate = Some(path);
        }
    }
    let krate = krate.unwrap_or_else(|| syn::parse_quote!(::ssproc));
    let field = id_field(&input, &mut diag);
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let private = quote!(#krate::__private);
    let body = match field {
        Some(field) if diag.is_empty() => {
            let member = &field.ident;
            respan(quote!(#private::display_id(&self.#member)), field.ty.span())
        }
        _ => quote!(#private::String::new()),
    };
    let errors = diag.into_tokens();
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #private::JobData for #name #ty_generics #where_clause {
                fn job_id(&self) -> #private::String {
                    #body
                }
            }
        };
        #errors
    }
}

/// Finds the one named field marked `#[job_id]`.
fn id_field<'a>(input: &'a DeriveInput, diag: &mut Diag) -> Option<&'a Field> {
    const SHAPE: &str = "`JobData` can only be derived for a struct with named fields";
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(fields) => fields,
            Fields::Unnamed(fields) => {
                diag.error(
                    fields.paren_token.span.join(),
                    format_args!("{SHAPE}, not for a tuple struct"),
                );
                return None;
            }
            Fields::Unit => {
                diag.error_at(&input.ident, format_args!("{SHAPE}, not for a unit struct"));
                return None;
            }
        },
        Data::Enum(data) => {
            diag.error_at(data.enum_token, format_args!("{SHAPE}, not for an enum"));
            return None;
        }
        Data::Union(data) => {
            diag.error_at(data.union_token, format_args!("{SHAPE}, not for a union"));
            return None;
        }
    };
    let mut found: Option<&Field> = None;
    for field in &fields.named {
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("job_id")) {
            args::check_bare(attr, diag);
            let Some(first) = found else {
                found = Some(field);
                continue;
            };
            let first = first.ident.as_ref().map(ToString::to_string);
            diag.error_at(
                attr.path(),
                format_args!(
                    "only one field can be `#[job_id]`, and `{}` is already",
                    first.unwrap_or_default()
                ),
            );
        }
    }
    if found.is_none() {
        diag.error_at(
            &input.ident,
            "no field is marked `#[job_id]`; mark the field that holds the job id",
        );
    }
    found
}
