//! The Tenant controller on the real cluster: the stack becomes Ready on EU nodes only,
//! refused regions, a missing DPA and a suspended contract run no sender, a relabelled
//! node gets its pods evicted, a Ready tenant's reconcile writes nothing, deleting a
//! Tenant leaves nothing behind, and deletion protection refuses a delete.

use std::collections::BTreeMap;
use std::time::Duration;

use herald::api::v1alpha1::Tenant;
use herald::api::v1alpha1::conditions as types;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::audit;
use crate::common::{E2E_LABEL, WAIT, apply_examples, client, kubectl, operator, unique};

const REGION: &str = "topology.kubernetes.io/region";

/// A Tenant manifest; `patch` is merged into its spec.
fn tenant(name: &str, patch: Value) -> Tenant {
    let mut spec = json!({
        "displayName": "E2E Tenant GmbH",
        "contract": {"state": "Active", "dpa": {"reference": "DPA-E2E-1", "signedAt": "2026-01-01T00:00:00Z"}},
        "residency": {"regions": ["eu-central-1", "eu-west-1"]},
        "retentionPolicyRef": {"name": "standard-eu"},
        "senders": {"replicas": 2},
        "deletionProtection": false
    });
    merge(&mut spec, patch);
    serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": name, "labels": {E2E_LABEL: "tenant"}},
        "spec": spec
    }))
    .unwrap()
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p,
    }
}

/// The condition `type_` has `status` (and `reason`, when given), for the current generation.
fn has_condition(
    type_: &'static str,
    status: &'static str,
    reason: Option<&'static str>,
) -> impl Condition<Tenant> {
    move |t: Option<&Tenant>| {
        let Some(t) = t else { return false };
        let Some(s) = &t.status else { return false };
        s.observed_generation == t.metadata.generation
            && s.conditions.iter().any(|c| {
                c.type_ == type_ && c.status == status && reason.is_none_or(|r| c.reason == r)
            })
    }
}

async fn wait_tenant(
    api: &Api<Tenant>,
    name: &str,
    cond: impl Condition<Tenant>,
    what: &str,
) -> Tenant {
    tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond))
        .await
        .unwrap_or_else(|_| {
            let status = kubectl(&["get", "tenant", name, "-o", "jsonpath={.status}"]);
            panic!(
                "tenant {name}: {what} not reached in {WAIT:?}; status: {}",
                String::from_utf8_lossy(&status.stdout)
            )
        })
        .unwrap()
        .unwrap_or_else(|| panic!("tenant {name} vanished"))
}

async fn create(client: &Client, t: &Tenant) -> Api<Tenant> {
    let api: Api<Tenant> = Api::all(client.clone());
    api.create(&PostParams::default(), t).await.unwrap();
    api
}

/// Deletes the tenant and waits until its namespace is gone.
async fn delete_and_wait(client: &Client, name: &str) {
    let api: Api<Tenant> = Api::all(client.clone());
    if let Some(t) = api.get_opt(name).await.unwrap() {
        api.delete(name, &DeleteParams::default()).await.unwrap();
        tokio::time::timeout(
            WAIT,
            await_condition(api.clone(), name, conditions::is_deleted(&t.uid().unwrap())),
        )
        .await
        .unwrap_or_else(|_| {
            let status = kubectl(&["get", "tenant", name, "-o", "jsonpath={.status}"]);
            panic!(
                "tenant {name} not gone {WAIT:?} after its deletion; status: {}",
                String::from_utf8_lossy(&status.stdout)
            )
        })
        .unwrap();
    }
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let ns = format!("tenant-{name}");
    if let Some(n) = ns_api.get_opt(&ns).await.unwrap() {
        tokio::time::timeout(
            WAIT,
            await_condition(ns_api, &ns, conditions::is_deleted(&n.uid().unwrap())),
        )
        .await
        .unwrap_or_else(|_| panic!("namespace {ns} still exists after its Tenant was deleted"))
        .unwrap();
    }
}

async fn node_regions(client: &Client) -> BTreeMap<String, String> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .map(|n| {
            let r = n.labels().get(REGION).cloned().unwrap_or_default();
            (n.name_any(), r)
        })
        .collect()
}

