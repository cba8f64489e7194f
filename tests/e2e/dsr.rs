//! DataSubjectRequest end to end: an access request for a live tenant runs its Job in
//! the tenant namespace (the platform's image, the tenant's region, the data-plane
//! egress label, the subject Secret mounted as a file, the tenant's 127.0.0.1 export
//! endpoint as its destination), is answered when the Job completes (kwok runs its pod),
//! gets a signed fulfilment receipt that verifies, is delivered to the tenant's endpoint
//! and cannot be deleted, and the subject Secret is gone; the deadline is receivedAt + 1
//! month in status and metrics. A subject Secret labelled for another tenant stalls the
//! request and nothing runs; an extension the data subject was told of in the second
//! month is refused by admission, one in the first month moves the deadline. A request
//! for an erased tenant is answered NothingHeld with the deletion receipt's reference.
//! No test identifier appears in the request, its events or the operator's log.
//!
//! Requests that cannot be gamed, each attack tried as an ordinary user
//! ([`requester`]): a request for a Tenant that does not exist stays Stalled with its
//! Secret kept; one naming a Secret that is not a subject Secret (an erased tenant's
//! kept signing Secret, a live tenant's, one without the key) leaves it alone; an
//! extension added after the first month moves nothing; the CRD's month rule agrees
//! with `decide::add_months` on the API server; a future receivedAt counts no deadline;
//! a name over 63 characters is refused; a deleted unanswered request leaves a signed
//! withdrawal receipt and no Job or copy; a pre-signed export URL's credential stays out
//! of the receipt.

use std::time::Duration;

use herald::api::v1alpha1::{DataSubjectRequest, Tenant};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::jiff::{Span, Timestamp, tz::TimeZone};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::channel_binding::{create_tenant, put_secret};
use crate::common::{
    CONTROL_NAMESPACE, E2E_LABEL, WAIT, client, kubectl, operator, repo_root, unique,
};
use crate::subprocessor::{Hook, secret, start_hook};
use herald::controller::dsr::decide;

const DSR_LABEL: &str = "herald.dev/data-subject-request";

/// A tenant whose notices go to a local receiver (signed with its own secret), with a
/// local export endpoint.
pub(crate) async fn live_tenant(client: &Client, name: &str) -> (Hook, String) {
    live_tenant_exporting(client, name, "").await
}

/// [`live_tenant`] whose export URL ends with `query` (a pre-signed URL's credential).
async fn live_tenant_exporting(client: &Client, name: &str, query: &str) -> (Hook, String) {
    let key = secret();
    let (url, hook) = start_hook(&key, false).await;
    let sig = format!("{name}-sig");
    put_secret(client, &sig, Some(name), &[("hmacKey", &key)]).await;
    let export = format!("http://127.0.0.1:{}/dsr-export{query}", free_port());
    create_tenant(
        client,
        name,
        json!({
            "notifications": {"webhookUrl": url, "signingSecretRef": {"name": sig, "key": "hmacKey"}},
            "contract": {"state": "Active", "dpa": {"reference": "DPA-E2E", "signedAt": "2026-01-01T00:00:00Z"},
                         "onTermination": {"action": "ReturnThenDelete", "export": {"url": export}}},
        }),
    )
    .await;
    (hook, export)
}

/// A loopback port nobody listens on now (the export endpoint is only named: the Job,
/// not Herald, uploads to it, and kwok runs no container).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The subject Secret of `request`, labelled for `owner` and the request, holding
/// `identifier`.
pub(crate) async fn subject_secret(
    client: &Client,
    name: &str,
    owner: &str,
    request: &str,
    identifier: &str,
) {
    labelled_secret(
        client,
        name,
        json!({"herald.dev/tenant": owner, DSR_LABEL: request}),
        &[("subject", identifier)],
    )
    .await;
}

/// A control-namespace Secret with `labels` (and the e2e label) and `data`.
async fn labelled_secret(client: &Client, name: &str, labels: Value, data: &[(&str, &str)]) {
    let mut all = json!({E2E_LABEL: "dsr"});
    for (k, v) in labels.as_object().unwrap() {
        all[k] = v.clone();
    }
    let data: std::collections::BTreeMap<&str, &str> = data.iter().copied().collect();
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": all}, "stringData": data,
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .patch(
            name,
            &PatchParams::apply("herald-e2e").force(),
            &Patch::Apply(&s),
        )
        .await
        .unwrap();
}

const USERS: &str = "e2e-dsr-users";

/// A client acting as user `user` of an ordinary group that may write Secrets and
/// DataSubjectRequests in the control namespace (what whoever files requests has),
/// nothing more: the identity the attacks on requests are tried as.
pub(crate) async fn requester(admin: &Client, user: &str) -> Client {
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "e2e-dsr-requester", "labels": {E2E_LABEL: "dsr"}},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "create", "update", "patch"]},
            {"apiGroups": ["herald.dev"], "resources": ["datasubjectrequests"],
             "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}
        ]
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "e2e-dsr-requester", "labels": {E2E_LABEL: "dsr"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "e2e-dsr-requester"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": USERS}]
    }))
    .unwrap();
    let ssa = PatchParams::apply("e2e").force();
    Api::<Role>::namespaced(admin.clone(), CONTROL_NAMESPACE)
        .patch("e2e-dsr-requester", &ssa, &Patch::Apply(&role))
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), CONTROL_NAMESPACE)
        .patch("e2e-dsr-requester", &ssa, &Patch::Apply(&binding))
        .await
        .unwrap();
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info.impersonate = Some(user.into());
    config.auth_info.impersonate_groups = Some(vec![USERS.into()]);
    Client::try_from(config).unwrap()
}

pub(crate) fn whole_now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap()
}

fn plus_months(t: Timestamp, months: i64) -> Timestamp {
    t.to_zoned(TimeZone::UTC)
        .checked_add(Span::new().months(months))
        .unwrap()
        .timestamp()
}

