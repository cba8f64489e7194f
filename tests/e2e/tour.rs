//! The guided tour `make demo` prints (docs/tour.sh), run as written: every command of
//! the file, in order, one line each through bash from the repository root, with a tenant
//! of this test's own in place of acme-retail (its bindings `<tenant>-sms` and
//! `<tenant>-email`, named as the examples name theirs), so that the examples other
//! tests share stay as they are. After each step, what the tour says it does is checked
//! on the cluster and at the demo's own fake provider (e2e/fake-provider/, the code
//! `make demo` runs), reached through the suite's provider router.

use std::collections::BTreeMap;

use herald::api::v1alpha1::{ChannelBinding, Tenant, TenantPhase};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

use crate::channel_binding::{condition, create_tenant, put_secret, wait_binding};
use crate::common::{
    CONTROL_NAMESPACE, E2E_LABEL, WAIT, apply_examples, client, operator, repo_root, unique,
};
use crate::provider_router;

#[allow(dead_code)] // its `main` and arguments are the demo binary's
#[path = "../../e2e/fake-provider/main.rs"]
mod fake_provider;

/// The example tenant the tour is written for.
const TOUR_TENANT: &str = "acme-retail";

/// The tour's steps (`# <n>. …` comment lines open one), each a list of commands with
/// `tenant` in place of [`TOUR_TENANT`] and the test's herald binary in place of the
/// demo's.
fn tour_steps(tenant: &str) -> Vec<Vec<String>> {
    let path = repo_root().join("docs/tour.sh");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut steps: Vec<Vec<String>> = Vec::new();
    for line in text.lines() {
        let opens_step = line
            .strip_prefix("# ")
            .and_then(|rest| rest.split_once(". "))
            .is_some_and(|(n, _)| n.parse::<u32>().is_ok());
        if opens_step {
            steps.push(Vec::new());
        } else if line.starts_with('#') || line.trim().is_empty() || line == "set -euo pipefail" {
            continue;
        } else {
            let step = steps
                .last_mut()
                .unwrap_or_else(|| panic!("{}: a command before step 1: {line}", path.display()));
            step.push(
                line.replace(TOUR_TENANT, tenant)
                    .replace("target/debug/herald", env!("CARGO_BIN_EXE_herald")),
            );
        }
    }
    steps
}

/// Runs one tour command as a reader would (bash, from the repository root); its
/// standard output, or a failure with both streams.
fn run(command: &str) -> String {
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", command])
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "tour command failed ({}): {command}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    stdout
}

/// Creates a binding like the examples' (`<tenant>-<channel>`).
async fn create_binding(
    client: &kube::Client,
    tenant: &str,
    channel: &str,
    sp: &str,
    credential: serde_json::Value,
) {
    let b: ChannelBinding = serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "ChannelBinding",
        "metadata": {"name": format!("{tenant}-{channel}"), "namespace": CONTROL_NAMESPACE,
                     "labels": {E2E_LABEL: "tour"}},
        "spec": {"tenantRef": {"name": tenant}, "channel": channel, "subprocessorRef": {"name": sp},
                 "credential": credential, "rotation": {"intervalDays": 30, "overlapMinutes": 0}}
    }))
    .unwrap();
    Api::<ChannelBinding>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .create(&PostParams::default(), &b)
        .await
        .unwrap();
}

fn ready(b: &ChannelBinding) -> bool {
    condition(b, "Ready").is_some_and(|(s, _)| s == "True")
}

