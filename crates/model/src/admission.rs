//! Admission decisions kube-apiserver makes with its default plugins, as pure functions over the
//! object and what the store holds. Today: `Priority` (`plugin/pkg/admission/priority`): a new
//! pod gets the priority (and preemption policy) of the PriorityClass it names, or of the
//! global default class; there is at most one global default. And the eviction subresource's
//! budget check (`pkg/registry/core/pod/storage/eviction.go`). And `ServiceAccount`
//! (`plugin/pkg/admission/serviceaccount`): a new pod runs as a service account (`default`
//! unless it names one) and, unless automounting is off, gets the `kube-api-access-*` projected
//! volume (a bound token, the cluster CA, its namespace) mounted in every container at
//! `/var/run/secrets/kubernetes.io/serviceaccount`.

use k8s_openapi::api::core::v1::{Pod, ServiceAccount, Volume, VolumeMount};
use k8s_openapi::api::scheduling::v1::PriorityClass;

/// What the `Priority` plugin writes into a new pod's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPriority {
    /// The class name (the default class's when the pod named none, `""` without one).
    pub class_name: String,
    pub priority: i32,
    pub preemption_policy: Option<String>,
}

/// Upstream's `DefaultPriorityWhenNoDefaultClassExists`.
pub const DEFAULT_PRIORITY: i32 = 0;

/// The global default class: the lowest-valued one if a race made several.
fn global_default(classes: &[PriorityClass]) -> Option<&PriorityClass> {
    classes.iter().filter(|c| c.global_default == Some(true)).min_by_key(|c| c.value)
}

/// The priority of a new `pod`, or why it is forbidden (upstream's message, without the
/// `pods "x" is forbidden: ` prefix).
pub fn pod_priority(pod: &Pod, classes: &[PriorityClass]) -> Result<PodPriority, String> {
    let spec = pod.spec.as_ref();
    let named = spec.and_then(|s| s.priority_class_name.as_deref()).unwrap_or_default();
    let resolved = if named.is_empty() {
        match global_default(classes) {
            Some(c) => PodPriority {
                class_name: c.metadata.name.clone().unwrap_or_default(),
                priority: c.value,
                preemption_policy: c.preemption_policy.clone(),
            },
            None => PodPriority { class_name: String::new(), priority: DEFAULT_PRIORITY, preemption_policy: None },
        }
    } else {
        let class = classes
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(named))
            .ok_or_else(|| format!("no PriorityClass with name {named} was found"))?;
        PodPriority {
            class_name: named.to_string(),
            priority: class.value,
            preemption_policy: class.preemption_policy.clone(),
        }
    };
    if let Some(given) = spec.and_then(|s| s.priority)
        && given != resolved.priority
    {
        return Err(format!(
            "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {} from the given PriorityClass name",
            resolved.priority
        ));
    }
    if let (Some(given), Some(computed)) =
        (spec.and_then(|s| s.preemption_policy.as_deref()), resolved.preemption_policy.as_deref())
        && given != computed
    {
        return Err(format!(
            "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {computed} from the given PriorityClass name"
        ));
    }
    Ok(resolved)
}

/// Whether `class` may be written: a second global default is forbidden (upstream's message).
pub fn priority_class(class: &PriorityClass, existing: &[PriorityClass]) -> Result<(), String> {
    if class.global_default != Some(true) {
        return Ok(());
    }
    match existing.iter().find(|c| c.global_default == Some(true) && c.metadata.name != class.metadata.name) {
        Some(other) => Err(format!(
            "PriorityClass {} is already marked as default. Only one default can exist",
            other.metadata.name.as_deref().unwrap_or_default()
        )),
        None => Ok(()),
    }
}

/// Whether the eviction of a pod covered by `pdb` may go ahead (upstream's
/// `checkAndDecrement`): `Err` with upstream's cause message when it would break the budget or
/// the budget's status is not current.
pub fn eviction(pdb: &k8s_openapi::api::policy::v1::PodDisruptionBudget) -> Result<(), String> {
    let status = pdb.status.clone().unwrap_or_default();
    let name = pdb.metadata.name.as_deref().unwrap_or_default();
    if status.observed_generation < pdb.metadata.generation {
        return Err(format!("The disruption budget {name} is still being processed by the server."));
    }
    if status.disruptions_allowed <= 0 {
        return Err(format!(
            "The disruption budget {name} needs {} healthy pods and has {} currently",
            status.desired_healthy, status.current_healthy
        ));
    }
    Ok(())
}