pub(crate) fn request(
    name: &str,
    tenant: &str,
    right: &str,
    received: Timestamp,
    secret: &str,
) -> DataSubjectRequest {
    serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "DataSubjectRequest",
        "metadata": {"name": name, "namespace": CONTROL_NAMESPACE, "labels": {E2E_LABEL: "dsr"}},
        "spec": {"tenantRef": {"name": tenant}, "right": right, "receivedAt": received.to_string(),
                 "subjectSecretRef": {"name": secret}}
    }))
    .unwrap()
}

pub(crate) async fn api(client: &Client) -> Api<DataSubjectRequest> {
    Api::namespaced(client.clone(), CONTROL_NAMESPACE)
}

/// Waits until the request satisfies `f`, and returns it.
pub(crate) async fn wait_dsr(
    client: &Client,
    name: &str,
    what: &str,
    f: impl Fn(&DataSubjectRequest) -> bool,
) -> DataSubjectRequest {
    let api = api(client).await;
    let cond = move |d: Option<&DataSubjectRequest>| d.is_some_and(&f);
    match tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(d))) => d,
        _ => panic!(
            "DataSubjectRequest {name}: {what} not reached; status: {}",
            serde_json::to_string_pretty(
                &api.get_opt(name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|d| d.status)
            )
            .unwrap()
        ),
    }
}

pub(crate) fn condition(d: &DataSubjectRequest, type_: &str) -> Option<(String, String)> {
    let c = d
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone()))
}

