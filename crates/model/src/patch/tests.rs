use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;
use crate::resources;

fn sts() -> &'static crate::ResourceInfo {
    resources::find("apps", "v1", "statefulsets").expect("served")
}

fn web() -> Value {
    json!({
        "metadata": {"name": "web", "finalizers": ["a"], "labels": {"app": "nginx", "tier": "x"}},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {
            "containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80, "name": "web"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}],
            "volumes": [{"name": "www", "emptyDir": {}}]}}}
    })
}

fn smp(doc: &Value, patch: Value) -> Value {
    strategic_merge_patch(sts(), doc, &patch).unwrap_or_else(|e| panic!("{patch}: {e}"))
}

#[test]
fn apply_image_change_with_set_element_order() {
    // kubectl apply's second run, and `kubectl set image`.
    let out = smp(
        &web(),
        json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"image": "nginx:1.26", "name": "nginx"}]}}}}),
    );
    let c = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(c.as_array().map(Vec::len), Some(1));
    assert_eq!(c[0]["image"], "nginx:1.26");
    assert_eq!(c[0]["ports"][0]["containerPort"], 80, "unmentioned fields survive");
}

#[test]
fn containers_add_delete_and_reorder() {
    let added =
        smp(&web(), json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox"}]}}}}));
    let names: Vec<Value> =
        (0..2).map(|i| added["spec"]["template"]["spec"]["containers"][i]["name"].clone()).collect();
    assert_eq!(names, [json!("nginx"), json!("side")]);
    let reordered = smp(
        &added,
        json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "nginx"}]}}}}),
    );
    assert_eq!(reordered["spec"]["template"]["spec"]["containers"][0]["name"], "side");
    let deleted =
        smp(&added, json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}}));
    assert_eq!(deleted["spec"]["template"]["spec"]["containers"].as_array().map(Vec::len), Some(1));
}

