//! The Tenant controller: each tenant's sender stack in `tenant-<name>`, pinned to its
//! allowed regions, with status a platform engineer can read.
//!
//! A reconcile is a pipeline: resolve (retention policy, bindings) → [`decide`] →
//! [`build`] → apply (only what differs) → observe (Deployment, pod placement; evict
//! what runs outside the allowed regions) → [`status`] (patched only when it changed)
//! → events on transitions. The pure steps take no client and are unit-tested.

pub mod access;
pub mod bindings;
pub mod build;
#[cfg(test)]
mod contract;
pub mod data_plane;
pub mod decide;
pub mod destination;
pub mod erasure;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use crate::controller::watch::RecoveringWatches;
use futures::{FutureExt, StreamExt, future};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, Node, Pod, ResourceQuota, Secret, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, EvictParams, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::Config as WatcherConfig;
use kube::runtime::{WatchStreamExt, predicates};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{Instrument, info, info_span, warn};

use self::build::{APP_LABEL, Children, SENDER, namespace_name};
use self::decide::Decision;
use self::status::{Observed, PurgeObserved, SendersObserved, Violation};
use super::apply::apply_if_changed;
use super::{Context, Error, PAUSED_ANNOTATION, TENANT_LABEL, ownership};
use crate::api::v1alpha1::conditions::{self as types, reason};
use crate::api::v1alpha1::{ChannelBinding, RetentionPolicy, Tenant, TenantStatus};
use crate::conditions::Desired;
use crate::retention::Periods;

/// The controller label value in metrics.
const CONTROLLER: &str = "tenant";
/// Region label on nodes.
const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// How soon to look again. Watches wake us on every relevant change (children,
/// bindings, nodes, policies); the periodic requeue is only a safety net, long for a
/// converged tenant and two minutes for one on its way. It was 30 s: at 1,000 new
/// tenants, that poll was most of the Tenant reconciles (17 reads each) in the ramp and
/// slowed the API server the rollouts wait on.
const REQUEUE_CONVERGING: Duration = Duration::from_secs(120);
const REQUEUE_ERROR: Duration = Duration::from_secs(15);
/// How long a new tenant's first sender rollout waits for its channels' first
/// credentials (see [`bindings::awaiting`]); after that the senders start without them.
const FIRST_START_WAIT: k8s_openapi::jiff::SignedDuration =
    k8s_openapi::jiff::SignedDuration::from_secs(300);

