//! The operator's configuration file (rendered by the Helm chart from its values):
//! the region catalog and the platform's defaults.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use k8s_openapi::api::core::v1::ResourceRequirements;

use crate::regions::RegionCatalog;
use crate::retention::Periods;

pub mod erasure_scope;
pub use erasure_scope::ErasureScope;

/// The configuration compiled in, used when `herald run` is given no `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("../config/herald.yaml");

/// Everything `herald run` reads from its configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperatorConfig {
    /// The operator's own namespace: ChannelBindings and their Secrets live there.
    pub control_namespace: String,
    /// Defaults of every tenant's sender Deployment.
    pub senders: SenderDefaults,
    /// Region → country → EEA / adequacy / third country.
    pub regions: RegionCatalog,
    /// The platform's retention periods: what a tenant's data is kept where its
    /// RetentionPolicy says nothing, and the longest a RetentionPolicy may ask for (a
    /// customer may shorten them, never lengthen them).
    #[serde(default)]
    pub retention: Periods,
    /// When erasure of a terminated tenant runs.
    #[serde(default)]
    pub erasure: ErasureConfig,
    /// The Jobs that read or delete a tenant's data (retention purges, the erasure
    /// purge, the export): their image and the platform stores they reach.
    #[serde(default)]
    pub data_plane: DataPlaneConfig,
    /// The provider credential APIs a ChannelBinding may name (`credential.providerApi.
    /// name`), by name. Only these ever receive a platform token: a manifest names a
    /// provider, it cannot name a URL or a Secret.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// When a failing dependency stops reading as "in progress" and reads as stalled.
    #[serde(default)]
    pub health: HealthConfig,
    /// How long BreachNotices are kept as evidence.
    #[serde(default)]
    pub breach_notices: BreachNoticeConfig,
}

/// BreachNotices are evidence (Art. 33(5) GDPR: every breach is documented).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BreachNoticeConfig {
    /// Days from awareAt a BreachNotice is kept (`status.retainUntil`); only the
    /// break-glass group may delete it, after this. Default: 1825 (5 years, as the
    /// deletion receipts).
    pub retention_days: i64,
}

impl Default for BreachNoticeConfig {
    fn default() -> Self {
        Self {
            retention_days: 1825,
        }
    }
}

/// One provider credential API of the platform (the contract in [`crate::provider`]).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderConfig {
    /// Base URL of the API: https (plain http only on a loopback host, for tests and
    /// local development).
    pub base_url: String,
    /// The key of a Secret in the control namespace holding the bearer token Herald
    /// authenticates with. Never copied to a tenant.
    pub auth_secret_ref: SecretKeyRef,
}

/// A key of a Secret in the control namespace.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The key in its data.
    pub key: String,
}

/// Why the providers cannot be used, if they cannot: names are DNS labels (bindings name
/// them), base URLs https (http only on loopback) with a host and no userinfo, Secret
/// references non-empty.
fn check_providers(providers: &BTreeMap<String, ProviderConfig>) -> Result<(), String> {
    for (name, p) in providers {
        if !is_dns_label(name) {
            return Err(format!("provider name {name:?} is not a DNS-1123 label"));
        }
        let url = reqwest::Url::parse(&p.base_url)
            .map_err(|_| format!("provider {name}: baseUrl is not a URL"))?;
        let Some(host) = url.host_str() else {
            return Err(format!("provider {name}: baseUrl has no host"));
        };
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback());
        if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
            return Err(format!(
                "provider {name}: baseUrl must be https (plain http only on a loopback host)"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "provider {name}: baseUrl must not carry credentials"
            ));
        }
        if p.auth_secret_ref.name.is_empty() || p.auth_secret_ref.key.is_empty() {
            return Err(format!(
                "provider {name}: authSecretRef needs a name and a key"
            ));
        }
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Health reporting bounds.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthConfig {
    /// A dependency Herald retries by itself (a channel provider that does not answer)
    /// is reported as converging (Reconciling) for this long, then as Stalled with the
    /// reason: Argo CD shows Degraded and kstatus Failed instead of progress forever.
    /// Retries go on. Default: 900 (15 minutes).
    pub stall_after_seconds: i64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            stall_after_seconds: 900,
        }
    }
}

impl HealthConfig {
    /// The bound as a duration (a negative value counts as zero).
    pub fn stall_after(&self) -> k8s_openapi::jiff::SignedDuration {
        k8s_openapi::jiff::SignedDuration::from_secs(self.stall_after_seconds.max(0))
    }
}

