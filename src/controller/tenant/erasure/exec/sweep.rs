//! Looking for what is the tenant's: the inventory (every listable kind, once per
//! erasure: what erasure deletes, what it finds and leaves, what it could not list) and
//! the sweeps of the delete step (only where erasure may delete: the scope's kinds in
//! the scope's namespaces, and the control namespace's Secrets).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::core::{ApiResource, DynamicObject};
use kube::discovery::{Discovery, Scope, verbs};

use super::super::{JobHome, refusals, scope};
use crate::api::v1alpha1::{ErasureStatus, NotErasedObject};
use crate::controller::{Context, Error, TENANT_LABEL};

/// Resource types erasure looks at: everything listable and deletable, but events
/// (never labelled by Herald, and they age out) and Herald's own kinds (the Tenant
/// itself and user-owned references to it).
///
/// Discovery costs a request per API group and version (about 30 on a plain cluster)
/// and every erasure pass needs it two or three times, so one result serves all
/// erasures for [`DISCOVERY_TTL`]: a type installed meanwhile is seen at most that late.
pub(super) async fn deletable_types(ctx: &Context) -> Result<Vec<(ApiResource, bool)>, Error> {
    type Cached = Option<(std::time::Instant, Vec<(ApiResource, bool)>)>;
    static CACHE: std::sync::Mutex<Cached> = std::sync::Mutex::new(None);
    if let Ok(cache) = CACHE.lock()
        && let Some((at, types)) = cache.as_ref()
        && at.elapsed() < DISCOVERY_TTL
    {
        return Ok(types.clone());
    }
    let types = discover_deletable_types(ctx).await?;
    if let Ok(mut cache) = CACHE.lock() {
        *cache = Some((std::time::Instant::now(), types.clone()));
    }
    Ok(types)
}

/// How long one API discovery serves erasure (see [`deletable_types`]).
pub(super) const DISCOVERY_TTL: Duration = Duration::from_secs(60);

pub(super) async fn discover_deletable_types(
    ctx: &Context,
) -> Result<Vec<(ApiResource, bool)>, Error> {
    let discovery = Discovery::new(ctx.client.clone())
        .run()
        .await
        .map_err(Error::kube("discover API resources"))?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        if group.name() == crate::api::GROUP || group.name() == "events.k8s.io" {
            continue;
        }
        for (ar, caps) in group.recommended_resources() {
            if ar.plural == "events"
                || !caps.supports_operation(verbs::LIST)
                || !caps.supports_operation(verbs::DELETE)
            {
                continue;
            }
            out.push((ar, caps.scope == Scope::Namespaced));
        }
    }
    Ok(out)
}

/// What one list of a sweep or an inventory answered.
pub(super) enum Listed {
    Found(Vec<DynamicObject>),
    /// Not allowed (403), not listable (405) or not served any more (404).
    Refused,
    Failed(kube::Error),
}

/// Lists `ar` with `params` through `api`, unless the same list in the same `place` was
/// refused within [`DISCOVERY_TTL`] (see [`refusals`]).
pub(super) async fn list_unless_refused(
    api: &Api<DynamicObject>,
    ar: &ApiResource,
    place: refusals::Place,
    params: &ListParams,
) -> Listed {
    static REFUSALS: std::sync::Mutex<Option<refusals::Refusals>> = std::sync::Mutex::new(None);
    let key = refusals::Key {
        group: ar.group.clone(),
        plural: ar.plural.clone(),
        place,
    };
    let now = std::time::Instant::now();
    if let Ok(r) = REFUSALS.lock()
        && r.as_ref()
            .is_some_and(|r| r.refused(&key, now, DISCOVERY_TTL))
    {
        return Listed::Refused;
    }
    match api.list(params).await {
        Ok(list) => Listed::Found(list.items),
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 405 || s.code == 404 => {
            if s.code == 403
                && let Ok(mut r) = REFUSALS.lock()
            {
                r.get_or_insert_with(Default::default)
                    .record(key, now, DISCOVERY_TTL);
            }
            Listed::Refused
        }
        Err(e) => Listed::Failed(e),
    }
}

/// What one look at everything labelled for the tenant found: what erasure deletes,
/// what it leaves (with why), and the scope's kinds it could not list.
pub(super) struct Sweep {
    pub erase: Vec<(ApiResource, DynamicObject)>,
    pub not_erased: Vec<NotErasedObject>,
    pub unverified: Vec<String>,
}

