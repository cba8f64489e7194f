//! Termination and erasure of a tenant (commitments C5–C7): senders stop at once (the
//! stack is applied with no replicas), the optional export runs, and by
//! `terminatedAt + deleteWithinDays − margin` erasure begins: external purges, an
//! inventory of everything labelled for the tenant (types discovered through the API),
//! deletion, verification that nothing remains, an immutable deletion receipt in the
//! operator's namespace, and its signed delivery to the customer.
//!
//! What erasure may delete is bounded ([`scope`]): the tenant namespace only if Herald
//! created it, no other cluster-scoped object, in the control namespace only the
//! tenant's Secrets, and elsewhere only the kinds and namespaces the operator
//! configuration declares (`erasure.scope`, which the chart's RBAC is rendered from);
//! what it finds and leaves is recorded in `status.erasure.notErased` and the receipt,
//! for a person to decide, and scope kinds it could not list in `unverifiedKinds`.
//!
//! Restart safety: each step records its outcome in `status.erasure` before the next
//! step acts on it, and every step is idempotent (create-if-absent, delete-if-present,
//! a deterministic receipt name), so a killed operator resumes and writes one receipt.

pub mod plan;
pub mod scope;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

pub use self::plan::Delivery;
use self::plan::Timing;
use super::bindings::channel_name;
use super::build::namespace_name;
use super::data_plane::DataPlane;
use crate::api::v1alpha1::{
    ChannelBinding, ErasureStatus, ExportStatus, NotErasedObject, PurgeRecord, RecordRetention,
    Tenant, TerminationAction,
};
use crate::controller::{Context, Error, TENANT_LABEL, finalizer};
use crate::evidence;
use crate::retention::Periods;

/// The finalizer that makes deleting a Tenant run erasure (and write its receipt)
/// before the object disappears.
pub const FINALIZER: &str = "herald.dev/erasure";
/// Label on deletion receipts: which tenant they are for. Deliberately not the tenant
/// label, which erasure deletes by.
pub const RECEIPT_FOR_LABEL: &str = "herald.dev/receipt-for";
/// The platform's own stores, purged like a channel.
const PLATFORM_TARGET: &str = "platform";

/// What one pass of the pipeline decided.
pub struct Progress {
    /// The erasure status to persist.
    pub status: ErasureStatus,
    /// Whether the stack (with no senders) must still be applied: until erasure begins.
    pub keep_stack: bool,
    /// Whether everything is done (receipt written and, where possible, delivered).
    pub done: bool,
    /// When to look again.
    pub requeue: Duration,
    /// A one-line account of where it stands, for conditions and events.
    pub note: String,
    /// Where the signed receipt's delivery to the customer stands.
    pub delivery: Delivery,
}

/// Adds the erasure finalizer to a live Tenant that lacks it (a write only once);
/// whether it wrote (see [`finalizer::ensure`]).
pub async fn ensure_finalizer(tenant: &Tenant, ctx: &Context) -> Result<bool, Error> {
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    finalizer::ensure(&api, tenant, FINALIZER, ctx, "tenant").await
}

/// Removes the erasure finalizer (the Tenant then disappears).
pub async fn release(tenant: &Tenant, ctx: &Context) -> Result<(), Error> {
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    finalizer::release(&api, tenant, FINALIZER, ctx, "tenant").await
}

/// What erasure's Jobs need to run in: the tenant namespace and the ServiceAccount of
/// their pods, as the stack builds them. Erasure rebuilds them when they are missing (a
/// Tenant deleted before Herald built its stack, or its namespace deleted by hand): the
/// purge at the providers and in the stores runs whatever became of the stack.
pub struct JobHome<'a> {
    pub namespace: &'a Namespace,
    pub service_account: &'a ServiceAccount,
    /// The platform's image, the tenant's regions and the restricted pod settings.
    pub data_plane: &'a DataPlane,
    /// The namespace named `tenant-<name>` exists but Herald did not create it: no Job
    /// runs in it, and neither it nor anything in it is deleted (they are reported in
    /// `notErased`).
    pub foreign: Option<&'a NotErasedObject>,
}

/// Where one of erasure's Jobs stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobState {
    Running,
    Succeeded,
    /// Out of retries (its backoffLimit).
    Failed,
    /// Not created: its namespace is being deleted (by hand, or by GC). It is created
    /// once the namespace is gone, in a rebuilt one.
    NamespaceTerminating,
    /// A Job of that name whose image or arguments are not what erasure asks for (made
    /// by someone else, or for other targets) was deleted, or is still going: its
    /// outcome counts for nothing, and Herald's own is created once it is gone.
    Replaced,
}

