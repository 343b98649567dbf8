//! `ordinal bench proxy` (root): a Service's traffic through the kernel's rules (nftables DNAT,
//! installed by the service proxy's own code: `logic::proxy::split`, `logic::proxy::nft`,
//! `proxy::kernel`) and through the userspace proxy, next to direct connections, in the same
//! run, to two backends in a network namespace of the bench's own behind a veth pair (what a
//! pod is, without a container): latency of a fresh connection with one request and reply,
//! connections per second, and one bulk transfer; then the time to program an endpoint change.
//!
//! Traffic goes only to addresses inside that namespace (198.18.0.0/15, the range set aside for
//! network benchmarks) and to loopback; the virtual IP (in 198.19.x.0/24) is made local by the
//! proxy's own route, so it is never routed out. The namespace, the veth, the route and the
//! table are removed at the end, on an error and on Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use logic::proxy::{Frontend, KernelNode, Protocol, Route, Table};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{percentile, round};

/// Knobs for one run.
pub struct ProxyBench {
    pub samples: usize,
    pub concurrency: usize,
    pub seconds: u64,
    pub megabytes: usize,
    /// Endpoint changes timed for `rule_programming_ms`.
    pub changes: usize,
    /// Other Services in the table while the changes are programmed.
    pub services: usize,
}

/// The bench's network: a namespace with the backends' address, the host's end of the veth,
/// the virtual IPs' network. Everything it made goes when it is dropped.
struct Lab {
    netns: String,
    veth: String,
    host: Ipv4Addr,
    backend: Ipv4Addr,
    services: (Ipv4Addr, u8),
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).stdout(Stdio::null()).output().context("run ip")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl Lab {
    fn create() -> anyhow::Result<Lab> {
        let id = std::process::id();
        let n = (id % 200 + 20) as u8;
        let lab = Lab {
            netns: format!("ordbp{id}"),
            veth: format!("ordbp{id}h"),
            host: Ipv4Addr::new(198, 18, n, 1),
            backend: Ipv4Addr::new(198, 18, n, 2),
            services: (Ipv4Addr::new(198, 19, n, 0), 24),
        };
        // From here on, dropping `lab` removes whatever was made.
        ip(&["netns", "add", &lab.netns])?;
        ip(&["link", "add", &lab.veth, "type", "veth", "peer", "name", "eth0", "netns", &lab.netns])?;
        ip(&["addr", "add", &format!("{}/24", lab.host), "dev", &lab.veth])?;
        ip(&["link", "set", &lab.veth, "up"])?;
        ip(&["-n", &lab.netns, "addr", "add", &format!("{}/24", lab.backend), "dev", "eth0"])?;
        ip(&["-n", &lab.netns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &lab.netns, "link", "set", "lo", "up"])?;
        // Replies to a virtual IP (the host's source address for it) go back through the host.
        ip(&["-n", &lab.netns, "route", "add", "default", "via", &lab.host.to_string()])?;
        Ok(lab)
    }

    fn node(&self) -> KernelNode {
        KernelNode {
            bridge: self.veth.clone(),
            bridge_address: self.host,
            pod_network: (Ipv4Addr::from(u32::from(self.host) & !0xff), 24),
            service_network: self.services,
        }
    }

    /// Listening sockets made inside the namespace (a socket stays in the namespace it was
    /// made in, whichever thread then uses it).
    fn listen(&self, ports: &[u16]) -> anyhow::Result<Vec<std::net::TcpListener>> {
        let (netns, addr, ports) = (format!("/run/netns/{}", self.netns), self.backend, ports.to_vec());
        std::thread::spawn(move || -> anyhow::Result<Vec<std::net::TcpListener>> {
            let ns = std::fs::File::open(&netns).with_context(|| format!("open {netns}"))?;
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).context("enter the bench namespace")?;
            ports
                .iter()
                .map(|p| {
                    let l = std::net::TcpListener::bind((addr, *p))?;
                    l.set_nonblocking(true)?;
                    Ok(l)
                })
                .collect()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let quiet = |program: &str, args: &[&str]| {
            let _ = Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
        };
        let cidr = format!("{}/{}", self.services.0, self.services.1);
        quiet("ip", &["route", "del", "local", &cidr, "dev", "lo", "table", "local"]);
        quiet("nft", &["delete", "table", "ip", &logic::proxy::nft::table_name(&self.veth)]);
        quiet("ip", &["netns", "del", &self.netns]);
        quiet("ip", &["link", "del", &self.veth]);
    }
}

/// A backend: each connection's first four bytes are a request; `BULK` gets `bulk` bytes, any
/// other a four-byte reply (`name`); then the backend closes (so the clients' side of each
/// connection ends without TIME_WAIT, and thousands per second do not run out of ports).
fn serve(listener: std::net::TcpListener, bulk: usize, name: &'static [u8; 4]) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = [0u8; 4];
                if s.read_exact(&mut req).await.is_err() {
                    return;
                }
                if &req == b"BULK" {
                    let chunk = vec![0u8; 1 << 16];
                    let mut left = bulk;
                    while left > 0 {
                        let n = left.min(chunk.len());
                        if s.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                        left -= n;
                    }
                } else {
                    let _ = s.write_all(name).await;
                }
            });
        }
    });
    Ok(())
}

