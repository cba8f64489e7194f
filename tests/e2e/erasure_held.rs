//! Erasure nothing can hold (issue 25), tried as the attacker would: an ordinary platform
//! user (impersonated, group `e2e-platform-users`: create and update on Secrets and
//! ConfigMaps in the control namespace, nothing more) plants an object labelled for a
//! terminated tenant that erasure cannot delete, a finalizer nobody removes, or one a
//! platform admission policy forbids deleting; and a GitOps tool re-applies an erased
//! tenant's Secret. The erasure completes before its deadline with the object recorded
//! (never claimed as deleted), the condition and the metric say a person must act
//! until one has, and what reappears after the receipt is deleted again.

use std::time::{Duration, Instant};

use herald::api::v1alpha1::Tenant;
use herald::api::v1alpha1::conditions::{self as types, reason};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::common::{
    CONTROL_NAMESPACE, E2E_LABEL, STUCK_AFTER_SECONDS, WAIT, apply_examples, client, operator,
    unique,
};
use crate::erasure::{
    condition_is, days_ago, receipts, signing_secret, tenant, terminate_at, wait_for,
    wait_ready_active, webhook,
};
use crate::evidence::ordinary_user;

/// A Secret labelled for `tenant` in the control namespace, as the attacker writes it.
fn planted(name: &str, tenant: &str, extra_labels: Value, finalizers: Value) -> Secret {
    let mut labels = json!({E2E_LABEL: "erasure-held", "herald.dev/tenant": tenant});
    if let (Some(l), Value::Object(extra)) = (labels.as_object_mut(), extra_labels) {
        l.extend(extra);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels, "finalizers": finalizers},
        "stringData": {"note": "not the tenant's data"}
    }))
    .unwrap()
}

/// A terminated-29-days-ago tenant with a webhook, Ready first; its name.
async fn active_tenant(client: &Client, prefix: &str) -> String {
    operator().await;
    apply_examples();
    let name = unique(prefix);
    let (url, _) = webhook().await;
    signing_secret(client, &name).await;
    let api: Api<Tenant> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &tenant(&name, Some(&url), json!({})),
    )
    .await
    .unwrap();
    wait_ready_active(&api, &name).await;
    name
}

async fn terminate(client: &Client, name: &str) {
    Api::<Tenant>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(terminate_at(days_ago(29))),
        )
        .await
        .unwrap();
}

/// The receipt's record of the tenant (exactly one receipt).
async fn receipt(client: &Client, name: &str) -> Value {
    let rs = receipts(client, name).await;
    assert_eq!(rs.len(), 1, "receipts of {name}");
    serde_json::from_str(&rs[0].data.as_ref().unwrap()["receipt.json"]).unwrap()
}

