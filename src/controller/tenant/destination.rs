//! The data-plane Jobs that send a tenant's data out of the cluster (the export of
//! ReturnThenDelete, a data-subject request's portability or access answer): their
//! destination is resolved and checked by the outbound guard the operator's own client
//! uses ([`crate::outbound::approve_destination`]) before the Job exists, and the Job's
//! pods get an egress NetworkPolicy of their own that allows exactly the approved
//! addresses on the URL's port (443 for https), plus the platform's stores, instead of
//! the data-plane policy's "any global address on 443". So a destination that resolves
//! to 10.x, cloud metadata or loopback gets no Job, and a Job's pod that resolves the
//! name again differently (DNS rebinding) reaches nothing else.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::data_plane;
use crate::config::StoreEndpoint;
use crate::controller::{Context, Error, FIELD_MANAGER};
use crate::outbound::{Approved, Refused};

/// Label on the pods of a Job with a destination: the Job's name, which its own egress
/// policy selects. Such pods do not carry [`data_plane::DATA_PLANE_LABEL`], whose policy
/// would add "any global address on 443" (NetworkPolicies add up).
pub const DESTINATION_LABEL: &str = "herald.dev/destination-of";

/// The labels of the pods of Job `job`, which sends to an approved destination.
pub fn pod_labels(
    base: &BTreeMap<String, String>,
    component: &str,
    job: &str,
) -> BTreeMap<String, String> {
    let mut labels = base.clone();
    labels.insert("app.kubernetes.io/component".into(), component.into());
    labels.insert(DESTINATION_LABEL.into(), job.into());
    labels
}

/// The name of Job `job`'s egress policy.
pub fn policy_name(job: &str) -> String {
    format!("{job}-egress")
}

/// The egress rules of a Job sending to `approved`: each address alone (/32, /128) on
/// the approved port, then each of the platform's stores as the data-plane policy has it.
pub fn egress_rules(approved: &Approved, stores: &[StoreEndpoint]) -> Vec<Value> {
    let peers: Vec<Value> = approved
        .addrs
        .iter()
        .map(|ip| {
            let cidr = match ip {
                IpAddr::V4(a) => format!("{a}/32"),
                IpAddr::V6(a) => format!("{a}/128"),
            };
            json!({"ipBlock": {"cidr": cidr}})
        })
        .collect();
    let mut rules = vec![json!({
        "to": peers,
        "ports": [{"protocol": "TCP", "port": approved.port}]
    })];
    // The data-plane rules without their first (providers: any global address on 443).
    rules.extend(data_plane::egress_rules(stores).into_iter().skip(1));
    rules
}

/// Job `job`'s egress policy in `namespace`, owned by the Job (it goes with it).
pub fn policy(
    namespace: &str,
    job: &Job,
    approved: &Approved,
    stores: &[StoreEndpoint],
) -> Result<NetworkPolicy, Error> {
    let name = job.name_any();
    let owner = job.controller_owner_ref(&()).ok_or(Error::MissingName)?;
    let labels = job.metadata.labels.clone().unwrap_or_default();
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {
            "name": policy_name(&name), "namespace": namespace,
            "labels": {
                crate::controller::TENANT_LABEL: labels.get(crate::controller::TENANT_LABEL),
                "app.kubernetes.io/managed-by": "herald",
            },
            "ownerReferences": [owner],
        },
        "spec": {
            "podSelector": {"matchLabels": {DESTINATION_LABEL: name}},
            "policyTypes": ["Egress"],
            "egress": egress_rules(approved, stores),
        }
    }))
    .map_err(|source| Error::Build {
        what: "destination egress policy",
        source,
    })
}

/// Applies Job `job`'s egress policy (after the Job: until it exists the pods have only
/// the namespace's default deny and DNS, so nothing leaves early).
pub async fn apply_policy(
    ctx: &Context,
    controller: &'static str,
    namespace: &str,
    job: &Job,
    approved: &Approved,
) -> Result<(), Error> {
    let np = policy(namespace, job, approved, &ctx.config.data_plane.stores)?;
    let name = np.name_any();
    Api::<NetworkPolicy>::namespaced(ctx.client.clone(), namespace)
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&np),
        )
        .await
        .map_err(Error::kube(format!("apply NetworkPolicy {name}")))?;
    ctx.metrics.wrote(controller, "NetworkPolicy");
    Ok(())
}

/// What a refused destination says in a condition or event: the guard's class, never
/// the URL (an export URL is often pre-signed: its query is a credential) or the host.
pub fn refusal_message(what: &str, refused: Refused) -> String {
    format!(
        "{what} was not approved by the outbound guard ({refused}): no Job is created; fix spec.contract.onTermination.export.url (it must resolve to global unicast addresses)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approved(addrs: &[&str], port: u16) -> Approved {
        Approved {
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            port,
        }
    }

    #[test]
    fn the_job_reaches_only_the_approved_addresses_on_the_approved_port_and_the_stores() {
        let c = crate::config::OperatorConfig::load(None).unwrap();
        let rules = egress_rules(
            &approved(&["203.0.113.9", "2a00:1450::1"], 443),
            &c.data_plane.stores,
        );
        assert_eq!(
            rules[0],
            json!({"to": [{"ipBlock": {"cidr": "203.0.113.9/32"}}, {"ipBlock": {"cidr": "2a00:1450::1/128"}}],
                   "ports": [{"protocol": "TCP", "port": 443}]})
        );
        // No "0.0.0.0/0" anywhere: only the stores follow.
        assert_eq!(rules.len(), 1 + c.data_plane.stores.len());
        assert!(!serde_json::to_string(&rules).unwrap().contains("0.0.0.0/0"));
        assert_eq!(
            rules[1..],
            data_plane::egress_rules(&c.data_plane.stores)[1..]
        );
    }

    #[test]
    fn the_policy_selects_the_jobs_pods_and_goes_with_the_job() {
        let job: Job = serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "herald-export", "namespace": "tenant-acme", "uid": "u-1",
                         "labels": {"herald.dev/tenant": "acme"}}
        }))
        .unwrap();
        let np = policy("tenant-acme", &job, &approved(&["127.0.0.1"], 9000), &[]).unwrap();
        assert_eq!(np.metadata.name.as_deref(), Some("herald-export-egress"));
        let owner = &np.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Job", "u-1"));
        let spec = np.spec.unwrap();
        assert_eq!(
            spec.pod_selector.unwrap().match_labels.unwrap()[DESTINATION_LABEL],
            "herald-export"
        );
        assert_eq!(spec.policy_types, Some(vec!["Egress".into()]));
        let labels = pod_labels(&BTreeMap::new(), "erasure", "herald-export");
        assert_eq!(labels[DESTINATION_LABEL], "herald-export");
        assert!(!labels.contains_key(data_plane::DATA_PLANE_LABEL));
    }

    #[test]
    fn a_refusal_never_names_the_url() {
        let m = refusal_message(
            "the export destination",
            Refused {
                class: "link-local (cloud metadata)",
            },
        );
        assert!(m.contains("link-local (cloud metadata)"), "{m}");
        assert!(m.contains("no Job is created"), "{m}");
    }
}
