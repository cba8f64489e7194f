//! The BreachNotice controller: tells every tenant a personal data breach affects, by a
//! signed notice to its endpoint (the same Standard Webhooks signing as every customer
//! notice, [`crate::notify`]), retries until each acknowledges (2xx) on a per-tenant
//! backoff, sends every later spec change as a follow-up with its own idempotency key,
//! and keeps the 48-hour deadline (and the authority's 72 hours) in status and metrics.
//!
//! Pipeline: affected tenants ([`decide::affected`]) → due notices, sent side by side
//! (each recorded in the Tenant's `status.breachNotices` before it is sent and after its
//! outcome, under a field manager of this breach's own) → [`decide::status`] (the summary, patched only
//! when it changed; events on transitions) → metrics → requeue at the next retry or the
//! deadline. Sharded like the Subprocessor controller: a process sends only to the
//! Tenants its selector matches; the summary counts every tenant's record.

pub mod decide;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::Config as WatcherConfig;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info, info_span, warn};

use super::{Changed, Context, Error};
use crate::api::v1alpha1::conditions::reason;
use crate::api::v1alpha1::{BreachNotice, BreachNoticeStatus, BreachTenantNotice, Tenant};
use crate::controller::watch::RecoveringWatches;

/// The controller label value in metrics.
const CONTROLLER: &str = "breach";
/// Event reason of an acknowledged notice.
const NOTICE_DELIVERED: &str = "NoticeDelivered";
const REQUEUE_ERROR: Duration = Duration::from_secs(15);
/// Bounds of the requeue while notices are unacknowledged.
const RETRY_MIN: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Notices one reconcile attempts at most, and how many at once: the first notice goes
/// to every affected tenant side by side, and dead endpoints (each up to the outbound
/// client's timeout) never hold a reconcile for long; the rest follow at RETRY_MIN.
const ATTEMPTS_PER_RECONCILE: usize = 32;
const PARALLEL_DELIVERIES: usize = 8;

