//! Table tests of the sync decision, and a randomised fake-kubelet run checking upstream's
//! invariants after every step.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodCondition, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::*;

fn set(replicas: i32, policy: &str, extra: serde_json::Value) -> StatefulSet {
    let mut v = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "set-uid", "generation": 1},
        "spec": {"replicas": replicas, "serviceName": "nginx", "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": "nginx"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}
    });
    json_patch::merge(&mut v, &extra);
    serde_json::from_value(v).expect("statefulset")
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("valid")
}

/// A fake kubelet's view of the world: the pods and claims that exist.
#[derive(Default, Clone)]
struct World {
    pods: Vec<Pod>,
    claims: Vec<PersistentVolumeClaim>,
}

impl World {
    fn template(set: &StatefulSet) -> PodTemplateSpec {
        set.spec.clone().unwrap_or_default().template
    }

    fn plan(&self, set: &StatefulSet, update_revision: &str) -> Plan {
        let t = World::template(set);
        let current =
            set.status.as_ref().and_then(|s| s.current_revision.clone()).unwrap_or_else(|| update_revision.to_string());
        plan(&Input {
            set,
            pods: &self.pods,
            claims: &self.claims,
            current_revision: &current,
            current_template: &t,
            update_revision,
            update_template: &t,
            collision_count: 0,
            now: now(),
        })
    }

    /// Apply a plan's actions as the API would (created pods start Pending).
    fn apply(&mut self, plan: &Plan) {
        for a in &plan.actions {
            match a {
                Action::CreateClaim(c) => self.claims.push((**c).clone()),
                Action::CreatePod(p) => {
                    let mut p = (**p).clone();
                    p.metadata.uid = Some(format!("uid-{}", p.metadata.name.clone().unwrap_or_default()));
                    p.status = Some(PodStatus { phase: Some("Pending".into()), ..Default::default() });
                    assert!(
                        !self.pods.iter().any(|q| q.metadata.name == p.metadata.name),
                        "two pods named {:?}",
                        p.metadata.name
                    );
                    self.pods.push(p);
                }
                Action::DeletePod { name, .. } => self.pods.retain(|p| p.metadata.name.as_deref() != Some(name)),
                Action::RepairIdentity { name, labels, .. } => {
                    for p in &mut self.pods {
                        if p.metadata.name.as_deref() == Some(name) {
                            p.metadata.labels = Some(labels.clone());
                        }
                    }
                }
                Action::SetClaimOwners { name, owners, .. } => {
                    for c in &mut self.claims {
                        if c.metadata.name.as_deref() == Some(name) {
                            c.metadata.owner_references = Some(owners.clone());
                        }
                    }
                }
            }
        }
    }

    /// Apply a plan with graceful deletion: a deleted pod stays, terminating, until reaped.
    fn apply_graceful(&mut self, plan: &Plan) {
        for a in &plan.actions {
            match a {
                Action::DeletePod { name, .. } => {
                    for p in &mut self.pods {
                        if p.metadata.name.as_deref() == Some(name) {
                            p.metadata.deletion_timestamp = Some(Time(now()));
                        }
                    }
                }
                other => self.apply(&Plan { actions: vec![other.clone()], ..plan.clone() }),
            }
        }
    }

    fn make_ready(&mut self, name: &str) {
        for p in &mut self.pods {
            if p.metadata.name.as_deref() == Some(name) {
                p.status = Some(PodStatus {
                    phase: Some("Running".into()),
                    conditions: Some(vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(now())),
                        ..Default::default()
                    }]),
                    ..Default::default()
                });
            }
        }
    }

    fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
        n.sort_by_key(|n| parent_and_ordinal_of(n));
        n
    }
}

fn parent_and_ordinal_of(name: &str) -> i32 {
    pods::parent_and_ordinal(name).map(|(_, o)| o).unwrap_or(-1)
}

fn created(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::CreatePod(p) => p.metadata.name.clone(),
            _ => None,
        })
        .collect()
}

fn deleted(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::DeletePod { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn ordered_ready_creates_one_at_a_time_after_the_previous_is_ready() {
    let s = set(3, "OrderedReady", json!({}));
    let mut w = World::default();
    let p = w.plan(&s, "web-r1");
    assert_eq!(created(&p), ["web-0"]);
    // The claim comes first, with the template name and the selector labels.
    match &p.actions[0] {
        Action::CreateClaim(c) => {
            assert_eq!(c.metadata.name.as_deref(), Some("www-web-0"));
            assert_eq!(c.metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str), Some("nginx"));
        }
        other => panic!("expected the claim first, got {other:?}"),
    }
    w.apply(&p);
    let p = w.plan(&s, "web-r1");
    assert!(created(&p).is_empty(), "web-1 waits for web-0");
    assert_eq!(p.wait, Some(Wait::Unhealthy(0)));
    w.make_ready("web-0");
    let p = w.plan(&s, "web-r1");
    assert_eq!(created(&p), ["web-1"]);
    w.apply(&p);
    w.make_ready("web-1");
    w.apply(&w.plan(&s, "web-r1"));
    w.make_ready("web-2");
    assert_eq!(w.names(), ["web-0", "web-1", "web-2"]);
    let p = w.plan(&s, "web-r1");
    assert!(p.actions.is_empty());
    assert_eq!((p.status.replicas, p.status.ready_replicas, p.status.updated_replicas), (3, Some(3), Some(3)));
}

#[test]
fn pods_carry_identity_labels_hostname_and_claim_volumes() {
    let s = set(1, "OrderedReady", json!({}));
    let p = World::default().plan(&s, "web-r1");
    let Some(Action::CreatePod(pod)) = p.actions.iter().find(|a| matches!(a, Action::CreatePod(_))) else {
        panic!("no pod")
    };
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("statefulset.kubernetes.io/pod-name").map(String::as_str), Some("web-0"));
    assert_eq!(labels.get("apps.kubernetes.io/pod-index").map(String::as_str), Some("0"));
    assert_eq!(labels.get("controller-revision-hash").map(String::as_str), Some("web-r1"));
    let spec = pod.spec.clone().unwrap_or_default();
    assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("web-0"), Some("nginx")));
    let volume = &spec.volumes.unwrap_or_default()[0];
    assert_eq!(volume.persistent_volume_claim.as_ref().map(|c| c.claim_name.as_str()), Some("www-web-0"));
    let owner = &pod.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("StatefulSet", Some(true)));
}

