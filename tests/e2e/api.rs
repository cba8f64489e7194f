//! Herald's API at admission, on a real API server: every example applies, every invalid
//! example is refused with a message that names its mistake, a Terminated contract is
//! final, a ChannelBinding's tenant and channel cannot change, and `kubectl explain`
//! shows the field docs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use herald::api::v1alpha1::{
    Channel, ChannelBinding, ChannelBindingSpec, Contract, ContractState, CredentialSource,
    ObjectRef, Residency, Tenant, TenantSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::common::{E2E_LABEL, WAIT, client, install_crds, kubectl, repo_root, unique};

/// The operator's control namespace, where ChannelBindings live (examples/00-namespace.yaml).
const CONTROL_NAMESPACE: &str = "herald-system";

/// Each file of examples/invalid/ and a phrase its refusal must contain: the message
/// must name the mistake, not merely fail. A file missing here fails the test.
const INVALID: &[(&str, &str)] = &[
    (
        "channelbinding-outside-control-namespace.yaml",
        "ChannelBindings belong in the control namespace herald-system",
    ),
    (
        "channelbinding-no-credential-source.yaml",
        "exactly one source",
    ),
    (
        "channelbinding-provider-api-url.yaml",
        "spec.credential.providerApi.name in body should match",
    ),
    (
        "channelbinding-rotation-zero-days.yaml",
        "intervalDays in body should be greater than or equal to 1",
    ),
    (
        "channelbinding-two-credential-sources.yaml",
        "exactly one source",
    ),
    (
        "channelbinding-unknown-channel.yaml",
        r#"spec.channel: Unsupported value: "fax""#,
    ),
    (
        "retentionpolicy-account-data-60-days.yaml",
        "accountDataDaysAfterContractEnd may be at most 30",
    ),
    (
        "retentionpolicy-backups-14-days.yaml",
        "backupsDays may be at most 7",
    ),
    (
        "retentionpolicy-billing-5-years.yaml",
        "billingDays must be at least 2555 (7 years)",
    ),
    (
        "retentionpolicy-billing-beyond-100-years.yaml",
        "billingDays in body should be less than or equal to 36500",
    ),
    (
        "retentionpolicy-message-content-beyond-100-years.yaml",
        "messageContentDays in body should be less than or equal to 36500",
    ),
    (
        "retentionpolicy-delete-within-45-days.yaml",
        "deleteWithinDays may be at most 30",
    ),
    (
        "retentionpolicy-incidents-1-year.yaml",
        "securityIncidentsDays must be at least 1095 (3 years)",
    ),
    (
        "retentionpolicy-logs-180-days.yaml",
        "logsDays may be at most 90",
    ),
    (
        "retentionpolicy-negative-days.yaml",
        "deliveryMetadataDays in body should be greater than or equal to 1",
    ),
    (
        "retentionpolicy-zero-day-message-content.yaml",
        "messageContentDays in body should be greater than or equal to 1",
    ),
    (
        "subprocessor-channels-on-cloud-infrastructure.yaml",
        "channels may only be listed",
    ),
    (
        "subprocessor-eea-safeguard-outside-eea.yaml",
        "safeguard EEA requires every location to be in the EEA",
    ),
    (
        "subprocessor-empty-locations.yaml",
        "locations must list at least one country",
    ),
    (
        "subprocessor-lowercase-country.yaml",
        "should match '^[A-Z]{2}$'",
    ),
    (
        "subprocessor-scc-without-tia.yaml",
        "requires transferImpactAssessmentRef",
    ),
    (
        "subprocessor-unknown-category.yaml",
        r#"spec.category: Unsupported value: "Marketing""#,
    ),
    (
        "subprocessor-unknown-safeguard.yaml",
        r#"spec.safeguard: Unsupported value: "Consent""#,
    ),
    (
        "subprocessor-zero-notice-period.yaml",
        "noticePeriodDays in body should be greater than or equal to 1",
    ),
    (
        "tenant-active-with-terminated-at.yaml",
        "terminatedAt may only be set when contract.state is Terminated",
    ),
    (
        "tenant-dpa-signed-in-1970.yaml",
        "dpa.signedAt must be between 2000-01-01 and 2200-01-01",
    ),
    (
        "tenant-terminated-at-year-9999.yaml",
        "contract.terminatedAt must be between 2000-01-01 and 2200-01-01",
    ),
    (
        "tenant-duplicate-region.yaml",
        r#"spec.residency.regions[1]: Duplicate value: "eu-central-1""#,
    ),
    (
        "tenant-empty-image.yaml",
        "spec.senders.image in body should be at least 1 chars long",
    ),
    (
        "tenant-empty-regions.yaml",
        "residency.regions must name at least one region",
    ),
    (
        "tenant-export-with-delete.yaml",
        "export is only used when onTermination.action is ReturnThenDelete",
    ),
    (
        "tenant-name-longer-than-56-characters.yaml",
        "DNS label of at most 56 characters",
    ),
    (
        "tenant-name-not-a-dns-label.yaml",
        "DNS label of at most 56 characters",
    ),
    (
        "tenant-region-not-a-label.yaml",
        "spec.residency.regions[0] in body should match",
    ),
    (
        "tenant-replicas-above-50.yaml",
        "spec.senders.replicas in body should be less than or equal to 50",
    ),
    (
        "tenant-return-without-export.yaml",
        "export is required when onTermination.action is ReturnThenDelete",
    ),
    (
        "tenant-terminated-without-terminated-at.yaml",
        "terminatedAt is required when contract.state is Terminated",
    ),
    (
        "tenant-unknown-contract-state.yaml",
        r#"spec.contract.state: Unsupported value: "Paused""#,
    ),
    (
        "tenant-webhook-plain-http.yaml",
        "notifications.webhookUrl must be an https:// URL",
    ),
    (
        "tenant-webhook-userinfo.yaml",
        "notifications.webhookUrl must be an https:// URL",
    ),
    (
        "tenant-webhook-private-ip.yaml",
        "notifications.webhookUrl must be an https:// URL",
    ),
    (
        "tenant-webhook-metadata-ip.yaml",
        "notifications.webhookUrl must be an https:// URL",
    ),
    (
        "tenant-webhook-bad-port.yaml",
        "notifications.webhookUrl must be an https:// URL",
    ),
    (
        "channelbinding-name-longer-than-63-characters.yaml",
        "metadata.name of a ChannelBinding must be at most 63 characters",
    ),
    (
        "channelbinding-tenant-ref-not-a-tenant-name.yaml",
        "spec.tenantRef: Invalid value: tenantRef.name must be the name of a Tenant",
    ),
    (
        "channelbinding-secret-ref-not-a-secret-name.yaml",
        "spec.credential.secretRef: Invalid value: name must be the name of a Kubernetes object: a DNS-1123 subdomain",
    ),
    (
        "tenant-signing-secret-not-a-secret-name.yaml",
        "spec.notifications.signingSecretRef: Invalid value: name must be the name of a Kubernetes object",
    ),
    (
        "tenant-signing-secret-key-not-a-secret-key.yaml",
        "key must be a key of a Secret's data",
    ),
    (
        "tenant-objection-not-a-subprocessor-name.yaml",
        "spec.subprocessorObjections[0]: Invalid value: name must be the name of a Kubernetes object",
    ),
    (
        "tenant-retention-policy-ref-not-a-name.yaml",
        "spec.retentionPolicyRef: Invalid value: name must be the name of a Kubernetes object",
    ),
    (
        "tenant-display-name-with-control-characters.yaml",
        "displayName must be printable",
    ),
    (
        "tenant-dpa-reference-with-a-newline.yaml",
        "dpa.reference must be printable",
    ),
    (
        "subprocessor-legal-name-with-a-tab.yaml",
        "legalName must be printable",
    ),
    (
        "subprocessor-country-not-iso.yaml",
        "locations must be ISO 3166-1 alpha-2 country codes",
    ),
    (
        "tenant-image-not-a-reference.yaml",
        "senders.image must be a container image reference",
    ),
    (
        "tenant-resources-not-a-quantity.yaml",
        "every request and limit must be a Kubernetes quantity",
    ),
    (
        "tenant-resources-request-above-limit.yaml",
        "a request may not exceed its limit",
    ),
    (
        "tenant-resources-gpu.yaml",
        "only cpu, memory and ephemeral-storage may be requested or limited",
    ),
    (
        "breachnotice-names-and-all-tenants.yaml",
        "affectedTenants needs exactly one of names, selector or allTenants: true",
    ),
    (
        "breachnotice-all-tenants-false.yaml",
        "affectedTenants.allTenants must be true when set",
    ),
    (
        "breachnotice-empty-selector.yaml",
        "affectedTenants.selector must not be empty",
    ),
    (
        "breachnotice-no-affected-tenants.yaml",
        "affectedTenants needs exactly one of names, selector or allTenants: true",
    ),
    (
        "breachnotice-authority-without-platform-data.yaml",
        "authorityNotifiedAt is only for a breach with platformDataInvolved: true",
    ),
    (
        "breachnotice-outside-control-namespace.yaml",
        "BreachNotices belong in the control namespace herald-system",
    ),
    (
        "breachnotice-selector-on-a-tenant-written-label.yaml",
        "affectedTenants.selector may only select labels under platform.herald.dev/",
    ),
    (
        "breachnotice-authority-notified-before-awareness.yaml",
        "authorityNotifiedAt cannot be before awareAt",
    ),
    (
        "datasubjectrequest-extension-informed-in-the-second-month.yaml",
        "extension.subjectInformedAt must be within the first month after receivedAt",
    ),
    (
        "datasubjectrequest-extension-without-reason.yaml",
        "an extension needs a reason and subjectInformedAt",
    ),
    (
        "datasubjectrequest-extension-three-months.yaml",
        "spec.extension.months",
    ),
    (
        "datasubjectrequest-unknown-right.yaml",
        "Unsupported value: \"Forgetting\"",
    ),
    (
        "datasubjectrequest-outside-control-namespace.yaml",
        "DataSubjectRequests belong in the control namespace herald-system",
    ),
];

