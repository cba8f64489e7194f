//! Dates, pauses and URLs that cannot be abused (issue 25, items 4 and 6), tried as the
//! attacker would: an ordinary platform user who may write Tenants (impersonated, never
//! cluster-admin), on the real API server and the shared operator.

use std::time::{Duration, Instant};

use herald::api::v1alpha1::Tenant;
use herald::api::v1alpha1::conditions::{self as types, reason};
use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::common::{E2E_LABEL, WAIT, apply_examples, client, operator, unique};
use crate::erasure::{condition_is, days_ago, tenant, terminate_at, wait_for, wait_ready_active};

/// The ordinary group of users who manage customers' Tenants.
const GROUP: &str = "e2e-tenant-writers";

/// A client acting as `user` of [`GROUP`], which may read and write Tenants (and
/// nothing else): what a platform team member onboarding customers holds. The copy of
/// `evidence::ordinary_user`, widened to Tenants only (and their deletion, for the
/// tests to clean up), because that is the attacker here.
pub(crate) async fn tenant_writer(admin: &Client, user: &str) -> Client {
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "e2e-tenant-writer", "labels": {E2E_LABEL: "guard"}},
        "rules": [{"apiGroups": ["herald.dev"], "resources": ["tenants"],
                   "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]
    }))
    .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "e2e-tenant-writer", "labels": {E2E_LABEL: "guard"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "e2e-tenant-writer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": GROUP}]
    }))
    .unwrap();
    let ssa = PatchParams::apply("e2e").force();
    Api::<ClusterRole>::all(admin.clone())
        .patch("e2e-tenant-writer", &ssa, &Patch::Apply(&role))
        .await
        .unwrap();
    Api::<ClusterRoleBinding>::all(admin.clone())
        .patch("e2e-tenant-writer", &ssa, &Patch::Apply(&binding))
        .await
        .unwrap();
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info.impersonate = Some(user.into());
    config.auth_info.impersonate_groups = Some(vec![GROUP.into()]);
    Client::try_from(config).unwrap()
}

/// The API server's refusal message of `result` (any 4xx from admission).
fn refusal<T: std::fmt::Debug>(result: kube::Result<T>, what: &str) -> String {
    match result {
        Err(kube::Error::Api(s)) if (400..500).contains(&s.code) && s.code != 404 => s.message,
        other => panic!("{what} was admitted: {other:?}"),
    }
}