/// Waits until an event on the tenant `name` has a note starting with `prefix`.
async fn wait_event(client: &Client, name: &str, prefix: &str) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let events: Api<Event> = Api::all(client.clone());
    let cfg = watcher::Config::default().fields(&format!("involvedObject.name={name}"));
    let mut stream = watcher(events, cfg).applied_objects().boxed();
    let found = async {
        while let Some(Ok(e)) = stream.next().await {
            if e.message.as_deref().is_some_and(|m| m.starts_with(prefix)) {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, found)
        .await
        .unwrap_or_else(|_| panic!("no event {prefix:?} on tenant {name} within {WAIT:?}"));
}

/// Waits until the pods matching `labels` satisfy `done` (checked on every change).
async fn wait_pods(api: &Api<Pod>, labels: &str, done: impl Fn(&[Pod]) -> bool, what: &str) {
    use futures::StreamExt;
    use kube::runtime::{reflector, watcher};
    let (store, writer) = reflector::store();
    // Every event, deletions included: the store changes on each.
    let stream = reflector::reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().labels(labels)),
    )
    .boxed();
    let check = async {
        let mut stream = stream;
        while stream.next().await.is_some() {
            let pods: Vec<Pod> = store.state().iter().map(|p| (**p).clone()).collect();
            if done(&pods) {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, check)
        .await
        .unwrap_or_else(|_| panic!("pods: {what} not reached in {WAIT:?}"));
}

async fn sender_pods(client: &Client, tenant: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &format!("tenant-{tenant}"));
    pods.list(&ListParams::default().labels("app.kubernetes.io/name=herald-sender"))
        .await
        .unwrap()
        .items
}

async fn deployment(client: &Client, tenant: &str) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client.clone(), &format!("tenant-{tenant}"));
    api.get("herald-sender").await.unwrap()
}

fn condition<'a>(
    t: &'a Tenant,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    t.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} condition on {}", t.name_any()))
}

#[tokio::test]
async fn active_example_tenant_becomes_ready_on_eu_nodes_only() {
    let client = client().await;
    operator().await;
    apply_examples();
    let api: Api<Tenant> = Api::all(client.clone());
    let t = wait_tenant(
        &api,
        "acme-retail",
        has_condition(types::READY, "True", None),
        "Ready",
    )
    .await;
    let status = t.status.as_ref().unwrap();
    assert_eq!(status.senders_ready.as_deref(), Some("2/2"));

    let allowed = &t.spec.residency.regions;
    let regions = node_regions(&client).await;
    let pods = sender_pods(&client, "acme-retail").await;
    let running: Vec<_> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    assert_eq!(running.len(), 2);
    for p in running {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .expect("pod not scheduled");
        let region = &regions[&node];
        assert!(
            allowed.contains(region),
            "pod {} on {node} in {region}, outside {allowed:?}",
            p.name_any()
        );
    }

    let out = kubectl(&["get", "tenants", "acme-retail"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).unwrap_or_default();
    assert!(
        line.contains("Active") && line.contains("True") && line.contains("2/2"),
        "kubectl get tenants:\n{text}"
    );
}

#[tokio::test]
async fn a_non_eu_region_runs_no_pod_and_says_why() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-useast");
    let api = create(
        &client,
        &tenant(
            &name,
            json!({"residency": {"regions": ["eu-central-1", "us-east-1"]}}),
        ),
    )
    .await;
    let t = wait_tenant(
        &api,
        &name,
        has_condition(
            types::RESIDENCY_COMPLIANT,
            "False",
            Some("RegionNotAllowed"),
        ),
        "ResidencyCompliant=False",
    )
    .await;
    let c = condition(&t, types::RESIDENCY_COMPLIANT);
    assert!(
        c.message.contains("us-east-1") && c.message.contains("outside the EEA"),
        "{}",
        c.message
    );
    assert_eq!(condition(&t, types::READY).status, "False");
    assert_eq!(condition(&t, types::STALLED).status, "True");
    assert_eq!(
        deployment(&client, &name).await.spec.unwrap().replicas,
        Some(0)
    );
    assert!(
        sender_pods(&client, &name).await.is_empty(),
        "a pod exists for a tenant with a refused region"
    );
    delete_and_wait(&client, &name).await;
}

