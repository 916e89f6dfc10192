//! A throwaway PostgreSQL server for one test: `initdb` into a temporary
//! folder (as the unprivileged `postgres` user when the tests run as
//! root), a random loopback port, trust authentication on loopback only,
//! stopped when dropped. Without PostgreSQL's binaries, [`Postgres::start`]
//! says loudly that the test is skipped and returns `None`.

#[path = "skip.rs"]
pub mod skip_rule;

use skip_rule::skip;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// `Some(user)` when commands must run as another user (tests run as root).
    run_as: Option<&'static str>,
    pub port: u16,
}

/// The folder of `initdb`, `pg_ctl` and `psql`: `OFFERLAB_PG_BIN`, else
/// the newest Debian install, else `PATH`.
fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("OFFERLAB_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    versions.pop().or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .find(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Postgres {
    /// Starts a fresh server, or says why the calling test is skipped.
    pub fn start(test: &str) -> Option<Postgres> {
        let Some(bin) = find_bin() else {
            skip(
                test,
                "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin or on PATH; Debian's postgresql package)",
            );
            return None;
        };
        let run_as = if is_root() { Some("postgres") } else { None };
        if let Some(user) = run_as {
            if !Command::new("id").arg(user).output().is_ok_and(|o| o.status.success()) {
                skip(test, &format!("running as root and there is no `{user}` user to run PostgreSQL as"));
                return None;
            }
        }
        let dir = tempfile::Builder::new().prefix("offerlab-pg").tempdir().unwrap();
        if let Some(user) = run_as {
            let ok = Command::new("chown").arg(format!("{user}:")).arg(dir.path()).status().unwrap();
            assert!(ok.success(), "chown of the PostgreSQL folder");
        }
        let pg = Postgres { dir, bin, run_as, port: free_port() };
        let data = pg.data();
        pg.run_ok("initdb", &["-D", &data, "-U", "offerlab", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"]);
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = on\nsynchronous_commit = on\nmax_connections = 100\n",
            pg.dir.path().display()
        );
        let path = Path::new(&data).join("postgresql.conf");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&conf);
        std::fs::write(&path, text).unwrap();
        pg.start_server();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args).current_dir(self.dir.path()).output().unwrap_or_else(|e| panic!("{tool} runs: {e}"))
    }

    fn run_ok(&self, tool: &str, args: &[&str]) -> Output {
        let out = self.run(tool, args);
        assert!(
            out.status.success(),
            "{tool} {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts the server (again) on its port and waits until it accepts
    /// connections.
    pub fn start_server(&self) {
        let log = self.dir.path().join("server.log").display().to_string();
        let port = format!("-p {}", self.port);
        self.run_ok("pg_ctl", &["-D", &self.data(), "-l", &log, "-o", &port, "-w", "-t", "60", "start"]);
    }

    /// Adds `lines` to the server's configuration and restarts it, for a
    /// setting read only at start (`shared_preload_libraries`, say).
    pub fn restart_with(&self, lines: &str) {
        let path = Path::new(&self.data()).join("postgresql.conf");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(lines);
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        self.stop_server();
        self.start_server();
    }

    /// Stops the server (fast shutdown: open sessions are cut).
    pub fn stop_server(&self) {
        self.run_ok("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server and every process it
    /// started: SIGSTOP of them all is what a network black hole looks like
    /// to a client.
    pub fn signal_all(&self, signal: &str) {
        let pid_file = std::fs::read_to_string(Path::new(&self.data()).join("postmaster.pid")).unwrap();
        let postmaster = pid_file.lines().next().unwrap().trim().to_owned();
        let children = Command::new("pgrep").args(["-P", &postmaster]).output().unwrap();
        let mut pids = vec![postmaster];
        pids.extend(String::from_utf8_lossy(&children.stdout).split_whitespace().map(str::to_owned));
        let ok = Command::new("kill").arg("-s").arg(signal).args(&pids).status().unwrap();
        assert!(ok.success(), "kill -s {signal} {pids:?}");
    }

    /// Runs each statement with psql in one session, each in its own
    /// transaction (as `ALTER SYSTEM` needs); what they printed, one line
    /// each (command tags included).
    pub fn sql_each(&self, db: &str, statements: &[&str]) -> String {
        let port = self.port.to_string();
        let mut args = vec!["-h", "127.0.0.1", "-p", &port, "-U", "offerlab", "-d", db, "-v", "ON_ERROR_STOP=1", "-At"];
        for s in statements {
            args.extend(["-c", s]);
        }
        let out = self.run_ok("psql", &args);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A psql session on `db` fed through its standard input: what is sent
    /// runs, and the session then sits idle (inside a transaction, if one
    /// was begun) until its input closes.
    pub fn session(&self, db: &str) -> std::process::Child {
        Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "offerlab", "-d", db, "-At"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("psql starts")
    }

    /// The URL of the server's `postgres` database.
    pub fn admin_url(&self) -> String {
        format!("postgres://offerlab@127.0.0.1:{}/postgres", self.port)
    }

    /// A new empty database; its URL.
    pub fn database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("offerlab_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        format!("postgres://offerlab@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs SQL with psql in `db`; its output, unaligned, without headers.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let port = self.port.to_string();
        let out = self.run_ok(
            "psql",
            &["-h", "127.0.0.1", "-p", &port, "-U", "offerlab", "-d", db, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}
