use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;

const ACCEPT_133: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
const ACCEPT_127: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

fn find<'a>(items: &'a Value, key: &str, name: &str) -> &'a Value {
    items
        .as_array()
        .and_then(|a| a.iter().find(|e| e[key] == name))
        .unwrap_or_else(|| panic!("no {key}={name} in {items}"))
}

#[test]
fn negotiation_follows_the_clients_preference() {
    let cases: &[(&str, Option<AggregatedVersion>)] = &[
        (ACCEPT_133, Some(AggregatedVersion::V2)),
        (ACCEPT_127, Some(AggregatedVersion::V2Beta1)),
        ("application/json, */*", None),
        ("application/json", None),
        ("", None),
        // Protobuf aggregated discovery is not served: skip to the next acceptable range.
        (
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            Some(AggregatedVersion::V2),
        ),
        // Plain JSON preferred over the aggregated form by order or by q.
        ("application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", None),
        (
            "application/json;q=0.5, application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
            Some(AggregatedVersion::V2Beta1),
        ),
        // An unknown discovery version is skipped.
        ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList, application/json", None),
    ];
    for (accept, want) in cases {
        assert_eq!(negotiate(accept), *want, "Accept: {accept}");
    }
    assert_eq!(
        content_type(AggregatedVersion::V2),
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    assert!(content_type(AggregatedVersion::V2Beta1).contains(";v=v2beta1;"));
}

#[test]
fn aggregated_apps_has_statefulsets_with_short_names_and_scale() {
    let doc = aggregated(false, AggregatedVersion::V2);
    assert_eq!(doc["kind"], "APIGroupDiscoveryList");
    assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2");
    assert!(
        doc["items"].as_array().expect("items").iter().all(|g| g["metadata"]["name"] != Value::Null),
        "core is not in /apis"
    );
    let apps =
        doc["items"].as_array().and_then(|a| a.iter().find(|g| g["metadata"]["name"] == "apps")).expect("apps group");
    let v1 = &apps["versions"][0];
    assert_eq!(v1["version"], "v1");
    assert_eq!(v1["freshness"], "Current");
    let sts = find(&v1["resources"], "resource", "statefulsets");
    assert_eq!(sts["scope"], "Namespaced");
    assert_eq!(sts["singularResource"], "statefulset");
    assert_eq!(sts["shortNames"], json!(["sts"]));
    assert_eq!(sts["categories"], json!(["all"]));
    assert_eq!(sts["responseKind"], json!({"group": "apps", "kind": "StatefulSet", "version": "v1"}));
    assert_eq!(
        sts["verbs"],
        json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])
    );
    let scale = find(&sts["subresources"], "subresource", "scale");
    assert_eq!(scale["responseKind"], json!({"group": "autoscaling", "kind": "Scale", "version": "v1"}));
    assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));
    let status = find(&sts["subresources"], "subresource", "status");
    assert_eq!(status["responseKind"]["kind"], "StatefulSet");

    assert_eq!(aggregated(false, AggregatedVersion::V2Beta1)["apiVersion"], "apidiscovery.k8s.io/v2beta1");
}

#[test]
fn aggregated_core_is_one_nameless_group() {
    let doc = aggregated(true, AggregatedVersion::V2);
    let items = doc["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"], json!({}));
    let resources = &items[0]["versions"][0]["resources"];
    let pods = find(resources, "resource", "pods");
    assert_eq!(pods["shortNames"], json!(["po"]));
    let subs: Vec<&str> =
        pods["subresources"].as_array().expect("subs").iter().filter_map(|s| s["subresource"].as_str()).collect();
    assert_eq!(subs, ["attach", "binding", "eviction", "exec", "log", "status"]);
    let eviction = find(&pods["subresources"], "subresource", "eviction");
    assert_eq!(eviction["responseKind"], json!({"group": "policy", "kind": "Eviction", "version": "v1"}));
    let ns = find(resources, "resource", "namespaces");
    assert_eq!(ns["scope"], "Cluster");
    assert!(!ns["verbs"].as_array().expect("verbs").contains(&json!("deletecollection")));
    assert_eq!(find(&ns["subresources"], "subresource", "finalize")["verbs"], json!(["update"]));
    // Resources are sorted by name.
    let names: Vec<&str> =
        resources.as_array().expect("resources").iter().filter_map(|r| r["resource"].as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[test]
fn legacy_documents() {
    assert_eq!(
        api_versions("127.0.0.1:6443"),
        json!({"kind": "APIVersions", "versions": ["v1"],
               "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]})
    );

    let groups = api_group_list();
    assert_eq!(groups["kind"], "APIGroupList");
    let apps = find(&groups["groups"], "name", "apps");
    assert_eq!(apps["preferredVersion"], json!({"groupVersion": "apps/v1", "version": "v1"}));
    assert!(groups["groups"].as_array().expect("groups").iter().all(|g| g["name"] != ""), "core is not a named group");

    let group = api_group("storage.k8s.io").expect("storage group");
    assert_eq!(group["kind"], "APIGroup");
    assert_eq!(group["versions"], json!([{"groupVersion": "storage.k8s.io/v1", "version": "v1"}]));
    assert_eq!(api_group("example.com"), None);
    assert_eq!(api_group(""), None);
}

#[test]
fn legacy_resource_lists() {
    assert_eq!(api_resource_list("apps", "v2"), None);
    assert_eq!(api_resource_list("nosuch", "v1"), None);

    let apps = api_resource_list("apps", "v1").expect("apps/v1");
    assert_eq!(apps["groupVersion"], "apps/v1");
    assert_eq!(apps["apiVersion"], "v1");
    let sts = find(&apps["resources"], "name", "statefulsets");
    assert_eq!(sts["singularName"], "statefulset");
    assert_eq!(sts["namespaced"], true);
    assert_eq!(sts["shortNames"], json!(["sts"]));
    assert_eq!(sts["storageVersionHash"].as_str().map(str::len), Some(12));
    let scale = find(&apps["resources"], "name", "statefulsets/scale");
    assert_eq!(
        scale,
        &json!({"name": "statefulsets/scale", "singularName": "", "namespaced": true,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
    );
    let revisions = find(&apps["resources"], "name", "controllerrevisions");
    assert!(revisions.get("shortNames").is_none() && revisions.get("categories").is_none());

    let core = api_resource_list("", "v1").expect("v1");
    assert_eq!(core["groupVersion"], "v1");
    let names: Vec<&str> =
        core["resources"].as_array().expect("resources").iter().filter_map(|r| r["name"].as_str()).collect();
    for want in [
        "pods",
        "pods/attach",
        "pods/binding",
        "pods/eviction",
        "pods/exec",
        "pods/log",
        "pods/status",
        "namespaces/finalize",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let exec = find(&core["resources"], "name", "pods/exec");
    assert_eq!(exec["kind"], "PodExecOptions");
    assert_eq!(exec["verbs"], json!(["create", "get"]));
    assert_eq!(find(&core["resources"], "name", "pods/log")["kind"], "Pod");
    assert_eq!(find(&core["resources"], "name", "nodes")["namespaced"], false);
}

#[test]
fn storage_version_hash_is_stable_and_distinct() {
    let sts = model::resources::find("apps", "v1", "statefulsets").expect("sts");
    let pods = model::resources::find("", "v1", "pods").expect("pods");
    assert_eq!(storage_version_hash(sts), storage_version_hash(sts));
    assert_ne!(storage_version_hash(sts), storage_version_hash(pods));
}
