//! Least privilege, asked of the API server: what the chart's ServiceAccount may do
//! (`kubectl auth can-i --as=…`, the authorizer's own answer) outside and inside its
//! namespaces, and the admission policy herald-operator-scope refusing its writes
//! outside them even when a ClusterRole grants them.

use std::time::Duration;

use herald::api::v1alpha1::Tenant;
use herald::controller::tenant::access::TENANT_ROLE;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

use crate::common::{
    CONTROL_NAMESPACE, E2E_LABEL, WAIT, apply_examples, client, ensure_namespace, kubectl,
    operator, scope_namespace, unique,
};
use crate::identity::{CHART_SA, apply, objects, render};

/// The operator's user name, as `--as` and the audit log spell it.
fn operator_user() -> String {
    format!("system:serviceaccount:{CONTROL_NAMESPACE}:{CHART_SA}")
}

/// The authorizer's answer for the operator: `kubectl auth can-i` prints yes or no.
fn can_i(verb: &str, resource: &str, namespace: Option<&str>) -> bool {
    can_user(&operator_user(), verb, resource, namespace)
}

/// The authorizer's answer for `user` (`resource` may end in `--subresource=status`).
fn can_user(user: &str, verb: &str, resource: &str, namespace: Option<&str>) -> bool {
    let mut args = vec!["auth", "can-i", verb];
    args.extend(resource.split(' '));
    args.extend(["--as", user]);
    match namespace {
        Some(ns) => args.extend(["--namespace", ns]),
        None => args.push("--all-namespaces"),
    }
    let out = kubectl(&args);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        answer == "yes" || answer == "no",
        "kubectl auth can-i {verb} {resource}: {answer} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    answer == "yes"
}

/// A Tenant whose stack Herald builds (suspended: no sender runs, the namespace and its
/// RoleBindings exist); returns its namespace once the operator's binding is there.
async fn tenant_namespace(client: &kube::Client, name: &str) -> String {
    apply_examples(); // the retention policy it names
    let tenants: Api<Tenant> = Api::all(client.clone());
    let t: Tenant = serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": name, "labels": {E2E_LABEL: "rbac"}},
        "spec": {"displayName": "RBAC E2E", "contract": {"state": "Suspended"},
                 "residency": {"regions": ["eu-central-1"]}, "retentionPolicyRef": {"name": "standard-eu"},
                 "deletionProtection": false}
    }))
    .unwrap();
    tenants
        .patch(name, &PatchParams::apply("herald-e2e"), &Patch::Apply(&t))
        .await
        .unwrap();
    let ns = format!("tenant-{name}");
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    tokio::time::timeout(
        WAIT,
        await_condition(bindings, TENANT_ROLE, |b: Option<&RoleBinding>| b.is_some()),
    )
    .await
    .unwrap_or_else(|_| panic!("no RoleBinding {TENANT_ROLE} in {ns} within {WAIT:?}"))
    .unwrap();
    ns
}

async fn delete_tenant(client: &kube::Client, name: &str) {
    let tenants: Api<Tenant> = Api::all(client.clone());
    let _ = tenants.delete(name, &DeleteParams::default()).await;
}