/// The same warning again within minutes is one Event with a count, not a second
/// Event: a flapping condition does not flood `kubectl get events`.
#[tokio::test]
async fn a_warning_repeated_within_minutes_is_one_event_with_a_count() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-repeat");
    let api = create(&client, &tenant(&name, json!({}))).await;
    let regions = |r: Value| Patch::Merge(json!({"spec": {"residency": {"regions": r}}}));
    for round in 0..2 {
        api.patch(
            &name,
            &PatchParams::default(),
            &regions(json!(["eu-central-1", "us-east-1"])),
        )
        .await
        .unwrap();
        wait_tenant(
            &api,
            &name,
            has_condition(
                types::RESIDENCY_COMPLIANT,
                "False",
                Some("RegionNotAllowed"),
            ),
            &format!("refused region, round {round}"),
        )
        .await;
        api.patch(
            &name,
            &PatchParams::default(),
            &regions(json!(["eu-central-1"])),
        )
        .await
        .unwrap();
        wait_tenant(
            &api,
            &name,
            has_condition(types::RESIDENCY_COMPLIANT, "True", None),
            &format!("compliant again, round {round}"),
        )
        .await;
    }
    let events: Api<Event> = Api::all(client.clone());
    let refused = || async {
        events
            .list(&ListParams::default().fields(&format!(
                "involvedObject.name={name},reason=RegionNotAllowed"
            )))
            .await
            .unwrap()
            .items
    };
    // One Event per condition the refusal turned (ResidencyCompliant, Ready, Stalled:
    // each its own action), each seen twice.
    let counted = |items: &[Event]| {
        let mut seen: Vec<_> = items
            .iter()
            .map(|e| {
                let count = e.series.as_ref().and_then(|s| s.count);
                (e.action.clone().unwrap_or_default(), count)
            })
            .collect();
        seen.sort();
        seen
    };
    let deadline = std::time::Instant::now() + WAIT;
    let seen = loop {
        let seen = counted(&refused().await);
        let done = !seen.is_empty() && seen.iter().all(|(_, c)| *c == Some(2));
        if done || std::time::Instant::now() > deadline {
            break seen;
        }
        // The series patch follows the status patch the test waited for.
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut actions: Vec<&str> = seen.iter().map(|(a, _)| a.as_str()).collect();
    actions.dedup();
    assert!(
        actions.len() == seen.len() && actions.contains(&"SetResidencyCompliant"),
        "the two refusals are not one Event per condition: {seen:?}"
    );
    assert!(
        seen.iter().all(|(_, c)| *c == Some(2)),
        "the second refusal was not counted on the first Event: {seen:?}"
    );
    delete_and_wait(&client, &name).await;
}

#[tokio::test]
async fn without_a_dpa_no_sender_runs_and_status_says_why() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-nodpa");
    let api = create(&client, &tenant(&name, json!({"contract": {"dpa": null}}))).await;
    let t = wait_tenant(
        &api,
        &name,
        has_condition(types::DPA_SIGNED, "False", Some("DPAMissing")),
        "DPASigned=False",
    )
    .await;
    assert!(
        condition(&t, types::DPA_SIGNED)
            .message
            .contains("no sender runs")
    );
    assert_eq!(condition(&t, types::READY).reason, "DPAMissing");
    assert_eq!(
        deployment(&client, &name).await.spec.unwrap().replicas,
        Some(0)
    );
    assert!(sender_pods(&client, &name).await.is_empty());
    delete_and_wait(&client, &name).await;
}

#[tokio::test]
async fn a_suspended_tenant_runs_no_sender_but_keeps_its_stack() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-susp");
    let api = create(
        &client,
        &tenant(&name, json!({"contract": {"state": "Suspended"}})),
    )
    .await;
    let t = wait_tenant(
        &api,
        &name,
        has_condition(types::READY, "True", Some("ContractSuspended")),
        "Ready (suspended)",
    )
    .await;
    assert_eq!(
        t.status
            .as_ref()
            .unwrap()
            .phase
            .map(|p| format!("{p:?}"))
            .as_deref(),
        Some("Suspended")
    );
    assert_eq!(
        deployment(&client, &name).await.spec.unwrap().replicas,
        Some(0)
    );
    assert!(sender_pods(&client, &name).await.is_empty());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &format!("tenant-{name}"));
    assert!(
        cms.get_opt("herald-sender-config").await.unwrap().is_some(),
        "stack not kept"
    );
    delete_and_wait(&client, &name).await;
}

