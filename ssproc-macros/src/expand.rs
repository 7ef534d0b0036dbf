//! Code generation for `#[process]`: the impl block as written, plus the
//! `Process` implementation that dispatches on the step index.

use proc_macro2::{Group, Literal, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Item, ItemImpl, LitStr, Path, Type};

use crate::args::ProcessArgs;
use crate::check;
use crate::diag::Diag;
use crate::model::{self, Model};

/// Expands `#[process(args)] item`.
pub(crate) fn process(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut diag = Diag::default();
    let args = ProcessArgs::parse(args, &mut diag);
    let item = match syn::parse2::<Item>(item.clone()) {
        Ok(item) => item,
        Err(error) => {
            diag.push(error);
            let errors = diag.into_tokens();
            return quote!(#item #errors);
        }
    };
    let Item::Impl(mut block) = item else {
        diag.error(
            intro_span(&item),
            "`#[process]` applies to an inherent impl block only",
        );
        let errors = diag.into_tokens();
        return quote!(#item #errors);
    };
    let model = Model::read(&block, &mut diag);
    let data = check::check(&model, &mut diag);
    model::strip_markers(&mut block);
    let krate = args.krate.unwrap_or_else(|| syn::parse_quote!(::ssproc));
    let generated = match (&data, &args.id, diag.is_empty()) {
        (Some(data), Some(id), true) => implementation(&block, &model, data, id, &krate),
        (Some(data), _, false) if model.trait_path.is_none() => stub(&block, data, &krate),
        _ => TokenStream::new(),
    };
    let errors = diag.into_tokens();
    quote! {
        #block
        #generated
        #errors
    }
}

/// The `Process` implementation of a checked block.
fn implementation(
    block: &ItemImpl,
    model: &Model,
    data: &Type,
    id: &LitStr,
    krate: &Path,
) -> TokenStream {
    let private = quote!(#krate::__private);
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
    let self_ty = &block.self_ty;
    let names = model
        .steps
        .iter()
        .map(|step| LitStr::new(&step.name(), step.ident().span()));
    let compensation_of = |step: &model::Method| {
        let name = step.name();
        model
            .compensations
            .iter()
            .find(|compensation| compensation.step_name() == name)
            .map(|compensation| compensation.method.ident())
    };
    let compensated = model
        .steps
        .iter()
        .map(|step| compensation_of(step).is_some());
    let step_arms = model.steps.iter().enumerate().map(|(index, step)| {
        let index = Literal::usize_unsuffixed(index);
        let method = step.ident();
        let boxed = respan(quote!(#private::Box::pin), method.span());
        quote_spanned! {method.span()=>
            #index => #boxed(Self::#method(self, __ssproc_ctx, __ssproc_data)),
        }
    });
    let compensation_arms = model.steps.iter().enumerate().filter_map(|(index, step)| {
        let method = compensation_of(step)?;
        let index = Literal::usize_unsuffixed(index);
        let boxed = respan(quote!(#private::Box::pin), method.span());
        Some(quote_spanned! {method.span()=>
            #index => #private::Some(#boxed(Self::#method(self, __ssproc_ctx, __ssproc_data))),
        })
    });
    let data_alias = quote_spanned!(data.span()=> type Data = #data;);
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #private::Process for #self_ty #where_clause {
                #data_alias
                const ID: &'static str = #id;
                const STEPS: &'static [&'static str] = &[#(#names),*];
                const COMPENSATED: &'static [bool] = &[#(#compensated),*];

                fn run_step<'__ssproc>(
                    &'__ssproc self,
                    __ssproc_step: usize,
                    __ssproc_ctx: &'__ssproc #private::StepContext,
                    __ssproc_data: &'__ssproc mut Self::Data,
                ) -> #private::StepFuture<'__ssproc> {
                    match __ssproc_step {
                        #(#step_arms)*
                        _ => #private::Box::pin(async move {
                            #private::Err(#private::step_out_of_range(__ssproc_step))
                        }),
                    }
                }

                fn run_compensation<'__ssproc>(
                    &'__ssproc self,
                    __ssproc_step: usize,
                    __ssproc_ctx: &'__ssproc #private::StepContext,
                    __ssproc_data: &'__ssproc mut Self::Data,
                ) -> #private::Option<#private::StepFuture<'__ssproc>> {
                    let _ = (&__ssproc_ctx, &__ssproc_data);
                    match __ssproc_step {
                        #(#compensation_arms)*
                        _ => #private::None,
                    }
                }
            }
        };
    }
}

/// A `Process` implementation with no steps, emitted beside the errors so
/// that code using the process does not fail as well.
fn stub(block: &ItemImpl, data: &Type, krate: &Path) -> TokenStream {
    let private = quote!(#krate::__private);
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
    let self_ty = &block.self_ty;
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #private::Process for #self_ty #where_clause {
                type Data = #data;
                const ID: &'static str = "";
                const STEPS: &'static [&'static str] = &[];
                const COMPENSATED: &'static [bool] = &[];

                fn run_step<'__ssproc>(
                    &'__ssproc self,
                    __ssproc_step: usize,
                    _: &'__ssproc #private::StepContext,
                    _: &'__ssproc mut Self::Data,
                ) -> #private::StepFuture<'__ssproc> {
                    #private::Box::pin(async move {
                        #private::Err(#private::step_out_of_range(__ssproc_step))
                    })
                }

                fn run_compensation<'__ssproc>(
                    &'__ssproc self,
                    _: usize,
                    _: &'__ssproc #private::StepContext,
                    _: &'__ssproc mut Self::Data,
                ) -> #private::Option<#private::StepFuture<'__ssproc>> {
                    #private::None
                }
            }
        };
    }
}

/// `tokens` with every span set to `span`, so that a compiler error about
/// them lands on the user's tokens.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = TokenTree::Group(inner);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

/// The span of the keyword that says what kind of item `item` is.
fn intro_span(item: &Item) -> Span {
    match item {
        Item::Fn(item) => item.sig.fn_token.span,
        Item::Struct(item) => item.struct_token.span,
        Item::Enum(item) => item.enum_token.span,
        Item::Trait(item) => item.trait_token.span,
        Item::Mod(item) => item.mod_token.span,
        Item::Const(item) => item.const_token.span,
        Item::Static(item) => item.static_token.span,
        Item::Type(item) => item.type_token.span,
        Item::Union(item) => item.union_token.span,
        other => other
            .to_token_stream()
            .into_iter()
            .next()
            .map_or_else(Span::call_site, |token| token.span()),
    }
}