/// Retries `attempt` until it is refused with a message containing `needle`: the
/// admission policies load asynchronously after they are applied (nothing to watch).
async fn eventually_refused<F, Fut, T>(mut attempt: F, needle: &str, what: &str) -> String
where
    F: FnMut() -> Fut,
    Fut: Future<Output = kube::Result<T>>,
    T: std::fmt::Debug,
{
    let deadline = Instant::now() + WAIT;
    loop {
        match attempt().await {
            Err(kube::Error::Api(s)) if s.message.contains(needle) => return s.message,
            other if Instant::now() >= deadline => {
                panic!("{what}: not refused with {needle:?} in {WAIT:?}: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        ..Default::default()
    }
}

/// Every URL field uses the one rule, and a scheme is case-insensitive: an upper-case
/// scheme no longer skips the userinfo, address and port checks. Applied to the real
/// API server as the ordinary user, for both URL fields.
#[tokio::test]
async fn upper_case_urls_are_judged_like_lower_case_ones() {
    let admin = client().await;
    operator().await;
    let writer = tenant_writer(&admin, "e2e-url-writer").await;
    let tenants: Api<Tenant> = Api::all(writer);
    let refused = [
        "HTTPS://user:pw@hooks.acme.example/",
        "HTTPS://user@hooks.acme.example/",
        "hTTpS://user:pw@hooks.acme.example:443/x",
        "HTTPS://hooks.acme.example:99999/",
        "HTTPS://hooks.acme.example:0/",
        "HTTPS://hooks.acme.example:65536/",
        "HTTPS://10.0.0.5/",
        "HTTPS://169.254.169.254/latest/meta-data",
        "HTTPS://[fd00::1]/",
        "HTTP://hooks.acme.example/",
        "ftp://hooks.acme.example/",
    ];
    let accepted = [
        "https://hooks.acme.example/",
        "HTTPS://hooks.acme.example/",
        "Https://hooks.acme.example:8443/notify?x=1",
        "https://hooks.acme.example:65535/",
        "http://127.0.0.1:8080/hook",
        "HTTP://127.0.0.1:8080/hook",
    ];
    for url in refused {
        let webhook = tenant(&unique("e2e-url"), Some(url), json!({}));
        let message = refusal(
            tenants.create(&dry_run(), &webhook).await,
            &format!("webhookUrl {url}"),
        );
        assert!(
            message.contains("notifications.webhookUrl must be an https:// URL"),
            "{url}: {message}"
        );
        let export = tenant(
            &unique("e2e-url"),
            None,
            json!({"spec": {"contract": {"onTermination": {"action": "ReturnThenDelete", "export": {"url": url}}}}}),
        );
        let message = refusal(
            tenants.create(&dry_run(), &export).await,
            &format!("export url {url}"),
        );
        assert!(
            message.contains("onTermination.export.url must be an https:// URL"),
            "{url}: {message}"
        );
    }
    for url in accepted {
        let webhook = tenant(&unique("e2e-url"), Some(url), json!({}));
        tenants
            .create(&dry_run(), &webhook)
            .await
            .unwrap_or_else(|e| panic!("webhookUrl {url} refused: {e}"));
        let export = tenant(
            &unique("e2e-url"),
            None,
            json!({"spec": {"contract": {"onTermination": {"action": "ReturnThenDelete", "export": {"url": url}}}}}),
        );
        tenants
            .create(&dry_run(), &export)
            .await
            .unwrap_or_else(|e| panic!("export url {url} refused: {e}"));
    }
}

fn paused(name: &str, value: &str) -> Tenant {
    tenant(
        name,
        None,
        json!({"metadata": {"annotations": {"herald.dev/paused": value}}}),
    )
}

/// "False", "yes", "" and "TRUE" used to pause (anything but lowercase "false" did):
/// now only "true" and "false" are admitted, on every Herald kind.
#[tokio::test]
async fn a_pause_value_other_than_true_or_false_is_refused() {
    let admin = client().await;
    operator().await;
    let writer = tenant_writer(&admin, "e2e-pause-writer").await;
    let tenants: Api<Tenant> = Api::all(writer);
    let needle = r#"herald.dev/paused must be exactly "true" or "false""#;
    eventually_refused(
        || {
            let tenants = tenants.clone();
            async move {
                tenants
                    .create(&dry_run(), &paused(&unique("e2e-pause"), "False"))
                    .await
            }
        },
        needle,
        "paused: False",
    )
    .await;
    for value in ["yes", "", "TRUE", "True", "false ", "1"] {
        let message = refusal(
            tenants
                .create(&dry_run(), &paused(&unique("e2e-pause"), value))
                .await,
            &format!("paused: {value:?}"),
        );
        assert!(message.contains(needle), "{value:?}: {message}");
    }
    for value in ["true", "false"] {
        tenants
            .create(&dry_run(), &paused(&unique("e2e-pause"), value))
            .await
            .unwrap_or_else(|e| panic!("paused: {value} refused: {e}"));
    }
    // Set on an existing Tenant by an update: refused the same way.
    let name = unique("e2e-pause-upd");
    tenants
        .create(&PostParams::default(), &tenant(&name, None, json!({})))
        .await
        .unwrap();
    let message = refusal(
        tenants
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"herald.dev/paused": "False"}}})),
            )
            .await,
        "an update to paused: False",
    );
    assert!(message.contains(needle), "{message}");
    tenants.delete(&name, &DeleteParams::default()).await.ok();

    // The policy covers all six kinds.
    let policy = Api::<ValidatingAdmissionPolicy>::all(admin)
        .get("herald-paused-annotation")
        .await
        .unwrap();
    let rules = policy
        .spec
        .and_then(|s| s.match_constraints)
        .and_then(|m| m.resource_rules)
        .unwrap_or_default();
    let mut covered: Vec<String> = rules
        .iter()
        .flat_map(|r| r.resources.clone().unwrap_or_default())
        .collect();
    covered.sort();
    let mut kinds: Vec<String> = herald::api::crds()
        .iter()
        .map(|c| c.spec.names.plural.clone())
        .collect();
    kinds.sort();
    assert_eq!(covered, kinds);
}

