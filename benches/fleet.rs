//! `make bench`: a fleet of N tenants on the local control plane, Herald against the
//! floor (issue 8). Not a timed test: it measures and reports, and fails only when the
//! run itself cannot be made.
//!
//! 1. **Floor**: a tight kube-rs client server-side applies exactly the objects Herald
//!    creates for N tenants (`herald::controller::tenant::build::children`, the purge
//!    CronJobs included, plus the two credential Secrets per tenant the ChannelBinding
//!    controller writes), with up to `PARALLEL` requests in flight, waits (a watch) until
//!    every Deployment is Available, then deletes ERASE namespaces and the rest, and waits
//!    (a watch) until they are gone.
//! 2. **Herald**: starts `target/release/herald` as the chart's ServiceAccount, applies N
//!    Tenants with two ChannelBindings each (Secret-sourced; one Subprocessor, created
//!    before the tenants, carries both channels), and waits until all are Ready. Requests
//!    by the operator's user come from the audit log; peak RSS (VmHWM) and CPU seconds
//!    from /proc. Then IDLE seconds in which the operator must write nothing.
//! 3. **Erasure**: terminates ERASE tenants at once (terminatedAt 29 days ago) and waits
//!    until all are Erased.
//! 4. One table (figure, floor, ratio) and `target/bench/fleet-<N>-<time>.json`.
//!
//! Everything the bench creates carries `herald.dev/bench` (Tenants and the control
//! namespace's objects) or lives in a namespace `tenant-bf-*` / `tenant-bh-*`; a run
//! removes what an earlier run left behind before it starts, and its own at the end.

use std::collections::{BTreeMap, HashSet};
use std::error::Error;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use herald::api::v1alpha1::{ChannelBinding, RetentionPolicy, Subprocessor, Tenant, TenantPhase};
use herald::config::OperatorConfig;
use herald::controller::channel_binding::decide::{SecretInputs, credential_secret};
use herald::controller::tenant::bindings::Mount;
use herald::controller::tenant::build::{self, Inputs};
use herald::controller::tenant::decide::decide;
use herald::retention::Periods;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

type R<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Label on every Tenant and control-namespace object of the bench: `floor` or `herald`.
const BENCH_LABEL: &str = "herald.dev/bench";
/// The e2e suite's shared operator leaves Tenants with this label alone, in case the
/// bench runs on the e2e cluster (`BENCH_CLUSTER=e2e`).
const SHARD_LABEL: &str = "herald.dev/e2e-shard";
const CONTROL_NS: &str = "herald-system";
const MANAGER: &str = "herald-bench";
const SUBPROCESSOR: &str = "bench-carrier";
const POLICY: &str = "bench-standard";
/// The two channels of every tenant (sorted: the order of Herald's mounts).
const CHANNELS: [&str; 2] = ["email", "sms"];
/// The operator's user in the audit log (the chart's ServiceAccount).
const OPERATOR_USER: &str = "system:serviceaccount:herald-system:herald";
const MUTATING: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];
const READS: &[&str] = &["get", "list", "watch"];

struct Opts {
    n: usize,
    idle: u64,
    erase: usize,
    concurrency: u16,
    parallel: usize,
    timeout: Duration,
    herald_bin: PathBuf,
    audit_log: PathBuf,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> R<T> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a number").into()),
        _ => Ok(default),
    }
}

fn opts() -> R<Opts> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let n: usize = env_num("N", 1000)?;
    Ok(Opts {
        n,
        idle: env_num("IDLE", 600)?,
        erase: env_num("ERASE", 100usize)?.min(n),
        concurrency: env_num("CONCURRENCY", 16)?,
        parallel: env_num("PARALLEL", 64)?,
        timeout: Duration::from_secs(env_num("BENCH_TIMEOUT", 3600)?),
        herald_bin: std::env::var("HERALD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target/release/herald")),
        audit_log: std::env::var("HERALD_AUDIT_LOG")
            .map(PathBuf::from)
            .map_err(|_| "HERALD_AUDIT_LOG is not set: run through `make bench`")?,
    })
}

fn floor_name(i: usize) -> String {
    format!("bf-{i:05}")
}
/// How many purge CronJob runs of the N Herald tenants are scheduled in [`from`, `to`)
/// (daily, at the minute [`build::purge_schedule`] gives each tenant and category).
fn scheduled_purges(n: usize, from: Timestamp, to: Timestamp) -> u64 {
    let minutes = (from.as_second().div_euclid(60) + 1)..=to.as_second().div_euclid(60);
    let mut count = 0;
    for i in 0..n {
        for index in 0..herald::retention::Category::PURGED.len() {
            let schedule = build::purge_schedule(&herald_name(i), index);
            let mut fields = schedule.split(' ').map(|f| f.parse::<i64>().unwrap_or(-1));
            let (Some(m), Some(h)) = (fields.next(), fields.next()) else {
                continue;
            };
            count += minutes
                .clone()
                .filter(|t| t.rem_euclid(1440) == h * 60 + m)
                .count() as u64;
        }
    }
    count
}

