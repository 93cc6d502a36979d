//! An HTTP proxy of the test's own: Debian's `tinyproxy` on a free port, with its access
//! log in its directory (every `CONNECT` and absolute-form request it was asked for, by
//! the address it was given), optionally requiring Basic credentials.

use std::ops::Deref;
use std::process::Command;

use super::broker::Broker;

pub struct Tinyproxy {
    broker: Broker,
    credentials: Option<(String, String)>,
}

impl Tinyproxy {
    /// Starts one, letting in only `user` with `password` when given.
    pub async fn start(credentials: Option<(&str, &str)>) -> Tinyproxy {
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        let auth = credentials.clone();
        let broker = Broker::start("tinyproxy", move |addr, dir| {
            let mut config = format!(
                "Port {}\nListen 127.0.0.1\nTimeout 30\nMaxClients 200\nAllow 127.0.0.1\nLogLevel Connect\nLogFile \"{}\"\n",
                addr.port(),
                dir.join("access.log").display()
            );
            if let Some((user, password)) = &auth {
                config += &format!("BasicAuth {user} {password}\n");
            }
            let path = dir.join("tinyproxy.conf");
            std::fs::write(&path, config).expect("tinyproxy.conf");
            let mut command = Command::new("tinyproxy");
            command.arg("-d").arg("-c").arg(path);
            command
        })
        .await;
        Tinyproxy {
            broker,
            credentials,
        }
    }

    /// `http://127.0.0.1:PORT`, without credentials.
    pub fn anonymous_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://[user:password@]127.0.0.1:PORT`, with `password` instead of its own when given.
    pub fn url_with(&self, password: Option<&str>) -> String {
        let auth = self
            .credentials
            .as_ref()
            .map(|(u, p)| format!("{u}:{}@", password.unwrap_or(p)))
            .unwrap_or_default();
        format!("http://{auth}{}", self.addr)
    }

    /// The request lines it logged (`CONNECT 127.0.0.1:PORT HTTP/1.1`, `POST http://…`).
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir().join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| line.split_once("): ").map(|(_, request)| request))
            .filter(|request| request.ends_with("HTTP/1.1") || request.ends_with("HTTP/1.0"))
            .map(str::to_owned)
            .collect()
    }
}

impl Deref for Tinyproxy {
    type Target = Broker;
    fn deref(&self) -> &Broker {
        &self.broker
    }
}
