//! Discovery documents, built from `model::RESOURCES`: the legacy forms (`APIVersions` for
//! `/api`, `APIGroupList` for `/apis`, `APIGroup` for `/apis/{group}`, `APIResourceList` for
//! `/api/v1` and `/apis/{group}/{version}`), the aggregated `apidiscovery.k8s.io`
//! `APIGroupDiscoveryList` (v2 and v2beta1) that newer clients ask for, and the Accept-header
//! negotiation between the two.
//!
//! The subresource table here (which subresources exist, their response kinds and verbs) is
//! shared with the OpenAPI documents, so both describe the same API.

use base64::Engine as _;
use model::{RESOURCES, ResourceInfo, Subresource};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

#[cfg(test)]
mod tests;

/// A group, version and kind, as discovery's `responseKind` and OpenAPI's
/// `x-kubernetes-group-version-kind` spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gvk {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
}

impl Gvk {
    pub fn of(r: &'static ResourceInfo) -> Gvk {
        Gvk { group: r.group, version: r.version, kind: r.kind }
    }

    /// `{"group":…,"kind":…,"version":…}`, keys in the order kube-apiserver writes them.
    pub fn to_json(self) -> Value {
        json!({"group": self.group, "kind": self.kind, "version": self.version})
    }
}

/// One subresource of a resource, as served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubresourceDoc {
    /// The last path segment: `status`, `scale`, `log`, ….
    pub name: &'static str,
    /// The kind answered (and, for writes, accepted).
    pub kind: Gvk,
    pub verbs: &'static [&'static str],
}

const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
/// kube-apiserver offers no `deletecollection` on namespaces.
const NAMESPACE_VERBS: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];
const READ_WRITE: &[&str] = &["get", "patch", "update"];
const CONNECT: &[&str] = &["create", "get"];

/// The verbs a resource (not its subresources) supports.
pub fn verbs(r: &ResourceInfo) -> &'static [&'static str] {
    if r.group.is_empty() && r.plural == "namespaces" { NAMESPACE_VERBS } else { ALL_VERBS }
}

/// Every subresource of `r`, sorted by name as kube-apiserver lists them: `status` and `scale`
/// from the registry, plus the pod (`log`, `exec`, `attach`, `binding`, `eviction`), namespace
/// (`finalize`) and service account (`token`) subresources the server implements.
pub fn subresources(r: &'static ResourceInfo) -> Vec<SubresourceDoc> {
    let own = |kind| Gvk { group: r.group, version: r.version, kind };
    let core = |kind| Gvk { group: "", version: "v1", kind };
    let mut out = Vec::new();
    for sub in r.subresources {
        out.push(match sub {
            Subresource::Status => SubresourceDoc { name: "status", kind: Gvk::of(r), verbs: READ_WRITE },
            Subresource::Scale => SubresourceDoc {
                name: "scale",
                kind: Gvk { group: "autoscaling", version: "v1", kind: "Scale" },
                verbs: READ_WRITE,
            },
        });
    }
    if r.group.is_empty() && r.plural == "pods" {
        out.extend([
            SubresourceDoc { name: "attach", kind: core("PodAttachOptions"), verbs: CONNECT },
            SubresourceDoc { name: "binding", kind: core("Binding"), verbs: &["create"] },
            SubresourceDoc {
                name: "eviction",
                kind: Gvk { group: "policy", version: "v1", kind: "Eviction" },
                verbs: &["create"],
            },
            SubresourceDoc { name: "exec", kind: core("PodExecOptions"), verbs: CONNECT },
            SubresourceDoc { name: "log", kind: own("Pod"), verbs: &["get"] },
        ]);
    }
    if r.group.is_empty() && r.plural == "serviceaccounts" {
        let kind = Gvk { group: "authentication.k8s.io", version: "v1", kind: "TokenRequest" };
        out.push(SubresourceDoc { name: "token", kind, verbs: &["create"] });
    }
    if r.group.is_empty() && r.plural == "namespaces" {
        out.push(SubresourceDoc { name: "finalize", kind: own("Namespace"), verbs: &["update"] });
    }
    out.sort_by_key(|s| s.name);
    out
}

