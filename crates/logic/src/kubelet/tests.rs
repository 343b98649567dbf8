use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::*;
use crate::pod_status::{self, PodFacts};

/// Seconds after a fixed instant.
fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + secs).expect("timestamp")
}

const TIMING: Timing = Timing::KUBELET;

fn pod_with(policy: &str, spec: Value) -> Pod {
    let mut spec = spec;
    spec["restartPolicy"] = json!(policy);
    serde_json::from_value(json!({
        "metadata": {"name": "web-0", "namespace": "default", "uid": "uid-1"},
        "spec": spec,
        "status": {"phase": "Running"}
    }))
    .expect("pod")
}

fn pod(policy: &str) -> Pod {
    pod_with(policy, json!({"containers": [{"name": "app", "image": "busybox"}]}))
}

fn terminated(attempt: u32, code: i32, started: i64, finished: i64) -> Terminated {
    Terminated {
        exit_code: code,
        signal: None,
        reason: Terminated::reason_for(code, false, false).into(),
        message: String::new(),
        started_at: t(started),
        finished_at: t(finished),
        container_id: container_id("uid-1", "app", attempt),
    }
}

fn run(attempt: u32, state: RunState) -> Run {
    Run { attempt, image: "busybox".into(), image_id: "busybox@sha256:1".into(), state }
}

fn running(attempt: u32, started: i64) -> ContainerObserved {
    ContainerObserved { latest: Some(run(attempt, RunState::Running { started_at: t(started) })), ..Default::default() }
}

fn exited(attempt: u32, code: i32, finished: i64) -> ContainerObserved {
    let done = terminated(attempt, code, finished - 1, finished);
    ContainerObserved { latest: Some(run(attempt, RunState::Exited(done))), ..Default::default() }
}

fn ready_pod(containers: Vec<(&str, ContainerObserved)>) -> PodObserved {
    PodObserved {
        sandbox: Prerequisite::Ready,
        volumes: Prerequisite::Ready,
        containers: containers.into_iter().map(|(n, c)| (n.to_string(), c)).collect(),
    }
}

fn starts(actions: &PodActions) -> Vec<(&str, bool)> {
    actions.start.iter().map(|s| (s.name.as_str(), s.init)).collect()
}

fn status(pod: &Pod, observed: &PodObserved) -> Value {
    let (init, regular) = container_statuses(pod, observed);
    pod_status::pod_status(pod, &init, &regular, &PodFacts { sandbox_ready: true, ..Default::default() }, t(100))
}

#[test]
fn a_new_pod_gets_its_sandbox_then_its_volumes_then_its_containers() {
    let p = pod("Always");
    let mut observed = PodObserved::default();
    let a = compute_pod_actions(&p, &observed, t(0), &TIMING);
    assert_eq!((a.create_sandbox, a.mount_volumes, a.start.len()), (true, false, 0));
    observed.sandbox = Prerequisite::Ready;
    let a = compute_pod_actions(&p, &observed, t(0), &TIMING);
    assert_eq!((a.create_sandbox, a.mount_volumes, a.start.len()), (false, true, 0));
    observed.volumes = Prerequisite::Ready;
    let a = compute_pod_actions(&p, &observed, t(0), &TIMING);
    assert_eq!(starts(&a), [("app", false)]);
    assert_eq!(a.start[0].backoff, BackOff::default(), "a first start does not touch the back-off");
    // A sandbox that failed is tried again when its retry is due, not before.
    observed.sandbox = Prerequisite::Failed { message: "no addresses".into(), until: t(5) };
    let a = compute_pod_actions(&p, &observed, t(1), &TIMING);
    assert_eq!((a.create_sandbox, a.wake_at), (false, Some(t(5))));
    assert!(compute_pod_actions(&p, &observed, t(5), &TIMING).create_sandbox);
}

