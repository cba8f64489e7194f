//! Exports: a tenant's (or a data subject's) rows as NDJSON, streamed from the store to
//! the destination while hashed (nothing on disk: the root filesystem is read-only and
//! `/tmp` is small), then the manifest with the counts and the digest. Each object is a
//! PUT to a fixed name, so a retried Job writes the same objects again.

use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::store::{self, Counts};

/// What an export produced.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exported {
    pub rows: Counts,
    pub sha256: String,
    pub bytes: u64,
}

/// Why a destination is refused before anything is sent: https, or http on a loopback
/// host only (a test's server); no other scheme.
pub fn check_destination(url: &reqwest::Url) -> Result<(), String> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err("the destination must be https (plain http only on a loopback host)".into()),
        other => Err(format!("the destination's scheme {other} is not https")),
    }
}

/// `base` with `name` appended as path segments (`a/b` is two).
pub fn object_url(base: &reqwest::Url, name: &str) -> Result<reqwest::Url, String> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|_| "the destination cannot take a path".to_owned())?
        .pop_if_empty()
        .extend(name.split('/'));
    Ok(url)
}

/// The destination as it may be reported: no user, password, query or fragment.
pub fn redacted(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exports `tenant`'s rows (only `subject`'s, when given) to `destination` under
/// `prefix` (`""` or `dsr-access/`): `export.ndjson`, then `manifest.json`.
pub async fn export(
    client: &Client,
    http: &reqwest::Client,
    tenant: &str,
    subject: Option<&str>,
    destination: &reqwest::Url,
    prefix: &str,
) -> Result<Exported, String> {
    check_destination(destination)?;
    let data_url = object_url(destination, &format!("{prefix}export.ndjson"))?;
    let manifest_url = object_url(destination, &format!("{prefix}manifest.json"))?;
    let rows = store::rows(client, tenant, subject)
        .await
        .map_err(|e| e.to_string())?;
    // The rows go through a channel into the request body; the task that reads them
    // hashes and counts what it sends.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(16);
    let reader = tokio::spawn(async move {
        let mut rows = std::pin::pin!(rows);
        let mut hash = Sha256::new();
        let mut counts = store::zeros();
        let mut bytes = 0u64;
        while let Some(row) = rows.next().await {
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    let why = format!("reading rows: {e}");
                    let _ = tx.send(Err(std::io::Error::other(why.clone()))).await;
                    return Err(why);
                }
            };
            let category: String = row.get(0);
            let mut line: String = row.get(1);
            line.push('\n');
            *counts.entry(category).or_insert(0) += 1;
            hash.update(line.as_bytes());
            bytes += line.len() as u64;
            if tx.send(Ok(line.into_bytes())).await.is_err() {
                return Err("the upload stopped reading".into());
            }
        }
        Ok(Exported {
            rows: counts,
            sha256: hex(&hash.finalize()),
            bytes,
        })
    });
    let body = reqwest::Body::wrap_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    let sent = put(http, data_url, body, "application/x-ndjson").await;
    // The upload's failure is the reason when there is one (the reader then only saw
    // its body dropped); otherwise the reader's.
    let read = reader.await;
    sent?;
    let exported = read.map_err(|_| "the row reader stopped".to_owned())??;
    let manifest = serde_json::json!({
        "tenant": tenant,
        "rows": exported.rows,
        "sha256": exported.sha256,
        "bytes": exported.bytes,
    });
    put(
        http,
        manifest_url,
        reqwest::Body::from(manifest.to_string()),
        "application/json",
    )
    .await?;
    Ok(exported)
}

async fn put(
    http: &reqwest::Client,
    url: reqwest::Url,
    body: reqwest::Body,
    content_type: &str,
) -> Result<(), String> {
    let name = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default()
        .to_owned();
    let response = http
        .put(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("upload of {name}: {}", without_url(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "upload of {name}: the destination answered {status}"
        ));
    }
    Ok(())
}

/// A transport error's description without its URL (which may carry credentials).
fn without_url(e: &reqwest::Error) -> String {
    let class = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() {
        "the body could not be sent"
    } else {
        "request failed"
    };
    class.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> reqwest::Url {
        s.parse().unwrap()
    }

    #[test]
    fn destinations_are_https_or_loopback_http() {
        for (url, ok) in [
            ("https://exports.acme.example/up", true),
            ("http://127.0.0.1:8080/up", true),
            ("http://[::1]:8080/up", true),
            ("http://localhost/up", true),
            ("http://exports.acme.example/up", false),
            ("http://10.0.0.1/up", false),
            ("ftp://exports.acme.example/up", false),
            ("file:///etc/passwd", false),
        ] {
            assert_eq!(check_destination(&u(url)).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn objects_go_under_the_destination_and_reports_hide_credentials() {
        assert_eq!(
            object_url(&u("https://x.example/up/"), "export.ndjson")
                .unwrap()
                .as_str(),
            "https://x.example/up/export.ndjson"
        );
        assert_eq!(
            object_url(&u("https://x.example/up?sig=1"), "dsr-access/manifest.json")
                .unwrap()
                .as_str(),
            "https://x.example/up/dsr-access/manifest.json?sig=1"
        );
        assert_eq!(
            redacted(&u("https://user:pw@x.example/up?sig=secret")),
            "https://x.example/up"
        );
    }
}