/// kube-apiserver's `storageVersionHash`: the first 8 bytes of SHA-256 over
/// `group/version/kind` of the storage version, base64. Clients only compare it for equality.
pub fn storage_version_hash(r: &ResourceInfo) -> String {
    let digest = Sha256::digest(format!("{}/{}/{}", r.group, r.version, r.kind));
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }
}

/// `GET /api`: the legacy `APIVersions` of the core group.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// The named groups (not core) in discovery order, each with its versions, preferred first.
fn named_groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

fn api_group_json(name: &str, versions: &[&str]) -> Value {
    let gv = |v: &str| json!({"groupVersion": group_version(name, v), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(|v| gv(v)).unwrap_or(Value::Null),
    })
}

/// `GET /apis`: the legacy `APIGroupList` of every named group.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = named_groups().iter().map(|(g, vs)| api_group_json(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`: one `APIGroup`, or `None` for a group not served.
pub fn api_group(group: &str) -> Option<Value> {
    let (name, versions) = named_groups().into_iter().find(|(g, _)| *g == group)?;
    let mut doc = json!({"kind": "APIGroup", "apiVersion": "v1"});
    if let (Some(obj), Value::Object(body)) = (doc.as_object_mut(), api_group_json(name, &versions)) {
        obj.extend(body);
    }
    Some(doc)
}

fn strings(items: &[&str]) -> Value {
    Value::from(items.iter().map(|s| Value::from(*s)).collect::<Vec<_>>())
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`: the legacy `APIResourceList`, resources and
/// `resource/subresource` entries sorted by name. `None` for a group version not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let mut entries: Vec<(String, Value)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        let mut e = Map::new();
        e.insert("name".into(), r.plural.into());
        e.insert("singularName".into(), r.singular.into());
        e.insert("namespaced".into(), r.namespaced.into());
        e.insert("kind".into(), r.kind.into());
        e.insert("verbs".into(), strings(verbs(r)));
        if !r.short_names.is_empty() {
            e.insert("shortNames".into(), strings(r.short_names));
        }
        if !r.categories.is_empty() {
            e.insert("categories".into(), strings(r.categories));
        }
        e.insert("storageVersionHash".into(), storage_version_hash(r).into());
        entries.push((r.plural.to_string(), Value::Object(e)));
        for sub in subresources(r) {
            let name = format!("{}/{}", r.plural, sub.name);
            let mut e = Map::new();
            e.insert("name".into(), name.clone().into());
            e.insert("singularName".into(), "".into());
            e.insert("namespaced".into(), r.namespaced.into());
            if (sub.kind.group, sub.kind.version) != (r.group, r.version) {
                e.insert("group".into(), sub.kind.group.into());
                e.insert("version".into(), sub.kind.version.into());
            }
            e.insert("kind".into(), sub.kind.kind.into());
            e.insert("verbs".into(), strings(sub.verbs));
            entries.push((name, Value::Object(e)));
        }
    }
    if entries.is_empty() {
        return None;
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut doc = Map::new();
    doc.insert("kind".into(), "APIResourceList".into());
    // kube-apiserver leaves `apiVersion` out of the core group's list.
    if !group.is_empty() {
        doc.insert("apiVersion".into(), "v1".into());
    }
    doc.insert("groupVersion".into(), group_version(group, version).into());
    doc.insert("resources".into(), entries.into_iter().map(|(_, e)| e).collect());
    Some(Value::Object(doc))
}

/// The two versions of aggregated discovery: kubectl 1.30 and later ask for `v2` first, older
/// clients only know `v2beta1`. The documents differ only in `apiVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregatedVersion {
    V2,
    V2Beta1,
}

impl AggregatedVersion {
    fn as_str(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => "v2",
            AggregatedVersion::V2Beta1 => "v2beta1",
        }
    }
}

/// The Content-Type of an aggregated answer; clients read the format from it.
pub fn content_type(v: AggregatedVersion) -> &'static str {
    match v {
        AggregatedVersion::V2 => "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        AggregatedVersion::V2Beta1 => "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
    }
}

