//! The data-plane pods: retention purges, the erasure purge and the export. One builder,
//! so every pod that reads or deletes a tenant's data runs the platform's image (never
//! the one a Tenant names: whoever writes a Tenant must not decide what "purge
//! confirmed" means), in the tenant's allowed regions (an export reads all of a
//! tenant's data), as restricted as the senders, and under an egress policy of its own
//! (providers on 443 like the senders, plus the platform's stores from the operator
//! configuration), without which a CNI that enforces NetworkPolicy would leave it only
//! DNS and erasure could never finish. A Job that sends the data out (the export) is
//! under a narrower policy instead: see [`super::destination`].

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::config::{OperatorConfig, StoreEndpoint};

/// Label on every data-plane pod; the data-plane egress policy selects it.
pub const DATA_PLANE_LABEL: &str = "herald.dev/data-plane";

/// The data-plane egress NetworkPolicy's name.
pub const EGRESS_POLICY: &str = "herald-allow-data-plane-egress";

/// Address ranges that are never "the internet": other tenants' pods, cluster services,
/// link-local (cloud metadata) and carrier-grade NAT. Senders and data-plane pods reach
/// providers on 443 everywhere else.
pub const PRIVATE_RANGES: [&str; 5] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
];

/// The pod security context of every Herald pod (senders and data plane alike).
pub fn pod_security_context() -> Value {
    json!({
        "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"}
    })
}

/// The container security context of every Herald container (PodSecurity `restricted`).
pub fn container_security_context() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}
    })
}

/// Required node affinity to the allowed regions; an unsatisfiable one when none is
/// allowed (a pod must stay Pending rather than run anywhere).
pub fn region_affinity(allowed_regions: &[String], no_region_key: &str) -> Value {
    let term = if allowed_regions.is_empty() {
        json!({"key": no_region_key, "operator": "Exists"})
    } else {
        json!({"key": "topology.kubernetes.io/region", "operator": "In", "values": allowed_regions})
    };
    json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [term]}]
    }}})
}

/// Where every Herald container may write (its root filesystem is read-only).
pub const TMP_DIR: &str = "/tmp";
/// The tenant configuration's directory in the senders and the purges.
pub const CONFIG_DIR: &str = "/etc/herald";
/// The tenant configuration file, as the `--config` argument names it.
pub const CONFIG_FILE: &str = "/etc/herald/config.json";
/// Where a data-subject request's Job finds the subject Secret's copy.
pub const SUBJECT_DIR: &str = "/var/run/herald/subject";
/// The senders' HTTP port (docs/data-plane.md).
pub const SENDER_PORT: u16 = 8080;
/// The senders' readiness path.
pub const SENDER_READY_PATH: &str = "/readyz";

