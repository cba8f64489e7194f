//! Helpers shared by the e2e tests: a client that fails loudly, unique names, kubectl,
//! and Herald's CRDs installed once.

#![allow(dead_code)] // each test module uses a different subset

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};

/// Label on everything the e2e tests create, so a run can be cleaned up by label.
pub const E2E_LABEL: &str = "herald.dev/e2e";

/// How long a wait on the cluster may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(90);

/// A client for the cluster in KUBECONFIG. Fails the test, with what to do, when there
/// is no reachable cluster: an e2e test that cannot run must not look green.
pub async fn client() -> Client {
    let client = match Client::try_default().await {
        Ok(c) => c,
        Err(e) => panic!(
            "no Kubernetes client ({e}); run `make e2e`, or `eval \"$(e2e/cluster/cluster.sh env)\"` first"
        ),
    };
    if let Err(e) = client.apiserver_version().await {
        panic!("the cluster in KUBECONFIG is unreachable ({e}); run `make cluster-up`");
    }
    client
}

/// A name no other test (or earlier run) uses: `prefix-<pid>-<counter>-<time>`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000)
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{t}", std::process::id() % 10_000)
}

/// The repository root (for examples/, crds/).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs kubectl (from PATH, against KUBECONFIG) with `args`.
pub fn kubectl(args: &[&str]) -> Output {
    std::process::Command::new("kubectl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run kubectl (is it on PATH? `eval \"$(e2e/cluster/cluster.sh env)\"`): {e}"
            )
        })
}

/// `kubectl apply` as the e2e field manager, server-side, taking over fields others
/// set; the manifests follow (`-f …`).
pub const APPLY: &[&str] = &[
    "apply",
    "--server-side",
    "--force-conflicts",
    "--field-manager=herald-e2e",
];

/// Server-side applies the manifests at `path` (a file or a directory) as the e2e
/// field manager. Server-side, because parallel tests apply the same examples: a
/// client-side `kubectl apply` reads, finds nothing and creates, so two at once fail
/// with AlreadyExists; the API server's apply creates-or-updates in one step.
pub fn apply_manifests(path: &Path) {
    let out = kubectl(&[APPLY, &["-f", &path.to_string_lossy()]].concat());
    assert!(
        out.status.success(),
        "kubectl apply -f {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Applies examples/ (control namespace, retention policies, subprocessors, tenants …).
pub fn apply_examples() {
    apply_manifests(&repo_root().join("examples"));
}

/// Server-side applies Herald's CRDs (generated from the types, as `herald crds`
/// does) and waits until each is Established. Idempotent; safe from parallel tests.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply("herald-e2e").force();
    for crd in herald::api::crds() {
        let name = crd.name_any();
        api.patch(&name, &pp, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        tokio::time::timeout(
            WAIT,
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established in time"))
        .unwrap_or_else(|e| panic!("watch CRD {name}: {e}"));
    }
    install_admission_policies(client).await;
}

/// Applies the ValidatingAdmissionPolicies in deploy/admission/ and waits until the API
/// server enforces them (policies load asynchronously after they are created).
async fn install_admission_policies(client: &Client) {
    use herald::api::v1alpha1::Tenant;
    use kube::api::DeleteParams;
    apply_manifests(&repo_root().join("deploy/admission"));
    // The operator scope policy as the chart renders it for the e2e erasure scope (its
    // namespaces' labels are the chart's to fill in).
    crate::identity::apply(&erasure_scope_policy());
    // A protected canary tenant: its dry-run deletion is refused once the policy is live.
    let tenants: Api<Tenant> = Api::all(client.clone());
    let canary: Tenant = serde_json::from_value(serde_json::json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": "e2e-admission-canary", "labels": {E2E_LABEL: "canary"}},
        "spec": {"displayName": "canary", "contract": {"state": "Suspended"},
                 "residency": {"regions": ["eu-central-1"]}, "retentionPolicyRef": {"name": "standard-eu"}}
    }))
    .unwrap_or_else(|e| panic!("canary tenant: {e}"));
    tenants
        .patch(
            "e2e-admission-canary",
            &PatchParams::apply("herald-e2e"),
            &Patch::Apply(&canary),
        )
        .await
        .unwrap_or_else(|e| panic!("apply canary tenant: {e}"));
    let deadline = std::time::Instant::now() + WAIT;
    let dry_run = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    while tenants
        .delete("e2e-admission-canary", &dry_run)
        .await
        .is_ok()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "deploy/admission policies not enforced after {WAIT:?}"
        );
        // Nothing to watch: the policy's loading is internal to the API server.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Label of Tenants that a test's own operator reconciles instead of the shared one.
pub const SHARD_LABEL: &str = "herald.dev/e2e-shard";

/// The operator's control namespace (the compiled-in default configuration).
pub const CONTROL_NAMESPACE: &str = "herald-system";

/// The Herald operator every test of this process shares.
///
/// One operator per test binary: tests run in parallel, and two operators on one
/// cluster would fight over the same objects. It is started on first use by
/// [`operator`] and lives as long as the test process.
///
/// How it dies with the process (without `libc` or a destructor on a static, which Rust
/// never runs): the operator is started by a small `sh` wrapper whose stdin is a pipe
/// from this process. The write end lives in the static; when the test process exits
/// for any reason (success, panic, abort, even SIGKILL) the kernel closes it, the
/// wrapper's `cat` sees end-of-file and the wrapper kills the operator. The wrapper
/// also writes the operator's pid to `target/e2e-operator.pid` so a stray one can be
/// found by hand.
pub struct Operator {
    /// `http://127.0.0.1:<port>/metrics` of the shared operator.
    pub metrics_url: String,
    /// The file the operator's log lines (stdout and stderr, text format) go to.
    pub log_path: PathBuf,
    /// Keeps the wrapper's stdin open; dropped (closed) only at process exit.
    _lifeline: std::sync::Mutex<std::process::ChildStdin>,
}

impl Operator {
    /// The operator's `/metrics` text (OpenMetrics).
    pub async fn metrics(&self) -> String {
        http_get(&self.metrics_url)
            .await
            .unwrap_or_else(|e| panic!("GET {}: {e}", self.metrics_url))
    }

    /// Everything the operator has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.log_path.display()))
    }
}

