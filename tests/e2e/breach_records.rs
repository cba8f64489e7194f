//! Breach records that stay true (issue 25, item 5), tried as the attacker would: an
//! ordinary platform user who may create, update and patch BreachNotices (and
//! ConfigMaps and Secrets) in the control namespace, impersonated, never cluster-admin.
//! Rewriting what the tenants were told after the first notice, back-dating or
//! post-dating the authority's notification, selecting tenants by a label their own
//! manifests write, planting a breach receipt: each is refused, or ends in the condition
//! the build names, and the record stays as it was. The customers' endpoints are local
//! servers on 127.0.0.1.

use herald::api::v1alpha1::{BreachNotice, Tenant};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::breach::{
    SELECT_LABEL, Seen, acked, breach_of, condition, metric, now, received, refuse_then_remove,
    tenant, wait_breach, wait_metric_gone,
};
use crate::common::{CONTROL_NAMESPACE, E2E_LABEL, client, operator, unique};
use crate::subprocessor::{secret, start_hook};

/// The ordinary group of the attacker.
const GROUP: &str = "e2e-breach-users";

/// A client acting as user `user` of [`GROUP`]: the rights of `evidence::ordinary_user`
/// (ConfigMaps and Secrets in the control namespace) and, as a platform team member who
/// records breaches holds them, get/list/create/update/patch on BreachNotices there.
/// Nothing on their status, nothing cluster-wide.
async fn breach_user(admin: &Client, user: &str) -> Client {
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "e2e-breach-user", "labels": {E2E_LABEL: "breach"}},
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps", "secrets"],
             "verbs": ["get", "list", "create", "update", "patch"]},
            {"apiGroups": ["herald.dev"], "resources": ["breachnotices"],
             "verbs": ["get", "list", "create", "update", "patch"]},
        ]
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "e2e-breach-user", "labels": {E2E_LABEL: "breach"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "e2e-breach-user"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": GROUP}]
    }))
    .unwrap();
    let ssa = PatchParams::apply("e2e").force();
    Api::<Role>::namespaced(admin.clone(), CONTROL_NAMESPACE)
        .patch("e2e-breach-user", &ssa, &Patch::Apply(&role))
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), CONTROL_NAMESPACE)
        .patch("e2e-breach-user", &ssa, &Patch::Apply(&binding))
        .await
        .unwrap();
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info.impersonate = Some(user.into());
    config.auth_info.impersonate_groups = Some(vec![GROUP.into()]);
    Client::try_from(config).unwrap()
}

/// The user's BreachNotices API.
async fn as_user() -> Api<BreachNotice> {
    Api::namespaced(
        breach_user(&client().await, &unique("e2e-breach-mallory")).await,
        CONTROL_NAMESPACE,
    )
}

/// The API server's refusal of `result`: a 422 (a CRD rule) whose message contains
/// `expect`.
fn invalid<T: std::fmt::Debug>(result: Result<T, kube::Error>, expect: &str, what: &str) {
    match result {
        Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains(expect) => {}
        other => panic!("{what} was not refused with {expect:?}: {other:?}"),
    }
}

fn merge(v: Value) -> Patch<Value> {
    Patch::Merge(v)
}

fn ago(hours: i64) -> Timestamp {
    now()
        .checked_sub(SignedDuration::from_hours(hours))
        .unwrap()
}

/// status.deadlinesMet as JSON (null while nothing is recorded).
fn deadlines(b: &Seen) -> Value {
    serde_json::to_value(b.status.as_ref().and_then(|s| s.deadlines_met.clone())).unwrap()
}

