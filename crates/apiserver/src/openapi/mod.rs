//! The OpenAPI documents: v3 (`/openapi/v3` index plus one JSON document per group version) and
//! v2 (`/openapi/v2`, Swagger 2.0 as JSON or as gnostic protobuf), built once from
//! `model::RESOURCES`, the subresource table in `discovery`, and the k8s-openapi schemas of the
//! kinds we serve.
//!
//! kubectl needs them for three things:
//! * `apply`/`create` with the default `--validate=strict` look for a PATCH operation carrying the
//!   object's `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter (1.29+
//!   in v3, older clients in the protobuf v2), and then leave validation to the server;
//! * `explain` finds the kind's GVK on an operation of the resource's path, then the component
//!   schema carrying the same GVK, and walks its properties;
//! * the client-side apply patcher would compute strategic merge patches from the schemas when
//!   an operation says it accepts them. k8s-openapi's schemas lack the
//!   `x-kubernetes-patch-merge-key`/`-strategy` extensions, so PATCH operations here advertise no
//!   request body (v3) and no `consumes` (v2): kubectl then uses its compiled-in types for the
//!   patch, which carry the merge keys, exactly as against a real cluster.

mod proto;
mod schemas;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use model::{RESOURCES, ResourceInfo};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::discovery::{self, Gvk};
use schemas::Names;

/// The Content-Type for the protobuf v2 answer. Echoing the media type kubectl asked for
/// (`V2_PROTOBUF_MEDIA_TYPE`) makes Go's MIME parser fail on the `@`.
pub const V2_PROTOBUF_CONTENT_TYPE: &str = "application/octet-stream";
/// What kubectl sends in `Accept` when it wants the protobuf v2 document.
pub const V2_PROTOBUF_MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The Kubernetes release whose API (and k8s-openapi feature) we serve.
const KUBERNETES_VERSION: &str = "v1.33.0";

#[derive(Debug, Clone, Copy)]
enum Ty {
    String,
    Integer,
    Boolean,
}

impl Ty {
    fn as_str(self) -> &'static str {
        match self {
            Ty::String => "string",
            Ty::Integer => "integer",
            Ty::Boolean => "boolean",
        }
    }
}

/// A query parameter.
#[derive(Debug)]
struct Param {
    name: &'static str,
    ty: Ty,
    description: &'static str,
}

const fn q(name: &'static str, ty: Ty, description: &'static str) -> Param {
    Param { name, ty, description }
}

const PRETTY: Param = q("pretty", Ty::String, "If 'true', the output is indented.");
const ALLOW_WATCH_BOOKMARKS: Param =
    q("allowWatchBookmarks", Ty::Boolean, "With watch: ask for BOOKMARK events carrying the current resourceVersion.");
const CONTINUE: Param = q("continue", Ty::String, "The continue token of a previous page of a paginated list.");
const FIELD_SELECTOR: Param =
    q("fieldSelector", Ty::String, "Restrict the result to objects whose fields match, e.g. metadata.name=web-0.");
const LABEL_SELECTOR: Param =
    q("labelSelector", Ty::String, "Restrict the result to objects whose labels match, e.g. app=web,tier!=db.");
const LIMIT: Param = q("limit", Ty::Integer, "The largest number of objects to return in one page.");
const RESOURCE_VERSION: Param =
    q("resourceVersion", Ty::String, "The resourceVersion to read at, or to start watching after.");
const RESOURCE_VERSION_MATCH: Param =
    q("resourceVersionMatch", Ty::String, "How resourceVersion applies to a list: Exact or NotOlderThan.");
const SEND_INITIAL_EVENTS: Param =
    q("sendInitialEvents", Ty::Boolean, "With watch: start with ADDED events for the current state, then a bookmark.");
