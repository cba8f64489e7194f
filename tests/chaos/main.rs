//! `make chaos`: the operator SIGKILLed at random, the control plane restarted and
//! leaders killed, on a local cluster of its own (issue 14 item 7). A binary of its own,
//! built only with the `e2e` feature; once built, a missing cluster fails it.
//!
//! One run, four scenarios in turn on one fleet, each checked from the API and the
//! audit log (`HERALD_AUDIT_LOG`; the operators authenticate as the chart's
//! ServiceAccount and their User-Agent names each process):
//! 1. **Kills while the fleet converges**: `CHAOS_TENANTS` tenants (default 150), each
//!    with one Secret-sourced SMS binding, created at once while an operator (all
//!    controllers) is SIGKILLed `CHAOS_KILLS` times (default 40) at random moments
//!    0.5–4 s apart and started again. Checked: every tenant Ready for its current
//!    generation and every binding on version 1 (a kill never mints a second version);
//!    one sender Deployment per tenant; no ReplicaSet created from a pod template
//!    without the credential that was current when it was created.
//! 2. **Erasure under kills** ([`erasure`]): `CHAOS_ERASURES` of them (default 40)
//!    terminated 29 days ago (due at once) while the operator is SIGKILLed up to
//!    `CHAOS_KILLS` times. Checked: all erased; exactly one receipt each; nothing
//!    labelled `herald.dev/tenant=<name>` left; every erase Job purges the channel's
//!    target as well as the platform's; the receipt's confirmed purges are those of the
//!    Job that ran; the untouched tenants not rolled (no new ReplicaSet).
//! 3. **kube-apiserver restart, then etcd restart** ([`outage`]) under a running
//!    operator: 10 Tenants' spec changed after each, every change picked up (observed
//!    generation, Ready) within 30 s of the component being back.
//! 4. **Two replicas, leader kills** ([`leader`]): two operators with leader election,
//!    the leader SIGKILLed `CHAOS_LEADER_KILLS` times (default 5; a new replica each
//!    time). Checked: failover per kill; from the audit log no overlapping writers
//!    (the old leader's last write before the new one's first and before its lease could
//!    expire); no standby that exits by itself; tenants not rolled; still version 1.
//!
//! And no panic in any operator's log. It prints one table (scenario, figure, result)
//! and fails on any failed row. `cluster.sh restart` needs the cluster's
//! `HERALD_CLUSTER_DIR` and `HERALD_PORT_BASE` (the Makefile passes them).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step must fail the run loudly

#[allow(dead_code)] // shared with the e2e suite, which reads more of an entry
#[path = "../e2e/audit.rs"]
mod audit;
#[path = "../e2e/common.rs"]
mod common;
mod erasure;
#[path = "../e2e/identity.rs"]
mod identity;
mod leader;
mod outage;
#[path = "../e2e/provider_router.rs"]
mod provider_router;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use herald::api::v1alpha1::{ChannelBinding, Subprocessor, Tenant};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use common::{
    CONTROL_NAMESPACE, OwnOperator, SHARD_LABEL, apply_manifests, client, ensure_namespace,
    install_crds, own_operator_running, repo_root, unique,
};

/// The controllers every operator of the run runs.
const CONTROLLERS: &str = "tenant,channelbinding,subprocessor";

/// The pod-template annotation naming the credential versions a template mounts.
const VERSIONS: &str = "herald.dev/credential-versions";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One row of the result table.
struct Row {
    scenario: &'static str,
    figure: String,
    ok: bool,
}

/// A small deterministic generator (xorshift), seeded from the clock and printed, so
/// that a failing run's kill times can be told apart from another's.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.next() % (to - from))
    }
}