/// Runs the next steps of the pipeline for a terminated or deleted tenant.
pub async fn advance(
    tenant: &Tenant,
    timing: &Timing,
    periods: &Periods,
    records: Option<&RecordRetention>,
    home: &JobHome<'_>,
    ctx: &Context,
    now: Timestamp,
) -> Result<Progress, Error> {
    let mut es = tenant
        .status
        .as_ref()
        .and_then(|s| s.erasure.clone())
        .unwrap_or_default();
    let name = tenant.name_any();
    let ns = namespace_name(&name);
    let keep = tenant
        .spec
        .notifications
        .as_ref()
        .map(|n| n.signing_secret_ref.name.as_str());
    let progress =
        |es: ErasureStatus, keep_stack: bool, requeue: Duration, note: String| Progress {
            status: es,
            keep_stack,
            done: false,
            requeue,
            note,
            delivery: Delivery::Delivered,
        };
    if es.started_at.is_none() {
        es.started_at = Some(Time(now));
    }
    // Revocation is the bindings' work, retried by them: erasure only reports how it
    // fails, on every pass (even after the receipt), and never waits for it.
    es.failing_steps = plan::with_revocations(
        std::mem::take(&mut es.failing_steps),
        revocation_failures(ctx, &name),
    );
    es.erase_from = Some(Time(timing.erase_from));

    // Export before erasure, when asked for, until its window (erase_from) ends.
    if es.erasing_since.is_none() {
        let return_first = tenant
            .spec
            .contract
            .on_termination
            .as_ref()
            .is_some_and(|o| o.action == TerminationAction::ReturnThenDelete);
        let exported = es.export.as_ref().is_some_and(|e| e.outcome.is_some());
        if return_first && !exported {
            let started = es.started_at.as_ref().map_or(now, |t| t.0);
            let window_ended = now >= plan::export_window_end(timing, started);
            let outcome = if window_ended {
                Some("WindowEnded".to_owned())
            } else if home.foreign.is_some() {
                // No Job runs in a namespace Herald did not create.
                Some(crate::api::v1alpha1::conditions::reason::NAMESPACE_NOT_OWNED.to_owned())
            } else {
                run_export(tenant, home, ctx).await?
            };
            let job = es
                .export
                .as_ref()
                .map(|e| e.job.clone())
                .unwrap_or_else(|| "herald-export".into());
            let finished = outcome.is_some();
            es.export = Some(ExportStatus {
                job,
                finished_at: outcome.as_ref().map(|_| Time(now)),
                outcome,
            });
            if !finished {
                return Ok(progress(
                    es,
                    true,
                    Duration::from_secs(5),
                    "exporting the customer's data".into(),
                ));
            }
        }
        if now < timing.erase_from && tenant.metadata.deletion_timestamp.is_none() {
            let wait = (timing.erase_from.as_second() - now.as_second()).clamp(1, 3600) as u64;
            return Ok(progress(
                es,
                true,
                Duration::from_secs(wait),
                format!(
                    "senders stopped; erasure starts by {}",
                    Time(timing.erase_from).0
                ),
            ));
        }
        // Persist the switch before acting: from here on the stack is never re-applied.
        es.erasing_since = Some(Time(now));
        return Ok(progress(
            es,
            false,
            Duration::from_secs(1),
            "erasure started".into(),
        ));
    }

    // External purges: one Job purges every channel's provider and the platform's
    // stores (one pod per tenant, not one per target: the Job controller's pace bounds
    // a fleet's erasure), run in the tenant namespace before it goes.
    // The inventory is recorded once: in it what is deleted, and what is left in place
    // (with a foreign namespace, the inventory of deletions may well be empty).
    let inventoried = !es.inventory.is_empty() || !es.not_erased.is_empty();
    if es.verified_at.is_none() && !inventoried && home.foreign.is_some() {
        // A tenant namespace Herald did not create: Herald never built the stack in it,
        // so no sender of Herald's ran there, and no purge Job may run in it either.
        // What erasure can do is delete what is labelled outside it, and say so.
        record_inventory(&mut es, ctx, &name, &ns, home, keep).await?;
        return Ok(progress(
            es,
            false,
            Duration::from_secs(1),
            format!(
                "inventory recorded; namespace {ns} is not Herald's: no purge Job runs in it and it is not deleted"
            ),
        ));
    }
    if es.verified_at.is_none() && !inventoried && es.external_purges.is_empty() {
        // The targets are chosen once, from a live list of the bindings (a cache can be
        // cold after a restart or a leader change), and persisted before any Job runs:
        // from here on the Job's arguments and the receipt come from status alone.
        let targets = purge_targets(&name, ctx).await?;
        let note = format!("purge targets recorded: {}", targets.join(", "));
        es.external_purges = targets
            .into_iter()
            .map(|target| PurgeRecord {
                target,
                job: ERASE_JOB.to_owned(),
                confirmed_at: None,
            })
            .collect();
        return Ok(progress(es, false, Duration::from_secs(1), note));
    }
    if es.verified_at.is_none() && !inventoried {
        let targets: Vec<String> = es
            .external_purges
            .iter()
            .map(|p| p.target.clone())
            .collect();
        let confirmed = |target: &str| {
            es.external_purges
                .iter()
                .any(|p| p.target == target && p.confirmed_at.is_some())
        };
        let job = if targets.iter().all(|t| confirmed(t)) {
            JobState::Succeeded
        } else {
            run_job(ctx, tenant, home, ERASE_JOB, plan::purge_args(&targets)).await?
        };
        match job {
            JobState::Replaced => {
                return Ok(progress(
                    es,
                    false,
                    Duration::from_secs(5),
                    format!(
                        "replacing the Job {ERASE_JOB}: its image or arguments were not those erasure recorded"
                    ),
                ));
            }
            JobState::NamespaceTerminating => {
                return Ok(progress(
                    es,
                    false,
                    // The namespace's deletion wakes the tenant through its watch.
                    Duration::from_secs(30),
                    format!(
                        "waiting for namespace {ns} to finish deleting, to run the purge Job {ERASE_JOB} in it again"
                    ),
                ));
            }
            JobState::Failed => {
                // The purge must happen: a Job out of retries is replaced by a new one
                // (its pods go with it), and the status says so meanwhile: the receipt
                // waits for it, so the condition and the alert say so long before the
                // deadline.
                warn!(job = ERASE_JOB, "the purge Job failed; running it again");
                delete_job(ctx, &ns, ERASE_JOB).await?;
                es.failing_steps = plan::step_failed(
                    std::mem::take(&mut es.failing_steps),
                    plan::step::PURGE,
                    ERASE_JOB,
                    "JobFailed",
                    now,
                );
                return Ok(progress(
                    es,
                    false,
                    Duration::from_secs(30),
                    format!(
                        "the purge Job {ERASE_JOB} failed (see its pods' logs); running it again"
                    ),
                ));
            }
            JobState::Running | JobState::Succeeded => {}
        }
        let job_done = job == JobState::Succeeded;
        if job_done {
            es.failing_steps = plan::step_succeeded(
                std::mem::take(&mut es.failing_steps),
                plan::step::PURGE,
                ERASE_JOB,
            );
        }
        let mut all_done = true;
        let mut records = Vec::new();
        for target in targets {
            if let Some(p) = es
                .external_purges
                .iter()
                .find(|p| p.target == target && p.confirmed_at.is_some())
            {
                records.push(p.clone());
                continue;
            }
            // A channel's purge counts once the Job purged it. Its credentials'
            // revocation is not waited for: it holds no end-user data, and a provider
            // refusing it must not stall erasure past the deadline (it is reported in
            // failingSteps and the receipt, and retried by the binding).
            let done = job_done;
            all_done &= done;
            records.push(PurgeRecord {
                target,
                job: ERASE_JOB.to_owned(),
                confirmed_at: done.then_some(Time(now)),
            });
        }
        es.external_purges = records;
        if !all_done {
            return Ok(progress(
                es,
                false,
                // The Jobs' outcome wakes the tenant through its Job watch.
                Duration::from_secs(15),
                "waiting for the external purges".into(),
            ));
        }
        // Everything that exists now is what erasure deletes: record it first.
        record_inventory(&mut es, ctx, &name, &ns, home, keep).await?;
        return Ok(progress(
            es,
            false,
            Duration::from_secs(1),
            "inventory recorded; deleting".into(),
        ));
    }

    if es.verified_at.is_none() {
        // While the namespace is being deleted, everything outside it has been deleted
        // already (below): wait for it, without sweeping every type again. Its deletion
        // (and its children's) wakes the tenant through the watches.
        let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
        // A namespace Herald did not create is neither waited for nor deleted.
        let ns_obj = if home.foreign.is_some() {
            None
        } else {
            ns_api
                .get_opt(&ns)
                .await
                .map_err(Error::kube(format!("get Namespace {ns}")))?
        };
        if ns_obj
            .as_ref()
            .is_some_and(|n| n.metadata.deletion_timestamp.is_some())
        {
            return Ok(progress(
                es,
                false,
                Duration::from_secs(10),
                format!("deleting: waiting for namespace {ns} to be gone"),
            ));
        }
        let swept = sweep(ctx, &name, &ns, home.foreign, keep, false).await?;
        let remaining = swept.erase;
        es.not_erased =
            scope::merge_not_erased(std::mem::take(&mut es.not_erased), swept.not_erased);
        es.unverified_kinds = swept.unverified;
        if ns_obj.is_some() || !remaining.is_empty() {
            let left = remaining.len() + usize::from(ns_obj.is_some());
            delete_everything(ctx, &ns, remaining, ns_obj.is_some()).await?;
            return Ok(progress(
                es,
                false,
                Duration::from_secs(10),
                format!("deleting: {left} labelled objects left"),
            ));
        }
        es.verified_at = Some(Time(now));
        return Ok(progress(
            es,
            false,
            Duration::from_secs(1),
            "verified: nothing labelled for the tenant remains".into(),
        ));
    }

    if es.receipt.is_none() {
        // The kinds verified are those of this last look (after a restart, the same
        // scope and rights as the sweep before, normally).
        es.unverified_kinds = sweep(ctx, &name, &ns, home.foreign, keep, false)
            .await?
            .unverified;
        let receipt = plan::receipt(
            tenant,
            timing,
            &es,
            periods,
            records,
            es.unverified_kinds.clone(),
        )?
        .ok_or(Error::MissingName)?;
        let (body, digest) = plan::seal(&receipt).map_err(|source| Error::Build {
            what: "deletion receipt",
            source,
        })?;
        let receipt_name = write_receipt(ctx, tenant, &body, &digest).await?;
        info!(receipt = %receipt_name, digest = %digest, "deletion receipt written");
        es.receipt = Some(receipt_name);
        es.receipt_digest = Some(digest);
        return Ok(progress(
            es,
            false,
            Duration::from_secs(1),
            "receipt written".into(),
        ));
    }

    // The receipt is written: the tenant is erased. Delivering the certificate to the
    // customer is retried until acknowledged, without holding up the Erased state.
    let mut delivery = Delivery::Delivered;
    if es.receipt_delivered_at.is_none() {
        delivery = match tenant.spec.notifications.as_ref() {
            None => Delivery::NoEndpoint,
            Some(n) => {
                let (body, digest) =
                    read_receipt(ctx, es.receipt.as_deref().unwrap_or_default()).await?;
                match crate::controller::subprocessor::signing_secret(
                    ctx,
                    &name,
                    &n.signing_secret_ref,
                )
                .await?
                {
                    Err(why) => {
                        es.failing_steps = plan::step_failed(
                            std::mem::take(&mut es.failing_steps),
                            plan::step::RECEIPT_DELIVERY,
                            DELIVERY_TARGET,
                            "SigningSecretUnusable",
                            now,
                        );
                        Delivery::Pending(why)
                    }
                    Ok(secret) => {
                        match crate::notify::send_signed(
                            &ctx.http,
                            &n.webhook_url,
                            &secret,
                            &digest,
                            body.as_bytes(),
                            now,
                        )
                        .await
                        {
                            Ok(()) => {
                                es.receipt_delivered_at = Some(Time(now));
                                es.failing_steps = plan::step_succeeded(
                                    std::mem::take(&mut es.failing_steps),
                                    plan::step::RECEIPT_DELIVERY,
                                    DELIVERY_TARGET,
                                );
                                Delivery::Delivered
                            }
                            Err(e) => {
                                warn!(error = %e, "deletion receipt not acknowledged; retrying");
                                es.failing_steps = plan::step_failed(
                                    std::mem::take(&mut es.failing_steps),
                                    plan::step::RECEIPT_DELIVERY,
                                    DELIVERY_TARGET,
                                    &e.category(),
                                    now,
                                );
                                Delivery::Pending(format!(
                                    "the customer's endpoint did not acknowledge it ({e})"
                                ))
                            }
                        }
                    }
                }
            }
        };
    }
    // A failing step after the receipt (a revocation, the delivery) is still reported:
    // look again soon, until none is.
    let requeue = if matches!(delivery, Delivery::Pending(_)) || !es.failing_steps.is_empty() {
        30
    } else {
        3600
    };
    let note = match es.not_erased.len() {
        0 => "erased, verified, receipt written".into(),
        n => format!(
            "erased, verified, receipt written; {n} objects labelled for the tenant were found and not erased (not Herald's, or outside the erasure scope): see status.erasure.notErased, a person decides"
        ),
    };
    Ok(Progress {
        status: es,
        keep_stack: false,
        done: true,
        requeue: Duration::from_secs(requeue),
        note,
        delivery,
    })
}

