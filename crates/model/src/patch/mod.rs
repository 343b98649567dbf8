//! The three patch formats kube-apiserver accepts: JSON patch (RFC 6902), JSON merge patch
//! (RFC 7386) and Kubernetes strategic merge patch (lists merged by key, directives).

mod merge_keys;
mod strategic;
#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::ResourceInfo;

pub use merge_keys::{ListStrategy, list_strategy};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed (answer 400).
    #[error("invalid patch: {0}")]
    Malformed(String),
    /// The patch is well-formed but cannot be applied to this object (answer 422).
    #[error("{0}")]
    NotApplicable(String),
    /// The patch asks for more work than the server does for one request (answer 413).
    #[error("{0}")]
    TooLarge(String),
}

impl PatchError {
    /// The HTTP status kube-apiserver answers with.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::Malformed(_) => 400,
            PatchError::NotApplicable(_) => 422,
            PatchError::TooLarge(_) => 413,
        }
    }
}

/// kube-apiserver's `maxJSONPatchOperations`.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;
/// kube-apiserver's `JSONPatchMaxCopyBytes`: how much `copy` operations may add to a document,
/// in JSON bytes (without it, thirty copies of the root make a document of gigabytes).
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// RFC 6902, within kube-apiserver's limits on operations and on what `copy` adds.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::Malformed(e.to_string()))?;
    if ops.0.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.0.len()
        )));
    }
    let mut out = doc.clone();
    let mut copied = 0usize;
    for (index, op) in ops.0.iter().enumerate() {
        if let json_patch::PatchOperation::Copy(copy) = op
            && let Some(value) = out.pointer(copy.from.as_str())
        {
            copied += serde_json::to_string(value).map_or(0, |s| s.len());
            if copied > MAX_JSON_PATCH_COPY_BYTES {
                return Err(PatchError::NotApplicable(format!(
                    "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_JSON_PATCH_COPY_BYTES}"
                )));
            }
        }
        // One operation at a time (to count what copies add); the error names its place in
        // the whole patch.
        json_patch::patch(&mut out, std::slice::from_ref(op)).map_err(|mut e| {
            e.operation = index;
            PatchError::NotApplicable(e.to_string())
        })?;
    }
    Ok(out)
}

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::Malformed("a merge patch must be a JSON object".into()));
    }
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

/// Kubernetes strategic merge patch, with merge keys from the kind's types.
pub fn strategic_merge_patch(info: &ResourceInfo, doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    strategic::apply(info, doc, patch)
}
