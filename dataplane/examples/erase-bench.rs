//! `make dataplane-bench [ROWS=100000]`: the `erase` command's own code path (connect,
//! migrations, batched deletes, the remaining check) erasing one tenant of ROWS rows
//! spread over every category, beside another tenant's rows it must leave, against a
//! PostgreSQL started here on 127.0.0.1 with its durable defaults (fsync on).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use herald_dataplane::{Command, StoreArgs, run_store_command, store};

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
    let command = Command::Erase {
        tenant: "acme".into(),
        targets: vec!["platform".into()],
        store: StoreArgs {
            store_dsn: dsn.clone(),
            termination_log: pg.dir().join("termination-log"),
            batch_size: 5000,
        },
    };
    let started = Instant::now();
    let outcome = run_store_command(&command).await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(outcome.code, 0, "{}", outcome.report);
    let deleted: i64 = store::CATEGORIES
        .iter()
        .map(|c| outcome.report["deleted"][*c].as_i64().unwrap())
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
        "erase of one tenant: {rows} rows in {secs:.2} s = {:.0} rows/s (batches of 5000, fsync on; {left} rows of another tenant kept)",
        rows as f64 / secs
    );
}
