//! Pins the parts of the generated CRDs that users and tools depend on: scope, names,
//! printer columns, the status subresource, list-map conditions, every admission rule
//! and its message, the absence of defaults, and that `crds/` matches the types.
//!
//! The rules themselves are exercised against a real API server by the e2e tests
//! (`tests/e2e/api.rs`); here we only make sure they are present and where we meant.

#![allow(clippy::unwrap_used)] // a schema that is not shaped as expected must fail loudly

use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use super::common::{EEA_COUNTRIES, ISO_3166_ALPHA2, eea_cel_list, iso_country_rule};
use super::crds;

/// The CRD of `kind`, as JSON.
fn crd(kind: &str) -> Value {
    let crd: CustomResourceDefinition = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    serde_json::to_value(crd).unwrap()
}

/// The openAPIV3Schema of `kind`'s only version.
fn schema(kind: &str) -> Value {
    crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The schema at a dotted path of properties (`spec.contract.state`; `[]` steps into items).
fn at(kind: &str, path: &str) -> Value {
    let mut s = schema(kind);
    for step in path.split('.').filter(|s| !s.is_empty()) {
        s = if step == "[]" {
            s["items"].clone()
        } else {
            s["properties"][step].clone()
        };
        assert!(!s.is_null(), "{kind}: no schema at {path} (step {step})");
    }
    s
}

/// The (rule, message) pairs of the x-kubernetes-validations at `path`.
fn rules(kind: &str, path: &str) -> Vec<(String, String)> {
    at(kind, path)["x-kubernetes-validations"]
        .as_array()
        .unwrap_or_else(|| panic!("{kind}: no x-kubernetes-validations at {path:?}"))
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (text("rule"), text("message"))
        })
        .collect()
}

/// Asserts that `path` carries a rule containing `rule` whose message contains `message`.
#[track_caller]
fn assert_rule(kind: &str, path: &str, rule: &str, message: &str) {
    let all = rules(kind, path);
    assert!(
        all.iter()
            .any(|(r, m)| r.contains(rule) && m.contains(message)),
        "{kind} {path:?}: no rule like {rule:?} with message like {message:?}; have {all:#?}"
    );
}

/// Every x-kubernetes-validations entry anywhere in `v`, with the schema path to it.
fn all_rules(v: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(rs)) = m.get("x-kubernetes-validations") {
                out.extend(rs.iter().map(|r| (path.to_string(), r.clone())));
            }
            for (k, child) in m {
                all_rules(child, &format!("{path}/{k}"), out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| all_rules(c, path, out)),
        _ => {}
    }
}

const KINDS: [&str; 6] = [
    "Tenant",
    "ChannelBinding",
    "RetentionPolicy",
    "Subprocessor",
    "BreachNotice",
    "DataSubjectRequest",
];

#[test]
fn names_scope_short_names_and_category() {
    let expected = [
        ("Tenant", "tenants", "Cluster", "tn"),
        ("ChannelBinding", "channelbindings", "Namespaced", "cb"),
        ("RetentionPolicy", "retentionpolicies", "Cluster", "rp"),
        ("Subprocessor", "subprocessors", "Cluster", "sp"),
        ("BreachNotice", "breachnotices", "Namespaced", "breach"),
        (
            "DataSubjectRequest",
            "datasubjectrequests",
            "Namespaced",
            "dsr",
        ),
    ];
    assert_eq!(crds().len(), expected.len());
    for (kind, plural, scope, short) in expected {
        let c = crd(kind);
        assert_eq!(c["metadata"]["name"], format!("{plural}.herald.dev"));
        assert_eq!(c["spec"]["group"], "herald.dev");
        assert_eq!(c["spec"]["scope"], scope, "{kind}");
        assert_eq!(c["spec"]["names"]["plural"], plural);
        assert_eq!(c["spec"]["names"]["shortNames"], serde_json::json!([short]));
        assert_eq!(
            c["spec"]["names"]["categories"],
            serde_json::json!(["herald"])
        );
        let v = &c["spec"]["versions"][0];
        assert_eq!(v["name"], "v1alpha1");
        assert_eq!(v["served"], true);
        assert_eq!(v["storage"], true);
        // RetentionPolicy has no status: nothing reconciles it (what applies to a tenant
        // is the Tenant's RetentionApplied condition).
        let status = if kind == "RetentionPolicy" {
            serde_json::Value::Null
        } else {
            serde_json::json!({})
        };
        assert_eq!(v["subresources"]["status"], status, "{kind}: /status");
    }
}

