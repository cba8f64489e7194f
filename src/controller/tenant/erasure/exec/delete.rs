//! `deleteAndVerify`: deletes what the inventory's scope allows (the namespace, which
//! takes everything in it, then the labelled objects outside it), waits
//! for the namespace to be gone, and verifies that nothing labelled for the tenant is
//! left where erasure may delete. What the API refuses to delete, and what is still
//! there `erasure.stuckAfterSeconds` after its deletion, is recorded instead of waited
//! for ([`held`]): one undeletable object never holds the erasure past its deadline.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use kube::core::{ApiResource, DynamicObject};

use super::super::{held, plan, scope};
use super::{Next, Pass, sweep};
use crate::api::v1alpha1::conditions::reason;
use crate::api::v1alpha1::{ErasureStatus, NotErasedObject};
use crate::controller::{Context, Error};

/// Where the tenant namespace stands in this pass.
enum NamespaceState {
    /// Gone, or not Herald's (never deleted).
    Gone,
    /// There and not being deleted: delete it.
    Live,
    /// Being deleted, for less than the stuck bound: wait for it.
    Going,
    /// Being deleted for longer: recorded, with what it still holds.
    Stuck(String),
}

/// The `deleteAndVerify` step.
pub(super) async fn delete_and_verify(
    pass: &Pass<'_>,
    es: &mut ErasureStatus,
) -> Result<Next, Error> {
    let ns = &pass.ns;
    let stuck_after = pass.ctx.config.erasure.stuck_after();
    // A namespace Herald did not create is neither waited for nor deleted.
    let ns_obj = if pass.home.foreign.is_some() {
        None
    } else {
        pass.home.live_namespace
    };
    let state = match ns_obj {
        None => NamespaceState::Gone,
        Some(n) => match held::judge(&n.metadata, pass.now, stuck_after) {
            held::Verdict::Delete => NamespaceState::Live,
            held::Verdict::Wait => NamespaceState::Going,
            held::Verdict::Stuck(why) => NamespaceState::Stuck(match held::namespace_holders(n) {
                Some(holders) => format!("{why}: {holders}"),
                None => why,
            }),
        },
    };
    let waiting = format!("deleting: waiting for namespace {ns} to be gone");
    // While the namespace is being deleted, everything outside it has been deleted
    // already (below): wait for it, without sweeping again. Its deletion (and its
    // children's) wakes the tenant through the watches.
    if matches!(state, NamespaceState::Going) {
        return Ok(Next::wait(10, waiting));
    }
    let mut held_now = Vec::new();
    if let (NamespaceState::Stuck(why), Some(n)) = (&state, ns_obj)
        && !held::already_held(
            &es.not_erased,
            n.metadata.uid.as_deref().unwrap_or_default(),
        )
    {
        // Recorded once, with everything still in it: the receipt claims none of it.
        held_now.push(held::record(&namespace_id(n), reason::DELETION_STUCK, why));
        let left = sweep::namespace_contents(pass.ctx, ns).await?;
        let message = format!("in namespace {ns}, whose deletion is held");
        held_now.extend(
            sweep::identified(left)
                .into_iter()
                .map(|(_, id)| held::record(&id, reason::DELETION_STUCK, &message)),
        );
    }
    // The namespace goes first: the inventory is recorded, and its deletion (the
    // namespace controller's work, most of an erasure's time) need not wait for the
    // sweep below, which finds what is left outside it.
    let mut namespace_deleted = false;
    if let (NamespaceState::Live, Some(n)) = (&state, ns_obj) {
        match delete_namespace(pass.ctx, ns).await? {
            Deleted::Done => namespace_deleted = true,
            Deleted::Refused(why) => {
                held_now.push(held::record(
                    &namespace_id(n),
                    reason::DELETION_REFUSED,
                    &why,
                ));
            }
        }
    }
    let swept = sweep::sweep(pass.ctx, &pass.name, ns, pass.home, pass.keep, false).await?;
    es.not_erased = scope::merge_not_erased(std::mem::take(&mut es.not_erased), swept.not_erased);
    // What the inventory could not list stays unverified: this sweep looks at the
    // scope's namespaces only.
    es.unverified_kinds =
        plan::merge_unverified(std::mem::take(&mut es.unverified_kinds), swept.unverified);
    let mut pending = 0;
    for (ar, o) in swept.erase {
        let uid = o.metadata.uid.clone().unwrap_or_default();
        if held::already_held(&es.not_erased, &uid)
            || held_now.iter().any(|h| h.uid == uid)
            || o.metadata.namespace.as_deref() == Some(ns.as_str())
        {
            continue;
        }
        let id = || sweep::identified(vec![(ar.clone(), o.clone())]).remove(0).1;
        match held::judge(&o.metadata, pass.now, stuck_after) {
            held::Verdict::Wait => pending += 1,
            held::Verdict::Stuck(why) => {
                held_now.push(held::record(&id(), reason::DELETION_STUCK, &why));
            }
            held::Verdict::Delete => match delete_labelled(pass.ctx, &ar, &o).await? {
                Deleted::Done => pending += 1,
                Deleted::Refused(why) => {
                    held_now.push(held::record(&id(), reason::DELETION_REFUSED, &why));
                }
            },
        }
    }
    if !held_now.is_empty() {
        es.not_erased = scope::merge_not_erased(std::mem::take(&mut es.not_erased), held_now);
    }
    if namespace_deleted || pending > 0 {
        // With the namespace going, the note the next passes write while they wait
        // for it: one status write, not two.
        let note = if namespace_deleted {
            waiting
        } else {
            format!("deleting: {pending} labelled objects left")
        };
        return Ok(Next::wait(10, note));
    }
    // What could not be deleted is not claimed as deleted.
    es.inventory = held::without_held(std::mem::take(&mut es.inventory), &es.not_erased);
    es.verified_at = Some(Time(pass.now));
    Ok(Next::wait(
        1,
        match held::summary(&es.not_erased) {
            None => "verified: nothing labelled for the tenant remains".into(),
            Some(held) => format!("verified, except: {held}"),
        },
    ))
}