/// The shared operator, started on first call: Herald's CRDs installed, the control
/// namespace present, the binary running with this test's KUBECONFIG and `/readyz`
/// answering 200.
pub async fn operator() -> &'static Operator {
    static OPERATOR: tokio::sync::OnceCell<Operator> = tokio::sync::OnceCell::const_new();
    OPERATOR.get_or_init(start_operator).await
}

/// The path of an e2e tool that `e2e/cluster/build.sh <target>` builds on first use
/// (cached in ~/.cache/herald) and prints.
pub fn e2e_tool(target: &str) -> PathBuf {
    let out = std::process::Command::new(repo_root().join("e2e/cluster/build.sh"))
        .arg(target)
        .output()
        .unwrap_or_else(|e| panic!("cannot run e2e/cluster/build.sh {target}: {e}"));
    assert!(
        out.status.success(),
        "e2e/cluster/build.sh {target} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Stall bound of the shared operator (`health.stallAfterSeconds`).
pub const STALL_AFTER_SECONDS: i64 = 30;

async fn start_operator() -> Operator {
    {
        // A client of its own: the caller's runtime ends with its test.
        let client = client().await;
        install_crds(&client).await;
        ensure_namespace(&client, CONTROL_NAMESPACE).await;
        put_provider_token(&client).await;
    }
    let kubeconfig = crate::identity::chart_operator_kubeconfig();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"));
    let addr = format!("127.0.0.1:{port}");
    let target = repo_root().join("target");
    let log_path = target.join(format!("e2e-operator-{}.log", std::process::id()));
    let pid_path = target.join("e2e-operator.pid");
    let config_path = target.join(format!("e2e-operator-{}.yaml", std::process::id()));
    std::fs::write(&config_path, e2e_config())
        .unwrap_or_else(|e| panic!("write {}: {e}", config_path.display()));
    let log = std::fs::File::create(&log_path)
        .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
    let log_err = log
        .try_clone()
        .unwrap_or_else(|e| panic!("clone log handle: {e}"));
    // $0 = binary, $1 = address, $2 = pid file, $3 = configuration. `cat` returns when
    // our end of the pipe closes (this process exited); then the operator is stopped
    // like a pod (SIGTERM).
    let script = r#"exec 3<&0; "$0" run --http-addr "$1" --log-format text --config "$3" </dev/null & pid=$!; echo $pid >"$2"; cat <&3 >/dev/null; kill $pid 2>/dev/null; wait $pid"#;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_herald"))
        .arg(&addr)
        .arg(&pid_path)
        .arg(&config_path)
        // HERALD_E2E_RUST_LOG overrides the operator's log filter when debugging a test.
        .env(
            "RUST_LOG",
            std::env::var("HERALD_E2E_RUST_LOG")
                .unwrap_or_else(|_| "info,kube=warn,tower=warn,hyper=warn".into()),
        )
        // The chart's ServiceAccount (a token, not the admin's credentials): every
        // scenario proves the chart's RBAC suffices, and the audit log tells the
        // operator's requests (system:serviceaccount:herald-system:herald) from the
        // tests' own.
        .env("KUBECONFIG", &kubeconfig)
        // The tests' webhook receivers and fake providers listen on 127.0.0.1, which the
        // outbound guard refuses unless told otherwise (tests and local development only).
        .env("HERALD_ALLOW_LOOPBACK_EGRESS", "true")
        // Tenants labelled herald.dev/e2e-shard belong to operators a test starts and
        // kills itself (tests/e2e/erasure.rs); the shared operator leaves them alone.
        .env("HERALD_TENANT_SELECTOR", format!("!{SHARD_LABEL}"))
        .stdin(std::process::Stdio::piped())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the operator: {e}"));
    let lifeline = child
        .stdin
        .take()
        .unwrap_or_else(|| panic!("operator wrapper has no stdin"));
    let ready_url = format!("http://{addr}/readyz");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the operator exited ({status}) before it was ready; its log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        if http_get(&ready_url).await.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the operator was not ready within {WAIT:?}; its log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        // Polling a process's endpoint: there is no watch to await here.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The wrapper process is reaped by the OS at exit; only its stdin matters to us.
    drop(child);
    Operator {
        metrics_url: format!("http://{addr}/metrics"),
        log_path,
        _lifeline: std::sync::Mutex::new(lifeline),
    }
}

/// The shared operator's configuration: the compiled-in default plus the platform's one
/// provider, the loopback router of [`crate::provider_router`].
///
/// The stall bound is seconds, not 15 minutes, so that tests/e2e/health.rs sees an
/// unreachable provider read as Stalled.
pub fn e2e_config() -> String {
    use crate::provider_router::{PROVIDER, TOKEN_SECRET, router};
    let default = herald::config::DEFAULT_CONFIG;
    let text = default.replace(
        "stallAfterSeconds: 900",
        &format!("stallAfterSeconds: {STALL_AFTER_SECONDS}"),
    );
    assert_ne!(
        text, default,
        "config/herald.yaml has no stallAfterSeconds: 900"
    );
    format!(
        "{text}\nproviders:\n  {PROVIDER}:\n    baseUrl: {}\n    authSecretRef: {{name: {TOKEN_SECRET}, key: token}}\n{}",
        router().base_url,
        erasure_scope_yaml()
    )
}

/// The platform's provider token in the control namespace (the Secret the e2e
/// configuration names; no tenant label: it is the platform's).
async fn put_provider_token(client: &Client) {
    use crate::provider_router::{TOKEN_SECRET, router};
    use k8s_openapi::api::core::v1::Secret;
    let s: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": TOKEN_SECRET, "labels": {E2E_LABEL: "provider"}},
        "stringData": {"token": router().token},
    }))
    .unwrap_or_else(|e| panic!("token secret: {e}"));
    Api::<Secret>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .patch(
            TOKEN_SECRET,
            &PatchParams::apply("herald-e2e").force(),
            &Patch::Apply(&s),
        )
        .await
        .unwrap_or_else(|e| panic!("apply Secret {TOKEN_SECRET}: {e}"));
}