/// A client with Herald's CRDs installed and the control namespace present.
async fn setup() -> Client {
    let client = client().await;
    install_crds(&client).await;
    ensure_control_namespace(&client).await;
    client
}

/// Creates herald-system from examples/00-namespace.yaml if missing. It is shared
/// infrastructure like the CRDs, so it stays after the tests. Server-side apply, so
/// parallel tests cannot race on create.
async fn ensure_control_namespace(client: &Client) {
    let path = repo_root().join("examples/00-namespace.yaml");
    let ns: Namespace = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(CONTROL_NAMESPACE).await.unwrap().is_none() {
        api.patch(
            CONTROL_NAMESPACE,
            &PatchParams::apply("herald-e2e"),
            &Patch::Apply(&ns),
        )
        .await
        .unwrap();
    }
}

/// The `.yaml` files directly in `dir`, sorted (the order `kubectl apply -f dir` uses).
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn dry_run(file: &Path) -> Output {
    kubectl(&["apply", "--dry-run=server", "-f", file.to_str().unwrap()])
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Runs `kubectl delete` for an object when dropped, so that a failing assertion does not
/// leave it behind. The happy path deletes and waits itself; this is the safety net.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .args(["delete", "--ignore-not-found", "--wait=false"])
            .args(&self.0)
            .output();
    }
}

