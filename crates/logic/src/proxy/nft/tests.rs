use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn node() -> KernelNode {
    KernelNode {
        bridge: "ordit1".into(),
        bridge_address: Ipv4Addr::new(10, 252, 1, 1),
        pod_network: (Ipv4Addr::new(10, 252, 1, 0), 24),
        service_network: (Ipv4Addr::new(10, 253, 1, 0), 24),
    }
}

fn frontend(addr: &str, protocol: Protocol) -> Frontend {
    Frontend { addr: addr.parse().expect("address"), protocol }
}

fn route(service: &str, backends: &[&str], affinity: Option<u64>) -> Route {
    Route {
        service: service.into(),
        backends: backends.iter().map(|b| b.parse::<SocketAddr>().expect("backend")).collect(),
        affinity: affinity.map(Duration::from_secs),
    }
}

/// A Service port with two endpoints on its virtual IP and on the bridge's node port, a UDP one
/// with ClientIP affinity whose endpoint is the bridge address, and one without endpoints.
fn small_table() -> Table {
    let web = route("default/web:http", &["10.252.1.5:8080", "10.252.1.6:8080"], None);
    Table::from([
        (frontend("10.252.1.1:30000", Protocol::Tcp), web.clone()),
        (frontend("10.253.1.7:80", Protocol::Tcp), web),
        (frontend("10.253.1.8:53", Protocol::Udp), route("kube-system/dns:dns", &["10.252.1.1:53"], Some(60))),
        (frontend("10.253.1.9:80", Protocol::Tcp), route("default/empty:", &[], None)),
    ])
}

#[test]
fn the_replace_script_of_a_small_table() {
    let expected = "\
add table ip ordinal_svc_ordit1
delete table ip ordinal_svc_ordit1
table ip ordinal_svc_ordit1 {
\tmap no-endpoint-services {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = {
\t\t\t10.253.1.9 . tcp . 80 : goto reject-chain,
\t\t}
\t}
\tmap service-ips {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = {
\t\t\t10.253.1.7 . tcp . 80 : goto service-default/web/tcp/http,
\t\t\t10.253.1.8 . udp . 53 : goto service-kube-system/dns/udp/dns,
\t\t}
\t}
\tmap service-nodeports {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = {
\t\t\t10.252.1.1 . tcp . 30000 : goto service-default/web/tcp/http,
\t\t}
\t}
\tset affinity-kube-system/dns/udp/dns__10.252.1.1/53 {
\t\ttype ipv4_addr
\t\tflags dynamic,timeout
\t\ttimeout 60s
\t}
\tchain endpoint-default/web/tcp/http__10.252.1.5/8080 {
\t\tmeta l4proto tcp dnat to 10.252.1.5:8080
\t}
\tchain endpoint-default/web/tcp/http__10.252.1.6/8080 {
\t\tmeta l4proto tcp dnat to 10.252.1.6:8080
\t}
\tchain endpoint-kube-system/dns/udp/dns__10.252.1.1/53 {
\t\tupdate @affinity-kube-system/dns/udp/dns__10.252.1.1/53 { ip saddr }
\t\tmeta l4proto udp dnat to 10.252.1.1:53
\t}
\tchain filter-input {
\t\ttype filter hook input priority filter; policy accept;
\t\tct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services
\t}
\tchain filter-output {
\t\ttype filter hook output priority filter; policy accept;
\t\tct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services
\t}
\tchain nat-output {
\t\ttype nat hook output priority -100; policy accept;
\t\tjump services
\t}
\tchain nat-postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname \"ordit1\" ip saddr 10.252.1.0/24 ct status dnat masquerade
\t}
\tchain nat-prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tiifname \"ordit1\" jump services
\t}
\tchain reject-chain {
\t\treject
\t}
\tchain service-default/web/tcp/http {
\t\tnumgen random mod 2 vmap { 0 : goto endpoint-default/web/tcp/http__10.252.1.5/8080, 1 : goto endpoint-default/web/tcp/http__10.252.1.6/8080 }
\t}
\tchain service-kube-system/dns/udp/dns {
\t\tip saddr @affinity-kube-system/dns/udp/dns__10.252.1.1/53 goto endpoint-kube-system/dns/udp/dns__10.252.1.1/53
\t\tgoto endpoint-kube-system/dns/udp/dns__10.252.1.1/53
\t}
\tchain services {
\t\tip daddr . meta l4proto . th dport vmap @service-ips
\t\tip daddr . meta l4proto . th dport vmap @service-nodeports
\t}
}
";
    let script = ruleset(&small_table(), &node()).replace_script();
    pretty_assertions::assert_eq!(script, expected);
}

