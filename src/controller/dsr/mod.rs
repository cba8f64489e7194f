//! The DataSubjectRequest controller: answers a data subject's request for a tenant
//! within its deadline (receivedAt + 1 month, + an extension), by a Job in the tenant's
//! namespace and regions with the platform's image and the purges' egress rules, then
//! a signed fulfilment receipt kept as evidence and delivered to the tenant, then the
//! deletion of the Secret holding the data subject's identifier.
//!
//! Pipeline, each step recorded in status before the next acts on it: the subject
//! Secret's labels (a Secret not labelled for the request's tenant and for the request
//! itself is never read, nor deleted) → its identifier copied into a Secret of the
//! tenant namespace for the Job to mount → the Job, verified before its outcome counts
//! ([`plan::job_runs`]) → the answer from its exit code ([`decide::job_outcome`]) → the
//! receipt (create-if-absent, signed) → its delivery → the subject Secret and its copy
//! deleted. A tenant erased is answered from what remains: `NothingHeld`, with its
//! deletion receipt's reference, once that receipt verifies with Herald's key; a Tenant
//! that does not exist without one is `Stalled` (`TenantNotFound`) and nothing of the
//! request is touched.
//!
//! The request carries a finalizer ([`FINALIZER`]): deleting one unanswered removes its
//! Job and subject copy and leaves a signed receipt with outcome `Withdrawn`, so a
//! request never disappears without a record. An extension is judged once, when Herald
//! first sees it ([`decide::record_extension`]); a receivedAt in the future counts no
//! deadline.

pub mod decide;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::watcher::Config as WatcherConfig;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info, info_span, warn};

use self::decide::{Answer, JobOutcome};
use super::tenant::build::{NO_REGION_ALLOWED, SENDER, namespace_name};
use super::tenant::data_plane::{self, DataPlane};
use super::tenant::erasure::{RECEIPT_FOR_LABEL, plan};
use super::{Context, Error, MANAGED_BY, TENANT_LABEL};
use crate::api::v1alpha1::conditions::reason;
use crate::api::v1alpha1::{DataSubjectRequest, DataSubjectRequestStatus, Tenant};