const TIMEOUT_SECONDS: Param = q("timeoutSeconds", Ty::Integer, "End a list or watch call after this many seconds.");
const WATCH: Param = q("watch", Ty::Boolean, "Stream ADDED, MODIFIED and DELETED events instead of returning a list.");
const DRY_RUN: Param = q("dryRun", Ty::String, "With All: run every stage of the request but persist nothing.");
const FIELD_MANAGER: Param =
    q("fieldManager", Ty::String, "The name of the actor making the change, recorded in managedFields.");
const FIELD_VALIDATION: Param = q(
    "fieldValidation",
    Ty::String,
    "What to do with unknown or duplicate fields in the body: Ignore, Warn or Strict (fail the request).",
);
const FORCE: Param = q("force", Ty::Boolean, "Server-side apply: take ownership of fields other managers own.");
const GRACE_PERIOD_SECONDS: Param =
    q("gracePeriodSeconds", Ty::Integer, "Seconds before the object is deleted; 0 deletes at once.");
const ORPHAN_DEPENDENTS: Param = q("orphanDependents", Ty::Boolean, "Deprecated: use propagationPolicy=Orphan.");
const PROPAGATION_POLICY: Param =
    q("propagationPolicy", Ty::String, "What happens to dependents: Orphan, Background or Foreground.");
const CONTAINER: Param = q("container", Ty::String, "The container; may be left out when the pod has only one.");
const STDIN: Param = q("stdin", Ty::Boolean, "Attach the standard input stream.");
const STDOUT: Param = q("stdout", Ty::Boolean, "Attach the standard output stream.");
const STDERR: Param = q("stderr", Ty::Boolean, "Attach the standard error stream.");
const TTY: Param = q("tty", Ty::Boolean, "Allocate a terminal; stderr is then merged into stdout.");

const LIST_PARAMS: &[Param] = &[
    ALLOW_WATCH_BOOKMARKS,
    CONTINUE,
    FIELD_SELECTOR,
    LABEL_SELECTOR,
    LIMIT,
    RESOURCE_VERSION,
    RESOURCE_VERSION_MATCH,
    SEND_INITIAL_EVENTS,
    TIMEOUT_SECONDS,
    WATCH,
];
const WRITE_PARAMS: &[Param] = &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
const PATCH_PARAMS: &[Param] = &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE];
const DELETE_PARAMS: &[Param] = &[DRY_RUN, GRACE_PERIOD_SECONDS, ORPHAN_DEPENDENTS, PROPAGATION_POLICY];
const DELETE_COLLECTION_PARAMS: &[Param] = &[
    CONTINUE,
    DRY_RUN,
    FIELD_SELECTOR,
    GRACE_PERIOD_SECONDS,
    LABEL_SELECTOR,
    LIMIT,
    ORPHAN_DEPENDENTS,
    PROPAGATION_POLICY,
    RESOURCE_VERSION,
    RESOURCE_VERSION_MATCH,
    SEND_INITIAL_EVENTS,
    TIMEOUT_SECONDS,
];
const READ_PARAMS: &[Param] = &[];
const LOG_PARAMS: &[Param] = &[
    CONTAINER,
    q("follow", Ty::Boolean, "Keep streaming as the container writes."),
    q("limitBytes", Ty::Integer, "Stop after this many bytes."),
    q("previous", Ty::Boolean, "Read the log of the previous, terminated, instance of the container."),
    q("sinceSeconds", Ty::Integer, "Only lines from the last this many seconds."),
    q("tailLines", Ty::Integer, "Only the last this many lines."),
    q("timestamps", Ty::Boolean, "Prefix every line with its RFC 3339 timestamp."),
];
const EXEC_PARAMS: &[Param] = &[
    q("command", Ty::String, "The command to run, one argument per repetition of the parameter."),
    CONTAINER,
    STDERR,
    STDIN,
    STDOUT,
    TTY,
];
const ATTACH_PARAMS: &[Param] = &[CONTAINER, STDERR, STDIN, STDOUT, TTY];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Put,
    Post,
    Delete,
    Patch,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Put => "put",
            Method::Post => "post",
            Method::Delete => "delete",
            Method::Patch => "patch",
        }
    }
}