#[tokio::test]
async fn a_breach_cannot_be_rewritten_after_its_first_notice_and_a_supplement_tells_the_rest() {
    let admin = client().await;
    operator().await;
    let user = as_user().await;
    let group = unique("brw");
    let (a, b) = (unique("brw-a"), unique("brw-b"));
    let (key_a, key_b) = (secret(), secret());
    let (url_a, hook_a) = start_hook(&key_a, false).await;
    let (url_b, hook_b) = start_hook(&key_b, false).await;
    tenant(&admin, &a, &group, Some((&url_a, &key_a))).await;
    tenant(&admin, &b, &group, Some((&url_b, &key_b))).await;

    // Recorded by the user, for tenant A only.
    let name = unique("breach-rw");
    let aware = now();
    user.create(
        &PostParams::default(),
        &breach_of(&name, aware, json!({"names": [a]})),
    )
    .await
    .unwrap();
    let bn = wait_breach(&name, "A acknowledged, the first notice recorded", |bn| {
        acked(bn, &a, 1)
            && bn
                .status
                .as_ref()
                .is_some_and(|s| s.first_notice_at.is_some())
    })
    .await;
    let first = bn.status.as_ref().unwrap().first_notice_at.clone().unwrap();
    assert!(first.0 >= aware, "{first:?}");
    let sent = bn.records[0].first_sent_at.clone().unwrap();
    assert!(first.0 <= sent.0, "recorded before the notice went out");

    // Each of the four is refused now, with a message that says what to do instead.
    let frozen = "cannot change once the first notice of this breach went out";
    for (what, patch) in [
        (
            "nature",
            json!({"spec": {"nature": "e2e: nothing happened, really"}}),
        ),
        (
            "affectedTenants",
            json!({"spec": {"affectedTenants": {"names": [a, b]}}}),
        ),
        (
            "affectedTenants (a selector instead)",
            json!({"spec": {"affectedTenants": {"names": null, "selector": {"matchLabels": {SELECT_LABEL: group}}}}}),
        ),
        (
            "platformDataInvolved",
            json!({"spec": {"platformDataInvolved": false}}),
        ),
        ("awareAt", json!({"spec": {"awareAt": ago(1).to_string()}})),
    ] {
        let result = user
            .patch(&name, &PatchParams::default(), &merge(patch))
            .await;
        invalid(result, frozen, what);
    }
    let err = user
        .patch(
            &name,
            &PatchParams::default(),
            &merge(json!({"spec": {"nature": "e2e: rewritten"}})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.supplementOf: <this BreachNotice's name>"),
        "{err}"
    );
    // Nor can a supplement reference be added to it afterwards.
    invalid(
        user.patch(
            &name,
            &PatchParams::default(),
            &merge(json!({"spec": {"supplementOf": "elsewhere"}})),
        )
        .await,
        "spec.supplementOf cannot be added or removed",
        "adding supplementOf",
    );
    let stored = user.get(&name).await.unwrap();
    assert_eq!(
        stored.spec.nature,
        "e2e: an access policy made an export bucket readable"
    );
    assert_eq!(stored.metadata.generation, Some(1), "nothing was admitted");
    // What may follow in phases still does, as a follow-up.
    user.patch(
        &name,
        &PatchParams::default(),
        &merge(json!({"spec": {"measures": "e2e: keys rotated"}})),
    )
    .await
    .unwrap();
    wait_breach(&name, "A acknowledged the follow-up", |bn| acked(bn, &a, 2)).await;

    // What was learnt since (B is affected too) goes in a supplement: its own notices,
    // naming the first, and the first lists it.
    let more = unique("breach-rw-more");
    let mut sup = breach_of(&more, aware, json!({"names": [b]}));
    sup.spec.nature = "e2e: the same bucket also held tenant B's exports".into();
    sup.spec.supplement_of = Some(name.clone());
    user.create(&PostParams::default(), &sup).await.unwrap();
    // Its reference found: Ready, not Stalled (SupplementOfNotFound), once B is told.
    wait_breach(&more, "B acknowledged the supplement, Ready", |bn| {
        acked(bn, &b, 1)
            && condition(bn, "Ready").is_some_and(|c| c.0 == "True")
            && condition(bn, "Stalled").is_some_and(|c| c.0 == "False")
    })
    .await;
    let got = received(&hook_b, 1);
    assert!(!got.is_empty() && got.iter().all(|(r, _)| r.verified));
    let body = &got[got.len() - 1].1;
    assert_eq!(body["breach"], more.as_str());
    assert_eq!(body["supplementOf"], name.as_str());
    assert_eq!(
        body["nature"],
        "e2e: the same bucket also held tenant B's exports"
    );
    assert!(
        received(&hook_a, 1)
            .iter()
            .all(|(_, v)| v["breach"] == name.as_str()),
        "A is not told of the supplement"
    );
    wait_breach(&name, "the first lists its supplement", |bn| {
        bn.status
            .as_ref()
            .is_some_and(|s| s.supplements == vec![more.clone()])
    })
    .await;
    // The supplement's reference is as immutable as the rest.
    invalid(
        user.patch(
            &more,
            &PatchParams::default(),
            &merge(json!({"spec": {"supplementOf": "another"}})),
        )
        .await,
        "spec.supplementOf is immutable",
        "changing supplementOf",
    );
    refuse_then_remove(&more).await;
    refuse_then_remove(&name).await;
}

#[tokio::test]
async fn authority_notified_before_awareness_is_refused_and_in_the_future_keeps_the_deadline() {
    let admin = client().await;
    operator().await;
    let user = as_user().await;
    let t = unique("bra-t");
    let key = secret();
    let (url, _hook) = start_hook(&key, false).await;
    tenant(&admin, &t, &unique("bra"), Some((&url, &key))).await;

    // The attack of the issue: a date before awareness silences nothing, it is refused.
    let name = unique("breach-auth");
    let aware = now();
    let mut early = breach_of(&name, aware, json!({"names": [t]}));
    early.spec.authority_notified_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2000-01-01T00:00:00Z".parse().unwrap(),
    ));
    invalid(
        user.create(&PostParams::default(), &early).await,
        "authorityNotifiedAt cannot be before awareAt",
        "authorityNotifiedAt 2000-01-01",
    );
    user.create(
        &PostParams::default(),
        &breach_of(&name, aware, json!({"names": [t]})),
    )
    .await
    .unwrap();
    wait_breach(&name, "the tenant acknowledged", |bn| acked(bn, &t, 1)).await;
    invalid(
        user.patch(
            &name,
            &PatchParams::default(),
            &merge(json!({"spec": {"authorityNotifiedAt": ago(1).to_string()}})),
        )
        .await,
        "authorityNotifiedAt cannot be before awareAt",
        "authorityNotifiedAt an hour before awareAt",
    );

    // Two days ahead: admitted (CEL has no clock), but it counts for nothing.
    let ahead = now().checked_add(SignedDuration::from_hours(48)).unwrap();
    user.patch(
        &name,
        &PatchParams::default(),
        &merge(json!({"spec": {"authorityNotifiedAt": ahead.to_string()}})),
    )
    .await
    .unwrap();
    let bn = wait_breach(&name, "Stalled AuthorityNotifiedAtInFuture", |bn| {
        condition(bn, "Stalled")
            .is_some_and(|c| c.0 == "True" && c.1 == "AuthorityNotifiedAtInFuture")
    })
    .await;
    assert_eq!(condition(&bn, "Ready").unwrap().0, "False");
    assert!(
        deadlines(&bn)["authority"].is_null(),
        "recorded from a date in the future: {}",
        deadlines(&bn)
    );
    let authority = (aware.as_second() + 72 * 3600) as f64;
    assert_eq!(
        metric("herald_breach_authority_deadline_timestamp_seconds", &name).await,
        Some(authority),
        "the 72-hour deadline must stay exported (and alerted on)"
    );

    // Set to when it happened: it counts, the series ends, the outcome is recorded.
    user.patch(
        &name,
        &PatchParams::default(),
        &merge(json!({"spec": {"authorityNotifiedAt": now().to_string()}})),
    )
    .await
    .unwrap();
    wait_metric_gone("herald_breach_authority_deadline_timestamp_seconds", &name).await;
    let bn = wait_breach(&name, "the authority's deadline recorded as met", |bn| {
        deadlines(bn)["authority"]["met"] == true
    })
    .await;
    assert_eq!(condition(&bn, "Stalled").unwrap().0, "False");
    refuse_then_remove(&name).await;
}