/// The controller label value in metrics.
const CONTROLLER: &str = "dsr";
/// Label on the request's Job, subject copy and receipt, and on the subject Secret its
/// author makes: the request's name.
pub const REQUEST_LABEL: &str = "herald.dev/data-subject-request";
/// The request's finalizer: a request deleted unanswered leaves a withdrawal receipt and
/// no Job or subject copy behind.
pub const FINALIZER: &str = "herald.dev/data-subject-request";
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
    let now = Timestamp::now();
    if dsr.metadata.deletion_timestamp.is_some() {
        ctx.metrics.set_dsr_deadline(&name, &tenant_name, None);
        if !super::finalizer::has(&dsr, FINALIZER) {
            return Ok(Action::await_change());
        }
        return withdraw(ctx, &api, &dsr, tenant.as_ref(), now).await;
    }
    // Before anything else: a request deleted from here on leaves its record.
    if super::finalizer::ensure(&api, &dsr, FINALIZER, ctx, CONTROLLER).await? {
        return Ok(Action::await_change());
    }
    // A pause holds the answer back (no Job, no receipt, no deletion), never the status
    // and the deadline series: the one-month alert must fire whether or not Herald acts.
    let paused = super::pause::is_paused(dsr.annotations());
    let before = dsr.status.clone().unwrap_or_default();
    let mut st = before.clone();
    // The extension is judged when first seen, before the deadline counts it.
    decide::record_extension(&dsr, &mut st, now);
    let mut found = Found::default();
    if decide::received_in_future(&dsr, now) {
        // Nothing runs and no deadline is counted from a date that has not come.
        found.blocked = Some((
            reason::RECEIVED_AT_IN_FUTURE,
            format!(
                "receivedAt {} is after the request was made (more than {} minutes of clock skew): a request cannot be received after it is recorded, and receivedAt is immutable; delete this request and create it with the time it was received",
                dsr.spec.received_at.0,
                decide::CLOCK_SKEW.as_mins()
            ),
        ));
        let status = decide::status(&dsr, st, found.blocked, None, now);
        ctx.metrics.set_dsr_deadline(&name, &tenant_name, None);
        save(ctx, &api, &dsr, &before, &status).await?;
        return Ok(Action::requeue(super::resync(&name)));
    }
    // The deadline is in status from the first write on.
    st.deadline = Some(Time(decide::deadline(&dsr, &st)));

    if st.outcome.is_none() && !paused {
        answer(&dsr, tenant.as_ref(), &mut st, &mut found, ctx).await?;
        // The answer is recorded before the receipt claims it.
        save(ctx, &api, &dsr, &before, &st).await?;
    }
    // Evidence only a person can set right (a planted receipt, a signing key that is
    // not Herald's) is said in status (Stalled), never only in a log; nothing after the
    // receipt happens meanwhile.
    let mut evidence_blocked = false;
    if !paused && st.outcome.is_some() && st.receipt.is_none() {
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
    if !paused && st.receipt.is_some() && !evidence_blocked {
        if st.receipt_delivered_at.is_none()
            && let Err(e) =
                deliver_receipt(ctx, &dsr, tenant.as_ref(), &mut st, &mut found, now).await
        {
            found.blocked = Some(e.evidence_blocked().ok_or(e)?);
            evidence_blocked = true;
        }
        if st.subject_secret_deleted_at.is_none() && !evidence_blocked {
            delete_subject(ctx, &dsr, &mut st, &mut found).await?;
        }
    }

    let mut status = decide::status(&dsr, st, found.blocked.clone(), found.failing.clone(), now);
    if paused {
        status.conditions = super::pause::with_paused(
            status.conditions,
            &before.conditions,
            "the request is not answered",
            dsr.metadata.generation,
            now,
        );
    }
    let deadline = decide::deadline(&dsr, &status);
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
    let erasure = tenant.and_then(|t| t.status.as_ref()?.erasure.as_ref());
    let erased_receipt = erasure.and_then(|e| e.receipt.as_deref());
    if tenant.is_none() || erased_receipt.is_some() {
        // Nothing of the tenant remains but its deletion receipt: that is the answer,
        // once the receipt shows Herald erased this tenant. Without one the Tenant may
        // never have existed (a typo) or not exist yet (applied before its Tenant): the
        // request waits, and its subject Secret is neither read nor deleted.
        let known = erased_receipt.map(|r| (r, erasure.and_then(|e| e.receipt_digest.as_deref())));
        match verified_deletion_receipt(ctx, tenant_name, known).await {
            Ok(Ok(receipt)) => {
                st.outcome = Some(Answer::NothingHeld.as_str().into());
                st.answered_at = Some(Time(
                    Timestamp::from_second(Timestamp::now().as_second())
                        .unwrap_or_else(|_| Timestamp::now()),
                ));
                st.deletion_receipt = Some(receipt);
            }
            Ok(Err(why)) if tenant.is_none() => {
                found.blocked = Some((
                    reason::TENANT_NOT_FOUND,
                    format!(
                        "Tenant {tenant_name} does not exist, and no deletion receipt signed by Herald shows it was erased ({why}): check spec.tenantRef (this request cannot be changed: delete it and create it anew), or create the Tenant; the subject Secret is kept and not read"
                    ),
                ));
            }
            Ok(Err(why)) => {
                found.blocked = Some((
                    reason::RECEIPT_CONFLICT,
                    format!(
                        "Tenant {tenant_name} is erased, but its deletion receipt does not show it ({why}): the request is not answered with it; the subject Secret is kept and not read"
                    ),
                ));
            }
            Err(e) => found.blocked = Some(e.evidence_blocked().ok_or(e)?),
        }
        return Ok(());
    }
    let Some(tenant) = tenant else {
        return Ok(());
    };
    let secret_name = &dsr.spec.subject_secret_ref.name;
    let control = &ctx.config.control_namespace;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), control);
    // The labels first, from metadata alone: a Secret that is not this request's
    // subject Secret (another tenant's, the tenant's signing Secret) is never read.
    let Some(meta) = secrets
        .get_metadata_opt(secret_name)
        .await
        .map_err(Error::kube(format!("get Secret {secret_name}")))?
    else {
        found.blocked = Some((
            reason::SUBJECT_SECRET_MISSING,
            format!("the subject Secret {secret_name} does not exist in the control namespace"),
        ));
        return Ok(());
    };
    let request = dsr.name_any();
    if let Some(problem) = decide::subject_secret_problem(
        control,
        secret_name,
        meta.metadata.labels.as_ref(),
        tenant_name,
        &request,
    ) {
        found.blocked = Some(problem);
        return Ok(());
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
            let identifier = match read_subject(ctx, dsr).await? {
                Subject::Is(secret) => secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(decide::SUBJECT_KEY))
                    .cloned(),
                Subject::Gone => None,
                Subject::Not(problem) => {
                    found.blocked = Some(problem);
                    return Ok(());
                }
            };
            let Some(identifier) = identifier else {
                found.soon = true; // changed since the look at its labels
                return Ok(());
            };
            // Data leaving the cluster goes only to a destination the outbound guard
            // approved, and the Job's egress allows only that (tenant::destination).
            let approved = match destination
                .as_deref()
                .filter(|_| dsr.spec.right.delivers_data())
            {
                Some(url) => {
                    match crate::outbound::approve_destination(ctx.http.policy(), url).await {
                        Ok(a) => Some(a),
                        Err(refused) => {
                            found.blocked = Some((
                                reason::DESTINATION_REFUSED,
                                crate::controller::tenant::destination::refusal_message(
                                    "the tenant's export endpoint (where this request's data goes)",
                                    refused,
                                ),
                            ));
                            return Ok(());
                        }
                    }
                }
                None => None,
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
            if create_job(
                ctx,
                dsr,
                tenant,
                &home,
                &job_name,
                &args,
                identifier,
                approved.as_ref(),
            )
            .await?
            {
                st.job = Some(job_name);
            }
            found.soon = true;
        }
    }
    Ok(())
}

