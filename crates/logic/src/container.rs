//! What a container runs, decided from the pod and its image, as kubelet decides it: the argv
//! (Kubernetes `command`/`args` over the image's `Entrypoint`/`Cmd`), the environment (image
//! env, then the Services' link variables, then `envFrom`, then the container's `env`, with
//! `$(VAR)` expansion and `fieldRef`/`configMapKeyRef`/`secretKeyRef` values), the working
//! directory, and the generated `/etc/hosts`,
//! `/etc/hostname` and `/etc/resolv.conf`.
//!
//! Pure: every outside fact (the pod's IP, config map data, the host's resolv.conf, the cluster
//! DNS address) comes in as data. The node agent writes and executes the result.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, Service};

/// The image side of a container (its OCI config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` strings.
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

/// Facts about the pod that only the node knows.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    pub pod_ip: String,
    pub host_ip: String,
    pub node_name: String,
    /// `namespace/name` → key → value, for `configMapKeyRef`.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// `namespace/name` → key → value (decoded), for `secretKeyRef`.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// The Services whose variables the container sees: the pod's namespace's (when
    /// `enableServiceLinks`) and the `kubernetes` Service of `default` (always).
    pub services: Vec<Service>,
}

/// The variables a container gets for Services, as kubelet's `getServiceEnvVarMap` and
/// `envvars.FromServices` make them: for each Service with a cluster IP in the pod's namespace
/// (only when `enableServiceLinks` is not false) and for `default/kubernetes` (always, unless
/// the namespace has its own `kubernetes`), `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT`,
/// `<NAME>_SERVICE_PORT_<PORT NAME>` and the Docker-link forms `<NAME>_PORT`,
/// `<NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]`; names upper-cased, `-` as `_`.
pub fn service_env(pod: &Pod, services: &[Service]) -> Vec<(String, String)> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links) != Some(false);
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for svc in services {
        let (Some(name), Some(ns)) = (svc.metadata.name.as_deref(), svc.metadata.namespace.as_deref()) else {
            continue;
        };
        let ip = svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()).unwrap_or_default();
        if ip.is_empty() || ip == "None" {
            continue;
        }
        if ns == namespace && links {
            chosen.insert(name, svc);
        } else if ns == "default" && name == "kubernetes" {
            chosen.entry(name).or_insert(svc);
        }
    }
    let mut env = Vec::new();
    for (name, svc) in chosen {
        let Some(spec) = svc.spec.as_ref() else { continue };
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        let prefix = name.to_ascii_uppercase().replace('-', "_");
        let ports = spec.ports.clone().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        env.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
        env.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for port in &ports {
            if let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                let port_name = port_name.to_ascii_uppercase().replace('-', "_");
                env.push((format!("{prefix}_SERVICE_PORT_{port_name}"), port.port.to_string()));
            }
        }
        let protocol = |p: &k8s_openapi::api::core::v1::ServicePort| p.protocol.clone().unwrap_or_else(|| "TCP".into());
        env.push((format!("{prefix}_PORT"), format!("{}://{ip}:{}", protocol(first).to_ascii_lowercase(), first.port)));
        for port in &ports {
            let proto = protocol(port);
            let base = format!("{prefix}_PORT_{}_{}", port.port, proto.to_ascii_uppercase());
            env.push((base.clone(), format!("{}://{ip}:{}", proto.to_ascii_lowercase(), port.port)));
            env.push((format!("{base}_PROTO"), proto.to_ascii_lowercase()));
            env.push((format!("{base}_PORT"), port.port.to_string()));
            env.push((format!("{base}_ADDR"), ip.clone()));
        }
    }
    env
}

/// Whether `name` may be an environment variable (kubelet skips other `envFrom` keys, as
/// upstream's `IsEnvVarName`: printable ASCII, no `=`, not starting with a digit).
fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Why a container cannot start yet (kubelet's `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Neither the pod nor the image says what to run.
    NoCommand,
    /// A referenced config map, secret or key is missing (and not optional).
    MissingRef(String),
    /// The security context asks for what this node cannot or must not give.
    Security(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::NoCommand => write!(f, "no command specified"),
            ConfigError::MissingRef(what) | ConfigError::Security(what) => write!(f, "{what}"),
        }
    }
}

/// How to start one container process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPlan {
    pub argv: Vec<String>,
    /// In order, later entries win; no duplicates.
    pub env: Vec<(String, String)>,
    pub working_dir: String,
    /// `uid[:gid]` from `securityContext` (pod, then container), else the image's `User`.
    pub user: String,
    /// How the process is confined.
    pub security: crate::security::SecurityPlan,
}