/// What a successful answer carries.
#[derive(Debug, Clone)]
enum Answer {
    /// A JSON object described by this component schema (`None` when it has no schema here).
    Object(Option<String>),
    /// Plain text (logs).
    Text,
    /// A streaming upgrade (exec, attach).
    Stream,
}

/// One operation, rendered into both v3 and v2 form.
#[derive(Debug)]
struct Op {
    method: Method,
    id: String,
    description: String,
    /// `x-kubernetes-action`.
    action: &'static str,
    gvk: Gvk,
    query: &'static [Param],
    /// The component schema of the request body, for writes that take an object.
    body: Option<String>,
    codes: &'static [u16],
    answer: Answer,
}

/// A path with its path parameters and operations.
#[derive(Debug)]
struct PathItem {
    path: String,
    /// `(name, description)` of each `{…}` segment.
    params: Vec<(&'static str, String)>,
    ops: Vec<Op>,
}

/// `storage.k8s.io` → `Storage`, `apps` → `Apps`, core → `Core`; `v1beta1` → `V1beta1`, as in
/// kube-apiserver's operation ids (`patchAppsV1NamespacedStatefulSet`).
fn id_prefix(group: &str, version: &str) -> String {
    fn upper_first(s: &str) -> String {
        let mut chars = s.chars();
        chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
    }
    let group = if group.is_empty() { "core" } else { group.strip_suffix(".k8s.io").unwrap_or(group) };
    let group: String = group.split('.').map(upper_first).collect();
    format!("{group}{}", upper_first(version))
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// The served group versions in discovery order, as `(group, version)`.
fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

fn name_of(names: &Names, gvk: Gvk) -> Option<String> {
    schemas::name_of(names, gvk.group, gvk.version, gvk.kind)
}

const META_STATUS: Gvk = Gvk { group: "", version: "v1", kind: "Status" };
const DELETE_OPTIONS: Gvk = Gvk { group: "", version: "v1", kind: "DeleteOptions" };

/// The standard verbs on objects and on the `status`/`scale`/`finalize`/`binding`/`eviction`
/// subresources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    List,
    Create,
    DeleteCollection,
    Read,
    Replace,
    Patch,
    Delete,
}

impl Verb {
    fn method(self) -> Method {
        match self {
            Verb::List | Verb::Read => Method::Get,
            Verb::Create => Method::Post,
            Verb::Replace => Method::Put,
            Verb::Patch => Method::Patch,
            Verb::Delete | Verb::DeleteCollection => Method::Delete,
        }
    }

    /// `x-kubernetes-action`.
    fn action(self) -> &'static str {
        match self {
            Verb::List => "list",
            Verb::Create => "post",
            Verb::DeleteCollection => "deletecollection",
            Verb::Read => "get",
            Verb::Replace => "put",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    fn query(self) -> &'static [Param] {
        match self {
            Verb::List => LIST_PARAMS,
            Verb::Create | Verb::Replace => WRITE_PARAMS,
            Verb::DeleteCollection => DELETE_COLLECTION_PARAMS,
            Verb::Read => READ_PARAMS,
            Verb::Patch => PATCH_PARAMS,
            Verb::Delete => DELETE_PARAMS,
        }
    }

    fn codes(self) -> &'static [u16] {
        match self {
            Verb::List | Verb::Read | Verb::DeleteCollection => &[200],
            Verb::Create => &[200, 201, 202],
            Verb::Replace | Verb::Patch => &[200, 201],
            Verb::Delete => &[200, 202],
        }
    }