/// The value of `herald_data_subject_request_deadline_timestamp_seconds` for `request`.
pub(crate) async fn deadline_metric(request: &str) -> Option<f64> {
    let text = operator().await.metrics().await;
    let needle = format!("request=\"{request}\"");
    text.lines()
        .filter(|l| l.starts_with("herald_data_subject_request_deadline_timestamp_seconds{"))
        .find(|l| l.contains(&needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// What no object, event or log line may contain.
async fn assert_identifier_nowhere(client: &Client, request: &str, identifier: &str) {
    let d = api(client).await.get(request).await.unwrap();
    let json = serde_json::to_string(&d).unwrap();
    assert!(
        !json.contains(identifier),
        "the identifier is in the request: {json}"
    );
    let events = kubectl(&["get", "events", "-A", "-o", "json"]);
    assert!(
        !String::from_utf8_lossy(&events.stdout).contains(identifier),
        "the identifier is in an event"
    );
    assert!(
        !operator().await.log().contains(identifier),
        "the identifier is in the operator's log"
    );
    assert!(
        !operator().await.metrics().await.contains(identifier),
        "the identifier is in the operator's metrics"
    );
}

#[tokio::test]
async fn an_access_request_runs_its_job_and_is_answered_with_a_signed_receipt_and_the_secret_deleted()
 {
    let client = client().await;
    operator().await;
    let tenant = unique("e2e-dsr-access");
    // A pre-signed export URL: the Job needs all of it, the receipt keeps none of its
    // credential.
    let (hook, export) = live_tenant_exporting(
        &client,
        &tenant,
        "?X-Amz-Signature=e2e-presigned&X-Amz-Expires=600",
    )
    .await;
    let export_in_evidence = export.split('?').next().unwrap().to_owned();
    let ns = format!("tenant-{tenant}");
    let identifier = format!("+31 6 {}", unique("id"));
    let secret_name = format!("{tenant}-subject");
    let name = format!("{tenant}-access");
    subject_secret(&client, &secret_name, &tenant, &name, &identifier).await;
    let received = whole_now();
    api(&client)
        .await
        .create(
            &PostParams::default(),
            &request(&name, &tenant, "Access", received, &secret_name),
        )
        .await
        .unwrap();

    // The deadline is in status and in the metrics while it is open.
    let d = wait_dsr(&client, &name, "a Job recorded", |d| {
        d.status
            .as_ref()
            .is_some_and(|s| s.job.is_some() || s.receipt.is_some())
    })
    .await;
    let deadline = plus_months(received, 1);
    assert_eq!(
        d.status
            .as_ref()
            .and_then(|s| s.deadline.clone())
            .map(|t| t.0),
        Some(deadline)
    );

    // The Job: the platform's image (the one its purges run), the tenant's region, its
    // own egress policy, the subject mounted as a file, the tenant's export endpoint as
    // its destination.
    let job_name = d.status.as_ref().and_then(|s| s.job.clone()).unwrap();
    let job = Api::<Job>::namespaced(client.clone(), &ns)
        .get(&job_name)
        .await
        .unwrap();
    let job_json = serde_json::to_value(&job).unwrap();
    let pod = &job_json["spec"]["template"]["spec"];
    let purge_image = Api::<CronJob>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .first()
        .and_then(|c| serde_json::to_value(c).ok())
        .map(|c| {
            c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"].clone()
        })
        .expect("no purge CronJob in the tenant namespace");
    assert_eq!(pod["containers"][0]["image"], purge_image, "{pod}");
    assert_eq!(
        pod["containers"][0]["args"],
        json!([
            "dsr",
            "--tenant",
            tenant,
            "--right",
            "access",
            "--subject-file",
            "/var/run/herald/subject/subject",
            "--destination",
            export
        ])
    );
    assert_eq!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0]["values"],
        json!(["eu-central-1"])
    );
    // Its data leaves the cluster: its pods are under a policy of their own (the
    // address the outbound guard approved, on the URL's port), not the data-plane one.
    let labels = &job_json["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["herald.dev/destination-of"], job_name.as_str());
    assert!(labels.get("herald.dev/data-plane").is_none(), "{labels}");
    let egress =
        Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(client.clone(), &ns)
            .get(&format!("{job_name}-egress"))
            .await
            .unwrap();
    let port: u16 = export
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    assert_eq!(
        serde_json::to_value(&egress.spec.unwrap().egress.unwrap()[0]).unwrap(),
        json!({"to": [{"ipBlock": {"cidr": "127.0.0.1/32"}}], "ports": [{"protocol": "TCP", "port": port}]})
    );
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"] == job_name.as_str()),
        "the subject copy is not mounted: {pod}"
    );
    assert!(
        !job_json.to_string().contains(&identifier),
        "the identifier is in the Job"
    );

    // Answered once kwok completes the pod: Ready, the receipt written and delivered.
    let d = wait_dsr(&client, &name, "Ready=True (Answered)", |d| {
        condition(d, "Ready") == Some(("True".into(), "Answered".into()))
    })
    .await;
    let st = d.status.clone().unwrap();
    assert_eq!(st.outcome.as_deref(), Some("Fulfilled"));
    assert_eq!(st.state.as_deref(), Some("Answered"));
    assert!(st.receipt_delivered_at.is_some() && st.subject_secret_deleted_at.is_some());
    assert_eq!(
        condition(&d, "Stalled").map(|c| c.0).as_deref(),
        Some("False")
    );

    // The subject Secret and its copy are gone.
    let secrets = Api::<Secret>::namespaced(client.clone(), CONTROL_NAMESPACE);
    assert!(
        secrets.get_opt(&secret_name).await.unwrap().is_none(),
        "the subject Secret is still there"
    );

    // The receipt verifies offline, says what was done, holds no identifier.
    let receipt_name = st.receipt.clone().unwrap();
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
    let dir = repo_root().join("target").join("e2e-dsr");
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, out) = crate::erasure::verify_receipt(&dir, &receipt, None);
    assert!(ok, "the fulfilment receipt does not verify: {out}");
    let body: Value =
        serde_json::from_str(receipt["data"]["receipt.json"].as_str().unwrap()).unwrap();
    assert_eq!(body["schema"], "herald.dev/fulfilment-receipt/v1");
    assert_eq!(
        (body["right"].as_str(), body["outcome"].as_str()),
        (Some("Access"), Some("Fulfilled"))
    );
    assert_eq!(body["tenant"], tenant.as_str());
    assert_eq!(body["deliveredTo"], export_in_evidence.as_str());
    assert!(
        !receipt.to_string().contains("e2e-presigned"),
        "the pre-signed URL's credential is in the receipt"
    );
    assert_eq!(body["deadline"], deadline.to_string());
    assert!(
        !receipt.to_string().contains(&identifier),
        "the identifier is in the receipt"
    );

    // The tenant's endpoint received it, signed (verified by the reference library).
    let got = hook.received.lock().unwrap().iter().any(|r| {
        r.verified
            && serde_json::from_slice::<Value>(&r.body).is_ok_and(|v| v["request"] == name.as_str())
    });
    assert!(got, "the tenant's endpoint received no verified receipt");

    // Answered: no deadline series any more.
    let deadline_gone = async {
        while deadline_metric(&name).await.is_some() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::time::timeout(WAIT, deadline_gone)
        .await
        .expect("the deadline series outlived the answer");

    // The receipt is evidence: deleting it is refused.
    let err = Api::<ConfigMap>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .delete(&receipt_name, &DeleteParams::default())
        .await
        .expect_err("deleting a fulfilment receipt was allowed");
    assert!(err.to_string().contains("deleting it is refused"), "{err}");

    assert_identifier_nowhere(&client, &name, &identifier).await;
}

#[tokio::test]
async fn a_subject_secret_labelled_for_another_tenant_stalls_the_request_and_runs_nothing() {
    let client = client().await;
    operator().await;
    let tenant = unique("e2e-dsr-iso");
    live_tenant(&client, &tenant).await;
    let other = unique("e2e-dsr-other");
    let identifier = format!("+31 6 {}", unique("id"));
    let secret_name = format!("{tenant}-foreign-subject");
    let name = format!("{tenant}-erasure");
    subject_secret(&client, &secret_name, &other, &name, &identifier).await;
    let received = whole_now();
    api(&client)
        .await
        .create(
            &PostParams::default(),
            &request(&name, &tenant, "Erasure", received, &secret_name),
        )
        .await
        .unwrap();
    let d = wait_dsr(
        &client,
        &name,
        "Stalled=True, SubjectSecretNotForTenant",
        |d| condition(d, "Stalled") == Some(("True".into(), "SubjectSecretNotForTenant".into())),
    )
    .await;
    let st = d.status.clone().unwrap();
    assert!(st.job.is_none() && st.receipt.is_none(), "{st:?}");
    assert_eq!(st.state.as_deref(), Some("Pending"));
    // The deadline is there (and exported) all the same: the clock runs.
    let deadline = plus_months(received, 1);
    assert_eq!(st.deadline.map(|t| t.0), Some(deadline));
    assert_eq!(
        deadline_metric(&name).await,
        Some(deadline.as_second() as f64)
    );
    let jobs = Api::<Job>::namespaced(client.clone(), &format!("tenant-{tenant}"))
        .list(&ListParams::default().labels(&format!("{DSR_LABEL}={name}")))
        .await
        .unwrap();
    assert!(
        jobs.items.is_empty(),
        "a Job ran with another tenant's Secret"
    );
    // The other tenant's Secret is untouched.
    assert!(
        Api::<Secret>::namespaced(client.clone(), CONTROL_NAMESPACE)
            .get_opt(&secret_name)
            .await
            .unwrap()
            .is_some()
    );

    // An extension the data subject was told of in the second month: refused.
    let late = json!({"spec": {"extension": {"months": 2, "reason": "e2e: numerous requests",
        "subjectInformedAt": (received + Span::new().hours(24 * 40)).to_string()}}});
    let err = api(&client)
        .await
        .patch(&name, &PatchParams::default(), &Patch::Merge(&late))
        .await
        .expect_err("a late extension was admitted");
    assert!(
        err.to_string().contains(
            "extension.subjectInformedAt must be within the first month after receivedAt"
        ),
        "{err}"
    );
    // One told within the first month: admitted, the deadline moves by its months.
    let timely = json!({"spec": {"extension": {"months": 2, "reason": "e2e: numerous requests",
        "subjectInformedAt": (received + Span::new().hours(24 * 10)).to_string()}}});
    api(&client)
        .await
        .patch(&name, &PatchParams::default(), &Patch::Merge(&timely))
        .await
        .unwrap();
    let moved = plus_months(received, 3);
    wait_dsr(&client, &name, "the deadline moved by the extension", |d| {
        d.status
            .as_ref()
            .and_then(|s| s.deadline.as_ref())
            .map(|t| t.0)
            == Some(moved)
    })
    .await;
    assert_identifier_nowhere(&client, &name, &identifier).await;
}

/// A request for an erased tenant is answered NothingHeld with its deletion receipt,
/// while the Tenant exists and once it is deleted too (the receipt verifies with
/// Herald's key). A request naming the erased tenant's kept signing Secret as its
/// subject (made by an ordinary user) is answered, and the Secret, which is not a
/// subject Secret, survives: the deletion receipt can still be delivered with it.
#[tokio::test]
async fn a_request_for_an_erased_tenant_is_answered_nothing_held_with_its_deletion_receipt() {
    let client = client().await;
    operator().await;
    crate::common::apply_examples();
    let user = requester(&client, &unique("e2e-dsr-mallory")).await;
    let tenant = unique("e2e-dsr-erased");
    let tenants: Api<Tenant> = Api::all(client.clone());
    let (hook, _) = crate::erasure::webhook().await;
    crate::erasure::signing_secret(&client, &tenant).await;
    let signing = format!("{tenant}-notify");
    tenants
        .create(
            &PostParams::default(),
            &crate::erasure::tenant(&tenant, Some(&hook), json!({})),
        )
        .await
        .unwrap();
    crate::erasure::wait_ready_active(&tenants, &tenant).await;
    tenants
        .patch(
            &tenant,
            &PatchParams::default(),
            &Patch::Merge(crate::erasure::terminate_at(crate::erasure::days_ago(29))),
        )
        .await
        .unwrap();
    let erased = |t: Option<&Tenant>| {
        t.and_then(|t| t.status.as_ref())
            .and_then(|s| s.erasure.as_ref())
            .is_some_and(|e| e.receipt.is_some())
    };
    tokio::time::timeout(WAIT, await_condition(tenants.clone(), &tenant, erased))
        .await
        .expect("the tenant was not erased")
        .unwrap();
    let deletion_receipt = tenants
        .get(&tenant)
        .await
        .unwrap()
        .status
        .and_then(|s| s.erasure)
        .and_then(|e| e.receipt)
        .unwrap();

    let identifier = format!("+31 6 {}", unique("id"));
    let secret_name = format!("{tenant}-subject");
    let name = format!("{tenant}-access");
    subject_secret(&client, &secret_name, &tenant, &name, &identifier).await;
    api(&client)
        .await
        .create(
            &PostParams::default(),
            &request(&name, &tenant, "Access", whole_now(), &secret_name),
        )
        .await
        .unwrap();
    let d = wait_dsr(&client, &name, "a receipt", |d| {
        d.status
            .as_ref()
            .is_some_and(|s| s.receipt.is_some() && s.subject_secret_deleted_at.is_some())
    })
    .await;
    let st = d.status.unwrap();
    assert_eq!(st.outcome.as_deref(), Some("NothingHeld"));
    assert_eq!(
        st.deletion_receipt.as_deref(),
        Some(deletion_receipt.as_str())
    );
    assert!(st.job.is_none(), "a Job ran for an erased tenant: {st:?}");
    let cm = Api::<ConfigMap>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .get(st.receipt.as_deref().unwrap())
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&cm.data.unwrap()["receipt.json"]).unwrap();
    assert_eq!(body["deletionReceipt"], deletion_receipt.as_str());
    assert_eq!(body["outcome"], "NothingHeld");
    let secrets = Api::<Secret>::namespaced(client.clone(), CONTROL_NAMESPACE);
    assert!(
        secrets.get_opt(&secret_name).await.unwrap().is_none(),
        "the subject Secret is still there"
    );

    // The attack: a request naming the erased tenant's kept signing Secret.
    let raid = format!("{tenant}-raid");
    Api::<DataSubjectRequest>::namespaced(user.clone(), CONTROL_NAMESPACE)
        .create(
            &PostParams::default(),
            &request(&raid, &tenant, "Erasure", whole_now(), &signing),
        )
        .await
        .unwrap();
    let d = wait_dsr(&client, &raid, "Stalled=True, NotASubjectSecret", |d| {
        condition(d, "Stalled") == Some(("True".into(), "NotASubjectSecret".into()))
    })
    .await;
    let st = d.status.unwrap();
    assert_eq!(st.outcome.as_deref(), Some("NothingHeld"));
    assert!(st.subject_secret_deleted_at.is_none(), "{st:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        secrets.get_opt(&signing).await.unwrap().is_some(),
        "the erased tenant's kept signing Secret was deleted through a request"
    );

    // The Tenant deleted: what remains is its signed deletion receipt, which answers.
    tenants
        .delete(&tenant, &DeleteParams::default())
        .await
        .unwrap();
    let gone = async {
        while tenants.get_opt(&tenant).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::time::timeout(WAIT, gone)
        .await
        .expect("the erased Tenant was not deleted");
    let after = format!("{tenant}-after");
    let after_secret = format!("{tenant}-after-subject");
    subject_secret(&client, &after_secret, &tenant, &after, &identifier).await;
    Api::<DataSubjectRequest>::namespaced(user.clone(), CONTROL_NAMESPACE)
        .create(
            &PostParams::default(),
            &request(&after, &tenant, "Erasure", whole_now(), &after_secret),
        )
        .await
        .unwrap();
    let d = wait_dsr(&client, &after, "answered from the deletion receipt", |d| {
        d.status.as_ref().is_some_and(|s| s.receipt.is_some())
    })
    .await;
    let st = d.status.unwrap();
    assert_eq!(st.outcome.as_deref(), Some("NothingHeld"));
    assert_eq!(
        st.deletion_receipt.as_deref(),
        Some(deletion_receipt.as_str())
    );
}

/// A request (made by an ordinary user) for a Tenant that does not exist, a typo or
/// applied before its Tenant, is Stalled `TenantNotFound`: no receipt, no answer, its
/// subject Secret kept. No deletion receipt of that name verifies, so nothing says
/// the tenant was erased.
#[tokio::test]
async fn a_request_for_a_tenant_that_does_not_exist_is_stalled_and_its_secret_kept() {
    let client = client().await;
    operator().await;
    let user = requester(&client, &unique("e2e-dsr-mallory")).await;
    let tenant = unique("e2e-dsr-typo");
    let name = format!("{tenant}-erasure");
    let secret_name = format!("{tenant}-subject");
    let identifier = format!("+31 6 {}", unique("id"));
    subject_secret(&user, &secret_name, &tenant, &name, &identifier).await;
    let mark = crate::audit::mark();
    let requests: Api<DataSubjectRequest> = Api::namespaced(user.clone(), CONTROL_NAMESPACE);
    requests
        .create(
            &PostParams::default(),
            &request(&name, &tenant, "Erasure", whole_now(), &secret_name),
        )
        .await
        .unwrap();
    let d = wait_dsr(&client, &name, "Stalled=True, TenantNotFound", |d| {
        condition(d, "Stalled") == Some(("True".into(), "TenantNotFound".into()))
    })
    .await;
    // Looked at again a few times: still no answer.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d = api(&client).await.get(&d.name_any()).await.unwrap();
    let st = d.status.clone().unwrap();
    assert!(
        st.outcome.is_none() && st.receipt.is_none() && st.subject_secret_deleted_at.is_none(),
        "{st:?}"
    );
    assert_eq!(
        condition(&d, "Ready"),
        Some(("False".into(), "TenantNotFound".into()))
    );
    assert!(st.deadline.is_some(), "the clock runs all the same");
    let receipts = Api::<ConfigMap>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .list(&ListParams::default().labels(&format!("{DSR_LABEL}={name}")))
        .await
        .unwrap();
    assert!(receipts.items.is_empty(), "a receipt was written");
    let kept = Api::<Secret>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .get_opt(&secret_name)
        .await
        .unwrap();
    assert!(kept.is_some(), "the subject Secret was deleted");
    // Never read, not even its metadata: the operator asked nothing about it.
    let touched: Vec<_> = crate::audit::since(mark)
        .into_iter()
        .filter(|e| {
            let o = e.object();
            e.user.username == crate::audit::OPERATOR_USER
                && o.resource == "secrets"
                && o.name == secret_name
        })
        .map(|e| e.verb)
        .collect();
    assert!(
        touched.is_empty(),
        "the operator touched the subject Secret of a request for a missing tenant: {touched:?}"
    );
    assert_identifier_nowhere(&client, &name, &identifier).await;
}

/// Only a subject Secret is read or deleted: a request (by an ordinary user) naming the
/// tenant's own signing Secret, labelled for the tenant but not for the request, or a
/// Secret labelled for the request without the key `subject`, is Stalled
/// `NotASubjectSecret`; nothing runs and the Secret is left as it was.
#[tokio::test]
async fn a_secret_that_is_not_a_subject_secret_is_left_alone() {
    let client = client().await;
    operator().await;
    let user = requester(&client, &unique("e2e-dsr-mallory")).await;
    let tenant = unique("e2e-dsr-notsub");
    live_tenant(&client, &tenant).await;
    let requests: Api<DataSubjectRequest> = Api::namespaced(user.clone(), CONTROL_NAMESPACE);
    let secrets = Api::<Secret>::namespaced(client.clone(), CONTROL_NAMESPACE);
    let signing = format!("{tenant}-sig");
    let keyless = format!("{tenant}-keyless");
    let keyless_request = format!("{tenant}-keyless");
    labelled_secret(
        &user,
        &keyless,
        json!({"herald.dev/tenant": tenant, DSR_LABEL: keyless_request}),
        &[("phone", "+31 6 12345678")],
    )
    .await;
    for (name, secret) in [
        (format!("{tenant}-signing"), signing.clone()),
        (keyless_request.clone(), keyless.clone()),
    ] {
        let before = secrets.get(&secret).await.unwrap();
        requests
            .create(
                &PostParams::default(),
                &request(&name, &tenant, "Erasure", whole_now(), &secret),
            )
            .await
            .unwrap();
        let d = wait_dsr(&client, &name, "Stalled=True, NotASubjectSecret", |d| {
            condition(d, "Stalled") == Some(("True".into(), "NotASubjectSecret".into()))
        })
        .await;
        let st = d.status.unwrap();
        assert!(st.job.is_none() && st.outcome.is_none(), "{st:?}");
        let jobs = Api::<Job>::namespaced(client.clone(), &format!("tenant-{tenant}"))
            .list(&ListParams::default().labels(&format!("{DSR_LABEL}={name}")))
            .await
            .unwrap();
        assert!(jobs.items.is_empty(), "a Job ran for {secret}");
        let after = secrets.get(&secret).await.unwrap();
        assert_eq!(
            (after.metadata.uid, after.metadata.resource_version),
            (before.metadata.uid, before.metadata.resource_version),
            "{secret} was changed"
        );
    }
}

/// An extension added (by an ordinary user) after the first month ended, with a
/// back-dated subjectInformedAt inside it that admission alone cannot see through, is
/// judged when Herald first sees it: refused (`ExtensionTooLate`,
/// `extensionAccepted: false`), the deadline unchanged and the request still overdue.
#[tokio::test]
async fn an_extension_added_after_the_first_month_is_too_late() {
    let client = client().await;
    operator().await;
    let user = requester(&client, &unique("e2e-dsr-mallory")).await;
    let tenant = unique("e2e-dsr-late");
    live_tenant(&client, &tenant).await;
    let name = format!("{tenant}-access");
    // Received 40 days ago; its subject Secret is not there, so it stays unanswered.
    let received = whole_now() - Span::new().hours(24 * 40);
    let requests: Api<DataSubjectRequest> = Api::namespaced(user.clone(), CONTROL_NAMESPACE);
    requests
        .create(
            &PostParams::default(),
            &request(
                &name,
                &tenant,
                "Access",
                received,
                &format!("{tenant}-none"),
            ),
        )
        .await
        .unwrap();
    let deadline = plus_months(received, 1);
    wait_dsr(&client, &name, "Overdue", |d| {
        d.status.as_ref().and_then(|s| s.state.as_deref()) == Some("Overdue")
    })
    .await;
    let backdated = json!({"spec": {"extension": {"months": 2, "reason": "e2e: numerous requests",
        "subjectInformedAt": (received + Span::new().hours(24 * 10)).to_string()}}});
    requests
        .patch(&name, &PatchParams::default(), &Patch::Merge(&backdated))
        .await
        .expect("admission cannot tell a back-dated extension");
    let d = wait_dsr(
        &client,
        &name,
        "ExtensionAccepted=False, ExtensionTooLate",
        |d| condition(d, "ExtensionAccepted") == Some(("False".into(), "ExtensionTooLate".into())),
    )
    .await;
    let st = d.status.unwrap();
    assert_eq!(st.extension_accepted, Some(false));
    assert!(st.extension_seen_at.is_some());
    assert_eq!(
        st.deadline.map(|t| t.0),
        Some(deadline),
        "the deadline moved"
    );
    assert_eq!(st.state.as_deref(), Some("Overdue"));
    assert_eq!(
        deadline_metric(&name).await,
        Some(deadline.as_second() as f64)
    );
}

/// The CRD's first-month rule counts a month as `decide::add_months` does (the
/// deadline's month): on the API server, an extension told at the first month's end is
/// admitted and one a second later refused, across month ends, leap years and the
/// case the old rule admitted (received 01-31T12:00, told 02-28T23:00).
#[tokio::test]
async fn the_first_month_rule_counts_the_month_as_the_deadline_does() {
    let client = client().await;
    operator().await;
    let user = requester(&client, &unique("e2e-dsr-mallory")).await;
    let requests: Api<DataSubjectRequest> = Api::namespaced(user.clone(), CONTROL_NAMESPACE);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let with_extension = |received: Timestamp, told: Timestamp| {
        let mut r = request(&unique("e2e-dsr-cel"), "acme", "Access", received, "s");
        r.spec.extension = Some(herald::api::v1alpha1::Extension {
            months: 1,
            reason: Some("e2e".into()),
            subject_informed_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(told)),
        });
        r
    };
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    for received in [
        "2026-01-31T12:00:00Z",
        "2028-01-31T12:00:00Z",
        "2026-01-29T00:00:00Z",
        "2026-03-31T23:59:59Z",
        "2026-12-31T06:00:00Z",
        "2026-02-28T08:00:00Z",
        "2026-03-02T09:30:00Z",
    ] {
        let received = at(received);
        let end = decide::add_months(received, 1);
        requests
            .create(&dry, &with_extension(received, end))
            .await
            .unwrap_or_else(|e| panic!("received {received}, told {end} (the month's end): {e}"));
        let err = requests
            .create(
                &dry,
                &with_extension(received, end + Span::new().seconds(1)),
            )
            .await
            .expect_err(&format!(
                "received {received}, told a second after {end}: admitted"
            ));
        assert!(
            err.to_string()
                .contains("must be within the first month after receivedAt"),
            "{err}"
        );
    }
    let err = requests
        .create(
            &dry,
            &with_extension(at("2026-01-31T12:00:00Z"), at("2026-02-28T23:00:00Z")),
        )
        .await
        .expect_err("told 02-28T23:00 of a request received 01-31T12:00: admitted");
    assert!(
        err.to_string()
            .contains("clamped to the end of a shorter month"),
        "{err}"
    );
}

