//! Watches that come back after a control-plane outage within seconds.
//!
//! kube-runtime's `Controller::watches` retries a failed watch without any delay, and
//! its `default_backoff` waits up to 30 s between attempts. After a kube-apiserver
//! restart both go wrong: the first attempts hit a server that answers 429 or 503 while
//! it starts (measured: the Tenant controller's own watch got a 429 and, after the
//! backoff had grown on the refused connections of the restart, was not retried for
//! more than 30 s), and watches that resume from a resource version older than the new
//! watch cache get "too old resource version" (410) and must relist. Every Herald watch
//! goes through [`watch`]: a backoff from 0.5 s doubling to at most 4 s, plus up to as
//! much again of jitter (so a fleet of watches does not retry in step), reset after a minute of health. A relist
//! after a 410 is kube-runtime's own (its watcher starts over on `Gone`).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt, stream};
use kube::Api;
use kube::Resource;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::utils::{Backoff, ResetTimerBackoff};
use kube::runtime::watcher::{self, ExponentialBackoff};
use serde::de::DeserializeOwned;

/// The longest base wait between two attempts of a failed watch; jitter adds up to as
/// much again, so no retry waits more than twice this.
pub const MAX_RETRY: Duration = Duration::from_secs(4);

/// The backoff of every Herald watch.
pub fn backoff() -> impl Backoff {
    ResetTimerBackoff::new(
        ExponentialBackoff::from(
            backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(MAX_RETRY)
                .with_factor(2.0)
                .with_jitter()
                .without_max_times(),
        ),
        Duration::from_secs(60),
    )
}

/// A watcher of `api` that never yields an error and never ends: a failure is logged
/// and the watch retried after [`backoff`] (a 410 relists, as kube-runtime's watcher
/// does). Errors are kept out of the stream on purpose: measured on a kube-apiserver
/// restart, a trigger stream that yielded errors into kube-runtime's controller queue
/// was not polled again for tens of seconds after its backoff had ended, and the
/// Tenant controller's own watch was not retried for the rest of the test.
pub fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let inner = watcher::watcher(api, config).boxed();
    let health = Failing::register(std::any::type_name::<K>());
    stream::unfold(
        (inner, backoff(), health),
        |(mut inner, mut backoff, health)| async move {
            loop {
                match inner.next().await {
                    Some(Ok(event)) => {
                        backoff.reset();
                        health.recovered();
                        return Some((Ok(event), (inner, backoff, health)));
                    }
                    Some(Err(e)) => {
                        health.failed();
                        let wait = backoff.next().unwrap_or(MAX_RETRY);
                        tracing::warn!(
                            watch = std::any::type_name::<K>(),
                            error = %crate::error_chain(&e),
                            retry_in = ?wait,
                            "watch failed; retrying"
                        );
                        tokio::time::sleep(wait).await;
                    }
                    None => return None,
                }
            }
        },
    )
}

