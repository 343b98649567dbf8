use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;
use crate::{defaults, resources};

fn info(group: &str, plural: &str) -> &'static ResourceInfo {
    resources::find(group, "v1", plural).expect("served")
}

fn defaulted(group: &str, plural: &str, mut obj: Value) -> Value {
    defaults::apply_defaults(info(group, plural), &mut obj).expect("decodes");
    obj
}

/// The errors of creating `obj` (defaulted first, as the API server does), as upstream prints
/// them: `field: message`.
fn create(group: &str, plural: &str, obj: Value) -> Vec<String> {
    let obj = defaulted(group, plural, obj);
    validate_create(info(group, plural), &obj).iter().map(|e| e.to_string()).collect()
}

fn update(group: &str, plural: &str, old: Value, new: Value) -> Vec<String> {
    let (old, new) = (defaulted(group, plural, old), defaulted(group, plural, new));
    validate_update(info(group, plural), &old, &new).iter().map(|e| e.to_string()).collect()
}

/// Apply `edit` to a copy of `base`.
fn with(base: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut v = base.clone();
    edit(&mut v);
    v
}

fn remove(v: &mut Value, key: &str) {
    if let Some(m) = v.as_object_mut() {
        m.remove(key);
    }
}

const NONE: &[&str] = &[];
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// The seeds' `test-statefulset.yaml`.
fn sts() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"creationTimestamp": null, "labels": {"app": "statefulset-test"}, "name": "statefulset-test",
            "namespace": "default"},
        "spec": {"serviceName": "test-statefulset-svc", "replicas": 3,
            "selector": {"matchLabels": {"app": "statefulset-test"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
            "template": {"metadata": {"labels": {"app": "statefulset-test"}},
                "spec": {"containers": [{"image": "nginx", "name": "nginx", "resources": {},
                    "volumeMounts": [{"name": "www", "mountPath": "/usr/share/nginx/html"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})
}

#[test]
fn seed_objects_are_valid() {
    assert_eq!(create("apps", "statefulsets", sts()), NONE);
    let node_port = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"labels": {"app": "test-statefulset"}, "name": "test-statefulset-svc", "namespace": "default"},
        "spec": {"type": "NodePort", "ports": [{"name": "test-statefulset-port", "protocol": "TCP", "port": 80,
            "targetPort": 80, "nodePort": 30000}], "selector": {"app": "statefulset-test"}}});
    assert_eq!(create("", "services", node_port), NONE);
    let headless = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nginx", "namespace": "default"},
        "spec": {"clusterIP": "None", "selector": {"app": "nginx"}}});
    assert_eq!(create("", "services", headless), NONE, "headless services may have no ports");
}

#[test]
fn statefulset_create_errors() {
    type Edit = fn(&mut Value);
    let cases: Vec<(Edit, Vec<&str>)> = vec![
        (|v| remove(&mut v["spec"], "selector"), vec!["spec.selector: Required value"]),
        (
            |v| v["spec"]["selector"] = json!({"matchLabels": {}}),
            vec!["spec.selector: Invalid value: {\"matchLabels\":{}}: empty selector is invalid for statefulset"],
        ),
        (
            |v| v["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"}),
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`",
            ],
        ),
        (
            |v| v["spec"]["replicas"] = json!(-1),
            vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            |v| v["spec"]["minReadySeconds"] = json!(-5),
            vec!["spec.minReadySeconds: Invalid value: -5: must be greater than or equal to 0"],
        ),
        (
            |v| v["spec"]["ordinals"] = json!({"start": -1}),
            vec!["spec.ordinals.start: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            |v| v["spec"]["podManagementPolicy"] = json!("Sometimes"),
            vec!["spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'"],
        ),
        (
            |v| v["spec"]["updateStrategy"]["type"] = json!("Rolling"),
            vec![
                "spec.updateStrategy: Invalid value: {\"rollingUpdate\":{\"partition\":2},\"type\":\"Rolling\"}: must be 'RollingUpdate' or 'OnDelete'",
            ],
        ),
        (
            |v| v["spec"]["updateStrategy"]["type"] = json!("OnDelete"),
            vec![
                "spec.updateStrategy.rollingUpdate: Invalid value: {\"partition\":2}: only allowed for updateStrategy 'RollingUpdate'",
            ],
        ),
        (
            |v| v["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(-1),
            vec!["spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            |v| v["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!(0),
            vec!["spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: cannot be 0"],
        ),
        (
            |v| v["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!("120%"),
            vec![
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"120%\": must not be greater than 100%",
            ],
        ),
        (
            |v| v["spec"]["persistentVolumeClaimRetentionPolicy"] = json!({"whenDeleted": "Keep"}),
            vec![
                "spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: \"Keep\": supported values: \"Retain\", \"Delete\"",
            ],
        ),
        (
            |v| v["spec"]["template"]["metadata"]["labels"]["bad key"] = json!("x"),
            vec![
                "spec.template.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            ],
        ),
        (
            |v| v["spec"]["template"]["spec"]["restartPolicy"] = json!("Never"),
            vec!["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""],
        ),
        (
            |v| v["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(10),
            vec![
                "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in StatefulSet is not Supported",
            ],
        ),
        (
            |v| remove(&mut v["spec"]["template"]["spec"]["containers"][0], "image"),
            vec!["spec.template.spec.containers[0].image: Required value"],
        ),
        (
            |v| v["spec"]["template"]["spec"]["containers"] = json!([]),
            vec!["spec.template.spec.containers: Required value"],
        ),
        (
            |v| {
                let c = v["spec"]["template"]["spec"]["containers"][0].clone();
                v["spec"]["template"]["spec"]["containers"] = json!([c.clone(), c]);
            },
            vec!["spec.template.spec.containers[1].name: Duplicate value: \"nginx\""],
        ),
        (
            |v| v["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 70000}]),
            vec![
                "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ],
        ),
        (
            |v| v["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["name"] = json!("data"),
            vec!["spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"data\""],
        ),
        (
            |v| remove(&mut v["spec"]["volumeClaimTemplates"][0]["spec"], "accessModes"),
            vec!["spec.volumeClaimTemplates[0].spec.accessModes: Required value: at least 1 access mode is required"],
        ),
        (
            |v| v["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = json!("0"),
            vec![
                "spec.volumeClaimTemplates[0].spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
            ],
        ),
    ];
    for (edit, want) in cases {
        let obj = with(&sts(), edit);
        assert_eq!(create("apps", "statefulsets", obj.clone()), want, "{}", obj["spec"]);
    }
    let service = with(&sts(), |v| v["spec"]["serviceName"] = json!("Bad_Svc"));
    assert_eq!(
        create("apps", "statefulsets", service),
        [format!("spec.serviceName: Invalid value: \"Bad_Svc\": {LABEL_MSG}")],
        "pods take it as their subdomain"
    );
}

#[test]
fn names_follow_each_kinds_rule() {
    let sts_name = create("apps", "statefulsets", with(&sts(), |v| v["metadata"]["name"] = json!("web.v1")));
    assert_eq!(sts_name, [format!("metadata.name: Invalid value: \"web.v1\": {LABEL_MSG}")]);
    let cm = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}});
    assert_eq!(create("", "configmaps", cm("web.v1")), NONE, "most names are subdomains");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1web", "namespace": "default"},
        "spec": {"ports": [{"port": 80}]}});
    assert_eq!(
        create("", "services", svc),
        [
            "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        ]
    );
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": &"n".repeat(64)}});
    assert_eq!(
        create("", "namespaces", ns),
        [
            format!("metadata.name: Invalid value: \"{}\": must be no more than 63 characters", "n".repeat(64)),
            format!("metadata.labels: Invalid value: \"{}\": must be no more than 63 characters", "n".repeat(64)),
        ],
        "the defaulted name label is checked too"
    );
    assert_eq!(
        create(
            "",
            "configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}})
        ),
        ["metadata.name: Required value: name or generateName is required"]
    );
    assert_eq!(
        create("", "configmaps", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})),
        ["metadata.namespace: Required value"]
    );
}

#[test]
fn metadata_syntax() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default",
        "labels": {"bad key": "v", "ok": "-bad-"},
        "annotations": {"a/b/c": "x"},
        "finalizers": ["example.com/ok", "custom", "kubernetes"],
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "a", "uid": "1", "controller": true},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "b", "uid": "2", "controller": true}]}});
    let errs = create("", "configmaps", cm);
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(
        errs[0].starts_with("metadata.labels: Invalid value: \"bad key\": name part must consist of"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with("metadata.labels: Invalid value: \"-bad-\": a valid label must be an empty string"),
        "{}",
        errs[1]
    );
    assert!(
        errs[2].starts_with("metadata.annotations: Invalid value: \"a/b/c\": a qualified name must consist of"),
        "{}",
        errs[2]
    );
    assert!(
        errs[3].ends_with(": Only one reference can have Controller set to true. Found \"true\" in references for StatefulSet/a and StatefulSet/b"),
        "{}",
        errs[3]
    );
    assert_eq!(
        errs[4],
        "metadata.finalizers[1]: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
    );
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default", "annotations": {"big": "x".repeat(256 * 1024)}}});
    assert_eq!(create("", "configmaps", big), ["metadata.annotations: Too long: must have at most 262144 bytes"]);
}

#[test]
fn statefulset_updates_only_touch_mutable_fields() {
    let old = sts();
    let allowed = with(&old, |v| {
        v["spec"]["replicas"] = json!(5);
        v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
        v["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        v["spec"]["minReadySeconds"] = json!(3);
        v["spec"]["persistentVolumeClaimRetentionPolicy"] = json!({"whenDeleted": "Delete", "whenScaled": "Retain"});
        v["spec"]["ordinals"] = json!({"start": 1});
        v["spec"]["revisionHistoryLimit"] = json!(3);
    });
    assert_eq!(update("apps", "statefulsets", old.clone(), allowed), NONE);
    let forbidden = "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";
    type Edit = fn(&mut Value);
    let edits: [Edit; 2] =
        [|v| v["spec"]["serviceName"] = json!("other"), |v| v["spec"]["podManagementPolicy"] = json!("Parallel")];
    for edit in edits {
        let new = with(&old, edit);
        assert_eq!(update("apps", "statefulsets", old.clone(), new.clone()), [forbidden], "{}", new["spec"]);
    }
    // Beyond upstream: a claim template's storage may grow, never shrink; nothing else may change.
    let grown = with(&old, |v| {
        v["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = json!("20Gi")
    });
    assert_eq!(update("apps", "statefulsets", old.clone(), grown.clone()), NONE);
    let shrunk = with(&grown, |v| {
        v["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = json!("1Mi")
    });
    assert_eq!(
        update("apps", "statefulsets", grown, shrunk),
        [
            "spec.volumeClaimTemplates[0].spec.resources.requests.storage: Forbidden: may only grow: Ordinal expands existing claims when a template asks for more, and volumes cannot shrink"
        ]
    );
    let renamed_mode =
        with(&old, |v| v["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] = json!(["ReadWriteMany"]));
    assert_eq!(
        update("apps", "statefulsets", old.clone(), renamed_mode),
        [
            "spec.volumeClaimTemplates: Forbidden: only the storage request of a volumeClaimTemplates entry may change (and only grow)"
        ]
    );
}

#[test]
fn an_object_stored_under_looser_rules_can_still_change_metadata_and_status() {
    let old = with(&sts(), |v| v["spec"]["template"]["spec"]["containers"][0]["name"] = json!("Bad_Name"));
    let new = with(&old, |v| {
        v["metadata"]["labels"]["extra"] = json!("yes");
        v["status"] = json!({"replicas": 3, "readyReplicas": 1});
    });
    assert_eq!(update("apps", "statefulsets", old.clone(), new), NONE);
    let spec_change = with(&old, |v| v["spec"]["replicas"] = json!(4));
    assert_eq!(update("apps", "statefulsets", old, spec_change).len(), 1, "a spec change is checked in full");
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mynginx", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "mynginx"}},
            "template": {"metadata": {"labels": {"app": "mynginx"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}})
}

#[test]
fn deployments_and_replica_sets() {
    assert_eq!(create("apps", "deployments", deployment()), NONE);
    let zero = with(&deployment(), |v| {
        v["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}})
    });
    assert_eq!(
        create("apps", "deployments", zero),
        ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"]
    );
    let recreate = with(&deployment(), |v| v["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {}}));
    assert_eq!(
        create("apps", "deployments", recreate),
        ["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
    );
    let deadline = with(&deployment(), |v| {
        v["spec"]["minReadySeconds"] = json!(700);
    });
    assert_eq!(
        create("apps", "deployments", deadline),
        ["spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"]
    );
    let moved = with(&deployment(), |v| {
        v["spec"]["selector"] = json!({"matchLabels": {"app": "mynginx", "tier": "web"}});
        v["spec"]["template"]["metadata"]["labels"]["tier"] = json!("web");
    });
    assert_eq!(
        update("apps", "deployments", deployment(), moved),
        ["spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"mynginx\",\"tier\":\"web\"}}: field is immutable"]
    );
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r", "namespace": "default"},
        "spec": {"selector": {}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    assert_eq!(create("apps", "replicasets", rs), ["spec.selector: Required value"]);
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "args": ["sleep", "1d"]}]}})
}

#[test]
fn pod_create_errors() {
    type Edit = fn(&mut Value);
    let cases: Vec<(Edit, Vec<&str>)> = vec![
        (|v| v["spec"]["containers"] = json!([]), vec!["spec.containers: Required value"]),
        (
            |v| v["spec"]["restartPolicy"] = json!("Sometimes"),
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ],
        ),
        (
            |v| v["spec"]["containers"][0]["image"] = json!(" busybox"),
            vec!["spec.containers[0].image: Invalid value: \" busybox\": must not have leading or trailing whitespace"],
        ),
        (
            |v| v["spec"]["containers"][0]["livenessProbe"] = json!({"tcpSocket": {"port": 80}, "successThreshold": 2}),
            vec!["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"],
        ),
        (
            |v| v["spec"]["containers"][0]["readinessProbe"] = json!({"periodSeconds": 5}),
            vec!["spec.containers[0].readinessProbe: Required value: must specify a handler type"],
        ),
        (
            |v| v["spec"]["containers"][0]["env"] = json!([{"name": "A=B", "value": "x"}]),
            vec![
                "spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            ],
        ),
        (
            |v| v["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}),
            vec![
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            ],
        ),
        (
            |v| v["spec"]["containers"][0]["resources"] = json!({"requests": {"gpu": "1"}}),
            vec![
                "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
            ],
        ),
        (
            |v| v["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "name": "a-very-long-port-name"}]),
            vec![
                "spec.containers[0].ports[0].name: Invalid value: \"a-very-long-port-name\": must be no more than 15 characters",
            ],
        ),
        (
            |v| v["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]),
            vec!["spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"],
        ),
        (
            |v| v["spec"]["tolerations"] = json!([{"operator": "Equal", "value": "x"}]),
            vec![
                "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ],
        ),
        (
            |v| {
                v["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "x",
                "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a/b"}}}])
            },
            vec![
                "spec.containers[0].env[0].valueFrom.configMapKeyRef.key: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                "spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
            ],
        ),
        (
            |v| v["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]),
            vec!["spec.containers[0].volumeMounts[0].name: Not found: \"data\""],
        ),
        (
            |v| v["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox"}]),
            vec!["spec.ephemeralContainers: Forbidden: cannot be set on create"],
        ),
    ];
    for (edit, want) in cases {
        let obj = with(&pod(), edit);
        assert_eq!(create("", "pods", obj.clone()), want, "{}", obj["spec"]);
    }
}

#[test]
fn pods_may_only_change_images_and_a_few_fields() {
    // As stored: an image change keeps the pull policy defaulted for the old image.
    let old = defaulted("", "pods", pod());
    let images = with(&old, |v| {
        v["spec"]["containers"][0]["image"] = json!("busybox:1.36");
        v["spec"]["activeDeadlineSeconds"] = json!(60);
        v["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists"}]);
    });
    assert_eq!(update("", "pods", old.clone(), images), NONE);
    let forbidden = "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";
    assert_eq!(
        update("", "pods", old.clone(), with(&old, |v| v["spec"]["containers"][0]["args"] = json!(["x"]))),
        [forbidden]
    );
    assert_eq!(update("", "pods", old.clone(), with(&old, |v| v["spec"]["nodeName"] = json!("node-1"))), [forbidden]);
    let added = with(&old, |v| {
        let c = json!({"name": "d", "image": "busybox"});
        if let Some(a) = v["spec"]["containers"].as_array_mut() {
            a.push(c);
        }
    });
    assert_eq!(
        update("", "pods", old.clone(), added),
        ["spec.containers: Forbidden: pod updates may not add or remove containers"]
    );
    let with_deadline = with(&old, |v| v["spec"]["activeDeadlineSeconds"] = json!(60));
    let longer = with(&old, |v| v["spec"]["activeDeadlineSeconds"] = json!(120));
    assert_eq!(
        update("", "pods", with_deadline, longer),
        ["spec.activeDeadlineSeconds: Invalid value: 120: must be less than or equal to previous value"]
    );
}

fn service() -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}], "clusterIP": "10.96.0.5",
            "clusterIPs": ["10.96.0.5"]}})
}

#[test]
fn service_errors() {
    type Edit = fn(&mut Value);
    let cases: Vec<(Edit, Vec<&str>)> = vec![
        (|v| v["spec"]["ports"] = json!([]), vec!["spec.ports: Required value"]),
        (
            |v| v["spec"]["ports"] = json!([{"port": 80}, {"port": 81}]),
            vec!["spec.ports[0].name: Required value", "spec.ports[1].name: Required value"],
        ),
        (
            |v| v["spec"]["ports"] = json!([{"name": "a", "port": 80}, {"name": "a", "port": 81}]),
            vec!["spec.ports[1].name: Duplicate value: \"a\""],
        ),
        (
            |v| v["spec"]["ports"][0]["port"] = json!(0),
            vec![
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
            ],
        ),
        (
            |v| v["spec"]["ports"][0]["protocol"] = json!("HTTP"),
            vec!["spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""],
        ),
        (
            |v| v["spec"]["ports"][0]["nodePort"] = json!(30001),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
        ),
        (
            |v| v["spec"]["type"] = json!("Internal"),
            vec![
                "spec.type: Unsupported value: \"Internal\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ],
        ),
        (
            |v| {
                v["spec"]["type"] = json!("NodePort");
                v["spec"]["clusterIP"] = json!("None");
                v["spec"]["clusterIPs"] = json!(["None"]);
            },
            vec!["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"],
        ),
        (
            |v| {
                v["spec"] = json!({"type": "ExternalName"});
            },
            vec!["spec.externalName: Required value"],
        ),
        (
            |v| {
                v["spec"]["clusterIP"] = json!("10.96.0.500");
                remove(&mut v["spec"], "clusterIPs");
            },
            vec![
                "spec.clusterIPs[0]: Invalid value: \"10.96.0.500\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ],
        ),
    ];
    for (edit, want) in cases {
        let obj = with(&service(), edit);
        assert_eq!(create("", "services", obj.clone()), want, "{}", obj["spec"]);
    }
}

#[test]
fn service_cluster_ips_never_change() {
    let old = service();
    let moved = with(&old, |v| {
        v["spec"]["clusterIP"] = json!("10.96.0.6");
    });
    assert_eq!(
        update("", "services", old.clone(), moved),
        ["spec.clusterIPs[0]: Invalid value: [\"10.96.0.6\"]: may not change once set"]
    );
    let omitted = with(&old, |v| {
        remove(&mut v["spec"], "clusterIP");
        remove(&mut v["spec"], "clusterIPs");
    });
    assert_eq!(update("", "services", old.clone(), omitted), NONE, "the server keeps an omitted address");
    let to_external = with(&old, |v| v["spec"] = json!({"type": "ExternalName", "externalName": "example.com"}));
    assert_eq!(update("", "services", old, to_external), NONE);
}

fn claim() -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "www-web-0", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
}

#[test]
fn claims() {
    assert_eq!(create("", "persistentvolumeclaims", claim()), NONE);
    let empty = with(&claim(), |v| v["spec"] = json!({}));
    assert_eq!(
        create("", "persistentvolumeclaims", empty),
        [
            "spec.accessModes: Required value: at least 1 access mode is required",
            "spec.resources[storage]: Required value"
        ]
    );
    let modes =
        with(&claim(), |v| v["spec"]["accessModes"] = json!(["ReadWriteOncePod", "ReadWriteOnce", "Sometimes"]));
    assert_eq!(
        create("", "persistentvolumeclaims", modes),
        [
            "spec.accessModes: Unsupported value: \"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
            "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
        ]
    );
}

#[test]
fn claim_updates() {
    let immutable = "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims";
    let pending = claim();
    let bound = with(&claim(), |v| {
        v["spec"]["volumeName"] = json!("pv-1");
        v["status"] = json!({"phase": "Bound", "capacity": {"storage": "1Gi"}});
    });
    let bind = with(&pending, |v| v["spec"]["volumeName"] = json!("pv-1"));
    assert_eq!(update("", "persistentvolumeclaims", pending.clone(), bind), NONE, "binding sets volumeName once");
    let rebind = with(&bound, |v| v["spec"]["volumeName"] = json!("pv-2"));
    assert_eq!(update("", "persistentvolumeclaims", bound.clone(), rebind), [immutable]);
    let grow = with(&bound, |v| v["spec"]["resources"]["requests"]["storage"] = json!("2Gi"));
    assert_eq!(update("", "persistentvolumeclaims", bound.clone(), grow.clone()), NONE, "bound claims may grow");
    let grow_pending = with(&pending, |v| v["spec"]["resources"]["requests"]["storage"] = json!("2Gi"));
    assert_eq!(update("", "persistentvolumeclaims", pending.clone(), grow_pending), [immutable]);
    let shrink = with(&bound, |v| v["spec"]["resources"]["requests"]["storage"] = json!("500Mi"));
    assert_eq!(
        update("", "persistentvolumeclaims", bound.clone(), shrink),
        ["spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"]
    );
    let modes = with(&bound, |v| v["spec"]["accessModes"] = json!(["ReadWriteMany"]));
    assert_eq!(update("", "persistentvolumeclaims", bound.clone(), modes), [immutable]);
    let block = with(&bound, |v| v["spec"]["volumeMode"] = json!("Block"));
    assert_eq!(
        update("", "persistentvolumeclaims", bound, block),
        [immutable, "volumeMode: Invalid value: \"Block\": field is immutable"]
    );
}

#[test]
fn persistent_volumes() {
    let pv = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "test-0"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/mnt/test-0"}}});
    assert_eq!(create("", "persistentvolumes", pv.clone()), NONE);
    let none = with(&pv, |v| remove(&mut v["spec"], "hostPath"));
    assert_eq!(create("", "persistentvolumes", none), ["spec: Required value: must specify a volume type"]);
    let two = with(&pv, |v| v["spec"]["nfs"] = json!({"server": "s", "path": "/p"}));
    assert_eq!(create("", "persistentvolumes", two), ["spec.nfs: Forbidden: may not specify more than 1 volume type"]);
    let no_capacity = with(&pv, |v| remove(&mut v["spec"], "capacity"));
    assert_eq!(
        create("", "persistentvolumes", no_capacity),
        ["spec.capacity: Required value", "spec.capacity: Unsupported value: {}: supported values: \"storage\""]
    );
    let moved = with(&pv, |v| v["spec"]["hostPath"]["path"] = json!("/elsewhere"));
    assert_eq!(
        update("", "persistentvolumes", pv.clone(), moved),
        ["spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"]
    );
    let claimed = with(&pv, |v| v["spec"]["claimRef"] = json!({"name": "www-web-0", "namespace": "default"}));
    assert_eq!(update("", "persistentvolumes", pv, claimed), NONE, "binding a volume is an update");
}

#[test]
fn config_maps_and_secrets() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"},
        "data": {"ok.key": "v", "bad/key": "v", "..x": "v"}});
    assert_eq!(
        create("", "configmaps", cm),
        [
            "data[..x]: Invalid value: \"..x\": must not start with '..'",
            "data[bad/key]: Invalid value: \"bad/key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        ]
    );
    let frozen = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"},
        "data": {"k": "v"}, "immutable": true});
    let thawed = with(&frozen, |v| {
        v["data"]["k"] = json!("w");
        v["immutable"] = json!(false);
    });
    assert_eq!(
        update("", "configmaps", frozen, thawed),
        [
            "immutable: Forbidden: field is immutable when `immutable` is set",
            "data: Forbidden: field is immutable when `immutable` is set",
        ]
    );
    let tls = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
        "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA=="}});
    assert_eq!(create("", "secrets", tls.clone()), ["data[tls.key]: Required value"]);
    let complete = with(&tls, |v| v["data"]["tls.key"] = json!("a2V5"));
    let opaque = with(&complete, |v| v["type"] = json!("Opaque"));
    assert_eq!(
        update("", "secrets", opaque, complete),
        ["type: Invalid value: \"kubernetes.io/tls\": field is immutable"]
    );
}

#[test]
fn small_kinds() {
    let sc = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "local"},
        "provisioner": "ordinal.dev/local-path"});
    assert_eq!(create("storage.k8s.io", "storageclasses", sc.clone()), NONE);
    assert_eq!(
        create("storage.k8s.io", "storageclasses", with(&sc, |v| v["provisioner"] = json!(""))),
        ["provisioner: Required value"]
    );
    let changed = with(&sc, |v| {
        v["provisioner"] = json!("other.dev/x");
        v["reclaimPolicy"] = json!("Retain");
    });
    assert_eq!(
        update("storage.k8s.io", "storageclasses", sc, changed),
        [
            "provisioner: Forbidden: updates to provisioner are forbidden.",
            "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
        ]
    );
    let rev = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "web-1", "namespace": "default"},
        "revision": -1, "data": {"spec": {}}});
    assert_eq!(
        create("apps", "controllerrevisions", rev.clone()),
        ["revision: Invalid value: -1: must be greater than or equal to 0"]
    );
    let fixed = with(&rev, |v| v["revision"] = json!(1));
    let edited = with(&fixed, |v| v["data"] = json!({"spec": {"x": 1}}));
    assert_eq!(
        update("apps", "controllerrevisions", fixed, edited),
        ["data: Invalid value: {\"spec\":{\"x\":1}}: field is immutable"]
    );
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "namespace": "default"}, "addressType": "IPv5",
        "endpoints": [{"addresses": []}], "ports": [{"port": 80}]});
    assert_eq!(
        create("discovery.k8s.io", "endpointslices", slice),
        [
            "addressType: Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
            "endpoints[0].addresses: Required value: must contain at least 1 address",
        ]
    );
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "node-1", "namespace": "kube-node-lease"}, "spec": {"leaseDurationSeconds": 0}});
    assert_eq!(
        create("coordination.k8s.io", "leases", lease),
        ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]
    );
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule"}, {"key": "j", "effect": "Never"}]}});
    let errs = create("", "nodes", node);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].starts_with("spec.taints[1]: Duplicate value: "), "{}", errs[0]);
    assert_eq!(
        errs[1],
        "spec.taints[2].effect: Unsupported value: \"Never\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""
    );
}

#[test]
fn jobs_restart_on_failure_or_never_and_keep_their_selector_and_template() {
    let job = || {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
                "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "u"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}})
    };
    assert!(create("batch", "jobs", job()).is_empty());
    let always = with(&job(), |v| v["spec"]["template"]["spec"]["restartPolicy"] = json!("Always"));
    assert_eq!(
        create("batch", "jobs", always),
        ["spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""]
    );
    let indexed = with(&job(), |v| {
        v["spec"]["completionMode"] = json!("Indexed");
        v["spec"]["parallelism"] = json!(2); // so completions is not defaulted
    });
    assert_eq!(create("batch", "jobs", indexed), ["spec.completions: Required value: when completion mode is Indexed"]);
    let negative = with(&job(), |v| v["spec"]["backoffLimit"] = json!(-1));
    assert_eq!(
        create("batch", "jobs", negative),
        ["spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"]
    );
    let other_image = with(&job(), |v| v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("j"));
    let errors = update("batch", "jobs", job(), other_image);
    assert!(
        errors.len() == 1
            && errors[0].starts_with("spec.template: Invalid value")
            && errors[0].ends_with("field is immutable"),
        "{errors:?}"
    );
}