/// What the request's subject Secret turned out to be.
enum Subject {
    /// This request's subject Secret (labels and key checked), read.
    Is(Box<Secret>),
    /// No such Secret.
    Gone,
    /// Not a subject Secret: left alone, with why.
    Not((&'static str, String)),
}

/// Reads the request's subject Secret, only once its labels say it is one
/// ([`decide::subject_secret_problem`], from metadata), and checks its key.
async fn read_subject(ctx: &Context, dsr: &DataSubjectRequest) -> Result<Subject, Error> {
    let control = &ctx.config.control_namespace;
    let name = &dsr.spec.subject_secret_ref.name;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), control);
    let Some(meta) = api
        .get_metadata_opt(name)
        .await
        .map_err(Error::kube(format!("get Secret {name}")))?
    else {
        return Ok(Subject::Gone);
    };
    let tenant = &dsr.spec.tenant_ref.name;
    let request = dsr.name_any();
    let labels = meta.metadata.labels.as_ref();
    if let Some(p) = decide::subject_secret_problem(control, name, labels, tenant, &request) {
        return Ok(Subject::Not(p));
    }
    let Some(secret) = api
        .get_opt(name)
        .await
        .map_err(Error::kube(format!("get Secret {name}")))?
    else {
        return Ok(Subject::Gone);
    };
    // Labels again on what was read: it may have been replaced in between.
    let labels = secret.metadata.labels.as_ref();
    if let Some(p) = decide::subject_secret_problem(control, name, labels, tenant, &request)
        .or_else(|| decide::subject_key_problem(control, name, secret.data.as_ref()))
    {
        return Ok(Subject::Not(p));
    }
    Ok(Subject::Is(Box::new(secret)))
}