#[test]
fn parallel_creates_everything_at_once_and_deletes_surplus_together() {
    let s = set(3, "Parallel", json!({}));
    let mut w = World::default();
    let p = w.plan(&s, "r");
    assert_eq!(created(&p), ["web-0", "web-1", "web-2"]);
    w.apply(&p);
    let s = set(1, "Parallel", json!({}));
    assert_eq!(deleted(&w.plan(&s, "r")), ["web-2", "web-1"]);
}

#[test]
fn ordered_scale_down_removes_the_highest_first_one_at_a_time() {
    let mut w = World::default();
    let s = set(3, "OrderedReady", json!({}));
    for _ in 0..3 {
        w.apply(&w.plan(&s, "r"));
        for n in w.names() {
            w.make_ready(&n);
        }
    }
    let s = set(1, "OrderedReady", json!({}));
    let p = w.plan(&s, "r");
    assert_eq!(deleted(&p), ["web-2"]);
    w.apply(&p);
    assert_eq!(deleted(&w.plan(&s, "r")), ["web-1"]);
}

#[test]
fn scale_down_waits_for_unhealthy_pods_except_the_lowest_unhealthy_condemned_one() {
    let mut w = World::default();
    let s3 = set(3, "OrderedReady", json!({}));
    for _ in 0..3 {
        w.apply(&w.plan(&s3, "r"));
        for n in w.names() {
            w.make_ready(&n);
        }
    }
    // web-2 crashes (not ready): scaling to 2 may still remove it — it is the first unhealthy pod.
    w.pods[2].status = Some(PodStatus { phase: Some("Running".into()), ..Default::default() });
    let s2 = set(2, "OrderedReady", json!({}));
    assert_eq!(deleted(&w.plan(&s2, "r")), ["web-2"]);
    // If web-0 is unhealthy instead, nothing is scaled down.
    let mut w2 = w.clone();
    w2.make_ready("web-2");
    w2.pods[0].status = Some(PodStatus { phase: Some("Running".into()), ..Default::default() });
    let p = w2.plan(&s2, "r");
    assert!(deleted(&p).is_empty());
    assert_eq!(p.wait, Some(Wait::Unhealthy(0)));
}

#[test]
fn failed_pods_are_deleted_to_be_recreated_with_the_same_name() {
    let mut w = World::default();
    let s = set(1, "OrderedReady", json!({}));
    w.apply(&w.plan(&s, "r"));
    w.pods[0].status = Some(PodStatus { phase: Some("Failed".into()), ..Default::default() });
    let p = w.plan(&s, "r");
    assert_eq!(deleted(&p), ["web-0"]);
    w.apply(&p);
    assert_eq!(created(&w.plan(&s, "r")), ["web-0"]);
}

#[test]
fn a_terminating_claim_holds_the_pod_back() {
    let s = set(1, "OrderedReady", json!({}));
    let mut w = World::default();
    let mut claim = pods::claims_for(&s, 0).remove(0);
    claim.metadata.deletion_timestamp = Some(Time(now()));
    w.claims.push(claim);
    let p = w.plan(&s, "r");
    assert!(created(&p).is_empty());
    assert_eq!(p.wait, Some(Wait::ClaimTerminating(0)));
}

fn rolled_out(replicas: i32, extra: serde_json::Value) -> (World, StatefulSet) {
    let mut s = set(replicas, "OrderedReady", extra);
    let mut w = World::default();
    for _ in 0..replicas {
        w.apply(&w.plan(&s, "v1"));
        for n in w.names() {
            w.make_ready(&n);
        }
    }
    s.status = Some(w.plan(&s, "v1").status);
    (w, s)
}

#[test]
fn rolling_update_goes_top_down_to_the_partition() {
    let (mut w, s) = rolled_out(3, json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 1}}}}));
    let p = w.plan(&s, "v2");
    assert_eq!(deleted(&p), ["web-2"]);
    assert_eq!(p.status.current_revision.as_deref(), Some("v1"));
    w.apply(&p);
    let p = w.plan(&s, "v2");
    assert_eq!(created(&p), ["web-2"], "recreated at the update revision");
    w.apply(&p);
    assert!(deleted(&w.plan(&s, "v2")).is_empty(), "waits for web-2 to be ready");
    w.make_ready("web-2");
    let p = w.plan(&s, "v2");
    assert_eq!(deleted(&p), ["web-1"]);
    w.apply(&p);
    w.apply(&w.plan(&s, "v2"));
    w.make_ready("web-1");
    let p = w.plan(&s, "v2");
    assert!(p.actions.is_empty(), "web-0 is below the partition");
    assert_eq!((p.status.updated_replicas, p.status.current_replicas), (Some(2), Some(1)));
    assert_eq!(p.status.current_revision.as_deref(), Some("v1"), "a partitioned rollout is not complete");
}

