//! The operator refuses to start without its admission policies (issue 25): a chart
//! value (or a hand) that removed one would otherwise leave evidence, the operator's
//! scope and the control namespace unguarded, silently. In this binary, run alone,
//! because the test removes a policy binding of the cluster for a while.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
use kube::api::{Api, DeleteParams};

use crate::common::{WAIT, apply_manifests, client, http_get, operator, repo_root};

/// A `herald run` as the chart's ServiceAccount, with `env`; its log file.
fn start(name: &str, env: &[(&str, &str)]) -> (std::process::Child, String, std::path::PathBuf) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = repo_root().join(format!("target/outage-{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["run", "--http-addr", &format!("127.0.0.1:{port}")])
        .args(["--log-format", "text", "--controllers", "tenant"])
        // A shard nobody labels for: it must not touch the suite's tenants.
        .args([
            "--tenant-selector",
            "herald.dev/shard=outage-admission-none",
        ])
        .env("KUBECONFIG", crate::identity::chart_operator_kubeconfig())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"), log)
}

#[tokio::test]
async fn the_operator_does_not_start_without_its_admission_policies_unless_told() {
    let admin = client().await;
    operator().await; // CRDs, admission policies, the chart's RBAC
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(admin.clone());
    let removed = "herald-tenant-deletion-protection";
    bindings
        .delete(removed, &DeleteParams::default())
        .await
        .unwrap();

    // Without the flag: it stops, naming what is missing.
    let (mut child, _, log) = start("admission-refused", &[]);
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the operator kept running");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "it exited successfully: {text}");
    assert!(
        text.contains("admission policies are not in force")
            && text.contains(&format!("{removed}: no binding")),
        "the log does not say why: {text}"
    );

    // Told to run without them: it runs, and says so in its metrics and log.
    let (mut child, base, log) = start(
        "admission-allowed",
        &[("HERALD_ALLOW_MISSING_ADMISSION_POLICIES", "true")],
    );
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "it exited: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        if let Ok(m) = http_get(&format!("{base}/metrics")).await
            && m.lines()
                .any(|l| l == "herald_admission_policies_missing 1")
        {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "herald_admission_policies_missing never 1"
        );
        // A process's endpoint: nothing to watch.
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(metrics.contains("herald_admission_policies_missing"));
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("running without Herald's admission policies"),
        "{text}"
    );

    apply_manifests(&repo_root().join("deploy/admission"));
    assert!(bindings.get_opt(removed).await.unwrap().is_some());
}