async fn setup(client: &Client, shard: &str, tenants: usize) -> Vec<String> {
    install_crds(client).await;
    ensure_namespace(client, CONTROL_NAMESPACE).await;
    apply_manifests(&repo_root().join("examples/20-retention-policies.yaml"));
    let carrier = format!("{shard}-carrier");
    let sp: Subprocessor = serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "Subprocessor",
        "metadata": {"name": carrier},
        "spec": {"legalName": "Chaos Carrier AB", "category": "CommunicationChannel",
                 "purpose": "SMS termination in the EEA", "locations": ["SE"], "safeguard": "EEA",
                 "dpa": {"reference": "SUB-CHAOS", "signedAt": "2026-01-01T00:00:00Z"},
                 "channels": ["sms"], "noticePeriodDays": 30}
    }))
    .unwrap();
    Api::<Subprocessor>::all(client.clone())
        .create(&PostParams::default(), &sp)
        .await
        .unwrap();
    let names: Vec<String> = (0..tenants).map(|i| format!("{shard}-{i}")).collect();
    for name in &names {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-sms"), "labels": {"herald.dev/tenant": name}},
            "stringData": {"apiKey": "not-a-real-key"},
        }))
        .unwrap();
        Api::<Secret>::namespaced(client.clone(), CONTROL_NAMESPACE)
            .patch(
                &format!("{name}-sms"),
                &PatchParams::apply("herald-chaos").force(),
                &Patch::Apply(&secret),
            )
            .await
            .unwrap();
    }
    names
}

async fn create_fleet(client: &Client, shard: &str, names: &[String]) {
    let carrier = format!("{shard}-carrier");
    for name in names {
        let t: Tenant = serde_json::from_value(json!({
            "apiVersion": "herald.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": name, "labels": {SHARD_LABEL: shard}},
            "spec": {
                "displayName": name,
                "contract": {"state": "Active", "dpa": {"reference": "DPA-CHAOS", "signedAt": "2026-01-01T00:00:00Z"}},
                "residency": {"regions": ["eu-central-1"]},
                "senders": {"replicas": 1},
                "retentionPolicyRef": {"name": "standard-eu"},
                "deletionProtection": false,
            }
        }))
        .unwrap();
        Api::<Tenant>::all(client.clone())
            .create(&PostParams::default(), &t)
            .await
            .unwrap();
        let b: ChannelBinding = serde_json::from_value(json!({
            "apiVersion": "herald.dev/v1alpha1", "kind": "ChannelBinding",
            "metadata": {"name": format!("{name}-sms"), "namespace": CONTROL_NAMESPACE},
            "spec": {"tenantRef": {"name": name}, "channel": "sms", "subprocessorRef": {"name": carrier},
                     "credential": {"secretRef": {"name": format!("{name}-sms")}},
                     "rotation": {"intervalDays": 30, "overlapMinutes": 0}}
        }))
        .unwrap();
        Api::<ChannelBinding>::namespaced(client.clone(), CONTROL_NAMESPACE)
            .create(&PostParams::default(), &b)
            .await
            .unwrap();
    }
}

