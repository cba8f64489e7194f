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

use std::time::Duration;

use herald::api::v1alpha1::{DataSubjectRequest, Tenant};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::{Span, Timestamp, tz::TimeZone};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

use crate::channel_binding::{create_tenant, put_secret};
use crate::common::{
    CONTROL_NAMESPACE, E2E_LABEL, WAIT, client, kubectl, operator, repo_root, unique,
};
use crate::subprocessor::{Hook, secret, start_hook};

const DSR_LABEL: &str = "herald.dev/data-subject-request";

/// A tenant whose notices go to a local receiver (signed with its own secret), with a
/// local export endpoint.
pub(crate) async fn live_tenant(client: &Client, name: &str) -> (Hook, String) {
    let key = secret();
    let (url, hook) = start_hook(&key, false).await;
    let sig = format!("{name}-sig");
    put_secret(client, &sig, Some(name), &[("hmacKey", &key)]).await;
    let export = format!("http://127.0.0.1:{}/dsr-export", free_port());
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

/// The subject Secret, labelled for `owner`, holding `identifier`.
pub(crate) async fn subject_secret(client: &Client, name: &str, owner: &str, identifier: &str) {
    put_secret(client, name, Some(owner), &[("subject", identifier)]).await;
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
async fn deadline_metric(request: &str) -> Option<f64> {
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
    let (hook, export) = live_tenant(&client, &tenant).await;
    let ns = format!("tenant-{tenant}");
    let identifier = format!("+31 6 {}", unique("id"));
    let secret_name = format!("{tenant}-subject");
    subject_secret(&client, &secret_name, &tenant, &identifier).await;
    let name = format!("{tenant}-access");
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

    // The Job: the platform's image (the one its purges run), the tenant's region, the
    // data-plane label the egress policy selects, the subject mounted as a file, the
    // tenant's export endpoint as its destination.
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
    assert_eq!(
        job_json["spec"]["template"]["metadata"]["labels"]["herald.dev/data-plane"],
        "true"
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
    assert_eq!(body["deliveredTo"], export.as_str());
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
    subject_secret(&client, &secret_name, &other, &identifier).await;
    let name = format!("{tenant}-erasure");
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

#[tokio::test]
async fn a_request_for_an_erased_tenant_is_answered_nothing_held_with_its_deletion_receipt() {
    let client = client().await;
    operator().await;
    crate::common::apply_examples();
    let tenant = unique("e2e-dsr-erased");
    let tenants: Api<Tenant> = Api::all(client.clone());
    tenants
        .create(
            &PostParams::default(),
            &crate::erasure::tenant(&tenant, None, json!({})),
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
    subject_secret(&client, &secret_name, &tenant, &identifier).await;
    let name = format!("{tenant}-access");
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
    assert!(
        Api::<Secret>::namespaced(client.clone(), CONTROL_NAMESPACE)
            .get_opt(&secret_name)
            .await
            .unwrap()
            .is_none(),
        "the subject Secret is still there"
    );
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
