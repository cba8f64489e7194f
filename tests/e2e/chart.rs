//! The Helm chart: it lints, the real API server accepts what it renders, its roles
//! hold no wildcard, and what it renders agrees with the crate (version, configuration).

use serde_json::Value;

use crate::common::{CONTROL_NAMESPACE, client, ensure_namespace, install_crds};
use crate::identity::{helm, kubectl_stdin, objects, render};

#[test]
fn helm_lint_passes() {
    for extra in [
        &[][..],
        &[
            "--set",
            "serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboard.enabled=true",
        ][..],
    ] {
        let mut args = vec!["lint", "--strict", "charts/herald"];
        args.extend_from_slice(extra);
        let out = helm(&args);
        assert!(
            out.status.success(),
            "helm lint {extra:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn the_api_server_accepts_the_rendered_chart() {
    let client = client().await;
    // The chart's crds/ are what `herald crds` generates (make chart-check); the same
    // CRDs are installed from the types here, so custom resources would validate.
    install_crds(&client).await;
    ensure_namespace(&client, CONTROL_NAMESPACE).await;
    let rendered = render(&[]);
    let out = kubectl_stdin(
        &[
            "apply",
            "--dry-run=server",
            "--server-side",
            "--force-conflicts",
            "--field-manager=herald-e2e-chart",
            "-f",
            "-",
        ],
        &rendered,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the API server refused the rendered chart:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in [
        "serviceaccount/herald",
        "clusterrole.rbac.authorization.k8s.io/herald",
        "deployment.apps/herald",
        "configmap/herald-config",
        "service/herald-metrics",
        "validatingadmissionpolicy.admissionregistration.k8s.io/herald-tenant-deletion-protection",
    ] {
        assert!(stdout.contains(kind), "{kind} not applied:\n{stdout}");
    }
}

/// Every rule of every (Cluster)Role, with the role's kind/name.
fn rules(rendered: &str) -> Vec<(String, Value)> {
    objects(rendered)
        .into_iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("ClusterRole" | "Role")))
        .flat_map(|o| {
            let who = format!("{}/{}", o["kind"], o["metadata"]["name"]);
            o["rules"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |r| (who.clone(), r))
        })
        .collect()
}

#[test]
fn the_rendered_roles_hold_no_wildcard() {
    let rendered = render(&[]);
    let rules = rules(&rendered);
    assert!(rules.len() > 10, "too few rules rendered: {rules:?}");
    for (who, rule) in &rules {
        for field in ["verbs", "resources", "apiGroups", "resourceNames"] {
            for v in rule[field].as_array().into_iter().flatten() {
                let v = v.as_str().unwrap_or_default();
                assert!(!v.contains('*'), "{who} has a wildcard in {field}: {rule}");
            }
        }
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "{who} grants non-resource URLs: {rule}"
        );
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for forbidden in ["escalate", "impersonate", "deletecollection"] {
            assert!(!verbs.contains(&forbidden), "{who} may {forbidden}: {rule}");
        }
        // `bind` only by name: the tenant ClusterRole (cluster-wide: the operator binds
        // it in each tenant namespace) and the sender Role (inside a tenant namespace);
        // templates/rbac.yaml says why.
        if verbs.contains(&"bind") {
            let allowed = [
                (
                    serde_json::json!(["clusterroles"]),
                    serde_json::json!([herald::controller::tenant::access::TENANT_ROLE]),
                ),
                (
                    serde_json::json!(["roles"]),
                    serde_json::json!([herald::controller::tenant::build::SENDER]),
                ),
            ];
            assert!(
                allowed
                    .iter()
                    .any(|(r, n)| &rule["resources"] == r && &rule["resourceNames"] == n),
                "{who} may bind any role: {rule}"
            );
        }
        // Secrets are readable only in the control namespace (a Role) and, through the
        // tenant ClusterRole bound there, in tenant namespaces: the operator's
        // cluster-wide ClusterRole names no Secret at all.
        if rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "secrets")
        {
            assert!(
                who != "\"ClusterRole\"/\"herald\"",
                "{who} grants Secrets cluster-wide: {rule}"
            );
        }
    }
    // The ClusterRole's text, comments included, carries no `*` at all.
    let cluster_role = rendered
        .split("\n---")
        .find(|d| d.contains("\nkind: ClusterRole\n"))
        .unwrap();
    assert!(
        !cluster_role.contains('*'),
        "the ClusterRole mentions '*':\n{cluster_role}"
    );
    // And values cannot bring one in through the erasure scope.
    let out = helm(&[
        "template",
        "herald",
        "charts/herald",
        "--set-json",
        r#"config.erasure.scope.kinds=[{"group":"*","version":"v1","resource":"*"}]"#,
    ]);
    assert!(
        !out.status.success(),
        "values.schema.json let a wildcard erasure kind through"
    );
    // Nor a cluster-wide Secret rule (Secrets are read only where docs/operations.md
    // says), nor Namespaces.
    for resource in ["secrets", "namespaces"] {
        let out = helm(&[
            "template",
            "herald",
            "charts/herald",
            "--set-json",
            &format!(
                r#"config.erasure.scope.kinds=[{{"group":"","version":"v1","resource":"{resource}"}}]"#
            ),
        ]);
        assert!(
            !out.status.success(),
            "values.schema.json let an erasure kind {resource} through"
        );
    }
}

