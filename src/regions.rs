//! The region catalog (region → country → EEA, adequacy or third country) and the pure
//! decision of which of a tenant's requested regions its senders may run in.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A region's standing under the GDPR's transfer rules.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum TransferStatus {
    /// Inside the European Economic Area: always allowed.
    #[serde(rename = "EEA")]
    Eea,
    /// A country with an adequacy decision: allowed only where the tenant opts in.
    Adequacy,
    /// Anywhere else: never allowed for senders.
    ThirdCountry,
}

/// One catalog entry.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Region {
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// Standing under the GDPR.
    pub status: TransferStatus,
}

/// Region name → entry, as configured by the platform operator.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RegionCatalog(pub BTreeMap<String, Region>);

/// Why a requested region is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The region is not in the catalog at all.
    Unknown(String),
    /// The region is outside the EEA without adequacy.
    ThirdCountry { region: String, country: String },
    /// The region has adequacy, but the tenant did not opt in.
    AdequacyNotAllowed { region: String, country: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unknown(r) => write!(f, "region {r} is not in the region catalog"),
            Refusal::ThirdCountry { region, country } => write!(
                f,
                "region {region} ({country}) is outside the EEA and has no adequacy decision"
            ),
            Refusal::AdequacyNotAllowed { region, country } => write!(
                f,
                "region {region} ({country}) relies on an adequacy decision; set residency.allowAdequacy to use it"
            ),
        }
    }
}

impl RegionCatalog {
    /// Checks every requested region. Senders may run only when nothing is refused:
    /// a partly allowed list is refused whole, because the customer asked for a
    /// placement we cannot honour and must be told, not silently narrowed.
    pub fn check(&self, requested: &[String], allow_adequacy: bool) -> Result<(), Vec<Refusal>> {
        let refusals: Vec<Refusal> = requested
            .iter()
            .filter_map(|name| match self.0.get(name) {
                None => Some(Refusal::Unknown(name.clone())),
                Some(r) => match r.status {
                    TransferStatus::Eea => None,
                    TransferStatus::Adequacy if allow_adequacy => None,
                    TransferStatus::Adequacy => Some(Refusal::AdequacyNotAllowed {
                        region: name.clone(),
                        country: r.country.clone(),
                    }),
                    TransferStatus::ThirdCountry => Some(Refusal::ThirdCountry {
                        region: name.clone(),
                        country: r.country.clone(),
                    }),
                },
            })
            .collect();
        if refusals.is_empty() {
            Ok(())
        } else {
            Err(refusals)
        }
    }

    /// Whether a pod may stay on a node of `region` for a tenant that allows
    /// `allowed` (drift detection: the node's label is the truth, not the affinity).
    pub fn node_region_allowed(
        &self,
        region: Option<&str>,
        allowed: &[String],
        allow_adequacy: bool,
    ) -> bool {
        match region {
            Some(region) => {
                allowed.iter().any(|a| a == region)
                    && self.check(&[region.to_owned()], allow_adequacy).is_ok()
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> RegionCatalog {
        serde_yaml::from_str(
            r#"
eu-central-1: {country: DE, status: EEA}
eu-west-2: {country: GB, status: Adequacy}
us-east-1: {country: US, status: ThirdCountry}
"#,
        )
        .unwrap()
    }

    fn regions(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn eea_regions_are_allowed() {
        assert_eq!(catalog().check(&regions(&["eu-central-1"]), false), Ok(()));
    }

    #[test]
    fn adequacy_needs_the_opt_in() {
        let c = catalog();
        assert_eq!(c.check(&regions(&["eu-west-2"]), true), Ok(()));
        assert_eq!(
            c.check(&regions(&["eu-west-2"]), false),
            Err(vec![Refusal::AdequacyNotAllowed {
                region: "eu-west-2".into(),
                country: "GB".into()
            }])
        );
    }

    #[test]
    fn third_countries_and_unknown_regions_are_refused_even_with_opt_in() {
        let refused = catalog().check(&regions(&["eu-central-1", "us-east-1", "mars-1"]), true);
        assert_eq!(
            refused,
            Err(vec![
                Refusal::ThirdCountry {
                    region: "us-east-1".into(),
                    country: "US".into()
                },
                Refusal::Unknown("mars-1".into()),
            ])
        );
    }

    #[test]
    fn a_node_outside_the_tenants_regions_is_not_allowed() {
        let c = catalog();
        let allowed = regions(&["eu-central-1"]);
        assert!(c.node_region_allowed(Some("eu-central-1"), &allowed, false));
        assert!(!c.node_region_allowed(Some("us-east-1"), &allowed, false));
        assert!(!c.node_region_allowed(None, &allowed, false));
    }

    #[test]
    fn refusals_read_as_sentences() {
        let r = Refusal::AdequacyNotAllowed {
            region: "eu-west-2".into(),
            country: "GB".into(),
        };
        assert!(r.to_string().contains("set residency.allowAdequacy"));
    }
}
