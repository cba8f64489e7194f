//! The ChannelBinding controller: delivers a channel's credential into the tenant's
//! namespace as immutable, versioned Secrets, rotates it without downtime, revokes the
//! previous one only once no sender uses it, and hands the channel to the senders only
//! while its Subprocessor is effective for the tenant.
//!
//! Pipeline: resolve (tenant, Subprocessor, source, existing versions, sender
//! Deployment) → [`effective::verdict`] → finish a pending rotation → start a due one
//! → clean up stale versions → [`decide::status`] (patched only when it changed) →
//! events on transitions. The state machine is described in [`decide`]; all of its
//! state is in the status, so a restart resumes it.
//!
//! The Tenant controller reads `status.credentialSecret` and `SubprocessorEffective`
//! (see [`crate::controller::tenant::bindings`]) and rolls the senders.

pub mod decide;
pub mod hash_key;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::controller::watch::RecoveringWatches;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Config as WatcherConfig;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info, info_span, warn};

use self::decide::{
    BINDING_LABEL, CHANNEL_LABEL, CREDENTIAL_KEY, PROVIDER_ID_ANNOTATION, PreviousUse, Problem,
    SOURCE_HASH_ANNOTATION, SecretInputs, StatusInputs, Trigger, VERSION_ANNOTATION,
};
use super::subprocessor::effective;
use super::tenant::bindings::{channel_name, rolled_out_versions};
use super::tenant::build::{SENDER, namespace_name};
use super::{Changed, Context, Error, FIELD_MANAGER, TENANT_LABEL, finalizer, ownership, until};
use crate::api::v1alpha1::UnstoredCredential;
use crate::api::v1alpha1::conditions::reason;
use crate::api::v1alpha1::{ChannelBinding, ChannelBindingStatus, Subprocessor, Tenant};
use crate::provider::ProviderClient;

/// The controller label value in metrics.
const CONTROLLER: &str = "channelbinding";
/// The finalizer that makes deleting a ChannelBinding revoke its credentials at the
/// provider and delete its Secrets before the binding disappears.
pub const FINALIZER: &str = "herald.dev/credentials";

const REQUEUE_WAITING: Duration = Duration::from_secs(30);
const REQUEUE_NAMESPACE: Duration = Duration::from_secs(120);
const REQUEUE_ERROR: Duration = Duration::from_secs(15);
/// Provider retries back off from the first to the last, by how long the provider has
/// been failing (the condition's lastTransitionTime, persisted).
const RETRY_MIN: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Paces provider calls per binding: after a failure, the next call waits 5 s, doubling
/// to 5 min. Watch events (a tenant's rollout, a status write) would otherwise retry a
/// failing provider on every reconcile. Kept in memory on purpose: this is a rate
/// limit, not a deadline; a restart merely allows one early retry. Every deadline of a
/// rotation (overlap, schedule) is computed from status.
#[derive(Default)]
struct ProviderPacing(std::sync::Mutex<std::collections::HashMap<String, (Instant, u32, Problem)>>);

impl ProviderPacing {
    /// `Some((problem, wait))` while the binding's provider calls must wait.
    fn gate(&self, uid: &str) -> Option<(Problem, Duration)> {
        let map = self.0.lock().ok()?;
        let (next, _, problem) = map.get(uid)?;
        let now = Instant::now();
        (now < *next).then(|| (problem.clone(), *next - now))
    }

    /// Records a failure; returns how long to wait before the next call.
    fn failed(&self, uid: &str, problem: &Problem) -> Duration {
        let Ok(mut map) = self.0.lock() else {
            return RETRY_MIN;
        };
        let attempts = map.get(uid).map_or(0, |(_, n, _)| *n) + 1;
        let delay = RETRY_MIN
            .saturating_mul(1u32 << (attempts - 1).min(10))
            .min(RETRY_MAX);
        map.insert(
            uid.to_owned(),
            (Instant::now() + delay, attempts, problem.clone()),
        );
        delay
    }

    fn succeeded(&self, uid: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(uid);
        }
    }
}

static PACING: std::sync::LazyLock<ProviderPacing> =
    std::sync::LazyLock::new(ProviderPacing::default);

