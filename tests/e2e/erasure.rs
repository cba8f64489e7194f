//! Termination and erasure on the real cluster: a tenant terminated 29 days ago is
//! erased within a minute with a verifiable receipt and a signed certificate; one
//! terminated today waits with its senders stopped; ReturnThenDelete exports first; a
//! SIGKILLed operator resumes an erasure and writes exactly one receipt; deleting a
//! terminated tenant erases it and leaves a receipt; a tenant deleted before its
//! namespace existed is still purged and goes; a failed purge Job is run again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use herald::api::v1alpha1::Tenant;
use herald::api::v1alpha1::conditions as types;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::common::{
    CONTROL_NAMESPACE, E2E_LABEL, SHARD_LABEL, WAIT, apply_examples, client, ensure_namespace,
    http_get, kubectl, operator, repo_root, unique,
};

/// What the customer's webhook received.
#[derive(Clone, Debug)]
struct Delivery {
    headers: HeaderMap,
    body: Bytes,
}

/// A customer webhook on 127.0.0.1 that records every POST and answers 200.
async fn webhook() -> (String, Arc<Mutex<Vec<Delivery>>>) {
    let seen: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push(Delivery { headers, body });
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

/// The tenant's signing secret in the control namespace.
async fn signing_secret(client: &Client, name: &str) -> String {
    let key = herald::notify::generate_secret().unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-notify"), "labels": {E2E_LABEL: "erasure", "herald.dev/tenant": name}},
        "stringData": {"key": key}
    }))
    .unwrap();
    let api: Api<Secret> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    api.create(&PostParams::default(), &secret).await.unwrap();
    key
}

fn tenant(name: &str, webhook: Option<&str>, extra: Value) -> Tenant {
    let mut t = json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": name, "labels": {E2E_LABEL: "erasure"}},
        "spec": {
            "displayName": "Erasure Test B.V.",
            "contract": {"state": "Active", "dpa": {"reference": "DPA-E2E-9", "signedAt": "2026-01-01T00:00:00Z"}},
            "residency": {"regions": ["eu-central-1"]},
            "retentionPolicyRef": {"name": "standard-eu"},
            "senders": {"replicas": 1},
            "deletionProtection": false
        }
    });
    if let Some(url) = webhook {
        t["spec"]["notifications"] = json!({"webhookUrl": url, "signingSecretRef": {"name": format!("{name}-notify"), "key": "key"}});
    }
    merge(&mut t, extra);
    serde_json::from_value(t).unwrap()
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

fn condition_is(
    type_: &'static str,
    status: &'static str,
    reason: &'static str,
) -> impl Condition<Tenant> {
    move |t: Option<&Tenant>| {
        t.and_then(|t| t.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == status && c.reason == reason)
        })
    }
}

