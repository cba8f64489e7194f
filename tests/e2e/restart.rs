//! An operator restarted under a converged tenant: its first reconciles act on a warm
//! cache. Right after a start the binding and node caches are still filling; a reconcile
//! that ran then built the sender template without the credentials it had not seen yet
//! and rolled the senders to it (a chaos run measured 144 of 149 tenants rolled so).

use herald::api::v1alpha1::Tenant;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

use crate::channel_binding::{create_binding, create_subprocessor, put_secret, wait_rolled_out};
use crate::common::{SHARD_LABEL, WAIT, apply_examples, client, operator, unique};
use crate::erasure::{own_operator, tenant};

#[tokio::test]
async fn a_restarted_operator_reconciles_at_once_without_rolling_the_senders() {
    let client = client().await;
    operator().await; // CRDs, the chart's RBAC, and the binding controller
    apply_examples();
    let name = unique("e2e-warm");
    let shard = name.clone();
    let (sp, binding, source) = (unique("warm-sp"), unique("warm-b"), unique("warm-src"));
    create_subprocessor(&client, &sp, 30).await;
    put_secret(&client, &source, Some(&name), &[("apiKey", "warm-value-1")]).await;
    let mut first = own_operator(&shard);
    first.ready().await;
    let tenants: Api<Tenant> = Api::all(client.clone());
    tenants
        .create(
            &PostParams::default(),
            &tenant(
                &name,
                None,
                json!({"metadata": {"labels": {SHARD_LABEL: shard}}}),
            ),
        )
        .await
        .unwrap();
    create_binding(
        &client,
        &binding,
        &name,
        &sp,
        json!({"secretRef": {"name": source}}),
    )
    .await;
    wait_rolled_out(&client, &name, "sms", Some(1)).await;
    let ns = format!("tenant-{name}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let sender = herald::controller::tenant::build::SENDER;
    let before = deployments.get(sender).await.unwrap();
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let sets_before = replica_sets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();

    // Kill it, ask for a reconcile, start another: its first reconcile is the one that
    // used to see no bindings.
    drop(first);
    let requested = unique("warm-request");
    tenants
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                herald::controller::RECONCILE_REQUESTED_ANNOTATION: requested}}})),
        )
        .await
        .unwrap();
    let mut second = own_operator(&shard);
    second.ready().await;
    let handled = requested.clone();
    tokio::time::timeout(
        WAIT,
        await_condition(tenants.clone(), &name, move |t: Option<&Tenant>| {
            t.and_then(|t| t.status.as_ref())
                .and_then(|s| s.last_handled_reconcile_at.as_deref())
                == Some(handled.as_str())
        }),
    )
    .await
    .expect("the restarted operator did not reconcile the tenant")
    .unwrap();

    let after = deployments.get(sender).await.unwrap();
    assert_eq!(
        after.metadata.generation, before.metadata.generation,
        "the restart changed the sender Deployment (a rollout)"
    );
    assert_eq!(
        serde_json::to_value(&after.spec.as_ref().unwrap().template).unwrap(),
        serde_json::to_value(&before.spec.as_ref().unwrap().template).unwrap()
    );
    let sets_after = replica_sets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(sets_after, sets_before, "a new ReplicaSet appeared");
    // Clean up while this shard has an operator: the erasure finalizer needs one.
    let uid = tenants.get(&name).await.unwrap().metadata.uid.unwrap();
    tenants.delete(&name, &Default::default()).await.unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(
            tenants,
            &name,
            kube::runtime::wait::conditions::is_deleted(&uid),
        ),
    )
    .await
    .expect("the tenant was not erased")
    .unwrap();
    drop(second);
}
