//! What the tenant stack's NetworkPolicies mean, proven with a real evaluator: the
//! local cluster has no CNI (policies are stored, not enforced), so the live policies of
//! two tenants are run through cyclonus's matcher (`e2e/netpol/`, built from Go modules
//! like the control plane). Traffic is described, never sent: the addresses below are
//! strings the evaluator compares with the policies' CIDRs.
//!
//! Also: the erasure Job Herald creates runs the platform's image (not the one the
//! Tenant names), in the tenant's regions, labelled for the data-plane egress policy.

use std::collections::BTreeMap;

use herald::api::v1alpha1::Tenant;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

use crate::common::{WAIT, apply_examples, client, operator, unique};
use crate::erasure::{days_ago, tenant, terminate_at, wait_ready_active};

/// The evaluator's path, built on first use (cached in ~/.cache/herald).
fn netpol_check() -> std::path::PathBuf {
    crate::common::e2e_tool("netpol")
}

/// Runs the evaluator on `policies` and `cases`: case name → allowed.
fn evaluate(policies: &[NetworkPolicy], cases: &[Value]) -> BTreeMap<String, bool> {
    use std::io::Write;
    let mut child = std::process::Command::new(netpol_check())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!({"policies": policies, "cases": cases});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&input).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "netpol-check failed");
    let verdicts: BTreeMap<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    verdicts
        .into_iter()
        .map(|(k, v)| (k, v["allowed"].as_bool().unwrap()))
        .collect()
}

/// A pod peer of the evaluator.
fn pod(ns: &Namespace, labels: &BTreeMap<String, String>, ip: &str) -> Value {
    json!({
        "namespace": ns.metadata.name,
        "namespaceLabels": ns.metadata.labels,
        "podLabels": labels,
        "ip": ip,
    })
}

/// A case: `from` → `to` on TCP `port` (or UDP when `udp`).
fn case(name: &str, from: &Value, to: &Value, port: u16, udp: bool) -> Value {
    json!({"name": name, "source": from, "destination": to, "port": port,
           "protocol": if udp { "UDP" } else { "TCP" }})
}

