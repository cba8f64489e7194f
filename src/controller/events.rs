//! Kubernetes Events (events.k8s.io/v1) on Herald's objects. Repeats of one event (same
//! object, type, reason and action within [`SERIES_WINDOW`]) fold into a series on the
//! first Event, as kube-runtime's `Recorder` does, so a retry loop is one Event with a
//! count, not a flood.
//!
//! Why not that `Recorder`: it keeps a clone of every Event it published for six minutes
//! and scans them all, under a write lock, on every publish. A fleet's first reconcile
//! publishes a few events per tenant within those minutes, so at 1,000 tenants the
//! clones were a large part of the operator's peak memory. Folding needs much less:
//! which Event a key went to, its count and when it was last seen. Expired entries are
//! swept at most once per [`SWEEP_EVERY`].

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use serde_json::json;

/// How long a repeat still counts toward the last Event's series (kube-runtime's and
/// client-go's value).
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);
/// How often expired series are forgotten.
const SWEEP_EVERY: SignedDuration = SignedDuration::from_mins(1);

/// Publishes events as one reporter.
pub struct Publisher {
    client: Client,
    reporter: Reporter,
    series: Mutex<Series>,
}

/// What one publish does.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A new Event, named `name`.
    Create { name: String },
    /// Another occurrence of the Event `name`: its series count becomes `count`.
    Repeat { name: String, count: i32 },
}

/// Which events fold together: one object (by uid), type, reason and action.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Key {
    uid: String,
    warning: bool,
    reason: String,
    action: String,
}

/// The Event a key last went to.
#[derive(Debug)]
struct Seen {
    name: String,
    count: i32,
    last: Timestamp,
}

/// The open series: the pure part of publishing.
#[derive(Debug, Default)]
struct Series {
    open: HashMap<Key, Seen>,
    swept: Option<Timestamp>,
}

impl Series {
    /// What publishing `key` at `now` does; `fresh_name` names a new Event.
    fn step(&mut self, key: &Key, now: Timestamp, fresh_name: impl FnOnce() -> String) -> Step {
        if self.swept.is_none_or(|t| now >= t + SWEEP_EVERY) {
            self.open.retain(|_, s| s.last + SERIES_WINDOW > now);
            self.swept = Some(now);
        }
        match self.open.get(key) {
            Some(s) if s.last + SERIES_WINDOW > now => Step::Repeat {
                name: s.name.clone(),
                count: s.count.saturating_add(1),
            },
            _ => Step::Create { name: fresh_name() },
        }
    }

    /// Records that `key` went to the Event `name`, now `count` occurrences.
    fn record(&mut self, key: Key, name: String, count: i32, now: Timestamp) {
        self.open.insert(
            key,
            Seen {
                name,
                count,
                last: now,
            },
        );
    }
}

