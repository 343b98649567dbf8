use std::net::Ipv4Addr;
use std::str::FromStr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::*;

fn svc(name: &str, cluster_ip: &str, ports: serde_json::Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": cluster_ip, "ports": ports}}))
    .expect("service")
}

fn slice(service: &str, endpoints: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(json!({"metadata": {"name": format!("{service}-abcde"), "namespace": "default",
        "labels": {"kubernetes.io/service-name": service}}, "addressType": "IPv4",
        "endpoints": endpoints, "ports": [{"name": "web", "port": 80, "protocol": "TCP"}]}))
    .expect("slice")
}

/// Seed 001's headless `nginx` with three ready pods, a ClusterIP Service with a named port,
/// and a headless Service with `n` endpoints.
fn records(n: usize) -> Records {
    let many: Vec<_> =
        (0..n).map(|i| json!({"addresses": [format!("10.244.1.{}", i + 1)], "hostname": format!("big-{i}")})).collect();
    let services = vec![
        svc("nginx", "None", json!([{"name": "web", "port": 80}])),
        svc("api", "10.96.0.10", json!([{"name": "http", "port": 8080}])),
        svc("big", "None", json!([{"name": "web", "port": 80}])),
    ];
    let slices = vec![
        slice(
            "nginx",
            json!([
                {"addresses": ["10.244.0.2"], "hostname": "web-0"},
                {"addresses": ["10.244.0.3"], "hostname": "web-1"},
                {"addresses": ["10.244.0.4"], "hostname": "web-2"},
            ]),
        ),
        slice("big", json!(many)),
    ];
    logic::dns::build(&services, &slices, "cluster.local")
}

fn query(id: u16, name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(hickory_proto::op::Query::query(Name::from_str(name).expect("name"), qtype));
    if let Some(payload) = edns {
        let mut e = hickory_proto::op::Edns::new();
        e.set_max_payload(payload);
        m.set_edns(e);
    }
    m.to_vec().expect("encode")
}

fn ask(zone: &Zone, raw: &[u8], transport: Transport) -> Option<Message> {
    let mut out = Vec::new();
    match zone.answer(raw, transport, &mut out) {
        Reply::Send => Some(Message::from_vec(&out).expect("the reply decodes")),
        Reply::Drop | Reply::NotOurs => None,
    }
}

fn addresses(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[test]
fn every_name_answers_what_records_lookup_decides() {
    let records = records(3);
    let zone = Zone::compile(&records, 5, 1);
    let mut names: Vec<String> = records.names().chain(records.reverse_names()).map(str::to_string).collect();
    names.extend(["missing.default.svc.cluster.local", "web-9.nginx.default.svc.cluster.local"].map(String::from));
    for name in &names {
        for (qtype, kind) in [
            (RecordType::A, Kind::A),
            (RecordType::SRV, Kind::Srv),
            (RecordType::PTR, Kind::Ptr),
            (RecordType::AAAA, Kind::Other),
        ] {
            let m = ask(&zone, &query(7, &format!("{name}."), qtype, None), Transport::Udp)
                .unwrap_or_else(|| panic!("{name} {qtype} is in the zone"));
            assert_eq!(m.metadata.id, 7);
            assert!(m.metadata.authoritative && m.metadata.recursion_desired && m.metadata.recursion_available);
            let owner = Name::from_str(&format!("{name}.")).expect("name");
            assert!(m.answers.iter().all(|r| r.name == owner && r.ttl == 5), "{name} {qtype}: {m:?}");
            let got = match records.lookup(name, kind) {
                Answer::A(ips) => {
                    assert_eq!(addresses(&m), ips, "{name}");
                    ResponseCode::NoError
                }
                Answer::Srv(list) => {
                    let srv: Vec<(u16, String)> = m
                        .answers
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::SRV(s) => Some((s.port, s.target.to_string())),
                            _ => None,
                        })
                        .collect();
                    let want: Vec<_> = list.iter().map(|s| (s.port, format!("{}.", s.target))).collect();
                    assert_eq!(srv, want, "{name}");
                    ResponseCode::NoError
                }
                Answer::Ptr(target) => {
                    assert!(
                        matches!(&m.answers[..], [r] if r.data == RData::PTR(hickory_proto::rr::rdata::PTR(Name::from_str(&format!("{target}.")).expect("t"))))
                    );
                    ResponseCode::NoError
                }
                Answer::NoData => {
                    assert!(m.answers.is_empty(), "{name} {qtype}");
                    ResponseCode::NoError
                }
                Answer::NxDomain => ResponseCode::NXDomain,
                Answer::NotOurs => panic!("{name} is not ours"),
            };
            assert_eq!(m.metadata.response_code, got, "{name} {qtype}");
        }
    }
}

