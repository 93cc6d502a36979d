//! No broker password in any log line, error, metric or listing: webhooks to a Redis
//! stream, a JetStream stream and an MQTT topic with the right passwords, and to Redis and
//! RabbitMQ with wrong ones, created and read through the CLI, delivered (or refused) by
//! the real binary logging at `debug` for every crate (redis, async-nats, lapin and
//! rumqttc included). Then scans the server log, every CLI output but create's (which
//! shows the URL once, to its owner), every attempt's error and the metrics text.

use std::time::{Duration, Instant};

use super::push;
use super::secrets::{cli, debug_server, excerpt, mint_token};
use crate::harness::db::{Backend, TestDb};
use crate::harness::mosquitto_server::MosquittoServer;
use crate::harness::nats_server::NatsServer;
use crate::harness::rabbitmq_server::RabbitMqServer;
use crate::harness::redis_server::RedisServer;

const REDIS_PASSWORD: &str = "redisSECRETpass41c2";
const WRONG_REDIS_PASSWORD: &str = "redisSECRETwrong9d07";
const NATS_PASSWORD: &str = "natsSECRETpass6b1e";
const MQTT_PASSWORD: &str = "mqttSECRETpass2f88";
const WRONG_AMQP_PASSWORD: &str = "amqpSECRETwrong73a5";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_broker_password_reaches_a_log_an_error_a_metric_or_a_listing() {
    let db = TestDb::new(Backend::Sqlite).await;
    let redis = RedisServer::start(Some(REDIS_PASSWORD)).await;
    let nats = NatsServer::start(Some(("hookline", NATS_PASSWORD))).await;
    let mut stream = nats.stream("IMAGES", &["registry.images"]).await;
    let mosquitto = MosquittoServer::start(Some(("hookline", MQTT_PASSWORD))).await;
    let subscriber = mosquitto.subscribe("registry/images").await;
    let rabbit = RabbitMqServer::start().await;
    rabbit.bind("registry", "images", "pushed").await;

    let (mut server, api_addr, ingest_addr) =
        debug_server(&db, crate::harness::server::REGISTRY_TOKEN).await;
    let api = format!("http://{api_addr}");
    let (token, _) = mint_token(&db);

    let wrong_redis = redis
        .url("images")
        .replace(REDIS_PASSWORD, WRONG_REDIS_PASSWORD);
    let wrong_rabbit = rabbit
        .url("registry", "pushed")
        .replace("guest:guest", &format!("guest:{WRONG_AMQP_PASSWORD}"));
    let urls = [
        redis.url("images"),
        nats.url("registry.images"),
        mosquitto.url("registry/images"),
        wrong_redis,
        wrong_rabbit,
    ];
    let mut scanned: Vec<String> = Vec::new();
    let mut ids = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let name = format!("bus-{i}");
        let args = [
            "webhooks", "create", "--name", &name, "--url", url, "--output", "json",
        ];
        let (ok, created, stderr) = cli(&api, &token, &args);
        assert!(ok, "{url}: {stderr}");
        scanned.push(stderr);
        let created: serde_json::Value = serde_json::from_str(&created).expect("json");
        ids.push(created["webhook"]["id"].as_str().expect("id").to_owned());
    }
    for args in [
        vec!["webhooks", "list", "--output", "json"],
        vec!["webhooks", "list"],
        vec!["webhooks", "get", &ids[0]],
        vec!["webhooks", "get", &ids[4], "--output", "json"],
    ] {
        let (ok, stdout, stderr) = cli(&api, &token, &args);
        assert!(ok, "{stderr}");
        assert!(stdout.contains("…redacted@"), "{stdout}");
        scanned.push(stdout);
        scanned.push(stderr);
    }

    let notify = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("http://{ingest_addr}/v1/notify"))
        .header(
            "content-type",
            "application/vnd.docker.distribution.events.v1+json",
        )
        .bearer_auth(crate::harness::server::REGISTRY_TOKEN)
        .body(push("acme/app", "v1"))
        .send()
        .await
        .expect("notify");
    assert_eq!(notify.status().as_u16(), 200);

    // The right passwords deliver; the wrong ones fail, final, with a reason.
    subscriber.wait(1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, stdout, stderr) = cli(
            &api,
            &token,
            &[
                "deliveries",
                "list",
                "--status",
                "failed",
                "--status",
                "succeeded",
                "--output",
                "json",
            ],
        );
        assert!(ok, "{stderr}");
        let listed: serde_json::Value = serde_json::from_str(&stdout).expect("json");
        let settled = listed.as_array().map_or(0, Vec::len);
        if settled == urls.len() {
            scanned.push(stdout);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{settled} settled: {stdout}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
    let entries: usize = redis::cmd("XLEN")
        .arg("images")
        .query_async(
            &mut redis
                .client()
                .get_multiplexed_async_connection()
                .await
                .expect("redis"),
        )
        .await
        .expect("xlen");
    assert_eq!(entries, 1);
    let (ok, stdout, stderr) = cli(&api, &token, &["deliveries", "list", "--output", "json"]);
    assert!(ok, "{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    for delivery in listed.as_array().expect("deliveries") {
        let id = delivery["id"].as_str().expect("id");
        let (ok, stdout, stderr) =
            cli(&api, &token, &["deliveries", "get", id, "--output", "json"]);
        assert!(ok, "{stderr}");
        scanned.push(stdout);
        scanned.push(stderr);
    }

    let metrics = reqwest::get(format!("http://{ingest_addr}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("hookline_attempts_total"), "{metrics}");
    scanned.push(metrics);
    server.sigterm();
    assert!(server.wait_exit(Duration::from_secs(20)).await.success());
    let log = server.log();
    assert!(log.contains("DEBUG"), "the log was captured at debug level");
    scanned.push(log);

    let passwords = [
        REDIS_PASSWORD,
        WRONG_REDIS_PASSWORD,
        NATS_PASSWORD,
        MQTT_PASSWORD,
        WRONG_AMQP_PASSWORD,
    ];
    for (i, haystack) in scanned.iter().enumerate() {
        for password in passwords {
            assert!(
                !haystack.contains(password),
                "`{password}` found in scanned text #{i}:\n{}",
                excerpt(haystack, password)
            );
        }
    }
    db.finish().await;
}
