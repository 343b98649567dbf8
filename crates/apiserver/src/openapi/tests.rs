use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;

const STS_ITEM: &str = "/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}";

fn sts_gvk() -> Value {
    json!({"group": "apps", "kind": "StatefulSet", "version": "v1"})
}

fn query_names(op: &Value) -> Vec<&str> {
    op["parameters"]
        .as_array()
        .map(|ps| ps.iter().filter(|p| p["in"] == "query").filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn v3_index_lists_every_group_version_with_a_stable_hash() {
    let index = v3_index();
    let paths = index["paths"].as_object().expect("paths");
    let want: Vec<String> = group_versions().iter().map(|(g, v)| gv_path(g, v)).collect();
    assert_eq!(paths.keys().cloned().collect::<Vec<_>>(), want);
    assert!(paths.contains_key("api/v1") && paths.contains_key("apis/apps/v1"));
    for (path, entry) in paths {
        let url = entry["serverRelativeURL"].as_str().expect("url");
        let hash = v3_hash(path).expect("hash");
        assert_eq!(url, format!("/openapi/v3/{path}?hash={hash}"));
        assert_eq!(hash.len(), 64);
        let bytes = v3_document_bytes(path).expect("bytes");
        assert_eq!(serde_json::from_slice::<Value>(bytes).ok(), v3_document(path), "bytes and value agree");
    }
    assert_eq!(v3_index(), index, "the same on every call");
    assert_ne!(v3_hash("api/v1"), v3_hash("apis/apps/v1"));
    assert_eq!(v3_document("apis/apps/v2"), None);
    assert_eq!(v3_document("/apis/apps/v1").map(|d| d["openapi"].clone()), Some(json!("3.0.0")));
}

#[test]
fn v3_apps_patch_for_statefulsets_carries_gvk_and_field_validation() {
    let doc = v3_document("apis/apps/v1").expect("apps/v1");
    let patch = &doc["paths"][STS_ITEM]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"], sts_gvk());
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert_eq!(patch["operationId"], "patchAppsV1NamespacedStatefulSet");
    assert_eq!(query_names(patch), ["dryRun", "fieldManager", "fieldValidation", "force"]);
    let fv =
        patch["parameters"].as_array().and_then(|ps| ps.iter().find(|p| p["name"] == "fieldValidation")).expect("fv");
    assert_eq!(fv["schema"]["type"], "string");
    // No request body: kubectl must not compute strategic merge patches from merge-key-less schemas.
    assert!(patch.get("requestBody").is_none());

    // Every PATCH in every document offers fieldValidation (kubectl stops at the first PATCH
    // whose GVK matches, status and scale included).
    for (path, _) in v3_index()["paths"].as_object().expect("paths") {
        let doc = v3_document(path).expect("doc");
        for (p, item) in doc["paths"].as_object().expect("paths") {
            if let Some(patch) = item.get("patch") {
                assert!(query_names(patch).contains(&"fieldValidation"), "{p}");
                assert!(patch.get("x-kubernetes-group-version-kind").is_some(), "{p}");
            }
        }
    }

    let scale = &doc["paths"][format!("{STS_ITEM}/scale")]["patch"];
    assert_eq!(
        scale["x-kubernetes-group-version-kind"],
        json!({"group": "autoscaling", "kind": "Scale", "version": "v1"})
    );
    assert!(doc["paths"][format!("{STS_ITEM}/status")]["put"].is_object());
    let list = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/statefulsets"];
    assert_eq!(list["get"]["x-kubernetes-action"], "list");
    assert_eq!(
        list["post"]["requestBody"]["content"]["*/*"]["schema"]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.StatefulSet"
    );
    assert!(doc["paths"]["/apis/apps/v1/statefulsets"]["get"].is_object(), "list across namespaces");
}

#[test]
fn v3_paths_cover_every_served_operation() {
    let core = v3_document("api/v1").expect("core");
    let paths = core["paths"].as_object().expect("paths");
    let cases: &[(&str, &[&str])] = &[
        ("/api/v1/namespaces/{namespace}/pods", &["get", "post", "delete"]),
        ("/api/v1/namespaces/{namespace}/pods/{name}", &["get", "put", "patch", "delete"]),
        ("/api/v1/namespaces/{namespace}/pods/{name}/status", &["get", "put", "patch"]),
        ("/api/v1/namespaces/{namespace}/pods/{name}/log", &["get"]),
        ("/api/v1/namespaces/{namespace}/pods/{name}/exec", &["get", "post"]),
        ("/api/v1/namespaces/{namespace}/pods/{name}/attach", &["get", "post"]),
        ("/api/v1/namespaces/{namespace}/pods/{name}/binding", &["post"]),
        ("/api/v1/namespaces/{namespace}/pods/{name}/eviction", &["post"]),
        ("/api/v1/namespaces", &["get", "post"]),
        ("/api/v1/namespaces/{name}", &["get", "put", "patch", "delete"]),
        ("/api/v1/namespaces/{name}/finalize", &["put"]),
        ("/api/v1/nodes", &["get", "post", "delete"]),
        ("/api/v1/pods", &["get"]),
    ];
    for (path, methods) in cases {
        let item = paths.get(*path).unwrap_or_else(|| panic!("{path} missing"));
        let mut have: Vec<&str> =
            ["get", "put", "post", "delete", "patch"].into_iter().filter(|m| item.get(*m).is_some()).collect();
        let mut want = methods.to_vec();
        have.sort();
        want.sort();
        assert_eq!(have, want, "{path}");
    }
    let eviction = &paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"];
    assert_eq!(
        eviction["x-kubernetes-group-version-kind"],
        json!({"group": "policy", "kind": "Eviction", "version": "v1"})
    );
    assert_eq!(paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"]["post"]["x-kubernetes-action"], "connect");
    let names: Vec<&str> = paths["/api/v1/namespaces/{namespace}/pods/{name}"]["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["name", "namespace", "pretty"]);
}

/// Every `$ref` in `v` (recursively), stripped of `prefix`.
fn refs<'a>(v: &'a Value, prefix: &str, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r.strip_prefix(prefix).unwrap_or(r)),
                    _ => refs(x, prefix, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, prefix, out)),
        _ => {}
    }
}