#[test]
fn on_delete_only_recreates_deleted_pods_and_then_completes() {
    let (mut w, s) = rolled_out(2, json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}}));
    let p = w.plan(&s, "v2");
    assert!(p.actions.is_empty(), "OnDelete never deletes on its own");
    for name in ["web-0", "web-1"] {
        w.pods.retain(|p| p.metadata.name.as_deref() != Some(name));
        w.apply(&w.plan(&s, "v2"));
        w.make_ready(name);
    }
    let p = w.plan(&s, "v2");
    assert_eq!(p.status.updated_replicas, Some(2));
    assert_eq!(p.status.current_revision.as_deref(), Some("v2"), "upstream #73492: OnDelete completes too");
}

/// Upstream `completeRollingUpdate` (1.33): the current revision becomes the update revision
/// once `spec.replicas` pods exist, all updated and ready — not before, even when every pod
/// that exists is updated (a scale-up still under way).
#[test]
fn the_current_revision_advances_when_every_wanted_replica_is_updated_and_ready() {
    let (mut w, mut s) = rolled_out(2, json!({}));
    for _ in 0..6 {
        w.apply(&w.plan(&s, "v2"));
        for n in w.names() {
            w.make_ready(&n);
        }
    }
    let p = w.plan(&s, "v2");
    assert_eq!((p.status.updated_replicas, p.status.current_revision.as_deref()), (Some(2), Some("v2")));
    // Scale to 3 at once: two pods updated and ready, the third not made yet.
    if let Some(spec) = s.spec.as_mut() {
        spec.replicas = Some(3);
    }
    if let Some(st) = s.status.as_mut() {
        st.current_revision = Some("v1".into());
    }
    let p = w.plan(&s, "v2");
    assert_eq!(created(&p), ["web-2"]);
    assert_eq!(p.status.current_revision.as_deref(), Some("v1"), "2 of 3 replicas: not complete");
    w.apply(&p);
    assert_eq!(w.plan(&s, "v2").status.current_revision.as_deref(), Some("v1"), "web-2 not ready yet");
    w.make_ready("web-2");
    assert_eq!(w.plan(&s, "v2").status.current_revision.as_deref(), Some("v2"));
}

#[test]
fn min_ready_seconds_delays_the_next_pod_and_asks_for_a_requeue() {
    let s = set(2, "OrderedReady", json!({"spec": {"minReadySeconds": 10}}));
    let mut w = World::default();
    w.apply(&w.plan(&s, "r"));
    w.make_ready("web-0"); // ready since `now`
    let p = w.plan(&s, "r");
    assert!(created(&p).is_empty());
    assert_eq!(p.requeue_after_secs, Some(11));
    assert_eq!(p.status.available_replicas, Some(0));
}

#[test]
fn a_set_being_deleted_only_reports_status() {
    let mut s = set(2, "OrderedReady", json!({}));
    s.metadata.deletion_timestamp = Some(Time(now()));
    assert!(World::default().plan(&s, "r").actions.is_empty());
}

#[test]
fn revisions_are_named_hashed_and_reused_by_meaning() {
    let s = set(1, "OrderedReady", json!({}));
    let (current, update) = revision::choose(&s, &[]);
    assert_eq!(current, None);
    let UpdateRevisionOf::Create(first) = classify(update) else { panic!("first revision is created") };
    let name = first.metadata.name.clone().unwrap_or_default();
    assert!(name.starts_with("web-") && name.len() <= 4 + 10, "{name}");
    assert_eq!(first.revision, 1);
    // Same template: the latest revision is the update revision.
    let (_, update) = revision::choose(&s, std::slice::from_ref(&*first));
    assert_eq!(update, revision::UpdateRevision::Latest(name.clone()));
    // New template, then back: the old revision is renumbered, not recreated.
    let s2 = set(
        1,
        "OrderedReady",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}}}),
    );
    let (_, update) = revision::choose(&s2, std::slice::from_ref(&*first));
    let UpdateRevisionOf::Create(second) = classify(update) else { panic!("second revision is created") };
    assert_eq!(second.revision, 2);
    let (_, update) = revision::choose(&s, &[(*first).clone(), (*second).clone()]);
    assert_eq!(update, revision::UpdateRevision::Reuse { name, revision: 3 });
    // A byte-different encoding of the same template still counts as the same (#134773).
    let mut reordered = (*first).clone();
    if let Some(data) = reordered.data.as_mut() {
        data.0["spec"]["template"]["metadata"]["creationTimestamp"] = serde_json::Value::Null;
    }
    assert!(revision::same_template(
        &reordered.data.clone().map(|d| d.0).unwrap_or_default(),
        &revision::revision_data(&s)
    ));
}

enum UpdateRevisionOf {
    Create(Box<k8s_openapi::api::apps::v1::ControllerRevision>),
    Other,
}

fn classify(u: revision::UpdateRevision) -> UpdateRevisionOf {
    match u {
        revision::UpdateRevision::Create(r) => UpdateRevisionOf::Create(r),
        _ => UpdateRevisionOf::Other,
    }
}