/// Creates namespace `name` unless it exists.
pub async fn ensure_namespace(client: &Client, name: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name}
    }))
    .unwrap_or_else(|e| panic!("namespace object: {e}"));
    api.patch(name, &PatchParams::apply("herald-e2e"), &Patch::Apply(&ns))
        .await
        .unwrap_or_else(|e| panic!("apply namespace {name}: {e}"));
}

/// A plain HTTP/1.0 GET on loopback; `Ok(body)` only for a 2xx answer. Enough for the
/// operator's own endpoints, and no TLS stack to set up in tests.
pub async fn http_get(url: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http URL: {url}"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head.split_whitespace().nth(1).unwrap_or("");
    if code.starts_with('2') {
        Ok(body.to_owned())
    } else {
        Err(format!("HTTP {code}"))
    }
}

/// An operator process of a test's own (killed when dropped), beside the shared one:
/// the Tenants labelled for its shard, the controllers it is given.
pub struct OwnOperator {
    pub child: std::process::Child,
    pub metrics: String,
}

/// An operator of its own for the Tenants labelled for `shard`, running `controllers`.
pub fn own_operator_running(shard: &str, controllers: &str) -> OwnOperator {
    own_operator_with(shard, controllers, true)
}

/// [`own_operator_running`], with loopback egress allowed or, as in production, denied.
pub fn own_operator_with(shard: &str, controllers: &str, allow_loopback: bool) -> OwnOperator {
    own_operator_configured(shard, controllers, &erasure_scope_yaml(), allow_loopback)
}