/// The watches failing right now, process-wide: `/healthz` (the liveness probe) fails
/// when one has failed without a single success for longer than a bound, so that
/// Kubernetes restarts a process whose watch cannot recover (a revoked permission, a
/// stream that no relist mends) instead of leaving it up and silently stale. Global on
/// purpose: liveness is the process's, and every watch is made through [`watch`].
static FAILING: Mutex<BTreeMap<u64, (&'static str, Instant)>> = Mutex::new(BTreeMap::new());
static NEXT_WATCH: AtomicU64 = AtomicU64::new(0);

/// One watch's entry in [`FAILING`]; removed when the watch is dropped (its controller
/// stopped), so a stopped watch is never reported.
struct Failing {
    id: u64,
    watch: &'static str,
}

impl Failing {
    fn register(watch: &'static str) -> Self {
        Self {
            id: NEXT_WATCH.fetch_add(1, Ordering::Relaxed),
            watch,
        }
    }

    /// Failing from now on, unless already failing (the first failure counts).
    fn failed(&self) {
        let mut failing = FAILING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failing
            .entry(self.id)
            .or_insert((self.watch, Instant::now()));
    }

    fn recovered(&self) {
        FAILING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Drop for Failing {
    fn drop(&mut self) {
        self.recovered();
    }
}

/// The watches that have failed without a success for at least `limit`, with how long.
pub fn stalled(limit: Duration) -> Vec<(&'static str, Duration)> {
    let now = Instant::now();
    let failing = FAILING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    stalled_among(failing.values().copied(), now, limit)
}

/// The pure part of [`stalled`].
fn stalled_among(
    failing: impl Iterator<Item = (&'static str, Instant)>,
    now: Instant,
    limit: Duration,
) -> Vec<(&'static str, Duration)> {
    failing
        .map(|(watch, since)| (watch, now.saturating_duration_since(since)))
        .filter(|(_, failing_for)| *failing_for >= limit)
        .collect()
}

/// `Controller::watches` through [`watch`].
pub trait RecoveringWatches<K: Resource>: Sized {
    /// Reconciles the `K`s that `mapper` names whenever an `Other` changes.
    fn watches_recovering<Other, I>(
        self,
        api: Api<Other>,
        config: watcher::Config,
        mapper: impl Fn(Other) -> I + Sync + Send + 'static,
    ) -> Self
    where
        Other: Clone + Resource + DeserializeOwned + Debug + Send + 'static,
        Other::DynamicType: Default + Debug + Clone,
        I: 'static + IntoIterator<Item = ObjectRef<K>>,
        I::IntoIter: Send,
    {
        self.watches_keyed(api, config, |_: &Other| (), mapper, false)
    }

    /// As [`watches_recovering`](Self::watches_recovering), but an update of an
    /// `Other` triggers only when `key` (what the reconcile reads of it) changed; its
    /// creation and its deletion always do. For objects whose status churns and whose
    /// watch sees metadata only (a Namespace being deleted is updated half a dozen times
    /// by the namespace controller, each a bare resourceVersion bump in a metadata
    /// watch), where [`super::Changed`] cannot tell an update from a deletion.
    fn watches_on_change<Other, H, I>(
        self,
        api: Api<Other>,
        config: watcher::Config,
        key: impl Fn(&Other) -> H + Sync + Send + 'static,
        mapper: impl Fn(Other) -> I + Sync + Send + 'static,
    ) -> Self
    where
        Other: Clone + Resource + DeserializeOwned + Debug + Send + 'static,
        Other::DynamicType: Default + Debug + Clone,
        H: Hash,
        I: 'static + IntoIterator<Item = ObjectRef<K>>,
        I::IntoIter: Send,
    {
        self.watches_keyed(api, config, key, mapper, true)
    }

    /// The two above: `keyed` says whether `key` filters updates.
    fn watches_keyed<Other, H, I>(
        self,
        api: Api<Other>,
        config: watcher::Config,
        key: impl Fn(&Other) -> H + Sync + Send + 'static,
        mapper: impl Fn(Other) -> I + Sync + Send + 'static,
        keyed: bool,
    ) -> Self
    where
        Other: Clone + Resource + DeserializeOwned + Debug + Send + 'static,
        Other::DynamicType: Default + Debug + Clone,
        H: Hash,
        I: 'static + IntoIterator<Item = ObjectRef<K>>,
        I::IntoIter: Send;
}

impl<K> RecoveringWatches<K> for Controller<K>
where
    K: Clone + Resource + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    fn watches_keyed<Other, H, I>(
        self,
        api: Api<Other>,
        config: watcher::Config,
        key: impl Fn(&Other) -> H + Sync + Send + 'static,
        mapper: impl Fn(Other) -> I + Sync + Send + 'static,
        keyed: bool,
    ) -> Self
    where
        Other: Clone + Resource + DeserializeOwned + Debug + Send + 'static,
        Other::DynamicType: Default + Debug + Clone,
        H: Hash,
        I: 'static + IntoIterator<Item = ObjectRef<K>>,
        I::IntoIter: Send,
    {
        let key = move |o: &Other| keyed.then(|| hash_of(&key(o)));
        let triggers = watch(api, config)
            .scan(Relist::default(), move |relist, event| {
                let refs = match event {
                    Ok(event) => relist.on_keyed(event, &key, &mapper),
                    Err(_) => Vec::new(), // never yielded by `watch`
                };
                futures::future::ready(Some(stream::iter(refs)))
            })
            .flatten();
        self.reconcile_on(triggers)
    }
}

fn hash_of(h: &impl Hash) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut hasher = DefaultHasher::new();
    h.hash(&mut hasher);
    hasher.finish()
}

/// What a secondary watch's events trigger, without the sweep a relist would cause.
///
/// After a kube-apiserver restart every watch resumes from a resource version the new
/// server no longer has (410) and lists again, and each listed object used to map to a
/// reconcile: at 150 tenants, every Tenant was requeued by each of its 14 watches at
/// once, and a spec change made during the outage waited behind that sweep (measured:
/// 37.3 s to pick up, over the 30 s the chaos suite allows). A relisted object whose
/// resourceVersion is the one last seen has not changed and triggers nothing; a changed
/// or new one triggers as an update does; one that vanished during the gap (deleted
/// while the watch was down: no Delete event is ever sent for it) triggers what it
/// mapped to when last seen. The first list triggers everything, as before (the
/// start-up pass). With a key ([`Relist::on_keyed`]), an update or a relisted change
/// that leaves the key as it was triggers nothing either.
pub struct Relist<R> {
    /// Per object (`namespace/name`): its last resourceVersion, its key (if keyed) and
    /// what it mapped to.
    seen: std::collections::HashMap<String, Seen<R>>,
    /// The objects listed so far in a relist under way (`None`: no relist under way).
    relisting: Option<std::collections::HashSet<String>>,
    /// Whether a first list has completed: only relists after it are filtered.
    listed: bool,
}

impl<R> Default for Relist<R> {
    fn default() -> Self {
        Self {
            seen: Default::default(),
            relisting: None,
            listed: false,
        }
    }
}

/// What [`Relist`] remembers of one object.
struct Seen<R> {
    resource_version: Option<String>,
    key: Option<u64>,
    refs: Vec<R>,
}

impl<R: Clone> Relist<R> {
    /// The triggers of one watcher event.
    pub fn on<Other, I>(
        &mut self,
        event: watcher::Event<Other>,
        mapper: impl Fn(Other) -> I,
    ) -> Vec<R>
    where
        Other: Resource,
        I: IntoIterator<Item = R>,
    {
        self.on_keyed(event, |_| None, mapper)
    }

    /// The triggers of one watcher event, where an update that leaves `key` unchanged
    /// (`Some` and equal to the last one) triggers nothing.
    pub fn on_keyed<Other, I>(
        &mut self,
        event: watcher::Event<Other>,
        key: impl Fn(&Other) -> Option<u64>,
        mapper: impl Fn(Other) -> I,
    ) -> Vec<R>
    where
        Other: Resource,
        I: IntoIterator<Item = R>,
    {
        fn key_of<O: Resource>(o: &O) -> String {
            let m = o.meta();
            format!(
                "{}/{}",
                m.namespace.as_deref().unwrap_or_default(),
                m.name.as_deref().unwrap_or_default()
            )
        }
        match event {
            watcher::Event::Apply(o) => {
                let k = key_of(&o);
                self.remember(k, o, key, mapper)
            }
            watcher::Event::Delete(o) => {
                self.seen.remove(&key_of(&o));
                mapper(o).into_iter().collect()
            }
            watcher::Event::Init => {
                self.relisting = Some(Default::default());
                Vec::new()
            }
            watcher::Event::InitApply(o) => {
                let k = key_of(&o);
                if let Some(listed) = &mut self.relisting {
                    listed.insert(k.clone());
                }
                let unchanged = self.listed
                    && self.seen.get(&k).is_some_and(|s| {
                        s.resource_version.is_some()
                            && s.resource_version == o.meta().resource_version
                    });
                if unchanged {
                    Vec::new()
                } else {
                    self.remember(k, o, key, mapper)
                }
            }
            watcher::Event::InitDone => {
                let listed = self.relisting.take().unwrap_or_default();
                let mut out = Vec::new();
                if self.listed {
                    self.seen.retain(|k, seen| {
                        let kept = listed.contains(k);
                        if !kept {
                            out.extend(seen.refs.iter().cloned());
                        }
                        kept
                    });
                }
                self.listed = true;
                out
            }
        }
    }

    /// Remembers `o` under `name`, and what it triggers: nothing if its key is the one
    /// last seen (an update erasure or anyone else made that the reconcile does not read).
    fn remember<Other: Resource, I: IntoIterator<Item = R>>(
        &mut self,
        name: String,
        o: Other,
        key: impl Fn(&Other) -> Option<u64>,
        mapper: impl Fn(Other) -> I,
    ) -> Vec<R> {
        let resource_version = o.meta().resource_version.clone();
        let key = key(&o);
        if let Some(seen) = self.seen.get_mut(&name)
            && key.is_some()
            && seen.key == key
        {
            seen.resource_version = resource_version;
            return Vec::new();
        }
        let refs: Vec<R> = mapper(o).into_iter().collect();
        self.seen.insert(
            name,
            Seen {
                resource_version,
                key,
                refs: refs.clone(),
            },
        );
        refs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(name: &str, rv: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.into());
        c.metadata.namespace = Some("ns".into());
        c.metadata.resource_version = Some(rv.into());
        c
    }

    fn triggers(
        relist: &mut Relist<String>,
        events: Vec<watcher::Event<ConfigMap>>,
    ) -> Vec<String> {
        events
            .into_iter()
            .flat_map(|e| relist.on(e, |c: ConfigMap| c.metadata.name))
            .collect()
    }

    /// A whole list: `Init`, one `InitApply` per (name, resourceVersion), `InitDone`.
    fn list(objects: &[(&str, &str)]) -> Vec<watcher::Event<ConfigMap>> {
        std::iter::once(watcher::Event::Init)
            .chain(
                objects
                    .iter()
                    .map(|(n, rv)| watcher::Event::InitApply(cm(n, rv))),
            )
            .chain(std::iter::once(watcher::Event::InitDone))
            .collect()
    }

    #[test]
    fn a_relist_triggers_only_what_changed_or_vanished_during_the_gap() {
        use watcher::Event::*;
        let mut r = Relist::default();
        // The first list is the start-up pass: everything.
        let first = triggers(&mut r, list(&[("a", "1"), ("b", "1"), ("c", "1")]));
        assert_eq!(first, ["a", "b", "c"]);
        assert_eq!(
            triggers(&mut r, vec![Apply(cm("a", "2"))]),
            ["a"],
            "an update triggers"
        );
        // The watch broke; meanwhile b changed, c was deleted, d was created.
        let after_gap = [("a", "2"), ("b", "5"), ("d", "6")];
        let relisted = triggers(&mut r, list(&after_gap));
        assert_eq!(
            relisted,
            ["b", "d", "c"],
            "unchanged a is quiet; c vanished"
        );
        // And a later relist with nothing changed triggers nothing at all.
        let quiet = triggers(&mut r, list(&after_gap));
        assert!(quiet.is_empty(), "{quiet:?}");
        assert_eq!(
            triggers(&mut r, vec![Delete(cm("d", "6"))]),
            ["d"],
            "a deletion triggers"
        );
    }

    /// A ConfigMap whose key (what the reconcile reads) is label `k`.
    fn keyed(name: &str, rv: &str, k: &str) -> ConfigMap {
        let mut c = cm(name, rv);
        c.metadata.labels = Some([("k".to_owned(), k.to_owned())].into());
        c
    }

    fn keyed_triggers(
        relist: &mut Relist<String>,
        events: Vec<watcher::Event<ConfigMap>>,
    ) -> Vec<String> {
        let key = |c: &ConfigMap| Some(hash_of(&c.metadata.labels));
        events
            .into_iter()
            .flat_map(|e| relist.on_keyed(e, key, |c: ConfigMap| c.metadata.name))
            .collect()
    }

    #[test]
    fn with_a_key_only_creation_deletion_and_a_key_change_trigger() {
        use watcher::Event::*;
        let mut r = Relist::default();
        let first = vec![Init, InitApply(keyed("ns-a", "1", "x")), InitDone];
        assert_eq!(keyed_triggers(&mut r, first), ["ns-a"], "the start-up pass");
        // A namespace being deleted: its status updates bump the resourceVersion only.
        let churn = vec![
            Apply(keyed("ns-a", "2", "x")),
            Apply(keyed("ns-a", "3", "x")),
            Apply(keyed("ns-a", "4", "x")),
        ];
        assert!(keyed_triggers(&mut r, churn).is_empty());
        assert_eq!(
            keyed_triggers(&mut r, vec![Apply(keyed("ns-a", "5", "deleting"))]),
            ["ns-a"],
            "a key change triggers"
        );
        // The delete event carries the object as last seen: it triggers all the same.
        assert_eq!(
            keyed_triggers(&mut r, vec![Delete(keyed("ns-a", "6", "deleting"))]),
            ["ns-a"]
        );
        assert_eq!(
            keyed_triggers(&mut r, vec![Apply(keyed("ns-a", "7", "deleting"))]),
            ["ns-a"],
            "created again: new"
        );
        // A relist after a gap: a bumped resourceVersion with the same key is quiet,
        // a vanished object triggers.
        let gap = vec![Init, InitApply(keyed("ns-b", "9", "y")), InitDone];
        assert_eq!(keyed_triggers(&mut r, gap), ["ns-b", "ns-a"]);
        let again = vec![Init, InitApply(keyed("ns-b", "10", "y")), InitDone];
        assert!(keyed_triggers(&mut r, again).is_empty());
    }

    #[test]
    fn retries_start_fast_and_never_wait_more_than_eight_seconds() {
        let waits: Vec<Duration> = backoff().take(50).collect();
        assert_eq!(waits.len(), 50, "a watch is retried for ever");
        assert!(waits[0] <= Duration::from_secs(1), "{waits:?}");
        assert!(waits.iter().all(|w| *w <= 2 * MAX_RETRY), "{waits:?}");
    }

    #[test]
    fn only_watches_failing_longer_than_the_limit_are_stalled() {
        let now = Instant::now();
        let limit = Duration::from_secs(300);
        let failing = [
            ("Tenant", now - Duration::from_secs(301)),
            ("Node", now - Duration::from_secs(299)),
            ("Job", now),
        ];
        let stalled = stalled_among(failing.into_iter(), now, limit);
        assert_eq!(stalled, vec![("Tenant", Duration::from_secs(301))]);
    }

    #[test]
    fn a_watch_that_recovers_or_stops_is_no_longer_failing() {
        let a = Failing::register("A");
        let b = Failing::register("B");
        a.failed();
        b.failed();
        let present = |id: u64| FAILING.lock().unwrap().contains_key(&id);
        assert!(present(a.id) && present(b.id));
        a.recovered();
        assert!(!present(a.id));
        let b_id = b.id;
        drop(b);
        assert!(!present(b_id));
    }
}
