//! Termination and erasure on the real cluster: a tenant terminated 29 days ago is
//! erased within a minute with a verifiable receipt and a signed certificate; one
//! terminated today waits with its senders stopped; ReturnThenDelete exports first; a
//! SIGKILLed operator resumes an erasure and writes exactly one receipt; deleting a
//! terminated tenant erases it and leaves a receipt; a tenant deleted before its
//! namespace existed is still purged and goes; a failed purge Job is run again (and said
//! at once, with no receipt meanwhile); a provider refusing revocation does not hold it;
//! a premade erase Job with other arguments is replaced; a restart between target
//! selection and Job creation still purges every binding's channel; in the control
//! namespace only the tenant's own Secrets are erased.

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
    CONTROL_NAMESPACE, E2E_LABEL, SHARD_LABEL, WAIT, apply_examples, client, kubectl, operator,
    repo_root, scope_namespace, unique,
};

/// What the customer's webhook received.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// A customer webhook on 127.0.0.1 that records every POST and answers 200.
pub(crate) async fn webhook() -> (String, Arc<Mutex<Vec<Delivery>>>) {
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
pub(crate) async fn signing_secret(client: &Client, name: &str) -> String {
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

pub(crate) fn tenant(name: &str, webhook: Option<&str>, extra: Value) -> Tenant {
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

pub(crate) fn condition_is(
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

pub(crate) async fn wait_for(
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

pub(crate) fn terminate_at(when: Timestamp) -> Value {
    json!({"spec": {"contract": {"state": "Terminated", "terminatedAt": when.to_string()}}})
}

pub(crate) fn days_ago(days: i64) -> Timestamp {
    // Whole seconds: metav1.Time has second resolution.
    Timestamp::from_second(Timestamp::now().as_second() - days * 86_400).unwrap()
}

/// A ConfigMap labelled for the tenant outside its namespace (e.g. left by a platform
/// component), in a namespace of the erasure scope: erasure must find and delete it.
async fn stray_config_map(
    client: &Client,
    tenant: &str,
    finalizer: Option<&str>,
) -> (String, String) {
    let ns = format!("e2e-elsewhere-{tenant}");
    scope_namespace(client, &ns).await;
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
pub(crate) async fn receipts(client: &Client, tenant: &str) -> Vec<ConfigMap> {
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
            .any(|p| p["target"] == "platform" && p["confirmedAt"].is_string())
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

pub(crate) async fn wait_ready_active(api: &Api<Tenant>, name: &str) {
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
    let delivered = tokio::time::timeout(WAIT, wait_delivery)
        .await
        .expect("receipt not delivered")
        .unwrap();
    // Every step passed: the status says so.
    let step = delivered
        .as_ref()
        .and_then(|t| t.status.as_ref())
        .and_then(|s| s.erasure.as_ref())
        .and_then(|e| e.step.clone());
    assert_eq!(step.as_deref(), Some("done"));
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
    // The step it is in, as a person or the chaos suite sees it.
    assert_eq!(erasure.step.as_deref(), Some("awaitErasure"));
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
    // A pre-signed upload URL on loopback (the shared operator allows loopback egress):
    // the outbound guard approves it before the export Job exists (a name that never
    // resolves, like export.example, would be refused and no Job would run); the Job
    // needs its query, the receipt keeps none of it.
    let extra = json!({"spec": {"contract": {"onTermination": {"action": "ReturnThenDelete", "export": {"url": "http://127.0.0.1:9/upload?X-Amz-Signature=e2e-presigned"}}}}});
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
    assert_eq!(r["exportDestination"], "http://127.0.0.1:9/upload");
    assert!(
        !r.to_string().contains("e2e-presigned"),
        "the pre-signed URL's credential is in the receipt"
    );
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

pub(crate) use crate::common::{
    OwnOperator, own_operator_configured, own_operator_running, own_operator_with,
};

/// An operator of our own for shard `shard`: the Tenant and ChannelBinding controllers
/// (the bindings of its tenants are its own; the shared operator leaves them alone).
pub(crate) fn own_operator(shard: &str) -> OwnOperator {
    own_operator_running(shard, "tenant,channelbinding")
}

/// A Tenant named from `prefix` in a shard of its own, served by an operator of its own
/// (the shared one leaves it alone), created and Ready:
/// (its name, which is also the shard, and that operator).
async fn sharded_tenant(client: &Client, prefix: &str) -> (String, OwnOperator) {
    operator().await; // CRDs, admission policies, the chart's RBAC
    apply_examples();
    let name = unique(prefix);
    let mut own = own_operator(&name);
    own.ready().await;
    let api: Api<Tenant> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &tenant(
            &name,
            None,
            json!({"metadata": {"labels": {SHARD_LABEL: name}}}),
        ),
    )
    .await
    .unwrap();
    wait_ready_active(&api, &name).await;
    (name, own)
}

#[tokio::test]
async fn an_operator_killed_mid_erasure_resumes_and_writes_one_receipt() {
    let client = client().await;
    let (name, mut first) = sharded_tenant(&client, "e2e-kill").await;
    let shard = name.clone();
    let api: Api<Tenant> = Api::all(client.clone());
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
            .any(|p| p["target"] == "platform" && p["confirmedAt"].is_string()),
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
    // It runs what erasure would run (the platform's image, the targets it records), so
    // erasure takes its outcome as the purge's: a Job that runs anything else is not
    // trusted (the next test).
    let failed = erase_job(&["erase", "--tenant", &name, "--target", "platform"]);
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
    // Said with its own condition, long before the deadline (a day away), and while it
    // stands no receipt claims the purge.
    let t = wait_for(
        &api,
        &name,
        condition_is(
            types::ERASURE_STEP_FAILING,
            "True",
            herald::api::v1alpha1::conditions::reason::PURGE_FAILING,
        ),
        "ErasureStepFailing=True, PurgeFailing",
        WAIT,
    )
    .await;
    let es = t.status.as_ref().and_then(|s| s.erasure.clone()).unwrap();
    assert!(
        es.receipt.is_none(),
        "a receipt while the purge fails: {es:?}"
    );
    let purge = es
        .failing_steps
        .iter()
        .find(|f| f.step == "purge")
        .unwrap_or_else(|| panic!("the failed purge is not in failingSteps: {es:?}"));
    assert_eq!((purge.error.as_str(), purge.attempts), ("JobFailed", 1));
    let t = wait_erased(&api, &name, "Erased", WAIT).await;
    assert!(
        t.status
            .as_ref()
            .and_then(|s| s.erasure.as_ref())
            .is_some_and(|e| e.failing_steps.is_empty()),
        "the purge's failure outlived its success"
    );
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

/// A `tenant-<name>` namespace made by hand (no Herald marker, but the tenant label)
/// before the Tenant: Herald does not adopt it (Stalled, `NamespaceNotOwned`), builds
/// nothing in it, and the Tenant's erasure leaves it and its contents in place and
/// lists them in the receipt as found-not-erased.
#[tokio::test]
async fn a_namespace_herald_did_not_create_is_not_adopted_and_survives_erasure() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-foreign");
    let ns = format!("tenant-{name}");
    // The tenant's carrier predates it, so it is effective at once (no notice owed).
    use crate::channel_binding::{create_binding, create_subprocessor, put_secret, wait_binding};
    let sp = unique("foreign-sp");
    create_subprocessor(&client, &sp, 30).await;
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let theirs: Namespace = serde_json::from_value(json!({
        "metadata": {"name": ns, "labels": {"herald.dev/tenant": name, E2E_LABEL: "erasure"}}
    }))
    .unwrap();
    let ns_uid = ns_api
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap()
        .uid()
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for (cm_name, labels) in [
        ("theirs", json!({})),
        ("theirs-labelled", json!({"herald.dev/tenant": name})),
    ] {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": cm_name, "labels": labels}, "data": {"owner": "somebody else"}
        }))
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }

    let api: Api<Tenant> = Api::all(client.clone());
    api.create(&PostParams::default(), &tenant(&name, None, json!({})))
        .await
        .unwrap();
    let t = wait_for(
        &api,
        &name,
        condition_is(types::STALLED, "True", types::reason::NAMESPACE_NOT_OWNED),
        "Stalled NamespaceNotOwned",
        WAIT,
    )
    .await;
    let ready = t
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == types::READY)
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", types::reason::NAMESPACE_NOT_OWNED)
    );
    // Herald wrote nothing in it, and did not mark it as its own.
    let herald_made = ListParams::default().labels("app.kubernetes.io/managed-by=herald");
    assert!(cms.list(&herald_made).await.unwrap().items.is_empty());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    assert!(
        deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), &ns);
    assert!(sas.list(&herald_made).await.unwrap().items.is_empty());
    let now = ns_api.get(&ns).await.unwrap();
    assert!(now.owner_references().is_empty(), "{:?}", now.metadata);
    assert!(!now.labels().contains_key("app.kubernetes.io/managed-by"));
    // Nor does a channel of the tenant put its credential there.
    let (binding, source) = (unique("foreign-b"), unique("foreign-src"));
    put_secret(
        &client,
        &source,
        Some(&name),
        &[("apiKey", "foreign-value")],
    )
    .await;
    create_binding(
        &client,
        &binding,
        &name,
        &sp,
        json!({"secretRef": {"name": source}}),
    )
    .await;
    wait_binding(&client, &binding, "reconciled", |b| {
        b.status
            .as_ref()
            .and_then(|s| s.observed_generation)
            .is_some()
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let credentials = ListParams::default().labels("herald.dev/channel-binding");
    assert!(
        secrets.list(&credentials).await.unwrap().items.is_empty(),
        "a credential was written into a namespace Herald did not create"
    );
    let bindings: Api<herald::api::v1alpha1::ChannelBinding> =
        Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    bindings
        .delete(&binding, &DeleteParams::default())
        .await
        .unwrap();

    // Terminated and deleted: erased without touching it.
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(terminate_at(days_ago(1))),
    )
    .await
    .unwrap();
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
    let after = ns_api.get(&ns).await.expect("the namespace was deleted");
    assert_eq!(after.uid().as_deref(), Some(ns_uid.as_str()));
    assert!(after.metadata.deletion_timestamp.is_none());
    for cm_name in ["theirs", "theirs-labelled"] {
        assert!(
            cms.get_opt(cm_name).await.unwrap().is_some(),
            "{cm_name} deleted"
        );
    }
    let receipts = receipts(&client, &name).await;
    assert_eq!(receipts.len(), 1);
    let data = receipts[0].data.as_ref().unwrap();
    let body = &data["receipt.json"];
    assert_eq!(
        herald::digest::sha256_hex(body.as_bytes()),
        data["sha256"],
        "digest"
    );
    let r: Value = serde_json::from_str(body).unwrap();
    let left: Vec<(&str, &str)> = r["foundNotErased"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["kind"].as_str().unwrap(), o["name"].as_str().unwrap()))
        .collect();
    assert!(left.contains(&("Namespace", ns.as_str())), "{body}");
    assert!(left.contains(&("ConfigMap", "theirs-labelled")), "{body}");
    assert!(
        r["foundNotErased"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["reason"] == types::reason::NAMESPACE_NOT_OWNED),
        "{body}"
    );
    let deleted_namespaces = r["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kind"] == "Namespace");
    assert!(!deleted_namespaces, "{body}");
    assert_eq!(r["metDeadline"], true);
    ns_api.delete(&ns, &DeleteParams::default()).await.unwrap();
}

