//! The operator's own rights in a tenant namespace: a RoleBinding `herald-tenant`, made
//! with the namespace and before any other child, binds the chart's `herald-tenant`
//! ClusterRole to the operator's identity there. Cluster-wide the operator only reads
//! (and creates this one binding, `bind` only on that role): every write inside a tenant
//! namespace, and every read of its Secrets, goes through this binding, so it ends with
//! the namespace.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::json;
use tracing::info;

use crate::controller::{Context, Error, FIELD_MANAGER};

/// The chart's ClusterRole bound in every tenant namespace, and the binding's name.
pub const TENANT_ROLE: &str = "herald-tenant";

/// How long a fresh binding may take to reach the API server's authorizer cache.
const BINDING_PROPAGATION: Duration = Duration::from_secs(10);

/// The RBAC subject for an authenticated user name: a ServiceAccount for
/// `system:serviceaccount:<namespace>:<name>` (the chart's operator), a User otherwise
/// (an operator run by hand with someone's kubeconfig).
pub fn subject_of(username: &str) -> Subject {
    match username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(namespace.into()),
            api_group: None,
        },
        _ => Subject {
            kind: "User".into(),
            name: username.into(),
            namespace: None,
            api_group: Some("rbac.authorization.k8s.io".into()),
        },
    }
}

/// The binding of [`TENANT_ROLE`] to `subject` in the namespace of `like` (the metadata
/// of another child of the tenant), with its labels and owner reference.
pub fn binding(like: &ObjectMeta, subject: Subject) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(TENANT_ROLE.into()),
            namespace: like.namespace.clone(),
            labels: like.labels.clone(),
            owner_references: like.owner_references.clone(),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: TENANT_ROLE.into(),
        },
        subjects: Some(vec![subject]),
    }
}

/// The operator's user name, as the API server authenticates it (asked once).
pub async fn username(ctx: &Context) -> Result<&str, Error> {
    ctx.identity
        .get_or_try_init(|| async {
            let api: Api<SelfSubjectReview> = Api::all(ctx.client.clone());
            let review: SelfSubjectReview = serde_json::from_value(json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"
            }))
            .map_err(|source| Error::Build {
                what: "self subject review",
                source,
            })?;
            let answer = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(Error::kube("create SelfSubjectReview"))?;
            Ok(answer
                .status
                .and_then(|s| s.user_info)
                .and_then(|u| u.username)
                .unwrap_or_default())
        })
        .await
        .map(String::as_str)
}

/// Binds the operator in the namespace of `like` (another child of the tenant, whose
/// labels and owner the binding shares): see [`ensure`].
pub async fn bind(ctx: &Context, like: &ObjectMeta) -> Result<(), Error> {
    let desired = binding(like, subject_of(username(ctx).await?));
    let ns = like.namespace.clone().unwrap_or_default();
    let current = Api::<RoleBinding>::namespaced(ctx.client.clone(), &ns)
        .get_opt(TENANT_ROLE)
        .await
        .map_err(Error::kube(format!("get RoleBinding {ns}/{TENANT_ROLE}")))?;
    ensure(ctx, current, &desired).await
}

/// Makes sure `desired` (see [`binding`]) exists and is as built. It is created with a
/// plain create, not an apply: an apply that creates is also authorized as `patch`,
/// which the operator holds only inside tenant namespaces, through this very binding.
/// Once it exists, changes are applied through it. A fresh binding is waited for until
/// the authorizer honours it (bounded), so the children applied next are not refused.
async fn ensure(
    ctx: &Context,
    current: Option<RoleBinding>,
    desired: &RoleBinding,
) -> Result<(), Error> {
    let ns = desired.metadata.namespace.clone().unwrap_or_default();
    let api: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &ns);
    if current.is_some() {
        super::apply_read(ctx, &api, current, desired, true).await?;
        return Ok(());
    }
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&pp, desired).await {
        Ok(_) => ctx.metrics.wrote(super::CONTROLLER, "RoleBinding"),
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
        Err(e) => {
            return Err(Error::kube(format!(
                "create RoleBinding {ns}/{TENANT_ROLE}"
            ))(e));
        }
    }
    info!(namespace = %ns, "bound the operator's tenant role");
    let deadline = tokio::time::Instant::now() + BINDING_PROPAGATION;
    // The authorizer's cache has nothing to watch: ask it, briefly, until it agrees.
    while !may_write(ctx, &ns).await? && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Whether the API server lets the operator create ConfigMaps in `ns` (a right it has
/// only through the tenant binding).
async fn may_write(ctx: &Context, ns: &str) -> Result<bool, Error> {
    let api: Api<SelfSubjectAccessReview> = Api::all(ctx.client.clone());
    let review: SelfSubjectAccessReview = serde_json::from_value(json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": ns, "verb": "create", "resource": "configmaps"}}
    }))
    .map_err(|source| Error::Build {
        what: "self subject access review",
        source,
    })?;
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(Error::kube("create SelfSubjectAccessReview"))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_account_is_bound_as_one() {
        let s = subject_of("system:serviceaccount:herald-system:herald");
        assert_eq!(s.kind, "ServiceAccount");
        assert_eq!(s.name, "herald");
        assert_eq!(s.namespace.as_deref(), Some("herald-system"));
    }

    #[test]
    fn anyone_else_is_bound_as_a_user() {
        for name in [
            "kubernetes-admin",
            "system:serviceaccount:",
            "system:serviceaccount:ns",
            "system:serviceaccount::x",
        ] {
            let s = subject_of(name);
            assert_eq!((s.kind.as_str(), s.name.as_str()), ("User", name));
            assert_eq!(s.namespace, None);
        }
    }

    #[test]
    fn the_binding_grants_the_tenant_role_in_the_senders_namespace() {
        let like = ObjectMeta {
            name: Some("herald-sender".into()),
            namespace: Some("tenant-a".into()),
            labels: Some([("herald.dev/tenant".to_owned(), "a".to_owned())].into()),
            ..Default::default()
        };
        let b = binding(
            &like,
            subject_of("system:serviceaccount:herald-system:herald"),
        );
        assert_eq!(b.metadata.name.as_deref(), Some(TENANT_ROLE));
        assert_eq!(b.metadata.namespace.as_deref(), Some("tenant-a"));
        assert_eq!(b.metadata.labels, like.labels);
        assert_eq!(
            (b.role_ref.kind.as_str(), b.role_ref.name.as_str()),
            ("ClusterRole", TENANT_ROLE)
        );
        assert_eq!(b.subjects.unwrap()[0].name, "herald");
    }
}