/// A pause never holds termination or erasure: a tenant paused by its manifest and then
/// terminated 29 days ago is erased all the same, and says the pause did not hold.
#[tokio::test]
async fn a_paused_terminated_tenant_is_still_erased() {
    let admin = client().await;
    operator().await;
    apply_examples();
    let writer = tenant_writer(&admin, "e2e-pause-erase").await;
    let tenants: Api<Tenant> = Api::all(writer);
    let name = unique("e2e-paused-erase");
    tenants
        .create(&PostParams::default(), &tenant(&name, None, json!({})))
        .await
        .unwrap();
    wait_ready_active(&tenants, &name).await;
    tenants
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"herald.dev/paused": "true"}}})),
        )
        .await
        .unwrap();
    wait_for(
        &tenants,
        &name,
        condition_is(types::PAUSED, "True", reason::PAUSED),
        "Paused",
        WAIT,
    )
    .await;
    tenants
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(terminate_at(days_ago(29))),
        )
        .await
        .unwrap();
    let t = wait_for(
        &tenants,
        &name,
        condition_is(types::ERASED, "True", "Erased"),
        "Erased while paused",
        WAIT,
    )
    .await;
    assert_eq!(
        t.annotations().get("herald.dev/paused").map(String::as_str),
        Some("true"),
        "still paused"
    );
    let status = t.status.unwrap();
    let p = herald::conditions::find(&status.conditions, types::PAUSED).expect("Paused");
    assert_eq!(
        (p.status.as_str(), p.reason.as_str()),
        ("False", reason::PAUSE_NOT_HELD),
        "{}",
        p.message
    );
    assert!(status.erasure.unwrap().receipt.is_some(), "no receipt");
    tenants.delete(&name, &DeleteParams::default()).await.ok();
}

/// `terminatedAt: 2199-06-01` used to stop the senders and schedule erasure for 2199,
/// with a date that could never be corrected. Now it is not acted on (Stalled,
/// TerminatedAtInFuture: senders run, no deadline, no erasure), it can be corrected, and
/// once Herald has accepted the corrected date it is fixed.
#[tokio::test]
async fn a_termination_in_2199_is_not_acted_on_and_can_be_corrected() {
    let admin = client().await;
    operator().await;
    apply_examples();
    let writer = tenant_writer(&admin, "e2e-2199").await;
    let tenants: Api<Tenant> = Api::all(writer);
    let name = unique("e2e-2199");
    tenants
        .create(&PostParams::default(), &tenant(&name, None, json!({})))
        .await
        .unwrap();
    wait_ready_active(&tenants, &name).await;
    tenants
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"contract": {"state": "Terminated", "terminatedAt": "2199-06-01T00:00:00Z"}}})),
        )
        .await
        .expect("admission cannot know now: the date is the operator's to refuse");
    let t = wait_for(
        &tenants,
        &name,
        condition_is(types::STALLED, "True", reason::TERMINATED_AT_IN_FUTURE),
        "Stalled TerminatedAtInFuture",
        WAIT,
    )
    .await;
    let status = t.status.clone().unwrap();
    assert_eq!(status.termination_accepted_at, None);
    assert_eq!(status.deletion_deadline, None, "a deadline from 2199");
    assert!(status.erasure.is_none(), "erasure scheduled from 2199");
    // The senders were not stopped.
    let senders = Api::<Deployment>::namespaced(admin.clone(), &format!("tenant-{name}"))
        .get("herald-sender")
        .await
        .unwrap();
    assert_eq!(senders.spec.unwrap().replicas, Some(1), "senders stopped");

    // Corrected: accepted, acted on, and from then on fixed.
    let corrected = days_ago(1);
    tenants
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(terminate_at(corrected)),
        )
        .await
        .expect("a date Herald refused can be corrected");
    let t = wait_for(
        &tenants,
        &name,
        condition_is(types::READY, "True", reason::ERASURE_SCHEDULED),
        "the corrected termination accepted",
        WAIT,
    )
    .await;
    let status = t.status.unwrap();
    assert!(status.termination_accepted_at.is_some());
    assert_eq!(
        status.deletion_deadline.map(|d| d.0),
        Some(corrected + k8s_openapi::jiff::SignedDuration::from_hours(30 * 24))
    );
    let senders = Api::<Deployment>::namespaced(admin.clone(), &format!("tenant-{name}"))
        .get("herald-sender")
        .await
        .unwrap();
    assert_eq!(
        senders.spec.unwrap().replicas,
        Some(0),
        "senders not stopped"
    );
    let message = eventually_refused(
        || {
            let (tenants, name) = (tenants.clone(), name.clone());
            async move {
                tenants
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(terminate_at(days_ago(0))),
                    )
                    .await
            }
        },
        "cannot change: Herald accepted the termination",
        "moving an accepted terminatedAt",
    )
    .await;
    assert!(message.contains(&name), "{message}");
    tenants.delete(&name, &DeleteParams::default()).await.ok();
}

