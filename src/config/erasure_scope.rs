//! `erasure.scope` of the operator configuration: where erasure looks for objects
//! labelled `herald.dev/tenant=<name>` besides the tenant namespace, and which kinds it
//! looks at. The chart renders its RBAC for erasure (and the `herald-operator-scope`
//! admission policy's namespaces) from the same values, so scope and permissions are one
//! setting.
//!
//! The namespaces are a label selector of `matchLabels` only: the admission policy must
//! express the same selector in CEL, and equality of labels is what it can check without
//! a second selector language.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What erasure may delete outside the tenant namespace (the tenant's source Secrets in
/// the control namespace are erased whatever the scope says).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErasureScope {
    /// Namespaces (besides the tenant's own) in which labelled objects of `kinds` are
    /// erased. None (the default): the tenant namespace only.
    #[serde(default)]
    pub namespace_selector: Option<NamespaceSelector>,
    /// The kinds erasure looks at, by group and resource (plural). Labelled objects of
    /// other kinds are reported, never deleted. Default: the kinds Herald creates in a
    /// tenant namespace (Secrets aside, which erasure reads only in the tenant and the
    /// control namespace; Roles and RoleBindings aside, see [`default_kinds`]).
    #[serde(default = "default_kinds")]
    pub kinds: Vec<ScopeKind>,
}

impl Default for ErasureScope {
    fn default() -> Self {
        Self {
            namespace_selector: None,
            kinds: default_kinds(),
        }
    }
}

/// The namespaces of the scope: those carrying every label given.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSelector {
    pub match_labels: BTreeMap<String, String>,
}

/// One kind of the scope.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct ScopeKind {
    /// The API group ("" for the core group).
    #[serde(default)]
    pub group: String,
    /// The version the chart grants (RBAC ignores it; erasure lists the served one).
    pub version: String,
    /// The resource, plural and lower case (`configmaps`).
    pub resource: String,
}

/// The kinds Herald creates in a tenant namespace (src/controller/tenant/build.rs),
/// pods included (its Deployment's and Jobs' pods carry the tenant label). Not its Roles
/// and RoleBindings: in the tenant namespace they go with it, and elsewhere deleting
/// access grants is not erasure's to do by default (the chart would have to grant the
/// deletion of RoleBindings cluster-wide).
fn default_kinds() -> Vec<ScopeKind> {
    [
        ("", "v1", "configmaps"),
        ("", "v1", "serviceaccounts"),
        ("", "v1", "resourcequotas"),
        ("", "v1", "limitranges"),
        ("", "v1", "pods"),
        ("apps", "v1", "deployments"),
        ("policy", "v1", "poddisruptionbudgets"),
        ("networking.k8s.io", "v1", "networkpolicies"),
        ("batch", "v1", "jobs"),
        ("batch", "v1", "cronjobs"),
    ]
    .into_iter()
    .map(|(group, version, resource)| ScopeKind {
        group: group.into(),
        version: version.into(),
        resource: resource.into(),
    })
    .collect()
}

