//! `make dataplane-bench [ROWS=100000]`: the `export` and then the `erase` command (the
//! binary, as a Job runs it: connect, migrations, the work) on one tenant of ROWS rows
//! spread over every category, beside another tenant's rows it must leave, against a
//! PostgreSQL started here on 127.0.0.1 with its durable defaults (fsync on).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use herald_dataplane::store;
use serde_json::Value;

struct Measured {
    secs: f64,
    peak_kib: u64,
    report: Value,
}

/// Runs the binary (built beside this example) under /usr/bin/time for its peak
/// resident memory; the wall time is the command's, process start and migrations check
/// included.
async fn measure(dsn: &str, pg: &support::Postgres, args: &[&str]) -> Measured {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("herald-dataplane");
    assert!(
        bin.exists(),
        "{}: build the binary first (make dataplane-bench does)",
        bin.display()
    );
    let log = pg.dir().join("termination-log");
    let rss = pg.dir().join("rss");
    let started = Instant::now();
    let status = tokio::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss)
        .arg(&bin)
        .args(args)
        .env("HERALD_STORE_DSN", dsn)
        .env("HERALD_TERMINATION_LOG", &log)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "{args:?}: {status}");
    let peak_kib = std::fs::read_to_string(&rss)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let report = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    Measured {
        secs,
        peak_kib,
        report,
    }
}

#[tokio::main]
async fn main() {
    let rows: i64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ROWS: a number"))
        .unwrap_or(100_000);
    let pg = support::Postgres::start(true);
    let dsn = pg.database("bench").await;
    let mut db = support::connect(&dsn).await;
    store::migrate(&mut db).await.unwrap();
    let per = rows / store::CATEGORIES.len() as i64;
    for (i, category) in store::CATEGORIES.iter().enumerate() {
        let n = if i == 0 {
            rows - per * (store::CATEGORIES.len() as i64 - 1)
        } else {
            per
        };
        for tenant in ["acme", "globex"] {
            db.execute(
                "INSERT INTO tenant_data (tenant, category, subject, created_at, payload)
                 SELECT $1, $2, 'subject-' || (g % 1000), now() - make_interval(secs => g),
                        jsonb_build_object('n', g, 'body', repeat('x', 200))
                 FROM generate_series(1, $3::bigint) g",
                &[&tenant, category, &n],
            )
            .await
            .unwrap();
        }
    }
    db.batch_execute("VACUUM ANALYZE tenant_data")
        .await
        .unwrap();
    let (url, received) = support::destination(None).await;
    let export = measure(
        &dsn,
        &pg,
        &["export", "--tenant", "acme", "--destination", &url],
    )
    .await;
    let bytes: usize = received.lock().unwrap().iter().map(|(_, b)| b.len()).sum();
    assert_eq!(
        export.report["rows"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|v| v.as_i64())
            .sum::<i64>(),
        rows
    );
    let erase = measure(
        &dsn,
        &pg,
        &["erase", "--tenant", "acme", "--target", "platform"],
    )
    .await;
    let deleted: i64 = store::CATEGORIES
        .iter()
        .map(|c| erase.report["deleted"][*c].as_i64().unwrap())
        .sum();
    assert_eq!(deleted, rows);
    let left: i64 = db
        .query_one(
            "SELECT count(*) FROM tenant_data WHERE tenant = 'globex'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, rows, "the other tenant's rows are all there");
    println!(
        "export of one tenant: {rows} rows ({:.1} MiB NDJSON) in {:.2} s = {:.0} rows/s, peak RSS {} MiB",
        bytes as f64 / 1048576.0,
        export.secs,
        rows as f64 / export.secs,
        export.peak_kib / 1024
    );
    let secs = erase.secs;
    println!(
        "erase of one tenant: {rows} rows in {secs:.2} s = {:.0} rows/s, peak RSS {} MiB (batches of 5000, fsync on; {left} rows of another tenant kept)",
        rows as f64 / secs,
        erase.peak_kib / 1024
    );
}
