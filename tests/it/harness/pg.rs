//! PostgreSQL for tests: one fresh, empty database per test.
//!
//! The server is `TEST_DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`.
//! When that server does not answer, the harness starts (once for all test processes,
//! serialised by a `flock` on `/tmp/hookline-test-pg/lock`) a throwaway cluster from
//! `/usr/lib/postgresql/*/bin` and reuses it while it runs: trust auth, superuser
//! `postgres`, TCP only on 127.0.0.1, port `HOOKLINE_TEST_PG_PORT` (default 55432), so its
//! URL is `postgres://postgres@127.0.0.1:55432/postgres`. It is left running for the next
//! test process; stop it with `pg_ctl -D /tmp/hookline-test-pg/data stop` (as its owner).
//! A server that answers but refuses us (password, missing database) is a panic, not a
//! fallback. No PostgreSQL at all is a panic with a reason, under `CI=true` and
//! elsewhere: tests that need PostgreSQL never skip. Databases are named `hookline_test_<unix secs>_<random>`
//! so that every call can drop leftovers older than two hours.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

/// The server used when `TEST_DATABASE_URL` is not set.
const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Every test database starts with this; the stale sweep only ever touches these.
const NAME_PREFIX: &str = "hookline_test_";
/// A test database older than this is a leftover of a crashed or killed run.
const STALE_AFTER: Duration = Duration::from_secs(2 * 60 * 60);
/// Fixed home of the throwaway cluster, shared by all test processes of all runs.
const CLUSTER_DIR: &str = "/tmp/hookline-test-pg";
/// Port of the throwaway cluster unless `HOOKLINE_TEST_PG_PORT` says otherwise: fixed (not
/// picked at random) so that every test process finds the same cluster.
const CLUSTER_PORT: u16 = 55432;
/// Bound on connecting to a server: long enough for a busy CI machine, short enough
/// that a black-holed address fails the test quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on initdb plus start-up of the throwaway cluster.
const CLUSTER_START_TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh, empty PostgreSQL database that belongs to one test.
pub struct PgDatabase {
    /// Connection URL of this database.
    pub url: String,
    /// Database name, `hookline_test_<unix secs>_<random>`.
    name: String,
    /// Maintenance database URL on the same server, used to drop this one.
    server_url: String,
}

impl PgDatabase {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// URL of the server's maintenance database (the one the harness creates databases from).
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// Drop the database (best effort: failures are printed, not raised).
    pub async fn drop_db(self) {
        match connect(&self.server_url).await {
            Ok(mut conn) => {
                if let Err(e) = drop_database(&mut conn, &self.name).await {
                    eprintln!("pg harness: could not drop {}: {e}", self.name);
                }
                let _ = conn.close().await;
            }
            Err(e) => eprintln!("pg harness: could not drop {}: {e}", self.name),
        }
    }
}

/// Creates a new database (`hookline_test_<unix secs>_<random>`) and returns its URL.
///
/// Panics with the reason when no PostgreSQL is usable; see the module docs.
pub async fn fresh_database() -> PgDatabase {
    let (server_url, mut conn) = server().await;
    drop_stale_databases(&mut conn).await;

    let name = format!(
        "{NAME_PREFIX}{}_{:016x}",
        unix_now().as_secs(),
        rand::random::<u64>()
    );
    let create = format!("CREATE DATABASE \"{name}\"");
    let mut attempt = 1;
    loop {
        match sqlx::raw_sql(&create).execute(&mut conn).await {
            Ok(_) => break,
            // 55006 object_in_use: someone is connected to template1 right now.
            Err(e) if attempt < 10 && sql_state(&e).as_deref() == Some("55006") => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!(
                "pg harness: CREATE DATABASE {name} on {} failed: {e}",
                redact(&server_url)
            ),
        }
    }
    let _ = conn.close().await;

    PgDatabase {
        url: with_database(&server_url, &name),
        name,
        server_url,
    }
}

