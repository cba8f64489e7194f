//! Which of a tenant's ChannelBindings are handed to its senders, and how: the
//! contract between the ChannelBinding controller (which writes versioned credential
//! Secrets and points `status.credentialSecret` at the one to use) and the Tenant
//! controller (which mounts them and rolls the senders when a version changes).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

use super::build::CREDENTIAL_VERSIONS_ANNOTATION;
use crate::api::v1alpha1::ChannelBinding;
use crate::api::v1alpha1::conditions::{CREDENTIAL_CURRENT, SUBPROCESSOR_EFFECTIVE, reason};
use crate::controller::channel_binding::decide::held_by;

/// Where a credential is mounted in the sender pods: one directory per channel.
pub const CREDENTIALS_DIR: &str = "/var/run/herald/credentials";

/// One channel credential mounted into the senders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The channel, as spelled in the API (`whatsapp`, `sms`, …).
    pub channel: String,
    /// The credential version the senders must use.
    pub version: i64,
    /// The immutable Secret (in the tenant namespace) holding that version.
    pub secret: String,
}

/// The channel's name as the API spells it.
pub fn channel_name(binding: &ChannelBinding) -> String {
    serde_json::to_value(binding.spec.channel)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `tenant`'s bindings (in `namespace`) that may serve it: not being deleted, not
/// suspended, and each the holder of its channel (the ChannelBinding controller's
/// [`held_by`]: of two bindings for one channel, only the older reaches the senders).
fn eligible<'a>(
    tenant: &str,
    namespace: &str,
    bindings: impl IntoIterator<Item = &'a ChannelBinding>,
) -> impl Iterator<Item = &'a ChannelBinding> {
    let tenants: Vec<&ChannelBinding> = bindings
        .into_iter()
        .filter(|b| {
            b.spec.tenant_ref.name == tenant
                && b.namespace().as_deref() == Some(namespace)
                && b.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let holders: Vec<&ChannelBinding> = tenants
        .iter()
        .copied()
        .filter(|b| held_by(b, tenants.iter().copied()).is_none())
        .collect();
    holders.into_iter().filter(|b| b.spec.suspend != Some(true))
}

/// The mounts of `tenant`'s bindings (in `namespace`) that may reach the senders: not
/// suspended, carried by a Subprocessor effective for the tenant, with a credential.
/// Sorted by channel, so the result (and the pod template) is deterministic.
pub fn mounts<'a>(
    tenant: &str,
    namespace: &str,
    bindings: impl IntoIterator<Item = &'a ChannelBinding>,
) -> Vec<Mount> {
    let mut out: Vec<Mount> = eligible(tenant, namespace, bindings)
        .filter_map(|b| {
            let status = b.status.as_ref()?;
            if !crate::conditions::is_true(&status.conditions, SUBPROCESSOR_EFFECTIVE) {
                return None;
            }
            Some(Mount {
                channel: channel_name(b),
                version: status.credential_version?,
                secret: status.credential_secret.clone()?,
            })
        })
        .collect();
    // One holder per channel (see [`eligible`]), so one mount per path.
    out.sort_by(|a, b| a.channel.cmp(&b.channel));
    out
}

/// The tenant's bindings whose first credential is on its way: eligible as for
/// [`mounts`], without a credential yet, and neither blocked (SubprocessorEffective
/// False, unless only because the Tenant did not exist yet) nor failed
/// (CredentialCurrent with any reason but Pending) as reported by the ChannelBinding
/// controller. A new tenant's first sender rollout waits for these, so
/// its senders start once with every channel instead of rolling once per channel.
/// Sorted by name.
pub fn awaiting<'a>(
    tenant: &str,
    namespace: &str,
    bindings: impl IntoIterator<Item = &'a ChannelBinding>,
) -> Vec<String> {
    let mut out: Vec<String> = eligible(tenant, namespace, bindings)
        .filter(|b| {
            let Some(status) = b.status.as_ref() else {
                return true;
            };
            if status.credential_version.is_some() {
                return false;
            }
            // TenantNotFound is stale here: the tenant being reconciled exists. A binding
            // applied before its Tenant (GitOps applies them together) reported it, and
            // is woken by the Tenant's creation to deliver the first credential. So is
            // CredentialNotStored: the new namespace did not accept the Secret yet (its
            // RoleBinding not honoured in a full e2e run), and the next attempt will.
            !status.conditions.iter().any(|c| {
                (c.type_ == SUBPROCESSOR_EFFECTIVE
                    && c.status == "False"
                    && c.reason != reason::TENANT_NOT_FOUND)
                    || (c.type_ == CREDENTIAL_CURRENT
                        && c.reason != reason::PENDING
                        && c.reason != reason::CREDENTIAL_NOT_STORED)
            })
        })
        .map(|b| b.name_any())
        .collect();
    out.sort();
    out
}

