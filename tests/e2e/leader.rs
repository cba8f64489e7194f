//! Leader election with real operator processes: exactly one holds the Lease and
//! reconciles, the standby writes nothing; SIGKILL the leader and the standby takes
//! over within 15 s; SIGTERM a leader and it hands over at once (lease released); a
//! leader that can no longer renew stops before its lease expires. The same processes
//! show the liveness probe failing on a watch that cannot recover.
//!
//! How this coexists with the shared operator of the suite (`common::operator`), which
//! reconciles every tenant of the other tests at the same time: the two processes here
//! run with a unique Lease *and* as a ServiceAccount of their own that holds only the
//! read half of the chart's permissions (get/list/watch, no Secrets) plus the Lease. So
//! their leader really runs every controller (watches, reconciles — which find the
//! shared operator's tenants converged and stay quiet) but any write it attempted would
//! be refused: it can never fight the shared operator, and no provider or webhook call
//! can happen without the Secrets it cannot read. Giving all three processes one Lease
//! instead would make the test kill the suite's own operator, or wait for it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams};
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

use crate::audit;
use crate::common::{
    CONTROL_NAMESPACE, WAIT, client, ensure_namespace, http_get, install_crds, repo_root, unique,
};
use crate::identity::{apply, objects, render, token_kubeconfig};

/// The read-only ClusterRole and Role (the same for every run, applied idempotently);
/// each run binds them to a ServiceAccount of its own, so that a leftover binding of an
/// earlier, failed run can never keep access the test revokes.
const ROLE: &str = "herald-e2e-leader";

/// One operator process, SIGKILLed when dropped.
struct Replica {
    identity: String,
    addr: String,
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    async fn metrics(&self) -> String {
        http_get(&format!("http://{}/metrics", self.addr))
            .await
            .unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The sum of a metric family's samples (0 when absent).
fn sample_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The read half of the chart's roles (no Secrets), and the Lease, as [`ROLE`].
fn apply_read_only_roles() {
    let read = ["get", "list", "watch"];
    let mut cluster_rules = Vec::new();
    let mut control_rules = vec![json!({
        "apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
        "verbs": ["get", "create", "update"]
    })];
    for o in objects(&render(&[])) {
        let kind = o["kind"].as_str().unwrap_or("");
        if kind != "ClusterRole" && kind != "Role" {
            continue;
        }
        for mut rule in o["rules"].as_array().cloned().unwrap_or_default() {
            let resources = rule["resources"].as_array().cloned().unwrap_or_default();
            if resources.iter().any(|r| r == "secrets" || r == "leases") {
                continue;
            }
            let verbs: Vec<Value> = rule["verbs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|v| read.contains(&v.as_str().unwrap_or("")))
                .collect();
            if verbs.is_empty() {
                continue;
            }
            rule["verbs"] = Value::Array(verbs);
            if kind == "ClusterRole" {
                cluster_rules.push(rule);
            } else {
                control_rules.push(rule);
            }
        }
    }
    let labels = json!({"herald.dev/e2e": "leader"});
    apply(&[
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": ROLE, "labels": labels}, "rules": cluster_rules}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": ROLE, "namespace": CONTROL_NAMESPACE, "labels": labels},
               "rules": control_rules}),
    ]);
}

/// A ServiceAccount `sa` bound to the read-only ClusterRole, and (binding `sa`) to the
/// Role with the Lease.
fn apply_identity(sa: &str) {
    let subject = json!([{"kind": "ServiceAccount", "name": sa, "namespace": CONTROL_NAMESPACE}]);
    let labels = json!({"herald.dev/e2e": "leader"});
    apply(&[
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": sa, "namespace": CONTROL_NAMESPACE, "labels": labels}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": sa, "labels": labels}, "subjects": subject,
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": sa, "namespace": CONTROL_NAMESPACE, "labels": labels},
               "subjects": subject,
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE}}),
    ]);
}

fn start(identity: &str, lease: &str, kubeconfig: &std::path::Path) -> Replica {
    start_with(identity, lease, kubeconfig, &[])
}

