//! `--tenant-selector` shards the ChannelBindings too (issue 14 item 4): a binding is
//! served by the operator whose selector matches its Tenant's labels, and by no other.
//! The ChannelBinding controller judges the selector itself (a binding carries no tenant
//! labels), so its reading is also held against the API server's, selector by selector.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use herald::api::v1alpha1::{ChannelBinding, Tenant};
use herald::controller::shard::Shard;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::channel_binding::{
    apply_retention_policies, create_binding, create_subprocessor, create_tenant, put_secret,
    wait_binding,
};
use crate::common::{
    CONTROL_NAMESPACE, SHARD_LABEL, WAIT, client, ensure_namespace, operator, unique,
};
use crate::erasure::{own_operator_running, tenant};

fn ready_on_version_1(b: &ChannelBinding) -> bool {
    b.status.as_ref().is_some_and(|s| {
        s.credential_version == Some(1)
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

async fn wait_gone(client: &Client, name: &str) {
    let api: Api<ChannelBinding> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    kube::runtime::wait::await_condition(api, name, kube::runtime::conditions::is_deleted(""))
        .await
        .unwrap();
}

/// Two bindings, one of a Tenant in a shard (served by an operator of its own with
/// `--tenant-selector shard=<x>`) and one of an unlabelled Tenant (served by the shared
/// operator, `--tenant-selector !shard`). With the shard's operator stopped, both are
/// deleted: the shared operator releases its own and, on the same events, leaves the
/// shard's in place with its finalizer (it would have revoked and released it before
/// bindings were sharded). The shard's operator, started again, releases it.
#[tokio::test]
async fn a_binding_is_served_only_by_the_operator_whose_selector_matches_its_tenant() {
    let client = client().await;
    operator().await;
    apply_retention_policies();
    let (shard, sp) = (unique("e2e-shard"), unique("shard-sp"));
    let (mine, theirs) = (shard.clone(), unique("shard-shared"));
    create_subprocessor(&client, &sp, 30).await;
    let mut own = own_operator_running(&shard, "tenant,channelbinding");
    own.ready().await;
    // Labelled at creation: the shared operator never serves it, not even briefly.
    Api::<Tenant>::all(client.clone())
        .create(
            &PostParams::default(),
            &tenant(
                &mine,
                None,
                json!({"metadata": {"labels": {SHARD_LABEL: shard}}}),
            ),
        )
        .await
        .unwrap();
    create_tenant(&client, &theirs, json!({})).await;
    let (mine_b, theirs_b) = (format!("{mine}-b"), format!("{theirs}-b"));
    for (t, b) in [(&mine, &mine_b), (&theirs, &theirs_b)] {
        put_secret(
            &client,
            &format!("{b}-src"),
            Some(t),
            &[("apiKey", "shard-key")],
        )
        .await;
        create_binding(
            &client,
            b,
            t,
            &sp,
            json!({"secretRef": {"name": format!("{b}-src")}}),
        )
        .await;
    }
    wait_binding(
        &client,
        &mine_b,
        "version 1 Ready (own operator)",
        ready_on_version_1,
    )
    .await;
    wait_binding(
        &client,
        &theirs_b,
        "version 1 Ready (shared operator)",
        ready_on_version_1,
    )
    .await;

    drop(own); // SIGKILL: nobody serves the shard now
    let api: Api<ChannelBinding> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    let mut watch = watcher(
        api.clone(),
        watcher::Config::default().fields(&format!("metadata.name={mine_b}")),
    )
    .touched_objects()
    .boxed();
    for b in [&mine_b, &theirs_b] {
        api.delete(b, &DeleteParams::default()).await.unwrap();
    }
    wait_gone(&client, &theirs_b).await;
    // The shared operator handled the deletions' events; the shard's binding must
    // outlive them. Absence is observed over a window, not assumed from one read.
    let window = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(window);
    loop {
        tokio::select! {
            () = &mut window => break,
            seen = watch.next() => {
                let b = seen.expect("watch ended").expect("watch failed");
                assert!(
                    b.finalizers().iter().any(|f| f.starts_with("herald.dev/")),
                    "the shared operator released another shard's binding: {:?}",
                    b.metadata
                );
            }
        }
    }
    let held = api.get(&mine_b).await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(!held.finalizers().is_empty(), "{:?}", held.metadata);

    let mut own = own_operator_running(&shard, "tenant,channelbinding");
    own.ready().await;
    tokio::time::timeout(WAIT, wait_gone(&client, &mine_b))
        .await
        .expect("the shard's operator did not release its binding");
}

/// The ChannelBinding controller's reading of a selector is the API server's: for each
/// selector, the ConfigMaps the API server lists with it are exactly those whose labels
/// [`Shard::serves`] accepts (any kind's labels are matched by the same code there).
#[tokio::test]
async fn the_operator_reads_a_tenant_selector_as_the_api_server_does() {
    let client = client().await;
    let ns = unique("shard-sel");
    ensure_namespace(&client, &ns).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let label_sets: [&[(&str, &str)]; 6] = [
        &[],
        &[("shard", "a")],
        &[("shard", "b"), ("tier", "gold")],
        &[("shard", ""), ("legacy", "yes")],
        &[("herald.dev/e2e-shard", "x"), ("tier", "silver")],
        &[("tier", "gold")],
    ];
    for (i, set) in label_sets.iter().enumerate() {
        let labels: BTreeMap<String, String> = set
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("cm-{i}"), "labels": labels}}),
        )
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    // Every ConfigMap there as the API server has it (the namespace's own CA bundle too).
    let labels_of: BTreeMap<String, BTreeMap<String, String>> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|cm| (cm.name_any(), cm.labels().clone()))
        .collect();
    assert!(labels_of.len() >= label_sets.len(), "{labels_of:?}");
    for selector in [
        "shard",
        "!shard",
        "shard=a",
        "shard==b",
        "shard!=a",
        "shard=",
        "shard in (a,b)",
        "shard notin (a, b)",
        "tier=gold,!legacy",
        "herald.dev/e2e-shard=x",
        "!herald.dev/e2e-shard",
        "shard in (a,b),tier in (gold)",
    ] {
        let listed: Vec<String> = cms
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap_or_else(|e| panic!("the API server refused {selector:?}: {e}"))
            .items
            .iter()
            .map(ResourceExt::name_any)
            // One created since (the CA bundle arrives on its own time) is not judged.
            .filter(|n| labels_of.contains_key(n))
            .collect();
        let shard = Shard::parse(Some(selector)).unwrap();
        let judged: Vec<String> = labels_of
            .iter()
            .filter(|(_, l)| shard.serves(Some(l)))
            .map(|(n, _)| n.clone())
            .collect();
        assert_eq!(judged, listed, "selector {selector:?}");
    }
    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await;
}