/// `command`/`args` over `Entrypoint`/`Cmd` (Kubernetes' documented table).
pub fn argv(container: &Container, image: &ImageDefaults) -> Vec<String> {
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    match (command.is_empty(), container.args.is_some()) {
        (true, false) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
        (true, true) => image.entrypoint.iter().cloned().chain(args).collect(),
        (false, _) => command.into_iter().chain(args).collect(),
    }
}

/// Expand `$(VAR)` from `env`; `$$` is a literal `$`; unknown references stay as written.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            if bytes[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if bytes[i + 1] == b'('
                && let Some(close) = input[i + 2..].find(')')
            {
                let name = &input[i + 2..i + 2 + close];
                if let Some((_, v)) = env.iter().rev().find(|(k, _)| k == name) {
                    out.push_str(v);
                    i += close + 3;
                    continue;
                }
            }
        }
        let ch = input[i..].chars().next().unwrap_or('\0');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn set(env: &mut Vec<(String, String)>, key: String, value: String) {
    env.retain(|(k, _)| *k != key);
    env.push((key, value));
}

fn field_value(pod: &Pod, facts: &PodFacts, path: &str) -> String {
    let meta = &pod.metadata;
    match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => facts.node_name.clone(),
        "spec.serviceAccountName" => pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        other => {
            // metadata.labels['x'] / metadata.annotations['x']
            let lookup = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
                other
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix("']"))
                    .and_then(|key| map.as_ref().and_then(|m| m.get(key).cloned()))
            };
            lookup("metadata.labels['", &meta.labels)
                .or_else(|| lookup("metadata.annotations['", &meta.annotations))
                .unwrap_or_default()
        }
    }
}

/// The whole process plan of `container` in `pod`.
pub fn process_plan(
    pod: &Pod,
    container: &Container,
    image: &ImageDefaults,
    facts: &PodFacts,
) -> Result<ProcessPlan, ConfigError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut env: Vec<(String, String)> = Vec::new();
    for kv in &image.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        set(&mut env, k.to_string(), v.to_string());
    }
    for (k, v) in service_env(pod, &facts.services) {
        set(&mut env, k, v);
    }
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let (kind, name, optional, data) = if let Some(r) = &source.config_map_ref {
            ("configmap", &r.name, r.optional, facts.config_maps.get(&format!("{namespace}/{}", r.name)))
        } else if let Some(r) = &source.secret_ref {
            ("secret", &r.name, r.optional, facts.secrets.get(&format!("{namespace}/{}", r.name)))
        } else {
            continue;
        };
        match data {
            Some(data) => {
                for (k, v) in data {
                    let key = format!("{prefix}{k}");
                    if is_env_var_name(&key) {
                        set(&mut env, key, v.clone());
                    }
                }
            }
            None if optional == Some(true) => {}
            None => return Err(ConfigError::MissingRef(format!("{kind} {name:?} not found"))),
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(field) = &from.field_ref {
                Some(field_value(pod, facts, &field.field_path))
            } else if let Some(r) = &from.config_map_key_ref {
                let key = format!("{namespace}/{}", r.name);
                match facts.config_maps.get(&key).and_then(|m| m.get(&r.key)) {
                    Some(v) => Some(v.clone()),
                    None if r.optional == Some(true) => None,
                    None => {
                        return Err(ConfigError::MissingRef(format!(
                            "configmap {:?} key {:?} not found",
                            r.name, r.key
                        )));
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                let key = format!("{namespace}/{}", r.name);
                match facts.secrets.get(&key).and_then(|m| m.get(&r.key)) {
                    Some(v) => Some(v.clone()),
                    None if r.optional == Some(true) => None,
                    None => {
                        return Err(ConfigError::MissingRef(format!("secret {:?} key {:?} not found", r.name, r.key)));
                    }
                }
            } else {
                None
            }
        } else {
            Some(expand(var.value.as_deref().unwrap_or(""), &env))
        };
        if let Some(v) = value {
            set(&mut env, var.name.clone(), v);
        }
    }
    let argv: Vec<String> = argv(container, image).iter().map(|a| expand(a, &env)).collect();
    if argv.is_empty() {
        return Err(ConfigError::NoCommand);
    }
    let working_dir =
        container.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| image.working_dir.clone());
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.clone());
    let sc = container.security_context.clone();
    let uid = sc.as_ref().and_then(|s| s.run_as_user).or_else(|| pod_sc.as_ref().and_then(|s| s.run_as_user));
    let gid = sc.as_ref().and_then(|s| s.run_as_group).or_else(|| pod_sc.as_ref().and_then(|s| s.run_as_group));
    let user = match (uid, gid) {
        (Some(u), Some(g)) => format!("{u}:{g}"),
        (Some(u), None) => u.to_string(),
        (None, Some(g)) => {
            let image_user = image.user.split(':').next().unwrap_or("").to_string();
            format!("{image_user}:{g}")
        }
        (None, None) => image.user.clone(),
    };
    crate::security::verify_run_as_non_root(pod, container, &user).map_err(ConfigError::Security)?;
    let security = crate::security::security_plan(pod, container).map_err(ConfigError::Security)?;
    Ok(ProcessPlan { argv, env, working_dir, user, security })
}