/// Runs the ChannelBinding controller until `shutdown` resolves.
/// `bindings` is the watch that fills `ctx.bindings` (one cache of the bindings, shared
/// with the Tenant controller).
pub async fn run(
    ctx: Arc<Context>,
    bindings: BoxStream<'static, Result<ChannelBinding, watcher::Error>>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let ns = ctx.config.control_namespace.clone();
    fn refs(
        store: &Store<ChannelBinding>,
        f: impl Fn(&ChannelBinding) -> bool,
    ) -> Vec<ObjectRef<ChannelBinding>> {
        store
            .state()
            .iter()
            .filter(|b| f(b))
            .map(|b| ObjectRef::from_obj(b.as_ref()))
            .collect()
    }
    // Only what the reconcile reads may requeue it: a Subprocessor's spec and its notice
    // records (not the counts in its conditions, which change with every new tenant and
    // used to reconcile every binding each time), a Tenant's spec (not its status).
    let (sp_changed, tenant_changed) = (Changed::default(), Changed::default());
    let (by_sp, by_tenant, by_secret, by_deploy, by_namespace) = (
        ctx.bindings.clone(),
        ctx.bindings.clone(),
        ctx.bindings.clone(),
        ctx.bindings.clone(),
        ctx.bindings.clone(),
    );
    let deploy_changed = Changed::default();
    let (peer_changed, by_peer) = (Changed::default(), ctx.bindings.clone());
    let providers = ctx.config.providers.clone();
    let shard = ctx.shard.clone();
    // A binding's own status patches do not requeue it; its spec, metadata and deletion do.
    Controller::for_stream(
        bindings.predicate_filter(binding_trigger, Default::default()),
        ctx.bindings.clone(),
    )
    .with_config(ControllerConfig::default().concurrency(concurrency))
    .watches_recovering(
        Api::<Subprocessor>::all(client.clone()),
        WatcherConfig::default(),
        move |sp| {
            let status = sp.status.as_ref();
            let key = (
                sp.metadata.generation,
                status.and_then(|s| s.material_hash.clone()),
                status.and_then(|s| s.material_changed_at.as_ref().map(|t| t.0.as_second())),
            );
            if !sp_changed.passes(&sp, key) {
                return Vec::new();
            }
            let name = sp.name_any();
            refs(&by_sp, |b| b.spec.subprocessor_ref.name == name)
        },
    )
    .watches_recovering(
        Api::<Tenant>::all(client.clone()),
        WatcherConfig::default(),
        move |t| {
            // The spec, and the notice records the Subprocessor controller keeps in the
            // tenant's status (a delivered notice starts the objection window).
            // And whether this process serves it: a Tenant relabelled into this shard
            // brings its bindings here.
            let notices = crate::controller::subprocessor::notice::outcomes(&t);
            let served = shard.serves(Some(t.labels()));
            if !tenant_changed.passes(&t, (t.metadata.generation, notices, served)) {
                return Vec::new();
            }
            let name = t.name_any();
            refs(&by_tenant, |b| b.spec.tenant_ref.name == name)
        },
    )
    // The source Secrets and provider tokens live in the control namespace. Metadata
    // only (`Api<PartialObjectMeta<_>>` makes metadata requests): a change of a
    // Secret's data is an event all the same, and no value streams through the
    // operator (the reconcile reads the one source it needs).
    .watches_recovering(
        Api::<PartialObjectMeta<Secret>>::namespaced(client.clone(), &ns),
        WatcherConfig::default(),
        move |s| {
            let name = s.name_any();
            refs(&by_secret, |b| {
                b.spec
                    .credential
                    .secret_ref
                    .as_ref()
                    .is_some_and(|r| r.name == name)
                    || b.spec
                        .credential
                        .provider_api
                        .as_ref()
                        .and_then(|p| providers.get(p.name.as_deref()?))
                        .is_some_and(|p| p.auth_secret_ref.name == name)
            })
        },
    )
    // A sender rollout finishing is what lets a rotation complete: only a change of the
    // rolled-out credential versions passes, not every step of a rollout.
    .watches_recovering(
        Api::<Deployment>::all(client.clone()),
        WatcherConfig::default().labels(TENANT_LABEL),
        move |d| {
            if d.name_any() != SENDER || !deploy_changed.passes(&d, rolled_out_versions(&d)) {
                return Vec::new();
            }
            let Some(tenant) = d.labels().get(TENANT_LABEL).cloned() else {
                return Vec::new();
            };
            refs(&by_deploy, |b| b.spec.tenant_ref.name == tenant)
        },
    )
    // The first credential goes into the tenant's namespace: its creation (by the
    // Tenant controller) is what a new binding waits for.
    // Its status updates while it is deleted (half a dozen, from the namespace
    // controller) do not pass.
    .watches_on_change(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        WatcherConfig::default().labels(TENANT_LABEL),
        |n| crate::controller::lifecycle_key(n.meta()),
        move |n| {
            let Some(tenant) = n.labels().get(TENANT_LABEL).cloned() else {
                return Vec::new();
            };
            refs(&by_namespace, |b| b.spec.tenant_ref.name == tenant)
        },
    )
    // A binding created, or deleted (or being deleted), changes which binding holds its
    // tenant's channel (decide::held_by): the others of that tenant and channel look
    // again, so a duplicate takes over once the holder goes. Status writes do not pass.
    .watches_recovering(
        Api::<ChannelBinding>::namespaced(client.clone(), &ns),
        WatcherConfig::default(),
        move |changed| {
            let (tenant, channel) = (changed.spec.tenant_ref.name.clone(), changed.spec.channel);
            if !peer_changed.passes(&changed, (&tenant, channel)) {
                return Vec::new();
            }
            refs(&by_peer, |b| {
                b.spec.tenant_ref.name == tenant
                    && b.spec.channel == channel
                    && b.metadata.name != changed.metadata.name
            })
        },
    )
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(super::log_queue_errors(CONTROLLER))
    .await;
}

/// What of a ChannelBinding triggers its reconcile: everything but its status (which
/// Herald writes) and the bookkeeping that changes with every write.
fn binding_trigger(b: &ChannelBinding) -> Option<u64> {
    super::metadata_trigger(b.meta())
}

async fn reconcile(b: Arc<ChannelBinding>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = info_span!("reconcile", controller = CONTROLLER, binding = %b.name_any(), tenant = %b.spec.tenant_ref.name);
    ctx.metrics
        .reconcile(
            CONTROLLER,
            super::catch_panic(reconcile_inner(&b, &ctx).instrument(span)),
        )
        .await
}

fn error_policy(b: Arc<ChannelBinding>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(CONTROLLER, error.category());
    warn!(binding = %b.name_any(), tenant = %b.spec.tenant_ref.name, category = error.category(), error = %crate::error_chain(error), "reconcile failed; retrying");
    Action::requeue(REQUEUE_ERROR)
}

/// The credential source as read now.
enum Source {
    /// secretRef: the data to copy, its keyed hash and the digest status held before
    /// hashes were keyed (to migrate without a rotation).
    Secret {
        data: BTreeMap<String, ByteString>,
        hash: String,
        legacy: String,
    },
    /// providerApi: where to mint and revoke, and the bearer token.
    Provider { url: String, token: String },
}

/// One existing credential Secret of the channel in the tenant's namespace.
struct Version {
    name: String,
    version: i64,
    ours: bool,
    provider_id: Option<String>,
    source_hash: Option<String>,
}

