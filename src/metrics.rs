//! The Prometheus registry served on `/metrics` and Herald's metric families.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of `herald_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The operator's crate version.
    pub version: String,
}

/// Every metric Herald exports, registered once in [`Metrics::new`].
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Always 1, labelled with the running version (the usual `_info` idiom).
    pub build_info: Family<BuildLabels, Gauge>,
}

impl Metrics {
    /// A registry with every Herald family registered under the `herald` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("herald");
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Herald's version; always 1",
            build_info.clone(),
        );
        build_info
            .get_or_create(&BuildLabels {
                version: crate::VERSION.to_owned(),
            })
            .set(1);
        Self {
            registry,
            build_info,
        }
    }

    /// The OpenMetrics text of every family.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_carries_the_version() {
        let text = Metrics::new().encode().unwrap_or_default();
        let line = format!("herald_build_info{{version=\"{}\"}} 1", crate::VERSION);
        assert!(text.contains(&line), "missing {line:?} in:\n{text}");
    }
}
