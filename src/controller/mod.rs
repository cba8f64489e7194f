//! The reconcilers, one module per kind, and what they share: the [`Context`], the
//! error type with its metric categories, and server-side apply that stays quiet when
//! the cluster already holds what we want.

pub mod apply;
pub mod breach;
pub mod channel_binding;
pub mod dsr;
pub mod events;
pub mod finalizer;
pub mod ownership;
pub mod pause;
pub mod receipt;
pub mod shard;
pub mod status;
pub mod subprocessor;
pub mod tenant;
pub mod watch;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;

use crate::api::v1alpha1::ChannelBinding;

use crate::config::OperatorConfig;
use crate::metrics::Metrics;

/// The one field manager of every write Herald makes (server-side apply).
pub const FIELD_MANAGER: &str = "herald";
/// Label on every object Herald creates for a tenant: its name. Watches filter on it,
/// and erasure finds what to delete by it.
pub const TENANT_LABEL: &str = "herald.dev/tenant";
/// `app.kubernetes.io/managed-by` value on everything Herald creates.
pub const MANAGED_BY: &str = "herald";
/// Annotation that stops reconciling the object while present (any value but "false").
pub const PAUSED_ANNOTATION: &str = "herald.dev/paused";
/// Annotation whose change forces a reconcile; echoed in status once handled.
pub const RECONCILE_REQUESTED_ANNOTATION: &str = "herald.dev/reconcile-requested-at";

/// How long a reconcile waits for the caches it reads (bindings, nodes) to hold their
/// first complete list; past it, the reconcile fails as `cache-not-synced`.
pub(crate) const CACHE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Everything a reconcile needs, shared by all reconciles of all controllers.
pub struct Context {
    /// The API client (the operator's identity).
    pub client: Client,
    /// The operator's configuration: region catalog and defaults.
    pub config: Arc<OperatorConfig>,
    /// Metric families updated by reconciles.
    pub metrics: Arc<Metrics>,
    /// Publishes Kubernetes events on Herald's objects.
    pub events: events::Publisher,
    /// Node name → labels (the region), kept by a metadata-only watch of the nodes.
    pub nodes: Store<PartialObjectMeta<Node>>,
    /// ChannelBindings of the control namespace, kept by a watch.
    pub bindings: Store<ChannelBinding>,
    /// The guarded HTTP client (only global unicast addresses, rustls on ring, timeouts,
    /// no proxy, no redirects) for provider APIs and customer webhooks; see
    /// [`crate::outbound`].
    pub http: crate::outbound::HttpClient,
    /// The last status written per object; see [`status::publish`].
    pub written: status::Written,
    /// The deletion receipt signing key, read (or generated) on the first receipt.
    pub receipt_key: tokio::sync::OnceCell<crate::evidence::SigningKey>,
    /// The operator's user name as the API server authenticates it, asked once: the
    /// subject of its binding in each tenant namespace (see `tenant::access`).
    pub identity: tokio::sync::OnceCell<String>,
    /// The tenants this process serves (`--tenant-selector`); the ChannelBinding
    /// controller judges each binding by its Tenant's labels.
    pub shard: shard::Shard,
}

impl Context {
    /// The reporter every event is published as.
    pub fn reporter() -> Reporter {
        Reporter {
            controller: "herald".into(),
            instance: std::env::var("POD_NAME").ok(),
        }
    }

    /// A context around `client` (also used by tests).
    pub fn new(
        client: Client,
        config: Arc<OperatorConfig>,
        metrics: Arc<Metrics>,
        nodes: Store<PartialObjectMeta<Node>>,
        bindings: Store<ChannelBinding>,
        http: crate::outbound::HttpClient,
        shard: shard::Shard,
    ) -> Arc<Self> {
        let events = events::Publisher::new(client.clone(), Self::reporter());
        Arc::new(Self {
            client,
            config,
            metrics,
            events,
            nodes,
            bindings,
            http,
            written: Default::default(),
            receipt_key: Default::default(),
            identity: Default::default(),
            shard,
        })
    }
}

/// The trigger hash of a primary object for `predicate_filter`: everything but its
/// status (which the controller writes itself; reconciling again on each of its own
/// patches would double the work) and the bookkeeping that changes with every write.
/// The uid is part of it, so an object deleted and created again under the same name is
/// new.
pub fn metadata_trigger(
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    (
        &m.uid,
        m.generation,
        &m.labels,
        &m.annotations,
        &m.finalizers,
        m.deletion_timestamp.as_ref().map(|t| t.0.as_second()),
    )
        .hash(&mut h);
    Some(h.finish())
}