/// A receivedAt in the future (by more than the clock skew allowed), set by an ordinary
/// user, counts no deadline: Stalled `ReceivedAtInFuture`, no deadline in status or
/// metrics, nothing runs. And a name over 63 characters is refused at admission.
#[tokio::test]
async fn received_at_in_the_future_counts_no_deadline_and_long_names_are_refused() {
    let client = client().await;
    operator().await;
    let user = requester(&client, &unique("e2e-dsr-mallory")).await;
    let tenant = unique("e2e-dsr-future");
    live_tenant(&client, &tenant).await;
    let requests: Api<DataSubjectRequest> = Api::namespaced(user.clone(), CONTROL_NAMESPACE);
    for (suffix, received) in [
        ("tomorrow", whole_now() + Span::new().hours(24)),
        ("2199", "2199-06-01T00:00:00Z".parse().unwrap()),
    ] {
        let name = format!("{tenant}-{suffix}");
        let secret = format!("{name}-subject");
        subject_secret(&user, &secret, &tenant, &name, "+31 6 00000000").await;
        requests
            .create(
                &PostParams::default(),
                &request(&name, &tenant, "Erasure", received, &secret),
            )
            .await
            .unwrap();
        let d = wait_dsr(&client, &name, "Stalled=True, ReceivedAtInFuture", |d| {
            condition(d, "Stalled") == Some(("True".into(), "ReceivedAtInFuture".into()))
        })
        .await;
        let st = d.status.unwrap();
        assert_eq!(st.deadline, None, "a deadline from a future date");
        assert!(st.job.is_none(), "{st:?}");
        assert_eq!(deadline_metric(&name).await, None);
    }
    // Within the skew: counts.
    let name = format!("{tenant}-skew");
    requests
        .create(
            &PostParams::default(),
            &request(
                &name,
                &tenant,
                "Erasure",
                whole_now() + Span::new().minutes(2),
                "x",
            ),
        )
        .await
        .unwrap();
    wait_dsr(&client, &name, "a deadline", |d| {
        d.status.as_ref().is_some_and(|s| s.deadline.is_some())
    })
    .await;

    let long = format!("{}-{}", tenant, "x".repeat(64));
    let err = requests
        .create(
            &PostParams::default(),
            &request(&long, &tenant, "Erasure", whole_now(), "x"),
        )
        .await
        .expect_err("a name over 63 characters was admitted");
    assert!(
        err.to_string()
            .contains("metadata.name of a DataSubjectRequest must be at most 63 characters"),
        "{err}"
    );
}

