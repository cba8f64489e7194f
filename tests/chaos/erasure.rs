//! Erasure under kills: part of a converged fleet terminated (29 days ago, so erasure
//! is due at once under the `standard-eu` policy's 30 days) while the operator is
//! SIGKILLed at random; then, from the API, the receipts and the erase Jobs that ran
//! (a watch records every `herald-erase` Job while they exist: erasure deletes them).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use herald::api::v1alpha1::Tenant;
use herald::api::v1alpha1::conditions as types;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::common::{CONTROL_NAMESPACE, OwnOperator, SHARD_LABEL, kubectl};
use crate::{Rng, Row, replica_sets, restart_operator, rolled};

/// The receipts' label naming the tenant they are for.
const RECEIPT_FOR: &str = "herald.dev/receipt-for";
/// The label erasure looks for: nothing so labelled may survive for an erased tenant.
const TENANT_LABEL: &str = "herald.dev/tenant";
/// The kinds searched for leftovers (those the erasure e2e tests search, and the
/// tenant namespace's own).
const LEFTOVER_KINDS: &str =
    "configmaps,secrets,deployments,replicasets,pods,jobs,serviceaccounts,namespaces";

/// One erase Job as last seen by the watch.
#[derive(Clone, Debug)]
struct SeenJob {
    namespace: String,
    targets: Vec<String>,
    succeeded: bool,
}

/// The `--target` values of a purge Job's arguments.
fn targets(job: &Job) -> Vec<String> {
    let args = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.args.clone())
        .unwrap_or_default();
    args.windows(2)
        .filter(|w| w[0] == "--target")
        .map(|w| w[1].clone())
        .collect()
}

/// Records every `herald-erase` Job (by UID) until the returned task is aborted.
fn watch_erase_jobs(
    client: &Client,
) -> (
    Arc<Mutex<BTreeMap<String, SeenJob>>>,
    tokio::task::JoinHandle<()>,
) {
    let seen: Arc<Mutex<BTreeMap<String, SeenJob>>> = Arc::default();
    let record = seen.clone();
    let api: Api<Job> = Api::all(client.clone());
    let task = tokio::spawn(async move {
        let config = watcher::Config::default().fields("metadata.name=herald-erase");
        let mut stream = watcher(api, config).boxed();
        while let Some(event) = stream.next().await {
            let job = match event {
                Ok(watcher::Event::Apply(j) | watcher::Event::InitApply(j)) => j,
                Ok(watcher::Event::Delete(j)) => j,
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("chaos: erase Job watch: {e}");
                    continue;
                }
            };
            let succeeded = job
                .status
                .as_ref()
                .is_some_and(|s| s.succeeded.unwrap_or(0) > 0);
            let entry = SeenJob {
                namespace: job.namespace().unwrap_or_default(),
                targets: targets(&job),
                succeeded,
            };
            let mut seen = record.lock().unwrap();
            // A Job once seen succeeded stays so (its deletion event may carry less).
            let was = seen
                .get(&job.uid().unwrap_or_default())
                .is_some_and(|j| j.succeeded);
            seen.insert(
                job.uid().unwrap_or_default(),
                SeenJob {
                    succeeded: entry.succeeded || was,
                    ..entry
                },
            );
        }
    });
    (seen, task)
}

fn erased(t: &Tenant) -> bool {
    t.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == types::ERASED && c.status == "True")
    })
}

