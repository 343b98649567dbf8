//! Kubernetes semantics as data: the resource registry, `Status` errors, label and field
//! selectors, patches, defaulting, validation, quantities and schema checks.
//!
//! Everything here is synchronous and free of I/O, so the API server, the controllers and the
//! tests share one definition of what an object means.

pub mod admission;
pub mod cron;
pub mod defaults;
pub mod error;
pub mod names;
pub mod patch;
pub mod quantity;
pub mod quota;
pub mod rbac;
pub mod resources;
pub mod schema;
pub mod selector;
mod typed;
pub mod validation;

pub use error::{ApiError, FieldError, FieldErrorType, Reason};
pub use resources::{RESOURCES, ResourceInfo, Subresource};

/// The settings of this crate's property tests (the fuzzing of what requests carry: selectors,
/// quantities, patches): `cases` by default, so a test run stays fast; `PROPTEST_CASES=n` for a
/// longer run. No regression files are written.
#[cfg(test)]
pub(crate) fn fuzz_config(cases: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    proptest::test_runner::Config { cases, failure_persistence: None, ..Default::default() }
}