/// A Namespace somebody labelled for the tenant is not the tenant's: its erasure leaves
/// it (and its unlabelled contents) in place, lists it in the receipt as found-not-
/// erased with a Warning event, and still erases and counts what is labelled in
/// namespaces.
/// The declared erasure scope (`erasure.scope` of the e2e configuration, the chart's
/// RBAC rendered from the same values): a labelled Namespace, and a labelled object in a
/// namespace outside the scope, survive erasure and are reported; a labelled object in a
/// namespace the scope selects is erased and counted; and under the chart's RBAC every
/// kind of the scope was verified.
#[tokio::test]
async fn objects_outside_the_erasure_scope_survive_and_are_reported_those_inside_are_erased() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-labns");
    let api: Api<Tenant> = Api::all(client.clone());
    api.create(&PostParams::default(), &tenant(&name, None, json!({})))
        .await
        .unwrap();
    wait_ready_active(&api, &name).await;
    let labelled_ns = format!("e2e-labelled-{name}");
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": labelled_ns, "labels": {"herald.dev/tenant": name, E2E_LABEL: "erasure"}}
    }))
    .unwrap();
    let ns_uid = ns_api
        .create(&PostParams::default(), &ns)
        .await
        .unwrap()
        .uid()
        .unwrap();
    let inside: Api<ConfigMap> = Api::namespaced(client.clone(), &labelled_ns);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "unrelated"}, "data": {"a": "b"}}))
            .unwrap();
    inside.create(&PostParams::default(), &cm).await.unwrap();
    // Labelled for the tenant, of a scope kind, but in a namespace the scope does not
    // select (the labelled namespace carries no scope label).
    let outside: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "labelled-outside", "labels": {"herald.dev/tenant": name}},
        "data": {"a": "b"}
    }))
    .unwrap();
    let outside_uid = inside
        .create(&PostParams::default(), &outside)
        .await
        .unwrap()
        .uid()
        .unwrap();
    let (other_ns, stray_uid) = stray_config_map(&client, &name, None).await;
    // A namespace the scope's selector matches but that carries Herald's label (as
    // another tenant's does): never a scope namespace.
    let herald_ns = format!("e2e-herald-labelled-{name}");
    scope_namespace(&client, &herald_ns).await;
    ns_api
        .patch(
            &herald_ns,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "herald"}}}),
            ),
        )
        .await
        .unwrap();
    let in_herald_ns: Api<ConfigMap> = Api::namespaced(client.clone(), &herald_ns);
    let theirs_uid = in_herald_ns
        .create(&PostParams::default(), &outside)
        .await
        .unwrap()
        .uid()
        .unwrap();

    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(terminate_at(days_ago(29))),
    )
    .await
    .unwrap();
    let t = wait_erased(&api, &name, "Erased", Duration::from_secs(60)).await;

    let after = ns_api
        .get(&labelled_ns)
        .await
        .expect("the labelled namespace was deleted");
    assert_eq!(after.uid().as_deref(), Some(ns_uid.as_str()));
    assert!(after.metadata.deletion_timestamp.is_none());
    assert!(inside.get_opt("unrelated").await.unwrap().is_some());
    assert!(
        in_herald_ns
            .get_opt("labelled-outside")
            .await
            .unwrap()
            .is_some(),
        "erasure deleted in a namespace carrying Herald's label"
    );
    let survivor = inside.get_opt("labelled-outside").await.unwrap();
    assert!(
        survivor.is_some_and(|c| c.metadata.deletion_timestamp.is_none()),
        "a labelled ConfigMap outside the erasure scope was deleted"
    );
    // What is labelled inside the scope's namespaces is erased, and counted.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &other_ns);
    assert!(cms.get_opt("stray").await.unwrap().is_none());
    assert!(namespace_gone(&client, &format!("tenant-{name}")).await);

    let receipts = receipts(&client, &name).await;
    assert_eq!(receipts.len(), 1);
    let data = receipts[0].data.as_ref().unwrap();
    let body = &data["receipt.json"];
    assert_eq!(herald::digest::sha256_hex(body.as_bytes()), data["sha256"]);
    let r: Value = serde_json::from_str(body).unwrap();
    let mut left: Vec<(&str, &str, &str)> = r["foundNotErased"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            assert_eq!(o["reason"], types::reason::OUTSIDE_ERASURE_SCOPE, "{body}");
            (
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap(),
                o["uid"].as_str().unwrap(),
            )
        })
        .collect();
    left.sort();
    let mut expected = vec![
        ("ConfigMap", "labelled-outside", outside_uid.as_str()),
        ("ConfigMap", "labelled-outside", theirs_uid.as_str()),
        ("Namespace", labelled_ns.as_str(), ns_uid.as_str()),
    ];
    expected.sort();
    assert_eq!(left, expected, "{body}");
    // The operator runs as the chart's ServiceAccount: it could list every kind of the
    // scope, so nothing is left unverified.
    assert_eq!(r["unverifiedKinds"], json!([]), "{body}");
    let deleted_uids = |kind: &str| -> Vec<String> {
        r["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["kind"] == kind)
            .flat_map(|k| k["uids"].as_array().unwrap().iter())
            .map(|u| u.as_str().unwrap().to_owned())
            .collect()
    };
    assert!(deleted_uids("ConfigMap").contains(&stray_uid), "{body}");
    assert!(!deleted_uids("ConfigMap").contains(&outside_uid), "{body}");
    assert!(!deleted_uids("Namespace").contains(&ns_uid), "{body}");
    assert_eq!(r["metDeadline"], true);
    // The condition says so, and one Warning event.
    let erased = t
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == types::ERASED)
        .unwrap();
    assert!(
        erased.message.contains("found and not erased"),
        "{}",
        erased.message
    );
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let found: Vec<_> = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(types::reason::OUTSIDE_ERASURE_SCOPE))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains(&labelled_ns)
    );
    for ns in [&labelled_ns, &herald_ns] {
        ns_api.delete(ns, &DeleteParams::default()).await.unwrap();
    }
}