/// What a controller reads of a child it watches by metadata only (a Namespace): who it
/// is, its labels, annotations and owners, and whether it is being deleted; not the
/// status-only updates that show in a metadata watch as a bare resourceVersion bump (the
/// namespace controller's half dozen while it deletes one). For
/// [`watch::RecoveringWatches::watches_on_change`], which passes its deletion anyway.
pub fn lifecycle_key(
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> impl std::hash::Hash + use<> {
    let owners: Vec<(String, String, String, Option<bool>)> = m
        .owner_references
        .iter()
        .flatten()
        .map(|o| (o.uid.clone(), o.kind.clone(), o.name.clone(), o.controller))
        .collect();
    (metadata_trigger(m), owners)
}

/// Runs one reconcile, turning a panic inside it into [`Error::Panic`]: the error policy
/// counts it (category `panic`), logs it and retries the object with backoff, and the
/// other objects and controllers go on. This relies on the default `panic = "unwind"`
/// (Cargo.toml sets no `panic = "abort"`, and must not).
pub async fn catch_panic<F>(reconcile: F) -> Result<kube::runtime::controller::Action, Error>
where
    F: std::future::Future<Output = Result<kube::runtime::controller::Action, Error>>,
{
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(reconcile).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Err(Error::Panic(message))
        }
    }
}

/// For a controller's output stream: logs what broke its watches (reconcile errors are
/// logged by the error policies); everything else is dropped.
pub fn log_queue_errors<T, E: std::error::Error + 'static>(
    controller: &'static str,
) -> impl FnMut(
    Result<T, kube::runtime::controller::Error<E, kube::runtime::watcher::Error>>,
) -> std::future::Ready<()> {
    move |r| {
        if let Err(kube::runtime::controller::Error::QueueError(e)) = r {
            tracing::warn!(controller, error = %crate::error_chain(&e), "watch failed; retrying");
        }
        std::future::ready(())
    }
}

/// How soon a converged object is looked at again without a watch event: a safety net
/// (every input is watched; times that matter, like a rotation or a notice window,
/// requeue for themselves), about an hour, spread by ±10 % by `key` so that a fleet
/// that converged together is not re-read in one burst.
pub fn resync(key: &str) -> std::time::Duration {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    let spread = h.finish() % 721; // 0..=720 s
    std::time::Duration::from_secs(3600 - 360 + spread)
}

/// The time from `now` to `at`, at least a second (a due deadline is not a hot loop).
pub fn until(
    now: k8s_openapi::jiff::Timestamp,
    at: k8s_openapi::jiff::Timestamp,
) -> std::time::Duration {
    if at <= now {
        return std::time::Duration::from_secs(1);
    }
    at.duration_since(now).unsigned_abs() + std::time::Duration::from_secs(1)
}

/// A change filter for the mappers of secondary watches (`Controller::watches`): an
/// object passes only when the part of it the reconciler reads (its `key`, hashed)
/// changed since the last event for the same object. It is the predicate filter of
/// kube-runtime, applied in the mapper (one per watch), and it keeps status writes that
/// do not matter to a controller (a count in a message, a rollout's progress) from
/// requeueing it: one Subprocessor status patch used to reconcile every ChannelBinding.
///
/// A mapper cannot tell a deletion from an update, and an object deleted without
/// finalizers arrives exactly as last seen. So an event whose object is unchanged but
/// for its resourceVersion always passes (a deletion, or a relist), as does one on its
/// way out (`deletionTimestamp`); only a change outside `key` is filtered out.
#[derive(Clone, Default)]
pub struct Changed(Arc<std::sync::Mutex<std::collections::HashMap<String, (u64, u64)>>>);

impl Changed {
    /// Whether `obj` passes: first seen, `key` changed, deleted (unchanged) or being
    /// deleted. A passing deletion forgets the object, so the map keeps no dead ones.
    pub fn passes<K>(&self, obj: &K, key: impl std::hash::Hash) -> bool
    where
        K: kube::Resource + Clone + serde::Serialize,
    {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let meta = obj.meta();
        let Some(uid) = meta.uid.clone() else {
            return true;
        };
        let Ok(mut seen) = self.0.lock() else {
            return true;
        };
        if meta.deletion_timestamp.is_some() {
            seen.remove(&uid);
            return true;
        }
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let key = h.finish();
        // The whole object but what changes on every write (or on deletion).
        let mut whole = obj.clone();
        whole.meta_mut().resource_version = None;
        whole.meta_mut().managed_fields = None;
        let mut h = DefaultHasher::new();
        serde_json::to_string(&whole)
            .unwrap_or_default()
            .hash(&mut h);
        let whole = h.finish();
        match seen.insert(uid.clone(), (key, whole)) {
            None => true,
            Some((_, w)) if w == whole => {
                seen.remove(&uid);
                true
            }
            Some((k, _)) => k != key,
        }
    }
}

#[cfg(test)]
mod tests {