/// The data-plane Jobs' image and egress.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataPlaneConfig {
    /// Image of every data-plane Job. Default: `senders.image` of this configuration;
    /// never the image a Tenant names, so whoever writes a Tenant cannot decide what
    /// "purge confirmed" means.
    #[serde(default)]
    pub image: Option<String>,
    /// The platform's stores the Jobs reach besides the channel providers (which they
    /// reach like the senders: TCP 443 outside private ranges).
    #[serde(default)]
    pub stores: Vec<StoreEndpoint>,
}

/// One of the platform's stores, as NetworkPolicy peers: in-cluster by selectors, or an
/// address range outside.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreEndpoint {
    /// A name for people (docs, the policy's comments).
    pub name: String,
    /// Namespaces the store runs in (a LabelSelector); with podSelector, pods there.
    #[serde(default)]
    pub namespace_selector: Option<serde_json::Value>,
    /// The store's pods (a LabelSelector), in the namespaces above.
    #[serde(default)]
    pub pod_selector: Option<serde_json::Value>,
    /// Or an address range (CIDR) outside the cluster.
    #[serde(default)]
    pub cidr: Option<String>,
    /// TCP ports of the store.
    pub ports: Vec<u16>,
}

impl DataPlaneConfig {
    /// Why the stores cannot become a policy, if they cannot.
    fn check(&self) -> Result<(), String> {
        for s in &self.stores {
            let by_selector = s.namespace_selector.is_some() || s.pod_selector.is_some();
            if by_selector == s.cidr.is_some() {
                return Err(format!(
                    "store {} needs either selectors (namespaceSelector/podSelector) or a cidr",
                    s.name
                ));
            }
            if s.ports.is_empty() || s.ports.contains(&0) {
                return Err(format!("store {} needs its TCP ports (1-65535)", s.name));
            }
            if let Some(cidr) = &s.cidr
                && !valid_cidr(cidr)
            {
                return Err(format!("store {}: {cidr} is not a CIDR", s.name));
            }
        }
        if self.image.as_deref().is_some_and(str::is_empty) {
            return Err("dataPlane.image is empty".into());
        }
        Ok(())
    }
}

fn valid_cidr(cidr: &str) -> bool {
    let Some((addr, len)) = cidr.split_once('/') else {
        return false;
    };
    match (addr.parse::<std::net::IpAddr>(), len.parse::<u8>()) {
        (Ok(std::net::IpAddr::V4(_)), Ok(l)) => l <= 32,
        (Ok(std::net::IpAddr::V6(_)), Ok(l)) => l <= 128,
        _ => false,
    }
}

/// Erasure timing and scope.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ErasureConfig {
    /// Erasure starts at the latest this many days before the deadline
    /// (terminatedAt + deleteWithinDays), leaving room for retries and for people to
    /// react to an alert. Between termination and then, the customer can still ask for
    /// an export. Default: 3.
    pub safety_margin_days: i64,
    /// An object erasure deleted that is still there this long after (a finalizer
    /// nobody removes), and the tenant namespace still terminating this long, no longer
    /// holds the erasure: it is recorded as `DeletionStuck` in `notErased` and the
    /// receipt, for a person to delete. Far below the margin, so that erasure completes
    /// by the deadline. Default: 600.
    pub stuck_after_seconds: u64,
    /// What erasure looks at besides the tenant namespace (see [`ErasureScope`]).
    pub scope: ErasureScope,
}

impl ErasureConfig {
    /// Why the timing cannot be used: a stuck bound of zero (every deletion would be
    /// stuck at once), or one that does not fit in the margin (erasure would not
    /// complete by the deadline).
    fn check_timing(&self) -> Result<(), String> {
        let margin = u64::try_from(self.safety_margin_days.max(0)).unwrap_or(0) * 86_400;
        if self.stuck_after_seconds == 0 {
            return Err("erasure.stuckAfterSeconds must be at least 1".into());
        }
        if margin > 0 && self.stuck_after_seconds >= margin {
            return Err(format!(
                "erasure.stuckAfterSeconds ({}) must be shorter than the safety margin ({} days): erasure must complete by the deadline",
                self.stuck_after_seconds, self.safety_margin_days
            ));
        }
        Ok(())
    }

    /// [`Self::stuck_after_seconds`] as a duration.
    pub fn stuck_after(&self) -> k8s_openapi::jiff::SignedDuration {
        k8s_openapi::jiff::SignedDuration::from_secs(
            i64::try_from(self.stuck_after_seconds).unwrap_or(i64::MAX),
        )
    }
}