/// The channels of the tenant's bindings, from a live list (not the cache, which can
/// be cold after a restart), plus the platform's stores.
async fn purge_targets(tenant: &str, ctx: &Context) -> Result<Vec<String>, Error> {
    let api: Api<ChannelBinding> =
        Api::namespaced(ctx.client.clone(), &ctx.config.control_namespace);
    let bindings = api
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("list ChannelBindings"))?;
    let mut targets: BTreeSet<String> = bindings
        .items
        .iter()
        .filter(|b| b.spec.tenant_ref.name == tenant)
        .map(channel_name)
        .collect();
    targets.insert(PLATFORM_TARGET.to_owned());
    Ok(targets.into_iter().collect())
}

/// The revocations the tenant's bindings report failing (not yet revoked, at least one
/// failed attempt).
fn revocation_failures(ctx: &Context, tenant: &str) -> Vec<crate::api::v1alpha1::StepFailure> {
    ctx.bindings
        .state()
        .iter()
        .filter(|b| b.spec.tenant_ref.name == tenant)
        .filter_map(|b| b.status.as_ref())
        .filter(|s| s.credentials_revoked_at.is_none())
        .filter_map(|s| s.revocation_failure.clone())
        .collect()
}

/// The `target` of the receipt's delivery in failingSteps.
const DELIVERY_TARGET: &str = "customer";

