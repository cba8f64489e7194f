//! `send`: a minimal sender. It reads the tenant configuration and the credential files
//! it was started with, and answers `/readyz` with 200 only while every channel's
//! credential is present and well-formed. It sends nothing anywhere (the reference
//! implementation has no provider to talk to) and logs no credential: readiness reasons
//! name a channel and a file, never a value.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

/// The key every credential directory holds besides the provider's credential.
pub const WEBHOOK_KEY: &str = "webhook-signing-key";

/// What the sender reads from `/etc/herald/config.json` (other fields are ignored).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantConfig {
    pub tenant: String,
    #[serde(default)]
    pub channels: Vec<String>,
}

/// Reads and parses the configuration file.
pub fn read_config(path: &Path) -> Result<TenantConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
    let config: TenantConfig = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not the tenant configuration: {e}", path.display()))?;
    if config.tenant.is_empty() {
        return Err(format!("{} names no tenant", path.display()));
    }
    Ok(config)
}

/// Why `channel`'s credential in `dir/<channel>` is not usable, if it is not: the
/// directory must hold the webhook signing key and at least one other key, every file
/// non-empty. Kubernetes mounts a Secret's keys as symlinks into a `..data` directory:
/// hidden entries are skipped and links followed.
pub fn credential_problem(dir: &Path, channel: &str) -> Option<String> {
    let path = dir.join(channel);
    let entries = match std::fs::read_dir(&path) {
        Ok(e) => e,
        Err(_) => return Some(format!("channel {channel}: no credential directory")),
    };
    let mut keys = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        match std::fs::metadata(entry.path()) {
            Ok(m) if m.is_file() && m.len() > 0 => keys.push(name),
            Ok(m) if m.is_file() => return Some(format!("channel {channel}: {name} is empty")),
            _ => return Some(format!("channel {channel}: {name} is not a readable file")),
        }
    }
    if !keys.iter().any(|k| k == WEBHOOK_KEY) {
        return Some(format!("channel {channel}: no {WEBHOOK_KEY}"));
    }
    if keys.len() < 2 {
        return Some(format!("channel {channel}: no provider credential"));
    }
    None
}

/// The first problem among `channels`, if any: the sender is Ready when there is none.
pub fn readiness(dir: &Path, channels: &[String]) -> Result<(), String> {
    match channels.iter().find_map(|c| credential_problem(dir, c)) {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

/// Serves `/readyz` (and `/healthz`) on `listen` until the process is stopped.
pub async fn run(config: &Path, credentials: PathBuf, listen: &str) -> Result<(), String> {
    use axum::http::StatusCode;
    let config = read_config(config)?;
    eprintln!(
        "sender for tenant {} with channels [{}]; sending nothing off this machine",
        config.tenant,
        config.channels.join(", ")
    );
    let state = Arc::new((credentials, config.channels));
    let ready = {
        let state = state.clone();
        move || {
            let state = state.clone();
            async move {
                match readiness(&state.0, &state.1) {
                    Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
                    Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
                }
            }
        }
    };
    let app = axum::Router::new()
        .route("/readyz", axum::routing::get(ready))
        .route("/healthz", axum::routing::get(|| async { "ok\n" }));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| format!("serving: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "herald-dp-send-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn ready_only_with_every_channel_well_formed() {
        let d = dir();
        let channels = vec!["whatsapp".to_owned(), "sms".to_owned()];
        assert_eq!(
            readiness(&d, &channels).unwrap_err(),
            "channel whatsapp: no credential directory"
        );
        for c in &channels {
            std::fs::create_dir_all(d.join(c)).unwrap();
            std::fs::write(d.join(c).join(WEBHOOK_KEY), "k").unwrap();
        }
        assert_eq!(
            readiness(&d, &channels).unwrap_err(),
            "channel whatsapp: no provider credential"
        );
        std::fs::write(d.join("whatsapp/credential"), "s3cret").unwrap();
        std::fs::write(d.join("sms/credential"), "").unwrap();
        let why = readiness(&d, &channels).unwrap_err();
        assert_eq!(why, "channel sms: credential is empty");
        assert!(!why.contains("s3cret"));
        std::fs::write(d.join("sms/credential"), "x").unwrap();
        // Kubernetes' own bookkeeping entries are not keys.
        std::fs::create_dir_all(d.join("sms/..data")).unwrap();
        assert_eq!(readiness(&d, &channels), Ok(()));
        assert_eq!(
            readiness(&d, &[]),
            Ok(()),
            "no channel: nothing to wait for"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_configuration_must_name_the_tenant() {
        let d = dir();
        let p = d.join("config.json");
        std::fs::write(
            &p,
            r#"{"tenant":"acme","regions":[],"channels":["sms"],"retention":{}}"#,
        )
        .unwrap();
        assert_eq!(
            read_config(&p).unwrap(),
            TenantConfig {
                tenant: "acme".into(),
                channels: vec!["sms".into()]
            }
        );
        std::fs::write(&p, r#"{"tenant":""}"#).unwrap();
        assert!(read_config(&p).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
