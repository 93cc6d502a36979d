//! A Redis server of the test's own (Debian's `redis-server`, `broker.rs`), so a test can
//! stop and start its broker without touching the machine's. It keeps an append-only file
//! fsynced on every write: an entry Redis acknowledged survives a restart, as a production
//! broker's would. It can serve TLS with a certificate of the test's own CA (`tls.rs`).

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::Command;

use super::broker::Broker;
use super::process::free_addr;
use super::tls::TestCa;

pub struct RedisServer {
    broker: Broker,
    password: Option<String>,
    /// With TLS on `addr`: the plaintext port the test's own client reads on.
    plain: Option<std::net::SocketAddr>,
}

impl RedisServer {
    /// Starts one, requiring `password` when given.
    pub async fn start(password: Option<&str>) -> RedisServer {
        Self::start_with(password, None).await
    }

    /// Starts one serving TLS on `addr` with a certificate `ca` issued for localhost (and
    /// plaintext on another port, for the test's own reads).
    pub async fn start_tls(ca: &TestCa) -> RedisServer {
        let (cert, key) = ca.server_paths();
        ca.leaf().write(&cert, &key);
        Self::start_with(None, Some((cert, key, ca.pem_path.clone()))).await
    }

    async fn start_with(
        password: Option<&str>,
        tls: Option<(PathBuf, PathBuf, PathBuf)>,
    ) -> RedisServer {
        let password = password.map(str::to_owned);
        let required = password.clone();
        let plain = tls.as_ref().map(|_| free_addr());
        let broker = Broker::start("redis-server", move |addr, dir| {
            let mut command = Command::new("redis-server");
            command.args(["--bind", "127.0.0.1", "--port"]);
            match (&tls, plain) {
                (Some((cert, key, ca)), Some(plain)) => {
                    command.arg(plain.port().to_string()).arg("--tls-port");
                    command.arg(addr.port().to_string());
                    command.arg("--tls-cert-file").arg(cert);
                    command.arg("--tls-key-file").arg(key);
                    command.arg("--tls-ca-cert-file").arg(ca);
                    command.args(["--tls-auth-clients", "no"]);
                }
                _ => {
                    command.arg(addr.port().to_string());
                }
            }
            command
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
        RedisServer {
            broker,
            password,
            plain,
        }
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

    /// `rediss://localhost:PORT/0?stream=STREAM`, its TLS address by the certificate's name.
    pub fn tls_url(&self, stream: &str) -> String {
        format!("rediss://localhost:{}/0?stream={stream}", self.addr.port())
    }

    /// A client of its own (redis-rs, in plaintext), for reading what arrived.
    pub fn client(&self) -> ::redis::Client {
        let url = match self.plain {
            Some(plain) => format!("redis://{plain}/0"),
            None => self
                .url("unused")
                .split('?')
                .next()
                .unwrap_or_default()
                .to_owned(),
        };
        ::redis::Client::open(url).expect("redis client")
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
