//! Strict field validation (`fieldValidation=Strict`, kubectl's default): which fields of a
//! request body the kind's schema does not declare.
//!
//! The body is decoded into its `k8s-openapi` type and encoded back; a key present (and not
//! null) in the body but gone after the round trip is unknown. Free-form maps (labels, data,
//! resource lists, raw extensions) survive the round trip whole, so their keys are never
//! reported; empty values (`resources: {}`, `status: {}`) survive too. The API server words the
//! 400 as upstream does: `strict decoding error: unknown field "spec.foo"`.

#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::{ResourceInfo, typed};

/// Paths of unknown fields in body order, as upstream prints them
/// (`spec.template.spec.containers[0].imagePullPolice`). Empty when the body does not decode at
/// all: that is reported by the decode itself (a 400 from defaulting).
pub fn unknown_fields(info: &ResourceInfo, obj: &Value) -> Vec<String> {
    let Some(Ok(known)) = typed::round_trip(info, obj) else { return Vec::new() };
    unknown_between(obj, &known)
}

/// Unknown field paths of `given`, against its own typed round trip `known`.
pub(crate) fn unknown_between(given: &Value, known: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(given, known, String::new(), &mut out);
    out
}

fn walk(given: &Value, known: &Value, path: String, out: &mut Vec<String>) {
    match (given, known) {
        (Value::Object(g), Value::Object(k)) => {
            for (key, value) in g {
                if value.is_null() {
                    continue;
                }
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match k.get(key) {
                    Some(kv) => walk(value, kv, child, out),
                    None => out.push(child),
                }
            }
        }
        (Value::Array(g), Value::Array(k)) => {
            for (i, (gv, kv)) in g.iter().zip(k.iter()).enumerate() {
                walk(gv, kv, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}