fn herald_name(i: usize) -> String {
    format!("bh-{i:05}")
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> R<()> {
    let o = opts()?;
    let client = Client::try_default().await?;
    let config = OperatorConfig::load(None)?;
    say(&format!(
        "fleet bench: N={} IDLE={}s ERASE={} CONCURRENCY={} PARALLEL={}",
        o.n, o.idle, o.erase, o.concurrency, o.parallel
    ));
    // What is measured: the commit the operator binary was built from (make bench builds
    // it just before), taken now, as other work may commit meanwhile.
    let commit = git(&["rev-parse", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let tail = Tail::start(&o.audit_log, &["herald-admin", OPERATOR_USER])?;
    setup(&client).await?;
    cleanup(&client).await?;
    let policy = apply_fixtures(&client).await?;

    // ---------------------------------------------------------------- 1. the floor
    say("floor: creating the owner Tenants (untimed)");
    let floor_tenants: Vec<Tenant> = apply_all(
        &client,
        o.parallel,
        (0..o.n).map(|i| tenant(&floor_name(i), "floor", None)),
    )
    .await?;
    let periods = Periods::resolve(Some(&policy.spec), &config.retention);
    let mut namespaces = Vec::new();
    let mut middle: Vec<Value> = Vec::new();
    let mut deployments = Vec::new();
    for t in &floor_tenants {
        let decision = decide(
            t,
            &config,
            periods.clone(),
            true,
            k8s_openapi::jiff::Timestamp::now(),
        );
        let mounts: Vec<Mount> = CHANNELS
            .iter()
            .map(|c| Mount {
                channel: (*c).into(),
                version: 1,
                secret: format!("herald-cred-{c}-v1"),
            })
            .collect();
        let c = build::children(&Inputs {
            tenant: t,
            decision: &decision,
            config: &config,
            mounts: &mounts,
        })?;
        namespaces.push(serde_json::to_value(&c.namespace)?);
        for v in [
            serde_json::to_value(&c.service_account)?,
            serde_json::to_value(&c.role)?,
            serde_json::to_value(&c.role_binding)?,
            serde_json::to_value(&c.resource_quota)?,
            serde_json::to_value(&c.limit_range)?,
            serde_json::to_value(&c.config_map)?,
            serde_json::to_value(&c.pdb)?,
        ] {
            middle.push(v);
        }
        for np in &c.network_policies {
            middle.push(serde_json::to_value(np)?);
        }
        for cj in &c.purge_jobs {
            middle.push(serde_json::to_value(cj)?);
        }
        for ch in CHANNELS {
            let binding = binding(&t.name_any(), ch);
            middle.push(serde_json::to_value(credential_secret(SecretInputs {
                binding: &binding,
                tenant: t,
                channel: ch,
                version: 1,
                data: source_data(&t.name_any(), ch),
                webhook_key: "0".repeat(64),
                provider_id: None,
                source_hash: Some("bench"),
            }))?);
        }
        deployments.push(serde_json::to_value(&c.deployment)?);
    }
    let objects_per_tenant = (namespaces.len() + middle.len() + deployments.len()) / o.n.max(1);
    say(&format!(
        "floor: applying {} objects ({objects_per_tenant} per tenant)",
        objects_per_tenant * o.n
    ));
    let start = Instant::now();
    let mark = Timestamp::now();
    let available = tokio::spawn(wait_available(
        client.clone(),
        "tenant-bf-".into(),
        o.n,
        o.timeout,
    ));
    // Namespaces first, the Deployments last (their pods need the ServiceAccount, the
    // quota and the config), everything else in between: as Herald orders one tenant.
    apply_values(&client, o.parallel, namespaces).await?;
    apply_values(&client, o.parallel, middle).await?;
    apply_values(&client, o.parallel, deployments).await?;
    let applied = start.elapsed();
    available.await??;
    let floor_ready = start.elapsed();
    let floor_ready_requests = tail.count("herald-admin", mark, Timestamp::now())?;
    say(&format!(
        "floor: applied in {:.1}s, all Available after {:.1}s",
        applied.as_secs_f64(),
        floor_ready.as_secs_f64()
    ));

    let erase_ns: Vec<String> = (0..o.erase)
        .map(|i| build::namespace_name(&floor_name(i)))
        .collect();
    let rest_ns: Vec<String> = (o.erase..o.n)
        .map(|i| build::namespace_name(&floor_name(i)))
        .collect();
    let busy = MachineBusy::start();
    let floor_erase = delete_namespaces(&client, o.parallel, &erase_ns, o.timeout).await?;
    let floor_busy = busy.fraction();
    let floor_delete_rest = delete_namespaces(&client, o.parallel, &rest_ns, o.timeout).await?;
    say(&format!(
        "floor: {} namespaces gone after {:.1}s, the other {} after {:.1}s",
        erase_ns.len(),
        floor_erase.as_secs_f64(),
        rest_ns.len(),
        floor_delete_rest.as_secs_f64()
    ));
    Api::<Tenant>::all(client.clone())
        .delete_collection(
            &DeleteParams::background(),
            &ListParams::default().labels(&format!("{BENCH_LABEL}=floor")),
        )
        .await?;

    // ---------------------------------------------------------------- 2. Herald
    say("herald: source Secrets (untimed), then the operator");
    apply_all::<Secret>(
        &client,
        o.parallel,
        (0..o.n).flat_map(|i| CHANNELS.map(|c| source_secret(&herald_name(i), c))),
    )
    .await?;
    let kubeconfig = operator_kubeconfig()?;
    let mut operator = Operator::start(&o, &kubeconfig).await?;
    say(&format!("herald: operator running (pid {})", operator.pid));
    let mark = Timestamp::now();
    let tenants_ready = tokio::spawn(wait_tenants(
        client.clone(),
        o.n,
        o.timeout,
        |t: &Tenant| is_ready(t.status.as_ref().map(|s| &s.conditions[..])),
    ));
    let bindings_ready = tokio::spawn(wait_bindings(client.clone(), 2 * o.n, o.timeout));
    let mut objects: Vec<Value> = Vec::new();
    for i in 0..o.n {
        objects.push(serde_json::to_value(tenant(
            &herald_name(i),
            "herald",
            None,
        ))?);
    }
    for i in 0..o.n {
        for c in CHANNELS {
            objects.push(serde_json::to_value(binding(&herald_name(i), c))?);
        }
    }
    apply_values(&client, o.parallel, objects).await?;
    let ready = tenants_ready.await??;
    let settled = bindings_ready.await??.max(ready);
    // Requests are counted in tenth-of-a-second buckets: the one in which the last
    // Tenant turned Ready belongs to the way there, and idle starts after it.
    let mark_ready = Timestamp::now() + SignedDuration::from_millis(100);
    let cpu_ready = operator.cpu_seconds()?;
    say(&format!(
        "herald: all Tenants Ready after {:.1}s, all ChannelBindings Ready after {:.1}s",
        ready.as_secs_f64(),
        settled.as_secs_f64()
    ));
    let ready_requests = tail.count(OPERATOR_USER, mark, mark_ready)?;

    say(&format!("herald: idle for {}s", o.idle));
    tokio::time::sleep(Duration::from_secs(o.idle)).await;
    let mark_idle = Timestamp::now();
    let idle_requests = tail.count(OPERATOR_USER, mark_ready, mark_idle)?;
    // The purge CronJobs keep running while the fleet is idle; each run Herald records
    // in its Tenant's status.purges is a write for work done, not noise.
    let purge_runs = scheduled_purges(o.n, mark_ready, mark_idle);
    let status_patches = idle_requests
        .by_target
        .get("patch tenants/status")
        .copied()
        .unwrap_or(0);
    let idle_noise = idle_requests.mutating - status_patches.min(purge_runs);
    let cpu_idle = operator.cpu_seconds()? - cpu_ready;
    let rss_ready = operator.peak_rss_mib()?;
    say(&format!(
        "herald: idle: {} mutating, {} reads; peak RSS {rss_ready:.1} MiB",
        idle_requests.mutating, idle_requests.reads
    ));

    // ---------------------------------------------------------------- 3. erasure
    let terminated_at = Timestamp::now() - SignedDuration::from_hours(29 * 24);
    say(&format!(
        "erasure: terminating {} tenants (terminatedAt {terminated_at})",
        o.erase
    ));
    let mark = Timestamp::now();
    let reconciles_before = reconcile_metrics(&operator.metrics().await.unwrap_or_default());
    let steps = StepTimeline::start(client.clone());
    let busy = MachineBusy::start();
    let erased = tokio::spawn(wait_tenants(client.clone(), o.erase, o.timeout, |t| {
        t.status.as_ref().and_then(|s| s.phase) == Some(TenantPhase::Erased)
    }));
    apply_all::<Tenant>(
        &client,
        o.parallel,
        (0..o.erase).map(|i| tenant(&herald_name(i), "herald", Some(terminated_at))),
    )
    .await?;
    let erasure = erased.await??;
    let mark_erased = Timestamp::now();
    let erasure_busy = busy.fraction();
    say(&format!(
        "erasure: the machine's CPUs were {:.0}% busy (floor's deletion: {:.0}%)",
        erasure_busy * 100.0,
        floor_busy * 100.0
    ));
    let step_rows = steps.finish();
    say(
        "erasure: per step (entered: when the last tenant got there; in: mean time a tenant spent there)",
    );
    for s in &step_rows {
        say(&format!(
            "  {:<16} {:>4} tenants  entered median {:>6.1}s  p90 {:>6.1}s  last {:>6.1}s  in {:>5.1}s",
            s.step, s.tenants, s.entered_median, s.entered_p90, s.entered_last, s.mean_in
        ));
    }
    let reconciles_after = reconcile_metrics(&operator.metrics().await.unwrap_or_default());
    say("erasure: reconciles (count, seconds spent) per controller");
    for (k, after) in &reconciles_after {
        let before = reconciles_before.get(k).copied().unwrap_or(0.0);
        say(&format!("  {:>9.1}  {k}", after - before));
    }
    let erase_requests = tail.count(OPERATOR_USER, mark, mark_erased)?;
    say(&format!(
        "erasure: {} tenants Erased after {:.1}s",
        o.erase,
        erasure.as_secs_f64()
    ));
    let mut busiest: Vec<(&String, &u64)> = erase_requests.by_target.iter().collect();
    busiest.sort_by(|a, b| b.1.cmp(a.1));
    say("erasure: the operator's requests, busiest targets");
    for (target, count) in busiest.iter().take(12) {
        say(&format!("  {count:>6}  {target}"));
    }
    let rss_peak = operator.peak_rss_mib()?;
    let cpu_total = operator.cpu_seconds()?;
    let metrics = operator.metrics().await.unwrap_or_default();
    operator.stop();

    // ---------------------------------------------------------------- 4. report
    let n = o.n as f64;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let rows: Vec<Row> = vec![
        Row::new(
            "all Ready (s)",
            ready.as_secs_f64(),
            Some(floor_ready.as_secs_f64()),
            "<= 1.5x floor",
            ratio(ready.as_secs_f64(), floor_ready.as_secs_f64()) <= 1.5,
        ),
        Row::new(
            "all Ready + bindings Ready (s)",
            settled.as_secs_f64(),
            Some(floor_ready.as_secs_f64()),
            "",
            true,
        ),
        Row::new(
            "mutating requests / tenant (to Ready)",
            ready_requests.mutating as f64 / n,
            Some(floor_ready_requests.mutating as f64 / n),
            "",
            true,
        ),
        Row::new(
            "read requests / tenant (to Ready)",
            ready_requests.reads as f64 / n,
            None,
            "",
            true,
        ),
        Row::new(
            &format!("mutating requests while idle ({}s)", o.idle),
            idle_requests.mutating as f64,
            Some(0.0),
            "0",
            idle_requests.mutating == 0,
        ),
        Row::new(
            &format!("  purge runs scheduled while idle ({}s)", o.idle),
            purge_runs as f64,
            None,
            "",
            true,
        ),
        Row::new(
            "  mutating while idle, less one status patch per purge run",
            idle_noise as f64,
            Some(0.0),
            "0",
            idle_noise == 0,
        ),
        Row::new(
            &format!("read requests while idle ({}s)", o.idle),
            idle_requests.reads as f64,
            None,
            "",
            true,
        ),
        Row::new(
            "peak RSS (MiB), to Ready + idle",
            rss_ready,
            Some(48.0),
            "<= 48 MiB at N=1000",
            rss_ready <= 48.0,
        ),
        Row::new("peak RSS (MiB), whole run", rss_peak, Some(48.0), "", true),
        Row::new("CPU seconds to Ready", cpu_ready, None, "", true),
        Row::new("CPU seconds while idle", cpu_idle, None, "", true),
        Row::new("CPU seconds, whole run", cpu_total, None, "", true),
        Row::new(
            &format!("erasure of {} (s)", o.erase),
            erasure.as_secs_f64(),
            Some(floor_erase.as_secs_f64()),
            "<= 2x floor",
            ratio(erasure.as_secs_f64(), floor_erase.as_secs_f64()) <= 2.0,
        ),
        Row::new(
            "erasure: mutating requests / tenant",
            erase_requests.mutating as f64 / o.erase.max(1) as f64,
            Some(1.0),
            "",
            true,
        ),
        Row::new(
            "erasure: read requests / tenant",
            erase_requests.reads as f64 / o.erase.max(1) as f64,
            None,
            "",
            true,
        ),
    ];
    println!();
    println!(
        "{:<44} {:>12} {:>12} {:>8}  target",
        "figure", "herald", "floor", "ratio"
    );
    for r in &rows {
        println!(
            "{:<44} {:>12.2} {:>12} {:>8}  {}{}",
            r.figure,
            r.herald,
            r.floor.map(|f| format!("{f:.2}")).unwrap_or_default(),
            r.ratio.map(|f| format!("{f:.2}")).unwrap_or_default(),
            r.target,
            if r.target.is_empty() {
                ""
            } else if r.met {
                "  (met)"
            } else {
                "  (MISSED)"
            }
        );
    }
    let report = json!({
        "bench": "fleet",
        "commit": commit,
        "dirty": dirty,
        "date": Timestamp::now().to_string(),
        "n": o.n, "idle_seconds": o.idle, "erase": o.erase,
        "concurrency": o.concurrency, "parallel": o.parallel,
        "floor": {
            "objects_per_tenant": objects_per_tenant,
            "apply_seconds": applied.as_secs_f64(),
            "ready_seconds": floor_ready.as_secs_f64(),
            "delete_erase_seconds": floor_erase.as_secs_f64(),
            "delete_erase_machine_busy": floor_busy,
            "delete_rest_seconds": floor_delete_rest.as_secs_f64(),
            "requests_to_ready": floor_ready_requests,
        },
        "herald": {
            "ready_seconds": ready.as_secs_f64(),
            "settled_seconds": settled.as_secs_f64(),
            "requests_to_ready": ready_requests,
            "requests_idle": idle_requests,
            "purge_runs_idle": purge_runs,
            "mutating_idle_less_purge_records": idle_noise,
            "peak_rss_mib_ready_idle": rss_ready,
            "peak_rss_mib": rss_peak,
            "cpu_seconds_ready": cpu_ready,
            "cpu_seconds_idle": cpu_idle,
            "cpu_seconds_total": cpu_total,
            "erasure_seconds": erasure.as_secs_f64(),
            "requests_erasure": erase_requests,
            "erasure_steps": step_rows,
            "erasure_machine_busy": erasure_busy,
            "writes_metric": writes_metric(&metrics),
        },
        "rows": rows,
    });
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let stamp = Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let path = dir.join(format!("fleet-n{}-{stamp}.json", o.n));
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    std::fs::write(
        dir.join("fleet-latest.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("\nwritten: {}", path.display());
    cleanup(&client).await?;
    Ok(())
}

#[derive(Serialize)]
struct Row {
    figure: String,
    herald: f64,
    floor: Option<f64>,
    ratio: Option<f64>,
    target: String,
    met: bool,
}

impl Row {
    fn new(figure: &str, herald: f64, floor: Option<f64>, target: &str, met: bool) -> Self {
        Self {
            figure: figure.into(),
            herald,
            floor,
            ratio: floor.filter(|f| *f > 0.0).map(|f| herald / f),
            target: target.into(),
            met,
        }
    }
}

fn say(s: &str) {
    eprintln!("[bench {}] {s}", Timestamp::now().strftime("%H:%M:%S"));
}

fn git(args: &[&str]) -> String {
    Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

// ------------------------------------------------------------------------ objects

fn tenant(name: &str, role: &str, terminated_at: Option<Timestamp>) -> Tenant {
    let contract = match terminated_at {
        Some(t) => json!({"state": "Terminated", "terminatedAt": t.to_string(),
                          "dpa": {"reference": format!("DPA-{name}"), "signedAt": "2026-01-15T09:00:00Z"},
                          "onTermination": {"action": "Delete"}}),
        None => json!({"state": "Active",
                       "dpa": {"reference": format!("DPA-{name}"), "signedAt": "2026-01-15T09:00:00Z"},
                       "onTermination": {"action": "Delete"}}),
    };
    let v = json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": name, "labels": {BENCH_LABEL: role, SHARD_LABEL: "bench"}},
        "spec": {
            "displayName": format!("Bench tenant {name}"),
            "contract": contract,
            "residency": {"regions": ["eu-central-1", "eu-west-1"]},
            "retentionPolicyRef": {"name": POLICY},
            "deletionProtection": false
        }
    });
    serde_json::from_value(v).unwrap_or_else(|e| panic!("bench tenant: {e}"))
}

fn binding(tenant: &str, channel: &str) -> ChannelBinding {
    let v = json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "ChannelBinding",
        "metadata": {"name": format!("{tenant}-{channel}"), "namespace": CONTROL_NS,
                     "labels": {BENCH_LABEL: "herald"}},
        "spec": {
            "tenantRef": {"name": tenant},
            "channel": channel,
            "subprocessorRef": {"name": SUBPROCESSOR},
            "credential": {"secretRef": {"name": format!("{tenant}-{channel}-source")}}
        }
    });
    serde_json::from_value(v).unwrap_or_else(|e| panic!("bench binding: {e}"))
}

fn source_data(tenant: &str, channel: &str) -> BTreeMap<String, ByteString> {
    BTreeMap::from([(
        "token".to_owned(),
        ByteString(format!("FAKE-{channel}-token-of-{tenant}").into_bytes()),
    )])
}

fn source_secret(tenant: &str, channel: &str) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{tenant}-{channel}-source")),
            namespace: Some(CONTROL_NS.into()),
            // Read only for the tenant it is labelled for (see src/controller/ownership.rs).
            labels: Some(BTreeMap::from([
                (BENCH_LABEL.into(), "herald".into()),
                (herald::controller::TENANT_LABEL.into(), tenant.into()),
            ])),
            ..Default::default()
        },
        data: Some(source_data(tenant, channel)),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// The CRDs, the control namespace and the chart's RBAC.
async fn setup(client: &Client) -> R<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply(MANAGER).force();
    for crd in herald::api::crds() {
        let name = crd.name_any();
        crds.patch(&name, &pp, &Patch::Apply(&crd)).await?;
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await??;
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": CONTROL_NS}}))?;
    Api::<Namespace>::all(client.clone())
        .patch(CONTROL_NS, &pp, &Patch::Apply(&ns))
        .await?;
    // The chart's ServiceAccount, ClusterRole(Binding) and Roles: the operator runs with
    // exactly what a Helm install grants (as in the e2e suite).
    let rendered = run_cmd(
        "helm",
        &[
            "template",
            "herald",
            "charts/herald",
            "--namespace",
            CONTROL_NS,
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/rbac.yaml",
            "--show-only",
            "templates/rbac-erasure.yaml",
        ],
        None,
    )?;
    run_cmd(
        "kubectl",
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=herald-bench",
            "-f",
            "-",
        ],
        Some(&rendered),
    )?;
    Ok(())
}