/// Runs the Tenant controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    nodes_writer: reflector::store::Writer<PartialObjectMeta<Node>>,
    concurrency: u16,
    selector: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let children = WatcherConfig::default().labels(TENANT_LABEL);
    // Every child carries the tenant label: map it back to its Tenant by that label
    // (owner references would give the child's namespace to a cluster-scoped owner).
    fn by_label<K: Resource>(obj: K) -> Option<ObjectRef<Tenant>> {
        obj.labels().get(TENANT_LABEL).map(|t| ObjectRef::new(t))
    }

    // The region of every node, metadata only. A change of a node's labels (e.g. a
    // relabelled region) re-checks every tenant's pod placement.
    let nodes = reflector::reflector(
        nodes_writer,
        crate::controller::watch::watch(
            Api::<PartialObjectMeta<Node>>::all(client.clone()),
            WatcherConfig::default(),
        ),
    )
    .applied_objects()
    .predicate_filter(predicates::labels, Default::default())
    .filter_map(|r| future::ready(r.ok().map(|_| ())));

    let tenant_watch = match &selector {
        Some(s) => WatcherConfig::default().labels(s),
        None => WatcherConfig::default(),
    };
    // The Tenants, cached without managedFields (half of each object, never read). A
    // reconcile is triggered by what it acts on (spec, metadata, deletion), not by the
    // status it writes itself: that would be one more reconcile per status patch.
    let (tenants, tenants_writer) = reflector::store();
    let tenant_events = reflector::reflector(
        tenants_writer,
        crate::controller::watch::watch(Api::<Tenant>::all(client.clone()), tenant_watch)
            .modify(|t| t.managed_fields_mut().clear()),
    )
    .applied_objects()
    .predicate_filter(tenant_trigger, Default::default());
    let controller = Controller::for_stream(tenant_events, tenants.clone());
    let by_policy = tenants.clone();
    let by_secret = tenants.clone();
    // The stack's objects matter to a tenant until its erasure starts; after that, the
    // namespace's deletion takes each of them with it, and their deletion events (two
    // dozen per tenant) would each reconcile it for nothing. The namespace itself and
    // the erasure Jobs still wake it.
    let stack = move |r: Option<ObjectRef<Tenant>>| {
        r.filter(|r| {
            !tenants.get(r).is_some_and(|t| {
                t.status
                    .as_ref()
                    .and_then(|s| s.erasure.as_ref())
                    .is_some_and(|e| e.erasing_since.is_some())
            })
        })
    };
    let changed = super::Changed::default();
    // Children without a status: any event means something changed (our own apply, a
    // hand edit to correct, a deletion), and metadata is all the mapper needs (an
    // `Api<PartialObjectMeta<_>>` watches metadata only).
    fn meta<K: Resource<DynamicType = ()>>(client: &kube::Client) -> Api<PartialObjectMeta<K>> {
        Api::all(client.clone())
    }
    fn every_change<K, S>(stack: &S) -> impl Fn(K) -> Option<ObjectRef<Tenant>> + use<K, S>
    where
        K: Resource,
        S: Fn(Option<ObjectRef<Tenant>>) -> Option<ObjectRef<Tenant>> + Clone,
    {
        let stack = stack.clone();
        move |obj| stack(by_label(obj))
    }
    // Children with a status written by Kubernetes (a quota's usage, a budget's healthy
    // count, a rollout's progress): an event passes only when `key`, what the reconcile
    // reads of the child, changed (see `Changed`).
    fn key_change<K, S, F, H>(
        changed: &super::Changed,
        stack: &S,
        key: F,
    ) -> impl Fn(K) -> Option<ObjectRef<Tenant>> + use<K, S, F, H>
    where
        K: Resource + Clone + Serialize,
        S: Fn(Option<ObjectRef<Tenant>>) -> Option<ObjectRef<Tenant>> + Clone,
        F: Fn(&K) -> H,
        H: std::hash::Hash,
    {
        let (changed, stack) = (changed.clone(), stack.clone());
        move |obj| {
            if changed.passes(&obj, key(&obj)) {
                stack(by_label(obj))
            } else {
                None
            }
        }
    }
    controller
        .with_config(ControllerConfig::default().concurrency(concurrency))
        // The namespace's creation, deletion and metadata (its owner, its labels): not the
        // namespace controller's status updates while it deletes it.
        .watches_on_change(
            meta::<Namespace>(&client),
            children.clone(),
            |n| super::lifecycle_key(n.meta()),
            by_label,
        )
        .watches_recovering(
            meta::<ConfigMap>(&client),
            children.clone(),
            every_change(&stack),
        )
        .watches_recovering(
            meta::<ServiceAccount>(&client),
            children.clone(),
            every_change(&stack),
        )
        .watches_recovering(
            meta::<Role>(&client),
            children.clone(),
            every_change(&stack),
        )
        .watches_recovering(
            meta::<RoleBinding>(&client),
            children.clone(),
            every_change(&stack),
        )
        .watches_recovering(
            meta::<NetworkPolicy>(&client),
            children.clone(),
            every_change(&stack),
        )
        .watches_recovering(
            meta::<LimitRange>(&client),
            children.clone(),
            every_change(&stack),
        )
        .watches_recovering(
            Api::<ResourceQuota>::all(client.clone()),
            children.clone(),
            key_change(&changed, &stack, without_status),
        )
        .watches_recovering(
            Api::<PodDisruptionBudget>::all(client.clone()),
            children.clone(),
            key_change(&changed, &stack, without_status),
        )
        // What the reconcile reads of the Deployment: its spec and the rollout counts
        // (not the conditions' heartbeat times).
        .watches_recovering(
            Api::<Deployment>::all(client.clone()),
            children.clone(),
            key_change(&changed, &stack, |d: &Deployment| {
                (without_status(d), observe_senders(d))
            }),
        )
        // A purge CronJob's lastSuccessfulTime is the tenant's purge record.
        .watches_recovering(
            Api::<CronJob>::all(client.clone()),
            children.clone(),
            key_change(&changed, &stack, |cj: &CronJob| {
                let success = cj
                    .status
                    .as_ref()
                    .and_then(|s| s.last_successful_time.as_ref())
                    .map(|t| t.0.as_second());
                (without_status(cj), success)
            }),
        )
        // Erasure and export Jobs: their outcome (a condition turning True) is what the
        // erasure waits for, not each pod's progress (during erasure too).
        .watches_recovering(
            Api::<Job>::all(client.clone()),
            children.clone(),
            key_change(&changed, &|r: Option<ObjectRef<Tenant>>| r, |j: &Job| {
                let outcome: Vec<String> = j
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .map(|cs| {
                        cs.iter()
                            .filter(|c| c.status == "True")
                            .map(|c| c.type_.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                (without_status(j), outcome)
            }),
        )
        // Residency needs a pod's node only; its readiness reaches us through the
        // Deployment's status. Pod status updates (several per pod) do not requeue.
        .watches_recovering(
            Api::<Pod>::all(client.clone()),
            WatcherConfig::default().labels(&format!("{APP_LABEL}={SENDER},{TENANT_LABEL}")),
            key_change(&changed, &stack, |p: &Pod| {
                p.spec.as_ref().and_then(|s| s.node_name.clone())
            }),
        )
        .watches_recovering(
            Api::<ChannelBinding>::namespaced(client.clone(), &ctx.config.control_namespace),
            WatcherConfig::default(),
            |b| Some(ObjectRef::new(&b.spec.tenant_ref.name)),
        )
        // A label added to (or taken from) a Secret the tenant names changes SecretsOwned;
        // a Secret labelled for an erased tenant (re-applied by a GitOps tool) is
        // deleted again.
        .watches_recovering(
            Api::<PartialObjectMeta<Secret>>::namespaced(
                client.clone(),
                &ctx.config.control_namespace,
            ),
            WatcherConfig::default(),
            move |secret| {
                let name = secret.name_any();
                let labelled_for = secret.labels().get(TENANT_LABEL).cloned();
                by_secret
                    .state()
                    .into_iter()
                    .filter(|t| {
                        named_secrets(t).any(|n| n == name)
                            || (labelled_for.as_deref() == Some(t.name_any().as_str()) && erased(t))
                    })
                    .map(|t| ObjectRef::from_obj(t.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .watches_recovering(
            Api::<RetentionPolicy>::all(client.clone()),
            WatcherConfig::default(),
            move |p| {
                let name = p.name_any();
                by_policy
                    .state()
                    .into_iter()
                    .filter(|t| t.spec.retention_policy_ref.name == name)
                    .map(|t| ObjectRef::from_obj(t.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_all_on(nodes)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(super::log_queue_errors(CONTROLLER))
        .await;
}

/// Whether the tenant's erasure has verified it gone (from here on, whatever appears
/// labelled for it is deleted again).
fn erased(t: &Tenant) -> bool {
    t.status
        .as_ref()
        .and_then(|s| s.erasure.as_ref())
        .is_some_and(|e| e.verified_at.is_some())
}

/// What of a Tenant triggers its reconcile: see [`super::metadata_trigger`].
fn tenant_trigger(t: &Tenant) -> Option<u64> {
    super::metadata_trigger(t.meta())
}

/// An object as JSON without its status and the metadata that changes on every write:
/// the part a spec or metadata change shows in.
fn without_status<K: Serialize>(obj: &K) -> String {
    let mut v = serde_json::to_value(obj).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        if let Some(m) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
    }
    v.to_string()
}

async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = tenant.name_any();
    let span = info_span!("reconcile", controller = CONTROLLER, tenant = %name);
    ctx.metrics
        .reconcile(
            CONTROLLER,
            super::catch_panic(reconcile_inner(&tenant, &ctx).instrument(span)),
        )
        .await
}

fn error_policy(tenant: Arc<Tenant>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(CONTROLLER, error.category());
    warn!(tenant = %tenant.name_any(), category = error.category(), error = %crate::error_chain(error), "reconcile failed; retrying");
    Action::requeue(REQUEUE_ERROR)
}

async fn reconcile_inner(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    // A terminatedAt in the future is not acted on (admission cannot know "now"): the
    // whole reconcile sees the tenant as it was before, and says why below.
    let termination = decide::termination(tenant, Timestamp::now());
    let before_termination;
    let tenant = if let decide::Termination::InFuture(_) = termination {
        before_termination = decide::before_termination(tenant);
        &before_termination
    } else {
        tenant
    };
    // The deadline gauge first, before any step that can fail (the cache wait, the
    // finalizer write, the reads below): a tenant whose reconcile keeps failing still
    // trips the deadline alerts. Only a terminated or deleted tenant has a deadline, so
    // an active one costs nothing here.
    // The policy read here serves the whole pass (one read per erasure pass, not two).
    let policies: Api<RetentionPolicy> = Api::all(ctx.client.clone());
    let policy_name = &tenant.spec.retention_policy_ref.name;
    let early_policy = if tenant.spec.contract.state
        == crate::api::v1alpha1::ContractState::Terminated
        || tenant.metadata.deletion_timestamp.is_some()
    {
        let read = policies.get_opt(policy_name).await;
        let current = tenant.status.clone().unwrap_or_default();
        deadline_gauge(
            tenant,
            ctx,
            &current,
            read.as_ref().ok().and_then(Option::as_ref),
        );
        Some(read)
    } else {
        None
    };
    // Warm before acting: a reconcile right after a start or a leader change, with the
    // binding and node caches still filling, would build a sender template without the
    // credentials of bindings it has not seen yet (a rollout to pods without
    // credentials) and judge pods on nodes it does not know (measured in a chaos run:
    // 144 of 149 tenants rolled to templates without credential mounts, 27 of 33 EU
    // pods evicted with region=None). Both caches are filled by watches this process
    // polls meanwhile; the wait is bounded so a broken watch shows as an error.
    let warm = async {
        ctx.bindings.wait_until_ready().await.is_ok() && ctx.nodes.wait_until_ready().await.is_ok()
    };
    if !tokio::time::timeout(super::CACHE_WAIT, warm)
        .await
        .unwrap_or(false)
    {
        return Err(Error::CachesNotSynced);
    }

    // Every live Tenant carries the erasure finalizer, so that deleting one erases it
    // with a receipt before it disappears (written once; quiet afterwards). Adding it
    // is an event that reconciles the Tenant again at once: the work is done then, not
    // twice (the retry is only a safety net).
    if erasure::ensure_finalizer(tenant, ctx).await? {
        return Ok(Action::requeue(REQUEUE_CONVERGING));
    }

    // The tenant namespace, if it exists, and whether it is Herald's: one that Herald
    // did not create (no marker) is never adopted, written in or deleted.
    let ns_name = namespace_name(&name);
    let current_ns = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(&ns_name)
        .await
        .map_err(Error::kube(format!("get Namespace {ns_name}")))?;
    let foreign = match erasure::scope::namespace_owner(
        current_ns.as_ref(),
        tenant.metadata.uid.as_deref().unwrap_or_default(),
    ) {
        erasure::scope::NamespaceOwner::Foreign(o) => Some(o),
        _ => None,
    };
    if let Some(o) = &foreign {
        warn!(namespace = %o.name, "the tenant namespace exists but Herald did not create it: not adopting it");
    }

    // Resolve what the decision needs from other objects.
    let policy = match early_policy {
        Some(read) => read,
        None => policies.get_opt(policy_name).await,
    }
    .map_err(Error::kube(format!("get RetentionPolicy {policy_name}")))?;
    let periods = Periods::resolve(policy.as_ref().map(|p| &p.spec), &ctx.config.retention);
    let decision = decide::decide(
        tenant,
        &ctx.config,
        periods,
        policy.is_some(),
        Timestamp::now(),
    );
    // A pause holds only the building of an active tenant's stack: termination,
    // erasure, deletion, suspension and the DPA gate go ahead whatever it says (the
    // finalizer above is in place for the same reason: a paused tenant deleted is still
    // erased), and residency is still enforced on the paused path.
    let pause_requested = super::pause::is_paused(tenant.annotations());
    if pause_requested && decide::pause_holds(tenant, &decision) {
        return paused(tenant, &decision, foreign.is_none(), ctx).await;
    }
    let cached = ctx.bindings.state();
    let mut senders_from = bindings::SendersFrom::of(
        &name,
        &ctx.config.control_namespace,
        cached.iter().map(AsRef::as_ref),
    );
    let first_start_deadline = tenant
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| t.0.checked_add(FIRST_START_WAIT).ok());
    // The sender template changes its credentials only on live evidence: the binding
    // cache can lag a status the ChannelBinding controller has just written (under load,
    // by seconds), and a template built from it would roll the senders to pods without
    // a credential that is current (or drop one), then roll them again. So the current
    // Deployment is read first (`apply_children` reuses it), and if the template would
    // change, the tenant's bindings are read live and the children built from those.
    // Only while senders run: a terminated or deleted tenant's template (no replicas)
    // is not worth a read more per erasure step.
    let senders_run = tenant.spec.contract.state != crate::api::v1alpha1::ContractState::Terminated
        && tenant.metadata.deletion_timestamp.is_none();
    let current_senders = match (&current_ns, &foreign) {
        (Some(_), None) if senders_run => senders_deployment(ctx, &ns_name).await?,
        _ => Read::No,
    };
    let refresh = senders_run
        && match &current_senders {
            Read::Yes(d) => bindings::credentials_change(d.as_ref(), &senders_from.mounts),
            Read::No => true,
        };
    if refresh {
        let api =
            Api::<ChannelBinding>::namespaced(ctx.client.clone(), &ctx.config.control_namespace);
        let names: Vec<String> = bindings::of_tenant(
            &name,
            &ctx.config.control_namespace,
            cached.iter().map(AsRef::as_ref),
        )
        .collect();
        let live = future::try_join_all(names.iter().map(|b| {
            let api = api.clone();
            async move {
                api.get_opt(b)
                    .await
                    .map_err(Error::kube(format!("get ChannelBinding {b}")))
            }
        }))
        .await?;
        senders_from =
            bindings::SendersFrom::of(&name, &ctx.config.control_namespace, live.iter().flatten());
    }
    let hold_first_start = senders_from.holds_first_start(first_start_deadline, Timestamp::now());

    let children = build::children(&build::Inputs {
        tenant,
        decision: &decision,
        config: &ctx.config,
        mounts: &senders_from.mounts,
    })?;

    // A terminated or deleted tenant: the erasure pipeline decides what happens.
    let now = Timestamp::now();
    // An out-of-range time (an extreme terminatedAt) stalls the Tenant with its own
    // reason: nothing is erased on a deadline that cannot be computed.
    let (timing, out_of_range) = match erasure::plan::timing(
        tenant,
        decision.periods.delete_within_days,
        ctx.config.erasure.safety_margin_days,
    ) {
        Ok(t) => (t, None),
        Err(e) => (None, Some(e)),
    };
    // The deadline gauge, again with the timing this pass computed (it went out first
    // above; cleared below once erasure is done).
    if let Some(t) = &timing {
        let done = tenant
            .status
            .as_ref()
            .and_then(|s| s.erasure.as_ref())
            .is_some_and(|e| e.receipt.is_some());
        ctx.metrics.set_deletion_deadline(
            &name,
            (!done).then_some(t.deadline.as_second()),
            erasure::plan::overdue(t, now) && !done,
        );
    }
    let progress = match &timing {
        Some(t) => {
            let records = policy.as_ref().and_then(|p| p.spec.records.as_ref());
            let home = erasure::JobHome {
                namespace: &children.namespace,
                service_account: &children.service_account,
                data_plane: &children.data_plane,
                live_namespace: current_ns.as_ref(),
                foreign: foreign.as_ref(),
            };
            match erasure::advance(tenant, t, &decision.periods, records, &home, ctx, now).await {
                Ok(p) => Some(p),
                Err(e) => {
                    erasure_step_error(tenant, &e, ctx, now).await;
                    return Err(e);
                }
            }
        }
        None => None,
    };

    // Until erasure begins, the stack is applied (a terminated one with no senders).
    // Never in a namespace Herald did not create.
    let (deployment, violations) =
        if foreign.is_none() && progress.as_ref().is_none_or(|p| p.keep_stack) {
            let applied = apply_children(
                ctx,
                &name,
                &children,
                current_ns,
                current_senders,
                hold_first_start,
            )
            .await?;
            (
                Some(applied),
                enforce_residency(tenant, &decision, ctx).await?,
            )
        } else {
            (None, Vec::new())
        };
    let observed = Observed {
        senders: deployment
            .as_ref()
            .and_then(|a| a.deployment.as_ref())
            .map(observe_senders),
        violations,
        purges: match &deployment {
            Some(a) if decision.hold != Some(decide::Hold::Terminated) => {
                observe_purges(&a.purge_jobs)
            }
            _ => Vec::new(),
        },
        awaiting: if hold_first_start {
            senders_from.awaiting.clone()
        } else {
            Vec::new()
        },
        namespace_not_owned: foreign.as_ref().map(|o| o.name.clone()),
        unowned_secrets: unowned_secrets(tenant, ctx).await?,
    };
    let mut status = status::compute(tenant, &decision, &observed, now);
    if let (Some(t), Some(p)) = (&timing, &progress) {
        let current = tenant
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let desired = erasure::plan::conditions(&p.status, t, p.done, &p.delivery, &p.note, now);
        override_conditions(&mut status, &current, &desired, tenant, now);
        status.phase = Some(erasure::plan::phase(&p.status, p.done));
        status.deletion_deadline = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            t.deadline,
        ));
        status.erasure = Some(p.status.clone());
        ctx.metrics.set_erasure_step_failures(
            &name,
            erasure::plan::step::ALL,
            p.status
                .failing_steps
                .iter()
                .map(|f| (f.step.as_str(), f.attempts)),
        );
        ctx.metrics.set_erasure_objects_held(
            &name,
            erasure::held::outstanding(&p.status.not_erased).count(),
        );
        ctx.metrics.set_deletion_deadline(
            &name,
            (!p.done).then_some(t.deadline.as_second()),
            erasure::plan::overdue(t, now) && !p.done,
        );
    }
    if let Some(e) = &out_of_range {
        let current = tenant
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let message = format!("{e}: check spec.contract.terminatedAt");
        let desired = [
            Desired::no(types::READY, reason::TIME_OUT_OF_RANGE, message.clone()),
            Desired::yes(types::STALLED, reason::TIME_OUT_OF_RANGE, message),
            Desired::no(
                types::RECONCILING,
                reason::TIME_OUT_OF_RANGE,
                "waiting for a change",
            ),
        ];
        override_conditions(&mut status, &current, &desired, tenant, now);
        warn!(tenant = %name, error = %e, "a time is out of range; stalled until the spec changes");
    }
    match termination {
        decide::Termination::InFuture(at) => {
            let current = tenant
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            let message = format!(
                "spec.contract.terminatedAt {at} is in the future (more than {} min ahead of the operator's clock): Herald does not act on a termination before it happens (senders keep their state, no erasure is scheduled); correct the date, which may change until Herald accepts it",
                decide::TERMINATION_SKEW.as_mins()
            );
            let desired = [
                Desired::no(
                    types::READY,
                    reason::TERMINATED_AT_IN_FUTURE,
                    message.clone(),
                ),
                Desired::yes(types::STALLED, reason::TERMINATED_AT_IN_FUTURE, message),
                Desired::no(
                    types::RECONCILING,
                    reason::TERMINATED_AT_IN_FUTURE,
                    "waiting for the date or a correction",
                ),
            ];
            override_conditions(&mut status, &current, &desired, tenant, now);
            if !crate::conditions::find(&current, types::STALLED)
                .is_some_and(|c| c.status == "True" && c.reason == reason::TERMINATED_AT_IN_FUTURE)
            {
                warn!(terminated_at = %at, "terminatedAt is in the future: not acted on");
                event(
                    ctx,
                    tenant,
                    EventType::Warning,
                    reason::TERMINATED_AT_IN_FUTURE,
                    "Terminate",
                    format!("spec.contract.terminatedAt {at} is in the future: not acted on until it is reached or corrected"),
                )
                .await;
            }
        }
        decide::Termination::Accepted => {
            // From here on the date is fixed (herald-tenant-termination refuses a change).
            status.termination_accepted_at = status.termination_accepted_at.take().or(Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
            ));
        }
        decide::Termination::NotTerminated => {}
    }
    if pause_requested {
        let current = tenant
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let desired = [Desired::no(
            types::PAUSED,
            reason::PAUSE_NOT_HELD,
            format!(
                "the annotation {PAUSED_ANNOTATION} is set, but a pause never holds {}: Herald acts on this tenant as if it were not paused",
                decide::pause_overridden_by(tenant, &decision)
            ),
        )];
        override_conditions(&mut status, &current, &desired, tenant, now);
    }
    record_purges(ctx, &name, &status, &observed, now);
    publish_status(tenant, status.clone(), ctx).await?;
    if let Some(p) = &progress {
        found_not_erased_event(tenant, &p.status, ctx).await;
        erased_again_event(tenant, &p.status, ctx).await;
    }
    ctx.metrics
        .set_tenant_phase(&name, status.phase.map(phase_name));

    if let Some(p) = &progress {
        // A deleted Tenant goes once erased and its receipt delivered (or undeliverable:
        // no endpoint, or the deadline passed while the endpoint kept refusing).
        let delivered = !matches!(p.delivery, erasure::Delivery::Pending(_));
        let late = timing
            .as_ref()
            .is_some_and(|t| erasure::plan::overdue(t, now));
        // Objects erasure could not delete keep the Tenant (and its condition and
        // alert) until a person has deleted them: the erasure itself is complete.
        let held = erasure::held::outstanding(&p.status.not_erased)
            .next()
            .is_some();
        if p.done && (delivered || late) && !held && tenant.metadata.deletion_timestamp.is_some() {
            erasure::release(tenant, ctx).await?;
            ctx.written
                .forget(tenant.metadata.uid.as_deref().unwrap_or_default());
            ctx.metrics.set_tenant_phase(&name, None);
            ctx.metrics.set_deletion_deadline(&name, None, false);
            ctx.metrics
                .set_erasure_step_failures(&name, erasure::plan::step::ALL, []);
            ctx.metrics.set_erasure_objects_held(&name, 0);
        }
        return Ok(Action::requeue(p.requeue));
    }
    if let decide::Termination::InFuture(at) = termination {
        // Back when the date comes (then accepted), or on a correction (an event).
        let due = at.checked_sub(decide::TERMINATION_SKEW).unwrap_or(at);
        return Ok(Action::requeue(
            super::resync(&name).min(super::until(now, due)),
        ));
    }
    let ready = crate::conditions::is_true(&status.conditions, types::READY);
    Ok(Action::requeue(if ready {
        super::resync(&name)
    } else if let Some(deadline) = first_start_deadline.filter(|_| hold_first_start) {
        // The first start stops waiting at the deadline, event or not.
        REQUEUE_CONVERGING.min(super::until(now, deadline))
    } else {
        REQUEUE_CONVERGING
    }))
}

/// A failed erasure step says so in `Reconciling` (reason `ErasureStepError`, the step
/// and the error in the message) before the reconcile fails and is retried. A failure to
/// write it is logged: the retry is the same either way.
async fn erasure_step_error(tenant: &Tenant, error: &Error, ctx: &Context, now: Timestamp) {
    let Error::ErasureStep(e) = error else {
        return;
    };
    let current = tenant.status.clone().unwrap_or_default();
    let mut status = current.clone();
    let message = format!(
        "erasure step {} failed; retrying: {}",
        e.step(),
        crate::error_chain(e.source_error())
    );
    let mut desired = vec![Desired::yes(
        types::RECONCILING,
        reason::ERASURE_STEP_ERROR,
        message,
    )];
    // Evidence that is not Herald's (a planted receipt, a signing key Herald did not
    // generate or cannot read) will not resolve by retrying: a person must act, so it
    // is Stalled, with an event, and the erasure goes no further than the receipt.
    let blocked = error.evidence_blocked();
    if let Some((why, text)) = &blocked {
        desired.push(crate::conditions::stalled(Some((why, text.clone()))));
    }
    override_conditions(&mut status, &current.conditions, &desired, tenant, now);
    if let Some((why, text)) = blocked
        && !crate::conditions::find(&current.conditions, types::STALLED)
            .is_some_and(|c| c.status == "True" && c.reason == why)
    {
        event(ctx, tenant, EventType::Warning, why, "WriteReceipt", text).await;
    }
    if let Err(w) = publish_status(tenant, status, ctx).await {
        warn!(step = e.step().as_str(), error = %crate::error_chain(&w), "could not record the erasure step's failure");
    }
}

fn phase_name(p: crate::api::v1alpha1::TenantPhase) -> &'static str {
    use crate::api::v1alpha1::TenantPhase::*;
    match p {
        Pending => "Pending",
        Active => "Active",
        Suspended => "Suspended",
        Terminating => "Terminating",
        Exporting => "Exporting",
        Erasing => "Erasing",
        Erased => "Erased",
    }
}

/// The children as the cluster holds them after [`apply_children`], for observing.
struct Applied {
    /// The sender Deployment (`None`: not created yet).
    deployment: Option<Deployment>,
    /// The purge CronJobs that exist.
    purge_jobs: Vec<CronJob>,
}

/// Whether an object was read (and what it was), or could not be read yet.
enum Read<K> {
    Yes(Option<K>),
    No,
}

/// The sender Deployment as the cluster holds it; `Read::No` when the operator's rights
/// in the namespace are not bound yet (a namespace created by a reconcile that failed
/// before its RoleBinding): `apply_children` binds them and reads it then.
async fn senders_deployment(ctx: &Context, ns: &str) -> Result<Read<Deployment>, Error> {
    match Api::<Deployment>::namespaced(ctx.client.clone(), ns)
        .get_opt(SENDER)
        .await
    {
        Ok(d) => Ok(Read::Yes(d)),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(Read::No),
        Err(e) => Err(Error::kube("get the sender Deployment")(e)),
    }
}

/// Applies every child that differs from what the cluster holds; returns the
/// Deployment and purge CronJobs as the cluster holds them afterwards. With
/// `hold_first_start`, a sender Deployment that does not exist yet is not created.
async fn apply_children(
    ctx: &Context,
    tenant: &str,
    c: &Children,
    current_ns: Option<Namespace>,
    current_senders: Read<Deployment>,
    hold_first_start: bool,
) -> Result<Applied, Error> {
    let client = &ctx.client;
    let ns = namespace_name(tenant);
    // The namespace first: everything else lives in it. The reconcile has just read it
    // (to check it is Herald's), so it is not read again.
    apply_read(
        ctx,
        &Api::<Namespace>::all(client.clone()),
        current_ns,
        &c.namespace,
        true,
    )
    .await?;
    // Then the operator's own rights in it: every other child is written through them.
    access::bind(ctx, &c.role_binding.metadata).await?;
    // Each write's result is only its success: the caller observes none of these.
    fn done<K>(r: Result<Option<K>, Error>) -> Result<(), Error> {
        r.map(drop)
    }
    let mut writes = vec![
        apply_one(
            ctx,
            Api::namespaced(client.clone(), &ns),
            &c.service_account,
            true,
        )
        .map(done)
        .boxed(),
        apply_one(ctx, Api::namespaced(client.clone(), &ns), &c.role, true)
            .map(done)
            .boxed(),
        apply_one(
            ctx,
            Api::namespaced(client.clone(), &ns),
            &c.role_binding,
            true,
        )
        .map(done)
        .boxed(),
        apply_one(
            ctx,
            Api::namespaced(client.clone(), &ns),
            &c.resource_quota,
            true,
        )
        .map(done)
        .boxed(),
        apply_one(
            ctx,
            Api::namespaced(client.clone(), &ns),
            &c.limit_range,
            true,
        )
        .map(done)
        .boxed(),
        apply_one(
            ctx,
            Api::namespaced(client.clone(), &ns),
            &c.config_map,
            true,
        )
        .map(done)
        .boxed(),
        apply_one(ctx, Api::namespaced(client.clone(), &ns), &c.pdb, true)
            .map(done)
            .boxed(),
    ];
    for np in &c.network_policies {
        writes.push(
            apply_one(ctx, Api::namespaced(client.clone(), &ns), np, true)
                .map(done)
                .boxed(),
        );
    }
    let purge_jobs = future::try_join_all(
        c.purge_jobs
            .iter()
            .map(|cj| apply_one(ctx, Api::namespaced(client.clone(), &ns), cj, true)),
    );
    let ((), purge_jobs) = future::try_join(
        future::try_join_all(writes).map(|r| r.map(drop)),
        purge_jobs,
    )
    .await?;
    // The Deployment last: its pods need the config, the service account and the quota.
    let api = Api::namespaced(client.clone(), &ns);
    let deployment = match current_senders {
        Read::Yes(current) => {
            apply_read(ctx, &api, current, &c.deployment, !hold_first_start).await?
        }
        Read::No => apply_one(ctx, api, &c.deployment, !hold_first_start).await?,
    };
    Ok(Applied {
        deployment,
        purge_jobs: purge_jobs.into_iter().flatten().collect(),
    })
}

/// Reads one child and applies it if it differs (creates it only if `create`); returns
/// the object as it now is.
async fn apply_one<K>(
    ctx: &Context,
    api: Api<K>,
    desired: &K,
    create: bool,
) -> Result<Option<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Serialize + DeserializeOwned,
{
    let name = desired.meta().name.clone().ok_or(Error::MissingName)?;
    let kind = K::kind(&());
    let current = api
        .get_opt(&name)
        .await
        .map_err(Error::kube(format!("get {kind} {name}")))?;
    apply_read(ctx, &api, current, desired, create).await
}

/// [`apply_one`] for a child already read (`current`).
async fn apply_read<K>(
    ctx: &Context,
    api: &Api<K>,
    current: Option<K>,
    desired: &K,
    create: bool,
) -> Result<Option<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Serialize + DeserializeOwned,
{
    let name = desired.meta().name.clone().ok_or(Error::MissingName)?;
    let kind = K::kind(&());
    if current.is_none() && !create {
        return Ok(None);
    }
    match apply_if_changed(api, current.as_ref(), desired).await? {
        Some(applied) => {
            ctx.metrics.wrote(CONTROLLER, &kind);
            if current.is_some() {
                info!(kind = %kind, child = %name, "corrected drift or applied a change");
            }
            // The apply's answer: the caller sees the applied spec (e.g. the new generation).
            Ok(Some(applied))
        }
        None => Ok(current),
    }
}

/// What the tenant's purge CronJobs (as the cluster holds them) say about each purged
/// category.
fn observe_purges(jobs: &[CronJob]) -> Vec<PurgeObserved> {
    crate::retention::Category::PURGED
        .into_iter()
        .filter_map(|category| {
            let cj = jobs
                .iter()
                .find(|j| j.metadata.name.as_deref() == Some(&build::purge_name(category)))?;
            Some(PurgeObserved {
                category,
                created: cj.metadata.creation_timestamp.as_ref().map(|t| t.0),
                last_success: cj
                    .status
                    .as_ref()
                    .and_then(|s| s.last_successful_time.as_ref())
                    .map(|t| t.0),
            })
        })
        .collect()
}

/// Exports each category's last purge success and whether it is overdue; removes the
/// series once the tenant is terminated.
fn record_purges(
    ctx: &Context,
    tenant: &str,
    s: &TenantStatus,
    observed: &Observed,
    now: Timestamp,
) {
    if !s
        .conditions
        .iter()
        .any(|c| c.type_ == types::PURGES_CURRENT)
    {
        ctx.metrics.set_purges(tenant, None);
        return;
    }
    let late = status::overdue(&s.purges, observed, now);
    let rows: Vec<(String, Option<i64>, bool)> = s
        .purges
        .iter()
        .map(|p| {
            (
                p.category.clone(),
                p.last_success.as_ref().map(|t| t.0.as_second()),
                late.iter().any(|o| o.category.key() == p.category),
            )
        })
        .collect();
    ctx.metrics.set_purges(tenant, Some(&rows));
}

/// The Secrets the tenant names (notification signing secret, export token) that exist
/// but are not labelled for it: Herald never reads them (see [`super::ownership`]).
async fn unowned_secrets(tenant: &Tenant, ctx: &Context) -> Result<Vec<String>, Error> {
    let name = tenant.name_any();
    let mut out = Vec::new();
    for secret in named_secrets(tenant) {
        if let ownership::Owned::NotOwned(why) =
            ownership::read_metadata(ctx, &name, secret).await?
        {
            out.push(why);
        }
    }
    Ok(out)
}

/// The control-namespace Secrets a Tenant names.
fn named_secrets(tenant: &Tenant) -> impl Iterator<Item = &str> {
    let signing = tenant
        .spec
        .notifications
        .as_ref()
        .map(|n| n.signing_secret_ref.name.as_str());
    let export = tenant
        .spec
        .contract
        .on_termination
        .as_ref()
        .and_then(|o| o.export.as_ref())
        .and_then(|e| e.auth_secret_ref.as_ref())
        .map(|r| r.name.as_str());
    signing.into_iter().chain(export)
}

fn observe_senders(d: &Deployment) -> SendersObserved {
    let status = d.status.clone().unwrap_or_default();
    SendersObserved {
        desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ready: status.ready_replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
        total: status.replicas.unwrap_or(0),
        generation_observed: status.observed_generation >= d.metadata.generation,
    }
}

/// Finds the tenant's sender pods on nodes outside its allowed regions and evicts
/// them. Node affinity is checked only at scheduling; a node relabelled afterwards
/// leaves its pods where they are, so the operator keeps checking.
async fn enforce_residency(
    tenant: &Tenant,
    decision: &Decision,
    ctx: &Context,
) -> Result<Vec<Violation>, Error> {
    let name = tenant.name_any();
    let ns = namespace_name(&name);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("{APP_LABEL}={SENDER}")))
        .await
        .map_err(Error::kube(format!("list sender pods in {ns}")))?;
    let allow_adequacy = tenant.spec.residency.allow_adequacy.unwrap_or(false);
    let mut violations = Vec::new();
    for pod in &list.items {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let region = match ctx.nodes.get(&ObjectRef::new(&node)) {
            Some(n) => n.labels().get(REGION_LABEL).cloned(),
            // Not (yet) in the cache: ask. Nothing is evicted on "unknown"; a node that
            // is gone takes its pods with it.
            None => match node_region(ctx, &node).await? {
                NodeRegion::Known(r) => r,
                NodeRegion::Gone => continue,
            },
        };
        if ctx.config.regions.node_region_allowed(
            region.as_deref(),
            &decision.allowed_regions,
            allow_adequacy,
        ) {
            continue;
        }
        let v = Violation {
            pod: pod.name_any(),
            node,
            region,
        };
        // A pod already on its way out still runs there: it counts as a violation
        // until it is gone, but is not evicted twice.
        if pod.metadata.deletion_timestamp.is_some() {
            violations.push(v);
            continue;
        }
        evict(&pods, &v.pod, ctx).await?;
        warn!(pod = %v.pod, node = %v.node, region = ?v.region, "evicted a sender pod outside the allowed regions");
        ctx.metrics
            .residency_evictions
            .get_or_create(&crate::metrics::TenantLabels {
                tenant: name.clone(),
            })
            .inc();
        event(
            ctx,
            tenant,
            EventType::Warning,
            reason::POD_EVICTED,
            "EvictPod",
            format!(
                "evicted sender pod {} from node {} in region {}: outside the allowed regions",
                v.pod,
                v.node,
                v.region.as_deref().unwrap_or("(none)")
            ),
        )
        .await;
        violations.push(v);
    }
    ctx.metrics
        .residency_violations
        .get_or_create(&crate::metrics::TenantLabels { tenant: name })
        .set(violations.len() as i64);
    Ok(violations)
}

/// Evicts a pod through the Eviction API. When the disruption budget refuses (429),
/// the pod is deleted anyway: residency is a legal duty, availability is not.
/// What the API server says of a node the cache does not have.
enum NodeRegion {
    /// The node exists; its region label, if any.
    Known(Option<String>),
    /// The node does not exist (any more).
    Gone,
}

async fn node_region(ctx: &Context, node: &str) -> Result<NodeRegion, Error> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    Ok(
        match nodes
            .get_metadata_opt(node)
            .await
            .map_err(Error::kube(format!("get Node {node}")))?
        {
            Some(n) => NodeRegion::Known(n.labels().get(REGION_LABEL).cloned()),
            None => NodeRegion::Gone,
        },
    )
}

