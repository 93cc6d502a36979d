//! A Redis server of the test's own (Debian's `redis-server`, `broker.rs`), so a test can
//! stop and start its broker without touching the machine's. It keeps an append-only file
//! fsynced on every write: an entry Redis acknowledged survives a restart, as a production
//! broker's would.

use std::ops::{Deref, DerefMut};
use std::process::Command;

use super::broker::Broker;

pub struct RedisServer {
    broker: Broker,
    password: Option<String>,
}

impl RedisServer {
    /// Starts one, requiring `password` when given.
    pub async fn start(password: Option<&str>) -> RedisServer {
        let password = password.map(str::to_owned);
        let required = password.clone();
        let broker = Broker::start("redis-server", move |addr, dir| {
            let mut command = Command::new("redis-server");
            command
                .args(["--bind", "127.0.0.1", "--port"])
                .arg(addr.port().to_string())
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
                .arg(dir);
            if let Some(password) = &required {
                command.args(["--requirepass", password]);
            }
            command
        })
        .await;
        RedisServer { broker, password }
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

impl Deref for RedisServer {
    type Target = Broker;
    fn deref(&self) -> &Broker {
        &self.broker
    }
}

impl DerefMut for RedisServer {
    fn deref_mut(&mut self) -> &mut Broker {
        &mut self.broker
    }
}