    /// The operation id (`patchAppsV1NamespacedStatefulSetScale`) and description.
    fn name(self, prefix: &str, scope: &str, kind: &str, sub: &str) -> (String, String) {
        let what = if sub.is_empty() {
            format!("the specified {kind}")
        } else {
            format!("{} of the specified {kind}", sub.to_lowercase())
        };
        let (verb, description) = match self {
            Verb::List => ("list", format!("list or watch objects of kind {kind}")),
            Verb::Create if sub.is_empty() => ("create", format!("create a {kind}")),
            Verb::Create => ("create", format!("create {what}")),
            Verb::DeleteCollection => ("delete", format!("delete a collection of {kind}")),
            Verb::Read => ("read", format!("read {what}")),
            Verb::Replace => ("replace", format!("replace {what}")),
            Verb::Patch => ("patch", format!("partially update {what}")),
            Verb::Delete => ("delete", format!("delete {what}")),
        };
        let collection = if self == Verb::DeleteCollection { "Collection" } else { "" };
        (format!("{verb}{prefix}{collection}{scope}{kind}{sub}"), description)
    }
}

/// `log` → `Log`, for operation ids.
fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// Every path and operation of one resource.
fn resource_paths(r: &'static ResourceInfo, names: &Names) -> Vec<PathItem> {
    let gvk = Gvk::of(r);
    let prefix = id_prefix(r.group, r.version);
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let kind = r.kind;
    let object = name_of(names, gvk);
    let list = schemas::name_of(names, r.group, r.version, &r.list_kind());
    let status = name_of(names, META_STATUS);
    let delete_options = name_of(names, DELETE_OPTIONS);
    let root = format!("/{}", gv_path(r.group, r.version));
    let collection = if r.namespaced {
        format!("{root}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{root}/{}", r.plural)
    };
    let item = format!("{collection}/{{name}}");
    let namespace_param = r.namespaced.then(|| ("namespace", format!("namespace of the {kind}")));
    let item_params = || {
        let mut params = vec![("name", format!("name of the {kind}"))];
        params.extend(namespace_param.clone());
        params
    };

    // A standard operation on the object (`sub` empty) or on a subresource answering `target`
    // with the component schema `schema`.
    let standard = |verb: Verb, sub: &str, target: Gvk, schema: &Option<String>| {
        let (id, description) = verb.name(&prefix, scope, kind, sub);
        let answer = match verb {
            Verb::List => list.clone(),
            Verb::Delete | Verb::DeleteCollection => status.clone(),
            _ => schema.clone(),
        };
        let body = match verb {
            Verb::Create | Verb::Replace => schema.clone(),
            Verb::Delete | Verb::DeleteCollection => delete_options.clone(),
            _ => None,
        };
        Op {
            method: verb.method(),
            id,
            description,
            action: verb.action(),
            gvk: target,
            query: verb.query(),
            body,
            codes: verb.codes(),
            answer: Answer::Object(answer),
        }
    };

    let mut out = Vec::new();
    let collection_verbs = [Verb::List, Verb::Create, Verb::DeleteCollection];
    let ops = collection_verbs
        .into_iter()
        .filter(|v| *v != Verb::DeleteCollection || discovery::verbs(r).contains(&"deletecollection"))
        .map(|v| standard(v, "", gvk, &object))
        .collect();
    out.push(PathItem { path: collection.clone(), params: namespace_param.clone().into_iter().collect(), ops });
    if r.namespaced {
        let mut all = standard(Verb::List, "", gvk, &object);
        all.id = format!("list{prefix}{kind}ForAllNamespaces");
        all.description = format!("list or watch objects of kind {kind} in every namespace");
        out.push(PathItem { path: format!("{root}/{}", r.plural), params: Vec::new(), ops: vec![all] });
    }
    let item_verbs = [Verb::Read, Verb::Replace, Verb::Patch, Verb::Delete];
    let ops = item_verbs.into_iter().map(|v| standard(v, "", gvk, &object)).collect();
    out.push(PathItem { path: item.clone(), params: item_params(), ops });

    for sub in discovery::subresources(r) {
        let suffix = upper_first(sub.name);
        let target = name_of(names, sub.kind);
        // Connect-style operations answering a stream or text.
        let raw = |method: Method, id: String, description: String, action, query, answer| Op {
            method,
            id,
            description,
            action,
            gvk: sub.kind,
            query,
            body: None,
            codes: &[200],
            answer,
        };
        let ops = match sub.name {
            "status" | "scale" => [Verb::Read, Verb::Replace, Verb::Patch]
                .into_iter()
                .map(|v| standard(v, &suffix, sub.kind, &target))
                .collect(),
            "finalize" => vec![standard(Verb::Replace, &suffix, sub.kind, &target)],
            "log" => vec![raw(
                Method::Get,
                format!("read{prefix}{scope}{kind}Log"),
                format!("read the log of the specified {kind}"),
                "get",
                LOG_PARAMS,
                Answer::Text,
            )],
            "exec" | "attach" => {
                let query = if sub.name == "exec" { EXEC_PARAMS } else { ATTACH_PARAMS };
                [(Method::Get, "Get"), (Method::Post, "Post")]
                    .into_iter()
                    .map(|(method, m)| {
                        let id = format!("connect{prefix}{m}{scope}{kind}{suffix}");
                        let description = format!("connect {m} requests to {} of the {kind}", sub.name);
                        raw(method, id, description, "connect", query, Answer::Stream)
                    })
                    .collect()
            }
            // binding, eviction: create-only subresources taking their own kind.
            _ => vec![standard(Verb::Create, &suffix, sub.kind, &target)],
        };
        out.push(PathItem { path: format!("{item}/{}", sub.name), params: item_params(), ops });
    }
    out
}