/// The RetentionPolicy and the Subprocessor (before any tenant: its terms predate them,
/// so no notice period applies).
async fn apply_fixtures(client: &Client) -> R<RetentionPolicy> {
    let pp = PatchParams::apply(MANAGER).force();
    let policy: RetentionPolicy = serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "RetentionPolicy",
        "metadata": {"name": POLICY, "labels": {BENCH_LABEL: "herald"}},
        "spec": {"deleteWithinDays": 30, "messageContentDays": 90, "deliveryMetadataDays": 180,
                 "smsVoiceTrafficDays": 90, "backupsDays": 7, "logsDays": 90,
                 "accountDataDaysAfterContractEnd": 30}
    }))?;
    let policy = Api::<RetentionPolicy>::all(client.clone())
        .patch(POLICY, &pp, &Patch::Apply(&policy))
        .await?;
    let sp: Subprocessor = serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "Subprocessor",
        "metadata": {"name": SUBPROCESSOR, "labels": {BENCH_LABEL: "herald"}},
        "spec": {"legalName": "Bench Carrier GmbH", "category": "CommunicationChannel",
                 "purpose": "SMS and email delivery for the benchmark fleet.",
                 "locations": ["DE"], "safeguard": "EEA",
                 "dpa": {"reference": "SUB-DPA-BENCH", "signedAt": "2024-01-01T00:00:00Z"},
                 "channels": CHANNELS, "noticePeriodDays": 30}
    }))?;
    Api::<Subprocessor>::all(client.clone())
        .patch(SUBPROCESSOR, &pp, &Patch::Apply(&sp))
        .await?;
    // Creation timestamps have a resolution of one second; "before" must be strict.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    Ok(policy)
}

