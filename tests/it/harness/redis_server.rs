//! A Redis server of the test's own (Debian's `redis-server` on a free port, in a temporary
//! directory), so a test can stop and start its broker without touching the machine's.
//! It keeps an append-only file fsynced on every write: an entry Redis acknowledged
//! survives a restart, as a production broker's would.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::free_addr;

pub struct RedisServer {
    pub addr: SocketAddr,
    password: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one, requiring `password` when given.
    pub async fn start(password: Option<&str>) -> RedisServer {
        let mut server = RedisServer {
            addr: free_addr(),
            password: password.map(str::to_owned),
            dir: tempfile::tempdir().expect("redis dir"),
            child: None,
        };
        server.run().await;
        server
    }

    async fn run(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.addr.port().to_string())
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--daemonize", "no", "--logfile", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        self.child = Some(command.spawn().unwrap_or_else(|e| {
            panic!("redis harness: starting redis-server (apt-get install redis-server): {e}")
        }));
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(self.addr).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it at once (what a crash or a restart looks like to clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and files.
    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }

    /// `redis://[:password@]127.0.0.1:PORT/0?stream=STREAM`.
    pub fn url(&self, stream: &str) -> String {
        let auth = self
            .password
            .as_ref()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        format!("redis://{auth}{}/0?stream={stream}", self.addr)
    }

    /// A client of its own (redis-rs), for reading what arrived.
    pub fn client(&self) -> ::redis::Client {
        ::redis::Client::open(self.url("unused").split('?').next().unwrap_or_default())
            .expect("redis client")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
