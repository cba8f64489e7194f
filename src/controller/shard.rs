//! Which tenants this process serves: `--tenant-selector` read the way the API server
//! reads a label selector, so that a controller can judge an object by its Tenant's
//! labels. The Tenant, Subprocessor and BreachNotice controllers hand the selector to
//! the API server (their Tenant watches are filtered there); the ChannelBinding
//! controller cannot (a binding carries no tenant labels), so it asks [`Shard::serves`]
//! with the labels of the binding's Tenant.
//!
//! A binding whose Tenant does not exist is judged as if its Tenant had no labels: it
//! belongs to the shard whose selector matches an unlabelled Tenant (with the e2e
//! selectors `!shard` and `shard=x`, the first), so exactly one shard reports it
//! `TenantNotFound` and releases it when it is deleted, instead of every shard or none.

use std::collections::BTreeMap;

use kube::core::{Expression, Selector, SelectorExt};

/// Why a `--tenant-selector` cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--tenant-selector {selector:?}: {problem}")]
pub struct SelectorError {
    selector: String,
    problem: String,
}

/// The tenants this process serves.
#[derive(Clone, Debug, Default)]
pub struct Shard {
    /// None: every tenant.
    selector: Option<Selector>,
}

impl Shard {
    /// Every tenant (no `--tenant-selector`).
    pub fn all() -> Self {
        Self::default()
    }

    /// Parses `--tenant-selector`. Supports what the API server's selector syntax has
    /// except the numeric `gt`/`lt` forms: `k`, `!k`, `k=v`, `k==v`, `k!=v`,
    /// `k in (a,b)`, `k notin (a,b)`, comma-separated.
    pub fn parse(selector: Option<&str>) -> Result<Self, SelectorError> {
        let Some(text) = selector else {
            return Ok(Self::all());
        };
        let fail = |problem: String| SelectorError {
            selector: text.to_owned(),
            problem,
        };
        let mut expressions = Vec::new();
        for requirement in split_requirements(text).map_err(&fail)? {
            expressions.push(requirement_of(requirement).map_err(&fail)?);
        }
        if expressions.is_empty() {
            return Err(fail(
                "empty; leave the flag out to serve every tenant".into(),
            ));
        }
        let mut selector = Selector::default();
        selector.extend(expressions);
        Ok(Self {
            selector: Some(selector),
        })
    }

    /// Whether this process serves the tenant with these labels; `None`: the Tenant
    /// does not exist (judged as a Tenant without labels, see the module doc).
    pub fn serves(&self, tenant_labels: Option<&BTreeMap<String, String>>) -> bool {
        let Some(selector) = &self.selector else {
            return true;
        };
        match tenant_labels {
            Some(labels) => selector.matches(labels),
            None => selector.matches(&BTreeMap::new()),
        }
    }

    /// Whether this process serves only some tenants.
    pub fn is_partial(&self) -> bool {
        self.selector.is_some()
    }
}

/// The comma-separated requirements, commas inside `( … )` kept.
fn split_requirements(text: &str) -> Result<Vec<&str>, String> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| "a ')' without its '('".to_owned())?;
            }
            ',' if depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a '(' without its ')'".into());
    }
    parts.push(text[start..].trim());
    if parts.len() > 1 && parts.iter().any(|p| p.is_empty()) {
        return Err("an empty requirement between commas".into());
    }
    Ok(parts.into_iter().filter(|p| !p.is_empty()).collect())
}

fn requirement_of(req: &str) -> Result<Expression, String> {
    if let Some(key) = req.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(key_of(key.trim())?));
    }
    // Set forms: `key in (…)` / `key notin (…)`, the operator a word of its own.
    if let Some(open) = req.find('(') {
        let head = req[..open].trim();
        let body = req[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| format!("{req:?}: nothing may follow the ')'"))?;
        let (key, op) = head
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| format!("{req:?}: expected `key in (…)` or `key notin (…)`"))?;
        let key = key_of(key.trim())?;
        let values = body
            .split(',')
            .map(|v| value_of(v.trim()))
            .collect::<Result<_, _>>()?;
        return match op {
            "in" => Ok(Expression::In(key, values)),
            "notin" => Ok(Expression::NotIn(key, values)),
            other => Err(format!(
                "{req:?}: unknown set operator {other:?} (in, notin)"
            )),
        };
    }
    if req.contains('<') || req.contains('>') {
        return Err(format!(
            "{req:?}: the numeric forms (<, >) are not supported"
        ));
    }
    for (op, ne) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = req.split_once(op) {
            let (key, value) = (key_of(key.trim())?, value_of(value.trim())?);
            return Ok(if ne {
                Expression::NotEqual(key, value)
            } else {
                Expression::Equal(key, value)
            });
        }
    }
    Ok(Expression::Exists(key_of(req)?))
}