#[test]
fn printer_columns() {
    let expected: [(&str, &[&str]); 6] = [
        (
            "Tenant",
            &[
                "Phase",
                "Ready",
                "Reason",
                "Regions",
                "Senders",
                "Deletion Deadline",
                "Age",
            ],
        ),
        (
            "ChannelBinding",
            &[
                "Tenant",
                "Channel",
                "Ready",
                "Reason",
                "Credential",
                "Next Rotation",
                "Age",
            ],
        ),
        (
            "RetentionPolicy",
            &["Delete Within", "Backups", "Logs", "Age"],
        ),
        (
            "Subprocessor",
            &[
                "Category",
                "Locations",
                "Safeguard",
                "Effective",
                "Notified",
                "Ready",
                "Reason",
                "Age",
            ],
        ),
        (
            "BreachNotice",
            &[
                "Deadline",
                "State",
                "Acknowledged",
                "Ready",
                "Reason",
                "Age",
            ],
        ),
        (
            "DataSubjectRequest",
            &[
                "Tenant", "Right", "Deadline", "State", "Ready", "Reason", "Age",
            ],
        ),
    ];
    for (kind, names) in expected {
        let c = crd(kind);
        let cols = c["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .clone();
        let got: Vec<&str> = cols.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(got, names, "{kind}");
        if let Some(ready) = cols.iter().find(|c| c["name"] == "Ready") {
            assert_eq!(
                ready["jsonPath"],
                r#".status.conditions[?(@.type=="Ready")].status"#
            );
            // The reason only with -o wide: the default view stays narrow.
            let reason = cols.iter().find(|c| c["name"] == "Reason").unwrap();
            assert_eq!(
                reason["jsonPath"],
                r#".status.conditions[?(@.type=="Ready")].reason"#
            );
            assert_eq!(reason["priority"], 1, "{kind}");
        }
        // Every column must point at a field the schema has, or it prints nothing forever.
        for col in &cols {
            let path = col["jsonPath"].as_str().unwrap();
            if path.starts_with(".metadata") || path.starts_with(".status.conditions") {
                continue;
            }
            at(kind, path.trim_start_matches('.'));
        }
    }
}

#[test]
fn status_conditions_are_a_list_map_keyed_by_type() {
    for kind in KINDS.into_iter().filter(|k| *k != "RetentionPolicy") {
        let c = at(kind, "status.conditions");
        assert_eq!(c["x-kubernetes-list-type"], "map", "{kind}");
        assert_eq!(
            c["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"]),
            "{kind}"
        );
        let required = c["items"]["required"].as_array().unwrap();
        assert!(
            required.contains(&"type".into()),
            "{kind}: a map key must be required"
        );
        assert_eq!(
            at(kind, "status.observedGeneration")["type"],
            "integer",
            "{kind}"
        );
    }
}

#[test]
fn no_schema_defaults_anywhere() {
    // A CRD default would be written into every object and show up as drift in GitOps.
    for kind in KINDS {
        let text = serde_json::to_string(&schema(kind)).unwrap();
        assert!(
            !text.contains("\"default\":"),
            "{kind} schema has a default"
        );
    }
}

#[test]
fn every_spec_field_is_documented() {
    fn walk(kind: &str, path: &str, s: &Value) {
        if let Some(props) = s["properties"].as_object() {
            for (name, p) in props {
                let here = format!("{path}.{name}");
                let documented = p["description"]
                    .as_str()
                    .is_some_and(|d| !d.trim().is_empty());
                assert!(
                    documented,
                    "{kind} {here} has no doc comment (kubectl explain shows nothing)"
                );
                walk(kind, &here, p);
            }
        }
        if s["items"].is_object() {
            walk(kind, &format!("{path}[]"), &s["items"]);
        }
    }
    for kind in KINDS {
        walk(kind, "", &schema(kind));
    }
}

