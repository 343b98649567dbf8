//! Versions of one stored kind: `events.k8s.io/v1` Events are stored as core/v1 Events (as
//! upstream does), so `kubectl describe` (core/v1) sees what controllers record through
//! `events.k8s.io/v1`. Every other kind is stored as served.

use std::borrow::Cow;

use model::{ResourceInfo, resources};
use serde_json::{Map, Value, json};

fn is_events_v1(info: &ResourceInfo) -> bool {
    info.group == "events.k8s.io" && info.kind == "Event"
}

/// The resource whose keys hold this kind.
pub fn storage_info(info: &'static ResourceInfo) -> &'static ResourceInfo {
    if is_events_v1(info) { resources::by_kind("v1", "Event").unwrap_or(info) } else { info }
}

/// (served field, stored field) pairs between events.k8s.io/v1 and core/v1.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("related", "related"),
    ("note", "message"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &Value, api_version: &str, forward: bool) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!(api_version));
    if let Some(m) = obj.get("metadata") {
        out.insert("metadata".into(), m.clone());
    }
    for (served, stored) in EVENT_FIELDS {
        let (from, to) = if forward { (*served, *stored) } else { (*stored, *served) };
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// The object as the client's version shows it.
pub fn from_storage<'a>(info: &ResourceInfo, stored: &'a Value) -> Cow<'a, Value> {
    if is_events_v1(info) { Cow::Owned(rename(stored, "events.k8s.io/v1", false)) } else { Cow::Borrowed(stored) }
}

/// The object as it is stored: `kind` and `apiVersion` first, as kube-apiserver writes objects
/// (some clients' messages and tests read the start of a body).
pub fn to_storage(info: &ResourceInfo, obj: Value) -> Value {
    if is_events_v1(info) { rename(&obj, "v1", true) } else { type_meta_first(obj) }
}

fn type_meta_first(obj: Value) -> Value {
    let Value::Object(mut map) = obj else { return obj };
    let mut keys = map.keys();
    if keys.next().map(String::as_str) == Some("kind") && keys.next().map(String::as_str) == Some("apiVersion") {
        return Value::Object(map);
    }
    let mut out = Map::with_capacity(map.len());
    for key in ["kind", "apiVersion"] {
        if let Some(v) = map.shift_remove(key) {
            out.insert(key.into(), v);
        }
    }
    out.extend(map);
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_objects_begin_with_kind_and_api_version() {
        let info = resources::find("", "v1", "pods").expect("served");
        let pod = json!({"apiVersion": "v1", "metadata": {"name": "p"}, "spec": {}, "kind": "Pod"});
        let stored = serde_json::to_string(&to_storage(info, pod)).expect("encodes");
        assert_eq!(stored, r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"},"spec":{}}"#);
    }

    #[test]
    fn events_round_trip_through_core() {
        let info = resources::find("events.k8s.io", "v1", "events").expect("served");
        let v1 = json!({"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": {"name": "e", "namespace": "default"},
            "regarding": {"kind": "StatefulSet", "name": "web"}, "note": "create Pod web-0", "reason": "SuccessfulCreate",
            "type": "Normal", "reportingController": "statefulset-controller", "eventTime": "2026-11-22T00:00:00.000000Z"});
        let stored = to_storage(info, v1.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "web");
        assert_eq!(stored["message"], "create Pod web-0");
        assert_eq!(stored["reportingComponent"], "statefulset-controller");
        assert_eq!(from_storage(info, &stored).into_owned(), v1);
        assert_eq!(storage_info(info).group, "");
    }
}
