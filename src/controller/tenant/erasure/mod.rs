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
//! A state machine ([`step`]): the step a tenant is in follows from `status.erasure`
//! alone; each step has one executor (`exec`), which records its outcome in
//! `status.erasure` before the next step acts on it, and is idempotent
//! (create-if-absent, delete-if-present, a deterministic receipt name), so a killed
//! operator resumes at the recorded step and writes one receipt. The steps, what ends
//! each and what it waits for: docs/erasure.md.

mod exec;
pub mod held;
pub mod plan;
pub mod refusals;
pub mod scope;
pub mod step;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use tracing::{Instrument, info_span, warn};

pub use self::plan::Delivery;
use self::plan::Timing;
use self::step::{Facts, Step, StepError};
use super::build::namespace_name;
use super::data_plane::DataPlane;
use crate::api::v1alpha1::{
    ErasureStatus, NotErasedObject, RecordRetention, Tenant, TerminationAction,
};
use crate::controller::{Context, Error, finalizer};
use crate::retention::Periods;

/// The finalizer that makes deleting a Tenant run erasure (and write its receipt)
/// before the object disappears.
pub const FINALIZER: &str = "herald.dev/erasure";
/// Label on deletion receipts: which tenant they are for. Deliberately not the tenant
/// label, which erasure deletes by.
pub const RECEIPT_FOR_LABEL: &str = "herald.dev/receipt-for";

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
    /// The tenant namespace as this reconcile read it (None: absent), so that erasure's
    /// steps do not each read it again.
    pub live_namespace: Option<&'a Namespace>,
    /// The namespace named `tenant-<name>` exists but Herald did not create it: no Job
    /// runs in it, and neither it nor anything in it is deleted (they are reported in
    /// `notErased`).
    pub foreign: Option<&'a NotErasedObject>,
}

/// Runs the next steps of the pipeline for a terminated or deleted tenant: the step
/// `status.erasure` is in, then the next one while a step hands over in the same pass
/// (an export that finished, a purge confirmed: what follows only reads), until one
/// has something to persist or to wait for. A step that fails is a [`StepError`] naming
/// it (counted in `herald_erasure_step_errors_total{step}`, logged with `step`).
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
    let facts = Facts {
        now,
        erase_from: timing.erase_from,
        deleting: tenant.metadata.deletion_timestamp.is_some(),
        return_first: tenant
            .spec
            .contract
            .on_termination
            .as_ref()
            .is_some_and(|o| o.action == TerminationAction::ReturnThenDelete),
        foreign: home.foreign.is_some(),
    };
    let pass = exec::Pass {
        tenant,
        timing,
        periods,
        records,
        home,
        ctx,
        now,
        ns: namespace_name(&name),
        name,
        keep: tenant
            .spec
            .notifications
            .as_ref()
            .map(|n| n.signing_secret_ref.name.as_str()),
    };
    // Each step at most once per pass: one that hands over always changes the step.
    for _ in Step::ALL {
        let current = step::step(&es, &facts);
        let span = info_span!("erasure", step = current.as_str());
        let next = match exec::run(current, &pass, &mut es).instrument(span).await {
            Ok(next) => next,
            Err(e) => {
                ctx.metrics.erasure_step_failed(current.as_str());
                warn!(step = current.as_str(), error = %crate::error_chain(&e), "erasure step failed; retrying");
                return Err(Error::ErasureStep(Box::new(StepError::new(current, e))));
            }
        };
        let (requeue, note, done, delivery) = match next {
            exec::Next::Continue => continue,
            exec::Next::Wait { requeue, note } => (requeue, note, false, Delivery::Delivered),
            exec::Next::Erased {
                requeue,
                note,
                delivery,
            } => (requeue, note, true, delivery),
        };
        // Where the tenant stands now, for people and tests (the chaos suite stops at
        // each step): derived from what this pass recorded.
        es.step = Some(step::step(&es, &facts).as_str().to_owned());
        return Ok(Progress {
            status: es,
            keep_stack: current.keeps_stack(),
            done,
            requeue,
            note,
            delivery,
        });
    }
    es.step = Some(step::step(&es, &facts).as_str().to_owned());
    Ok(Progress {
        status: es,
        keep_stack: false,
        done: false,
        requeue: Duration::from_secs(1),
        note: "erasure continues".into(),
        delivery: Delivery::Delivered,
    })
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
