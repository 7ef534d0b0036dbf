//! The macro's own picture of a `#[process]` block: its steps and
//! compensations in declaration order, each keeping its tokens for spans.

use syn::ext::IdentExt;
use syn::{Attribute, Ident, ImplItem, ItemImpl, Path, Signature, Type};

use crate::args;
use crate::diag::Diag;

/// An impl block read as a process.
pub(crate) struct Model {
    /// The type the block is for.
    pub(crate) self_ty: Type,
    /// The trait, when the block wrongly is a trait impl.
    pub(crate) trait_path: Option<Path>,
    /// The `#[step]` methods, in declaration order.
    pub(crate) steps: Vec<Method>,
    /// The `#[compensate(step)]` methods, in declaration order.
    pub(crate) compensations: Vec<Compensation>,
}

/// A method of the block marked as a step or a compensation.
pub(crate) struct Method {
    /// The method's signature; its name is the step name.
    pub(crate) sig: Signature,
}

/// A `#[compensate(step)]` method.
pub(crate) struct Compensation {
    /// The method itself.
    pub(crate) method: Method,
    /// The step it undoes, as written in the attribute.
    pub(crate) step: Ident,
}

impl Compensation {
    /// The name of the step it undoes, without any `r#`.
    pub(crate) fn step_name(&self) -> String {
        self.step.unraw().to_string()
    }
}

/// What an attribute of a method says about it.
enum Role {
    Step,
    Compensation(Option<Ident>),
}

impl Model {
    /// Reads the steps and compensations of `block`, recording malformed
    /// attributes in `diag`.
    pub(crate) fn read(block: &ItemImpl, diag: &mut Diag) -> Self {
        let mut model = Self {
            self_ty: (*block.self_ty).clone(),
            trait_path: block.trait_.as_ref().map(|(_, path, _)| path.clone()),
            steps: Vec::new(),
            compensations: Vec::new(),
        };
        for item in &block.items {
            let ImplItem::Fn(method) = item else {
                reject_on_non_method(item, diag);
                continue;
            };
            let Some(role) = role(&method.attrs, diag) else {
                continue;
            };
            let found = Method {
                sig: method.sig.clone(),
            };
            match role {
                Role::Step => model.steps.push(found),
                Role::Compensation(Some(step)) => model.compensations.push(Compensation {
                    method: found,
                    step,
                }),
                Role::Compensation(None) => {}
            }
        }
        model
    }
}

impl Method {
    /// The method's name.
    pub(crate) fn ident(&self) -> &Ident {
        &self.sig.ident
    }

    /// The step name: the method's name without any `r#`.
    pub(crate) fn name(&self) -> String {
        self.sig.ident.unraw().to_string()
    }
}

/// Whether `attr` is one of the markers this macro consumes.
pub(crate) fn is_marker(attr: &Attribute) -> bool {
    attr.path().is_ident("step") || attr.path().is_ident("compensate")
}

/// Removes the markers from every item of `block`, so the block can be
/// emitted as ordinary Rust.
pub(crate) fn strip_markers(block: &mut ItemImpl) {
    for item in &mut block.items {
        if let Some(attrs) = attrs_mut(item) {
            attrs.retain(|attr| !is_marker(attr));
        }
    }
}

/// The role the markers of a method give it; the first marker wins and any
/// further one is an error.
fn role(attrs: &[Attribute], diag: &mut Diag) -> Option<Role> {
    let mut role = None;
    for attr in attrs.iter().filter(|attr| is_marker(attr)) {
        let is_step = attr.path().is_ident("step");
        match (&role, is_step) {
            (None, true) => {
                args::check_bare(attr, diag);
                role = Some(Role::Step);
            }
            (None, false) => role = Some(Role::Compensation(args::compensated_step(attr, diag))),
            (Some(Role::Step), true) => diag.error_at(attr.path(), "duplicate `#[step]` attribute"),
            (Some(Role::Compensation(_)), false) => {
                diag.error_at(
                    attr.path(),
                    "a method can compensate one step only, found a second `#[compensate]`",
                );
            }
            (Some(_), _) => diag.error_at(
                attr.path(),
                "a method cannot be both a step and a compensation",
            ),
        }
    }
    role
}

fn reject_on_non_method(item: &ImplItem, diag: &mut Diag) {
    let attrs = match item {
        ImplItem::Const(item) => &item.attrs,
        ImplItem::Type(item) => &item.attrs,
        ImplItem::Macro(item) => &item.attrs,
        _ => return,
    };
    for attr in attrs.iter().filter(|attr| is_marker(attr)) {
        diag.error_at(
            attr.path(),
            "`#[step]` and `#[compensate]` apply to methods only",
        );
    }
}

fn attrs_mut(item: &mut ImplItem) -> Option<&mut Vec<Attribute>> {
    match item {
        ImplItem::Fn(item) => Some(&mut item.attrs),
        ImplItem::Const(item) => Some(&mut item.attrs),
        ImplItem::Type(item) => Some(&mut item.attrs),
        ImplItem::Macro(item) => Some(&mut item.attrs),
        _ => None,
    }
}
