//! The reference data plane against a real PostgreSQL (started here, on 127.0.0.1) and
//! a real destination (an HTTP server here, on 127.0.0.1): each scenario seeds rows of
//! several tenants in every category on both sides of each period, runs the binary as
//! Herald's Jobs would, and checks its exit code and report against SQL counts.
//!
//! Its own harness (`harness = false`): one PostgreSQL for all scenarios, stopped and
//! removed when they are done, whatever they did.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use herald_dataplane::store;
use serde_json::{Value, json};
use sha2::Digest;
use support::{Postgres, by_path, connect, destination};

const BIN: &str = env!("CARGO_BIN_EXE_herald-dataplane");
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
/// Herald's default periods (retention::Periods::default) of the purged categories.
const PERIODS: [(&str, i32); 5] = [
    ("messageContent", 90),
    ("deliveryMetadata", 180),
    ("smsVoiceTraffic", 183),
    ("backups", 7),
    ("logs", 90),
];
const SUBJECT: &str = "+31 6 1111 2222";

/// How many rows the seed writes: distinct for every (tenant, category, side), so a
/// query that mixed them up could not match.
fn old_rows(t: usize, c: usize) -> i64 {
    (3 + t * 5 + c) as i64
}
fn new_rows(t: usize, c: usize) -> i64 {
    (2 + t + c * 2) as i64
}
/// Rows of the categories never purged by age (400 days old).
fn kept_rows(t: usize) -> i64 {
    (4 + t) as i64
}

async fn insert(
    db: &tokio_postgres::Client,
    tenant: &str,
    category: &str,
    subject: Option<&str>,
    age: &str,
    n: i64,
) {
    db.execute(
        "INSERT INTO tenant_data (tenant, category, subject, created_at, payload)
         SELECT $1, $2, $3, now() - $4::text::interval - make_interval(secs => g),
                jsonb_build_object('n', g, 'body', 'message ' || g)
         FROM generate_series(1, $5::bigint) g",
        &[&tenant, &category, &subject, &age, &n],
    )
    .await
    .unwrap();
}

/// A fresh database with the schema and the seed: every tenant, every category, rows a
/// day older and a day younger than each period, old rows of the kept categories, and
/// the data subject's rows (at acme and, the same identifier, at globex).
async fn seeded(pg: &Postgres, name: &str) -> (String, tokio_postgres::Client) {
    let dsn = pg.database(name).await;
    let mut db = connect(&dsn).await;
    store::migrate(&mut db).await.unwrap();
    for (t, tenant) in TENANTS.iter().enumerate() {
        for (c, (category, days)) in PERIODS.iter().enumerate() {
            let older = format!("{} days", days + 1);
            let younger = format!("{} days", days - 1);
            insert(&db, tenant, category, None, &older, old_rows(t, c)).await;
            insert(&db, tenant, category, None, &younger, new_rows(t, c)).await;
        }
        for category in ["accountData", "consents", "billingRecords"] {
            insert(&db, tenant, category, None, "400 days", kept_rows(t)).await;
        }
    }
    for (category, age) in [
        ("messageContent", "1 day"),
        ("deliveryMetadata", "2 days"),
        ("consents", "500 days"),
    ] {
        insert(&db, "acme", category, Some(SUBJECT), age, 2).await;
        insert(&db, "globex", category, Some(SUBJECT), age, 1).await;
    }
    insert(&db, "acme", "logs", Some("+31 6 9999 0000"), "1 day", 3).await;
    (dsn, db)
}

async fn count(
    db: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> i64 {
    db.query_one(sql, params).await.unwrap().get(0)
}

/// Rows per (tenant, category).
async fn census(db: &tokio_postgres::Client) -> BTreeMap<(String, String), i64> {
    db.query(
        "SELECT tenant, category, count(*) FROM tenant_data GROUP BY tenant, category",
        &[],
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| ((r.get(0), r.get(1)), r.get(2)))
    .collect()
}

struct Run {
    code: i32,
    report: Value,
    stderr: String,
}

/// This run's scratch directory (removed when the scenarios are done).
fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("herald-dp-{}", std::process::id()))
}