#[tokio::test]
async fn a_missed_deadline_stays_recorded_however_the_record_is_back_dated() {
    let admin = client().await;
    operator().await;
    let user = as_user().await;
    let t = unique("brm-t");
    let key = secret();
    let (url, _hook) = start_hook(&key, false).await;
    tenant(&admin, &t, &unique("brm"), Some((&url, &key))).await;

    // Recorded 73 hours after the platform became aware: both deadlines have passed.
    let name = unique("breach-missed");
    let aware = ago(73);
    user.create(
        &PostParams::default(),
        &breach_of(&name, aware, json!({"names": [t]})),
    )
    .await
    .unwrap();
    let bn = wait_breach(&name, "both deadlines recorded", |bn| {
        acked(bn, &t, 1)
            && deadlines(bn)["tenants"].is_object()
            && deadlines(bn)["authority"].is_object()
    })
    .await;
    let recorded = deadlines(&bn);
    assert_eq!(recorded["tenants"]["met"], false, "{recorded}");
    assert_eq!(recorded["tenants"]["late"], 1, "{recorded}");
    assert_eq!(recorded["tenants"]["lateTenants"], json!([t]), "{recorded}");
    assert_eq!(recorded["authority"]["met"], false, "{recorded}");
    assert!(recorded["authority"]["notifiedAt"].is_null(), "{recorded}");
    assert_eq!(
        bn.status.as_ref().unwrap().state.as_deref(),
        Some("Notified")
    );

    // The attack: back-date the authority's notification into the 72 hours (admitted:
    // not before awareAt, not in the future). The series ends (it did happen), the
    // record of the missed deadline does not change.
    user.patch(
        &name,
        &PatchParams::default(),
        &merge(json!({"spec": {"authorityNotifiedAt": (aware.checked_add(SignedDuration::from_hours(1)).unwrap()).to_string()}})),
    )
    .await
    .unwrap();
    let bn = wait_breach(&name, "generation 2 reconciled", |bn| {
        bn.status.as_ref().and_then(|s| s.observed_generation) == Some(2) && acked(bn, &t, 2)
    })
    .await;
    assert_eq!(
        deadlines(&bn),
        recorded,
        "the recorded outcome was rewritten"
    );
    // Not even an identity with rights on the status (cluster-admin here: the user has
    // none) can rewrite it: the CRD refuses.
    let admin_api: Api<BreachNotice> = Api::namespaced(admin.clone(), CONTROL_NAMESPACE);
    invalid(
        admin_api
            .patch_status(
                &name,
                &PatchParams::default(),
                &merge(json!({"status": {"deadlinesMet": {"authority": {"met": true}}}})),
            )
            .await,
        "never changed or removed",
        "rewriting status.deadlinesMet",
    );
    invalid(
        admin_api
            .patch_status(
                &name,
                &PatchParams::default(),
                &merge(json!({"status": {"firstNoticeAt": null}})),
            )
            .await,
        "never changed or removed",
        "removing status.firstNoticeAt",
    );
    assert_eq!(
        deadlines(&crate::breach::seen(&name).await.unwrap()),
        recorded
    );
    refuse_then_remove(&name).await;
}

