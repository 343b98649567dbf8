use super::*;

fn pod(policy: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web-0", "namespace": "default"},
        "spec": {"restartPolicy": policy, "containers": [{"name": "app", "image": "busybox"}]},
        "status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    }))
    .expect("pod")
}

fn view(name: &str, state: State) -> ContainerView {
    ContainerView {
        name: name.into(),
        image: "busybox".into(),
        image_id: String::new(),
        container_id: String::new(),
        restart_count: 0,
        state,
        last: None,
    }
}

fn exited(code: i32) -> State {
    State::Terminated(Terminated {
        exit_code: code,
        signal: None,
        reason: Terminated::reason_for(code, false, false).into(),
        message: String::new(),
        started_at: at("2026-01-01T00:00:00Z"),
        finished_at: at("2026-01-01T00:00:05Z"),
        container_id: "ordinal://x".into(),
    })
}

fn at(t: &str) -> Timestamp {
    t.parse().expect("timestamp")
}

fn running(ready: bool) -> State {
    State::Running { started_at: at("2026-01-01T00:00:00Z"), ready, started: true }
}

fn waiting(reason: WaitingReason) -> State {
    State::Waiting { reason, message: String::new() }
}

#[test]
fn phases_follow_kubelet() {
    let p = |policy: &str, states: Vec<State>| {
        let views: Vec<ContainerView> =
            states.into_iter().enumerate().map(|(i, s)| view(&format!("c{i}"), s)).collect();
        phase(&pod(policy), &[], &views)
    };
    assert_eq!(p("Always", vec![waiting(WaitingReason::ContainerCreating)]), "Pending");
    assert_eq!(p("Always", vec![running(false)]), "Running");
    assert_eq!(p("Never", vec![exited(0), exited(0)]), "Succeeded");
    assert_eq!(p("Never", vec![exited(0), exited(1)]), "Failed");
    assert_eq!(p("OnFailure", vec![exited(1)]), "Running", "a failed container restarts");
    assert_eq!(p("Always", vec![exited(0)]), "Running", "Always restarts even a success");
    assert_eq!(p("Never", vec![running(true), exited(1)]), "Running");
    // A container in back-off after a crash counts as stopped, not as never started.
    let mut crashed = view("c", waiting(WaitingReason::CrashLoopBackOff));
    crashed.last = Some(match exited(2) {
        State::Terminated(t) => t,
        _ => unreachable!(),
    });
    assert_eq!(phase(&pod("Always"), &[], &[crashed]), "Running");
}

#[test]
fn init_containers_gate_the_pod() {
    let app = [view("app", waiting(WaitingReason::PodInitializing))];
    assert_eq!(phase(&pod("Always"), &[view("init", running(false))], &app), "Pending");
    assert_eq!(phase(&pod("Never"), &[view("init", exited(1))], &app), "Failed");
    assert_eq!(phase(&pod("Always"), &[view("init", exited(1))], &app), "Pending", "retried");
    let status = pod_status(
        &pod("Always"),
        &[view("init", running(false))],
        &app,
        &PodFacts::default(),
        at("2026-01-01T00:00:09Z"),
    );
    let initialized = status["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Initialized"));
    assert_eq!(initialized.map(|c| c["status"].clone()), Some(json!("False")));
    assert_eq!(initialized.map(|c| c["reason"].clone()), Some(json!("ContainersNotInitialized")));
}

#[test]
fn readiness_and_conditions() {
    let facts = PodFacts {
        pod_ip: "10.244.0.5".into(),
        host_ip: "10.244.0.1".into(),
        start_time: Some(at("2026-01-01T00:00:00Z")),
        sandbox_ready: true,
    };
    let status = pod_status(&pod("Always"), &[], &[view("app", running(false))], &facts, at("2026-01-01T00:00:09Z"));
    let cond = |s: &Value, t: &str| s["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == t).cloned());
    assert_eq!(cond(&status, "Ready").map(|c| c["status"].clone()), Some(json!("False")));
    assert_eq!(
        cond(&status, "Ready").map(|c| c["message"].clone()),
        Some(json!("containers with unready status: [app]"))
    );
    assert_eq!(status["podIP"], "10.244.0.5");
    assert_eq!(status["startTime"], "2026-01-01T00:00:00Z");
    assert_eq!(
        cond(&status, "PodScheduled").map(|c| c["lastTransitionTime"].clone()),
        Some(json!("2026-01-01T00:00:00Z"))
    );

    let ready = pod_status(&pod("Always"), &[], &[view("app", running(true))], &facts, at("2026-01-01T00:00:10Z"));
    assert_eq!(cond(&ready, "Ready").map(|c| c["status"].clone()), Some(json!("True")));
    assert_eq!(ready["containerStatuses"][0]["ready"], true);
    assert_eq!(ready["containerStatuses"][0]["state"]["running"]["startedAt"], "2026-01-01T00:00:00Z");

    // A finished pod is not ready, with kubelet's reason.
    let done = pod_status(&pod("Never"), &[], &[view("app", exited(0))], &facts, at("2026-01-01T00:00:10Z"));
    assert_eq!(done["phase"], "Succeeded");
    assert_eq!(cond(&done, "Ready").map(|c| c["reason"].clone()), Some(json!("PodCompleted")));
    assert_eq!(done["containerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
}

#[test]
fn transition_times_are_kept_while_a_condition_holds() {
    let facts = PodFacts { sandbox_ready: true, ..Default::default() };
    let first = pod_status(&pod("Always"), &[], &[view("app", running(true))], &facts, at("2026-01-01T00:00:01Z"));
    let mut p = pod("Always");
    p.status = Some(serde_json::from_value(first.clone()).expect("status"));
    let second = pod_status(&p, &[], &[view("app", running(true))], &facts, at("2026-01-01T00:00:02Z"));
    assert_eq!(first["conditions"], second["conditions"]);
    let third = pod_status(&p, &[], &[view("app", running(false))], &facts, at("2026-01-01T00:00:03Z"));
    let ready = third["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned());
    assert_eq!(ready.map(|c| c["lastTransitionTime"].clone()), Some(json!("2026-01-01T00:00:03Z")));
    // The start time is the first status's, kept afterwards.
    assert_eq!(first["startTime"], "2026-01-01T00:00:01Z");
    assert_eq!(third["startTime"], "2026-01-01T00:00:01Z");
}

#[test]
fn restart_rules() {
    assert!(should_restart("Always", 0));
    assert!(!should_restart("OnFailure", 0));
    assert!(should_restart("OnFailure", 1));
    assert!(!should_restart("Never", 1));
}

#[test]
fn reasons() {
    assert_eq!(Terminated::reason_for(137, true, false), "OOMKilled");
    assert_eq!(Terminated::reason_for(128, false, true), "StartError");
    assert_eq!(Terminated::reason_for(1, false, false), "Error");
    assert_eq!(Terminated::reason_for(0, false, false), "Completed");
}