/// The credential versions `deployment`'s template mounts, as [`versions_annotation`]
/// spells them (`None`: no template annotation, or no Deployment).
pub fn template_versions(deployment: Option<&Deployment>) -> Option<&str> {
    deployment?
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(CREDENTIAL_VERSIONS_ANNOTATION)
        .map(String::as_str)
}

/// Whether the sender template about to be applied differs in its credentials from the
/// one the cluster holds (or creates the Deployment): only then must the bindings it is
/// built from be read live, not from a cache that may lag their status.
pub fn credentials_change(current: Option<&Deployment>, mounts: &[Mount]) -> bool {
    template_versions(current) != Some(versions_annotation(mounts).as_str())
}

/// The cached bindings whose live copy decides `tenant`'s mounts: every binding for it
/// in `namespace`.
pub fn of_tenant<'a>(
    tenant: &'a str,
    namespace: &'a str,
    bindings: impl IntoIterator<Item = &'a ChannelBinding> + 'a,
) -> impl Iterator<Item = String> + 'a {
    bindings
        .into_iter()
        .filter(move |b| {
            b.spec.tenant_ref.name == tenant && b.namespace().as_deref() == Some(namespace)
        })
        .map(|b| b.name_any())
}

/// What a tenant's senders are built from: its bindings' mounts, and those whose first
/// credential is still on its way.
pub struct SendersFrom {
    pub mounts: Vec<Mount>,
    pub awaiting: Vec<String>,
}

impl SendersFrom {
    pub fn of<'a>(
        tenant: &str,
        namespace: &str,
        bindings: impl IntoIterator<Item = &'a ChannelBinding> + Clone,
    ) -> Self {
        Self {
            mounts: mounts(tenant, namespace, bindings.clone()),
            awaiting: awaiting(tenant, namespace, bindings),
        }
    }

    /// A new tenant's senders start once every channel has its first credential (one
    /// rollout instead of one per channel), but never wait past `deadline`.
    pub fn holds_first_start(
        &self,
        deadline: Option<k8s_openapi::jiff::Timestamp>,
        now: k8s_openapi::jiff::Timestamp,
    ) -> bool {
        !self.awaiting.is_empty() && deadline.is_some_and(|d| now < d)
    }
}

