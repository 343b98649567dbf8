use serde_json::json;

use super::*;

fn pv(name: &str, class: &str, size: &str, modes: &[&str], labels: serde_json::Value) -> PersistentVolume {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"storageClassName": class, "capacity": {"storage": size}, "accessModes": modes,
                 "hostPath": {"path": format!("/mnt/{name}")}},
        "status": {"phase": "Available"}
    }))
    .expect("pv")
}

fn pvc(name: &str, class: Option<&str>, size: &str, modes: &[&str]) -> PersistentVolumeClaim {
    let mut spec = json!({"accessModes": modes, "resources": {"requests": {"storage": size}}});
    if let Some(c) = class {
        spec["storageClassName"] = json!(c);
    }
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")}, "spec": spec}),
    )
    .expect("pvc")
}

fn bind(name: &str) -> ClaimDecision {
    ClaimDecision::Bind(name.into())
}

#[test]
fn the_smallest_fitting_volume_of_the_class_wins() {
    let volumes = vec![
        pv("big", "manual", "10Gi", &["ReadWriteOnce"], json!({})),
        pv("small", "manual", "1Gi", &["ReadWriteOnce"], json!({})),
        pv("tiny", "manual", "500Mi", &["ReadWriteOnce"], json!({})),
        pv("other-class", "fast", "1Gi", &["ReadWriteOnce"], json!({})),
        pv("rox-only", "manual", "1Gi", &["ReadOnlyMany"], json!({})),
    ];
    // Table: claim → chosen volume.
    let cases = [
        (pvc("a", Some("manual"), "1Gi", &["ReadWriteOnce"]), bind("small")),
        (pvc("b", Some("manual"), "2Gi", &["ReadWriteOnce"]), bind("big")),
        (pvc("c", Some("manual"), "100Mi", &["ReadWriteOnce"]), bind("tiny")),
        (pvc("d", Some("fast"), "1Gi", &["ReadWriteOnce"]), bind("other-class")),
        (pvc("e", Some("manual"), "1Gi", &["ReadOnlyMany"]), bind("rox-only")),
        (pvc("f", Some("manual"), "1Gi", &["ReadWriteMany"]), ClaimDecision::Provision),
        (pvc("g", Some("manual"), "20Gi", &["ReadWriteOnce"]), ClaimDecision::Provision),
    ];
    for (claim, expected) in cases {
        assert_eq!(decide(&claim, &volumes, true, false, false), expected, "claim {:?}", claim.metadata.name);
    }
}

#[test]
fn claims_without_a_class_bind_only_class_less_volumes_and_say_why_not() {
    let volumes = vec![pv("test-0", "", "1Gi", &["ReadWriteOnce"], json!({"type": "local"}))];
    assert_eq!(decide(&pvc("www", None, "1Gi", &["ReadWriteOnce"]), &volumes, true, false, false), bind("test-0"));
    let too_big = decide(&pvc("www", None, "5Gi", &["ReadWriteOnce"]), &volumes, true, false, false);
    assert_eq!(
        too_big,
        ClaimDecision::Wait("no persistent volumes available for this claim and no storage class is set".into())
    );
    let missing = decide(&pvc("www", Some("nope"), "1Gi", &["ReadWriteOnce"]), &[], false, false, false);
    assert_eq!(missing, ClaimDecision::Wait("storageclass.storage.k8s.io \"nope\" not found".into()));
}

#[test]
fn selectors_volume_names_claim_refs_and_consumers() {
    let mut volumes = vec![
        pv("fast-1", "manual", "1Gi", &["ReadWriteOnce"], json!({"disk": "ssd"})),
        pv("slow-1", "manual", "1Gi", &["ReadWriteOnce"], json!({"disk": "hdd"})),
    ];
    let mut picky = pvc("p", Some("manual"), "1Gi", &["ReadWriteOnce"]);
    picky.spec.as_mut().expect("spec").selector = serde_json::from_value(json!({"matchLabels": {"disk": "hdd"}})).ok();
    assert_eq!(decide(&picky, &volumes, true, false, false), bind("slow-1"));
    // volumeName pre-binding.
    let mut named = pvc("n", Some("manual"), "1Gi", &["ReadWriteOnce"]);
    named.spec.as_mut().expect("spec").volume_name = Some("fast-1".into());
    assert_eq!(decide(&named, &volumes, true, false, false), bind("fast-1"));
    // A volume reserved for a claim goes to that claim only.
    volumes[0].spec.as_mut().expect("spec").claim_ref =
        serde_json::from_value(json!({"namespace": "default", "name": "reserved"})).ok();
    assert_eq!(
        decide(&pvc("reserved", Some("manual"), "1Gi", &["ReadWriteOnce"]), &volumes, true, false, false),
        bind("fast-1")
    );
    assert_eq!(
        decide(&pvc("other", Some("manual"), "1Gi", &["ReadWriteOnce"]), &volumes, true, false, false),
        bind("slow-1")
    );
    // WaitForFirstConsumer: nothing until a pod using the claim is scheduled.
    let lazy = pvc("lazy", Some("manual"), "1Gi", &["ReadWriteOnce"]);
    assert!(matches!(decide(&lazy, &volumes, true, true, false), ClaimDecision::Wait(_)));
    assert_eq!(decide(&lazy, &volumes, true, true, true), bind("slow-1"));
}

#[test]
fn volume_phases_follow_their_claims() {
    let claim = pvc("data", Some("manual"), "1Gi", &["ReadWriteOnce"]);
    let mut volume = pv("v", "manual", "1Gi", &["ReadWriteOnce"], json!({}));
    assert_eq!(volume_phase(&volume, &[]), "Available");
    volume.spec.as_mut().expect("spec").claim_ref =
        serde_json::from_value(json!({"namespace": "default", "name": "data", "uid": "uid-data"})).ok();
    assert_eq!(volume_phase(&volume, std::slice::from_ref(&claim)), "Bound");
    assert_eq!(volume_phase(&volume, &[]), "Released", "its claim is gone");
    let mut recreated = claim.clone();
    recreated.metadata.uid = Some("another".into());
    assert_eq!(volume_phase(&volume, &[recreated]), "Released", "a new claim of the same name is another claim");
}

#[test]
fn the_default_class_is_the_annotated_one() {
    let class = |name: &str, default: bool| -> StorageClass {
        serde_json::from_value(json!({"metadata": {"name": name, "annotations": if default {
            json!({DEFAULT_CLASS_ANNOTATION: "true"}) } else { json!({}) }}, "provisioner": "x"}))
        .expect("class")
    };
    let classes = vec![class("slow", false), class("local-path", true)];
    assert_eq!(default_class(&classes).and_then(|c| c.metadata.name.clone()).as_deref(), Some("local-path"));
    assert!(default_class(&classes[..1]).is_none());
}
