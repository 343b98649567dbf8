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
}

impl PatchError {
    /// The HTTP status kube-apiserver answers with.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::Malformed(_) => 400,
            PatchError::NotApplicable(_) => 422,
        }
    }
}

/// RFC 6902.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::Malformed(e.to_string()))?;
    let mut out = doc.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| PatchError::NotApplicable(e.to_string()))?;
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