fn code_description(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        _ => "Unauthorized",
    }
}

fn v3_param(p: &Param) -> Value {
    json!({"name": p.name, "in": "query", "description": p.description,
           "schema": {"type": p.ty.as_str(), "uniqueItems": true}})
}

fn v3_operation(op: &Op) -> Value {
    let mut o = Map::new();
    o.insert("description".into(), op.description.clone().into());
    o.insert("operationId".into(), op.id.clone().into());
    if !op.query.is_empty() {
        o.insert("parameters".into(), op.query.iter().map(v3_param).collect());
    }
    if let Some(body) = &op.body {
        o.insert(
            "requestBody".into(),
            json!({"content": {"*/*": {"schema": schemas::v3_ref(body)}}, "required": true}),
        );
    }
    let mut responses = Map::new();
    for code in op.codes {
        let content = match &op.answer {
            Answer::Object(Some(name)) => {
                let mut types = Map::new();
                types.insert("application/json".into(), json!({"schema": schemas::v3_ref(name)}));
                if op.action == "list" {
                    types.insert("application/json;stream=watch".into(), json!({"schema": schemas::v3_ref(name)}));
                }
                Some(Value::Object(types))
            }
            Answer::Object(None) => None,
            Answer::Text => Some(json!({"text/plain": {"schema": {"type": "string"}}})),
            Answer::Stream => Some(json!({"*/*": {"schema": {"type": "string"}}})),
        };
        let mut r = json!({"description": code_description(*code)});
        if let (Some(content), Some(obj)) = (content, r.as_object_mut()) {
            obj.insert("content".into(), content);
        }
        responses.insert(code.to_string(), r);
    }
    responses.insert("401".into(), json!({"description": code_description(401)}));
    o.insert("responses".into(), responses.into());
    o.insert("x-kubernetes-action".into(), op.action.into());
    o.insert("x-kubernetes-group-version-kind".into(), op.gvk.to_json());
    Value::Object(o)
}

fn v3_path_item(item: &PathItem) -> Value {
    let mut o = Map::new();
    for op in &item.ops {
        o.insert(op.method.as_str().into(), v3_operation(op));
    }
    let mut params: Vec<Value> = item
        .params
        .iter()
        .map(|(name, description)| {
            json!({"name": name, "in": "path", "description": description, "required": true,
                   "schema": {"type": "string", "uniqueItems": true}})
        })
        .collect();
    params.push(v3_param(&PRETTY));
    o.insert("parameters".into(), params.into());
    Value::Object(o)
}

