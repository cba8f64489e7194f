//! The DataSubjectRequest controller: answers a data subject's request for a tenant
//! within its deadline (receivedAt + 1 month, + an extension), by a Job in the tenant's
//! namespace and regions with the platform's image and the purges' egress rules, then
//! a signed fulfilment receipt kept as evidence and delivered to the tenant, then the
//! deletion of the Secret holding the data subject's identifier.
//!
//! Pipeline, each step recorded in status before the next acts on it: the subject
//! Secret's label (a Secret not labelled for the request's tenant is never read) → its
//! identifier copied into a Secret of the tenant namespace for the Job to mount → the
//! Job, verified before its outcome counts ([`plan::job_runs`]) → the answer from its
//! exit code ([`decide::job_outcome`]) → the receipt (create-if-absent, signed) → its
//! delivery → the subject Secret and its copy deleted. A tenant erased or gone is
//! answered from what remains: `NothingHeld`, with its deletion receipt's reference.

pub mod decide;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::watcher::Config as WatcherConfig;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info, info_span, warn};

use self::decide::{Answer, JobOutcome};
use super::ownership::{self, Owned};
use super::tenant::build::{NO_REGION_ALLOWED, SENDER, namespace_name};
use super::tenant::data_plane::{self, DataPlane};
use super::tenant::erasure::{RECEIPT_FOR_LABEL, plan};
use super::{Context, Error, MANAGED_BY, PAUSED_ANNOTATION, TENANT_LABEL};
use crate::api::v1alpha1::conditions::reason;
use crate::api::v1alpha1::{DataSubjectRequest, DataSubjectRequestStatus, Tenant};

/// The controller label value in metrics.
const CONTROLLER: &str = "dsr";
/// Label on the request's Job and subject copy: the request's name.
pub const REQUEST_LABEL: &str = "herald.dev/data-subject-request";
const REQUEUE_ERROR: Duration = Duration::from_secs(15);
/// How often a running Job, a failed delivery or a blocked request is looked at again.
const REQUEUE_RUNNING: Duration = Duration::from_secs(5);
const REQUEUE_BLOCKED: Duration = Duration::from_secs(30);

/// Runs the DataSubjectRequest controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let api = Api::<DataSubjectRequest>::namespaced(client, &ctx.config.control_namespace);
    Controller::new(api, WatcherConfig::default())
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(super::log_queue_errors(CONTROLLER))
        .await;
}

async fn reconcile(dsr: Arc<DataSubjectRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = info_span!("reconcile", controller = CONTROLLER, request = %dsr.name_any());
    ctx.metrics
        .reconcile(
            CONTROLLER,
            super::catch_panic(reconcile_inner(&dsr, &ctx).instrument(span)),
        )
        .await
}

fn error_policy(dsr: Arc<DataSubjectRequest>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(CONTROLLER, error.category());
    warn!(request = %dsr.name_any(), category = error.category(), error = %crate::error_chain(error), "reconcile failed; retrying");
    Action::requeue(REQUEUE_ERROR)
}