/// Looks for what is labelled for the tenant and splits it by the erasure scope
/// ([`scope::split`]). Listed cluster-wide: the scope's kinds (one that cannot be
/// listed is unverified), and with `outside` every other listable kind too, to report
/// what erasure leaves (a kind the operator may not list is then outside the scope by
/// definition: nothing of it is erased, nor claimed). Secrets only where the operator
/// may read them (least privilege: no cluster-wide Secret list): the control namespace,
/// and the tenant namespace while it is Herald's and not being deleted (its binding
/// there goes with it; the namespace's deletion verifies its Secrets). `keep` is the
/// tenant's notification signing Secret in the control namespace: labelled for the
/// tenant (Herald signs with it only then), but the deletion receipt is signed with it
/// after erasure, so erasure leaves it (see docs/operations.md).
pub(super) async fn sweep(
    ctx: &Context,
    tenant: &str,
    ns: &str,
    home: &JobHome<'_>,
    keep: Option<&str>,
    outside: bool,
) -> Result<Sweep, Error> {
    let foreign = home.foreign;
    let selector = format!("{TENANT_LABEL}={tenant}");
    let scope = &ctx.config.erasure.scope;
    let tenant_ns = ns;
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    // The tenant namespace's Secrets are looked at by the inventory only: after it,
    // the namespace's deletion takes them.
    let tenant_ns_live = outside
        && foreign.is_none()
        && home
            .live_namespace
            .is_some_and(|n| n.metadata.deletion_timestamp.is_none());
    let scope_namespaces = match scope.label_selector() {
        None => BTreeSet::new(),
        Some(s) => scope::scope_namespaces(
            ns_api
                .list_metadata(&ListParams::default().labels(&s))
                .await
                .map_err(Error::kube("list the erasure scope's namespaces"))?
                .items
                .into_iter()
                .map(|n| n.metadata),
            ns,
            &ctx.config.control_namespace,
        ),
    };
    let mut secret_namespaces = vec![ctx.config.control_namespace.clone()];
    if tenant_ns_live {
        secret_namespaces.push(ns.to_owned());
    }
    // After the inventory, a scope kind is looked for only where erasure may delete it:
    // the scope's namespaces besides the tenant's own (whose deletion takes all it
    // holds). With none (the default scope), only the control namespace's Secrets.
    let scope_kinds = outside || !scope_namespaces.is_empty();
    // A few lists at a time: a sweep is up to about 50 lists, and one after the other
    // they made each erasure step wait on the slowest of them in turn.
    let lists = stream::iter(deletable_types(ctx).await?)
        .filter(|(ar, _)| {
            let wanted = outside
                || (scope_kinds && scope.includes(&ar.group, &ar.plural))
                || (ar.group.is_empty() && ar.plural == "secrets");
            futures::future::ready(wanted)
        })
        .flat_map(|(ar, _)| {
            let apis: Vec<(Option<String>, Api<DynamicObject>)> =
                if ar.group.is_empty() && ar.plural == "secrets" {
                    secret_namespaces
                        .iter()
                        .map(|ns| {
                            let api = Api::namespaced_with(ctx.client.clone(), ns, &ar);
                            (Some(ns.clone()), api)
                        })
                        .collect()
                } else {
                    vec![(None, Api::all_with(ctx.client.clone(), &ar))]
                };
            stream::iter(apis.into_iter().map(move |(ns, api)| (ar.clone(), ns, api)))
        })
        .map(|(ar, ns, api)| {
            let params = ListParams::default().labels(&selector);
            let place = match &ns {
                None => refusals::Place::ClusterWide,
                Some(n) if n == tenant_ns => refusals::Place::TenantNamespace,
                Some(n) => refusals::Place::Named(n.clone()),
            };
            async move {
                let result = list_unless_refused(&api, &ar, place, &params).await;
                (ar, ns, result)
            }
        })
        .buffered(SWEEP_PARALLELISM)
        .collect::<Vec<_>>()
        .await;
    let mut found = Vec::new();
    let mut unverified = Vec::new();
    for (ar, ns, result) in lists {
        match result {
            Listed::Found(items) => found.extend(
                items
                    .into_iter()
                    .filter(|o| !is_kept(&ar, o, &ctx.config.control_namespace, keep))
                    .map(|o| (ar.clone(), o)),
            ),
            Listed::Refused => {
                let in_scope = scope.includes(&ar.group, &ar.plural) || ns.is_some();
                if in_scope {
                    // As kubectl names a resource: `services`, `deployments.apps`.
                    let kind = if ar.group.is_empty() {
                        ar.plural.clone()
                    } else {
                        format!("{}.{}", ar.plural, ar.group)
                    };
                    unverified.push(match ns {
                        Some(ns) => format!("{kind} in {ns}"),
                        None => kind,
                    });
                }
            }
            Listed::Failed(e) => return Err(Error::kube(format!("list {}", ar.plural))(e)),
        }
    }
    let bounds = scope::Bounds {
        tenant_ns: ns,
        control_ns: &ctx.config.control_namespace,
        foreign,
        scope_namespaces,
        scope: Some(scope),
    };
    let (erase, not_erased) = scope::split(identified(found), &bounds);
    Ok(Sweep {
        erase: erase.into_iter().map(|(o, _)| o).collect(),
        not_erased,
        unverified,
    })
}

/// Whether `o` is the signing Secret erasure leaves for the receipt (see
/// [`sweep`]).
pub(super) fn is_kept(
    ar: &ApiResource,
    o: &DynamicObject,
    control_ns: &str,
    keep: Option<&str>,
) -> bool {
    ar.group.is_empty()
        && ar.kind == "Secret"
        && o.metadata.namespace.as_deref() == Some(control_ns)
        && keep.is_some_and(|k| o.metadata.name.as_deref() == Some(k))
}