async fn wait_for(
    api: &Api<Tenant>,
    name: &str,
    cond: impl Condition<Tenant>,
    what: &str,
    within: Duration,
) -> Tenant {
    tokio::time::timeout(within, await_condition(api.clone(), name, cond))
        .await
        .unwrap_or_else(|_| {
            let out = kubectl(&["get", "tenant", name, "-o", "jsonpath={.status}"]);
            panic!(
                "tenant {name}: {what} not reached in {within:?}; status: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
        .unwrap()
        .unwrap_or_else(|| panic!("tenant {name} disappeared"))
}

fn terminate_at(when: Timestamp) -> Value {
    json!({"spec": {"contract": {"state": "Terminated", "terminatedAt": when.to_string()}}})
}

fn days_ago(days: i64) -> Timestamp {
    // Whole seconds: metav1.Time has second resolution.
    Timestamp::from_second(Timestamp::now().as_second() - days * 86_400).unwrap()
}

/// A ConfigMap labelled for the tenant outside its namespace (e.g. left by a platform
/// component): erasure must find and delete it.
async fn stray_config_map(
    client: &Client,
    tenant: &str,
    finalizer: Option<&str>,
) -> (String, String) {
    let ns = format!("e2e-elsewhere-{tenant}");
    ensure_namespace(client, &ns).await;
    let mut meta = json!({"name": "stray", "labels": {"herald.dev/tenant": tenant}});
    if let Some(f) = finalizer {
        meta["finalizers"] = json!([f]);
    }
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": meta, "data": {"note": "derived data"}}))
            .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    (ns, created.uid().unwrap())
}

/// The receipt ConfigMaps written for `tenant`.
async fn receipts(client: &Client, tenant: &str) -> Vec<ConfigMap> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    api.list(&ListParams::default().labels(&format!("herald.dev/receipt-for={tenant}")))
        .await
        .unwrap()
        .items
}

/// Checks a receipt: its digest verifies and the record says what happened.
fn check_receipt(
    cm: &ConfigMap,
    tenant: &Tenant,
    terminated_at: Timestamp,
) -> (String, String, Value) {
    assert_eq!(cm.immutable, Some(true), "receipt is not immutable");
    let data = cm.data.clone().unwrap();
    let body = data["receipt.json"].clone();
    let digest = data["sha256"].clone();
    assert_eq!(
        herald::digest::sha256_hex(body.as_bytes()),
        digest,
        "the receipt's digest does not verify"
    );
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["tenant"], tenant.name_any());
    assert_eq!(r["tenantUid"], tenant.uid().unwrap());
    assert_eq!(r["terminatedAt"], terminated_at.to_string());
    let deadline = terminated_at + SignedDuration::from_secs(30 * 86_400);
    assert_eq!(r["deadline"], deadline.to_string());
    let completed: Timestamp = r["completedAt"].as_str().unwrap().parse().unwrap();
    assert!(completed < deadline, "completed after the deadline");
    assert_eq!(r["operatorVersion"], herald::VERSION);
    let kinds: Vec<&str> = r["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"Namespace") && kinds.contains(&"Deployment"),
        "deleted kinds: {kinds:?}"
    );
    assert!(
        r["externalPurges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p[0] == "platform" && !p[1].is_null())
    );
    assert!(r["backupsExpireBy"].is_string());
    assert!(
        r["retained"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["category"] == "billing")
    );
    (body, digest, r)
}

async fn namespace_gone(client: &Client, ns: &str) -> bool {
    let api: Api<Namespace> = Api::all(client.clone());
    api.get_opt(ns).await.unwrap().is_none()
}

async fn wait_ready_active(api: &Api<Tenant>, name: &str) {
    wait_for(
        api,
        name,
        condition_is(types::READY, "True", "Reconciled"),
        "Ready",
        WAIT,
    )
    .await;
}

/// Waits until the tenant is Erased (receipt written).
async fn wait_erased(api: &Api<Tenant>, name: &str, what: &str, within: Duration) -> Tenant {
    wait_for(
        api,
        name,
        condition_is(types::ERASED, "True", "Erased"),
        what,
        within,
    )
    .await
}

#[tokio::test]
async fn a_tenant_terminated_29_days_ago_is_erased_within_a_minute_with_a_receipt() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-erase");
    let (url, seen) = webhook().await;
    let key = signing_secret(&client, &name).await;
    let api: Api<Tenant> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &tenant(&name, Some(&url), json!({})),
    )
    .await
    .unwrap();
    wait_ready_active(&api, &name).await;
    let (other_ns, stray_uid) = stray_config_map(&client, &name, None).await;

    let terminated_at = days_ago(29);
    let started = Instant::now();
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(terminate_at(terminated_at)),
    )
    .await
    .unwrap();
    let t = wait_erased(&api, &name, "Erased", Duration::from_secs(60)).await;
    let took = started.elapsed();
    eprintln!("erased in {took:?}");
    assert_eq!(
        format!("{:?}", t.status.as_ref().unwrap().phase.unwrap()),
        "Erased"
    );

    // Nothing of the tenant remains: its namespace, and what was labelled for it elsewhere.
    assert!(namespace_gone(&client, &format!("tenant-{name}")).await);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &other_ns);
    assert!(
        cms.get_opt("stray").await.unwrap().is_none(),
        "the labelled ConfigMap in {other_ns} survived"
    );
    let out = kubectl(&[
        "get",
        "configmaps,secrets,deployments,pods,jobs,serviceaccounts",
        "-A",
        "-l",
        &format!("herald.dev/tenant={name}"),
        "-o",
        "name",
    ]);
    // All but the tenant's signing secret, which erasure leaves: it signs the receipt.
    let left = String::from_utf8_lossy(&out.stdout);
    let left: Vec<&str> = left
        .lines()
        .filter(|l| *l != format!("secret/{name}-notify"))
        .collect();
    assert!(left.is_empty(), "left: {left:?}");

    // One receipt, verifiable, naming what was deleted.
    let rs = receipts(&client, &name).await;
    assert_eq!(rs.len(), 1, "expected exactly one receipt");
    let (body, digest, r) = check_receipt(&rs[0], &t, terminated_at);
    let stray_recorded = r["deleted"].as_array().unwrap().iter().any(|k| {
        k["kind"] == "ConfigMap"
            && k["uids"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u == &json!(stray_uid))
    });
    assert!(
        stray_recorded,
        "the stray ConfigMap's UID is not in the receipt"
    );
    assert_eq!(
        t.status
            .as_ref()
            .unwrap()
            .erasure
            .as_ref()
            .unwrap()
            .receipt_digest
            .as_deref(),
        Some(digest.as_str())
    );

    // The customer got the signed certificate of deletion: the same bytes.
    let wait_delivery = async {
        let api = api.clone();
        await_condition(api, &name, |t: Option<&Tenant>| {
            t.and_then(|t| t.status.as_ref())
                .and_then(|s| s.erasure.as_ref())
                .is_some_and(|e| e.receipt_delivered_at.is_some())
        })
        .await
    };
    tokio::time::timeout(WAIT, wait_delivery)
        .await
        .expect("receipt not delivered")
        .unwrap();
    let deliveries = seen.lock().unwrap().clone();
    let d = deliveries
        .iter()
        .find(|d| d.body.as_ref() == body.as_bytes())
        .expect("the webhook did not receive the receipt");
    // Signed per Standard Webhooks: the reference library verifies it (within its
    // 5-minute window), the message id is the digest, and the same receipt with its
    // timestamp moved 6 minutes back (a replay) is refused.
    let verifier = standardwebhooks::Webhook::new(&key).unwrap();
    verifier
        .verify(&d.body, &d.headers)
        .expect("the receipt verifies");
    assert_eq!(d.headers["webhook-id"].to_str().unwrap(), digest);
    assert_eq!(d.headers["idempotency-key"].to_str().unwrap(), digest);
    let mut replayed = d.headers.clone();
    let ts: i64 = d.headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    replayed.insert(
        "webhook-timestamp",
        (ts - 6 * 60).to_string().parse().unwrap(),
    );
    assert!(
        verifier.verify(&d.body, &replayed).is_err(),
        "a replay is refused"
    );

    let ns_api: Api<Namespace> = Api::all(client.clone());
    ns_api
        .delete(&other_ns, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_tenant_terminated_today_stops_its_senders_and_waits() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-term");
    let api: Api<Tenant> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &tenant(&name, None, json!({"spec": {"senders": {"replicas": 2}}})),
    )
    .await
    .unwrap();
    wait_ready_active(&api, &name).await;
    let terminated_at = days_ago(0);
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(terminate_at(terminated_at)),
    )
    .await
    .unwrap();
    let t = wait_for(
        &api,
        &name,
        condition_is(types::READY, "True", "ErasureScheduled"),
        "Terminating",
        WAIT,
    )
    .await;
    let status = t.status.unwrap();
    assert_eq!(format!("{:?}", status.phase.unwrap()), "Terminating");
    let deadline = terminated_at + SignedDuration::from_secs(30 * 86_400);
    assert_eq!(status.deletion_deadline.unwrap().0, deadline);
    let erasure = status.erasure.unwrap();
    assert!(
        erasure.erasing_since.is_none() && erasure.inventory.is_empty(),
        "erasure began early"
    );
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &format!("tenant-{name}"));
    let d = deploys.get("herald-sender").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(0), "senders not stopped");
    assert!(
        !namespace_gone(&client, &format!("tenant-{name}")).await,
        "erased before its time"
    );
    assert!(receipts(&client, &name).await.is_empty());
    // Clean up: deleting a terminated tenant erases it at once (tested below too).
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(api, &name, conditions::is_deleted(&t.metadata.uid.unwrap())),
    )
    .await
    .unwrap()
    .unwrap();
}

