//! Tenants are mutually hostile: a Secret Herald reads on a tenant's behalf (a binding's
//! source, the tenant's notification signing secret, its export token) must be labelled
//! `herald.dev/tenant=<that tenant>`. All of them live in the one control namespace, so
//! without this check any manifest naming another tenant's Secret would get it copied
//! into its own namespace or used to sign its notices.
//!
//! [`check`] is the pure decision; [`read`] fetches the Secret and applies it. Messages
//! name the Secret and the label to add, never a value.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::{Context, Error, TENANT_LABEL};

/// What a reference to a control-namespace Secret resolved to.
#[derive(Debug)]
pub enum Owned {
    /// The Secret exists and is labelled for the tenant.
    Yes(Box<Secret>),
    /// No such Secret.
    Missing,
    /// The Secret exists but is not labelled for the tenant: never read further. The
    /// message says which Secret and which label to add.
    NotOwned(String),
}

/// Whether a Secret with `labels` belongs to `tenant`: `Err(message)` when it does not.
pub fn check(
    namespace: &str,
    secret: &str,
    labels: Option<&BTreeMap<String, String>>,
    tenant: &str,
) -> Result<(), String> {
    let label = labels.and_then(|l| l.get(TENANT_LABEL));
    if label.is_some_and(|t| t == tenant) {
        return Ok(());
    }
    // Whose it is instead is not told: the label value names another customer.
    let found = if label.is_some() {
        "is labelled for another tenant"
    } else {
        "has no herald.dev/tenant label"
    };
    Err(format!(
        "the Secret {namespace}/{secret} {found}: Herald reads it for Tenant {tenant} only \
         when it carries {TENANT_LABEL}={tenant} \
         (kubectl label secret -n {namespace} {secret} {TENANT_LABEL}={tenant})"
    ))
}

/// Reads the control-namespace Secret `name` for `tenant`, refusing one not labelled for it.
pub async fn read(ctx: &Context, tenant: &str, name: &str) -> Result<Owned, Error> {
    let ns = &ctx.config.control_namespace;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let Some(secret) = api
        .get_opt(name)
        .await
        .map_err(Error::kube(format!("get Secret {name}")))?
    else {
        return Ok(Owned::Missing);
    };
    Ok(
        match check(ns, name, secret.metadata.labels.as_ref(), tenant) {
            Ok(()) => Owned::Yes(Box::new(secret)),
            Err(why) => Owned::NotOwned(why),
        },
    )
}

/// Like [`read`] but metadata only: whether the Secret exists and is the tenant's, for
/// the Tenant's `SecretsOwned` condition (no value is fetched).
pub async fn read_metadata(ctx: &Context, tenant: &str, name: &str) -> Result<Owned, Error> {
    let ns = &ctx.config.control_namespace;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let Some(meta) = api
        .get_metadata_opt(name)
        .await
        .map_err(Error::kube(format!("get Secret {name}")))?
    else {
        return Ok(Owned::Missing);
    };
    Ok(
        match check(ns, name, meta.metadata.labels.as_ref(), tenant) {
            Ok(()) => Owned::Yes(Box::default()),
            Err(why) => Owned::NotOwned(why),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_secret_labelled_for_the_tenant_is_its() {
        let l = labels(&[(TENANT_LABEL, "acme")]);
        assert_eq!(check("herald-system", "s", Some(&l), "acme"), Ok(()));
    }

    #[test]
    fn a_secret_without_the_label_is_refused_with_the_label_to_add() {
        let why = check("herald-system", "acme-sms", None, "acme").unwrap_err();
        assert!(why.contains("herald-system/acme-sms"), "{why}");
        assert!(why.contains("herald.dev/tenant=acme"), "{why}");
        let other = labels(&[("app", "x")]);
        assert!(check("herald-system", "acme-sms", Some(&other), "acme").is_err());
    }

    #[test]
    fn another_tenants_secret_is_refused_without_naming_that_tenant() {
        let l = labels(&[(TENANT_LABEL, "globex")]);
        let why = check("herald-system", "globex-sms", Some(&l), "acme").unwrap_err();
        assert!(why.contains("another tenant"), "{why}");
        assert!(!why.contains("=globex"), "{why}");
        // A prefix or a different case is not the same tenant.
        let l = labels(&[(TENANT_LABEL, "acme-2")]);
        assert!(check("herald-system", "s", Some(&l), "acme").is_err());
        let l = labels(&[(TENANT_LABEL, "ACME")]);
        assert!(check("herald-system", "s", Some(&l), "acme").is_err());
    }
}