async fn reconcile_inner(b: &ChannelBinding, ctx: &Context) -> Result<Action, Error> {
    let name = b.name_any();
    let tenant_name = &b.spec.tenant_ref.name;
    // Read first: whose shard the binding is in comes from its Tenant's labels, and
    // nothing (pause, deletion, status) is done for another shard's binding.
    let tenant = Api::<Tenant>::all(ctx.client.clone())
        .get_opt(tenant_name)
        .await
        .map_err(Error::kube(format!("get Tenant {tenant_name}")))?;
    if !ctx.shard.serves(tenant.as_ref().map(|t| t.labels())) {
        // Its Tenant's labels changing is what brings it back (see `run`).
        return Ok(Action::await_change());
    }
    if super::pause::is_paused(b.annotations()) {
        return paused(b, ctx).await;
    }
    let now = Timestamp::now();
    if b.metadata.deletion_timestamp.is_some() {
        return remove(b, ctx, now).await;
    }
    // Adding it is an event that reconciles the binding again at once: the work is
    // done then, not twice (the retry is only a safety net).
    if finalizer::ensure(&bindings_api(ctx), b, FINALIZER, ctx, CONTROLLER).await? {
        return Ok(Action::requeue(REQUEUE_WAITING));
    }
    let sp_name = &b.spec.subprocessor_ref.name;
    let channel = channel_name(b);

    let sp = Api::<Subprocessor>::all(ctx.client.clone())
        .get_opt(sp_name)
        .await
        .map_err(Error::kube(format!("get Subprocessor {sp_name}")))?;
    let mut state = b.status.clone().unwrap_or_default();
    let Some(tenant) = tenant else {
        let verdict = effective::Verdict {
            effective: false,
            reason: reason::TENANT_NOT_FOUND,
            message: format!("Tenant {tenant_name} does not exist"),
            recheck_at: None,
        };
        let status = decide::status(
            StatusInputs {
                binding: b,
                state,
                tenant_found: false,
                verdict: &verdict,
                problem: None,
                stall_after: ctx.config.health.stall_after(),
            },
            now,
        );
        publish_status(b, status, ctx).await?;
        return Ok(Action::requeue(super::resync(&name)));
    };
    // A terminated tenant (or one being deleted, which erases it the same way): revoke
    // and stop, whatever the Subprocessor or the rotation state says. A terminatedAt in
    // the future is not a termination yet (the Tenant says TerminatedAtInFuture).
    if crate::controller::tenant::decide::termination(&tenant, now)
        == crate::controller::tenant::decide::Termination::Accepted
        || tenant.metadata.deletion_timestamp.is_some()
    {
        return terminate(b, ctx, state, now).await;
    }
    let verdict = effective::verdict(
        sp.as_ref(),
        sp_name,
        &tenant,
        Some(b.spec.channel),
        &ctx.config.regions,
        now,
    );
    // Only the oldest binding of a tenant's channel delivers ([`decide::held_by`]): a
    // duplicate reads no source, mints and copies nothing, and names the one that holds
    // the channel. The Tenant controller mounts the holder only.
    let all = ctx.bindings.state();
    if let Some(first) = decide::held_by(b, all.iter().map(AsRef::as_ref)) {
        let status = decide::status(
            StatusInputs {
                binding: b,
                state,
                tenant_found: true,
                verdict: &verdict,
                problem: Some(decide::duplicate(b, first)),
                stall_after: ctx.config.health.stall_after(),
            },
            now,
        );
        publish_status(b, status, ctx).await?;
        return Ok(Action::requeue(super::resync(&name)));
    }
    drop(all);
    let tenant_ns = namespace_name(tenant_name);
    let mut problem: Option<Problem> = None;
    let mut wait = super::resync(&b.name_any());

    let source = match read_source(ctx, b).await? {
        Ok(s) => Some(s),
        Err(p) => {
            problem = Some(p);
            None
        }
    };
    let (provider_url, token) = match &source {
        Some(Source::Provider { url, token }) => (Some(url.as_str()), Some(token.as_str())),
        _ => (None, None),
    };
    let provider = ProviderClient::new(ctx.http.clone());
    let uid = b.metadata.uid.clone().unwrap_or_default();
    let gate = match &source {
        Some(Source::Provider { .. }) => PACING.gate(&uid),
        _ => None,
    };
    let mut provider_called = false;
    let versions = list_versions(ctx, &tenant_ns, &channel, &name).await?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &tenant_ns);
    let mut deleted: Vec<String> = Vec::new();

    // 1. Finish a pending rotation once no sender uses the previous version.
    if let Some(prev) = state.previous_credential_version {
        let deployment = Api::<Deployment>::namespaced(ctx.client.clone(), &tenant_ns)
            .get_opt(SENDER)
            .await
            .map_err(Error::kube(format!("get Deployment {tenant_ns}/{SENDER}")))?;
        let rolled = deployment.as_ref().map(rolled_out_versions);
        match decide::previous_use(&channel, prev, rolled.as_ref().map(Option::as_ref)) {
            PreviousUse::InUse => wait = wait.min(REQUEUE_WAITING),
            PreviousUse::Free => {
                let since = state.rolled_out_at.get_or_insert(Time(now)).0;
                let due = since.checked_add(decide::overlap(b)).unwrap_or(since);
                if now < due {
                    wait = wait.min(until(now, due));
                } else if let (Some(_), Some((p, _))) =
                    (&state.previous_provider_credential_id, &gate)
                {
                    problem = Some(p.clone());
                } else {
                    let revoked =
                        match (&state.previous_provider_credential_id, provider_url, token) {
                            (Some(id), Some(url), Some(token)) => {
                                provider_called = true;
                                provider.revoke(url, token, id).await
                            }
                            (Some(_), _, _) => Err(crate::provider::ProviderError::Transport {
                                op: "revoke",
                                class: "no provider token",
                            }),
                            (None, _, _) => Ok(()),
                        };
                    match revoked {
                        Ok(()) => {
                            if let Some(old) = state.previous_credential_secret.take() {
                                delete_secret(ctx, &secrets, &old).await?;
                                deleted.push(old);
                            }
                            state.previous_credential_version = None;
                            state.previous_provider_credential_id = None;
                            state.rolled_out_at = None;
                            ctx.metrics.rotation("completed");
                            info!(version = ?state.credential_version, previous = prev, "rotation complete: previous credential revoked and deleted");
                            event(ctx, b, EventType::Normal, "RotationCompleted", format!(
                                "every sender runs on version {}; version {prev} revoked and its Secret deleted",
                                state.credential_version.unwrap_or_default()
                            )).await;
                        }
                        Err(e) => {
                            ctx.metrics.rotation("failed");
                            warn!(category = e.category(), error = %e, "cannot revoke the previous credential; retrying");
                            problem = Some(Problem {
                                reason: decide::provider_reason(&e),
                                message: format!("cannot revoke version {prev}: {e}"),
                            });
                        }
                    }
                }
            }
        }
    }

    // 2. Start a rotation that is due, while the Subprocessor is effective. A status
    // from before keyed hashes holds the legacy digest of the same source: replaced,
    // not taken for a change.
    if let Some(Source::Secret { hash, legacy, .. }) = &source
        && let Some(h) = decide::migrated_source_hash(state.source_hash.as_deref(), legacy, hash)
    {
        state.source_hash = Some(h);
    }
    let source_hash = match &source {
        Some(Source::Secret { hash, .. }) => Some(hash.as_str()),
        _ => None,
    };
    let current = state.credential_version.unwrap_or(0);
    let trigger = decide::trigger(
        &ChannelBinding {
            status: Some(state.clone()),
            ..b.clone()
        },
        source_hash,
        now,
    );
    if let (Some(trigger), true, None, Some(source)) =
        (trigger, verdict.effective, &problem, &source)
        && namespace_writable(ctx, &tenant_ns, &tenant).await?
    {
        // A Secret newer than status is the product of a rotation whose status write was
        // lost (a crash): adopt it instead of minting another credential.
        let orphan = versions
            .iter()
            .filter(|v| v.ours && v.version > current)
            .max_by_key(|v| v.version);
        let next = versions
            .iter()
            .map(|v| v.version)
            .max()
            .unwrap_or(0)
            .max(current)
            + 1;
        let created = match (orphan, &gate) {
            (Some(v), _) => Ok((v.version, v.provider_id.clone(), v.source_hash.clone())),
            (None, Some((p, _))) => Err(p.clone()),
            (None, None) => {
                provider_called = matches!(source, Source::Provider { .. });
                create_version(
                    ctx,
                    &provider,
                    b,
                    &tenant,
                    &channel,
                    next,
                    source,
                    &mut state.unstored_credentials,
                )
                .await
                    .map(|(id, hash)| (next, id, hash))
                    .map_err(|e| {
                        ctx.metrics.rotation("failed");
                        warn!(category = e.category(), error = %e, trigger = trigger.describe(), "cannot mint a new credential; the current one stays");
                        Problem {
                            reason: e.reason(),
                            message: match trigger {
                                Trigger::Initial => format!("cannot mint the first credential: {e}"),
                                _ => format!("rotation due ({}) but {e}", trigger.describe()),
                            },
                        }
                    })
            }
        };
        match created {
            Ok((version, id, hash)) => {
                let (rest, revoke) = decide::stored(
                    std::mem::take(&mut state.unstored_credentials),
                    id.as_deref(),
                );
                state.unstored_credentials =
                    revoke_unstored(&provider, provider_url.zip(token), rest, revoke).await;
                if state.credential_version.is_some() {
                    state.previous_credential_version = state.credential_version;
                    state.previous_credential_secret = state.credential_secret.take();
                    state.previous_provider_credential_id = state.provider_credential_id.take();
                }
                state.credential_version = Some(version);
                state.credential_secret = Some(decide::secret_name(&channel, version));
                state.provider_credential_id = id;
                state.source_hash = hash;
                state.last_rotation = Some(Time(now));
                state.rolled_out_at = None;
                state.last_handled_rotate_at = decide::requested(b).map(str::to_owned);
                ctx.metrics.rotation("started");
                info!(
                    version,
                    trigger = trigger.describe(),
                    "credential version created"
                );
                event(
                    ctx,
                    b,
                    EventType::Normal,
                    reason::ROTATING,
                    format!(
                        "credential version {version} created ({}); the senders roll to it",
                        trigger.describe()
                    ),
                )
                .await;
                wait = wait.min(REQUEUE_WAITING);
            }
            Err(p) => problem = Some(p),
        }
    } else if trigger.is_some() && verdict.effective && problem.is_none() {
        // The tenant namespace is not there yet: its creation wakes us (namespace
        // watch); the requeue is only a safety net. A 30 s poll of 2,000 waiting
        // bindings used to fill the queue that the woken ones wait in.
        wait = wait.min(REQUEUE_NAMESPACE);
    }

    // 3. Versions older than the current one that no rotation still needs are leftovers
    // (e.g. of a lost status write): revoke what the provider issued, then delete.
    if let Some(current) = state.credential_version {
        for v in versions.iter().filter(|v| {
            v.ours
                && v.version < current
                && Some(v.version) != state.previous_credential_version
                && !deleted.contains(&v.name)
        }) {
            if let Some(id) = &v.provider_id {
                let (Some(url), Some(token)) = (provider_url, token) else {
                    continue;
                };
                if let Err(e) = provider.revoke(url, token, id).await {
                    warn!(category = e.category(), error = %e, secret = %v.name, "cannot revoke a stale credential; retrying");
                    continue;
                }
            }
            delete_secret(ctx, &secrets, &v.name).await?;
            info!(secret = %v.name, "deleted a stale credential version");
        }
    }

    // 4. Status, metrics, when to look again.
    match (&problem, &gate) {
        (Some(p), _) if provider_called && decide::is_provider_call_failure(p.reason) => {
            wait = wait.min(PACING.failed(&uid, p));
        }
        (_, Some((_, remaining))) if !provider_called => wait = wait.min(*remaining),
        _ if provider_called => PACING.succeeded(&uid),
        _ => {}
    }
    // A tenant namespace that refused the credential Secret (a quota, an admission
    // policy, RBAC not yet honoured) sends no event when it stops refusing: nothing of
    // it is watched. So the next attempt is polled. (A relist used to wake such a
    // binding by accident, as part of requeueing everything; relists no longer do.)
    if problem
        .as_ref()
        .is_some_and(|p| p.reason == reason::CREDENTIAL_NOT_STORED)
    {
        wait = wait.min(REQUEUE_WAITING);
    }
    if let Some(at) = verdict.recheck_at {
        wait = wait.min(until(now, at));
    }
    let status = decide::status(
        StatusInputs {
            binding: b,
            state,
            tenant_found: true,
            verdict: &verdict,
            problem,
            stall_after: ctx.config.health.stall_after(),
        },
        now,
    );
    if let Some(at) = status.next_rotation.as_ref() {
        wait = wait.min(until(now, at.0));
    }
    record_metrics(ctx, b, &channel, &status);
    publish_status(b, status, ctx).await?;
    Ok(Action::requeue(wait))
}