/// A client that acts as the cluster admin in the break-glass group of the evidence
/// policy (impersonation: the test's admin may impersonate).
pub(crate) async fn break_glass_client() -> Client {
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info.impersonate = Some("e2e-evidence-admin".into());
    config.auth_info.impersonate_groups = Some(vec![
        "system:masters".into(),
        "herald-evidence-admins".into(),
    ]);
    Client::try_from(config).unwrap()
}

/// Runs `herald receipt verify` on `receipt` (and `keys`); (success, stdout + stderr).
pub(crate) fn verify_receipt(
    dir: &std::path::Path,
    receipt: &Value,
    keys: Option<&str>,
) -> (bool, String) {
    let file = dir.join(format!("receipt-{}.json", unique("r")));
    std::fs::write(&file, serde_json::to_vec(receipt).unwrap()).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(["receipt", "verify"]).arg(&file);
    if let Some(k) = keys {
        cmd.arg("--public-key").arg(k);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn a_receipt_is_signed_verifies_offline_and_cannot_be_deleted_or_changed() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-evidence");
    let api: Api<Tenant> = Api::all(client.clone());
    api.create(&PostParams::default(), &tenant(&name, None, json!({})))
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
    wait_erased(&api, &name, "Erased", Duration::from_secs(90)).await;
    let rs = receipts(&client, &name).await;
    assert_eq!(rs.len(), 1, "expected exactly one receipt");
    let receipt_name = rs[0].name_any();

    // Offline, as an auditor would: the receipt and the published keys as kubectl
    // prints them, checked by the herald binary alone.
    let dir = repo_root().join("target").join("e2e-evidence");
    std::fs::create_dir_all(&dir).unwrap();
    let keys_file = dir.join(format!("keys-{name}.yaml"));
    let keys = kubectl(&[
        "get",
        "configmap",
        herald::evidence::store::PUBLIC_KEYS,
        "-n",
        CONTROL_NAMESPACE,
        "-o",
        "yaml",
    ]);
    assert!(
        keys.status.success(),
        "{}",
        String::from_utf8_lossy(&keys.stderr)
    );
    std::fs::write(&keys_file, &keys.stdout).unwrap();
    let keys_path = keys_file.to_string_lossy().into_owned();
    let printed = kubectl(&[
        "get",
        "configmap",
        &receipt_name,
        "-n",
        CONTROL_NAMESPACE,
        "-o",
        "json",
    ]);
    let receipt: Value = serde_json::from_slice(&printed.stdout).unwrap();
    let key_id = receipt["data"]["keyId"].as_str().unwrap().to_owned();
    assert!(
        String::from_utf8_lossy(&keys.stdout).contains(&key_id),
        "the receipt's key {key_id} is not among the published keys"
    );
    let (ok, out) = verify_receipt(&dir, &receipt, Some(&keys_path));
    assert!(ok, "a real receipt does not verify: {out}");
    assert!(
        out.contains(&format!("signed by trusted key {key_id}")),
        "{out}"
    );

    // One changed byte, with and without a recomputed sha256: refused, with the reason.
    let body = receipt["data"]["receipt.json"].as_str().unwrap();
    let changed = body.replacen(&name, &format!("{}x", &name[..name.len() - 1]), 1);
    assert_ne!(changed, body);
    let mut tampered = receipt.clone();
    tampered["data"]["receipt.json"] = json!(changed);
    let (ok, out) = verify_receipt(&dir, &tampered, Some(&keys_path));
    assert!(!ok && out.contains("do not match its sha256"), "{out}");
    tampered["data"]["sha256"] = json!(herald::digest::sha256_hex(changed.as_bytes()));
    let (ok, out) = verify_receipt(&dir, &tampered, Some(&keys_path));
    assert!(!ok && out.contains("signature does not verify"), "{out}");

    // Evidence is protected at admission: deleting or changing the receipt (or the
    // published keys) is refused even to the cluster admin; the break-glass group may.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    let dry_run = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    let deadline = Instant::now() + WAIT;
    let refusal = loop {
        // Policies load asynchronously after they are created: wait until it is live.
        match cms.delete(&receipt_name, &dry_run).await {
            Err(kube::Error::Api(s)) if s.code == 403 => break s.message,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "deleting a receipt was not refused: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    assert!(refusal.contains("is evidence"), "{refusal}");
    match cms.delete(&receipt_name, &DeleteParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{}", s.message),
        Ok(_) => panic!("the receipt {receipt_name} was deleted"),
        Err(e) => panic!("delete receipt: {e}"),
    }
    let relabel = json!({"metadata": {"labels": {"herald.dev/receipt-for": "someone-else"}}});
    match cms
        .patch(
            &receipt_name,
            &PatchParams::default(),
            &Patch::Merge(&relabel),
        )
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{}", s.message),
        Ok(_) => panic!("the receipt {receipt_name} was changed"),
        Err(e) => panic!("patch receipt: {e}"),
    }
    let replace_key = json!({"data": {key_id.clone(): "AAAA"}});
    match cms
        .patch(
            herald::evidence::store::PUBLIC_KEYS,
            &PatchParams::default(),
            &Patch::Merge(&replace_key),
        )
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{}", s.message),
        Ok(_) => panic!("a published receipt key was replaced"),
        Err(e) => panic!("patch public keys: {e}"),
    }
    assert!(cms.get_opt(&receipt_name).await.unwrap().is_some());
    let glass: Api<ConfigMap> = Api::namespaced(break_glass_client().await, CONTROL_NAMESPACE);
    glass
        .delete(&receipt_name, &dry_run)
        .await
        .unwrap_or_else(|e| panic!("the break-glass group may delete evidence: {e}"));
}

/// A fake provider credential API that mints but refuses every revocation with HTTP 500
/// until `accept` is set; counts the revocations it was asked for. It serves `tenant`'s
/// calls behind the e2e platform's configured provider (the loopback router), and mints
/// ids `<tenant>.cred-1` so that revocations are routed back to it.
fn refusing_provider(
    tenant: &str,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    Arc<std::sync::atomic::AtomicU32>,
) {
    use axum::http::StatusCode;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let router = crate::provider_router::router();
    let accept = Arc::new(AtomicBool::new(false));
    let revokes = Arc::new(AtomicU32::new(0));
    let bearer = format!("Bearer {}", router.token);
    let (a, r) = (accept.clone(), revokes.clone());
    let id = format!("{tenant}.cred-1");
    let app = axum::Router::new()
        .route(
            "/credentials",
            axum::routing::post(move |headers: HeaderMap| {
                let ok = headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some(bearer.as_str());
                async move {
                    if !ok {
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    let secret = unique("minted");
                    (
                        StatusCode::CREATED,
                        json!({"id": id, "secret": secret}).to_string(),
                    )
                }
            }),
        )
        .route(
            "/credentials/{id}",
            axum::routing::delete(move || {
                r.fetch_add(1, Ordering::SeqCst);
                let accepted = a.load(Ordering::SeqCst);
                async move {
                    if accepted {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::INTERNAL_SERVER_ERROR
                    }
                }
            }),
        );
    router.register(tenant, app);
    (accept, revokes)
}

/// A provider that refuses to revoke the channel's credentials does not hold erasure:
/// the tenant is erased well before its deadline, the receipt says which revocation
/// failed (class, attempts), the Tenant says so, and the binding keeps retrying after
/// the receipt, until the provider accepts and the failure goes from the status.
#[tokio::test]
async fn a_provider_refusing_revocation_does_not_hold_erasure_and_the_receipt_says_so() {
    use crate::channel_binding::{
        create_binding, create_subprocessor, create_tenant, wait_binding,
    };
    use herald::api::v1alpha1::conditions::reason;
    use std::sync::atomic::Ordering;
    let client = client().await;
    operator().await;
    apply_examples();
    let (name, sp, binding) = (
        unique("e2e-revoke"),
        unique("e2e-revoke-sp"),
        unique("e2e-revoke-b"),
    );
    create_subprocessor(&client, &sp, 30).await;
    create_tenant(&client, &name, json!({})).await;
    let (accept, revokes) = refusing_provider(&name);
    create_binding(
        &client,
        &binding,
        &name,
        &sp,
        json!({"providerApi": {"name": crate::provider_router::PROVIDER}}),
    )
    .await;
    wait_binding(&client, &binding, "a minted credential", |b| {
        b.status
            .as_ref()
            .is_some_and(|s| s.provider_credential_id.is_some())
    })
    .await;
    let api: Api<Tenant> = Api::all(client.clone());
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(terminate_at(days_ago(29))),
    )
    .await
    .unwrap();

    let t = wait_erased(&api, &name, "Erased despite the refused revocation", WAIT).await;
    assert!(
        revokes.load(Ordering::SeqCst) >= 1,
        "no revocation was tried"
    );
    let rs = receipts(&client, &name).await;
    assert_eq!(rs.len(), 1);
    let r: Value = serde_json::from_str(&rs[0].data.as_ref().unwrap()["receipt.json"]).unwrap();
    assert_eq!(r["metDeadline"], true);
    let failed = r["failedExternalSteps"].as_array().unwrap();
    assert!(
        failed.iter().any(|f| f["step"] == "revocation"
            && f["target"] == "sms"
            && f["error"] == "server_error"
            && f["attempts"].as_i64().unwrap_or(0) >= 1
            && f["lastTry"].is_string()),
        "the refused revocation is not in the receipt: {failed:?}"
    );
    // The channel's data was purged by the Job: that is confirmed, the revocation not.
    assert!(
        r["externalPurges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["target"] == "sms" && p["confirmedAt"].is_string()),
        "{r}"
    );
    let failing = condition_is(
        types::ERASURE_STEP_FAILING,
        "True",
        reason::REVOCATION_FAILING,
    );
    assert!(
        failing.matches_object(Some(&t)),
        "{:?}",
        t.status.map(|s| s.conditions)
    );

    // Retried after the receipt: once the provider accepts, the revocation completes
    // and the failure leaves the Tenant's status (the binding's backoff reaches minutes).
    accept.store(true, Ordering::SeqCst);
    let cleared = |t: Option<&Tenant>| {
        t.and_then(|t| t.status.as_ref())
            .and_then(|s| s.erasure.as_ref())
            .is_some_and(|e| e.failing_steps.is_empty())
            && condition_is(types::ERASURE_STEP_FAILING, "False", reason::RECONCILED)
                .matches_object(t)
    };
    wait_for(
        &api,
        &name,
        cleared,
        "the revocation retried after the receipt",
        Duration::from_secs(400),
    )
    .await;
    let b = wait_binding(&client, &binding, "revoked", |b| {
        b.status
            .as_ref()
            .is_some_and(|s| s.credentials_revoked_at.is_some() && s.revocation_failure.is_none())
    })
    .await;
    assert!(b.status.is_some());
    assert_eq!(receipts(&client, &name).await.len(), 1, "one receipt only");
}

/// A `herald-erase` Job with erasure's image and `args`, suspended (no pod runs).
fn erase_job(args: &[&str]) -> Job {
    let config = herald::config::OperatorConfig::load(None).unwrap();
    let image = herald::controller::tenant::data_plane::image(&config);
    serde_json::from_value(json!({
        "metadata": {"name": "herald-erase", "labels": {E2E_LABEL: "erasure"}},
        "spec": {"suspend": true, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "job", "image": image, "args": args}]
        }}}
    }))
    .unwrap()
}

