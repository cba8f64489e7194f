//! The Prometheus registry served on `/metrics` and Herald's metric families.
//! Label values are names and categories only: never a credential, never personal data.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `version`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The operator's crate version.
    pub version: String,
}

/// `controller`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// Which reconciler: `tenant`, `channelbinding`, `subprocessor`.
    pub controller: String,
}

/// `controller`, `category`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Which reconciler.
    pub controller: String,
    /// The error's stable category (see `controller::Error::category`).
    pub category: String,
}

/// `phase`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// A Tenant phase.
    pub phase: String,
}

/// `tenant`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// The Tenant's name.
    pub tenant: String,
}

/// `tenant`, `step`: one failing erasure step of a tenant.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErasureStepLabels {
    /// The Tenant's name.
    pub tenant: String,
    /// `purge`, `revocation` or `receiptDelivery`.
    pub step: String,
}

/// `controller`, `kind`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// Which reconciler wrote.
    pub controller: String,
    /// The kind written (`Deployment`, `Tenant/status`, …).
    pub kind: String,
}

/// `binding`, `tenant`, `channel`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BindingLabels {
    /// The ChannelBinding's name.
    pub binding: String,
    /// The Tenant it belongs to.
    pub tenant: String,
    /// The channel.
    pub channel: String,
}

/// `result`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `started`, `completed`, `failed` (rotations); `delivered`, `failed` (notices).
    pub result: String,
}

/// `subprocessor`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubprocessorLabels {
    /// The Subprocessor's name.
    pub subprocessor: String,
}

/// `tenant`, `category`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PurgeLabels {
    /// The Tenant's name.
    pub tenant: String,
    /// The data category (`messageContent`, `backups`, …).
    pub category: String,
}

/// `breach`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BreachLabels {
    /// The BreachNotice's name.
    pub breach: String,
}

/// `request`, `tenant`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DsrLabels {
    /// The DataSubjectRequest's name (never the data subject's identifier).
    pub request: String,
    /// The Tenant it is answered for.
    pub tenant: String,
}

/// `step`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    /// The erasure step (`Step::as_str`).
    pub step: String,
}