#[test]
fn an_unchanged_ruleset_needs_no_update() {
    let rs = ruleset(&small_table(), &node());
    assert_eq!(rs.update_script(&rs).as_deref(), Some(""));
}

#[test]
fn an_endpoint_leaving_changes_its_service_chain_and_drops_its_own_chain_only() {
    let before = ruleset(&small_table(), &node());
    let mut table = small_table();
    let web = route("default/web:http", &["10.252.1.5:8080"], None);
    table.insert(frontend("10.252.1.1:30000", Protocol::Tcp), web.clone());
    table.insert(frontend("10.253.1.7:80", Protocol::Tcp), web);
    let after = ruleset(&table, &node());
    let expected = "\
flush chain ip ordinal_svc_ordit1 endpoint-default/web/tcp/http__10.252.1.6/8080
flush chain ip ordinal_svc_ordit1 service-default/web/tcp/http
add rule ip ordinal_svc_ordit1 service-default/web/tcp/http goto endpoint-default/web/tcp/http__10.252.1.5/8080
delete chain ip ordinal_svc_ordit1 endpoint-default/web/tcp/http__10.252.1.6/8080
";
    pretty_assertions::assert_eq!(after.update_script(&before).as_deref(), Some(expected));
}

#[test]
fn a_service_added_and_one_removed_in_one_update() {
    let before = ruleset(&small_table(), &node());
    let mut table = small_table();
    table.remove(&frontend("10.253.1.8:53", Protocol::Udp));
    table.insert(
        frontend("10.253.1.10:443", Protocol::Tcp),
        route("default/api:", &["10.252.1.7:8443", "10.252.1.8:8443"], Some(10_800)),
    );
    let after = ruleset(&table, &node());
    let expected = "\
add set ip ordinal_svc_ordit1 affinity-default/api/tcp/__10.252.1.7/8443 { type ipv4_addr; flags dynamic,timeout; timeout 10800s; }
add set ip ordinal_svc_ordit1 affinity-default/api/tcp/__10.252.1.8/8443 { type ipv4_addr; flags dynamic,timeout; timeout 10800s; }
add chain ip ordinal_svc_ordit1 endpoint-default/api/tcp/__10.252.1.7/8443
add chain ip ordinal_svc_ordit1 endpoint-default/api/tcp/__10.252.1.8/8443
add chain ip ordinal_svc_ordit1 service-default/api/tcp/
delete element ip ordinal_svc_ordit1 service-ips { 10.253.1.8 . udp . 53 }
flush chain ip ordinal_svc_ordit1 endpoint-kube-system/dns/udp/dns__10.252.1.1/53
flush chain ip ordinal_svc_ordit1 service-kube-system/dns/udp/dns
add rule ip ordinal_svc_ordit1 endpoint-default/api/tcp/__10.252.1.7/8443 update @affinity-default/api/tcp/__10.252.1.7/8443 { ip saddr }
add rule ip ordinal_svc_ordit1 endpoint-default/api/tcp/__10.252.1.7/8443 meta l4proto tcp dnat to 10.252.1.7:8443
add rule ip ordinal_svc_ordit1 endpoint-default/api/tcp/__10.252.1.8/8443 update @affinity-default/api/tcp/__10.252.1.8/8443 { ip saddr }
add rule ip ordinal_svc_ordit1 endpoint-default/api/tcp/__10.252.1.8/8443 meta l4proto tcp dnat to 10.252.1.8:8443
add rule ip ordinal_svc_ordit1 service-default/api/tcp/ ip saddr @affinity-default/api/tcp/__10.252.1.7/8443 goto endpoint-default/api/tcp/__10.252.1.7/8443
add rule ip ordinal_svc_ordit1 service-default/api/tcp/ ip saddr @affinity-default/api/tcp/__10.252.1.8/8443 goto endpoint-default/api/tcp/__10.252.1.8/8443
add rule ip ordinal_svc_ordit1 service-default/api/tcp/ numgen random mod 2 vmap { 0 : goto endpoint-default/api/tcp/__10.252.1.7/8443, 1 : goto endpoint-default/api/tcp/__10.252.1.8/8443 }
add element ip ordinal_svc_ordit1 service-ips { 10.253.1.10 . tcp . 443 : goto service-default/api/tcp/ }
delete chain ip ordinal_svc_ordit1 endpoint-kube-system/dns/udp/dns__10.252.1.1/53
delete chain ip ordinal_svc_ordit1 service-kube-system/dns/udp/dns
delete set ip ordinal_svc_ordit1 affinity-kube-system/dns/udp/dns__10.252.1.1/53
";
    pretty_assertions::assert_eq!(after.update_script(&before).as_deref(), Some(expected));
}