impl Default for ErasureConfig {
    fn default() -> Self {
        Self {
            safety_margin_days: 3,
            stuck_after_seconds: 600,
            scope: ErasureScope::default(),
        }
    }
}

/// Sender settings a Tenant does not set itself.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SenderDefaults {
    /// The sender container image.
    pub image: String,
    /// Sender pods per active tenant.
    pub replicas: i32,
    /// Requests and limits of each sender container.
    pub resources: ResourceRequirements,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the configuration {origin} is not valid")]
    Parse {
        origin: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("the configuration {origin} has an empty region catalog: no sender could ever run")]
    NoRegions { origin: String },
    #[error("the configuration {origin} has invalid retention periods: {reason}")]
    Retention { origin: String, reason: String },
    #[error("the configuration {origin} has an invalid dataPlane: {reason}")]
    DataPlane { origin: String, reason: String },
    #[error("the configuration {origin} has invalid providers: {reason}")]
    Providers { origin: String, reason: String },
    #[error("the configuration {origin} has an invalid erasure scope: {reason}")]
    ErasureScope { origin: String, reason: String },
}

impl OperatorConfig {
    /// Parses and checks a configuration document; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
            origin: origin.to_owned(),
            source,
        })?;
        if config.regions.0.is_empty() {
            return Err(ConfigError::NoRegions {
                origin: origin.to_owned(),
            });
        }
        if let Err(reason) = config.data_plane.check() {
            return Err(ConfigError::DataPlane {
                origin: origin.to_owned(),
                reason,
            });
        }
        if let Err(reason) = check_providers(&config.providers) {
            return Err(ConfigError::Providers {
                origin: origin.to_owned(),
                reason,
            });
        }
        if let Err(reason) = config.retention.check_platform() {
            return Err(ConfigError::Retention {
                origin: origin.to_owned(),
                reason,
            });
        }
        if let Err(reason) = config.erasure.check_timing() {
            return Err(ConfigError::ErasureScope {
                origin: origin.to_owned(),
                reason,
            });
        }
        if let Err(reason) = config.erasure.scope.check() {
            return Err(ConfigError::ErasureScope {
                origin: origin.to_owned(),
                reason,
            });
        }
        Ok(config)
    }

    /// The file at `path`, or the compiled-in default.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            None => Self::parse(DEFAULT_CONFIG, "built-in default"),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Self::parse(&text, &p.display().to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regions::TransferStatus;

    #[test]
    fn the_default_configuration_parses() {
        let c = OperatorConfig::load(None).unwrap();
        assert_eq!(c.regions.0["eu-central-1"].status, TransferStatus::Eea);
        assert_eq!(c.regions.0["eu-west-2"].status, TransferStatus::Adequacy);
        assert_eq!(
            c.regions.0["us-east-1"].status,
            TransferStatus::ThirdCountry
        );
    }

    #[test]
    fn unknown_keys_and_statuses_are_refused() {
        assert!(OperatorConfig::parse("regions: {}\nextra: 1\n", "t").is_err());
        assert!(
            OperatorConfig::parse("regions: {x: {country: DE, status: Maybe}}\n", "t").is_err()
        );
    }

    #[test]
    fn the_platform_retention_is_the_documented_default_and_checked() {
        let c = OperatorConfig::load(None).unwrap();
        assert_eq!(c.retention, Periods::default());
        let longer = DEFAULT_CONFIG.replace("backupsDays: 7", "backupsDays: 14");
        let e = OperatorConfig::parse(&longer, "t").unwrap_err();
        assert!(matches!(e, ConfigError::Retention { .. }), "{e}");
    }

    #[test]
    fn data_plane_stores_are_checked() {
        let c = OperatorConfig::load(None).unwrap();
        assert!(
            !c.data_plane.stores.is_empty(),
            "the default names the platform's store"
        );
        for (bad, why) in [
            ("stores: [{name: s, ports: [5432]}]", "either selectors"),
            (
                "stores: [{name: s, cidr: 10.0.0.0/8, podSelector: {}, ports: [1]}]",
                "either selectors",
            ),
            (
                "stores: [{name: s, cidr: 10.0.0.0/33, ports: [1]}]",
                "not a CIDR",
            ),
            ("stores: [{name: s, cidr: nope, ports: [1]}]", "not a CIDR"),
            (
                "stores: [{name: s, cidr: 10.0.0.0/8, ports: []}]",
                "TCP ports",
            ),
            ("image: \"\"", "empty"),
        ] {
            let (head, _) = DEFAULT_CONFIG.split_once("dataPlane:").unwrap();
            let text = format!("{head}dataPlane:\n  {bad}\n");
            let e = OperatorConfig::parse(&text, "t").unwrap_err();
            assert!(
                e.to_string().contains("dataPlane")
                    && matches!(&e, ConfigError::DataPlane { reason, .. } if reason.contains(why)),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn providers_are_named_and_checked() {
        let ok = format!(
            "{DEFAULT_CONFIG}\nproviders:\n  nordsignal: {{baseUrl: 'https://api.nordsignal.example/v2', authSecretRef: {{name: t, key: token}}}}\n  local: {{baseUrl: 'http://127.0.0.1:8080', authSecretRef: {{name: t, key: token}}}}\n"
        );
        let c = OperatorConfig::parse(&ok, "t").unwrap();
        assert_eq!(
            c.providers["nordsignal"].base_url,
            "https://api.nordsignal.example/v2"
        );
        for (bad, why) in [
            (
                "Bad_Name: {baseUrl: 'https://a.example', authSecretRef: {name: t, key: k}}",
                "DNS-1123",
            ),
            (
                "p: {baseUrl: 'http://a.example', authSecretRef: {name: t, key: k}}",
                "https",
            ),
            (
                "p: {baseUrl: 'https://u:pw@a.example', authSecretRef: {name: t, key: k}}",
                "credentials",
            ),
            (
                "p: {baseUrl: 'not a url', authSecretRef: {name: t, key: k}}",
                "not a URL",
            ),
            (
                "p: {baseUrl: 'https://a.example', authSecretRef: {name: t, key: ''}}",
                "name and a key",
            ),
        ] {
            let text = format!("{DEFAULT_CONFIG}\nproviders:\n  {bad}\n");
            let e = OperatorConfig::parse(&text, "t").unwrap_err();
            assert!(
                matches!(&e, ConfigError::Providers { reason, .. } if reason.contains(why)),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn an_empty_catalog_is_refused() {
        let (head, _) = DEFAULT_CONFIG.split_once("regions:").unwrap();
        let e = OperatorConfig::parse(&format!("{head}regions: {{}}\n"), "t").unwrap_err();
        assert!(matches!(e, ConfigError::NoRegions { .. }));
    }

    #[test]
    fn the_stuck_bound_must_fit_in_the_safety_margin() {
        let c = OperatorConfig::load(None).unwrap();
        assert_eq!(c.erasure.stuck_after_seconds, 600, "the default");
        for (erasure, ok) in [
            ("{stuckAfterSeconds: 30}", true),
            ("{stuckAfterSeconds: 0}", false),
            ("{safetyMarginDays: 1, stuckAfterSeconds: 86399}", true),
            ("{safetyMarginDays: 1, stuckAfterSeconds: 86400}", false),
            ("{safetyMarginDays: 0, stuckAfterSeconds: 86400}", true),
        ] {
            let text = format!("{DEFAULT_CONFIG}\nerasure: {erasure}\n");
            let parsed = OperatorConfig::parse(&text, "t");
            assert_eq!(parsed.is_ok(), ok, "{erasure}: {:?}", parsed.err());
        }
    }

    #[test]
    fn an_erasure_scope_is_read_and_checked() {
        let c = OperatorConfig::load(None).unwrap();
        assert_eq!(c.erasure.scope, ErasureScope::default());
        let scoped = format!(
            "{DEFAULT_CONFIG}\nerasure:\n  scope:\n    namespaceSelector: {{matchLabels: {{herald.dev/erasure-scope: 'true'}}}}\n"
        );
        let c = OperatorConfig::parse(&scoped, "t").unwrap();
        assert_eq!(
            c.erasure.safety_margin_days, 3,
            "the margin keeps its default"
        );
        assert_eq!(
            c.erasure.scope.label_selector().as_deref(),
            Some("herald.dev/erasure-scope=true")
        );
        let bad = format!(
            "{DEFAULT_CONFIG}\nerasure:\n  scope:\n    kinds: [{{version: v1, resource: namespaces}}]\n"
        );
        let e = OperatorConfig::parse(&bad, "t").unwrap_err();
        assert!(matches!(e, ConfigError::ErasureScope { .. }), "{e}");
    }
}