fn run_cmd(cmd: &str, args: &[&str], stdin: Option<&str>) -> R<String> {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd} (on PATH? `make bench` sets it): {e}"))?;
    if let (Some(input), Some(mut s)) = (stdin, child.stdin.take()) {
        s.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// A kubeconfig for the chart's ServiceAccount (a token), in target/bench/.
fn operator_kubeconfig() -> R<PathBuf> {
    let token = run_cmd(
        "kubectl",
        &[
            "create",
            "token",
            "herald",
            "--namespace",
            CONTROL_NS,
            "--duration=4h",
        ],
        None,
    )?;
    let current: Value = serde_json::from_str(&run_cmd(
        "kubectl",
        &["config", "view", "--raw", "--minify", "-o", "json"],
        None,
    )?)?;
    let cluster = current["clusters"][0]["cluster"].clone();
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "bench", "cluster": cluster}],
        "users": [{"name": OPERATOR_USER, "user": {"token": token.trim()}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": OPERATOR_USER}}],
        "current-context": "bench",
    });
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("operator.kubeconfig");
    std::fs::write(&path, config.to_string())?;
    Ok(path)
}

// ------------------------------------------------------------------------ applying

async fn apply_all<K>(
    client: &Client,
    parallel: usize,
    objects: impl Iterator<Item = K>,
) -> R<Vec<K>>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let pp = PatchParams::apply(MANAGER).force();
    let ar = kube::api::ApiResource::erase::<K>(&());
    stream::iter(objects.map(|o| {
        let pp = pp.clone();
        let api: Api<kube::api::DynamicObject> = match o.meta().namespace.as_deref() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        async move {
            let name = o.name_any();
            let applied = api
                .patch(&name, &pp, &Patch::Apply(&o))
                .await
                .map_err(|e| format!("apply {} {name}: {e}", K::kind(&())))?;
            Ok::<K, Box<dyn Error + Send + Sync>>(serde_json::from_value(serde_json::to_value(
                applied,
            )?)?)
        }
    }))
    .buffer_unordered(parallel)
    .try_collect::<Vec<K>>()
    .await
}