#[test]
fn v3_components_are_complete_and_explainable() {
    for (path, _) in v3_index()["paths"].as_object().expect("paths") {
        let doc = v3_document(path).expect("doc");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let mut all = Vec::new();
        refs(&doc, "#/components/schemas/", &mut all);
        for r in all {
            assert!(schemas.contains_key(r), "{path}: dangling reference {r}");
        }
    }
    // What `kubectl explain statefulset.spec` walks: the component with the GVK, its properties.
    let doc = v3_document("apis/apps/v1").expect("apps");
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let (name, sts) = schemas
        .iter()
        .find(|(_, s)| s["x-kubernetes-group-version-kind"].as_array().is_some_and(|l| l.contains(&sts_gvk())))
        .expect("a schema carries the StatefulSet GVK");
    assert_eq!(name, "io.k8s.api.apps.v1.StatefulSet");
    assert_eq!(
        sts["properties"]["spec"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.StatefulSetSpec"
    );
    let spec = &schemas["io.k8s.api.apps.v1.StatefulSetSpec"];
    assert!(spec["properties"]["serviceName"]["description"].is_string());
    assert_eq!(spec["required"], json!(["selector", "template"]));
    let list = &schemas["io.k8s.api.apps.v1.StatefulSetList"];
    assert_eq!(
        list["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "kind": "StatefulSetList", "version": "v1"}])
    );
    assert_eq!(list["properties"]["items"]["items"]["$ref"], "#/components/schemas/io.k8s.api.apps.v1.StatefulSet");
    assert_eq!(
        schemas["io.k8s.api.autoscaling.v1.Scale"]["x-kubernetes-group-version-kind"],
        json!([{"group": "autoscaling", "kind": "Scale", "version": "v1"}])
    );
    let delete_options =
        schemas["io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"]["x-kubernetes-group-version-kind"]
            .as_array()
            .expect("gvks");
    assert!(delete_options.contains(&json!({"group": "apps", "kind": "DeleteOptions", "version": "v1"})));
}

#[test]
fn every_served_kind_has_a_schema() {
    for r in RESOURCES {
        let doc = v3_document(&gv_path(r.group, r.version)).expect("doc");
        let gvk = Gvk::of(r).to_json();
        let found = doc["components"]["schemas"]
            .as_object()
            .expect("schemas")
            .values()
            .any(|s| s["x-kubernetes-group-version-kind"].as_array().is_some_and(|l| l.contains(&gvk)));
        assert!(found, "no schema for {gvk} (add it to openapi::schemas::add_kind)");
    }
}

/// The constraints kubectl's v2 model parser (kube-openapi `proto.NewOpenAPIData`) puts on a
/// schema; breaking one makes kubectl reject the whole document.
fn check_v2_schema(s: &Value, at: &str, definitions: &serde_json::Map<String, Value>) {
    let Value::Object(o) = s else { panic!("{at}: not an object") };
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/definitions/").unwrap_or_else(|| panic!("{at}: reference {r}"));
        assert!(definitions.contains_key(name), "{at}: unknown model {name}");
        assert!(o.get("type").is_none() && o.get("properties").is_none(), "{at}: reference with a type");
        return;
    }
    match o.get("type") {
        None => {}
        Some(Value::String(t)) if t == "array" => {
            let items = o.get("items").unwrap_or_else(|| panic!("{at}: array without items"));
            check_v2_schema(items, &format!("{at}[]"), definitions);
        }
        Some(Value::String(t)) => {
            assert!(["object", "string", "integer", "number", "boolean"].contains(&t.as_str()), "{at}: type {t}");
        }
        Some(t) => panic!("{at}: type {t}"),
    }
    for (name, p) in o.get("properties").and_then(Value::as_object).into_iter().flatten() {
        check_v2_schema(p, &format!("{at}.{name}"), definitions);
    }
    if let Some(ap @ Value::Object(_)) = o.get("additionalProperties") {
        check_v2_schema(ap, &format!("{at}{{}}"), definitions);
    }
    assert!(o.get("allOf").is_none() && o.get("nullable").is_none(), "{at}: OpenAPI 3 leftovers");
}

#[test]
fn v2_json_is_a_consistent_swagger_document() {
    let doc = v2_json();
    assert_eq!(doc["swagger"], "2.0");
    let definitions = doc["definitions"].as_object().expect("definitions");
    for (name, s) in definitions {
        check_v2_schema(s, name, definitions);
    }
    let mut all = Vec::new();
    refs(&doc["paths"], "#/definitions/", &mut all);
    for r in all {
        assert!(definitions.contains_key(r), "paths: dangling reference {r}");
    }
    assert_eq!(
        definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"], "int-or-string",
        "int-or-string typed as upstream"
    );
    assert_eq!(
        definitions["io.k8s.api.apps.v1.StatefulSet"]["properties"]["spec"]["$ref"],
        "#/definitions/io.k8s.api.apps.v1.StatefulSetSpec"
    );
    let patch = &doc["paths"][STS_ITEM]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"], sts_gvk());
    assert!(query_names(patch).contains(&"fieldValidation"));
    assert!(patch.get("consumes").is_none(), "no patch types: kubectl keeps its compiled-in merge keys");
    assert_eq!(proto::encode_document(&doc).skipped, Vec::<String>::new(), "every key has a protobuf field");
}

/// A minimal protobuf reader for the tests: a message as `(field, value)` pairs.
#[derive(Debug, Clone)]
enum Wire {
    Varint(u64),
    Fixed64,
    Bytes(Vec<u8>),
}

fn decode(mut buf: &[u8]) -> Vec<(u64, Wire)> {
    fn varint(buf: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (b, rest) = buf.split_first().expect("truncated varint");
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        v
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf);
        let value = match key & 7 {
            0 => Wire::Varint(varint(&mut buf)),
            1 => {
                buf = &buf[8..];
                Wire::Fixed64
            }
            2 => {
                let len = varint(&mut buf) as usize;
                assert!(len <= buf.len(), "length past the end");
                let (data, rest) = buf.split_at(len);
                buf = rest;
                Wire::Bytes(data.to_vec())
            }
            t => panic!("unexpected wire type {t}"),
        };
        out.push((key >> 3, value));
    }
    out
}