/// The binding's Tenant is terminated: revokes every credential Herald issued for the
/// binding at the provider (current, previous, leftover versions), then records
/// `status.credentialsRevokedAt`, once. Never rotates again. A secretRef binding has
/// nothing Herald could revoke: revoking the source is up to whoever issued it, so it is
/// recorded as revoked at once. Idempotent: a revocation repeated after a crash answers
/// 404, which counts as revoked.
async fn terminate(
    b: &ChannelBinding,
    ctx: &Context,
    mut state: ChannelBindingStatus,
    now: Timestamp,
) -> Result<Action, Error> {
    let channel = channel_name(b);
    // No next rotation any more: drop its series so no rotation alert fires.
    ctx.metrics
        .credential_next_rotation
        .remove(&metric_labels(b, &channel));
    let mut problem: Option<Problem> = None;
    let mut wait = super::resync(&b.name_any());
    if state.credentials_revoked_at.is_none() {
        let tenant_ns = namespace_name(&b.spec.tenant_ref.name);
        let versions = list_versions(ctx, &tenant_ns, &channel, &b.name_any()).await?;
        let revoked = match revoke_all(b, ctx, &state, &versions).await? {
            Ok(_) => true,
            Err((p, retry, attempt)) => {
                // Only a call that failed counts as an attempt (not a wait for the
                // backoff): the tenant's erasure reports these.
                if let Some(error) = attempt {
                    state.revocation_failure = Some(decide::revocation_failed(
                        state.revocation_failure.take(),
                        &channel,
                        error,
                        now,
                    ));
                }
                problem = Some(p);
                wait = retry;
                false
            }
        };
        if revoked {
            state.revocation_failure = None;
            state.credentials_revoked_at = Some(Time(now));
            state.previous_credential_version = None;
            state.previous_credential_secret = None;
            state.previous_provider_credential_id = None;
            state.unstored_credentials.clear();
            state.rolled_out_at = None;
            info!("tenant terminated: credentials revoked; the binding is never rotated again");
            event(
                ctx,
                b,
                EventType::Normal,
                reason::CREDENTIALS_REVOKED,
                format!(
                    "Tenant {} is terminated: every credential of the channel is revoked",
                    b.spec.tenant_ref.name
                ),
            )
            .await;
        }
    }
    let status = decide::terminated_status(b, state, problem, now);
    publish_status(b, status, ctx).await?;
    Ok(Action::requeue(wait))
}

