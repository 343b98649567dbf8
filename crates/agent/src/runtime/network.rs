//! Pod networking: one Linux bridge whose address is the pod CIDR's gateway, a network namespace
//! and a veth pair per pod, and an address manager that never hands out an address in use and
//! remembers its leases across restarts.
//!
//! Namespaces are kept by bind-mounting their `nsfs` files into the pod's directory (as
//! `ip netns` does), so no process has to hold them. They are made on a short-lived thread: a
//! thread may enter new network, UTS and IPC namespaces without touching the rest of the server.
//! Netlink sockets belong to the namespace of the thread that opens them, so that thread keeps
//! one socket opened before it moved (the host side) and one opened after (the pod side).

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures::TryStreamExt;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("netlink: {what}: {message}")]
    Netlink { what: String, message: String },
    #[error("no free address left in {0}")]
    Exhausted(String),
    /// Another server holds the bridge.
    #[error(transparent)]
    InUse(#[from] crate::pidlock::PidLockError),
    #[error(
        "pod network {cidr} overlaps {address} on {interface}: another ordinal server or network uses it (choose another --pod-cidr)"
    )]
    Overlap { cidr: Cidr, address: Cidr, interface: String },
    #[error("the namespace thread panicked")]
    Thread,
}

type Result<T, E = NetError> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Io { what, source }
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> NetError {
    let what = what.into();
    move |source| NetError::Sys { what, source }
}

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let what = what.into();
    move |e| NetError::Netlink { what, message: e.to_string() }
}

/// An IPv4 network: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    fn size(&self) -> u32 {
        1u32.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0)
    }

    fn base(&self) -> u32 {
        u32::from(self.addr) & !(self.size().wrapping_sub(1))
    }

    /// The first host address: the bridge's, the pods' default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base() + 1)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & !(self.size().wrapping_sub(1)) == self.base()
    }

    /// Do the two networks share an address?
    pub fn overlaps(&self, other: Cidr) -> bool {
        self.contains(Ipv4Addr::from(other.base())) || other.contains(Ipv4Addr::from(self.base()))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Address leases, persisted as `ipam.json`. Allocation continues after the last address handed
/// out (wrapping), so a freed address is not reused while others are free.
#[derive(Debug)]
pub struct Ipam {
    path: PathBuf,
    cidr: Cidr,
    state: Mutex<Leases>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Leases {
    /// Offset of the last address handed out.
    last: u32,
    /// Address → owner (the pod's uid).
    leases: BTreeMap<Ipv4Addr, String>,
}

impl Ipam {
    pub fn open(path: &Path, cidr: Cidr) -> Result<Ipam> {
        let state = match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Leases::default(),
            Err(e) => return Err(NetError::Io { what: format!("read {}", path.display()), source: e }),
        };
        Ok(Ipam { path: path.to_path_buf(), cidr, state: Mutex::new(state) })
    }

    /// The owner's address: its existing lease, or the next free one.
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((ip, _)) = state.leases.iter().find(|(ip, o)| o.as_str() == owner && self.cidr.contains(**ip)) {
            return Ok(*ip);
        }
        let size = self.cidr.size();
        // Offsets 0 (network), 1 (gateway) and size-1 (broadcast) are never handed out.
        for step in 1..size {
            let offset = (state.last + step) % size;
            if offset < 2 || offset == size - 1 {
                continue;
            }
            let ip = Ipv4Addr::from(self.cidr.base() + offset);
            if let std::collections::btree_map::Entry::Vacant(e) = state.leases.entry(ip) {
                e.insert(owner.to_string());
                state.last = offset;
                self.save(&state)?;
                return Ok(ip);
            }
        }
        Err(NetError::Exhausted(self.cidr.to_string()))
    }

    pub fn release(&self, owner: &str) -> Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let before = state.leases.len();
        state.leases.retain(|_, o| o != owner);
        if state.leases.len() != before {
            self.save(&state)?;
        }
        Ok(())
    }

    /// Owners holding a lease.
    pub fn owners(&self) -> Vec<String> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.leases.values().cloned().collect()
    }

    fn save(&self, state: &Leases) -> Result<()> {
        let tmp = self.path.with_extension("partial");
        let bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
        fs::write(&tmp, bytes).map_err(io("write ipam"))?;
        fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io("sync ipam"))?;
        fs::rename(&tmp, &self.path).map_err(io("rename ipam"))
    }
}