/// The pod-template annotation value for `mounts`: `email=1,whatsapp=3`.
pub fn versions_annotation(mounts: &[Mount]) -> String {
    mounts
        .iter()
        .map(|m| format!("{}={}", m.channel, m.version))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses [`versions_annotation`]'s format; malformed entries are skipped.
pub fn parse_versions(annotation: &str) -> BTreeMap<String, i64> {
    annotation
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// The credential versions the sender Deployment's *current* template carries, and
/// whether that template is fully rolled out (every replica updated, ready, and no old
/// pod left). A rotation may revoke the previous credential only when this says the
/// new version is rolled out.
pub fn rolled_out_versions(deployment: &Deployment) -> Option<BTreeMap<String, i64>> {
    let spec = deployment.spec.as_ref()?;
    let status = deployment.status.as_ref()?;
    let desired = spec.replicas.unwrap_or(1);
    let current = status.observed_generation >= deployment.metadata.generation
        && status.updated_replicas.unwrap_or(0) == desired
        && status.ready_replicas.unwrap_or(0) == desired
        && status.replicas.unwrap_or(0) == desired;
    if !current {
        return None;
    }
    let annotation = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(CREDENTIAL_VERSIONS_ANNOTATION))
        .map(String::as_str)
        .unwrap_or("");
    Some(parse_versions(annotation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn binding(
        tenant: &str,
        channel: &str,
        version: Option<i64>,
        effective: bool,
    ) -> ChannelBinding {
        serde_json::from_value(json!({
            "apiVersion": "herald.dev/v1alpha1", "kind": "ChannelBinding",
            "metadata": {"name": format!("{tenant}-{channel}"), "namespace": "herald-system"},
            "spec": {"tenantRef": {"name": tenant}, "channel": channel, "subprocessorRef": {"name": "x"},
                     "credential": {"secretRef": {"name": "s"}}},
            "status": {
                "credentialVersion": version,
                "credentialSecret": version.map(|v| format!("herald-cred-{channel}-v{v}")),
                "conditions": [{"type": "SubprocessorEffective", "status": if effective {"True"} else {"False"},
                    "reason": "R", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn only_effective_bindings_with_a_credential_are_mounted() {
        let bs = [
            binding("acme", "whatsapp", Some(3), true),
            binding("acme", "sms", Some(1), false),
            binding("acme", "email", None, true),
            binding("other", "push", Some(1), true),
            binding("acme", "email", Some(2), true),
        ];
        let m = mounts("acme", "herald-system", &bs);
        assert_eq!(versions_annotation(&m), "email=2,whatsapp=3");
        assert_eq!(m[1].secret, "herald-cred-whatsapp-v3");
    }

    #[test]
    fn only_the_holder_of_a_channel_reaches_the_senders() {
        let at = |mut b: ChannelBinding, name: &str, created: &str| {
            b.metadata.name = Some(name.into());
            b.metadata.creation_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(created.parse().unwrap()),
            );
            b
        };
        let first = at(
            binding("acme", "sms", Some(1), true),
            "first",
            "2026-01-01T00:00:00Z",
        );
        // A duplicate with a credential of its own (e.g. from before duplicates were
        // refused): never mounted while the older one holds the channel.
        let second = at(
            binding("acme", "sms", Some(3), true),
            "second",
            "2026-01-02T00:00:00Z",
        );
        let m = mounts("acme", "herald-system", [&second, &first]);
        assert_eq!(versions_annotation(&m), "sms=1");
        // The holder without a credential yet: the channel waits for it, not for the other.
        let mut fresh = first.clone();
        fresh.status.as_mut().unwrap().credential_version = None;
        assert_eq!(mounts("acme", "herald-system", [&second, &fresh]), []);
        let mut waiting = second.clone();
        waiting.status = None;
        assert_eq!(
            awaiting("acme", "herald-system", [&waiting, &fresh]),
            ["first"]
        );
        // The holder being deleted: the other takes over.
        let mut going = first.clone();
        going.metadata.deletion_timestamp = second.metadata.creation_timestamp.clone();
        assert_eq!(
            versions_annotation(&mounts("acme", "herald-system", [&second, &going])),
            "sms=3"
        );
    }

    #[test]
    fn only_a_template_whose_credentials_change_needs_live_bindings() {
        let mounts = mounts(
            "acme",
            "herald-system",
            &[binding("acme", "sms", Some(2), true)],
        );
        let with = |versions: &str| -> Deployment {
            serde_json::from_value(json!({"spec": {"selector": {}, "template": {"metadata": {"annotations": {CREDENTIAL_VERSIONS_ANNOTATION: versions}}}}})).unwrap()
        };
        assert!(credentials_change(None, &mounts), "a Deployment to create");
        assert!(
            credentials_change(Some(&with("sms=1")), &mounts),
            "a new version"
        );
        assert!(credentials_change(Some(&with("")), &mounts), "a new mount");
        assert!(
            credentials_change(Some(&with("sms=2")), &[]),
            "a dropped mount"
        );
        assert!(
            !credentials_change(Some(&with("sms=2")), &mounts),
            "unchanged"
        );
        let names: Vec<String> = of_tenant(
            "acme",
            "herald-system",
            &[
                binding("acme", "sms", None, true),
                binding("other", "sms", Some(1), true),
            ],
        )
        .collect();
        assert_eq!(names, ["acme-sms"], "only the tenant's own");
    }

    #[test]
    fn only_bindings_still_expecting_a_first_credential_are_awaited() {
        let mut failed = binding("acme", "push", None, true);
        failed.status.as_mut().unwrap().conditions.push(
            serde_json::from_value(json!({"type": "CredentialCurrent", "status": "False",
                "reason": "ProviderFailed", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}))
            .unwrap(),
        );
        let mut unseen = binding("acme", "voice", None, true);
        unseen.status = None;
        // Its Secret was refused by a namespace not yet writable: the next try stores it.
        let mut refused = binding("acme", "rcs", None, true);
        refused.status.as_mut().unwrap().conditions.push(
            serde_json::from_value(json!({"type": "CredentialCurrent", "status": "False",
                "reason": "CredentialNotStored", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}))
            .unwrap(),
        );
        // Reconciled before its Tenant existed: still on its way.
        let mut early = binding("acme", "viber", None, false);
        early.status.as_mut().unwrap().conditions[0].reason = "TenantNotFound".into();
        let bs = [
            binding("acme", "whatsapp", Some(1), true),
            binding("acme", "sms", None, false),
            binding("acme", "email", None, true),
            failed,
            unseen,
            early,
            refused,
            binding("other", "rcs", None, true),
        ];
        assert_eq!(
            awaiting("acme", "herald-system", &bs),
            ["acme-email", "acme-rcs", "acme-viber", "acme-voice"],
            "delivered, blocked, failed and other tenants' bindings are not awaited"
        );
    }

    #[test]
    fn the_annotation_round_trips() {
        let parsed = parse_versions("email=2,whatsapp=3,bad,x=y");
        assert_eq!(
            parsed,
            BTreeMap::from([("email".into(), 2), ("whatsapp".into(), 3)])
        );
    }

    #[test]
    fn a_rollout_in_progress_reports_no_versions() {
        let mut d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "herald-sender", "generation": 2},
            "spec": {"replicas": 2, "selector": {}, "template": {"metadata": {"annotations": {CREDENTIAL_VERSIONS_ANNOTATION: "sms=2"}}}},
            "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "readyReplicas": 2}
        }))
        .unwrap();
        assert_eq!(rolled_out_versions(&d), None, "an old pod is still there");
        d.status.as_mut().unwrap().replicas = Some(2);
        assert_eq!(
            rolled_out_versions(&d),
            Some(BTreeMap::from([("sms".into(), 2)]))
        );
    }
}