/// A kwok node of our own in `zone` of eu-north-1, so relabelling it disturbs no other test.
async fn own_node(client: &Client, name: &str, zone: &str) {
    let node: Node = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {"type": "kwok", E2E_LABEL: "tenant", "kubernetes.io/hostname": name,
                       "kubernetes.io/os": "linux", REGION: "eu-north-1", "topology.kubernetes.io/zone": zone}
        },
        "status": {"allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"},
                   "capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"}}
    }))
    .unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let ready = |n: Option<&Node>| {
        n.and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    tokio::time::timeout(WAIT, await_condition(nodes, name, ready))
        .await
        .expect("node not Ready")
        .unwrap();
}

#[tokio::test]
async fn a_pod_on_a_relabelled_node_is_evicted_and_replaced_in_the_eu() {
    let client = client().await;
    let op = operator().await;
    apply_examples();
    // This is the only test that uses eu-north-1: leftovers of an earlier, failed run
    // (nodes of that region, tenants pinned to it) would take our pods. Remove them:
    // the tenants first, while their nodes can still run their erasure Job (pinned to
    // their region), then the nodes.
    let tenants: Api<Tenant> = Api::all(client.clone());
    for t in tenants
        .list(&ListParams::default().labels(&format!("{E2E_LABEL}=tenant")))
        .await
        .unwrap()
    {
        if t.name_any().starts_with("e2e-drift-") {
            delete_and_wait(&client, &t.name_any()).await;
        }
    }
    let out = kubectl(&[
        "delete",
        "nodes",
        "-l",
        &format!("{E2E_LABEL}=tenant"),
        "--wait=false",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = unique("e2e-drift");
    let (node_a, node_b) = (format!("{name}-a"), format!("{name}-b"));
    own_node(&client, &node_a, "eu-north-1a").await;
    own_node(&client, &node_b, "eu-north-1b").await;
    let api = create(
        &client,
        &tenant(
            &name,
            json!({"residency": {"regions": ["eu-north-1"]}, "senders": {"replicas": 1}}),
        ),
    )
    .await;
    let before = wait_tenant(
        &api,
        &name,
        has_condition(types::READY, "True", None),
        "Ready",
    )
    .await;
    assert_eq!(
        condition(&before, types::RESIDENCY_COMPLIANT).status,
        "True"
    );

    let pods = sender_pods(&client, &name).await;
    let pod = pods
        .iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .expect("no sender pod");
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap();
    let other = if node == node_a { &node_b } else { &node_a };
    // Move the node out of the EU, as a mislabelled or re-purposed node would be.
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            &node,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {REGION: "us-east-1"}}})),
        )
        .await
        .unwrap();

    // The evicted pod is gone, and a replacement runs on the node still in eu-north-1.
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &format!("tenant-{name}"));
    tokio::time::timeout(
        WAIT,
        await_condition(
            pod_api.clone(),
            &pod.name_any(),
            conditions::is_deleted(&pod.uid().unwrap()),
        ),
    )
    .await
    .expect("the pod on the relabelled node was not evicted")
    .unwrap();
    // The condition flipped: its transition event is published right after the status
    // write (waiting on it, not on the condition, because kwok may finish the whole
    // replacement before a loaded operator writes the False status).
    wait_event(&client, &name, "ResidencyCompliant is False").await;
    // The scheduler may place the replacement before its cache has the new label (its
    // watch and ours race); the operator then evicts that one too. Wait for the end
    // state: one ready sender on the node still in eu-north-1.
    let only_on_other = {
        let other = other.clone();
        move |pods: &[Pod]| {
            let live: Vec<_> = pods.iter().collect();
            live.len() == 1
                && live[0].metadata.deletion_timestamp.is_none()
                && live[0].spec.as_ref().and_then(|s| s.node_name.as_deref())
                    == Some(other.as_str())
                && live[0]
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        }
    };
    wait_pods(
        &pod_api,
        "app.kubernetes.io/name=herald-sender",
        only_on_other,
        "one ready sender on the EU node",
    )
    .await;
    // ResidencyCompliant returns to True once no pod runs outside the region (that it
    // was False in between is proven by its transition event below: condition times
    // have one-second resolution, and kwok makes all of this happen within a second).
    wait_tenant(
        &api,
        &name,
        has_condition(types::RESIDENCY_COMPLIANT, "True", None),
        "ResidencyCompliant again",
    )
    .await;
    wait_tenant(
        &api,
        &name,
        has_condition(types::READY, "True", None),
        "Ready again",
    )
    .await;

    // An event and a metric say what happened.
    let events: Api<Event> = Api::all(client.clone());
    let evicted = events
        .list(
            &ListParams::default().fields(&format!("involvedObject.name={name},reason=PodEvicted")),
        )
        .await
        .unwrap();
    let notes: Vec<String> = evicted
        .items
        .iter()
        .filter_map(|e| e.message.clone())
        .collect();
    assert!(
        notes.iter().any(|n| n.starts_with("evicted sender pod")),
        "no eviction event: {notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("ResidencyCompliant is False")),
        "the condition never flipped: {notes:?}"
    );
    let metrics = op.metrics().await;
    let prefix = format!("herald_residency_evictions_total{{tenant=\"{name}\"}} ");
    let evictions: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metrics lack {prefix}"));
    // One, or two when the scheduler's stale cache placed the replacement there too.
    assert!((1..=2).contains(&evictions), "{prefix}{evictions}");

    delete_and_wait(&client, &name).await;
    for n in [&node_a, &node_b] {
        nodes.delete(n, &DeleteParams::default()).await.unwrap();
    }
}