/// A `herald-erase` Job made by someone else, for other targets and already marked
/// Complete, confirms nothing: erasure replaces it with its own, and the receipt's purge
/// is that one's.
#[tokio::test]
async fn a_premade_erase_job_with_other_arguments_is_replaced_and_confirms_nothing() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-fakejob");
    let ns = format!("tenant-{name}");
    let api: Api<Tenant> = Api::all(client.clone());
    api.create(&PostParams::default(), &tenant(&name, None, json!({})))
        .await
        .unwrap();
    wait_ready_active(&api, &name).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let fake_uid = jobs
        .create(
            &PostParams::default(),
            &erase_job(&["erase", "--tenant", &name, "--target", "nothing"]),
        )
        .await
        .unwrap()
        .uid()
        .unwrap();
    let now = Timestamp::now().to_string();
    let condition = |type_: &str| json!({"type": type_, "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastTransitionTime": now});
    jobs.patch_status(
        "herald-erase",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"startTime": now, "completionTime": now, "succeeded": 1,
            "conditions": [condition("SuccessCriteriaMet"), condition("Complete")]}}),
        ),
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
    let t = wait_erased(&api, &name, "Erased", WAIT).await;
    let es = t.status.unwrap().erasure.unwrap();
    let job_uids = &es
        .inventory
        .iter()
        .find(|k| k.kind == "Job")
        .unwrap_or_else(|| panic!("no Job in the inventory: {es:?}"))
        .uids;
    assert!(
        !job_uids.contains(&fake_uid),
        "the premade Job was accepted as the purge: {job_uids:?}"
    );
    assert!(
        es.external_purges
            .iter()
            .any(|p| p.target == "platform" && p.confirmed_at.is_some()),
        "{es:?}"
    );
}

