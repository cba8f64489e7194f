//! What the store tests and the erase benchmark start themselves: a PostgreSQL from
//! Debian's packages in a temporary directory, listening on 127.0.0.1 only (never a
//! system service), and an HTTP server on 127.0.0.1 that keeps what is PUT to it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A PostgreSQL server of this process, stopped and removed on drop.
pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    /// The user it runs as when this process is root (PostgreSQL refuses root).
    user: Option<String>,
    pub port: u16,
}

/// The directory of the newest PostgreSQL's server binaries: Debian keeps them in
/// /usr/lib/postgresql/<major>/bin, outside PATH; else `initdb` on PATH.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return bin;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").exists())
        .expect("PostgreSQL's initdb: `apt-get install -y postgresql` (.ci/run does)")
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    /// initdb and start. `durable: false` turns fsync off (tests); the benchmark keeps
    /// PostgreSQL's defaults.
    pub fn start(durable: bool) -> Self {
        let bin = bin_dir();
        let root = output(Command::new("id").arg("-u")) == "0";
        let user = root.then(|| {
            let has_postgres = Command::new("id")
                .arg("-u")
                .arg("postgres")
                .output()
                .is_ok_and(|o| o.status.success());
            if has_postgres { "postgres" } else { "nobody" }.to_owned()
        });
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("herald-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(u) = &user {
            output(Command::new("chown").arg(u).arg(&dir));
        }
        let mut pg = Self {
            dir,
            bin,
            user,
            port: 0,
        };
        output(pg.cmd("initdb").args([
            "-D",
            pg.data().to_str().unwrap(),
            "-U",
            "herald",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]));
        let fast = if durable {
            ""
        } else {
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        // A port taken between the look and the start: try another.
        for _ in 0..5 {
            pg.port = free_port();
            let opts = format!(
                "-h 127.0.0.1 -p {} -k {} -c max_connections=50{fast}",
                pg.port,
                pg.dir.display()
            );
            let log = pg.dir.join("log");
            let status = pg
                .cmd("pg_ctl")
                .args(["-D", pg.data().to_str().unwrap(), "-w", "-t", "60", "-l"])
                .arg(&log)
                .args(["-o", &opts, "start"])
                .status()
                .unwrap();
            if status.success() {
                return pg;
            }
            eprintln!(
                "pg_ctl start failed on port {}: {}",
                pg.port,
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("PostgreSQL did not start");
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn cmd(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    /// The connection string of `database`.
    pub fn dsn(&self, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=herald dbname={database} sslmode=disable",
            self.port
        )
    }

    /// A new, empty database.
    pub async fn database(&self, name: &str) -> String {
        let client = connect(&self.dsn("postgres")).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        self.dsn(name)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain connection for the tests' own SQL.
pub async fn connect(dsn: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(dsn, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// What the destination server received, in order: (path, body).
pub type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An HTTP server on 127.0.0.1 keeping every PUT; paths starting with `fail_prefix`
/// answer 500. Returns its base URL and what it received.
pub async fn destination(fail_prefix: Option<&'static str>) -> (String, Received) {
    use axum::extract::{Request, State};
    use axum::http::StatusCode;
    let received: Received = Arc::default();
    let state = (received.clone(), fail_prefix);
    let app =
        axum::Router::new()
            .fallback(
                |State((received, fail)): State<(Received, Option<&'static str>)>,
                 request: Request| async move {
                    let path = request.uri().path().to_owned();
                    if request.method() != axum::http::Method::PUT {
                        return StatusCode::METHOD_NOT_ALLOWED;
                    }
                    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
                        .await
                        .unwrap();
                    if fail.is_some_and(|f| path.starts_with(f)) {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    received.lock().unwrap().push((path, body.to_vec()));
                    StatusCode::CREATED
                },
            )
            .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/exports/acme"), received)
}

/// The bodies received, by path.
pub fn by_path(received: &Received) -> BTreeMap<String, Vec<u8>> {
    received.lock().unwrap().iter().cloned().collect()
}