/// Deletes `name` and waits until the API server no longer has it.
async fn delete_and_wait<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let uid = api.get(name).await.unwrap().uid().unwrap();
    api.delete(name, &DeleteParams::default()).await.unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(api.clone(), name, conditions::is_deleted(&uid)),
    )
    .await
    .unwrap_or_else(|_| panic!("{name} still exists after {WAIT:?}"))
    .unwrap();
}

/// The message of a refused write, or a failure if the write went through.
fn refusal<T: std::fmt::Debug>(result: kube::Result<T>) -> String {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "expected 422 Invalid, got {status:?}");
            status.message
        }
        other => panic!("expected the API server to refuse, got {other:?}"),
    }
}

fn time(rfc3339: &str) -> Time {
    Time(rfc3339.parse().unwrap())
}

/// A valid Tenant built from the Rust types (so the test also proves they serialize into
/// what the API server accepts), labelled for e2e cleanup.
fn tenant(name: &str, state: ContractState, terminated_at: Option<Time>) -> Tenant {
    let mut t = Tenant::new(
        name,
        TenantSpec {
            display_name: "E2E Admission Test B.V.".into(),
            contract: Contract {
                state,
                terminated_at,
                dpa: None,
                on_termination: None,
            },
            residency: Residency {
                regions: vec!["eu-central-1".into()],
                allow_adequacy: None,
            },
            senders: None,
            retention_policy_ref: ObjectRef {
                name: "standard-eu".into(),
            },
            notifications: None,
            subprocessor_objections: Vec::new(),
            deletion_protection: Some(false),
        },
    );
    t.labels_mut().insert(E2E_LABEL.into(), "api".into());
    t
}