#[tokio::test]
async fn return_then_delete_exports_before_erasing() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-export");
    let api: Api<Tenant> = Api::all(client.clone());
    let extra = json!({"spec": {"contract": {"onTermination": {"action": "ReturnThenDelete", "export": {"url": "https://export.example/upload"}}}}});
    api.create(&PostParams::default(), &tenant(&name, None, extra))
        .await
        .unwrap();
    wait_ready_active(&api, &name).await;
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(terminate_at(days_ago(29))),
    )
    .await
    .unwrap();
    let t = wait_erased(&api, &name, "Erased", WAIT).await;
    let e = t.status.unwrap().erasure.unwrap();
    let export = e.export.expect("no export recorded");
    assert_eq!(export.outcome.as_deref(), Some("Succeeded"));
    assert!(
        export.finished_at.unwrap().0 <= e.erasing_since.unwrap().0,
        "erasure began before the export finished"
    );
    let r: Value = serde_json::from_str(
        &receipts(&client, &name).await[0].data.clone().unwrap()["receipt.json"],
    )
    .unwrap();
    assert_eq!(r["export"], "Succeeded");
}

#[tokio::test]
async fn deleting_a_terminated_tenant_erases_it_and_leaves_a_receipt() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-delterm");
    let api: Api<Tenant> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &tenant(&name, None, json!({"spec": {"deletionProtection": true}})),
    )
    .await
    .unwrap();
    wait_ready_active(&api, &name).await;
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(terminate_at(days_ago(1))),
    )
    .await
    .unwrap();
    let t = wait_for(
        &api,
        &name,
        condition_is(types::READY, "True", "ErasureScheduled"),
        "Terminating",
        WAIT,
    )
    .await;
    // Protection no longer applies once the contract is terminated.
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(
            api.clone(),
            &name,
            conditions::is_deleted(&t.uid().unwrap()),
        ),
    )
    .await
    .expect("the deleted tenant was not erased")
    .unwrap();
    assert!(namespace_gone(&client, &format!("tenant-{name}")).await);
    assert_eq!(receipts(&client, &name).await.len(), 1);
}