#[tokio::test]
async fn the_operator_reads_secrets_and_writes_only_in_its_own_namespaces() {
    let client = client().await;
    operator().await; // the chart's RBAC applied, the shared operator running
    let name = unique("e2e-rbac");
    let tenant_ns = tenant_namespace(&client, &name).await;
    let elsewhere = format!("{name}-elsewhere");
    ensure_namespace(&client, &elsewhere).await;

    // The binding Herald made: the chart's tenant ClusterRole, to the operator.
    let b = Api::<RoleBinding>::namespaced(client.clone(), &tenant_ns)
        .get(TENANT_ROLE)
        .await
        .unwrap();
    assert_eq!(
        (b.role_ref.kind.as_str(), b.role_ref.name.as_str()),
        ("ClusterRole", TENANT_ROLE)
    );
    let subject = &b.subjects.unwrap()[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", CHART_SA, Some(CONTROL_NAMESPACE))
    );

    let mut wrong = Vec::new();
    let mut expect = |allowed: bool, verb: &str, resource: &str, ns: Option<&str>| {
        if can_i(verb, resource, ns) != allowed {
            wrong.push(format!(
                "{} {verb} {resource} in {}",
                if allowed { "cannot" } else { "can" },
                ns.unwrap_or("all namespaces")
            ));
        }
    };
    // Secrets: readable in the control namespace and the tenant namespace only; never
    // listed cluster-wide.
    expect(false, "list", "secrets", None);
    expect(false, "watch", "secrets", None);
    for ns in ["default", "kube-system", &elsewhere] {
        for verb in ["get", "list", "watch", "create", "delete"] {
            expect(false, verb, "secrets", Some(ns));
        }
    }
    expect(true, "get", "secrets", Some(CONTROL_NAMESPACE));
    expect(true, "list", "secrets", Some(CONTROL_NAMESPACE));
    expect(true, "list", "secrets", Some(&tenant_ns));
    expect(true, "create", "secrets", Some(&tenant_ns));
    // No workload or role write outside the tenant namespaces (RBAC), and only the one
    // RoleBinding create the admission policy confines (the other test).
    for ns in ["default", "kube-system", &elsewhere, CONTROL_NAMESPACE] {
        for resource in [
            "deployments.apps",
            "jobs.batch",
            "cronjobs.batch",
            "pods",
            "serviceaccounts",
            "networkpolicies.networking.k8s.io",
            "poddisruptionbudgets.policy",
            "roles.rbac.authorization.k8s.io",
        ] {
            for verb in ["create", "patch", "update"] {
                expect(false, verb, resource, Some(ns));
            }
        }
        for verb in ["patch", "update", "delete"] {
            expect(
                false,
                verb,
                "rolebindings.rbac.authorization.k8s.io",
                Some(ns),
            );
        }
        expect(false, "get", "deployments.apps", Some(ns));
    }
    for ns in ["default", "kube-system", &elsewhere] {
        for verb in ["create", "patch"] {
            expect(false, verb, "configmaps", Some(ns));
        }
    }
    // Nothing cluster-scoped beyond Herald's kinds, nodes (read) and namespaces.
    for (verb, resource) in [
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("escalate", "clusterroles.rbac.authorization.k8s.io"),
        (
            "bind",
            "clusterroles.rbac.authorization.k8s.io/cluster-admin",
        ),
        ("bind", "clusterroles.rbac.authorization.k8s.io/admin"),
        ("impersonate", "users"),
        ("impersonate", "serviceaccounts"),
        ("patch", "nodes"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        (
            "patch",
            "validatingadmissionpolicies.admissionregistration.k8s.io",
        ),
        ("update", "tenants.herald.dev"),
    ] {
        expect(false, verb, resource, None);
    }
    expect(
        true,
        "bind",
        "clusterroles.rbac.authorization.k8s.io/herald-tenant",
        None,
    );
    // Inside the tenant namespace, through the binding: the stack.
    for resource in [
        "deployments.apps",
        "jobs.batch",
        "configmaps",
        "roles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
    ] {
        expect(true, "create", resource, Some(&tenant_ns));
        expect(true, "patch", resource, Some(&tenant_ns));
    }
    expect(true, "delete", "pods", Some(&tenant_ns));

    delete_tenant(&client, &name).await;
    let _ = kubectl(&["delete", "namespace", &elsewhere, "--wait=false"]);
    assert!(
        wrong.is_empty(),
        "the operator's rights are off:\n{}",
        wrong.join("\n")
    );
}

/// Runs kubectl as the operator; (success, stderr).
pub(crate) fn as_operator(args: &[&str]) -> (bool, String) {
    let user = operator_user();
    let out = kubectl(&[args, &["--as", &user]].concat());
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_admission_policy_refuses_the_operators_writes_outside_its_namespaces() {
    let client = client().await;
    operator().await; // CRDs, deploy/admission and the chart's RBAC installed
    let name = unique("e2e-scope");
    let tenant_ns = tenant_namespace(&client, &name).await;
    let outside = format!("{name}-outside");
    ensure_namespace(&client, &outside).await;

    // The policy loads asynchronously: wait until it refuses the one write the
    // operator's RBAC allows anywhere (a RoleBinding create, for its tenant binding).
    let deadline = std::time::Instant::now() + WAIT;
    let rolebinding = [
        "create",
        "rolebinding",
        "e2e-scope",
        "--namespace",
        &outside,
        "--clusterrole",
        TENANT_ROLE,
        "--serviceaccount",
        "herald-system:herald",
    ];
    let refusal = loop {
        let (ok, err) = as_operator(&[&rolebinding[..], &["--dry-run=server"]].concat());
        if !ok && err.contains("herald-operator-scope") {
            break err;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a RoleBinding in {outside} was not refused by herald-operator-scope: {err}"
        );
        // The policy's loading is internal to the API server: nothing to watch.
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        refusal.contains(&format!(
            "may not create rolebindings in namespace {outside}"
        )),
        "{refusal}"
    );
    // For real (not a dry run): refused, and nothing was created.
    let (ok, err) = as_operator(&rolebinding);
    assert!(!ok && err.contains("herald-operator-scope"), "{err}");

    // Widen the operator's rights by a ClusterRole (as an edited chart would): the
    // authorizer then allows a ConfigMap and a Deployment anywhere, the policy does not.
    let widened = format!("{name}-widened");
    let labels = json!({E2E_LABEL: "rbac"});
    apply(&[
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": widened, "labels": labels},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "delete"]},
                         {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["delete"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": widened, "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": widened},
               "subjects": [{"kind": "ServiceAccount", "name": CHART_SA, "namespace": CONTROL_NAMESPACE}]}),
    ]);
    let deadline = std::time::Instant::now() + WAIT;
    while !can_i("create", "configmaps", Some(&outside)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the widened ClusterRole never took effect"
        );
        // The authorizer's cache: nothing to watch.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (ok, err) = as_operator(&[
        "create",
        "configmap",
        "e2e-scope",
        "--namespace",
        &outside,
        "--from-literal=a=b",
    ]);
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &outside);
    let created = configmaps.get_opt("e2e-scope").await.unwrap();
    // A namespace that is not Herald's is not deleted either.
    let (ns_ok, ns_err) = as_operator(&["delete", "namespace", &outside, "--wait=false"]);
    // The same write inside Herald's tenant namespace passes the policy (dry run).
    let (inside_ok, inside_err) = as_operator(&[
        "create",
        "configmap",
        "e2e-scope",
        "--namespace",
        &tenant_ns,
        "--from-literal=a=b",
        "--dry-run=server",
    ]);

    let _ = kubectl(&["delete", "clusterrolebinding,clusterrole", &widened]);
    delete_tenant(&client, &name).await;
    let _ = kubectl(&["delete", "namespace", &outside, "--wait=false"]);

    assert!(!ok, "the operator created a ConfigMap in {outside}");
    assert!(created.is_none(), "a ConfigMap exists in {outside}");
    assert!(
        err.contains("herald-operator-scope")
            && err.contains(&format!(
                "Herald's operator may not create configmaps in namespace {outside}: it writes only in its control namespace"
            )),
        "not the policy's message: {err}"
    );
    assert!(!ns_ok, "the operator deleted namespace {outside}");
    assert!(
        ns_err.contains("may delete only its own tenant namespaces"),
        "{ns_err}"
    );
    assert!(
        inside_ok,
        "refused inside the tenant namespace: {inside_err}"
    );
}

