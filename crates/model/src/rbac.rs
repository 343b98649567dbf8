//! RBAC authorization as kube-apiserver's RBAC authorizer decides it
//! (`plugin/pkg/auth/authorizer/rbac`): a request's attributes (read from its URL and method,
//! as the request-info resolver does), the user, and the stored Roles, ClusterRoles and their
//! bindings in; allowed or not out. Also the rules a user holds in a namespace (for
//! `SelfSubjectRulesReview`), ClusterRole aggregation, the forbidden message, and the default
//! roles and bindings a cluster starts with.
//!
//! Pure: the API server gathers the objects and applies the decision.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

/// Who asks: the authenticated user's name and groups (`system:authenticated` included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// What a request does, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Resource { verb: String, group: String, resource: String, subresource: String, name: String, namespace: String },
    NonResource { verb: String, path: String },
}

/// Every Role, ClusterRole and binding the store holds.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
}

/// The request's attributes from its method, path and query, as upstream's request-info
/// resolver reads them: `GET` a collection is `list` (`watch` with `watch=true`), `GET` a name
/// `get`, `POST` `create`, `PUT` `update`, `PATCH` `patch`, `DELETE` `delete` or
/// `deletecollection`; connect subresources (`exec`, `attach`, `portforward`) are `create`
/// whatever the method (the WebSocket upgrade is a `GET`). Paths outside `/api` and `/apis/<g>/<v>`
/// are non-resource requests with the method as verb.
pub fn request_attributes(method: &str, path: &str, query: Option<&str>) -> Request {
    let method = method.to_ascii_lowercase();
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let non_resource = |method: &str| Request::NonResource { verb: method.to_string(), path: path.to_string() };
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => return non_resource(&method),
    };
    let (namespace, rest): (&str, Vec<&str>) = match rest {
        ["namespaces", ns, resource, rest @ ..] => (ns, [&[*resource][..], rest].concat()),
        // A namespace object itself: its name is the namespace.
        ["namespaces", ns] => (ns, vec!["namespaces", ns]),
        other => ("", other.to_vec()),
    };
    let resource = rest.first().copied().unwrap_or_default();
    let name = rest.get(1).copied().unwrap_or_default();
    let subresource = rest.get(2).copied().unwrap_or_default();
    let watching = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let connect = matches!(subresource, "exec" | "attach" | "portforward");
    let verb = match (method.as_str(), name.is_empty()) {
        _ if connect => "create",
        ("get" | "head", true) if watching => "watch",
        ("get" | "head", true) => "list",
        ("get" | "head", false) => "get",
        ("post", _) => "create",
        ("put", _) => "update",
        ("patch", _) => "patch",
        ("delete", false) => "delete",
        ("delete", true) => "deletecollection",
        (other, _) => return non_resource(other),
    };
    Request::Resource {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        subresource: subresource.into(),
        name: name.into(),
        namespace: namespace.into(),
    }
}

/// kube-apiserver's message for a request no rule allows: `pods is forbidden: User "u" cannot
/// list resource "pods" in API group "" in the namespace "default"`, or for other paths
/// `forbidden: User "u" cannot get path "/x"`.
pub fn forbidden_message(user: &str, request: &Request) -> String {
    match request {
        Request::NonResource { verb, path } => format!("forbidden: User {user:?} cannot {verb} path {path:?}"),
        Request::Resource { verb, group, resource, subresource, name, namespace } => {
            let full = if subresource.is_empty() { resource.clone() } else { format!("{resource}/{subresource}") };
            let full_group = if group.is_empty() { resource.clone() } else { format!("{resource}.{group}") };
            let what = if name.is_empty() { full_group } else { format!("{full_group} {name:?}") };
            let scope = if namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {namespace:?}")
            };
            format!("{what} is forbidden: User {user:?} cannot {verb} resource {full:?} in API group {group:?} {scope}")
        }
    }
}

fn subject_matches(subject: &Subject, user: &User, binding_namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == user.name,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let ns = subject.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(binding_namespace);
            user.name == format!("system:serviceaccount:{ns}:{}", subject.name)
        }
        _ => false,
    }
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

