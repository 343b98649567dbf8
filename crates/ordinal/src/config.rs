//! What `ordinal server` is told. Every flag's default is written once, as a clap attribute of
//! [`ServerArgs`]; [`ServerConfig::new`] and [`PodSettings::standard`] take theirs from
//! `ServerArgs::default()` (the flags parsed from nothing), and [`ServerConfig::from_args`] turns
//! the command line into the configuration `start` runs. The knobs that are not flags (compaction,
//! watch history, bookmarks, the node name, the helper binary) have their one default here too
//! (the API listener's limits have theirs in `apiserver::serve::ServeLimits::STANDARD`).

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::DataDir;

/// `--data-dir`'s default (also `ordinal image --data-dir`'s).
pub const DEFAULT_DATA_DIR: &str = "./ordinal-data";
/// `--dns-listen`'s default (also `ordinal dns-config --dns-listen`'s).
pub const DEFAULT_DNS_LISTEN: &str = "127.0.0.1:1053";
/// `--cluster-domain`'s default (also `ordinal dns-config --cluster-domain`'s).
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// The flags of `ordinal server`, each with its default.
#[derive(Debug, Clone, PartialEq, Eq, clap::Parser)]
#[command(name = "ordinal server")]
pub struct ServerArgs {
    /// Where the database, credentials, kubeconfig, images, pods and volumes live (made
    /// absolute at start; one server at a time).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Address of the HTTPS API.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Allow listening on a non-loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Network Service cluster IPs come from.
    #[arg(long, default_value = "10.96.0.0/16")]
    pub service_cidr: String,
    /// Range NodePorts come from.
    #[arg(long, default_value = "30000-32767")]
    pub node_port_range: String,
    /// Addresses NodePorts listen on (repeat the flag or separate with commas; 0.0.0.0 for every
    /// address). By default where the API listens: with --listen on loopback, 127.0.0.1 and the
    /// pod bridge's address; otherwise every address.
    #[arg(long = "node-port-address", value_name = "IP", value_delimiter = ',')]
    pub node_port_addresses: Vec<Ipv4Addr>,
    /// Network pod IPs come from (the bridge takes the first address).
    #[arg(long, default_value = "10.244.0.0/16")]
    pub pod_cidr: String,
    /// Name of the pods' bridge.
    #[arg(long, default_value = "ordinal0")]
    pub bridge: String,
    /// cgroup path (under each hierarchy) for the pods' cgroups.
    #[arg(long, default_value = "ordinal")]
    pub cgroup_parent: String,
    /// The cluster's DNS domain.
    #[arg(long, default_value = DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// When the server stops, stop its pods and remove every trace of them (by default pods
    /// keep running and are picked up again at the next start).
    #[arg(long)]
    pub stop_pods_on_exit: bool,
    /// Let pods reach addresses beyond this machine, masqueraded (nftables; turns on IPv4
    /// forwarding, restored when the server stops with --stop-pods-on-exit).
    #[arg(long)]
    pub masquerade: bool,
    /// Where the cluster DNS also answers for the host ("none" to answer pods only).
    #[arg(long, default_value = DEFAULT_DNS_LISTEN)]
    pub dns_listen: String,
    /// Serve the API and controllers only; run no pods on this machine.
    #[arg(long)]
    pub no_pods: bool,
    /// The controllers to run, as kube-controller-manager's flag: `*` for all, `-name` to leave
    /// one out (`*,-statefulset` when `ordinal operator` manages StatefulSets instead).
    #[arg(long, default_value = "*")]
    pub controllers: String,
}

impl Default for ServerArgs {
    /// The flags as `ordinal server` with no arguments has them.
    fn default() -> ServerArgs {
        <ServerArgs as clap::Parser>::parse_from(["ordinal server"])
    }
}