#[test]
fn annotating_the_set_names_its_update_revision_cause() {
    let mut s = set(1, "OrderedReady", json!({}));
    let rev = revision::new_revision(&s, 0, 1);
    assert_eq!(revision::change_cause_to_record(&s, &rev), None, "no cause, nothing to record");
    s.metadata.annotations = Some([(revision::CHANGE_CAUSE.to_string(), "downgraded to 1.26.1".to_string())].into());
    assert_eq!(revision::change_cause_to_record(&s, &rev), Some("downgraded to 1.26.1"));
    let recorded = revision::new_revision(&s, 0, 1);
    assert_eq!(revision::change_cause_to_record(&s, &recorded), None, "already there");
}

#[test]
fn long_set_names_keep_revision_labels_within_63_characters() {
    let long = "a".repeat(60);
    assert!(revision::revision_name(&long, "6db564c54d").len() <= 63);
    assert_eq!(revision::revision_name("web", "6db564c54d"), "web-6db564c54d");
}

#[test]
fn history_truncation_keeps_live_revisions() {
    let s = set(1, "OrderedReady", json!({"spec": {"revisionHistoryLimit": 1}}));
    let revs: Vec<_> = (1..=4)
        .map(|i| {
            let mut r = revision::new_revision(&s, i, i64::from(i));
            r.metadata.name = Some(format!("web-r{i}"));
            r
        })
        .collect();
    assert_eq!(revision::to_truncate(&s, &revs, &["web-r4", "web-r1"]), ["web-r2"]);
}

/// What the fake kubelet and the user do between syncs.
#[derive(Debug, Clone)]
enum Step {
    Ready(usize),
    Fail(usize),
    Vanish(usize),
    Scale(i32),
    NewTemplate,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        6 => (0usize..8).prop_map(Step::Ready),
        1 => (0usize..8).prop_map(Step::Fail),
        1 => (0usize..8).prop_map(Step::Vanish),
        2 => (0i32..6).prop_map(Step::Scale),
        1 => Just(Step::NewTemplate),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, failure_persistence: None, ..Default::default() })]

    /// For random sequences of scaling, template changes and pod failures, after every sync:
    /// no two pods share an ordinal; in OrderedReady no pod is created while a lower in-range
    /// ordinal is missing or not Ready; and once everything is ready again, every pod is at the
    /// update revision.
    #[test]
    fn ordered_ready_invariants(steps in proptest::collection::vec(step(), 1..120)) {
        let mut w = World::default();
        let mut replicas = 3;
        let mut revision = 1;
        for st in steps {
            let s = set(replicas, "OrderedReady", json!({}));
            let update = format!("v{revision}");
            let before: Vec<(String, bool)> =
                w.pods.iter().map(|p| (p.metadata.name.clone().unwrap_or_default(), pods::is_running_and_ready(p))).collect();
            let p = w.plan(&s, &update);
            for name in created(&p) {
                let ordinal = parent_and_ordinal_of(&name);
                for lower in 0..ordinal {
                    let lower_name = format!("web-{lower}");
                    proptest::prop_assert!(
                        before.iter().any(|(n, ready)| *n == lower_name && *ready),
                        "created {} while {} was missing or not ready", name, lower_name
                    );
                }
            }
            w.apply(&p);
            match st {
                Step::Ready(i) if !w.pods.is_empty() => {
                    let name = w.pods[i % w.pods.len()].metadata.name.clone().unwrap_or_default();
                    w.make_ready(&name);
                }
                Step::Fail(i) if !w.pods.is_empty() => {
                    let n = w.pods.len();
                    w.pods[i % n].status = Some(PodStatus { phase: Some("Failed".into()), ..Default::default() });
                }
                Step::Vanish(i) if !w.pods.is_empty() => {
                    let n = w.pods.len();
                    w.pods.remove(i % n);
                }
                Step::Scale(n) => replicas = n,
                Step::NewTemplate => revision += 1,
                _ => {}
            }
            let mut ordinals: Vec<i32> = w.pods.iter().map(pods::get_ordinal).collect();
            ordinals.sort();
            ordinals.dedup();
            proptest::prop_assert_eq!(ordinals.len(), w.pods.len(), "two pods share an ordinal");
        }
        // Let the kubelet make everything ready until the set settles.
        let s = set(replicas, "OrderedReady", json!({}));
        let update = format!("v{revision}");
        for _ in 0..(4 * 8 + 8) {
            let p = w.plan(&s, &update);
            w.apply(&p);
            for n in w.names() {
                w.make_ready(&n);
            }
        }
        proptest::prop_assert_eq!(w.pods.len(), replicas as usize);
        for pod in &w.pods {
            proptest::prop_assert_eq!(pods::revision_of(pod), update.as_str());
        }
    }
}

/// A set's configuration for the rollout property test.
#[derive(Debug, Clone)]
struct Shape {
    parallel: bool,
    on_delete: bool,
    partition: i32,
    max_unavailable: Option<i32>,
    start: i32,
}

fn shape() -> impl proptest::strategy::Strategy<Value = Shape> {
    use proptest::prelude::*;
    (any::<bool>(), 0u8..6, 0i32..4, prop::option::of(1i32..4), prop_oneof![Just(0), Just(3)]).prop_map(
        |(parallel, strategy, partition, max_unavailable, start)| Shape {
            parallel,
            on_delete: strategy == 0,
            partition,
            max_unavailable,
            start,
        },
    )
}