/// Creates the subject copy (the identifier, as a Secret of the tenant namespace the
/// Job mounts) and the Job: the platform's image, the tenant's regions, the data-plane
/// label the purges' egress policy selects. False while the tenant namespace does not
/// exist yet (a Tenant just created): the stack builds it.
// One over the lint's seven since the approved destination joined them; a struct for
// the one call site would only rename the same eight.
#[allow(clippy::too_many_arguments)]
async fn create_job(
    ctx: &Context,
    dsr: &DataSubjectRequest,
    tenant: &Tenant,
    home: &DataPlane,
    name: &str,
    args: &[String],
    identifier: k8s_openapi::ByteString,
    approved: Option<&crate::outbound::Approved>,
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
    let pod_labels = match approved {
        Some(_) => crate::controller::tenant::destination::pod_labels(
            &labels,
            "data-subject-request",
            name,
        ),
        None => DataPlane::pod_labels(&labels, "data-subject-request"),
    };
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
    let created = match jobs.create(&PostParams::default(), &job).await {
        Ok(created) => {
            ctx.metrics.wrote(CONTROLLER, "Job");
            Some(created)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => jobs
            .get_opt(name)
            .await
            .map_err(Error::kube(format!("get Job {name}")))?,
        Err(e) => return Err(Error::kube(format!("create Job {name}"))(e)),
    };
    if let (Some(approved), Some(created)) = (approved, &created) {
        crate::controller::tenant::destination::apply_policy(
            ctx, CONTROLLER, &ns, created, approved,
        )
        .await?;
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

/// A deletion receipt of `tenant` that Herald signed: its name, or why there is none
/// ([`decide::deletion_receipt_problem`]). `known`: the receipt the Tenant's status
/// names, with the digest it recorded, while the Tenant exists; otherwise every
/// deletion receipt labelled for the tenant is looked at, each held to the digest
/// Herald annotated it with.
async fn verified_deletion_receipt(
    ctx: &Context,
    tenant: &str,
    known: Option<(&str, Option<&str>)>,
) -> Result<Result<String, String>, Error> {
    let key = super::receipt::signing_key(ctx).await?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.config.control_namespace);
    let list = api
        .list(&ListParams::default().labels(&format!(
            "{RECEIPT_FOR_LABEL}={tenant},app.kubernetes.io/component=deletion-receipt"
        )))
        .await
        .map_err(Error::kube(format!(
            "list the deletion receipts of {tenant}"
        )))?;
    let mut problems = Vec::new();
    for cm in list.items {
        let name = cm.name_any();
        if known.is_some_and(|(k, _)| k != name) {
            continue;
        }
        let recorded = match known {
            Some((_, digest)) => digest.map(str::to_owned),
            None => cm
                .annotations()
                .get(super::receipt::DIGEST_ANNOTATION)
                .cloned(),
        };
        let data = cm.data.clone().unwrap_or_default();
        match decide::deletion_receipt_problem(&data, recorded.as_deref(), key, tenant) {
            None => return Ok(Ok(name)),
            Some(why) => problems.push(format!("{name}: {why}")),
        }
    }
    Ok(Err(if problems.is_empty() {
        match known {
            Some((k, _)) => format!("its deletion receipt {k} was not found"),
            None => "none was found".to_owned(),
        }
    } else {
        problems.join("; ")
    }))
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
        Some(crate::evidence::WITHDRAWN) => Answer::Withdrawn,
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
            extension_accepted: st.extension_accepted,
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

/// Deletes the subject Secret, only if it is this request's subject Secret (labelled
/// for the tenant and the request, with the key `subject`; anything else is left alone
/// and said in `found`), by its UID and resourceVersion as read (a Secret swapped in
/// since is not deleted), and its copy in the tenant namespace.
async fn delete_subject(
    ctx: &Context,
    dsr: &DataSubjectRequest,
    st: &mut DataSubjectRequestStatus,
    found: &mut Found,
) -> Result<(), Error> {
    let secret = &dsr.spec.subject_secret_ref.name;
    match read_subject(ctx, dsr).await? {
        Subject::Gone => {}
        Subject::Not(problem) => {
            // Answered all the same; what this Secret is, a person decides.
            found.blocked = Some(problem);
            return Ok(());
        }
        Subject::Is(s) => {
            let api: Api<Secret> =
                Api::namespaced(ctx.client.clone(), &ctx.config.control_namespace);
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: s.metadata.uid.clone(),
                    resource_version: s.metadata.resource_version.clone(),
                }),
                ..DeleteParams::default()
            };
            match api.delete(secret, &dp).await {
                Ok(_) => ctx.metrics.wrote(CONTROLLER, "Secret"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                // Changed since it was read: looked at again.
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    found.soon = true;
                    return Ok(());
                }
                Err(e) => {
                    return Err(Error::kube(format!("delete the subject Secret {secret}"))(
                        e,
                    ));
                }
            }
        }
    }
    if st.job.is_some() {
        delete_copy(ctx, dsr).await?;
    }
    st.subject_secret_deleted_at = Some(Time(
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now()),
    ));
    info!(request = %dsr.name_any(), "answered; the subject Secret is deleted");
    Ok(())
}

