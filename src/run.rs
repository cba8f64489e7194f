//! `herald run`: the operator process. Connects, checks that the cluster serves
//! Herald's API, serves the health and metrics endpoints, and stops cleanly on SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures::{StreamExt, future};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};

use crate::api::v1alpha1::ChannelBinding;
use tokio::sync::watch;

use crate::config::{ConfigError, OperatorConfig};
use crate::controller::{self, Context};
use crate::leader::{Elector, LeaderError, Leadership, LeaseConfig};
use crate::metrics::Metrics;
use crate::preflight::{self, PreflightError};
use crate::server::{self, Health};

/// What `herald run` is told on the command line.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub http_addr: SocketAddr,
    /// The operator configuration file (`None`: the compiled-in default).
    pub config_path: Option<PathBuf>,
    /// Reconciles of one controller that may run at once.
    pub concurrency: u16,
    /// API requests in flight at once, over all controllers (at least 1).
    pub api_in_flight: u16,
    /// Leader election on this Lease (`None`: this process always reconciles).
    pub leader_election: Option<LeaseConfig>,
    /// Reconcile only the Tenants matching this label selector (shards a fleet over
    /// several operators; `None`: every Tenant).
    pub tenant_selector: Option<String>,
    /// Which controllers run.
    pub controllers: Controllers,
    /// `/healthz` fails once a watch has failed without recovering for this long.
    pub watch_stall_limit: std::time::Duration,
    /// Where outbound HTTP may connect besides global unicast addresses.
    pub egress: crate::outbound::Egress,
    /// Start even when Herald's admission policies are not in force (said in a warning,
    /// `herald_admission_policies_missing` and an alert); otherwise the start fails.
    pub allow_missing_admission_policies: bool,
}

/// The controllers a process runs (all by default; a shard may run only some).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Controllers {
    /// Tenants: stacks, residency, erasure.
    pub tenant: bool,
    /// ChannelBindings: credentials and rotation.
    pub channel_binding: bool,
    /// Subprocessors: effectiveness and notices; with them, BreachNotices.
    pub subprocessor: bool,
}

impl Controllers {
    /// Parses `tenant,channelbinding,subprocessor` (any subset).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut c = Self {
            tenant: false,
            channel_binding: false,
            subprocessor: false,
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "tenant" => c.tenant = true,
                "channelbinding" => c.channel_binding = true,
                "subprocessor" => c.subprocessor = true,
                other => {
                    return Err(format!(
                        "unknown controller {other:?} (tenant, channelbinding, subprocessor)"
                    ));
                }
            }
        }
        Ok(c)
    }
}

