//! A container's confinement, decided from its pod's and its own `securityContext` with
//! upstream's precedence (the container's field wins, else the pod's), as kubelet and
//! containerd's CRI plugin turn them into an OCI process:
//! - capabilities: containerd's default set, `ALL` in `add` or `drop` applied first, then the
//!   single adds and drops; every capability for a privileged container;
//! - seccomp: `RuntimeDefault` unless the pod or container says `Unconfined` (Ordinal's default
//!   is stricter than upstream's, which is `Unconfined`); none for a privileged container;
//! - `no_new_privs` unless `allowPrivilegeEscalation: true` or privileged (also stricter than
//!   upstream, whose unset field allows escalation);
//! - users and groups: `runAsUser`/`runAsGroup`, `supplementalGroups` and `fsGroup` joined to
//!   the process, `runAsNonRoot` checked against the user the image or spec gives, with
//!   kubelet's messages;
//! - the masked and read-only `/proc` and `/sys` paths of kubelet's `DefaultProcMount`, unless
//!   `procMount: Unmasked` or privileged; `readOnlyRootFilesystem`.
//!
//! What this node cannot do is refused with a reason, never ignored: `Localhost` seccomp and
//! AppArmor profiles, SELinux options, sysctls, and the host namespaces (`sandbox_refusal`).

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};

/// Every capability, in kernel order (the index is the capability's number).
pub const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// containerd's (and Docker's) default set.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Kubelet's `DefaultProcMount`: paths hidden (a file under `/dev/null`, a directory under an
/// empty read-only tmpfs) …
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// … and paths made read-only.
pub const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The syscall filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Seccomp {
    /// containerd's default profile (adjusted to the capabilities).
    RuntimeDefault,
    Unconfined,
}

/// How one container is confined.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityPlan {
    pub privileged: bool,
    /// Bounding set (and, for root, effective and permitted after exec), `CAP_` names in
    /// kernel order.
    pub capabilities: Vec<String>,
    pub seccomp: Seccomp,
    pub no_new_privileges: bool,
    /// Hide and protect the kernel's sensitive `/proc` and `/sys` files.
    pub mask_paths: bool,
    pub read_only_root: bool,
    /// Groups the process also gets: `supplementalGroups`, then `fsGroup`.
    pub groups: Vec<u32>,
}

impl SecurityPlan {
    /// No confinement at all (what a privileged container gets, minus its devices).
    pub fn unconfined() -> SecurityPlan {
        SecurityPlan {
            privileged: true,
            capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            seccomp: Seccomp::Unconfined,
            no_new_privileges: false,
            mask_paths: false,
            read_only_root: false,
            groups: Vec::new(),
        }
    }
}

/// The container's effective security context field: its own, else the pod's.
fn pick<T: Clone>(
    container: Option<&SecurityContext>,
    pod: Option<&PodSecurityContext>,
    c: impl Fn(&SecurityContext) -> Option<T>,
    p: impl Fn(&PodSecurityContext) -> Option<T>,
) -> Option<T> {
    container.and_then(c).or_else(|| pod.and_then(p))
}

fn contexts<'a>(
    pod: &'a Pod,
    container: &'a Container,
) -> (Option<&'a SecurityContext>, Option<&'a PodSecurityContext>) {
    (container.security_context.as_ref(), pod.spec.as_ref().and_then(|s| s.security_context.as_ref()))
}

/// A capability name as the kernel knows it (`NET_ADMIN` and `CAP_NET_ADMIN` alike).
fn capability(name: &str) -> Result<String, String> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    if CAPABILITIES.contains(&full.as_str()) { Ok(full) } else { Err(format!("unknown capability {name:?}")) }
}