/// The namespaces a pod's containers share, as files.
pub const SHARED_NAMESPACES: [&str; 3] = ["ipc", "uts", "net"];

/// Everything needed to wire one pod.
#[derive(Debug, Clone)]
pub struct PodNet {
    /// Directory holding the namespace files.
    pub ns_dir: PathBuf,
    pub hostname: String,
    pub ip: Ipv4Addr,
    pub cidr: Cidr,
    pub bridge: String,
    /// Host-side name of the veth pair.
    pub host_veth: String,
}

/// Run `f` on a fresh thread with its own current-thread tokio runtime (for rtnetlink).
fn on_thread<T: Send + 'static>(
    f: impl FnOnce(&tokio::runtime::Runtime) -> Result<T> + Send + 'static,
) -> impl Future<Output = Result<T>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name("ordinal-netns".into()).spawn(move || {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("netns runtime"))
            .and_then(|rt| f(&rt));
        let _ = tx.send(result);
    });
    async move {
        spawned.map_err(io("spawn netns thread"))?;
        rx.await.map_err(|_| NetError::Thread)?
    }
}

/// A TCP connection to `127.0.0.1:port` inside the pod whose kept namespaces are in `ns_dir`
/// (what `kubectl port-forward` reaches, as kubelet does it: listeners on the pod's loopback
/// count). The socket is made on a thread that entered the pod's network namespace and stays
/// in that namespace.
pub async fn connect_in_pod(ns_dir: PathBuf, port: u16) -> Result<std::net::TcpStream> {
    on_thread(move |_| {
        let netns = fs::File::open(ns_dir.join("net")).map_err(io("open the pod's netns"))?;
        nix::sched::setns(&netns, CloneFlags::CLONE_NEWNET).map_err(sys("enter the pod's netns"))?;
        let addr = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
            .map_err(io(format!("connect to port {port} in the pod")))?;
        stream.set_nonblocking(true).map_err(io("non-blocking socket"))?;
        Ok(stream)
    })
    .await
}

fn connect() -> Result<Handle> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(io("netlink socket"))?;
    tokio::spawn(connection);
    Ok(handle)
}