/// The hostname a pod's containers see: `spec.hostname`, else the pod name (truncated to 63).
pub fn hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    name.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_string()
}

/// `/etc/hosts` as kubelet writes it, with the pod's own FQDN when it has a subdomain.
pub fn hosts_file(pod: &Pod, pod_ip: &str, cluster_domain: &str) -> String {
    let host = hostname(pod);
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let subdomain = pod.spec.as_ref().and_then(|s| s.subdomain.clone()).filter(|s| !s.is_empty());
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    match subdomain {
        Some(sub) => out.push_str(&format!("{pod_ip}\t{host}.{sub}.{namespace}.svc.{cluster_domain}\t{host}\n")),
        None => out.push_str(&format!("{pod_ip}\t{host}\n")),
    }
    for alias in pod.spec.as_ref().and_then(|s| s.host_aliases.clone()).unwrap_or_default() {
        let names = alias.hostnames.unwrap_or_default().join("\t");
        out.push_str(&format!("\n# Entries added by HostAliases.\n{}\t{names}\n", alias.ip));
    }
    out
}

/// A pod's resolver settings: what its `/etc/resolv.conf` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsSettings {
    /// At most three, as kubelet writes them.
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    /// `name` or `name:value`.
    pub options: Vec<String>,
}

impl DnsSettings {
    /// The `ndots` option (the resolver's default 1 when not set).
    pub fn ndots(&self) -> usize {
        self.options.iter().rev().find_map(|o| o.strip_prefix("ndots:")).and_then(|n| n.parse().ok()).unwrap_or(1)
    }
}

/// `/etc/resolv.conf` for the pod's `dnsPolicy` and `dnsConfig`.
pub fn resolv_conf(pod: &Pod, cluster_dns: &str, cluster_domain: &str, host_resolv_conf: &str) -> String {
    let DnsSettings { servers, searches, options } = dns_settings(pod, cluster_dns, cluster_domain, host_resolv_conf);
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The resolver settings for the pod's `dnsPolicy` and `dnsConfig`, as kubelet computes them.
pub fn dns_settings(pod: &Pod, cluster_dns: &str, cluster_domain: &str, host_resolv_conf: &str) -> DnsSettings {
    let spec = pod.spec.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network.unwrap_or(false);
    // ClusterFirst on the host network falls back to the node's settings, as kubelet does.
    let cluster = policy == "ClusterFirstWithHostNet" || (policy == "ClusterFirst" && !host_network);
    let (mut servers, mut searches, mut options): (Vec<String>, Vec<String>, Vec<String>) = if cluster {
        (
            vec![cluster_dns.to_string()],
            vec![
                format!("{namespace}.svc.{cluster_domain}"),
                format!("svc.{cluster_domain}"),
                cluster_domain.to_string(),
            ],
            vec!["ndots:5".to_string()],
        )
    } else if policy == "None" {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        let mut s = (Vec::new(), Vec::new(), Vec::new());
        for line in host_resolv_conf.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => s.0.extend(words.map(str::to_string)),
                Some("search") => s.1 = words.map(str::to_string).collect(),
                Some("options") => s.2.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        s
    };
    if let Some(config) = spec.dns_config {
        for ns in config.nameservers.unwrap_or_default() {
            if !servers.contains(&ns) {
                servers.push(ns);
            }
        }
        for s in config.searches.unwrap_or_default() {
            if !searches.contains(&s) {
                searches.push(s);
            }
        }
        for o in config.options.unwrap_or_default() {
            let rendered = match o.value {
                Some(v) => format!("{}:{v}", o.name.unwrap_or_default()),
                None => o.name.unwrap_or_default(),
            };
            let key = rendered.split(':').next().unwrap_or("").to_string();
            options.retain(|existing| existing.split(':').next() != Some(key.as_str()));
            options.push(rendered);
        }
    }
    servers.truncate(3);
    DnsSettings { servers, searches, options }
}
