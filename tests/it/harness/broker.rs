//! A broker process of the test's own (`redis_server.rs`, `nats_server.rs`,
//! `rabbitmq_server.rs`): started on a
//! free port with its files in a temporary directory, killed at once (what a crash looks
//! like to its clients) and started again on the same port and files, killed on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::free_addr;

/// How to start one: the command for this address and directory.
type Launch = Box<dyn Fn(SocketAddr, &Path) -> Command + Send + Sync>;

pub struct Broker {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    launch: Launch,
    /// The program, for messages.
    program: &'static str,
    child: Option<Child>,
}

impl Broker {
    /// Starts `program` as `launch` says, and waits until it accepts connections.
    pub async fn start(
        program: &'static str,
        launch: impl Fn(SocketAddr, &Path) -> Command + Send + Sync + 'static,
    ) -> Broker {
        let mut broker = Broker {
            addr: free_addr(),
            dir: tempfile::tempdir().expect("broker dir"),
            launch: Box::new(launch),
            program,
            child: None,
        };
        broker.run().await;
        broker
    }

    async fn run(&mut self) {
        let mut command = (self.launch)(self.addr, self.dir.path());
        command.stdout(Stdio::null()).stderr(Stdio::null());
        self.child = Some(command.spawn().unwrap_or_else(|e| {
            panic!(
                "broker harness: starting {} (apt-get install {}): {e}",
                self.program, self.program
            )
        }));
        // RabbitMQ boots its Erlang VM in about 5 s, more on a busy machine.
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(self.addr).await.is_err() {
            assert!(Instant::now() < deadline, "{} did not start", self.program);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its files' directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills it at once.
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
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
