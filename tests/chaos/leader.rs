//! Two replicas with leader election over the converged fleet; the leader SIGKILLed
//! `kills` times (a new replica started each time, so two always run). From the Lease
//! and the audit log (each replica's User-Agent names it): failover time per kill; for
//! each handover A→B, A's last mutating request before B's first and before A's lease
//! could expire (its last successful renewal + the lease duration); no standby that
//! exits by itself; the converged tenants not rolled; no second credential version.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald::api::v1alpha1::{ChannelBinding, Tenant};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::common::{CONTROL_NAMESPACE, SHARD_LABEL, erasure_scope_yaml, repo_root, unique};
use crate::{
    CONTROLLERS, Rng, Row, audit, binding_on_version_1, ready_for_generation, replica_sets, rolled,
};

/// The operator's lease duration (src/leader.rs): how long a lease outlives its renewal.
const LEASE_DURATION: Duration = Duration::from_secs(10);
/// The chart's Lease (its release's fullname): the only one its Role lets it renew.
const LEASE: &str = "herald";
/// How long a failover may take at most before the run gives up on it.
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);

/// One operator process with leader election, SIGKILLed when dropped.
struct Replica {
    identity: String,
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(shard: &str, lease: &str, identity: &str, kubeconfig: &std::path::Path) -> Replica {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let log = repo_root().join(format!("target/chaos-{identity}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let config = repo_root().join(format!("target/chaos-{identity}.yaml"));
    std::fs::write(
        &config,
        format!(
            "{}\n{}",
            herald::config::DEFAULT_CONFIG,
            erasure_scope_yaml()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["run", "--http-addr", &format!("127.0.0.1:{port}")])
        .args(["--log-format", "text", "--controllers", CONTROLLERS])
        .args(["--config", &config.to_string_lossy()])
        .args(["--tenant-selector", &format!("{SHARD_LABEL}={shard}")])
        .args(["--leader-election", "--lease-name", lease])
        .args(["--lease-namespace", CONTROL_NAMESPACE])
        .env("POD_NAME", identity)
        .env("KUBECONFIG", kubeconfig)
        .env("HERALD_ALLOW_LOOPBACK_EGRESS", "true")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    Replica {
        identity: identity.to_owned(),
        child,
        log,
    }
}

async fn holder(leases: &Api<Lease>, lease: &str) -> Option<String> {
    leases
        .get_opt(lease)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

/// The mutating requests of one replica, in order of receipt.
fn writes_of(entries: &[audit::Entry], identity: &str) -> Vec<audit::Entry> {
    let tag = format!("({identity})");
    let mut writes: Vec<_> = entries
        .iter()
        .filter(|e| e.user.username == audit::OPERATOR_USER)
        .filter(|e| e.is_mutating() && e.user_agent.ends_with(&tag))
        .cloned()
        .collect();
    writes.sort_by_key(audit::Entry::received);
    writes
}

/// Whether handover `old` → `new` was clean; a description when it was not.
fn handover_fault(entries: &[audit::Entry], lease: &str, old: &str, new: &str) -> Option<String> {
    let old_writes = writes_of(entries, old);
    // The new leader's first write that took effect: a standby's lease grab the API
    // server refused (409: both replicas create the Lease at the start) changes nothing.
    let new_writes: Vec<audit::Entry> = writes_of(entries, new)
        .into_iter()
        .filter(|e| (200..300).contains(&e.code()))
        .collect();
    let (Some(last_old), Some(first_new)) = (old_writes.last(), new_writes.first()) else {
        return Some(format!(
            "{old}→{new}: a replica's writes are not in the audit log"
        ));
    };
    if last_old.received() >= first_new.received() {
        // Both requests named (verb, object, answer): a refused lease grab by a standby
        // reads differently from a second writer.
        let what = |e: &audit::Entry| {
            let o = e.object();
            format!("{} {}/{} {}", e.verb, o.resource, o.name, e.code())
        };
        return Some(format!(
            "{old}→{new}: {old} wrote ({}) at {} after {new}'s first write ({}) at {}",
            what(last_old),
            last_old.request_received_timestamp,
            what(first_new),
            first_new.request_received_timestamp
        ));
    }
    let renewed = old_writes
        .iter()
        .filter(|e| e.object().resource == "leases" && e.object().name == lease)
        .filter(|e| (200..300).contains(&e.code()))
        .map(audit::Entry::received)
        .max()?;
    let expiry = renewed + LEASE_DURATION;
    (last_old.received() >= expiry).then(|| {
        format!(
            "{old}: wrote at {} after its lease (renewed at {renewed}) could expire",
            last_old.request_received_timestamp
        )
    })
}

/// Takes out the replicas that exited although nobody stopped them: their names.
fn exited(replicas: &mut Vec<Replica>) -> Vec<String> {
    let mut gone = Vec::new();
    replicas.retain_mut(|r| match r.child.try_wait() {
        Ok(Some(status)) => {
            gone.push(format!("{} ({status})", r.identity));
            false
        }
        _ => true,
    });
    gone
}

pub async fn run(
    client: &Client,
    shard: &str,
    fleet: &[String],
    kills: usize,
    rng: &mut Rng,
    logs: &mut String,
) -> Vec<Row> {
    let kubeconfig = crate::identity::chart_operator_kubeconfig();
    let lease = LEASE;
    let identity = unique("chaos-leader");
    let leases: Api<Lease> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    // A Lease of an earlier run on this cluster would only delay the first leader.
    let _ = leases.delete(lease, &Default::default()).await;
    let sets_before = replica_sets(client, fleet).await;
    let mark = audit::mark();
    let mut serial = 0;
    let mut next = |replicas: &mut Vec<Replica>| {
        serial += 1;
        replicas.push(start(
            shard,
            lease,
            &format!("{identity}-{serial}"),
            &kubeconfig,
        ));
    };
    let mut replicas = Vec::new();
    next(&mut replicas);
    next(&mut replicas);

    let mut failovers = Vec::new();
    let mut handovers = Vec::new();
    let mut faults = Vec::new();
    let mut exits = Vec::new();
    for _ in 0..kills {
        // Give the leader time to act (and a standby time to fail, if it would).
        tokio::time::sleep(rng.millis(3000, 8000)).await;
        exits.extend(exited(&mut replicas));
        while replicas.len() < 2 {
            next(&mut replicas); // two run, whatever the last round cost
        }
        let Some(old) = holder(&leases, lease).await else {
            faults.push("no Lease holder before a kill".to_owned());
            break;
        };
        let Some(at) = replicas.iter().position(|r| r.identity == old) else {
            faults.push(format!("the holder {old} is not a running replica"));
            break;
        };
        let mut leader = replicas.remove(at);
        leader.child.kill().unwrap(); // SIGKILL: no release, the lease must expire
        let killed = Instant::now();
        leader.child.wait().unwrap();
        logs.push_str(&std::fs::read_to_string(&leader.log).unwrap_or_default());
        next(&mut replicas);
        let new = loop {
            match holder(&leases, lease).await {
                Some(h) if h != old => break Some(h),
                _ if killed.elapsed() > FAILOVER_LIMIT => break None,
                // The Lease changes hands once: polled finely to time the failover.
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        match new {
            Some(new) => {
                failovers.push(killed.elapsed());
                handovers.push((old, new));
            }
            None => {
                faults.push(format!(
                    "no new leader within {FAILOVER_LIMIT:?} of killing {old}"
                ));
                break;
            }
        }
    }

    // The fleet settles under the last leader: Ready, not rolled, still on version 1.
    let tenants: Api<Tenant> = Api::all(client.clone());
    let bindings: Api<ChannelBinding> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    let selector = ListParams::default().labels(&format!("{SHARD_LABEL}={shard}"));
    let deadline = Instant::now() + Duration::from_secs(60 + fleet.len() as u64);
    let (ready, on_v1) = loop {
        let ts = tenants.list(&selector).await.unwrap().items;
        let ready = ts
            .iter()
            .filter(|t| fleet.contains(&kube::ResourceExt::name_any(*t)) && ready_for_generation(t))
            .count();
        let on_v1 = bindings
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|b| fleet.contains(&b.spec.tenant_ref.name) && binding_on_version_1(b))
            .count();
        if (ready == fleet.len() && on_v1 == fleet.len()) || Instant::now() > deadline {
            break (ready, on_v1);
        }
        // A fleet-wide count: no single object to watch.
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    exits.extend(exited(&mut replicas));
    let rolled = rolled(&sets_before, &replica_sets(client, fleet).await);
    let entries = audit::since(mark);
    faults.extend(
        handovers
            .iter()
            .filter_map(|(old, new)| handover_fault(&entries, lease, old, new)),
    );
    for r in &replicas {
        logs.push_str(&std::fs::read_to_string(&r.log).unwrap_or_default());
    }
    drop(replicas);
    let _ = leases.delete(lease, &Default::default()).await;

    let worst = failovers.iter().max().copied().unwrap_or_default();
    let secs: Vec<String> = failovers
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64()))
        .collect();
    vec![
        Row {
            scenario: "leader kills: failover per SIGKILL of the leader (s)",
            figure: format!(
                "{}/{kills}: {} (worst {worst:.1?})",
                failovers.len(),
                secs.join(", ")
            ),
            ok: failovers.len() == kills,
        },
        Row {
            scenario: "leader kills: overlapping writers (audit log)",
            figure: format!(
                "{} of {} handovers {:?}",
                faults.len(),
                handovers.len(),
                faults
            ),
            ok: faults.is_empty(),
        },
        Row {
            scenario: "leader kills: standbys that exited by themselves",
            figure: format!("{} {:?}", exits.len(), exits),
            ok: exits.is_empty(),
        },
        Row {
            scenario: "leader kills: tenants Ready, bindings on version 1",
            figure: format!("{ready}/{n}, {on_v1}/{n}", n = fleet.len()),
            ok: ready == fleet.len() && on_v1 == fleet.len(),
        },
        Row {
            scenario: "leader kills: converged tenants rolled (new ReplicaSets)",
            figure: format!("{} of {} {:?}", rolled.len(), fleet.len(), rolled),
            ok: rolled.is_empty(),
        },
    ]
}