/// Finds a usable server: the configured one, else the throwaway cluster. Panics if neither.
async fn server() -> (String, PgConnection) {
    let (configured, source) = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => (url, "TEST_DATABASE_URL"),
        _ => (DEFAULT_SERVER_URL.to_owned(), "the default"),
    };
    let configured_err = match connect(&configured).await {
        Ok(conn) => return (configured, conn),
        Err(ConnectError::Refused(e)) => panic!(
            "pg harness: {} ({source}) answered but refused the connection: {e}",
            redact(&configured)
        ),
        Err(ConnectError::Unreachable(e)) => e,
    };

    let fallback = tokio::task::spawn_blocking(ensure_throwaway_cluster)
        .await
        .expect("pg harness: the throwaway-cluster task panicked");
    let fallback_err = match fallback {
        Ok(url) => match connect(&url).await {
            Ok(conn) => {
                eprintln!(
                    "pg harness: {} ({source}) is not reachable ({configured_err}); \
                     using the throwaway cluster at {url}",
                    redact(&configured)
                );
                return (url, conn);
            }
            Err(e) => format!("started at {url} but connecting failed: {e}"),
        },
        Err(e) => e,
    };

    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let lead = if ci {
        "PostgreSQL is required under CI=true and none is usable"
    } else {
        "no usable PostgreSQL for tests (tests that need it fail, they never skip)"
    };
    panic!(
        "pg harness: {lead}.\n  server {} ({source}): {configured_err}\n  \
         throwaway cluster in {CLUSTER_DIR}: {fallback_err}\n  \
         fix: start PostgreSQL on 127.0.0.1:5432, or set TEST_DATABASE_URL, or install the \
         `postgresql` package so the harness can start its own cluster",
        redact(&configured)
    );
}

/// Why a connection failed; only `Unreachable` sends us to the throwaway cluster.
enum ConnectError {
    /// Nothing answered (refused, unresolvable, timed out).
    Unreachable(String),
    /// A server answered but refused us (auth, missing database, ...): a misconfiguration
    /// to report, not to paper over with another server.
    Refused(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Unreachable(e) | ConnectError::Refused(e) => f.write_str(e),
        }
    }
}

async fn connect(url: &str) -> Result<PgConnection, ConnectError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e @ (sqlx::Error::Io(_) | sqlx::Error::Tls(_)))) => {
            Err(ConnectError::Unreachable(e.to_string()))
        }
        Ok(Err(e)) => Err(ConnectError::Refused(e.to_string())),
        Err(_) => Err(ConnectError::Unreachable(format!(
            "no answer within {CONNECT_TIMEOUT:?}"
        ))),
    }
}

fn sql_state(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

async fn drop_database(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    // Names come from pg_database too: refuse anything that would need escaping.
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "pg harness: refusing to drop database with unexpected name {name:?}"
    );
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::raw_sql(&sql).execute(conn).await.map(|_| ())
}

/// Best effort: drops `hookline_test_*` databases whose embedded timestamp is over 2 h old.
async fn drop_stale_databases(conn: &mut PgConnection) {
    let names: Vec<String> =
        match sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE $1")
            .bind(format!("{}%", NAME_PREFIX.replace('_', "\\_")))
            .fetch_all(&mut *conn)
            .await
        {
            Ok(names) => names,
            Err(e) => {
                eprintln!("pg harness: listing stale test databases failed: {e}");
                return;
            }
        };
    let now = unix_now().as_secs();
    for name in names {
        let Some(created) = created_at(&name) else {
            continue;
        };
        if now.saturating_sub(created) > STALE_AFTER.as_secs()
            && let Err(e) = drop_database(conn, &name).await
        {
            // Another test process may be dropping the same one; that is fine.
            eprintln!("pg harness: dropping stale {name} failed: {e}");
        }
    }
}

/// The unix timestamp embedded in a test database name, if it is one of ours.
fn created_at(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (secs, suffix) = rest.split_once('_')?;
    if suffix.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    secs.parse().ok()
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("system clock is before 1970")
}