fn temp(name: &str) -> PathBuf {
    let dir = scratch();
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs the binary with `args`, the store at `dsn`; its exit code and report (read
/// from the termination log, as Kubernetes would).
async fn run(dsn: &str, args: &[&str]) -> Run {
    let log = temp(&format!(
        "termination-{}",
        args.join("_").len() ^ rand_suffix()
    ));
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .env("HERALD_STORE_DSN", dsn)
        .env("HERALD_TERMINATION_LOG", &log)
        .output()
        .await
        .unwrap();
    let report = std::fs::read_to_string(&log)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let _ = std::fs::remove_file(&log);
    Run {
        code: out.status.code().unwrap_or(-1),
        report,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn rand_suffix() -> usize {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize
}

fn config_file(tenant: &str) -> PathBuf {
    let p = temp(&format!("config-{tenant}.json"));
    std::fs::write(
        &p,
        json!({"tenant": tenant, "regions": ["eu-central-1"], "channels": [], "retention": {}})
            .to_string(),
    )
    .unwrap();
    p
}

async fn migrations_apply_once_even_when_jobs_start_together(pg: &Postgres) {
    let dsn = pg.database("migrations").await;
    let (a, b) = tokio::join!(
        async {
            let mut c = store::connect(&dsn).await.unwrap();
            store::migrate(&mut c).await.unwrap()
        },
        async {
            let mut c = store::connect(&dsn).await.unwrap();
            store::migrate(&mut c).await.unwrap()
        }
    );
    assert_eq!(
        a + b,
        store::MIGRATIONS.len(),
        "each migration applied once"
    );
    let db = connect(&dsn).await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM herald_migrations", &[]).await,
        store::MIGRATIONS.len() as i64
    );
    let mut c = store::connect(&dsn).await.unwrap();
    assert_eq!(store::migrate(&mut c).await.unwrap(), 0);
    // The schema refuses a category no one named.
    let bad = db
        .execute(
            "INSERT INTO tenant_data (tenant, category) VALUES ('acme', 'everything')",
            &[],
        )
        .await;
    assert!(bad.is_err());
}

async fn a_purge_deletes_exactly_the_rows_older_than_each_period(pg: &Postgres) {
    let (dsn, db) = seeded(pg, "purge").await;
    let before = census(&db).await;
    let config = config_file("acme");
    for (c, (category, days)) in PERIODS.iter().enumerate() {
        let older = count(
            &db,
            "SELECT count(*) FROM tenant_data WHERE tenant = 'acme' AND category = $1
             AND created_at < now() - make_interval(days => $2)",
            &[category, days],
        )
        .await;
        // The subject's young rows are on the kept side.
        assert_eq!(older, old_rows(0, c), "{category}");
        let days_arg = days.to_string();
        let args = [
            "purge",
            "--tenant",
            "acme",
            "--category",
            category,
            "--older-than-days",
            &days_arg,
            "--config",
            config.to_str().unwrap(),
            "--batch-size",
            "4",
        ];
        let r = run(&dsn, &args).await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.report["deleted"][category], older, "{}", r.report);
        assert_eq!(r.report["tenant"], "acme");
        let left = count(
            &db,
            "SELECT count(*) FROM tenant_data WHERE tenant = 'acme' AND category = $1
             AND created_at < now() - make_interval(days => $2)",
            &[category, days],
        )
        .await;
        assert_eq!(left, 0, "{category}");
        // Run again (a retried Job): nothing more.
        let again = run(&dsn, &args).await;
        assert_eq!(
            (again.code, again.report["deleted"][category].as_i64()),
            (0, Some(0))
        );
    }
    let after = census(&db).await;
    for ((tenant, category), n) in &before {
        let purged = PERIODS.iter().position(|(c, _)| c == category);
        let want = match (tenant.as_str(), purged) {
            ("acme", Some(c)) => n - old_rows(0, c),
            _ => *n,
        };
        assert_eq!(
            after[&(tenant.clone(), category.clone())],
            want,
            "{tenant}/{category}"
        );
    }
}

async fn a_purge_refuses_another_tenants_configuration_and_kept_categories(pg: &Postgres) {
    let (dsn, db) = seeded(pg, "purge_refused").await;
    let before = census(&db).await;
    let globex = config_file("globex");
    for args in [
        vec![
            "purge",
            "--tenant",
            "acme",
            "--category",
            "logs",
            "--older-than-days",
            "1",
            "--config",
            globex.to_str().unwrap(),
        ],
        vec![
            "purge",
            "--tenant",
            "acme",
            "--category",
            "consents",
            "--older-than-days",
            "1",
        ],
        vec![
            "purge",
            "--tenant",
            "acme",
            "--category",
            "logs",
            "--older-than-days",
            "0",
        ],
    ] {
        let r = run(&dsn, &args).await;
        assert_eq!(r.code, 1, "{args:?}");
        assert!(
            r.report["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{}",
            r.report
        );
    }
    assert_eq!(census(&db).await, before, "nothing deleted");
}

async fn erasure_deletes_every_row_of_the_tenant_and_none_of_the_others(pg: &Postgres) {
    let (dsn, db) = seeded(pg, "erase").await;
    let before = census(&db).await;
    let args = [
        "erase",
        "--tenant",
        "acme",
        "--target",
        "platform",
        "--batch-size",
        "10",
    ];
    let r = run(&dsn, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    for category in store::CATEGORIES {
        let had = before
            .get(&("acme".to_owned(), category.to_owned()))
            .copied()
            .unwrap_or(0);
        assert_eq!(
            r.report["deleted"][category], had,
            "{category}: {}",
            r.report
        );
    }
    assert_eq!(r.report["remaining"], 0);
    let after = census(&db).await;
    assert!(after.keys().all(|(t, _)| t != "acme"), "{after:?}");
    for ((tenant, category), n) in before.iter().filter(|((t, _), _)| t != "acme") {
        assert_eq!(after[&(tenant.clone(), category.clone())], *n);
    }
    // Idempotent: a retried Job deletes nothing more and still succeeds.
    let again = run(&dsn, &args).await;
    assert_eq!(again.code, 0);
    assert!(
        store::CATEGORIES
            .iter()
            .all(|c| again.report["deleted"][*c] == 0)
    );
    assert_eq!(census(&db).await, after);
}

async fn erasure_never_confirms_a_provider_it_cannot_reach(pg: &Postgres) {
    let (dsn, db) = seeded(pg, "erase_provider").await;
    let before = census(&db).await;
    let r = run(
        &dsn,
        &[
            "erase", "--tenant", "acme", "--target", "platform", "--target", "whatsapp",
        ],
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(
        r.report["error"].as_str().unwrap().contains("whatsapp"),
        "{}",
        r.report
    );
    assert_eq!(census(&db).await, before);
}

async fn an_erasure_killed_mid_run_converges_when_the_job_retries(pg: &Postgres) {
    let dsn = pg.database("erase_killed").await;
    let mut db = connect(&dsn).await;
    store::migrate(&mut db).await.unwrap();
    let total = 60_000;
    insert(&db, "acme", "messageContent", None, "1 day", total).await;
    insert(&db, "globex", "messageContent", None, "1 day", 100).await;
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "erase",
            "--tenant",
            "acme",
            "--target",
            "platform",
            "--batch-size",
            "200",
        ])
        .env("HERALD_STORE_DSN", &dsn)
        .env("HERALD_TERMINATION_LOG", temp("killed-log"))
        .spawn()
        .unwrap();
    let acme = "SELECT count(*) FROM tenant_data WHERE tenant = 'acme'";
    // Kill it once it has deleted some but not all (a pod deleted mid-run).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = count(&db, acme, &[]).await;
        if left < total {
            assert!(
                left > 0,
                "finished before it could be killed; raise the row count"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "erase never started deleting"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().await.unwrap();
    // The killed client's last COMMIT may still be in the server's hands: count only
    // once its backend is gone, or a batch it committed would be counted as left.
    let others = "SELECT count(*) FROM pg_stat_activity \
                  WHERE datname = current_database() AND pid <> pg_backend_pid() \
                  AND backend_type = 'client backend'";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count(&db, others, &[]).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the killed erase's session never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = count(&db, acme, &[]).await;
    assert!(left > 0 && left < total, "{left}");
    // What was deleted stays deleted (every batch commits); the retry deletes the rest.
    let r = run(&dsn, &["erase", "--tenant", "acme", "--target", "platform"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["deleted"]["messageContent"], left);
    assert_eq!(count(&db, acme, &[]).await, 0);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM tenant_data WHERE tenant = 'globex'",
            &[]
        )
        .await,
        100
    );
}

async fn two_erasures_at_once_share_the_rows_and_both_succeed(pg: &Postgres) {
    let dsn = pg.database("erase_twice").await;
    let mut db = connect(&dsn).await;
    store::migrate(&mut db).await.unwrap();
    let total = 20_000;
    insert(&db, "acme", "logs", None, "1 day", total).await;
    insert(&db, "acme", "consents", None, "1 day", 500).await;
    insert(&db, "globex", "logs", None, "1 day", 10).await;
    // A Job's pod thought lost and its replacement, both running.
    let args = [
        "erase",
        "--tenant",
        "acme",
        "--target",
        "platform",
        "--batch-size",
        "100",
    ];
    let (a, b) = tokio::join!(run(&dsn, &args), run(&dsn, &args));
    assert_eq!((a.code, b.code), (0, 0), "{} {}", a.stderr, b.stderr);
    let sum = |c: &str| {
        a.report["deleted"][c].as_i64().unwrap() + b.report["deleted"][c].as_i64().unwrap()
    };
    assert_eq!(sum("logs"), total, "{} {}", a.report, b.report);
    assert_eq!(sum("consents"), 500);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM tenant_data WHERE tenant = 'acme'",
            &[]
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM tenant_data WHERE tenant = 'globex'",
            &[]
        )
        .await,
        10
    );
}

async fn an_export_uploads_exactly_the_tenants_rows_with_their_digest(pg: &Postgres) {
    let (dsn, db) = seeded(pg, "export").await;
    let (url, received) = destination(None).await;
    let r = run(&dsn, &["export", "--tenant", "acme", "--destination", &url]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got = received.lock().unwrap().clone();
    let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["/exports/acme/export.ndjson", "/exports/acme/manifest.json"],
        "data first, its manifest once it is complete"
    );
    let data = &got[0].1;
    let manifest: Value = serde_json::from_slice(&got[1].1).unwrap();
    let digest: String = sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(r.report["sha256"], digest.as_str());
    assert_eq!(manifest["sha256"], digest.as_str());
    assert_eq!(r.report["bytes"], data.len());
    assert_eq!(manifest["bytes"], data.len());
    // Exactly acme's rows: the counts per category equal SQL's and the lines'.
    let text = std::str::from_utf8(data).unwrap();
    let mut lines: BTreeMap<String, i64> = BTreeMap::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        *lines
            .entry(row["category"].as_str().unwrap().to_owned())
            .or_default() += 1;
        assert!(row["payload"]["n"].is_number() && row["createdAt"].is_string());
    }
    let census = census(&db).await;
    for category in store::CATEGORIES {
        let sql = census
            .get(&("acme".to_owned(), category.to_owned()))
            .copied()
            .unwrap_or(0);
        assert_eq!(lines.get(category).copied().unwrap_or(0), sql, "{category}");
        assert_eq!(r.report["rows"][category], sql);
        assert_eq!(manifest["rows"][category], sql);
    }
    // The same rows, the same bytes: a retried export writes the same objects.
    let again = run(&dsn, &["export", "--tenant", "acme", "--destination", &url]).await;
    assert_eq!(again.report["sha256"], digest.as_str());
    assert_eq!(by_path(&received)["/exports/acme/export.ndjson"], *data);
}

async fn a_failed_export_exits_non_zero_with_its_reason(pg: &Postgres) {
    let (dsn, _db) = seeded(pg, "export_failed").await;
    let (url, received) = destination(Some("/exports/acme/export")).await;
    let r = run(&dsn, &["export", "--tenant", "acme", "--destination", &url]).await;
    assert_eq!(r.code, 1);
    let why = r.report["error"].as_str().unwrap();
    assert!(why.contains("500"), "{why}");
    assert!(
        received.lock().unwrap().is_empty(),
        "no manifest without its data"
    );
    // Nothing listening (a loopback port just freed): a reason, not a hang.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = run(
        &dsn,
        &[
            "export",
            "--tenant",
            "acme",
            "--destination",
            &format!("http://127.0.0.1:{port}/x"),
        ],
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(
        r.report["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{}",
        r.report
    );
    // A destination refused before anything is sent (never tried: not loopback).
    let r = run(
        &dsn,
        &[
            "export",
            "--tenant",
            "acme",
            "--destination",
            "http://exports.acme.example/x",
        ],
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(r.report["error"].as_str().unwrap().contains("https"));
}

fn subject_file(content: &str) -> PathBuf {
    let p = temp(&format!("subject-{}", rand_suffix()));
    std::fs::write(&p, content).unwrap();
    p
}

async fn an_access_request_exports_exactly_the_subjects_rows(pg: &Postgres) {
    let (dsn, db) = seeded(pg, "dsr_access").await;
    let (url, received) = destination(None).await;
    let file = subject_file(&format!("{SUBJECT}\n"));
    let r = run(
        &dsn,
        &[
            "dsr",
            "--tenant",
            "acme",
            "--right",
            "access",
            "--subject-file",
            file.to_str().unwrap(),
            "--destination",
            &url,
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["outcome"], "Fulfilled");
    let got = by_path(&received);
    let data = &got["/exports/acme/dsr-access/export.ndjson"];
    let held = count(
        &db,
        "SELECT count(*) FROM tenant_data WHERE tenant = 'acme' AND subject = $1",
        &[&SUBJECT],
    )
    .await;
    assert_eq!(held, 6);
    let lines: Vec<Value> = std::str::from_utf8(data)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as i64, held);
    assert!(lines.iter().all(|l| l["subject"] == SUBJECT));
    let manifest: Value =
        serde_json::from_slice(&got["/exports/acme/dsr-access/manifest.json"]).unwrap();
    assert_eq!(manifest["sha256"], r.report["sha256"]);
    assert_eq!(r.report["rows"]["consents"], 2);
    assert_eq!(
        r.report["rows"]["logs"], 0,
        "another subject's rows are not hers"
    );
}

async fn an_erasure_request_deletes_only_the_subjects_rows(pg: &Postgres) {
    let (dsn, db) = seeded(pg, "dsr_erasure").await;
    let before = census(&db).await;
    let file = subject_file(SUBJECT);
    let args = [
        "dsr",
        "--tenant",
        "acme",
        "--right",
        "erasure",
        "--subject-file",
        file.to_str().unwrap(),
    ];
    let r = run(&dsn, &args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["deleted"]["messageContent"], 2);
    assert_eq!(r.report["deleted"]["consents"], 2);
    let after = census(&db).await;
    for ((tenant, category), n) in &before {
        let gone = match (tenant.as_str(), category.as_str()) {
            ("acme", "messageContent" | "deliveryMetadata" | "consents") => 2,
            _ => 0,
        };
        assert_eq!(
            after[&(tenant.clone(), category.clone())],
            n - gone,
            "{tenant}/{category}"
        );
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM tenant_data WHERE tenant = 'globex' AND subject = $1",
            &[&SUBJECT]
        )
        .await,
        3,
        "the same identifier at another tenant is another tenant's data"
    );
    // Asked again: nothing held any more.
    let again = run(&dsn, &args).await;
    assert_eq!(
        (again.code, again.report["outcome"].as_str()),
        (3, Some("NothingHeld"))
    );
}

async fn unknown_and_unidentifiable_subjects_answer_3_and_4(pg: &Postgres) {
    let (dsn, db) = seeded(pg, "dsr_codes").await;
    let before = census(&db).await;
    for (content, code, outcome) in [
        ("+31 6 0000 0000", 3, "NothingHeld"),
        ("", 4, "SubjectNotIdentified"),
        ("two\nlines", 4, "SubjectNotIdentified"),
    ] {
        let file = subject_file(content);
        let r = run(
            &dsn,
            &[
                "dsr",
                "--tenant",
                "acme",
                "--right",
                "erasure",
                "--subject-file",
                file.to_str().unwrap(),
            ],
        )
        .await;
        assert_eq!(
            (r.code, r.report["outcome"].as_str()),
            (code, Some(outcome)),
            "{content:?}"
        );
    }
    // A right that needs a person: a failure while rows are held, never "done".
    let file = subject_file(SUBJECT);
    let r = run(
        &dsn,
        &[
            "dsr",
            "--tenant",
            "acme",
            "--right",
            "restriction",
            "--subject-file",
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(r.code, 1);
    // The subject's data at globex is not acme's to answer for.
    let r = run(
        &dsn,
        &[
            "dsr",
            "--tenant",
            "initech",
            "--right",
            "erasure",
            "--subject-file",
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(r.code, 3);
    assert_eq!(census(&db).await, before);
}

async fn the_sender_is_ready_only_with_every_credential_and_logs_none(_pg: &Postgres) {
    let dir = temp("sender");
    let creds = dir.join("credentials");
    std::fs::create_dir_all(creds.join("whatsapp")).unwrap();
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        json!({"tenant": "acme", "regions": [], "channels": ["whatsapp", "sms"], "retention": {}})
            .to_string(),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "send",
            "--config",
            config.to_str().unwrap(),
            "--credentials-dir",
            creds.to_str().unwrap(),
            "--listen",
            &listen,
        ])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let ready = || async {
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("http://{listen}/readyz")).send().await {
                return r.status().as_u16();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the sender never listened");
    };
    assert_eq!(ready().await, 503, "no credential yet");
    std::fs::write(creds.join("whatsapp/credential"), "wa-s3cret").unwrap();
    std::fs::write(creds.join("whatsapp/webhook-signing-key"), "whsec_k3y").unwrap();
    assert_eq!(ready().await, 503, "sms still missing");
    std::fs::create_dir_all(creds.join("sms")).unwrap();
    std::fs::write(creds.join("sms/credential"), "sms-s3cret").unwrap();
    std::fs::write(creds.join("sms/webhook-signing-key"), "whsec_k3y2").unwrap();
    assert_eq!(ready().await, 200);
    std::fs::write(creds.join("sms/credential"), "").unwrap();
    assert_eq!(ready().await, 503, "an empty credential is not well-formed");
    child.kill().await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(logs.contains("tenant acme"), "{logs}");
    for secret in ["s3cret", "k3y"] {
        assert!(!logs.contains(secret), "{logs}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

type Scenario =
    for<'a> fn(&'a Postgres) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

macro_rules! scenarios {
    ($($f:ident),* $(,)?) => {
        [$((stringify!($f), (|pg| Box::pin($f(pg))) as Scenario)),*]
    };
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let all = scenarios![
        migrations_apply_once_even_when_jobs_start_together,
        a_purge_deletes_exactly_the_rows_older_than_each_period,
        a_purge_refuses_another_tenants_configuration_and_kept_categories,
        erasure_deletes_every_row_of_the_tenant_and_none_of_the_others,
        erasure_never_confirms_a_provider_it_cannot_reach,
        an_erasure_killed_mid_run_converges_when_the_job_retries,
        two_erasures_at_once_share_the_rows_and_both_succeed,
        an_export_uploads_exactly_the_tenants_rows_with_their_digest,
        a_failed_export_exits_non_zero_with_its_reason,
        an_access_request_exports_exactly_the_subjects_rows,
        an_erasure_request_deletes_only_the_subjects_rows,
        unknown_and_unidentifiable_subjects_answer_3_and_4,
        the_sender_is_ready_only_with_every_credential_and_logs_none,
    ];
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|(name, _)| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", chosen.len());
    let pg = Postgres::start(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut passed, mut failed) = (0, Vec::new());
    for (name, scenario) in chosen {
        let started = std::time::Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(scenario(&pg))
        }));
        let secs = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({secs:.1}s)");
            }
            Err(_) => {
                failed.push(name);
                println!("test {name} ... FAILED ({secs:.1}s)");
            }
        }
    }
    drop(runtime);
    drop(pg);
    let _ = std::fs::remove_dir_all(scratch());
    let status = if failed.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {status}. {passed} passed; {} failed; 0 ignored; 0 measured; 0 filtered out",
        failed.len()
    );
    if !failed.is_empty() {
        println!("failures: {failed:?}");
        std::process::exit(101);
    }
}