impl Publisher {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            series: Mutex::default(),
        }
    }

    /// Publishes `ev` on the object `regarding` (cluster-scoped objects' events go to
    /// the `default` namespace, as with kube-runtime).
    pub async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = Key {
            uid: regarding.uid.clone().unwrap_or_default(),
            warning: matches!(ev.type_, EventType::Warning),
            reason: ev.reason.clone(),
            action: ev.action.clone(),
        };
        let fresh_name = || {
            format!(
                "{}.{:x}",
                regarding
                    .name
                    .as_deref()
                    .unwrap_or(&self.reporter.controller),
                now.as_nanosecond()
            )
        };
        let step = match self.series.lock() {
            Ok(mut s) => s.step(&key, now, fresh_name),
            Err(_) => Step::Create { name: fresh_name() },
        };
        let ns = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), ns);
        let (name, count) = match step {
            Step::Repeat { name, count } => {
                let series =
                    json!({"series": {"count": count, "lastObservedTime": MicroTime(now)}});
                match events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                    .await
                {
                    Ok(_) => (name, count),
                    // The Event expired (the API server's event TTL): start a new one.
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        self.create(&events, ev, regarding, fresh_name(), now)
                            .await?
                    }
                    Err(e) => return Err(e),
                }
            }
            Step::Create { name } => self.create(&events, ev, regarding, name, now).await?,
        };
        if let Ok(mut s) = self.series.lock() {
            s.record(key, name, count, now);
        }
        Ok(())
    }

    /// Creates the first Event of a series, named `name`; the series so far.
    async fn create(
        &self,
        events: &Api<K8sEvent>,
        ev: &Event,
        regarding: &ObjectReference,
        name: String,
        now: Timestamp,
    ) -> Result<(String, i32), kube::Error> {
        let event = self.event(ev, regarding, &name, now);
        events.create(&PostParams::default(), &event).await?;
        Ok((name, 1))
    }

    /// The first Event of a series.
    fn event(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
        name: &str,
        now: Timestamp,
    ) -> K8sEvent {
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(
                    regarding
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                ),
                ..Default::default()
            },
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            note: ev.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(reason: &str) -> Key {
        Key {
            uid: "u1".into(),
            warning: true,
            reason: reason.into(),
            action: "SetReady".into(),
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    /// Publishes `k` at `now` as `publish` does (the write succeeding).
    fn publish(s: &mut Series, k: &Key, now: Timestamp, fresh: &str) -> Step {
        let step = s.step(k, now, || fresh.to_owned());
        let (name, count) = match &step {
            Step::Create { name } => (name.clone(), 1),
            Step::Repeat { name, count } => (name.clone(), *count),
        };
        s.record(k.clone(), name, count, now);
        step
    }

    #[test]
    fn repeats_within_the_window_fold_into_the_first_event() {
        let mut s = Series::default();
        let k = key("ProviderFailed");
        assert_eq!(
            publish(&mut s, &k, at(0), "e1"),
            Step::Create { name: "e1".into() }
        );
        assert_eq!(
            publish(&mut s, &k, at(30), "e2"),
            Step::Repeat {
                name: "e1".into(),
                count: 2
            }
        );
        // The window runs from the last occurrence: a steady retry stays one series.
        assert_eq!(
            publish(&mut s, &k, at(380), "e3"),
            Step::Repeat {
                name: "e1".into(),
                count: 3
            }
        );
    }

    #[test]
    fn a_repeat_after_the_window_starts_a_new_event() {
        let mut s = Series::default();
        let k = key("ProviderFailed");
        publish(&mut s, &k, at(0), "e1");
        assert_eq!(
            publish(&mut s, &k, at(360), "e2"),
            Step::Create { name: "e2".into() }
        );
    }

    #[test]
    fn other_reasons_objects_and_types_are_other_series() {
        let mut s = Series::default();
        publish(&mut s, &key("ProviderFailed"), at(0), "e1");
        assert_eq!(
            publish(&mut s, &key("CredentialsRevoked"), at(1), "e2"),
            Step::Create { name: "e2".into() }
        );
        let other_object = Key {
            uid: "u2".into(),
            ..key("ProviderFailed")
        };
        assert_eq!(
            publish(&mut s, &other_object, at(2), "e3"),
            Step::Create { name: "e3".into() }
        );
        let normal = Key {
            warning: false,
            ..key("ProviderFailed")
        };
        assert_eq!(
            publish(&mut s, &normal, at(3), "e4"),
            Step::Create { name: "e4".into() }
        );
    }

    #[test]
    fn expired_series_are_forgotten() {
        let mut s = Series::default();
        for i in 0..100 {
            publish(
                &mut s,
                &Key {
                    uid: format!("u{i}"),
                    ..key("Ready")
                },
                at(0),
                "e",
            );
        }
        assert_eq!(s.open.len(), 100);
        // Within a minute of the last sweep nothing is swept; past the window, on the
        // next sweep, everything expired goes.
        publish(&mut s, &key("Other"), at(30), "x");
        assert_eq!(s.open.len(), 101);
        publish(&mut s, &key("Other"), at(400), "y");
        assert_eq!(s.open.len(), 1);
    }
}