/// Whether one rule allows the request (upstream's `RuleAllows`).
pub fn rule_allows(rule: &PolicyRule, request: &Request) -> bool {
    match request {
        Request::Resource { verb, group, resource, subresource, name, .. } => {
            let resources = rule.resources.as_deref().unwrap_or_default();
            let combined = if subresource.is_empty() { resource.clone() } else { format!("{resource}/{subresource}") };
            let resource_ok = resources.iter().any(|r| {
                r == "*"
                    || *r == combined
                    || (subresource.is_empty() && r == resource)
                    || (!subresource.is_empty() && (*r == format!("{resource}/*") || *r == format!("*/{subresource}")))
            });
            let names = rule.resource_names.as_deref().unwrap_or_default();
            has(&rule.verbs, verb)
                && has(rule.api_groups.as_deref().unwrap_or_default(), group)
                && resource_ok
                && (names.is_empty() || names.iter().any(|n| n == name))
        }
        Request::NonResource { verb, path } => {
            has(&rule.verbs, verb)
                && rule.non_resource_urls.iter().flatten().any(|u| {
                    u == "*" || u == path || u.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix))
                })
        }
    }
}

fn cluster_role<'a>(policy: &'a Policy, name: &str) -> Option<&'a ClusterRole> {
    policy.cluster_roles.iter().find(|r| r.metadata.name.as_deref() == Some(name))
}

fn role_ref_rules<'a>(policy: &'a Policy, role_ref: &RoleRef, namespace: &str) -> &'a [PolicyRule] {
    let rules = match role_ref.kind.as_str() {
        "ClusterRole" => cluster_role(policy, &role_ref.name).and_then(|r| r.rules.as_deref()),
        "Role" => policy
            .roles
            .iter()
            .find(|r| {
                r.metadata.name.as_deref() == Some(role_ref.name.as_str())
                    && r.metadata.namespace.as_deref() == Some(namespace)
            })
            .and_then(|r| r.rules.as_deref()),
        _ => None,
    };
    rules.unwrap_or_default()
}

/// Every rule that applies to `user` in `namespace` (cluster-wide bindings first; `""` for
/// cluster-scoped requests, which only ClusterRoleBindings grant), as upstream's
/// `VisitRulesFor` walks them.
pub fn rules_for<'a>(policy: &'a Policy, user: &User, namespace: &str) -> Vec<&'a PolicyRule> {
    let mut rules = Vec::new();
    for binding in &policy.cluster_role_bindings {
        if binding.subjects.iter().flatten().any(|s| subject_matches(s, user, "")) {
            rules.extend(role_ref_rules(policy, &binding.role_ref, ""));
        }
    }
    if !namespace.is_empty() {
        for binding in &policy.role_bindings {
            if binding.metadata.namespace.as_deref() != Some(namespace) {
                continue;
            }
            if binding.subjects.iter().flatten().any(|s| subject_matches(s, user, namespace)) {
                rules.extend(role_ref_rules(policy, &binding.role_ref, namespace));
            }
        }
    }
    rules
}

/// Whether any rule bound to `user` allows `request`.
pub fn authorize(policy: &Policy, user: &User, request: &Request) -> bool {
    let namespace = match request {
        Request::Resource { namespace, .. } => namespace.as_str(),
        Request::NonResource { .. } => "",
    };
    rules_for(policy, user, namespace).into_iter().any(|rule| rule_allows(rule, request))
}

/// The rules of an aggregated ClusterRole: those of every ClusterRole matching any of its
/// selectors (itself excepted), in name order, without repeats (the clusterrole-aggregation
/// controller's union). `None` for a role without an aggregation rule.
pub fn aggregate(role: &ClusterRole, all: &[ClusterRole]) -> Option<Vec<PolicyRule>> {
    let selectors = role.aggregation_rule.as_ref()?.cluster_role_selectors.clone().unwrap_or_default();
    let mut sources: Vec<&ClusterRole> = all
        .iter()
        .filter(|r| r.metadata.name != role.metadata.name)
        .filter(|r| {
            let labels = r.metadata.labels.clone().unwrap_or_default();
            selectors.iter().any(|s| {
                // An empty selector selects nothing here, as upstream's aggregation controller.
                let empty = s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                    && s.match_expressions.as_ref().is_none_or(|e| e.is_empty());
                !empty && crate::selector::LabelSelector::from_k8s(s).is_ok_and(|sel| sel.matches(&labels))
            })
        })
        .collect();
    sources.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut rules: Vec<PolicyRule> = Vec::new();
    for rule in sources.iter().flat_map(|r| r.rules.iter().flatten()) {
        if !rules.contains(rule) {
            rules.push(rule.clone());
        }
    }
    Some(rules)
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        verbs: strings(verbs),
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        ..Default::default()
    }
}