#[tokio::test]
async fn the_tour_make_demo_prints_does_what_each_step_says() {
    let client = client().await;
    operator().await;
    apply_examples(); // the sub-processors and the retention policy the tour's tenant uses
    let tenant = unique("tour");
    let (provider, ledger) = fake_provider::app(provider_router::router().token.clone());
    provider_router::router().register(&tenant, provider);
    create_tenant(
        &client,
        &tenant,
        json!({"residency": {"regions": ["eu-central-1", "eu-west-1"]}}),
    )
    .await;
    put_secret(
        &client,
        &format!("{tenant}-email"),
        Some(&tenant),
        &[("apiKey", "FAKE-tour-key")],
    )
    .await;
    create_binding(
        &client,
        &tenant,
        "sms",
        "nordsignal-sms",
        json!({"providerApi": {"name": provider_router::PROVIDER}}),
    )
    .await;
    create_binding(
        &client,
        &tenant,
        "email",
        "parcelmail-email",
        json!({"secretRef": {"name": format!("{tenant}-email")}}),
    )
    .await;
    let (sms, email) = (format!("{tenant}-sms"), format!("{tenant}-email"));
    wait_binding(&client, &sms, "Ready", ready).await;
    wait_binding(&client, &email, "Ready", ready).await;

    let steps = tour_steps(&tenant);
    assert_eq!(
        steps.len(),
        4,
        "docs/tour.sh: four steps expected: {steps:#?}"
    );
    let outputs = |step: &[String]| step.iter().map(|c| run(c)).collect::<Vec<_>>();

    // 1. Rotation: version 2 from the provider, its Secret listed.
    let out = outputs(&steps[0]);
    let b = wait_binding(&client, &sms, "credentialSecret v2", |b| {
        b.status
            .as_ref()
            .and_then(|s| s.credential_secret.as_deref())
            == Some("herald-cred-sms-v2")
    })
    .await;
    assert_eq!(b.status.unwrap().credential_version, Some(2));
    assert!(
        out.iter().any(|o| o.contains("herald-cred-sms-v2")),
        "secrets listing: {out:?}"
    );
    let minted: Vec<String> = ledger.lock().unwrap().credentials.keys().cloned().collect();
    assert_eq!(
        minted,
        [format!("{tenant}.cred-1"), format!("{tenant}.cred-2")],
        "minted at the provider"
    );

    // 2. The objection: the email binding's sub-processor is no longer effective.
    outputs(&steps[1]);
    let b = wait_binding(
        &client,
        &email,
        "SubprocessorEffective=False Objected",
        |b| condition(b, "SubprocessorEffective") == Some(("False".into(), "Objected".into())),
    )
    .await;
    assert_eq!(b.spec.tenant_ref.name, tenant);
    let t = Api::<Tenant>::all(client.clone())
        .get(&tenant)
        .await
        .unwrap();
    let objected: Vec<&str> = t
        .spec
        .subprocessor_objections
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(objected, ["parcelmail-email"]);

    // 3. Termination 27 days after the contract's end: erased at once, the namespace
    // gone, every credential the provider issued revoked, a receipt written.
    let out = outputs(&steps[2]);
    let t = Api::<Tenant>::all(client.clone())
        .get(&tenant)
        .await
        .unwrap();
    let status = t.status.unwrap();
    assert_eq!(status.phase, Some(TenantPhase::Erased), "{status:?}");
    let deadline = serde_json::to_value(&status.deletion_deadline).unwrap();
    let deadline = deadline
        .as_str()
        .unwrap_or_else(|| panic!("no deadline: {status:?}"));
    assert!(
        out.iter().any(|o| o.contains(deadline)),
        "deadline printed: {out:?}"
    );
    let ns = format!("tenant-{tenant}");
    tokio::time::timeout(
        WAIT,
        await_condition(
            Api::<Namespace>::all(client.clone()),
            &ns,
            |n: Option<&Namespace>| n.is_none(),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("{ns} still exists after erasure"))
    .unwrap();
    let revoked: BTreeMap<String, bool> = ledger
        .lock()
        .unwrap()
        .credentials
        .iter()
        .map(|(id, c)| (id.clone(), c.revoked))
        .collect();
    assert!(
        revoked.values().all(|r| *r),
        "every credential revoked at the provider: {revoked:?}"
    );
    let receipts = Api::<ConfigMap>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .list(&ListParams::default().labels(&format!("herald.dev/receipt-for={tenant}")))
        .await
        .unwrap();
    assert_eq!(receipts.items.len(), 1, "one deletion receipt");

    // 4. The receipt verifies offline against the published keys.
    let out = outputs(&steps[3]);
    let report = out.last().unwrap();
    assert!(
        report.contains(&format!("receipt verifies: tenant {tenant},"))
            && report.contains("trusted key"),
        "the verifier's report: {report}"
    );

    // The tenant is terminated, so its deletion is allowed; the receipt stays (evidence).
    let dp = DeleteParams::default();
    for b in [&sms, &email] {
        let _ = Api::<ChannelBinding>::namespaced(client.clone(), CONTROL_NAMESPACE)
            .delete(b, &dp)
            .await;
    }
    let _ = Api::<Tenant>::all(client.clone())
        .delete(&tenant, &dp)
        .await;
}
