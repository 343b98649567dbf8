//! Kubernetes semantics as data: the resource registry, `Status` errors, label and field
//! selectors, patches, defaulting, validation and schema checks.
//!
//! Everything here is synchronous and free of I/O, so the API server, the controllers and the
//! tests share one definition of what an object means.

pub mod error;
pub mod names;
pub mod patch;
pub mod resources;
pub mod selector;

pub use error::{ApiError, FieldError, FieldErrorType, Reason};
pub use resources::{RESOURCES, ResourceInfo, Subresource};
