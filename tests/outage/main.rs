//! Control-plane outages, on the local cluster: the API server (and etcd) restarted
//! under a running operator. A binary of its own, run by `make e2e` after the main suite,
//! because a restart would interrupt the parallel tests of that suite; built only with
//! the `e2e` feature and, once built, a missing cluster fails it.
//!
//! The promise tested: after a restart every controller's watches resume (an expired
//! resource version means a relist, never a dead stream) and a change made afterwards
//! is acted on within 30 s, without restarting the operator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step must fail the test loudly

mod admission;
#[path = "../e2e/common.rs"]
mod common;
#[path = "../e2e/identity.rs"]
mod identity;
#[path = "../e2e/provider_router.rs"]
mod provider_router;
mod signing_key;

use std::time::Duration;

use herald::api::v1alpha1::Tenant;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

use common::{WAIT, apply_examples, client, operator, repo_root, unique};

/// How soon after a restart a change must be acted on.
const PICKUP: Duration = Duration::from_secs(30);

fn restart(component: &str) {
    let out = std::process::Command::new(repo_root().join("e2e/cluster/cluster.sh"))
        .args(["restart", component])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restart {component}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tenant(name: &str) -> Tenant {
    serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": name, "labels": {common::E2E_LABEL: "outage"}},
        "spec": {
            "displayName": "Outage Test GmbH",
            "contract": {"state": "Active", "dpa": {"reference": "DPA-E2E-O", "signedAt": "2026-01-01T00:00:00Z"}},
            "residency": {"regions": ["eu-central-1"]},
            "retentionPolicyRef": {"name": "standard-eu"},
            "senders": {"replicas": 1},
            "deletionProtection": false
        }
    }))
    .unwrap()
}

/// Waits until the Tenant's status describes its current generation and the sender
/// Deployment asks for `replicas`.
async fn wait_applied(client: &kube::Client, name: &str, replicas: i32, within: Duration) {
    let tenants: Api<Tenant> = Api::all(client.clone());
    tokio::time::timeout(
        within,
        await_condition(tenants, name, |t: Option<&Tenant>| {
            t.is_some_and(|t| {
                t.status.as_ref().and_then(|s| s.observed_generation) == t.metadata.generation
            })
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("tenant {name}: generation not observed within {within:?}"))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &format!("tenant-{name}"));
    tokio::time::timeout(
        within,
        await_condition(
            deployments,
            herald::controller::tenant::build::SENDER,
            move |d: Option<&Deployment>| {
                d.and_then(|d| d.spec.as_ref()).and_then(|s| s.replicas) == Some(replicas)
            },
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("tenant {name}: senders not at {replicas} within {within:?}"))
    .unwrap();
}

async fn scale(client: &kube::Client, name: &str, replicas: i32) {
    let tenants: Api<Tenant> = Api::all(client.clone());
    tenants
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"senders": {"replicas": replicas}}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn changes_after_an_api_server_and_an_etcd_restart_are_picked_up_within_30_s() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-outage");
    let tenants: Api<Tenant> = Api::all(client.clone());
    tenants
        .create(&PostParams::default(), &tenant(&name))
        .await
        .unwrap();
    wait_applied(&client, &name, 1, WAIT).await;

    for (round, component) in ["kube-apiserver", "etcd", "kube-apiserver"]
        .iter()
        .enumerate()
    {
        restart(component);
        // A fresh client: the old one's connections died with the server.
        let client = common::client().await;
        let replicas = 2 + round as i32;
        let t0 = std::time::Instant::now();
        scale(&client, &name, replicas).await;
        wait_applied(&client, &name, replicas, PICKUP).await;
        eprintln!(
            "after the {component} restart: picked up in {:?}",
            t0.elapsed()
        );
    }
    let metrics = operator().await.metrics().await;
    assert!(
        !operator().await.log().contains("panicked"),
        "the operator panicked"
    );
    assert!(metrics.contains("herald_reconcile_total"));
    tenants.delete(&name, &Default::default()).await.unwrap();
}