/// The erasure RBAC is the erasure scope: list of exactly its kinds, and delete only
/// when it selects namespaces; the admission policy gets the same namespaces' labels.
#[test]
fn the_erasure_rbac_and_policy_are_generated_from_the_erasure_scope() {
    let erasure_role = |extra: &[&str]| {
        objects(&render(extra))
            .into_iter()
            .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == "herald-erasure")
            .expect("no ClusterRole herald-erasure")
    };
    let config = herald::config::OperatorConfig::load(None).unwrap();
    let rules = |role: &Value| -> Vec<(String, String, Vec<String>)> {
        role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let one = |k: &str| {
                    let v = r[k].as_array().unwrap();
                    assert_eq!(v.len(), 1, "{r}");
                    v[0].as_str().unwrap().to_owned()
                };
                let verbs = r["verbs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
                (one("apiGroups"), one("resources"), verbs)
            })
            .collect()
    };
    // Default values: the configuration's default kinds, list only.
    let default = rules(&erasure_role(&[]));
    let kinds: Vec<(String, String)> = config
        .erasure
        .scope
        .kinds
        .iter()
        .map(|k| (k.group.clone(), k.resource.clone()))
        .collect();
    assert_eq!(
        default
            .iter()
            .map(|(g, r, _)| (g.clone(), r.clone()))
            .collect::<Vec<_>>(),
        kinds
    );
    assert!(
        default.iter().all(|(_, _, v)| v == &["list"]),
        "{default:?}"
    );
    // With namespaces: list and delete of the declared kinds, nothing else.
    let scoped = rules(&erasure_role(&[
        "--set-json",
        r#"config.erasure.scope={"namespaceSelector":{"matchLabels":{"platform.example/tenant-data":"true"}},"kinds":[{"group":"monitoring.coreos.com","version":"v1","resource":"servicemonitors"}]}"#,
    ]));
    assert_eq!(
        scoped,
        [(
            "monitoring.coreos.com".to_owned(),
            "servicemonitors".to_owned(),
            vec!["list".to_owned(), "delete".to_owned()]
        )]
    );
    // The rendered configuration carries the same scope.
    let rendered = render(&[
        "--set-json",
        r#"config.erasure.scope.namespaceSelector={"matchLabels":{"platform.example/tenant-data":"true"}}"#,
    ]);
    let objs = objects(&rendered);
    let text = objs.iter().find(|o| o["kind"] == "ConfigMap").unwrap()["data"]["config.yaml"]
        .as_str()
        .unwrap();
    let parsed = herald::config::OperatorConfig::parse(text, "chart ConfigMap").unwrap();
    assert_eq!(
        parsed.erasure.scope.label_selector().as_deref(),
        Some("platform.example/tenant-data=true")
    );
    // And the admission policy's erasure namespaces are those labels.
    let policy = objs
        .iter()
        .find(|o| {
            o["kind"] == "ValidatingAdmissionPolicy"
                && o["metadata"]["name"] == "herald-operator-scope"
        })
        .unwrap();
    let labels = policy["spec"]["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "erasureScopeLabels")
        .unwrap();
    assert_eq!(
        labels["expression"], "{'platform.example/tenant-data': 'true'}",
        "{policy}"
    );
}

