//! Parsing a request path into what it names: a resource collection or item, a subresource,
//! with its namespace. The only place that knows the URL layout of resource requests.

use model::{ApiError, ResourceInfo, resources};

/// Subresources served under an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    Status,
    Scale,
    /// `namespaces/{name}/finalize`
    Finalize,
    /// `pods/{name}/binding`
    Binding,
    /// `pods/{name}/eviction`
    Eviction,
    /// `serviceaccounts/{name}/token`
    Token,
    /// `pods/{name}/log`
    Log,
    /// `pods/{name}/exec`
    Exec,
    /// `pods/{name}/attach`
    Attach,
    /// `pods/{name}/portforward`
    PortForward,
}

/// What a resource request addresses.
#[derive(Debug, Clone)]
pub struct Target {
    pub info: &'static ResourceInfo,
    /// The namespace from the URL (`None` for cluster-scoped kinds and all-namespace lists).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<Sub>,
}

impl Target {
    /// The store key of the named object.
    pub fn key(&self) -> Option<String> {
        let name = self.name.as_deref()?;
        Some(object_key(crate::convert::storage_info(self.info), self.namespace.as_deref(), name))
    }

    /// The store key prefix of the addressed collection.
    pub fn prefix(&self) -> String {
        collection_prefix(crate::convert::storage_info(self.info), self.namespace.as_deref())
    }
}

fn group_segment(info: &ResourceInfo) -> &str {
    if info.group.is_empty() { "core" } else { info.group }
}

/// `/apps/statefulsets/default/web`, `/core/nodes/node-1`.
pub fn object_key(info: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if info.namespaced => format!("/{}/{}/{ns}/{name}", group_segment(info), info.plural),
        _ => format!("/{}/{}/{name}", group_segment(info), info.plural),
    }
}

/// The prefix of every key of this kind, in one namespace or all.
pub fn collection_prefix(info: &ResourceInfo, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if info.namespaced => format!("/{}/{}/{ns}/", group_segment(info), info.plural),
        _ => format!("/{}/{}/", group_segment(info), info.plural),
    }
}

/// Parse `/api/v1/...` or `/apis/{group}/{version}/...`. `Ok(None)`: not a resource path.
pub fn parse(path: &str) -> Result<Option<Target>, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Ok(None),
    };
    if rest.is_empty() {
        return Ok(None);
    }
    let find = |plural: &str| resources::find(group, version, plural).ok_or_else(ApiError::path_not_found);

    // /namespaces/{ns}/{plural}[/{name}[/{sub}]] for namespaced kinds.
    // (`namespaces/{name}/status` and `/finalize` are subresources of a namespace instead.)
    if rest[0] == "namespaces"
        && rest.len() >= 3
        && let Some(info) = resources::find(group, version, rest[2]).filter(|i| i.namespaced)
    {
        let namespace = Some(rest[1].to_string());
        return target(info, namespace, &rest[3..]).map(Some);
    }
    let info = find(rest[0])?;
    if info.namespaced && rest.len() > 1 {
        // A namespaced kind addressed without a namespace only supports collection reads.
        return Err(ApiError::path_not_found());
    }
    target(info, None, &rest[1..]).map(Some)
}

fn target(info: &'static ResourceInfo, namespace: Option<String>, rest: &[&str]) -> Result<Target, ApiError> {
    let (name, sub) = match rest {
        [] => (None, None),
        [name] => (Some(name.to_string()), None),
        [name, sub] => (Some(name.to_string()), Some(parse_sub(info, sub)?)),
        _ => return Err(ApiError::path_not_found()),
    };
    if name.as_deref() == Some("") {
        return Err(ApiError::path_not_found());
    }
    Ok(Target { info, namespace, name, sub })
}

fn parse_sub(info: &ResourceInfo, sub: &str) -> Result<Sub, ApiError> {
    match sub {
        "status" if info.has_status() => Ok(Sub::Status),
        "scale" if info.has_scale() => Ok(Sub::Scale),
        "finalize" if info.plural == "namespaces" && info.group.is_empty() => Ok(Sub::Finalize),
        "binding" if info.plural == "pods" && info.group.is_empty() => Ok(Sub::Binding),
        "eviction" if info.plural == "pods" && info.group.is_empty() => Ok(Sub::Eviction),
        "token" if info.plural == "serviceaccounts" && info.group.is_empty() => Ok(Sub::Token),
        "log" if info.plural == "pods" && info.group.is_empty() => Ok(Sub::Log),
        "exec" if info.plural == "pods" && info.group.is_empty() => Ok(Sub::Exec),
        "attach" if info.plural == "pods" && info.group.is_empty() => Ok(Sub::Attach),
        "portforward" if info.plural == "pods" && info.group.is_empty() => Ok(Sub::PortForward),
        _ => Err(ApiError::path_not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes_kubectl_uses() {
        let t = parse("/apis/apps/v1/namespaces/default/statefulsets/web/scale").expect("ok").expect("resource");
        assert_eq!(
            (t.info.plural, t.namespace.as_deref(), t.name.as_deref(), t.sub),
            ("statefulsets", Some("default"), Some("web"), Some(Sub::Scale))
        );
        assert_eq!(t.key().as_deref(), Some("/apps/statefulsets/default/web"));

        let t = parse("/api/v1/pods").expect("ok").expect("resource");
        assert_eq!((t.info.plural, t.namespace.as_deref(), t.name.as_deref()), ("pods", None, None));
        assert_eq!(t.prefix(), "/core/pods/");

        let t = parse("/api/v1/namespaces/kube-system").expect("ok").expect("resource");
        assert_eq!((t.info.plural, t.name.as_deref()), ("namespaces", Some("kube-system")));
        let t = parse("/api/v1/namespaces/x/finalize").expect("ok").expect("resource");
        assert_eq!(t.sub, Some(Sub::Finalize));
        let t = parse("/api/v1/namespaces").expect("ok").expect("resource");
        assert!(t.name.is_none());
        let t = parse("/api/v1/persistentvolumes/pv-1").expect("ok").expect("resource");
        assert_eq!(t.key().as_deref(), Some("/core/persistentvolumes/pv-1"));
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        const SEGMENTS: &[&str] =
            &["api", "apis", "v1", "apps", "namespaces", "default", "pods", "statefulsets", "status", "log", "", "é"];

        proptest! {
            #![proptest_config(crate::fuzz_config(256))]

            /// Any path and any query string parse or are refused (404, 400), never a panic.
            #[test]
            fn any_path_and_query_parse_or_are_refused(
                segments in proptest::collection::vec(
                    prop_oneof![proptest::sample::select(SEGMENTS).prop_map(String::from), any::<String>()],
                    0..8,
                ),
                query in any::<String>(),
            ) {
                if let Err(e) = parse(&format!("/{}", segments.join("/"))) {
                    prop_assert_eq!(e.code, 404);
                }
                if let Err(e) = crate::handlers::Params::parse(Some(&query)) {
                    prop_assert_eq!(e.code, 400);
                }
            }
        }
    }

    #[test]
    fn unknown_paths_are_not_found() {
        assert!(parse("/apis/apps/v1/namespaces/default/widgets").is_err());
        assert!(parse("/api/v1/namespaces/default/pods/a/b/c").is_err());
        assert!(parse("/api/v1/pods/web-0").is_err());
        assert!(parse("/apis/apps/v1/namespaces/default/statefulsets/web/log").is_err());
        assert!(parse("/version").expect("ok").is_none());
        assert!(parse("/api/v1").expect("ok").is_none());
    }
}
