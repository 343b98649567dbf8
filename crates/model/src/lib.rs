//! Kubernetes semantics as data: the resource registry, `Status` errors, label and field
//! selectors, patches, defaulting, validation, quantities and schema checks.
//!
//! Everything here is synchronous and free of I/O, so the API server, the controllers and the
//! tests share one definition of what an object means.

pub mod defaults;
pub mod error;
pub mod names;
pub mod patch;
pub mod quantity;
pub mod resources;
pub mod schema;
pub mod selector;
mod typed;
pub mod validation;

pub use error::{ApiError, FieldError, FieldErrorType, Reason};
pub use resources::{RESOURCES, ResourceInfo, Subresource};
