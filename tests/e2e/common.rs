//! Helpers shared by the e2e tests: a client that fails loudly, unique names, kubectl,
//! and Herald's CRDs installed once.

#![allow(dead_code)] // each test module uses a different subset

use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

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
}