/// The capabilities a non-privileged container keeps (containerd's CRI order of operations).
pub fn capabilities(sc: Option<&SecurityContext>) -> Result<Vec<String>, String> {
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let add = caps.and_then(|c| c.add.clone()).unwrap_or_default();
    let drop = caps.and_then(|c| c.drop.clone()).unwrap_or_default();
    let is_all = |n: &String| n.eq_ignore_ascii_case("ALL");
    let mut set: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    if add.iter().any(is_all) {
        set = CAPABILITIES.iter().map(|c| c.to_string()).collect();
    }
    if drop.iter().any(is_all) {
        set.clear();
    }
    for name in add.iter().filter(|n| !is_all(n)) {
        let cap = capability(name)?;
        if !set.contains(&cap) {
            set.push(cap);
        }
    }
    for name in drop.iter().filter(|n| !is_all(n)) {
        let cap = capability(name)?;
        set.retain(|c| *c != cap);
    }
    set.sort_by_key(|c| CAPABILITIES.iter().position(|k| k == c));
    Ok(set)
}

/// The confinement of `container` in `pod`, or why this node cannot give what it asks for.
pub fn security_plan(pod: &Pod, container: &Container) -> Result<SecurityPlan, String> {
    let (sc, psc) = contexts(pod, container);
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let seccomp = pick(sc, psc, |s| s.seccomp_profile.clone(), |p| p.seccomp_profile.clone());
    let seccomp = match seccomp.as_ref().map(|p| p.type_.as_str()) {
        Some("Localhost") => {
            return Err(
                "seccompProfile type Localhost is not supported by this node (use RuntimeDefault or Unconfined)".into(),
            );
        }
        Some("Unconfined") => Seccomp::Unconfined,
        Some(_) if !privileged => Seccomp::RuntimeDefault,
        None if !privileged => Seccomp::RuntimeDefault,
        _ => Seccomp::Unconfined,
    };
    let apparmor = pick(sc, psc, |s| s.app_armor_profile.clone(), |p| p.app_armor_profile.clone());
    if apparmor.is_some_and(|p| p.type_ == "Localhost") {
        return Err("appArmorProfile type Localhost is not supported: AppArmor is not enabled on this node".into());
    }
    let selinux = pick(sc, psc, |s| s.se_linux_options.clone(), |p| p.se_linux_options.clone());
    if selinux.is_some_and(|o| o.user.is_some() || o.role.is_some() || o.type_.is_some() || o.level.is_some()) {
        return Err("seLinuxOptions are not supported: SELinux is not enabled on this node".into());
    }
    let capabilities =
        if privileged { CAPABILITIES.iter().map(|c| c.to_string()).collect() } else { capabilities(sc)? };
    let escalation = sc.and_then(|s| s.allow_privilege_escalation).unwrap_or(false);
    let unmasked = sc.and_then(|s| s.proc_mount.as_deref()) == Some("Unmasked");
    let mut groups: Vec<u32> = Vec::new();
    let supplemental = psc.and_then(|p| p.supplemental_groups.clone()).unwrap_or_default();
    for g in supplemental.into_iter().chain(psc.and_then(|p| p.fs_group)) {
        let g = u32::try_from(g).map_err(|_| format!("group {g} is out of range"))?;
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    Ok(SecurityPlan {
        privileged,
        capabilities,
        seccomp,
        no_new_privileges: !privileged && !escalation,
        mask_paths: !privileged && !unmasked,
        read_only_root: sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
        groups,
    })
}

/// Upstream `verifyRunAsNonRoot`: with `runAsNonRoot`, the user the container would run as
/// (`runAsUser`, else the image's `User`, root when empty) must be known not to be root.
pub fn verify_run_as_non_root(pod: &Pod, container: &Container, image_user: &str) -> Result<(), String> {
    let (sc, psc) = contexts(pod, container);
    if !pick(sc, psc, |s| s.run_as_non_root, |p| p.run_as_non_root).unwrap_or(false) {
        return Ok(());
    }
    let who = format!("(pod: {:?}, container: {})", crate::kubelet::format_pod(pod), container.name);
    if let Some(uid) = pick(sc, psc, |s| s.run_as_user, |p| p.run_as_user) {
        return if uid == 0 { Err(format!("container's runAsUser breaks non-root policy {who}")) } else { Ok(()) };
    }
    let user = image_user.split(':').next().unwrap_or_default();
    match user.parse::<u32>() {
        Ok(0) => Err(format!("container has runAsNonRoot and image will run as root {who}")),
        Ok(_) => Ok(()),
        Err(_) if user.is_empty() => Err(format!("container has runAsNonRoot and image will run as root {who}")),
        Err(_) => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root {who}"
        )),
    }
}