fn exporting(name: &str, url: &str) -> Tenant {
    tenant(
        name,
        None,
        json!({"spec": {"contract": {"onTermination": {"action": "ReturnThenDelete", "export": {"url": url}}}}}),
    )
}

/// An export destination the outbound guard refuses gets no Job, and erasure is not
/// held by it: the outcome and an event say so. The name is under a reserved top-level
/// domain, answered "no such name" without asking the DNS, so nothing leaves the machine.
#[tokio::test]
async fn an_export_destination_the_guard_refuses_gets_no_job_and_holds_no_erasure() {
    use k8s_openapi::api::batch::v1::Job;
    let admin = client().await;
    operator().await;
    apply_examples();
    let writer = tenant_writer(&admin, "e2e-export-refused").await;
    let tenants: Api<Tenant> = Api::all(writer);
    let name = unique("e2e-exp-refused");
    tenants
        .create(
            &PostParams::default(),
            &exporting(
                &name,
                "https://upload.acme.example/x?X-Amz-Signature=s3cr3t",
            ),
        )
        .await
        .unwrap();
    wait_ready_active(&tenants, &name).await;
    tenants
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(terminate_at(days_ago(29))),
        )
        .await
        .unwrap();
    let t = wait_for(
        &tenants,
        &name,
        |t: Option<&Tenant>| {
            t.and_then(|t| t.status.as_ref())
                .and_then(|s| s.erasure.as_ref())
                .and_then(|e| e.export.as_ref())
                .is_some_and(|x| x.outcome.is_some())
        },
        "an export outcome",
        WAIT,
    )
    .await;
    let export = t.status.unwrap().erasure.unwrap().export.unwrap();
    assert_eq!(export.outcome.as_deref(), Some(reason::DESTINATION_REFUSED));
    let job = Api::<Job>::namespaced(admin.clone(), &format!("tenant-{name}"))
        .get_opt("herald-export")
        .await
        .unwrap();
    assert!(job.is_none(), "an export Job was created: {job:?}");
    let events = crate::common::kubectl(&[
        "get",
        "events",
        "-A",
        "--field-selector",
        &format!("involvedObject.name={name},reason=DestinationRefused"),
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    let events = String::from_utf8_lossy(&events.stdout).into_owned();
    assert!(events.contains("unresolvable"), "events: {events:?}");
    assert!(
        !events.contains("s3cr3t") && !events.contains("upload.acme"),
        "the event names the URL: {events}"
    );
    // Erasure went ahead without the export.
    wait_for(
        &tenants,
        &name,
        condition_is(types::ERASED, "True", "Erased"),
        "Erased without the export",
        WAIT,
    )
    .await;
    tenants.delete(&name, &DeleteParams::default()).await.ok();
}

/// An approved destination: the export Job's pods reach exactly the addresses the guard
/// approved, on the URL's port, and the platform's stores; not "any global address on
/// 443" as other data-plane pods do. Checked with the NetworkPolicy evaluator on the
/// live policies (traffic is described, never sent).
#[tokio::test]
async fn the_export_jobs_egress_allows_only_the_approved_address_and_port() {
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let admin = client().await;
    operator().await;
    apply_examples();
    let writer = tenant_writer(&admin, "e2e-export-approved").await;
    let tenants: Api<Tenant> = Api::all(writer);
    let name = unique("e2e-exp-egress");
    tenants
        .create(
            &PostParams::default(),
            &exporting(&name, "http://127.0.0.1:9/upload"),
        )
        .await
        .unwrap();
    wait_ready_active(&tenants, &name).await;
    // Terminated yesterday: the export runs now, erasure only days later, so the Job
    // and its policy are there to look at.
    tenants
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(terminate_at(days_ago(1))),
        )
        .await
        .unwrap();
    let ns_name = format!("tenant-{name}");
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), &ns_name);
    let deadline = Instant::now() + WAIT;
    let egress = loop {
        if let Some(p) = policies.get_opt("herald-export-egress").await.unwrap() {
            break p;
        }
        assert!(Instant::now() < deadline, "no herald-export-egress policy");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let job = Api::<Job>::namespaced(admin.clone(), &ns_name)
        .get("herald-export")
        .await
        .unwrap();
    let owner = &egress.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), Some(owner.uid.clone())),
        ("Job", job.metadata.uid.clone())
    );
    let export_labels = job.spec.unwrap().template.metadata.unwrap().labels.unwrap();
    assert!(
        !export_labels.contains_key("herald.dev/data-plane"),
        "the export pod is also under the any-address data-plane policy"
    );
    let ns = Api::<Namespace>::all(admin.clone())
        .get(&ns_name)
        .await
        .unwrap();
    let all = policies.list(&Default::default()).await.unwrap().items;
    let purge_labels: std::collections::BTreeMap<String, String> =
        [("herald.dev/data-plane".to_owned(), "true".to_owned())].into();
    let export_pod = crate::network::pod(&ns, &export_labels, "10.244.9.9");
    let purge_pod = crate::network::pod(&ns, &purge_labels, "10.244.9.10");
    let approved = json!({"ip": "127.0.0.1"});
    let other_loopback = json!({"ip": "127.0.0.2"});
    let provider = json!({"ip": "203.0.113.10"});
    let case = crate::network::case;
    let table = [
        (
            case("export → approved:9", &export_pod, &approved, 9, false),
            true,
        ),
        (
            case("export → approved:443", &export_pod, &approved, 443, false),
            false,
        ),
        (
            case(
                "export → another loopback:9",
                &export_pod,
                &other_loopback,
                9,
                false,
            ),
            false,
        ),
        (
            case("export → provider 443", &export_pod, &provider, 443, false),
            false,
        ),
        (
            case("purge → provider 443", &purge_pod, &provider, 443, false),
            true,
        ),
    ];
    let cases: Vec<_> = table.iter().map(|(c, _)| c.clone()).collect();
    let verdicts = crate::network::evaluate(&all, &cases);
    for (c, want) in &table {
        let name = c["name"].as_str().unwrap();
        assert_eq!(verdicts[name], *want, "{name}");
    }
    tenants.delete(&name, &DeleteParams::default()).await.ok();
}