/// An operator of our own for shard `shard`, running only the Tenant controller.
struct OwnOperator {
    child: std::process::Child,
    metrics: String,
}

fn own_operator(shard: &str) -> OwnOperator {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log =
        std::fs::File::create(repo_root().join(format!("target/e2e-shard-{shard}.log"))).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "run",
            "--http-addr",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "text",
            "--controllers",
            "tenant",
        ])
        .args(["--tenant-selector", &format!("{SHARD_LABEL}={shard}")])
        .env("KUBECONFIG", crate::identity::chart_operator_kubeconfig())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    OwnOperator {
        child,
        metrics: format!("http://127.0.0.1:{port}/metrics"),
    }
}

impl OwnOperator {
    async fn ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        while http_get(&self.metrics.replace("/metrics", "/readyz"))
            .await
            .is_err()
        {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "own operator exited"
            );
            assert!(Instant::now() < deadline, "own operator not ready");
            // Polling a process's endpoint: nothing to watch.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for OwnOperator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_operator_killed_mid_erasure_resumes_and_writes_one_receipt() {
    let client = client().await;
    operator().await; // CRDs, admission policies, the chart's RBAC
    apply_examples();
    let name = unique("e2e-kill");
    let shard = name.clone();
    let mut first = own_operator(&shard);
    first.ready().await;
    let api: Api<Tenant> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &tenant(
            &name,
            None,
            json!({"metadata": {"labels": {SHARD_LABEL: shard}}}),
        ),
    )
    .await
    .unwrap();
    wait_ready_active(&api, &name).await;
    // A labelled object whose deletion a finalizer holds: erasure stops mid-way, after
    // it recorded its inventory and issued its deletes, waiting for verification.
    let hold = "e2e.herald.dev/hold";
    let (other_ns, held_uid) = stray_config_map(&client, &name, Some(hold)).await;
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(terminate_at(days_ago(29))),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &other_ns);
    let deleting =
        |c: Option<&ConfigMap>| c.is_some_and(|c| c.metadata.deletion_timestamp.is_some());
    tokio::time::timeout(WAIT, await_condition(cms.clone(), "stray", deleting))
        .await
        .expect("erasure did not reach the held object")
        .unwrap();
    let mid = api.get(&name).await.unwrap();
    let e = mid.status.as_ref().and_then(|s| s.erasure.clone()).unwrap();
    assert!(
        !e.inventory.is_empty() && e.verified_at.is_none() && e.receipt.is_none(),
        "not mid-erasure: {e:?}"
    );

    // SIGKILL: no chance to clean up.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    cms.patch(
        "stray",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();

    let mut second = own_operator(&shard);
    second.ready().await;
    let t = wait_erased(&api, &name, "Erased after restart", WAIT).await;
    let rs = receipts(&client, &name).await;
    assert_eq!(
        rs.len(),
        1,
        "expected exactly one receipt after the restart"
    );
    let (_, _, r) = check_receipt(
        &rs[0],
        &t,
        Timestamp::from_second(t.spec.contract.terminated_at.clone().unwrap().0.as_second())
            .unwrap(),
    );
    assert!(
        r["deleted"].as_array().unwrap().iter().any(|k| k["uids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == &json!(held_uid))),
        "the held object is missing from the receipt"
    );
    drop(second);
    let ns_api: Api<Namespace> = Api::all(client.clone());
    ns_api
        .delete(&other_ns, &DeleteParams::default())
        .await
        .unwrap();
}

/// A Tenant deleted before Herald ever built its namespace (deleted right after it
/// was created, restored from a backup with the finalizer, or its namespace removed by
/// hand) is still purged at its providers and stores, erased and let go: the erasure
/// Job needs a namespace to run in, so erasure brings one back for it.
#[tokio::test]
async fn a_tenant_deleted_before_its_namespace_exists_is_still_purged_and_goes() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-delnew");
    let ns = format!("tenant-{name}");
    let api: Api<Tenant> = Api::all(client.clone());
    // Paused, Herald leaves it alone: it never builds the namespace. The finalizer is
    // in the manifest, as in a Tenant restored from a backup.
    api.create(
        &PostParams::default(),
        &tenant(
            &name,
            None,
            json!({"metadata": {
                "annotations": {"herald.dev/paused": "true"},
                "finalizers": ["herald.dev/erasure"]
            }}),
        ),
    )
    .await
    .unwrap();
    wait_for(
        &api,
        &name,
        condition_is(types::PAUSED, "True", "Paused"),
        "Paused",
        WAIT,
    )
    .await;
    assert!(
        namespace_gone(&client, &ns).await,
        "paused, yet {ns} exists"
    );
    let t = api.get(&name).await.unwrap();
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"herald.dev/paused": null}}})),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(
            api.clone(),
            &name,
            conditions::is_deleted(&t.uid().unwrap()),
        ),
    )
    .await
    .unwrap_or_else(|_| {
        let out = kubectl(&["get", "tenant", &name, "-o", "jsonpath={.status}"]);
        panic!(
            "the deleted tenant was not erased in {WAIT:?}; status: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
    .unwrap();
    assert!(namespace_gone(&client, &ns).await, "{ns} left behind");
    let receipts = receipts(&client, &name).await;
    assert_eq!(receipts.len(), 1);
    // The receipt records the platform's purge as confirmed: the erasure Job ran, in
    // the namespace erasure built for it.
    let body = &receipts[0].data.as_ref().unwrap()["receipt.json"];
    let r: Value = serde_json::from_str(body).unwrap();
    assert_eq!(r["tenantUid"], t.uid().unwrap());
    assert!(
        r["externalPurges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p[0] == "platform" && !p[1].is_null()),
        "{body}"
    );
}

/// A purge Job out of retries does not stall erasure: the status says it failed, a new
/// Job replaces it, and the tenant is erased once that one succeeds.
#[tokio::test]
async fn a_failed_purge_job_is_reported_and_run_again() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-purgefail");
    let ns = format!("tenant-{name}");
    let api: Api<Tenant> = Api::all(client.clone());
    api.create(&PostParams::default(), &tenant(&name, None, json!({})))
        .await
        .unwrap();
    wait_ready_active(&api, &name).await;
    // The purge Job, there before erasure looks for it, and out of retries: suspended
    // (no pod), its status as the Job controller writes it for BackoffLimitExceeded.
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let failed: Job = serde_json::from_value(json!({
        "metadata": {"name": "herald-erase", "labels": {E2E_LABEL: "erasure"}},
        "spec": {"suspend": true, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "job", "image": "registry.invalid/purge"}]
        }}}
    }))
    .unwrap();
    let failed_uid = jobs
        .create(&PostParams::default(), &failed)
        .await
        .unwrap()
        .uid()
        .unwrap();
    let now = Timestamp::now().to_string();
    let condition = |type_: &str| json!({"type": type_, "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": now});
    jobs.patch_status(
        "herald-erase",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"startTime": now,
            "conditions": [condition("FailureTarget"), condition("Failed")]}})),
    )
    .await
    .unwrap();

    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(terminate_at(days_ago(29))),
    )
    .await
    .unwrap();
    let said = |t: Option<&Tenant>| {
        t.and_then(|t| t.status.as_ref()).is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == types::READY
                    && c.status == "False"
                    && c.message.contains("purge Job herald-erase failed")
            })
        })
    };
    wait_for(&api, &name, said, "the failed purge reported", WAIT).await;
    let t = wait_erased(&api, &name, "Erased", WAIT).await;
    // Confirmed by a Job of Herald's, not by the failed one.
    let es = t.status.unwrap().erasure.unwrap();
    let platform = es
        .external_purges
        .iter()
        .find(|p| p.target == "platform")
        .expect("no platform purge recorded");
    assert!(platform.confirmed_at.is_some(), "{es:?}");
    // The Jobs erasure deleted are the replacement, not the failed one.
    let job_uids = &es
        .inventory
        .iter()
        .find(|k| k.kind == "Job")
        .unwrap_or_else(|| panic!("no Job in the inventory: {es:?}"))
        .uids;
    assert!(
        !job_uids.is_empty() && !job_uids.contains(&failed_uid),
        "the failed Job was not replaced: {job_uids:?}"
    );
}
