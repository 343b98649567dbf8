//! Component schemas for the OpenAPI documents, derived from the k8s-openapi types we serve
//! through their `schemars` implementations (OpenAPI 3 form, `#/components/schemas/…`), plus the
//! `…List` kinds (k8s-openapi has no schema for its generic `List<T>`) and the
//! `x-kubernetes-group-version-kind` extensions that `kubectl explain` looks up; and the
//! rewrite of those schemas into Swagger 2.0 `definitions`.

use std::collections::BTreeMap;

use k8s_openapi::api::{apps, autoscaling, coordination, core, discovery, events, policy, storage};
use k8s_openapi::apimachinery::pkg::apis::meta;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::discovery::Gvk;

const V3_PREFIX: &str = "#/components/schemas/";
const V2_PREFIX: &str = "#/definitions/";

/// Add the schema of the type behind `gvk` to `generator` and return its definition name, or
/// `None` for a kind this table does not know. Every kind in `model::RESOURCES` and every kind a
/// subresource answers with must be listed (a test checks).
fn add_kind(generator: &mut SchemaGenerator, gvk: Gvk) -> Option<String> {
    let reference = match (gvk.group, gvk.version, gvk.kind) {
        ("", "v1", "Namespace") => generator.subschema_for::<core::v1::Namespace>(),
        ("", "v1", "Node") => generator.subschema_for::<core::v1::Node>(),
        ("", "v1", "Pod") => generator.subschema_for::<core::v1::Pod>(),
        ("", "v1", "Service") => generator.subschema_for::<core::v1::Service>(),
        ("", "v1", "Endpoints") => generator.subschema_for::<core::v1::Endpoints>(),
        ("", "v1", "PersistentVolumeClaim") => generator.subschema_for::<core::v1::PersistentVolumeClaim>(),
        ("", "v1", "PersistentVolume") => generator.subschema_for::<core::v1::PersistentVolume>(),
        ("", "v1", "ConfigMap") => generator.subschema_for::<core::v1::ConfigMap>(),
        ("", "v1", "Secret") => generator.subschema_for::<core::v1::Secret>(),
        ("", "v1", "ServiceAccount") => generator.subschema_for::<core::v1::ServiceAccount>(),
        ("", "v1", "Event") => generator.subschema_for::<core::v1::Event>(),
        ("", "v1", "Binding") => generator.subschema_for::<core::v1::Binding>(),
        ("", "v1", "Status") => generator.subschema_for::<meta::v1::Status>(),
        ("", "v1", "DeleteOptions") => generator.subschema_for::<meta::v1::DeleteOptions>(),
        ("apps", "v1", "StatefulSet") => generator.subschema_for::<apps::v1::StatefulSet>(),
        ("apps", "v1", "Deployment") => generator.subschema_for::<apps::v1::Deployment>(),
        ("apps", "v1", "ReplicaSet") => generator.subschema_for::<apps::v1::ReplicaSet>(),
        ("apps", "v1", "ControllerRevision") => generator.subschema_for::<apps::v1::ControllerRevision>(),
        ("autoscaling", "v1", "Scale") => generator.subschema_for::<autoscaling::v1::Scale>(),
        ("policy", "v1", "Eviction") => generator.subschema_for::<policy::v1::Eviction>(),
        ("storage.k8s.io", "v1", "StorageClass") => generator.subschema_for::<storage::v1::StorageClass>(),
        ("discovery.k8s.io", "v1", "EndpointSlice") => generator.subschema_for::<discovery::v1::EndpointSlice>(),
        ("coordination.k8s.io", "v1", "Lease") => generator.subschema_for::<coordination::v1::Lease>(),
        ("events.k8s.io", "v1", "Event") => generator.subschema_for::<events::v1::Event>(),
        ("rbac.authorization.k8s.io", "v1", "Role") => generator.subschema_for::<k8s_openapi::api::rbac::v1::Role>(),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => {
            generator.subschema_for::<k8s_openapi::api::rbac::v1::ClusterRole>()
        }
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => {
            generator.subschema_for::<k8s_openapi::api::rbac::v1::RoleBinding>()
        }
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            generator.subschema_for::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>()
        }
        ("networking.k8s.io", "v1", "NetworkPolicy") => {
            generator.subschema_for::<k8s_openapi::api::networking::v1::NetworkPolicy>()
        }
        ("networking.k8s.io", "v1", "Ingress") => {
            generator.subschema_for::<k8s_openapi::api::networking::v1::Ingress>()
        }
        ("networking.k8s.io", "v1", "IngressClass") => {
            generator.subschema_for::<k8s_openapi::api::networking::v1::IngressClass>()
        }
        ("scheduling.k8s.io", "v1", "PriorityClass") => {
            generator.subschema_for::<k8s_openapi::api::scheduling::v1::PriorityClass>()
        }
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => {
            generator.subschema_for::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>()
        }
        ("batch", "v1", "Job") => generator.subschema_for::<k8s_openapi::api::batch::v1::Job>(),
        ("", "v1", "ResourceQuota") => generator.subschema_for::<k8s_openapi::api::core::v1::ResourceQuota>(),
        ("", "v1", "LimitRange") => generator.subschema_for::<k8s_openapi::api::core::v1::LimitRange>(),
        ("", "v1", "ReplicationController") => {
            generator.subschema_for::<k8s_openapi::api::core::v1::ReplicationController>()
        }
        ("apps", "v1", "DaemonSet") => generator.subschema_for::<k8s_openapi::api::apps::v1::DaemonSet>(),
        ("batch", "v1", "CronJob") => generator.subschema_for::<k8s_openapi::api::batch::v1::CronJob>(),
        ("policy", "v1", "PodDisruptionBudget") => {
            generator.subschema_for::<k8s_openapi::api::policy::v1::PodDisruptionBudget>()
        }
        ("apiregistration.k8s.io", "v1", "APIService") => {
            generator.subschema_for::<k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService>()
        }
        _ => return None,
    };
    reference.get("$ref")?.as_str()?.strip_prefix(V3_PREFIX).map(str::to_string)
}