/// Revokes at the provider every credential Herald issued for the binding (current,
/// previous, and the leftovers among `versions`, the channel's Secrets in the tenant
/// namespace). `Ok(Ok(n))`: all revoked, `n`
/// of them now; a secretRef binding has nothing Herald could revoke (revoking the source
/// is up to whoever issued it), so it answers at once. `Ok(Err((problem, retry)))`: not
/// yet, and when to try again. Idempotent: a repeated revocation answers 404, which
/// counts as revoked. The third element of a failure is the class of the error of a
/// call that failed now (`None`: no call was made, e.g. waiting for the backoff).
async fn revoke_all(
    b: &ChannelBinding,
    ctx: &Context,
    state: &ChannelBindingStatus,
    versions: &[Version],
) -> Result<Result<usize, (Problem, Duration, Option<&'static str>)>, Error> {
    if b.spec.credential.provider_api.is_none() {
        return Ok(Ok(0));
    }
    let uid = b.metadata.uid.clone().unwrap_or_default();
    if let Some((p, retry)) = PACING.gate(&uid) {
        return Ok(Err((p, retry, None)));
    }
    let leftovers: Vec<&str> = versions
        .iter()
        .filter(|v| v.ours)
        .filter_map(|v| v.provider_id.as_deref())
        .collect();
    let ids = decide::ids_to_revoke(state, leftovers);
    if ids.is_empty() {
        return Ok(Ok(0));
    }
    match read_source(ctx, b).await? {
        Ok(Source::Provider { url, token }) => {
            let provider = ProviderClient::new(ctx.http.clone());
            for id in &ids {
                if let Err(e) = provider.revoke(&url, &token, id).await {
                    warn!(category = e.category(), error = %e, "cannot revoke a credential of the channel; retrying");
                    let p = Problem {
                        reason: decide::provider_reason(&e),
                        message: format!("cannot revoke its credentials at the provider: {e}"),
                    };
                    let retry = PACING.failed(&uid, &p);
                    return Ok(Err((p, retry, Some(e.category()))));
                }
            }
            PACING.succeeded(&uid);
            Ok(Ok(ids.len()))
        }
        // The spec names no provider now: nothing Herald can call.
        Ok(Source::Secret { .. }) => Ok(Ok(0)),
        Err(p) => Ok(Err((
            Problem {
                reason: p.reason,
                message: format!("cannot revoke its credentials: {}", p.message),
            },
            REQUEUE_WAITING,
            Some(p.reason),
        ))),
    }
}

