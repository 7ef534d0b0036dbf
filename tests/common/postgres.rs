//! A throwaway PostgreSQL cluster for the tests and examples.
//!
//! With `DATABASE_URL` set, that database is used and nothing is started.
//! Otherwise the first caller starts a cluster from the server binaries on
//! this machine (`initdb` and `pg_ctl`, found under
//! `/usr/lib/postgresql/*/bin` or on `PATH`), listening on 127.0.0.1 only, on
//! a free port, with durability switched off for speed. When running as root
//! the server runs as the `postgres` user, since PostgreSQL refuses root.
//!
//! A watchdog process stops the cluster and removes its directory once the
//! process that started it has exited, however it exited.
//!
//! Tests that stop, restart or reconfigure the server start a private
//! cluster of their own ([`private_cluster`]), the same way, in its own
//! directory and on its own port, so that the shared one stays up for the
//! tests running beside them. A private cluster is stopped and removed when
//! dropped.
//!
//! Examples include this file with `#[path]`, so it uses only std, tokio and
//! what its callers already depend on.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A running throwaway cluster.
#[derive(Debug)]
pub struct Cluster {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub url: String,
    /// The cluster's data directory.
    pub data_dir: PathBuf,
    /// The directory holding the data directory, the socket and the log.
    root: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<&'static str>,
    options: String,
    log: PathBuf,
    /// Stopped and removed on drop; the shared cluster is left to its
    /// watchdog.
    private: bool,
}

/// How a cluster authenticates its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Any user, any password or none.
    Trust,
    /// `scram-sha-256`: user `postgres` with this password, over TCP and the
    /// socket alike.
    Password(&'static str),
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The database to use: `DATABASE_URL`, or the throwaway cluster, started
/// on first use.
pub async fn database_url() -> String {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return url;
    }
    tokio::task::spawn_blocking(|| cluster().url.clone())
        .await
        .expect("starting the throwaway PostgreSQL panicked")
}

/// The throwaway cluster, started on first use. Fault tests use it to stop
/// and start the server; it is not used when `DATABASE_URL` is set.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| Cluster::start_new("shared", Auth::Trust, false))
}

/// A cluster of the calling test's own, named for it, started like the
/// shared one; stopped and removed when dropped.
///
/// It keeps `synchronous_commit` on, so that what a test saw committed
/// survives `pg_ctl stop -m immediate`; `fsync` stays off, since the
/// machine itself does not crash.
///
/// `None` when `DATABASE_URL` is set: the tests cannot control that server,
/// so the caller skips, and this prints why.
pub async fn private_cluster(test: &'static str, auth: Auth) -> Option<Cluster> {
    if std::env::var_os("DATABASE_URL").is_some() {
        println!(
            "{test}: skipped: DATABASE_URL is set, and this test needs a PostgreSQL \
             server of its own to stop, start or configure"
        );
        return None;
    }
    let cluster = tokio::task::spawn_blocking(move || Cluster::start_new(test, auth, true));
    Some(
        cluster
            .await
            .expect("starting a private PostgreSQL panicked"),
    )
}