#[test]
fn losing_every_endpoint_moves_the_frontends_to_the_reject_map() {
    let before = ruleset(&small_table(), &node());
    let mut table = small_table();
    table.insert(frontend("10.253.1.8:53", Protocol::Udp), route("kube-system/dns:dns", &[], Some(60)));
    let after = ruleset(&table, &node());
    let script = after.update_script(&before).unwrap_or_default();
    assert!(
        script.contains("delete element ip ordinal_svc_ordit1 service-ips { 10.253.1.8 . udp . 53 }\n"),
        "{script}"
    );
    assert!(
        script.contains(
            "add element ip ordinal_svc_ordit1 no-endpoint-services { 10.253.1.8 . udp . 53 : goto reject-chain }\n"
        ),
        "{script}"
    );
    assert!(script.ends_with("delete set ip ordinal_svc_ordit1 affinity-kube-system/dns/udp/dns__10.252.1.1/53\n"));
}

#[test]
fn what_cannot_change_in_place_is_replaced() {
    let before = ruleset(&small_table(), &node());
    // Another affinity timeout: the set would have to be made again.
    let mut table = small_table();
    table.insert(frontend("10.253.1.8:53", Protocol::Udp), route("kube-system/dns:dns", &["10.252.1.1:53"], Some(30)));
    assert_eq!(ruleset(&table, &node()).update_script(&before), None);
    // Another pod network: a base chain changes.
    let mut other = node();
    other.pod_network = (Ipv4Addr::new(10, 252, 0, 0), 16);
    assert_eq!(ruleset(&small_table(), &other).update_script(&before), None);
    // Another bridge: another table.
    other = node();
    other.bridge = "ordit2".into();
    assert_eq!(ruleset(&small_table(), &other).update_script(&before), None);
}