/// Asserts that the receipt lists the object with `uid` as not erased for `why`, and
/// does not claim it among what was deleted.
fn recorded_not_deleted(r: &Value, uid: &str, why: &str) {
    let listed = r["foundNotErased"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["uid"] == uid)
        .unwrap_or_else(|| panic!("{uid} not in foundNotErased: {r}"));
    assert_eq!(listed["reason"], why, "{listed}");
    assert!(listed["message"].is_string(), "what the API said: {listed}");
    let claimed = r["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["uids"].as_array().unwrap().iter().any(|u| u == uid));
    assert!(!claimed, "the receipt claims {uid} deleted: {r}");
}

/// The operator's `herald_erasure_objects_held` for `tenant` (None: no series).
async fn held_metric(tenant: &str) -> Option<String> {
    let text = operator().await.metrics().await;
    let series = format!("herald_erasure_objects_held{{tenant=\"{tenant}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series).map(str::to_owned))
}

/// Polls the metrics endpoint (no watch exists for it) until `want` holds.
async fn wait_held_metric(tenant: &str, want: Option<&str>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = held_metric(tenant).await;
        if got.as_deref() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "herald_erasure_objects_held{{tenant={tenant}}} is {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_labelled_secret_with_a_finalizer_nobody_removes_does_not_hold_erasure() {
    let admin = client().await;
    let name = active_tenant(&admin, "e2e-held-fin").await;
    let user = ordinary_user(&admin, "mallory").await;
    let secrets_as_user: Api<Secret> = Api::namespaced(user, CONTROL_NAMESPACE);
    let stuck = unique("e2e-held-fin-s");
    let uid = secrets_as_user
        .create(
            &PostParams::default(),
            &planted(&stuck, &name, json!({}), json!(["e2e.herald.dev/hold"])),
        )
        .await
        .expect("an ordinary user may create a labelled Secret with a finalizer")
        .uid()
        .unwrap();
    let started = Instant::now();
    terminate(&admin, &name).await;
    let api: Api<Tenant> = Api::all(admin.clone());
    let t = wait_for(
        &api,
        &name,
        condition_is(types::ERASED, "True", reason::OBJECTS_HELD),
        "Erased (ObjectsHeld)",
        WAIT + Duration::from_secs(STUCK_AFTER_SECONDS),
    )
    .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(STUCK_AFTER_SECONDS),
        "recorded as stuck after {took:?}, before erasure.stuckAfterSeconds"
    );
    let status = t.status.unwrap();
    let erased = status
        .conditions
        .iter()
        .find(|c| c.type_ == types::ERASED)
        .unwrap();
    assert!(
        erased.message.contains(&stuck) && erased.message.contains("a person must delete"),
        "{}",
        erased.message
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == types::READY)
        .unwrap();
    assert_eq!(
        ready.reason,
        reason::ERASED,
        "the erasure completed: {ready:?}"
    );
    let es = status.erasure.unwrap();
    let rec = es.not_erased.iter().find(|o| o.uid == uid).unwrap();
    assert_eq!(rec.reason, reason::DELETION_STUCK);
    assert!(
        rec.message
            .as_deref()
            .unwrap_or_default()
            .contains("e2e.herald.dev/hold"),
        "{rec:?}"
    );
    let r = receipt(&admin, &name).await;
    assert_eq!(r["metDeadline"], true);
    recorded_not_deleted(&r, &uid, reason::DELETION_STUCK);
    wait_held_metric(&name, Some("1")).await;

    // A person removes the finalizer: the object goes, and Herald stops saying so.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), CONTROL_NAMESPACE);
    secrets
        .patch(
            &stuck,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    // The Tenant is looked at again within 300 s; a change to it wakes it now.
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"e2e.herald.dev/poke": "1"}}})),
    )
    .await
    .unwrap();
    let t = wait_for(
        &api,
        &name,
        condition_is(types::ERASED, "True", reason::ERASED),
        "Erased once the held Secret is gone",
        WAIT,
    )
    .await;
    let es = t.status.unwrap().erasure.unwrap();
    assert!(
        es.not_erased
            .iter()
            .find(|o| o.uid == uid)
            .unwrap()
            .resolved_at
            .is_some(),
        "not marked resolved: {:?}",
        es.not_erased
    );
    wait_held_metric(&name, None).await;
}

/// The platform's own admission policy (made here as the platform admin would) forbids
/// deleting Secrets carrying a label: erasure's DELETE is refused.
async fn undeletable_policy(admin: &Client, label: &str) -> String {
    let name = unique("e2e-undeletable");
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {E2E_LABEL: "erasure-held"}},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["DELETE"], "resources": ["secrets"]}]},
            "validations": [{"expression": "false",
                "message": "e2e: this Secret may not be deleted (a platform policy)"}]
        }
    }))
    .unwrap();
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {E2E_LABEL: "erasure-held"}},
        "spec": {"policyName": name, "validationActions": ["Deny"],
                 "matchResources": {"objectSelector": {"matchLabels": {"e2e.herald.dev/undeletable": label}}}}
    }))
    .unwrap();
    Api::<ValidatingAdmissionPolicy>::all(admin.clone())
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    Api::<ValidatingAdmissionPolicyBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    name
}

