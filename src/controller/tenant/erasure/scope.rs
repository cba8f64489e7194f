//! What erasure may touch: whether the tenant namespace is Herald's own (the marker it
//! sets at creation), and which of the objects found must be left in place and
//! reported instead. Pure: no client, table-tested.

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;

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
        })
    }
}

/// Splits the objects found labelled for the tenant into those erasure deletes and
/// those it leaves in place, with why:
/// - with a `foreign` tenant namespace, that namespace and everything in it (Herald did
///   not create them, whatever their labels say): `NamespaceNotOwned`;
/// - any cluster-scoped object but the tenant namespace `tenant_ns` (a label is no
///   proof of ownership, and deleting another Namespace takes all its unlabelled
///   contents with it): `OutsideErasureScope`;
/// - in the operator's control namespace `control_ns`, anything but a Secret (the
///   tenant's own source Secrets, labelled for it, hold its credentials and are erased;
///   whatever else carries its label there is the platform's): `OutsideErasureScope`.
pub fn split<T>(
    found: Vec<(T, ObjectId)>,
    tenant_ns: &str,
    control_ns: &str,
    foreign: Option<&NotErasedObject>,
) -> (Vec<(T, ObjectId)>, Vec<NotErasedObject>) {
    let mut erase = Vec::new();
    let mut leave = Vec::new();
    for (t, id) in found {
        let is_namespace =
            |name: &str| id.kind == "Namespace" && id.api_version == "v1" && id.name == name;
        let in_foreign = foreign.is_some_and(|f| {
            id.namespace.as_deref() == Some(f.name.as_str()) || is_namespace(&f.name)
        });
        let why = if in_foreign {
            Some(reason::NAMESPACE_NOT_OWNED)
        } else if (id.namespace.is_none() && !is_namespace(tenant_ns))
            || (id.namespace.as_deref() == Some(control_ns)
                && !(id.kind == "Secret" && id.api_version == "v1"))
        {
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
            }),
            None => erase.push((t, id)),
        }
    }
    (erase, leave)
}

/// What [`split`] needs to know of a found object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectId {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
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
        let (erase, leave) = split(found.clone(), "tenant-acme", "herald-system", Some(&f));
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
        let (erase, leave) = split(found, "tenant-acme", "herald-system", None);
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
        let (erase, leave) = split(found, "tenant-acme", "herald-system", None);
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
            ((), id("ConfigMap", Some("shared-tools"), "acme-cache")),
        ];
        let (erase, leave) = split(found, "tenant-acme", "herald-system", None);
        let erased: Vec<_> = erase.iter().map(|(_, i)| i.name.as_str()).collect();
        assert_eq!(erased, ["tenant-acme", "acme-cache"]);
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
