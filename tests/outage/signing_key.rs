//! A receipt signing key Herald did not generate (issue 25). In this binary, run alone
//! after the main suite, because the test replaces the cluster's one signing key for a
//! while, which would stall the receipts of the suite's parallel tests.
//!
//! The planted key stands for one created while the evidence policy was absent (now
//! only the break-glass identity can create it, so the test does so as that identity).

use std::time::Duration;

use herald::api::v1alpha1::Tenant;
use herald::api::v1alpha1::conditions::{self as types, reason};
use herald::evidence::store::{KEY_SECRET, KEY_SECRET_KEY, KEY_SECRET_TYPE};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use serde_json::json;

use crate::common::{
    CONTROL_NAMESPACE, SHARD_LABEL, WAIT, apply_examples, client, operator, own_operator_running,
    unique,
};

/// The cluster admin in the evidence policy's break-glass group.
async fn break_glass() -> Client {
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info.impersonate = Some("e2e-evidence-admin".into());
    config.auth_info.impersonate_groups = Some(vec![
        "system:masters".into(),
        "herald-evidence-admins".into(),
    ]);
    Client::try_from(config).unwrap()
}

fn condition(
    type_: &'static str,
    status: &'static str,
    why: &'static str,
) -> impl Condition<Tenant> {
    move |t: Option<&Tenant>| {
        t.and_then(|t| t.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == status && c.reason == why)
        })
    }
}

async fn wait(api: &Api<Tenant>, name: &str, cond: impl Condition<Tenant>, what: &str) -> Tenant {
    tokio::time::timeout(
        Duration::from_secs(90),
        await_condition(api.clone(), name, cond),
    )
    .await
    .unwrap_or_else(|_| panic!("tenant {name}: {what} not reached in 90 s"))
    .unwrap()
    .unwrap()
}

/// Polls an operator's /metrics until `line` appears (a process's endpoint: nothing
/// to watch).
async fn metric_line(own: &crate::common::OwnOperator, line: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if own.metrics().await.lines().any(|l| l == line) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{line:?} not in the metrics: {}",
            own.metrics().await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_signing_key_herald_did_not_generate_is_refused_reported_and_replaced_once_removed() {
    let admin = client().await;
    operator().await; // CRDs, admission policies, the chart's RBAC
    apply_examples();
    let glass: Api<Secret> = Api::namespaced(break_glass().await, CONTROL_NAMESPACE);
    // Swap Herald's key for a planted one: a valid Ed25519 key, without Herald's marker.
    let _ = glass.delete(KEY_SECRET, &DeleteParams::default()).await;
    let pkcs8 = herald::evidence::SigningKey::generate_pkcs8().unwrap();
    let planted: Secret = serde_json::from_value(json!({
        "metadata": {"name": KEY_SECRET, "labels": {"app.kubernetes.io/managed-by": "herald"}},
        "data": {KEY_SECRET_KEY: k8s_openapi::ByteString(pkcs8.clone())}
    }))
    .unwrap();
    glass
        .create(&PostParams::default(), &planted)
        .await
        .unwrap();

    let name = unique("e2e-foreign-key");
    let mut own = own_operator_running(&name, "tenant,channelbinding");
    own.ready().await;
    // Refused at start, and said.
    metric_line(&own, "herald_receipt_signing_key_usable 0").await;
    let planted_id = herald::evidence::SigningKey::from_pkcs8(&pkcs8)
        .unwrap()
        .key_id()
        .to_owned();
    let published =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(admin.clone(), CONTROL_NAMESPACE)
            .get(herald::evidence::store::PUBLIC_KEYS)
            .await
            .unwrap();
    assert!(
        !published.data.unwrap_or_default().contains_key(&planted_id),
        "the planted key was published"
    );

    // A tenant whose receipt is due: Stalled with the reason, not Erased on that key.
    let api: Api<Tenant> = Api::all(admin.clone());
    let tenant: Tenant = serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": name, "labels": {crate::common::E2E_LABEL: "outage", SHARD_LABEL: name}},
        "spec": {
            "displayName": "Foreign Key Test GmbH",
            "contract": {"state": "Active", "dpa": {"reference": "DPA-E2E-K", "signedAt": "2026-01-01T00:00:00Z"}},
            "residency": {"regions": ["eu-central-1"]},
            "retentionPolicyRef": {"name": "standard-eu"},
            "senders": {"replicas": 1},
            "deletionProtection": false
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &tenant).await.unwrap();
    wait(
        &api,
        &name,
        condition(types::READY, "True", "Reconciled"),
        "Ready",
    )
    .await;
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let terminated = k8s_openapi::jiff::Timestamp::from_second(now - 29 * 86_400)
        .unwrap()
        .to_string();
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"contract": {"state": "Terminated", "terminatedAt": terminated}}}),
        ),
    )
    .await
    .unwrap();
    let t = wait(
        &api,
        &name,
        condition(types::STALLED, "True", reason::SIGNING_KEY_NOT_HERALDS),
        "Stalled SigningKeyNotHeralds",
    )
    .await;
    let erasure = t.status.unwrap().erasure.unwrap_or_default();
    assert!(
        erasure.receipt.is_none(),
        "a receipt was written with the planted key"
    );

    // A person removes it: Herald generates its own, publishes it, and the erasure ends.
    glass
        .delete(KEY_SECRET, &DeleteParams::default())
        .await
        .unwrap();
    wait(
        &api,
        &name,
        condition(types::ERASED, "True", "Erased"),
        "Erased",
    )
    .await;
    metric_line(&own, "herald_receipt_signing_key_usable 1").await;
    let key = glass.get(KEY_SECRET).await.unwrap();
    assert_eq!(key.type_.as_deref(), Some(KEY_SECRET_TYPE));
    drop(own);
}
