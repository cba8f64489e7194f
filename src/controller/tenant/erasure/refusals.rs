//! Lists the API server refused the operator (403), remembered for as long as one API
//! discovery serves erasure: under the chart's RBAC about 40 of the 60 listable kinds
//! are refused, cluster-wide and in every tenant namespace alike (one Role serves them
//! all), and asking again for each tenant's inventory cost as many requests as the
//! lists that answer. A refusal is a fact about the operator's rights, not about the
//! tenant: within the TTL the answer is the same, and a grant made meanwhile is seen at
//! most that late (as a newly installed kind is).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Where a list was refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    ClusterWide,
    /// Any tenant namespace: the operator's rights there come from one Role.
    TenantNamespace,
    /// A namespace by name (the control namespace).
    Named(String),
}

/// One refused list: a resource (group and plural) in a place.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub group: String,
    pub plural: String,
    pub place: Place,
}

/// The refusals seen, with when.
#[derive(Debug, Default)]
pub struct Refusals {
    seen: HashMap<Key, Instant>,
}

impl Refusals {
    /// Whether `key` was refused less than `ttl` before `now`.
    pub fn refused(&self, key: &Key, now: Instant, ttl: Duration) -> bool {
        self.seen
            .get(key)
            .is_some_and(|at| now.saturating_duration_since(*at) < ttl)
    }

    /// Records that `key` was refused at `now` (and forgets refusals older than `ttl`).
    pub fn record(&mut self, key: Key, now: Instant, ttl: Duration) {
        self.seen
            .retain(|_, at| now.saturating_duration_since(*at) < ttl);
        self.seen.insert(key, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(place: Place) -> Key {
        Key {
            group: "apps".into(),
            plural: "statefulsets".into(),
            place,
        }
    }

    #[test]
    fn a_refusal_is_remembered_for_the_ttl_only_and_where_it_happened() {
        let ttl = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut r = Refusals::default();
        assert!(!r.refused(&key(Place::ClusterWide), t0, ttl));
        r.record(key(Place::ClusterWide), t0, ttl);
        assert!(r.refused(&key(Place::ClusterWide), t0 + Duration::from_secs(59), ttl));
        // Not refused elsewhere, nor once the TTL is over: asked again.
        assert!(!r.refused(&key(Place::TenantNamespace), t0, ttl));
        assert!(!r.refused(&key(Place::Named("herald-system".into())), t0, ttl));
        assert!(!r.refused(&key(Place::ClusterWide), t0 + ttl, ttl));
        // Old refusals are forgotten as new ones come.
        r.record(key(Place::TenantNamespace), t0 + ttl, ttl);
        assert_eq!(r.seen.len(), 1);
    }
}