/// Every metric Herald exports, registered once in [`Metrics::new`].
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Always 1, labelled with the running version.
    pub build_info: Family<BuildLabels, Gauge>,
    /// Reconcile runs.
    pub reconciles: Family<ControllerLabels, Counter>,
    /// Failed reconciles by error category.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration.
    pub reconcile_duration: Family<ControllerLabels, Histogram>,
    /// Mutating API requests made, by kind: zero while nothing changes.
    pub writes: Family<WriteLabels, Counter>,
    /// Tenants by phase.
    pub tenants: Family<PhaseLabels, Gauge>,
    /// Sender pods currently found outside their tenant's allowed regions.
    pub residency_violations: Family<TenantLabels, Gauge>,
    /// Sender pods evicted for running outside their tenant's allowed regions.
    pub residency_evictions: Family<TenantLabels, Counter>,
    /// When a category's retention purge last succeeded (unix seconds); absent until it
    /// has.
    pub purge_last_success: Family<PurgeLabels, Gauge>,
    /// 1 while a category's purge has not succeeded within its retention period.
    pub purge_overdue: Family<PurgeLabels, Gauge>,
    /// When the credential in use was put in place (unix seconds); its age is
    /// `time() - this`. A timestamp, not an age, so that it changes only at rotations.
    pub credential_last_rotation: Family<BindingLabels, Gauge>,
    /// When the credential is rotated next (unix seconds): alert when `time()` passes it.
    pub credential_next_rotation: Family<BindingLabels, Gauge>,
    /// Credential rotations by result.
    pub rotations: Family<ResultLabels, Counter>,
    /// Sub-processor notices sent to customers, by result.
    pub subprocessor_notices: Family<ResultLabels, Counter>,
    /// Tenants objecting to each Subprocessor.
    pub subprocessor_objections: Family<SubprocessorLabels, Gauge>,
    /// A terminated tenant's erasure deadline (unix seconds), while erasure is pending.
    pub deletion_deadline: Family<TenantLabels, Gauge>,
    /// 1 while a tenant's erasure deadline has passed without verified erasure.
    pub deletion_overdue: Family<TenantLabels, Gauge>,
    /// Failed attempts of an erasure step that is being retried (absent: not failing).
    pub erasure_step_failures: Family<ErasureStepLabels, Gauge>,
    /// Objects in an erased tenant's erasure scope that erasure could not delete and
    /// that remain (absent: none).
    pub erasure_objects_held: Family<TenantLabels, Gauge>,
    /// Objects labelled for an erased tenant that appeared after its receipt and were
    /// deleted again.
    pub erased_again: Counter,
    /// Last known phase per tenant, from which `tenants` is recounted.
    phases: Mutex<BTreeMap<String, String>>,
    /// A breach's 48-hour deadline (unix seconds), while an affected tenant has not
    /// acknowledged any notice of it.
    pub breach_deadline: Family<BreachLabels, Gauge>,
    /// A breach's 72-hour authority deadline (unix seconds), while the platform's own
    /// data is involved and authorityNotifiedAt is not set.
    pub breach_authority_deadline: Family<BreachLabels, Gauge>,
    /// Affected tenants that have not acknowledged any notice of the breach.
    pub breach_unnotified: Family<BreachLabels, Gauge>,
    /// Breach notices sent to customers' webhooks, by result (delivered, failed).
    pub breach_notices: Family<ResultLabels, Counter>,
    /// A data-subject request's deadline (unix seconds), while it is not answered.
    pub dsr_deadline: Family<DsrLabels, Gauge>,
    /// Erasure passes that failed, by the step that failed (`status.erasure.step`).
    pub erasure_step_errors: Family<StepLabels, Counter>,
    /// 1 when the receipt signing key is Herald's and usable, 0 when it is not (absent
    /// until this process first needed it: at start, when leading).
    pub signing_key_usable: Gauge,
    /// Herald's admission policies not in force when this process started (0: all are).
    pub admission_policies_missing: Gauge,
    /// Receipts found at Herald's name that are not the ones Herald wrote, by the
    /// controller that found them (each pass that finds one counts).
    pub receipt_conflicts: Family<ControllerLabels, Counter>,
}

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl Metrics {
    /// A registry with every Herald family registered under the `herald` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("herald");
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Herald's version; always 1",
            build_info.clone(),
        );
        build_info
            .get_or_create(&BuildLabels {
                version: crate::VERSION.to_owned(),
            })
            .set(1);
        let reconciles = Family::<ControllerLabels, Counter>::default();
        registry.register("reconcile", "Reconcile runs", reconciles.clone());
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles by error category",
            reconcile_errors.clone(),
        );
        let reconcile_duration = Family::<ControllerLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            reconcile_duration.clone(),
        );
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "api_writes",
            "Mutating requests Herald made to the API server, by kind",
            writes.clone(),
        );
        let purge_last_success = Family::<PurgeLabels, Gauge>::default();
        registry.register(
            "purge_last_success_timestamp_seconds",
            "When the tenant's retention purge of the category last succeeded (unix seconds)",
            purge_last_success.clone(),
        );
        let purge_overdue = Family::<PurgeLabels, Gauge>::default();
        registry.register(
            "purge_overdue",
            "1 while the tenant's purge of the category has not succeeded within its retention period",
            purge_overdue.clone(),
        );
        let tenants = Family::<PhaseLabels, Gauge>::default();
        registry.register("tenants", "Tenants by phase", tenants.clone());
        let residency_violations = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "residency_violations",
            "Sender pods found on nodes outside the tenant's allowed regions",
            residency_violations.clone(),
        );
        let residency_evictions = Family::<TenantLabels, Counter>::default();
        registry.register(
            "residency_evictions",
            "Sender pods evicted for running outside the tenant's allowed regions",
            residency_evictions.clone(),
        );
        let deletion_deadline = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "tenant_deletion_deadline_timestamp_seconds",
            "Erasure deadline of a terminated tenant (terminatedAt + deleteWithinDays), while erasure is pending",
            deletion_deadline.clone(),
        );
        let deletion_overdue = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "tenant_deletion_overdue",
            "1 while the tenant's erasure deadline has passed without verified erasure",
            deletion_overdue.clone(),
        );
        let erasure_objects_held = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "erasure_objects_held",
            "Objects in an erased tenant's erasure scope that the API refused to delete or that a finalizer held, and that remain: a person must delete them (status.erasure.notErased)",
            erasure_objects_held.clone(),
        );
        let erased_again = Counter::default();
        registry.register(
            "erasure_objects_erased_again",
            "Objects labelled for an erased tenant that appeared after its receipt (e.g. re-applied by a GitOps tool) and were deleted again",
            erased_again.clone(),
        );
        let erasure_step_failures = Family::<ErasureStepLabels, Gauge>::default();
        registry.register(
            "erasure_step_failures",
            "Failed attempts of a terminated tenant's erasure step (purge, revocation, receiptDelivery) that is being retried; absent when it is not failing",
            erasure_step_failures.clone(),
        );
        let credential_last_rotation = Family::<BindingLabels, Gauge>::default();
        registry.register(
            "credential_last_rotation_timestamp_seconds",
            "When the channel credential in use was put in place (unix seconds); age = time() - this",
            credential_last_rotation.clone(),
        );
        let credential_next_rotation = Family::<BindingLabels, Gauge>::default();
        registry.register(
            "credential_next_rotation_timestamp_seconds",
            "When the channel credential is rotated next (unix seconds)",
            credential_next_rotation.clone(),
        );
        let rotations = Family::<ResultLabels, Counter>::default();
        registry.register(
            "rotations",
            "Credential rotations by result (started, completed, failed)",
            rotations.clone(),
        );
        let subprocessor_notices = Family::<ResultLabels, Counter>::default();
        registry.register(
            "subprocessor_notices",
            "Sub-processor notices sent to customers' webhooks, by result (delivered, failed)",
            subprocessor_notices.clone(),
        );
        let subprocessor_objections = Family::<SubprocessorLabels, Gauge>::default();
        registry.register(
            "subprocessor_objections",
            "Tenants objecting to the sub-processor",
            subprocessor_objections.clone(),
        );
        let breach_deadline = Family::<BreachLabels, Gauge>::default();
        registry.register(
            "breach_notice_deadline_timestamp_seconds",
            "When every tenant affected by the breach must have been told (awareAt + 48 h, unix seconds), while one has not acknowledged a notice",
            breach_deadline.clone(),
        );
        let breach_authority_deadline = Family::<BreachLabels, Gauge>::default();
        registry.register(
            "breach_authority_deadline_timestamp_seconds",
            "When the supervisory authority must have been told of the breach (awareAt + 72 h, unix seconds), while platform data is involved and authorityNotifiedAt is unset or in the future",
            breach_authority_deadline.clone(),
        );
        let breach_unnotified = Family::<BreachLabels, Gauge>::default();
        registry.register(
            "breach_tenants_unnotified",
            "Tenants affected by the breach that have not acknowledged any notice of it",
            breach_unnotified.clone(),
        );
        let breach_notices = Family::<ResultLabels, Counter>::default();
        registry.register(
            "breach_notices",
            "Breach notices sent to customers' webhooks, by result (delivered, failed)",
            breach_notices.clone(),
        );
        let dsr_deadline = Family::<DsrLabels, Gauge>::default();
        registry.register(
            "data_subject_request_deadline_timestamp_seconds",
            "When the data-subject request must be answered (receivedAt + 1 month + the extension, unix seconds), while it is not",
            dsr_deadline.clone(),
        );
        let erasure_step_errors = Family::<StepLabels, Counter>::default();
        registry.register(
            "erasure_step_errors",
            "Erasure passes that failed with an error, by the erasure step that failed (export, purge, inventory, deleteAndVerify, …; see docs/erasure.md)",
            erasure_step_errors.clone(),
        );
        let signing_key_usable = Gauge::default();
        registry.register(
            "receipt_signing_key_usable",
            "1 when the receipt signing key is the one Herald generated and can be used; 0 when it is not (a key Herald did not generate, or one it cannot read): no receipt can be written",
            signing_key_usable.clone(),
        );
        let admission_policies_missing = Gauge::default();
        registry.register(
            "admission_policies_missing",
            "Herald's admission policies (or their denying bindings) missing when this process started; non-zero only with --allow-missing-admission-policies (the start fails otherwise)",
            admission_policies_missing.clone(),
        );
        let receipt_conflicts = Family::<ControllerLabels, Counter>::default();
        registry.register(
            "receipt_conflicts",
            "Passes that found a receipt at Herald's name that Herald did not write (or not the one it recorded); it is never delivered",
            receipt_conflicts.clone(),
        );
        Self {
            registry,
            signing_key_usable,
            admission_policies_missing,
            receipt_conflicts,
            credential_last_rotation,
            credential_next_rotation,
            rotations,
            subprocessor_notices,
            subprocessor_objections,
            build_info,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            writes,
            purge_last_success,
            purge_overdue,
            tenants,
            residency_violations,
            residency_evictions,
            deletion_deadline,
            deletion_overdue,
            erasure_step_failures,
            erasure_objects_held,
            erased_again,
            phases: Mutex::new(BTreeMap::new()),
            breach_deadline,
            breach_authority_deadline,
            breach_unnotified,
            breach_notices,
            dsr_deadline,
            erasure_step_errors,
        }
    }

    /// Runs one reconcile of `controller`, counting it and timing it.
    pub async fn reconcile<F: Future>(&self, controller: &str, reconcile: F) -> F::Output {
        let labels = ControllerLabels {
            controller: controller.to_owned(),
        };
        self.reconciles.get_or_create(&labels).inc();
        let started = std::time::Instant::now();
        let result = reconcile.await;
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// Counts one failed reconcile of `controller` by error category.
    pub fn reconcile_failed(&self, controller: &str, category: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                controller: controller.to_owned(),
                category: category.to_owned(),
            })
            .inc();
    }

    /// Counts one mutating request.
    pub fn wrote(&self, controller: &str, kind: &str) {
        self.writes
            .get_or_create(&WriteLabels {
                controller: controller.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts a rotation outcome.
    pub fn rotation(&self, result: &str) {
        self.rotations
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts a notice outcome.
    pub fn notice(&self, result: &str) {
        self.subprocessor_notices
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Records a tenant's purges: per category its last success (if any) and whether it
    /// is overdue. `None` removes the tenant's series (terminated or gone).
    pub fn set_purges(&self, tenant: &str, purges: Option<&[(String, Option<i64>, bool)]>) {
        let Some(purges) = purges else {
            for c in crate::retention::Category::PURGED {
                let labels = PurgeLabels {
                    tenant: tenant.to_owned(),
                    category: c.key().to_owned(),
                };
                self.purge_last_success.remove(&labels);
                self.purge_overdue.remove(&labels);
            }
            return;
        };
        for (category, last_success, overdue) in purges {
            let labels = PurgeLabels {
                tenant: tenant.to_owned(),
                category: category.clone(),
            };
            match last_success {
                Some(t) => {
                    self.purge_last_success.get_or_create(&labels).set(*t);
                }
                None => {
                    self.purge_last_success.remove(&labels);
                }
            }
            self.purge_overdue
                .get_or_create(&labels)
                .set(i64::from(*overdue));
        }
    }

    /// Records a tenant's phase (`None`: the tenant is gone) and recounts `tenants`.
    pub fn set_tenant_phase(&self, tenant: &str, phase: Option<&str>) {
        let Ok(mut phases) = self.phases.lock() else {
            return;
        };
        match phase {
            Some(p) => phases.insert(tenant.to_owned(), p.to_owned()),
            None => phases.remove(tenant),
        };
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for p in phases.values() {
            *counts.entry(p.as_str()).or_default() += 1;
        }
        // Phases no tenant is in any more drop to 0 rather than vanish.
        self.tenants.clear();
        for p in ["Pending", "Active", "Suspended", "Terminating", "Erased"] {
            self.tenants
                .get_or_create(&PhaseLabels {
                    phase: p.to_owned(),
                })
                .set(counts.get(p).copied().unwrap_or(0));
        }
    }

    /// Sets (or, with `None`, removes) a tenant's deletion deadline series, and its
    /// overdue flag.
    pub fn set_deletion_deadline(&self, tenant: &str, deadline: Option<i64>, overdue: bool) {
        let labels = TenantLabels {
            tenant: tenant.to_owned(),
        };
        match deadline {
            Some(d) => {
                self.deletion_deadline.get_or_create(&labels).set(d);
                self.deletion_overdue
                    .get_or_create(&labels)
                    .set(i64::from(overdue));
            }
            None => {
                self.deletion_deadline.remove(&labels);
                self.deletion_overdue.remove(&labels);
            }
        }
    }

    /// Sets (or, with 0, removes) the count of a tenant's held objects.
    pub fn set_erasure_objects_held(&self, tenant: &str, held: usize) {
        let labels = TenantLabels {
            tenant: tenant.to_owned(),
        };
        if held > 0 {
            self.erasure_objects_held
                .get_or_create(&labels)
                .set(i64::try_from(held).unwrap_or(i64::MAX));
        } else {
            self.erasure_objects_held.remove(&labels);
        }
    }

    /// Sets a tenant's failing erasure steps: for each of `steps`, its attempts in
    /// `failing` (summed over targets), or no series when it is not failing.
    pub fn set_erasure_step_failures<'a>(
        &self,
        tenant: &str,
        steps: &[&str],
        failing: impl IntoIterator<Item = (&'a str, i64)> + Clone,
    ) {
        for step in steps {
            let labels = ErasureStepLabels {
                tenant: tenant.to_owned(),
                step: (*step).to_owned(),
            };
            let attempts: i64 = failing
                .clone()
                .into_iter()
                .filter(|(s, _)| s == step)
                .map(|(_, n)| n)
                .sum();
            if attempts > 0 {
                self.erasure_step_failures
                    .get_or_create(&labels)
                    .set(attempts);
            } else {
                self.erasure_step_failures.remove(&labels);
            }
        }
    }

    /// Sets a breach's series: the deadlines (`None`: no series) and its unnotified
    /// tenants.
    pub fn set_breach(
        &self,
        breach: &str,
        deadline: Option<i64>,
        authority: Option<i64>,
        unnotified: i64,
    ) {
        let labels = BreachLabels {
            breach: breach.to_owned(),
        };
        for (family, value) in [
            (&self.breach_deadline, deadline),
            (&self.breach_authority_deadline, authority),
        ] {
            match value {
                Some(v) => {
                    family.get_or_create(&labels).set(v);
                }
                None => {
                    family.remove(&labels);
                }
            }
        }
        self.breach_unnotified
            .get_or_create(&labels)
            .set(unnotified);
    }

    /// Removes every series of a breach (deleted).
    pub fn clear_breach(&self, breach: &str) {
        self.set_breach(breach, None, None, 0);
        self.breach_unnotified.remove(&BreachLabels {
            breach: breach.to_owned(),
        });
    }

    /// Sets a data-subject request's deadline series, or removes it (`None`: answered
    /// or deleted).
    pub fn set_dsr_deadline(&self, request: &str, tenant: &str, deadline: Option<i64>) {
        let labels = DsrLabels {
            request: request.to_owned(),
            tenant: tenant.to_owned(),
        };
        match deadline {
            Some(v) => {
                self.dsr_deadline.get_or_create(&labels).set(v);
            }
            None => {
                self.dsr_deadline.remove(&labels);
            }
        }
    }

    /// The OpenMetrics text of every family.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Whether the receipt signing key is usable.
    pub fn set_signing_key_usable(&self, usable: bool) {
        self.signing_key_usable.set(i64::from(usable));
    }

    /// One more pass of `controller` that found a receipt that is not Herald's.
    pub fn receipt_conflict(&self, controller: &str) {
        self.receipt_conflicts
            .get_or_create(&ControllerLabels {
                controller: controller.to_owned(),
            })
            .inc();
    }

    /// One more failed pass of erasure step `step`.
    pub fn erasure_step_failed(&self, step: &str) {
        self.erasure_step_errors
            .get_or_create(&StepLabels {
                step: step.to_owned(),
            })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_carries_the_version() {
        let text = Metrics::new().encode().unwrap_or_default();
        let line = format!("herald_build_info{{version=\"{}\"}} 1", crate::VERSION);
        assert!(text.contains(&line), "missing {line:?} in:\n{text}");
    }

    #[test]
    fn tenants_are_counted_by_phase() {
        let m = Metrics::new();
        m.set_tenant_phase("a", Some("Active"));
        m.set_tenant_phase("b", Some("Active"));
        m.set_tenant_phase("c", Some("Suspended"));
        m.set_tenant_phase("b", Some("Pending"));
        m.set_tenant_phase("c", None);
        let text = m.encode().unwrap();
        assert!(
            text.contains("herald_tenants{phase=\"Active\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("herald_tenants{phase=\"Pending\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("herald_tenants{phase=\"Suspended\"} 0"),
            "{text}"
        );
    }
}
