//! The rules across a `#[process]` block: at least one step, unique step
//! names, one compensation per existing step, and the step signature.

use std::collections::HashMap;

use quote::ToTokens;
use syn::{FnArg, GenericArgument, PathArguments, ReturnType, Signature, Type};

use crate::diag::Diag;
use crate::model::{Method, Model};

/// Checks `model`, recording every broken rule in `diag`. Returns the job
/// data type the steps take, when one could be read.
pub(crate) fn check(model: &Model, diag: &mut Diag) -> Option<Type> {
    if let Some(path) = &model.trait_path {
        diag.error_at(
            path,
            "`#[process]` applies to an inherent impl block, not to a trait impl",
        );
        return None;
    }
    if model.steps.is_empty() {
        diag.error_at(
            &model.self_ty,
            "a process needs at least one `#[step]` method in this block",
        );
    }
    let mut steps = HashMap::new();
    for step in &model.steps {
        let name = step.name();
        if steps.insert(name.clone(), ()).is_some() {
            diag.error_at(step.ident(), format_args!("duplicate step `{name}`"));
        }
    }
    let mut compensated = HashMap::new();
    for compensation in &model.compensations {
        let step = &compensation.step;
        let name = compensation.step_name();
        if !steps.contains_key(&name) {
            diag.error_at(
                step,
                format_args!("no `#[step]` named `{name}` in this block"),
            );
        } else if let Some(first) = compensated.insert(name.clone(), compensation.method.name()) {
            diag.error_at(
                step,
                format_args!("step `{name}` already has a compensation: `{first}`"),
            );
        }
    }
    let methods = model.steps.iter().map(|step| (step, "step")).chain(
        model
            .compensations
            .iter()
            .map(|c| (&c.method, "compensation")),
    );
    let mut data: Option<Type> = None;
    for (method, kind) in methods {
        let Some(found) = signature(method, kind, diag) else {
            continue;
        };
        match &data {
            None => data = Some(found.clone()),
            Some(first) if same_type(first, found) => {}
            Some(first) => diag.error_at(
                found,
                format_args!(
                    "every step and compensation must take the same job data type, \
                     expected `{}`",
                    first.to_token_stream()
                ),
            ),
        }
    }
    data
}

/// Checks the signature of a step or compensation: `async fn name(&self,
/// ctx: &StepContext, data: &mut Data) -> StepResult`. Returns `Data` when
/// the arguments have the right shape.
fn signature<'m>(method: &'m Method, kind: &str, diag: &mut Diag) -> Option<&'m Type> {
    let sig = &method.sig;
    if let Some(token) = &sig.constness {
        diag.error_at(token, format_args!("a {kind} cannot be `const`"));
    }
    if sig.asyncness.is_none() {
        diag.error_at(sig.fn_token, format_args!("a {kind} must be `async`"));
    }
    if let Some(token) = &sig.unsafety {
        diag.error_at(token, format_args!("a {kind} cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        diag.error_at(abi, format_args!("a {kind} cannot have an `extern` ABI"));
    }
    if !sig.generics.params.is_empty() {
        diag.error_at(
            &sig.generics,
            format_args!("a {kind} cannot have generic parameters"),
        );
    } else if let Some(clause) = &sig.generics.where_clause {
        diag.error_at(
            clause,
            format_args!("a {kind} cannot have a `where` clause"),
        );
    }
    return_type(sig, kind, diag);
    arguments(sig, kind, diag)
}

fn arguments<'s>(sig: &'s Signature, kind: &str, diag: &mut Diag) -> Option<&'s Type> {
    let mut inputs = sig.inputs.iter().peekable();
    match inputs.peek() {
        Some(FnArg::Receiver(receiver)) => {
            inputs.next();
            if !is_shared_self(&receiver.ty) {
                diag.error_at(
                    receiver,
                    format_args!("a {kind} takes `&self` as its receiver"),
                );
            }
        }
        Some(first) => diag.error_at(first, format_args!("a {kind} takes `&self` first")),
        None => diag.error(
            sig.paren_token.span.join(),
            format_args!("a {kind} takes `&self` first"),
        ),
    }
    let rest: Vec<&Type> = inputs
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some(&*typed.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let expected = "`&self, ctx: &StepContext, data: &mut Data`";
    match rest[..] {
        [context, data] => {
            if !is_step_context(context) {
                diag.error_at(context, "expected `&StepContext`, the step context");
            }
            match data {
                Type::Reference(data) if data.mutability.is_some() => Some(&*data.elem),
                _ => {
                    diag.error_at(data, "expected the job data as `&mut Data`");
                    None
                }
            }
        }
        [_, _, ref extra @ ..] => {
            let extra: Vec<_> = extra.iter().collect();
            diag.error_at(
                quote::quote!(#(#extra)*),
                format_args!("too many arguments: a {kind} takes {expected}"),
            );
            None
        }
        _ => {
            diag.error(
                sig.paren_token.span.join(),
                format_args!("missing arguments: a {kind} takes {expected}"),
            );
            None
        }
    }
}

fn return_type(sig: &Signature, kind: &str, diag: &mut Diag) {
    let message = format_args!("a {kind} must return `ssproc::StepResult`");
    match &sig.output {
        ReturnType::Default => diag.error(sig.paren_token.span.close(), message),
        ReturnType::Type(_, ty) if is_step_result(ty) => {}
        ReturnType::Type(_, ty) => diag.error_at(ty, message),
    }
}

/// `&self` or `self: &Self`.
fn is_shared_self(ty: &Type) -> bool {
    match ty {
        Type::Reference(reference) => {
            reference.mutability.is_none() && last_segment_is(&reference.elem, "Self")
        }
        _ => false,
    }
}

fn is_step_context(ty: &Type) -> bool {
    match ty {
        Type::Reference(reference) => {
            reference.mutability.is_none() && last_segment_is(&reference.elem, "StepContext")
        }
        _ => false,
    }
}

/// `StepResult` or `Result<StepOutcome, StepError>`, under any path.
fn is_step_result(ty: &Type) -> bool {
    if last_segment_is(ty, "StepResult") {
        return true;
    }
    let Type::Path(path) = ty else {
        return false;
    };
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return false;
    };
    let types: Vec<&Type> = generics
        .args
        .iter()
        .filter_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .collect();
    last.ident == "Result"
        && generics.args.len() == 2
        && matches!(types[..], [ok, err]
            if last_segment_is(ok, "StepOutcome") && last_segment_is(err, "StepError"))
}