async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>> {
    match handle.link().get().match_name(name.to_string()).execute().try_next().await {
        Ok(Some(link)) => Ok(Some(link.header.index)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(nl(format!("find link {name}"))(e)),
    }
}

/// Where bridge locks live (one per bridge name).
const CLAIMS: &str = "/run/ordinal";

/// A server's hold on its bridge and pod network, for as long as it runs: two servers never
/// share a bridge (each would hand out the other's addresses and answer the other's pods' DNS).
#[derive(Debug)]
pub struct NetworkClaim {
    _lock: crate::pidlock::PidLock,
}

/// Claim `bridge` for this server (refused while another server holds it) and check that no
/// other interface has an address in the pod network.
pub async fn claim_network(bridge: &str, cidr: Cidr) -> Result<NetworkClaim> {
    fs::create_dir_all(CLAIMS).map_err(io(format!("create {CLAIMS}")))?;
    let lock_file = Path::new(CLAIMS).join(format!("bridge-{bridge}.lock"));
    let lock = crate::pidlock::PidLock::take(&lock_file, &format!("bridge {bridge}"))?;
    let ours = bridge.to_string();
    let overlap = on_thread(move |rt| {
        rt.block_on(async {
            use rtnetlink::packet_route::address::AddressAttribute;
            use rtnetlink::packet_route::link::LinkAttribute;
            let handle = connect()?;
            let links: Vec<_> = handle.link().get().execute().try_collect().await.map_err(nl("list links"))?;
            let name_of = |index: u32| {
                links.iter().filter(|l| l.header.index == index).flat_map(|l| &l.attributes).find_map(|a| match a {
                    LinkAttribute::IfName(name) => Some(name.clone()),
                    _ => None,
                })
            };
            let addresses: Vec<_> =
                handle.address().get().execute().try_collect().await.map_err(nl("list addresses"))?;
            for a in addresses {
                let interface = name_of(a.header.index).unwrap_or_else(|| format!("link {}", a.header.index));
                if interface == ours {
                    continue;
                }
                for attr in &a.attributes {
                    if let AddressAttribute::Address(IpAddr::V4(ip)) = attr {
                        let address = Cidr { addr: *ip, prefix: a.header.prefix_len };
                        if address.overlaps(cidr) {
                            return Ok(Some((address, interface)));
                        }
                    }
                }
            }
            Ok(None)
        })
    })
    .await?;
    match overlap {
        Some((address, interface)) => Err(NetError::Overlap { cidr, address, interface }),
        None => Ok(NetworkClaim { _lock: lock }),
    }
}

/// Make sure the bridge exists, is up and carries the gateway address.
pub async fn ensure_bridge(bridge: String, cidr: Cidr) -> Result<()> {
    let bridge_name = bridge.clone();
    on_thread(move |rt| {
        rt.block_on(async {
            let handle = connect()?;
            let index = match link_index(&handle, &bridge).await? {
                Some(i) => i,
                None => {
                    handle.link().add(LinkBridge::new(&bridge).build()).execute().await.map_err(nl("add bridge"))?;
                    link_index(&handle, &bridge).await?.ok_or_else(|| NetError::Netlink {
                        what: "add bridge".into(),
                        message: format!("{bridge} missing after creation"),
                    })?
                }
            };
            let gateway = IpAddr::V4(cidr.gateway());
            if !has_address(&handle, index, gateway).await? {
                handle.address().add(index, gateway, cidr.prefix).execute().await.map_err(nl("address bridge"))?;
            }
            // A bridge whose address was not set takes the lowest of its ports' addresses, so
            // removing a pod could change the gateway's MAC under the other pods' ARP caches
            // (their replies to the host would go nowhere for seconds). Setting it (to the one
            // it has) keeps it.
            if let Some(mac) = unpinned_mac(&bridge) {
                handle
                    .link()
                    .set(LinkUnspec::new_with_index(index).address(mac).build())
                    .execute()
                    .await
                    .map_err(nl("pin the bridge's MAC address"))?;
            }
            handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.map_err(nl("bridge up"))
        })
    })
    .await?;
    set_forwarding(&bridge_name, false)
}

/// The interface's MAC address if the kernel chose it (random, or a bridge's port's) rather
/// than it being set (`addr_assign_type` 3, `NET_ADDR_SET`).
fn unpinned_mac(interface: &str) -> Option<Vec<u8>> {
    let sys = Path::new("/sys/class/net").join(interface);
    let assigned = fs::read_to_string(sys.join("addr_assign_type")).ok()?;
    if assigned.trim() == "3" {
        return None;
    }
    let text = fs::read_to_string(sys.join("address")).ok()?;
    let mac: Vec<u8> = text.trim().split(':').filter_map(|b| u8::from_str_radix(b, 16).ok()).collect();
    (mac.len() == 6).then_some(mac)
}

/// What the kernel may do with packets pods send to addresses that are not on their bridge
/// and not this machine's (`guard_uplink`, `enable_masquerade`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uplink {
    /// Forwarding is on for the bridge and a drop rule in Ordinal's table for it keeps what
    /// pods send from being routed out of any other interface: the kernel routes only what
    /// comes back into the bridge (a pod reaching a Service whose endpoint is a pod, DNAT'd by
    /// the service proxy).
    Guarded,
    /// Forwarding is off for the bridge: the kernel routes nothing pods send (`nft` is missing
    /// or refused the rule); the service proxy then serves pods in userspace.
    Closed,
    /// `--masquerade`: pods reach addresses beyond this machine behind its address.
    Masqueraded,
}