/// The operator's RBAC for its finalizer: patch on DataSubjectRequests (the chart's
/// ClusterRole, as the authorizer answers), never delete or create: requests are the
/// users'.
#[tokio::test]
async fn the_operator_may_patch_requests_for_its_finalizer_and_nothing_more() {
    operator().await; // the chart's RBAC installed
    let can = |verb: &str| {
        let user = format!(
            "system:serviceaccount:{CONTROL_NAMESPACE}:{}",
            crate::identity::CHART_SA
        );
        let out = kubectl(&[
            "auth",
            "can-i",
            verb,
            "datasubjectrequests.herald.dev",
            "-n",
            CONTROL_NAMESPACE,
            "--as",
            &user,
        ]);
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    assert!(
        can("patch"),
        "the operator may not patch DataSubjectRequests"
    );
    for verb in ["delete", "create", "update", "deletecollection"] {
        assert!(!can(verb), "the operator may {verb} DataSubjectRequests");
    }
}

/// Deleting an unanswered request (as an ordinary user) removes its Job and its subject
/// copy in the tenant namespace, and leaves a signed receipt with outcome `Withdrawn`
/// that `herald receipt verify` names a withdrawal receipt; the request then goes.
#[tokio::test]
async fn deleting_an_unanswered_request_leaves_a_withdrawal_receipt_and_no_job() {
    let client = client().await;
    operator().await;
    let user = requester(&client, &unique("e2e-dsr-mallory")).await;
    let tenant = unique("e2e-dsr-withdraw");
    live_tenant(&client, &tenant).await;
    crate::erasure::wait_ready_active(&Api::all(client.clone()), &tenant).await;
    let ns = format!("tenant-{tenant}");
    let name = format!("{tenant}-erasure");
    let secret_name = format!("{name}-subject");
    let requests: Api<DataSubjectRequest> = Api::namespaced(user.clone(), CONTROL_NAMESPACE);
    let created = requests
        .create(
            &PostParams::default(),
            &request(&name, &tenant, "Erasure", whole_now(), &secret_name),
        )
        .await
        .unwrap();
    // The finalizer is there before anything runs.
    wait_dsr(&client, &name, "the finalizer", |d| {
        d.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == "herald.dev/data-subject-request"))
    })
    .await;
    wait_dsr(&client, &name, "Stalled=True, SubjectSecretMissing", |d| {
        condition(d, "Stalled") == Some(("True".into(), "SubjectSecretMissing".into()))
    })
    .await;
    // A Job of the request's name that never finishes (suspended), and its copy, as
    // Herald makes them: the request is unanswered while they exist.
    let job_name = decide::job_name(&created);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let args = [
        "dsr",
        "--right",
        "erasure",
        "--subject-file",
        "/var/run/herald/subject/subject",
    ];
    jobs.create(&PostParams::default(), &premade_job(&job_name, &args))
        .await
        .unwrap();
    let copies: Api<Secret> = Api::namespaced(client.clone(), &ns);
    copies
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": job_name, "labels": {E2E_LABEL: "dsr", DSR_LABEL: name}},
                "data": {"subject": "KzMxIDY="}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    subject_secret(&client, &secret_name, &tenant, &name, "+31 6 00000000").await;
    // Its Job found running (Herald's own, verified): nothing blocks, nothing answered.
    wait_dsr(&client, &name, "Stalled=False, Reconciling", |d| {
        condition(d, "Stalled").map(|c| c.0).as_deref() == Some("False")
            && condition(d, "Reconciling").map(|c| c.0).as_deref() == Some("True")
    })
    .await;
    assert!(
        jobs.get_opt(&job_name).await.unwrap().is_some(),
        "the running Job was replaced"
    );

    requests
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let gone = async {
        while api(&client).await.get_opt(&name).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::time::timeout(WAIT, gone)
        .await
        .expect("the deleted request is still there");
    let job_gone = async {
        while jobs
            .get_opt(&job_name)
            .await
            .unwrap()
            .is_some_and(|j| j.metadata.deletion_timestamp.is_none())
        {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::time::timeout(WAIT, job_gone)
        .await
        .expect("the withdrawn request's Job is still there");
    assert!(
        copies.get_opt(&job_name).await.unwrap().is_none(),
        "the withdrawn request's subject copy is still there"
    );
    assert_eq!(deadline_metric(&name).await, None);

    // The record: signed, outcome Withdrawn, named as what it is by the verifier.
    let receipt_name = decide::receipt_name(&created);
    let printed = kubectl(&[
        "get",
        "configmap",
        &receipt_name,
        "-n",
        CONTROL_NAMESPACE,
        "-o",
        "json",
    ]);
    assert!(
        printed.status.success(),
        "no withdrawal receipt {receipt_name}"
    );
    let receipt: Value = serde_json::from_slice(&printed.stdout).unwrap();
    let body: Value =
        serde_json::from_str(receipt["data"]["receipt.json"].as_str().unwrap()).unwrap();
    assert_eq!(body["outcome"], "Withdrawn");
    assert_eq!(body["request"], name.as_str());
    let dir = repo_root().join("target").join("e2e-dsr");
    std::fs::create_dir_all(&dir).unwrap();
    let keys = kubectl(&[
        "get",
        "configmap",
        "herald-receipt-public-keys",
        "-n",
        CONTROL_NAMESPACE,
        "-o",
        "yaml",
    ]);
    let keys_file = dir.join(format!("keys-{}.yaml", unique("k")));
    std::fs::write(&keys_file, &keys.stdout).unwrap();
    let (ok, out) =
        crate::erasure::verify_receipt(&dir, &receipt, Some(keys_file.to_str().unwrap()));
    assert!(ok, "the withdrawal receipt does not verify: {out}");
    assert!(out.starts_with("withdrawal receipt verifies:"), "{out}");
    assert!(out.contains("outcome Withdrawn (Erasure request"), "{out}");
}

/// A Job of the request's name made before Herald's, running `args` with the platform's
/// image, suspended (no pod runs).
fn premade_job(name: &str, args: &[&str]) -> Job {
    let config = herald::config::OperatorConfig::load(None).unwrap();
    let image = herald::controller::tenant::data_plane::image(&config);
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {E2E_LABEL: "dsr"}},
        "spec": {"suspend": true, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "job", "image": image, "args": args}]
        }}}
    }))
    .unwrap()
}