/// Ensures the export Job runs; its outcome once finished.
async fn run_export(
    tenant: &Tenant,
    home: &JobHome<'_>,
    ctx: &Context,
) -> Result<Option<String>, Error> {
    let url = tenant
        .spec
        .contract
        .on_termination
        .as_ref()
        .and_then(|o| o.export.as_ref())
        .map(|e| e.url.clone())
        .unwrap_or_default();
    let args = vec!["export".into(), "--destination".into(), url];
    // A failed export is an outcome (erasure goes ahead without it); one waiting for
    // its namespace is not yet, until the export window ends.
    Ok(
        match run_job(ctx, tenant, home, "herald-export", args).await? {
            JobState::Succeeded => Some("Succeeded".into()),
            JobState::Failed => Some("Failed".into()),
            JobState::Running | JobState::NamespaceTerminating | JobState::Replaced => None,
        },
    )
}

/// Where `job` stands, from its conditions.
fn job_state(job: &Job) -> JobState {
    let is_true = |type_: &str| {
        job.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
    };
    if is_true("Complete") {
        JobState::Succeeded
    } else if is_true("Failed") {
        JobState::Failed
    } else {
        JobState::Running
    }
}

/// Deletes a Job and its pods (already gone is fine).
async fn delete_job(ctx: &Context, ns: &str, name: &str) -> Result<(), Error> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    match jobs.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            ctx.metrics.wrote("tenant", "Job");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube(format!("delete Job {name}"))(e)),
    }
}