#[tokio::test]
async fn every_example_passes_server_side_dry_run() {
    setup().await;
    let mut files = yaml_files(&repo_root().join("examples"));
    assert!(files.len() >= 6, "examples/ holds only {files:?}");
    // Evidence (a BreachNotice) is kept out of `kubectl apply -f examples/`: it notifies
    // customers and cannot be deleted. A dry run creates nothing.
    files.extend(yaml_files(&repo_root().join("examples/evidence")));
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let out = dry_run(f);
            (!out.status.success()).then(|| format!("{}:\n{}", f.display(), text(&out.stderr)))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "examples refused by the API server:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn every_invalid_example_is_refused_with_a_message_naming_the_mistake() {
    setup().await;
    let files = yaml_files(&repo_root().join("examples/invalid"));
    assert!(
        files.len() >= 20,
        "examples/invalid/ holds only {} files",
        files.len()
    );
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for (file, _) in INVALID {
        assert!(
            names.iter().any(|n| n == file),
            "INVALID lists {file}, which is not in examples/invalid/"
        );
    }
    let mut problems = Vec::new();
    for (file, name) in files.iter().zip(&names) {
        let Some((_, expected)) = INVALID.iter().find(|(f, _)| f == name) else {
            problems.push(format!(
                "{name}: no entry in INVALID saying what its refusal must contain"
            ));
            continue;
        };
        let out = dry_run(file);
        let stderr = text(&out.stderr);
        if out.status.success() {
            problems.push(format!(
                "{name}: accepted, but should be refused ({expected})"
            ));
        } else if !stderr.contains("is invalid") || !stderr.contains(expected) {
            problems.push(format!(
                "{name}: refused, but not with {expected:?}:\n{stderr}"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[tokio::test]
async fn a_terminated_contract_is_final() {
    let client = setup().await;
    let api: Api<Tenant> = Api::all(client);
    let name = unique("e2e-terminated");
    let _cleanup = Cleanup(vec!["tenant".into(), name.clone()]);
    let terminated_at = time("2026-05-31T23:59:59Z");
    api.create(
        &PostParams::default(),
        &tenant(&name, ContractState::Terminated, Some(terminated_at)),
    )
    .await
    .unwrap();

    let pp = PatchParams::default();
    for state in ["Active", "Suspended"] {
        let back = json!({"spec": {"contract": {"state": state, "terminatedAt": null}}});
        let message = refusal(api.patch(&name, &pp, &Patch::Merge(&back)).await);
        assert!(
            message.contains("a Terminated contract is final"),
            "back to {state}: {message}"
        );
    }
    // Until Herald accepts the termination the date can be corrected (a date in the
    // future is refused by the operator, not by admission, which cannot know "now").
    let corrected = json!({"spec": {"contract": {"terminatedAt": "2026-05-30T00:00:00Z"}}});
    api.patch(&name, &pp, &Patch::Merge(&corrected))
        .await
        .expect("a termination Herald has not accepted can be corrected");
    // Herald's acceptance (status.terminationAcceptedAt, written here as the operator
    // would): from then on the date is fixed (herald-tenant-termination).
    let accepted = json!({"status": {"terminationAcceptedAt": "2026-06-01T00:00:00Z"}});
    api.patch_status(&name, &pp, &Patch::Merge(&accepted))
        .await
        .unwrap();
    let moved = json!({"spec": {"contract": {"terminatedAt": "2026-06-30T00:00:00Z"}}});
    let message = refusal(api.patch(&name, &pp, &Patch::Merge(&moved)).await);
    assert!(
        message.contains("cannot change: Herald accepted the termination"),
        "{message}"
    );

    let still = api.get(&name).await.unwrap();
    assert_eq!(still.spec.contract.state, ContractState::Terminated);
    delete_and_wait(&api, &name).await;
}

#[tokio::test]
async fn an_active_contract_can_be_suspended_resumed_and_terminated() {
    // The transition rule must refuse only leaving Terminated, nothing on the way to it.
    let client = setup().await;
    let api: Api<Tenant> = Api::all(client);
    let name = unique("e2e-lifecycle");
    let _cleanup = Cleanup(vec!["tenant".into(), name.clone()]);
    api.create(
        &PostParams::default(),
        &tenant(&name, ContractState::Active, None),
    )
    .await
    .unwrap();

    let pp = PatchParams::default();
    for contract in [
        json!({"state": "Suspended"}),
        json!({"state": "Active"}),
        json!({"state": "Terminated", "terminatedAt": "2026-05-31T23:59:59Z"}),
    ] {
        let patch = json!({"spec": {"contract": contract}});
        api.patch(&name, &pp, &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("{contract} refused: {e}"));
    }
    assert_eq!(
        api.get(&name).await.unwrap().spec.contract.state,
        ContractState::Terminated
    );
    delete_and_wait(&api, &name).await;
}

#[tokio::test]
async fn a_channel_bindings_tenant_and_channel_are_immutable() {
    let client = setup().await;
    let api: Api<ChannelBinding> = Api::namespaced(client, CONTROL_NAMESPACE);
    let name = unique("e2e-immutable");
    let _cleanup = Cleanup(vec![
        "channelbinding".into(),
        name.clone(),
        "-n".into(),
        CONTROL_NAMESPACE.into(),
    ]);
    let mut binding = ChannelBinding::new(
        &name,
        ChannelBindingSpec {
            tenant_ref: ObjectRef {
                name: "acme-retail".into(),
            },
            channel: Channel::WhatsApp,
            subprocessor_ref: ObjectRef {
                name: "meta-whatsapp".into(),
            },
            credential: CredentialSource {
                secret_ref: Some(ObjectRef {
                    name: "acme-retail-whatsapp".into(),
                }),
                provider_api: None,
            },
            rotation: None,
            suspend: None,
        },
    );
    binding.labels_mut().insert(E2E_LABEL.into(), "api".into());
    api.create(&PostParams::default(), &binding).await.unwrap();

    let pp = PatchParams::default();
    let other_tenant = json!({"spec": {"tenantRef": {"name": "wiener-baeckerei"}}});
    let message = refusal(api.patch(&name, &pp, &Patch::Merge(&other_tenant)).await);
    assert!(message.contains("tenantRef is immutable"), "{message}");

    let other_channel = json!({"spec": {"channel": "sms"}});
    let message = refusal(api.patch(&name, &pp, &Patch::Merge(&other_channel)).await);
    assert!(message.contains("channel is immutable"), "{message}");

    // The rest of the spec stays editable.
    let suspend = json!({"spec": {"suspend": true, "subprocessorRef": {"name": "meta-whatsapp"}}});
    api.patch(&name, &pp, &Patch::Merge(&suspend))
        .await
        .unwrap();
    let now = api.get(&name).await.unwrap();
    assert_eq!(now.spec.tenant_ref.name, "acme-retail");
    assert_eq!(now.spec.channel, Channel::WhatsApp);
    delete_and_wait(&api, &name).await;
}

#[tokio::test]
async fn kubectl_explain_shows_the_field_docs() {
    setup().await;
    // The API server publishes a new CRD's OpenAPI a moment after it is Established, and
    // nothing can be watched for that; so poll the observable outcome, with a deadline.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    let out = loop {
        tick.tick().await;
        let out = kubectl(&[
            "explain",
            "tenants.spec.residency",
            "--api-version=herald.dev/v1alpha1",
        ]);
        if out.status.success() || tokio::time::Instant::now() > deadline {
            break out;
        }
    };
    assert!(
        out.status.success(),
        "kubectl explain failed: {}",
        text(&out.stderr)
    );
    // explain wraps lines; compare with whitespace collapsed.
    let explained = text(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for phrase in [
        "Where this tenant's data may be processed and stored",
        "regions <[]string> -required-",
        "values of the node label topology.kubernetes.io/region",
        "allowAdequacy <boolean>",
        "Default: false (EEA regions only)",
    ] {
        assert!(
            explained.contains(phrase),
            "kubectl explain lacks {phrase:?}:\n{explained}"
        );
    }
}

/// The admission rules refuse only what Kubernetes (or Herald's use) would refuse: the
/// forms of image references, quantities, names and text that real manifests use pass.
#[tokio::test]
async fn admission_accepts_what_kubernetes_accepts() {
    let client = setup().await;
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let tenants: Api<Tenant> = Api::all(client.clone());
    for (image, resources) in [
        (
            "sender",
            json!({"requests": {"cpu": 1, "memory": "1Gi"}, "limits": {"cpu": 1, "memory": "1Gi"}}),
        ),
        (
            "ghcr.io/herald-dev/sender:0.1.0",
            json!({"requests": {"cpu": "0.5", "ephemeral-storage": "1e9"}}),
        ),
        (
            "localhost:5000/herald/sender@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            json!({"limits": {"memory": "256Mi", "ephemeral-storage": "2Gi"}}),
        ),
        (
            "registry.example.com:443/a/b__c/d-e.f:v1.2_3-rc.1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            json!({}),
        ),
    ] {
        let mut t = tenant(&unique("e2e-accepts"), ContractState::Active, None);
        t.spec.display_name = "Wiener Bäckerei Huber GmbH — Zweigstelle 東京 🥐".into();
        t.spec.retention_policy_ref.name = "standard.eu-v2".into();
        t.spec.senders =
            Some(serde_json::from_value(json!({"image": image, "resources": resources})).unwrap());
        tenants
            .create(&dry, &t)
            .await
            .unwrap_or_else(|e| panic!("image {image} with {resources} refused: {e}"));
    }
    let subprocessors: Api<herald::api::v1alpha1::Subprocessor> = Api::all(client);
    let mut sp: herald::api::v1alpha1::Subprocessor = serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "Subprocessor",
        "metadata": {"name": unique("e2e-accepts-sp")},
        "spec": {"legalName": "Ørsted Cloud A/S", "category": "CloudInfrastructure",
                 "purpose": "Hosting.", "locations": ["GB", "CH", "US", "AX", "GR", "XK"], "safeguard": "SCC",
                 "transferImpactAssessmentRef": "TIA-1",
                 "dpa": {"reference": "SUB-DPA-1", "signedAt": "2026-01-10T00:00:00Z"}}
    }))
    .unwrap();
    // XK (Kosovo) is a user-assigned code, not ISO 3166-1: refused; without it, accepted.
    let message = refusal(subprocessors.create(&dry, &sp).await);
    assert!(message.contains("ISO 3166-1 alpha-2"), "{message}");
    sp.spec.locations.pop();
    subprocessors.create(&dry, &sp).await.unwrap();
}