#[test]
fn env_merges_by_name_and_null_deletes() {
    let out = smp(
        &web(),
        json!({
            "metadata": {"labels": {"tier": null}},
            "spec": {"template": {"spec": {"containers": [{"name": "nginx", "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}]}]}}}
        }),
    );
    assert_eq!(out["metadata"]["labels"], json!({"app": "nginx"}));
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([
        {"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"}])
    );
}

#[test]
fn rollout_undo_replaces_the_template() {
    let template = json!({"metadata": {"labels": {"app": "nginx"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.24"}]}, "$patch": "replace"});
    let out = smp(&web(), json!({"spec": {"template": template}}));
    assert_eq!(
        out["spec"]["template"],
        json!({"metadata": {"labels": {"app": "nginx"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.24"}]}})
    );
    assert_eq!(out["spec"]["replicas"], 2);
}

#[test]
fn rollout_restart_adds_a_template_annotation() {
    let out = smp(
        &web(),
        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-22T13:18:42Z"}}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2026-11-22T13:18:42Z"
    );
    assert_eq!(out["spec"]["template"]["metadata"]["labels"]["app"], "nginx");
}

#[test]
fn lists_without_a_strategy_are_replaced_and_sets_union() {
    let doc = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"volumeClaimTemplates": [{"metadata": {"name": "x"}}]}});
    let out = smp(
        &doc,
        json!({"metadata": {"finalizers": ["b", "c"]}, "spec": {"volumeClaimTemplates": [{"metadata": {"name": "y"}}]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    assert_eq!(out["spec"]["volumeClaimTemplates"], json!([{"metadata": {"name": "y"}}]));
    let out = smp(&doc, json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}));
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    let out = smp(&doc, json!({"spec": {"volumeClaimTemplates": [{"$patch": "replace"}]}}));
    assert_eq!(out["spec"]["volumeClaimTemplates"], json!([]));
}

#[test]
fn retain_keys_and_unknown_directives() {
    let doc = json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}});
    let out = smp(&doc, json!({"spec": {"updateStrategy": {"$retainKeys": ["type"], "type": "OnDelete"}}}));
    assert_eq!(out["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
    assert!(strategic_merge_patch(sts(), &doc, &json!({"spec": {"$bogus": 1}})).is_err());
    assert!(
        strategic_merge_patch(
            sts(),
            &web(),
            &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})
        )
        .is_err(),
        "merge key missing"
    );
}

#[test]
fn service_ports_merge_by_port() {
    let svc = resources::find("", "v1", "services").expect("served");
    let doc = json!({"spec": {"ports": [{"port": 80, "name": "web", "nodePort": 30000}]}});
    let out = strategic_merge_patch(svc, &doc, &json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}))
        .expect("patch");
    assert_eq!(out["spec"]["ports"], json!([{"port": 80, "name": "web", "nodePort": 30000, "targetPort": 8080}]));
}

#[test]
fn json_and_merge_patches() {
    let doc = json!({"spec": {"replicas": 2}, "metadata": {"annotations": {"a": "1"}}});
    let out = json_patch(&doc, &json!([{"op": "replace", "path": "/spec/replicas", "value": 3}])).expect("applies");
    assert_eq!(out["spec"]["replicas"], 3);
    let e = json_patch(&doc, &json!([{"op": "test", "path": "/spec/replicas", "value": 9}])).expect_err("test fails");
    assert_eq!(e.code(), 422);
    assert_eq!(json_patch(&doc, &json!({"op": "x"})).expect_err("not a list").code(), 400);
    let out = merge_patch(&doc, &json!({"metadata": {"annotations": {"a": null, "b": "2"}}})).expect("merges");
    assert_eq!(out["metadata"]["annotations"], json!({"b": "2"}));
}

/// Objects and patches nested as deep as a JSON body can be (serde_json stops at 128 levels).
#[test]
fn deeply_nested_patches_apply() {
    let nested = |depth: usize, leaf: Value| (0..depth).fold(leaf, |inner, _| json!({"a": inner}));
    let doc = nested(120, json!(1));
    let patch = nested(120, json!(2));
    let text = serde_json::to_string(&patch).expect("encodes");
    assert!(serde_json::from_str::<Value>(&text).is_ok(), "within serde_json's depth limit");
    assert_eq!(merge_patch(&doc, &patch).expect("merges"), patch);
    assert_eq!(strategic_merge_patch(sts(), &doc, &patch).expect("merges"), patch);
    let pointer = format!("{}/b", "/a".repeat(119));
    let ops = json!([{"op": "add", "path": pointer, "value": 3}, {"op": "copy", "from": "/a", "path": "/c"}]);
    assert!(json_patch(&doc, &ops).is_ok());
}

mod fuzz {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::*;

    /// Keys that steer the three patch types, the fields they act on, and strangers.
    const KEYS: &[&str] = &[
        "metadata",
        "finalizers",
        "labels",
        "spec",
        "template",
        "containers",
        "name",
        "image",
        "ports",
        "containerPort",
        "env",
        "value",
        "replicas",
        "$patch",
        "$retainKeys",
        "$setElementOrder/containers",
        "$setElementOrder/finalizers",
        "$setElementOrder/env",
        "$deleteFromPrimitiveList/finalizers",
        "$deleteFromPrimitiveList/containers",
        "$bogus",
        "",
        "é",
        "a/b",
        "~1",
    ];
    const WORDS: &[&str] = &["replace", "delete", "merge", "nginx", "a", "b", "", "0", "-"];

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![4 => proptest::sample::select(KEYS).prop_map(String::from), 1 => any::<String>()]
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-2i64..100).prop_map(Value::from),
            any::<f64>().prop_filter("JSON numbers", |f| f.is_finite()).prop_map(Value::from),
            proptest::sample::select(WORDS).prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 48, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::vec((key(), inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
            ]
        })
    }

    /// Random content, sometimes placed where the merge keys and directives of a
    /// StatefulSet act.
    fn shaped() -> impl Strategy<Value = Value> {
        prop_oneof![
            json(),
            json().prop_map(|x| json!({"metadata": x})),
            json().prop_map(|x| json!({"metadata": {"finalizers": x}})),
            json().prop_map(|x| json!({"spec": {"template": {"spec": {"containers": x}}}})),
            json().prop_map(|x| json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "env": x}]}}}})),
            json().prop_map(|x| json!({"spec": {"template": {"spec": x}}})),
        ]
    }

    fn pointer() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            proptest::collection::vec(
                prop_oneof![
                    proptest::sample::select(KEYS).prop_map(String::from),
                    Just("0".to_string()),
                    Just("-".to_string()),
                    Just("01".to_string()),
                    Just("~".to_string()),
                    Just("~2".to_string()),
                    Just("18446744073709551616".to_string()),
                ],
                1..5
            )
            .prop_map(|segments| segments.iter().map(|s| format!("/{s}")).collect()),
            any::<String>(),
        ]
    }

    fn operation() -> impl Strategy<Value = Value> {
        let op = proptest::sample::select(&["add", "remove", "replace", "move", "copy", "test", "bogus"][..]);
        (op, pointer(), proptest::option::of(pointer()), proptest::option::of(json())).prop_map(
            |(op, path, from, value)| {
                let mut o = json!({"op": op, "path": path});
                if let Some(from) = from {
                    o["from"] = json!(from);
                }
                if let Some(value) = value {
                    o["value"] = value;
                }
                o
            },
        )
    }

    /// Whether any object key anywhere in `v` is a directive (`$…`).
    fn has_directive(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.iter().any(|(k, v)| k.starts_with('$') || has_directive(v)),
            Value::Array(l) => l.iter().any(has_directive),
            _ => false,
        }
    }

    proptest! {
        #![proptest_config(crate::fuzz_config(256))]

        /// A strategic merge patch applies or is refused, never panics, and leaves no
        /// directive in an object that had none.
        #[test]
        fn strategic_merge_patches_apply_or_refuse(doc in shaped(), patch in shaped()) {
            let doc = if has_directive(&doc) { web() } else { doc };
            for info in [sts(), resources::find("", "v1", "pods").expect("served")] {
                if let Ok(out) = strategic_merge_patch(info, &doc, &patch) {
                    prop_assert!(!has_directive(&out), "{} + {} = {}", doc, patch, out);
                }
            }
        }

        /// A merge patch applies to anything when it is an object, and applying it twice
        /// changes nothing more (RFC 7386).
        #[test]
        fn merge_patches_are_idempotent(doc in json(), patch in json()) {
            match merge_patch(&doc, &patch) {
                Ok(once) => prop_assert_eq!(merge_patch(&once, &patch), Ok(once.clone())),
                Err(e) => prop_assert!(!patch.is_object() && e.code() == 400),
            }
        }

        /// A JSON patch applies or is refused (400 malformed, 422 not applicable), never panics.
        #[test]
        fn json_patches_apply_or_refuse(doc in shaped(), ops in proptest::collection::vec(operation(), 0..5), other in json()) {
            if let Err(e) = json_patch(&doc, &Value::Array(ops)) {
                prop_assert!(e.code() == 400 || e.code() == 422);
            }
            let _ = json_patch(&doc, &other);
            prop_assert_eq!(json_patch(&doc, &json!([])), Ok(doc.clone()));
        }
    }
}