/// `url` with its database (the path) replaced by `name`, query string kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// `url` with any password replaced by `***`, for messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _password)) => format!(
                "{}{user}:***{}",
                &url[..scheme_end],
                &url[scheme_end + at..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Starts the shared throwaway cluster unless it already runs; returns its URL.
/// Blocking: run it on the blocking pool.
fn ensure_throwaway_cluster() -> Result<String, String> {
    let port = match std::env::var("HOOKLINE_TEST_PG_PORT") {
        Ok(p) => p
            .parse::<u16>()
            .map_err(|e| format!("HOOKLINE_TEST_PG_PORT={p:?} is not a port: {e}"))?,
        Err(_) => CLUSTER_PORT,
    };
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let bin = postgres_bin_dir()?;
    let dir = Path::new(CLUSTER_DIR);
    fs::create_dir_all(dir).map_err(|e| format!("creating {CLUSTER_DIR}: {e}"))?;

    // One process at a time decides whether to initdb/start; the others wait here and
    // then find the cluster running. The lock is released when `lock` is dropped.
    let lock_path = dir.join("lock");
    let lock = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .or_else(|_| File::open(&lock_path))
        .map_err(|e| format!("opening {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;

    if is_ready(&bin, port) {
        return Ok(url);
    }

    // initdb refuses to run as root: run the cluster as `postgres` (or `nobody`).
    let user = if is_root() {
        Some(cluster_user()?)
    } else {
        None
    };
    let data = dir.join("data");
    let log = data.join("server.log");
    if !data.join("PG_VERSION").exists() {
        if data.exists() {
            fs::remove_dir_all(&data)
                .map_err(|e| format!("removing half-made {}: {e}", data.display()))?;
        }
        fs::create_dir(&data).map_err(|e| format!("creating {}: {e}", data.display()))?;
        if let Some(user) = &user {
            run(Command::new("chown").arg(format!("{user}:")).arg(&data))?;
        }
        run(as_user(&user, &bin.join("initdb"))
            .args(["--auth=trust", "--username=postgres", "--encoding=UTF8"])
            .args(["--no-locale", "--no-sync", "--pgdata"])
            .arg(&data))?;
        // TCP on loopback only; no unix socket (no shared socket dir to fight over);
        // durability off, these databases are disposable.
        let settings = "\n# hookline test harness\nlisten_addresses = '127.0.0.1'\n\
                        unix_socket_directories = ''\nmax_connections = 200\nfsync = off\n\
                        synchronous_commit = off\nfull_page_writes = off\n";
        let conf = data.join("postgresql.conf");
        let mut text =
            fs::read_to_string(&conf).map_err(|e| format!("reading {}: {e}", conf.display()))?;
        text.push_str(settings);
        fs::write(&conf, text).map_err(|e| format!("writing {}: {e}", conf.display()))?;
    }

    let started = run(as_user(&user, &bin.join("pg_ctl"))
        .arg("--pgdata")
        .arg(&data)
        .arg("--log")
        .arg(&log)
        .args(["--wait", "--timeout"])
        .arg(CLUSTER_START_TIMEOUT.as_secs().to_string())
        .args(["-o", &format!("-p {port}"), "start"]));
    if let Err(e) = started {
        return Err(format!("{e}\n--- {}:\n{}", log.display(), tail(&log, 30)));
    }
    let deadline = Instant::now() + CLUSTER_START_TIMEOUT;
    while !is_ready(&bin, port) {
        if Instant::now() > deadline {
            return Err(format!(
                "started, but 127.0.0.1:{port} does not accept connections within {:?}\n--- {}:\n{}",
                CLUSTER_START_TIMEOUT,
                log.display(),
                tail(&log, 30)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("pg harness: started throwaway cluster in {CLUSTER_DIR} at {url}");
    Ok(url)
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has the server tools.
fn postgres_bin_dir() -> Result<PathBuf, String> {
    let root = Path::new("/usr/lib/postgresql");
    let entries = fs::read_dir(root)
        .map_err(|e| format!("no PostgreSQL server binaries ({}: {e})", root.display()))?;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
        .ok_or_else(|| format!("no {}/<version>/bin/initdb", root.display()))
}

fn is_ready(bin: &Path, port: u16) -> bool {
    Command::new(bin.join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-t", "2", "-p", &port.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A non-root account to own the cluster: `postgres` if the system has one, else `nobody`.
fn cluster_user() -> Result<String, String> {
    ["postgres", "nobody"]
        .into_iter()
        .find(|user| {
            Command::new("id")
                .arg("-u")
                .arg(user)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(str::to_owned)
        .ok_or_else(|| "running as root and there is no `postgres` or `nobody` user".to_owned())
}

/// `program`, run as `user` through runuser when set. Working directory is the cluster
/// dir, which the cluster's user can enter (initdb complains about an unreadable cwd).
fn as_user(user: &Option<String>, program: &Path) -> Command {
    let mut cmd = match user {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", user, "--"]).arg(program);
            cmd
        }
        None => Command::new(program),
    };
    cmd.current_dir(CLUSTER_DIR);
    cmd
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read: {e})"),
    }
}
