//! A Mosquitto broker of the test's own (Debian's `mosquitto`, `broker.rs`), so a test can
//! kill and start it without touching the machine's. It saves its state after every change
//! (`autosave_on_changes`), so a persistent session and what is queued for it survive a
//! kill. With credentials it lets in only that user, from a password file
//! `mosquitto_passwd` writes. It can serve TLS with a certificate of the test's own CA
//! (`tls.rs`). [`Subscriber`] is a consumer with rumqttc's MQTT 5 client.

use std::ops::{Deref, DerefMut};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

use std::path::PathBuf;

use super::broker::Broker;
use super::process::free_addr;
use super::tls::TestCa;

pub struct MosquittoServer {
    broker: Broker,
    credentials: Option<(String, String)>,
    /// With TLS on `addr`: the plaintext port the test's own consumers use.
    plain: Option<std::net::SocketAddr>,
}

impl MosquittoServer {
    /// Starts one, letting in only `user` with `password` when given.
    pub async fn start(credentials: Option<(&str, &str)>) -> MosquittoServer {
        Self::start_with(credentials, None).await
    }

    /// Starts one serving TLS on `addr` with a certificate `ca` issued for localhost (and
    /// plaintext on another port, for the test's own consumers).
    pub async fn start_tls(ca: &TestCa) -> MosquittoServer {
        let (cert, key) = ca.server_paths();
        ca.leaf().write(&cert, &key);
        Self::start_with(None, Some((cert, key))).await
    }

    async fn start_with(
        credentials: Option<(&str, &str)>,
        tls: Option<(PathBuf, PathBuf)>,
    ) -> MosquittoServer {
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        let required = credentials.clone();
        let plain = tls.as_ref().map(|_| free_addr());
        let broker = Broker::start("mosquitto", move |addr, dir| {
            let mut config = format!(
                "user root\npersistence true\npersistence_location {}/\nautosave_on_changes true\nautosave_interval 1\nlistener {} 127.0.0.1\n",
                dir.display(),
                addr.port()
            );
            if let (Some((cert, key)), Some(plain)) = (&tls, plain) {
                config += &format!(
                    "certfile {}\nkeyfile {}\nlistener {} 127.0.0.1\n",
                    cert.display(),
                    key.display(),
                    plain.port()
                );
            }
            match &required {
                Some((user, password)) => {
                    let file = dir.join("passwords");
                    let written = Command::new("mosquitto_passwd")
                        .args(["-b", "-c"])
                        .arg(&file)
                        .args([user, password])
                        .status()
                        .expect("mosquitto_passwd (apt-get install mosquitto)");
                    assert!(written.success(), "mosquitto_passwd failed");
                    config += &format!(
                        "allow_anonymous false\npassword_file {}\n",
                        file.display()
                    );
                }
                None => config += "allow_anonymous true\n",
            }
            let path = dir.join("mosquitto.conf");
            std::fs::write(&path, config).expect("mosquitto.conf");
            let mut command = Command::new("mosquitto");
            command.arg("-c").arg(path);
            command
        })
        .await;
        MosquittoServer {
            broker,
            credentials,
            plain,
        }
    }

    /// `mqtts://localhost:PORT/TOPIC`, its TLS address by the certificate's name.
    pub fn tls_url(&self, topic: &str) -> String {
        format!("mqtts://localhost:{}/{topic}", self.addr.port())
    }

    /// `mqtt://[user:password@]127.0.0.1:PORT/TOPIC`.
    pub fn url(&self, topic: &str) -> String {
        let auth = self
            .credentials
            .as_ref()
            .map(|(u, p)| format!("{u}:{p}@"))
            .unwrap_or_default();
        format!("mqtt://{auth}{}/{topic}", self.addr)
    }

    /// A consumer subscribed to `topic` at QoS 1 with a persistent session, once the
    /// broker has confirmed the subscription.
    pub async fn subscribe(&self, topic: &str) -> Subscriber {
        let id = format!("consumer-{}", rand::random::<u32>());
        let port = self.plain.unwrap_or(self.addr).port();
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_clean_start(false)
            .set_session_expiry_interval(Some(3600))
            .set_keep_alive(Duration::from_secs(5));
        if let Some((user, password)) = &self.credentials {
            options.set_credentials(user.clone(), password.clone());
        }
        let (client, mut events) = AsyncClient::new(options, 64);
        let received = Arc::new(Mutex::new(Vec::new()));
        let (subscribed, mut confirmed) = tokio::sync::watch::channel(false);
        let (topic, into) = (topic.to_owned(), received.clone());
        let task = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    // Every (re)connection subscribes again, in case the session is new.
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.subscribe(topic.clone(), QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed.send(true);
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        into.lock().expect("received").push(publish);
                    }
                    Ok(_) => {}
                    // The broker is down: the next poll reconnects.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), confirmed.wait_for(|s| *s))
            .await
            .expect("subscribed in time")
            .expect("subscribed");
        Subscriber { received, task }
    }
}

/// A consumer's messages so far; it stops with the value.
pub struct Subscriber {
    received: Arc<Mutex<Vec<rumqttc::v5::mqttbytes::v5::Publish>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// Waits (up to 20 s) until `n` messages arrived, and returns them all.
    pub async fn wait(&self, n: usize) -> Vec<rumqttc::v5::mqttbytes::v5::Publish> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received.lock().expect("received").clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Deref for MosquittoServer {
    type Target = Broker;
    fn deref(&self) -> &Broker {
        &self.broker
    }
}

impl DerefMut for MosquittoServer {
    fn deref_mut(&mut self) -> &mut Broker {
        &mut self.broker
    }
}
