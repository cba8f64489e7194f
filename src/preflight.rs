//! Start-up checks: the cluster must serve every Herald kind before the operator
//! starts watching, otherwise the watches would fail one by one with opaque 404s; and
//! Herald's admission policies must be installed and enforcing, otherwise what they
//! guard (evidence only Herald writes, the operator's own scope, the control namespace)
//! would hold on paper only.

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use kube::Client;
use kube::api::Api;

use crate::api;

/// Why the operator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "Herald's CRDs are not installed in this cluster (missing: {}); install them with `kubectl apply -f crds/` or the Helm chart, then restart",
        missing.join(", ")
    )]
    CrdsMissing { missing: Vec<String> },
    #[error(
        "Herald's admission policies are not in force ({}): they keep evidence unforgeable, erasure and the operator in scope, other tenants' objects out of reach, pauses unambiguous and an accepted termination date fixed. Install them (chart admissionPolicies.enabled=true, or kubectl apply -f deploy/admission/), or start with --allow-missing-admission-policies to run without them knowingly (a warning, herald_admission_policies_missing and an alert say so)",
        missing.join("; ")
    )]
    AdmissionPoliciesMissing { missing: Vec<String> },
    #[error("cannot read Herald's admission policy {name}")]
    AdmissionPolicyUnreadable {
        name: String,
        #[source]
        source: kube::Error,
    },
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

/// Herald's admission policies (deploy/admission/, the chart's copies): each a
/// ValidatingAdmissionPolicy and a binding of the same name.
pub const ADMISSION_POLICIES: &[&str] = &[
    "herald-breachnotice-protection",
    "herald-channelbinding-control-namespace",
    "herald-datasubjectrequest-namespace",
    "herald-evidence-protection",
    "herald-operator-scope",
    "herald-paused-annotation",
    "herald-tenant-deletion-protection",
    "herald-tenant-termination",
];

/// What is wrong with each policy of [`ADMISSION_POLICIES`] given what the API server
/// holds (`None`: absent): a policy without its binding, or a binding that does not
/// deny (only warns or audits), enforces nothing. Pure, table-tested.
pub fn admission_problems(
    found: &[(
        &str,
        Option<&ValidatingAdmissionPolicy>,
        Option<&ValidatingAdmissionPolicyBinding>,
    )],
) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, policy, binding) in found {
        match (policy, binding) {
            (None, _) => problems.push(format!("{name}: no ValidatingAdmissionPolicy")),
            (Some(_), None) => problems.push(format!("{name}: no binding (it enforces nothing)")),
            (Some(_), Some(b)) => {
                let spec = &b.spec;
                if spec.policy_name != *name {
                    problems.push(format!("{name}: its binding binds another policy"));
                } else if !spec.validation_actions.iter().any(|a| a == "Deny") {
                    problems.push(format!("{name}: its binding does not Deny"));
                }
            }
        }
    }
    problems
}

/// Reads Herald's admission policies (the operator's ClusterRole may `get` exactly
/// these names) and says what is not in force (a policy it may not read counts: it
/// cannot be shown in force); empty when all are. With `patient`, what is not in force
/// is looked at again for half a minute before it counts: at a fresh install the
/// operator's RBAC, or the policies, may reach the API server a moment after its pod.
pub async fn admission_policies(
    client: &Client,
    patient: bool,
) -> Result<Vec<String>, PreflightError> {
    let mut attempt = 0;
    loop {
        let read = read_admission_policies(client).await;
        let settled = matches!(&read, Ok(p) if p.is_empty());
        if settled || !patient || attempt >= 15 {
            return read;
        }
        attempt += 1;
        tracing::warn!(
            "Herald's admission policies are not all readable and in force yet; looking again"
        );
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

async fn read_admission_policies(client: &Client) -> Result<Vec<String>, PreflightError> {
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    let mut found = Vec::new();
    let mut forbidden = Vec::new();
    for name in ADMISSION_POLICIES {
        let unreadable = |source| PreflightError::AdmissionPolicyUnreadable {
            name: (*name).to_owned(),
            source,
        };
        let (policy, binding) = match (policies.get_opt(name).await, bindings.get_opt(name).await) {
            (Ok(p), Ok(b)) => (p, b),
            (Err(kube::Error::Api(s)), _) | (_, Err(kube::Error::Api(s))) if s.code == 403 => {
                forbidden.push(format!("{name}: the operator may not read it (RBAC)"));
                continue;
            }
            (Err(e), _) | (_, Err(e)) => return Err(unreadable(e)),
        };
        found.push((*name, policy, binding));
    }
    let refs: Vec<_> = found
        .iter()
        .map(|(n, p, b)| (*n, p.as_ref(), b.as_ref()))
        .collect();
    let mut problems = admission_problems(&refs);
    problems.extend(forbidden);
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_list_is_deploy_admission() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/admission");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for doc in text.split("\n---") {
                let v: serde_yaml::Value = serde_yaml::from_str(doc).unwrap();
                if v["kind"] == "ValidatingAdmissionPolicy" {
                    names.push(v["metadata"]["name"].as_str().unwrap().to_owned());
                }
            }
        }
        names.sort();
        assert_eq!(names, ADMISSION_POLICIES);
    }

    #[test]
    fn a_policy_is_in_force_only_with_a_denying_binding_of_its_own() {
        let policy = ValidatingAdmissionPolicy::default();
        let binding = |policy: &str, actions: &[&str]| -> ValidatingAdmissionPolicyBinding {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"policyName": policy, "validationActions": actions}
            }))
            .unwrap()
        };
        let deny = binding("p", &["Deny", "Audit"]);
        let warn = binding("p", &["Warn"]);
        let other = binding("q", &["Deny"]);
        assert!(admission_problems(&[("p", Some(&policy), Some(&deny))]).is_empty());
        for (found, why) in [
            (("p", None, Some(&deny)), "no ValidatingAdmissionPolicy"),
            (("p", Some(&policy), None), "no binding"),
            (("p", Some(&policy), Some(&warn)), "does not Deny"),
            (("p", Some(&policy), Some(&other)), "binds another policy"),
        ] {
            let problems = admission_problems(&[found]);
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].contains(why), "{problems:?}");
        }
    }

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
