//! (17) Message buses as the destination: one webhook's rate and CPU per delivery to a
//! NATS JetStream stream, a Redis stream, a RabbitMQ queue and an MQTT subscriber, next to
//! the HTTP sink in the same run (rounds alternated), each broker's CPU counted in; and
//! each broker's own rate for the same publishes with 32 awaiting their acknowledgement at
//! once, the physical limit hookline's rate is a share of. Uses the machine's NATS
//! (JetStream) on 127.0.0.1:4222, Redis on 6379, RabbitMQ on 5672 (guest) and Mosquitto
//! on 1883; a broker that is not there is skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

use hookline::store::{self, Webhook};

use super::formats::{Arrivals, Rounds, none, round, summary};
use super::{Error, Scale, Sink, cpu_of};

const REDIS: &str = "redis://127.0.0.1:6379/0";
const RABBITMQ: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const MQTT_PORT: u16 = 1883;
const TOPIC: &str = "hookline/bench";
const NATS: &str = "127.0.0.1:4222";
const KEY: &str = "hookline-bench";
const SUBJECT: &str = "hookline.bench";
const STREAM: &str = "HOOKLINE_BENCH";
const ROUNDS: usize = 3;
/// The payload size of the brokers' own rate, about a CloudEvents body's.
const PAYLOAD: usize = 1_000;

fn redis_cpu() -> f64 {
    cpu_of("redis-server")
}

fn nats_cpu() -> f64 {
    cpu_of("nats-server")
}

fn rabbitmq_cpu() -> f64 {
    cpu_of("beam.smp")
}

fn mosquitto_cpu() -> f64 {
    cpu_of("mosquitto")
}

/// The bench's RabbitMQ exchange and durable queue `KEY` (bound by `KEY`) and a channel
/// to count and purge it; None when no RabbitMQ answers.
async fn rabbitmq() -> Option<(lapin::Connection, lapin::Channel)> {
    let connection = lapin::Connection::connect(RABBITMQ, Default::default())
        .await
        .ok()?;
    let channel = connection.create_channel().await.ok()?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let direct = lapin::ExchangeKind::Direct;
    let none = FieldTable::default;
    channel
        .exchange_declare(KEY.into(), direct, durable, none())
        .await
        .ok()?;
    let queue = QueueDeclareOptions::durable();
    channel
        .queue_declare(KEY.into(), queue, none())
        .await
        .ok()?;
    let bind = QueueBindOptions::default();
    channel
        .queue_bind(KEY.into(), KEY.into(), KEY.into(), bind, none())
        .await
        .ok()?;
    Some((connection, channel))
}

