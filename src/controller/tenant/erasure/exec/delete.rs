//! `deleteAndVerify`: deletes what the inventory's scope allows (the namespace, which
//! takes everything in it, then the labelled objects outside it), waits
//! for the namespace to be gone, and verifies that nothing labelled for the tenant is
//! left where erasure may delete.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use kube::core::{ApiResource, DynamicObject};

use super::super::{plan, scope};
use super::{Next, Pass, sweep};
use crate::api::v1alpha1::ErasureStatus;
use crate::controller::{Context, Error};

/// The `deleteAndVerify` step.
pub(super) async fn delete_and_verify(
    pass: &Pass<'_>,
    es: &mut ErasureStatus,
) -> Result<Next, Error> {
    let ns = &pass.ns;
    // While the namespace is being deleted, everything outside it has been deleted
    // already (below): wait for it, without sweeping again. Its deletion (and its
    // children's) wakes the tenant through the watches. A namespace Herald did not
    // create is neither waited for nor deleted.
    let ns_obj = if pass.home.foreign.is_some() {
        None
    } else {
        pass.home.live_namespace
    };
    let waiting = format!("deleting: waiting for namespace {ns} to be gone");
    if ns_obj.is_some_and(|n| n.metadata.deletion_timestamp.is_some()) {
        return Ok(Next::wait(10, waiting));
    }
    // The namespace goes first: the inventory is recorded, and its deletion (the
    // namespace controller's work, most of an erasure's time) need not wait for the
    // sweep below, which finds what is left outside it.
    if ns_obj.is_some() {
        delete_everything(pass.ctx, ns, Vec::new(), true).await?;
    }
    let swept = sweep::sweep(pass.ctx, &pass.name, ns, pass.home, pass.keep, false).await?;
    let remaining = swept.erase;
    es.not_erased = scope::merge_not_erased(std::mem::take(&mut es.not_erased), swept.not_erased);
    // What the inventory could not list stays unverified: this sweep looks at the
    // scope's namespaces only.
    es.unverified_kinds =
        plan::merge_unverified(std::mem::take(&mut es.unverified_kinds), swept.unverified);
    if ns_obj.is_some() || !remaining.is_empty() {
        let left = remaining.len() + usize::from(ns_obj.is_some());
        delete_everything(pass.ctx, ns, remaining, false).await?;
        // With the namespace going, the note the next passes write while they wait
        // for it: one status write, not two.
        let note = if ns_obj.is_some() {
            waiting
        } else {
            format!("deleting: {left} labelled objects left")
        };
        return Ok(Next::wait(10, note));
    }
    es.verified_at = Some(Time(pass.now));
    Ok(Next::wait(
        1,
        "verified: nothing labelled for the tenant remains".into(),
    ))
}

/// Deletes the `labelled` objects outside the tenant namespace, then the namespace if
/// `namespace_exists` (which takes everything in it). Idempotent: what is gone or going
/// is skipped.
async fn delete_everything(
    ctx: &Context,
    ns: &str,
    labelled: Vec<(ApiResource, DynamicObject)>,
    namespace_exists: bool,
) -> Result<(), Error> {
    for (ar, o) in labelled {
        if o.metadata.deletion_timestamp.is_some() || o.metadata.namespace.as_deref() == Some(ns) {
            continue;
        }
        let name = o.name_any();
        if ar.kind == "Namespace" && name == ns {
            continue;
        }
        let api: Api<DynamicObject> = match o.metadata.namespace.as_deref() {
            Some(other) => Api::namespaced_with(ctx.client.clone(), other, &ar),
            None => Api::all_with(ctx.client.clone(), &ar),
        };
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => ctx.metrics.wrote("tenant", &ar.kind),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube(format!("delete {} {name}", ar.kind))(e)),
        }
    }
    if namespace_exists {
        let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
        match ns_api.delete(ns, &DeleteParams::background()).await {
            Ok(_) => ctx.metrics.wrote("tenant", "Namespace"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube(format!("delete Namespace {ns}"))(e)),
        }
    }
    Ok(())
}
