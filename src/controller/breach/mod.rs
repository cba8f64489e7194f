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
//!
//! What stays true: `status.firstNoticeAt` is recorded (against the exact spec read)
//! before the first notice is sent, and from then on the CRD refuses changing what the
//! tenants were told; the deadlines' outcomes are recorded once ([`decide::deadlines_met`]);
//! each tenant's acknowledgement is written into signed breach receipts
//! ([`evidence`]) that outlive the Tenant. A supplement (`spec.supplementOf`) is a
//! BreachNotice of its own; the one it supplements lists it in `status.supplements`.

pub mod decide;
pub mod evidence;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
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
use crate::api::v1alpha1::{
    BreachNotice, BreachNoticeStatus, BreachReceipts, BreachTenantNotice, Tenant,
};
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
    // A supplement asks for the BreachNotice it supplements to be reconciled, which then
    // lists it in status.supplements.
    let (link, linked) = mpsc::unbounded::<ObjectRef<BreachNotice>>();
    Controller::for_stream(events, store)
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .reconcile_on(linked)
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
            move |bn, ctx| reconcile(bn, ctx, selector.clone(), known.clone(), link.clone()),
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
    link: mpsc::UnboundedSender<ObjectRef<BreachNotice>>,
) -> Result<Action, Error> {
    let span = info_span!("reconcile", controller = CONTROLLER, breach = %bn.name_any());
    let result = ctx
        .metrics
        .reconcile(
            CONTROLLER,
            super::catch_panic(
                reconcile_inner(&bn, &ctx, selector.as_deref(), &known, &link).instrument(span),
            ),
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
    known: &reflector::Store<BreachNotice>,
    link: &mpsc::UnboundedSender<ObjectRef<BreachNotice>>,
) -> Result<Action, Error> {
    let name = cached.name_any();
    // Read fresh, not from the cache: the records this reconcile acts on were written
    // by the previous one a moment ago, and a cache that lags would resend a notice
    // already acknowledged.
    let api: Api<BreachNotice> =
        Api::namespaced(ctx.client.clone(), &cached.namespace().unwrap_or_default());
    let Some(mut fresh) = api
        .get_opt(&name)
        .await
        .map_err(Error::kube(format!("read BreachNotice {name}")))?
    else {
        ctx.metrics.clear_breach(&name);
        return Ok(Action::await_change()); // deleted (by the break-glass group)
    };
    // A pause holds the notices back, never the status and the deadline series: the
    // 48-hour alert must fire whether or not Herald may send.
    let paused = super::pause::is_paused(fresh.annotations());
    let now = Timestamp::now();
    let generation = fresh.metadata.generation.unwrap_or_default();
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
    let bn = &fresh;
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
    // The record freezes before the first notice goes out: status.firstNoticeAt, written
    // only if the BreachNotice is still the one read (its resourceVersion), so that what
    // is sent is what the CRD then keeps from changing. A notice sent before this field
    // existed counts as the first.
    let sent_before = records.iter().any(|r| r.first_sent_at.is_some());
    if bn
        .status
        .as_ref()
        .and_then(|s| s.first_notice_at.as_ref())
        .is_none()
        && (!due.is_empty() || sent_before)
    {
        let at = decide::first_notice_at(&records, now);
        match record_first_notice(ctx, bn, at).await? {
            Some(updated) => fresh = updated,
            // Changed meanwhile: read again and decide on the new spec.
            None => return Ok(Action::requeue(Duration::from_secs(1))),
        }
    }
    let bn = &fresh;
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

    // The proof of each acknowledgement, kept beyond the Tenant; a receipt that cannot
    // be written never holds a notice, it is said (Stalled) instead. Still in flight:
    // tenants left for the next reconcile, or failed ones on their backoff; when neither,
    // everything acknowledged so far is written at once.
    let in_flight = deferred || next_retry.is_some();
    let (receipts, evidence_blocked) =
        match write_receipts(ctx, bn, &tenants, &records, ours.as_ref(), in_flight, now).await {
            Ok(r) => (r, None),
            Err(e) => match e.evidence_blocked() {
                Some(blocked) => (None, Some(blocked)),
                None => return Err(e),
            },
        };
    // Supplements: the ones naming this breach, and whether the one this supplements is
    // there (and knows of this one).
    let mut supplements: Vec<String> = known
        .state()
        .iter()
        .filter(|b| b.spec.supplement_of.as_deref() == Some(name.as_str()))
        .map(|b| b.name_any())
        .collect();
    supplements.sort();
    let supplement_of_missing = match &bn.spec.supplement_of {
        None => false,
        Some(original) => {
            let ns = bn.namespace().unwrap_or_default();
            let found = match known.get(&ObjectRef::new(original).within(&ns)) {
                Some(o) => Some((*o).clone()),
                None => api
                    .get_opt(original)
                    .await
                    .map_err(Error::kube(format!("read BreachNotice {original}")))?,
            };
            if let Some(o) = &found
                && !o
                    .status
                    .as_ref()
                    .is_some_and(|s| s.supplements.contains(&name))
            {
                // Its reconcile lists this one; a closed channel (shutting down) is fine.
                let _ = link.unbounded_send(ObjectRef::from_obj(o));
            }
            found.is_none()
        }
    };

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
        supplement_of_missing,
        supplements,
        receipts,
        evidence_blocked,
    };
    // A person removes what blocks the receipts (a planted one): look again soon, as for
    // an error, without holding the notices.
    let evidence_waits = outcome.evidence_blocked.is_some();
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
        // Not silenced by a date in the future: only an authorityNotifiedAt that has
        // happened ends the series.
        decide::authority_deadline(bn)
            .filter(|_| decide::authority_notified_at(bn, now).is_none())
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
    // Back when a deadline's outcome is due to be recorded, or records wait for a receipt.
    let recorded = status_deadlines(bn);
    if !recorded.0 && now < deadline {
        wait = wait.min(super::until(now, deadline));
    }
    if let Some(at) = decide::authority_deadline(bn).filter(|at| !recorded.1 && now < *at) {
        wait = wait.min(super::until(now, at));
    }
    if let Some(at) = bn
        .spec
        .authority_notified_at
        .as_ref()
        .filter(|_| decide::authority_notified_in_future(bn, now))
    {
        // Counts once it is no longer in the future.
        wait = wait.min(super::until(now, at.0));
    }
    if in_flight {
        wait = wait.min(evidence::WRITE_AFTER.unsigned_abs());
    }
    if evidence_waits {
        wait = wait.min(REQUEUE_ERROR);
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

/// Whether the tenants' and the authority's deadline outcomes are recorded (as read).
fn status_deadlines(bn: &BreachNotice) -> (bool, bool) {
    let met = bn.status.as_ref().and_then(|s| s.deadlines_met.as_ref());
    (
        met.is_some_and(|m| m.tenants.is_some()),
        met.is_some_and(|m| m.authority.is_some()),
    )
}

/// Records `status.firstNoticeAt` with the BreachNotice's resourceVersion as a
/// precondition: the updated object, or `None` when it changed since it was read.
async fn record_first_notice(
    ctx: &Context,
    bn: &BreachNotice,
    at: Timestamp,
) -> Result<Option<BreachNotice>, Error> {
    let name = bn.name_any();
    let api: Api<BreachNotice> =
        Api::namespaced(ctx.client.clone(), &bn.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": bn.resource_version()},
        "status": {"firstNoticeAt": Time(at)},
    });
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(updated) => {
            ctx.metrics.wrote(CONTROLLER, "BreachNotice/status");
            info!(first_notice_at = %at, "first notice going out: the breach record is frozen");
            Ok(Some(updated))
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
        Err(e) => Err(Error::kube(format!(
            "record the first notice of BreachNotice {name}"
        ))(e)),
    }
}

/// What this process knows is written of a breach's receipts (by breach uid): receipts
/// are immutable and undeletable, so a memo of them stays true; it saves listing them
/// on every reconcile. Lost at a restart, rebuilt from the receipts themselves.
static WRITTEN: LazyLock<Mutex<HashMap<String, Written>>> = LazyLock::new(Default::default);

#[derive(Clone, Debug, Default)]
struct Written {
    names: Vec<String>,
    tenants: HashSet<String>,
    last_written_at: Option<Timestamp>,
}

impl Written {
    fn status(&self) -> BreachReceipts {
        BreachReceipts {
            names: self.names.clone(),
            tenants: i64::try_from(self.tenants.len()).unwrap_or(i64::MAX),
        }
    }
}

/// Writes the breach receipts due now ([`evidence::due`]) and returns what is written.
async fn write_receipts(
    ctx: &Context,
    bn: &BreachNotice,
    tenants: &[Tenant],
    records: &[BreachTenantNotice],
    ours: Option<&HashSet<String>>,
    in_flight: bool,
    now: Timestamp,
) -> Result<Option<BreachReceipts>, Error> {
    let uid = bn.uid().unwrap_or_default();
    let memo = WRITTEN.lock().ok().and_then(|m| m.get(&uid).cloned());
    let mut written = match memo {
        Some(w) => w,
        None => load_receipts(ctx, bn).await?,
    };
    let pending = evidence::unwritten(bn, records, tenants, &written.tenants, ours);
    let since = written.last_written_at.or_else(|| {
        bn.status
            .as_ref()
            .and_then(|s| s.first_notice_at.as_ref())
            .map(|t| t.0)
    });
    if evidence::due(pending.len(), in_flight, since, now) {
        let built = evidence::receipts(bn, &pending, now).map_err(|source| Error::Build {
            what: "breach receipt",
            source,
        })?;
        for r in built {
            super::receipt::create_signed(
                ctx,
                CONTROLLER,
                &r.name,
                evidence::labels(bn),
                &r.body,
                &r.digest,
                "breach receipt",
            )
            .await?;
            info!(receipt = %r.name, tenants = r.tenants.len(), "breach receipt written");
            written.names.push(r.name);
            written.tenants.extend(r.tenants);
            written.last_written_at = Some(now);
        }
    }
    let status = written.status();
    if let Ok(mut m) = WRITTEN.lock() {
        m.insert(uid, written);
    }
    Ok(Some(status))
}

/// The breach's receipts as stored, each checked to be Herald's (a receipt labelled
/// for the breach that Herald did not sign is a conflict, never counted as proof).
async fn load_receipts(ctx: &Context, bn: &BreachNotice) -> Result<Written, Error> {
    let key = super::receipt::signing_key(ctx).await?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.config.control_namespace);
    let mut list = api
        .list(&ListParams::default().labels(&format!(
            "{}={},app.kubernetes.io/component={}",
            evidence::BREACH_UID_LABEL,
            bn.uid().unwrap_or_default(),
            evidence::COMPONENT
        )))
        .await
        .map_err(Error::kube("list the breach receipts"))?
        .items;
    list.sort_by_key(|cm| {
        (
            cm.metadata.creation_timestamp.clone().map(|t| t.0),
            cm.name_any(),
        )
    });
    let mut written = Written::default();
    for cm in list {
        let name = cm.name_any();
        let data = cm.data.clone().unwrap_or_default();
        let body = data
            .get(crate::evidence::BODY_KEY)
            .cloned()
            .unwrap_or_default();
        let check = super::receipt::judge_existing(&data, key, None)
            .and_then(|_| evidence::tenants_of(&body));
        match check {
            Ok(tenants) => {
                written.names.push(name);
                written.tenants.extend(tenants);
            }
            Err(why) => {
                ctx.metrics.receipt_conflict(CONTROLLER);
                warn!(receipt = %name, "breach receipt {name} is not the one Herald wrote: {why}");
                return Err(Error::ReceiptConflict { name, why });
            }
        }
    }
    Ok(written)
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
