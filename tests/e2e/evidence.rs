//! Evidence only Herald can write (issue 25), tried as the attacker would: an ordinary
//! platform user with create/update rights on ConfigMaps and Secrets in the control
//! namespace (impersonated: never cluster-admin), and a receipt planted at Herald's name
//! while the policy was absent (made here by the break-glass identity, the only one that
//! still can).

use std::time::Duration;

use herald::api::v1alpha1::Tenant;
use herald::api::v1alpha1::conditions::{self as types, reason};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::common::{CONTROL_NAMESPACE, E2E_LABEL, apply_examples, client, operator, unique};
use crate::erasure::{
    break_glass_client, condition_is, days_ago, signing_secret, tenant, terminate_at, wait_for,
    wait_ready_active, webhook,
};

/// The ordinary group the attacker is in, and the rights it has in the control
/// namespace: what a platform team member who manages channel credentials holds.
const GROUP: &str = "e2e-platform-users";

/// A client acting as user `user` of [`GROUP`], which may create, update and patch
/// ConfigMaps and Secrets in the control namespace (and nothing else).
pub(crate) async fn ordinary_user(admin: &Client, user: &str) -> Client {
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "e2e-platform-user", "labels": {E2E_LABEL: "evidence"}},
        "rules": [{"apiGroups": [""], "resources": ["configmaps", "secrets"],
                   "verbs": ["get", "list", "create", "update", "patch"]}]
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "e2e-platform-user", "labels": {E2E_LABEL: "evidence"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "e2e-platform-user"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": GROUP}]
    }))
    .unwrap();
    let ssa = PatchParams::apply("e2e").force();
    Api::<Role>::namespaced(admin.clone(), CONTROL_NAMESPACE)
        .patch("e2e-platform-user", &ssa, &Patch::Apply(&role))
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), CONTROL_NAMESPACE)
        .patch("e2e-platform-user", &ssa, &Patch::Apply(&binding))
        .await
        .unwrap();
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info.impersonate = Some(user.into());
    config.auth_info.impersonate_groups = Some(vec![GROUP.into()]);
    Client::try_from(config).unwrap()
}

/// The API server's refusal of `result`: a 403 whose message is the evidence policy's.
fn refused<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) -> String {
    match result {
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("evidence") => s.message,
        other => panic!("{what} was not refused by the evidence policy: {other:?}"),
    }
}

fn config_map(name: &str, labels: Value, data: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": data}))
        .unwrap()
}