fn shaped_set(shape: &Shape, replicas: i32) -> StatefulSet {
    let strategy = if shape.on_delete {
        json!({"type": "OnDelete", "rollingUpdate": null})
    } else {
        let mut rolling = json!({"partition": shape.partition});
        if let Some(m) = shape.max_unavailable {
            rolling["maxUnavailable"] = json!(m);
        }
        json!({"type": "RollingUpdate", "rollingUpdate": rolling})
    };
    let policy = if shape.parallel { "Parallel" } else { "OrderedReady" };
    set(replicas, policy, json!({"spec": {"updateStrategy": strategy, "ordinals": {"start": shape.start}}}))
}

/// What the kubelet, the user and time do between syncs in the rollout test.
#[derive(Debug, Clone)]
enum Event {
    Ready(usize),
    Fail(usize),
    /// A terminating pod finishes and is removed.
    Reap(usize),
    /// The user deletes a pod (gracefully).
    UserDelete(usize),
    Scale(i32),
    NewTemplate,
}

fn event() -> impl proptest::strategy::Strategy<Value = Event> {
    use proptest::prelude::*;
    prop_oneof![
        8 => (0usize..8).prop_map(Event::Ready),
        1 => (0usize..8).prop_map(Event::Fail),
        4 => (0usize..8).prop_map(Event::Reap),
        1 => (0usize..8).prop_map(Event::UserDelete),
        1 => (1i32..7).prop_map(Event::Scale),
        2 => Just(Event::NewTemplate),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, failure_persistence: None, ..Default::default() })]

    /// For every pod management policy and update strategy (`partition`, `maxUnavailable`,
    /// OnDelete) and for `ordinals.start`, with graceful deletion and the status fed back as the
    /// controller writes it, after every sync: a rolling update never deletes an available pod
    /// when that would leave more than `maxUnavailable` (default 1) in-range pods unavailable,
    /// deletes old pods from the highest ordinal down, never touches a pod below the partition,
    /// and OnDelete never deletes for an update; no two pods share an ordinal; and once the pods
    /// are left to become ready, the set converges: every pod in range, those at or above the
    /// partition at the update revision.
    #[test]
    fn rollout_invariants(shape in shape(), events in proptest::collection::vec(event(), 1..150)) {
        let mut w = World::default();
        let mut replicas = 3;
        let mut revision = 1;
        let mut status: Option<StatefulSetStatus> = None;
        let budget = |replicas: i32| shape.max_unavailable.map_or(1, |m| m.min(replicas).max(1));
        let sync = |w: &mut World, status: &mut Option<StatefulSetStatus>, replicas: i32, revision: i32| {
            let mut s = shaped_set(&shape, replicas);
            s.status = status.clone();
            let update = format!("v{revision}");
            let p = w.plan(&s, &update);
            w.apply_graceful(&p);
            *status = Some(p.status.clone());
            (s, update, p)
        };
        for ev in events {
            let before = w.clone();
            let (_, update, p) = sync(&mut w, &mut status, replicas, revision);
            let end = shape.start + replicas;
            let in_range = |o: i32| (shape.start..end).contains(&o);
            let available = |pod: &Pod| pods::is_healthy(pod);
            let for_update: Vec<&Pod> = p.actions.iter().filter_map(|a| match a {
                Action::DeletePod { name, reason: DeleteReason::Update, .. } =>
                    before.pods.iter().find(|q| q.metadata.name.as_deref() == Some(name.as_str())),
                _ => None,
            }).collect();
            if shape.on_delete {
                proptest::prop_assert!(for_update.is_empty(), "OnDelete deleted {:?}", for_update.len());
            }
            // Unavailable in-range slots before the update deletions (missing ones included,
            // whether or not this plan creates them).
            let down = (shape.start..end).filter(|o| {
                !before.pods.iter().any(|q| pods::get_ordinal(q) == *o && available(q))
            }).count() as i32;
            let healthy_deleted = for_update.iter().filter(|q| available(q)).count() as i32;
            if shape.max_unavailable.is_some() {
                // KEP-961: every unavailable in-range pod counts against the budget.
                proptest::prop_assert!(
                    healthy_deleted == 0 || down + healthy_deleted <= budget(replicas),
                    "{} unavailable and {} available pods deleted for the update (maxUnavailable {})",
                    down, healthy_deleted, budget(replicas)
                );
            } else {
                // Without it (upstream's default): one pod at a time, and an available one only
                // when every slot above it holds an available pod at the update revision.
                proptest::prop_assert!(for_update.len() <= 1, "{} pods deleted for the update at once", for_update.len());
                for q in for_update.iter().filter(|q| available(q)) {
                    let o = pods::get_ordinal(q);
                    for above in (o + 1)..end {
                        proptest::prop_assert!(
                            before.pods.iter().any(|h| pods::get_ordinal(h) == above
                                && available(h) && pods::revision_of(h) == update),
                            "web-{} deleted while web-{} is missing, unavailable or old", o, above
                        );
                    }
                }
            }
            for q in &for_update {
                let o = pods::get_ordinal(q);
                proptest::prop_assert!(o >= shape.start + shape.partition, "web-{} is below the partition", o);
                proptest::prop_assert!(in_range(o));
                if available(q) {
                    // Highest first: every pod above it is updated, terminating or deleted too.
                    for higher in before.pods.iter().filter(|h| pods::get_ordinal(h) > o && in_range(pods::get_ordinal(h))) {
                        proptest::prop_assert!(
                            pods::revision_of(higher) == update
                                || pods::is_terminating(higher)
                                || for_update.iter().any(|d| d.metadata.name == higher.metadata.name),
                            "web-{} deleted before the old web-{}", o, pods::get_ordinal(higher)
                        );
                    }
                }
            }
            match ev {
                Event::Ready(i) if !w.pods.is_empty() => {
                    let name = w.pods[i % w.pods.len()].metadata.name.clone().unwrap_or_default();
                    if w.pods[i % w.pods.len()].metadata.deletion_timestamp.is_none() {
                        w.make_ready(&name);
                    }
                }
                Event::Fail(i) if !w.pods.is_empty() => {
                    let n = w.pods.len();
                    w.pods[i % n].status = Some(PodStatus { phase: Some("Failed".into()), ..Default::default() });
                }
                Event::Reap(i) => {
                    let terminating: Vec<usize> =
                        (0..w.pods.len()).filter(|j| pods::is_terminating(&w.pods[*j])).collect();
                    if !terminating.is_empty() {
                        w.pods.remove(terminating[i % terminating.len()]);
                    }
                }
                Event::UserDelete(i) if !w.pods.is_empty() => {
                    let n = w.pods.len();
                    w.pods[i % n].metadata.deletion_timestamp = Some(Time(now()));
                }
                Event::Scale(n) => replicas = n,
                Event::NewTemplate => revision += 1,
                _ => {}
            }
            let mut ordinals: Vec<i32> = w.pods.iter().map(pods::get_ordinal).collect();
            ordinals.sort();
            ordinals.dedup();
            proptest::prop_assert_eq!(ordinals.len(), w.pods.len(), "two pods share an ordinal");
        }
        // Let everything finish and become ready until the set settles.
        for _ in 0..(6 * 8 + 8) {
            sync(&mut w, &mut status, replicas, revision);
            w.pods.retain(|p| !pods::is_terminating(p));
            for n in w.names() {
                w.make_ready(&n);
            }
        }
        let update = format!("v{revision}");
        let mut ordinals: Vec<i32> = w.pods.iter().map(pods::get_ordinal).collect();
        ordinals.sort();
        proptest::prop_assert_eq!(ordinals, (shape.start..shape.start + replicas).collect::<Vec<_>>());
        if !shape.on_delete {
            for pod in w.pods.iter().filter(|p| pods::get_ordinal(p) >= shape.start + shape.partition) {
                proptest::prop_assert_eq!(pods::revision_of(pod), update.as_str());
            }
        }
    }
}