    #[tokio::test]
    async fn a_panicking_reconcile_is_an_error_and_is_counted() {
        let metrics = crate::metrics::Metrics::new();
        let result = catch_panic(metrics.reconcile("test", async {
            if metrics.encode().is_ok() {
                panic!("boom at {}", 42);
            }
            Ok(kube::runtime::controller::Action::await_change())
        }))
        .await;
        let Err(e) = result else {
            panic!("the panic was not caught");
        };
        assert!(matches!(&e, Error::Panic(m) if m == "boom at 42"), "{e}");
        assert_eq!(e.category(), "panic");
        // What every controller's error policy does with it.
        metrics.reconcile_failed("test", e.category());
        let text = metrics.encode().unwrap();
        assert!(
            text.lines()
                .any(|l| l.starts_with("herald_reconcile_errors_total{")
                    && l.contains(r#"category="panic""#)
                    && l.ends_with(" 1")),
            "{text}"
        );
        // A panic with a literal message, and a reconcile that does not panic.
        let lit = catch_panic(async { panic!("literal") }).await;
        assert!(matches!(lit, Err(Error::Panic(m)) if m == "literal"));
        let ok = catch_panic(async { Ok(kube::runtime::controller::Action::await_change()) });
        assert!(ok.await.is_ok());
    }

    use super::{Changed, Error, catch_panic, resync};

    #[test]
    fn resync_is_about_an_hour_and_spread() {
        let all: std::collections::BTreeSet<u64> = (0..100)
            .map(|i| resync(&format!("tenant-{i}")).as_secs())
            .collect();
        assert!(all.iter().all(|s| (3240..=3960).contains(s)), "{all:?}");
        assert!(all.len() > 50, "spread: {all:?}");
        assert_eq!(resync("acme"), resync("acme"), "deterministic");
    }
    use k8s_openapi::api::core::v1::Pod;

    fn pod(rv: &str, node: Option<&str>, phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "u1", "resourceVersion": rv},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    #[test]
    fn only_key_changes_and_deletions_pass() {
        let c = Changed::default();
        let key = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.clone());
        let created = pod("1", None, "Pending");
        assert!(c.passes(&created, key(&created)), "first seen");
        let bound = pod("2", Some("n1"), "Pending");
        assert!(c.passes(&bound, key(&bound)), "key changed");
        let running = pod("3", Some("n1"), "Running");
        assert!(!c.passes(&running, key(&running)), "only status changed");
        let deleted = pod("4", Some("n1"), "Running");
        assert!(
            c.passes(&deleted, key(&deleted)),
            "unchanged but for the resourceVersion: a deletion (or a relist)"
        );
    }
}

/// What can go wrong in a reconcile. Each variant has a stable category for the
/// `herald_reconcile_errors_total` metric and for event reasons.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {action}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot build the desired {what}")]
    Build {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the object has no name")]
    MissingName,
    #[error(
        "the operator's caches of bindings and nodes are not filled yet; waiting before acting"
    )]
    CachesNotSynced,
    #[error("the receipt signing key cannot be used")]
    SigningKey(#[source] crate::evidence::store::StoreError),
    /// A receipt at Herald's name is not the one Herald wrote: never delivered, and
    /// what it would prove is not claimed (`controller::receipt`).
    #[error(
        "the receipt {name} is not the one Herald wrote ({why}); it is not delivered and nothing is claimed with it: a member of the break-glass group must remove it"
    )]
    ReceiptConflict { name: String, why: String },
    /// A time computed from a user-supplied number is out of range (never a panic).
    #[error(transparent)]
    Time(#[from] crate::controller::tenant::erasure::plan::OutOfRange),
    /// A reconcile panicked; the panic was caught and the object is retried.
    #[error("the reconcile panicked: {0}")]
    Panic(String),
    /// A step of a tenant's erasure failed: the step's name is in the message, the
    /// `herald_erasure_step_errors_total` metric, the condition and the logs.
    #[error(transparent)]
    ErasureStep(Box<crate::controller::tenant::erasure::step::StepError>),
}

impl Error {
    /// A short, stable label value.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { source, .. } => match source {
                kube::Error::Api(s) if s.code == 409 => "conflict",
                kube::Error::Api(s) if s.code == 403 => "forbidden",
                kube::Error::Api(s) if s.code == 422 => "invalid",
                kube::Error::Api(_) => "api",
                _ => "transport",
            },
            Error::Build { .. } => "build",
            Error::MissingName => "invalid",
            Error::SigningKey(_) => "signing-key",
            Error::ReceiptConflict { .. } => "receipt-conflict",
            Error::CachesNotSynced => "cache-not-synced",
            Error::Time(_) => "time",
            Error::Panic(_) => "panic",
            // What went wrong, as for any reconcile; the step is in its own metric.
            Error::ErasureStep(e) => e.source_error().category(),
        }
    }

    /// For an error only a person can resolve about evidence (the signing key is not
    /// Herald's or cannot be read, a receipt is not Herald's): the `Stalled` reason and
    /// message to show on the object whose receipt it is.
    pub fn evidence_blocked(&self) -> Option<(&'static str, String)> {
        match self {
            Error::SigningKey(e) => Some((e.reason(), crate::error_chain(self))),
            Error::ReceiptConflict { .. } => Some((receipt::REASON_CONFLICT, self.to_string())),
            Error::ErasureStep(e) => e.source_error().evidence_blocked(),
            _ => None,
        }
    }

    /// Wraps a kube error with what we were doing.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }
}