/// Takes the inventory and records it in `es`: what erasure deletes, and what it leaves
/// in place (merged with what earlier passes left), and the scope's kinds it could not
/// list.
async fn record_inventory(
    es: &mut ErasureStatus,
    ctx: &Context,
    name: &str,
    ns: &str,
    home: &JobHome<'_>,
    keep: Option<&str>,
) -> Result<(), Error> {
    let (inventory, not_erased, unverified) = inventory(ctx, name, ns, home.foreign, keep).await?;
    es.inventory = inventory;
    es.not_erased = scope::merge_not_erased(std::mem::take(&mut es.not_erased), not_erased);
    es.unverified_kinds = unverified;
    Ok(())
}

/// Creates the Job if absent (in its namespace, rebuilt if missing); where it stands.
async fn run_job(
    ctx: &Context,
    tenant: &Tenant,
    home: &JobHome<'_>,
    name: &str,
    args: Vec<String>,
) -> Result<JobState, Error> {
    let ns = home.namespace.name_any();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    // The Job's namespace and ServiceAccount first: without them it cannot be created
    // or cannot start a pod. Both are there unless the stack was never built or was
    // deleted; a namespace being deleted takes no new Job until it is gone. The
    // operator reads and writes in it only through its binding there (made here when
    // the stack never was).
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    let terminating = match ns_api
        .get_opt(&ns)
        .await
        .map_err(Error::kube(format!("get Namespace {ns}")))?
    {
        Some(n) if n.metadata.deletion_timestamp.is_some() => true,
        Some(_) => false,
        None => {
            info!(namespace = %ns, job = name, "rebuilding the tenant namespace for an erasure Job");
            super::apply_one(ctx, ns_api, home.namespace, true).await?;
            false
        }
    };
    if !terminating {
        super::access::bind(ctx, &home.service_account.metadata).await?;
    }
    match jobs.get_opt(name).await {
        // Only a Job Herald verified confirms anything: the one it would create.
        Ok(Some(job)) if job.metadata.deletion_timestamp.is_some() => {
            return Ok(JobState::Replaced);
        }
        Ok(Some(job)) if !plan::job_runs(&job, &home.data_plane.image, &args) => {
            warn!(
                job = name,
                "the Job's image or arguments are not erasure's; replacing it"
            );
            delete_job(ctx, &ns, name).await?;
            return Ok(JobState::Replaced);
        }
        Ok(Some(job)) => return Ok(job_state(&job)),
        Ok(None) => {}
        // Its binding may go before the Job when the namespace is being deleted.
        Err(kube::Error::Api(s)) if terminating && s.code == 403 => {}
        Err(e) => return Err(Error::kube(format!("get Job {name}"))(e)),
    }
    if terminating {
        return Ok(JobState::NamespaceTerminating);
    }
    super::apply_one(
        ctx,
        Api::namespaced(ctx.client.clone(), &ns),
        home.service_account,
        true,
    )
    .await?;
    let tenant_name = tenant.name_any();
    let owner = tenant.controller_owner_ref(&()).ok_or(Error::MissingName)?;
    let labels = BTreeMap::from([
        (TENANT_LABEL.to_owned(), tenant_name),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "herald".to_owned(),
        ),
    ]);
    let pod_labels = DataPlane::pod_labels(&labels, "erasure");
    let pod = home.data_plane.pod_spec(
        "job",
        &args,
        json!([{"name": "tmp", "mountPath": "/tmp"}]),
        json!([{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]),
    );
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "labels": pod_labels, "ownerReferences": [owner]},
        "spec": {
            "backoffLimit": 6,
            "template": {"metadata": {"labels": pod_labels}, "spec": pod}
        }
    }))
    .map_err(|source| Error::Build { what: "job", source })?;
    match jobs.create(&PostParams::default(), &job).await {
        Ok(_) => ctx.metrics.wrote("tenant", "Job"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        // The namespace started terminating between the look and the create.
        Err(kube::Error::Api(s))
            if s.code == 403
                && s.reason == "Forbidden"
                && s.message.contains("being terminated") =>
        {
            return Ok(JobState::NamespaceTerminating);
        }
        Err(e) => return Err(Error::kube(format!("create Job {name}"))(e)),
    }
    Ok(JobState::Running)
}