#[tokio::test]
async fn a_selector_on_labels_the_tenants_write_is_refused() {
    operator().await;
    let user = as_user().await;
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let refused = "may only select labels under platform.herald.dev/";
    for selector in [
        json!({"matchLabels": {"tier": "gold"}}),
        json!({"matchLabels": {SELECT_LABEL: "x", "herald.dev/e2e-breach": "x"}}),
        json!({"matchExpressions": [{"key": "herald.dev/e2e-breach", "operator": "Exists"}]}),
        json!({"matchExpressions": [{"key": "platform.herald.dev.example.com/x", "operator": "Exists"}]}),
    ] {
        let bn = breach_of(&unique("breach-sel"), now(), json!({"selector": selector}));
        invalid(
            user.create(&dry, &bn).await,
            refused,
            &format!("selector {selector}"),
        );
    }
    let err = user
        .create(
            &dry,
            &breach_of(
                &unique("breach-sel"),
                now(),
                json!({"selector": {"matchLabels": {"tier": "gold"}}}),
            ),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("name the tenants in affectedTenants.names"),
        "{err}"
    );
    // A requirement the controller could not use is refused too, not left to a condition.
    for (req, expect) in [
        (
            json!({"key": SELECT_LABEL, "operator": "Near"}),
            "must be In, NotIn, Exists or DoesNotExist",
        ),
        (
            json!({"key": SELECT_LABEL, "operator": "In"}),
            "values is required (not empty) for In and NotIn",
        ),
        (
            json!({"key": SELECT_LABEL, "operator": "Exists", "values": ["x"]}),
            "not allowed for Exists and DoesNotExist",
        ),
    ] {
        let bn = breach_of(
            &unique("breach-sel"),
            now(),
            json!({"selector": {"matchExpressions": [req]}}),
        );
        invalid(
            user.create(&dry, &bn).await,
            expect,
            &format!("requirement {req}"),
        );
    }
    // The platform's own labels, and names, are admitted (a dry run: nothing is kept).
    for affected in [
        json!({"selector": {"matchLabels": {SELECT_LABEL: "x"}}}),
        json!({"selector": {"matchExpressions": [{"key": SELECT_LABEL, "operator": "In", "values": ["x"]}]}}),
        json!({"names": ["someone"]}),
    ] {
        user.create(
            &dry,
            &breach_of(&unique("breach-sel"), now(), affected.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("{affected} refused: {e}"));
    }
}

/// The breach receipts of the BreachNotice `bn`, by their label.
async fn receipts_of(bn: &BreachNotice) -> Vec<ConfigMap> {
    Api::<ConfigMap>::namespaced(client().await, CONTROL_NAMESPACE)
        .list(
            &ListParams::default().labels(&format!("herald.dev/breach-uid={}", bn.uid().unwrap())),
        )
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn each_tenants_notice_is_kept_in_a_signed_receipt_that_outlives_the_tenant() {
    let admin = client().await;
    let op = operator().await;
    let user_client = breach_user(&admin, &unique("e2e-breach-mallory")).await;
    let user: Api<BreachNotice> = Api::namespaced(user_client.clone(), CONTROL_NAMESPACE);
    let user_cms: Api<ConfigMap> = Api::namespaced(user_client, CONTROL_NAMESPACE);
    let group = unique("brr");
    let (a, b) = (unique("brr-a"), unique("brr-b"));
    let (key_a, key_b) = (secret(), secret());
    let (url_a, _hook_a) = start_hook(&key_a, false).await;
    let (url_b, _hook_b) = start_hook(&key_b, false).await;
    tenant(&admin, &a, &group, Some((&url_a, &key_a))).await;
    // B has no endpoint yet: nothing can be sent to it until one is added.
    tenant(&admin, &b, &group, None).await;

    let name = unique("breach-rcpt");
    user.create(
        &PostParams::default(),
        &breach_of(&name, now(), json!({"names": [a, b]})),
    )
    .await
    .unwrap();
    let bn = wait_breach(&name, "A's acknowledgement in a breach receipt", |bn| {
        acked(bn, &a, 1)
            && bn
                .status
                .as_ref()
                .and_then(|s| s.receipts.as_ref())
                .is_some_and(|r| r.tenants == 1 && r.names.len() == 1)
    })
    .await;
    let first_receipt = bn.status.as_ref().unwrap().receipts.as_ref().unwrap().names[0].clone();

    // The user can plant nothing: neither at a breach receipt's name nor labelled as one.
    let forged: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": format!("breach-receipt-{name}-00000000-0000000000")},
        "data": {"receipt.json": "{}"}
    }))
    .unwrap();
    match user_cms.create(&PostParams::default(), &forged).await {
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("only Herald") => {}
        other => panic!("a ConfigMap named like a breach receipt was not refused: {other:?}"),
    }

    // Planted at the name Herald will write B's receipt under (by the break-glass
    // identity, the only one that still can: as if the policy had been absent), signed
    // with a key of the forger's own.
    let tb = Api::<Tenant>::all(admin.clone()).get(&b).await.unwrap();
    let part = [herald::controller::breach::evidence::Entry {
        tenant: b.clone(),
        uid8: herald::controller::breach::evidence::uid8(&tb.uid().unwrap()),
        sent: 0,
        acknowledged: 0,
    }];
    let planted_name = herald::controller::breach::evidence::name(&bn, &part);
    let forger = herald::evidence::SigningKey::from_pkcs8(
        &herald::evidence::SigningKey::generate_pkcs8().unwrap(),
    )
    .unwrap();
    let body = json!({"schema": herald::evidence::BREACH_SCHEMA, "breach": name,
                      "metDeadline": true, "notified": [[b, "00000000", 0, 1]]})
    .to_string();
    let planted: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": planted_name},
        "data": {"receipt.json": body, "sha256": herald::digest::sha256_hex(body.as_bytes()),
                 "signature": forger.sign_b64(body.as_bytes()), "keyId": forger.key_id(),
                 "publicKey": forger.public_key_b64()}
    }))
    .unwrap();
    let glass: Api<ConfigMap> = Api::namespaced(
        crate::erasure::break_glass_client().await,
        CONTROL_NAMESPACE,
    );
    glass
        .create(&PostParams::default(), &planted)
        .await
        .unwrap();

    // B gets an endpoint: it is told, and its receipt is due, at the planted name.
    let sig = format!("{b}-sig");
    crate::channel_binding::put_secret(&admin, &sig, Some(&b), &[("hmacKey", &key_b)]).await;
    Api::<Tenant>::all(admin.clone())
        .patch(
            &b,
            &PatchParams::default(),
            &merge(json!({"spec": {"notifications": {"webhookUrl": url_b, "signingSecretRef": {"name": sig, "key": "hmacKey"}}}})),
        )
        .await
        .unwrap();
    let bn = wait_breach(&name, "B told, Stalled ReceiptConflict", |bn| {
        acked(bn, &b, 1)
            && condition(bn, "Stalled").is_some_and(|c| c.0 == "True" && c.1 == "ReceiptConflict")
    })
    .await;
    let stalled = condition(&bn, "Stalled").unwrap();
    assert!(stalled.2.contains(&planted_name), "{}", stalled.2);
    let receipts = bn
        .status
        .as_ref()
        .unwrap()
        .receipts
        .clone()
        .unwrap_or_default();
    assert!(
        !receipts.names.contains(&planted_name),
        "the planted receipt was counted: {receipts:?}"
    );
    assert!(
        op.metrics()
            .await
            .lines()
            .any(|l| l.starts_with("herald_receipt_conflicts_total{controller=\"breach\"}")),
        "no herald_receipt_conflicts_total series"
    );

    // A person removes the forgery (break-glass): Herald writes its own there.
    glass
        .delete(&planted_name, &DeleteParams::default())
        .await
        .unwrap();
    let bn = wait_breach(&name, "both in receipts, no longer Stalled", |bn| {
        bn.status
            .as_ref()
            .and_then(|s| s.receipts.as_ref())
            .is_some_and(|r| r.tenants == 2)
            && condition(bn, "Stalled").is_some_and(|c| c.0 == "False")
    })
    .await;
    let names = bn.status.as_ref().unwrap().receipts.clone().unwrap().names;
    assert_eq!(names, vec![first_receipt.clone(), planted_name.clone()]);

    // A's Tenant is deleted (its status.breachNotices with it); its proof stays, and
    // verifies offline with the published keys, naming its kind.
    let tenants: Api<Tenant> = Api::all(admin.clone());
    let uid_a = tenants.get(&a).await.unwrap().uid().unwrap();
    tenants.delete(&a, &DeleteParams::default()).await.unwrap();
    tokio::time::timeout(
        crate::common::WAIT,
        kube::runtime::wait::await_condition(
            tenants.clone(),
            &a,
            kube::runtime::wait::conditions::is_deleted(&uid_a),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("Tenant {a} not gone"))
    .unwrap();
    let stored = receipts_of(&bn).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    let dir = std::env::temp_dir().join(unique("e2e-breach-receipts"));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = Api::<ConfigMap>::namespaced(admin.clone(), CONTROL_NAMESPACE)
        .get(herald::evidence::store::PUBLIC_KEYS)
        .await
        .unwrap();
    let keys_path = dir.join("keys.json");
    std::fs::write(&keys_path, serde_json::to_vec(&keys).unwrap()).unwrap();
    let mut told = Vec::new();
    for cm in &stored {
        assert_eq!(cm.immutable, Some(true));
        assert!(
            cm.metadata.owner_references.is_none(),
            "a receipt must not go with an owner"
        );
        let (ok, out) = crate::erasure::verify_receipt(
            &dir,
            &serde_json::to_value(cm).unwrap(),
            Some(keys_path.to_str().unwrap()),
        );
        assert!(ok, "{out}");
        assert!(
            out.starts_with(&format!("breach receipt verifies: breach {name}, tenants ")),
            "{out}"
        );
        assert!(
            out.contains("outcome notice acknowledged by 1 tenant,"),
            "{out}"
        );
        assert!(out.contains("(met)"), "{out}");
        let body: Value = serde_json::from_str(&cm.data.as_ref().unwrap()["receipt.json"]).unwrap();
        told.push(body["notified"][0][0].as_str().unwrap().to_owned());
    }
    told.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(told, expected, "A's proof outlived its Tenant");
    // And nobody but the break-glass group can delete it.
    match Api::<ConfigMap>::namespaced(admin.clone(), CONTROL_NAMESPACE)
        .delete(&first_receipt, &DeleteParams::default())
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => panic!("deleting a breach receipt was not refused: {other:?}"),
    }
    refuse_then_remove(&name).await;
}