#[test]
fn restart_policy_by_exit_code() {
    // (policy, exit code, restarted?, phase once it exited for good or while it restarts)
    let table = [
        ("Always", 0, true, "Running"),
        ("Always", 1, true, "Running"),
        ("OnFailure", 0, false, "Succeeded"),
        ("OnFailure", 1, true, "Running"),
        ("Never", 0, false, "Succeeded"),
        ("Never", 1, false, "Failed"),
        ("Never", 137, false, "Failed"),
    ];
    for (policy, code, restarted, phase) in table {
        let p = pod(policy);
        let observed = ready_pod(vec![("app", exited(0, code, 10))]);
        let a = compute_pod_actions(&p, &observed, t(10), &TIMING);
        assert_eq!(!a.start.is_empty(), restarted, "{policy} exit {code}");
        assert_eq!(status(&p, &observed)["phase"], phase, "{policy} exit {code}");
    }
}

#[test]
fn crash_loop_back_off_doubles_to_five_minutes_and_resets_after_a_long_run() {
    let p = pod("Always");
    let mut c = exited(0, 1, 0);
    let mut now = t(0);
    let mut waits = Vec::new();
    // Each crash happens one second after its start.
    for attempt in 0..9u32 {
        let a = compute_pod_actions(&p, &ready_pod(vec![("app", c.clone())]), now, &TIMING);
        let waited = if let Some((_, w)) = a.wait.first() {
            assert_eq!(w.reason, WaitingReason::CrashLoopBackOff);
            assert_eq!(a.wake_at, Some(w.until));
            let waited = w.until.duration_since(now).as_secs();
            now = w.until;
            waited
        } else {
            0
        };
        waits.push(waited);
        let a = compute_pod_actions(&p, &ready_pod(vec![("app", c.clone())]), now, &TIMING);
        assert_eq!(starts(&a), [("app", false)], "restart {attempt} at {now}");
        c.backoff = a.start[0].backoff;
        c.started(run(attempt + 1, RunState::Running { started_at: now }));
        now = now.checked_add(SignedDuration::from_secs(1)).expect("time");
        c.exited(terminated(attempt + 1, 1, 0, now.as_second() - t(0).as_second()));
    }
    assert_eq!(waits, [0, 10, 20, 40, 80, 160, 300, 300, 300]);

    // The message quotes the delay as kubelet does.
    let a = compute_pod_actions(&p, &ready_pod(vec![("app", c.clone())]), now, &TIMING);
    assert_eq!(a.wait[0].1.message, "back-off 5m0s restarting failed container=app pod=web-0_default(uid-1)",);

    // A run that lasted more than twice the maximum before failing restarts at once, and the
    // back-off starts over.
    let mut long = exited(3, 1, 2000);
    long.backoff = BackOff { delay: SignedDuration::from_secs(80), last_update: Some(t(1000)) };
    let a = compute_pod_actions(&p, &ready_pod(vec![("app", long)]), t(2000), &TIMING);
    assert_eq!(starts(&a), [("app", false)]);
    assert_eq!(a.start[0].backoff.delay, SignedDuration::from_secs(10));
}

#[test]
fn probes_decide_kills_and_readiness() {
    let probed = |policy: &str, f: &dyn Fn(&mut ContainerObserved)| {
        let p = pod_with(
            policy,
            json!({"containers": [{"name": "app", "image": "busybox",
                "startupProbe": {"exec": {"command": ["true"]}},
                "readinessProbe": {"exec": {"command": ["true"]}},
                "livenessProbe": {"exec": {"command": ["true"]}}}]}),
        );
        let mut c = running(0, 0);
        f(&mut c);
        let observed = ready_pod(vec![("app", c)]);
        let a = compute_pod_actions(&p, &observed, t(5), &TIMING);
        let s = status(&p, &observed);
        let c = &s["containerStatuses"][0];
        (a.kill.first().map(|k| (k.reason, k.message.clone())), c["started"].clone(), c["ready"].clone())
    };
    // Not started until the startup probe succeeds; not ready until readiness does.
    assert_eq!(probed("Always", &|_| {}), (None, json!(false), json!(false)));
    assert_eq!(probed("Always", &|c| c.probed(ProbeKind::Startup, true)), (None, json!(true), json!(false)));
    let ready = |c: &mut ContainerObserved| {
        c.probed(ProbeKind::Startup, true);
        c.probed(ProbeKind::Readiness, true);
    };
    assert_eq!(probed("Always", &ready), (None, json!(true), json!(true)));
    // Liveness and startup failures stop the container, restarted unless the policy is Never.
    let killed = probed("Always", &|c| {
        ready(c);
        c.probed(ProbeKind::Liveness, false);
    });
    assert_eq!(
        killed.0,
        Some((KillReason::LivenessProbe, "Container app failed liveness probe, will be restarted".into()))
    );
    let never = probed("Never", &|c| c.probed(ProbeKind::Liveness, false));
    assert_eq!(never.0, Some((KillReason::LivenessProbe, "Container app failed liveness probe".into())));
    let startup = probed("OnFailure", &|c| c.probed(ProbeKind::Startup, false));
    assert_eq!(
        startup.0,
        Some((KillReason::StartupProbe, "Container app failed startup probe, will be restarted".into()))
    );
    // Once a stop is under way, it is not decided again.
    let stopping = probed("Always", &|c| {
        c.probed(ProbeKind::Liveness, false);
        c.stopping = true;
    });
    assert_eq!(stopping.0, None);
}