fn claim_owner_kinds(w: &World, claim: &str) -> Vec<String> {
    w.claims
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(claim))
        .map(|c| c.metadata.owner_references.iter().flatten().map(|r| format!("{}/{}", r.kind, r.name)).collect())
        .unwrap_or_default()
}

#[test]
fn retention_retain_leaves_claims_unowned() {
    let (w, _) = rolled_out(2, json!({}));
    assert!(claim_owner_kinds(&w, "www-web-0").is_empty());
}

#[test]
fn retention_when_deleted_delete_gives_claims_to_the_set() {
    let policy =
        json!({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"}}});
    let (w, _) = rolled_out(2, policy);
    assert_eq!(claim_owner_kinds(&w, "www-web-1"), ["StatefulSet/web"]);
}

#[test]
fn retention_when_scaled_delete_gives_condemned_claims_to_their_pod_first() {
    let policy =
        json!({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"}}});
    let (mut w, _) = rolled_out(2, policy.clone());
    let mut scaled = policy;
    scaled["spec"]["replicas"] = json!(1);
    let s = set(1, "OrderedReady", scaled);
    let p = w.plan(&s, "v1");
    // The claim is handed to web-1 in the same plan, before web-1 is deleted.
    let order: Vec<String> = p
        .actions
        .iter()
        .map(|a| match a {
            Action::SetClaimOwners { name, .. } => format!("own {name}"),
            Action::DeletePod { name, .. } => format!("delete {name}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(order, ["own www-web-1", "delete web-1"]);
    w.apply(&p);
    assert_eq!(claim_owner_kinds(&w, "www-web-1"), ["Pod/web-1"]);
    assert_eq!(claim_owner_kinds(&w, "www-web-0"), ["StatefulSet/web"]);
    // Scaling back up before the collector removed the claim waits for it.
    let s2 = set(
        2,
        "OrderedReady",
        json!({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"}}}),
    );
    let p = w.plan(&s2, "v1");
    assert!(created(&p).is_empty());
    assert_eq!(p.wait, Some(Wait::ClaimTerminating(1)));
}

#[test]
fn max_unavailable_rounds_down_and_is_at_least_one() {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    assert_eq!(max_unavailable(&IntOrString::String("25%".into()), 10), 2);
    assert_eq!(max_unavailable(&IntOrString::String("10%".into()), 5), 1);
    assert_eq!(max_unavailable(&IntOrString::Int(3), 10), 3);
    assert_eq!(max_unavailable(&IntOrString::Int(0), 10), 1);
}

#[test]
fn max_unavailable_replaces_several_pods_at_once_from_the_top() {
    let (mut w, s) =
        rolled_out(5, json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 1, "maxUnavailable": 2}}}}));
    let p = w.plan(&s, "v2");
    assert_eq!(deleted(&p), ["web-4", "web-3"]);
    w.apply(&p);
    // Two slots are down: nothing more is deleted; web-3 is recreated first (ordered).
    let p = w.plan(&s, "v2");
    assert_eq!((created(&p), deleted(&p)), (vec!["web-3".to_string()], vec![]));
    w.apply(&p);
    w.make_ready("web-3");
    w.apply(&w.plan(&s, "v2"));
    w.make_ready("web-4");
    let p = w.plan(&s, "v2");
    assert_eq!(deleted(&p), ["web-2", "web-1"]);
}

#[test]
fn parallel_max_unavailable_replaces_broken_old_pods_without_spending_budget() {
    let (mut w, mut s) = rolled_out(
        3,
        json!({"spec": {"podManagementPolicy": "Parallel", "updateStrategy": {"rollingUpdate": {"maxUnavailable": 1}}}}),
    );
    if let Some(sp) = s.spec.as_mut() {
        sp.pod_management_policy = Some("Parallel".into());
    }
    // web-0 and web-2 are broken at the old revision: both are replaced at once.
    for i in [0, 2] {
        w.pods[i].status = Some(PodStatus { phase: Some("Running".into()), ..Default::default() });
    }
    let p = w.plan(&s, "v2");
    assert_eq!(deleted(&p), ["web-2", "web-0"]);
}

#[test]
fn a_broken_rollout_recovers_once_the_template_is_fixed() {
    // v1 everywhere; v2 is bad: web-2 is recreated at v2 and never becomes ready.
    let (mut w, mut s) = rolled_out(3, json!({}));
    let p = w.plan(&s, "v2");
    w.apply(&p);
    w.apply(&w.plan(&s, "v2"));
    assert_eq!(pods::revision_of(&w.pods[2]), "v2");
    let p = w.plan(&s, "v2");
    assert_eq!(p.wait, Some(Wait::Unhealthy(2)), "stuck at the bad revision");
    w.pods[2].status = Some(status_of(json!({"phase": "Running", "containerStatuses": [
        {"name": "nginx", "image": "nginx:2", "imageID": "", "ready": false, "restartCount": 0,
         "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]})));
    // The user reverts to v1 (upstream: stuck forever, #67250). Ordinal replaces web-2.
    if let Some(st) = s.status.as_mut() {
        st.current_revision = Some("v1".into());
    }
    let p = w.plan(&s, "v1");
    assert_eq!(deleted(&p), ["web-2"], "reverted: the bad pod is replaced");
    let p = w.plan(&s, "v3");
    assert_eq!(deleted(&p), ["web-2"], "changed again: likewise");
    // Opting out keeps upstream's behaviour.
    s.metadata.annotations = Some([(ROLLOUT_RECOVERY_ANNOTATION.to_string(), "false".to_string())].into());
    let p = w.plan(&s, "v3");
    assert!(deleted(&p).is_empty());
    assert_eq!(p.wait, Some(Wait::Unhealthy(2)));
}

fn status_of(v: serde_json::Value) -> PodStatus {
    serde_json::from_value(v).expect("pod status")
}

/// Which pods broken-rollout recovery replaces: only failing ones at the cursor.
#[test]
fn broken_rollout_recovery_never_replaces_a_starting_pod() {
    let started = |secs_ago: i64| {
        let at = Timestamp::from_second(now().as_second() - secs_ago).expect("valid").to_string();
        json!({"phase": "Running", "containerStatuses": [{"name": "nginx", "image": "nginx:2", "imageID": "",
            "ready": false, "restartCount": 0, "state": {"running": {"startedAt": at}}}]})
    };
    let waiting = |reason: &str| {
        json!({"phase": "Pending", "containerStatuses": [{"name": "nginx", "image": "nginx:2", "imageID": "",
            "ready": false, "restartCount": 0, "state": {"waiting": {"reason": reason}}}]})
    };
    let restarted = json!({"phase": "Running", "containerStatuses": [{"name": "nginx", "image": "nginx:2",
        "imageID": "", "ready": false, "restartCount": 2, "state": {"running": {"startedAt": now().to_string()}}}]});
    let probed = json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1",
        "readinessProbe": {"httpGet": {"port": 80}, "periodSeconds": 5, "failureThreshold": 4}}]}}}});
    // (case, set, web-2's status at the bad revision v2, whether web-1 is also at v2, replaced?)
    let cases = [
        ("pending, no status yet", json!({}), json!({"phase": "Pending"}), false, false),
        ("pulling the image", json!({}), waiting("ContainerCreating"), false, false),
        ("image pull back-off", json!({}), waiting("ImagePullBackOff"), false, true),
        ("crash loop", json!({}), waiting("CrashLoopBackOff"), false, true),
        ("bad configuration", json!({}), waiting("CreateContainerConfigError"), false, true),
        ("restarted, not ready", json!({}), restarted.clone(), false, true),
        ("within its probe budget (20 s + 10 s)", probed.clone(), started(25), false, false),
        ("past its probe budget (20 s + 10 s)", probed.clone(), started(35), false, true),
        ("no probes, just started", json!({}), started(5), false, false),
        ("no probes, running 15 s and not ready", json!({}), started(15), false, true),
        ("below the cursor", json!({}), waiting("CrashLoopBackOff"), true, false),
    ];
    for (case, extra, status, web1_bad, replaced) in cases {
        let (mut w, mut s) = rolled_out(3, extra.clone());
        // v2 reached web-2 (and, for one case, web-1 before that) and broke it; the user moved on to v3.
        let bad = |w: &mut World, i: usize, st: &serde_json::Value| {
            w.pods[i].metadata.labels.as_mut().map(|l| l.insert(pods::REVISION_LABEL.into(), "v2".into()));
            w.pods[i].status = Some(status_of(st.clone()));
        };
        if web1_bad {
            bad(&mut w, 1, &status);
            bad(&mut w, 2, &json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}));
        } else {
            bad(&mut w, 2, &status);
        }
        if let Some(st) = s.status.as_mut() {
            st.current_revision = Some("v1".into());
        }
        let p = w.plan(&s, "v3");
        let expected: Vec<String> = if replaced { vec!["web-2".into()] } else { vec![] };
        assert_eq!(deleted(&p), expected, "{case}");
    }
}

#[test]
fn a_pending_pod_gets_its_missing_claims_back() {
    let (mut w, s) = rolled_out(2, json!({}));
    w.pods[1].status = Some(PodStatus { phase: Some("Pending".into()), ..Default::default() });
    w.claims.retain(|c| c.metadata.name.as_deref() != Some("www-web-1"));
    let p = w.plan(&s, "v1");
    let made: Vec<String> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateClaim(c) => c.metadata.name.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(made, ["www-web-1"]);
    // A Running pod is left alone (upstream only looks at Pending ones).
    w.make_ready("web-1");
    assert!(w.plan(&s, "v1").actions.is_empty());
}

#[test]
fn parallel_rolling_update_waits_for_the_pod_it_recreates() {
    let (mut w, s) = rolled_out(3, json!({"spec": {"podManagementPolicy": "Parallel"}}));
    let p = w.plan(&s, "v2");
    assert_eq!(deleted(&p), ["web-2"]);
    w.apply(&p);
    // web-2 is gone: it is recreated, and web-1 stays until web-2 is Ready (upstream counts the
    // pod it has just made as unavailable).
    let p = w.plan(&s, "v2");
    assert_eq!((created(&p), deleted(&p)), (vec!["web-2".to_string()], vec![]));
    assert_eq!(p.wait, Some(Wait::Unhealthy(2)));
    w.apply(&p);
    assert!(deleted(&w.plan(&s, "v2")).is_empty());
    w.make_ready("web-2");
    assert_eq!(deleted(&w.plan(&s, "v2")), ["web-1"]);
}

#[test]
fn identity_labels_are_repaired() {
    let (mut w, s) = rolled_out(2, json!({}));
    w.pods[1].metadata.labels.as_mut().map(|l| l.remove("statefulset.kubernetes.io/pod-name"));
    let p = w.plan(&s, "v1");
    let repaired: Vec<&Action> = p.actions.iter().filter(|a| matches!(a, Action::RepairIdentity { .. })).collect();
    assert_eq!(repaired.len(), 1);
    w.apply(&p);
    assert!(pods::identity_matches(&s, &w.pods[1]));
    assert!(w.plan(&s, "v1").actions.is_empty());
}

#[test]
fn orphans_named_as_members_are_adopted_and_mismatches_released() {
    let s = set(2, "OrderedReady", json!({}));
    let mut orphan = pods::new_pod(&s, &World::template(&s), "r", 1);
    orphan.metadata.owner_references = None;
    let mut stranger = orphan.clone();
    stranger.metadata.name = Some("other-0".into());
    let mut drifted = pods::new_pod(&s, &World::template(&s), "r", 0);
    drifted.metadata.labels.as_mut().map(|l| l.insert("app".into(), "else".into()));
    let all = [orphan, stranger, drifted];
    let selector = |p: &Pod| p.metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str) == Some("nginx");
    let (adopt, release) = pods::claim_pods(&s, &selector, &all);
    let names = |v: Vec<&Pod>| v.into_iter().filter_map(|p| p.metadata.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(adopt), ["web-1"]);
    assert_eq!(names(release), ["web-0"]);
}

