//! Start-up checks: the cluster must serve every Herald kind before the operator
//! starts watching, otherwise the watches would fail one by one with opaque 404s.

use kube::Client;

use crate::api;

/// Why the operator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "Herald's CRDs are not installed in this cluster (missing: {}); install them with `kubectl apply -f crds/` or the Helm chart, then restart",
        missing.join(", ")
    )]
    CrdsMissing { missing: Vec<String> },
    #[error("cannot ask the API server which {group_version} resources it serves")]
    Discovery {
        group_version: String,
        #[source]
        source: kube::Error,
    },
}

/// The CRDs (full names) that `served` lacks, given the resource plurals the API server
/// serves for each `group/version`. Pure, so the decision is unit-tested.
pub fn missing_crds(
    expected: &[(String, String, String)],
    served: &dyn Fn(&str) -> Option<Vec<String>>,
) -> Vec<String> {
    expected
        .iter()
        .filter(|(group_version, plural, _)| {
            !served(group_version).is_some_and(|plurals| plurals.iter().any(|p| p == plural))
        })
        .map(|(_, _, name)| name.clone())
        .collect()
}

/// Checks through discovery (which any authenticated identity may read, so the
/// operator needs no permission on CRDs themselves) that every kind is served.
pub async fn check_crds(client: &Client) -> Result<(), PreflightError> {
    // (group/version, plural, CRD name) for every served version of every CRD.
    let expected: Vec<(String, String, String)> = api::crds()
        .iter()
        .flat_map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            crd.spec.versions.iter().filter(|v| v.served).map(move |v| {
                (
                    format!("{}/{}", crd.spec.group, v.name),
                    crd.spec.names.plural.clone(),
                    name.clone(),
                )
            })
        })
        .collect();

    let mut served = std::collections::HashMap::new();
    for (group_version, _, _) in &expected {
        if served.contains_key(group_version) {
            continue;
        }
        let plurals = match client.list_api_group_resources(group_version).await {
            Ok(list) => Some(list.resources.into_iter().map(|r| r.name).collect()),
            // 404: the group/version is not served at all.
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(source) => {
                return Err(PreflightError::Discovery {
                    group_version: group_version.clone(),
                    source,
                });
            }
        };
        served.insert(group_version.clone(), plurals);
    }
    let missing = missing_crds(&expected, &|gv| served.get(gv).cloned().flatten());
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PreflightError::CrdsMissing { missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Vec<(String, String, String)> {
        vec![
            (
                "herald.dev/v1alpha1".into(),
                "tenants".into(),
                "tenants.herald.dev".into(),
            ),
            (
                "herald.dev/v1alpha1".into(),
                "subprocessors".into(),
                "subprocessors.herald.dev".into(),
            ),
        ]
    }

    #[test]
    fn nothing_missing_when_all_plurals_are_served() {
        let served = |_: &str| Some(vec!["tenants".to_owned(), "subprocessors".to_owned()]);
        assert!(missing_crds(&expected(), &served).is_empty());
    }

    #[test]
    fn an_unserved_group_misses_every_crd() {
        let served = |_: &str| None;
        assert_eq!(
            missing_crds(&expected(), &served),
            vec!["tenants.herald.dev", "subprocessors.herald.dev"]
        );
    }

    #[test]
    fn a_partly_installed_api_names_what_is_missing() {
        let served = |_: &str| Some(vec!["tenants".to_owned(), "tenants/status".to_owned()]);
        assert_eq!(
            missing_crds(&expected(), &served),
            vec!["subprocessors.herald.dev"]
        );
    }

    #[test]
    fn the_error_says_how_to_fix_it() {
        let e = PreflightError::CrdsMissing {
            missing: vec!["tenants.herald.dev".into()],
        };
        let text = e.to_string();
        assert!(text.contains("tenants.herald.dev") && text.contains("kubectl apply -f crds/"));
    }
}