/// How a DELETE ended.
pub(super) enum Deleted {
    /// Deleted, being deleted, or already gone.
    Done,
    /// Refused for good (see [`held::refused_for_good`]), with what the API said.
    Refused(String),
}

/// What a DELETE answered, as [`Deleted`]; an error only for what is worth retrying.
fn deleted(result: Result<(), kube::Error>, what: String) -> Result<Deleted, Error> {
    match result {
        Ok(()) => Ok(Deleted::Done),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Deleted::Done),
        Err(kube::Error::Api(s)) if held::refused_for_good(s.code) => {
            Ok(Deleted::Refused(format!("HTTP {}: {}", s.code, s.message)))
        }
        Err(e) => Err(Error::kube(format!("delete {what}"))(e)),
    }
}

/// Deletes one labelled object outside the tenant namespace.
pub(super) async fn delete_labelled(
    ctx: &Context,
    ar: &ApiResource,
    o: &DynamicObject,
) -> Result<Deleted, Error> {
    let name = o.name_any();
    let api: Api<DynamicObject> = match o.metadata.namespace.as_deref() {
        Some(other) => Api::namespaced_with(ctx.client.clone(), other, ar),
        None => Api::all_with(ctx.client.clone(), ar),
    };
    let result = api.delete(&name, &DeleteParams::background()).await;
    if result.is_ok() {
        ctx.metrics.wrote("tenant", &ar.kind);
    }
    deleted(result.map(|_| ()), format!("{} {name}", ar.kind))
}

/// Deletes the tenant namespace (which takes everything in it).
async fn delete_namespace(ctx: &Context, ns: &str) -> Result<Deleted, Error> {
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    let result = ns_api.delete(ns, &DeleteParams::background()).await;
    if result.is_ok() {
        ctx.metrics.wrote("tenant", "Namespace");
    }
    deleted(result.map(|_| ()), format!("Namespace {ns}"))
}

/// The tenant namespace as erasure records objects.
fn namespace_id(n: &Namespace) -> scope::ObjectId {
    scope::ObjectId {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        resource: "namespaces".into(),
        namespace: None,
        name: n.name_any(),
        uid: n.metadata.uid.clone().unwrap_or_default(),
    }
}

/// Whether `o` (a held object) is still there: the same UID at its name.
pub(super) fn same_object(o: &NotErasedObject, live: Option<&DynamicObject>) -> bool {
    live.is_some_and(|l| l.metadata.uid.as_deref() == Some(o.uid.as_str()))
}