impl ScopeKind {
    /// The kind as kubectl names a resource: `configmaps`, `deployments.apps`.
    pub fn name(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

impl ErasureScope {
    /// Whether objects of `group`/`resource` are in the scope.
    pub fn includes(&self, group: &str, resource: &str) -> bool {
        self.kinds
            .iter()
            .any(|k| k.group == group && k.resource == resource)
    }

    /// The namespaces' label selector (`k=v,…`), if the scope has namespaces.
    pub fn label_selector(&self) -> Option<String> {
        self.namespace_selector.as_ref().map(|s| {
            s.match_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// Why the scope cannot be used, if it cannot. Never a Namespace (deleting one takes
    /// its unlabelled contents), never a Secret (the operator reads none outside the
    /// tenant and control namespaces), never a Herald kind, never Events; a selector
    /// names at least one label (an empty one selects every namespace).
    pub fn check(&self) -> Result<(), String> {
        if let Some(s) = &self.namespace_selector {
            if s.match_labels.is_empty() {
                return Err(
                    "scope.namespaceSelector.matchLabels is empty: it would select every namespace"
                        .into(),
                );
            }
            for (k, v) in &s.match_labels {
                if !is_label_key(k) || !is_label_value(v) {
                    return Err(format!(
                        "scope.namespaceSelector.matchLabels: {k}={v} is not a label"
                    ));
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for k in &self.kinds {
            let name = k.name();
            let dns = |s: &str| {
                s.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-.".contains(&c))
            };
            if k.resource.is_empty() || !dns(&k.resource) || !dns(&k.group) || k.version.is_empty()
            {
                return Err(format!(
                    "scope.kinds: {name} needs a lower-case group, a version and a plural resource"
                ));
            }
            let why = match (k.group.as_str(), k.resource.as_str()) {
                ("", "namespaces") => Some("a Namespace is never erased but the tenant's own"),
                ("", "secrets") => Some(
                    "Secrets are erased in the tenant and control namespaces only, where the operator may read them",
                ),
                ("", "events") | ("events.k8s.io", _) => Some("Events are not erased"),
                (g, _) if g == crate::api::GROUP => Some("Herald's own kinds are not erased"),
                _ => None,
            };
            if let Some(why) = why {
                return Err(format!("scope.kinds: {name}: {why}"));
            }
            if !seen.insert((&k.group, &k.resource)) {
                return Err(format!("scope.kinds: {name} is listed twice"));
            }
        }
        Ok(())
    }
}

/// A label key: an optional DNS prefix and `/`, then a name of at most 63 characters.
fn is_label_key(k: &str) -> bool {
    let (prefix, name) = k.rsplit_once('/').unwrap_or(("", k));
    (prefix.is_empty() && !k.contains('/') || (!prefix.is_empty() && prefix.len() <= 253))
        && prefix
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-.".contains(&c))
        && !name.is_empty()
        && is_label_value(name)
}

/// A label value: at most 63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends.
fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        && b.first().is_none_or(u8::is_ascii_alphanumeric)
        && b.last().is_none_or(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ErasureScope, String> {
        let s: ErasureScope = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        s.check().map(|()| s)
    }

    #[test]
    fn the_default_is_the_tenant_namespace_and_herald_s_kinds() {
        let s = parse("{}").unwrap();
        assert_eq!(s, ErasureScope::default());
        assert_eq!(s.label_selector(), None);
        assert!(s.includes("apps", "deployments") && s.includes("", "configmaps"));
        assert!(!s.includes("", "secrets") && !s.includes("", "namespaces"));
        assert_eq!(s.check(), Ok(()));
    }

    #[test]
    fn a_selector_and_kinds_are_read() {
        let s = parse(
            "namespaceSelector: {matchLabels: {platform.example/tenant-data: 'true', tier: a}}\nkinds: [{group: monitoring.coreos.com, version: v1, resource: servicemonitors}, {version: v1, resource: configmaps}]",
        )
        .unwrap();
        assert_eq!(
            s.label_selector().as_deref(),
            Some("platform.example/tenant-data=true,tier=a")
        );
        assert!(s.includes("monitoring.coreos.com", "servicemonitors"));
        assert!(s.includes("", "configmaps"));
        assert!(!s.includes("apps", "deployments"));
    }

    #[test]
    fn what_erasure_must_never_delete_is_refused() {
        for (bad, why) in [
            ("namespaceSelector: {matchLabels: {}}", "every namespace"),
            (
                "namespaceSelector: {matchLabels: {'a b': c}}",
                "not a label",
            ),
            (
                "namespaceSelector: {matchLabels: {a: \"c'\"}}",
                "not a label",
            ),
            ("kinds: [{version: v1, resource: namespaces}]", "Namespace"),
            ("kinds: [{version: v1, resource: secrets}]", "Secrets"),
            ("kinds: [{version: v1, resource: events}]", "Events"),
            (
                "kinds: [{group: herald.dev, version: v1alpha1, resource: tenants}]",
                "Herald's own",
            ),
            (
                "kinds: [{group: '*', version: v1, resource: '*'}]",
                "lower-case",
            ),
            (
                "kinds: [{version: v1, resource: pods}, {version: v1, resource: pods}]",
                "twice",
            ),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // A selector language the admission policy cannot mirror is refused by name.
        let e = parse("namespaceSelector: {matchExpressions: []}").unwrap_err();
        assert!(e.contains("matchExpressions"), "{e}");
    }
}