/// Lists as long as a 3 MiB body allows merge in linear time: each of these took minutes while
/// lookups scanned the list (and a patch is applied under the store's write lock).
#[test]
fn long_lists_merge_in_linear_time() {
    let n = 100_000;
    let names: Vec<Value> = (0..n).map(|i| json!(format!("f{i}"))).collect();
    let keyed: Vec<Value> = (0..n).map(|i| json!({"name": format!("c{i}")})).collect();
    let reversed: Vec<Value> = keyed.iter().rev().cloned().collect();
    let doc =
        json!({"metadata": {"finalizers": ["f0"]}, "spec": {"template": {"spec": {"containers": [{"name": "c0"}]}}}});
    let started = std::time::Instant::now();
    let out = smp(&doc, json!({"metadata": {"finalizers": names}}));
    assert_eq!(out["metadata"]["finalizers"].as_array().map(Vec::len), Some(n));
    let out = smp(&out, json!({"metadata": {"$deleteFromPrimitiveList/finalizers": out["metadata"]["finalizers"]}}));
    assert_eq!(out["metadata"]["finalizers"], json!([]));
    let out = smp(&doc, json!({"spec": {"template": {"spec": {"containers": keyed}}}}));
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!((containers.as_array().map(Vec::len), &containers[1]["name"]), (Some(n), &json!("c1")));
    let out = smp(&out, json!({"spec": {"template": {"spec": {"$setElementOrder/containers": reversed}}}}));
    assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["name"], format!("c{}", n - 1));
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
}

