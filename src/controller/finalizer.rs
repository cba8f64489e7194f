//! Herald's finalizers, added and removed with server-side apply under a field manager
//! that owns nothing else: the apply changes only Herald's entry in the set (never
//! another controller's), needs no resourceVersion, so it never conflicts with a
//! concurrent status write, and cannot create an object that is already gone (the
//! kinds it is used on require a spec, which the patch does not carry).

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
    apply(api, obj, &[finalizer], ctx, controller).await?;
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
    if !has(obj, finalizer) {
        return Ok(());
    }
    apply(api, obj, &[], ctx, controller).await
}

async fn apply<K>(
    api: &Api<K>,
    obj: &K,
    finalizers: &[&str],
    ctx: &Context,
    controller: &str,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = obj.name_any();
    let kind = K::kind(&());
    let patch = json!({
        "apiVersion": K::api_version(&()), "kind": kind,
        "metadata": {"name": name, "finalizers": finalizers}
    });
    api.patch(
        &name,
        &PatchParams::apply(FINALIZER_MANAGER),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::kube(format!("update finalizers of {kind} {name}")))?;
    ctx.metrics.wrote(controller, &format!("{kind}/finalizers"));
    Ok(())
}