#[test]
fn negative_answers_in_the_zone_carry_its_soa() {
    let zone = Zone::compile(&records(3), 5, 42);
    for (name, code) in [
        ("missing.default.svc.cluster.local.", ResponseCode::NXDomain),
        ("web-0.nginx.default.svc.cluster.local.", ResponseCode::NoError),
    ] {
        let m = ask(&zone, &query(1, name, RecordType::AAAA, None), Transport::Udp).expect("ours");
        assert_eq!(m.metadata.response_code, code);
        assert!(m.answers.is_empty());
        let [soa] = &m.authorities[..] else { panic!("one SOA: {m:?}") };
        assert_eq!(soa.name, Name::from_str("cluster.local.").expect("zone"));
        let RData::SOA(soa) = &soa.data else { panic!("{soa:?}") };
        assert_eq!(soa.serial, 42);
        assert_eq!(soa.mname, Name::from_str("ns.dns.cluster.local.").expect("mname"));
    }
}

#[test]
fn names_match_in_any_case_and_the_question_keeps_the_askers_case() {
    let zone = Zone::compile(&records(3), 5, 1);
    let mut raw = query(3, "web-1.nginx.default.svc.cluster.local.", RecordType::A, None);
    raw[13..16].copy_from_slice(b"WeB");
    raw[19..24].copy_from_slice(b"NGINX");
    let m = ask(&zone, &raw, Transport::Udp).expect("ours");
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(10, 244, 0, 3)]);
    let mut out = Vec::new();
    zone.answer(&raw, Transport::Udp, &mut out);
    assert_eq!(out[12..raw.len()], raw[12..], "the question as asked");
}

