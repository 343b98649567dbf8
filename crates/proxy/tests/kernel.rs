//! The kernel's share against the real nftables (root): after every in-place update the table
//! holds exactly what a fresh replacement of the same table would, a table changed behind the
//! proxy's back or left by a killed server is replaced whole, and `remove` leaves nothing.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use logic::proxy::{Frontend, KernelNode, Protocol, Route, Table};
use proxy::kernel::Kernel;
use serde_json::Value;

/// Deletes the tables a test made, even when it fails.
struct Tables(Vec<String>);

impl Drop for Tables {
    fn drop(&mut self) {
        for table in &self.0 {
            let _ = Command::new("nft").args(["delete", "table", "ip", table]).output();
        }
    }
}

/// An interface name of this test's own (the rules only name it; it need not exist).
fn node(tag: &str) -> KernelNode {
    KernelNode {
        bridge: format!("ordpk{}{tag}", std::process::id() % 100_000),
        bridge_address: Ipv4Addr::new(10, 249, 1, 1),
        pod_network: (Ipv4Addr::new(10, 249, 1, 0), 24),
        service_network: (Ipv4Addr::new(10, 248, 1, 0), 24),
    }
}

fn frontend(addr: &str, protocol: Protocol) -> Frontend {
    Frontend { addr: addr.parse().expect("address"), protocol }
}

fn route(service: &str, endpoints: &[u8], affinity: Option<u64>) -> Route {
    Route {
        service: service.into(),
        backends: endpoints.iter().map(|e| SocketAddr::from((Ipv4Addr::new(10, 249, 1, *e), 8080))).collect(),
        affinity: affinity.map(Duration::from_secs),
    }
}

/// The table as `nft -j` lists it, made comparable: no handles, elements sorted, the bridge's
/// and table's names replaced.
fn listing(node: &KernelNode) -> Option<Value> {
    let table = logic::proxy::nft::table_name(&node.bridge);
    let out = Command::new("nft").args(["-j", "list", "table", "ip", &table]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).replace(&table, "TABLE").replace(&node.bridge, "BRIDGE");
    let mut doc: Value = serde_json::from_str(&text).ok()?;
    let items = doc.get_mut("nftables")?.as_array_mut()?;
    items.retain(|i| i.get("metainfo").is_none());
    for item in items.iter_mut() {
        if let Some(object) = item.as_object_mut().and_then(|o| o.values_mut().next()).and_then(Value::as_object_mut) {
            object.remove("handle");
            if let Some(Value::Array(elements)) = object.get_mut("elem") {
                elements.sort_by_key(|e| e.to_string());
            }
        }
    }
    // Objects by kind and name; rules keep their order within their chain.
    items.sort_by_key(|i| match i.get("rule") {
        Some(rule) => format!("rule {}", rule.get("chain").map(Value::to_string).unwrap_or_default()),
        None => i.to_string(),
    });
    Some(doc)
}

#[tokio::test]
async fn in_place_updates_leave_what_a_replacement_would() {
    assert!(nix_is_root(), "the kernel test needs root (nftables)");
    let (live, fresh) = (node("a"), node("b"));
    let _tables =
        Tables(vec![logic::proxy::nft::table_name(&live.bridge), logic::proxy::nft::table_name(&fresh.bridge)]);
    let web = |eps: &[u8]| route("default/web:http", eps, None);
    let dns = |eps: &[u8], t| route("kube-system/dns:dns", eps, Some(t));
    let steps: Vec<Table> = vec![
        Table::new(),
        Table::from([(frontend("10.248.1.7:80", Protocol::Tcp), web(&[2, 3]))]),
        Table::from([
            (frontend("10.248.1.7:80", Protocol::Tcp), web(&[2, 3, 4])),
            (frontend("10.249.1.1:30000", Protocol::Tcp), web(&[2, 3, 4])),
            (frontend("10.248.1.8:53", Protocol::Udp), dns(&[1], 60)),
        ]),
        // An endpoint leaves, another Service has none.
        Table::from([
            (frontend("10.248.1.7:80", Protocol::Tcp), web(&[3, 4])),
            (frontend("10.249.1.1:30000", Protocol::Tcp), web(&[3, 4])),
            (frontend("10.248.1.8:53", Protocol::Udp), dns(&[1], 60)),
            (frontend("10.248.1.9:80", Protocol::Tcp), route("default/empty:", &[], None)),
        ]),
        // An affinity timeout changes: not possible in place, replaced whole.
        Table::from([
            (frontend("10.248.1.7:80", Protocol::Tcp), web(&[3])),
            (frontend("10.248.1.8:53", Protocol::Udp), dns(&[1, 2], 30)),
        ]),
        Table::from([(frontend("10.248.1.8:53", Protocol::Udp), dns(&[2], 30))]),
        Table::new(),
    ];
    let mut kernel = Kernel::new(live.clone()).expect("usable name");
    let mut replaced = Vec::new();
    for (i, table) in steps.iter().enumerate() {
        let programmed = kernel.apply(table).await.expect("apply");
        replaced.push(programmed.replaced);
        let mut reference = Kernel::new(fresh.clone()).expect("usable name");
        reference.apply(table).await.expect("apply fresh");
        assert_eq!(listing(&live), listing(&fresh), "step {i}");
        assert!(listing(&live).is_some(), "step {i}: no table");
        assert!(!kernel.apply(table).await.expect("again").ran, "step {i}: nothing left to do");
    }
    assert_eq!(replaced, [true, false, false, false, true, false, false]);

    // Someone deletes the table: the next update cannot be made in place, so it is replaced.
    let table = logic::proxy::nft::table_name(&live.bridge);
    assert!(Command::new("nft").args(["delete", "table", "ip", &table]).status().expect("nft").success());
    let programmed = kernel.apply(&steps[2]).await.expect("apply after deletion");
    assert!(programmed.replaced && programmed.ran);
    let mut reference = Kernel::new(fresh.clone()).expect("usable name");
    reference.apply(&steps[2]).await.expect("apply fresh");
    assert_eq!(listing(&live), listing(&fresh));

    // A server killed with `kill -9` leaves its table (here: step 2's, never removed); the
    // next one knows nothing of it and replaces it whole, stale chains and all.
    drop(kernel);
    let mut next = Kernel::new(live.clone()).expect("usable name");
    let programmed = next.apply(&steps[5]).await.expect("apply after a kill");
    assert!(programmed.replaced);
    let mut reference = Kernel::new(fresh.clone()).expect("usable name");
    reference.apply(&steps[5]).await.expect("apply fresh");
    assert_eq!(listing(&live), listing(&fresh));

    next.remove().await.expect("remove");
    assert_eq!(listing(&live), None, "the table is gone");
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}
