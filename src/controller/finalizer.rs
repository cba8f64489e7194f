//! Herald's finalizers. Added with server-side apply under a field manager that owns
//! nothing else: the apply adds only Herald's entry to the set (never touching another
//! controller's), needs no resourceVersion, so it never conflicts with a concurrent
//! status write, and cannot create an object that is already gone (the kinds it is used
//! on require a spec, which the patch does not carry). Removed with a JSON patch that
//! tests the entry at its index and removes it: an apply could only drop what its
//! manager owns, and the entry may have been written by someone else (a manifest that
//! carries it, a restore from a backup), which must not hold the object forever.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::{Context, Error};

/// The field manager that owns only Herald's finalizers.
const FINALIZER_MANAGER: &str = "herald-finalizer";

/// Whether `obj` carries `finalizer`.
pub fn has<K: Resource>(obj: &K, finalizer: &str) -> bool {
    obj.finalizers().iter().any(|f| f == finalizer)
}

/// Adds `finalizer` to a live object that lacks it (a write only once per object).
/// Returns whether it wrote: the write is itself a watch event that reconciles the
/// object again, so a caller returns at once instead of doing the work twice.
pub async fn ensure<K>(
    api: &Api<K>,
    obj: &K,
    finalizer: &str,
    ctx: &Context,
    controller: &str,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if obj.meta().deletion_timestamp.is_some() || has(obj, finalizer) {
        return Ok(false);
    }
    let name = obj.name_any();
    let kind = K::kind(&());
    let patch = json!({
        "apiVersion": K::api_version(&()), "kind": kind,
        "metadata": {"name": name, "finalizers": [finalizer]}
    });
    api.patch(
        &name,
        &PatchParams::apply(FINALIZER_MANAGER),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::kube(format!("add the finalizer of {kind} {name}")))?;
    ctx.metrics.wrote(controller, &format!("{kind}/finalizers"));
    Ok(true)
}

/// Removes Herald's finalizer (the object then disappears unless others hold it).
pub async fn release<K>(
    api: &Api<K>,
    obj: &K,
    finalizer: &str,
    ctx: &Context,
    controller: &str,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(index) = obj.finalizers().iter().position(|f| f == finalizer) else {
        return Ok(());
    };
    let name = obj.name_any();
    let kind = K::kind(&());
    // The test makes a stale index fail (422) instead of removing another entry; the
    // retry then sees the current list.
    let path = format!("/metadata/finalizers/{index}");
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": path, "value": finalizer},
        {"op": "remove", "path": path}
    ]))
    .map_err(|source| Error::Build {
        what: "finalizer patch",
        source,
    })?;
    match api
        .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => {}
        // Gone already: nothing holds it.
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => {
            return Err(Error::kube(format!(
                "remove the finalizer of {kind} {name}"
            ))(e));
        }
    }
    ctx.metrics.wrote(controller, &format!("{kind}/finalizers"));
    Ok(())
}