/// The `/tmp` mount and its volume (a size-capped emptyDir).
pub fn tmp() -> (Value, Value) {
    (
        json!({"name": "tmp", "mountPath": TMP_DIR}),
        json!({"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}),
    )
}

/// The tenant configuration's mount (read-only) and its volume (`config_map`).
pub fn config(config_map: &str) -> (Value, Value) {
    (
        json!({"name": "config", "mountPath": CONFIG_DIR, "readOnly": true}),
        json!({"name": "config", "configMap": {"name": config_map}}),
    )
}

/// The image of every data-plane Job.
pub fn image(config: &OperatorConfig) -> String {
    config
        .data_plane
        .image
        .clone()
        .unwrap_or_else(|| config.senders.image.clone())
}

/// What every data-plane pod of one tenant shares.
#[derive(Clone, Debug, PartialEq)]
pub struct DataPlane {
    /// The platform's image.
    pub image: String,
    /// The tenant's allowed regions (empty: none, the pods stay Pending).
    pub allowed_regions: Vec<String>,
    /// The node label key that no node has, for "no region allowed".
    pub no_region_key: String,
    /// The ServiceAccount the pods run as (no token).
    pub service_account: String,
}

impl DataPlane {
    /// The pod spec of a data-plane container running `args`; `extra` is merged into
    /// the container (volume mounts) and `volumes` are the pod's.
    pub fn pod_spec(
        &self,
        container: &str,
        args: &[String],
        mounts: Value,
        volumes: Value,
    ) -> Value {
        json!({
            "restartPolicy": "Never",
            "serviceAccountName": self.service_account,
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "securityContext": pod_security_context(),
            "affinity": region_affinity(&self.allowed_regions, &self.no_region_key),
            "containers": [{
                "name": container,
                "image": self.image,
                "args": args,
                "securityContext": container_security_context(),
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                              "limits": {"cpu": "500m", "memory": "256Mi"}},
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        })
    }

    /// The pod of an erasure Job (`erase`, `export`): only `/tmp` to write to.
    pub fn erasure_pod(&self, args: &[String]) -> Value {
        let (mount, volume) = tmp();
        self.pod_spec("job", args, json!([mount]), json!([volume]))
    }

    /// The pod of a data-subject request's Job: `/tmp`, and the copy of the subject
    /// Secret (`secret`) at [`SUBJECT_DIR`], readable by the pod's user only.
    pub fn dsr_pod(&self, args: &[String], secret: &str) -> Value {
        let (mount, volume) = tmp();
        self.pod_spec(
            "job",
            args,
            json!([mount, {"name": "subject", "mountPath": SUBJECT_DIR, "readOnly": true}]),
            json!([volume, {"name": "subject", "secret": {"secretName": secret, "defaultMode": 0o400}}]),
        )
    }

    /// The labels of a data-plane pod: the tenant's, the component's, and the one the
    /// egress policy selects.
    pub fn pod_labels(
        base: &BTreeMap<String, String>,
        component: &str,
    ) -> BTreeMap<String, String> {
        let mut labels = base.clone();
        labels.insert("app.kubernetes.io/component".into(), component.into());
        labels.insert(DATA_PLANE_LABEL.into(), "true".into());
        labels
    }
}

/// The egress rules of the data-plane pods: providers like the senders, and each store.
pub fn egress_rules(stores: &[StoreEndpoint]) -> Vec<Value> {
    let mut rules = vec![json!({
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_RANGES}}],
        "ports": [{"protocol": "TCP", "port": 443}]
    })];
    for s in stores {
        let peer = match &s.cidr {
            Some(cidr) => json!({"ipBlock": {"cidr": cidr}}),
            None => {
                let mut p = serde_json::Map::new();
                if let Some(n) = &s.namespace_selector {
                    p.insert("namespaceSelector".into(), n.clone());
                }
                if let Some(pod) = &s.pod_selector {
                    p.insert("podSelector".into(), pod.clone());
                }
                Value::Object(p)
            }
        };
        let ports: Vec<Value> = s
            .ports
            .iter()
            .map(|p| json!({"protocol": "TCP", "port": p}))
            .collect();
        rules.push(json!({"to": [peer], "ports": ports}));
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_the_platforms_never_a_tenants() {
        let c = OperatorConfig::load(None).unwrap();
        assert_eq!(image(&c), c.senders.image);
        let (head, _) = crate::config::DEFAULT_CONFIG
            .split_once("dataPlane:")
            .unwrap();
        let text = format!("{head}dataPlane:\n  image: registry.example/herald/purge:2\n");
        let c = OperatorConfig::parse(&text, "t").unwrap();
        assert_eq!(image(&c), "registry.example/herald/purge:2");
    }

    #[test]
    fn pods_are_restricted_and_pinned_to_the_allowed_regions() {
        let dp = DataPlane {
            image: "img".into(),
            allowed_regions: vec!["eu-central-1".into()],
            no_region_key: "herald.dev/no-region-allowed".into(),
            service_account: "sender".into(),
        };
        let spec = dp.pod_spec("job", &["purge".into()], json!([]), json!([]));
        assert_eq!(spec["automountServiceAccountToken"], false);
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
        let c = &spec["containers"][0];
        assert_eq!(c["image"], "img");
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        let term = &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0];
        assert_eq!(term["key"], "topology.kubernetes.io/region");
        assert_eq!(term["values"], json!(["eu-central-1"]));
        let none = DataPlane {
            allowed_regions: vec![],
            ..dp
        };
        let spec = none.pod_spec("job", &[], json!([]), json!([]));
        let term = &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0];
        assert_eq!(term["key"], "herald.dev/no-region-allowed");
    }

    #[test]
    fn egress_reaches_providers_on_443_and_each_configured_store() {
        let c = OperatorConfig::load(None).unwrap();
        let rules = egress_rules(&c.data_plane.stores);
        assert_eq!(rules.len(), 1 + c.data_plane.stores.len());
        assert_eq!(rules[0]["ports"], json!([{"protocol": "TCP", "port": 443}]));
        assert_eq!(
            rules[0]["to"][0]["ipBlock"]["except"],
            json!(PRIVATE_RANGES)
        );
        let store = &rules[1];
        assert!(store["to"][0]["namespaceSelector"].is_object());
        assert!(store["to"][0]["podSelector"].is_object());
        assert_eq!(store["ports"], json!([{"protocol": "TCP", "port": 5432}]));
        let cidr = StoreEndpoint {
            name: "backups".into(),
            namespace_selector: None,
            pod_selector: None,
            cidr: Some("203.0.113.0/24".into()),
            ports: vec![443, 9000],
        };
        let rules = egress_rules(&[cidr]);
        assert_eq!(
            rules[1]["to"],
            json!([{"ipBlock": {"cidr": "203.0.113.0/24"}}])
        );
        assert_eq!(rules[1]["ports"][1]["port"], 9000);
    }
}