async fn evict(pods: &Api<Pod>, pod: &str, ctx: &Context) -> Result<(), Error> {
    match pods.evict(pod, &EvictParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 429 => {
            pods.delete(pod, &DeleteParams::default())
                .await
                .map_err(Error::kube(format!("delete pod {pod}")))?;
        }
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(Error::kube(format!("evict pod {pod}"))(e)),
    }
    ctx.metrics.wrote(CONTROLLER, "Pod/eviction");
    Ok(())
}

/// Patches the status when it changed; events on transitions.
async fn publish_status(
    tenant: &Tenant,
    mut status: TenantStatus,
    ctx: &Context,
) -> Result<(), Error> {
    // The notice records belong to the Subprocessor and BreachNotice controllers, which
    // write each one as a delivery happens under a field manager of their own: this
    // controller neither compares them (a new record is no reason to write) nor applies
    // them (a copy from its cache could overwrite a newer record).
    let mut before = tenant.status.clone().unwrap_or_default();
    before.subprocessor_notices.clear();
    status.subprocessor_notices.clear();
    before.breach_notices.clear();
    status.breach_notices.clear();
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    crate::controller::status::publish(
        ctx,
        CONTROLLER,
        &api,
        tenant,
        (&before, &before.conditions),
        (&status, &status.conditions),
    )
    .await
}