#[test]
fn the_chart_is_the_crate_version_and_renders_the_default_configuration() {
    let chart: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(crate::common::repo_root().join("charts/herald/Chart.yaml"))
            .unwrap(),
    )
    .unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["version"].as_str(), Some(version));
    assert_eq!(chart["appVersion"].as_str(), Some(version));

    let objects = objects(&render(&[]));
    let find = |kind: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} rendered"))
    };
    // The ConfigMap is what `herald run --config` parses (deny_unknown_fields), and
    // with default values it is config/herald.yaml, the compiled-in default.
    let text = find("ConfigMap")["data"]["config.yaml"].as_str().unwrap();
    let rendered = herald::config::OperatorConfig::parse(text, "chart ConfigMap").unwrap();
    assert_eq!(
        rendered,
        herald::config::OperatorConfig::load(None).unwrap()
    );

    let deployment = find("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"].as_str(),
        Some(format!("ghcr.io/herald-dev/herald:{version}").as_str())
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for a in [
        "run",
        "--config=/etc/herald/config.yaml",
        "--leader-election",
        "--lease-name=herald",
        "--lease-namespace=herald-system",
    ] {
        assert!(args.contains(&a), "missing arg {a}: {args:?}");
    }
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE"));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"][0],
        "ALL"
    );
    assert!(
        pod["topologySpreadConstraints"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
}

/// The knobs a platform engineer sets (issue 27): extra arguments, environment and
/// volumes reach the operator's container; without admission policies the chart says so
/// to the operator (which otherwise refuses to start); the chart names every kind and
/// the Kubernetes versions it needs.
#[test]
fn extra_args_env_and_volumes_reach_the_operator_and_the_chart_names_every_kind() {
    let knobs = objects(&render(&[
        "--set-json",
        r#"extraArgs=["--tenant-selector=herald.dev/shard=a","--watch-stall-limit-seconds=600"]"#,
        "--set-json",
        r#"extraEnv=[{"name":"HTTPS_PROXY","value":"http://proxy.example:3128"}]"#,
        "--set-json",
        r#"extraVolumes=[{"name":"ca","configMap":{"name":"corp-ca"}}]"#,
        "--set-json",
        r#"extraVolumeMounts=[{"name":"ca","mountPath":"/etc/ssl/corp","readOnly":true}]"#,
        "--set",
        "admissionPolicies.enabled=false",
    ]));
    let deployment = knobs.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = operator_args(&knobs);
    for a in [
        "--tenant-selector=herald.dev/shard=a",
        "--watch-stall-limit-seconds=600",
        "--allow-missing-admission-policies",
    ] {
        assert!(args.iter().any(|x| x == a), "missing arg {a}: {args:?}");
    }
    assert!(
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "HTTPS_PROXY"),
        "{container}"
    );
    assert!(
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/etc/ssl/corp")
    );
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "ca")
    );
    assert!(
        !knobs
            .iter()
            .any(|o| o["kind"] == "ValidatingAdmissionPolicy"),
        "admissionPolicies.enabled=false renders none"
    );
    // With the default values: no such flag, and the policies are rendered.
    let default = objects(&render(&[]));
    let args = operator_args(&default);
    assert!(
        !args
            .iter()
            .any(|a| a == "--allow-missing-admission-policies"),
        "{args:?}"
    );
    let policies = default
        .iter()
        .filter(|o| o["kind"] == "ValidatingAdmissionPolicy")
        .count();
    assert_eq!(policies, herald::preflight::ADMISSION_POLICIES.len());

    // A refused argument shape is refused by the values schema, not passed to the binary.
    let out = helm(&[
        "template",
        "charts/herald",
        "--set-json",
        r#"extraArgs=["run"]"#,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("extraArgs"),
        "extraArgs=[run] not refused by the schema: {err}"
    );

    let chart: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(crate::common::repo_root().join("charts/herald/Chart.yaml"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(chart["kubeVersion"].as_str(), Some(">=1.30.0-0"));
    let listed: serde_yaml::Value = serde_yaml::from_str(
        chart["annotations"]["artifacthub.io/crds"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let mut listed: Vec<String> = listed
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap().to_owned())
        .collect();
    let mut kinds: Vec<String> = herald::api::crds()
        .iter()
        .map(|c| c.spec.names.kind.clone())
        .collect();
    listed.sort();
    kinds.sort();
    assert_eq!(listed, kinds, "artifacthub.io/crds must name every kind");
}

/// The operator container's arguments in rendered `objects`.
fn operator_args(objects: &[Value]) -> Vec<String> {
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_alerts_name_the_metrics_herald_exports() {
    let rendered = render(&["--set", "prometheusRule.enabled=true"]);
    let rule = objects(&rendered)
        .into_iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .unwrap();
    let alerts: Vec<(String, String)> = rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            (
                r["alert"].as_str().unwrap().to_owned(),
                r["expr"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Metrics the operator registers today must appear in /metrics under these names.
    // (A family is encoded once it has a sample: give each alerted family one.)
    let mut metrics = herald::metrics::Metrics::new();
    herald::leader::register(&mut metrics.registry);
    use herald::metrics::{BindingLabels, ErrorLabels, PurgeLabels, TenantLabels};
    metrics
        .purge_overdue
        .get_or_create(&PurgeLabels {
            tenant: "t".into(),
            category: "backups".into(),
        })
        .set(0);
    metrics
        .residency_violations
        .get_or_create(&TenantLabels { tenant: "t".into() })
        .set(0);
    metrics
        .credential_next_rotation
        .get_or_create(&BindingLabels {
            binding: "b".into(),
            tenant: "t".into(),
            channel: "sms".into(),
        })
        .set(0);
    metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            controller: "tenant".into(),
            category: "api".into(),
        })
        .inc();
    metrics.set_erasure_step_failures("t", &["purge"], [("purge", 1)]);
    let exported = metrics.encode().unwrap();
    for (alert, metric) in [
        ("HeraldResidencyViolation", "herald_residency_violations"),
        (
            "HeraldCredentialRotationOverdue",
            "herald_credential_next_rotation_timestamp_seconds",
        ),
        ("HeraldReconcileErrors", "herald_reconcile_errors_total"),
        ("HeraldNoLeader", "herald_leader"),
        ("HeraldPurgeOverdue", "herald_purge_overdue"),
        (
            "HeraldTenantDeletionDeadlineNear",
            "herald_tenant_deletion_deadline_timestamp_seconds",
        ),
        (
            "HeraldTenantDeletionOverdue",
            "herald_tenant_deletion_overdue",
        ),
        ("HeraldErasurePurgeFailing", "herald_erasure_step_failures"),
        (
            "HeraldErasureExternalStepFailing",
            "herald_erasure_step_failures",
        ),
    ] {
        let (_, expr) = alerts
            .iter()
            .find(|(a, _)| a == alert)
            .unwrap_or_else(|| panic!("no alert {alert}"));
        assert!(expr.contains(metric), "{alert}: {expr}");
        // The erasure metrics are exported by the erasure work (docs/metrics.md).
        if !metric.starts_with("herald_tenant_deletion") {
            let family = metric.trim_end_matches("_total");
            assert!(
                exported.contains(&format!("# TYPE {family} ")),
                "{metric} is not a metric Herald registers:\n{exported}"
            );
        }
    }
}

/// The Grafana dashboard: absent by default; with `dashboard.enabled` a ConfigMap the
/// Grafana sidecar picks up (its label), that the API server accepts, holding one
/// dashboard with a panel for each of Herald's commitments. (Its queries are parsed
/// by Prometheus's parser in `make rules-check`.)
#[tokio::test]
async fn the_dashboard_is_a_sidecar_config_map_with_a_panel_per_commitment() {
    let client = client().await;
    ensure_namespace(&client, CONTROL_NAMESPACE).await;
    let is_dashboard =
        |o: &&Value| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "herald-dashboard";
    assert!(
        !objects(&render(&[])).iter().any(|o| is_dashboard(&o)),
        "off by default"
    );
    let rendered = render(&["--set", "dashboard.enabled=true"]);
    let all = objects(&rendered);
    let cm = all
        .iter()
        .find(is_dashboard)
        .expect("a dashboard ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value =
        serde_json::from_str(cm["data"]["herald.json"].as_str().unwrap()).unwrap();
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "Tenants by phase",
        "Deletion deadlines ahead",
        "Credential rotations and failures",
        "Residency violations",
        "Sub-processor notices",
        "Reconcile errors by category",
    ] {
        assert!(titles.contains(&want), "no panel {want:?} in {titles:?}");
    }
    let yaml = serde_yaml::to_string(cm).unwrap();
    let out = kubectl_stdin(
        &[
            "apply",
            "--dry-run=server",
            "--server-side",
            "--field-manager=herald-e2e-chart",
            "-f",
            "-",
        ],
        &yaml,
    );
    assert!(
        out.status.success(),
        "the API server refused the dashboard ConfigMap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The chart's lease timings reach the operator's flags, and timings in an order that
/// would allow two leaders are refused when the operator starts (before it reconciles).
#[test]
fn lease_timings_reach_the_operator_and_a_wrong_order_is_refused_at_start() {
    let default = operator_args(&objects(&render(&[])));
    for a in [
        "--lease-duration-seconds=10",
        "--lease-renew-deadline-seconds=6",
        "--lease-retry-period-seconds=2",
    ] {
        assert!(default.iter().any(|x| x == a), "missing {a}: {default:?}");
    }
    let slow = operator_args(&objects(&render(&[
        "--set",
        "leaderElection.leaseDurationSeconds=30,leaderElection.renewDeadlineSeconds=20,leaderElection.retryPeriodSeconds=5",
    ])));
    for a in [
        "--lease-duration-seconds=30",
        "--lease-renew-deadline-seconds=20",
        "--lease-retry-period-seconds=5",
    ] {
        assert!(slow.iter().any(|x| x == a), "missing {a}: {slow:?}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "run",
            "--leader-election",
            "--lease-duration-seconds=5",
            "--lease-renew-deadline-seconds=6",
            "--http-addr=127.0.0.1:0",
        ])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("must step down before its lease can be taken over"),
        "{err}"
    );
}