/// The erasure scope at admission. The chart's RBAC for erasure (rendered for the e2e
/// scope, which selects namespaces) lets the operator delete ConfigMaps in any
/// namespace; the policy lets it delete, outside its own namespaces, only those labelled
/// for a tenant in a namespace of the scope.
#[tokio::test]
async fn outside_its_namespaces_the_operator_deletes_only_labelled_objects_in_the_erasure_scope() {
    let client = client().await;
    operator().await; // the chart's RBAC and operator-scope policy for the e2e scope
    let name = unique("e2e-erscope");
    let in_scope = format!("{name}-in");
    let plain = format!("{name}-plain");
    scope_namespace(&client, &in_scope).await;
    ensure_namespace(&client, &plain).await;
    let labelled = json!({"herald.dev/tenant": name, E2E_LABEL: "rbac"});
    for (ns, cm, labels) in [
        (&in_scope, "labelled", labelled.clone()),
        (&in_scope, "unlabelled", json!({E2E_LABEL: "rbac"})),
        (&plain, "labelled", labelled.clone()),
    ] {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let obj: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": cm, "labels": labels}, "data": {"a": "b"}
        }))
        .unwrap();
        api.patch(cm, &PatchParams::apply("herald-e2e"), &Patch::Apply(&obj))
            .await
            .unwrap();
    }
    let delete = |ns: &str, cm: &str, dry_run: bool| {
        let mut args = vec!["delete", "configmap", cm, "--namespace", ns];
        if dry_run {
            args.push("--dry-run=server");
        }
        as_operator(&args)
    };
    // RBAC allows all three (herald-erasure); wait until the policy refuses the one
    // outside the scope (policies load asynchronously).
    let deadline = std::time::Instant::now() + WAIT;
    let refusal = loop {
        let (ok, err) = delete(&plain, "labelled", true);
        if !ok && err.contains("herald-operator-scope") {
            break err;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "deleting a labelled ConfigMap outside the erasure scope was not refused: {err}"
        );
        // The policy's loading is internal to the API server: nothing to watch.
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        refusal.contains(&format!("may not delete configmaps in namespace {plain}"))
            && refusal.contains("labelled herald.dev/tenant in the erasure scope's namespaces"),
        "{refusal}"
    );
    let (plain_ok, plain_err) = delete(&plain, "labelled", false);
    let survived = Api::<ConfigMap>::namespaced(client.clone(), &plain)
        .get_opt("labelled")
        .await
        .unwrap()
        .is_some();
    let (unlabelled_ok, unlabelled_err) = delete(&in_scope, "unlabelled", true);
    let (labelled_ok, labelled_err) = delete(&in_scope, "labelled", true);
    for ns in [&in_scope, &plain] {
        let _ = kubectl(&["delete", "namespace", ns, "--wait=false"]);
    }
    assert!(
        !plain_ok && survived,
        "deleted outside the scope: {plain_err}"
    );
    assert!(
        !unlabelled_ok && unlabelled_err.contains("herald-operator-scope"),
        "an unlabelled ConfigMap in a scope namespace was deletable: {unlabelled_err}"
    );
    assert!(
        labelled_ok,
        "a labelled ConfigMap in a scope namespace was refused: {labelled_err}"
    );
}