/// What `ordinal server` is told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: DataDir,
    pub listen: SocketAddr,
    /// Permit binding a non-loopback address.
    pub allow_remote: bool,
    pub service_cidr: (Ipv4Addr, u8),
    pub node_port_range: RangeInclusive<u16>,
    /// `--node-port-address` (empty: where the API listens, see
    /// `logic::proxy::node_port_addresses`).
    pub node_port_addresses: Vec<Ipv4Addr>,
    /// How often old watch history and WAL space are reclaimed.
    pub compact_interval: Duration,
    /// Watch events the store keeps for resuming watches.
    pub watch_history: usize,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// The API listener's handshake and request-head deadlines and its connection cap.
    pub serve_limits: apiserver::serve::ServeLimits,
    /// Run the controllers and the node agent (off only to test the API's own semantics).
    pub controllers: bool,
    /// Which controllers run (`--controllers`, names from `controllers::NAMES`).
    pub enabled_controllers: std::collections::BTreeSet<&'static str>,
    /// The Node this machine registers as.
    pub node_name: String,
    /// Run pods on this machine (None: the node registers but runs nothing, for API tests).
    pub pods: Option<PodSettings>,
}

/// How this machine runs pods.
#[derive(Debug, Clone)]
pub struct PodSettings {
    /// The binary re-executed as container shim and exec helper (this one, normally).
    pub helper: PathBuf,
    pub pod_cidr: agent::runtime::network::Cidr,
    pub bridge: String,
    /// cgroup path (under each hierarchy) for pods.
    pub cgroup_parent: String,
    pub cluster_domain: String,
    /// Stop every pod and remove their traces when the server stops.
    pub stop_pods_on_exit: bool,
    /// Outbound NAT for pods (otherwise their traffic never leaves this machine).
    pub masquerade: bool,
    /// Where the cluster DNS also answers for the host (it always answers pods on the bridge's
    /// address, port 53).
    pub dns_listen: Option<SocketAddr>,
}

impl PodSettings {
    /// `ordinal server`'s defaults.
    pub fn standard() -> anyhow::Result<PodSettings> {
        PodSettings::from_args(&ServerArgs::default())
    }

    /// The pod flags of `ordinal server`, checked.
    pub fn from_args(args: &ServerArgs) -> anyhow::Result<PodSettings> {
        let (addr, prefix) = parse_cidr(&args.pod_cidr).context("--pod-cidr")?;
        Ok(PodSettings {
            helper: std::env::current_exe().context("locate the ordinal binary")?,
            pod_cidr: agent::runtime::network::Cidr { addr, prefix },
            bridge: args.bridge.clone(),
            cgroup_parent: args.cgroup_parent.clone(),
            cluster_domain: args.cluster_domain.clone(),
            stop_pods_on_exit: args.stop_pods_on_exit,
            masquerade: args.masquerade,
            dns_listen: match args.dns_listen.as_str() {
                "none" => None,
                addr => Some(addr.parse().context("--dns-listen")?),
            },
        })
    }

    /// The runtime's settings for a data dir.
    pub fn native_config(&self, data_dir: &DataDir) -> agent::runtime::NativeConfig {
        agent::runtime::NativeConfig {
            root: data_dir.pods(),
            helper: self.helper.clone(),
            bridge: self.bridge.clone(),
            pod_cidr: self.pod_cidr,
            cgroup_parent: self.cgroup_parent.clone(),
            log_max_bytes: 10 << 20,
            log_max_files: 5,
            masquerade: self.masquerade,
        }
    }
}

impl ServerConfig {
    /// The defaults of `ordinal server` (without pods) on `data_dir`, listening on `listen`.
    pub fn new(data_dir: DataDir, listen: SocketAddr) -> ServerConfig {
        let defaults = ServerArgs::default();
        let (service_cidr, node_port_range) = (
            parse_cidr(&defaults.service_cidr).expect("the default --service-cidr parses"),
            parse_port_range(&defaults.node_port_range).expect("the default --node-port-range parses"),
        );
        ServerConfig {
            data_dir,
            listen,
            allow_remote: defaults.allow_remote,
            service_cidr,
            node_port_range,
            node_port_addresses: defaults.node_port_addresses,
            compact_interval: Duration::from_secs(300),
            watch_history: store::StoreConfig::standard().history,
            bookmark_interval: Duration::from_secs(30),
            serve_limits: apiserver::serve::ServeLimits::STANDARD,
            controllers: true,
            enabled_controllers: controllers::enabled_controllers(&defaults.controllers)
                .expect("the default --controllers parses"),
            node_name: default_node_name(),
            pods: None,
        }
    }