/// Waits until a dry-run DELETE of `secret` is refused (the policy is loaded).
async fn wait_refused(secrets: &Api<Secret>, secret: &str) {
    let deadline = Instant::now() + WAIT;
    let dry = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    while secrets.delete(secret, &dry).await.is_ok() {
        assert!(Instant::now() < deadline, "the policy never refused");
        // Admission policies load asynchronously; nothing to watch.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_secret_whose_deletion_a_policy_refuses_does_not_hold_erasure() {
    let admin = client().await;
    let name = active_tenant(&admin, "e2e-held-vap").await;
    let label = unique("l");
    let policy = undeletable_policy(&admin, &label).await;
    let user = ordinary_user(&admin, "mallory").await;
    let secrets_as_user: Api<Secret> = Api::namespaced(user, CONTROL_NAMESPACE);
    let kept = unique("e2e-held-vap-s");
    let uid = secrets_as_user
        .create(
            &PostParams::default(),
            &planted(
                &kept,
                &name,
                json!({"e2e.herald.dev/undeletable": label}),
                json!([]),
            ),
        )
        .await
        .unwrap()
        .uid()
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), CONTROL_NAMESPACE);
    wait_refused(&secrets, &kept).await;
    terminate(&admin, &name).await;
    let api: Api<Tenant> = Api::all(admin.clone());
    let t = wait_for(
        &api,
        &name,
        condition_is(types::ERASED, "True", reason::OBJECTS_HELD),
        "Erased (ObjectsHeld)",
        WAIT,
    )
    .await;
    let es = t.status.unwrap().erasure.unwrap();
    let rec = es.not_erased.iter().find(|o| o.uid == uid).unwrap();
    assert_eq!(rec.reason, reason::DELETION_REFUSED);
    assert!(
        rec.message
            .as_deref()
            .unwrap_or_default()
            .contains("may not be deleted"),
        "what the API said: {rec:?}"
    );
    assert!(secrets.get_opt(&kept).await.unwrap().is_some());
    let r = receipt(&admin, &name).await;
    assert_eq!(r["metDeadline"], true);
    recorded_not_deleted(&r, &uid, reason::DELETION_REFUSED);
    wait_held_metric(&name, Some("1")).await;
    // Clean up as the platform admin: the policy first, then the Secret.
    Api::<ValidatingAdmissionPolicyBinding>::all(admin.clone())
        .delete(&policy, &DeleteParams::default())
        .await
        .unwrap();
    Api::<ValidatingAdmissionPolicy>::all(admin.clone())
        .delete(&policy, &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while secrets
        .delete(&kept, &DeleteParams::default())
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the Secret stayed undeletable");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn an_erased_tenant_s_secret_re_applied_by_gitops_is_deleted_again() {
    let admin = client().await;
    let name = active_tenant(&admin, "e2e-reapply").await;
    let source = unique("e2e-reapply-src");
    // The GitOps tool's identity: an ordinary one, with create and update on Secrets in
    // the control namespace (server-side apply, as Argo CD and Flux do).
    let gitops = ordinary_user(&admin, "e2e-gitops").await;
    let secrets_as_gitops: Api<Secret> = Api::namespaced(gitops, CONTROL_NAMESPACE);
    let manifest = planted(&source, &name, json!({}), json!([]));
    let apply = PatchParams::apply("argocd-controller").force();
    secrets_as_gitops
        .patch(&source, &apply, &Patch::Apply(&manifest))
        .await
        .unwrap();
    terminate(&admin, &name).await;
    let api: Api<Tenant> = Api::all(admin.clone());
    wait_for(
        &api,
        &name,
        condition_is(types::ERASED, "True", reason::ERASED),
        "Erased",
        WAIT,
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), CONTROL_NAMESPACE);
    assert!(secrets.get_opt(&source).await.unwrap().is_none(), "erased");

    // Self-heal: the tool applies it again, after the receipt.
    let again = secrets_as_gitops
        .patch(&source, &apply, &Patch::Apply(&manifest))
        .await
        .unwrap()
        .uid()
        .unwrap();
    let t = wait_for(
        &api,
        &name,
        move |t: Option<&Tenant>| {
            t.and_then(|t| t.status.as_ref())
                .and_then(|s| s.erasure.as_ref())
                .is_some_and(|e| e.erased_again.iter().any(|o| o.uid == again))
        },
        "the re-applied Secret in status.erasure.erasedAgain",
        WAIT,
    )
    .await;
    assert!(
        secrets.get_opt(&source).await.unwrap().is_none(),
        "the re-applied Secret lives on"
    );
    let es = t.status.unwrap().erasure.unwrap();
    assert_eq!(es.erased_again_count, Some(1));
    assert_eq!(
        receipts(&admin, &name).await.len(),
        1,
        "one receipt, unchanged"
    );
    // The event follows the status write: poll the list (a few hundred ms at most).
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(admin.clone(), "default");
    let deadline = Instant::now() + WAIT;
    loop {
        let found = events
            .list(&kube::api::ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .any(|e| {
                e.reason.as_deref() == Some(reason::ERASED_AGAIN)
                    && e.message.as_deref().unwrap_or_default().contains(&source)
            });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ErasedAgain event naming {source}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