fn bytes_fields(msg: &[(u64, Wire)], field: u64) -> Vec<Vec<u8>> {
    msg.iter()
        .filter_map(|(f, v)| match v {
            Wire::Bytes(b) if *f == field => Some(b.clone()),
            _ => None,
        })
        .collect()
}

fn one(msg: &[(u64, Wire)], field: u64) -> Vec<(u64, Wire)> {
    let mut all = bytes_fields(msg, field);
    assert_eq!(all.len(), 1, "field {field}");
    decode(&all.remove(0))
}

fn text(msg: &[(u64, Wire)], field: u64) -> String {
    bytes_fields(msg, field).first().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default()
}

/// The `Named…` entries of a repeated field, as (name, decoded value).
fn named_entries(msg: &[(u64, Wire)], field: u64) -> Vec<(String, Vec<(u64, Wire)>)> {
    bytes_fields(msg, field)
        .iter()
        .map(|b| {
            let entry = decode(b);
            (text(&entry, 1), one(&entry, 2))
        })
        .collect()
}

/// The YAML of the `x-kubernetes-group-version-kind` vendor extension in `field`, parsed.
fn gvk_extension(msg: &[(u64, Wire)], field: u64) -> Option<Value> {
    named_entries(msg, field)
        .into_iter()
        .find(|(name, _)| name == "x-kubernetes-group-version-kind")
        .and_then(|(_, any)| serde_json::from_str(&text(&any, 2)).ok())
}

