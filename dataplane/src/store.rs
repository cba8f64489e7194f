//! The PostgreSQL message store: connection, the schema's migrations, and every query
//! the commands run. Each deletion is batched (`LIMIT` per statement, its own
//! transaction), so no statement holds a table-long lock and a run killed half-way has
//! kept what it deleted: the retried Job deletes the rest.

use std::collections::BTreeMap;

use tokio_postgres::{Client, NoTls};

/// Every category a row may have: the RetentionPolicy's (`accountData` is its
/// `accountDataDaysAfterContractEnd`), and the records kept until erasure.
pub const CATEGORIES: [&str; 8] = [
    "messageContent",
    "deliveryMetadata",
    "smsVoiceTraffic",
    "backups",
    "logs",
    "accountData",
    "consents",
    "billingRecords",
];

/// The categories a retention `purge` may name (Herald's purged categories).
pub const PURGED: [&str; 5] = [
    "messageContent",
    "deliveryMetadata",
    "smsVoiceTraffic",
    "backups",
    "logs",
];

/// The schema, one migration per entry, applied in order and recorded in
/// `herald_migrations`; never edit an applied one, add the next.
pub const MIGRATIONS: [(i32, &str); 1] = [(
    1,
    "CREATE TABLE tenant_data (
        id bigserial PRIMARY KEY,
        tenant text NOT NULL,
        category text NOT NULL CHECK (category IN ('messageContent', 'deliveryMetadata',
            'smsVoiceTraffic', 'backups', 'logs', 'accountData', 'consents', 'billingRecords')),
        subject text,
        created_at timestamptz NOT NULL DEFAULT now(),
        payload jsonb NOT NULL DEFAULT '{}'::jsonb
    );
    CREATE INDEX tenant_data_tenant_category_created ON tenant_data (tenant, category, created_at);
    CREATE INDEX tenant_data_tenant_subject ON tenant_data (tenant, subject) WHERE subject IS NOT NULL;",
)];

/// How often erasure looks again for rows another run had locked (200 ms apart) before
/// it reports them as remaining.
const ROUNDS: usize = 50;

/// Rows per category (every category named, zeros included).
pub type Counts = BTreeMap<String, i64>;

/// A count of zero for every category.
pub fn zeros() -> Counts {
    CATEGORIES.iter().map(|c| ((*c).to_owned(), 0)).collect()
}

/// A store error, as a reason safe to report (never the DSN, never a row).
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn db(what: &str) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
    // tokio-postgres's messages name the server's error, never the password.
    move |e| StoreError(format!("{what}: {e}"))
}

/// Connects to `dsn` (TLS unless `sslmode=disable`, verified against the system's
/// roots); the connection is driven by a task of its own.
pub async fn connect(dsn: &str) -> Result<Client, StoreError> {
    let config: tokio_postgres::Config = dsn
        .parse()
        .map_err(|_| StoreError("the store DSN does not parse".into()))?;
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        let (client, connection) = config.connect(NoTls).await.map_err(db("connect"))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("store connection: {e}");
            }
        });
        return Ok(client);
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
    let (client, connection) = config.connect(tls).await.map_err(db("connect"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("store connection: {e}");
        }
    });
    Ok(client)
}

