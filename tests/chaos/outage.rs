//! kube-apiserver and etcd restarted under a running operator and a converged fleet:
//! after each, `CHANGES` Tenants' spec changes (senders.replicas) must be picked up
//! (observedGeneration == generation and Ready) within 30 s of the component being back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use herald::api::v1alpha1::Tenant;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::common::repo_root;
use crate::{Row, ready_for_generation};

/// Tenants changed after each restart.
const CHANGES: usize = 10;
/// How soon after a restart a change must be acted on.
const PICKUP: Duration = Duration::from_secs(30);
/// How long a late change is still waited for, to report how late it was.
const GIVE_UP: Duration = Duration::from_secs(120);

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
pub async fn run(client: &Client, fleet: &[String]) -> Vec<Row> {
    let pick = |round: usize| -> Vec<String> {
        (0..CHANGES.min(fleet.len()))
            .map(|i| fleet[(round * CHANGES + i) % fleet.len()].clone())
            .collect()
    };
    vec![
        one(client, "kube-apiserver", &pick(0), 2).await,
        one(client, "etcd", &pick(1), 3).await,
    ]
}