/// App teams and GitOps service accounts get Herald's kinds through Kubernetes' default
/// roles (the chart's `<release>-view`/`-edit`, aggregated by the controller-manager into
/// `view`, `edit`, `admin`): `view` reads everything and writes nothing, `edit` in the
/// control namespace writes the namespaced kinds there and nothing cluster-wide, and
/// neither may write any status (the operator's alone).
#[tokio::test]
async fn the_default_view_and_edit_roles_carry_heralds_kinds_but_never_their_status() {
    let client = client().await;
    ensure_namespace(&client, CONTROL_NAMESPACE).await;
    apply(&objects(&render(&[
        "--show-only",
        "templates/rbac-aggregate.yaml",
    ])));
    let viewer = unique("e2e-viewer");
    let editor = unique("e2e-editor");
    apply(&[
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": viewer, "labels": {E2E_LABEL: "rbac"}},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": viewer}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": editor, "namespace": CONTROL_NAMESPACE, "labels": {E2E_LABEL: "rbac"}},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": editor}]}),
    ]);
    // The controller-manager aggregates the rules into view/edit asynchronously.
    let deadline = std::time::Instant::now() + WAIT;
    while !(can_user(&viewer, "list", "tenants.herald.dev", None)
        && can_user(
            &editor,
            "create",
            "channelbindings.herald.dev",
            Some(CONTROL_NAMESPACE),
        ))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the default roles never gained Herald's kinds"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for kind in [
        "tenants",
        "channelbindings",
        "subprocessors",
        "retentionpolicies",
        "breachnotices",
        "datasubjectrequests",
    ] {
        let r = format!("{kind}.herald.dev");
        assert!(can_user(&viewer, "get", &r, None), "view cannot get {r}");
        assert!(
            can_user(&viewer, "watch", &r, None),
            "view cannot watch {r}"
        );
        assert!(
            !can_user(&viewer, "create", &r, None),
            "view may create {r}"
        );
        assert!(
            !can_user(&viewer, "delete", &r, None),
            "view may delete {r}"
        );
        let status = format!("{r} --subresource=status");
        assert!(
            !can_user(&viewer, "patch", &status, None),
            "view may patch {r}/status"
        );
        assert!(
            !can_user(&editor, "patch", &status, Some(CONTROL_NAMESPACE)),
            "edit may patch {r}/status"
        );
    }
    for kind in ["channelbindings", "breachnotices", "datasubjectrequests"] {
        let r = format!("{kind}.herald.dev");
        assert!(
            can_user(&editor, "create", &r, Some(CONTROL_NAMESPACE)),
            "edit cannot create {r}"
        );
        assert!(
            can_user(&editor, "patch", &r, Some(CONTROL_NAMESPACE)),
            "edit cannot patch {r}"
        );
    }
    // Bound in one namespace, `edit` reaches no cluster-scoped kind and no other namespace.
    for kind in ["tenants", "subprocessors", "retentionpolicies"] {
        let r = format!("{kind}.herald.dev");
        assert!(
            !can_user(&editor, "create", &r, None),
            "a namespaced edit may create {r}"
        );
    }
    assert!(!can_user(
        &editor,
        "create",
        "channelbindings.herald.dev",
        Some("default")
    ));
    // Evidence stays out of reach: the default roles name no receipt or key.
    assert!(!can_user(
        &viewer,
        "get",
        "secrets",
        Some(CONTROL_NAMESPACE)
    ));
}