#[test]
fn every_rule_has_a_message_and_transition_rules_are_the_intended_ones() {
    let mut transition = BTreeSet::new();
    for kind in KINDS {
        let mut found = Vec::new();
        all_rules(&schema(kind), "", &mut found);
        assert!(!found.is_empty(), "{kind} has no CEL rules");
        for (path, r) in found {
            let rule = r["rule"].as_str().unwrap();
            let message = r["message"].as_str().unwrap_or_default();
            assert!(
                message.len() > 20,
                "{kind} {path}: rule {rule:?} has no useful message"
            );
            if rule.contains("oldSelf") {
                transition.insert(format!("{kind}{path}"));
            }
        }
    }
    let expected: BTreeSet<String> = [
        "Tenant/properties/spec/properties/contract",
        "ChannelBinding/properties/spec/properties/tenantRef",
        "ChannelBinding/properties/spec/properties/channel",
        "BreachNotice/properties/spec/properties/awareAt",
        "DataSubjectRequest/properties/spec",
        "DataSubjectRequest/properties/spec/properties/tenantRef",
        "DataSubjectRequest/properties/spec/properties/right",
        "DataSubjectRequest/properties/spec/properties/receivedAt",
        "DataSubjectRequest/properties/spec/properties/subjectSecretRef",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(transition, expected);
}

#[test]
fn tenant_rules() {
    let root = rules("Tenant", "");
    assert!(
        root.iter()
            .any(|(r, m)| r.contains("self.metadata.name.size() <= 56")
                && r.contains("matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
                && m.contains("tenant-<name>")),
        "{root:#?}"
    );
    let contract = "spec.contract";
    assert_rule(
        "Tenant",
        contract,
        "has(self.terminatedAt)",
        "terminatedAt is required",
    );
    assert_rule(
        "Tenant",
        contract,
        "!has(self.terminatedAt)",
        "may only be set",
    );
    assert_rule(
        "Tenant",
        contract,
        "oldSelf.state != 'Terminated'",
        "Terminated contract is final",
    );
    assert_rule(
        "Tenant",
        contract,
        "self.terminatedAt == oldSelf.terminatedAt",
        "cannot change",
    );
    assert_rule(
        "Tenant",
        "spec.contract.onTermination",
        "has(self.export)",
        "export is required",
    );
    assert_rule(
        "Tenant",
        "spec.residency.regions",
        "size(self) > 0",
        "at least one region",
    );
    assert_rule(
        "Tenant",
        "spec.notifications.webhookUrl",
        "getScheme() == 'https'",
        "https://",
    );
    assert_rule(
        "Tenant",
        "spec.contract.onTermination.export.url",
        "isURL(self)",
        "https://",
    );

    let regions = at("Tenant", "spec.residency.regions");
    assert_eq!(regions["x-kubernetes-list-type"], "set");
    assert!(
        regions["maxItems"].is_number(),
        "CEL cost needs a bound on the list"
    );
    assert_eq!(
        at("Tenant", "spec.contract.state")["enum"],
        serde_json::json!(["Active", "Suspended", "Terminated"])
    );
    assert_eq!(at("Tenant", "spec.senders.replicas")["maximum"], 50.0);
    assert_eq!(at("Tenant", "spec.senders.image")["minLength"], 1);
    let objections = at("Tenant", "spec.subprocessorObjections");
    assert_eq!(
        objections["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
}

#[test]
fn channel_binding_rules() {
    assert_rule(
        "ChannelBinding",
        "spec.tenantRef",
        "self == oldSelf",
        "tenantRef is immutable",
    );
    assert_rule(
        "ChannelBinding",
        "spec.channel",
        "self == oldSelf",
        "channel is immutable",
    );
    assert_rule(
        "ChannelBinding",
        "spec.credential",
        "has(self.secretRef) != has(self.providerApi)",
        "exactly one source",
    );
    // A binding names a provider of the configuration; no URL or token Secret of its own.
    let provider = at("ChannelBinding", "spec.credential.providerApi");
    let fields: Vec<&String> = provider["properties"].as_object().unwrap().keys().collect();
    assert_eq!(fields, ["name"], "{provider}");
    let channels = at("ChannelBinding", "spec.channel")["enum"]
        .as_array()
        .unwrap()
        .clone();
    for c in [
        "whatsapp",
        "sms",
        "email",
        "push",
        "voice",
        "livechat",
        "google-business-messages",
    ] {
        assert!(channels.contains(&c.into()), "channel {c} missing");
    }
    assert_eq!(
        at("ChannelBinding", "spec.rotation.intervalDays")["minimum"],
        1.0
    );
}

#[test]
fn retention_policy_rules() {
    let rp = "RetentionPolicy";
    assert_rule(rp, "spec.deleteWithinDays", "self <= 30", "at most 30");
    assert_rule(rp, "spec.backupsDays", "self <= 7", "at most 7");
    assert_rule(rp, "spec.logsDays", "self <= 90", "at most 90");
    assert_rule(
        rp,
        "spec.accountDataDaysAfterContractEnd",
        "self <= 30",
        "at most 30",
    );
    assert_rule(rp, "spec.records.billingDays", "self >= 2555", "7 years");
    assert_rule(
        rp,
        "spec.records.securityIncidentsDays",
        "self >= 1095",
        "3 years",
    );
    assert_rule(
        rp,
        "spec.records.deletionReceiptsDays",
        "self >= 1825",
        "5 years",
    );
    // Zero or negative days are refused by the schema for every period.
    let mut periods = 0;
    for (path, s) in [
        ("spec", at(rp, "spec")),
        ("spec.records", at(rp, "spec.records")),
    ] {
        for (name, p) in s["properties"].as_object().unwrap() {
            if name.ends_with("Days") || name.ends_with("DaysAfterContractEnd") {
                assert_eq!(p["minimum"], 1.0, "{path}.{name}");
                periods += 1;
            }
        }
    }
    assert_eq!(periods, 11);
}

#[test]
fn subprocessor_rules() {
    let sp = "Subprocessor";
    assert_rule(
        sp,
        "spec",
        "self.safeguard != 'EEA' || self.locations.all(",
        "outside the EEA",
    );
    assert_rule(
        sp,
        "spec",
        "has(self.transferImpactAssessmentRef)",
        "transfer impact assessment",
    );
    assert_rule(
        sp,
        "spec",
        "self.category in ['CommunicationChannel', 'EmailDelivery']",
        "channels",
    );
    assert_rule(
        sp,
        "spec.locations",
        "size(self) > 0",
        "at least one country",
    );
    assert_eq!(at(sp, "spec.locations.[]")["pattern"], "^[A-Z]{2}$");
    assert_eq!(at(sp, "spec.locations.[]")["maxLength"], 2);
    assert_eq!(
        at(sp, "spec.safeguard")["enum"],
        serde_json::json!(["EEA", "Adequacy", "SCC", "BCR"])
    );
    assert_eq!(at(sp, "spec.noticePeriodDays")["minimum"], 1.0);
}

#[test]
fn eea_list_is_the_eu27_plus_iceland_liechtenstein_norway() {
    let set: BTreeSet<_> = EEA_COUNTRIES.iter().collect();
    assert_eq!(set.len(), 30);
    for code in ["DE", "IE", "NL", "AT", "GR", "IS", "LI", "NO"] {
        assert!(set.contains(&code), "{code}");
    }
    for code in ["EL", "GB", "CH", "US"] {
        assert!(!set.contains(&code), "{code}");
    }
    let list = eea_cel_list();
    assert!(
        list.starts_with("['AT', ") && list.ends_with("'NO']"),
        "{list}"
    );
}

#[test]
fn crds_directory_matches_the_types() {
    // `herald crds --out crds` writes these files; a stale checkout fails here and in CI.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for crd in crds() {
        let path = dir.join(crate::crdgen::file_name(&crd));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `cargo run -- crds --out crds`",
                path.display()
            )
        });
        let rendered = crate::crdgen::render(&crd).unwrap();
        assert!(
            on_disk == rendered,
            "{} is stale; run `cargo run -- crds --out crds`",
            path.display()
        );
    }
}