/// Lists of one sweep in flight at once.
pub(super) const SWEEP_PARALLELISM: usize = 8;

/// Each found object with what [`scope::split`] decides by.
pub(super) fn identified(
    found: Vec<(ApiResource, DynamicObject)>,
) -> Vec<((ApiResource, DynamicObject), scope::ObjectId)> {
    found
        .into_iter()
        .map(|(ar, o)| {
            let id = scope::ObjectId {
                api_version: ar.api_version.clone(),
                kind: ar.kind.clone(),
                resource: ar.plural.clone(),
                namespace: o.metadata.namespace.clone(),
                name: o.name_any(),
                uid: o.metadata.uid.clone().unwrap_or_default(),
            };
            ((ar, o), id)
        })
        .collect()
}

/// The inventory: everything labelled for the tenant and everything in its namespace
/// (when Herald's), what is left in place (a `foreign` namespace and its contents), and
/// the types that could not be listed.
pub(super) async fn inventory(
    ctx: &Context,
    tenant: &str,
    ns: &str,
    home: &JobHome<'_>,
    keep: Option<&str>,
) -> Result<
    (
        Vec<crate::api::v1alpha1::DeletedKind>,
        Vec<NotErasedObject>,
        Vec<String>,
    ),
    Error,
> {
    let Sweep {
        erase: labelled,
        not_erased,
        unverified,
    } = sweep(ctx, tenant, ns, home, keep, true).await?;
    let mut by_kind: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut add = |ar: &ApiResource, o: &DynamicObject| {
        if let Some(uid) = o.metadata.uid.clone() {
            by_kind
                .entry((ar.api_version.clone(), ar.kind.clone()))
                .or_default()
                .insert(uid);
        }
    };
    for (ar, o) in &labelled {
        add(ar, o);
    }
    // A namespace Herald did not create is not erased: its contents are not counted.
    if home.foreign.is_none() {
        for (ar, o) in namespace_contents(ctx, ns).await? {
            add(&ar, &o);
        }
    }
    let inventory = by_kind
        .into_iter()
        .map(
            |((api_version, kind), uids)| crate::api::v1alpha1::DeletedKind {
                api_version,
                kind,
                count: uids.len() as i64,
                uids: uids.into_iter().collect(),
            },
        )
        .collect();
    Ok((inventory, not_erased, unverified))
}

/// Everything in the tenant namespace that the operator may list, of every deletable
/// namespaced type.
pub(super) async fn namespace_contents(
    ctx: &Context,
    ns: &str,
) -> Result<Vec<(ApiResource, DynamicObject)>, Error> {
    let in_namespace = stream::iter(deletable_types(ctx).await?)
        .filter(|(_, namespaced)| futures::future::ready(*namespaced))
        .map(|(ar, _)| {
            let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
            async move {
                let place = refusals::Place::TenantNamespace;
                let list = list_unless_refused(&api, &ar, place, &ListParams::default()).await;
                (ar, list)
            }
        })
        .buffered(SWEEP_PARALLELISM)
        .collect::<Vec<_>>()
        .await;
    let mut out = Vec::new();
    for (ar, list) in in_namespace {
        if let Listed::Found(items) = list {
            out.extend(items.into_iter().map(|o| (ar.clone(), o)));
        }
    }
    Ok(out)
}

/// Takes the inventory and records it in `es`: what erasure deletes, and what it leaves
/// in place (merged with what earlier passes left), and the scope's kinds it could not
/// list.
pub(super) async fn record_inventory(
    es: &mut ErasureStatus,
    ctx: &Context,
    name: &str,
    ns: &str,
    home: &JobHome<'_>,
    keep: Option<&str>,
) -> Result<(), Error> {
    let (inventory, not_erased, unverified) = inventory(ctx, name, ns, home, keep).await?;
    es.inventory = inventory;
    es.not_erased = scope::merge_not_erased(std::mem::take(&mut es.not_erased), not_erased);
    es.unverified_kinds = unverified;
    Ok(())
}

/// The `inventory` step: everything that exists now is what erasure deletes, recorded
/// first (with a foreign namespace, the inventory of deletions may well be empty: what
/// erasure can do is delete what is labelled outside it, and say so).
pub(super) async fn take_inventory(
    pass: &super::Pass<'_>,
    es: &mut ErasureStatus,
) -> Result<super::Next, Error> {
    record_inventory(es, pass.ctx, &pass.name, &pass.ns, pass.home, pass.keep).await?;
    let ns = &pass.ns;
    Ok(super::Next::wait(
        1,
        if pass.home.foreign.is_some() {
            // Herald never built the stack in it, so no sender of Herald's ran there,
            // and no purge Job may run in it either.
            format!(
                "inventory recorded; namespace {ns} is not Herald's: no purge Job runs in it and it is not deleted"
            )
        } else {
            "inventory recorded; deleting".into()
        },
    ))
}
