//! The pure part of a Tenant reconcile that turns a [`Decision`] into the desired
//! children: the namespace and everything in it. No client: table-tested on fixtures.
//!
//! Every child has a deterministic name, the tenant label, and a controller owner
//! reference to the Tenant, so garbage collection follows the Tenant and the watches
//! map children back to it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::bindings::{CREDENTIALS_DIR, Mount, versions_annotation};
use super::decide::Decision;
use crate::api::v1alpha1::Tenant;
use crate::config::OperatorConfig;
use crate::controller::{Error, MANAGED_BY, TENANT_LABEL};
use crate::retention::Periods;

/// Name of every per-tenant object that has one instance (SA, Role, Deployment, …).
pub const SENDER: &str = "herald-sender";
/// The sender configuration ConfigMap.
pub const SENDER_CONFIG: &str = "herald-sender-config";
/// Pod-template annotation with a digest of the sender configuration: a change rolls
/// the senders, which read it only at start.
pub const CONFIG_HASH_ANNOTATION: &str = "herald.dev/config-hash";
/// Pod-template annotation listing the credential versions the pods mount: a rotation
/// changes it and so rolls the senders.
pub const CREDENTIAL_VERSIONS_ANNOTATION: &str = "herald.dev/credential-versions";
/// Label of sender pods, for selectors and the residency check.
pub const APP_LABEL: &str = "app.kubernetes.io/name";
/// A node label no node has: the affinity of a tenant with no allowed region, so that
/// even a hand-scaled Deployment cannot place a pod anywhere.
pub const NO_REGION_ALLOWED: &str = "herald.dev/no-region-allowed";

/// The namespace of a tenant's stack.
pub fn namespace_name(tenant: &str) -> String {
    format!("tenant-{tenant}")
}

/// What the senders read from their configuration file.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SenderConfig {
    /// The tenant's name.
    pub tenant: String,
    /// Regions the senders may process data in.
    pub regions: Vec<String>,
    /// Channels handed to the senders (filled by the ChannelBinding controller).
    pub channels: Vec<String>,
    /// Retention periods the stack enforces.
    pub retention: Periods,
}

/// Everything the builders need.
pub struct Inputs<'a> {
    /// The Tenant (name and uid are needed for the owner reference).
    pub tenant: &'a Tenant,
    /// The decision of [`super::decide::decide`].
    pub decision: &'a Decision,
    /// Operator configuration (sender defaults).
    pub config: &'a OperatorConfig,
    /// The channel credentials handed to the senders (see [`super::bindings`]).
    pub mounts: &'a [Mount],
}

/// The desired children, in apply order (namespace first, Deployment last).
#[derive(Clone, Debug)]
pub struct Children {
    pub namespace: Namespace,
    pub service_account: ServiceAccount,
    pub role: Role,
    pub role_binding: RoleBinding,
    pub network_policies: Vec<NetworkPolicy>,
    pub resource_quota: ResourceQuota,
    pub limit_range: LimitRange,
    pub config_map: ConfigMap,
    pub deployment: Deployment,
    pub pdb: PodDisruptionBudget,
}

fn typed<T: DeserializeOwned>(what: &'static str, v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|source| Error::Build { what, source })
}