#[test]
fn a_changed_image_stops_the_container_to_run_the_new_one() {
    for (policy, message) in [
        ("Always", "Container app definition changed, will be restarted"),
        ("Never", "Container app definition changed"),
    ] {
        let mut p = pod(policy);
        p.spec.as_mut().expect("spec").containers[0].image = Some("busybox:2".into());
        let a = compute_pod_actions(&p, &ready_pod(vec![("app", running(0, 0))]), t(5), &TIMING);
        assert_eq!(a.kill.len(), 1);
        assert_eq!((a.kill[0].reason, a.kill[0].message.as_str()), (KillReason::DefinitionChanged, message));
    }
}

#[test]
fn init_containers_run_one_at_a_time_then_the_regular_ones() {
    let spec = json!({"initContainers": [{"name": "one", "image": "busybox"}, {"name": "two", "image": "busybox"}],
        "containers": [{"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}]});
    let always = pod_with("Always", spec.clone());
    let never = pod_with("Never", spec);
    let step = |p: &Pod, cs: Vec<(&str, ContainerObserved)>| {
        let observed = ready_pod(cs);
        let a = compute_pod_actions(p, &observed, t(100), &TIMING);
        let names: Vec<(String, bool)> = a.start.iter().map(|s| (s.name.clone(), s.init)).collect();
        (names, status(p, &observed)["phase"].clone())
    };
    let s = |n: &str, init: bool| (n.to_string(), init);
    assert_eq!(step(&always, vec![]), (vec![s("one", true)], json!("Pending")));
    assert_eq!(step(&always, vec![("one", running(0, 0))]), (vec![], json!("Pending")));
    assert_eq!(step(&always, vec![("one", exited(0, 0, 5))]), (vec![s("two", true)], json!("Pending")));
    // A failed init container is retried (after its back-off) unless the policy is Never,
    // which fails the pod.
    assert_eq!(
        step(&always, vec![("one", exited(0, 0, 5)), ("two", exited(0, 1, 6))]),
        (vec![s("two", true)], json!("Pending"))
    );
    assert_eq!(step(&never, vec![("one", exited(0, 0, 5)), ("two", exited(0, 1, 6))]), (vec![], json!("Failed")));
    let done = vec![("one", exited(0, 0, 5)), ("two", exited(0, 0, 6))];
    assert_eq!(step(&always, done), (vec![s("app", false), s("side", false)], json!("Pending")));
    // A running regular container means initialization happened, even when the init
    // containers' runs are gone: they are not run again, and the terminated states the API
    // showed for them are kept.
    let mut recovered = always.clone();
    let done = json!({"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": "2026-01-01T00:00:05Z"}});
    recovered.status = Some(
        serde_json::from_value(json!({"phase": "Running", "initContainerStatuses": [
            {"name": "one", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0, "state": done},
            {"name": "two", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0, "state": done}]}))
        .expect("status"),
    );
    let found = vec![("app", running(0, 7)), ("side", exited(0, 1, 8))];
    assert_eq!(step(&recovered, found), (vec![s("side", false)], json!("Running")));
}

#[test]
fn start_failures_wait_and_pulls_back_off() {
    let p = pod("Always");
    let mut c = ContainerObserved::default();
    c.start_failed(WaitingReason::ErrImagePull, "Failed to pull image \"busybox\": refused".into(), t(0), &TIMING);
    let observed = ready_pod(vec![("app", c.clone())]);
    // What the failed start reported first…
    assert_eq!(status(&p, &observed)["containerStatuses"][0]["state"]["waiting"]["reason"], "ErrImagePull");
    // …becomes ImagePullBackOff while the pull backs off.
    let a = compute_pod_actions(&p, &observed, t(1), &TIMING);
    let (name, w) = &a.wait[0];
    assert_eq!(
        (name.as_str(), w.reason, w.message.as_str()),
        ("app", WaitingReason::ImagePullBackOff, "Back-off pulling image \"busybox\"")
    );
    assert_eq!(w.until, t(10));
    assert!(c.wait(w.clone()), "a new reason is worth an event");
    assert!(!c.wait(w.clone()), "the same reason again is not");
    assert_eq!(
        starts(&compute_pod_actions(&p, &ready_pod(vec![("app", c.clone())]), t(10), &TIMING)),
        [("app", false)]
    );
    // The second failure backs off twice as long.
    c.start_failed(WaitingReason::ErrImagePull, "refused".into(), t(10), &TIMING);
    assert_eq!(c.waiting.as_ref().map(|w| w.until), Some(t(30)));

    // Other failures are tried again after the retry time, with their own reason.
    let mut c = ContainerObserved::default();
    c.start_failed(WaitingReason::CreateContainerConfigError, "configmap \"cfg\" not found".into(), t(0), &TIMING);
    let a = compute_pod_actions(&p, &ready_pod(vec![("app", c)]), t(1), &TIMING);
    assert_eq!(a.wait[0].1.reason, WaitingReason::CreateContainerConfigError);
    assert_eq!(a.wake_at, Some(t(2)));
}

#[test]
fn recovered_containers_keep_what_the_api_showed_until_probed_again() {
    let mut p = pod_with(
        "Always",
        json!({"containers": [{"name": "app", "image": "busybox", "readinessProbe": {"exec": {"command": ["true"]}}}]}),
    );
    let ready_in_api = |p: &mut Pod, id: &str, ready: bool| {
        p.status = Some(
            serde_json::from_value(
                json!({"phase": "Running", "containerStatuses": [{"name": "app", "image": "busybox",
                "imageID": "", "containerID": id, "ready": ready, "restartCount": 2}]}),
            )
            .expect("status"),
        );
    };
    let found = ready_pod(vec![("app", running(2, 0))]);
    let ready = |p: &Pod, o: &PodObserved| status(p, o)["containerStatuses"][0]["ready"].clone();
    ready_in_api(&mut p, &container_id("uid-1", "app", 2), true);
    assert_eq!(ready(&p, &found), json!(true), "the same run stays ready until its prober says otherwise");
    let mut probed = found.clone();
    probed.container_mut("app").probed(ProbeKind::Readiness, false);
    assert_eq!(ready(&p, &probed), json!(false));
    ready_in_api(&mut p, &container_id("uid-1", "app", 1), true);
    assert_eq!(ready(&p, &found), json!(false), "another run's readiness is not this one's");
    // Restart counts come from the runs found.
    assert_eq!(status(&p, &found)["containerStatuses"][0]["restartCount"], 2);
}

#[test]
fn pods_that_finished_while_the_node_was_away_get_their_final_status() {
    let p = pod("OnFailure");
    let observed = ready_pod(vec![("app", exited(0, 0, 50))]);
    assert_eq!(compute_pod_actions(&p, &observed, t(60), &TIMING), PodActions::default());
    let s = status(&p, &observed);
    assert_eq!(s["phase"], "Succeeded");
    assert_eq!(s["containerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
    // Once the API says the pod is done, nothing more happens to it.
    let mut finished = p.clone();
    finished.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).expect("status"));
    let nothing_yet = PodObserved::default();
    assert_eq!(compute_pod_actions(&finished, &nothing_yet, t(60), &TIMING), PodActions::default());
    // Nor to a pod being deleted (the worker stops it instead).
    let mut deleting = pod("Always");
    deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(1)));
    assert_eq!(compute_pod_actions(&deleting, &observed, t(60), &TIMING), PodActions::default());
}

#[test]
fn container_statuses_show_why_a_container_waits() {
    let p = pod("Always");
    let mut c = exited(3, 2, 10);
    c.backoff = BackOff { delay: SignedDuration::from_secs(40), last_update: Some(t(9)) };
    let a = compute_pod_actions(&p, &ready_pod(vec![("app", c.clone())]), t(11), &TIMING);
    c.wait(a.wait[0].1.clone());
    let s = status(&p, &ready_pod(vec![("app", c)]));
    let app = &s["containerStatuses"][0];
    assert_eq!(app["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert_eq!(app["lastState"]["terminated"]["exitCode"], 2);
    assert_eq!(app["restartCount"], 3);
    assert_eq!(app["containerID"], "ordinal://uid-1-app-3");
    assert_eq!(s["phase"], "Running");
    // Not yet started: ContainerCreating.
    let s = status(&p, &ready_pod(vec![]));
    assert_eq!(s["containerStatuses"][0]["state"]["waiting"]["reason"], "ContainerCreating");
    assert_eq!(s["phase"], "Pending");
}

#[test]
fn probe_verdicts_follow_thresholds() {
    let timing = ProbeTiming::of(
        &serde_json::from_value(json!({"exec": {"command": ["true"]}, "successThreshold": 2, "failureThreshold": 3}))
            .expect("probe"),
    );
    // (results so far, the verdict changes each result reports)
    let table: [(&[bool], &[Option<bool>]); 5] = [
        (&[true], &[None]),
        (&[true, true], &[None, Some(true)]),
        (&[false, false, false], &[None, None, Some(false)]),
        (
            &[true, true, false, false, true, false, false, false],
            &[None, Some(true), None, None, None, None, None, Some(false)],
        ),
        (&[false, false, false, false, true, true, true], &[None, None, Some(false), None, None, Some(true), None]),
    ];
    for (results, want) in table {
        let mut counter = ProbeCounter::default();
        let got: Vec<Option<bool>> = results.iter().map(|r| counter.record(*r, &timing)).collect();
        assert_eq!(got, want, "{results:?}");
    }
    let defaults = ProbeTiming::of(&Default::default());
    assert_eq!((defaults.period.as_secs(), defaults.timeout.as_secs()), (10, 1));
    assert_eq!((defaults.success_threshold, defaults.failure_threshold), (1, 3));
}

#[test]
fn the_first_probe_waits_the_initial_delay_from_the_container_start() {
    let timing = ProbeTiming::of(&serde_json::from_value(json!({"initialDelaySeconds": 15})).expect("probe"));
    assert_eq!(timing.first_probe_in(t(0), t(0)), SignedDuration::from_secs(15));
    assert_eq!(timing.first_probe_in(t(0), t(10)), SignedDuration::from_secs(5), "a prober started later waits less");
    assert_eq!(timing.first_probe_in(t(0), t(60)), SignedDuration::ZERO);
}

#[test]
fn durations_read_as_go_prints_them() {
    let d = |s| go_duration(SignedDuration::from_secs(s));
    assert_eq!([d(10), d(60), d(160), d(300), d(3700)], ["10s", "1m0s", "2m40s", "5m0s", "1h1m40s"]);
}

#[test]
fn grace_period_comes_from_the_deletion_then_the_spec() {
    let mut p = pod("Always");
    assert_eq!(termination_grace(&p), SignedDuration::from_secs(30));
    p.spec.as_mut().expect("spec").termination_grace_period_seconds = Some(5);
    assert_eq!(termination_grace(&p), SignedDuration::from_secs(5));
    p.metadata.deletion_grace_period_seconds = Some(0);
    assert_eq!(termination_grace(&p), SignedDuration::ZERO);
}

#[test]
fn tokens_are_refreshed_at_eighty_percent_of_their_life_and_within_a_day() {
    let issued: Timestamp = "2026-12-05T10:00:00Z".parse().expect("time");
    let at = |seconds: i64| issued.checked_add(SignedDuration::from_secs(seconds)).expect("time");
    let cases = [
        // The default hour-and-seven-seconds token: after 48 minutes and 5.6 seconds.
        (3607, issued.checked_add(SignedDuration::from_millis(2_885_600)).expect("time")),
        (600, at(480)),
        (7 * 24 * 3600, at(24 * 3600)), // a week-long token: still within a day
        (0, issued),
    ];
    for (lifetime, want) in cases {
        assert_eq!(super::token_refresh_at(issued, at(lifetime)), want, "{lifetime}");
    }
}