/// An erasure request whose Job exits 3 (the image contract's "nothing held"): the
/// answer is NothingHeld, written in the receipt; before the subject Secret exists the
/// request waits, Stalled with its own reason, and runs nothing.
#[tokio::test]
async fn a_job_exiting_3_answers_nothing_held() {
    let client = client().await;
    operator().await;
    let tenant = unique("e2e-dsr-exit");
    live_tenant(&client, &tenant).await;
    crate::erasure::wait_ready_active(&Api::all(client.clone()), &tenant).await;
    let ns = format!("tenant-{tenant}");
    let secret_name = format!("{tenant}-subject");
    let name = format!("{tenant}-erasure");
    let created = api(&client)
        .await
        .create(
            &PostParams::default(),
            &request(&name, &tenant, "Erasure", whole_now(), &secret_name),
        )
        .await
        .unwrap();
    wait_dsr(&client, &name, "Stalled=True, SubjectSecretMissing", |d| {
        condition(d, "Stalled") == Some(("True".into(), "SubjectSecretMissing".into()))
    })
    .await;
    // The Job Herald would create (its name is the request's uid), there first, and
    // failed by the pod failure policy on exit code 3, as the Job controller writes it.
    let uid: String = created
        .metadata
        .uid
        .unwrap()
        .chars()
        .filter(|c| *c != '-')
        .take(12)
        .collect();
    let job_name = format!("herald-dsr-{uid}");
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let args = [
        "dsr",
        "--tenant",
        tenant.as_str(),
        "--right",
        "erasure",
        "--subject-file",
        "/var/run/herald/subject/subject",
    ];
    jobs.create(&PostParams::default(), &premade_job(&job_name, &args))
        .await
        .unwrap();
    let now = Timestamp::now().to_string();
    let message = format!(
        "Container job for pod {ns}/{job_name}-x failed with exit code 3 matching FailJob rule at index 0"
    );
    let condition_of = |type_: &str| json!({"type": type_, "status": "True", "reason": "PodFailurePolicy", "message": message, "lastTransitionTime": now});
    jobs.patch_status(
        &job_name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"startTime": now,
            "conditions": [condition_of("FailureTarget"), condition_of("Failed")]}})),
    )
    .await
    .unwrap();
    subject_secret(
        &client,
        &secret_name,
        &tenant,
        &name,
        &format!("+31 6 {}", unique("id")),
    )
    .await;
    let d = wait_dsr(&client, &name, "answered", |d| {
        d.status.as_ref().is_some_and(|s| s.receipt.is_some())
    })
    .await;
    let st = d.status.unwrap();
    assert_eq!(st.outcome.as_deref(), Some("NothingHeld"));
    assert_eq!(st.job.as_deref(), Some(job_name.as_str()));
    let cm = Api::<ConfigMap>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .get(st.receipt.as_deref().unwrap())
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&cm.data.unwrap()["receipt.json"]).unwrap();
    assert_eq!(
        (body["outcome"].as_str(), body["right"].as_str()),
        (Some("NothingHeld"), Some("Erasure"))
    );
    assert!(body["deliveredTo"].is_null(), "{body}");
}