/// One fresh connection, one request, its reply (which backend answered), the backend's close.
async fn ping_once(addr: SocketAddr) -> anyhow::Result<[u8; 4]> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(b"ping").await?;
    let mut reply = [0u8; 4];
    s.read_exact(&mut reply).await?;
    let mut rest = [0u8; 1];
    let _ = s.read(&mut rest).await?;
    Ok(reply)
}

fn emit(line: serde_json::Value) {
    println!("{line}");
}

impl ProxyBench {
    pub async fn run(&self) -> anyhow::Result<()> {
        if !nix::unistd::geteuid().is_root() {
            bail!("bench proxy needs root: it makes a network namespace, a veth pair and nftables rules");
        }
        let lab = Lab::create()?;
        tokio::select! {
            result = self.run_in(&lab) => result,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        }
        // `lab` is dropped here, whatever happened: the namespace, veth, route and table go.
    }

    async fn run_in(&self, lab: &Lab) -> anyhow::Result<()> {
        let bulk = self.megabytes << 20;
        let listeners = lab.listen(&[8080, 8081])?;
        let backends: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr()).collect::<Result<_, _>>()?;
        for (l, name) in listeners.into_iter().zip([b"pod0", b"pod1"]) {
            serve(l, bulk, name)?;
        }
        let route = Route { service: "bench/web:http".into(), backends: backends.clone(), affinity: None };

        // The kernel's path: the proxy's route for the virtual IPs, its split and its rules.
        proxy::local_route(lab.services, true).await.context("the virtual IPs' route")?;
        let vip = SocketAddr::from((Ipv4Addr::from(u32::from(lab.services.0) + 10), 80));
        let node = lab.node();
        let table = Table::from([(Frontend { addr: vip, protocol: Protocol::Tcp }, route.clone())]);
        let (in_kernel, _) = logic::proxy::split(table, Some(&node));
        anyhow::ensure!(in_kernel.len() == 1, "the virtual IP is not the kernel's");
        let mut kernel = proxy::kernel::Kernel::new(node).context("veth name")?;
        kernel.apply(&in_kernel).await?;

        // The userspace path: the proxy on loopback, to the same backends.
        let frontend_addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let frontend = Frontend { addr: frontend_addr, protocol: Protocol::Tcp };
        let mut userspace = proxy::Proxy::new(tokio_util::sync::CancellationToken::new());
        userspace.apply(Table::from([(frontend, route.clone())])).await;

