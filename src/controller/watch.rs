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

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use futures::{Stream, StreamExt, stream};
use kube::Api;
use kube::Resource;
use kube::runtime::WatchStreamExt;
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
    stream::unfold((inner, backoff()), |(mut inner, mut backoff)| async move {
        loop {
            match inner.next().await {
                Some(Ok(event)) => {
                    backoff.reset();
                    return Some((Ok(event), (inner, backoff)));
                }
                Some(Err(e)) => {
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
    })
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
        I::IntoIter: Send;
}

impl<K> RecoveringWatches<K> for Controller<K>
where
    K: Clone + Resource + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
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
        self.watches_stream(watch(api, config).touched_objects(), mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_start_fast_and_never_wait_more_than_eight_seconds() {
        let waits: Vec<Duration> = backoff().take(50).collect();
        assert_eq!(waits.len(), 50, "a watch is retried for ever");
        assert!(waits[0] <= Duration::from_secs(1), "{waits:?}");
        assert!(waits.iter().all(|w| *w <= 2 * MAX_RETRY), "{waits:?}");
    }
}