/// Why the operator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot configure a Kubernetes client (KUBECONFIG or in-cluster service account)")]
    Client(#[source] kube::Error),
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot build the HTTP client for provider APIs and customer webhooks")]
    Http(#[source] reqwest::Error),
    #[error(transparent)]
    TenantSelector(#[from] crate::controller::shard::SelectorError),
    #[error("lost the leader lease; stopped reconciling")]
    Leadership(#[source] LeaderError),
    #[error("cannot serve the health and metrics endpoints on {addr}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs until `shutdown` resolves (SIGTERM in production), then returns `Ok`.
pub async fn run(
    config: RunConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let operator_config = Arc::new(OperatorConfig::load(config.config_path.as_deref())?);
    // A selector the ChannelBinding controller cannot read stops the start, like a bad
    // configuration: judging bindings by another reading than the API server's would
    // let two shards (or none) serve a binding.
    let shard = crate::controller::shard::Shard::parse(config.tenant_selector.as_deref())?;
    let mut metrics = Metrics::new();
    let leader_gauge = crate::leader::register(&mut metrics.registry);
    let metrics = Arc::new(metrics);
    let health = Health::new(metrics.clone(), config.watch_stall_limit);

    // One shutdown signal fanned out to the server and the operator.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    // Serve first: /healthz answers while we talk to the cluster, /readyz only after.
    let server = tokio::spawn(server::serve(
        config.http_addr,
        health.clone(),
        stopped(stop_rx.clone()),
    ));

    let identity = config
        .leader_election
        .as_ref()
        .map(|lease| lease.identity.clone())
        .unwrap_or_else(crate::leader::default_identity);
    let client = client(Some(config.api_in_flight), &identity)
        .await
        .map_err(RunError::Client)?;
    preflight::check_crds(&client).await?;
    let missing =
        preflight::admission_policies(&client, !config.allow_missing_admission_policies).await?;
    metrics
        .admission_policies_missing
        .set(i64::try_from(missing.len()).unwrap_or(i64::MAX));
    if !missing.is_empty() {
        if !config.allow_missing_admission_policies {
            return Err(PreflightError::AdmissionPoliciesMissing { missing }.into());
        }
        tracing::warn!(
            missing = %missing.join("; "),
            "running without Herald's admission policies (--allow-missing-admission-policies): evidence, the operator's scope and the control namespace are not guarded"
        );
    }
    let version = client.apiserver_version().await.ok().map(|v| v.git_version);
    tracing::info!(
        apiserver = version.as_deref().unwrap_or("unknown"),
        "Herald's API is served; operator running"
    );

    // Leader election: a standby is ready (healthy; `herald_leader` 0) and starts no
    // watch or controller until it holds the lease.
    // The elector has a client of its own: its renewals never wait for a slot behind
    // the reconciles' requests.
    let mut leadership = match config.leader_election.clone() {
        Some(lease) => {
            let own = self::client(None, &identity)
                .await
                .map_err(RunError::Client)?;
            let mut elector = Elector::new(own, lease, leader_gauge.clone());
            health.set_ready(true);
            tokio::select! {
                () = elector.acquire() => {},
                () = stopped(stop_rx.clone()) => return finish(server, config.http_addr).await,
            };
            Some(elector.lead())
        }
        None => {
            leader_gauge.set(1);
            None
        }
    };

    // Stores that reconciles read instead of asking the API server each time.
    let (nodes, nodes_writer) = reflector::store();
    let (bindings, bindings_writer) = reflector::store();
    let binding_api =
        Api::<ChannelBinding>::namespaced(client.clone(), &operator_config.control_namespace);
    // The bindings, cached once (without managedFields) for both the Tenant controller
    // (which mounts their credentials) and the ChannelBinding controller (which consumes
    // this watch when it runs; otherwise it is drained here to keep the cache filled).
    let binding_events = reflector::reflector(
        bindings_writer,
        crate::controller::watch::watch(binding_api, watcher::Config::default())
            .modify(|b| b.managed_fields_mut().clear()),
    )
    .applied_objects()
    .boxed();
    let (binding_events, binding_watch) = if config.controllers.channel_binding {
        (
            Some(binding_events),
            future::FutureExt::boxed(future::pending()),
        )
    } else {
        let drain = binding_events.for_each(|event| {
            if let Err(e) = event {
                tracing::warn!(error = %e, "ChannelBinding watch failed; retrying");
            }
            future::ready(())
        });
        (None, future::FutureExt::boxed(drain))
    };
    let http = crate::outbound::HttpClient::new(config.egress).map_err(RunError::Http)?;
    let ctx = Context::new(
        client,
        operator_config,
        metrics,
        nodes,
        bindings,
        http,
        shard,
    );
    // The receipt signing key is made the moment Herald leads, before any receipt can
    // need it: the key nobody else may create (the evidence admission policy) exists
    // from the start, so there is no window in which a user creates it first. A key that
    // is not Herald's, or one it cannot read, is said here, in the metric
    // herald_receipt_signing_key_usable and, when a receipt is due, in that object's
    // Stalled condition; reconciling goes on (everything but receipts works).
    match controller::receipt::signing_key(&ctx).await {
        Ok(key) => tracing::info!(key_id = key.key_id(), "receipt signing key ready"),
        Err(e) => tracing::error!(
            reason = e.evidence_blocked().map_or("", |b| b.0),
            error = %crate::error_chain(&e),
            "the receipt signing key cannot be used: no receipt can be written until a person acts"
        ),
    }
    let enabled = config.controllers;
    let tenants = controller::tenant::run(
        ctx.clone(),
        nodes_writer,
        config.concurrency,
        config.tenant_selector.clone(),
        stopped(stop_rx.clone()),
    );
    let channel_bindings = binding_events.map(|events| {
        controller::channel_binding::run(
            ctx.clone(),
            events,
            config.concurrency,
            stopped(stop_rx.clone()),
        )
    });
    let subprocessors = controller::subprocessor::run(
        ctx.clone(),
        config.concurrency,
        config.tenant_selector.clone(),
        stopped(stop_rx.clone()),
    );
    let breaches = controller::breach::run(
        ctx.clone(),
        config.concurrency,
        config.tenant_selector.clone(),
        stopped(stop_rx.clone()),
    );
    let requests = controller::dsr::run(ctx, config.concurrency, stopped(stop_rx.clone()));
    // A disabled controller is never polled: it makes no watch and no request.
    let tenants = async move {
        if enabled.tenant {
            tenants.await
        }
    };
    let channel_bindings = async move {
        if let Some(c) = channel_bindings {
            c.await
        }
    };
    let subprocessors = async move {
        if enabled.subprocessor {
            subprocessors.await
        }
    };
    // BreachNotices are customer notices too: they run wherever Subprocessor notices do.
    let breaches = async move {
        if enabled.subprocessor {
            breaches.await
        }
    };
    // DataSubjectRequests run Jobs in tenant namespaces: wherever Tenants are reconciled.
    let requests = async move {
        if enabled.tenant {
            requests.await
        }
    };
    health.set_ready(true);
    // The controllers run side by side and stop on the same signal; the binding watch
    // only ends with the process.
    tokio::select! {
        ((), (), (), (), ()) = async { tokio::join!(tenants, channel_bindings, subprocessors, breaches, requests) } => {},
        () = binding_watch => {},
        // Lost the lease: the controllers are dropped here, mid-reconcile, before the
        // lease can expire; the process exits non-zero and restarts as a standby.
        lost = lost(leadership.as_mut()) => {
            health.set_ready(false);
            return Err(RunError::Leadership(lost));
        }
        // Shutdown is bounded: reconciles still running after the grace are dropped
        // (they are idempotent), so the lease is released well within the pod's
        // termination grace period and a standby takes over at once.
        () = async {
            stopped(stop_rx.clone()).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "controllers still busy after the shutdown grace; stopping them");
        }
    }
    tracing::info!("shutdown requested; controllers stopped");
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
    finish(server, config.http_addr).await
}

/// The API client (KUBECONFIG or the in-cluster service account), with at most
/// `in_flight` requests on the wire at once when given: concurrent reconciles queue for
/// a slot instead of each opening a connection of its own. Its User-Agent names the
/// replica, so that the audit log tells replicas of one ServiceAccount apart.
async fn client(in_flight: Option<u16>, identity: &str) -> Result<Client, kube::Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    if let Ok(agent) = reqwest::header::HeaderValue::from_str(&user_agent(identity)) {
        config.headers.push((reqwest::header::USER_AGENT, agent));
    }
    let builder = kube::client::ClientBuilder::try_from(config)?;
    Ok(match in_flight {
        Some(n) => builder
            .with_layer(&tower::limit::ConcurrencyLimitLayer::new(
                usize::from(n).max(1),
            ))
            .build(),
        None => builder.build(),
    })
}

/// `herald/<version> (<identity>)`, the identity reduced to what a header may carry.
fn user_agent(identity: &str) -> String {
    let identity: String = identity
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(128)
        .collect();
    format!("herald/{} ({identity})", env!("CARGO_PKG_VERSION"))
}

/// How long in-flight reconciles may run on after the shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Resolves when the lease is lost; never without leader election.
async fn lost(leadership: Option<&mut Leadership>) -> LeaderError {
    match leadership {
        Some(l) => l.lost().await,
        None => future::pending().await,
    }
}

/// Not ready any more; waits for the server to stop (on the shutdown signal).
async fn finish(
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    addr: SocketAddr,
) -> Result<(), RunError> {
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(RunError::Serve { addr, source }),
        // The server task never panics by design; a join error means it was aborted.
        Err(_) => Ok(()),
    }
}

/// Resolves once the stop flag is raised (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Resolves on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = ctrl_c => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
