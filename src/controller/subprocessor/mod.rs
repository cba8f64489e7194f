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
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Config as WatcherConfig;
use tracing::{Instrument, info, info_span, warn};

use super::{Changed, Context, Error, PAUSED_ANNOTATION};
use crate::api::v1alpha1::{
    ChannelBinding, Subprocessor, SubprocessorStatus, Tenant, TenantNotice,
};

/// The controller label value in metrics.
const CONTROLLER: &str = "subprocessor";
/// Event reason of a delivered notice.
const NOTICE_DELIVERED: &str = "NoticeDelivered";

const REQUEUE_ERROR: Duration = Duration::from_secs(15);
/// Retry of undelivered notices: doubles from the first to the last, by how long the
/// current terms have been waiting (persisted), so a restart does not reset it.
const RETRY_MIN: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Runs the Subprocessor controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
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
    controller
        .with_config(ControllerConfig::default().concurrency(concurrency))
        // A new tenant, an objection, a notification endpoint: every Subprocessor may
        // owe or change something for it. Reconciles only read when nothing changed.
        .watches_recovering(
            Api::<Tenant>::all(client.clone()),
            WatcherConfig::default(),
            move |t| {
                if !tenants_changed.passes(&t, t.metadata.generation) {
                    return Vec::new();
                }
                all.state()
                    .iter()
                    .map(|s| ObjectRef::from_obj(s.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
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
        .run(reconcile, error_policy, ctx)
        .for_each(|_| future::ready(()))
        .await;
}

async fn reconcile(sp: Arc<Subprocessor>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = info_span!("reconcile", controller = CONTROLLER, subprocessor = %sp.name_any());
    ctx.metrics
        .reconcile(
            CONTROLLER,
            super::catch_panic(reconcile_inner(&sp, &ctx).instrument(span)),
        )
        .await
}

fn error_policy(sp: Arc<Subprocessor>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(CONTROLLER, error.category());
    warn!(subprocessor = %sp.name_any(), category = error.category(), error = %crate::error_chain(error), "reconcile failed; retrying");
    Action::requeue(REQUEUE_ERROR)
}

async fn reconcile_inner(sp: &Subprocessor, ctx: &Context) -> Result<Action, Error> {
    let name = sp.name_any();
    if sp
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v != "false")
    {
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let hash = effective::material_hash(&sp.spec);
    let changed_at = effective::material_changed_at(sp, now);
    let catalog = &ctx.config.regions;

    let tenants: Vec<Tenant> = Api::<Tenant>::all(ctx.client.clone())
        .list(&Default::default())
        .await
        .map_err(Error::kube("list Tenants"))?
        .items;
    let bindings = ctx.bindings.state();
    let affected: Vec<&Tenant> = tenants
        .iter()
        .filter(|t| notice::is_live(t))
        .filter(|t| {
            !notice::is_channel_carrier(sp)
                || bindings.iter().any(|b| {
                    b.spec.subprocessor_ref.name == name
                        && Some(&b.spec.tenant_ref.name) == t.metadata.name.as_ref()
                })
        })
        .collect();

    // Keep the records of tenants that still exist: they are the evidence of notice.
    let mut notices: Vec<TenantNotice> = sp
        .status
        .as_ref()
        .map(|s| s.notices.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            tenants
                .iter()
                .any(|t| t.metadata.name.as_ref() == Some(&n.tenant))
        })
        .collect();

    let mut undelivered = false;
    for tenant in &affected {
        let tenant_name = tenant.name_any();
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
        let existing = notices.iter().position(|n| n.tenant == tenant_name);
        if let Some(i) = existing
            && notices[i].material_hash == hash
            && notices[i].delivered_at.is_some()
        {
            continue;
        }
        let key = notice::idempotency_key(&name, &hash, &tenant_name);
        let mut record = match existing {
            Some(i) if notices[i].material_hash == hash => notices.remove(i),
            Some(i) => {
                notices.remove(i);
                TenantNotice::default()
            }
            None => TenantNotice::default(),
        };
        record.tenant = tenant_name.clone();
        record.material_hash = hash.clone();
        record.idempotency_key = key.clone();
        let previous_failure = record.last_failure.clone();

        let sent_at = Timestamp::now();
        let window_ends = sent_at
            .checked_add(effective::notice_period(&sp.spec))
            .unwrap_or(sent_at);
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
        let result =
            match signing_secret(ctx, &tenant_name, &notifications.signing_secret_ref).await? {
                Ok(secret) => {
                    let body =
                        notice::body(sp, &tenant_name, &key, &hash, change, sent_at, window_ends);
                    crate::notify::send_signed(
                        &ctx.http,
                        &notifications.webhook_url,
                        &secret,
                        &key,
                        &body,
                        sent_at,
                    )
                    .await
                    .map_err(|e| e.category())
                }
                Err(why) => Err(why),
            };
        match result {
            Ok(()) => {
                record.delivered_at = Some(Time(sent_at));
                record.objection_window_ends = Some(Time(window_ends));
                record.last_failure = None;
                ctx.metrics.notice("delivered");
                info!(tenant = %tenant_name, window_ends = %window_ends, "notice delivered");
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
                        crate::api::v1alpha1::conditions::reason::NOTICE_FAILED,
                        format!("notice to Tenant {tenant_name} not delivered ({why}); retrying"),
                    )
                    .await;
                }
                record.last_failure = Some(why);
            }
        }
        notices.push(record);
    }

    let verdicts: Vec<(String, effective::Verdict)> = affected
        .iter()
        .map(|t| {
            (
                t.name_any(),
                notice::verdict_with(sp, &hash, changed_at, &notices, t, catalog, now),
            )
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
        verdicts,
        safeguard: effective::safeguard_fits(&sp.spec, catalog),
        objections,
    };
    let status = notice::status(&outcome, now);
    publish_status(sp, status, ctx).await?;

    let mut wait = super::resync(&name);
    if undelivered {
        let waiting = now.duration_since(changed_at).unsigned_abs();
        wait = wait.min(waiting.clamp(RETRY_MIN, RETRY_MAX));
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

/// Patches the status when it differs from what is stored; events on transitions.
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