/// What one pass found that the status says.
#[derive(Default)]
struct Found {
    /// Needs a person (Stalled): reason and message.
    blocked: Option<(&'static str, String)>,
    /// The Job failed without an answer and is run again.
    failing: Option<String>,
    /// Look again soon (a Job running, a delivery pending).
    soon: bool,
}

async fn reconcile_inner(cached: &DataSubjectRequest, ctx: &Context) -> Result<Action, Error> {
    let name = cached.name_any();
    let ns = ctx.config.control_namespace.clone();
    let api: Api<DataSubjectRequest> = Api::namespaced(ctx.client.clone(), &ns);
    // Read fresh: the steps this pass acts on were recorded by the previous one.
    let Some(dsr) = api
        .get_opt(&name)
        .await
        .map_err(Error::kube(format!("read DataSubjectRequest {name}")))?
    else {
        return Ok(Action::await_change());
    };
    let tenant_name = dsr.spec.tenant_ref.name.clone();
    if dsr.metadata.deletion_timestamp.is_some() {
        ctx.metrics.set_dsr_deadline(&name, &tenant_name, None);
        return Ok(Action::await_change());
    }
    if dsr
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v != "false")
    {
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let before = dsr.status.clone().unwrap_or_default();
    let mut st = before.clone();
    // The deadline is in status from the first write on.
    st.deadline = Some(Time(decide::deadline(&dsr)));
    let mut found = Found::default();
    let tenants: Api<Tenant> = Api::all(ctx.client.clone());
    let tenant = tenants
        .get_opt(&tenant_name)
        .await
        .map_err(Error::kube(format!("get Tenant {tenant_name}")))?;
    // Sharded like the tenant's bindings (`--tenant-selector`, see controller::shard):
    // one process answers a request, the one that serves its tenant.
    if !ctx.shard.serves(tenant.as_ref().map(|t| t.labels())) {
        return Ok(Action::requeue(super::resync(&name)));
    }

    if st.outcome.is_none() {
        answer(&dsr, tenant.as_ref(), &mut st, &mut found, ctx).await?;
        // The answer is recorded before the receipt claims it.
        save(ctx, &api, &dsr, &before, &st).await?;
    }
    // Evidence only a person can set right (a planted receipt, a signing key that is
    // not Herald's) is said in status (Stalled), never only in a log; nothing after the
    // receipt happens meanwhile.
    let mut evidence_blocked = false;
    if st.outcome.is_some() && st.receipt.is_none() {
        match write_receipt(ctx, &dsr, tenant.as_ref(), &st).await {
            Ok((receipt, digest)) => {
                st.receipt = Some(receipt);
                st.receipt_digest = Some(digest);
                save(ctx, &api, &dsr, &before, &st).await?;
            }
            Err(e) => {
                found.blocked = Some(e.evidence_blocked().ok_or(e)?);
                evidence_blocked = true;
            }
        }
    }
    if st.receipt.is_some() && !evidence_blocked {
        if st.receipt_delivered_at.is_none()
            && let Err(e) =
                deliver_receipt(ctx, &dsr, tenant.as_ref(), &mut st, &mut found, now).await
        {
            found.blocked = Some(e.evidence_blocked().ok_or(e)?);
            evidence_blocked = true;
        }
        if st.subject_secret_deleted_at.is_none() && !evidence_blocked {
            delete_subject(ctx, &dsr, &mut st).await?;
            info!(request = %name, "answered; the subject Secret is deleted");
        }
    }

    let status = decide::status(&dsr, st, found.blocked.clone(), found.failing.clone(), now);
    let deadline = decide::deadline(&dsr);
    ctx.metrics.set_dsr_deadline(
        &name,
        &tenant_name,
        status.receipt.is_none().then_some(deadline.as_second()),
    );
    let answered = status.receipt.is_some();
    save(ctx, &api, &dsr, &before, &status).await?;

    let mut wait = super::resync(&name);
    if found.soon || found.failing.is_some() {
        wait = wait.min(REQUEUE_RUNNING);
    } else if found.blocked.is_some() {
        wait = wait.min(REQUEUE_BLOCKED);
    }
    if !answered && now < deadline {
        // Back when the deadline passes: the state turns Overdue.
        wait = wait.min(super::until(now, deadline));
    }
    Ok(Action::requeue(wait))
}

/// Patches the status when it differs from what is stored; events on transitions.
async fn save(
    ctx: &Context,
    api: &Api<DataSubjectRequest>,
    dsr: &DataSubjectRequest,
    before: &DataSubjectRequestStatus,
    after: &DataSubjectRequestStatus,
) -> Result<(), Error> {
    crate::controller::status::publish(
        ctx,
        CONTROLLER,
        api,
        dsr,
        (before, &before.conditions),
        (after, &after.conditions),
    )
    .await
}

/// Establishes the answer into `st` (outcome, answeredAt, job, deletion receipt), or
/// what it waits for into `found`.
async fn answer(
    dsr: &DataSubjectRequest,
    tenant: Option<&Tenant>,
    st: &mut DataSubjectRequestStatus,
    found: &mut Found,
    ctx: &Context,
) -> Result<(), Error> {
    let tenant_name = &dsr.spec.tenant_ref.name;
    let erased = tenant.is_none_or(|t| {
        t.status
            .as_ref()
            .and_then(|s| s.erasure.as_ref())
            .is_some_and(|e| e.receipt.is_some())
    });
    if erased {
        // Nothing of the tenant remains but its deletion receipt (if it was erased by
        // Herald): that is the answer.
        st.outcome = Some(Answer::NothingHeld.as_str().into());
        st.answered_at = Some(Time(
            Timestamp::from_second(Timestamp::now().as_second())
                .unwrap_or_else(|_| Timestamp::now()),
        ));
        st.deletion_receipt = deletion_receipt(ctx, tenant_name).await?;
        return Ok(());
    }
    let Some(tenant) = tenant.filter(|_| !erased) else {
        return Ok(());
    };
    let secret_name = &dsr.spec.subject_secret_ref.name;
    // The label first, from metadata alone: another tenant's Secret is never read.
    match ownership::read_metadata(ctx, tenant_name, secret_name).await? {
        Owned::Yes(_) => {}
        Owned::Missing => {
            found.blocked = Some((
                reason::SUBJECT_SECRET_MISSING,
                format!("the subject Secret {secret_name} does not exist in the control namespace"),
            ));
            return Ok(());
        }
        Owned::NotOwned(why) => {
            found.blocked = Some((reason::SUBJECT_SECRET_NOT_FOR_TENANT, why));
            return Ok(());
        }
    }
    let destination = tenant
        .spec
        .contract
        .on_termination
        .as_ref()
        .and_then(|o| o.export.as_ref())
        .map(|e| e.url.clone());
    if dsr.spec.right.delivers_data() && destination.is_none() {
        found.blocked = Some((
            reason::NO_EXPORT_ENDPOINT,
            format!(
                "a {:?} request delivers the data subject's data to the tenant's export endpoint, and Tenant {tenant_name} has none (spec.contract.onTermination.export.url)",
                dsr.spec.right
            ),
        ));
        return Ok(());
    }
    let ns = namespace_name(tenant_name);
    let job_name = decide::job_name(dsr);
    let args = decide::job_args(tenant_name, dsr.spec.right, destination.as_deref());
    let image = data_plane::image(&ctx.config);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = jobs
        .get_opt(&job_name)
        .await
        .map_err(Error::kube(format!("get Job {job_name}")))?;
    match existing {
        // Only a Job Herald verified answers anything: the one it would create.
        Some(job) if job.metadata.deletion_timestamp.is_some() => {
            found.soon = true;
        }
        Some(job) if !plan::job_runs(&job, &image, &args) => {
            warn!(job = %job_name, "the Job's image or arguments are not the request's; replacing it");
            delete_job(ctx, &ns, &job_name).await?;
            found.soon = true;
        }
        Some(job) => match decide::job_outcome(&job) {
            JobOutcome::Running => found.soon = true,
            JobOutcome::Answered(a, at) => {
                st.outcome = Some(a.as_str().into());
                st.answered_at = Some(Time(at));
                st.job = Some(job_name.clone());
            }
            JobOutcome::Failed(why) => {
                warn!(job = %job_name, failure = %why, "the request's Job failed without an answer; running it again");
                delete_job(ctx, &ns, &job_name).await?;
                found.failing = Some(why);
            }
        },
        None => {
            let Owned::Yes(secret) = ownership::read(ctx, tenant_name, secret_name).await? else {
                found.soon = true; // changed since the look at its label
                return Ok(());
            };
            let Some(identifier) = secret
                .data
                .as_ref()
                .and_then(|d| d.get(decide::SUBJECT_KEY))
                .cloned()
            else {
                found.blocked = Some((
                    reason::SUBJECT_SECRET_MISSING,
                    format!(
                        "the subject Secret {secret_name} has no key {}",
                        decide::SUBJECT_KEY
                    ),
                ));
                return Ok(());
            };
            let allowed = crate::controller::tenant::decide::decide(
                tenant,
                &ctx.config,
                crate::retention::Periods::default(),
                false,
                Timestamp::now(),
            )
            .allowed_regions;
            let home = DataPlane {
                image,
                allowed_regions: allowed,
                no_region_key: NO_REGION_ALLOWED.to_owned(),
                service_account: SENDER.to_owned(),
            };
            if create_job(ctx, dsr, tenant, &home, &job_name, &args, identifier).await? {
                st.job = Some(job_name);
            }
            found.soon = true;
        }
    }
    Ok(())
}

/// Creates the subject copy (the identifier, as a Secret of the tenant namespace the
/// Job mounts) and the Job: the platform's image, the tenant's regions, the data-plane
/// label the purges' egress policy selects. False while the tenant namespace does not
/// exist yet (a Tenant just created): the stack builds it.
async fn create_job(
    ctx: &Context,
    dsr: &DataSubjectRequest,
    tenant: &Tenant,
    home: &DataPlane,
    name: &str,
    args: &[String],
    identifier: k8s_openapi::ByteString,
) -> Result<bool, Error> {
    let tenant_name = tenant.name_any();
    let ns = namespace_name(&tenant_name);
    let owner = tenant.controller_owner_ref(&()).ok_or(Error::MissingName)?;
    let labels = BTreeMap::from([
        (TENANT_LABEL.to_owned(), tenant_name.clone()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGED_BY.to_owned(),
        ),
        (REQUEST_LABEL.to_owned(), dsr.name_any()),
    ]);
    let copy: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": [owner]},
        "immutable": true,
        "data": {decide::SUBJECT_KEY: identifier},
    }))
    .map_err(|source| Error::Build {
        what: "subject copy",
        source,
    })?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    match secrets.create(&PostParams::default(), &copy).await {
        Ok(_) => ctx.metrics.wrote(CONTROLLER, "Secret"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(false),
        Err(e) => return Err(Error::kube(format!("create the subject copy {name}"))(e)),
    }
    let pod_labels = DataPlane::pod_labels(&labels, "data-subject-request");
    let mut pod = home.dsr_pod(args, name);
    // A failed pod is replaced by a new one (its exit code read from the Job's condition).
    pod["restartPolicy"] = json!("Never");
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "labels": pod_labels, "ownerReferences": [owner]},
        "spec": {
            "backoffLimit": 3,
            "podFailurePolicy": decide::pod_failure_policy(),
            "template": {"metadata": {"labels": pod_labels}, "spec": pod}
        }
    }))
    .map_err(|source| Error::Build { what: "job", source })?;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    match jobs.create(&PostParams::default(), &job).await {
        Ok(_) => ctx.metrics.wrote(CONTROLLER, "Job"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(Error::kube(format!("create Job {name}"))(e)),
    }
    info!(job = %name, namespace = %ns, "running the data-subject request");
    Ok(true)
}

