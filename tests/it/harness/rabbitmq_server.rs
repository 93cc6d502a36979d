//! A RabbitMQ node of the test's own (Debian's `rabbitmq-server`, `broker.rs`), so a test
//! can kill and start its broker without touching the machine's: its own node name,
//! ports, database and logs in the broker's directory, no plugins. Started so the script
//! execs the Erlang VM itself (`RUNNING_UNDER_SYSTEMD`), so killing the child kills the
//! broker at once. A durable queue keeps confirmed persistent messages across a restart.
//! It lets in `guest`/`guest` from loopback, RabbitMQ's default.

use std::ops::{Deref, DerefMut};
use std::process::Command;

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use super::broker::Broker;
use super::process::free_addr;

pub struct RabbitMqServer {
    broker: Broker,
}

impl RabbitMqServer {
    pub async fn start() -> RabbitMqServer {
        let distribution = free_addr().port();
        let broker = Broker::start("rabbitmq-server", move |addr, dir| {
            let path = |name: &str| dir.join(name);
            // No plugins: an empty list, so the machine's enabled plugins stay its own.
            let _ = std::fs::write(path("enabled_plugins"), "[].");
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
        RabbitMqServer { broker }
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