impl Uplink {
    /// Whether the kernel routes pods' packets at all (into the bridge at least), which the
    /// service proxy's DNAT to pods needs.
    pub fn routes_pod_traffic(self) -> bool {
        self != Uplink::Closed
    }
}

/// Pod traffic must never leave through the machine's uplink. The kernel routes a packet on
/// only if forwarding is on for the interface it arrived on, so forwarding is switched off on
/// the bridge first; then Ordinal's table for the bridge (`ordinal_<bridge>`) is made with one
/// rule, in the forward hook: what comes in on the bridge and would go out of another
/// interface is dropped (and counted); only then is forwarding switched on again, for the
/// service proxy's DNAT from pod to pod through the bridge. The machine-wide `ip_forward` is
/// left as it is. Pod-to-pod traffic is bridged and host-to-pod is local: neither is routed.
/// Without `nft`, or if it refuses the rule, forwarding stays off (`Uplink::Closed`).
pub fn guard_uplink(bridge: &str) -> Result<Uplink> {
    set_forwarding(bridge, false)?;
    if !logic::proxy::nft::valid_interface_name(bridge) {
        tracing::warn!(bridge, "bridge name not usable in an nftables rule: forwarding stays off");
        return Ok(Uplink::Closed);
    }
    let table = uplink_table(bridge);
    let script = format!(
        "add table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n\tchain forward {{\n\t\ttype filter hook forward priority filter; policy accept;\n\t\t{}\n\t}}\n}}\n",
        guard_rule(bridge)
    );
    match nft(&script) {
        Ok(()) => {
            set_forwarding(bridge, true)?;
            Ok(Uplink::Guarded)
        }
        Err(e) => {
            tracing::warn!(bridge, error = %e, "no uplink guard (nftables): forwarding stays off on the bridge, pods reach Services through the userspace proxy");
            delete_table(&table);
            Ok(Uplink::Closed)
        }
    }
}

/// The guard's rule (before nft adds its counter's figures).
fn guard_rule(bridge: &str) -> String {
    format!("iifname \"{bridge}\" oifname != \"{bridge}\" counter drop")
}

fn set_forwarding(bridge: &str, on: bool) -> Result<()> {
    let path = format!("/proc/sys/net/ipv4/conf/{bridge}/forwarding");
    fs::write(&path, if on { "1" } else { "0" }).map_err(io(format!("write {path}")))
}

fn forwarding(bridge: &str) -> Option<bool> {
    let value = fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{bridge}/forwarding")).ok()?;
    Some(value.trim() != "0")
}