#[test]
fn v2_protobuf_decodes_to_the_statefulset_patch_with_field_validation() {
    let bytes = v2_protobuf();
    // swagger = "2.0", then info.
    assert!(bytes.starts_with(&[0x0a, 0x03, b'2', b'.', b'0', 0x12]), "{:02x?}", &bytes[..8]);
    assert_eq!(v2_protobuf(), bytes, "stable");

    let doc = decode(&bytes);
    let info = one(&doc, 2);
    assert_eq!((text(&info, 1), text(&info, 2)), ("Kubernetes".to_string(), KUBERNETES_VERSION.to_string()));

    let paths = one(&doc, 8);
    let (_, sts_item) =
        named_entries(&paths, 2).into_iter().find(|(name, _)| name == STS_ITEM).expect("statefulset path");
    let patch = one(&sts_item, 8);
    assert_eq!(text(&patch, 5), "patchAppsV1NamespacedStatefulSet");
    assert_eq!(gvk_extension(&patch, 13), Some(sts_gvk()));
    let query: Vec<(String, bool)> = bytes_fields(&patch, 8)
        .iter()
        .filter_map(|item| {
            let parameter = one(&decode(item), 1);
            let non_body = bytes_fields(&parameter, 2);
            let q = decode(non_body.first()?);
            let q = one(&q, 3);
            let unique = q.iter().any(|(f, v)| *f == 20 && matches!(v, Wire::Varint(1)));
            Some((text(&q, 4), unique))
        })
        .collect();
    assert!(query.contains(&("fieldValidation".to_string(), true)), "{query:?}");
    assert!(query.iter().all(|(_, unique)| *unique));

    // Path-level parameters: name and namespace (in: path), then pretty.
    let path_params: Vec<String> = bytes_fields(&sts_item, 9)
        .iter()
        .filter_map(|item| {
            let parameter = one(&decode(item), 1);
            let non_body = decode(bytes_fields(&parameter, 2).first()?);
            non_body.first().and_then(|(_, w)| match w {
                Wire::Bytes(b) => Some(text(&decode(b), 4)),
                _ => None,
            })
        })
        .collect();
    assert_eq!(path_params, ["name", "namespace", "pretty"]);

    // Definitions carry the kinds for `kubectl explain --output plaintext-openapiv2`.
    let definitions = one(&doc, 9);
    let (_, sts) = named_entries(&definitions, 1)
        .into_iter()
        .find(|(name, _)| name == "io.k8s.api.apps.v1.StatefulSet")
        .expect("StatefulSet definition");
    assert_eq!(gvk_extension(&sts, 31), Some(json!([sts_gvk()])));
    let properties = one(&sts, 25);
    let spec = named_entries(&properties, 1).into_iter().find(|(n, _)| n == "spec").map(|(_, s)| s).expect("spec");
    assert_eq!(text(&spec, 1), "#/definitions/io.k8s.api.apps.v1.StatefulSetSpec");
}

#[test]
fn operation_ids_follow_upstream_naming() {
    let cases = [
        ("", "v1", "CoreV1"),
        ("apps", "v1", "AppsV1"),
        ("storage.k8s.io", "v1", "StorageV1"),
        ("events.k8s.io", "v1beta1", "EventsV1beta1"),
    ];
    for (group, version, want) in cases {
        assert_eq!(id_prefix(group, version), want);
    }
}
