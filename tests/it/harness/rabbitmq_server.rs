//! A RabbitMQ node of the test's own (Debian's `rabbitmq-server`, `broker.rs`), so a test
//! can kill and start its broker without touching the machine's: its own node name,
//! ports, database and logs in the broker's directory, no plugins. Started so the script
//! execs the Erlang VM itself (`RUNNING_UNDER_SYSTEMD`), so killing the child kills the
//! broker at once. A durable queue keeps confirmed persistent messages across a restart.
//! It lets in `guest`/`guest` from loopback, RabbitMQ's default. It can serve TLS as well,
//! with a certificate of the test's own CA (`tls.rs`).

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::process::Command;

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use super::broker::Broker;
use super::process::free_addr;
use super::tls::TestCa;

pub struct RabbitMqServer {
    broker: Broker,
    /// Where it serves TLS, if it does.
    tls: Option<SocketAddr>,
}

impl RabbitMqServer {
    pub async fn start() -> RabbitMqServer {
        Self::start_with(None).await
    }

    /// Starts one that also serves TLS, with a certificate `ca` issued for localhost.
    pub async fn start_tls(ca: &TestCa) -> RabbitMqServer {
        let (cert, key) = ca.server_paths();
        ca.leaf().write(&cert, &key);
        Self::start_with(Some((cert, key, free_addr()))).await
    }

    async fn start_with(
        tls: Option<(std::path::PathBuf, std::path::PathBuf, SocketAddr)>,
    ) -> RabbitMqServer {
        let distribution = free_addr().port();
        let tls_addr = tls.as_ref().map(|(_, _, addr)| *addr);
        let broker = Broker::start("rabbitmq-server", move |addr, dir| {
            let path = |name: &str| dir.join(name);
            // No plugins: an empty list, so the machine's enabled plugins stay its own.
            let _ = std::fs::write(path("enabled_plugins"), "[].");
            let config = match &tls {
                Some((cert, key, tls)) => format!(
                    "listeners.ssl.default = {}\nssl_options.certfile = {}\nssl_options.keyfile = {}\nssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n",
                    tls.port(),
                    cert.display(),
                    key.display()
                ),
                None => String::new(),
            };
            std::fs::write(path("rabbitmq.conf"), config).expect("rabbitmq.conf");
            let mut command = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
            command
                .env("HOME", dir)
                .env("RUNNING_UNDER_SYSTEMD", "true")
                .env(
                    "RABBITMQ_NODENAME",
                    format!("hookline{}@localhost", addr.port()),
                )
                .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                .env("RABBITMQ_NODE_PORT", addr.port().to_string())
                .env("RABBITMQ_DIST_PORT", distribution.to_string())
                .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
                .env("RABBITMQ_LOG_BASE", path("log"))
                .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins"))
                .env("RABBITMQ_PLUGINS_EXPAND_DIR", path("plugins"))
                .env("RABBITMQ_CONFIG_FILE", path("rabbitmq"))
                .env("RABBITMQ_PID_FILE", path("pid"));
            command
        })
        .await;
        RabbitMqServer {
            broker,
            tls: tls_addr,
        }
    }

    /// `amqps://guest:guest@localhost:PORT/?exchange=EXCHANGE&routing_key=KEY`, its TLS
    /// address by the certificate's name.
    pub fn tls_url(&self, exchange: &str, routing_key: &str) -> String {
        let port = self.tls.expect("started with start_tls").port();
        format!(
            "amqps://guest:guest@localhost:{port}/?exchange={exchange}&routing_key={routing_key}"
        )
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/?exchange=EXCHANGE&routing_key=KEY` (vhost `/`).
    pub fn url(&self, exchange: &str, routing_key: &str) -> String {
        format!(
            "amqp://guest:guest@{}/?exchange={exchange}&routing_key={routing_key}",
            self.addr
        )
    }

    /// A channel of its own (lapin), as `guest`.
    pub async fn channel(&self) -> (Connection, Channel) {
        let uri = format!("amqp://guest:guest@{}/%2f", self.addr);
        let connection = Connection::connect(&uri, ConnectionProperties::default())
            .await
            .expect("connect to the test's RabbitMQ");
        let channel = connection.create_channel().await.expect("channel");
        (connection, channel)
    }

    /// A durable direct exchange `exchange` with a durable queue `queue` bound to it by
    /// `routing_key`, as a consumer would declare them.
    pub async fn bind(&self, exchange: &str, queue: &str, routing_key: &str) {
        let (_connection, channel) = self.channel().await;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await
            .expect("declare exchange");
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .expect("declare queue");
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
    }

    /// Every message `queue` holds, taken off it in order.
    pub async fn drain(&self, queue: &str) -> Vec<lapin::message::BasicGetMessage> {
        let (_connection, channel) = self.channel().await;
        let mut all = Vec::new();
        let options = BasicGetOptions { no_ack: true };
        while let Some(message) = channel
            .basic_get(queue.into(), options)
            .await
            .expect("basic.get")
        {
            all.push(message);
        }
        all
    }
}

impl Deref for RabbitMqServer {
    type Target = Broker;
    fn deref(&self) -> &Broker {
        &self.broker
    }
}

impl DerefMut for RabbitMqServer {
    fn deref_mut(&mut self) -> &mut Broker {
        &mut self.broker
    }
}