/// A paused active tenant: its stack is not built or changed, but its sender pods are
/// still checked where they run and evicted outside the allowed regions (in a
/// namespace Herald created, `herald_namespace`); status says so when it changes.
async fn paused(
    tenant: &Tenant,
    decision: &Decision,
    herald_namespace: bool,
    ctx: &Context,
) -> Result<Action, Error> {
    let violations = if herald_namespace {
        enforce_residency(tenant, decision, ctx).await?
    } else {
        Vec::new()
    };
    let residency = status::residency(decision, &violations);
    if let Some(status) = status::paused(tenant, residency, Timestamp::now()) {
        publish_status(tenant, status, ctx).await?;
        info!("paused; not building the stack");
    }
    // Looked at again on the resync (and on node changes): residency is kept checking.
    Ok(Action::requeue(if violations.is_empty() {
        super::resync(&tenant.name_any())
    } else {
        REQUEUE_CONVERGING
    }))
}

/// One Warning when erasure first records objects it found and will not delete (the
/// list is persisted, so a later pass that finds the same ones says nothing).
async fn found_not_erased_event(
    tenant: &Tenant,
    erasure: &crate::api::v1alpha1::ErasureStatus,
    ctx: &Context,
) {
    let before = tenant
        .status
        .as_ref()
        .and_then(|s| s.erasure.as_ref())
        .map_or(0, |e| e.not_erased.len());
    let Some(first) = erasure.not_erased.first() else {
        return;
    };
    if erasure.not_erased.len() <= before {
        return;
    }
    let what: Vec<String> = erasure
        .not_erased
        .iter()
        .map(|o| erasure::held::object_ref(&o.kind, o.namespace.as_deref(), &o.name))
        .collect();
    event(
        ctx,
        tenant,
        EventType::Warning,
        &first.reason,
        "Erase",
        format!(
            "found and not erased (not Herald's, outside the erasure scope, or its deletion refused or held by a finalizer; see status.erasure.notErased): {}",
            what.join(", ")
        ),
    )
    .await;
}