/// RabbitMQ's own rate: `n` persistent, mandatory publishes from 32 tasks, each awaiting
/// its confirmation, on `channels` confirm channels (task `t` on channel `t % channels`).
async fn rabbitmq_rate(
    connection: &lapin::Connection,
    channels: usize,
    n: usize,
) -> Result<f64, Error> {
    let mut open = Vec::new();
    for _ in 0..channels {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        open.push(channel);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let channel = open[t % channels].clone();
        tasks.push(tokio::spawn(async move {
            let mandatory = BasicPublishOptions {
                mandatory: true,
                immediate: false,
            };
            let persistent = lapin::BasicProperties::default().with_delivery_mode(2);
            for _ in (t..n).step_by(32) {
                channel
                    .basic_publish(
                        KEY.into(),
                        KEY.into(),
                        mandatory,
                        &[b'x'; PAYLOAD],
                        persistent.clone(),
                    )
                    .await?
                    .await?;
            }
            Ok::<(), lapin::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// A QoS 1 subscriber to `TOPIC` on the machine's Mosquitto counting what arrives; None
/// when no broker answers.
async fn mqtt_subscriber() -> Option<(Arc<AtomicUsize>, tokio::task::JoinHandle<()>)> {
    let options = MqttOptions::new("hookline-bench-consumer", "127.0.0.1", MQTT_PORT);
    let (client, mut events) = AsyncClient::new(options, 64);
    let confirmed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client.subscribe(TOPIC, QoS::AtLeastOnce).await.ok()?;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => return Some(()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    });
    confirmed.await.ok()??;
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let task = tokio::spawn(async move {
        let _client = client;
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(_)) = event {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Some((count, task))
}

/// Mosquitto's own rate: `n` QoS 1 publishes with 32 awaiting their PUBACK at once.
async fn mqtt_rate(n: usize) -> Result<f64, Error> {
    let mut options = MqttOptions::new("hookline-bench-publisher", "127.0.0.1", MQTT_PORT);
    options.set_outgoing_inflight_upper_limit(32);
    let (client, mut events) = AsyncClient::new(options, 64);
    let started = Instant::now();
    let publisher = tokio::spawn(async move {
        for _ in 0..n {
            client
                .publish(TOPIC, QoS::AtLeastOnce, false, vec![b'x'; PAYLOAD])
                .await?;
        }
        Ok::<_, rumqttc::v5::ClientError>(client)
    });
    let mut acked = 0;
    while acked < n {
        if let Event::Incoming(Packet::PubAck(_)) = events.poll().await? {
            acked += 1;
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    publisher.await??;
    Ok(rate)
}

/// Redis's own rate: `n` XADDs from 32 tasks, each awaiting its answer.
async fn redis_rate(client: &redis::Client, n: usize) -> Result<f64, Error> {
    let key = format!("{KEY}-direct");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let mut c = client.get_multiplexed_async_connection().await?;
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..n).step_by(32) {
                redis::cmd("XADD")
                    .arg(&key)
                    .arg("*")
                    .arg("id")
                    .arg(i)
                    .arg("payload")
                    .arg(vec![b'x'; PAYLOAD])
                    .query_async::<String>(&mut c)
                    .await?;
            }
            Ok::<(), redis::RedisError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let mut c = client.get_multiplexed_async_connection().await?;
    redis::cmd("DEL")
        .arg(&key)
        .query_async::<()>(&mut c)
        .await?;
    Ok(rate)
}

/// JetStream's own rate: `n` publishes from 32 tasks, each awaiting its PubAck.
async fn nats_rate(context: &async_nats::jetstream::Context, n: usize) -> Result<f64, Error> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let context = context.clone();
        tasks.push(tokio::spawn(async move {
            for _ in (t..n).step_by(32) {
                context
                    .publish(SUBJECT, vec![b'x'; PAYLOAD].into())
                    .await?
                    .await?;
            }
            Ok::<(), async_nats::Error>(())
        }));
    }
    for task in tasks {
        task.await?.map_err(|e| e.to_string())?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    context.get_stream(STREAM).await?.purge().await?;
    Ok(rate)
}

/// (17) rows: HTTP, then each bus against it, then each broker alone.
pub async fn scenarios(
    backend: &str,
    scale: Scale,
    dir: &std::path::Path,
    sink_url: &str,
    sink: &Sink,
) -> Result<Vec<(String, String)>, Error> {
    let deliveries = scale.deliveries / 2;
    let webhook = Webhook {
        name: "bench bus".into(),
        format: "cloudevents".into(),
        ..Webhook::new("wh_bench_format", "acme", "", store::now_ms())
    };
    let redis = redis::Client::open(REDIS)?;
    let redis_up = redis.get_multiplexed_async_connection().await.is_ok();
    let nats = match async_nats::connect(NATS).await {
        Ok(client) => {
            let context = async_nats::jetstream::new(client);
            context
                .get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: STREAM.into(),
                    subjects: vec![SUBJECT.into()],
                    ..Default::default()
                })
                .await
                .ok()
                .map(|_| context)
        }
        Err(_) => None,
    };
    let rabbit = rabbitmq().await;
    let mqtt = mqtt_subscriber().await;
    let redis_url = format!("{REDIS}?stream={KEY}&maxlen={}", deliveries * 2);
    let nats_url = format!("nats://{NATS}/{SUBJECT}");
    let amqp_url = format!("amqp://guest:guest@127.0.0.1:5672/?exchange={KEY}&routing_key={KEY}");
    let mqtt_url = format!("mqtt://127.0.0.1:{MQTT_PORT}/{TOPIC}");
    let mut rows = Vec::new();
    let (mut to_http, mut to_redis, mut to_nats) = (Rounds::new(), Rounds::new(), Rounds::new());
    let (mut to_rabbit, mut to_mqtt) = (Rounds::new(), Rounds::new());
    for r in 0..ROUNDS {
        eprintln!(
            "[{backend}] HTTP / NATS / Redis / RabbitMQ / MQTT, round {}",
            r + 1
        );
        let http = Arrivals::Sink(sink_url, sink);
        to_http.push(
            round(
                backend,
                dir,
                &("http", webhook.clone()),
                &http,
                deliveries,
                r,
                none,
            )
            .await?,
        );
        if let Some(context) = &nats {
            let stream = Arrivals::JetStream(&nats_url, context, STREAM);
            let bus = ("nats", webhook.clone());
            to_nats.push(round(backend, dir, &bus, &stream, deliveries, r, nats_cpu).await?);
        }
        if redis_up {
            let stream = Arrivals::Stream(&redis_url, &redis, KEY);
            let bus = ("redis", webhook.clone());
            to_redis.push(round(backend, dir, &bus, &stream, deliveries, r, redis_cpu).await?);
        }
        if let Some((_, channel)) = &rabbit {
            let queue = Arrivals::Queue(&amqp_url, channel, KEY);
            let bus = ("amqp", webhook.clone());
            to_rabbit.push(round(backend, dir, &bus, &queue, deliveries, r, rabbitmq_cpu).await?);
        }
        if let Some((count, _)) = &mqtt {
            let topic = Arrivals::Counted(&mqtt_url, count);
            let bus = ("mqtt", webhook.clone());
            to_mqtt.push(round(backend, dir, &bus, &topic, deliveries, r, mosquitto_cpu).await?);
        }
    }
    let (http_rate, http_cpu, _, http_each) = summary(&to_http);
    rows.push((
        format!("(17) one webhook to the HTTP sink, {deliveries} deliveries, {ROUNDS} rounds"),
        format!("median {http_rate:.0} deliveries/s, {http_cpu:.3} ms CPU per delivery; rounds: {http_each}"),
    ));
    let buses: [(&str, &Rounds, bool); 4] = [
        ("a NATS JetStream stream", &to_nats, nats.is_some()),
        ("a Redis stream", &to_redis, redis_up),
        ("a RabbitMQ queue (confirmed)", &to_rabbit, rabbit.is_some()),
        ("an MQTT 5 subscriber (QoS 1)", &to_mqtt, mqtt.is_some()),
    ];
    for (name, rounds, up) in buses {
        if !up {
            rows.push((
                format!("(17) the same to {name}"),
                "skipped: no broker on this machine".into(),
            ));
            continue;
        }
        let (rate, cpu, broker, each) = summary(rounds);
        rows.push((
            format!("(17) the same to {name}"),
            format!(
                "median {rate:.0} deliveries/s ({:+.0} % vs HTTP), {cpu:.3} ms CPU per delivery ({:+.0} % vs HTTP) and the broker's {broker:.3} ms apart; rounds: {each}",
                100.0 * (rate / http_rate - 1.0),
                100.0 * (cpu / http_cpu - 1.0)
            ),
        ));
    }
    if let Some(context) = &nats {
        let direct = nats_rate(context, deliveries).await?;
        let (rate, _, _, _) = summary(&to_nats);
        rows.push((
            "(17) JetStream alone: publishes from 32 client tasks, each awaiting its PubAck".into(),
            format!(
                "{direct:.0} messages/s; hookline delivers at {:.0} % of it",
                100.0 * rate / direct
            ),
        ));
    }
    if redis_up {
        let direct = redis_rate(&redis, deliveries).await?;
        let (rate, _, _, _) = summary(&to_redis);
        rows.push((
            "(17) Redis alone: XADD from 32 client tasks, each awaiting its answer".into(),
            format!(
                "{direct:.0} entries/s; hookline delivers at {:.0} % of it",
                100.0 * rate / direct
            ),
        ));
    }
    if let Some((connection, channel)) = &rabbit {
        let (rate, _, _, _) = summary(&to_rabbit);
        for (channels, how) in [
            (32, "each on its own channel"),
            (1, "on one channel, as hookline publishes to one exchange"),
        ] {
            let direct = rabbitmq_rate(connection, channels, deliveries).await?;
            channel.queue_purge(KEY.into(), Default::default()).await?;
            rows.push((
                format!("(17) RabbitMQ alone: persistent publishes from 32 client tasks awaiting their confirms, {how}"),
                format!(
                    "{direct:.0} messages/s; hookline delivers at {:.0} % of it",
                    100.0 * rate / direct
                ),
            ));
        }
    }
    if let Some((_, subscriber)) = mqtt {
        let direct = mqtt_rate(deliveries).await?;
        subscriber.abort();
        let (rate, _, _, _) = summary(&to_mqtt);
        rows.push((
            "(17) Mosquitto alone: QoS 1 publishes, 32 awaiting their PUBACK at once".into(),
            format!(
                "{direct:.0} messages/s; hookline delivers at {:.0} % of it",
                100.0 * rate / direct
            ),
        ));
    }
    Ok(rows)
}