async fn wait_for<K>(api: &Api<K>, name: &str) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::time::timeout(
        WAIT,
        await_condition(api.clone(), name, |o: Option<&K>| o.is_some()),
    )
    .await
    .unwrap_or_else(|_| panic!("{name} did not appear"))
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn tenant_policies_mean_what_herald_promises_and_data_plane_jobs_run_the_platforms_image_in_region()
 {
    let client = client().await;
    operator().await;
    apply_examples();
    let config = herald::config::OperatorConfig::load(None).unwrap();
    let (a, b) = (unique("e2e-net-a"), unique("e2e-net-b"));
    let tenants: Api<Tenant> = Api::all(client.clone());
    // Tenant a names its own (sender) image: the data plane must not run it.
    let own_image =
        json!({"spec": {"senders": {"image": "registry.example/tenant-chosen/fake-purge:1"}}});
    for (name, extra) in [(&a, own_image), (&b, json!({}))] {
        tenants
            .create(&PostParams::default(), &tenant(name, None, extra))
            .await
            .unwrap();
    }
    wait_ready_active(&tenants, &a).await;
    wait_ready_active(&tenants, &b).await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut policies = Vec::new();
    let mut ns = BTreeMap::new();
    for t in [&a, &b] {
        let name = format!("tenant-{t}");
        ns.insert(t.clone(), namespaces.get(&name).await.unwrap());
        let np: Api<NetworkPolicy> = Api::namespaced(client.clone(), &name);
        wait_for(&np, herald::controller::tenant::data_plane::EGRESS_POLICY).await;
        policies.extend(np.list(&ListParams::default()).await.unwrap().items);
    }
    let ns_a = format!("tenant-{a}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns_a);
    let sender_labels = |d: &Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap()
    };
    let sender_a =
        sender_labels(&wait_for(&deployments, herald::controller::tenant::build::SENDER).await);
    let deployments_b: Api<Deployment> = Api::namespaced(client.clone(), &format!("tenant-{b}"));
    let sender_b =
        sender_labels(&wait_for(&deployments_b, herald::controller::tenant::build::SENDER).await);
    let cron: Api<CronJob> = Api::namespaced(client.clone(), &ns_a);
    let purge = wait_for(&cron, "herald-purge-logs").await;
    let purge_labels: BTreeMap<String, String> = serde_json::from_value(
        serde_json::to_value(&purge).unwrap()["spec"]["jobTemplate"]["spec"]["template"]
            ["metadata"]["labels"]
            .clone(),
    )
    .unwrap();

    // The erasure Job: watched from before the termination, so it is seen even though
    // kwok completes it at once and erasure then deletes the namespace.
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns_a);
    let erase_job = tokio::spawn({
        let jobs = jobs.clone();
        async move { wait_for(&jobs, "herald-erase").await }
    });
    tenants
        .patch(
            &a,
            &PatchParams::default(),
            &Patch::Merge(terminate_at(days_ago(29))),
        )
        .await
        .unwrap();
    let job = erase_job.await.unwrap();
    let template = job.spec.unwrap().template;
    let erase_labels = template.metadata.unwrap().labels.unwrap();
    let pod_spec = serde_json::to_value(template.spec.unwrap()).unwrap();
    assert_eq!(
        pod_spec["containers"][0]["image"],
        json!(config.senders.image),
        "the erasure Job runs the platform's image, not the tenant's"
    );
    assert_eq!(
        pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0],
        json!({"key": "topology.kubernetes.io/region", "operator": "In", "values": ["eu-central-1"]}),
        "the erasure Job runs in the tenant's regions"
    );
    assert_eq!(pod_spec["securityContext"]["runAsNonRoot"], true);

    // The platform's store, as the built-in configuration declares it.
    let store = &config.data_plane.stores[0];
    let store_ns = json!({"kubernetes.io/metadata.name": "herald-data"});
    assert_eq!(
        store.namespace_selector.as_ref().unwrap()["matchLabels"],
        store_ns
    );
    let store_pod = json!({"namespace": "herald-data", "namespaceLabels": store_ns,
        "podLabels": store.pod_selector.as_ref().unwrap()["matchLabels"], "ip": "10.96.7.7"});
    let dns = json!({"namespace": "kube-system",
        "namespaceLabels": {"kubernetes.io/metadata.name": "kube-system"},
        "podLabels": {"k8s-app": "kube-dns"}, "ip": "10.96.0.10"});
    let provider = json!({"ip": "203.0.113.10"});
    let private = json!({"ip": "10.20.30.40"});
    let metadata = json!({"ip": "169.254.169.254"});
    let sa = pod(&ns[&a], &sender_a, "10.244.1.10");
    let sb = pod(&ns[&b], &sender_b, "10.244.2.10");
    let pa = pod(&ns[&a], &purge_labels, "10.244.1.11");
    let ea = pod(&ns[&a], &erase_labels, "10.244.1.12");
    let outsider = json!({"namespace": "default",
        "namespaceLabels": {"kubernetes.io/metadata.name": "default"}, "podLabels": {"app": "x"},
        "ip": "10.244.3.3"});
    let table: Vec<(Value, bool)> = vec![
        (
            case("sender → provider 443", &sa, &provider, 443, false),
            true,
        ),
        (
            case("sender → provider 80", &sa, &provider, 80, false),
            false,
        ),
        (
            case("sender → private range 443", &sa, &private, 443, false),
            false,
        ),
        (
            case("sender → cloud metadata", &sa, &metadata, 443, false),
            false,
        ),
        (
            case("sender → platform store", &sa, &store_pod, 5432, false),
            false,
        ),
        (case("sender → DNS", &sa, &dns, 53, true), true),
        (
            case("purge → provider 443", &pa, &provider, 443, false),
            true,
        ),
        (
            case("purge → platform store", &pa, &store_pod, 5432, false),
            true,
        ),
        (
            case("erase → provider 443", &ea, &provider, 443, false),
            true,
        ),
        (
            case("erase → platform store", &ea, &store_pod, 5432, false),
            true,
        ),
        (
            case("erase → store on another port", &ea, &store_pod, 22, false),
            false,
        ),
        (
            case("erase → private range 443", &ea, &private, 443, false),
            false,
        ),
        (case("erase → DNS", &ea, &dns, 53, true), true),
        (case("sender a → sender b", &sa, &sb, 8080, false), false),
        (case("sender a → sender b 443", &sa, &sb, 443, false), false),
        (case("sender b → sender a", &sb, &sa, 8080, false), false),
        (case("purge a → sender b", &pa, &sb, 443, false), false),
        (
            case("outsider → sender a", &outsider, &sa, 8080, false),
            false,
        ),
    ];
    let cases: Vec<Value> = table.iter().map(|(c, _)| c.clone()).collect();
    let verdicts = evaluate(&policies, &cases);
    let wrong: Vec<String> = table
        .iter()
        .filter_map(|(c, want)| {
            let name = c["name"].as_str().unwrap();
            let got = verdicts.get(name).copied();
            (got != Some(*want)).then(|| format!("{name}: want allowed={want}, got {got:?}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "policies mean something else:\n{}",
        wrong.join("\n")
    );
    tenants.delete(&b, &Default::default()).await.unwrap();
}

/// The operator's own NetworkPolicy (the chart's `networkPolicy`, on by default), through
/// the same evaluator: DNS, the API server on the configured CIDRs and ports, HTTPS only
/// outside private ranges, ingress only on the metrics port. With `apiServer.cidrs`
/// narrowed, another private address is refused even on the API server's port.
#[test]
fn the_operators_network_policy_allows_only_what_the_operator_needs() {
    use crate::identity::{objects, render};
    let policy_of = |extra: &[&str]| -> NetworkPolicy {
        let mut args = vec!["--show-only", "templates/networkpolicy.yaml"];
        args.extend_from_slice(extra);
        let rendered = objects(&render(&args));
        assert_eq!(rendered.len(), 1, "one NetworkPolicy: {rendered:?}");
        serde_json::from_value(rendered[0].clone()).unwrap()
    };
    let policy = policy_of(&[]);
    let ns = policy.metadata.namespace.clone().unwrap();
    let labels = policy
        .spec
        .as_ref()
        .unwrap()
        .pod_selector
        .as_ref()
        .unwrap()
        .match_labels
        .clone();
    let operator = json!({"namespace": ns, "namespaceLabels": {"kubernetes.io/metadata.name": ns},
        "podLabels": labels, "ip": "10.244.0.5"});
    let other_pod = json!({"namespace": ns, "namespaceLabels": {"kubernetes.io/metadata.name": ns},
        "podLabels": {"app": "other"}, "ip": "10.244.0.6"});
    let dns = json!({"namespace": "kube-system",
        "namespaceLabels": {"kubernetes.io/metadata.name": "kube-system"},
        "podLabels": {"k8s-app": "kube-dns"}, "ip": "10.96.0.10"});
    let not_dns = json!({"namespace": "default",
        "namespaceLabels": {"kubernetes.io/metadata.name": "default"}, "podLabels": {"app": "x"},
        "ip": "10.244.3.3"});
    let api_server = json!({"ip": "10.0.0.1"});
    let provider = json!({"ip": "203.0.113.10"});
    let provider6 = json!({"ip": "2001:db8::10"});
    let private = json!({"ip": "192.168.1.20"});
    let cgnat = json!({"ip": "100.64.0.9"});
    let metadata = json!({"ip": "169.254.169.254"});
    let loopback6 = json!({"ip": "::1"});
    let scraper = json!({"namespace": "monitoring",
        "namespaceLabels": {"kubernetes.io/metadata.name": "monitoring"}, "podLabels": {"app": "prometheus"},
        "ip": "10.244.9.9"});
    let table: Vec<(Value, bool)> = vec![
        (case("→ DNS udp", &operator, &dns, 53, true), true),
        (case("→ DNS tcp", &operator, &dns, 53, false), true),
        (
            case(
                "→ a pod outside kube-system on 53",
                &operator,
                &not_dns,
                53,
                true,
            ),
            false,
        ),
        (
            case("→ API server 6443", &operator, &api_server, 6443, false),
            true,
        ),
        (
            case("→ API server 443", &operator, &api_server, 443, false),
            true,
        ),
        (
            case(
                "→ private address on 8443",
                &operator,
                &api_server,
                8443,
                false,
            ),
            false,
        ),
        (
            case("→ provider 443", &operator, &provider, 443, false),
            true,
        ),
        (
            case(
                "→ provider over IPv6 443",
                &operator,
                &provider6,
                443,
                false,
            ),
            true,
        ),
        (
            case("→ provider 80", &operator, &provider, 80, false),
            false,
        ),
        (
            case("→ CGNAT range 443", &operator, &cgnat, 443, false),
            false,
        ),
        (
            case("→ cloud metadata 80", &operator, &metadata, 80, false),
            false,
        ),
        (
            case("→ cloud metadata 443", &operator, &metadata, 443, false),
            false,
        ),
        (
            case("→ IPv6 loopback 443", &operator, &loopback6, 443, false),
            false,
        ),
        (
            case("scraper → metrics", &scraper, &operator, 8080, false),
            true,
        ),
        (
            case("scraper → another port", &scraper, &operator, 9090, false),
            false,
        ),
        (
            case(
                "the policy selects only the operator",
                &other_pod,
                &provider,
                80,
                false,
            ),
            true,
        ),
    ];
    let cases: Vec<Value> = table.iter().map(|(c, _)| c.clone()).collect();
    let verdicts = evaluate(std::slice::from_ref(&policy), &cases);
    for (c, want) in &table {
        let name = c["name"].as_str().unwrap();
        assert_eq!(verdicts[name], *want, "{name}");
    }

    // Narrowed to the control plane's address: other private addresses are refused even
    // on the API server's ports.
    let narrow = policy_of(&["--set", "networkPolicy.apiServer.cidrs={10.0.0.1/32}"]);
    let table: Vec<(Value, bool)> = vec![
        (
            case("→ API server", &operator, &api_server, 6443, false),
            true,
        ),
        (
            case("→ private 6443", &operator, &private, 6443, false),
            false,
        ),
        (
            case("→ private 443", &operator, &private, 443, false),
            false,
        ),
    ];
    let cases: Vec<Value> = table.iter().map(|(c, _)| c.clone()).collect();
    let verdicts = evaluate(&[narrow], &cases);
    for (c, want) in &table {
        let name = c["name"].as_str().unwrap();
        assert_eq!(verdicts[name], *want, "narrowed: {name}");
    }
    // Off when asked.
    let rendered = render(&["--set", "networkPolicy.enabled=false"]);
    assert!(
        !objects(&rendered)
            .iter()
            .any(|o| o["kind"] == "NetworkPolicy")
    );
}