#[tokio::test]
async fn reconciling_a_ready_tenant_makes_no_mutating_request() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-quiet");
    let api = create(&client, &tenant(&name, json!({}))).await;
    wait_tenant(
        &api,
        &name,
        has_condition(types::READY, "True", None),
        "Ready",
    )
    .await;
    let ns = format!("tenant-{name}");
    // Ready can be written before the last watch events of the rollout arrive; wait for
    // one reconcile that reads everything (it ends by listing the pods) after a touch.
    let touch = |n: u32| {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        async move {
            let patch =
                json!({"metadata": {"annotations": {"e2e.herald.dev/touch": n.to_string()}}});
            cms.patch(
                "herald-sender-config",
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
            .unwrap();
        }
    };
    let reconciled_after = |mark: u64| {
        let ns = ns.clone();
        async move {
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                let seen = audit::since(mark).iter().any(|e| {
                    let o = e.object();
                    e.user.username == audit::OPERATOR_USER
                        && e.verb == "list"
                        && o.resource == "pods"
                        && o.namespace == ns
                });
                if seen {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "no reconcile of {ns} seen in the audit log"
                );
                // Polling a file: there is nothing to watch.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    // Settle: one full reconcile after Ready. `reconciled_after` sees a reconcile when
    // it starts (its pod list), so a second one is awaited too: reconciles of one
    // object never overlap, so the first has finished, and whatever it still wrote
    // (the senders becoming ready after Ready) is before the mark.
    for round in [1, 2] {
        let settle = audit::mark();
        touch(round).await;
        reconciled_after(settle).await;
    }

    let mark = audit::mark();
    touch(3).await;
    reconciled_after(mark).await;
    // A third reconcile starts only after the second finished (reconciles of one
    // object never overlap), so everything the second did is in the log by then.
    let mark3 = audit::mark();
    touch(4).await;
    reconciled_after(mark3).await;

    let writes: Vec<_> = audit::since(mark)
        .into_iter()
        .filter(|e| e.user.username == audit::OPERATOR_USER && e.is_mutating())
        .filter(|e| {
            let o = e.object();
            o.namespace == ns
                || (o.resource == "tenants" && o.name == name)
                || o.name.starts_with(&format!("{name}."))
        })
        .map(|e| {
            format!(
                "{} {}/{}/{} {}",
                e.verb,
                e.object().resource,
                e.object().namespace,
                e.object().name,
                e.object().subresource
            )
        })
        .collect();
    assert!(
        writes.is_empty(),
        "reconciling a Ready, unchanged tenant wrote: {writes:#?}"
    );
    delete_and_wait(&client, &name).await;
}

#[tokio::test]
async fn deleting_a_tenant_leaves_nothing_of_its_stack_behind() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-del");
    let api = create(&client, &tenant(&name, json!({}))).await;
    wait_tenant(
        &api,
        &name,
        has_condition(types::READY, "True", None),
        "Ready",
    )
    .await;
    delete_and_wait(&client, &name).await;
    // Nothing labelled for the tenant anywhere (namespaced objects went with the
    // namespace; nothing of the stack is cluster-scoped but the namespace itself).
    let out = kubectl(&[
        "get",
        "namespaces,deployments,pods,configmaps,serviceaccounts,roles,rolebindings,networkpolicies,resourcequotas,limitranges,poddisruptionbudgets",
        "-A",
        "-l",
        &format!("herald.dev/tenant={name}"),
        "-o",
        "name",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = String::from_utf8_lossy(&out.stdout);
    assert!(left.trim().is_empty(), "left behind:\n{left}");
}

#[tokio::test]
async fn deletion_protection_refuses_deleting_an_active_tenant() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-prot");
    let api = create(&client, &tenant(&name, json!({"deletionProtection": null}))).await;
    let err = api
        .delete(&name, &DeleteParams::default())
        .await
        .expect_err("a protected tenant was deleted");
    match err {
        kube::Error::Api(s) => {
            assert!(
                s.message.contains("protected against deletion")
                    && s.message.contains("Terminate the contract"),
                "{}",
                s.message
            );
        }
        other => panic!("unexpected error {other}"),
    }
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"deletionProtection": false}})),
    )
    .await
    .unwrap();
    delete_and_wait(&client, &name).await;
}