#[test]
fn ordinals_start_where_the_spec_says() {
    let s = set(2, "OrderedReady", json!({"spec": {"ordinals": {"start": 5}}}));
    let mut w = World::default();
    let p = w.plan(&s, "r");
    assert_eq!(created(&p), ["web-5"]);
    w.apply(&p);
    w.make_ready("web-5");
    assert_eq!(created(&w.plan(&s, "r")), ["web-6"]);
    // Moving the start condemns the low ordinal (it is removed once the new range is healthy).
    let moved = set(2, "OrderedReady", json!({"spec": {"ordinals": {"start": 6}}}));
    w.apply(&w.plan(&s, "r"));
    w.make_ready("web-6");
    let p = w.plan(&moved, "r");
    assert_eq!(created(&p), ["web-7"]);
}

#[test]
fn growing_a_claim_template_grows_the_sets_existing_claims_only() {
    let set: StatefulSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "serviceName": "web", "template": {},
            "volumeClaimTemplates": [{"metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}}]}
    }))
    .expect("set");
    let claim = |name: &str, size: &str| -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"resources": {"requests": {"storage": size}}}}))
        .expect("claim")
    };
    let claims = vec![
        claim("www-web-0", "1Gi"),
        claim("www-web-1", "2Gi"),
        claim("www-web-2", "3Gi"),
        claim("www-webby-0", "1Gi"),
        claim("data-web-0", "1Gi"),
    ];
    assert_eq!(
        crate::statefulset::pods::claims_to_grow(&set, &claims),
        vec![("www-web-0".to_string(), "2Gi".to_string())],
        "only this set's claims of that template, and only those below the request"
    );
}