/// A label key: `[prefix/]name`, the name 1–63 characters, alphanumeric at both ends.
fn key_of(key: &str) -> Result<String, String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let dns = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    };
    if prefix.is_some_and(|p| !dns(p)) || !label_text(name) || name.is_empty() {
        return Err(format!("{key:?} is not a label key"));
    }
    Ok(key.to_owned())
}

/// A label value: empty, or 1–63 characters, alphanumeric at both ends.
fn value_of(value: &str) -> Result<String, String> {
    if !label_text(value) {
        return Err(format!("{value:?} is not a label value"));
    }
    Ok(value.to_owned())
}

fn label_text(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn serves(selector: &str, pairs: &[(&str, &str)]) -> bool {
        Shard::parse(Some(selector))
            .unwrap()
            .serves(Some(&labels(pairs)))
    }

    #[test]
    fn no_selector_serves_every_tenant_and_a_missing_one() {
        let all = Shard::parse(None).unwrap();
        assert!(all.serves(Some(&labels(&[("a", "b")]))));
        assert!(all.serves(None));
        assert!(!all.is_partial());
    }

    #[test]
    fn every_operator_reads_as_the_api_server_does() {
        assert!(serves("shard=a", &[("shard", "a")]));
        assert!(serves("shard==a", &[("shard", "a")]));
        assert!(!serves("shard=a", &[("shard", "b")]));
        assert!(!serves("shard=a", &[]));
        assert!(serves("shard!=a", &[]));
        assert!(!serves("shard!=a", &[("shard", "a")]));
        assert!(serves("shard", &[("shard", "")]));
        assert!(!serves("!shard", &[("shard", "x")]));
        assert!(serves("!shard", &[("other", "x")]));
        assert!(serves("shard in (a, b)", &[("shard", "b")]));
        assert!(!serves("shard in (a,b)", &[]));
        assert!(serves("shard notin (a,b)", &[]));
        assert!(!serves("shard notin (a,b)", &[("shard", "a")]));
        assert!(serves(
            "herald.dev/e2e-shard=x, tier in (gold),!legacy",
            &[("herald.dev/e2e-shard", "x"), ("tier", "gold")]
        ));
        assert!(!serves(
            "herald.dev/e2e-shard=x,tier in (gold)",
            &[("herald.dev/e2e-shard", "x"), ("tier", "silver")]
        ));
        assert!(serves("shard=", &[("shard", "")]));
    }

    #[test]
    fn a_missing_tenant_belongs_to_the_shard_that_serves_unlabelled_tenants() {
        let unlabelled = Shard::parse(Some("!herald.dev/e2e-shard")).unwrap();
        let labelled = Shard::parse(Some("herald.dev/e2e-shard=x")).unwrap();
        assert!(unlabelled.serves(None));
        assert!(!labelled.serves(None));
    }

    #[test]
    fn a_selector_the_api_server_would_refuse_is_refused_with_its_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("a=b,,c", "empty requirement"),
            ("a in (b", "without its ')'"),
            ("a in b)", "without its '('"),
            ("a in (b) c", "nothing may follow"),
            ("a within (b)", "unknown set operator"),
            ("a>1", "numeric"),
            ("Bad Key=x", "not a label key"),
            ("a=b c", "not a label value"),
            ("-a=b", "not a label key"),
            ("UPPER.example/x=y", "not a label key"),
        ] {
            let err = Shard::parse(Some(bad)).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(
                err.contains(&format!("{bad:?}")),
                "names the selector: {err}"
            );
        }
    }

    #[test]
    fn what_parses_prints_back_as_a_selector_the_api_server_reads_the_same() {
        let text = "herald.dev/e2e-shard in (a,b),!legacy,tier!=bronze";
        let parsed = Shard::parse(Some(text)).unwrap();
        let printed = parsed.selector.as_ref().unwrap().to_string();
        let again = Shard::parse(Some(&printed)).unwrap();
        assert_eq!(parsed.selector, again.selector);
    }
}