/// Server-side applies JSON objects of any built-in or Herald kind, `parallel` at once.
async fn apply_values(client: &Client, parallel: usize, objects: Vec<Value>) -> R<()> {
    let pp = PatchParams::apply(MANAGER).force();
    stream::iter(objects.into_iter().map(|o| {
        let client = client.clone();
        let pp = pp.clone();
        async move {
            let api_version = o["apiVersion"].as_str().unwrap_or("v1").to_owned();
            let kind = o["kind"].as_str().unwrap_or_default().to_owned();
            let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
            let gvk = kube::api::GroupVersionKind::gvk(group, version, &kind);
            let ar = kube::api::ApiResource::from_gvk(&gvk);
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let api: Api<kube::api::DynamicObject> = match o["metadata"]["namespace"].as_str() {
                Some(ns) => Api::namespaced_with(client, ns, &ar),
                None => Api::all_with(client, &ar),
            };
            api.patch(&name, &pp, &Patch::Apply(&o))
                .await
                .map(drop)
                .map_err(|e| -> Box<dyn Error + Send + Sync> {
                    format!("apply {kind} {name}: {e}").into()
                })
        }
    }))
    .buffer_unordered(parallel)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

// ------------------------------------------------------------------------ waiting

/// Watches `api` until `done(state)` holds; the state is keyed by namespace/name.
async fn watch_until<K>(
    api: Api<K>,
    cfg: watcher::Config,
    timeout: Duration,
    what: String,
    mut done: impl FnMut(&BTreeMap<String, K>) -> bool,
) -> R<()>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let key = |o: &K| {
        format!(
            "{}/{}",
            o.meta().namespace.clone().unwrap_or_default(),
            o.name_any()
        )
    };
    let mut state: BTreeMap<String, K> = BTreeMap::new();
    let mut init: BTreeMap<String, K> = BTreeMap::new();
    let mut synced = false;
    let events = watcher(api, cfg).default_backoff();
    futures::pin_mut!(events);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let next = tokio::time::timeout_at(deadline, events.next())
            .await
            .map_err(|_| format!("timed out waiting for {what}"))?;
        let Some(event) = next else {
            return Err(format!("watch for {what} ended").into());
        };
        match event {
            Ok(watcher::Event::Init) => init.clear(),
            Ok(watcher::Event::InitApply(o)) => {
                init.insert(key(&o), o);
            }
            Ok(watcher::Event::InitDone) => {
                state = std::mem::take(&mut init);
                synced = true;
            }
            Ok(watcher::Event::Apply(o)) => {
                state.insert(key(&o), o);
            }
            Ok(watcher::Event::Delete(o)) => {
                state.remove(&key(&o));
            }
            Err(e) => say(&format!("watch for {what}: {e}; retrying")),
        }
        if synced && done(&state) {
            return Ok(());
        }
    }
}

