//! The operator's configuration file (rendered by the Helm chart from its values):
//! the region catalog and the platform's defaults.

use std::path::Path;

use serde::Deserialize;

use k8s_openapi::api::core::v1::ResourceRequirements;

use crate::regions::RegionCatalog;
use crate::retention::Periods;

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
}

/// Erasure timing.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErasureConfig {
    /// Erasure starts at the latest this many days before the deadline
    /// (terminatedAt + deleteWithinDays), leaving room for retries and for people to
    /// react to an alert. Between termination and then, the customer can still ask for
    /// an export. Default: 3.
    pub safety_margin_days: i64,
}

impl Default for ErasureConfig {
    fn default() -> Self {
        Self {
            safety_margin_days: 3,
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
        if let Err(reason) = config.retention.check_platform() {
            return Err(ConfigError::Retention {
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
    fn an_empty_catalog_is_refused() {
        let (head, _) = DEFAULT_CONFIG.split_once("regions:").unwrap();
        let e = OperatorConfig::parse(&format!("{head}regions: {{}}\n"), "t").unwrap_err();
        assert!(matches!(e, ConfigError::NoRegions { .. }));
    }
}