/// Resource types erasure looks at: everything listable and deletable, but events
/// (never labelled by Herald, and they age out) and Herald's own kinds (the Tenant
/// itself and user-owned references to it).
///
/// Discovery costs a request per API group and version (about 30 on a plain cluster)
/// and every erasure pass needs it two or three times, so one result serves all
/// erasures for [`DISCOVERY_TTL`]: a type installed meanwhile is seen at most that late.
async fn deletable_types(ctx: &Context) -> Result<Vec<(ApiResource, bool)>, Error> {
    type Cached = Option<(std::time::Instant, Vec<(ApiResource, bool)>)>;
    static CACHE: std::sync::Mutex<Cached> = std::sync::Mutex::new(None);
    if let Ok(cache) = CACHE.lock()
        && let Some((at, types)) = cache.as_ref()
        && at.elapsed() < DISCOVERY_TTL
    {
        return Ok(types.clone());
    }
    let types = discover_deletable_types(ctx).await?;
    if let Ok(mut cache) = CACHE.lock() {
        *cache = Some((std::time::Instant::now(), types.clone()));
    }
    Ok(types)
}

/// How long one API discovery serves erasure (see [`deletable_types`]).
const DISCOVERY_TTL: Duration = Duration::from_secs(60);

async fn discover_deletable_types(ctx: &Context) -> Result<Vec<(ApiResource, bool)>, Error> {
    let discovery = Discovery::new(ctx.client.clone())
        .run()
        .await
        .map_err(Error::kube("discover API resources"))?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        if group.name() == crate::api::GROUP || group.name() == "events.k8s.io" {
            continue;
        }
        for (ar, caps) in group.recommended_resources() {
            if ar.plural == "events"
                || !caps.supports_operation(verbs::LIST)
                || !caps.supports_operation(verbs::DELETE)
            {
                continue;
            }
            out.push((ar, caps.scope == Scope::Namespaced));
        }
    }
    Ok(out)
}

/// What one look at everything labelled for the tenant found: what erasure deletes,
/// what it leaves (with why), and the scope's kinds it could not list.
struct Sweep {
    erase: Vec<(ApiResource, DynamicObject)>,
    not_erased: Vec<NotErasedObject>,
    unverified: Vec<String>,
}

/// Looks for what is labelled for the tenant and splits it by the erasure scope
/// ([`scope::split`]). Listed cluster-wide: the scope's kinds (one that cannot be
/// listed is unverified), and with `outside` every other listable kind too, to report
/// what erasure leaves (a kind the operator may not list is then outside the scope by
/// definition: nothing of it is erased, nor claimed). Secrets only where the operator
/// may read them (least privilege: no cluster-wide Secret list): the control namespace,
/// and the tenant namespace while it is Herald's and not being deleted (its binding
/// there goes with it; the namespace's deletion verifies its Secrets). `keep` is the
/// tenant's notification signing Secret in the control namespace: labelled for the
/// tenant (Herald signs with it only then), but the deletion receipt is signed with it
/// after erasure, so erasure leaves it (see docs/operations.md).
async fn sweep(
    ctx: &Context,
    tenant: &str,
    ns: &str,
    foreign: Option<&NotErasedObject>,
    keep: Option<&str>,
    outside: bool,
) -> Result<Sweep, Error> {
    let selector = format!("{TENANT_LABEL}={tenant}");
    let scope = &ctx.config.erasure.scope;
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    let tenant_ns_live = foreign.is_none()
        && ns_api
            .get_opt(ns)
            .await
            .map_err(Error::kube(format!("get Namespace {ns}")))?
            .is_some_and(|n| n.metadata.deletion_timestamp.is_none());
    let scope_namespaces = match scope.label_selector() {
        None => BTreeSet::new(),
        Some(s) => scope::scope_namespaces(
            ns_api
                .list_metadata(&ListParams::default().labels(&s))
                .await
                .map_err(Error::kube("list the erasure scope's namespaces"))?
                .items
                .into_iter()
                .map(|n| n.metadata),
            ns,
            &ctx.config.control_namespace,
        ),
    };
    let mut secret_namespaces = vec![ctx.config.control_namespace.clone()];
    if tenant_ns_live {
        secret_namespaces.push(ns.to_owned());
    }
    // A few lists at a time: a sweep is up to about 50 lists, and one after the other
    // they made each erasure step wait on the slowest of them in turn.
    let lists = stream::iter(deletable_types(ctx).await?)
        .filter(|(ar, _)| {
            let wanted = outside
                || scope.includes(&ar.group, &ar.plural)
                || (ar.group.is_empty() && ar.plural == "secrets");
            futures::future::ready(wanted)
        })
        .flat_map(|(ar, _)| {
            let apis: Vec<(Option<String>, Api<DynamicObject>)> =
                if ar.group.is_empty() && ar.plural == "secrets" {
                    secret_namespaces
                        .iter()
                        .map(|ns| {
                            let api = Api::namespaced_with(ctx.client.clone(), ns, &ar);
                            (Some(ns.clone()), api)
                        })
                        .collect()
                } else {
                    vec![(None, Api::all_with(ctx.client.clone(), &ar))]
                };
            stream::iter(apis.into_iter().map(move |(ns, api)| (ar.clone(), ns, api)))
        })
        .map(|(ar, ns, api)| {
            let params = ListParams::default().labels(&selector);
            async move {
                let result = api.list(&params).await;
                (ar, ns, result)
            }
        })
        .buffered(SWEEP_PARALLELISM)
        .collect::<Vec<_>>()
        .await;
    let mut found = Vec::new();
    let mut unverified = Vec::new();
    for (ar, ns, result) in lists {
        match result {
            Ok(list) => found.extend(
                list.items
                    .into_iter()
                    .filter(|o| !is_kept(&ar, o, &ctx.config.control_namespace, keep))
                    .map(|o| (ar.clone(), o)),
            ),
            Err(kube::Error::Api(s)) if s.code == 403 || s.code == 405 || s.code == 404 => {
                let in_scope = scope.includes(&ar.group, &ar.plural) || ns.is_some();
                if in_scope {
                    // As kubectl names a resource: `services`, `deployments.apps`.
                    let kind = if ar.group.is_empty() {
                        ar.plural.clone()
                    } else {
                        format!("{}.{}", ar.plural, ar.group)
                    };
                    unverified.push(match ns {
                        Some(ns) => format!("{kind} in {ns}"),
                        None => kind,
                    });
                }
            }
            Err(e) => return Err(Error::kube(format!("list {}", ar.plural))(e)),
        }
    }
    let bounds = scope::Bounds {
        tenant_ns: ns,
        control_ns: &ctx.config.control_namespace,
        foreign,
        scope_namespaces,
        scope: Some(scope),
    };
    let (erase, not_erased) = scope::split(identified(found), &bounds);
    Ok(Sweep {
        erase: erase.into_iter().map(|(o, _)| o).collect(),
        not_erased,
        unverified,
    })
}