fn is_ready(conds: Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]>) -> bool {
    conds.is_some_and(|c| herald::conditions::is_true(c, "Ready"))
}

async fn wait_available(client: Client, prefix: String, n: usize, timeout: Duration) -> R<()> {
    let api: Api<Deployment> = Api::all(client);
    let cfg = watcher::Config::default().labels(herald::controller::TENANT_LABEL);
    watch_until(
        api,
        cfg,
        timeout,
        format!("{n} Available Deployments"),
        |s| {
            s.values()
                .filter(|d| d.namespace().is_some_and(|ns| ns.starts_with(&prefix)))
                .filter(|d| {
                    d.status
                        .as_ref()
                        .and_then(|st| st.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c.type_ == "Available" && c.status == "True")
                        })
                        && d.status.as_ref().and_then(|st| st.ready_replicas)
                            == d.spec.as_ref().and_then(|sp| sp.replicas)
                })
                .count()
                >= n
        },
    )
    .await
}

/// Time until `n` bench Tenants (role herald) satisfy `ok`.
async fn wait_tenants(
    client: Client,
    n: usize,
    timeout: Duration,
    ok: fn(&Tenant) -> bool,
) -> R<Duration> {
    let start = Instant::now();
    let api: Api<Tenant> = Api::all(client);
    let cfg = watcher::Config::default().labels(&format!("{BENCH_LABEL}=herald"));
    let mut last = 0;
    watch_until(api, cfg, timeout, format!("{n} Tenants"), |s| {
        let count = s.values().filter(|t| ok(t)).count();
        if count / 100 != last / 100 {
            say(&format!("  {count}/{n} tenants"));
        }
        last = count;
        count >= n
    })
    .await?;
    Ok(start.elapsed())
}

/// When each erasing tenant was first seen in each erasure step (`status.erasure.step`,
/// from a watch of the herald Tenants): where an erasure's time goes. Steps a pass goes
/// through without writing status are never seen.
struct StepTimeline {
    seen: StepsSeen,
    task: tokio::task::JoinHandle<()>,
}

/// Per tenant, each step it was seen in and when (seconds from the start).
type StepsSeen = std::sync::Arc<std::sync::Mutex<BTreeMap<String, Vec<(String, f64)>>>>;

#[derive(Serialize)]
struct StepRow {
    step: String,
    tenants: usize,
    /// Seconds from the start of erasure until the median / the last tenant entered it.
    entered_median: f64,
    entered_p90: f64,
    entered_last: f64,
    /// Mean seconds a tenant spent in it (until it was seen in its next step).
    mean_in: f64,
}

impl StepTimeline {
    fn start(client: Client) -> Self {
        let seen: StepsSeen = Default::default();
        let start = Instant::now();
        let api: Api<Tenant> = Api::all(client);
        let cfg = watcher::Config::default().labels(&format!("{BENCH_LABEL}=herald"));
        let into = seen.clone();
        let task = tokio::spawn(async move {
            let events = watcher(api, cfg).default_backoff().applied_objects();
            futures::pin_mut!(events);
            while let Some(Ok(t)) = events.next().await {
                let Some(step) = t
                    .status
                    .as_ref()
                    .and_then(|s| s.erasure.as_ref())
                    .and_then(|e| e.step.clone())
                else {
                    continue;
                };
                let mut seen = into.lock().unwrap_or_else(|p| p.into_inner());
                let steps = seen.entry(t.name_any()).or_default();
                if steps.last().is_none_or(|(s, _)| *s != step) {
                    steps.push((step, start.elapsed().as_secs_f64()));
                }
            }
        });
        Self { seen, task }
    }

    fn finish(self) -> Vec<StepRow> {
        self.task.abort();
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut entered: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut spent: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for steps in seen.values() {
            for (i, (step, at)) in steps.iter().enumerate() {
                entered.entry(step).or_default().push(*at);
                if let Some((_, next)) = steps.get(i + 1) {
                    spent.entry(step).or_default().push(next - at);
                }
            }
        }
        use herald::controller::tenant::erasure::step::Step;
        Step::ALL
            .iter()
            .map(|s| s.as_str())
            .filter_map(|step| {
                let mut at = entered.get(step)?.clone();
                at.sort_by(f64::total_cmp);
                let ins = spent.get(step).cloned().unwrap_or_default();
                Some(StepRow {
                    step: step.to_owned(),
                    tenants: at.len(),
                    entered_median: at[at.len() / 2],
                    entered_p90: at[at.len() * 9 / 10],
                    entered_last: at[at.len() - 1],
                    mean_in: if ins.is_empty() {
                        0.0
                    } else {
                        ins.iter().sum::<f64>() / ins.len() as f64
                    },
                })
            })
            .collect()
    }
}