/// Applies the migrations not yet applied, under an advisory lock (two Jobs starting
/// at once do not race); returns how many it applied.
pub async fn migrate(client: &mut Client) -> Result<usize, StoreError> {
    let tx = client.transaction().await.map_err(db("migrate"))?;
    tx.execute("SELECT pg_advisory_xact_lock(7235100024)", &[])
        .await
        .map_err(db("migration lock"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS herald_migrations (
            version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(db("migrations table"))?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM herald_migrations", &[])
        .await
        .map_err(db("read migrations"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = 0;
    for (version, sql) in MIGRATIONS {
        if done.contains(&version) {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|e| StoreError(format!("migration {version}: {e}")))?;
        tx.execute(
            "INSERT INTO herald_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(db("record migration"))?;
        applied += 1;
    }
    tx.commit().await.map_err(db("commit migrations"))?;
    Ok(applied)
}

/// The cutoff `days` before the store's clock, as RFC 3339 UTC text (one instant for
/// the whole run, so every batch deletes on the same side of it).
pub async fn cutoff(client: &Client, days: i32) -> Result<String, StoreError> {
    let row = client
        .query_one(
            "SELECT to_char((now() - make_interval(days => $1)) AT TIME ZONE 'UTC',
                            'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
            &[&days],
        )
        .await
        .map_err(db("cutoff"))?;
    Ok(row.get(0))
}

/// Deletes `tenant`'s rows of `category` created before `cutoff`, `batch` at a time;
/// how many.
pub async fn purge(
    client: &Client,
    tenant: &str,
    category: &str,
    cutoff: &str,
    batch: i64,
) -> Result<i64, StoreError> {
    let statement = client
        .prepare(
            "DELETE FROM tenant_data WHERE id IN (
                SELECT id FROM tenant_data
                WHERE tenant = $1 AND category = $2 AND created_at < $3::text::timestamptz
                LIMIT $4 FOR UPDATE SKIP LOCKED)",
        )
        .await
        .map_err(db("prepare purge"))?;
    let mut total = 0i64;
    loop {
        let n = client
            .execute(&statement, &[&tenant, &category, &cutoff, &batch])
            .await
            .map_err(db("purge"))?;
        total += n as i64;
        if n == 0 {
            return Ok(total);
        }
    }
}

/// Deletes every row of `tenant`, `batch` at a time, category by category; how many per
/// category (every category named).
pub async fn erase(client: &Client, tenant: &str, batch: i64) -> Result<Counts, StoreError> {
    let statement = client
        .prepare(
            "DELETE FROM tenant_data WHERE id IN (
                SELECT id FROM tenant_data WHERE tenant = $1 AND category = $2
                LIMIT $3 FOR UPDATE SKIP LOCKED)",
        )
        .await
        .map_err(db("prepare erase"))?;
    let left = client
        .prepare("SELECT count(*) FROM tenant_data WHERE tenant = $1 AND category = $2")
        .await
        .map_err(db("prepare erase"))?;
    let mut counts = zeros();
    for category in CATEGORIES {
        let mut total = 0i64;
        // Batches skip rows another run has locked (a pod thought dead, still going):
        // the runs share the work instead of waiting on each other. Rows still there
        // once none is left unlocked are the other run's batch in flight: look again.
        for _round in 0..ROUNDS {
            loop {
                let n = client
                    .execute(&statement, &[&tenant, &category, &batch])
                    .await
                    .map_err(db("erase"))?;
                total += n as i64;
                if n == 0 {
                    break;
                }
            }
            let remaining: i64 = client
                .query_one(&left, &[&tenant, &category])
                .await
                .map_err(db("erase"))?
                .get(0);
            if remaining == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        counts.insert(category.to_owned(), total);
    }
    Ok(counts)
}

/// `tenant`'s rows per category (of `subject` only, when given).
pub async fn count(
    client: &Client,
    tenant: &str,
    subject: Option<&str>,
) -> Result<Counts, StoreError> {
    let rows = client
        .query(
            "SELECT category, count(*) FROM tenant_data
             WHERE tenant = $1 AND ($2::text IS NULL OR subject = $2)
             GROUP BY category",
            &[&tenant, &subject],
        )
        .await
        .map_err(db("count"))?;
    let mut counts = zeros();
    for r in rows {
        counts.insert(r.get(0), r.get(1));
    }
    Ok(counts)
}

/// Deletes `subject`'s rows of `tenant` (all of them: a subject is few rows, one
/// statement per batch like the others); how many per category.
pub async fn erase_subject(
    client: &Client,
    tenant: &str,
    subject: &str,
    batch: i64,
) -> Result<Counts, StoreError> {
    let statement = client
        .prepare(
            "WITH gone AS (DELETE FROM tenant_data WHERE id IN (
                SELECT id FROM tenant_data WHERE tenant = $1 AND subject = $2
                LIMIT $3 FOR UPDATE SKIP LOCKED)
              RETURNING category)
             SELECT category, count(*) FROM gone GROUP BY category",
        )
        .await
        .map_err(db("prepare subject erasure"))?;
    let mut counts = zeros();
    loop {
        let rows = client
            .query(&statement, &[&tenant, &subject, &batch])
            .await
            .map_err(db("subject erasure"))?;
        if rows.is_empty() {
            return Ok(counts);
        }
        for r in rows {
            let category: String = r.get(0);
            let n: i64 = r.get(1);
            *counts.entry(category).or_insert(0) += n;
        }
    }
}

/// The NDJSON line of every row of `tenant` (of `subject` only, when given), in a fixed
/// order, built by PostgreSQL (`json_build_object` keeps the keys' order; `jsonb`
/// payloads print normalised), streamed as the server sends them.
pub async fn rows(
    client: &Client,
    tenant: &str,
    subject: Option<&str>,
) -> Result<tokio_postgres::RowStream, StoreError> {
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&tenant, &subject];
    client
        .query_raw(
            "SELECT category, json_build_object(
                'category', category, 'subject', subject,
                'createdAt', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                'payload', payload)::text
             FROM tenant_data
             WHERE tenant = $1 AND ($2::text IS NULL OR subject = $2)
             ORDER BY category, created_at, id",
            params,
        )
        .await
        .map_err(db("read rows"))
}