/// Where the token volume is mounted (upstream's `DefaultAPITokenMountPath`).
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The token volume's name prefix (upstream's `ServiceAccountVolumeName`).
pub const TOKEN_VOLUME_PREFIX: &str = "kube-api-access-";
/// The ConfigMap every namespace gets with the cluster's CA (`ca.crt`), as upstream's root CA
/// publisher writes it.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// The projected token's lifetime (upstream's `DefaultTokenExpirationSeconds`: an hour plus
/// seven seconds, so a token's age tells it apart from a requested one).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// What the `ServiceAccount` plugin does to a new pod.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountAdmission {
    /// `spec.serviceAccountName` (and the deprecated `spec.serviceAccount`).
    pub account: String,
    /// The token volume to add (none when the pod has one, or nothing mounts it).
    pub volume: Option<Volume>,
    /// The mount to add to containers: `(list, index)` with list `initContainers` or
    /// `containers`.
    pub mount: Option<(VolumeMount, Vec<(&'static str, usize)>)>,
}

/// The `ServiceAccount` plugin's decision for a new `pod`, given its account as stored (`None`
/// when missing) and a random suffix for the volume name. A missing account is forbidden
/// (upstream's message) except `default`, which the service-account controller makes in every
/// namespace within milliseconds of it: a pod created in that window is admitted, and its
/// node waits for the account before it can fetch the token (upstream refuses the pod).
pub fn service_account(pod: &Pod, account: Option<&ServiceAccount>, suffix: &str) -> Result<AccountAdmission, String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = spec
        .service_account_name
        .clone()
        .filter(|n| !n.is_empty())
        .or(spec.service_account.clone().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "default".into());
    if account.is_none() && name != "default" {
        return Err(format!(
            "error looking up service account {namespace}/{name}: serviceaccount \"{name}\" not found"
        ));
    }
    let mut admission = AccountAdmission { account: name, volume: None, mount: None };
    let automount = spec
        .automount_service_account_token
        .or(account.and_then(|a| a.automount_service_account_token))
        .unwrap_or(true);
    if !automount {
        return Ok(admission);
    }
    let existing =
        spec.volumes.iter().flatten().find(|v| v.name.starts_with(TOKEN_VOLUME_PREFIX)).map(|v| v.name.clone());
    let volume_name = existing.clone().unwrap_or_else(|| format!("{TOKEN_VOLUME_PREFIX}{suffix}"));
    let lists = [("initContainers", &spec.init_containers), ("containers", &Some(spec.containers.clone()))];
    let needing: Vec<(&'static str, usize)> = lists
        .iter()
        .flat_map(|(list, containers)| {
            containers.iter().flatten().enumerate().filter_map(move |(i, c)| {
                let mounted = c.volume_mounts.iter().flatten().any(|m| m.mount_path == TOKEN_MOUNT_PATH);
                (!mounted).then_some((*list, i))
            })
        })
        .collect();
    if needing.is_empty() {
        return Ok(admission);
    }
    if existing.is_none() {
        admission.volume = Some(token_volume(&volume_name));
    }
    let mount = VolumeMount {
        name: volume_name,
        mount_path: TOKEN_MOUNT_PATH.into(),
        read_only: Some(true),
        ..Default::default()
    };
    admission.mount = Some((mount, needing));
    Ok(admission)
}

/// Upstream's `kube-api-access-*` volume: the token (for the API's audience, an hour), the
/// cluster CA from `kube-root-ca.crt`, and the pod's namespace.
fn token_volume(name: &str) -> Volume {
    use k8s_openapi::api::core::v1::{
        ConfigMapProjection, DownwardAPIProjection, DownwardAPIVolumeFile, KeyToPath, ObjectFieldSelector,
        ProjectedVolumeSource, ServiceAccountTokenProjection, VolumeProjection,
    };
    let sources = vec![
        VolumeProjection {
            service_account_token: Some(ServiceAccountTokenProjection {
                path: "token".into(),
                expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                audience: None,
            }),
            ..Default::default()
        },
        VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: ROOT_CA_CONFIG_MAP.into(),
                items: Some(vec![KeyToPath { key: "ca.crt".into(), path: "ca.crt".into(), mode: None }]),
                optional: None,
            }),
            ..Default::default()
        },
        VolumeProjection {
            downward_api: Some(DownwardAPIProjection {
                items: Some(vec![DownwardAPIVolumeFile {
                    path: "namespace".into(),
                    field_ref: Some(ObjectFieldSelector {
                        api_version: Some("v1".into()),
                        field_path: "metadata.namespace".into(),
                    }),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        },
    ];
    Volume {
        name: name.into(),
        projected: Some(ProjectedVolumeSource { default_mode: Some(0o644), sources: Some(sources) }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn class(name: &str, value: i32, default: bool, policy: Option<&str>) -> PriorityClass {
        serde_json::from_value(json!({"metadata": {"name": name}, "value": value, "globalDefault": default,
            "preemptionPolicy": policy}))
        .expect("class")
    }

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
    }

    #[test]
    fn pods_get_their_class_priority_the_default_or_zero() {
        let high = class("high", 1000, false, Some("Never"));
        let default = class("normal", 10, true, None);
        let other_default = class("low", 5, true, None);
        let ok = |class: &str, priority: i32, policy: Option<&str>| PodPriority {
            class_name: class.into(),
            priority,
            preemption_policy: policy.map(String::from),
        };
        let cases: Vec<(serde_json::Value, Vec<PriorityClass>, Result<PodPriority, String>)> = vec![
            (json!({}), vec![], Ok(ok("", 0, None))),
            (json!({"priorityClassName": "high"}), vec![high.clone()], Ok(ok("high", 1000, Some("Never")))),
            (json!({}), vec![high.clone(), default.clone()], Ok(ok("normal", 10, None))),
            // Two defaults (a race): the lower one.
            (json!({}), vec![default.clone(), other_default], Ok(ok("low", 5, None))),
            (
                json!({"priorityClassName": "missing"}),
                vec![high.clone()],
                Err("no PriorityClass with name missing was found".into()),
            ),
            (json!({"priorityClassName": "high", "priority": 1000}), vec![high.clone()], Ok(ok("high", 1000, Some("Never")))),
            (
                json!({"priorityClassName": "high", "priority": 7}),
                vec![high.clone()],
                Err("the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name".into()),
            ),
            (
                json!({"priorityClassName": "high", "preemptionPolicy": "PreemptLowerPriority"}),
                vec![high],
                Err("the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never from the given PriorityClass name".into()),
            ),
        ];
        for (spec, classes, want) in cases {
            assert_eq!(pod_priority(&pod(spec.clone()), &classes), want, "{spec}");
        }
    }

    #[test]
    fn only_one_class_is_the_global_default() {
        let a = class("a", 1, true, None);
        let b = class("b", 2, true, None);
        let c = class("c", 3, false, None);
        assert_eq!(priority_class(&c, std::slice::from_ref(&a)), Ok(()));
        assert_eq!(priority_class(&a, std::slice::from_ref(&a)), Ok(()), "updating the default itself");
        assert_eq!(
            priority_class(&b, &[a, c]),
            Err("PriorityClass a is already marked as default. Only one default can exist".into())
        );
    }

    #[test]
    fn an_eviction_needs_a_current_budget_with_a_disruption_to_spare() {
        let budget =
            |generation: i64, observed: i64, allowed: i32| -> k8s_openapi::api::policy::v1::PodDisruptionBudget {
                serde_json::from_value(json!({"metadata": {"name": "web", "generation": generation},
                "status": {"observedGeneration": observed, "disruptionsAllowed": allowed,
                    "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 3}}))
                .expect("pdb")
            };
        assert_eq!(eviction(&budget(1, 1, 1)), Ok(()));
        assert_eq!(
            eviction(&budget(1, 1, 0)),
            Err("The disruption budget web needs 2 healthy pods and has 2 currently".into())
        );
        assert_eq!(
            eviction(&budget(2, 1, 1)),
            Err("The disruption budget web is still being processed by the server.".into())
        );
    }

    fn account(automount: Option<bool>) -> ServiceAccount {
        serde_json::from_value(json!({"metadata": {"name": "ops", "namespace": "app"},
            "automountServiceAccountToken": automount}))
        .expect("account")
    }

    fn app_pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "app"}, "spec": spec})).expect("pod")
    }

    #[test]
    fn pods_run_as_an_account_with_its_token_mounted_unless_told_not_to() {
        let two = json!([{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]);
        let ops = account(None);
        // The default account, maybe not made yet: admitted, volume and mounts everywhere.
        let got = service_account(
            &app_pod(json!({"containers": two, "initContainers": [{"name": "i", "image": "i"}]})),
            None,
            "x1y2z",
        )
        .expect("admitted");
        assert_eq!(got.account, "default");
        let volume = got.volume.expect("a token volume");
        assert_eq!(volume.name, "kube-api-access-x1y2z");
        let sources = volume.projected.and_then(|p| p.sources).unwrap_or_default();
        assert_eq!(
            sources[0].service_account_token.as_ref().map(|t| (t.path.as_str(), t.expiration_seconds)),
            Some(("token", Some(3607)))
        );
        assert_eq!(sources[1].config_map.as_ref().map(|c| c.name.as_str()), Some("kube-root-ca.crt"));
        let (mount, into) = got.mount.expect("mounts");
        assert_eq!((mount.mount_path.as_str(), mount.read_only), (TOKEN_MOUNT_PATH, Some(true)));
        assert_eq!(into, vec![("initContainers", 0), ("containers", 0), ("containers", 1)]);

        // A named account must exist, with upstream's message.
        let named = app_pod(json!({"serviceAccountName": "ops", "containers": two}));
        assert_eq!(
            service_account(&named, None, "a"),
            Err("error looking up service account app/ops: serviceaccount \"ops\" not found".into())
        );
        assert_eq!(service_account(&named, Some(&ops), "a").map(|a| a.account), Ok("ops".into()));
        // The deprecated field names it too.
        let old = app_pod(json!({"serviceAccount": "ops", "containers": two}));
        assert_eq!(service_account(&old, Some(&ops), "a").map(|a| a.account), Ok("ops".into()));

        // Automounting off by the account, or by the pod (which wins).
        let off = service_account(&named, Some(&account(Some(false))), "a").expect("admitted");
        assert_eq!((off.volume, off.mount), (None, None));
        let pod_on =
            app_pod(json!({"serviceAccountName": "ops", "automountServiceAccountToken": true, "containers": two}));
        assert!(service_account(&pod_on, Some(&account(Some(false))), "a").expect("admitted").volume.is_some());
        let pod_off = app_pod(json!({"automountServiceAccountToken": false, "containers": two}));
        assert!(service_account(&pod_off, None, "a").expect("admitted").mount.is_none());

        // A container that mounts something at the path keeps it; an existing token volume is reused.
        let own = app_pod(json!({"containers": [
            {"name": "a", "image": "i", "volumeMounts": [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]},
            {"name": "b", "image": "i"}],
            "volumes": [{"name": "kube-api-access-kept", "emptyDir": {}}, {"name": "mine", "emptyDir": {}}]}));
        let got = service_account(&own, None, "new").expect("admitted");
        assert_eq!(got.volume, None);
        let (mount, into) = got.mount.expect("b's mount");
        assert_eq!((mount.name.as_str(), into), ("kube-api-access-kept", vec![("containers", 1)]));
        // Every container has one: nothing to add.
        let all = app_pod(
            json!({"containers": [{"name": "a", "image": "i", "volumeMounts": [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]}],
            "volumes": [{"name": "mine", "emptyDir": {}}]}),
        );
        let got = service_account(&all, None, "new").expect("admitted");
        assert_eq!((got.volume, got.mount), (None, None));
    }
}
