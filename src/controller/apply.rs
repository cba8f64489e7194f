//! Server-side apply that writes only when the cluster differs from what we want.
//!
//! A reconcile of an unchanged tenant must make no mutating request. Applying every
//! child on every pass would be correct but noisy (a PATCH each, and churn in
//! managedFields); instead we read the child and apply only when some field we set
//! differs. The comparison is "desired is a subset of actual": fields the API server
//! defaults, or other managers set, do not count, but a field of ours changed by hand
//! does, so drift is corrected on the next reconcile.

use std::fmt::Debug;

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Error, FIELD_MANAGER};

/// Whether every field of `desired` has the same value in `actual`. Objects compare
/// key by key (extra keys in `actual` are fine), lists element-wise with equal length,
/// scalars by value; a `null` in desired means "absent or null".
pub fn is_subset(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) => false,
        (Value::Object(d), Value::Object(a)) => d.iter().all(|(k, dv)| match a.get(k) {
            Some(av) => is_subset(dv, av),
            None => dv.is_null(),
        }),
        (Value::Array(d), Value::Array(a)) => {
            d.len() == a.len() && d.iter().zip(a).all(|(dv, av)| is_subset(dv, av))
        }
        (Value::Number(d), Value::Number(a)) => d.as_f64() == a.as_f64(),
        (d, a) => d == a,
    }
}

/// Applies `desired` with Herald's field manager unless `current` already holds it.
/// Returns the object as the API server holds it after the write (the apply's answer,
/// so no read-back is needed), or `None` when no write was made.
pub async fn apply_if_changed<K>(
    api: &Api<K>,
    current: Option<&K>,
    desired: &K,
) -> Result<Option<K>, Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
    K::DynamicType: Default,
{
    let name = desired.meta().name.clone().ok_or(Error::MissingName)?;
    let desired_json = serde_json::to_value(desired).map_err(|source| Error::Build {
        what: "object",
        source,
    })?;
    if let Some(current) = current {
        let current_json = serde_json::to_value(current).map_err(|source| Error::Build {
            what: "object",
            source,
        })?;
        if is_subset(&desired_json, &current_json) {
            return Ok(None);
        }
    }
    // force: Herald is the only manager of these fields; take them back from whoever
    // changed them (the change is drift, and it is logged by the caller).
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&desired_json),
    )
    .await
    .map(Some)
    .map_err(Error::kube(format!(
        "apply {} {name}",
        K::kind(&Default::default())
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaulted_and_foreign_fields_do_not_count() {
        let desired =
            json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a"}]}}}});
        let actual = json!({"spec": {"replicas": 2, "revisionHistoryLimit": 10,
            "template": {"spec": {"containers": [{"name": "a", "imagePullPolicy": "IfNotPresent"}]}}}});
        assert!(is_subset(&desired, &actual));
    }

    #[test]
    fn a_changed_or_missing_field_counts() {
        let desired = json!({"spec": {"replicas": 2, "paused": false}});
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 3, "paused": false}})
        ));
        assert!(!is_subset(&desired, &json!({"spec": {"replicas": 2}})));
    }

    #[test]
    fn lists_must_have_the_same_length() {
        let desired = json!({"values": ["eu-central-1"]});
        assert!(!is_subset(
            &desired,
            &json!({"values": ["eu-central-1", "us-east-1"]})
        ));
        assert!(is_subset(&desired, &json!({"values": ["eu-central-1"]})));
    }

    #[test]
    fn null_means_absent() {
        assert!(is_subset(&json!({"a": null}), &json!({})));
        assert!(!is_subset(&json!({"a": null}), &json!({"a": 1})));
    }
}