/// One Warning per pass that deleted objects labelled for the tenant again after its
/// erasure (a GitOps tool re-applying them), naming them.
async fn erased_again_event(
    tenant: &Tenant,
    erasure: &crate::api::v1alpha1::ErasureStatus,
    ctx: &Context,
) {
    let before = tenant
        .status
        .as_ref()
        .and_then(|s| s.erasure.as_ref())
        .and_then(|e| e.erased_again_count)
        .unwrap_or(0);
    let now = erasure.erased_again_count.unwrap_or(0);
    let new = usize::try_from(now - before).unwrap_or(0);
    if new == 0 {
        return;
    }
    ctx.metrics.erased_again.inc_by(new as u64);
    let what: Vec<String> = erasure
        .erased_again
        .iter()
        .rev()
        .take(new)
        .map(|o| erasure::held::object_ref(&o.kind, o.namespace.as_deref(), &o.name))
        .collect();
    event(
        ctx,
        tenant,
        EventType::Warning,
        reason::ERASED_AGAIN,
        "Erase",
        format!(
            "the tenant is erased: deleted again what appeared labelled for it since its receipt (remove it from Git, see docs/operations.md): {}",
            what.join(", ")
        ),
    )
    .await;
}

/// Exports the deletion-deadline gauge of a terminated or deleted tenant before its
/// reconcile does anything that can fail: from its spec and `policy` (`None`: missing or
/// unreadable) when they give one, else the deadline its status last recorded.
fn deadline_gauge(
    tenant: &Tenant,
    ctx: &Context,
    current: &TenantStatus,
    policy: Option<&RetentionPolicy>,
) {
    let periods = Periods::resolve(policy.map(|p| &p.spec), &ctx.config.retention);
    let deadline = erasure::plan::timing(
        tenant,
        periods.delete_within_days,
        ctx.config.erasure.safety_margin_days,
    )
    .ok()
    .flatten()
    .map(|t| t.deadline)
    .or_else(|| current.deletion_deadline.as_ref().map(|t| t.0));
    let done = current
        .erasure
        .as_ref()
        .is_some_and(|e| e.receipt.is_some());
    if let Some(d) = deadline {
        ctx.metrics.set_deletion_deadline(
            &tenant.name_any(),
            (!done).then_some(d.as_second()),
            Timestamp::now() > d && !done,
        );
    }
}

/// Replaces the conditions `desired` names with them (merged with `current`, so a
/// condition keeps its lastTransitionTime unless it flips), in type order.
fn override_conditions(
    status: &mut TenantStatus,
    current: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    desired: &[Desired],
    tenant: &Tenant,
    now: Timestamp,
) {
    let owned: Vec<&str> = desired.iter().map(|d| d.type_).collect();
    status
        .conditions
        .retain(|c| !owned.contains(&c.type_.as_str()));
    status.conditions.extend(crate::conditions::merge(
        current,
        desired,
        tenant.metadata.generation,
        now,
    ));
    status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Publishes an event on the tenant; failures are logged, never fatal.
async fn event(
    ctx: &Context,
    tenant: &Tenant,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    crate::controller::status::event(ctx, CONTROLLER, tenant, type_, reason, action, note).await;
}