/// Deletes the request's copy of the subject Secret in the tenant namespace (gone, or
/// the namespace with it, is fine).
async fn delete_copy(ctx: &Context, dsr: &DataSubjectRequest) -> Result<(), Error> {
    let copy = decide::job_name(dsr);
    let ns = namespace_name(&dsr.spec.tenant_ref.name);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    match api.delete(&copy, &DeleteParams::default()).await {
        Ok(_) => ctx.metrics.wrote(CONTROLLER, "Secret"),
        // 403: the namespace (and the operator's binding in it) is gone.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 403 => {}
        Err(e) => return Err(Error::kube(format!("delete the subject copy {copy}"))(e)),
    }
    Ok(())
}

/// A request being deleted: its Job and subject copy go, and one never answered leaves
/// a signed receipt with outcome `Withdrawn` (one answered whose receipt was not
/// written yet gets that receipt instead), kept like every receipt and not delivered
/// (the request is going away). Then the finalizer is released. A request whose
/// receivedAt was in the future never counted and gets no receipt. The subject Secret
/// in the control namespace is its author's, and stays.
async fn withdraw(
    ctx: &Context,
    api: &Api<DataSubjectRequest>,
    dsr: &DataSubjectRequest,
    tenant: Option<&Tenant>,
    now: Timestamp,
) -> Result<Action, Error> {
    let ns = namespace_name(&dsr.spec.tenant_ref.name);
    let job = decide::job_name(dsr);
    match delete_job(ctx, &ns, &job).await {
        // 403: the namespace (and the operator's binding in it) is gone.
        Err(Error::Kube {
            source: kube::Error::Api(s),
            ..
        }) if s.code == 403 => {}
        other => other?,
    }
    delete_copy(ctx, dsr).await?;
    let before = dsr.status.clone().unwrap_or_default();
    let mut st = before.clone();
    if st.receipt.is_none() && !decide::received_in_future(dsr, now) {
        if st.outcome.is_none() {
            let at = dsr
                .metadata
                .deletion_timestamp
                .as_ref()
                .map_or(now, |t| t.0);
            st.outcome = Some(Answer::Withdrawn.as_str().into());
            st.answered_at = Some(Time(Timestamp::from_second(at.as_second()).unwrap_or(at)));
        }
        match write_receipt(ctx, dsr, tenant, &st).await {
            Ok((receipt, digest)) => {
                st.receipt = Some(receipt);
                st.receipt_digest = Some(digest);
                save(ctx, api, dsr, &before, &st).await?;
                info!(request = %dsr.name_any(), outcome = st.outcome.as_deref().unwrap_or_default(), "deleted; its receipt is written and its Job and subject copy removed");
            }
            Err(e) => {
                // Held until the receipt can be written: a person must set the
                // evidence right (Stalled says what), the record is not skipped.
                let blocked = e.evidence_blocked().ok_or(e)?;
                let status = decide::status(dsr, st, Some(blocked), None, now);
                save(ctx, api, dsr, &before, &status).await?;
                return Ok(Action::requeue(REQUEUE_BLOCKED));
            }
        }
    }
    super::finalizer::release(api, dsr, FINALIZER, ctx, CONTROLLER).await?;
    Ok(Action::await_change())
}