async fn wait_bindings(client: Client, n: usize, timeout: Duration) -> R<Duration> {
    let start = Instant::now();
    let api: Api<ChannelBinding> = Api::namespaced(client, CONTROL_NS);
    let cfg = watcher::Config::default().labels(&format!("{BENCH_LABEL}=herald"));
    watch_until(api, cfg, timeout, format!("{n} ChannelBindings"), |s| {
        s.values()
            .filter(|b| is_ready(b.status.as_ref().map(|s| &s.conditions[..])))
            .count()
            >= n
    })
    .await?;
    Ok(start.elapsed())
}

/// Deletes the namespaces and returns the time until all are gone.
async fn delete_namespaces(
    client: &Client,
    parallel: usize,
    names: &[String],
    timeout: Duration,
) -> R<Duration> {
    let start = Instant::now();
    let api: Api<Namespace> = Api::all(client.clone());
    stream::iter(names.iter().map(|n| {
        let api = api.clone();
        async move {
            match api.delete(n, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(format!("delete namespace {n}: {e}")),
            }
        }
    }))
    .buffer_unordered(parallel)
    .try_collect::<Vec<()>>()
    .await?;
    let wanted: HashSet<String> = names.iter().map(|n| format!("/{n}")).collect();
    let cfg = watcher::Config::default().labels(herald::controller::TENANT_LABEL);
    watch_until(
        api,
        cfg,
        timeout,
        format!("{} namespaces gone", names.len()),
        |s| !s.keys().any(|k| wanted.contains(k)),
    )
    .await?;
    Ok(start.elapsed())
}

/// Removes every bench object (an earlier run's too): Tenants and bindings (finalizers
/// dropped: no operator runs now), Secrets and receipts in the control namespace, and
/// the tenant namespaces, waiting until they are gone.
async fn cleanup(client: &Client) -> R<()> {
    let lp = ListParams::default().labels(BENCH_LABEL);
    let tenants: Api<Tenant> = Api::all(client.clone());
    let n = drop_finalizers(&tenants, &lp).await?;
    if n > 0 {
        say(&format!("cleanup: {n} bench Tenants"));
    }
    tenants
        .delete_collection(&DeleteParams::background(), &lp)
        .await?;
    let bindings: Api<ChannelBinding> = Api::namespaced(client.clone(), CONTROL_NS);
    drop_finalizers(&bindings, &lp).await?;
    bindings
        .delete_collection(&DeleteParams::background(), &lp)
        .await?;
    Api::<Secret>::namespaced(client.clone(), CONTROL_NS)
        .delete_collection(&DeleteParams::background(), &lp)
        .await?;
    // Deletion receipts of bench tenants. Receipts are evidence: the admission policy
    // lets only the break-glass group delete them, so the bench acts as a member.
    let mut glass = kube::Config::infer().await?;
    glass.auth_info.impersonate = Some("herald-bench".into());
    glass.auth_info.impersonate_groups = Some(vec![
        "system:masters".into(),
        "herald-evidence-admins".into(),
    ]);
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(kube::Client::try_from(glass)?, CONTROL_NS);
    for cm in cms
        .list_metadata(&ListParams::default().labels("herald.dev/receipt-for"))
        .await?
        .items
    {
        let tenant = cm
            .labels()
            .get("herald.dev/receipt-for")
            .cloned()
            .unwrap_or_default();
        if tenant.starts_with("bh-") || tenant.starts_with("bf-") {
            let _ = cms.delete(&cm.name_any(), &DeleteParams::default()).await;
        }
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let left: Vec<String> = namespaces
        .list_metadata(&ListParams::default().labels(herald::controller::TENANT_LABEL))
        .await?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .filter(|n| n.starts_with("tenant-bh-") || n.starts_with("tenant-bf-"))
        .collect();
    if !left.is_empty() {
        say(&format!("cleanup: {} bench namespaces", left.len()));
        delete_namespaces(client, 64, &left, Duration::from_secs(1800)).await?;
    }
    Ok(())
}

/// Removes every finalizer from the objects `lp` selects (Herald's included: no operator
/// runs to release them); returns how many objects there are.
async fn drop_finalizers<K>(api: &Api<K>, lp: &ListParams) -> R<usize>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api.list_metadata(lp).await?;
    stream::iter(
        list.items
            .iter()
            .filter(|o| !o.finalizers().is_empty())
            .map(|o| {
                let name = o.name_any();
                async move {
                    let patch = json!({"metadata": {"finalizers": null}});
                    let _ = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await;
                }
            }),
    )
    .buffer_unordered(32)
    .collect::<Vec<()>>()
    .await;
    Ok(list.items.len())
}

// ------------------------------------------------------------------------ operator

struct Operator {
    child: std::process::Child,
    pid: u32,
    metrics_url: String,
}

impl Operator {
    async fn start(o: &Opts, kubeconfig: &Path) -> R<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
        let log = std::fs::File::create(dir.join(format!("herald-n{}.log", o.n)))?;
        if !o.herald_bin.exists() {
            return Err(format!(
                "{} is missing: `cargo build --release` (make bench does)",
                o.herald_bin.display()
            )
            .into());
        }
        let child = Command::new(&o.herald_bin)
            .args(["run", "--http-addr", &addr, "--log-format", "json"])
            .args(["--concurrency", &o.concurrency.to_string()])
            .args(["--tenant-selector", &format!("{BENCH_LABEL}=herald")])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("HERALD_TENANT_SELECTOR")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut op = Self {
            pid: child.id(),
            child,
            metrics_url: format!("http://{addr}/metrics"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = op.child.try_wait()? {
                return Err(format!("the operator exited ({status}); see target/bench/").into());
            }
            if http_get(&format!("http://{addr}/readyz")).await.is_ok() {
                return Ok(op);
            }
            if Instant::now() > deadline {
                op.stop();
                return Err("the operator was not ready within 60s".into());
            }
            // A process's endpoint: nothing to watch.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn status_kib(&self, field: &str) -> R<f64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let line = text
            .lines()
            .find(|l| l.starts_with(field))
            .ok_or_else(|| format!("no {field} in /proc/{}/status", self.pid))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .ok_or("malformed status line")?
            .parse()?)
    }

    fn peak_rss_mib(&self) -> R<f64> {
        Ok(self.status_kib("VmHWM:")? / 1024.0)
    }

