//! Strict field validation: which fields of a request body the kind's schema does not declare.
//!
//! The body is decoded into its `k8s-openapi` type and encoded back; a key present (and not
//! null) in the body but gone after the round trip is unknown. Free-form maps (labels, data,
//! resource lists) survive the round trip whole, so their keys are never reported.

use serde_json::Value;

use crate::{ResourceInfo, typed};

/// Paths of unknown fields, as upstream prints them (`spec.template.spec.containers[0].imagez`).
pub fn unknown_fields(info: &ResourceInfo, obj: &Value) -> Vec<String> {
    let Some(Ok(known)) = typed::round_trip(info, obj) else { return Vec::new() };
    let mut out = Vec::new();
    walk(obj, &known, String::new(), &mut out);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources;

    #[test]
    fn typos_are_reported_with_their_path() {
        let sts = resources::find("apps", "v1", "statefulsets").expect("served");
        let obj = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "creationTimestamp": null, "labels": {"any-key": "x"}},
            "spec": {"replicaz": 3, "selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [
                    {"name": "c", "image": "i", "imagePullPolice": "Always", "resources": {}}]}}},
            "status": {}});
        assert_eq!(unknown_fields(sts, &obj), ["spec.replicaz", "spec.template.spec.containers[0].imagePullPolice"]);
    }

    #[test]
    fn free_form_maps_and_empty_values_are_fine() {
        let cm = resources::find("", "v1", "configmaps").expect("served");
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": {}},
            "data": {"whatever.key": "v"}});
        assert!(unknown_fields(cm, &obj).is_empty());
        let svc = resources::find("", "v1", "services").expect("served");
        let obj = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "targetPort": "web"}], "selector": {"app": "x"}, "clusterIP": "None"}});
        assert!(unknown_fields(svc, &obj).is_empty());
    }
}