/// Runs the BreachNotice controller until `shutdown` resolves. `tenant_selector` shards
/// the deliveries (see the module docs).
pub async fn run(
    ctx: Arc<Context>,
    concurrency: u16,
    tenant_selector: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let selector = Arc::new(tenant_selector);
    let client = ctx.client.clone();
    let (store, writer) = reflector::store();
    let metrics = ctx.metrics.clone();
    // A BreachNotice's own status writes (each delivery writes its record) do not
    // requeue it; its spec and metadata do.
    let events = reflector::reflector(
        writer,
        crate::controller::watch::watch(
            Api::<BreachNotice>::namespaced(client.clone(), &ctx.config.control_namespace),
            WatcherConfig::default(),
        )
        .modify(|b| b.managed_fields_mut().clear()),
    )
    // A deleted BreachNotice (only the break-glass group can) is never reconciled
    // again: its series go with it, or its deadline alert would fire for nothing.
    .inspect(move |event| {
        if let Ok(kube::runtime::watcher::Event::Delete(b)) = event {
            metrics.clear_breach(&b.name_any());
        }
    })
    .applied_objects()
    .predicate_filter(
        |b: &BreachNotice| super::metadata_trigger(b.meta()),
        Default::default(),
    );
    let all = store.clone();
    let known = store.clone();
    let tenants_changed = Changed::default();
    Controller::for_stream(events, store)
        .with_config(ControllerConfig::default().concurrency(concurrency))
        // A new tenant, new labels (a selector may now match it), a new endpoint: every
        // BreachNotice may owe it a notice. Its status writes are not news here.
        .watches_recovering(
            Api::<Tenant>::all(client.clone()),
            WatcherConfig::default(),
            move |t| {
                if !tenants_changed.passes(&t, (t.metadata.generation, t.labels().clone())) {
                    return Vec::new();
                }
                all.state()
                    .iter()
                    .map(|b| ObjectRef::from_obj(b.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(
            move |bn, ctx| reconcile(bn, ctx, selector.clone(), known.clone()),
            error_policy,
            ctx,
        )
        .for_each(super::log_queue_errors(CONTROLLER))
        .await;
}

async fn reconcile(
    bn: Arc<BreachNotice>,
    ctx: Arc<Context>,
    selector: Arc<Option<String>>,
    known: reflector::Store<BreachNotice>,
) -> Result<Action, Error> {
    let span = info_span!("reconcile", controller = CONTROLLER, breach = %bn.name_any());
    let result = ctx
        .metrics
        .reconcile(
            CONTROLLER,
            super::catch_panic(reconcile_inner(&bn, &ctx, selector.as_deref()).instrument(span)),
        )
        .await;
    // Deleted while this reconcile ran (the watch cleared its series before it set
    // them again): clear them now. Either order leaves no series of a deleted breach.
    if known.get(&ObjectRef::from_obj(bn.as_ref())).is_none() {
        ctx.metrics.clear_breach(&bn.name_any());
    }
    result
}

fn error_policy(bn: Arc<BreachNotice>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(CONTROLLER, error.category());
    warn!(breach = %bn.name_any(), category = error.category(), error = %crate::error_chain(error), "reconcile failed; retrying");
    Action::requeue(REQUEUE_ERROR)
}

async fn reconcile_inner(
    cached: &BreachNotice,
    ctx: &Context,
    selector: Option<&str>,
) -> Result<Action, Error> {
    let name = cached.name_any();
    // Read fresh, not from the cache: the records this reconcile acts on were written
    // by the previous one a moment ago, and a cache that lags would resend a notice
    // already acknowledged.
    let api: Api<BreachNotice> =
        Api::namespaced(ctx.client.clone(), &cached.namespace().unwrap_or_default());
    let Some(fresh) = api
        .get_opt(&name)
        .await
        .map_err(Error::kube(format!("read BreachNotice {name}")))?
    else {
        ctx.metrics.clear_breach(&name);
        return Ok(Action::await_change()); // deleted (by the break-glass group)
    };
    let bn = &fresh;
    // A pause holds the notices back, never the status and the deadline series: the
    // 48-hour alert must fire whether or not Herald may send.
    let paused = super::pause::is_paused(bn.annotations());
    let now = Timestamp::now();
    let generation = bn.metadata.generation.unwrap_or_default();
    let api_tenants: Api<Tenant> = Api::all(ctx.client.clone());
    let tenants = api_tenants
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("list Tenants"))?
        .items;
    // The tenants this process delivers to (all, without a selector), as the API
    // server matches the selector.
    let ours: Option<HashSet<String>> = match selector {
        Some(selector) => Some(
            api_tenants
                .list_metadata(&ListParams::default().labels(selector))
                .await
                .map_err(Error::kube("list this shard's Tenants"))?
                .items
                .into_iter()
                .filter_map(|t| t.metadata.name)
                .collect(),
        ),
        None => None,
    };
    let (affected, missing, unresolved) =
        match decide::affected(&bn.spec.affected_tenants, &tenants) {
            Ok(a) => (a.tenants, a.missing, None),
            Err(why) => (Vec::new(), Vec::new(), Some(why)),
        };
    // Each tenant's record of this breach, from the Tenants just listed (fresh, not a
    // cache that lags: a record written a moment ago must not be missed, or a notice
    // already acknowledged would be sent again).
    let uid = bn.uid().unwrap_or_default();
    let mut records: Vec<BreachTenantNotice> = tenants
        .iter()
        .filter_map(|t| t.status.as_ref())
        .flat_map(|s| &s.breach_notices)
        .filter(|r| r.breach == name && r.breach_uid == uid)
        .cloned()
        .collect();

    // Who is due a notice now; a failed one waits on its own backoff.
    let mut due: Vec<(Tenant, BreachTenantNotice)> = Vec::new();
    let mut next_retry: Option<Timestamp> = None;
    let mut deferred = false;
    for tenant in affected.iter().copied().filter(|_| !paused) {
        let tenant_name = tenant.name_any();
        if tenant.spec.notifications.is_none()
            || ours.as_ref().is_some_and(|o| !o.contains(&tenant_name))
        {
            continue; // named in the condition / another shard's to tell
        }
        let existing = records.iter().find(|r| r.tenant == tenant_name);
        if let Some(at) = existing
            .filter(|r| r.generation == generation)
            .and_then(|r| decide::retry_at(r, now))
        {
            next_retry = Some(next_retry.map_or(at, |n: Timestamp| n.min(at)));
            continue;
        }
        let key = decide::idempotency_key(bn, generation, &tenant_name);
        let Some(mut record) = decide::next_attempt(existing, &tenant_name, generation, &key, now)
        else {
            continue; // acknowledged: never sent again
        };
        (record.breach, record.breach_uid) = (name.clone(), uid.clone());
        if due.len() >= ATTEMPTS_PER_RECONCILE {
            deferred = true;
            continue;
        }
        due.push((tenant.clone(), record));
    }
    let delivered: Vec<Result<BreachTenantNotice, Error>> = stream::iter(due)
        .map(|(tenant, record)| async move { deliver(ctx, bn, &tenant, record).await })
        .buffer_unordered(PARALLEL_DELIVERIES)
        .collect()
        .await;
    for result in delivered {
        let record = result?;
        if record.last_failure.is_some() {
            // Back on its backoff (at least RETRY_MIN).
            let at = decide::retry_at(&record, Timestamp::now()).unwrap_or(now);
            next_retry = Some(next_retry.map_or(at, |n: Timestamp| n.min(at)));
        }
        records.retain(|r| r.tenant != record.tenant);
        records.push(record);
    }

    let outcome = decide::Outcome {
        bn,
        affected: affected.iter().map(|t| t.name_any()).collect(),
        no_endpoint: affected
            .iter()
            .filter(|t| t.spec.notifications.is_none())
            .map(|t| t.name_any())
            .collect(),
        missing,
        unresolved,
        records,
        retention_days: ctx.config.breach_notices.retention_days,
        stall_after: ctx.config.health.stall_after(),
    };
    let unnotified = decide::unnotified(&outcome);
    let mut status = decide::status(&outcome, now);
    if paused {
        status.conditions = super::pause::with_paused(
            status.conditions,
            &bn.status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default(),
            "no notice is sent",
            bn.metadata.generation,
            now,
        );
    }
    let deadline = decide::deadline(bn);
    ctx.metrics.set_breach(
        &name,
        (unnotified > 0).then_some(deadline.as_second()),
        decide::authority_deadline(bn)
            .filter(|_| bn.spec.authority_notified_at.is_none())
            .map(|t| t.as_second()),
        i64::try_from(unnotified).unwrap_or(i64::MAX),
    );
    publish_status(bn, status, ctx).await?;

    let mut wait = super::resync(&name);
    if let Some(at) = next_retry {
        let until = at.duration_since(now).unsigned_abs();
        wait = wait.min(until.clamp(RETRY_MIN, RETRY_MAX));
    }
    if deferred {
        wait = wait.min(RETRY_MIN);
    }
    if unnotified > 0 && now < deadline {
        // Back when the deadline passes: the state turns Overdue.
        wait = wait.min(super::until(now, deadline));
    }
    Ok(Action::requeue(wait))
}

/// Sends the notice in `record` to `tenant` (which has an endpoint) and returns the
/// record with its outcome; both the attempt and its outcome are recorded in status.
async fn deliver(
    ctx: &Context,
    bn: &BreachNotice,
    tenant: &Tenant,
    record: BreachTenantNotice,
) -> Result<BreachTenantNotice, Error> {
    let tenant_name = tenant.name_any();
    let Some(notifications) = &tenant.spec.notifications else {
        return Ok(record);
    };
    let previous_failure = record.last_failure.clone();
    let secret = crate::controller::subprocessor::signing_secret(
        ctx,
        &tenant_name,
        &notifications.signing_secret_ref,
    )
    .await?;
    let result = match secret {
        Ok(key) => {
            // Recorded before it is sent: if this process stops before the outcome is
            // recorded, the next one sends this very notice again.
            record_notice(ctx, bn, &record).await?;
            let body = decide::body(bn, &record);
            crate::notify::send_signed(
                &ctx.http,
                &notifications.webhook_url,
                &key,
                &record.idempotency_key,
                &body,
                Timestamp::now(),
            )
            .await
            .map_err(|e| e.category())
        }
        Err(why) => Err(why),
    };
    let generation = record.generation;
    let record = match result {
        Ok(()) => {
            ctx.metrics
                .breach_notices
                .get_or_create(&crate::metrics::ResultLabels {
                    result: "delivered".into(),
                })
                .inc();
            info!(tenant = %tenant_name, generation, "breach notice acknowledged");
            let record = decide::acknowledged(record, Timestamp::now());
            record_notice(ctx, bn, &record).await?;
            event(
                ctx,
                bn,
                EventType::Normal,
                NOTICE_DELIVERED,
                format!("notice of generation {generation} acknowledged by Tenant {tenant_name}"),
            )
            .await;
            record
        }
        Err(why) => {
            ctx.metrics
                .breach_notices
                .get_or_create(&crate::metrics::ResultLabels {
                    result: "failed".into(),
                })
                .inc();
            warn!(tenant = %tenant_name, generation, failure = %why, "breach notice not acknowledged; retrying");
            if previous_failure.as_deref() != Some(why.as_str()) {
                event(
                    ctx,
                    bn,
                    EventType::Warning,
                    reason::NOTICE_FAILED,
                    format!("notice to Tenant {tenant_name} not acknowledged ({why}); retrying"),
                )
                .await;
            }
            let record = decide::failed(record, why);
            record_notice(ctx, bn, &record).await?;
            record
        }
    };
    Ok(record)
}

/// Writes one tenant's record of this breach into the Tenant's `status.breachNotices`:
/// a server-side apply of that one entry under the field manager `herald-breach-<name>`,
/// so that it neither removes another breach's record (each manager owns only its own
/// entry) nor touches what the Tenant and Subprocessor controllers write there.
async fn record_notice(
    ctx: &Context,
    bn: &BreachNotice,
    record: &BreachTenantNotice,
) -> Result<(), Error> {
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let patch = serde_json::json!({
        "apiVersion": "herald.dev/v1alpha1",
        "kind": "Tenant",
        "status": {"breachNotices": [record]},
    });
    api.patch_status(
        &record.tenant,
        &PatchParams::apply(&crate::controller::subprocessor::notice::field_manager_of(
            "herald-breach-",
            &bn.name_any(),
        ))
        .force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::kube(format!(
        "record the breach notice to Tenant {}",
        record.tenant
    )))?;
    ctx.metrics.wrote(CONTROLLER, "Tenant/status");
    Ok(())
}

/// Patches the summary when it differs from what is stored (the per-tenant records are
/// not part of it); events on transitions.
async fn publish_status(
    bn: &BreachNotice,
    status: BreachNoticeStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let before = bn.status.clone().unwrap_or_default();
    let api: Api<BreachNotice> =
        Api::namespaced(ctx.client.clone(), &bn.namespace().unwrap_or_default());
    crate::controller::status::publish(
        ctx,
        CONTROLLER,
        &api,
        bn,
        (&before, &before.conditions),
        (&status, &status.conditions),
    )
    .await
}

/// Publishes an event on the BreachNotice; failures are logged, never fatal.
async fn event(ctx: &Context, bn: &BreachNotice, type_: EventType, reason: &str, note: String) {
    crate::controller::status::event(ctx, CONTROLLER, bn, type_, reason, reason, note).await;
}