/// Ordinal's table for what the bridge's routed traffic may do: the guard, or the masquerade.
pub fn uplink_table(bridge: &str) -> String {
    format!("ordinal_{}", bridge.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
}

/// Run one `nft -f -` batch (one transaction).
fn nft(script: &str) -> Result<()> {
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(io("run nft (apt-get install nftables)"))?;
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, script.as_bytes()).map_err(io("write to nft"))?;
    }
    let out = child.wait_with_output().map_err(io("run nft"))?;
    if !out.status.success() {
        return Err(NetError::Netlink {
            what: "nft".into(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

fn delete_table(table: &str) {
    let _ = std::process::Command::new("nft")
        .args(["delete", "table", "ip", table])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Outbound NAT (`--masquerade`): pods reach addresses beyond this machine, their traffic
/// masqueraded behind the outgoing interface's address by Ordinal's table for the bridge
/// (through Debian's `nft`; it replaces the guard in one transaction). This needs forwarding
/// on the bridge and in the kernel; the kernel-wide setting found before is kept in
/// `ip_forward.before` and restored by `restore_ip_forward`.
pub fn enable_masquerade(bridge: &str, cidr: Cidr, state_dir: &Path) -> Result<Uplink> {
    let before = state_dir.join("ip_forward.before");
    if !before.exists() {
        let current = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_else(|_| "0".into());
        fs::write(&before, current.trim()).map_err(io("record ip_forward"))?;
    }
    let table = uplink_table(bridge);
    let network = Cidr { addr: Ipv4Addr::from(cidr.base()), prefix: cidr.prefix };
    let script = format!(
        "add table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    ip saddr {network} ip daddr != {network} masquerade\n  }}\n}}\n"
    );
    nft(&script).map_err(|e| match e {
        NetError::Netlink { message, .. } => NetError::Netlink { what: "install the masquerade rule".into(), message },
        other => other,
    })?;
    fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(io("enable ip_forward"))?;
    set_forwarding(bridge, true)?;
    Ok(Uplink::Masqueraded)
}

/// Put the kernel-wide forwarding back as `enable_masquerade` found it (if it changed it).
/// Writing `ip_forward` sets every interface's forwarding, so this comes before the guard.
pub fn restore_ip_forward(state_dir: &Path) {
    let before = state_dir.join("ip_forward.before");
    if let Ok(value) = fs::read_to_string(&before) {
        let _ = fs::write("/proc/sys/net/ipv4/ip_forward", value.trim());
        let _ = fs::remove_file(before);
    }
}

/// Remove what `guard_uplink` or `enable_masquerade` made: forwarding off on the bridge (if it
/// is still there), then Ordinal's table for it, then the kernel-wide forwarding as it was.
pub fn remove_uplink_rules(bridge: &str, state_dir: &Path) {
    let _ = set_forwarding(bridge, false);
    delete_table(&uplink_table(bridge));
    restore_ip_forward(state_dir);
}

/// Whether the bridge's traffic is kept on this machine: forwarding is off on the bridge, or
/// it is on and the guard's drop rule is in Ordinal's table for it.
pub fn uplink_guarded(bridge: &str) -> bool {
    match forwarding(bridge) {
        Some(false) => true,
        Some(true) => guard_drops(bridge).is_some(),
        None => false,
    }
}

/// Packets the guard has dropped (pods' packets the kernel would have routed out of another
/// interface); `None` when the guard is not in place.
pub fn guard_drops(bridge: &str) -> Option<u64> {
    let out = std::process::Command::new("nft")
        .args(["list", "chain", "ip", &uplink_table(bridge), "forward"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (head, tail) = guard_rule(bridge).split_once("counter").map(|(h, t)| (h.to_string(), t.to_string()))?;
    let line = text.lines().map(str::trim).find(|l| l.starts_with(head.trim_end()) && l.ends_with(tail.trim()))?;
    line.split_whitespace().skip_while(|w| *w != "packets").nth(1)?.parse().ok()
}

/// Remove the bridge (when the server stops its pods and leaves nothing behind).
pub async fn remove_bridge(bridge: String) -> Result<()> {
    on_thread(move |rt| {
        rt.block_on(async {
            let handle = connect()?;
            if let Some(index) = link_index(&handle, &bridge).await? {
                handle.link().del(index).execute().await.map_err(nl("delete bridge"))?;
            }
            Ok(())
        })
    })
    .await
}

/// Make the pod's sandbox, or finish one an interrupted start (a killed server) left: the kept
/// namespaces, then each piece of wiring (the veth pair, its host end on the bridge, the pod's
/// address, links up, the default route) made only where it is missing, so calling it again on
/// a complete sandbox changes nothing.
pub async fn create_sandbox(net: PodNet) -> Result<()> {
    on_thread(move |rt| {
        fs::create_dir_all(&net.ns_dir).map_err(io("create namespace dir"))?;
        let host_ns = fs::File::open("/proc/thread-self/ns/net").map_err(io("open host netns"))?;
        let host = rt.block_on(async { connect() })?;
        if SHARED_NAMESPACES.iter().all(|k| is_ns_mount(&net.ns_dir.join(k))) {
            let netns = fs::File::open(net.ns_dir.join("net")).map_err(io("open the pod's netns"))?;
            nix::sched::setns(&netns, CloneFlags::CLONE_NEWNET).map_err(sys("enter the pod's netns"))?;
        } else {
            // None kept yet, or some (a start killed between the mounts): begin afresh.
            release_namespaces(&net.ns_dir)?;
            unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC)
                .map_err(sys("unshare net+uts+ipc"))?;
            nix::unistd::sethostname(&net.hostname).map_err(sys("sethostname"))?;
            for kind in SHARED_NAMESPACES {
                let target = net.ns_dir.join(kind);
                fs::File::create(&target).map_err(io(format!("create {}", target.display())))?;
                let source = format!("/proc/thread-self/ns/{kind}");
                mount(Some(source.as_str()), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                    .map_err(sys(format!("keep {kind} namespace")))?;
            }
        }
        rt.block_on(async {
            let pod = connect()?;
            if link_index(&pod, "eth0").await?.is_none() {
                pod.link()
                    .add(LinkVeth::new("eth0", &net.host_veth).build())
                    .execute()
                    .await
                    .map_err(nl("add veth"))?;
            }
            // The host end, where a start was interrupted before moving it out.
            if link_index(&pod, &net.host_veth).await?.is_some() {
                pod.link()
                    .set(LinkUnspec::new_with_name(&net.host_veth).setns_by_fd(host_ns.as_raw_fd()).build())
                    .execute()
                    .await
                    .map_err(nl("move veth to the host"))?;
            }
            for name in ["lo", "eth0"] {
                let index = link_index(&pod, name)
                    .await?
                    .ok_or_else(|| NetError::Netlink { what: "pod link".into(), message: format!("{name} missing") })?;
                if name == "eth0" && !has_address(&pod, index, IpAddr::V4(net.ip)).await? {
                    pod.address()
                        .add(index, IpAddr::V4(net.ip), net.cidr.prefix)
                        .execute()
                        .await
                        .map_err(nl("address eth0"))?;
                }
                pod.link()
                    .set(LinkUnspec::new_with_index(index).up().build())
                    .execute()
                    .await
                    .map_err(nl("link up"))?;
            }
            let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(net.cidr.gateway()).build();
            match pod.route().add(route).execute().await {
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => {}
                other => other.map_err(nl("default route"))?,
            }

            let bridge = link_index(&host, &net.bridge).await?.ok_or_else(|| NetError::Netlink {
                what: "attach veth".into(),
                message: format!("bridge {} missing", net.bridge),
            })?;
            let veth = link_index(&host, &net.host_veth).await?.ok_or_else(|| NetError::Netlink {
                what: "attach veth".into(),
                message: format!("{} missing on the host", net.host_veth),
            })?;
            host.link()
                .set(LinkUnspec::new_with_index(veth).controller(bridge).up().build())
                .execute()
                .await
                .map_err(nl("attach veth to the bridge"))?;
            // Hairpin: the bridge may send a frame back out of the port it came in by. A pod
            // reaching itself through a Service needs it where `br_netfilter` is loaded (the
            // DNAT'd packet is then bridged back to the pod instead of routed).
            host.link()
                .set_port(LinkBridgePort::new(veth).hairpin(true).build())
                .execute()
                .await
                .map_err(nl("hairpin on the pod's bridge port"))
        })
    })
    .await
}

/// Does link `index` carry `ip`?
async fn has_address(handle: &Handle, index: u32, ip: IpAddr) -> Result<bool> {
    use rtnetlink::packet_route::address::AddressAttribute;
    let addresses: Vec<_> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(nl("list addresses"))?;
    Ok(addresses
        .iter()
        .any(|a| a.attributes.iter().any(|attr| matches!(attr, AddressAttribute::Address(a) if *a == ip))))
}

/// Is `path` a kept namespace (a mount of an nsfs file)?
pub fn is_ns_mount(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Delete the pod's veth (its peer goes with it) and drop the namespace files; the namespaces
/// end when nothing else holds them.
pub async fn remove_sandbox(ns_dir: PathBuf, host_veth: String) -> Result<()> {
    on_thread(move |rt| {
        rt.block_on(async {
            let host = connect()?;
            if let Some(index) = link_index(&host, &host_veth).await? {
                match host.link().del(index).execute().await {
                    Ok(()) => {}
                    Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {}
                    Err(e) => return Err(nl("delete veth")(e)),
                }
            }
            Ok(())
        })?;
        release_namespaces(&ns_dir)
    })
    .await
}

/// Unmount and delete the namespace files in `ns_dir` (synchronous; also used by cleanup).
pub fn release_namespaces(ns_dir: &Path) -> Result<()> {
    for kind in SHARED_NAMESPACES {
        let path = ns_dir.join(kind);
        if is_ns_mount(&path) {
            umount2(&path, MntFlags::MNT_DETACH).map_err(sys(format!("unmount {}", path.display())))?;
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NetError::Io { what: format!("remove {}", path.display()), source: e }),
        }
    }
    Ok(())
}

/// The host-side veth name of a pod: stable, unique per pod uid, within IFNAMSIZ.
pub fn host_veth_name(pod_uid: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(pod_uid.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("veth{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str, prefix: u8) -> Cidr {
        Cidr { addr: s.parse().expect("ip"), prefix }
    }

    #[test]
    fn gateway_and_membership() {
        let c = cidr("10.244.3.7", 16);
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 244, 0, 1));
        assert!(c.contains(Ipv4Addr::new(10, 244, 255, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 245, 0, 1)));
    }

    #[test]
    fn overlapping_networks() {
        let pods = cidr("10.244.0.0", 16);
        assert!(pods.overlaps(cidr("10.244.7.1", 24)), "inside");
        assert!(pods.overlaps(cidr("10.0.0.1", 8)), "around");
        assert!(!pods.overlaps(cidr("10.245.0.1", 16)));
        assert!(!pods.overlaps(cidr("127.0.0.1", 8)));
    }

    #[test]
    fn leases_are_unique_sticky_not_reused_early_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ipam.json");
        let ipam = Ipam::open(&path, cidr("10.9.0.0", 29)).expect("open");
        // A /29 has 8 addresses: network, gateway and broadcast are never handed out.
        let a = ipam.allocate("a").expect("a");
        assert_eq!(a, Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(ipam.allocate("a").expect("again"), a, "an owner keeps its address");
        let b = ipam.allocate("b").expect("b");
        assert_ne!(a, b);
        ipam.release("a").expect("release");
        let c = ipam.allocate("c").expect("c");
        assert_ne!(c, a, "a freed address is not handed out while fresh ones remain");
        drop(ipam);
        let reopened = Ipam::open(&path, cidr("10.9.0.0", 29)).expect("reopen");
        assert_eq!(reopened.allocate("b").expect("b"), b, "leases survive a restart");
        let mut seen = vec![b, c];
        for owner in ["d", "e", "f"] {
            let ip = reopened.allocate(owner).expect(owner);
            assert!(!seen.contains(&ip), "{ip} handed out twice");
            seen.push(ip);
        }
        assert!(matches!(reopened.allocate("g"), Err(NetError::Exhausted(_))));
        assert!(!seen.contains(&Ipv4Addr::new(10, 9, 0, 7)), "broadcast never handed out");
    }

    #[test]
    fn veth_names_fit_ifnamsiz() {
        let name = host_veth_name("0b6f0f9e-6a1c-4a83-9e41-2ad4b3a8c7f1");
        assert!(name.len() <= 15);
        assert_ne!(name, host_veth_name("another"));
    }
}