fn v2_param(p: &Param) -> Value {
    json!({"uniqueItems": true, "type": p.ty.as_str(), "description": p.description, "name": p.name, "in": "query"})
}

fn v2_operation(op: &Op) -> Value {
    let mut o = Map::new();
    o.insert("description".into(), op.description.clone().into());
    // See the module doc: PATCH advertises no accepted body types.
    if op.method != Method::Patch {
        o.insert("consumes".into(), json!(["*/*"]));
    }
    let produces = match op.answer {
        Answer::Object(_) if op.action == "list" => {
            json!(["application/json", "application/json;stream=watch"])
        }
        Answer::Object(_) => json!(["application/json"]),
        Answer::Text => json!(["text/plain"]),
        Answer::Stream => json!(["*/*"]),
    };
    o.insert("produces".into(), produces);
    o.insert("schemes".into(), json!(["https"]));
    o.insert("operationId".into(), op.id.clone().into());
    let mut params: Vec<Value> = op.query.iter().map(v2_param).collect();
    if let Some(body) = &op.body {
        params.push(json!({"name": "body", "in": "body", "required": true, "schema": {"$ref": format!("#/definitions/{body}")}}));
    }
    if !params.is_empty() {
        o.insert("parameters".into(), params.into());
    }
    let mut responses = Map::new();
    for code in op.codes {
        let mut r = Map::new();
        r.insert("description".into(), code_description(*code).into());
        match &op.answer {
            Answer::Object(Some(name)) => {
                r.insert("schema".into(), json!({"$ref": format!("#/definitions/{name}")}));
            }
            Answer::Object(None) => {}
            Answer::Text | Answer::Stream => {
                r.insert("schema".into(), json!({"type": "string"}));
            }
        }
        responses.insert(code.to_string(), r.into());
    }
    responses.insert("401".into(), json!({"description": code_description(401)}));
    o.insert("responses".into(), responses.into());
    o.insert("x-kubernetes-action".into(), op.action.into());
    o.insert("x-kubernetes-group-version-kind".into(), op.gvk.to_json());
    Value::Object(o)
}

fn v2_path_item(item: &PathItem) -> Value {
    let mut o = Map::new();
    for op in &item.ops {
        o.insert(op.method.as_str().into(), v2_operation(op));
    }
    let mut params: Vec<Value> = item
        .params
        .iter()
        .map(|(name, description)| {
            json!({"uniqueItems": true, "type": "string", "description": description, "name": name,
                   "in": "path", "required": true})
        })
        .collect();
    params.push(v2_param(&PRETTY));
    o.insert("parameters".into(), params.into());
    Value::Object(o)
}

/// One group version's pieces, before rendering.
struct GroupVersion {
    /// `api/v1`, `apis/apps/v1`.
    path: String,
    items: Vec<PathItem>,
    /// OpenAPI 3 component schemas, sorted by name.
    components: Map<String, Value>,
}

fn build_group_version(group: &'static str, version: &'static str) -> GroupVersion {
    let resources: Vec<&'static ResourceInfo> =
        RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    let mut others = vec![META_STATUS, DELETE_OPTIONS];
    for r in &resources {
        for sub in discovery::subresources(r) {
            if sub.kind != Gvk::of(r) && !others.contains(&sub.kind) {
                others.push(sub.kind);
            }
        }
    }
    let wanted = schemas::Wanted { resources: resources.iter().map(|r| Gvk::of(r)).collect(), others };
    let (components, names) = schemas::components(&wanted, &group_versions());
    let mut items: Vec<PathItem> = resources.iter().flat_map(|r| resource_paths(r, &names)).collect();
    items.sort_by(|a, b| a.path.cmp(&b.path));
    GroupVersion { path: gv_path(group, version), items, components }
}

/// A rendered v3 document with its serialized bytes and their hash.
struct V3Doc {
    path: String,
    value: Value,
    bytes: Vec<u8>,
    hash: String,
}