/// A client acting as `user` of the group that may write DataSubjectRequests in the
/// control namespace (and nothing else): whoever files requests.
async fn request_writer(admin: &Client, user: &str) -> Client {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let ns = crate::common::CONTROL_NAMESPACE;
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "e2e-request-writer", "labels": {E2E_LABEL: "guard"}},
        "rules": [{"apiGroups": ["herald.dev"], "resources": ["datasubjectrequests"],
                   "verbs": ["get", "list", "watch", "create", "update", "patch"]}]
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "e2e-request-writer", "labels": {E2E_LABEL: "guard"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "e2e-request-writer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "e2e-request-writers"}]
    }))
    .unwrap();
    let ssa = PatchParams::apply("e2e").force();
    Api::<Role>::namespaced(admin.clone(), ns)
        .patch("e2e-request-writer", &ssa, &Patch::Apply(&role))
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .patch("e2e-request-writer", &ssa, &Patch::Apply(&binding))
        .await
        .unwrap();
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info.impersonate = Some(user.into());
    config.auth_info.impersonate_groups = Some(vec!["e2e-request-writers".into()]);
    Client::try_from(config).unwrap()
}

/// A request paused when it is filed used to write no status and no deadline series, so
/// no alert could fire. Now it is not answered while paused, but its deadline is in
/// status and in the metrics, beside `Paused=True`; unpaused, it is answered.
#[tokio::test]
async fn a_paused_request_keeps_its_deadline_and_status() {
    use crate::dsr::{
        condition, deadline_metric, live_tenant, request, subject_secret, wait_dsr, whole_now,
    };
    let admin = client().await;
    operator().await;
    let tenant_name = unique("e2e-dsr-paused");
    live_tenant(&admin, &tenant_name).await;
    let secret_name = format!("{tenant_name}-subject");
    subject_secret(
        &admin,
        &secret_name,
        &tenant_name,
        &format!("{tenant_name}-access"),
        &format!("+31 6 {}", unique("id")),
    )
    .await;
    let writer = request_writer(&admin, "e2e-dsr-pauser").await;
    let name = format!("{tenant_name}-access");
    let mut r = request(&name, &tenant_name, "Access", whole_now(), &secret_name);
    r.metadata
        .annotations
        .get_or_insert_default()
        .insert("herald.dev/paused".into(), "true".into());
    Api::<herald::api::v1alpha1::DataSubjectRequest>::namespaced(
        writer.clone(),
        crate::common::CONTROL_NAMESPACE,
    )
    .create(&PostParams::default(), &r)
    .await
    .unwrap();
    let d = wait_dsr(&admin, &name, "Paused=True with a deadline", |d| {
        condition(d, types::PAUSED) == Some(("True".into(), reason::PAUSED.into()))
            && d.status.as_ref().is_some_and(|s| s.deadline.is_some())
    })
    .await;
    let st = d.status.unwrap();
    assert!(
        st.job.is_none() && st.outcome.is_none(),
        "answered while paused: {st:?}"
    );
    let deadline = st.deadline.unwrap().0.as_second() as f64;
    assert_eq!(deadline_metric(&name).await, Some(deadline));
    // Unpaused: answered as usual.
    Api::<herald::api::v1alpha1::DataSubjectRequest>::namespaced(
        writer,
        crate::common::CONTROL_NAMESPACE,
    )
    .patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"herald.dev/paused": "false"}}})),
    )
    .await
    .unwrap();
    wait_dsr(&admin, &name, "a Job once unpaused", |d| {
        d.status
            .as_ref()
            .is_some_and(|s| s.job.is_some() || s.receipt.is_some())
    })
    .await;
}

