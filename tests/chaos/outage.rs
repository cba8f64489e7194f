//! kube-apiserver and etcd restarted under a running operator and a converged fleet:
//! after each, `CHANGES` Tenants' spec changes (senders.replicas) must be picked up
//! (observedGeneration == generation and Ready) within 30 s of the component being back.
//! The operator has finished its start-up pass (every tenant and binding reconciled,
//! its reconcile counter then still) before the first restart, so that what is measured
//! is the outage, not a start-up sweep the restart happens to cut.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use herald::api::v1alpha1::Tenant;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::common::{OwnOperator, repo_root};
use crate::{Row, ready_for_generation};

/// Tenants changed after each restart.
const CHANGES: usize = 10;
/// How soon after a restart a change must be acted on.
const PICKUP: Duration = Duration::from_secs(30);
/// How long a late change is still waited for, to report how late it was.
const GIVE_UP: Duration = Duration::from_secs(120);

/// The reconciles an operator counted for `controller` (its `/metrics`).
fn reconciles(metrics: &str, controller: &str) -> f64 {
    let label = format!("controller=\"{controller}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("herald_reconcile_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until `op` reconciled each tenant and binding of `fleet` at least once and then
/// nothing for 3 s: its start-up pass is over. How long that took, or None if not
/// within 5 minutes.
async fn settled(op: &OwnOperator, fleet: usize) -> Option<Duration> {
    let started = Instant::now();
    let (mut last, mut still) = (-1.0, 0);
    while started.elapsed() < Duration::from_secs(300) {
        let m = op.metrics().await;
        let (t, b) = (reconciles(&m, "tenant"), reconciles(&m, "channelbinding"));
        still = if t + b == last { still + 1 } else { 0 };
        last = t + b;
        if t >= fleet as f64 && b >= fleet as f64 && still >= 3 {
            return Some(started.elapsed());
        }
        // A process's counters: nothing to watch.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    None
}

/// Runs `cluster.sh restart <component>` (it returns once the component serves again).
async fn restart(component: &'static str) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(repo_root().join("e2e/cluster/cluster.sh"))
            .args(["restart", component])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

/// One restart and its changes: the worst pick-up latency, or what went wrong.
async fn one(client: &Client, component: &'static str, changed: &[String], replicas: i32) -> Row {
    let scenario = match component {
        "etcd" => "etcd restart: changes picked up within 30 s",
        _ => "kube-apiserver restart: changes picked up within 30 s",
    };
    if let Err(e) = restart(component).await {
        return Row {
            scenario,
            figure: format!("restart failed: {e}"),
            ok: false,
        };
    }
    let back = Instant::now();
    let tenants: Api<Tenant> = Api::all(client.clone());
    // The spec changes; a request refused while the API server settles is retried.
    let mut generation = BTreeMap::new();
    for name in changed {
        let patch = json!({"spec": {"senders": {"replicas": replicas}}});
        loop {
            match tenants
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(t) => {
                    generation.insert(name.clone(), t.metadata.generation);
                    break;
                }
                Err(e) if back.elapsed() < PICKUP => {
                    eprintln!("chaos: patch {name} after {component} restart: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Row {
                        scenario,
                        figure: format!("patch {name} refused for {PICKUP:?}: {e}"),
                        ok: false,
                    };
                }
            }
        }
    }
    let mut picked: BTreeMap<String, Duration> = BTreeMap::new();
    while picked.len() < changed.len() && back.elapsed() < GIVE_UP {
        for name in changed {
            if picked.contains_key(name) {
                continue;
            }
            if let Ok(t) = tenants.get(name).await
                && t.metadata.generation == generation[name]
                && ready_for_generation(&t)
            {
                picked.insert(t.name_any(), back.elapsed());
            }
        }
        // Per-object polling: the latency is measured to this step.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let worst = picked.values().max().copied().unwrap_or_default();
    let late = picked.values().filter(|d| **d > PICKUP).count();
    let missing = changed.len() - picked.len();
    Row {
        scenario,
        figure: format!(
            "{}/{} within 30 s, worst {worst:.1?}{}",
            picked.len() - late,
            changed.len(),
            if missing > 0 {
                format!(", {missing} not within {GIVE_UP:?}")
            } else {
                String::new()
            }
        ),
        ok: late == 0 && missing == 0,
    }
}

/// Restarts kube-apiserver, then etcd; `CHANGES` tenants of `fleet` changed after each.
pub async fn run(client: &Client, fleet: &[String], op: &OwnOperator) -> Vec<Row> {
    let pick = |round: usize| -> Vec<String> {
        (0..CHANGES.min(fleet.len()))
            .map(|i| fleet[(round * CHANGES + i) % fleet.len()].clone())
            .collect()
    };
    let settled = settled(op, fleet.len()).await;
    vec![
        Row {
            scenario: "restarts: the operator's start-up pass over before them",
            figure: settled.map_or("not within 5 min".to_owned(), |d| format!("after {d:.0?}")),
            ok: settled.is_some(),
        },
        one(client, "kube-apiserver", &pick(0), 2).await,
        one(client, "etcd", &pick(1), 3).await,
    ]
}
