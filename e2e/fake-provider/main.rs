//! A fake provider credential API on loopback, for `make demo` (and, as a module, for
//! the tour's e2e test): the contract Herald calls (see src/provider.rs and the README's
//! "The provider contract"), kept in memory, with a listing of what it issued.
//!
//! - `POST /credentials` (`Authorization: Bearer <token>`, body `{"tenant", "channel"}`,
//!   `Idempotency-Key`): mints `{"id": "<tenant>.cred-<n>", "secret": "fake-…"}`; a
//!   retry with the same key gets the same credential, as the contract requires.
//! - `DELETE /credentials/{id}` (same token): revokes; `404` when unknown or already
//!   revoked.
//! - `GET /credentials`: every credential issued, `{"id", "tenant", "channel",
//!   "revoked"}`, never a secret: what the tour shows after a rotation or a termination.
//!
//! With `--state <file>` it keeps what it issued across restarts (a warm `make demo`
//! restarts it): a provider's credentials outlive the operator's process, and an id is
//! never issued twice.
//!
//! Ids start with the tenant so that the e2e suite's provider router (one configured
//! provider for every test) can route a revocation back to the test it concerns.
//!
//! It is a cargo example, not a subcommand of `herald`: it is built for the demo and the
//! tests only, and so never ships in the operator's binary or image.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get};

/// One credential the fake issued.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Issued {
    pub tenant: String,
    pub channel: String,
    pub revoked: bool,
}

/// What the fake issued, by id (`<tenant>.cred-<n>`), and the answers by idempotency key.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Ledger {
    next: u32,
    pub credentials: BTreeMap<String, Issued>,
    by_key: HashMap<String, (String, String)>,
}

/// The ledger, shared with whoever started the fake.
pub type Shared = Arc<Mutex<Ledger>>;

#[derive(Clone)]
struct Fake {
    token: String,
    ledger: Shared,
    /// Where the ledger is saved after each change, if anywhere.
    state: Option<Arc<std::path::PathBuf>>,
}

impl Fake {
    /// Saves the ledger; a failure is reported and the answer still given (the demo's
    /// provider forgets, it does not refuse).
    fn save(&self, ledger: &Ledger) {
        let Some(path) = &self.state else { return };
        let written = serde_json::to_vec(ledger)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(path.as_path(), bytes));
        if let Err(e) = written {
            eprintln!("fake-provider: cannot save {}: {e}", path.display());
        }
    }
}

/// The provider API answering to `token`, and its ledger, in memory only.
pub fn app(token: String) -> (axum::Router, Shared) {
    with_ledger(token, Ledger::default(), None)
}

fn with_ledger(
    token: String,
    ledger: Ledger,
    state: Option<std::path::PathBuf>,
) -> (axum::Router, Shared) {
    let ledger = Arc::new(Mutex::new(ledger));
    let router = axum::Router::new()
        .route("/credentials", get(list).post(mint))
        .route("/credentials/{id}", delete(revoke))
        .with_state(Fake {
            token,
            ledger: ledger.clone(),
            state: state.map(Arc::new),
        });
    (router, ledger)
}

fn authorized(fake: &Fake, headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {}", fake.token).as_str())
}

/// A credential nobody could guess: 16 bytes of the OS CSPRNG, hex.
fn fresh_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "fake-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

async fn mint(
    State(fake): State<Fake>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    if !authorized(&fake, &headers) {
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let (Some(tenant), Some(channel)) = (request["tenant"].as_str(), request["channel"].as_str())
    else {
        return (StatusCode::BAD_REQUEST, "want {tenant, channel}".into());
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(secret) = fresh_secret() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no entropy".into());
    };
    let Ok(mut ledger) = fake.ledger.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
    };
    if let Some((id, secret)) = key.as_ref().and_then(|k| ledger.by_key.get(k)) {
        return (
            StatusCode::OK,
            serde_json::json!({"id": id, "secret": secret}).to_string(),
        );
    }
    ledger.next += 1;
    let id = format!("{tenant}.cred-{}", ledger.next);
    ledger.credentials.insert(
        id.clone(),
        Issued {
            tenant: tenant.to_owned(),
            channel: channel.to_owned(),
            revoked: false,
        },
    );
    if let Some(k) = key {
        ledger.by_key.insert(k, (id.clone(), secret.clone()));
    }
    fake.save(&ledger);
    println!("fake-provider: minted {id} ({channel})");
    (
        StatusCode::CREATED,
        serde_json::json!({"id": id, "secret": secret}).to_string(),
    )
}

async fn revoke(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> StatusCode {
    if !authorized(&fake, &headers) {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(mut ledger) = fake.ledger.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    match ledger.credentials.get_mut(&id) {
        Some(issued) if !issued.revoked => {
            issued.revoked = true;
            println!("fake-provider: revoked {id}");
            fake.save(&ledger);
            StatusCode::NO_CONTENT
        }
        _ => StatusCode::NOT_FOUND,
    }
}

async fn list(State(fake): State<Fake>) -> (StatusCode, String) {
    let Ok(ledger) = fake.ledger.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
    };
    let items: Vec<_> = ledger
        .credentials
        .iter()
        .map(|(id, c)| {
            serde_json::json!({"id": id, "tenant": c.tenant, "channel": c.channel, "revoked": c.revoked})
        })
        .collect();
    (
        StatusCode::OK,
        serde_json::to_string_pretty(&items).unwrap_or_default() + "\n",
    )
}

/// `fake-provider --addr 127.0.0.1:<port> --token-file <file> [--state <file>]`: serves
/// until killed.
#[derive(clap::Parser)]
struct Args {
    /// The loopback address to listen on.
    #[arg(long)]
    addr: std::net::SocketAddr,
    /// A file holding the platform's bearer token (the Secret the configuration names).
    #[arg(long)]
    token_file: std::path::PathBuf,
    /// A file to keep the ledger in across restarts (created on the first change).
    #[arg(long)]
    state: Option<std::path::PathBuf>,
}

fn main() -> std::process::ExitCode {
    use clap::Parser;
    let args = Args::parse();
    // A fake must never be reachable from elsewhere: Herald's egress guard lets loopback
    // through only in demo mode, and nothing else should talk to this.
    if !args.addr.ip().is_loopback() {
        eprintln!("fake-provider: {} is not a loopback address", args.addr);
        return std::process::ExitCode::FAILURE;
    }
    let token = match std::fs::read_to_string(&args.token_file) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
        Ok(_) => {
            eprintln!("fake-provider: {} is empty", args.token_file.display());
            return std::process::ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!(
                "fake-provider: cannot read {}: {e}",
                args.token_file.display()
            );
            return std::process::ExitCode::FAILURE;
        }
    };
    let ledger = match args.state.as_deref().map(std::fs::read) {
        None => Ledger::default(),
        Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Ledger::default(),
        Some(Err(e)) => {
            eprintln!("fake-provider: cannot read its state: {e}");
            return std::process::ExitCode::FAILURE;
        }
        Some(Ok(bytes)) => match serde_json::from_slice(&bytes) {
            Ok(ledger) => ledger,
            Err(e) => {
                eprintln!("fake-provider: its state file is not a ledger: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
    };
    let (app, _) = with_ledger(token, ledger, args.state);
    let served = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|rt| {
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(args.addr).await?;
                println!("fake-provider: listening on http://{}", args.addr);
                axum::serve(listener, app).await
            })
        });
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-provider: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