/// Every `format` in the schemas is one the API server knows: an unknown one (schemars
/// writes `uint32` for a u32) is a warning on every apply of the CRD (seen in `make demo`).
#[test]
fn the_schemas_use_only_formats_the_api_server_knows() {
    fn formats(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(f)) = m.get("format") {
                    out.push(f.clone());
                }
                m.values().for_each(|v| formats(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| formats(v, out)),
            _ => {}
        }
    }
    // The formats apiextensions validates (k8s.io/kube-openapi strfmt's default registry)
    // that Herald's types can produce.
    let known = [
        "int32",
        "int64",
        "float",
        "double",
        "byte",
        "date-time",
        "date",
        "uri",
    ];
    for crd in crds() {
        let mut found = Vec::new();
        formats(&serde_json::to_value(&crd).unwrap(), &mut found);
        let unknown: Vec<&String> = found
            .iter()
            .filter(|f| !known.contains(&f.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "{}: unknown formats {unknown:?}",
            crd.metadata.name.as_deref().unwrap_or("")
        );
    }
}

#[test]
fn descriptions_are_reflowed_for_kubectl_explain() {
    assert_eq!(
        super::reflow("one\ntwo\n\nthree\nfour"),
        "one two\n\nthree four"
    );
    let residency = at("Tenant", "spec.residency")["description"].clone();
    assert!(!residency.as_str().unwrap().contains('\n'), "{residency}");
}

