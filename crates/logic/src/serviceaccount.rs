//! The ServiceAccounts controller's decision (upstream
//! `pkg/controller/serviceaccount/serviceaccounts_controller.go`, `syncNamespace`): every
//! namespace that is active has the service accounts it must have (`default`), created again if
//! deleted; a namespace that is terminating gets none.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};

/// The accounts every namespace has (upstream's `DefaultServiceAccountsControllerOptions`).
pub const ENSURED: &[&str] = &["default"];

/// The (namespace, account) pairs to create: each of `ENSURED` missing from an active
/// namespace, in namespace order.
pub fn sync_namespaces(namespaces: &[&Namespace], accounts: &[&ServiceAccount]) -> Vec<(String, &'static str)> {
    let existing: BTreeSet<(&str, &str)> =
        accounts.iter().filter_map(|a| Some((a.metadata.namespace.as_deref()?, a.metadata.name.as_deref()?))).collect();
    let mut active: Vec<&str> = namespaces
        .iter()
        .filter(|ns| ns.metadata.deletion_timestamp.is_none())
        .filter(|ns| ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating"))
        .filter_map(|ns| ns.metadata.name.as_deref())
        .collect();
    active.sort_unstable();
    active
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
}