fn resource_discovery(r: &'static ResourceInfo) -> Value {
    let mut e = Map::new();
    e.insert("resource".into(), r.plural.into());
    e.insert("responseKind".into(), Gvk::of(r).to_json());
    e.insert("scope".into(), (if r.namespaced { "Namespaced" } else { "Cluster" }).into());
    e.insert("singularResource".into(), r.singular.into());
    e.insert("verbs".into(), strings(verbs(r)));
    if !r.short_names.is_empty() {
        e.insert("shortNames".into(), strings(r.short_names));
    }
    if !r.categories.is_empty() {
        e.insert("categories".into(), strings(r.categories));
    }
    let subs: Vec<Value> = subresources(r)
        .into_iter()
        .map(|s| json!({"subresource": s.name, "responseKind": s.kind.to_json(), "verbs": strings(s.verbs)}))
        .collect();
    if !subs.is_empty() {
        e.insert("subresources".into(), subs.into());
    }
    Value::Object(e)
}

fn group_discovery(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let mut rs: Vec<&'static ResourceInfo> =
                RESOURCES.iter().filter(|r| r.group == group && r.version == *v).collect();
            rs.sort_by_key(|r| r.plural);
            json!({
                "version": v,
                "resources": rs.into_iter().map(resource_discovery).collect::<Vec<_>>(),
                "freshness": "Current",
            })
        })
        .collect();
    // The core group has no name; kube-apiserver omits the empty field.
    let metadata = if group.is_empty() { json!({}) } else { json!({"name": group}) };
    json!({"metadata": metadata, "versions": versions})
}

/// `GET /api` (`core = true`, the core group alone) or `GET /apis` (every named group) as an
/// `APIGroupDiscoveryList`; serve it with `content_type(v)`.
pub fn aggregated(core: bool, v: AggregatedVersion) -> Value {
    let items: Vec<Value> = if core {
        let mut versions: Vec<&str> = Vec::new();
        for r in RESOURCES.iter().filter(|r| r.group.is_empty()) {
            if !versions.contains(&r.version) {
                versions.push(r.version);
            }
        }
        vec![group_discovery("", &versions)]
    } else {
        named_groups().iter().map(|(g, vs)| group_discovery(g, vs)).collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{}", v.as_str()),
        "metadata": {},
        "items": items,
    })
}

/// One media range of an Accept header.
struct MediaRange<'a> {
    essence: &'a str,
    params: Vec<(&'a str, &'a str)>,
    q: f32,
}

fn parse_accept(accept: &str) -> Vec<MediaRange<'_>> {
    let mut ranges: Vec<MediaRange<'_>> = accept
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.split(';').map(str::trim);
            let essence = pieces.next().filter(|e| !e.is_empty())?;
            let mut q = 1.0;
            let mut params = Vec::new();
            for p in pieces {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let (k, v) = (k.trim(), v.trim().trim_matches('"'));
                if k == "q" {
                    q = v.parse().unwrap_or(0.0);
                } else {
                    params.push((k, v));
                }
            }
            Some(MediaRange { essence, params, q })
        })
        .collect();
    // Stable: equal preferences keep the client's order.
    ranges.sort_by(|a, b| b.q.total_cmp(&a.q));
    ranges
}

/// Pick the discovery format from an Accept header: `Some(V2 | V2Beta1)` when the client's most
/// preferred acceptable range is the aggregated JSON form, `None` when it would rather have (or
/// only takes) the legacy documents.
pub fn negotiate(accept: &str) -> Option<AggregatedVersion> {
    for range in parse_accept(accept).into_iter().filter(|r| r.q > 0.0) {
        let param = |name: &str| range.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| *v);
        let json_like =
            matches!(range.essence.to_ascii_lowercase().as_str(), "application/json" | "application/*" | "*/*");
        if !json_like {
            continue;
        }
        match (param("g"), param("v"), param("as")) {
            (None, None, None) => return None,
            (Some("apidiscovery.k8s.io"), Some("v2"), Some("APIGroupDiscoveryList")) => {
                return Some(AggregatedVersion::V2);
            }
            (Some("apidiscovery.k8s.io"), Some("v2beta1"), Some("APIGroupDiscoveryList")) => {
                return Some(AggregatedVersion::V2Beta1);
            }
            _ => continue,
        }
    }
    None
}