/// Whether `o` is the signing Secret erasure leaves for the receipt (see
/// [`sweep`]).
fn is_kept(ar: &ApiResource, o: &DynamicObject, control_ns: &str, keep: Option<&str>) -> bool {
    ar.group.is_empty()
        && ar.kind == "Secret"
        && o.metadata.namespace.as_deref() == Some(control_ns)
        && keep.is_some_and(|k| o.metadata.name.as_deref() == Some(k))
}

/// The Job that purges the tenant's data at every provider and in the platform's stores.
const ERASE_JOB: &str = "herald-erase";

/// Lists of one sweep in flight at once.
const SWEEP_PARALLELISM: usize = 8;

/// Each found object with what [`scope::split`] decides by.
fn identified(
    found: Vec<(ApiResource, DynamicObject)>,
) -> Vec<((ApiResource, DynamicObject), scope::ObjectId)> {
    found
        .into_iter()
        .map(|(ar, o)| {
            let id = scope::ObjectId {
                api_version: ar.api_version.clone(),
                kind: ar.kind.clone(),
                resource: ar.plural.clone(),
                namespace: o.metadata.namespace.clone(),
                name: o.name_any(),
                uid: o.metadata.uid.clone().unwrap_or_default(),
            };
            ((ar, o), id)
        })
        .collect()
}

/// The inventory: everything labelled for the tenant and everything in its namespace
/// (when Herald's), what is left in place (a `foreign` namespace and its contents), and
/// the types that could not be listed.
async fn inventory(
    ctx: &Context,
    tenant: &str,
    ns: &str,
    foreign: Option<&NotErasedObject>,
    keep: Option<&str>,
) -> Result<
    (
        Vec<crate::api::v1alpha1::DeletedKind>,
        Vec<NotErasedObject>,
        Vec<String>,
    ),
    Error,
> {
    let Sweep {
        erase: labelled,
        not_erased,
        unverified,
    } = sweep(ctx, tenant, ns, foreign, keep, true).await?;
    let mut by_kind: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut add = |ar: &ApiResource, o: &DynamicObject| {
        if let Some(uid) = o.metadata.uid.clone() {
            by_kind
                .entry((ar.api_version.clone(), ar.kind.clone()))
                .or_default()
                .insert(uid);
        }
    };
    for (ar, o) in &labelled {
        add(ar, o);
    }
    // A namespace Herald did not create is not erased: its contents are not counted.
    let namespaced_types = if foreign.is_some() {
        Vec::new()
    } else {
        deletable_types(ctx).await?
    };
    let in_namespace = stream::iter(namespaced_types)
        .filter(|(_, namespaced)| futures::future::ready(*namespaced))
        .map(|(ar, _)| {
            let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
            async move {
                let list = api.list(&ListParams::default()).await;
                (ar, list)
            }
        })
        .buffered(SWEEP_PARALLELISM)
        .collect::<Vec<_>>()
        .await;
    for (ar, list) in in_namespace {
        if let Ok(list) = list {
            for o in &list.items {
                add(&ar, o);
            }
        }
    }
    let inventory = by_kind
        .into_iter()
        .map(
            |((api_version, kind), uids)| crate::api::v1alpha1::DeletedKind {
                api_version,
                kind,
                count: uids.len() as i64,
                uids: uids.into_iter().collect(),
            },
        )
        .collect();
    Ok((inventory, not_erased, unverified))
}