/// Deletes a Job and its pods (already gone is fine).
async fn delete_job(ctx: &Context, ns: &str, name: &str) -> Result<(), Error> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    match jobs.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            ctx.metrics.wrote(CONTROLLER, "Job");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube(format!("delete Job {name}"))(e)),
    }
}

/// The erased tenant's deletion receipt, by its label.
async fn deletion_receipt(ctx: &Context, tenant: &str) -> Result<Option<String>, Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.config.control_namespace);
    let list = api
        .list_metadata(&ListParams::default().labels(&format!(
            "{RECEIPT_FOR_LABEL}={tenant},app.kubernetes.io/component=deletion-receipt"
        )))
        .await
        .map_err(Error::kube(format!(
            "list the deletion receipts of {tenant}"
        )))?;
    Ok(list.items.into_iter().find_map(|m| m.metadata.name))
}

/// Writes the fulfilment receipt as an immutable, signed ConfigMap labelled like the
/// deletion receipts (so the evidence policy refuses its deletion); create-if-absent.
async fn write_receipt(
    ctx: &Context,
    dsr: &DataSubjectRequest,
    tenant: Option<&Tenant>,
    st: &DataSubjectRequestStatus,
) -> Result<(String, String), Error> {
    let answer = match st.outcome.as_deref() {
        Some("Fulfilled") => Answer::Fulfilled,
        Some("SubjectNotIdentified") => Answer::SubjectNotIdentified,
        _ => Answer::NothingHeld,
    };
    let destination = tenant
        .and_then(|t| t.spec.contract.on_termination.as_ref())
        .and_then(|o| o.export.as_ref())
        .map(|e| e.url.as_str());
    let receipt = decide::receipt(
        dsr,
        &decide::Answered {
            answer,
            answered_at: st.answered_at.as_ref().map_or_else(Timestamp::now, |t| t.0),
            tenant_uid: tenant.and_then(|t| t.metadata.uid.clone()),
            job: st.job.as_deref(),
            delivered_to: destination,
            deletion_receipt: st.deletion_receipt.as_deref(),
        },
    );
    let (body, digest) = decide::seal(&receipt).map_err(|source| Error::Build {
        what: "receipt",
        source,
    })?;
    let name = decide::receipt_name(dsr);
    let labels = json!({RECEIPT_FOR_LABEL: dsr.spec.tenant_ref.name, "app.kubernetes.io/managed-by": MANAGED_BY,
                        "app.kubernetes.io/component": "fulfilment-receipt", REQUEST_LABEL: dsr.name_any()});
    let digest = super::receipt::create_signed(
        ctx,
        CONTROLLER,
        &name,
        labels,
        &body,
        &digest,
        "fulfilment receipt",
    )
    .await?;
    Ok((name, digest))
}