/// The purge targets are chosen once, from the live bindings, and persisted before the
/// Job exists: an operator killed between the two (Job creation held by a quota of zero
/// Jobs) resumes with them, and the receipt confirms exactly the bindings' channels.
#[tokio::test]
async fn a_restart_between_target_selection_and_job_creation_purges_every_binding_channel() {
    use crate::channel_binding::{create_binding, create_subprocessor, put_secret};
    let client = client().await;
    let (name, mut first) = sharded_tenant(&client, "e2e-targets").await;
    let ns = format!("tenant-{name}");
    let shard = name.clone();
    let api: Api<Tenant> = Api::all(client.clone());
    let (sp, binding, source) = (
        unique("e2e-targets-sp"),
        unique("e2e-targets-b"),
        unique("e2e-targets-src"),
    );
    create_subprocessor(&client, &sp, 30).await;
    put_secret(&client, &source, Some(&name), &[("apiKey", "k")]).await;
    create_binding(
        &client,
        &binding,
        &name,
        &sp,
        json!({"secretRef": {"name": source}}),
    )
    .await;
    // No Job can be created in the tenant namespace for now.
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> =
        Api::namespaced(client.clone(), &ns);
    quotas
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "no-jobs"},
                "spec": {"hard": {"count/jobs.batch": "0"}}
            }))
            .unwrap(),
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
    let recorded = |t: Option<&Tenant>| {
        t.and_then(|t| t.status.as_ref())
            .and_then(|s| s.erasure.as_ref())
            .is_some_and(|e| !e.external_purges.is_empty())
    };
    let t = wait_for(&api, &name, recorded, "purge targets recorded", WAIT).await;
    let targets: Vec<String> = t
        .status
        .unwrap()
        .erasure
        .unwrap()
        .external_purges
        .iter()
        .map(|p| p.target.clone())
        .collect();
    assert_eq!(targets, ["platform", "sms"], "targets recorded");
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    assert!(
        jobs.get_opt("herald-erase").await.unwrap().is_none(),
        "the Job was created despite the quota"
    );
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    quotas
        .delete("no-jobs", &DeleteParams::default())
        .await
        .unwrap();

    let mut second = own_operator(&shard);
    second.ready().await;
    let t = wait_erased(&api, &name, "Erased after restart", WAIT).await;
    drop(second);
    let rs = receipts(&client, &name).await;
    assert_eq!(rs.len(), 1);
    let r: Value = serde_json::from_str(&rs[0].data.as_ref().unwrap()["receipt.json"]).unwrap();
    let confirmed: Vec<&str> = r["externalPurges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["confirmedAt"].is_string())
        .map(|p| p["target"].as_str().unwrap())
        .collect();
    assert_eq!(confirmed, ["platform", "sms"], "{r}");
    assert_eq!(t.uid(), Some(r["tenantUid"].as_str().unwrap().to_owned()));
}

