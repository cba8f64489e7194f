//! Smoke tests that prove the cluster is real: the scheduler, controller-manager and
//! kwok place and run pods, PodSecurity admission refuses, the namespace controller
//! deletes, and CEL validation rules are enforced. Herald relies on all four.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::common::{E2E_LABEL, WAIT, client, unique};

/// Creates a namespace labelled for the e2e run, with extra labels.
async fn namespace(client: &Client, name: &str, labels: &[(&str, &str)]) -> Api<Namespace> {
    let mut all: BTreeMap<String, String> = BTreeMap::from([(E2E_LABEL.into(), "smoke".into())]);
    all.extend(labels.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": all}
    }))
    .unwrap();
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(&PostParams::default(), &ns).await.unwrap();
    api
}

/// Deletes a namespace and waits until it is gone.
async fn delete_namespace(api: &Api<Namespace>, name: &str) {
    let uid = api.get(name).await.unwrap().uid().unwrap();
    api.delete(name, &DeleteParams::default()).await.unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(api.clone(), name, conditions::is_deleted(&uid)),
    )
    .await
    .unwrap_or_else(|_| panic!("namespace {name} still exists after {WAIT:?}"))
    .unwrap();
}

fn deployment(name: &str, replicas: i32, region: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {E2E_LABEL: "smoke"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [{
                            "key": "topology.kubernetes.io/region",
                            "operator": "In",
                            "values": [region]
                        }]}]
                    }}},
                    "containers": [{"name": "app", "image": "registry.example/sender:1"}]
                }
            }
        }
    }))
    .unwrap()
}

/// Available=True and every desired replica available.
fn is_available() -> impl Condition<Deployment> {
    |d: Option<&Deployment>| {
        let Some(d) = d else { return false };
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        d.status.as_ref().is_some_and(|s| {
            s.available_replicas.unwrap_or(0) == want
                && s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Available" && c.status == "True")
        })
    }
}

#[tokio::test]
async fn deployment_with_region_affinity_becomes_available_on_that_region_only() {
    let client = client().await;
    let ns = unique("smoke-affinity");
    let ns_api = namespace(&client, &ns, &[]).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deploys
        .create(
            &PostParams::default(),
            &deployment("sender", 4, "eu-central-1"),
        )
        .await
        .unwrap();

    tokio::time::timeout(
        WAIT,
        await_condition(deploys.clone(), "sender", is_available()),
    )
    .await
    .expect(
        "Deployment did not become Available: scheduler, controller-manager or kwok not working",
    )
    .unwrap();

    let nodes: Api<Node> = Api::all(client.clone());
    let region_of: BTreeMap<String, String> = nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .map(|n| {
            let region = n
                .labels()
                .get("topology.kubernetes.io/region")
                .cloned()
                .unwrap_or_default();
            (n.name_any(), region)
        })
        .collect();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pods = pods
        .list(&ListParams::default().labels("app=sender"))
        .await
        .unwrap();
    let running: Vec<_> = pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    assert_eq!(running.len(), 4, "expected 4 pods");
    for p in running {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .expect("pod not bound");
        assert_eq!(
            region_of.get(&node).map(String::as_str),
            Some("eu-central-1"),
            "pod {} is on node {node} outside eu-central-1",
            p.name_any()
        );
    }
    delete_namespace(&ns_api, &ns).await;
}

#[tokio::test]
async fn privileged_pod_is_refused_in_a_restricted_namespace() {
    let client = client().await;
    let ns = unique("smoke-psa");
    let ns_api = namespace(
        &client,
        &ns,
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    )
    .await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "privileged", "labels": {E2E_LABEL: "smoke"}},
        "spec": {"containers": [{
            "name": "app",
            "image": "registry.example/sender:1",
            "securityContext": {"privileged": true}
        }]}
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let err = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect_err("privileged pod was admitted");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(
                status
                    .message
                    .contains("violates PodSecurity \"restricted:"),
                "refusal does not come from PodSecurity: {}",
                status.message
            );
            assert!(status.message.contains("privileged"), "{}", status.message);
        }
        other => panic!("unexpected error: {other}"),
    }
    delete_namespace(&ns_api, &ns).await;
}

#[tokio::test]
async fn deleted_namespace_with_objects_disappears() {
    let client = client().await;
    let ns = unique("smoke-nsdel");
    let ns_api = namespace(&client, &ns, &[]).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"k": "v"}}))
            .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deploys
        .create(
            &PostParams::default(),
            &deployment("sender", 2, "eu-west-1"),
        )
        .await
        .unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(deploys.clone(), "sender", is_available()),
    )
    .await
    .expect("Deployment not Available")
    .unwrap();

    // The namespace controller must delete the ConfigMap, the Deployment and its pods
    // (kwok finishes their termination) before the namespace itself goes.
    delete_namespace(&ns_api, &ns).await;
    assert!(ns_api.get_opt(&ns).await.unwrap().is_none());
}

#[tokio::test]
async fn crd_cel_rule_refuses_an_object_with_its_message() {
    let client = client().await;
    let group = "smoke.e2e.herald.dev";
    let plural = unique("widgets").replace('-', "");
    let crd_name = format!("{plural}.{group}");
    let message = "replicas must be at most 5 (smoke-test rule)";
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": crd_name, "labels": {E2E_LABEL: "smoke"}},
        "spec": {
            "group": group,
            "scope": "Cluster",
            "names": {"plural": plural, "singular": plural, "kind": format!("W{plural}")},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "properties": {"replicas": {"type": "integer"}},
                        "x-kubernetes-validations": [{"rule": "self.replicas <= 5", "message": message}]
                    }}
                }}
            }]
        }
    }))
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd).await.unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(crds.clone(), &crd_name, conditions::is_crd_established()),
    )
    .await
    .expect("CRD not Established")
    .unwrap();

    let gvk = GroupVersionKind::gvk(group, "v1", &format!("W{plural}"));
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, &plural),
    );
    let make = |name: &str, replicas: i64| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": format!("{group}/v1"),
            "kind": format!("W{plural}"),
            "metadata": {"name": name},
            "spec": {"replicas": replicas}
        }))
        .unwrap()
    };
    // Right after Established the discovery of a new CRD can lag; the valid object
    // proves the endpoint serves before we assert on the refusal.
    api.create(&PostParams::default(), &make("fine", 3))
        .await
        .unwrap();
    let err = api
        .create(&PostParams::default(), &make("too-many", 7))
        .await
        .expect_err("object breaking the CEL rule was admitted");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.contains(message),
                "message lacks the rule's message: {}",
                status.message
            );
        }
        other => panic!("unexpected error: {other}"),
    }
    let uid = crds.get(&crd_name).await.unwrap().uid().unwrap();
    crds.delete(&crd_name, &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(crds, &crd_name, conditions::is_deleted(&uid)),
    )
    .await
    .expect("CRD not deleted")
    .unwrap();
}