/// The binding is being deleted: revokes what Herald issued at the provider (unless the
/// tenant's termination already did), deletes the binding's credential Secrets in the
/// tenant namespace, drops its metric series, then releases [`FINALIZER`]. The Tenant
/// controller has already stopped mounting it (a deleting binding is not eligible).
/// Until the provider answers, the binding stays, with the reason in its status: a
/// deleted channel must not leave a live credential behind. Removing the finalizer by
/// hand gives the revocation up.
async fn remove(b: &ChannelBinding, ctx: &Context, now: Timestamp) -> Result<Action, Error> {
    if !finalizer::has(b, FINALIZER) {
        return Ok(Action::await_change());
    }
    let state = b.status.clone().unwrap_or_default();
    let channel = channel_name(b);
    let tenant_ns = namespace_name(&b.spec.tenant_ref.name);
    let versions = list_versions(ctx, &tenant_ns, &channel, &b.name_any()).await?;
    let revoked = match state.credentials_revoked_at {
        Some(_) => 0,
        None => match revoke_all(b, ctx, &state, &versions).await? {
            Ok(n) => n,
            Err((problem, retry, _)) => {
                let status = decide::deleting_status(b, state, &problem, now);
                publish_status(b, status, ctx).await?;
                return Ok(Action::requeue(retry));
            }
        },
    };
    let mut deleted = 0;
    // A terminating namespace takes its Secrets with it.
    if namespace_ready(ctx, &tenant_ns).await? {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &tenant_ns);
        for v in versions.iter().filter(|v| v.ours) {
            delete_secret(ctx, &secrets, &v.name).await?;
            deleted += 1;
        }
    }
    forget_metrics(ctx, b, &channel);
    // News only when something was still live: a binding swept by the tenant's erasure
    // (revoked already, namespace gone) goes quietly.
    if revoked + deleted > 0 {
        info!(
            revoked,
            secrets = deleted,
            "binding deleted: its credentials revoked and its Secrets deleted"
        );
        event(
            ctx,
            b,
            EventType::Normal,
            reason::CREDENTIALS_REVOKED,
            format!(
                "ChannelBinding deleted: {revoked} credential(s) revoked at the provider, {deleted} credential Secret(s) deleted from {tenant_ns}"
            ),
        )
        .await;
    }
    finalizer::release(&bindings_api(ctx), b, FINALIZER, ctx, CONTROLLER).await?;
    PACING.succeeded(b.metadata.uid.as_deref().unwrap_or_default());
    Ok(Action::await_change())
}

/// Drops the binding's metric series, so a deleted binding raises no rotation alert.
fn forget_metrics(ctx: &Context, b: &ChannelBinding, channel: &str) {
    let labels = metric_labels(b, channel);
    ctx.metrics.credential_last_rotation.remove(&labels);
    ctx.metrics.credential_next_rotation.remove(&labels);
}

/// Reads the source: the Secret to copy, or the provider's URL and token. `Ok(Err)` when
/// it is unusable (missing Secret or key): a condition, not a reconcile error.
async fn read_source(ctx: &Context, b: &ChannelBinding) -> Result<Result<Source, Problem>, Error> {
    let ns = &ctx.config.control_namespace;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let invalid = |message: String| {
        Ok(Err(Problem {
            reason: reason::CREDENTIAL_SOURCE_INVALID,
            message,
        }))
    };
    if let Some(r) = &b.spec.credential.secret_ref {
        // The source must be the tenant's own (labelled for it): otherwise a binding for
        // one tenant could copy another tenant's credential into its namespace.
        let secret = match ownership::read(ctx, &b.spec.tenant_ref.name, &r.name).await? {
            ownership::Owned::Yes(secret) => *secret,
            ownership::Owned::Missing => {
                return invalid(format!("the source Secret {ns}/{} does not exist", r.name));
            }
            ownership::Owned::NotOwned(message) => {
                return Ok(Err(Problem {
                    reason: reason::SOURCE_NOT_OWNED_BY_TENANT,
                    message,
                }));
            }
        };
        let mut data = secret.data.unwrap_or_default();
        for (k, v) in secret.string_data.unwrap_or_default() {
            data.insert(k, ByteString(v.into_bytes()));
        }
        if data.is_empty() {
            return invalid(format!("the source Secret {ns}/{} has no data", r.name));
        }
        let uid = b.metadata.uid.as_deref().unwrap_or_default();
        let key = match hash_key::get(ctx).await {
            Ok(k) => k,
            Err(hash_key::KeyError::Kube(e)) => return Err(e),
            Err(e @ hash_key::KeyError::Entropy) => {
                return Ok(Err(Problem {
                    reason: reason::PROVIDER_FAILED,
                    message: e.to_string(),
                }));
            }
        };
        let hash = decide::source_hash(&key, uid, &data);
        let legacy = decide::legacy_source_hash(uid, &data);
        return Ok(Ok(Source::Secret { data, hash, legacy }));
    }
    if let Some(p) = &b.spec.credential.provider_api {
        // Only a provider of the platform's configuration: a manifest names one, it
        // cannot choose where a token goes or which Secret is the token.
        let name = p.name.as_deref().unwrap_or_default();
        let Some(provider) = ctx.config.providers.get(name) else {
            return Ok(Err(Problem {
                reason: reason::PROVIDER_NOT_CONFIGURED,
                message: format!(
                    "provider {name:?} is not in the operator configuration (providers); nothing is sent"
                ),
            }));
        };
        let r = &provider.auth_secret_ref;
        let secret = api
            .get_opt(&r.name)
            .await
            .map_err(Error::kube(format!("get Secret {}", r.name)))?;
        let token = secret
            .and_then(|s| s.data)
            .and_then(|d| d.get(&r.key).cloned())
            .and_then(|v| String::from_utf8(v.0).ok())
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        return match token {
            Some(token) => Ok(Ok(Source::Provider {
                url: provider.base_url.clone(),
                token,
            })),
            None => invalid(format!(
                "the token of provider {name} ({ns}/{} key {}) does not exist",
                r.name, r.key
            )),
        };
    }
    invalid("credential has neither secretRef nor providerApi".to_owned())
}