/// Deletes the `labelled` objects outside the tenant namespace, then the namespace if
/// `namespace_exists` (which takes everything in it). Idempotent: what is gone or going
/// is skipped.
async fn delete_everything(
    ctx: &Context,
    ns: &str,
    labelled: Vec<(ApiResource, DynamicObject)>,
    namespace_exists: bool,
) -> Result<(), Error> {
    for (ar, o) in labelled {
        if o.metadata.deletion_timestamp.is_some() || o.metadata.namespace.as_deref() == Some(ns) {
            continue;
        }
        let name = o.name_any();
        if ar.kind == "Namespace" && name == ns {
            continue;
        }
        let api: Api<DynamicObject> = match o.metadata.namespace.as_deref() {
            Some(other) => Api::namespaced_with(ctx.client.clone(), other, &ar),
            None => Api::all_with(ctx.client.clone(), &ar),
        };
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => ctx.metrics.wrote("tenant", &ar.kind),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube(format!("delete {} {name}", ar.kind))(e)),
        }
    }
    if namespace_exists {
        let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
        match ns_api.delete(ns, &DeleteParams::background()).await {
            Ok(_) => ctx.metrics.wrote("tenant", "Namespace"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube(format!("delete Namespace {ns}"))(e)),
        }
    }
    Ok(())
}

/// Writes the receipt as an immutable, signed ConfigMap (create-if-absent: a restart that
/// finds it already written keeps the first; Ed25519 signatures are deterministic, so a
/// rewrite would carry the same bytes anyway).
async fn write_receipt(
    ctx: &Context,
    tenant: &Tenant,
    body: &str,
    digest: &str,
) -> Result<String, Error> {
    let name = plan::receipt_name(tenant);
    let key = ctx
        .receipt_key
        .get_or_try_init(|| {
            crate::evidence::store::ensure(&ctx.client, &ctx.config.control_namespace)
        })
        .await
        .map_err(Error::SigningKey)?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.config.control_namespace);
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": {RECEIPT_FOR_LABEL: tenant.name_any(), "app.kubernetes.io/managed-by": "herald",
                       "app.kubernetes.io/component": "deletion-receipt"},
            "annotations": {"herald.dev/receipt-sha256": digest}
        },
        "immutable": true,
        // The signature covers receipt.json's bytes; keyId names the published public
        // key that verifies it (`herald receipt verify`).
        "data": {
            evidence::BODY_KEY: body, evidence::DIGEST_KEY: digest,
            evidence::SIGNATURE_KEY: key.sign_b64(body.as_bytes()),
            evidence::KEY_ID_KEY: key.key_id(), evidence::PUBLIC_KEY_KEY: key.public_key_b64(),
        }
    }))
    .map_err(|source| Error::Build { what: "receipt", source })?;
    match api.create(&PostParams::default(), &cm).await {
        Ok(_) => ctx.metrics.wrote("tenant", "ConfigMap/receipt"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(Error::kube(format!("create deletion receipt {name}"))(e)),
    }
    Ok(name)
}

/// The stored receipt's bytes and digest.
async fn read_receipt(ctx: &Context, name: &str) -> Result<(String, String), Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.config.control_namespace);
    let cm = api
        .get(name)
        .await
        .map_err(Error::kube(format!("get deletion receipt {name}")))?;
    let data = cm.data.unwrap_or_default();
    Ok((
        data.get("receipt.json").cloned().unwrap_or_default(),
        data.get("sha256").cloned().unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(conditions: &[(&str, &str)]) -> Job {
        let conditions: Vec<_> = conditions
            .iter()
            .map(|(t, s)| json!({"type": t, "status": s}))
            .collect();
        serde_json::from_value(
            json!({"metadata": {"name": "j"}, "status": {"conditions": conditions}}),
        )
        .unwrap()
    }

    #[test]
    fn a_job_stands_where_its_conditions_say() {
        assert_eq!(job_state(&job(&[])), JobState::Running);
        assert_eq!(
            job_state(&job(&[("Complete", "True")])),
            JobState::Succeeded
        );
        assert_eq!(job_state(&job(&[("Failed", "True")])), JobState::Failed);
        // A condition that is not True decides nothing.
        assert_eq!(
            job_state(&job(&[("Failed", "False"), ("Suspended", "True")])),
            JobState::Running
        );
        let no_status: Job = serde_json::from_value(json!({"metadata": {"name": "j"}})).unwrap();
        assert_eq!(job_state(&no_status), JobState::Running);
    }
}