fn urls(verbs: &[&str], paths: &[&str]) -> PolicyRule {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule { verbs: strings(verbs), non_resource_urls: Some(strings(paths)), ..Default::default() }
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

fn labelled(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    let mut all: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    all.insert("kubernetes.io/bootstrapping".into(), "rbac-defaults".into());
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(all),
        annotations: Some([("rbac.authorization.kubernetes.io/autoupdate".to_string(), "true".to_string())].into()),
        ..Default::default()
    }
}

fn aggregated(name: &str, into: &[&str], extra_labels: &[(&str, &str)]) -> ClusterRole {
    let selectors = into
        .iter()
        .map(|target| LabelSelector {
            match_labels: Some(
                [(format!("rbac.authorization.k8s.io/aggregate-to-{target}"), "true".to_string())].into(),
            ),
            ..Default::default()
        })
        .collect();
    ClusterRole {
        metadata: labelled(name, extra_labels),
        aggregation_rule: Some(AggregationRule { cluster_role_selectors: Some(selectors) }),
        rules: Some(Vec::new()),
    }
}

fn with_rules(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole { metadata: labelled(name, labels), rules: Some(rules), ..Default::default() }
}

/// The roles and bindings every cluster starts with (upstream's bootstrap policy, the parts
/// users and charts rely on): `cluster-admin` for `system:masters`; the user-facing `admin`,
/// `edit` and `view`, each aggregated from its `system:aggregate-to-*` role (so a chart's
/// role labelled `rbac.authorization.k8s.io/aggregate-to-view: "true"` extends `view`);
/// `system:discovery`, `system:basic-user` and `system:public-info-viewer` for everyone
/// authenticated.
pub fn bootstrap_policy() -> (Vec<ClusterRole>, Vec<ClusterRoleBinding>) {
    const WORKLOADS: &[&str] = &["statefulsets", "deployments", "replicasets", "daemonsets", "controllerrevisions"];
    let view_core = [
        "pods",
        "pods/log",
        "pods/status",
        "services",
        "services/status",
        "endpoints",
        "configmaps",
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "serviceaccounts",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "replicationcontrollers/status",
        "events",
        "limitranges",
        "resourcequotas",
        "resourcequotas/status",
        "namespaces",
        "namespaces/status",
        "bindings",
    ];
    let view = vec![
        rule(READ, &[""], &view_core),
        rule(READ, &["apps"], &[WORKLOADS, &["statefulsets/scale", "deployments/scale", "replicasets/scale"]].concat()),
        rule(
            READ,
            &["apps"],
            &["statefulsets/status", "deployments/status", "replicasets/status", "daemonsets/status"],
        ),
        rule(READ, &["batch"], &["jobs", "jobs/status", "cronjobs", "cronjobs/status"]),
        rule(READ, &["autoscaling"], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
        rule(READ, &["policy"], &["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        rule(READ, &["networking.k8s.io"], &["networkpolicies", "ingresses", "ingresses/status"]),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
        rule(READ, &["events.k8s.io"], &["events"]),
    ];
    let edit_core = [
        "pods",
        "pods/attach",
        "pods/exec",
        "pods/portforward",
        "pods/proxy",
        "pods/eviction",
        "services",
        "services/proxy",
        "endpoints",
        "configmaps",
        "secrets",
        "persistentvolumeclaims",
        "serviceaccounts",
        "replicationcontrollers",
        "replicationcontrollers/scale",
    ];
    let edit = vec![
        rule(&[READ, WRITE].concat(), &[""], &edit_core),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(READ, &[""], &["secrets"]),
        rule(&["impersonate"], &[""], &["serviceaccounts"]),
        rule(
            &[READ, WRITE].concat(),
            &["apps"],
            &[WORKLOADS, &["statefulsets/scale", "deployments/scale", "replicasets/scale", "deployments/rollback"]]
                .concat(),
        ),
        rule(&[READ, WRITE].concat(), &["batch"], &["jobs", "cronjobs"]),
        rule(&[READ, WRITE].concat(), &["autoscaling"], &["horizontalpodautoscalers"]),
        rule(&[READ, WRITE].concat(), &["policy"], &["poddisruptionbudgets"]),
        rule(&[READ, WRITE].concat(), &["networking.k8s.io"], &["networkpolicies", "ingresses"]),
        rule(&[READ, WRITE].concat(), &["discovery.k8s.io"], &["endpointslices"]),
        rule(&["create"], &["events.k8s.io"], &["events"]),
    ];
    let admin = vec![
        rule(&[READ, WRITE].concat(), &["rbac.authorization.k8s.io"], &["roles", "rolebindings"]),
        rule(&["create"], &["authorization.k8s.io"], &["localsubjectaccessreviews"]),
    ];
    let everyone =
        vec![rule(&["create"], &["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"])];
    let discovery = vec![urls(
        &["get"],
        &[
            "/api",
            "/api/*",
            "/apis",
            "/apis/*",
            "/healthz",
            "/livez",
            "/readyz",
            "/openapi",
            "/openapi/*",
            "/version",
            "/version/",
        ],
    )];
    let public = vec![urls(&["get"], &["/healthz", "/livez", "/readyz", "/version", "/version/"])];
    let roles = vec![
        with_rules("cluster-admin", &[], vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])]),
        aggregated("admin", &["admin"], &[]),
        aggregated("edit", &["edit"], &[("rbac.authorization.k8s.io/aggregate-to-admin", "true")]),
        aggregated("view", &["view"], &[("rbac.authorization.k8s.io/aggregate-to-edit", "true")]),
        with_rules("system:aggregate-to-admin", &[("rbac.authorization.k8s.io/aggregate-to-admin", "true")], admin),
        with_rules("system:aggregate-to-edit", &[("rbac.authorization.k8s.io/aggregate-to-edit", "true")], edit),
        with_rules("system:aggregate-to-view", &[("rbac.authorization.k8s.io/aggregate-to-view", "true")], view),
        with_rules("system:basic-user", &[], everyone),
        with_rules("system:discovery", &[], discovery),
        with_rules("system:public-info-viewer", &[], public),
    ];
    let group = |name: &str| Subject {
        kind: "Group".into(),
        name: name.into(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        namespace: None,
    };
    let binding = |name: &str, groups: &[&str]| ClusterRoleBinding {
        metadata: labelled(name, &[]),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: Some(groups.iter().map(|g| group(g)).collect()),
    };
    let bindings = vec![
        binding("cluster-admin", &["system:masters"]),
        binding("system:basic-user", &["system:authenticated"]),
        binding("system:discovery", &["system:authenticated"]),
        binding("system:public-info-viewer", &["system:authenticated", "system:unauthenticated"]),
    ];
    (roles, bindings)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user(name: &str, groups: &[&str]) -> User {
        User { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect() }
    }

    fn policy(objects: serde_json::Value) -> Policy {
        let mut p = Policy::default();
        for o in objects.as_array().cloned().unwrap_or_default() {
            match o["kind"].as_str() {
                Some("Role") => p.roles.push(serde_json::from_value(o).expect("role")),
                Some("RoleBinding") => p.role_bindings.push(serde_json::from_value(o).expect("binding")),
                Some("ClusterRole") => p.cluster_roles.push(serde_json::from_value(o).expect("cluster role")),
                Some("ClusterRoleBinding") => {
                    p.cluster_role_bindings.push(serde_json::from_value(o).expect("cluster binding"))
                }
                _ => panic!("{o}"),
            }
        }
        p
    }

    #[test]
    fn requests_are_read_as_upstreams_request_info_resolver_reads_them() {
        let r = |verb: &str, group: &str, resource: &str, sub: &str, name: &str, ns: &str| Request::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            namespace: ns.into(),
        };
        let cases = [
            ("GET", "/api/v1/namespaces/app/pods", None, r("list", "", "pods", "", "", "app")),
            ("GET", "/api/v1/namespaces/app/pods", Some("watch=true&x=1"), r("watch", "", "pods", "", "", "app")),
            ("GET", "/api/v1/namespaces/app/pods/web-0", None, r("get", "", "pods", "", "web-0", "app")),
            ("GET", "/api/v1/namespaces/app/pods/web-0/log", None, r("get", "", "pods", "log", "web-0", "app")),
            (
                "GET",
                "/api/v1/namespaces/app/pods/web-0/exec",
                Some("command=sh"),
                r("create", "", "pods", "exec", "web-0", "app"),
            ),
            (
                "POST",
                "/apis/apps/v1/namespaces/app/statefulsets",
                None,
                r("create", "apps", "statefulsets", "", "", "app"),
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/app/statefulsets/web/scale",
                None,
                r("update", "apps", "statefulsets", "scale", "web", "app"),
            ),
            ("PATCH", "/api/v1/nodes/n1", None, r("patch", "", "nodes", "", "n1", "")),
            (
                "DELETE",
                "/api/v1/namespaces/app/configmaps",
                None,
                r("deletecollection", "", "configmaps", "", "", "app"),
            ),
            ("DELETE", "/api/v1/namespaces/app", None, r("delete", "", "namespaces", "", "app", "app")),
            ("GET", "/api/v1/pods", None, r("list", "", "pods", "", "", "")),
        ];
        for (method, path, query, want) in cases {
            assert_eq!(request_attributes(method, path, query), want, "{method} {path}");
        }
        assert_eq!(
            request_attributes("GET", "/apis/apps/v1", None),
            Request::NonResource { verb: "get".into(), path: "/apis/apps/v1".into() }
        );
        assert_eq!(
            request_attributes("GET", "/healthz", None),
            Request::NonResource { verb: "get".into(), path: "/healthz".into() }
        );
    }

    #[test]
    fn bindings_grant_their_roles_rules_to_their_subjects_only() {
        let p = policy(json!([
            {"kind": "Role", "metadata": {"name": "pod-reader", "namespace": "app"},
             "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
                       {"apiGroups": ["apps"], "resources": ["statefulsets"], "resourceNames": ["web"], "verbs": ["get", "patch"]}]},
            {"kind": "RoleBinding", "metadata": {"name": "rb", "namespace": "app"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
             "subjects": [{"kind": "ServiceAccount", "name": "op"}, {"kind": "User", "name": "jane"}]},
            {"kind": "ClusterRole", "metadata": {"name": "node-reader"},
             "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]},
                       {"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]}]},
            {"kind": "ClusterRoleBinding", "metadata": {"name": "crb"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-reader"},
             "subjects": [{"kind": "Group", "name": "ops"}]},
            {"kind": "RoleBinding", "metadata": {"name": "cluster-role-in-ns", "namespace": "other"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-reader"},
             "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "app"}]}
        ]));
        let op = user("system:serviceaccount:app:op", &["system:serviceaccounts", "system:authenticated"]);
        let jane = user("jane", &["system:authenticated"]);
        let ops = user("sam", &["ops"]);
        let namesake = user("system:serviceaccount:other:op", &[]);
        let req = |m: &str, p: &str| request_attributes(m, p, None);
        let cases: Vec<(&User, Request, bool)> = vec![
            (&op, req("GET", "/api/v1/namespaces/app/pods"), true),
            (&op, req("GET", "/api/v1/namespaces/app/pods/x/log"), true),
            (&op, req("GET", "/api/v1/namespaces/app/pods/x/status"), false), // another subresource
            (&op, req("DELETE", "/api/v1/namespaces/app/pods/x"), false),
            (&op, req("GET", "/api/v1/namespaces/default/pods"), false), // another namespace
            (&op, req("GET", "/api/v1/pods"), false),                    // all namespaces
            (&op, req("PATCH", "/apis/apps/v1/namespaces/app/statefulsets/web"), true),
            (&op, req("PATCH", "/apis/apps/v1/namespaces/app/statefulsets/db"), false), // resourceNames
            (&op, req("GET", "/apis/apps/v1/namespaces/app/statefulsets"), false),
            (&jane, req("GET", "/api/v1/namespaces/app/pods"), true),
            (&jane, req("GET", "/api/v1/nodes"), false),
            (&ops, req("GET", "/api/v1/nodes/n1"), true),
            (&ops, req("GET", "/metrics"), true),
            (&ops, req("GET", "/logs/kubelet.log"), true),
            (&ops, req("POST", "/metrics"), false),
            // A ClusterRole bound by a RoleBinding grants only in the binding's namespace.
            (&op, req("GET", "/api/v1/namespaces/other/nodes"), true),
            (&op, req("GET", "/api/v1/nodes"), false),
            // The same name in another namespace is not the subject.
            (&namesake, req("GET", "/api/v1/namespaces/app/pods"), false),
        ];
        for (who, request, want) in cases {
            assert_eq!(authorize(&p, who, &request), want, "{} {request:?}", who.name);
        }
    }

    #[test]
    fn the_default_roles_give_discovery_to_everyone_and_aggregate_into_view_edit_admin() {
        let (mut roles, bindings) = bootstrap_policy();
        let chart_role: ClusterRole = serde_json::from_value(json!({"metadata": {"name": "widgets-view",
            "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]}))
        .expect("role");
        roles.push(chart_role);
        // Aggregate as the controller does, until nothing changes (the chart's role feeds view,
        // view feeds edit, edit feeds admin: three passes).
        for _ in 0..3 {
            let snapshot = roles.clone();
            for role in roles.iter_mut() {
                if let Some(rules) = aggregate(role, &snapshot) {
                    role.rules = Some(rules);
                }
            }
        }
        let mut p = Policy { cluster_roles: roles, cluster_role_bindings: bindings, ..Default::default() };
        let anyone = user("jane", &["system:authenticated"]);
        assert!(authorize(&p, &anyone, &request_attributes("GET", "/apis/apps/v1", None)));
        assert!(authorize(
            &p,
            &anyone,
            &request_attributes("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", None)
        ));
        assert!(!authorize(&p, &anyone, &request_attributes("GET", "/api/v1/namespaces/app/pods", None)));
        let master = user("admin", &["system:masters"]);
        assert!(authorize(&p, &master, &request_attributes("DELETE", "/api/v1/nodes/n1", None)));
        for (role, can_read_secret, can_write_roles) in
            [("view", false, false), ("edit", true, false), ("admin", true, true)]
        {
            p.role_bindings = vec![
                serde_json::from_value(json!({"metadata": {"name": "b", "namespace": "app"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "User", "name": "jane"}]}))
                .expect("binding"),
            ];
            let can = |m: &str, path: &str| authorize(&p, &anyone, &request_attributes(m, path, None));
            assert!(can("GET", "/apis/apps/v1/namespaces/app/statefulsets"), "{role}");
            assert!(can("GET", "/apis/example.com/v1/namespaces/app/widgets/w"), "{role} aggregates the chart's role");
            assert_eq!(can("GET", "/api/v1/namespaces/app/secrets/s"), can_read_secret, "{role}");
            assert_eq!(
                can("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/app/roles"),
                can_write_roles,
                "{role}"
            );
            assert_eq!(can("PATCH", "/apis/apps/v1/namespaces/app/statefulsets/web/scale"), role != "view", "{role}");
            assert!(!can("GET", "/api/v1/namespaces/other/pods"), "{role} only in its namespace");
        }
    }

    #[test]
    fn forbidden_messages_read_as_kube_apiservers() {
        let cases = [
            (
                request_attributes("GET", "/api/v1/namespaces/default/pods", None),
                "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"",
            ),
            (
                request_attributes("GET", "/apis/apps/v1/namespaces/app/statefulsets/web", None),
                "statefulsets.apps \"web\" is forbidden: User \"jane\" cannot get resource \"statefulsets\" in API group \"apps\" in the namespace \"app\"",
            ),
            (
                request_attributes("GET", "/api/v1/nodes", None),
                "nodes is forbidden: User \"jane\" cannot list resource \"nodes\" in API group \"\" at the cluster scope",
            ),
            (
                request_attributes("GET", "/api/v1/namespaces/app/pods/p/log", None),
                "pods \"p\" is forbidden: User \"jane\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"app\"",
            ),
            (request_attributes("GET", "/metrics", None), "forbidden: User \"jane\" cannot get path \"/metrics\""),
        ];
        for (request, want) in cases {
            assert_eq!(forbidden_message("jane", &request), want);
        }
    }
}