fn ready_for_generation(t: &Tenant) -> bool {
    t.status.as_ref().is_some_and(|s| {
        s.observed_generation == t.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn binding_on_version_1(b: &ChannelBinding) -> bool {
    b.status.as_ref().is_some_and(|s| {
        s.credential_version == Some(1)
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Kills and restarts `op` `kills` times at random moments; returns every log read.
async fn kill_repeatedly(
    op: &mut OwnOperator,
    shard: &str,
    kills: usize,
    rng: &mut Rng,
    logs: &mut String,
) {
    for _ in 0..kills {
        tokio::time::sleep(rng.millis(500, 4000)).await;
        restart_operator(op, shard, logs).await;
    }
}

/// The tenants with a ReplicaSet in `after` that `before` did not have, and how many.
fn rolled(
    before: &BTreeMap<String, BTreeSet<String>>,
    after: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    after
        .iter()
        .filter_map(|(name, sets)| {
            let new = before
                .get(name)
                .map_or(sets.len(), |b| sets.difference(b).count());
            (new > 0).then(|| format!("{name}: {new}"))
        })
        .collect()
}

/// SIGKILLs `op` and starts another in its place; keeps the killed one's log.
async fn restart_operator(op: &mut OwnOperator, shard: &str, logs: &mut String) {
    op.child.kill().unwrap(); // SIGKILL
    op.child.wait().unwrap();
    logs.push_str(&shard_log(shard));
    *op = own_operator_running(shard, CONTROLLERS);
}

/// The UIDs of each tenant's ReplicaSets: a new one is a rollout.
async fn replica_sets(client: &Client, names: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    let mut sets = BTreeMap::new();
    for name in names {
        let uids = Api::<ReplicaSet>::namespaced(client.clone(), &format!("tenant-{name}"))
            .list(&ListParams::default())
            .await
            .map(|l| l.items.iter().filter_map(|rs| rs.uid()).collect())
            .unwrap_or_default();
        sets.insert(name.clone(), uids);
    }
    sets
}

fn shard_log(shard: &str) -> String {
    std::fs::read_to_string(repo_root().join(format!("target/e2e-shard-{shard}.log")))
        .unwrap_or_default()
}

/// Whether the template of a ReplicaSet created in second `created` was written after
/// the binding's status said its credential (rotated in second `in_place`) was current:
/// the last Deployment write received before the ReplicaSet's creation against the
/// completion of the first status write of the rotation. Without audit entries for
/// either, the template counts as written after (the check stays strict).
fn written_after_current(
    writes: &[audit::Entry],
    namespace: &str,
    binding: &str,
    created: k8s_openapi::jiff::Timestamp,
    in_place: k8s_openapi::jiff::Timestamp,
) -> bool {
    let second = k8s_openapi::jiff::SignedDuration::from_secs(1);
    let template_written = writes
        .iter()
        .filter(|e| {
            let o = e.object();
            o.resource == "deployments"
                && o.namespace == namespace
                && o.subresource.is_empty()
                && e.received() < created + second
        })
        .map(audit::Entry::received)
        .max();
    let current_since = writes
        .iter()
        .filter(|e| {
            let o = e.object();
            o.resource == "channelbindings"
                && o.name == binding
                && o.subresource == "status"
                && e.received() >= in_place
        })
        .map(audit::Entry::completed)
        .min();
    match (template_written, current_since) {
        (Some(w), Some(c)) => w > c,
        _ => true,
    }
}

#[tokio::test]
async fn the_fleet_converges_erases_and_fails_over_through_kills_and_restarts() {
    let tenants = env_number("CHAOS_TENANTS", 150);
    let kills = env_number("CHAOS_KILLS", 40);
    let erasures = env_number("CHAOS_ERASURES", 40);
    let leader_kills = env_number("CHAOS_LEADER_KILLS", 5);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let client = client().await;
    let shard = unique("chaos");
    println!(
        "chaos: {tenants} tenants, {kills} kills, {erasures} erasures, {leader_kills} leader kills, seed {seed}, shard {shard}"
    );
    let names = setup(&client, &shard, tenants).await;
    let audit_mark = audit::mark();

    let started = Instant::now();
    let mut op = own_operator_running(&shard, CONTROLLERS);
    let mut logs = String::new();
    // The fleet is created while the kills go on: every step of convergence can be cut.
    let (_, ()) = tokio::join!(
        create_fleet(&client, &shard, &names),
        kill_repeatedly(&mut op, &shard, kills, &mut rng, &mut logs)
    );
    let kills_done = started.elapsed();

    // Converged: every tenant Ready for its generation and every binding on version 1.
    let tenants_api: Api<Tenant> = Api::all(client.clone());
    let bindings_api: Api<ChannelBinding> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    let selector = ListParams::default().labels(&format!("{SHARD_LABEL}={shard}"));
    let deadline = Instant::now() + Duration::from_secs(60 + 2 * tenants as u64);
    let (ready, on_v1) = loop {
        let ts = tenants_api.list(&selector).await.unwrap().items;
        let bs: Vec<ChannelBinding> = bindings_api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|b| b.name_any().starts_with(&format!("{shard}-")))
            .collect();
        let ready = ts.iter().filter(|t| ready_for_generation(t)).count();
        let on_v1 = bs.iter().filter(|b| binding_on_version_1(b)).count();
        if (ready == tenants && on_v1 == tenants) || Instant::now() > deadline {
            break (ready, on_v1);
        }
        // Polling a fleet-wide count: no single object to watch.
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let converged = started.elapsed();
    logs.push_str(&shard_log(&shard));

    // What the API keeps of the way there: Deployments and ReplicaSets per tenant.
    let mut deployments_wrong = Vec::new();
    let mut missing_credential = Vec::new();
    let mut replica_sets = 0usize;
    // The operator's successful writes, for when each template and each credential
    // became what the API server holds (object timestamps have only seconds, and a
    // ReplicaSet is created some time after the Deployment write it comes from).
    let writes: Vec<audit::Entry> = audit::since(audit_mark)
        .into_iter()
        .filter(|e| {
            e.user.username == audit::OPERATOR_USER
                && e.is_mutating()
                && (200..300).contains(&e.code())
        })
        .collect();
    let bindings: BTreeMap<String, ChannelBinding> = bindings_api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|b| (b.spec.tenant_ref.name.clone(), b))
        .collect();
    for name in &names {
        let ns = format!("tenant-{name}");
        let deployments = Api::<Deployment>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        if deployments.len() != 1 {
            deployments_wrong.push(format!("{name}: {}", deployments.len()));
        }
        // When the first credential was in place: a template made after that must
        // mount it (there is only version 1, so "current" never changes afterwards).
        let in_place = bindings
            .get(name)
            .and_then(|b| b.status.as_ref())
            .and_then(|s| s.last_rotation.as_ref())
            .map(|t| t.0);
        let sets = Api::<ReplicaSet>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        replica_sets += sets.len();
        for rs in &sets {
            let created = rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let mounts = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(VERSIONS))
                .is_some_and(|v| v.contains("sms="));
            let binding = bindings.get(name).map(|b| b.name_any()).unwrap_or_default();
            if let (Some(created), Some(in_place)) = (created, in_place)
                && created > in_place
                && !mounts
                && written_after_current(&writes, &ns, &binding, created, in_place)
            {
                missing_credential.push(format!("{name}/{}", rs.name_any()));
                // The evidence, for the report: when, and what the template said.
                let template = rs.spec.as_ref().and_then(|s| s.template.as_ref());
                let annotations = template
                    .and_then(|t| t.metadata.as_ref())
                    .and_then(|m| m.annotations.as_ref());
                let volumes: Vec<String> = template
                    .and_then(|t| t.spec.as_ref())
                    .and_then(|p| p.volumes.as_ref())
                    .map(|v| v.iter().map(|v| v.name.clone()).collect())
                    .unwrap_or_default();
                println!(
                    "chaos: {name}/{} created {created}, credential current since {in_place}, \
                     revision {:?}, {VERSIONS} {:?}, volumes {volumes:?}",
                    rs.name_any(),
                    rs.annotations().get("deployment.kubernetes.io/revision"),
                    annotations.and_then(|a| a.get(VERSIONS)),
                );
            }
        }
    }
    let mut rows = vec![
        Row {
            scenario: "kills while the fleet converges",
            figure: format!("{kills} SIGKILLs in {:.0?}", kills_done),
            ok: true,
        },
        Row {
            scenario: "tenants Ready for their generation",
            figure: format!("{ready}/{tenants}, after {:.0?}", converged),
            ok: ready == tenants,
        },
        Row {
            scenario: "bindings Ready on version 1 (no extra version)",
            figure: format!("{on_v1}/{tenants}"),
            ok: on_v1 == tenants,
        },
        Row {
            scenario: "one sender Deployment per tenant",
            figure: format!("{} wrong {:?}", deployments_wrong.len(), deployments_wrong),
            ok: deployments_wrong.is_empty(),
        },
        Row {
            scenario: "ReplicaSets without the current credential",
            figure: format!(
                "{} of {replica_sets} {:?}",
                missing_credential.len(),
                missing_credential
            ),
            ok: missing_credential.is_empty(),
        },
        Row {
            scenario: "ReplicaSets per tenant (rollouts)",
            figure: format!("{:.2}", replica_sets as f64 / tenants.max(1) as f64),
            ok: true,
        },
    ];
    println!("chaos: converged after {converged:.0?}; erasure under kills");

    let (erasure_rows, fleet) = erasure::run(
        &client, &shard, &names, erasures, kills, &mut rng, &mut op, &mut logs,
    )
    .await;
    rows.extend(erasure_rows);

    println!("chaos: kube-apiserver and etcd restarts");
    restart_operator(&mut op, &shard, &mut logs).await;
    op.ready().await;
    rows.extend(outage::run(&client, &fleet, &op).await);
    op.child.kill().unwrap();
    op.child.wait().unwrap();
    logs.push_str(&shard_log(&shard));

    println!("chaos: two replicas, leader kills");
    rows.extend(leader::run(&client, &shard, &fleet, leader_kills, &mut rng, &mut logs).await);

    let panics = logs.matches("panicked").count();
    rows.push(Row {
        scenario: "panics in the operators' logs",
        figure: panics.to_string(),
        ok: panics == 0,
    });
    println!("\n| scenario | figure | result |\n|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} |",
            r.scenario,
            r.figure,
            if r.ok { "ok" } else { "FAILED" }
        );
    }
    drop(op);
    let failed: Vec<&str> = rows.iter().filter(|r| !r.ok).map(|r| r.scenario).collect();
    assert!(failed.is_empty(), "chaos: failed rows: {failed:?}");
}