fn start_with(
    identity: &str,
    lease: &str,
    kubeconfig: &std::path::Path,
    env: &[(&str, &str)],
) -> Replica {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let log = repo_root().join(format!("target/e2e-{identity}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["run", "--http-addr", &addr, "--log-format", "text"])
        .args(["--leader-election", "--lease-name", lease])
        .args(["--lease-namespace", CONTROL_NAMESPACE])
        .env("POD_NAME", identity)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info,kube=warn,tower=warn,hyper=warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    Replica {
        identity: identity.to_owned(),
        addr,
        child,
        log,
    }
}

/// Polls a process's endpoint until `ok` holds (no watch exists for a process's
/// metrics); fails with both logs after `WAIT`.
async fn until(what: &str, replicas: &[&Replica], mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok().await {
        assert!(
            Instant::now() < deadline,
            "{what} not within {WAIT:?}; logs:\n{}",
            replicas
                .iter()
                .map(|r| format!("--- {}\n{}", r.identity, r.log()))
                .collect::<String>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the Lease's holder is `want` (a watch on the Lease).
async fn await_holder(leases: &Api<Lease>, lease: &str, want: &[&str], within: Duration) -> String {
    let cond = |l: Option<&Lease>| {
        l.and_then(|l| l.spec.as_ref()?.holder_identity.as_deref())
            .is_some_and(|h| want.contains(&h))
    };
    let found = tokio::time::timeout(within, await_condition(leases.clone(), lease, cond))
        .await
        .unwrap_or_else(|_| panic!("Lease {lease} not held by one of {want:?} within {within:?}"))
        .unwrap();
    found
        .and_then(|l| l.spec?.holder_identity)
        .unwrap_or_default()
}

/// The mutating requests of one replica (its User-Agent names it), in order.
fn writes_of(entries: &[audit::Entry], identity: &str) -> Vec<audit::Entry> {
    let tag = format!("({identity})");
    let mut writes: Vec<_> = entries
        .iter()
        .filter(|e| e.is_mutating() && e.user_agent.ends_with(&tag))
        .cloned()
        .collect();
    writes.sort_by_key(audit::Entry::received);
    writes
}

/// Every write of a replica was received before its lease could expire for others:
/// within the lease duration (10 s) of the start of its last successful renewal.
fn assert_writes_stop_before_expiry(writes: &[audit::Entry], lease: &str, identity: &str) {
    let renewed = writes
        .iter()
        .filter(|e| e.object().resource == "leases" && e.object().name == lease)
        .filter(|e| (200..300).contains(&e.code()))
        .map(audit::Entry::received)
        .max()
        .unwrap_or_else(|| panic!("no successful lease write of {identity} in the audit log"));
    let expiry = renewed + std::time::Duration::from_secs(10);
    let last = writes.last().map(audit::Entry::received).unwrap();
    assert!(
        last < expiry,
        "{identity} wrote at {last}, after its lease (renewed at {renewed}) could expire at {expiry}"
    );
}

#[tokio::test]
async fn one_replica_leads_and_a_standby_takes_over_within_15s() {
    let client = client().await;
    install_crds(&client).await;
    ensure_namespace(&client, CONTROL_NAMESPACE).await;
    apply_read_only_roles();
    let sa = unique("herald-e2e-leader");
    apply_identity(&sa);
    let kubeconfig = repo_root().join(format!("target/e2e-{sa}.kubeconfig"));
    token_kubeconfig(CONTROL_NAMESPACE, &sa, &kubeconfig);

    let lease = unique("herald-e2e-lease");
    let audit_mark = audit::mark();
    let a = start(&format!("{lease}-a"), &lease, &kubeconfig);
    let b = start(&format!("{lease}-b"), &lease, &kubeconfig);
    for r in [&a, &b] {
        let url = format!("http://{}/readyz", r.addr);
        until("ready (leader or standby)", &[&a, &b], async || {
            http_get(&url).await.is_ok()
        })
        .await;
    }

    // Exactly one holds the Lease, says so in herald_leader, and reconciles.
    let leases: Api<Lease> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    let holder = await_holder(&leases, &lease, &[&a.identity, &b.identity], WAIT).await;
    let (leader, standby) = if holder == a.identity { (a, b) } else { (b, a) };
    until(
        "the leader's herald_leader 1 and a tenant reconcile",
        &[&leader, &standby],
        async || {
            let m = leader.metrics().await;
            sample_sum(&m, "herald_leader") == 1.0 && sample_sum(&m, "herald_reconcile_total") > 0.0
        },
    )
    .await;
    let m = standby.metrics().await;
    assert_eq!(sample_sum(&m, "herald_leader"), 0.0, "standby:\n{m}");
    assert_eq!(
        sample_sum(&m, "herald_reconcile_total"),
        0.0,
        "standby reconciled:\n{m}"
    );
    assert_eq!(
        sample_sum(&m, "herald_api_writes_total"),
        0.0,
        "standby wrote:\n{m}"
    );
    let transitions = leases
        .get(&lease)
        .await
        .unwrap()
        .spec
        .unwrap()
        .lease_transitions;

    // SIGKILL the leader: no release, the standby must see the lease expire.
    let mut leader = leader;
    leader.child.kill().unwrap();
    let killed = Instant::now();
    leader.child.wait().unwrap();
    let new = await_holder(
        &leases,
        &lease,
        &[&standby.identity],
        Duration::from_secs(20),
    )
    .await;
    let takeover = killed.elapsed();
    println!("leader election: standby {new} took over {takeover:.1?} after SIGKILL of the leader");
    std::fs::write(
        repo_root().join("target/e2e-leader-takeover.txt"),
        format!("{:.3}\n", takeover.as_secs_f64()),
    )
    .unwrap();
    assert!(
        takeover <= Duration::from_secs(15),
        "takeover took {takeover:?}"
    );
    assert!(
        leases
            .get(&lease)
            .await
            .unwrap()
            .spec
            .unwrap()
            .lease_transitions
            > transitions,
        "a takeover counts as a transition"
    );
    // From the audit log: no write of the killed leader after the new one's first, and
    // none after the killed one's lease could have expired (its last renewal + 10 s).
    let entries = audit::since(audit_mark);
    let old_writes = writes_of(&entries, &leader.identity);
    let new_writes = writes_of(&entries, &standby.identity);
    let last_old = old_writes
        .last()
        .expect("the old leader's lease writes are audited");
    // Its first write that took effect: as a standby it may have tried to create the
    // Lease at start, at the same moment as the other, and been refused (409).
    let first_new = new_writes
        .iter()
        .find(|e| (200..300).contains(&e.code()))
        .expect("the new leader's lease write is audited");
    assert!(
        last_old.received() < first_new.received(),
        "the old leader wrote at {} after the new one's first write at {}",
        last_old.request_received_timestamp,
        first_new.request_received_timestamp
    );
    assert_writes_stop_before_expiry(&old_writes, &lease, &leader.identity);
    until(
        "the new leader's herald_leader 1 and reconciles",
        &[&standby],
        async || {
            let m = standby.metrics().await;
            sample_sum(&m, "herald_leader") == 1.0 && sample_sum(&m, "herald_reconcile_total") > 0.0
        },
    )
    .await;

    // SIGTERM (a rolling update, a drain): the leader stops its controllers and
    // releases the Lease, so a standby takes over at its next retry, not at expiry.
    let c = start(&format!("{lease}-c"), &lease, &kubeconfig);
    let url = format!("http://{}/readyz", c.addr);
    until("the third replica ready", &[&c], async || {
        http_get(&url).await.is_ok()
    })
    .await;
    let term = Command::new("kill")
        .args(["-TERM", &standby.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let terminated = Instant::now();
    await_holder(&leases, &lease, &[&c.identity], Duration::from_secs(10)).await;
    let handover = terminated.elapsed();
    println!(
        "leader election: after SIGTERM of the leader, {} took over in {handover:.1?}",
        c.identity
    );
    // At most the shutdown grace (5 s, reconciles still running are then dropped) plus
    // one retry period: never the lease expiry a crash costs.
    assert!(
        handover < Duration::from_secs(8),
        "handover took {handover:?}: was the lease released?"
    );
    let mut old = standby;
    let status = old.child.wait().unwrap();
    assert!(
        status.success(),
        "a SIGTERMed replica exits 0, got {status}"
    );
    assert!(
        old.log().contains("released the leader lease"),
        "{}",
        old.log()
    );
    let standby = c;
    until("the third replica leads", &[&standby], async || {
        sample_sum(&standby.metrics().await, "herald_leader") == 1.0
    })
    .await;

    // A leader that cannot renew (its access to the Lease revoked) stops reconciling
    // and exits non-zero before the lease could expire for anyone else.
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    bindings
        .delete(&sa, &DeleteParams::default())
        .await
        .unwrap();
    let revoked = Instant::now();
    let mut standby = standby;
    let status = tokio::task::spawn_blocking(move || {
        let status = standby.child.wait();
        (status, standby)
    });
    let (status, standby) = tokio::time::timeout(Duration::from_secs(20), status)
        .await
        .expect("the leader kept running without its lease")
        .unwrap();
    let stopped = revoked.elapsed();
    println!(
        "leader election: a leader that could not renew exited {stopped:.1?} after losing access"
    );
    let status = status.unwrap();
    assert!(!status.success(), "must exit non-zero, got {status}");
    // Renew deadline (6 s) plus one retry period, below the 10 s lease duration.
    assert!(
        stopped < Duration::from_secs(10),
        "stopped after {stopped:?}"
    );
    assert!(
        standby.log().contains("lost the leader lease"),
        "{}",
        standby.log()
    );
    // Its renewals failed from the revocation on (403); the audit log shows that it
    // stopped asking before the lease its last successful renewal bought could expire.
    let writes = writes_of(&audit::since(audit_mark), &standby.identity);
    assert_writes_stop_before_expiry(&writes, &lease, &standby.identity);
    let _ = leases.delete(&lease, &DeleteParams::default()).await;
    let _ = Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(client.clone())
        .delete(&sa, &DeleteParams::default())
        .await;
    let _ =
        Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client, CONTROL_NAMESPACE)
            .delete(&sa, &DeleteParams::default())
            .await;
}

/// A watch that cannot recover (here: the operator may not list what it watches) makes
/// `/healthz`, the liveness probe, fail once it has failed for the stall limit, naming
/// the watch, so that Kubernetes restarts the pod; once the watch recovers (access
/// granted), `/healthz` answers 200 again without a restart.
#[tokio::test]
async fn a_watch_that_cannot_recover_fails_the_liveness_probe() {
    let client = client().await;
    install_crds(&client).await;
    ensure_namespace(&client, CONTROL_NAMESPACE).await;
    apply_read_only_roles();
    let sa = unique("herald-e2e-live");
    apply_identity(&sa);
    let kubeconfig = repo_root().join(format!("target/e2e-{sa}.kubeconfig"));
    token_kubeconfig(CONTROL_NAMESPACE, &sa, &kubeconfig);
    // The Lease stays allowed (the control-namespace Role); the cluster-wide reads go.
    let cluster_bindings =
        Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(client.clone());
    cluster_bindings
        .delete(&sa, &DeleteParams::default())
        .await
        .unwrap();
    let lease = unique("herald-e2e-live-lease");
    let replica = start_with(
        &format!("{lease}-a"),
        &lease,
        &kubeconfig,
        // Without its cluster-wide reads it cannot show its admission policies in force
        // either: told to start anyway, since watches are what this test is about.
        &[
            ("HERALD_WATCH_STALL_LIMIT_SECONDS", "5"),
            ("HERALD_ALLOW_MISSING_ADMISSION_POLICIES", "true"),
        ],
    );
    let healthz = format!("http://{}/healthz", replica.addr);
    until("/healthz up", &[&replica], async || {
        http_get(&healthz).await.is_ok()
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    await_holder(&leases, &lease, &[&replica.identity], WAIT).await;

    until("/healthz failing", &[&replica], async || {
        http_get(&healthz).await == Err("HTTP 503".to_owned())
    })
    .await;
    let body = raw_get(&replica.addr, "/healthz").await;
    assert!(
        body.contains("watches failing without recovery") && body.contains("herald::api::v1alpha1"),
        "{body}"
    );
    // /readyz is another question (is it serving?): it stays up, the pod just restarts.
    assert!(
        http_get(&format!("http://{}/readyz", replica.addr))
            .await
            .is_ok()
    );

    apply_identity(&sa);
    until("/healthz recovered", &[&replica], async || {
        http_get(&healthz).await.is_ok()
    })
    .await;
    let _ = leases.delete(&lease, &DeleteParams::default()).await;
    let _ = cluster_bindings.delete(&sa, &DeleteParams::default()).await;
    let _ = Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(
        client.clone(),
        CONTROL_NAMESPACE,
    )
    .delete(&sa, &DeleteParams::default())
    .await;
    let _ =
        Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client, CONTROL_NAMESPACE)
            .delete(&sa, &DeleteParams::default())
            .await;
}

/// The body of a GET, whatever its status.
async fn raw_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}