#[test]
fn names_are_table_safe_and_two_routes_under_one_label_get_their_own_chains() {
    assert_eq!(table_name("ordit1"), "ordinal_svc_ordit1");
    assert_eq!(table_name("br-pods.1"), "ordinal_svc_br_pods_1");
    assert!(valid_interface_name("ordit1") && valid_interface_name("br-pods.1_x"));
    for bad in ["", "a\"b", "a b", "sixteen-chars-xx", "a;b"] {
        assert!(!valid_interface_name(bad), "{bad:?}");
    }
    let long = format!("default/{}:http", "x".repeat(240));
    let table = Table::from([
        (frontend("10.253.1.7:80", Protocol::Tcp), route("odd ns/we\"b:http", &["10.252.1.5:80"], None)),
        (frontend("10.253.1.8:80", Protocol::Tcp), route("odd ns/we\"b:http", &["10.252.1.6:80"], None)),
        (frontend("10.253.1.9:80", Protocol::Tcp), route(&long, &["10.252.1.6:80"], None)),
    ]);
    let rs = ruleset(&table, &node());
    let services: Vec<&String> = rs.chains.keys().filter(|n| n.starts_with("service-")).collect();
    assert_eq!(services.len(), 3, "{services:?}");
    assert!(services.contains(&&"service-odd_ns/we_b/tcp/http".to_string()), "{services:?}");
    assert!(services.contains(&&"service-odd_ns/we_b/tcp/http.2".to_string()), "{services:?}");
    for name in rs.chains.keys().chain(rs.sets.keys()) {
        assert!(name.len() < 256, "{name}");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c)), "{name}");
    }
}

/// Applies the lines `update_script` writes to a ruleset, as the kernel would: refusing to
/// delete what is still referred to, to refer to what does not exist, or to add what exists.
fn apply(rs: &mut Ruleset, script: &str) -> Result<(), String> {
    fn refs(rule: &str) -> (Vec<String>, Vec<String>) {
        let words: Vec<&str> = rule.split_whitespace().collect();
        let chains = words
            .windows(2)
            .filter(|w| w[0] == "goto" || w[0] == "jump")
            .map(|w| w[1].trim_end_matches([',', '}']).to_string())
            .collect();
        let sets = words.iter().filter_map(|w| w.strip_prefix('@')).map(str::to_string).collect();
        (chains, sets)
    }
    let referred = |rs: &Ruleset| -> (Vec<String>, Vec<String>) {
        let (mut chains, mut sets) = (Vec::new(), Vec::new());
        for rule in rs.chains.values().flat_map(|c| &c.rules) {
            let (c, s) = refs(rule);
            chains.extend(c);
            sets.extend(s);
        }
        for verdict in rs.maps.values().flat_map(|m| m.values()) {
            chains.extend(refs(verdict).0);
        }
        (chains, sets)
    };
    let parse_key = |k: &str| -> Result<Frontend, String> {
        let parts: Vec<&str> = k.split(" . ").map(str::trim).collect();
        let [ip, proto, port] = parts.as_slice() else { return Err(format!("key {k}")) };
        let protocol = if *proto == "tcp" { Protocol::Tcp } else { Protocol::Udp };
        let addr = format!("{ip}:{port}").parse().map_err(|_| format!("key {k}"))?;
        Ok(Frontend { addr, protocol })
    };
    for line in script.lines() {
        let table = format!(" ip {} ", rs.table);
        let (verb, rest) = line.split_once(&table).ok_or(format!("other table: {line}"))?;
        let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let name = name.to_string();
        match verb {
            "add set" => {
                let timeout = tail.split("timeout ").nth(1).and_then(|t| t.split('s').next()?.parse().ok());
                if rs.sets.insert(name.clone(), timeout.ok_or(line)?).is_some() {
                    return Err(format!("set {name} exists"));
                }
            }
            "add chain" => {
                if rs.chains.insert(name.clone(), Chain { hook: None, rules: Vec::new() }).is_some() {
                    return Err(format!("chain {name} exists"));
                }
            }
            "add rule" => {
                let (chains, sets) = refs(tail);
                if let Some(missing) = chains.iter().find(|c| !rs.chains.contains_key(*c)) {
                    return Err(format!("rule refers to missing chain {missing}"));
                }
                if let Some(missing) = sets.iter().find(|s| !rs.sets.contains_key(*s) && !rs.maps.contains_key(*s)) {
                    return Err(format!("rule refers to missing set {missing}"));
                }
                rs.chains.get_mut(&name).ok_or(format!("no chain {name}"))?.rules.push(tail.to_string());
            }
            "flush chain" => rs.chains.get_mut(&name).ok_or(format!("no chain {name}"))?.rules.clear(),
            "delete chain" => {
                if referred(rs).0.contains(&name) {
                    return Err(format!("chain {name} still referred to"));
                }
                let chain = rs.chains.remove(&name).ok_or(format!("no chain {name}"))?;
                if !chain.rules.is_empty() {
                    return Err(format!("chain {name} not empty"));
                }
            }
            "delete set" => {
                if referred(rs).1.contains(&name) {
                    return Err(format!("set {name} still referred to"));
                }
                rs.sets.remove(&name).ok_or(format!("no set {name}"))?;
            }
            "add element" | "delete element" => {
                let inner = tail.trim().trim_start_matches('{').trim_end_matches('}');
                let elements = rs.maps.get(&name).cloned().ok_or(format!("no map {name}"))?;
                let mut elements = elements;
                for item in inner.split(", ") {
                    if verb == "add element" {
                        let (k, v) = item.split_once(" : ").ok_or(line)?;
                        let target = v.trim().trim_start_matches("goto ").to_string();
                        if !rs.chains.contains_key(&target) {
                            return Err(format!("element refers to missing chain {target}"));
                        }
                        if elements.insert(parse_key(k)?, v.trim().to_string()).is_some() {
                            return Err(format!("element {k} exists"));
                        }
                    } else if elements.remove(&parse_key(item)?).is_none() {
                        return Err(format!("no element {item}"));
                    }
                }
                rs.maps.insert(name, elements);
            }
            other => return Err(format!("unexpected command {other}")),
        }
    }
    Ok(())
}