/// A breach paused when it is recorded used to write no status and no deadline series:
/// the 48-hour alert could not fire. Now no notice goes out while paused, but status
/// and the series are there, beside `Paused=True`; unpaused, the tenant is told.
#[tokio::test]
async fn a_paused_breach_keeps_its_deadline_series_and_status() {
    use herald::api::v1alpha1::BreachNotice;
    let admin = client().await;
    let op = operator().await;
    let tenant_name = unique("e2e-breach-paused");
    let (hook, _) = crate::dsr::live_tenant(&admin, &tenant_name).await;
    let name = unique("e2e-breach-paused");
    let aware =
        k8s_openapi::jiff::Timestamp::from_second(k8s_openapi::jiff::Timestamp::now().as_second())
            .unwrap();
    let bn: BreachNotice = serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "BreachNotice",
        "metadata": {"name": name, "namespace": crate::common::CONTROL_NAMESPACE,
                     "labels": {E2E_LABEL: "guard"}, "annotations": {"herald.dev/paused": "true"}},
        "spec": {
            "awareAt": aware.to_string(),
            "affectedTenants": {"names": [tenant_name]},
            "nature": "e2e: an access policy made an export bucket readable",
            "dataCategories": ["message content"],
            "approximateRecords": 10,
            "approximateDataSubjects": 3,
            "likelyConsequences": "message content may have been read",
            "measures": "the access policy was corrected",
            "contact": {"name": "Data Protection Office", "email": "dpo@platform.example"},
            "platformDataInvolved": false,
        }
    }))
    .unwrap();
    let api: Api<BreachNotice> = Api::namespaced(admin.clone(), crate::common::CONTROL_NAMESPACE);
    api.create(&PostParams::default(), &bn).await.unwrap();
    let paused = |b: Option<&BreachNotice>| {
        b.and_then(|b| b.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == types::PAUSED && c.status == "True")
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == types::TENANTS_NOTIFIED)
        })
    };
    tokio::time::timeout(
        WAIT,
        kube::runtime::wait::await_condition(api.clone(), &name, paused),
    )
    .await
    .expect("no status with Paused=True and TenantsNotified while paused")
    .unwrap();
    let series = |metric: &'static str| {
        let label = format!(r#"breach="{name}""#);
        async move {
            op.metrics()
                .await
                .lines()
                .find(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&label))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
        }
    };
    assert_eq!(
        series("herald_breach_notice_deadline_timestamp_seconds").await,
        Some((aware.as_second() + 48 * 3600) as f64)
    );
    assert_eq!(series("herald_breach_tenants_unnotified").await, Some(1.0));
    let notices = |hook: &crate::subprocessor::Hook| {
        hook.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| {
                serde_json::from_slice::<serde_json::Value>(&r.body)
                    .is_ok_and(|v| v["type"] == "breach.notice")
            })
            .count()
    };
    assert_eq!(notices(&hook), 0, "a notice went out while paused");
    // Unpaused: the tenant is told.
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"herald.dev/paused": "false"}}})),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + WAIT;
    while notices(&hook) == 0 {
        assert!(Instant::now() < deadline, "no notice once unpaused");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A BreachNotice is evidence: only the break-glass group may delete it.
    Api::<BreachNotice>::namespaced(
        crate::erasure::break_glass_client().await,
        crate::common::CONTROL_NAMESPACE,
    )
    .delete(&name, &DeleteParams::default())
    .await
    .unwrap();
}