/// Sends the stored receipt, signed (Standard Webhooks), to the tenant's notification
/// endpoint; a tenant without one (or gone) is said in `found` and not retried.
async fn deliver_receipt(
    ctx: &Context,
    dsr: &DataSubjectRequest,
    tenant: Option<&Tenant>,
    st: &mut DataSubjectRequestStatus,
    found: &mut Found,
    now: Timestamp,
) -> Result<(), Error> {
    let tenant_name = &dsr.spec.tenant_ref.name;
    let Some(n) = tenant.and_then(|t| t.spec.notifications.as_ref()) else {
        found.blocked = Some((
            reason::NO_NOTIFICATION_ENDPOINT,
            format!(
                "answered; Tenant {tenant_name} has no notification endpoint to deliver the receipt to (it is kept in the control namespace)"
            ),
        ));
        return Ok(());
    };
    let receipt = st.receipt.clone().unwrap_or_default();
    // Only the receipt Herald wrote (and recorded, for requests answered since the
    // digest is recorded) is delivered.
    let (body, digest) = super::receipt::read_own(
        ctx,
        CONTROLLER,
        &receipt,
        st.receipt_digest.as_deref(),
        "fulfilment receipt",
    )
    .await?;
    match super::subprocessor::signing_secret(ctx, tenant_name, &n.signing_secret_ref).await? {
        Err(why) => {
            warn!(failure = %why, "fulfilment receipt not sent: the signing secret is unusable");
            found.soon = true;
        }
        Ok(key) => {
            match crate::notify::send_signed(
                &ctx.http,
                &n.webhook_url,
                &key,
                &digest,
                body.as_bytes(),
                now,
            )
            .await
            {
                Ok(()) => {
                    st.receipt_delivered_at =
                        Some(Time(Timestamp::from_second(now.as_second()).unwrap_or(now)))
                }
                Err(e) => {
                    warn!(error = %e, "fulfilment receipt not acknowledged; retrying");
                    found.soon = true;
                }
            }
        }
    }
    Ok(())
}

