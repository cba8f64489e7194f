//! The pure part of a Tenant reconcile that turns a [`Decision`] into the desired
//! children: the namespace and everything in it. No client: table-tested on fixtures.
//!
//! Every child has a deterministic name, the tenant label, and a controller owner
//! reference to the Tenant, so garbage collection follows the Tenant and the watches
//! map children back to it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::bindings::{CREDENTIALS_DIR, Mount, versions_annotation};
use super::data_plane::{self, DataPlane};
use super::decide::{Decision, Hold};
use crate::api::v1alpha1::Tenant;
use crate::config::OperatorConfig;
use crate::controller::{Error, MANAGED_BY, TENANT_LABEL};
use crate::retention::{Category, Periods};

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

/// `app.kubernetes.io/name` of the purge Jobs' pods.
pub const PURGE: &str = "herald-purge";
/// Label on a purge CronJob, its Jobs and pods: the category it purges (`backups`, …).
pub const PURGE_CATEGORY_LABEL: &str = "herald.dev/purge-category";

/// The namespace of a tenant's stack.
pub fn namespace_name(tenant: &str) -> String {
    format!("tenant-{tenant}")
}

/// The purge CronJob of `category`: `herald-purge-message-content`, …
pub fn purge_name(category: Category) -> String {
    format!("{PURGE}-{}", category.kebab())
}