#[test]
fn names_outside_the_zone_are_left_to_the_caller() {
    let zone = Zone::compile(&records(3), 5, 1);
    for name in ["example.com.", "web-0.nginx.", "cluster.local.example.com.", "9.9.9.10.in-addr.arpa.", "local."] {
        let mut out = Vec::new();
        assert_eq!(
            zone.answer(&query(1, name, RecordType::A, None), Transport::Udp, &mut out),
            Reply::NotOurs,
            "{name}"
        );
    }
    // The zone's apex exists; a name ending in its labels but not at a label boundary does not.
    let mut out = Vec::new();
    assert_eq!(
        zone.answer(&query(1, "xcluster.local.", RecordType::A, None), Transport::Udp, &mut out),
        Reply::NotOurs
    );
    let m = ask(&zone, &query(1, "cluster.local.", RecordType::A, None), Transport::Udp).expect("the apex");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn edns_is_answered_with_its_payload_size_and_unknown_versions_with_badvers() {
    let zone = Zone::compile(&records(3), 5, 1);
    let m = ask(&zone, &query(1, "nginx.default.svc.cluster.local.", RecordType::A, Some(4096)), Transport::Udp)
        .expect("ours");
    assert_eq!(m.edns.as_ref().map(|e| e.max_payload()), Some(EDNS_PAYLOAD));
    assert_eq!(addresses(&m).len(), 3);

    let mut raw = query(9, "nginx.default.svc.cluster.local.", RecordType::A, Some(4096));
    let version_at = raw.len() - 11 + 6;
    raw[version_at] = 1;
    let m = ask(&zone, &raw, Transport::Udp).expect("a reply");
    assert_eq!(m.metadata.id, 9);
    // 16 is BADVERS in an OPT record (hickory names the shared code BADSIG).
    assert_eq!(u16::from(m.metadata.response_code), 16);
}

#[test]
fn a_reply_too_large_for_udp_is_truncated_and_complete_over_tcp() {
    let zone = Zone::compile(&records(100), 5, 1);
    let raw = query(5, "big.default.svc.cluster.local.", RecordType::A, None);
    let m = ask(&zone, &raw, Transport::Udp).expect("ours");
    assert!(m.metadata.truncation && m.answers.is_empty(), "{m:?}");
    let mut out = Vec::new();
    zone.answer(&raw, Transport::Udp, &mut out);
    assert!(out.len() <= 512);
    // With EDNS the 1232 bytes hold them all (100 × 16 bytes would not; 60 would).
    let m = ask(&zone, &query(5, "big.default.svc.cluster.local.", RecordType::A, Some(1232)), Transport::Udp)
        .expect("ours");
    assert!(m.metadata.truncation);
    let m = ask(&zone, &raw, Transport::Tcp).expect("ours");
    assert!(!m.metadata.truncation);
    assert_eq!(addresses(&m).len(), 100);
    let small = Zone::compile(&records(60), 5, 1);
    let m = ask(&small, &query(5, "big.default.svc.cluster.local.", RecordType::A, Some(1232)), Transport::Udp)
        .expect("ours");
    assert!(!m.metadata.truncation);
    assert_eq!(addresses(&m).len(), 60);
}

#[test]
fn malformed_queries_get_formerr_notimp_or_nothing() {
    let zone = Zone::compile(&records(3), 5, 1);
    let good = query(0x1234, "nginx.default.svc.cluster.local.", RecordType::A, None);
    let mut out = Vec::new();
    // Too short to carry an ID, or a response: dropped.
    assert_eq!(zone.answer(&good[..11], Transport::Udp, &mut out), Reply::Drop);
    let mut response = good.clone();
    response[2] |= 0x80;
    assert_eq!(zone.answer(&response, Transport::Udp, &mut out), Reply::Drop);
    let code = |raw: &[u8]| {
        let mut out = Vec::new();
        assert_eq!(zone.answer(raw, Transport::Udp, &mut out), Reply::Send);
        let m = Message::from_vec(&out).expect("decodes");
        assert_eq!(m.metadata.id, 0x1234);
        m.metadata.response_code
    };
    let mut two_questions = good.clone();
    two_questions[5] = 2;
    assert_eq!(code(&two_questions), ResponseCode::FormErr);
    assert_eq!(code(&good[..good.len() - 3]), ResponseCode::FormErr);
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(code(&trailing), ResponseCode::FormErr);
    let mut pointer = good[..12].to_vec();
    pointer.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
    assert_eq!(code(&pointer), ResponseCode::FormErr);
    let mut notify = good.clone();
    notify[2] = 4 << 3;
    assert_eq!(code(&notify), ResponseCode::NotImp);
}

#[test]
fn an_alias_answers_the_typed_name_with_a_cname_and_the_targets_records() {
    let zone = Zone::compile(&records(3), 5, 1);
    let mut out = Vec::new();
    let raw = query(2, "web-0.nginx.", RecordType::A, None);
    assert_eq!(zone.answer_alias(&raw, "web-0.nginx.default.svc.cluster.local", Transport::Udp, &mut out), Reply::Send);
    let m = Message::from_vec(&out).expect("decodes");
    let target = Name::from_str("web-0.nginx.default.svc.cluster.local.").expect("target");
    assert_eq!(m.answers.len(), 2, "{m:?}");
    assert_eq!(m.answers[0].name, Name::from_str("web-0.nginx.").expect("typed"));
    assert_eq!(m.answers[0].data, RData::CNAME(hickory_proto::rr::rdata::CNAME(target.clone())));
    assert_eq!(m.answers[1].name, target);
    assert_eq!(addresses(&m), vec![Ipv4Addr::new(10, 244, 0, 2)]);
    // A type the target has no records of: the CNAME alone.
    zone.answer_alias(
        &query(2, "web-0.nginx.", RecordType::AAAA, None),
        "web-0.nginx.default.svc.cluster.local",
        Transport::Udp,
        &mut out,
    );
    assert_eq!(Message::from_vec(&out).expect("decodes").answers.len(), 1);
    // A target gone meanwhile: not answered here.
    assert_eq!(
        zone.answer_alias(&raw, "web-9.nginx.default.svc.cluster.local", Transport::Udp, &mut out),
        Reply::NotOurs
    );
}

#[test]
fn names_that_cannot_be_encoded_are_refused_by_the_encoder() {
    assert_eq!(encode_name("a.b"), Some(vec![1, b'a', 1, b'b', 0]));
    assert_eq!(encode_name("A.b."), Some(vec![1, b'a', 1, b'b', 0]));
    assert_eq!(encode_name(""), Some(vec![0]));
    assert_eq!(encode_name(&"x".repeat(64)), None);
    assert_eq!(encode_name("a..b"), None);
    assert_eq!(encode_name(&vec!["abcdefgh"; 30].join(".")), None);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

    /// Whatever a pod sends (the zone answers untrusted input): no panic, and every reply is a
    /// well-formed DNS message with the query's ID that fits the transport.
    #[test]
    fn any_bytes_get_a_well_formed_reply_or_none(
        raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        tcp in proptest::prelude::any::<bool>(),
    ) {
        let zone = Zone::compile(&records(40), 5, 1);
        let mut out = Vec::new();
        let transport = if tcp { Transport::Tcp } else { Transport::Udp };
        if zone.answer(&raw, transport, &mut out) == Reply::Send {
            let reply = Message::from_vec(&out).expect("a reply decodes");
            proptest::prop_assert_eq!(reply.metadata.id, u16::from_be_bytes([raw[0], raw[1]]));
            proptest::prop_assert!(tcp || out.len() <= usize::from(EDNS_PAYLOAD));
        }
    }

    /// Real queries with a mangled byte: the same.
    #[test]
    fn mangled_queries_get_a_well_formed_reply_or_none(at in 0usize..80, byte in proptest::prelude::any::<u8>(), edns in proptest::prelude::any::<bool>()) {
        let zone = Zone::compile(&records(40), 5, 1);
        let mut raw = query(9, "web-1.nginx.default.svc.cluster.local.", RecordType::A, edns.then_some(1232));
        let at = at % raw.len();
        raw[at] = byte;
        let mut out = Vec::new();
        if zone.answer(&raw, Transport::Udp, &mut out) == Reply::Send {
            let reply = Message::from_vec(&out).expect("a reply decodes");
            proptest::prop_assert_eq!(reply.metadata.id, u16::from_be_bytes([raw[0], raw[1]]));
        }
    }
}