#[tokio::test]
async fn an_ordinary_user_can_plant_no_receipt_no_key_and_no_published_key() {
    let admin = client().await;
    operator().await; // the admission policies, and the signing key generated at start
    let user = ordinary_user(&admin, &unique("e2e-mallory")).await;
    let cms: Api<ConfigMap> = Api::namespaced(user.clone(), CONTROL_NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(user.clone(), CONTROL_NAMESPACE);
    let pp = PostParams::default();
    let victim = unique("e2e-victim");

    // The user's rights are real: an ordinary ConfigMap is admitted.
    let plain = unique("e2e-plain");
    cms.create(
        &pp,
        &config_map(&plain, json!({E2E_LABEL: "evidence"}), json!({})),
    )
    .await
    .unwrap();

    // A receipt at the name Herald would write, with and without the evidence label.
    let forged = json!({"receipt.json": "{}", "sha256": "0", "signature": "AA==", "keyId": "0"});
    let msg = refused(
        cms.create(
            &pp,
            &config_map(
                &format!("deletion-receipt-{victim}-12345678"),
                json!({E2E_LABEL: "evidence"}),
                forged.clone(),
            ),
        )
        .await,
        "a ConfigMap named like a deletion receipt",
    );
    assert!(msg.contains("only Herald"), "{msg}");
    refused(
        cms.create(
            &pp,
            &config_map(
                &format!("fulfilment-receipt-{victim}"),
                json!({}),
                forged.clone(),
            ),
        )
        .await,
        "a ConfigMap named like a fulfilment receipt",
    );
    // The name a data-subject request's receipt really has (dsr/decide.rs): planting one
    // unlabelled would make Herald's own create conflict.
    refused(
        cms.create(
            &pp,
            &config_map(
                &format!("dsr-receipt-{victim}-access-12345678"),
                json!({}),
                forged.clone(),
            ),
        )
        .await,
        "a ConfigMap named like a data-subject request's receipt",
    );
    refused(
        cms.create(
            &pp,
            &config_map(
                &unique("e2e-anyname"),
                json!({"herald.dev/receipt-for": victim}),
                forged,
            ),
        )
        .await,
        "a ConfigMap labelled as a receipt",
    );
    // Labelling an existing object as evidence (which would make it undeletable).
    refused(
        cms.patch(
            &plain,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"herald.dev/receipt-for": victim}}})),
        )
        .await,
        "labelling a ConfigMap as a receipt",
    );
    // A Secret labelled for a tenant and as evidence: the undeletable object that would
    // hold an erasure.
    let held: Secret = serde_json::from_value(json!({
        "metadata": {"name": unique("e2e-held"), "labels": {"herald.dev/tenant": victim, "herald.dev/receipt-for": victim}},
        "stringData": {"x": "y"}
    }))
    .unwrap();
    refused(
        secrets.create(&pp, &held).await,
        "a Secret labelled as evidence",
    );

    // The signing key: Herald generated it at start, so it exists; creating one (or
    // replacing it) is refused by admission before the name is even looked up.
    let key = herald::evidence::SigningKey::generate_pkcs8().unwrap();
    let planted: Secret = serde_json::from_value(json!({
        "metadata": {"name": herald::evidence::store::KEY_SECRET},
        "data": {herald::evidence::store::KEY_SECRET_KEY: k8s_openapi::ByteString(key.clone())}
    }))
    .unwrap();
    let msg = refused(secrets.create(&pp, &planted).await, "the signing key");
    assert!(msg.contains("only Herald"), "{msg}");
    let existing = Api::<Secret>::namespaced(admin.clone(), CONTROL_NAMESPACE)
        .get(herald::evidence::store::KEY_SECRET)
        .await
        .expect("Herald generated its signing key at start");
    assert_eq!(
        existing.type_.as_deref(),
        Some(herald::evidence::store::KEY_SECRET_TYPE)
    );

    // A key of the user's own among the published keys: refused, whatever they add.
    let own = herald::evidence::SigningKey::from_pkcs8(&key).unwrap();
    let msg = refused(
        cms.patch(
            herald::evidence::store::PUBLIC_KEYS,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {own.key_id(): own.public_key_b64()}})),
        )
        .await,
        "adding a key to the published keys",
    );
    assert!(msg.contains("only Herald may add"), "{msg}");
    let published = Api::<ConfigMap>::namespaced(admin.clone(), CONTROL_NAMESPACE)
        .get(herald::evidence::store::PUBLIC_KEYS)
        .await
        .unwrap();
    assert!(
        !published
            .data
            .unwrap_or_default()
            .contains_key(own.key_id()),
        "the user's key was published"
    );
    Api::<ConfigMap>::namespaced(admin.clone(), CONTROL_NAMESPACE)
        .delete(&plain, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_receipt_planted_at_heralds_name_is_a_conflict_and_never_delivered() {
    let admin = client().await;
    let op = operator().await;
    apply_examples();
    let name = unique("e2e-planted");
    let (url, seen) = webhook().await;
    signing_secret(&admin, &name).await;
    let api: Api<Tenant> = Api::all(admin.clone());
    api.create(
        &PostParams::default(),
        &tenant(&name, Some(&url), json!({})),
    )
    .await
    .unwrap();
    wait_ready_active(&api, &name).await;
    let t = api.get(&name).await.unwrap();
    let receipt_name = herald::controller::tenant::erasure::plan::receipt_name(&t);

    // Planted while the policy was absent: a receipt at Herald's name, signed with a key
    // of the forger's own, claiming an erasure that met its deadline.
    let forger = herald::evidence::SigningKey::from_pkcs8(
        &herald::evidence::SigningKey::generate_pkcs8().unwrap(),
    )
    .unwrap();
    let body =
        json!({"schema": herald::evidence::DELETION_SCHEMA, "tenant": name, "metDeadline": true})
            .to_string();
    let digest = herald::digest::sha256_hex(body.as_bytes());
    let planted = config_map(
        &receipt_name,
        json!({"herald.dev/receipt-for": name, E2E_LABEL: "evidence"}),
        json!({"receipt.json": body, "sha256": digest, "signature": forger.sign_b64(body.as_bytes()),
               "keyId": forger.key_id(), "publicKey": forger.public_key_b64()}),
    );
    let glass: Api<ConfigMap> = Api::namespaced(break_glass_client().await, CONTROL_NAMESPACE);
    glass
        .create(&PostParams::default(), &planted)
        .await
        .unwrap();

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
        condition_is(types::STALLED, "True", reason::RECEIPT_CONFLICT),
        "Stalled ReceiptConflict",
        Duration::from_secs(90),
    )
    .await;
    let st = t.status.unwrap();
    let stalled = st
        .conditions
        .iter()
        .find(|c| c.type_ == types::STALLED)
        .unwrap();
    assert!(
        stalled.message.contains(&receipt_name),
        "{}",
        stalled.message
    );
    assert_ne!(format!("{:?}", st.phase), "Some(Erased)");
    let erasure = st.erasure.unwrap_or_default();
    assert!(erasure.receipt.is_none(), "the planted receipt was claimed");
    assert!(
        seen.lock().unwrap().is_empty(),
        "something was delivered to the customer"
    );
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(admin.clone(), "default")
        .list(&kube::api::ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap();
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some(reason::RECEIPT_CONFLICT)),
        "no ReceiptConflict event"
    );
    assert!(
        op.metrics()
            .await
            .lines()
            .any(|l| l.starts_with("herald_receipt_conflicts_total{controller=\"tenant\"}")),
        "no herald_receipt_conflicts_total series"
    );

    // A person removes the forgery (break-glass): Herald writes its own and delivers it.
    glass
        .delete(&receipt_name, &DeleteParams::default())
        .await
        .unwrap();
    let t = wait_for(
        &api,
        &name,
        condition_is(types::ERASED, "True", "Erased"),
        "Erased after the forgery was removed",
        Duration::from_secs(90),
    )
    .await;
    let written = Api::<ConfigMap>::namespaced(admin.clone(), CONTROL_NAMESPACE)
        .get(&receipt_name)
        .await
        .unwrap();
    let data = written.data.clone().unwrap_or_default();
    assert_ne!(data["keyId"], forger.key_id());
    assert_eq!(
        Some(&data["sha256"]),
        t.status.unwrap().erasure.unwrap().receipt_digest.as_ref()
    );
    assert!(written.labels().contains_key("herald.dev/receipt-for"));
}