/// What this node refuses at the pod level (sandbox), with the reason: the host's namespaces,
/// user namespaces, sysctls.
pub fn sandbox_refusal(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let unsupported = [
        (spec.host_network == Some(true), "hostNetwork"),
        (spec.host_pid == Some(true), "hostPID"),
        (spec.host_ipc == Some(true), "hostIPC"),
        (spec.host_users == Some(false), "hostUsers: false (user namespaces)"),
        (spec.security_context.as_ref().and_then(|s| s.sysctls.as_ref()).is_some_and(|s| !s.is_empty()), "sysctls"),
    ];
    let names: Vec<&str> = unsupported.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect();
    (!names.is_empty()).then(|| format!("{} not supported by Ordinal's node yet", names.join(", ")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(pod_sc: serde_json::Value, sc: serde_json::Value) -> (Pod, Container) {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "default", "uid": "u1"},
            "spec": {"securityContext": pod_sc, "containers": [{"name": "app", "image": "x", "securityContext": sc}]}
        }))
        .expect("pod");
        let c = pod.spec.as_ref().expect("spec").containers[0].clone();
        (pod, c)
    }

    fn plan(pod_sc: serde_json::Value, sc: serde_json::Value) -> Result<SecurityPlan, String> {
        let (p, c) = pod(pod_sc, sc);
        security_plan(&p, &c)
    }

    #[test]
    fn capabilities_follow_containerd() {
        let caps = |sc: serde_json::Value| plan(json!({}), sc).map(|p| p.capabilities);
        let defaults: Vec<String> = {
            let mut d: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
            d.sort_by_key(|c| CAPABILITIES.iter().position(|k| k == c));
            d
        };
        assert_eq!(caps(json!({})), Ok(defaults.clone()));
        let added =
            caps(json!({"capabilities": {"add": ["NET_ADMIN", "CAP_SYS_TIME"], "drop": ["MKNOD"]}})).expect("caps");
        assert!(added.contains(&"CAP_NET_ADMIN".to_string()) && added.contains(&"CAP_SYS_TIME".to_string()));
        assert!(!added.contains(&"CAP_MKNOD".to_string()));
        assert_eq!(caps(json!({"capabilities": {"drop": ["ALL"]}})), Ok(vec![]));
        assert_eq!(
            caps(json!({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})),
            Ok(vec!["CAP_NET_BIND_SERVICE".to_string()])
        );
        let all_but = caps(json!({"capabilities": {"add": ["ALL"], "drop": ["SYS_ADMIN"]}})).expect("caps");
        assert_eq!(all_but.len(), CAPABILITIES.len() - 1);
        assert!(caps(json!({"capabilities": {"add": ["FLY"]}})).is_err());
        assert_eq!(caps(json!({"privileged": true})).map(|c| c.len()), Ok(CAPABILITIES.len()));
    }

    #[test]
    fn seccomp_escalation_and_masking_by_default_and_lifted_by_privileged() {
        let default = plan(json!({}), json!({})).expect("plan");
        assert_eq!(
            (default.seccomp, default.no_new_privileges, default.mask_paths, default.privileged),
            (Seccomp::RuntimeDefault, true, true, false)
        );
        let privileged = plan(json!({}), json!({"privileged": true})).expect("plan");
        assert_eq!(
            (privileged.seccomp, privileged.no_new_privileges, privileged.mask_paths),
            (Seccomp::Unconfined, false, false)
        );
        // The container's profile wins over the pod's.
        let unconfined = plan(json!({"seccompProfile": {"type": "Unconfined"}}), json!({})).expect("plan");
        assert_eq!(unconfined.seccomp, Seccomp::Unconfined);
        let back = plan(
            json!({"seccompProfile": {"type": "Unconfined"}}),
            json!({"seccompProfile": {"type": "RuntimeDefault"}}),
        );
        assert_eq!(back.map(|p| p.seccomp), Ok(Seccomp::RuntimeDefault));
        let escalating = plan(json!({}), json!({"allowPrivilegeEscalation": true})).expect("plan");
        assert!(!escalating.no_new_privileges);
        assert!(!plan(json!({}), json!({"procMount": "Unmasked"})).expect("plan").mask_paths);
        assert!(plan(json!({}), json!({"readOnlyRootFilesystem": true})).expect("plan").read_only_root);
    }

    #[test]
    fn groups_and_refusals() {
        let p = plan(json!({"supplementalGroups": [5, 6], "fsGroup": 2000}), json!({})).expect("plan");
        assert_eq!(p.groups, [5, 6, 2000]);
        for (pod_sc, sc, why) in [
            (json!({}), json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}}), "Localhost"),
            (json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "x"}}), json!({}), "AppArmor"),
            (json!({}), json!({"seLinuxOptions": {"level": "s0:c1"}}), "SELinux"),
        ] {
            let refused = plan(pod_sc, sc).expect_err("refused");
            assert!(refused.contains(why), "{refused}");
        }
        // An empty seLinuxOptions (as charts write) asks for nothing.
        assert!(plan(json!({"seLinuxOptions": {}}), json!({"seLinuxOptions": {}})).is_ok());
    }

    #[test]
    fn run_as_non_root_as_kubelet_checks_it() {
        let check = |pod_sc: serde_json::Value, sc: serde_json::Value, image_user: &str| {
            let (p, c) = pod(pod_sc, sc);
            verify_run_as_non_root(&p, &c, image_user)
        };
        assert_eq!(check(json!({}), json!({}), ""), Ok(()));
        let who = "(pod: \"web-0_default(u1)\", container: app)";
        assert_eq!(
            check(json!({"runAsNonRoot": true}), json!({}), ""),
            Err(format!("container has runAsNonRoot and image will run as root {who}"))
        );
        assert_eq!(
            check(json!({"runAsNonRoot": true}), json!({}), "0:0"),
            check(json!({"runAsNonRoot": true}), json!({}), "")
        );
        assert_eq!(check(json!({"runAsNonRoot": true}), json!({}), "1000"), Ok(()));
        assert_eq!(
            check(json!({"runAsNonRoot": true}), json!({}), "nginx"),
            Err(format!(
                "container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is non-root {who}"
            ))
        );
        assert_eq!(
            check(json!({}), json!({"runAsNonRoot": true, "runAsUser": 0}), "1000"),
            Err(format!("container's runAsUser breaks non-root policy {who}"))
        );
        assert_eq!(check(json!({"runAsNonRoot": true, "runAsUser": 1000}), json!({}), "root"), Ok(()));
    }

    #[test]
    fn the_node_refuses_what_it_cannot_do_for_a_pod() {
        let pod = |spec: serde_json::Value| -> Pod { serde_json::from_value(json!({"spec": spec})).expect("pod") };
        assert_eq!(sandbox_refusal(&pod(json!({"containers": []}))), None);
        let refused = sandbox_refusal(&pod(json!({"containers": [], "hostNetwork": true, "hostPID": true})));
        assert_eq!(refused.as_deref(), Some("hostNetwork, hostPID not supported by Ordinal's node yet"));
        let sysctls = pod(
            json!({"containers": [], "securityContext": {"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"}]}}),
        );
        assert!(sandbox_refusal(&sysctls).is_some_and(|r| r.starts_with("sysctls")));
    }
}
