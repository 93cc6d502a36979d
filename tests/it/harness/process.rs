//! The real `hookline` binary as a child process, for replica and signal tests.
//!
//! Killed (SIGKILL) on drop; its log goes to a temp file quoted by `log()`.

use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `hookline` process.
pub struct Hookline {
    child: Child,
    log: tempfile::NamedTempFile,
}

/// A free 127.0.0.1 port (free now; tests retry nothing, collisions are unlikely).
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

impl Hookline {
    /// Spawns `hookline <args>`.
    pub fn spawn(args: &[&str]) -> Hookline {
        Hookline::spawn_env(args, &[])
    }

    /// Spawns `hookline <args>` with more environment variables.
    pub fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Hookline {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(args)
            .envs(env.iter().copied())
            .env("HOOKLINE_LOG_LEVEL", "info,sqlx=warn")
            // Receivers listen on loopback, which hookline refuses unless allow-listed.
            .env("HOOKLINE_ALLOW_CIDRS", "127.0.0.0/8")
            .env("HOOKLINE_SECRET_KEY", super::db::TEST_KEY)
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log"))
            .stderr(log.reopen().expect("log"))
            .spawn()
            .expect("spawn hookline");
        Hookline { child, log }
    }

    /// Spawns `hookline serve` with `roles` on `db` (a URL), ingest (when it runs) on `addr`
    /// accepting the harness's registry token, and `extra` flags.
    pub fn serve(db: &str, roles: &str, addr: SocketAddr, extra: &[&str]) -> Hookline {
        let addr = addr.to_string();
        let mut args = vec![
            "serve",
            "--roles",
            roles,
            "--db",
            db,
            "--ingest-addr",
            &addr,
            "--registry-token",
            super::server::REGISTRY_TOKEN,
        ];
        args.extend_from_slice(extra);
        Hookline::spawn(&args)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGKILL: dies at once, mid-work.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit (bounded).
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hookline did not exit within {timeout:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `GET http://addr/healthz` answers (bounded).
    pub async fn wait_healthy(&self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        while client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "hookline never became healthy\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Hookline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