/// Arbitrary small tables: a few Service ports on virtual IPs (some with node ports on the
/// bridge), each with up to three endpoints from a small pool, some with affinity.
fn arb_table() -> impl Strategy<Value = Table> {
    let port = (0u8..4, prop::collection::btree_set(2u8..8, 0..4), prop::bool::ANY, prop::bool::ANY, prop::bool::ANY);
    prop::collection::vec(port, 0..5).prop_map(|ports| {
        let mut table = Table::new();
        for (i, (svc, endpoints, udp, sticky, node_port)) in ports.into_iter().enumerate() {
            let protocol = if udp { Protocol::Udp } else { Protocol::Tcp };
            let backends: Vec<String> = endpoints.iter().map(|e| format!("10.252.1.{e}:80")).collect();
            let backends: Vec<&str> = backends.iter().map(String::as_str).collect();
            let r = route(&format!("default/s{svc}:p{i}"), &backends, sticky.then_some(60));
            table.insert(frontend(&format!("10.253.1.{}:{}", 10 + svc, 80 + i), protocol), r.clone());
            if node_port {
                table.insert(frontend(&format!("10.252.1.1:{}", 30000 + i), protocol), r);
            }
        }
        table
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any update, applied with the kernel's rules about references, yields exactly the new
    /// ruleset; a second update from there is empty.
    #[test]
    fn updates_turn_one_ruleset_into_the_other(a in arb_table(), b in arb_table()) {
        let (old, new) = (ruleset(&a, &node()), ruleset(&b, &node()));
        let Some(script) = new.update_script(&old) else {
            // Only an affinity timeout change is not made in place, and these all use 60 s.
            return Err(TestCaseError::fail("no in-place update"));
        };
        let mut applied = old.clone();
        apply(&mut applied, &script).map_err(|e| TestCaseError::fail(format!("{e}\n{script}")))?;
        prop_assert_eq!(&applied.chains, &new.chains);
        prop_assert_eq!(&applied.maps, &new.maps);
        prop_assert_eq!(&applied.sets, &new.sets);
        prop_assert_eq!(new.update_script(&applied), Some(String::new()));
        let untouched: BTreeMap<_, _> = old.sets.iter().filter(|(n, _)| new.sets.contains_key(*n)).collect();
        for name in untouched.keys() {
            prop_assert!(!script.contains(&format!("set ip {} {name} ", new.table)), "{} re-made", name);
        }
    }
}