/// The operator deletes a Secret of the control namespace only when it is labelled for
/// a tenant (herald-operator-scope): a subject Secret, never one a person left
/// unlabelled, whatever its RBAC (which allows deleting Secrets there) says.
#[tokio::test]
async fn the_operator_may_delete_only_labelled_secrets_in_the_control_namespace() {
    let client = client().await;
    operator().await; // deploy/admission installed
    let labelled = unique("e2e-dsr-labelled");
    put_secret(&client, &labelled, Some(&labelled), &[("subject", "x")]).await;
    let unlabelled = unique("e2e-dsr-unlabelled");
    put_secret(&client, &unlabelled, None, &[("subject", "x")]).await;
    let delete = |name: &str| {
        crate::rbac::as_operator(&[
            "delete",
            "secret",
            name,
            "-n",
            CONTROL_NAMESPACE,
            "--dry-run=server",
        ])
    };
    let (ok, err) = delete(&unlabelled);
    assert!(
        !ok,
        "the operator may delete an unlabelled Secret of the control namespace"
    );
    assert!(
        err.contains("may delete a Secret in its control namespace only when it is labelled herald.dev/tenant"),
        "{err}"
    );
    let (ok, err) = delete(&labelled);
    assert!(ok, "the operator may not delete a labelled Secret: {err}");
}