#[test]
fn iso_list_has_the_249_assigned_codes_and_holds_the_eea() {
    let set: BTreeSet<_> = ISO_3166_ALPHA2.iter().collect();
    assert_eq!(set.len(), 249, "duplicates in ISO_3166_ALPHA2");
    let mut sorted = ISO_3166_ALPHA2;
    sorted.sort_unstable();
    assert_eq!(sorted, ISO_3166_ALPHA2, "kept in alphabetical order");
    assert!(
        ISO_3166_ALPHA2
            .iter()
            .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
    );
    for code in EEA_COUNTRIES {
        assert!(
            set.contains(&code),
            "EEA country {code} is not in the ISO list"
        );
    }
    for code in ["GB", "GR", "CH", "US", "AX", "SS", "BQ"] {
        assert!(set.contains(&code), "{code}");
    }
    for code in ["UK", "EL", "EU", "XK", "YU", "AN"] {
        assert!(
            !set.contains(&code),
            "{code} is not an assigned ISO 3166-1 alpha-2 code"
        );
    }
    let rule = iso_country_rule();
    assert!(rule.starts_with("self.all(c, c in ['AD', "), "{rule}");
    assert!(rule.ends_with("'ZW'])"), "{rule}");
}

#[test]
fn names_text_images_and_resources_are_checked_as_kubernetes_checks_them() {
    const SUBDOMAIN: &str = "([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')";
    // References: DNS-1123 subdomains (object names), a Tenant's a DNS label of <= 56.
    for (kind, path) in [
        ("ChannelBinding", "spec.subprocessorRef"),
        ("ChannelBinding", "spec.credential.secretRef"),
        ("Tenant", "spec.retentionPolicyRef"),
        ("Tenant", "spec.notifications.signingSecretRef"),
        ("Tenant", "spec.contract.onTermination.export.authSecretRef"),
        ("Tenant", "spec.subprocessorObjections.[]"),
    ] {
        assert_rule(kind, path, SUBDOMAIN, "DNS-1123 subdomain");
    }
    assert_rule(
        "ChannelBinding",
        "spec.tenantRef",
        "self.name.size() <= 56",
        "name of a Tenant",
    );
    // The binding's name is a label value on its credential Secrets.
    assert_rule(
        "ChannelBinding",
        "",
        "self.metadata.name.size() <= 63",
        "label value",
    );
    // Secret keys.
    for path in [
        "spec.notifications.signingSecretRef",
        "spec.contract.onTermination.export.authSecretRef",
    ] {
        assert_rule(
            "Tenant",
            path,
            "^[-._a-zA-Z0-9]+$",
            "key of a Secret's data",
        );
        assert_eq!(at("Tenant", &format!("{path}.key"))["maxLength"], 253);
    }
    // Display text: printable.
    for (kind, path) in [
        ("Tenant", "spec.displayName"),
        ("Tenant", "spec.contract.dpa.reference"),
        ("Subprocessor", "spec.legalName"),
        ("Subprocessor", "spec.dpa.reference"),
    ] {
        assert_rule(kind, path, r"\\p{Cc}", "must be printable");
        assert!(
            at(kind, path)["maxLength"].is_number(),
            "{kind} {path}: CEL cost needs a bound"
        );
    }
    // Country codes against the one list.
    assert_rule(
        "Subprocessor",
        "spec.locations",
        &iso_country_rule(),
        "ISO 3166-1 alpha-2",
    );
    // Image references, bounded.
    assert_rule(
        "Tenant",
        "spec.senders.image",
        "@[A-Za-z][A-Za-z0-9]*",
        "container image reference",
    );
    assert_eq!(at("Tenant", "spec.senders.image")["maxLength"], 512);
    // Quantities, and requests within limits, on bounded maps.
    let resources = "spec.senders.resources";
    assert_rule(
        "Tenant",
        resources,
        "isQuantity(string(self.limits[k]))",
        "Kubernetes quantity",
    );
    assert_rule(
        "Tenant",
        resources,
        "quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0",
        "may not exceed its limit",
    );
    for map in ["requests", "limits"] {
        let m = at("Tenant", &format!("{resources}.{map}"));
        assert_eq!(m["maxProperties"], 8, "{map}");
        assert_eq!(m["additionalProperties"]["maxLength"], 64, "{map}");
    }
}