/// `#/components/schemas/{name}` as a schema.
pub fn v3_ref(name: &str) -> Value {
    json!({"$ref": format!("{V3_PREFIX}{name}")})
}

/// What one group version's document needs: its kinds, their lists, and the kinds its
/// operations take or answer with beyond those.
pub struct Wanted {
    /// Kinds served as resources (each also gets a `…List`).
    pub resources: Vec<Gvk>,
    /// Kinds only answered by subresources or operations (`Scale`, `Eviction`, `Status`, …).
    pub others: Vec<Gvk>,
}

/// Definition names by `group/version/Kind` (lists included), for building operations.
pub type Names = BTreeMap<String, String>;

fn key(group: &str, version: &str, kind: &str) -> String {
    format!("{group}/{version}/{kind}")
}

/// The definition name of a kind in `names`.
pub fn name_of(names: &Names, group: &str, version: &str, kind: &str) -> Option<String> {
    names.get(&key(group, version, kind)).cloned()
}

fn gvk_json(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// The `components.schemas` of one group version, sorted by name: every definition the wanted
/// kinds reach, the `…List` schemas, and `x-kubernetes-group-version-kind` on each kind
/// (`DeleteOptions` stands for one kind in each of `all_group_versions`, as upstream).
pub fn components(wanted: &Wanted, all_group_versions: &[(&str, &str)]) -> (Map<String, Value>, Names) {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut names = Names::new();
    let mut gvks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut lists: Vec<(String, String)> = Vec::new();
    for gvk in &wanted.resources {
        if let Some(name) = add_kind(&mut generator, *gvk) {
            let list_kind = format!("{}List", gvk.kind);
            let list = format!("{name}List");
            names.insert(key(gvk.group, gvk.version, gvk.kind), name.clone());
            names.insert(key(gvk.group, gvk.version, &list_kind), list.clone());
            gvks.entry(name.clone()).or_default().push(gvk.to_json());
            gvks.entry(list.clone()).or_default().push(gvk_json(gvk.group, gvk.version, &list_kind));
            lists.push((name, list));
        }
    }
    for gvk in &wanted.others {
        if let Some(name) = add_kind(&mut generator, *gvk) {
            names.insert(key(gvk.group, gvk.version, gvk.kind), name.clone());
            let entry = gvks.entry(name).or_default();
            if gvk.kind == "DeleteOptions" {
                entry.extend(all_group_versions.iter().map(|(g, v)| gvk_json(g, v, "DeleteOptions")));
            } else if !entry.contains(&gvk.to_json()) {
                entry.push(gvk.to_json());
            }
        }
    }
    let list_meta = generator.subschema_for::<meta::v1::ListMeta>().to_value();
    let mut defs = generator.take_definitions(true);
    for (item, list) in lists {
        let schema = list_schema(&item, defs.get(&item), &list_meta);
        defs.insert(list, schema);
    }
    let mut sorted: Vec<(String, Value)> = defs.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Map::new();
    for (name, mut schema) in sorted {
        if let (Some(list), Some(obj)) = (gvks.remove(&name), schema.as_object_mut()) {
            obj.insert("x-kubernetes-group-version-kind".into(), list.into());
        }
        out.insert(name, schema);
    }
    (out, names)
}

/// The schema of `{Kind}List`, shaped like kube-apiserver's: `apiVersion`, `items`, `kind`,
/// `metadata`, with `items` required.
fn list_schema(item: &str, item_schema: Option<&Value>, list_meta: &Value) -> Value {
    let kind = item.rsplit('.').next().unwrap_or(item);
    let field = |f: &str| {
        item_schema.and_then(|s| s["properties"].get(f)).cloned().unwrap_or_else(|| json!({"type": "string"}))
    };
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": field("apiVersion"),
            "items": {"description": format!("The {kind} objects."), "type": "array", "items": v3_ref(item)},
            "kind": field("kind"),
            "metadata": {
                "description": "List metadata: the resourceVersion of the list and the continue token of the next page.",
                "allOf": [list_meta],
            },
        },
        "required": ["items"],
    })
}