/// In the control namespace erasure takes only the tenant's own Secrets (labelled for
/// it: its credentials), and counts them; anything else labelled for it there is the
/// platform's: left in place and reported as found-not-erased.
#[tokio::test]
async fn the_tenant_s_source_secrets_are_erased_and_other_control_namespace_objects_left() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-ctlns");
    let api: Api<Tenant> = Api::all(client.clone());
    api.create(&PostParams::default(), &tenant(&name, None, json!({})))
        .await
        .unwrap();
    wait_ready_active(&api, &name).await;
    let source = unique("e2e-ctlns-src");
    crate::channel_binding::put_secret(&client, &source, Some(&name), &[("apiKey", "k")]).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    let secret_uid = secrets.get(&source).await.unwrap().uid().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    let note = unique("e2e-ctlns-cm");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": note, "labels": {"herald.dev/tenant": name, E2E_LABEL: "erasure"}},
        "data": {"note": "the platform's"}
    }))
    .unwrap();
    let cm_uid = cms
        .create(&PostParams::default(), &cm)
        .await
        .unwrap()
        .uid()
        .unwrap();
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(terminate_at(days_ago(29))),
    )
    .await
    .unwrap();
    wait_erased(&api, &name, "Erased", WAIT).await;
    assert!(
        secrets.get_opt(&source).await.unwrap().is_none(),
        "the tenant's source Secret survived its erasure"
    );
    assert!(
        cms.get_opt(&note).await.unwrap().is_some(),
        "a ConfigMap of the control namespace was erased"
    );
    let rs = receipts(&client, &name).await;
    assert_eq!(rs.len(), 1);
    let r: Value = serde_json::from_str(&rs[0].data.as_ref().unwrap()["receipt.json"]).unwrap();
    assert!(
        r["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kind"] == "Secret"
                && k["uids"].as_array().unwrap().contains(&json!(secret_uid))),
        "the source Secret is not counted: {r}"
    );
    assert!(
        r["foundNotErased"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["uid"] == cm_uid.as_str() && o["reason"] == "OutsideErasureScope"),
        "the ConfigMap left is not reported: {r}"
    );
    cms.delete(&note, &DeleteParams::default()).await.unwrap();
}

