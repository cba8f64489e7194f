//! `herald-dataplane`: the reference implementation of Herald's data-plane contract
//! (docs/data-plane.md) against PostgreSQL. One binary, the command its first argument,
//! as Herald runs it: `send`, `purge`, `erase`, `export`, `dsr`. Every command but
//! `send` writes its report (JSON) to the termination log and exits with the code the
//! contract gives it.

pub mod export;
pub mod send;
pub mod store;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

/// The `dsr` exit code: nothing held about the subject.
pub const EXIT_NOTHING_HELD: i32 = 3;
/// The `dsr` exit code: the identifier identifies no one.
pub const EXIT_NOT_IDENTIFIED: i32 = 4;
/// Any failure (its reason on stderr and in the report).
pub const EXIT_FAILED: i32 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "herald-dataplane",
    version,
    about = "Herald's reference data plane"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What the store commands share (none of it passed by Herald: the image's own).
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// The PostgreSQL connection string (never logged).
    #[arg(long, env = "HERALD_STORE_DSN", hide_env_values = true)]
    pub store_dsn: String,
    /// Where the report goes (the container's termination message).
    #[arg(
        long,
        env = "HERALD_TERMINATION_LOG",
        default_value = "/dev/termination-log"
    )]
    pub termination_log: PathBuf,
    /// Rows per DELETE statement.
    #[arg(long, default_value_t = 5000)]
    pub batch_size: i64,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The sender: /readyz while every channel's credential is well-formed.
    Send {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value = "/var/run/herald/credentials")]
        credentials_dir: PathBuf,
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: String,
    },
    /// Deletes one category's rows older than the period.
    Purge {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        category: String,
        #[arg(long)]
        older_than_days: i32,
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Deletes every row of the tenant.
    Erase {
        #[arg(long)]
        tenant: String,
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Uploads the tenant's rows and a manifest.
    Export {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        destination: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Gives effect to a data subject's right.
    Dsr {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        right: String,
        #[arg(long)]
        subject_file: PathBuf,
        #[arg(long)]
        destination: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// A command's end: its exit code and its report.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub code: i32,
    pub report: Value,
}

impl Outcome {
    fn ok(report: Value) -> Self {
        Self { code: 0, report }
    }
    fn failed(why: impl Into<String>) -> Self {
        Self {
            code: EXIT_FAILED,
            report: json!({"error": why.into()}),
        }
    }
}

/// The data subject's identifier from the subject file's content, or `None` when it
/// identifies no one: empty, not UTF-8, several lines, or longer than 256 bytes.
pub fn subject(content: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(content).ok()?.trim();
    if text.is_empty() || text.len() > 256 || text.contains(['\n', '\r']) {
        return None;
    }
    Some(text.to_owned())
}

/// The right's upload prefix and whether it delivers data; `None` for a right the
/// reference implementation cannot give effect to on its own.
fn right_kind(right: &str) -> Result<Option<bool>, String> {
    match right {
        "access" | "portability" => Ok(Some(true)),
        "erasure" => Ok(Some(false)),
        "rectification" | "restriction" | "objection" => Ok(None),
        other => Err(format!("unknown right {other}")),
    }
}

fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(3600))
        .build()
        .map_err(|_| "cannot build the HTTP client".to_owned())
}

async fn open(store: &StoreArgs) -> Result<tokio_postgres::Client, String> {
    let mut client = store::connect(&store.store_dsn)
        .await
        .map_err(|e| e.to_string())?;
    store::migrate(&mut client)
        .await
        .map_err(|e| e.to_string())?;
    Ok(client)
}

/// Runs a store command (everything but `send`).
pub async fn run_store_command(command: &Command) -> Outcome {
    match run_inner(command).await {
        Ok(o) => o,
        Err(why) => Outcome::failed(why),
    }
}

async fn run_inner(command: &Command) -> Result<Outcome, String> {
    match command {
        Command::Send { .. } => Err("send is not a store command".into()),
        Command::Purge {
            tenant,
            category,
            older_than_days,
            config,
            store,
        } => {
            if !store::PURGED.contains(&category.as_str()) {
                return Err(format!("category {category} is not purged by age"));
            }
            if *older_than_days < 1 {
                return Err("--older-than-days must be at least 1".into());
            }
            if let Some(path) = config {
                let c = send::read_config(path)?;
                if &c.tenant != tenant {
                    return Err(format!(
                        "the configuration is tenant {}'s, not {tenant}'s",
                        c.tenant
                    ));
                }
            }
            let client = open(store).await?;
            let cutoff = store::cutoff(&client, *older_than_days)
                .await
                .map_err(|e| e.to_string())?;
            let n = store::purge(&client, tenant, category, &cutoff, store.batch_size)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Outcome::ok(json!({
                "command": "purge", "tenant": tenant, "category": category,
                "olderThanDays": older_than_days, "cutoff": cutoff, "deleted": {category.as_str(): n}
            })))
        }
        Command::Erase {
            tenant,
            targets,
            store,
        } => {
            // Only the platform's store is reachable from here; a provider's copy is
            // not, and a purge not done is never confirmed.
            if let Some(t) = targets.iter().find(|t| t.as_str() != "platform") {
                return Err(format!(
                    "target {t}: this implementation reaches no provider, so it cannot erase the provider's copy"
                ));
            }
            let client = open(store).await?;
            let deleted = store::erase(&client, tenant, store.batch_size)
                .await
                .map_err(|e| e.to_string())?;
            let remaining: i64 = store::count(&client, tenant, None)
                .await
                .map_err(|e| e.to_string())?
                .values()
                .sum();
            if remaining != 0 {
                return Err(format!(
                    "{remaining} rows of the tenant appeared during erasure"
                ));
            }
            Ok(Outcome::ok(json!({
                "command": "erase", "tenant": tenant, "targets": targets,
                "deleted": deleted, "remaining": remaining
            })))
        }
        Command::Export {
            tenant,
            destination,
            store,
        } => {
            let url: reqwest::Url = destination
                .parse()
                .map_err(|_| "the destination is not a URL".to_owned())?;
            export::check_destination(&url)?;
            let client = open(store).await?;
            let done = export::export(&client, &http_client()?, tenant, None, &url, "").await?;
            Ok(Outcome::ok(json!({
                "command": "export", "tenant": tenant, "rows": done.rows, "sha256": done.sha256,
                "bytes": done.bytes, "destination": export::redacted(&url)
            })))
        }
        Command::Dsr {
            tenant,
            right,
            subject_file,
            destination,
            store,
        } => {
            let kind = right_kind(right)?;
            let content = std::fs::read(subject_file)
                .map_err(|e| format!("cannot read the subject file: {}", e.kind()))?;
            let report = |outcome: &str, extra: Value| {
                let mut r =
                    json!({"command": "dsr", "tenant": tenant, "right": right, "outcome": outcome});
                if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
                    r.extend(e.clone());
                }
                r
            };
            let Some(subject) = subject(&content) else {
                return Ok(Outcome {
                    code: EXIT_NOT_IDENTIFIED,
                    report: report("SubjectNotIdentified", json!({})),
                });
            };
            let client = open(store).await?;
            let held = store::count(&client, tenant, Some(&subject))
                .await
                .map_err(|e| e.to_string())?;
            if held.values().sum::<i64>() == 0 {
                return Ok(Outcome {
                    code: EXIT_NOTHING_HELD,
                    report: report("NothingHeld", json!({})),
                });
            }
            match kind {
                Some(true) => {
                    let d = destination
                        .as_deref()
                        .ok_or("access and portability need --destination")?;
                    let url: reqwest::Url = d
                        .parse()
                        .map_err(|_| "the destination is not a URL".to_owned())?;
                    let done = export::export(
                        &client,
                        &http_client()?,
                        tenant,
                        Some(&subject),
                        &url,
                        &format!("dsr-{right}/"),
                    )
                    .await?;
                    Ok(Outcome::ok(report(
                        "Fulfilled",
                        json!({"rows": done.rows, "sha256": done.sha256, "bytes": done.bytes}),
                    )))
                }
                Some(false) => {
                    let deleted = store::erase_subject(&client, tenant, &subject, store.batch_size)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(Outcome::ok(report(
                        "Fulfilled",
                        json!({"deleted": deleted}),
                    )))
                }
                None => Err(format!(
                    "the right {right} needs a person: rows are held, this implementation cannot give it effect"
                )),
            }
        }
    }
}

/// Writes the report to the termination log (best effort: a missing log must not turn
/// a done purge into a failure) and to stdout; returns the exit code.
pub fn finish(outcome: &Outcome, termination_log: &std::path::Path) -> i32 {
    let text = outcome.report.to_string();
    if let Some(why) = outcome.report.get("error").and_then(Value::as_str) {
        eprintln!("failed: {why}");
    }
    println!("{text}");
    if let Err(e) = std::fs::write(termination_log, &text) {
        eprintln!(
            "cannot write the report to {}: {}",
            termination_log.display(),
            e.kind()
        );
    }
    outcome.code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_one_short_line() {
        assert_eq!(subject(b"  +31 6 1234 \n").as_deref(), Some("+31 6 1234"));
        for bad in [&b""[..], b"  \n", b"a\nb", &[0xff, 0xfe], &[b'x'; 257]] {
            assert_eq!(subject(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rights_are_data_erasure_or_a_persons() {
        assert_eq!(right_kind("access"), Ok(Some(true)));
        assert_eq!(right_kind("portability"), Ok(Some(true)));
        assert_eq!(right_kind("erasure"), Ok(Some(false)));
        assert_eq!(right_kind("objection"), Ok(None));
        assert!(right_kind("delete-everything").is_err());
    }
}