/// Rewrite an OpenAPI 3 component schema as a Swagger 2.0 definition, in the shape kubectl's
/// v2 model parser accepts: references point at `#/definitions/`, a lone `allOf: [$ref]` (how
/// OpenAPI 3 adds a description to a reference) becomes a plain `$ref` with siblings, and
/// int-or-string gets the `string`/`int-or-string` type kube-apiserver gives it.
pub fn to_v2(schema: &Value) -> Value {
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        match (k.as_str(), v) {
            ("$ref", Value::String(r)) => {
                let target = r.strip_prefix(V3_PREFIX).map(|n| format!("{V2_PREFIX}{n}")).unwrap_or_else(|| r.clone());
                out.insert(k.clone(), target.into());
            }
            ("allOf", Value::Array(items)) if items.len() == 1 && items[0].get("$ref").is_some() => {
                if let Value::Object(inner) = to_v2(&items[0]) {
                    out.extend(inner);
                }
            }
            ("properties", Value::Object(props)) => {
                let props: Map<String, Value> = props.iter().map(|(n, s)| (n.clone(), to_v2(s))).collect();
                out.insert(k.clone(), props.into());
            }
            ("items" | "additionalProperties", s @ Value::Object(_)) => {
                out.insert(k.clone(), to_v2(s));
            }
            ("allOf" | "anyOf" | "oneOf", Value::Array(items)) => {
                out.insert(k.clone(), items.iter().map(to_v2).collect());
            }
            ("nullable", _) => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if out.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) && !out.contains_key("type") {
        out.insert("type".into(), "string".into());
        out.insert("format".into(), "int-or-string".into());
    }
    Value::Object(out)
}