/// [`own_operator_with`] with `erasure` as the `erasure` section of its configuration.
pub fn own_operator_configured(
    shard: &str,
    controllers: &str,
    erasure: &str,
    allow_loopback: bool,
) -> OwnOperator {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log =
        std::fs::File::create(repo_root().join(format!("target/e2e-shard-{shard}.log"))).unwrap();
    // The compiled-in configuration with an erasure scope (the chart's RBAC is rendered
    // for the shared operator's).
    let config = repo_root().join(format!("target/e2e-shard-{shard}.yaml"));
    std::fs::write(
        &config,
        format!("{}\n{erasure}", herald::config::DEFAULT_CONFIG),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "run",
            "--http-addr",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "text",
            "--controllers",
            controllers,
            "--config",
            &config.to_string_lossy(),
        ])
        .args(["--tenant-selector", &format!("{SHARD_LABEL}={shard}")])
        .env("KUBECONFIG", crate::identity::chart_operator_kubeconfig())
        // The tests' webhook receivers and fake providers listen on 127.0.0.1, which the
        // outbound guard refuses unless told otherwise (tests and local development only).
        .env("HERALD_ALLOW_LOOPBACK_EGRESS", allow_loopback.to_string())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    OwnOperator {
        child,
        metrics: format!("http://127.0.0.1:{port}/metrics"),
    }
}

impl OwnOperator {
    /// Its `/metrics` text.
    pub async fn metrics(&self) -> String {
        http_get(&self.metrics).await.unwrap_or_default()
    }

    pub async fn ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        while http_get(&self.metrics.replace("/metrics", "/readyz"))
            .await
            .is_err()
        {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "own operator exited"
            );
            assert!(Instant::now() < deadline, "own operator not ready");
            // Polling a process's endpoint: nothing to watch.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for OwnOperator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The label that puts a namespace in the shared operator's erasure scope
/// (`erasure.scope.namespaceSelector` of [`e2e_config`], and the chart values the
/// operator's RBAC and admission policy are rendered from).
pub const ERASURE_SCOPE_LABEL: (&str, &str) = ("herald.dev/e2e-erasure-scope", "true");

/// The `erasure` section of the e2e operators' configuration: the erasure scope's
/// namespaces are those labelled [`ERASURE_SCOPE_LABEL`], its kinds the default, and a
/// deletion held for [`STUCK_AFTER_SECONDS`] is recorded as stuck.
pub fn erasure_scope_yaml() -> String {
    format!(
        "erasure:\n  stuckAfterSeconds: {STUCK_AFTER_SECONDS}\n  scope:\n    namespaceSelector: {{matchLabels: {{{}: '{}'}}}}\n",
        ERASURE_SCOPE_LABEL.0, ERASURE_SCOPE_LABEL.1
    )
}

/// `erasure.stuckAfterSeconds` of the e2e operators: seconds, not 10 minutes, so that a
/// test sees a held deletion recorded; well above what a namespace's deletion takes here.
pub const STUCK_AFTER_SECONDS: u64 = 45;

/// `helm template` arguments that give the chart the shared operator's erasure scope.
pub fn erasure_scope_values() -> Vec<String> {
    vec![
        "--set-json".into(),
        format!(
            r#"config.erasure.scope.namespaceSelector={{"matchLabels":{{"{}":"{}"}}}}"#,
            ERASURE_SCOPE_LABEL.0, ERASURE_SCOPE_LABEL.1
        ),
    ]
}

/// The chart's herald-operator-scope policy rendered with [`erasure_scope_values`].
fn erasure_scope_policy() -> Vec<serde_json::Value> {
    let values = erasure_scope_values();
    let mut args: Vec<&str> = values.iter().map(String::as_str).collect();
    args.extend(["--show-only", "templates/admission.yaml"]);
    let policy: Vec<_> = crate::identity::objects(&crate::identity::render(&args))
        .into_iter()
        .filter(|o| o["metadata"]["name"] == "herald-operator-scope")
        .collect();
    assert_eq!(
        policy.len(),
        2,
        "the chart renders herald-operator-scope and its binding"
    );
    policy
}

/// Creates namespace `name` in the e2e operators' erasure scope (labelled
/// [`ERASURE_SCOPE_LABEL`]).
pub async fn scope_namespace(client: &Client, name: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {
        "name": name,
        "labels": {ERASURE_SCOPE_LABEL.0: ERASURE_SCOPE_LABEL.1, E2E_LABEL: "erasure"}
    }}))
    .unwrap_or_else(|e| panic!("namespace object: {e}"));
    api.patch(name, &PatchParams::apply("herald-e2e"), &Patch::Apply(&ns))
        .await
        .unwrap_or_else(|e| panic!("apply namespace {name}: {e}"));
}