/// Whether `ty` is a plain path whose last segment is `name`, without
/// generic arguments.
fn last_segment_is(ty: &Type, name: &str) -> bool {
    let Type::Path(path) = ty else {
        return false;
    };
    path.qself.is_none()
        && path
            .path
            .segments
            .last()
            .is_some_and(|last| last.ident == name && last.arguments.is_none())
}

fn same_type(a: &Type, b: &Type) -> bool {
    a.to_token_stream().to_string() == b.to_token_stream().to_string()
}

#[cfg(test)]
mod tests {
    use quote::ToTokens;
    use syn::{parse_quote, ItemImpl};

    use crate::diag::Diag;
    use crate::model::Model;

    /// The data type found and the messages of every error, in order.
    fn run(block: ItemImpl) -> (Option<String>, Vec<String>) {
        let mut diag = Diag::default();
        let model = Model::read(&block, &mut diag);
        let data = super::check(&model, &mut diag);
        let messages = diag
            .finish()
            .into_iter()
            .flat_map(|all| all.into_iter().map(|one| one.to_string()))
            .collect();
        (data.map(|ty| ty.to_token_stream().to_string()), messages)
    }

    fn errors(block: ItemImpl) -> Vec<String> {
        run(block).1
    }

    #[test]
    fn accepts_steps_and_compensations() {
        let (data, errors) = run(parse_quote! {
            impl Shop {
                #[step]
                async fn reserve(&self, ctx: &StepContext, order: &mut Order) -> StepResult {
                    Ok(StepOutcome::Success)
                }
                #[compensate(reserve)]
                async fn release(&self, _: &ssproc::StepContext, _: &mut Order)
                    -> Result<StepOutcome, StepError> {
                    Ok(StepOutcome::Success)
                }
                fn helper(&mut self) {}
            }
        });
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(data.as_deref(), Some("Order"));
    }

    #[test]
    fn needs_a_step() {
        assert_eq!(
            errors(parse_quote!(impl Shop { fn helper(&self) {} })),
            ["a process needs at least one `#[step]` method in this block"]
        );
    }

    #[test]
    fn rejects_trait_impls_alone() {
        assert_eq!(
            errors(parse_quote!(impl Default for Shop {})),
            ["`#[process]` applies to an inherent impl block, not to a trait impl"]
        );
    }