#[test]
fn keyed_lists_keep_their_semantics_with_duplicates_and_deletions() {
    let doc = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "1"}, {"name": "b"}, {"name": "a", "image": "2"}]}}}});
    // The first "a" is deleted, then the next patch element with "a" merges into the second.
    let out = smp(
        &doc,
        json!({"spec": {"template": {"spec": {"containers": [
        {"name": "a", "$patch": "delete"}, {"name": "a", "image": "3"}, {"name": "c"}]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "b"}, {"name": "a", "image": "3"}, {"name": "c"}])
    );
    let out = smp(
        &out,
        json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "x"}, {"name": "a"}]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "c"}, {"name": "a", "image": "3"}, {"name": "b"}])
    );
    let sets = json!({"metadata": {"finalizers": [{"b": 1, "a": 2}, "x"]}});
    let out = smp(&sets, json!({"metadata": {"finalizers": [{"a": 2, "b": 1}, "y"]}}));
    assert_eq!(
        out["metadata"]["finalizers"],
        json!([{"a": 2, "b": 1}, "x", "y"]),
        "equal objects whatever their key order"
    );
}

#[test]
fn json_patches_are_bounded_as_upstream_bounds_them() {
    // Thirty copies of the root would make a document of about 120 GB.
    let ops: Vec<Value> = (0..30).map(|i| json!({"op": "copy", "from": "", "path": format!("/k{i}")})).collect();
    let e = json_patch(&json!({"a": "x".repeat(100)}), &Value::Array(ops)).expect_err("bounded");
    assert_eq!(e.code(), 422);
    assert!(e.to_string().starts_with("Unable to complete the copy, the accumulated size increase of copy is "), "{e}");
    assert!(e.to_string().ends_with(", exceeding the limit 3145728"), "{e}");
    let ops: Vec<Value> = (0..15).map(|i| json!({"op": "copy", "from": "", "path": format!("/k{i}")})).collect();
    assert!(json_patch(&json!({"a": "x"}), &Value::Array(ops)).is_ok(), "small copies are fine");

    let ops = json!([{"op": "add", "path": "/a", "value": 1}, {"op": "remove", "path": "/b"}]);
    let e = json_patch(&json!({}), &ops).expect_err("no /b");
    assert!(e.to_string().starts_with("operation '/1' failed at path '/b'"), "{e}");

    let ops = vec![json!({"op": "test", "path": "", "value": {}}); MAX_JSON_PATCH_OPERATIONS + 1];
    let e = json_patch(&json!({}), &Value::Array(ops)).expect_err("too many");
    assert_eq!(
        (e.code(), e.to_string()),
        (413, "The allowed maximum operations in a JSON patch is 10000, got 10001".into())
    );
    let ops = vec![json!({"op": "test", "path": "", "value": {}}); MAX_JSON_PATCH_OPERATIONS];
    assert_eq!(json_patch(&json!({}), &Value::Array(ops)), Ok(json!({})));
}