/// Builds every child of `inputs.tenant`.
pub fn children(inputs: &Inputs<'_>) -> Result<Children, Error> {
    let tenant = inputs.tenant;
    let name = tenant.metadata.name.clone().ok_or(Error::MissingName)?;
    let ns = namespace_name(&name);
    let owner = tenant.controller_owner_ref(&()).ok_or(Error::MissingName)?;
    let labels = BTreeMap::from([
        (TENANT_LABEL.to_owned(), name.clone()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGED_BY.to_owned(),
        ),
        ("app.kubernetes.io/part-of".to_owned(), "herald".to_owned()),
    ]);
    // Metadata shared by every namespaced child.
    let meta = |child: &str| json!({"name": child, "namespace": ns, "labels": labels, "ownerReferences": [owner]});

    let mut ns_labels = labels.clone();
    for mode in ["enforce", "audit", "warn"] {
        ns_labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            "restricted".into(),
        );
        ns_labels.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            "latest".into(),
        );
    }
    let namespace = typed(
        "namespace",
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": ns_labels, "ownerReferences": [owner]}
        }),
    )?;

    let service_account = typed(
        "service account",
        json!({
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(SENDER),
            // Senders never talk to the API server: no token in their pods.
            "automountServiceAccountToken": false
        }),
    )?;
    // The least a sender could need: read its own configuration. With no token mounted
    // even this is unused today; it documents the ceiling of what a sender may do.
    let role = typed(
        "role",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(SENDER),
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [SENDER_CONFIG], "verbs": ["get"]}]
        }),
    )?;
    let role_binding = typed(
        "role binding",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(SENDER),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SENDER},
            "subjects": [{"kind": "ServiceAccount", "name": SENDER, "namespace": ns}]
        }),
    )?;

    let network_policies = vec![
        typed(
            "network policy",
            json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("herald-default-deny"),
                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
            }),
        )?,
        typed(
            "network policy",
            json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("herald-allow-dns"),
                "spec": {
                    "podSelector": {}, "policyTypes": ["Egress"],
                    "egress": [{
                        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
                    }]
                }
            }),
        )?,
        // Senders reach channel providers over TLS on 443, outside the cluster only:
        // private ranges (other tenants, cluster services) stay closed (C8).
        typed(
            "network policy",
            json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("herald-allow-sender-egress"),
                "spec": {
                    "podSelector": {"matchLabels": {APP_LABEL: SENDER}}, "policyTypes": ["Egress"],
                    "egress": [{
                        "to": [{"ipBlock": {"cidr": "0.0.0.0/0",
                            "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]}}],
                        "ports": [{"protocol": "TCP", "port": 443}]
                    }]
                }
            }),
        )?,
    ];

    let spec_senders = tenant.spec.senders.as_ref();
    let wanted = spec_senders
        .and_then(|s| s.replicas)
        .unwrap_or(inputs.config.senders.replicas)
        .max(0);
    // Room for a rolling update (one surge pod) and the purge and export jobs.
    let pods = wanted * 2 + 10;
    let resource_quota = typed(
        "resource quota",
        json!({
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta("herald-quota"),
            "spec": {"hard": {
                "pods": pods.to_string(),
                "configmaps": "20",
                "secrets": "100",
                "services": "5",
                // Tenant data lives in the platform's stores, never on volumes in this
                // namespace: nothing to erase that erasure could miss.
                "persistentvolumeclaims": "0",
                "services.loadbalancers": "0",
                "services.nodeports": "0"
            }}
        }),
    )?;
    let limit_range = typed(
        "limit range",
        json!({
            "apiVersion": "v1", "kind": "LimitRange", "metadata": meta("herald-limits"),
            "spec": {"limits": [{
                "type": "Container",
                "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                "default": {"cpu": "500m", "memory": "256Mi"},
                "max": {"cpu": "4", "memory": "8Gi"}
            }]}
        }),
    )?;

    let sender_config = SenderConfig {
        tenant: name.clone(),
        regions: inputs.decision.allowed_regions.clone(),
        channels: inputs.mounts.iter().map(|m| m.channel.clone()).collect(),
        retention: inputs.decision.periods.clone(),
    };
    let config_json =
        serde_json::to_string_pretty(&sender_config).map_err(|source| Error::Build {
            what: "sender configuration",
            source,
        })?;
    let config_hash = crate::digest::sha256_hex(config_json.as_bytes());
    let config_map = typed(
        "config map",
        json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(SENDER_CONFIG),
            "data": {"config.json": config_json}
        }),
    )?;

    let image = spec_senders
        .and_then(|s| s.image.clone())
        .unwrap_or_else(|| inputs.config.senders.image.clone());
    let resources = spec_senders
        .and_then(|s| s.resources.clone())
        .unwrap_or_else(|| inputs.config.senders.resources.clone());
    let selector = BTreeMap::from([
        (APP_LABEL.to_owned(), SENDER.to_owned()),
        (TENANT_LABEL.to_owned(), name.clone()),
    ]);
    let mut pod_labels = labels.clone();
    pod_labels.extend(selector.clone());
    let region_term = if inputs.decision.allowed_regions.is_empty() {
        json!({"key": NO_REGION_ALLOWED, "operator": "Exists"})
    } else {
        json!({"key": "topology.kubernetes.io/region", "operator": "In", "values": inputs.decision.allowed_regions})
    };
    let mut volume_mounts = vec![
        json!({"name": "config", "mountPath": "/etc/herald", "readOnly": true}),
        json!({"name": "tmp", "mountPath": "/tmp"}),
    ];
    let mut volumes = vec![
        json!({"name": "config", "configMap": {"name": SENDER_CONFIG}}),
        json!({"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}),
    ];
    for m in inputs.mounts {
        let volume = format!("cred-{}", m.channel);
        volume_mounts.push(json!({"name": volume, "mountPath": format!("{CREDENTIALS_DIR}/{}", m.channel), "readOnly": true}));
        volumes.push(
            json!({"name": volume, "secret": {"secretName": m.secret, "defaultMode": 0o400}}),
        );
    }
    let deployment = typed(
        "deployment",
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(SENDER),
            "spec": {
                "replicas": inputs.decision.replicas,
                "selector": {"matchLabels": selector},
                // Never fewer ready senders than desired during a rollout (credential
                // rotation must not interrupt sending).
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {
                        "labels": pod_labels,
                        "annotations": {
                            CONFIG_HASH_ANNOTATION: config_hash,
                            CREDENTIAL_VERSIONS_ANNOTATION: versions_annotation(inputs.mounts),
                        }
                    },
                    "spec": {
                        "serviceAccountName": SENDER,
                        "automountServiceAccountToken": false,
                        "enableServiceLinks": false,
                        "securityContext": {
                            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"}
                        },
                        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [region_term]}]
                        }}},
                        // Spread over zones, then nodes; ScheduleAnyway because an allowed
                        // region may have a single zone, and residency beats spreading.
                        "topologySpreadConstraints": [
                            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                             "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": selector}},
                            {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                             "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": selector}}
                        ],
                        "containers": [{
                            "name": "sender",
                            "image": image,
                            "args": ["send", "--config", "/etc/herald/config.json"],
                            "resources": resources,
                            "securityContext": {
                                "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "runAsNonRoot": true,
                                "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"}
                            },
                            "volumeMounts": volume_mounts,
                        }],
                        "volumes": volumes
                    }
                }
            }
        }),
    )?;
    let pdb = typed(
        "pod disruption budget",
        json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(SENDER),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
        }),
    )?;

    Ok(Children {
        namespace,
        service_account,
        role,
        role_binding,
        network_policies,
        resource_quota,
        limit_range,
        config_map,
        deployment,
        pdb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::decide::{decide, tests as fixtures};
    use crate::retention::Periods;

    fn build(yaml: &str) -> Children {
        let tenant = fixtures::tenant(yaml);
        let config = OperatorConfig::load(None).unwrap();
        let decision = decide(&tenant, &config, Periods::default(), true);
        children(&Inputs {
            tenant: &tenant,
            decision: &decision,
            config: &config,
            mounts: &mounts(yaml),
        })
        .unwrap()
    }

    /// The acme fixture gets a WhatsApp credential; other tenants none.
    fn mounts(yaml: &str) -> Vec<Mount> {
        if yaml.contains("name: acme") {
            vec![Mount {
                channel: "whatsapp".into(),
                version: 3,
                secret: "herald-cred-whatsapp-v3".into(),
            }]
        } else {
            vec![]
        }
    }

    #[test]
    fn credentials_are_mounted_and_versioned_in_the_pod_template() {
        let d = json_of(&build(fixtures::ACTIVE).deployment);
        let template = &d["spec"]["template"];
        assert_eq!(
            template["metadata"]["annotations"][CREDENTIAL_VERSIONS_ANNOTATION],
            "whatsapp=3"
        );
        let vols = template["spec"]["volumes"].as_array().unwrap();
        assert!(
            vols.iter()
                .any(|v| v["secret"]["secretName"] == "herald-cred-whatsapp-v3")
        );
        let mounts = template["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m["mountPath"] == "/var/run/herald/credentials/whatsapp")
        );
    }

    fn json_of<T: Serialize>(t: &T) -> Value {
        serde_json::to_value(t).unwrap()
    }

    #[test]
    fn namespace_enforces_restricted_and_carries_the_tenant() {
        let c = build(fixtures::ACTIVE);
        let labels = c.namespace.metadata.labels.unwrap();
        assert_eq!(c.namespace.metadata.name.as_deref(), Some("tenant-acme"));
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(labels[TENANT_LABEL], "acme");
    }

    #[test]
    fn every_child_is_owned_by_the_tenant_and_labelled() {
        let c = build(fixtures::ACTIVE);
        let metas = [
            json_of(&c.service_account),
            json_of(&c.role),
            json_of(&c.role_binding),
            json_of(&c.resource_quota),
            json_of(&c.limit_range),
            json_of(&c.config_map),
            json_of(&c.deployment),
            json_of(&c.pdb),
            json_of(&c.network_policies[0]),
            json_of(&c.network_policies[1]),
            json_of(&c.network_policies[2]),
        ];
        for m in metas {
            let meta = &m["metadata"];
            assert_eq!(meta["namespace"], "tenant-acme", "{m}");
            assert_eq!(meta["labels"][TENANT_LABEL], "acme", "{m}");
            assert_eq!(meta["ownerReferences"][0]["kind"], "Tenant", "{m}");
            assert_eq!(meta["ownerReferences"][0]["controller"], true, "{m}");
        }
    }

    #[test]
    fn senders_are_restricted_and_pinned_to_allowed_regions() {
        let d = json_of(&build(fixtures::ACTIVE).deployment);
        let pod = &d["spec"]["template"]["spec"];
        let container = &pod["containers"][0]["securityContext"];
        assert_eq!(container["allowPrivilegeEscalation"], false);
        assert_eq!(container["readOnlyRootFilesystem"], true);
        assert_eq!(container["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(pod["automountServiceAccountToken"], false);
        let term = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0];
        assert_eq!(term["key"], "topology.kubernetes.io/region");
        assert_eq!(term["values"], json!(["eu-central-1", "eu-west-1"]));
        assert_eq!(
            pod["topologySpreadConstraints"][0]["topologyKey"],
            "topology.kubernetes.io/zone"
        );
        assert_eq!(d["spec"]["replicas"], 2);
    }

    #[test]
    fn a_tenant_with_no_allowed_region_gets_an_unsatisfiable_affinity_and_no_replicas() {
        let d = json_of(
            &build(&fixtures::ACTIVE.replace("[eu-central-1, eu-west-1]", "[us-east-1]"))
                .deployment,
        );
        let term = &d["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0];
        assert_eq!(term["key"], NO_REGION_ALLOWED);
        assert_eq!(d["spec"]["replicas"], 0);
    }

    #[test]
    fn a_config_change_changes_the_pod_template() {
        let a = build(fixtures::ACTIVE).deployment;
        let b = build(&fixtures::ACTIVE.replace("[eu-central-1, eu-west-1]", "[eu-central-1]"))
            .deployment;
        let hash = |d: &Deployment| {
            d.spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[CONFIG_HASH_ANNOTATION]
                .clone()
        };
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(
            hash(&a),
            hash(&build(fixtures::ACTIVE).deployment),
            "deterministic"
        );
    }

    #[test]
    fn the_sender_config_carries_regions_and_retention() {
        let cm = build(fixtures::ACTIVE).config_map;
        let text = &cm.data.unwrap()["config.json"];
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["regions"], json!(["eu-central-1", "eu-west-1"]));
        assert_eq!(v["retention"]["backupsDays"], 7);
    }
}
