//! Compile-time checks of `#[process]` and `#[derive(JobData)]`.
//!
//! Each file under `ui/fail/` holds one mistake and, beside it, the compiler
//! output it must produce; `ui/pass/` holds forms that must compile and run.
//! The expected output depends on the toolchain pinned in
//! `rust-toolchain.toml`; refresh it with `TRYBUILD=overwrite` and review
//! the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