#[tokio::test]
async fn a_paused_tenant_is_left_alone_until_unpaused() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-pause");
    let api = create(&client, &tenant(&name, json!({}))).await;
    wait_tenant(
        &api,
        &name,
        has_condition(types::READY, "True", None),
        "Ready",
    )
    .await;
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"herald.dev/paused": "true"}}})),
    )
    .await
    .unwrap();
    wait_tenant(
        &api,
        &name,
        has_condition(types::PAUSED, "True", Some("Paused")),
        "Paused",
    )
    .await;
    // A spec change while paused is not applied...
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"senders": {"replicas": 3}}})),
    )
    .await
    .unwrap();
    // ...and after unpausing it is (and Paused is gone).
    let requested = "2026-11-25T12:00:00Z";
    assert_eq!(
        deployment(&client, &name).await.spec.unwrap().replicas,
        Some(2),
        "a paused tenant was changed"
    );
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"herald.dev/paused": null, "herald.dev/reconcile-requested-at": requested}}})),
    )
    .await
    .unwrap();
    let t = wait_tenant(
        &api,
        &name,
        move |t: Option<&Tenant>| {
            t.and_then(|t| t.status.as_ref()).is_some_and(|s| {
                s.last_handled_reconcile_at.as_deref() == Some(requested)
                    && !s.conditions.iter().any(|c| c.type_ == types::PAUSED)
            })
        },
        "unpaused",
    )
    .await;
    assert!(t.status.is_some());
    assert_eq!(
        deployment(&client, &name).await.spec.unwrap().replicas,
        Some(3)
    );
    delete_and_wait(&client, &name).await;
}

#[tokio::test]
async fn metrics_expose_runs_durations_and_phases() {
    let op = operator().await;
    let client = client().await;
    apply_examples();
    let api: Api<Tenant> = Api::all(client.clone());
    wait_tenant(
        &api,
        "acme-retail",
        has_condition(types::READY, "True", None),
        "Ready",
    )
    .await;
    let m = op.metrics().await;
    for needle in [
        "herald_reconcile_total{controller=\"tenant\"}",
        "herald_reconcile_duration_seconds_bucket{",
        "herald_tenants{phase=\"Active\"}",
        "herald_tenants{phase=\"Suspended\"}",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}");
    }
}
