//! A NATS server with JetStream of the test's own (Debian's `nats-server -js`,
//! `broker.rs`), so a test can stop and start it without touching the machine's.
//! JetStream's file store keeps what it acknowledged across a restart. It can require TLS
//! with a certificate of the test's own CA (`tls.rs`).

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::Command;

use super::broker::Broker;
use super::tls::TestCa;

pub struct NatsServer {
    broker: Broker,
    credentials: Option<(String, String)>,
    /// The CA of its TLS certificate, when it requires TLS.
    tls_ca: Option<PathBuf>,
}

impl NatsServer {
    /// Starts one, requiring `user` and `password` when given.
    pub async fn start(credentials: Option<(&str, &str)>) -> NatsServer {
        Self::start_with(credentials, None).await
    }

    /// Starts one requiring TLS with the certificate and key `ca` issued for localhost.
    pub async fn start_tls(ca: &TestCa) -> NatsServer {
        let (cert, key) = ca.server_paths();
        ca.leaf().write(&cert, &key);
        let mut server = Self::start_with(None, Some((cert, key))).await;
        server.tls_ca = Some(ca.pem_path.clone());
        server
    }

    async fn start_with(
        credentials: Option<(&str, &str)>,
        tls: Option<(PathBuf, PathBuf)>,
    ) -> NatsServer {
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        let required = credentials.clone();
        let broker = Broker::start("nats-server", move |addr, dir| {
            let mut command = Command::new("nats-server");
            command
                .args(["-a", "127.0.0.1", "-p"])
                .arg(addr.port().to_string())
                .args(["-js", "-sd"])
                .arg(dir);
            if let Some((user, password)) = &required {
                command.args(["--user", user, "--pass", password]);
            }
            if let Some((cert, key)) = &tls {
                command.arg("--tls").arg("--tlscert").arg(cert);
                command.arg("--tlskey").arg(key);
            }
            command
        })
        .await;
        NatsServer {
            broker,
            credentials,
            tls_ca: None,
        }
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
        let mut address = self.addr.to_string();
        if let Some(ca) = &self.tls_ca {
            options = options.require_tls(true).add_root_certificates(ca.clone());
            address = format!("tls://localhost:{}", self.addr.port());
        }
        let client = options.connect(address).await.expect("connect");
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

impl Deref for NatsServer {
    type Target = Broker;
    fn deref(&self) -> &Broker {
        &self.broker
    }
}

impl DerefMut for NatsServer {
    fn deref_mut(&mut self) -> &mut Broker {
        &mut self.broker
    }
}