    #[test]
    fn rejects_duplicate_steps() {
        let errors = errors(parse_quote! {
            impl Shop {
                #[step]
                async fn reserve(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[step]
                async fn reserve(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
            }
        });
        assert_eq!(errors, ["duplicate step `reserve`"]);
    }

    #[test]
    fn rejects_dangling_and_doubled_compensations() {
        let errors = errors(parse_quote! {
            impl Shop {
                #[step]
                async fn reserve(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[compensate(reserve)]
                async fn release(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[compensate(reserve)]
                async fn again(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[compensate(charge)]
                async fn refund(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
            }
        });
        assert_eq!(
            errors,
            [
                "step `reserve` already has a compensation: `release`",
                "no `#[step]` named `charge` in this block",
            ]
        );
    }

    #[test]
    fn rejects_bad_markers() {
        let errors = errors(parse_quote! {
            impl Shop {
                #[step(x)]
                async fn a(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[step]
                #[step]
                async fn b(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[step]
                #[compensate(a)]
                async fn c(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[compensate]
                async fn d(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[compensate(a, b)]
                async fn e(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[compensate(a)]
                #[compensate(b)]
                async fn f(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[step]
                const G: u8 = 0;
            }
        });
        assert_eq!(
            errors,
            [
                "`#[step]` takes no arguments",
                "duplicate `#[step]` attribute",
                "a method cannot be both a step and a compensation",
                "`#[compensate]` needs the name of the step it undoes, \
                 like `#[compensate(reserve_stock)]`",
                "expected the name of one step of this block",
                "a method can compensate one step only, found a second `#[compensate]`",
                "`#[step]` and `#[compensate]` apply to methods only",
            ]
        );
    }

    #[test]
    fn rejects_bad_qualifiers() {
        let errors = errors(parse_quote! {
            impl Shop {
                #[step]
                fn a(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[step]
                const async fn b(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[step]
                async unsafe fn c(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[step]
                async extern "C" fn d(&self, c: &StepContext, d: &mut Order) -> StepResult {
                    todo!()
                }
                #[step]
                async fn e<T>(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[compensate(a)]
                async fn f(&self, c: &StepContext, d: &mut Order) -> StepResult where Self: Sized {
                    todo!()
                }
            }
        });
        assert_eq!(
            errors,
            [
                "a step must be `async`",
                "a step cannot be `const`",
                "a step cannot be `unsafe`",
                "a step cannot have an `extern` ABI",
                "a step cannot have generic parameters",
                "a compensation cannot have a `where` clause",
            ]
        );
    }

    #[test]
    fn rejects_bad_receivers_and_arguments() {
        let errors = errors(parse_quote! {
            impl Shop {
                #[step]
                async fn a(c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[step]
                async fn b(&mut self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[step]
                async fn c(self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[step]
                async fn d(&self, c: &StepContext) -> StepResult { todo!() }
                #[step]
                async fn e(&self, c: &StepContext, d: &mut Order, x: u8) -> StepResult { todo!() }
                #[step]
                async fn f(&self, c: &mut StepContext, d: &mut Order) -> StepResult { todo!() }
                #[step]
                async fn g(&self, c: &StepContext, d: Order) -> StepResult { todo!() }
                #[step]
                async fn h() -> StepResult { todo!() }
            }
        });
        let takes = "a step takes `&self, ctx: &StepContext, data: &mut Data`";
        assert_eq!(
            errors,
            [
                "a step takes `&self` first".to_owned(),
                "a step takes `&self` as its receiver".to_owned(),
                "a step takes `&self` as its receiver".to_owned(),
                format!("missing arguments: {takes}"),
                format!("too many arguments: {takes}"),
                "expected `&StepContext`, the step context".to_owned(),
                "expected the job data as `&mut Data`".to_owned(),
                "a step takes `&self` first".to_owned(),
                format!("missing arguments: {takes}"),
            ]
        );
    }

    #[test]
    fn rejects_bad_return_types() {
        let errors = errors(parse_quote! {
            impl Shop {
                #[step]
                async fn a(&self, c: &StepContext, d: &mut Order) {}
                #[step]
                async fn b(&self, c: &StepContext, d: &mut Order) -> Result<(), String> { todo!() }
                #[step]
                async fn c(&self, c: &StepContext, d: &mut Order) -> StepResult<u8> { todo!() }
                #[step]
                async fn d(&self, c: &StepContext, d: &mut Order)
                    -> Result<StepOutcome, StepError, X> { todo!() }
            }
        });
        assert_eq!(errors, ["a step must return `ssproc::StepResult`"; 4]);
    }

    #[test]
    fn rejects_disagreeing_data_types() {
        let (data, errors) = run(parse_quote! {
            impl Shop {
                #[step]
                async fn a(&self, c: &StepContext, d: &mut Order) -> StepResult { todo!() }
                #[compensate(a)]
                async fn b(&self, c: &StepContext, d: &mut Invoice) -> StepResult { todo!() }
            }
        });
        assert_eq!(data.as_deref(), Some("Order"));
        assert_eq!(
            errors,
            ["every step and compensation must take the same job data type, expected `Order`"]
        );
    }
}