/// The channel's credential Secrets in the tenant namespace (of any binding, so a
/// version number is never reused).
async fn list_versions(
    ctx: &Context,
    ns: &str,
    channel: &str,
    binding: &str,
) -> Result<Vec<Version>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let list = match api
        .list_metadata(&ListParams::default().labels(&format!("{CHANNEL_LABEL}={channel}")))
        .await
    {
        Ok(list) => list,
        // The operator sees a tenant namespace's Secrets only through the binding it
        // makes in the namespaces it creates (tenant::access). Refused in one that is
        // not Herald's (someone else's `tenant-<name>`, or none): Herald never wrote a
        // credential there. In Herald's own, the binding is yet to come: retry.
        Err(kube::Error::Api(s)) if s.code == 403 && !heralds_namespace(ctx, ns).await? => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(Error::kube(format!("list credential Secrets in {ns}"))(e)),
    };
    Ok(list
        .items
        .into_iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter_map(|s| {
            let a = s.annotations();
            Some(Version {
                name: s.name_any(),
                version: a.get(VERSION_ANNOTATION)?.parse().ok()?,
                ours: s.labels().get(BINDING_LABEL).map(String::as_str) == Some(binding),
                provider_id: a.get(PROVIDER_ID_ANNOTATION).cloned(),
                source_hash: a.get(SOURCE_HASH_ANNOTATION).cloned(),
            })
        })
        .collect())
}

/// Whether namespace `ns` exists and carries Herald's marker (it created it).
async fn heralds_namespace(ctx: &Context, ns: &str) -> Result<bool, Error> {
    let found = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(ns)
        .await
        .map_err(Error::kube(format!("get Namespace {ns}")))?;
    Ok(found.is_some_and(|n| {
        n.labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str)
            == Some(crate::controller::MANAGED_BY)
    }))
}

/// Whether the tenant's namespace exists and is not terminating.
async fn namespace_ready(ctx: &Context, ns: &str) -> Result<bool, Error> {
    let found = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(ns)
        .await
        .map_err(Error::kube(format!("get Namespace {ns}")))?;
    Ok(found.is_some_and(|n| n.metadata.deletion_timestamp.is_none()))
}

/// Whether a new credential may be written to the tenant's namespace: it exists, is not
/// terminating, and is the one Herald created for this Tenant. A `tenant-<name>` made by
/// someone else gets no credential: the Tenant is Stalled (`NamespaceNotOwned`) and
/// nothing of Herald's is written there.
async fn namespace_writable(ctx: &Context, ns: &str, tenant: &Tenant) -> Result<bool, Error> {
    use crate::controller::tenant::erasure::scope::{NamespaceOwner, namespace_owner};
    let found = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(ns)
        .await
        .map_err(Error::kube(format!("get Namespace {ns}")))?;
    let uid = tenant.metadata.uid.as_deref().unwrap_or_default();
    let live = found.filter(|n| n.metadata.deletion_timestamp.is_none());
    Ok(matches!(
        namespace_owner(live.as_ref(), uid),
        NamespaceOwner::Herald
    ))
}

/// Revokes the `revoke` ids (minted credentials that are in no Secret) at the provider
/// (`url`, `token`) and returns `rest` without those it revoked: a failed revocation
/// stays recorded and is tried again at the next store, the binding's deletion or its
/// tenant's termination.
async fn revoke_unstored(
    provider: &ProviderClient,
    endpoint: Option<(&str, &str)>,
    mut rest: Vec<UnstoredCredential>,
    revoke: Vec<String>,
) -> Vec<UnstoredCredential> {
    let Some((url, token)) = endpoint else {
        return rest;
    };
    for id in revoke {
        match provider.revoke(url, token, &id).await {
            Ok(()) => {
                info!("revoked a minted credential that was never stored");
                rest.retain(|u| u.provider_credential_id != id);
            }
            Err(e) => warn!(
                category = e.category(),
                "cannot revoke a minted credential that was never stored; retrying later"
            ),
        }
    }
    rest
}

/// Creates the credential Secret of `version`: copies the source or mints at the
/// provider. Returns the provider id and the source hash it recorded. A minted
/// credential joins `unstored` (the binding's `unstoredCredentials`), and is recorded
/// in the binding's status before its Secret is created.
#[allow(clippy::too_many_arguments)]
async fn create_version(
    ctx: &Context,
    provider: &ProviderClient,
    b: &ChannelBinding,
    tenant: &Tenant,
    channel: &str,
    version: i64,
    source: &Source,
    unstored: &mut Vec<UnstoredCredential>,
) -> Result<(Option<String>, Option<String>), VersionError> {
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    let (data, id, hash) = match source {
        Source::Secret { data, hash, .. } => (data.clone(), None, Some(hash.clone())),
        Source::Provider { url, token } => {
            // Mint only where the Secret can be stored: a dry-run create of the same
            // Secret (same name, same authorization) first. A tenant namespace whose
            // RoleBinding is not yet honoured answers 403 here, before any credential
            // exists at the provider, instead of after (measured in CI: a mint then
            // revoked and minted again, so version 1 was the provider's second credential).
            probe_secret_store(ctx, b, tenant, channel, version, &pp).await?;
            let uid = b.metadata.uid.as_deref().unwrap_or_default();
            let key = crate::digest::sha256_hex(format!("{uid}:{version}").as_bytes());
            let minted = provider
                .mint(url, token, &b.spec.tenant_ref.name, channel, &key)
                .await?;
            // Recorded before the Secret: a failure or a crash from here on leaves its id
            // in status. Kept in `unstored` even if this write fails, so the reconcile's
            // status write records it.
            *unstored = decide::minted(
                std::mem::take(unstored),
                version,
                &minted.id,
                Timestamp::now(),
            );
            let mut recorded = b.status.clone().unwrap_or_default();
            recorded.unstored_credentials = unstored.clone();
            if let Err(e) = publish_status(b, recorded, ctx).await {
                warn!(error = %e, version, "cannot record the minted credential's id");
                return Err(VersionError::NotRecorded);
            }
            let data = BTreeMap::from([(
                CREDENTIAL_KEY.to_owned(),
                ByteString(minted.secret.into_bytes()),
            )]);
            (data, Some(minted.id), None)
        }
    };
    let secret = decide::credential_secret(SecretInputs {
        binding: b,
        tenant,
        channel,
        version,
        data,
        webhook_key: webhook_key()?,
        provider_id: id.as_deref(),
        source_hash: hash.as_deref(),
    });
    let ns = secret.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    match api.create(&pp, &secret).await {
        Ok(_) => {
            ctx.metrics.wrote(CONTROLLER, "Secret");
            Ok((id, hash))
        }
        // Never log the kube error here: its body could echo the Secret we sent.
        Err(e) => {
            let code = match &e {
                kube::Error::Api(s) => s.code,
                _ => 0,
            };
            warn!(code, secret = %decide::secret_name(channel, version), "cannot create the credential Secret");
            // A minted credential stays recorded in `unstoredCredentials`: the next
            // attempt mints with the same Idempotency-Key and so stores the same one.
            Err(VersionError::NotStored {
                code,
                minted: id.is_some(),
            })
        }
    }
}

