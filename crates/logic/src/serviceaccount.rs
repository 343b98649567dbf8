//! The ServiceAccounts controller's decision (upstream
//! `pkg/controller/serviceaccount/serviceaccounts_controller.go`, `syncNamespace`): every
//! namespace that is active has the service accounts it must have (`default`), created again if
//! deleted; a namespace that is terminating gets none. And the root CA publisher's (upstream
//! `pkg/controller/certificates/rootcacertpublisher`): every active namespace has the
//! `kube-root-ca.crt` ConfigMap holding the cluster CA as `ca.crt`, which the pods' token volumes
//! project.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};

pub use model::admission::ROOT_CA_CONFIG_MAP;

/// What the root CA publisher does in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publish {
    Create(String),
    /// The ConfigMap is there with other data (someone edited it): put the CA back.
    Update(String),
}

/// The publisher's actions, in namespace order: create `kube-root-ca.crt` where an active
/// namespace lacks it, rewrite it where its data is not exactly `{ca.crt: <ca>}`.
pub fn publish_root_ca(namespaces: &[&Namespace], config_maps: &[&ConfigMap], ca: &str) -> Vec<Publish> {
    let present: BTreeMap<&str, &ConfigMap> = config_maps
        .iter()
        .filter(|c| c.metadata.name.as_deref() == Some(ROOT_CA_CONFIG_MAP))
        .filter_map(|c| Some((c.metadata.namespace.as_deref()?, *c)))
        .collect();
    let wanted = BTreeMap::from([("ca.crt".to_string(), ca.to_string())]);
    active(namespaces)
        .into_iter()
        .filter_map(|ns| match present.get(ns) {
            None => Some(Publish::Create(ns.to_string())),
            Some(c) if c.data.as_ref() != Some(&wanted) || c.binary_data.as_ref().is_some_and(|b| !b.is_empty()) => {
                Some(Publish::Update(ns.to_string()))
            }
            Some(_) => None,
        })
        .collect()
}

/// The names of the namespaces that are not terminating, sorted.
fn active<'a>(namespaces: &[&'a Namespace]) -> Vec<&'a str> {
    let mut active: Vec<&str> = namespaces
        .iter()
        .filter(|ns| ns.metadata.deletion_timestamp.is_none())
        .filter(|ns| ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating"))
        .filter_map(|ns| ns.metadata.name.as_deref())
        .collect();
    active.sort_unstable();
    active
}

/// The accounts every namespace has (upstream's `DefaultServiceAccountsControllerOptions`).
pub const ENSURED: &[&str] = &["default"];

/// The (namespace, account) pairs to create: each of `ENSURED` missing from an active
/// namespace, in namespace order.
pub fn sync_namespaces(namespaces: &[&Namespace], accounts: &[&ServiceAccount]) -> Vec<(String, &'static str)> {
    let existing: BTreeSet<(&str, &str)> =
        accounts.iter().filter_map(|a| Some((a.metadata.namespace.as_deref()?, a.metadata.name.as_deref()?))).collect();
    active(namespaces)
        .into_iter()
        .flat_map(|ns| ENSURED.iter().map(move |name| (ns, *name)))
        .filter(|key| !existing.contains(key))
        .map(|(ns, name)| (ns.to_string(), name))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ns(name: &str, terminating: bool) -> Namespace {
        let mut v = json!({"metadata": {"name": name}, "status": {"phase": "Active"}});
        if terminating {
            v = json!({"metadata": {"name": name, "deletionTimestamp": "2026-12-05T00:00:00Z"},
                "status": {"phase": "Terminating"}});
        }
        serde_json::from_value(v).expect("namespace")
    }

    fn sa(ns: &str, name: &str) -> ServiceAccount {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}})).expect("account")
    }

    #[test]
    fn active_namespaces_get_a_default_account_and_terminating_ones_none() {
        // Listed out of order: the plan comes in namespace order.
        let (b, a, gone) = (ns("b", false), ns("a", false), ns("old", true));
        let (a_default, a_other, elsewhere) = (sa("a", "default"), sa("b", "builder"), sa("old", "x"));
        type Case<'a> = (Vec<&'a Namespace>, Vec<&'a ServiceAccount>, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case<'_>> = vec![
            (vec![], vec![], vec![]),
            (vec![&b, &a], vec![], vec![("a", "default"), ("b", "default")]),
            // Another account does not count; one in another namespace neither.
            (vec![&b, &a], vec![&a_other, &elsewhere], vec![("a", "default"), ("b", "default")]),
            (vec![&b, &a], vec![&a_default], vec![("b", "default")]),
            (vec![&gone], vec![], vec![]),
        ];
        for (namespaces, accounts, want) in cases {
            let got = sync_namespaces(&namespaces, &accounts);
            let got: Vec<(&str, &str)> = got.iter().map(|(n, a)| (n.as_str(), *a)).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn active_namespaces_get_the_root_ca_and_edits_are_put_back() {
        let (a, b, c, gone) = (ns("a", false), ns("b", false), ns("c", false), ns("old", true));
        let cm = |ns: &str, data: serde_json::Value| -> ConfigMap {
            serde_json::from_value(json!({"metadata": {"name": ROOT_CA_CONFIG_MAP, "namespace": ns}, "data": data}))
                .expect("configmap")
        };
        let good = cm("a", json!({"ca.crt": "PEM"}));
        let edited = cm("b", json!({"ca.crt": "PEM", "extra": "x"}));
        let mut other: ConfigMap = cm("c", json!({"ca.crt": "PEM"}));
        other.metadata.name = Some("unrelated".into());
        let got = publish_root_ca(&[&c, &gone, &b, &a], &[&good, &edited, &other], "PEM");
        assert_eq!(got, vec![Publish::Update("b".into()), Publish::Create("c".into())]);
        // A new CA rewrites every namespace's copy.
        let got = publish_root_ca(&[&a], &[&good], "NEW");
        assert_eq!(got, vec![Publish::Update("a".into())]);
    }
}
