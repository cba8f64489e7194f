//! The Helm chart as the e2e tests use it: rendered with `helm template`, its RBAC
//! applied, and kubeconfigs that authenticate as a ServiceAccount (a token from
//! `kubectl create token`), so that operators under test hold exactly the chart's
//! permissions and not the admin's.

#![allow(dead_code)] // each test module uses a different subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::Value;

use crate::common::{CONTROL_NAMESPACE, kubectl, repo_root};

/// The chart's release name in the tests; its ServiceAccount (and ClusterRole) is
/// `herald`, as in a default install into `herald-system`.
pub const RELEASE: &str = "herald";

/// The chart's ServiceAccount and the audit log's user name for it.
pub const CHART_SA: &str = "herald";

/// The kinds that make up the chart's identity and permissions.
pub const RBAC_KINDS: &[&str] = &[
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// Runs helm (from PATH: `eval "$(e2e/cluster/cluster.sh env)"`).
pub fn helm(args: &[&str]) -> std::process::Output {
    // `helm template` assumes Kubernetes 1.20 unless told, which the chart's kubeVersion
    // refuses: render for the local cluster's version, as Argo CD renders for its own.
    let kube_version = format!("--kube-version={}", kube_version());
    let mut args = args.to_vec();
    if args.first() == Some(&"template") {
        args.push(&kube_version);
    }
    Command::new("helm")
        .args(&args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run helm (is it on PATH? `eval \"$(e2e/cluster/cluster.sh env)\"`): {e}")
        })
}

/// The Kubernetes version of the local control plane (e2e/cluster/versions.env).
pub fn kube_version() -> String {
    std::fs::read_to_string(repo_root().join("e2e/cluster/versions.env"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("K8S_VERSION=").map(str::to_owned))
        .expect("K8S_VERSION in e2e/cluster/versions.env")
}

/// `helm template` of charts/herald as release `herald` in the control namespace, with
/// `extra` arguments (e.g. `--set k=v`). Panics with helm's message on failure.
pub fn render(extra: &[&str]) -> String {
    let mut args = vec![
        "template",
        RELEASE,
        "charts/herald",
        "--namespace",
        CONTROL_NAMESPACE,
    ];
    args.extend_from_slice(extra);
    let out = helm(&args);
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every object of a rendered multi-document YAML stream, as JSON values.
pub fn objects(rendered: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(rendered)
        .filter_map(|doc| Value::deserialize(doc).ok())
        .filter(|v| v.get("kind").is_some())
        .collect()
}

/// Runs kubectl with `input` on stdin.
pub fn kubectl_stdin(args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Server-side applies `objects` (as the admin in KUBECONFIG).
pub fn apply(objects: &[Value]) {
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let out = kubectl_stdin(
        &[crate::common::APPLY, &["-f", "-"]].concat(),
        &list.to_string(),
    );
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `path`: a kubeconfig for ServiceAccount `namespace/sa`, with a 2-hour token
/// from `kubectl create token` and the cluster (server, CA) of the current kubeconfig.
pub fn token_kubeconfig(namespace: &str, sa: &str, path: &Path) {
    let out = kubectl(&[
        "create",
        "token",
        sa,
        "--namespace",
        namespace,
        "--duration=2h",
    ]);
    assert!(
        out.status.success(),
        "kubectl create token {namespace}/{sa}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = kubectl(&["config", "view", "--raw", "--minify", "-o", "json"]);
    assert!(out.status.success(), "kubectl config view failed");
    let current: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cluster = current["clusters"][0]["cluster"].clone();
    assert!(
        cluster.get("server").is_some(),
        "no server in the current kubeconfig"
    );
    let user = format!("system:serviceaccount:{namespace}:{sa}");
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
        "current-context": "e2e",
    });
    std::fs::write(path, config.to_string())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Applies the chart's ServiceAccount, ClusterRole(Binding) and Role(Binding)s (with
/// the shared operator's erasure scope), and returns a kubeconfig that authenticates as
/// that ServiceAccount: the operator under test then holds exactly what a Helm install
/// grants.
pub fn chart_operator_kubeconfig() -> PathBuf {
    // With the shared operator's erasure scope: its RBAC for erasure comes from it.
    let values = crate::common::erasure_scope_values();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let rbac: Vec<Value> = objects(&render(&values))
        .into_iter()
        .filter(|o| RBAC_KINDS.contains(&o["kind"].as_str().unwrap_or("")))
        .collect();
    let names: Vec<String> = rbac
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    for required in [
        "ServiceAccount/herald",
        "ClusterRole/herald",
        "ClusterRoleBinding/herald",
        // Bound by the operator itself in each tenant namespace.
        "ClusterRole/herald-tenant",
        "ClusterRole/herald-erasure",
        "ClusterRoleBinding/herald-erasure",
        "Role/herald-control",
        "RoleBinding/herald-control",
        "Role/herald-leader-election",
        "RoleBinding/herald-leader-election",
    ] {
        assert!(
            names.iter().any(|n| n == required),
            "the chart renders no {required}: {names:?}"
        );
    }
    apply(&rbac);
    let path = repo_root().join(format!(
        "target/e2e-chart-sa-{}.kubeconfig",
        std::process::id()
    ));
    token_kubeconfig(CONTROL_NAMESPACE, CHART_SA, &path);
    path
}
