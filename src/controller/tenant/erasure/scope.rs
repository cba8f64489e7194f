//! What erasure may touch: whether the tenant namespace is Herald's own (the marker it
//! sets at creation), and which of the objects found must be left in place and
//! reported instead. Pure: no client, table-tested.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;

use crate::config::ErasureScope;

use crate::api::v1alpha1::NotErasedObject;
use crate::api::v1alpha1::conditions::reason;

/// The label value Herald sets on everything it creates.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "herald");

/// Who the tenant namespace belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamespaceOwner {
    /// There is none: Herald may create it.
    Absent,
    /// Herald created it for this Tenant: it carries Herald's label and an owner
    /// reference to this Tenant's UID.
    Herald,
    /// Somebody else's: never adopted, nothing written in it, never deleted.
    Foreign(NotErasedObject),
}

/// Whether `ns` (the namespace named `tenant-<name>`, if it exists) is the one Herald
/// created for the Tenant with `tenant_uid`. Both marks are needed: the label alone
/// anyone can set by hand, and an owner reference to an earlier Tenant of the same name
/// is that one's namespace (the garbage collector takes it), not this one's.
pub fn namespace_owner(ns: Option<&Namespace>, tenant_uid: &str) -> NamespaceOwner {
    let Some(ns) = ns else {
        return NamespaceOwner::Absent;
    };
    let labelled = ns.labels().get(MANAGED_BY.0).map(String::as_str) == Some(MANAGED_BY.1);
    let owned = ns.owner_references().iter().any(|o| {
        o.kind == "Tenant" && o.api_version.starts_with(crate::api::GROUP) && o.uid == tenant_uid
    });
    if labelled && owned && !tenant_uid.is_empty() {
        NamespaceOwner::Herald
    } else {
        NamespaceOwner::Foreign(NotErasedObject {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: ns.name_any(),
            uid: ns.metadata.uid.clone().unwrap_or_default(),
            reason: reason::NAMESPACE_NOT_OWNED.into(),
            message: None,
            resolved_at: None,
        })
    }
}

/// Where erasure may delete what is labelled for a tenant: the namespaces and kinds it
/// decides by.
#[derive(Clone, Debug, Default)]
pub struct Bounds<'a> {
    /// The tenant namespace `tenant-<name>`.
    pub tenant_ns: &'a str,
    /// The operator's control namespace.
    pub control_ns: &'a str,
    /// The tenant namespace, when Herald did not create it.
    pub foreign: Option<&'a NotErasedObject>,
    /// The namespaces the configured scope selects (`erasure.scope.namespaceSelector`).
    pub scope_namespaces: BTreeSet<String>,
    /// The configured scope's kinds.
    pub scope: Option<&'a ErasureScope>,
}

/// Splits the objects found labelled for the tenant into those erasure deletes and
/// those it leaves in place, with why:
/// - with a `foreign` tenant namespace, that namespace and everything in it (Herald did
///   not create them, whatever their labels say): `NamespaceNotOwned`;
/// - any cluster-scoped object but the tenant namespace (a label is no proof of
///   ownership, and deleting another Namespace takes all its unlabelled contents with
///   it): `OutsideErasureScope`;
/// - in the control namespace, anything but a Secret (the tenant's own source Secrets,
///   labelled for it, hold its credentials and are erased; whatever else carries its
///   label there is the platform's): `OutsideErasureScope`;
/// - in any other namespace, anything but an object of a scope kind in a scope
///   namespace (the platform declared those, and granted their deletion with the same
///   setting): `OutsideErasureScope`.
///
/// Everything in Herald's own tenant namespace is erased, whatever its kind.
pub fn split<T>(
    found: Vec<(T, ObjectId)>,
    bounds: &Bounds<'_>,
) -> (Vec<(T, ObjectId)>, Vec<NotErasedObject>) {
    let mut erase = Vec::new();
    let mut leave = Vec::new();
    for (t, id) in found {
        let is_namespace =
            |name: &str| id.kind == "Namespace" && id.api_version == "v1" && id.name == name;
        let in_foreign = bounds.foreign.is_some_and(|f| {
            id.namespace.as_deref() == Some(f.name.as_str()) || is_namespace(&f.name)
        });
        let in_scope = match id.namespace.as_deref() {
            None => is_namespace(bounds.tenant_ns),
            Some(ns) if ns == bounds.tenant_ns => true,
            Some(ns) if ns == bounds.control_ns => id.kind == "Secret" && id.api_version == "v1",
            Some(ns) => {
                bounds.scope_namespaces.contains(ns)
                    && bounds
                        .scope
                        .is_some_and(|s| s.includes(id.group(), &id.resource))
            }
        };
        let why = if in_foreign {
            Some(reason::NAMESPACE_NOT_OWNED)
        } else if !in_scope {
            Some(reason::OUTSIDE_ERASURE_SCOPE)
        } else {
            None
        };
        match why {
            Some(why) => leave.push(NotErasedObject {
                api_version: id.api_version,
                kind: id.kind,
                namespace: id.namespace,
                name: id.name,
                uid: id.uid,
                reason: why.into(),
                message: None,
                resolved_at: None,
            }),
            None => erase.push((t, id)),
        }
    }
    (erase, leave)
}