/// Why a new credential version could not be created.
#[derive(Debug, thiserror::Error)]
enum VersionError {
    /// The provider (or the OS random source) failed.
    #[error(transparent)]
    Provider(#[from] crate::provider::ProviderError),
    /// The tenant namespace refused the credential Secret (RBAC not yet honoured, a
    /// quota, an admission policy). Only the status code is kept: the API server's
    /// message could echo what was sent.
    #[error("the tenant namespace refused the credential Secret (HTTP {code}){}", if *.minted { "; the credential minted for it is recorded in unstoredCredentials and stored at the next attempt" } else { "; nothing was minted" })]
    NotStored { code: u16, minted: bool },
    /// The minted credential's id could not be written to status before its Secret: no
    /// Secret is created (the next attempt's same Idempotency-Key gets the same one).
    #[error("the minted credential's id could not be recorded in status; retrying")]
    NotRecorded,
}

impl VersionError {
    fn category(&self) -> &'static str {
        match self {
            VersionError::Provider(e) => e.category(),
            VersionError::NotStored { .. } => "not_stored",
            VersionError::NotRecorded => "not_recorded",
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            VersionError::Provider(e) => decide::provider_reason(e),
            VersionError::NotStored { .. } | VersionError::NotRecorded => {
                reason::CREDENTIAL_NOT_STORED
            }
        }
    }
}

/// A dry-run create of version `version`'s credential Secret, without its data: the
/// API server authorizes and admits it exactly like the real create, and stores nothing.
async fn probe_secret_store(
    ctx: &Context,
    b: &ChannelBinding,
    tenant: &Tenant,
    channel: &str,
    version: i64,
    pp: &PostParams,
) -> Result<(), VersionError> {
    let probe = decide::credential_secret(SecretInputs {
        binding: b,
        tenant,
        channel,
        version,
        data: BTreeMap::new(),
        webhook_key: String::new(),
        provider_id: None,
        source_hash: None,
    });
    let ns = probe.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = PostParams {
        dry_run: true,
        ..pp.clone()
    };
    api.create(&pp, &probe).await.map(drop).map_err(|e| {
        let code = match &e {
            kube::Error::Api(s) => s.code,
            _ => 0,
        };
        warn!(code, secret = %decide::secret_name(channel, version), "the credential Secret could not be stored (dry run); not minting");
        VersionError::NotStored {
            code,
            minted: false,
        }
    })
}

/// 32 random bytes from the OS CSPRNG, hex: the webhook signing key the channel's
/// inbound webhooks are verified with. Generated by Herald, so no person ever sees it.
/// Without an OS entropy source there is no key: an error (the rotation waits and the
/// current version stays), never one derived from anything guessable.
fn webhook_key() -> Result<String, crate::provider::ProviderError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| crate::provider::ProviderError::Transport {
        op: "store",
        class: "the OS random source failed; no signing key generated",
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn delete_secret(ctx: &Context, api: &Api<Secret>, name: &str) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            ctx.metrics.wrote(CONTROLLER, "Secret/delete");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube(format!("delete Secret {name}"))(e)),
    }
}

/// The binding's metric labels.
fn metric_labels(b: &ChannelBinding, channel: &str) -> crate::metrics::BindingLabels {
    crate::metrics::BindingLabels {
        binding: b.name_any(),
        tenant: b.spec.tenant_ref.name.clone(),
        channel: channel.to_owned(),
    }
}

fn record_metrics(ctx: &Context, b: &ChannelBinding, channel: &str, s: &ChannelBindingStatus) {
    let labels = metric_labels(b, channel);
    if let Some(t) = &s.last_rotation {
        ctx.metrics
            .credential_last_rotation
            .get_or_create(&labels)
            .set(t.0.as_second());
    }
    if let Some(t) = &s.next_rotation {
        ctx.metrics
            .credential_next_rotation
            .get_or_create(&labels)
            .set(t.0.as_second());
    }
}

/// The ChannelBindings (all in the control namespace).
fn bindings_api(ctx: &Context) -> Api<ChannelBinding> {
    Api::namespaced(ctx.client.clone(), &ctx.config.control_namespace)
}

/// Patches the status when it differs from what is stored; events on transitions.
/// A paused binding: nothing is touched (not even in deletion); status says so, once
/// per generation, so that Argo CD reads Suspended and kstatus is not left waiting.
async fn paused(b: &ChannelBinding, ctx: &Context) -> Result<Action, Error> {
    let current = b.status.clone().unwrap_or_default();
    if let Some(conditions) = crate::controller::pause::conditions(
        &current.conditions,
        current.observed_generation,
        b.metadata.generation,
        "binding",
        Timestamp::now(),
    ) {
        let status = ChannelBindingStatus {
            observed_generation: b.metadata.generation,
            conditions,
            ..current
        };
        publish_status(b, status, ctx).await?;
    }
    Ok(Action::await_change())
}

async fn publish_status(
    b: &ChannelBinding,
    status: ChannelBindingStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let before = b.status.clone().unwrap_or_default();
    crate::controller::status::publish(
        ctx,
        CONTROLLER,
        &bindings_api(ctx),
        b,
        (&before, &before.conditions),
        (&status, &status.conditions),
    )
    .await
}

/// Publishes an event on the binding; failures are logged, never fatal.
async fn event(ctx: &Context, b: &ChannelBinding, type_: EventType, reason: &str, note: String) {
    crate::controller::status::event(ctx, CONTROLLER, b, type_, reason, reason, note).await;
}