/// A data-subject request whose data would go to a destination the outbound guard
/// refuses gets no Job: Stalled, reason DestinationRefused, the URL never named. The
/// destination's name is under a reserved top-level domain (never looked up).
#[tokio::test]
async fn a_request_whose_destination_the_guard_refuses_runs_no_job() {
    use crate::dsr::{condition, request, subject_secret, wait_dsr, whole_now};
    let admin = client().await;
    operator().await;
    apply_examples();
    let tenant_name = unique("e2e-dsr-dest");
    Api::<Tenant>::all(admin.clone())
        .create(
            &PostParams::default(),
            &exporting(&tenant_name, "https://upload.acme.example/x?sig=s3cr3t"),
        )
        .await
        .unwrap();
    wait_ready_active(&Api::all(admin.clone()), &tenant_name).await;
    let secret_name = format!("{tenant_name}-subject");
    subject_secret(
        &admin,
        &secret_name,
        &tenant_name,
        &format!("{tenant_name}-portability"),
        &format!("+31 6 {}", unique("id")),
    )
    .await;
    let writer = request_writer(&admin, "e2e-dsr-dest").await;
    let name = format!("{tenant_name}-portability");
    Api::<herald::api::v1alpha1::DataSubjectRequest>::namespaced(
        writer,
        crate::common::CONTROL_NAMESPACE,
    )
    .create(
        &PostParams::default(),
        &request(
            &name,
            &tenant_name,
            "Portability",
            whole_now(),
            &secret_name,
        ),
    )
    .await
    .unwrap();
    let d = wait_dsr(&admin, &name, "Stalled=True, DestinationRefused", |d| {
        condition(d, types::STALLED) == Some(("True".into(), reason::DESTINATION_REFUSED.into()))
    })
    .await;
    let st = d.status.unwrap();
    assert!(st.job.is_none(), "a Job was recorded: {st:?}");
    let text = serde_json::to_string(&st.conditions).unwrap();
    assert!(
        text.contains("unresolvable") && !text.contains("s3cr3t") && !text.contains("upload.acme"),
        "{text}"
    );
    let jobs = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(
        admin.clone(),
        &format!("tenant-{tenant_name}"),
    )
    .list(&Default::default())
    .await
    .unwrap();
    assert!(
        jobs.items
            .iter()
            .all(|j| j.labels().get("herald.dev/data-subject-request") != Some(&name)),
        "a Job runs for the request"
    );
    Api::<Tenant>::all(admin)
        .delete(&tenant_name, &DeleteParams::default())
        .await
        .ok();
}