/// A kind of the erasure scope that the operator may not list is not skipped silently:
/// an operator whose scope names Services (which the chart's RBAC, rendered for the
/// e2e scope, does not let it list) erases the tenant and says, in the receipt, in
/// status and in the Erased condition, that Services were not verified.
#[tokio::test]
async fn a_scope_kind_the_operator_cannot_list_is_reported_unverified() {
    let client = client().await;
    operator().await; // CRDs, admission policies, the chart's RBAC
    apply_examples();
    let name = unique("e2e-unverified");
    let shard = name.clone();
    let erasure = format!(
        "{}    kinds:\n      - {{group: '', version: v1, resource: configmaps}}\n      - {{group: '', version: v1, resource: services}}\n",
        crate::common::erasure_scope_yaml()
    );
    let mut own = own_operator_configured(&shard, "tenant", &erasure, true);
    own.ready().await;
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
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(terminate_at(days_ago(29))),
    )
    .await
    .unwrap();
    let t = wait_for(
        &api,
        &name,
        condition_is(types::ERASED, "True", types::reason::KINDS_UNVERIFIED),
        "Erased, with Services unverified",
        Duration::from_secs(60),
    )
    .await;
    let erased = t
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == types::ERASED)
        .unwrap();
    assert!(erased.message.contains("services"), "{}", erased.message);
    let es = t.status.as_ref().unwrap().erasure.as_ref().unwrap();
    assert_eq!(es.unverified_kinds, ["services"]);
    let rs = receipts(&client, &name).await;
    assert_eq!(rs.len(), 1);
    let r: Value = serde_json::from_str(&rs[0].data.as_ref().unwrap()["receipt.json"]).unwrap();
    assert_eq!(r["unverifiedKinds"], json!(["services"]), "{r}");
    drop(own);
}