/// The namespaces of the erasure scope, from those its selector selected: never
/// another tenant's namespace (one carrying Herald's label: erasing tenant A deletes
/// nothing where tenant B's stack runs, whatever the platform's selector matches) nor
/// the control namespace (where only the tenant's Secrets are erased).
pub fn scope_namespaces(
    selected: impl IntoIterator<Item = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    tenant_ns: &str,
    control_ns: &str,
) -> BTreeSet<String> {
    selected
        .into_iter()
        .filter(|m| {
            m.labels
                .as_ref()
                .and_then(|l| l.get(MANAGED_BY.0))
                .map(String::as_str)
                != Some(MANAGED_BY.1)
        })
        .filter_map(|m| m.name)
        .filter(|n| n != tenant_ns && n != control_ns)
        .collect()
}

/// What [`split`] needs to know of a found object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectId {
    pub api_version: String,
    pub kind: String,
    /// The resource (plural), as the scope names kinds.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

impl ObjectId {
    /// The API group ("" for the core group).
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }
}

/// The objects left in place, in a stable order and each once (the receipt's bytes
/// must not depend on list order).
pub fn merge_not_erased(
    mut a: Vec<NotErasedObject>,
    b: impl IntoIterator<Item = NotErasedObject>,
) -> Vec<NotErasedObject> {
    a.extend(b);
    a.sort();
    a.dedup_by(|x, y| x.uid == y.uid && x.kind == y.kind && x.name == y.name);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(kind: &str, namespace: Option<&str>, name: &str) -> ObjectId {
        ObjectId {
            api_version: "v1".into(),
            kind: kind.into(),
            resource: format!("{}s", kind.to_lowercase()),
            namespace: namespace.map(Into::into),
            name: name.into(),
            uid: format!("uid-{name}"),
        }
    }

    #[test]
    fn a_foreign_namespace_and_its_contents_are_left_and_listed() {
        let found = vec![
            ((), id("Namespace", None, "tenant-acme")),
            ((), id("ConfigMap", Some("tenant-acme"), "theirs")),
            ((), id("Secret", Some("herald-system"), "acme-source")),
        ];
        let NamespaceOwner::Foreign(f) = namespace_owner(Some(&ns(json!({}), json!([]))), "t-uid")
        else {
            panic!("a bare namespace is foreign");
        };
        let (erase, leave) = split(
            found.clone(),
            &Bounds {
                foreign: Some(&f),
                ..bounds()
            },
        );
        assert_eq!(
            erase,
            vec![((), id("Secret", Some("herald-system"), "acme-source"))]
        );
        let left: Vec<_> = leave
            .iter()
            .map(|o| (o.kind.as_str(), o.name.as_str()))
            .collect();
        assert_eq!(
            left,
            [("Namespace", "tenant-acme"), ("ConfigMap", "theirs")]
        );
        assert!(
            leave
                .iter()
                .all(|o| o.reason == reason::NAMESPACE_NOT_OWNED)
        );
        // Herald's own namespace: everything is erased.
        let (erase, leave) = split(found, &bounds());
        assert_eq!((erase.len(), leave.len()), (3, 0));
        // Recorded twice (two passes), listed once.
        assert_eq!(merge_not_erased(leave_twice(&f), []).len(), 1);
    }

    #[test]
    fn in_the_control_namespace_only_the_tenant_s_secrets_are_erased() {
        let found = vec![
            ((), id("Secret", Some("herald-system"), "acme-sms-source")),
            ((), id("ConfigMap", Some("herald-system"), "platform-notes")),
        ];
        let (erase, leave) = split(found, &bounds());
        assert_eq!(erase.len(), 1);
        assert_eq!(erase[0].1.name, "acme-sms-source");
        assert_eq!(leave.len(), 1);
        assert_eq!(
            (leave[0].name.as_str(), leave[0].reason.as_str()),
            ("platform-notes", reason::OUTSIDE_ERASURE_SCOPE)
        );
    }

    #[test]
    fn no_cluster_scoped_object_but_the_tenant_namespace_is_erased() {
        let mut cluster_role = id("ClusterRole", None, "acme-reader");
        cluster_role.api_version = "rbac.authorization.k8s.io/v1".into();
        let found = vec![
            ((), id("Namespace", None, "tenant-acme")),
            ((), id("Namespace", None, "shared-tools")),
            ((), cluster_role),
        ];
        let scope = ErasureScope::default();
        let everywhere = Bounds {
            scope_namespaces: ["shared-tools".to_owned()].into(),
            scope: Some(&scope),
            ..bounds()
        };
        let (erase, leave) = split(found, &everywhere);
        let erased: Vec<_> = erase.iter().map(|(_, i)| i.name.as_str()).collect();
        assert_eq!(erased, ["tenant-acme"]);
        let left: Vec<_> = leave
            .iter()
            .map(|o| (o.kind.as_str(), o.name.as_str(), o.reason.as_str()))
            .collect();
        assert_eq!(
            left,
            [
                ("Namespace", "shared-tools", reason::OUTSIDE_ERASURE_SCOPE),
                ("ClusterRole", "acme-reader", reason::OUTSIDE_ERASURE_SCOPE)
            ]
        );
    }

    #[test]
    fn elsewhere_only_scope_kinds_in_scope_namespaces_are_erased() {
        let mut deployment = id("Deployment", Some("platform-data"), "acme-indexer");
        deployment.api_version = "apps/v1".into();
        let mut monitor = id("ServiceMonitor", Some("platform-data"), "acme-monitor");
        monitor.api_version = "monitoring.coreos.com/v1".into();
        let found = vec![
            ((), id("ConfigMap", Some("platform-data"), "acme-cache")),
            ((), deployment),
            ((), monitor),
            ((), id("ConfigMap", Some("unrelated"), "acme-note")),
            ((), id("ConfigMap", Some("tenant-acme"), "sender-config")),
            ((), id("Widget", Some("tenant-acme"), "any-kind-inside")),
        ];
        let scope: ErasureScope = serde_yaml::from_str(
            "namespaceSelector: {matchLabels: {tenant-data: 'true'}}\nkinds: [{version: v1, resource: configmaps}]",
        )
        .unwrap();
        let b = Bounds {
            scope_namespaces: ["platform-data".to_owned()].into(),
            scope: Some(&scope),
            ..bounds()
        };
        let (erase, leave) = split(found.clone(), &b);
        let erased: Vec<_> = erase.iter().map(|(_, i)| i.name.as_str()).collect();
        assert_eq!(erased, ["acme-cache", "sender-config", "any-kind-inside"]);
        let left: Vec<_> = leave.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(left, ["acme-indexer", "acme-monitor", "acme-note"]);
        assert!(
            leave
                .iter()
                .all(|o| o.reason == reason::OUTSIDE_ERASURE_SCOPE)
        );
        // No scope namespaces (the default): nothing outside the tenant's is erased.
        let (erase, leave) = split(found, &bounds());
        assert_eq!((erase.len(), leave.len()), (2, 4));
    }

    #[test]
    fn another_tenant_s_namespace_and_the_control_namespace_are_never_scope_namespaces() {
        let meta = |name: &str, labels: serde_json::Value| {
            serde_json::from_value(json!({"name": name, "labels": labels})).unwrap()
        };
        let selected = vec![
            meta("platform-data", json!({"tenant-data": "true"})),
            meta(
                "tenant-other",
                json!({"tenant-data": "true", "app.kubernetes.io/managed-by": "herald"}),
            ),
            meta("herald-system", json!({"tenant-data": "true"})),
            meta("tenant-acme", json!({"tenant-data": "true"})),
        ];
        assert_eq!(
            scope_namespaces(selected, "tenant-acme", "herald-system"),
            BTreeSet::from(["platform-data".to_owned()])
        );
    }

    fn bounds() -> Bounds<'static> {
        Bounds {
            tenant_ns: "tenant-acme",
            control_ns: "herald-system",
            ..Bounds::default()
        }
    }

    fn leave_twice(f: &NotErasedObject) -> Vec<NotErasedObject> {
        vec![f.clone(), f.clone()]
    }

    fn ns(labels: serde_json::Value, owners: serde_json::Value) -> Namespace {
        serde_json::from_value(json!({
            "metadata": {"name": "tenant-acme", "uid": "ns-uid", "labels": labels, "ownerReferences": owners}
        }))
        .unwrap()
    }

    fn owner(uid: &str) -> serde_json::Value {
        json!([{"apiVersion": "herald.dev/v1alpha1", "kind": "Tenant", "name": "acme", "uid": uid, "controller": true}])
    }

    #[test]
    fn only_a_namespace_with_both_marks_is_herald_s() {
        let herald = json!({"app.kubernetes.io/managed-by": "herald", "herald.dev/tenant": "acme"});
        assert_eq!(namespace_owner(None, "t-uid"), NamespaceOwner::Absent);
        assert_eq!(
            namespace_owner(Some(&ns(herald.clone(), owner("t-uid"))), "t-uid"),
            NamespaceOwner::Herald
        );
        // Hand-made: no marks, the label alone, the owner alone, another Tenant's uid.
        for (labels, owners) in [
            (json!({}), json!([])),
            (herald.clone(), json!([])),
            (json!({"herald.dev/tenant": "acme"}), owner("t-uid")),
            (herald.clone(), owner("earlier-tenant-uid")),
        ] {
            let found = namespace_owner(Some(&ns(labels.clone(), owners.clone())), "t-uid");
            let NamespaceOwner::Foreign(o) = found else {
                panic!("{labels} {owners} was taken as Herald's");
            };
            assert_eq!(
                (o.kind.as_str(), o.name.as_str(), o.uid.as_str()),
                ("Namespace", "tenant-acme", "ns-uid")
            );
            assert_eq!(o.reason, reason::NAMESPACE_NOT_OWNED);
        }
        // A Tenant without a uid (never from the API server) owns nothing.
        assert!(matches!(
            namespace_owner(Some(&ns(herald, owner(""))), ""),
            NamespaceOwner::Foreign(_)
        ));
    }
}