/// The daily schedule of the `index`-th purged category of `tenant`, in UTC. The minute
/// and first hour come from a digest of the tenant's name, so tenants' purges spread
/// over the day instead of all hitting the stores at midnight, and stay put across
/// restarts; a tenant's categories run an hour apart.
pub fn purge_schedule(tenant: &str, index: usize) -> String {
    let digest = crate::digest::sha256_hex(tenant.as_bytes());
    let h = digest
        .get(..15)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or(0);
    let minute = h % 60;
    let hour = ((h / 60) % 24 + index as u64) % 24;
    format!("{minute} {hour} * * *")
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
    /// One daily purge CronJob per category the stack purges by age; none once the
    /// contract is terminated (erasure takes over).
    pub purge_jobs: Vec<CronJob>,
    /// What the erasure and export Jobs share with the purges (image, regions, security).
    pub data_plane: DataPlane,
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
                        "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": data_plane::PRIVATE_RANGES}}],
                        "ports": [{"protocol": "TCP", "port": 443}]
                    }]
                }
            }),
        )?,
        // Purges, erasure and export reach the providers as the senders do, and the
        // platform's stores the operator configuration declares.
        typed(
            "network policy",
            json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(data_plane::EGRESS_POLICY),
                "spec": {
                    "podSelector": {"matchLabels": {data_plane::DATA_PLANE_LABEL: "true"}}, "policyTypes": ["Egress"],
                    "egress": data_plane::egress_rules(&inputs.config.data_plane.stores)
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
                // Every pod at most the LimitRange's maximum per container: a cap on
                // what a tenant's pods can take from the nodes, whatever their spec
                // says. (Not ephemeral-storage: a quota on it makes the LimitRange
                // default a request for every pod, unschedulable on nodes that do not
                // report the resource.)
                "limits.cpu": (pods * 4).to_string(),
                "limits.memory": format!("{}Gi", pods * 8),
                "requests.cpu": (pods * 4).to_string(),
                "requests.memory": format!("{}Gi", pods * 8),
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
    let affinity = data_plane::region_affinity(&inputs.decision.allowed_regions, NO_REGION_ALLOWED);
    let data_plane = DataPlane {
        image: data_plane::image(inputs.config),
        allowed_regions: inputs.decision.allowed_regions.clone(),
        no_region_key: NO_REGION_ALLOWED.to_owned(),
        service_account: SENDER.to_owned(),
    };
    let (config_mount, config_volume) = data_plane::config(SENDER_CONFIG);
    let (tmp_mount, tmp_volume) = data_plane::tmp();
    let mut volume_mounts = vec![config_mount, tmp_mount];
    let mut volumes = vec![config_volume, tmp_volume];
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
                        "securityContext": data_plane::pod_security_context(),
                        "affinity": affinity,
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
                            "args": ["send", "--config", data_plane::CONFIG_FILE],
                            "ports": [{"name": "http", "containerPort": data_plane::SENDER_PORT}],
                            // Ready only while every channel's credential is there and
                            // well-formed (docs/data-plane.md): with maxUnavailable 0, a
                            // rotation waits for new pods that can send.
                            "readinessProbe": {
                                "httpGet": {"path": data_plane::SENDER_READY_PATH, "port": data_plane::SENDER_PORT},
                                "periodSeconds": 5, "failureThreshold": 2
                            },
                            "resources": resources,
                            "securityContext": data_plane::container_security_context(),
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

    // Purges run the sender image's `purge` command, in the tenant's regions (they read
    // and delete the tenant's data), as restricted as the senders, one at a time per
    // category. The sender configuration tells them whose data.
    let mut purge_jobs = Vec::new();
    if inputs.decision.hold != Some(Hold::Terminated) {
        for (index, category) in Category::PURGED.into_iter().enumerate() {
            let days = inputs.decision.periods.days(category);
            let mut job_labels = labels.clone();
            job_labels.insert(PURGE_CATEGORY_LABEL.to_owned(), category.key().to_owned());
            let mut purge_pod_labels = DataPlane::pod_labels(&job_labels, PURGE);
            purge_pod_labels.insert(APP_LABEL.to_owned(), PURGE.to_owned());
            let mut metadata = meta(&purge_name(category));
            metadata["labels"] = json!(job_labels);
            let args = [
                "purge",
                "--tenant",
                &name,
                "--category",
                category.key(),
                "--older-than-days",
                &days.to_string(),
                "--config",
                data_plane::CONFIG_FILE,
            ]
            .map(str::to_owned);
            let (config_mount, config_volume) = data_plane::config(SENDER_CONFIG);
            let (tmp_mount, tmp_volume) = data_plane::tmp();
            let pod = data_plane.pod_spec(
                "purge",
                &args,
                json!([config_mount, tmp_mount]),
                json!([config_volume, tmp_volume]),
            );
            purge_jobs.push(typed(
                "purge cron job",
                json!({
                    "apiVersion": "batch/v1", "kind": "CronJob", "metadata": metadata,
                    "spec": {
                        "schedule": purge_schedule(&name, index),
                        "timeZone": "Etc/UTC",
                        "concurrencyPolicy": "Forbid",
                        // A run missed by more than an hour (operator or control plane
                        // down) is skipped: the next day's run purges the same data.
                        "startingDeadlineSeconds": 3600,
                        "successfulJobsHistoryLimit": 1,
                        "failedJobsHistoryLimit": 3,
                        "jobTemplate": {
                            "metadata": {"labels": job_labels},
                            "spec": {
                                "backoffLimit": 3,
                                "activeDeadlineSeconds": 6 * 3600,
                                "template": {"metadata": {"labels": purge_pod_labels}, "spec": pod}
                            }
                        }
                    }
                }),
            )?);
        }
    }

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
        purge_jobs,
        data_plane,
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
        let decision = decide(
            &tenant,
            &config,
            Periods::default(),
            true,
            k8s_openapi::jiff::Timestamp::now(),
        );
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
    fn data_plane_pods_run_the_platforms_image_in_region_under_their_own_egress() {
        let own_image = fixtures::ACTIVE.replace(
            "  retentionPolicyRef: {name: standard}\n",
            "  retentionPolicyRef: {name: standard}\n  senders: {image: evil.example/fake-purge:1}\n",
        );
        let c = build(&own_image);
        let sender = json_of(&c.deployment);
        assert_eq!(
            sender["spec"]["template"]["spec"]["containers"][0]["image"],
            "evil.example/fake-purge:1",
            "a tenant may choose its sender image"
        );
        let config = OperatorConfig::load(None).unwrap();
        assert_eq!(c.data_plane.image, config.senders.image);
        assert_eq!(c.data_plane.allowed_regions, ["eu-central-1", "eu-west-1"]);
        for job in &c.purge_jobs {
            let pod = &json_of(job)["spec"]["jobTemplate"]["spec"]["template"];
            assert_eq!(
                pod["metadata"]["labels"][data_plane::DATA_PLANE_LABEL],
                "true"
            );
            assert_eq!(
                pod["spec"]["containers"][0]["image"],
                json!(config.senders.image)
            );
            assert_eq!(
                pod["spec"]["affinity"], sender["spec"]["template"]["spec"]["affinity"],
                "purges run where the senders may"
            );
        }
        let policy = c
            .network_policies
            .iter()
            .map(json_of)
            .find(|p| p["metadata"]["name"] == data_plane::EGRESS_POLICY)
            .expect("the data-plane egress policy");
        assert_eq!(
            policy["spec"]["podSelector"]["matchLabels"][data_plane::DATA_PLANE_LABEL],
            "true"
        );
        assert_eq!(
            policy["spec"]["egress"],
            json!(data_plane::egress_rules(&config.data_plane.stores))
        );
    }

    #[test]
    fn one_restricted_purge_cron_job_per_purged_category() {
        let c = build(fixtures::ACTIVE);
        let names: Vec<String> = c
            .purge_jobs
            .iter()
            .map(|j| j.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "herald-purge-message-content",
                "herald-purge-delivery-metadata",
                "herald-purge-sms-voice-traffic",
                "herald-purge-backups",
                "herald-purge-logs"
            ]
        );
        // (category, args) for every row.
        let table = [
            ("messageContent", "90"),
            ("deliveryMetadata", "180"),
            ("smsVoiceTraffic", "183"),
            ("backups", "7"),
            ("logs", "90"),
        ];
        for (job, (category, days)) in c.purge_jobs.iter().zip(table) {
            let j = json_of(job);
            let meta = &j["metadata"];
            assert_eq!(meta["namespace"], "tenant-acme");
            assert_eq!(meta["labels"][TENANT_LABEL], "acme");
            assert_eq!(meta["labels"][PURGE_CATEGORY_LABEL], category);
            assert_eq!(meta["ownerReferences"][0]["kind"], "Tenant");
            let spec = &j["spec"];
            assert_eq!(spec["concurrencyPolicy"], "Forbid");
            assert_eq!(spec["successfulJobsHistoryLimit"], 1);
            assert_eq!(spec["failedJobsHistoryLimit"], 3);
            assert_eq!(
                spec["jobTemplate"]["metadata"]["labels"][TENANT_LABEL],
                "acme"
            );
            let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
            assert_eq!(pod["automountServiceAccountToken"], false);
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"],
                "RuntimeDefault"
            );
            let container = &pod["containers"][0];
            assert_eq!(
                container["image"],
                "ghcr.io/herald-dev/herald-dataplane:0.1.0"
            );
            assert_eq!(
                container["args"],
                json!([
                    "purge",
                    "--tenant",
                    "acme",
                    "--category",
                    category,
                    "--older-than-days",
                    days,
                    "--config",
                    "/etc/herald/config.json"
                ])
            );
            let sc = &container["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true);
            assert_eq!(sc["allowPrivilegeEscalation"], false);
            assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
            let term = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                ["nodeSelectorTerms"][0]["matchExpressions"][0];
            assert_eq!(term["values"], json!(["eu-central-1", "eu-west-1"]));
        }
    }

    #[test]
    fn purge_schedules_are_daily_deterministic_and_spread() {
        let a = purge_schedule("acme", 0);
        assert_eq!(a, purge_schedule("acme", 0), "deterministic");
        let fields: Vec<u64> = a.split(' ').take(2).map(|f| f.parse().unwrap()).collect();
        assert!(fields[0] < 60 && fields[1] < 24, "{a}");
        assert!(a.ends_with(" * * *"), "daily: {a}");
        let next: Vec<u64> = purge_schedule("acme", 1)
            .split(' ')
            .take(2)
            .map(|f| f.parse().unwrap())
            .collect();
        assert_eq!((next[0], next[1]), (fields[0], (fields[1] + 1) % 24));
        let tenants: std::collections::BTreeSet<String> = (0..20)
            .map(|i| purge_schedule(&format!("tenant-{i}"), 0))
            .collect();
        assert!(tenants.len() > 10, "spread over the day: {tenants:?}");
    }

    #[test]
    fn purges_use_the_bounded_periods_and_stop_at_termination() {
        let tenant = fixtures::tenant(fixtures::ACTIVE);
        let config = OperatorConfig::load(None).unwrap();
        let asked = Periods {
            backups_days: 3,
            message_content_days: 400,
            ..Periods::default()
        };
        let decision = decide(
            &tenant,
            &config,
            asked,
            true,
            k8s_openapi::jiff::Timestamp::now(),
        );
        let c = children(&Inputs {
            tenant: &tenant,
            decision: &decision,
            config: &config,
            mounts: &[],
        })
        .unwrap();
        let args = |i: usize| {
            json_of(&c.purge_jobs[i])["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][6].clone()
        };
        assert_eq!(args(0), "90", "never longer than the platform's");
        assert_eq!(args(3), "3", "shorter is kept");

        let suspended = build(&fixtures::ACTIVE.replace("state: Active", "state: Suspended"));
        assert_eq!(
            suspended.purge_jobs.len(),
            5,
            "retention runs while suspended"
        );
        let terminated = build(&fixtures::ACTIVE.replace(
            "state: Active",
            "state: Terminated\n    terminatedAt: \"2026-02-01T00:00:00Z\"",
        ));
        assert!(terminated.purge_jobs.is_empty());
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
