//! The Subprocessor controller: announces each new or materially changed Subprocessor to
//! every affected tenant (signed webhook, retried, idempotent), records per tenant when
//! the notice was delivered and when the objection window ends, and reports for how many
//! tenants it is effective.
//!
//! Pipeline: material hash → affected tenants → deliver missing notices (the only
//! effect besides status) → [`notice::status`] (patched only when it changed) → events.
//! Who is affected: every live tenant for platform-wide Subprocessors (hosting,
//! monitoring, …); for channel carriers, the tenants with a ChannelBinding through it.

pub mod effective;
pub mod notice;

use std::sync::Arc;
use std::time::Duration;

use crate::controller::watch::RecoveringWatches;
use futures::{StreamExt, future};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::Config as WatcherConfig;
use tracing::{Instrument, info, info_span, warn};

use super::{Changed, Context, Error};
use crate::api::v1alpha1::{
    ChannelBinding, Subprocessor, SubprocessorNotice, SubprocessorStatus, Tenant,
};

/// The controller label value in metrics.
const CONTROLLER: &str = "subprocessor";
/// Event reason of a delivered notice.
const NOTICE_DELIVERED: &str = "NoticeDelivered";

const REQUEUE_ERROR: Duration = Duration::from_secs(15);
/// Bounds of the requeue while notices are undelivered: back when the first failed one
/// is due on its own backoff (persisted in its record, so a restart does not reset it).
const RETRY_MIN: Duration = Duration::from_secs(5);
/// Delivery attempts one reconcile makes at most (each is a request and two record
/// writes): measured in the full e2e suite, reconciles that tried every failing tenant
/// in turn took all 16 reconcile slots for minutes, and a new Subprocessor waited two
/// minutes for its first notice.
const ATTEMPTS_PER_RECONCILE: usize = 8;
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Runs the Subprocessor controller until `shutdown` resolves.
/// `tenant_selector` shards the deliveries: this process sends notices only to the
/// Tenants it matches (another shard's operator tells the others), while the
/// Subprocessor's status is computed from every tenant's records, so that all shards
/// write the same status.
pub async fn run(
    ctx: Arc<Context>,
    concurrency: u16,
    tenant_selector: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let selector = Arc::new(tenant_selector);
    let client = ctx.client.clone();
    let controller = Controller::new(
        Api::<Subprocessor>::all(client.clone()),
        WatcherConfig::default(),
    );
    let all = controller.store();
    // Only what the reconcile reads may requeue it: tenants' spec (contract, objections,
    // notifications; a deletion bumps the generation too) and bindings' spec, not their
    // status writes, each of which used to cost a list of every Tenant.
    let (tenants_changed, bindings_changed) = (Changed::default(), Changed::default());
    let records_changed = Changed::default();
    // The Tenants the reconciles read, and the triggers, from one watch: the store has
    // every change before the trigger it causes arrives. Each reconcile used to list
    // every Tenant with its status (O(Subprocessors × Tenants) per round; 1.5 MB per
    // list on a dev cluster of 190 tenants); a delivery re-reads its one Tenant instead.
    let (tenants, tenants_writer) = reflector::store();
    let tenant_events = reflector::reflector(
        tenants_writer,
        crate::controller::watch::watch(
            Api::<Tenant>::all(client.clone()),
            WatcherConfig::default(),
        )
        .modify(|t| t.managed_fields_mut().clear()),
    )
    .touched_objects();
    controller
        .with_config(ControllerConfig::default().concurrency(concurrency))
        // A new tenant, an objection, a notification endpoint: every Subprocessor may
        // owe or change something for it. Reconciles only read when nothing changed.
        .watches_stream(tenant_events, move |t: Tenant| {
            // A notice delivered or its window moved (ours after a delivery, or
            // anyone's edit) concerns only the Subprocessors it records. Attempts
            // and failures are not keyed: each failed attempt writes its record, and
            // keying on it would retry at once, in a loop, instead of on the backoff.
            let records_moved = records_changed.passes(&t, notice::outcomes(&t));
            let records = t
                .status
                .as_ref()
                .map(|s| s.subprocessor_notices.clone())
                .unwrap_or_default();
            if tenants_changed.passes(&t, t.metadata.generation) {
                return all
                    .state()
                    .iter()
                    .map(|s| ObjectRef::from_obj(s.as_ref()))
                    .collect::<Vec<_>>();
            }
            if !records_moved {
                return Vec::new();
            }
            records
                .iter()
                .map(|r| ObjectRef::new(&r.subprocessor))
                .collect::<Vec<_>>()
        })
        // A binding through a carrier makes its tenant affected.
        .watches_recovering(
            Api::<ChannelBinding>::namespaced(client.clone(), &ctx.config.control_namespace),
            WatcherConfig::default(),
            move |b| {
                bindings_changed
                    .passes(&b, b.metadata.generation)
                    .then(|| ObjectRef::new(&b.spec.subprocessor_ref.name))
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(
            move |sp, ctx| reconcile(sp, ctx, tenants.clone(), selector.clone()),
            error_policy,
            ctx,
        )
        .for_each(|_| future::ready(()))
        .await;
}

async fn reconcile(
    sp: Arc<Subprocessor>,
    ctx: Arc<Context>,
    tenants: Store<Tenant>,
    selector: Arc<Option<String>>,
) -> Result<Action, Error> {
    let span = info_span!("reconcile", controller = CONTROLLER, subprocessor = %sp.name_any());
    ctx.metrics
        .reconcile(
            CONTROLLER,
            super::catch_panic(
                reconcile_inner(&sp, &ctx, &tenants, selector.as_deref()).instrument(span),
            ),
        )
        .await
}

fn error_policy(sp: Arc<Subprocessor>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(CONTROLLER, error.category());
    warn!(subprocessor = %sp.name_any(), category = error.category(), error = %crate::error_chain(error), "reconcile failed; retrying");
    Action::requeue(REQUEUE_ERROR)
}

async fn reconcile_inner(
    sp: &Subprocessor,
    ctx: &Context,
    tenant_store: &Store<Tenant>,
    selector: Option<&str>,
) -> Result<Action, Error> {
    let name = sp.name_any();
    if super::pause::is_paused(sp.annotations()) {
        return paused(sp, ctx).await;
    }
    // Who is affected comes from the bindings and Tenant caches: right after a start
    // they may still be filling, and an empty one would count no tenant as affected.
    let warm = async {
        ctx.bindings.wait_until_ready().await?;
        tenant_store.wait_until_ready().await
    };
    if !tokio::time::timeout(super::CACHE_WAIT, warm)
        .await
        .is_ok_and(|r| r.is_ok())
    {
        return Err(Error::CachesNotSynced);
    }
    let now = Timestamp::now();
    let hash = effective::material_hash(&sp.spec);
    let changed_at = effective::material_changed_at(sp, now);
    let catalog = &ctx.config.regions;

    let tenants: Vec<Arc<Tenant>> = tenant_store.state();
    // The tenants this process delivers to (all, without a selector), as the API
    // server matches the selector.
    let ours: Option<std::collections::HashSet<String>> = match selector {
        Some(selector) => Some(
            Api::<Tenant>::all(ctx.client.clone())
                .list_metadata(&kube::api::ListParams::default().labels(selector))
                .await
                .map_err(Error::kube("list this shard's Tenants"))?
                .items
                .into_iter()
                .filter_map(|t| t.metadata.name)
                .collect(),
        ),
        None => None,
    };
    let bindings = ctx.bindings.state();
    let affected: Vec<&Tenant> = tenants
        .iter()
        .map(AsRef::as_ref)
        .filter(|t| notice::is_live(t))
        .filter(|t| {
            !notice::is_channel_carrier(sp)
                || bindings.iter().any(|b| {
                    b.spec.subprocessor_ref.name == name
                        && Some(&b.spec.tenant_ref.name) == t.metadata.name.as_ref()
                })
        })
        .collect();

    // Tenants not yet sent the current terms first: the attempts of one reconcile are
    // capped, and retries of failing endpoints must not delay a first notice.
    let mut affected = affected;
    affected.sort_by_key(|t| {
        effective::notice_record(t, &name).is_some_and(|r| r.material_hash == hash)
    });

    // Each affected tenant's record lives in its own status; every delivery is recorded
    // there as it happens (before the request, and its outcome after it).
    let mut notices: Vec<(String, SubprocessorNotice)> = Vec::new();
    let mut must_tell = 0;
    let mut undelivered = false;
    let mut next_retry: Option<Timestamp> = None;
    let mut attempted = 0;
    for tenant in &affected {
        let tenant_name = tenant.name_any();
        let mut existing = effective::notice_record(tenant, &name).cloned();
        let started = tenant
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(now);
        if changed_at <= started {
            continue; // the tenant signed up under these terms
        }
        let Some(notifications) = &tenant.spec.notifications else {
            continue; // cannot be told; the verdict says NotificationsMissing
        };
        must_tell += 1;
        // Another shard's tenant: its operator delivers; its record still counts.
        let is_ours = ours.as_ref().is_none_or(|o| o.contains(&tenant_name));
        let plan = |record: Option<&SubprocessorNotice>| {
            notice::plan(
                record,
                &hash,
                now,
                is_ours,
                attempted,
                ATTEMPTS_PER_RECONCILE,
            )
        };
        let mut decided = plan(existing.as_ref());
        if decided == notice::Plan::Send {
            // About to send: decide on the live record, never on a cached one that may
            // not show a delivery or an attempt this process (or another) just recorded.
            let Some(live) = Api::<Tenant>::all(ctx.client.clone())
                .get_opt(&tenant_name)
                .await
                .map_err(Error::kube(format!("get Tenant {tenant_name}")))?
            else {
                continue; // gone since the cache saw it
            };
            existing = effective::notice_record(&live, &name).cloned();
            decided = plan(existing.as_ref());
        }
        match decided {
            notice::Plan::Send => {}
            notice::Plan::Keep => {}
            notice::Plan::RetryAt(due) => {
                undelivered = true;
                next_retry = Some(next_retry.map_or(due, |d: Timestamp| d.min(due)));
            }
            // The rest come at the next requeue (RETRY_MIN), so a slow or dead endpoint
            // never holds a reconcile slot for long.
            notice::Plan::Deferred => undelivered = true,
        }
        if decided != notice::Plan::Send {
            if let Some(record) = existing {
                notices.push((tenant_name, record));
            }
            continue;
        }
        let existing = existing.as_ref();
        let key = notice::idempotency_key(&name, &hash, &tenant_name);
        let Some(mut record) = notice::next_attempt(
            existing,
            &name,
            &hash,
            &key,
            effective::notice_period(&sp.spec),
            Timestamp::now(),
        ) else {
            if let Some(done) = existing {
                notices.push((tenant_name, done.clone()));
            }
            continue; // delivered: never sent again
        };
        attempted += 1;
        let change = if sp
            .status
            .as_ref()
            .and_then(|s| s.material_hash.as_ref())
            .is_some_and(|h| *h != hash)
        {
            "changed"
        } else {
            "added"
        };
        let secret = signing_secret(ctx, &tenant_name, &notifications.signing_secret_ref).await?;
        let result = match secret {
            Ok(secret) => {
                // Recorded before it is sent: if this process stops before the outcome
                // is recorded, the next one sends this very notice again.
                record_notice(ctx, &tenant_name, &record).await?;
                // next_attempt sets both; the fallbacks are never used.
                let sent_at = record.sent_at.as_ref().map_or(now, |t| t.0);
                let window_ends = record.objection_window_ends.as_ref().map_or(now, |t| t.0);
                let body =
                    notice::body(sp, &tenant_name, &key, &hash, change, sent_at, window_ends);
                crate::notify::send_signed(
                    &ctx.http,
                    &notifications.webhook_url,
                    &secret,
                    &key,
                    &body,
                    // Signed now (the receiver's replay window), whatever sentAt says.
                    Timestamp::now(),
                )
                .await
                .map_err(|e| e.category())
            }
            Err(why) => Err(why),
        };
        let previous_failure = record.last_failure.clone();
        record.awaiting_outcome = false;
        match result {
            Ok(()) => {
                let window_ends = record
                    .objection_window_ends
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default();
                record.delivered_at = Some(Time(Timestamp::now()));
                record.last_failure = None;
                record_notice(ctx, &tenant_name, &record).await?;
                ctx.metrics.notice("delivered");
                info!(tenant = %tenant_name, %window_ends, "notice delivered");
                event(
                    ctx,
                    sp,
                    EventType::Normal,
                    NOTICE_DELIVERED,
                    format!(
                        "notice delivered to Tenant {tenant_name}; it may object until {window_ends}"
                    ),
                )
                .await;
            }
            Err(why) => {
                undelivered = true;
                ctx.metrics.notice("failed");
                warn!(tenant = %tenant_name, failure = %why, "notice not delivered; retrying");
                if previous_failure.as_deref() != Some(why.as_str()) {
                    event(
                        ctx,
                        sp,
                        EventType::Warning,
                        effective::notice_failure_reason(&why),
                        format!("notice to Tenant {tenant_name} not delivered ({why}); retrying"),
                    )
                    .await;
                }
                record.last_failure = Some(why);
                record_notice(ctx, &tenant_name, &record).await?;
            }
        }
        notices.push((tenant_name, record));
    }

    let verdicts: Vec<(String, effective::Verdict)> = affected
        .iter()
        .map(|t| {
            let name = t.name_any();
            let record = notices.iter().find(|(n, _)| *n == name).map(|(_, r)| r);
            let verdict = notice::verdict_with(sp, &hash, changed_at, record, t, catalog, now);
            (name, verdict)
        })
        .collect();
    let objections = tenants
        .iter()
        .filter(|t| notice::is_live(t) && effective::objected(t, &name))
        .count();
    ctx.metrics
        .subprocessor_objections
        .get_or_create(&crate::metrics::SubprocessorLabels {
            subprocessor: name.clone(),
        })
        .set(i64::try_from(objections).unwrap_or(i64::MAX));
    let recheck = verdicts.iter().filter_map(|(_, v)| v.recheck_at).min();
    let outcome = notice::Outcome {
        sp,
        hash,
        changed_at,
        notices,
        must_tell,
        verdicts,
        safeguard: effective::safeguard_fits(&sp.spec, catalog),
        objections,
    };
    let status = notice::status(&outcome, now);
    publish_status(sp, status, ctx).await?;

    let mut wait = super::resync(&name);
    if undelivered {
        // Back when the first failed notice is due (at least RETRY_MIN from now).
        let due = next_retry.map_or(RETRY_MIN, |at| at.duration_since(now).unsigned_abs());
        wait = wait.min(due.clamp(RETRY_MIN, RETRY_MAX));
    }
    if let Some(at) = recheck {
        let until = at.duration_since(now).unsigned_abs() + Duration::from_secs(1);
        wait = wait.min(until);
    }
    Ok(Action::requeue(wait))
}

/// The tenant's signing key from the control namespace (the HMAC key of its Standard
/// Webhooks secret, see [`crate::notify::signing_key`]), or why there is none (the
/// Secret or key is missing or not `whsec_<base64>`, or the Secret is not labelled for `tenant`: another
/// tenant's key must never sign this tenant's notices). The reason names the Secret,
/// never a value.
pub(crate) async fn signing_secret(
    ctx: &Context,
    tenant: &str,
    r: &crate::api::v1alpha1::SecretKeyRef,
) -> Result<Result<Vec<u8>, String>, Error> {
    let ns = &ctx.config.control_namespace;
    let secret = match crate::controller::ownership::read(ctx, tenant, &r.name).await? {
        crate::controller::ownership::Owned::Yes(secret) => secret,
        crate::controller::ownership::Owned::Missing => {
            return Ok(Err(format!(
                "the signing secret {ns}/{} does not exist",
                r.name
            )));
        }
        crate::controller::ownership::Owned::NotOwned(why) => return Ok(Err(why)),
    };
    let Some(value) = secret
        .data
        .and_then(|d| d.get(&r.key).map(|v| v.0.clone()))
        .filter(|v| !v.is_empty())
    else {
        return Ok(Err(format!(
            "the signing secret {ns}/{} has no key {}",
            r.name, r.key
        )));
    };
    Ok(crate::notify::signing_key(&value)
        .map_err(|e| format!("the signing secret {ns}/{} key {} {e}", r.name, r.key)))
}

/// Writes one notice record into the Tenant's `status.subprocessorNotices`: a
/// server-side apply of that one entry, under a field manager of this Subprocessor's
/// own, so that it neither removes the records of other Subprocessors (each manager's
/// apply only owns its own entry) nor touches what the Tenant controller writes.
async fn record_notice(
    ctx: &Context,
    tenant: &str,
    record: &SubprocessorNotice,
) -> Result<(), Error> {
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let patch = serde_json::json!({
        "apiVersion": "herald.dev/v1alpha1",
        "kind": "Tenant",
        "status": {"subprocessorNotices": [record]},
    });
    api.patch_status(
        tenant,
        &PatchParams::apply(&notice::field_manager(&record.subprocessor)).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::kube(format!("record the notice to Tenant {tenant}")))?;
    ctx.metrics.wrote(CONTROLLER, "Tenant/status");
    Ok(())
}

/// Patches the status when it differs from what is stored; events on transitions.
/// A paused Subprocessor: no notice is sent and no count changes; status says so, once
/// per generation, so that Argo CD reads Suspended and kstatus is not left waiting.
async fn paused(sp: &Subprocessor, ctx: &Context) -> Result<Action, Error> {
    let current = sp.status.clone().unwrap_or_default();
    if let Some(conditions) = crate::controller::pause::conditions(
        &current.conditions,
        current.observed_generation,
        sp.metadata.generation,
        "Subprocessor",
        Timestamp::now(),
    ) {
        let status = SubprocessorStatus {
            observed_generation: sp.metadata.generation,
            conditions,
            ..current
        };
        publish_status(sp, status, ctx).await?;
    }
    Ok(Action::await_change())
}

async fn publish_status(
    sp: &Subprocessor,
    status: SubprocessorStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let before = sp.status.clone().unwrap_or_default();
    let api: Api<Subprocessor> = Api::all(ctx.client.clone());
    crate::controller::status::publish(
        ctx,
        CONTROLLER,
        &api,
        sp,
        (&before, &before.conditions),
        (&status, &status.conditions),
    )
    .await
}

/// Publishes an event on the Subprocessor; failures are logged, never fatal.
async fn event(ctx: &Context, sp: &Subprocessor, type_: EventType, reason: &str, note: String) {
    crate::controller::status::event(ctx, CONTROLLER, sp, type_, reason, reason, note).await;
}
