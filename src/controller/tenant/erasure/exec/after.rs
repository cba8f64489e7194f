//! The `done` step: erased stays erased. On every pass after the receipt, the objects
//! erasure could not delete are looked up (a person deleting one resolves it), and
//! anything labelled for the tenant that appeared since where erasure may delete (a
//! GitOps tool re-applying the tenant's Secrets into the control namespace) is deleted
//! again and recorded in `erasedAgain`.

use kube::ResourceExt;
use kube::api::Api;
use kube::core::DynamicObject;

use super::super::{Delivery, held, scope};
use super::delete::{Deleted, delete_labelled, same_object};
use super::{Next, Pass, receipt, sweep};
use crate::api::v1alpha1::conditions::reason;
use crate::api::v1alpha1::{ErasedAgainObject, ErasureStatus};
use crate::controller::Error;

/// How many deleted-again objects status keeps (the count keeps the total).
const ERASED_AGAIN_KEPT: usize = 20;

/// The `done` step.
pub(super) async fn recheck(pass: &Pass<'_>, es: &mut ErasureStatus) -> Result<Next, Error> {
    resolve_held(pass, es).await?;
    let ns = &pass.ns;
    let swept = sweep::sweep(pass.ctx, &pass.name, ns, pass.home, pass.keep, false).await?;
    let mut held_now = Vec::new();
    for (ar, o) in swept.erase {
        let uid = o.metadata.uid.clone().unwrap_or_default();
        // The tenant namespace is Herald's to create: nothing of a GitOps tool's is
        // there; one being deleted goes by itself.
        if held::already_held(&es.not_erased, &uid)
            || o.metadata.namespace.as_deref() == Some(ns.as_str())
            || o.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        match delete_labelled(pass.ctx, &ar, &o).await? {
            Deleted::Done => {
                es.erased_again.push(ErasedAgainObject {
                    api_version: ar.api_version.clone(),
                    kind: ar.kind.clone(),
                    namespace: o.metadata.namespace.clone(),
                    name: o.name_any(),
                    uid,
                    deleted_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(pass.now),
                });
                es.erased_again_count = Some(es.erased_again_count.unwrap_or(0) + 1);
            }
            Deleted::Refused(why) => {
                let id = sweep::identified(vec![(ar.clone(), o.clone())]).remove(0).1;
                held_now.push(held::record(&id, reason::DELETION_REFUSED, &why));
            }
        }
    }
    let excess = es.erased_again.len().saturating_sub(ERASED_AGAIN_KEPT);
    es.erased_again.drain(..excess);
    if !held_now.is_empty() {
        es.not_erased = scope::merge_not_erased(std::mem::take(&mut es.not_erased), held_now);
    }
    Ok(receipt::done(es, Delivery::Delivered))
}

/// Marks the held objects that are gone (or replaced: another UID at the name) as
/// resolved. One that cannot be read stays outstanding.
async fn resolve_held(pass: &Pass<'_>, es: &mut ErasureStatus) -> Result<(), Error> {
    let outstanding: Vec<_> = held::outstanding(&es.not_erased).cloned().collect();
    if outstanding.is_empty() {
        return Ok(());
    }
    let types = sweep::deletable_types(pass.ctx).await?;
    let mut still = Vec::new();
    for o in &outstanding {
        let Some((ar, _)) = types
            .iter()
            .find(|(ar, _)| ar.api_version == o.api_version && ar.kind == o.kind)
        else {
            // The type is not served any more: nothing of it exists.
            continue;
        };
        let api: Api<DynamicObject> = match o.namespace.as_deref() {
            Some(ns) => Api::namespaced_with(pass.ctx.client.clone(), ns, ar),
            None => Api::all_with(pass.ctx.client.clone(), ar),
        };
        match api.get_opt(&o.name).await {
            Ok(live) => {
                if same_object(o, live.as_ref()) {
                    still.push(o.uid.clone());
                }
            }
            // Not readable (RBAC): not known to be gone.
            Err(kube::Error::Api(s)) if s.code == 403 => still.push(o.uid.clone()),
            Err(e) => return Err(Error::kube(format!("read {} {}", o.kind, o.name))(e)),
        }
    }
    held::resolve(&mut es.not_erased, |o| still.contains(&o.uid), pass.now);
    Ok(())
}