    /// What `ordinal server ARGS` runs: the flags checked, the data dir created (and made
    /// absolute), pods unless `--no-pods`.
    pub fn from_args(args: ServerArgs) -> anyhow::Result<ServerConfig> {
        let service_cidr = parse_cidr(&args.service_cidr).context("--service-cidr")?;
        let node_port_range = parse_port_range(&args.node_port_range).context("--node-port-range")?;
        let enabled_controllers =
            controllers::enabled_controllers(&args.controllers).map_err(anyhow::Error::msg).context("--controllers")?;
        let pods = if args.no_pods { None } else { Some(PodSettings::from_args(&args)?) };
        let data_dir = DataDir::create(&args.data_dir)
            .with_context(|| format!("cannot create the data dir {}", args.data_dir.display()))?;
        let mut config = ServerConfig::new(data_dir, args.listen);
        config.allow_remote = args.allow_remote;
        config.service_cidr = service_cidr;
        config.node_port_range = node_port_range;
        config.node_port_addresses = args.node_port_addresses;
        config.pods = pods;
        config.enabled_controllers = enabled_controllers;
        Ok(config)
    }
}

/// This machine's host name as a valid Node name (lowercase DNS label characters).
pub fn default_node_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cleaned: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' })
        .take(63)
        .collect();
    let cleaned = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
    if cleaned.is_empty() { "ordinal".into() } else { cleaned }
}

/// Parse `10.96.0.0/16`.
pub fn parse_cidr(s: &str) -> anyhow::Result<(Ipv4Addr, u8)> {
    let (ip, prefix) = s.split_once('/').context("expected ADDRESS/PREFIX")?;
    let ip: Ipv4Addr = ip.parse().context("bad IPv4 address")?;
    let prefix: u8 = prefix.parse().context("bad prefix length")?;
    if !(8..=30).contains(&prefix) {
        bail!("prefix length must be between 8 and 30");
    }
    Ok((ip, prefix))
}