    fn cpu_seconds(&self) -> R<f64> {
        let text = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the command (which may hold spaces), from field 3 on.
        let rest = text.rsplit_once(')').ok_or("malformed stat")?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11).ok_or("no utime")?.parse::<f64>()?
            + f.get(12).ok_or("no stime")?.parse::<f64>()?;
        let hz: f64 = run_cmd("getconf", &["CLK_TCK"], None)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0);
        Ok(ticks / hz)
    }

    async fn metrics(&self) -> R<String> {
        http_get(&self.metrics_url).await
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How busy the machine's CPUs were (all processes: the control plane, the operator,
/// the bench) since `start`, from /proc/stat: whether a phase was bound by CPU.
struct MachineBusy((u64, u64));

impl MachineBusy {
    fn start() -> Self {
        Self(Self::ticks())
    }

    /// (busy, total) jiffies since boot; zeros where /proc/stat cannot be read.
    fn ticks() -> (u64, u64) {
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let f: Vec<u64> = text
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let total: u64 = f.iter().sum();
        // idle and iowait
        let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
        (total - idle, total)
    }

    fn fraction(&self) -> f64 {
        let (b1, t1) = Self::ticks();
        let (b0, t0) = self.0;
        if t1 > t0 {
            (b1 - b0) as f64 / (t1 - t0) as f64
        } else {
            f64::NAN
        }
    }
}

/// The reconcile counters and the time spent in reconciles, per controller.
fn reconcile_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| {
            l.starts_with("herald_reconcile_total")
                || l.starts_with("herald_reconcile_duration_seconds_sum")
        })
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn writes_metric(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with("herald_api_writes_total"))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

async fn http_get(url: &str) -> R<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").ok_or("not an http URL")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    stream
        .write_all(format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if head
        .split_whitespace()
        .nth(1)
        .is_some_and(|c| c.starts_with('2'))
    {
        Ok(body.to_owned())
    } else {
        Err(format!("GET {url}: {head}").into())
    }
}

// ------------------------------------------------------------------------ audit log

/// Requests of one user in a time window, from the apiserver's audit log.
#[derive(Default, Serialize)]
struct Requests {
    mutating: u64,
    reads: u64,
    by_verb: BTreeMap<String, u64>,
    /// `verb resource[/subresource]` → count: where the requests went.
    by_target: BTreeMap<String, u64>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    verb: String,
    user: User,
    stage: String,
    stage_timestamp: String,
    #[serde(default)]
    object_ref: Option<ObjRef>,
}
#[derive(serde::Deserialize)]
struct User {
    username: String,
}
#[derive(serde::Deserialize, Default)]
struct ObjRef {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: String,
}

/// Per tenth of a second, user, verb and target (`verb resource[/subresource]`): how many requests
/// completed. Filled by [`Tail`] as the apiserver writes its audit log, so that the log's
/// rotation (at 200 MB, one backup) loses nothing, whatever N.
type Buckets = BTreeMap<(i64, String, String, String), u64>;

/// Follows the audit log from its current end, across rotations, counting the requests
/// of the users of interest into [`Buckets`].
struct Tail {
    buckets: std::sync::Arc<std::sync::Mutex<Buckets>>,
}

impl Tail {
    fn start(log: &Path, users: &[&str]) -> R<Self> {
        use std::io::{BufRead, Seek, SeekFrom};
        use std::os::unix::fs::MetadataExt;
        let buckets = std::sync::Arc::new(std::sync::Mutex::new(Buckets::new()));
        let needles: Vec<(String, String)> = users
            .iter()
            .map(|u| ((*u).to_owned(), format!("\"username\":\"{u}\"")))
            .collect();
        let path = log.to_owned();
        let mut file = std::fs::File::open(&path)?;
        file.seek(SeekFrom::End(0))?;
        let out = buckets.clone();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(file);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => {
                        // At the end: rotated (a new file under the name) or just idle.
                        let rotated = match (std::fs::metadata(&path), reader.get_ref().metadata())
                        {
                            (Ok(now), Ok(ours)) => now.ino() != ours.ino(),
                            _ => false,
                        };
                        if rotated && let Ok(f) = std::fs::File::open(&path) {
                            reader = std::io::BufReader::new(f);
                            continue;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    Ok(_) if !line.ends_with('\n') => {
                        // A line being written: wait for its end.
                        let len = line.len() as i64;
                        let _ = reader.seek_relative(-len);
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Ok(_) => {
                        let Some((user, _)) =
                            needles.iter().find(|(_, n)| line.contains(n.as_str()))
                        else {
                            continue;
                        };
                        let Ok(e) = serde_json::from_str::<Entry>(&line) else {
                            continue;
                        };
                        if e.stage != "ResponseComplete" || e.user.username != *user {
                            continue;
                        }
                        let Ok(at) = e.stage_timestamp.parse::<Timestamp>() else {
                            continue;
                        };
                        let r = e.object_ref.unwrap_or_default();
                        let target = if r.subresource.is_empty() {
                            format!("{} {}", e.verb, r.resource)
                        } else {
                            format!("{} {}/{}", e.verb, r.resource, r.subresource)
                        };
                        if let Ok(mut b) = out.lock() {
                            *b.entry((at.as_millisecond() / 100, user.clone(), e.verb, target))
                                .or_default() += 1;
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        Ok(Self { buckets })
    }

    /// The requests of `user` that completed in [`from`, `to`) (to a tenth of a second).
    fn count(&self, user: &str, from: Timestamp, to: Timestamp) -> R<Requests> {
        // The log backend writes as requests complete; give the last ones a moment.
        std::thread::sleep(Duration::from_millis(1500));
        let mut out = Requests::default();
        let b = self.buckets.lock().map_err(|_| "audit tail poisoned")?;
        for ((sec, u, verb, target), n) in b.iter() {
            if u != user || *sec < from.as_millisecond() / 100 || *sec >= to.as_millisecond() / 100
            {
                continue;
            }
            *out.by_verb.entry(verb.clone()).or_default() += n;
            *out.by_target.entry(target.clone()).or_default() += n;
            if MUTATING.contains(&verb.as_str()) {
                out.mutating += n;
            } else if READS.contains(&verb.as_str()) {
                out.reads += n;
            }
        }
        Ok(out)
    }
}