impl Cluster {
    fn start_new(name: &str, auth: Auth, private: bool) -> Self {
        let bin_dir = find_bin_dir().unwrap_or_else(|| {
            panic!(
                "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin \
                 or on PATH: install them (Debian and Ubuntu: apt-get install postgresql), \
                 or set DATABASE_URL to a database the tests may use"
            )
        });
        let run_as = is_root().then_some("postgres");
        let root = std::env::temp_dir().join(format!(
            "ssproc-pg-{}-{}-{name}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        fs::create_dir_all(&root).expect("create the cluster directory");
        spawn_watchdog(&root, &bin_dir, run_as);
        let password_file = root.join("password");
        let (method, user_info) = match auth {
            Auth::Trust => ("trust", "postgres".to_owned()),
            Auth::Password(password) => {
                fs::write(&password_file, password).expect("write the password file");
                ("scram-sha-256", format!("postgres:{password}"))
            }
        };
        if let Some(user) = run_as {
            run(
                Command::new("chown").arg("-R").arg(user).arg(&root),
                "chown the cluster directory",
            );
        }
        let data_dir = root.join("data");
        let mut initdb = command(&bin_dir, "initdb", run_as);
        initdb
            .arg("-D")
            .arg(&data_dir)
            .args(["-A", method, "-U", "postgres", "-E", "UTF8"]);
        initdb.args(["--locale=C", "--no-sync"]);
        if auth != Auth::Trust {
            initdb.arg(format!("--pwfile={}", password_file.display()));
        }
        run(&mut initdb, "initdb");

        let log = root.join("server.log");
        // The port is free when picked; another process may take it before
        // the server binds it, so a failed start picks again.
        let synchronous_commit = if private { "on" } else { "off" };
        for _ in 0..5 {
            let port = free_port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 \
                 -c fsync=off -c synchronous_commit={synchronous_commit} -c full_page_writes=off",
                root.display()
            );
            let mut cluster = Self {
                url: format!("postgres://{user_info}@127.0.0.1:{port}/postgres"),
                data_dir: data_dir.clone(),
                root: root.clone(),
                bin_dir: bin_dir.clone(),
                run_as,
                options,
                log: log.clone(),
                // Not yet: a failed try must not remove the directory.
                private: false,
            };
            if cluster.pg_ctl_start() {
                cluster.private = private;
                return cluster;
            }
        }
        let log = fs::read_to_string(&log).unwrap_or_default();
        panic!("the throwaway PostgreSQL did not start; its log:\n{log}");
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m
    /// immediate`).
    pub fn stop(&self) {
        let mut stop = command(&self.bin_dir, "pg_ctl", self.run_as);
        stop.arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "stop"]);
        run(&mut stop, "pg_ctl stop");
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        let port = self
            .url
            .rsplit(':')
            .next()
            .and_then(|rest| rest.split('/').next());
        port.and_then(|port| port.parse().ok())
            .expect("the cluster URL ends in :PORT/postgres")
    }

    /// Starts the server again after [`stop`](Cluster::stop), waiting until
    /// it accepts connections.
    pub fn start(&self) {
        assert!(
            self.pg_ctl_start(),
            "the throwaway PostgreSQL did not restart"
        );
    }

    /// `pg_ctl start -w`: waits (up to a minute) until the server accepts
    /// connections; `false` when it did not come up.
    fn pg_ctl_start(&self) -> bool {
        let mut start = command(&self.bin_dir, "pg_ctl", self.run_as);
        start.arg("-D").arg(&self.data_dir).arg("-l").arg(&self.log);
        start.args(["-w", "-t", "60", "-o", &self.options, "start"]);
        start
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        start
            .status()
            .map(|status| status.success())
            .unwrap_or(false)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.private {
            return;
        }
        if self.data_dir.join("postmaster.pid").exists() {
            let mut stop = command(&self.bin_dir, "pg_ctl", self.run_as);
            stop.arg("-D")
                .arg(&self.data_dir)
                .args(["-m", "immediate", "-w", "stop"]);
            let _ = stop
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Newest `/usr/lib/postgresql/<version>/bin`, else the directory of
/// `initdb` on `PATH`, provided `pg_ctl` sits beside it.
fn find_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    versions
        .into_iter()
        .rev()
        .map(|(_, bin)| bin)
        .chain(on_path)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("Uid:"))?;
            line.split_whitespace().nth(1).map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port on 127.0.0.1");
    listener.local_addr().expect("read the bound port").port()
}

fn command(bin_dir: &Path, program: &str, run_as: Option<&str>) -> Command {
    let program = bin_dir.join(program);
    match run_as {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("{what} could not run: {error}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts a shell that waits for this process to exit, then stops the
/// cluster and removes `root`. Its output goes nowhere, so that it holds no
/// pipe of the test harness open.
fn spawn_watchdog(root: &Path, bin_dir: &Path, run_as: Option<&str>) {
    let pg_ctl = bin_dir.join("pg_ctl");
    let data_dir = root.join("data");
    let stop = match run_as {
        Some(user) => format!(
            "runuser -u {user} -- '{}' -D '{}' -m immediate stop",
            pg_ctl.display(),
            data_dir.display()
        ),
        None => format!(
            "'{}' -D '{}' -m immediate stop",
            pg_ctl.display(),
            data_dir.display()
        ),
    };
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 0.2; done; \
         if [ -f '{data}/postmaster.pid' ]; then {stop}; fi; rm -rf '{root}'",
        parent = std::process::id(),
        data = data_dir.display(),
        root = root.display(),
    );
    // Never waited for: it outlives this process on purpose.
    #[allow(clippy::zombie_processes)]
    let _watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the cluster's watchdog");
}