/// Parse `30000-32767`.
pub fn parse_port_range(s: &str) -> anyhow::Result<RangeInclusive<u16>> {
    let (a, b) = s.split_once('-').context("expected FIRST-LAST")?;
    let (a, b): (u16, u16) = (a.parse()?, b.parse()?);
    if a == 0 || a > b {
        bail!("invalid port range {s}");
    }
    Ok(a..=b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_parse_and_default_to_what_the_readme_says() {
        <ServerArgs as clap::CommandFactory>::command().debug_assert();
        let d = ServerArgs::default();
        assert_eq!(d.data_dir, PathBuf::from("./ordinal-data"));
        assert_eq!(d.listen, SocketAddr::from(([127, 0, 0, 1], 6443)));
        assert!(!d.allow_remote);
        assert_eq!(d.service_cidr, "10.96.0.0/16");
        assert_eq!(d.node_port_range, "30000-32767");
        assert!(d.node_port_addresses.is_empty(), "derived from --listen");
        assert_eq!(d.pod_cidr, "10.244.0.0/16");
        assert_eq!(d.bridge, "ordinal0");
        assert_eq!(d.cgroup_parent, "ordinal");
        assert_eq!(d.cluster_domain, "cluster.local");
        assert!(!d.stop_pods_on_exit);
        assert!(!d.masquerade);
        assert_eq!(d.dns_listen, "127.0.0.1:1053");
        assert!(!d.no_pods);
    }

    #[test]
    fn the_configuration_from_the_default_flags_matches_the_defaults() -> anyhow::Result<()> {
        let scratch = tempfile::tempdir()?;
        let args = ServerArgs { data_dir: scratch.path().join("data"), ..ServerArgs::default() };
        let config = ServerConfig::from_args(args)?;
        assert!(config.data_dir.root().is_absolute() && config.data_dir.root().is_dir());
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 6443)));
        assert!(!config.allow_remote);
        assert_eq!(config.service_cidr, (Ipv4Addr::new(10, 96, 0, 0), 16));
        assert_eq!(config.node_port_range, 30000..=32767);

        let pods = config.pods.context("pods unless --no-pods")?;
        let standard = PodSettings::standard()?;
        assert_eq!(pods.pod_cidr, agent::runtime::network::Cidr { addr: Ipv4Addr::new(10, 244, 0, 0), prefix: 16 });
        assert_eq!(pods.pod_cidr, standard.pod_cidr);
        assert_eq!((pods.bridge.as_str(), standard.bridge.as_str()), ("ordinal0", "ordinal0"));
        assert_eq!((pods.cgroup_parent.as_str(), standard.cgroup_parent.as_str()), ("ordinal", "ordinal"));
        assert_eq!(
            (pods.cluster_domain.as_str(), standard.cluster_domain.as_str()),
            ("cluster.local", "cluster.local")
        );
        assert_eq!((pods.stop_pods_on_exit, standard.stop_pods_on_exit), (false, false));
        assert_eq!((pods.masquerade, standard.masquerade), (false, false));
        let dns = Some(SocketAddr::from(([127, 0, 0, 1], 1053)));
        assert_eq!((pods.dns_listen, standard.dns_listen), (dns, dns));
        assert_eq!(pods.helper, standard.helper);

        let plain = ServerConfig::new(config.data_dir.clone(), config.listen);
        assert_eq!((plain.service_cidr, plain.node_port_range), (config.service_cidr, config.node_port_range));
        assert!(plain.pods.is_none());
        Ok(())
    }

    #[test]
    fn flags_are_checked_before_the_data_dir_is_made() -> anyhow::Result<()> {
        let scratch = tempfile::tempdir()?;
        let data_dir = scratch.path().join("data");
        let parse = |extra: &[&str]| {
            let mut argv = vec!["ordinal server", "--data-dir", data_dir.to_str().unwrap_or_default()];
            argv.extend_from_slice(extra);
            ServerConfig::from_args(<ServerArgs as clap::Parser>::try_parse_from(argv)?)
        };
        let err = parse(&["--controllers", "*,-kubelet"]).err().context("an unknown controller is refused")?;
        assert!(format!("{err:#}").starts_with("--controllers: unknown controller \"kubelet\""), "{err:#}");
        let err = parse(&["--service-cidr", "10.96.0.0"]).err().context("a bad --service-cidr is refused")?;
        assert!(format!("{err:#}").starts_with("--service-cidr"), "{err:#}");
        let err = parse(&["--dns-listen", "nowhere"]).err().context("a bad --dns-listen is refused")?;
        assert!(format!("{err:#}").starts_with("--dns-listen"), "{err:#}");
        assert!(!data_dir.exists());

        let config = parse(&["--no-pods"])?;
        assert!(config.pods.is_none());
        assert!(config.node_port_addresses.is_empty());
        let config = parse(&["--node-port-address", "192.0.2.2,127.0.0.1", "--node-port-address", "10.0.0.1"])?;
        assert_eq!(
            config.node_port_addresses,
            [Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::LOCALHOST, Ipv4Addr::new(10, 0, 0, 1)]
        );
        let err = parse(&["--node-port-address", "localhost"]).err().context("a name is refused")?;
        assert!(format!("{err:#}").contains("--node-port-address"), "{err:#}");
        let config = parse(&["--dns-listen", "none", "--pod-cidr", "10.250.0.0/24", "--stop-pods-on-exit"])?;
        let pods = config.pods.context("pods")?;
        assert_eq!(pods.dns_listen, None);
        assert_eq!(pods.pod_cidr.to_string(), "10.250.0.0/24");
        assert!(pods.stop_pods_on_exit);
        Ok(())
    }
}
