//! The `herald` binary: argument parsing and wiring only; the logic lives in the lib.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use herald::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: per-tenant messaging stacks with GDPR guarantees, as a Kubernetes operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the cluster in KUBECONFIG (or in-cluster config).
    Run {
        /// Address of /healthz, /readyz and /metrics.
        #[arg(long, env = "HERALD_HTTP_ADDR", default_value = "0.0.0.0:8080")]
        http_addr: SocketAddr,
        /// Operator configuration file (region catalog, sender defaults); the
        /// compiled-in default when unset.
        #[arg(long, env = "HERALD_CONFIG")]
        config: Option<PathBuf>,
        /// Reconciles of one controller that may run at once.
        #[arg(long, env = "HERALD_CONCURRENCY", default_value_t = 16)]
        concurrency: u16,
        /// Requests to the Kubernetes API that may be in flight at once, over all
        /// controllers (watches count only until their response starts). Bounds the
        /// connections, and so the memory, of a large fleet's first reconcile.
        #[arg(long, env = "HERALD_API_IN_FLIGHT", default_value_t = 32)]
        api_in_flight: u16,
        /// Serve only the Tenants matching this label selector (shard a fleet over
        /// several operators): their stacks, their ChannelBindings, and the notices to
        /// them (see docs/operations.md). Default: every Tenant.
        #[arg(long, env = "HERALD_TENANT_SELECTOR")]
        tenant_selector: Option<String>,
        /// The controllers to run, comma-separated: tenant (with it the
        /// DataSubjectRequests, which run Jobs in tenant namespaces), channelbinding,
        /// subprocessor (with it the BreachNotices, which notify tenants like notices do).
        #[arg(long, env = "HERALD_CONTROLLERS", default_value = "tenant,channelbinding,subprocessor",
              value_parser = herald::run::Controllers::parse)]
        controllers: herald::run::Controllers,
        /// Seconds a watch may fail without one success before `/healthz` (the
        /// liveness probe) fails and Kubernetes restarts the process.
        #[arg(long, env = "HERALD_WATCH_STALL_LIMIT_SECONDS", default_value_t = 300)]
        watch_stall_limit_seconds: u64,
        /// Log line format.
        #[arg(long, env = "HERALD_LOG_FORMAT", value_enum, default_value = "json")]
        log_format: LogFormat,
        /// Reconcile only while holding a Lease, so that replicas can stand by. Off by
        /// default for a single local process (`make demo`, the e2e operator); the Helm
        /// chart turns it on.
        #[arg(long, env = "HERALD_LEADER_ELECTION")]
        leader_election: bool,
        /// The leader-election Lease.
        #[arg(long, env = "HERALD_LEASE_NAME", default_value = "herald")]
        lease_name: String,
        /// The Lease's namespace: the operator's own.
        #[arg(long, env = "POD_NAMESPACE", default_value = "herald-system")]
        lease_namespace: String,
        /// This replica's holder identity (the pod name; host and pid when unset).
        #[arg(long, env = "POD_NAME")]
        lease_identity: Option<String>,
        /// Seconds a Lease stays valid after its last renewal (a standby takes over
        /// at most this plus one retry period after the leader dies).
        #[arg(long, env = "HERALD_LEASE_DURATION_SECONDS", default_value_t = 10)]
        lease_duration_seconds: u64,
        /// Seconds a leader keeps trying to renew before it stops reconciling; below
        /// the lease duration.
        #[arg(long, env = "HERALD_LEASE_RENEW_DEADLINE_SECONDS", default_value_t = 6)]
        lease_renew_deadline_seconds: u64,
        /// Seconds between renewals (leader) and attempts to acquire (standby); below
        /// the renew deadline.
        #[arg(long, env = "HERALD_LEASE_RETRY_PERIOD_SECONDS", default_value_t = 2)]
        lease_retry_period_seconds: u64,
        /// Let outbound calls (providers, notices, receipts) reach loopback addresses:
        /// for the e2e tests and local development on 127.0.0.1 only. Never in a
        /// cluster: every other non-global-unicast address stays refused regardless.
        #[arg(long, env = "HERALD_ALLOW_LOOPBACK_EGRESS")]
        allow_loopback_egress: bool,
        /// Start even when Herald's admission policies are not installed and enforcing
        /// (the chart passes it with admissionPolicies.enabled=false): a warning at every
        /// start, herald_admission_policies_missing and an alert say so. Without it the
        /// operator refuses to start.
        #[arg(long, env = "HERALD_ALLOW_MISSING_ADMISSION_POLICIES")]
        allow_missing_admission_policies: bool,
    },
    /// Receipts (deletion, fulfilment): verify one offline.
    Receipt {
        #[command(subcommand)]
        command: ReceiptCommand,
    },
    /// Write the CRDs generated from the Rust types, one YAML file per kind.
    Crds {
        /// Directory to write into (created if missing).
        #[arg(long, default_value = "crds")]
        out: PathBuf,
        /// Also write the API reference (Markdown, docs/api.md) rendered from them.
        #[arg(long)]
        reference: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ReceiptCommand {
    /// Check a deletion receipt (`kubectl get cm <receipt> -n herald-system -o yaml`):
    /// its bytes match its sha256 and its Ed25519 signature verifies. Exit 0 when it
    /// does, 1 with the reason when not.
    Verify {
        /// The receipt ConfigMap, YAML or JSON.
        file: PathBuf,
        /// The platform's published keys (`kubectl get cm herald-receipt-public-keys -n
        /// herald-system -o yaml`, kept by the auditor) or one base64 public key. Without
        /// it, only the key the receipt carries is used: that shows integrity, not who
        /// signed.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crds { out, reference } => {
            match herald::crdgen::write_all(&herald::api::crds(), &out) {
                Ok(paths) => {
                    if let Some(path) = reference {
                        let page = herald::apiref::render(&herald::api::crds());
                        if let Err(e) = std::fs::write(&path, page) {
                            eprintln!("error: cannot write {}: {e}", path.display());
                            return ExitCode::FAILURE;
                        }
                        println!("{}", path.display());
                    }
                    for p in paths {
                        println!("{}", p.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Receipt {
            command: ReceiptCommand::Verify { file, public_key },
        } => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            };
            let outcome = read(&file).and_then(|receipt| {
                let keys = public_key.as_ref().map(read).transpose()?;
                herald::evidence::verify_documents(&receipt, keys.as_deref())
                    .map_err(|e| e.to_string())
            });
            match outcome {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(why) => {
                    eprintln!("receipt {} does NOT verify: {why}", file.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run {
            http_addr,
            config,
            concurrency,
            api_in_flight,
            log_format,
            tenant_selector,
            controllers,
            leader_election,
            lease_name,
            lease_namespace,
            lease_identity,
            lease_duration_seconds,
            lease_renew_deadline_seconds,
            lease_retry_period_seconds,
            watch_stall_limit_seconds,
            allow_loopback_egress,
            allow_missing_admission_policies,
        } => {
            telemetry::init(log_format);
            let lease = if leader_election {
                let secs = std::time::Duration::from_secs;
                match herald::leader::LeaseConfig::new(
                    lease_name,
                    lease_namespace,
                    lease_identity.unwrap_or_else(herald::leader::default_identity),
                )
                .with_timings(
                    secs(lease_duration_seconds),
                    secs(lease_renew_deadline_seconds),
                    secs(lease_retry_period_seconds),
                ) {
                    Ok(lease) => Some(lease),
                    Err(why) => {
                        eprintln!("error: {why}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                None
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => return fail(&e),
            };
            let config = herald::run::RunConfig {
                http_addr,
                config_path: config,
                concurrency,
                api_in_flight,
                leader_election: lease,
                tenant_selector,
                controllers,
                watch_stall_limit: std::time::Duration::from_secs(watch_stall_limit_seconds),
                egress: herald::outbound::Egress {
                    allow_loopback: allow_loopback_egress,
                },
                allow_missing_admission_policies,
            };
            match runtime.block_on(herald::run::run(config, herald::run::shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %herald::error_chain(&e), "herald stopped");
                    fail(&e)
                }
            }
        }
    }
}

fn fail(e: &dyn std::error::Error) -> ExitCode {
    eprintln!("error: {}", herald::error_chain(e));
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::CommandFactory;

    use super::Cli;

    /// The backticked words of the README's `- <label>:` line under "At a glance"
    /// (the line and its indented continuation lines), up to the first parenthesis.
    fn readme_list(readme: &str, label: &str) -> BTreeSet<String> {
        let start = readme
            .find("## At a glance")
            .expect("README has an At a glance section");
        let section = &readme[start..];
        let line = format!("- {label}:");
        let from = section
            .find(&line)
            .unwrap_or_else(|| panic!("README lacks {line:?}"));
        let item: String = section[from + line.len()..]
            .lines()
            .enumerate()
            .take_while(|(i, l)| *i == 0 || l.starts_with("  "))
            .map(|(_, l)| l)
            .collect::<Vec<_>>()
            .join(" ");
        let item = item.split(" (").next().unwrap_or_default();
        item.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    /// `herald a b` for every leaf subcommand.
    fn commands(cmd: &clap::Command, prefix: &str, out: &mut BTreeSet<String>) {
        let name = format!("{prefix} {}", cmd.get_name()).trim().to_owned();
        let subs: Vec<_> = cmd
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .collect();
        for sub in &subs {
            commands(sub, &name, out);
        }
        if subs.is_empty() {
            out.insert(name);
        }
    }

    #[test]
    fn readme_lists_match_the_code() {
        let root = env!("CARGO_MANIFEST_DIR");
        let read = |p: &str| std::fs::read_to_string(format!("{root}/{p}")).unwrap();
        let readme = read("README.md");

        let kinds: BTreeSet<String> = herald::api::crds()
            .into_iter()
            .map(|c| c.spec.names.kind)
            .collect();
        assert_eq!(readme_list(&readme, "Kinds"), kinds, "README kinds");

        let policies: BTreeSet<String> = herald::preflight::ADMISSION_POLICIES
            .iter()
            .map(|p| (*p).to_owned())
            .collect();
        assert_eq!(
            readme_list(&readme, "Admission policies"),
            policies,
            "README admission policies"
        );

        let alerts: BTreeSet<String> = read("charts/herald/templates/prometheusrule.yaml")
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- alert: "))
            .map(|a| a.trim().to_owned())
            .collect();
        assert!(
            alerts.len() > 10,
            "alerts not found in the PrometheusRule: {alerts:?}"
        );
        assert_eq!(readme_list(&readme, "Alerts"), alerts, "README alerts");

        let mut cli = BTreeSet::new();
        commands(&Cli::command(), "", &mut cli);
        assert_eq!(readme_list(&readme, "Commands"), cli, "README commands");
    }

    /// Every alert links to its runbook, and the runbook has a section of that name.
    #[test]
    fn every_alert_has_a_runbook_section() {
        let root = env!("CARGO_MANIFEST_DIR");
        let read = |p: &str| std::fs::read_to_string(format!("{root}/{p}")).unwrap();
        let rules = read("charts/herald/templates/prometheusrule.yaml");
        let page = read("docs/troubleshooting.md");
        let mut alert = None;
        let mut seen = 0;
        for line in rules.lines() {
            if let Some(a) = line.trim().strip_prefix("- alert: ") {
                assert!(alert.is_none(), "alert {alert:?} has no runbook_url");
                alert = Some(a.trim().to_owned());
            } else if line.trim().starts_with("runbook_url:") {
                let a = alert.take().expect("runbook_url outside an alert");
                let anchor = a.to_lowercase();
                assert!(line.contains(&format!("#{anchor}")), "{a}: {line}");
                assert!(
                    page.lines().any(|l| l == format!("### {anchor}")),
                    "docs/troubleshooting.md has no section ### {anchor}"
                );
                seen += 1;
            }
        }
        assert!(alert.is_none(), "alert {alert:?} has no runbook_url");
        assert!(seen > 10, "too few alerts: {seen}");
    }
}