/// Terminates `names[..count]` and SIGKILLs `op` up to `kills` times while they are
/// erased; returns the rows and the tenants left untouched.
#[allow(clippy::too_many_arguments)] // one scenario's knobs, passed once
pub async fn run(
    client: &Client,
    shard: &str,
    names: &[String],
    count: usize,
    kills: usize,
    rng: &mut Rng,
    op: &mut OwnOperator,
    logs: &mut String,
) -> (Vec<Row>, Vec<String>) {
    let count = count.min(names.len());
    let (doomed, untouched) = names.split_at(count);
    let doomed_set: BTreeSet<&str> = doomed.iter().map(String::as_str).collect();
    let sets_before = replica_sets(client, untouched).await;
    let (jobs, watch) = watch_erase_jobs(client);
    let tenants: Api<Tenant> = Api::all(client.clone());
    // Terminated 29 days ago: the policy's 30 days leave erasure due now.
    let terminated = Timestamp::from_second(Timestamp::now().as_second() - 29 * 86_400).unwrap();
    let started = Instant::now();
    for name in doomed {
        tenants
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"contract": {"state": "Terminated", "terminatedAt": terminated.to_string()}}})),
            )
            .await
            .unwrap();
    }
    let selector = ListParams::default().labels(&format!("{SHARD_LABEL}={shard}"));
    let count_erased = async || {
        tenants
            .list(&selector)
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter(|t| doomed_set.contains(t.name_any().as_str()) && erased(t))
                    .count()
            })
            .unwrap_or(0)
    };
    // Kill while erasure goes on; stop killing once all are erased.
    let mut killed = 0;
    while killed < kills && count_erased().await < count {
        tokio::time::sleep(rng.millis(500, 4000)).await;
        restart_operator(op, shard, logs).await;
        killed += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(120 + 5 * count as u64);
    let mut done = count_erased().await;
    while done < count && Instant::now() < deadline {
        // A fleet-wide count: no single object to watch.
        tokio::time::sleep(Duration::from_secs(2)).await;
        done = count_erased().await;
    }
    let took = started.elapsed();
    watch.abort();
    let jobs = jobs.lock().unwrap().clone();

    // Receipts per erased tenant.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    let mut receipts: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for cm in cms
        .list(&ListParams::default().labels(RECEIPT_FOR))
        .await
        .unwrap()
        .items
    {
        let Some(tenant) = cm.labels().get(RECEIPT_FOR).cloned() else {
            continue;
        };
        if !doomed_set.contains(tenant.as_str()) {
            continue;
        }
        let body = cm
            .data
            .as_ref()
            .and_then(|d| d.get("receipt.json"))
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        receipts.entry(tenant).or_default().push(body);
    }
    let not_one: Vec<String> = doomed
        .iter()
        .filter(|n| receipts.get(*n).map_or(0, Vec::len) != 1)
        .map(|n| format!("{n}: {}", receipts.get(n).map_or(0, Vec::len)))
        .collect();

    // Leftovers labelled for an erased tenant, in one query for all of them.
    let out = kubectl(&[
        "get",
        LEFTOVER_KINDS,
        "-A",
        "-l",
        &format!("{TENANT_LABEL} in ({})", doomed.join(",")),
        "-o",
        "name",
    ]);
    let mut leftovers: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    if !out.status.success() {
        leftovers.push(format!(
            "kubectl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    for name in doomed {
        let ns = format!("namespace/tenant-{name}");
        let out = kubectl(&["get", &ns, "-o", "name", "--ignore-not-found"]);
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            leftovers.push(ns);
        }
    }

    // Each erase Job must purge the tenant's channel (sms) as well as the platform; the
    // receipt's confirmed purges are those of the Job that ran, which it lists as deleted.
    let want: BTreeSet<String> = ["platform", "sms"].map(str::to_owned).into();
    let mut wrong_args = Vec::new();
    let mut mismatched = Vec::new();
    for name in doomed {
        let ns = format!("tenant-{name}");
        let mine: Vec<(&String, &SeenJob)> =
            jobs.iter().filter(|(_, j)| j.namespace == ns).collect();
        for (_, j) in &mine {
            let got: BTreeSet<String> = j.targets.iter().cloned().collect();
            if got != want {
                wrong_args.push(format!("{name}: {:?}", j.targets));
            }
        }
        let Some(receipt) = receipts.get(name).and_then(|r| r.first()) else {
            continue; // counted above
        };
        let confirmed: BTreeSet<String> = receipt["externalPurges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["confirmedAt"].is_string())
            .filter_map(|p| p["target"].as_str().map(str::to_owned))
            .collect();
        let deleted_jobs: BTreeSet<String> = receipt["deleted"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| k["kind"] == "Job")
            .flat_map(|k| k["uids"].as_array().cloned().unwrap_or_default())
            .filter_map(|u| u.as_str().map(str::to_owned))
            .collect();
        let ran: Vec<(&String, &SeenJob)> = mine
            .iter()
            .copied()
            .filter(|(uid, j)| j.succeeded && deleted_jobs.contains(*uid))
            .collect();
        let matches = match ran.as_slice() {
            [(_, j)] => j.targets.iter().cloned().collect::<BTreeSet<_>>() == confirmed,
            _ => false,
        };
        if !matches {
            mismatched.push(format!(
                "{name}: confirmed {confirmed:?}, ran {:?} of {} seen",
                ran.iter().map(|(_, j)| &j.targets).collect::<Vec<_>>(),
                mine.len()
            ));
        }
    }
    let seen_in_doomed = jobs
        .values()
        .filter(|j| {
            j.namespace
                .strip_prefix("tenant-")
                .is_some_and(|n| doomed_set.contains(n))
        })
        .count();

    let rolled = rolled(&sets_before, &replica_sets(client, untouched).await);

    let rows = vec![
        Row {
            scenario: "erasure: tenants erased under kills",
            figure: format!("{done}/{count} in {took:.0?}, {killed} SIGKILLs"),
            ok: done == count,
        },
        Row {
            scenario: "erasure: exactly one receipt per erased tenant",
            figure: format!("{} not one {:?}", not_one.len(), not_one),
            ok: not_one.is_empty(),
        },
        Row {
            scenario: "erasure: objects labelled for an erased tenant left",
            figure: format!("{} {:?}", leftovers.len(), leftovers),
            ok: leftovers.is_empty(),
        },
        Row {
            scenario: "erasure: erase Jobs without the channels' targets",
            figure: format!("{} of {seen_in_doomed} {:?}", wrong_args.len(), wrong_args),
            ok: wrong_args.is_empty() && seen_in_doomed >= count,
        },
        Row {
            scenario: "erasure: receipts whose confirmed purges are not the Job's",
            figure: format!("{} {:?}", mismatched.len(), mismatched),
            ok: mismatched.is_empty(),
        },
        Row {
            scenario: "erasure: untouched tenants rolled (new ReplicaSets)",
            figure: format!("{} of {} {:?}", rolled.len(), untouched.len(), rolled),
            ok: rolled.is_empty(),
        },
    ];
    (rows, untouched.to_vec())
}
