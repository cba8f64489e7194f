//! The e2e platform's one configured provider: a loopback HTTP router that the shared
//! operator's configuration names (`providers.e2e`), forwarding each call to the fake
//! provider of the test whose tenant it concerns.
//!
//! Why a router: providers are the platform's (the operator configuration), not the
//! manifest's, and one operator serves every test of the process. Each test still gets
//! its own fake provider (its own calls, its own outage switch), registered here under
//! its tenant. Mint calls name the tenant in their body; revoke calls name the
//! credential id, which a fake mints as `<tenant>.<n>` so the router can route it back.
//! The token is the platform's one token (the Secret the configuration names), checked
//! by every fake as before.
//!
//! It runs on a thread and runtime of its own: every `#[tokio::test]` has its own
//! runtime, which ends with its test, while the operator and this router live as long as
//! the test process.

#![allow(dead_code)] // the outage binary uses only the router's address and token

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The provider name in the shared operator's configuration.
pub const PROVIDER: &str = "e2e";
/// The control-namespace Secret holding the platform's provider token (key `token`).
pub const TOKEN_SECRET: &str = "e2e-provider-token";

/// What the router saw: one line per request (`METHOD path tenant`), routed or not.
pub type Seen = Arc<Mutex<Vec<String>>>;

#[derive(Clone, Default)]
struct Routes {
    by_tenant: Arc<Mutex<HashMap<String, axum::Router>>>,
    seen: Seen,
}

/// The router: its base URL (the configuration's `baseUrl`) and the platform token.
pub struct ProviderRouter {
    pub base_url: String,
    pub token: String,
    routes: Routes,
}

impl ProviderRouter {
    /// Routes `tenant`'s calls to `app` from now on.
    pub fn register(&self, tenant: &str, app: axum::Router) {
        self.routes
            .by_tenant
            .lock()
            .unwrap()
            .insert(tenant.to_owned(), app);
    }

    /// Every request seen so far that concerns `tenant` (routed to its fake or not).
    pub fn seen_for(&self, tenant: &str) -> Vec<String> {
        self.routes
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.ends_with(&format!(" {tenant}")))
            .cloned()
            .collect()
    }
}

/// The router, started on first use.
pub fn router() -> &'static ProviderRouter {
    static ROUTER: OnceLock<ProviderRouter> = OnceLock::new();
    ROUTER.get_or_init(start)
}

fn start() -> ProviderRouter {
    let routes = Routes::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("provider router: no loopback port: {e}"));
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let app = axum::Router::new()
        .fallback(dispatch)
        .with_state(routes.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("provider router runtime: {e}"));
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await
        })
    });
    ProviderRouter {
        base_url: format!("http://{addr}"),
        token: format!("platform-token-{}", crate::common::unique("p")),
        routes,
    }
}

/// Sends a request on to the fake of the tenant it concerns; 404 when there is none.
async fn dispatch(State(routes): State<Routes>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts.uri.path().to_owned();
    let tenant = match path.strip_prefix("/credentials/") {
        Some(id) => id.split_once('.').map(|(t, _)| t.to_owned()),
        None => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["tenant"].as_str().map(str::to_owned)),
    }
    .unwrap_or_default();
    routes
        .seen
        .lock()
        .unwrap()
        .push(format!("{} {path} {tenant}", parts.method));
    let app = routes.by_tenant.lock().unwrap().get(&tenant).cloned();
    let Some(mut app) = app else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let req = Request::from_parts(parts, Body::from(bytes));
    use tower::Service;
    if std::future::poll_fn(|cx| Service::<Request>::poll_ready(&mut app, cx))
        .await
        .is_err()
    {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match app.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}