struct Documents {
    v3: Vec<V3Doc>,
    v2_json: Value,
    v2_protobuf: Vec<u8>,
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": KUBERNETES_VERSION})
}

fn build() -> Documents {
    let gvs: Vec<GroupVersion> = group_versions().into_iter().map(|(g, v)| build_group_version(g, v)).collect();

    let v3 = gvs
        .iter()
        .map(|gv| {
            let paths: Map<String, Value> = gv.items.iter().map(|i| (i.path.clone(), v3_path_item(i))).collect();
            let value = json!({
                "openapi": "3.0.0",
                "info": info(),
                "paths": paths,
                "components": {"schemas": gv.components},
            });
            let bytes = serde_json::to_vec(&value).unwrap_or_default();
            let hash = Sha256::digest(&bytes).iter().map(|b| format!("{b:02X}")).collect();
            V3Doc { path: gv.path.clone(), value, bytes, hash }
        })
        .collect();

    let mut paths: BTreeMap<&str, Value> = BTreeMap::new();
    let mut definitions: BTreeMap<&str, Value> = BTreeMap::new();
    for gv in &gvs {
        for item in &gv.items {
            paths.insert(&item.path, v2_path_item(item));
        }
        for (name, schema) in &gv.components {
            definitions.entry(name).or_insert_with(|| schemas::to_v2(schema));
        }
    }
    let paths: Map<String, Value> = paths.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let definitions: Map<String, Value> = definitions.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let v2_json = json!({"swagger": "2.0", "info": info(), "paths": paths, "definitions": definitions});
    let encoded = proto::encode_document(&v2_json);
    debug_assert!(encoded.skipped.is_empty(), "JSON keys without a protobuf field: {:?}", encoded.skipped);
    let v2_protobuf = encoded.bytes;
    Documents { v3, v2_json, v2_protobuf }
}

static DOCUMENTS: LazyLock<Documents> = LazyLock::new(build);

fn v3_doc(gv_path: &str) -> Option<&'static V3Doc> {
    DOCUMENTS.v3.iter().find(|d| d.path == gv_path.trim_start_matches('/'))
}

/// `GET /openapi/v3`: every group version with the URL of its document; the `hash` query
/// changes only when the document does (kubectl caches by URL).
pub fn v3_index() -> Value {
    let paths: Map<String, Value> = DOCUMENTS
        .v3
        .iter()
        .map(|d| (d.path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{}?hash={}", d.path, d.hash)})))
        .collect();
    json!({"paths": paths})
}

/// `GET /openapi/v3/{gv_path}` (`api/v1`, `apis/apps/v1`; a leading `/` is ignored), or `None`
/// for a group version not served.
pub fn v3_document(gv_path: &str) -> Option<Value> {
    v3_doc(gv_path).map(|d| d.value.clone())
}

/// The bytes of `v3_document(gv_path)`, serialized once: the ones its index hash covers.
pub fn v3_document_bytes(gv_path: &str) -> Option<&'static [u8]> {
    v3_doc(gv_path).map(|d| d.bytes.as_slice())
}

/// The hash in `v3_index()` for `gv_path` (uppercase hex SHA-256 of the document bytes), for an
/// `ETag` or to tell a current `?hash=` from a stale one.
pub fn v3_hash(gv_path: &str) -> Option<&'static str> {
    v3_doc(gv_path).map(|d| d.hash.as_str())
}

/// `GET /openapi/v2` as Swagger 2.0 JSON (every group version in one document).
pub fn v2_json() -> Value {
    DOCUMENTS.v2_json.clone()
}

/// `GET /openapi/v2` as a gnostic `openapi.v2.Document` protobuf (what kubectl asks for); serve
/// it with `V2_PROTOBUF_CONTENT_TYPE`.
pub fn v2_protobuf() -> Vec<u8> {
    DOCUMENTS.v2_protobuf.clone()
}
