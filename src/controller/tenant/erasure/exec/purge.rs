//! `selectTargets` and `purge`: the purge targets chosen once from a live list of the
//! bindings and recorded, then one Job that purges every channel's provider and the
//! platform's stores (one pod per tenant, not one per target: the Job controller's pace
//! bounds a fleet's erasure), run in the tenant namespace before it goes.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use tracing::warn;

use super::super::super::bindings::channel_name;
use super::super::plan;
use super::jobs::{self, ERASE_JOB, JobState};
use super::{Next, Pass};
use crate::api::v1alpha1::{ChannelBinding, ErasureStatus, PurgeRecord};
use crate::controller::{Context, Error};

/// The `selectTargets` step. The targets are chosen once, from a live list of the
/// bindings (a cache can be cold after a restart or a leader change), and persisted
/// before any Job runs: from here on the Job's arguments and the receipt come from
/// status alone.
pub(super) async fn select_targets(pass: &Pass<'_>, es: &mut ErasureStatus) -> Result<Next, Error> {
    let targets = purge_targets(&pass.name, pass.ctx).await?;
    let note = format!("purge targets recorded: {}", targets.join(", "));
    es.external_purges = targets
        .into_iter()
        .map(|target| PurgeRecord {
            target,
            job: ERASE_JOB.to_owned(),
            confirmed_at: None,
        })
        .collect();
    Ok(Next::wait(1, note))
}

/// The `purge` step: runs the Job for the recorded targets until it succeeds; then the
/// inventory follows in the same pass (it only reads).
pub(super) async fn purge(pass: &Pass<'_>, es: &mut ErasureStatus) -> Result<Next, Error> {
    let (ctx, ns, now) = (pass.ctx, &pass.ns, pass.now);
    let targets: Vec<String> = es
        .external_purges
        .iter()
        .map(|p| p.target.clone())
        .collect();
    let job = jobs::run_job(
        ctx,
        pass.tenant,
        pass.home,
        ERASE_JOB,
        plan::erase_args(&pass.name, &targets),
        None,
    )
    .await?;
    match job {
        JobState::Replaced => {
            return Ok(Next::wait(
                5,
                format!(
                    "replacing the Job {ERASE_JOB}: its image or arguments were not those erasure recorded"
                ),
            ));
        }
        JobState::NamespaceTerminating => {
            // The namespace's deletion wakes the tenant through its watch.
            return Ok(Next::wait(
                30,
                format!(
                    "waiting for namespace {ns} to finish deleting, to run the purge Job {ERASE_JOB} in it again"
                ),
            ));
        }
        JobState::Failed => {
            // The purge must happen: a Job out of retries is replaced by a new one (its
            // pods go with it), and the status says so meanwhile: the receipt waits for
            // it, so the condition and the alert say so long before the deadline.
            warn!(job = ERASE_JOB, "the purge Job failed; running it again");
            jobs::delete_job(ctx, ns, ERASE_JOB).await?;
            es.failing_steps = plan::step_failed(
                std::mem::take(&mut es.failing_steps),
                plan::step::PURGE,
                ERASE_JOB,
                "JobFailed",
                now,
            );
            return Ok(Next::wait(
                30,
                format!("the purge Job {ERASE_JOB} failed (see its pods' logs); running it again"),
            ));
        }
        JobState::Running | JobState::Succeeded => {}
    }
    if job != JobState::Succeeded {
        // The Job's outcome wakes the tenant through its Job watch.
        return Ok(Next::wait(15, "waiting for the external purges".into()));
    }
    es.failing_steps = plan::step_succeeded(
        std::mem::take(&mut es.failing_steps),
        plan::step::PURGE,
        ERASE_JOB,
    );
    // A channel's purge counts once the Job purged it. Its credentials' revocation is
    // not waited for: it holds no end-user data, and a provider refusing it must not
    // stall erasure past the deadline (it is reported in failingSteps and the receipt,
    // and retried by the binding).
    for p in &mut es.external_purges {
        if p.confirmed_at.is_none() {
            p.confirmed_at = Some(Time(now));
        }
    }
    Ok(Next::Continue)
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

/// The platform's own stores, purged like a channel.
const PLATFORM_TARGET: &str = "platform";