/// A pause never holds residency: a paused tenant's sender pod on a node relabelled out
/// of the EU is evicted all the same, and `ResidencyCompliant` says so beside
/// `Paused=True`. The only test on eu-south-1 (its own kwok node, removed at the end).
#[tokio::test]
async fn a_paused_tenants_pod_outside_its_regions_is_still_evicted() {
    use k8s_openapi::api::core::v1::{Node, Pod};
    const REGION: &str = "topology.kubernetes.io/region";
    let admin = client().await;
    operator().await;
    apply_examples();
    let nodes: Api<Node> = Api::all(admin.clone());
    // Leftovers of an earlier, failed run would take the pod.
    crate::common::kubectl(&[
        "delete",
        "nodes",
        "-l",
        &format!("{E2E_LABEL}=guard-residency"),
        "--wait=false",
    ]);
    let name = unique("e2e-paused-res");
    let node_name = format!("{name}-n");
    let node: Node = serde_json::from_value(json!({
        "metadata": {
            "name": node_name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {"type": "kwok", E2E_LABEL: "guard-residency", "kubernetes.io/hostname": node_name,
                       "kubernetes.io/os": "linux", REGION: "eu-south-1", "topology.kubernetes.io/zone": "eu-south-1a"}
        },
        "status": {"allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"},
                   "capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"}}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let writer = tenant_writer(&admin, "e2e-paused-res").await;
    let tenants: Api<Tenant> = Api::all(writer);
    tenants
        .create(
            &PostParams::default(),
            &tenant(
                &name,
                None,
                json!({"spec": {"residency": {"regions": ["eu-south-1"]}}}),
            ),
        )
        .await
        .unwrap();
    wait_ready_active(&tenants, &name).await;
    tenants
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"herald.dev/paused": "true"}}})),
        )
        .await
        .unwrap();
    wait_for(
        &tenants,
        &name,
        condition_is(types::PAUSED, "True", reason::PAUSED),
        "Paused",
        WAIT,
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &format!("tenant-{name}"));
    let pod = pods
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/name=herald-sender"))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node_name.as_str())
        })
        .expect("no sender pod on the eu-south-1 node");
    nodes
        .patch(
            &node_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {REGION: "us-east-1"}}})),
        )
        .await
        .unwrap();
    tokio::time::timeout(
        WAIT,
        kube::runtime::wait::await_condition(
            pods.clone(),
            &pod.name_any(),
            kube::runtime::wait::conditions::is_deleted(&pod.uid().unwrap()),
        ),
    )
    .await
    .expect("the paused tenant's pod outside its regions was not evicted")
    .unwrap();
    let t = wait_for(
        &tenants,
        &name,
        condition_is(types::RESIDENCY_COMPLIANT, "False", reason::POD_EVICTED),
        "ResidencyCompliant=False PodEvicted while paused",
        WAIT,
    )
    .await;
    assert!(
        herald::conditions::is_true(&t.status.unwrap().conditions, types::PAUSED),
        "no longer paused"
    );
    tenants.delete(&name, &DeleteParams::default()).await.ok();
    nodes
        .delete(&node_name, &DeleteParams::default())
        .await
        .ok();
}
