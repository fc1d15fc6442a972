//! PostgreSQL for tests: a throwaway server started from Debian's binaries (`initdb` into a
//! temporary directory, `postgres` on a free loopback port, trust authentication), stopped by
//! process id and deleted when the test is done; and a throwaway database on it.
//!
//! No test uses a server that happens to run on the machine. The binaries are looked for in
//! `POSTGRES_BIN_DIR`, then the newest `/usr/lib/postgresql/*/bin`, then `PATH`
//! (`apt-get install postgresql`; `cargo xtask test` installs it). PostgreSQL refuses to run as
//! root, so under root the server runs as the `postgres` user when there is one, else `nobody`.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User, geteuid};
use sqlx::{Connection as _, PgConnection};

use crate::{find_program, free_port, wait_for_port};

/// A `postgres` server of the test's own, on a free port; stopped (SIGINT, a fast shutdown, by
/// pid) and its data directory removed when dropped.
pub struct PostgresServer {
    child: Child,
    dir: PathBuf,
    port: u16,
}

/// The directory holding PostgreSQL's `initdb` and `postgres`.
pub fn postgres_binaries() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("POSTGRES_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    match find_program("initdb") {
        Some(initdb) => Ok(initdb.parent().map(Path::to_path_buf).unwrap_or_default()),
        None => bail!(
            "PostgreSQL's server binaries (initdb, postgres) not found in POSTGRES_BIN_DIR, \
             /usr/lib/postgresql/*/bin or PATH: apt-get install postgresql (cargo xtask test installs it)"
        ),
    }
}

/// Who the server runs as: ourselves, or under root an unprivileged user (uid, gid).
fn server_user() -> Result<Option<(u32, u32)>> {
    if !geteuid().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Some(user) = User::from_name(name).context("reading the user database")? {
            return Ok(Some((user.uid.as_raw(), user.gid.as_raw())));
        }
    }
    bail!("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as")
}

impl PostgresServer {
    pub fn start() -> Result<Self> {
        let bin = postgres_binaries()?;
        let user = server_user()?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
        let dir = std::env::temp_dir().join(format!("postgres-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let as_user = |cmd: &mut Command| {
            if let Some((uid, gid)) = user {
                cmd.uid(uid).gid(gid);
            }
        };
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .with_context(|| format!("handing {} to uid {uid}", dir.display()))?;
        }
        let data = dir.join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_user(&mut initdb);
        let out = initdb.output().with_context(|| format!("starting {}", bin.join("initdb").display()))?;
        if !out.status.success() {
            let _ = fs::remove_dir_all(&dir);
            bail!("initdb failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        }

        let port = free_port();
        let log = fs::File::create(dir.join("server.log"))?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.join("server.log"), Some(uid), Some(gid))?;
        }
        let mut postgres = Command::new(bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-k"])
            .arg(&dir)
            // A test's data need not survive a crash: no waiting on the disk.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .stdout(Stdio::null())
            .stderr(log);
        as_user(&mut postgres);
        let child = postgres.spawn().with_context(|| format!("starting {}", bin.join("postgres").display()))?;
        let server = Self { child, dir, port };
        if let Err(e) = wait_for_port(port, Duration::from_secs(30)).and_then(|()| wait_until_ready(&data)) {
            let log = fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
            drop(server);
            bail!("{e:#}; the server's log:\n{log}");
        }
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `postgres` database as the superuser `postgres`.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

/// Waits until the server accepts connections: it listens while still starting up (and refuses
/// connections then), and says "ready" on the eighth line of `postmaster.pid` once it takes
/// them, which is what `pg_ctl -w` waits for.
fn wait_until_ready(data: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let status = fs::read_to_string(data.join("postmaster.pid")).unwrap_or_default();
        if status.lines().nth(7).is_some_and(|l| l.trim() == "ready") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("PostgreSQL did not say ready within 30 s")
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Signalled only while it runs: once reaped, its pid may be someone else's.
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = Pid::from_raw(self.child.id() as i32);
            if kill(pid, Signal::SIGINT).is_ok() {
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A database of its own for one test, on a [`PostgresServer`] of its own.
pub struct ThrowawayDatabase {
    admin: PgConnection,
    name: String,
    /// The new database's URL.
    pub url: String,
    // Dropped last: the connection above closes before the server stops.
    _server: PostgresServer,
}

impl ThrowawayDatabase {
    pub async fn create(prefix: &str) -> Result<Self> {
        let server = tokio::task::spawn_blocking(PostgresServer::start).await??;
        let admin_url = server.admin_url();
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
        let name = format!("{prefix}_{}", std::process::id());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
        let url = format!("postgres://postgres@127.0.0.1:{}/{name}", server.port());
        Ok(Self { admin, name, url, _server: server })
    }

    /// Drops the database, closing whatever is still connected to it.
    pub async fn drop_now(&mut self) -> Result<()> {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut self.admin).await?;
        Ok(())
    }
}
