//! A NATS server with JetStream of the test's own (Debian's `nats-server -js` on a free
//! port, its store in a temporary directory), so a test can stop and start it without
//! touching the machine's. JetStream's file store keeps what it acknowledged across a
//! restart.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::free_addr;

pub struct NatsServer {
    pub addr: SocketAddr,
    credentials: Option<(String, String)>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts one, requiring `user` and `password` when given.
    pub async fn start(credentials: Option<(&str, &str)>) -> NatsServer {
        let mut server = NatsServer {
            addr: free_addr(),
            credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
            dir: tempfile::tempdir().expect("nats dir"),
            child: None,
        };
        server.run().await;
        server
    }

    async fn run(&mut self) {
        let mut command = Command::new("nats-server");
        command
            .args(["-a", "127.0.0.1", "-p"])
            .arg(self.addr.port().to_string())
            .args(["-js", "-sd"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((user, password)) = &self.credentials {
            command.args(["--user", user, "--pass", password]);
        }
        self.child = Some(command.spawn().unwrap_or_else(|e| {
            panic!("nats harness: starting nats-server (apt-get install nats-server): {e}")
        }));
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(self.addr).await.is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it at once.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and store.
    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }

    /// `nats://[user:password@]127.0.0.1:PORT/SUBJECT`.
    pub fn url(&self, subject: &str) -> String {
        let auth = self
            .credentials
            .as_ref()
            .map(|(u, p)| format!("{u}:{p}@"))
            .unwrap_or_default();
        format!("nats://{auth}{}/{subject}", self.addr)
    }

    /// A JetStream context of its own (async-nats), with a stream `name` capturing
    /// `subjects`.
    pub async fn stream(
        &self,
        name: &str,
        subjects: &[&str],
    ) -> async_nats::jetstream::stream::Stream {
        let mut options = async_nats::ConnectOptions::new();
        if let Some((user, password)) = &self.credentials {
            options = options.user_and_password(user.clone(), password.clone());
        }
        let client = options
            .connect(self.addr.to_string())
            .await
            .expect("connect");
        async_nats::jetstream::new(client)
            .create_stream(async_nats::jetstream::stream::Config {
                name: name.to_owned(),
                subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
                ..Default::default()
            })
            .await
            .expect("create stream")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