        for (via, addr) in [("direct", backends[0]), ("nftables", vip), ("userspace", frontend_addr)] {
            self.measure(via, addr, bulk).await.with_context(|| format!("via {via}"))?;
        }
        userspace.stop().await;
        self.programming(&mut kernel, lab, vip, &backends).await?;
        kernel.remove().await?;
        proxy::local_route(lab.services, false).await?;
        Ok(())
    }

    async fn measure(&self, via: &str, addr: SocketAddr, bulk: usize) -> anyhow::Result<()> {
        let mut samples = Vec::with_capacity(self.samples);
        for _ in 0..self.samples {
            let t = Instant::now();
            ping_once(addr).await?;
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        emit(json!({"bench": "proxy", "metric": "connect_request_reply", "via": via, "unit": "ms", "n": samples.len(),
                    "p50": round(percentile(&samples, 0.5)), "p99": round(percentile(&samples, 0.99))}));
        let deadline = Instant::now() + Duration::from_secs(self.seconds);
        let clients: Vec<_> = (0..self.concurrency)
            .map(|_| {
                tokio::spawn(async move {
                    let (mut done, mut failed) = (0u64, 0u64);
                    while Instant::now() < deadline {
                        match ping_once(addr).await {
                            Ok(_) => done += 1,
                            Err(_) => failed += 1,
                        }
                    }
                    (done, failed)
                })
            })
            .collect();
        let (mut total, mut failed) = (0, 0);
        for c in clients {
            let (d, f) = c.await?;
            total += d;
            failed += f;
        }
        emit(json!({"bench": "proxy", "metric": "connections_per_second", "via": via, "unit": "1/s",
                    "concurrency": self.concurrency, "value": round(total as f64 / self.seconds as f64), "failed": failed}));
        let t = Instant::now();
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"BULK").await?;
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0;
        while got < bulk {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        anyhow::ensure!(got == bulk, "bulk transfer ended after {got} bytes");
        let secs = t.elapsed().as_secs_f64();
        emit(json!({"bench": "proxy", "metric": "bulk_throughput", "via": via, "unit": "MiB/s",
                    "megabytes": self.megabytes, "value": round(self.megabytes as f64 / secs)}));
        Ok(())
    }

    /// Program `changes` endpoint changes (the bench Service losing and regaining an endpoint)
    /// among `services` other Services, each timed from the new table to `nft`'s exit, and to
    /// the kernel's notice that the transaction committed (the rules are in effect then; `nft`
    /// exits later, once the kernel has freed what the transaction replaced).
    async fn programming(
        &self,
        kernel: &mut proxy::kernel::Kernel,
        lab: &Lab,
        vip: SocketAddr,
        backends: &[SocketAddr],
    ) -> anyhow::Result<()> {
        let mut table = Table::new();
        let other_vip = Ipv4Addr::from(u32::from(lab.services.0) + 20);
        for i in 0..self.services {
            let port = u16::try_from(1000 + i).context("too many services")?;
            let route = Route { service: format!("bench/other-{i}:http"), backends: backends.to_vec(), affinity: None };
            table.insert(Frontend { addr: SocketAddr::from((other_vip, port)), protocol: Protocol::Tcp }, route);
        }
        let bench = Frontend { addr: vip, protocol: Protocol::Tcp };
        let all = Route { service: "bench/web:http".into(), backends: backends.to_vec(), affinity: None };
        table.insert(bench, all.clone());
        let (mut table, userspace) = logic::proxy::split(table, Some(kernel.node()));
        anyhow::ensure!(userspace.is_empty(), "the bench's Services are all the kernel's");
        kernel.apply(&table).await?;
        let commits = CommitWatch::start();
        let (mut to_exit, mut in_effect) = (Vec::new(), Vec::new());
        for i in 0..self.changes {
            let backends = if i.is_multiple_of(2) { vec![backends[0]] } else { backends.to_vec() };
            table.insert(bench, Route { backends, ..all.clone() });
            let t = Instant::now();
            let programmed = kernel.apply(&table).await?;
            to_exit.push(t.elapsed().as_secs_f64() * 1000.0);
            if let (Some(commits), Some(pid)) = (&commits, programmed.nft_pid)
                && let Some(at) = commits.committed_by(pid, Duration::from_secs(1))
            {
                in_effect.push(at.saturating_duration_since(t).as_secs_f64() * 1000.0);
            }
        }
        // Traffic follows the last change: one endpoint left, or both back.
        if self.changes > 0 {
            let mut answered = std::collections::BTreeSet::new();
            for _ in 0..40 {
                answered.insert(ping_once(vip).await?);
            }
            let wanted = if (self.changes - 1).is_multiple_of(2) { 1 } else { 2 };
            anyhow::ensure!(answered.len() == wanted, "traffic did not follow the last change: {answered:?}");
        }
        for (metric, mut samples) in [("rule_programming_ms", to_exit), ("rules_in_effect_ms", in_effect)] {
            samples.sort_by(|a, b| a.total_cmp(b));
            emit(json!({"bench": "proxy", "metric": metric, "via": "nftables", "unit": "ms", "n": samples.len(),
                        "services": self.services + 1, "p50": round(percentile(&samples, 0.5)),
                        "p99": round(percentile(&samples, 0.99)), "max": round(samples.last().copied().unwrap_or(0.0))}));
        }
        Ok(())
    }
}