/// An erasure scope naming what erasure must never delete is refused when the operator
/// starts, with the reason, before it touches the cluster.
#[test]
fn an_operator_configured_to_erase_namespaces_or_secrets_does_not_start() {
    for (kinds, why) in [
        (
            "[{version: v1, resource: namespaces}]",
            "scope.kinds: namespaces: a Namespace is never erased but the tenant's own",
        ),
        (
            "[{version: v1, resource: secrets}]",
            "scope.kinds: secrets: Secrets are erased in the tenant and control namespaces only",
        ),
        (
            "[{group: herald.dev, version: v1alpha1, resource: tenants}]",
            "scope.kinds: tenants.herald.dev: Herald's own kinds are not erased",
        ),
    ] {
        let path = repo_root().join(format!("target/e2e-bad-scope-{}.yaml", std::process::id()));
        std::fs::write(
            &path,
            format!(
                "{}\nerasure:\n  scope:\n    kinds: {kinds}\n",
                herald::config::DEFAULT_CONFIG
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["run", "--http-addr", "127.0.0.1:0", "--config"])
            .arg(&path)
            // No cluster: the configuration must be refused before any request.
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with kinds {kinds}");
        assert!(
            stderr.contains("has an invalid erasure scope") && stderr.contains(why),
            "{stderr}"
        );
    }
}