/// Deletes the subject Secret (only if it is labelled for the request's tenant: one of
/// another tenant's is never touched) and its copy in the tenant namespace.
async fn delete_subject(
    ctx: &Context,
    dsr: &DataSubjectRequest,
    st: &mut DataSubjectRequestStatus,
) -> Result<(), Error> {
    let tenant_name = &dsr.spec.tenant_ref.name;
    let secret = &dsr.spec.subject_secret_ref.name;
    if let Owned::Yes(_) = ownership::read_metadata(ctx, tenant_name, secret).await? {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.config.control_namespace);
        match api.delete(secret, &DeleteParams::default()).await {
            Ok(_) => ctx.metrics.wrote(CONTROLLER, "Secret"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(Error::kube(format!("delete the subject Secret {secret}"))(
                    e,
                ));
            }
        }
    }
    if st.job.is_some() {
        let copy = decide::job_name(dsr);
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace_name(tenant_name));
        match api.delete(&copy, &DeleteParams::default()).await {
            Ok(_) => ctx.metrics.wrote(CONTROLLER, "Secret"),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 403 => {}
            Err(e) => return Err(Error::kube(format!("delete the subject copy {copy}"))(e)),
        }
    }
    st.subject_secret_deleted_at = Some(Time(
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now()),
    ));
    Ok(())
}