/// The kernel's notices of committed nftables transactions (`NFT_MSG_NEWGEN` on the
/// `NFNLGRP_NFTABLES` group), each with the committing process's pid, timed on arrival.
struct CommitWatch {
    seen: std::sync::mpsc::Receiver<(u32, Instant)>,
}

impl CommitWatch {
    /// `None` (and the figure left out) when the socket cannot be had.
    fn start() -> Option<CommitWatch> {
        use netlink_sys::{Socket, SocketAddr as NlAddr, protocols::NETLINK_NETFILTER};
        const NFNLGRP_NFTABLES: u32 = 7;
        let mut socket = Socket::new(NETLINK_NETFILTER).ok()?;
        socket.bind(&NlAddr::new(0, 0)).ok()?;
        socket.add_membership(NFNLGRP_NFTABLES).ok()?;
        let _ = socket.set_no_enobufs(true);
        let (tx, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            while let Ok((bytes, _)) = socket.recv_from_full() {
                let at = Instant::now();
                for pid in newgen_pids(&bytes) {
                    if tx.send((pid, at)).is_err() {
                        return;
                    }
                }
            }
        });
        Some(CommitWatch { seen })
    }

    /// When the transaction of process `pid` was committed (waiting up to `limit` for word).
    fn committed_by(&self, pid: u32, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            let (from, at) = self.seen.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()?;
            if from == pid {
                return Some(at);
            }
        }
    }
}

/// The committing pids of the `NFT_MSG_NEWGEN` messages in a netlink datagram.
fn newgen_pids(mut bytes: &[u8]) -> Vec<u32> {
    const NEWGEN: u16 = (10 << 8) | 15; // NFNL_SUBSYS_NFTABLES, NFT_MSG_NEWGEN
    const NFTA_GEN_PROC_PID: u16 = 2;
    let mut pids = Vec::new();
    while bytes.len() >= 16 {
        let len = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let kind = u16::from_ne_bytes([bytes[4], bytes[5]]);
        if len < 16 || len > bytes.len() {
            break;
        }
        if kind == NEWGEN {
            // nlmsghdr (16), nfgenmsg (4), then attributes.
            let mut attrs = bytes.get(20..len).unwrap_or_default();
            while attrs.len() >= 4 {
                let alen = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
                let atype = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
                if alen < 4 || alen > attrs.len() {
                    break;
                }
                if atype == NFTA_GEN_PROC_PID && alen >= 8 {
                    pids.push(u32::from_be_bytes([attrs[4], attrs[5], attrs[6], attrs[7]]));
                }
                attrs = attrs.get(alen.next_multiple_of(4)..).unwrap_or_default();
            }
        }
        bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    pids
}
