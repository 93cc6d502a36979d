//! `hookline listen`: a local receiver for trying hookline out and for small setups.
//!
//! Verifies every request's Standard Webhooks signature (401 with a JSON reason
//! otherwise: missing headers, stale timestamp, bad signature), prints one line per event
//! (`--output json`: one JSON object per line), and with `--exec` runs a command per event
//! with the payload on stdin and key fields in `HOOKLINE_*` variables. The command runs
//! directly, never through a shell (pass `sh -c '…'` yourself for one), one at a time,
//! bounded by `--exec-timeout`; a redelivery of a `webhook-id` already seen is answered
//! 2xx and not run again. Loopback unless `--bind` says otherwise; the secret is a
//! [`Secret`] and never printed.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use clap::Args;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod summary;

use self::summary::{Summary, summarize};
use super::Output;
use crate::config::HumanDuration;
use crate::dispatch::sign;
use crate::secret::{Secret, constant_time_eq};

/// How many delivery ids are remembered to skip redeliveries.
const REMEMBERED: usize = 10_000;
/// Events waiting for `--exec` at most; beyond that hookline is told to retry later.
const EXEC_QUEUE: usize = 64;

/// `hookline listen …`
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Address to bind; loopback unless you mean to accept deliveries from elsewhere.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// The webhook's signing secret (`whsec_…`), as `webhooks create` printed it.
    #[arg(long, env = "HOOKLINE_LISTEN_SECRET", hide_env_values = true)]
    secret: Secret,
    /// Command to run for each event, e.g. `./deploy.sh --fast`; split into words (quotes
    /// group), run without a shell. Payload on stdin; HOOKLINE_EVENT_TYPE, HOOKLINE_REPOSITORY,
    /// HOOKLINE_TAG, HOOKLINE_DIGEST, HOOKLINE_IMAGE, HOOKLINE_DELIVERY_ID… in the environment.
    #[arg(long, value_name = "CMD", value_parser = parse_command)]
    exec: Option<CommandLine>,
    /// Longest a command may run before it is killed.
    #[arg(long, default_value = "60s")]
    exec_timeout: HumanDuration,
    /// Largest accepted difference between a delivery's timestamp and this clock.
    #[arg(long, default_value = "5m")]
    tolerance: HumanDuration,
    /// Output format of the event lines on stdout.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// Why a request was refused; the `reason` of the 401 body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Some `webhook-*` headers are absent.
    MissingHeaders(Vec<&'static str>),
    /// `webhook-timestamp` is not Unix seconds.
    BadTimestamp,
    /// The timestamp is further from now than the tolerance (a replay, or a wrong clock).
    StaleTimestamp(i64),
    /// No `v1,` signature matches the body under the secret.
    BadSignature,
}

impl Refusal {
    fn code(&self) -> &'static str {
        match self {
            Refusal::MissingHeaders(_) => "missing_headers",
            Refusal::BadTimestamp => "bad_timestamp",
            Refusal::StaleTimestamp(_) => "stale_timestamp",
            Refusal::BadSignature => "bad_signature",
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::MissingHeaders(names) => format!("missing header(s): {}", names.join(", ")),
            Refusal::BadTimestamp => "webhook-timestamp is not Unix seconds".into(),
            Refusal::StaleTimestamp(age) => format!(
                "stale webhook-timestamp: {}s away from this machine's clock (a replay, or a clock is wrong)",
                age.abs()
            ),
            Refusal::BadSignature => {
                "no webhook-signature matches this body under the secret (wrong secret, or the body was changed)".into()
            }
        }
    }
}

/// Checks a request's Standard Webhooks signature; returns its `webhook-id`.
pub(crate) fn verify(
    key: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<String, Refusal> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let names = ["webhook-id", "webhook-timestamp", "webhook-signature"];
    let missing: Vec<&'static str> = names.into_iter().filter(|n| get(n).is_none()).collect();
    if !missing.is_empty() {
        return Err(Refusal::MissingHeaders(missing));
    }
    let (id, timestamp, signatures) = (
        get(names[0]).unwrap_or_default(),
        get(names[1]).unwrap_or_default(),
        get(names[2]).unwrap_or_default(),
    );
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Refusal::BadTimestamp)?;
    if (now - timestamp).abs() > tolerance {
        return Err(Refusal::StaleTimestamp(now - timestamp));
    }
    let expected = sign::sign(key, id, timestamp, body);
    let ok = signatures
        .split(' ')
        .filter(|s| s.starts_with("v1,"))
        .any(|s| constant_time_eq(s.as_bytes(), expected.as_bytes()));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(Refusal::BadSignature)
    }
}

/// `--exec`, split into a program and its arguments.
#[derive(Debug, Clone)]
struct CommandLine(Vec<String>);

fn parse_command(text: &str) -> Result<CommandLine, String> {
    split_command(text).map(CommandLine)
}

/// Splits `--exec` into words like a shell would, but with no expansion of any kind:
/// whitespace separates, `'…'` and `"…"` group (`\` escapes inside `"…"` and outside).
pub(crate) fn split_command(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unclosed ' quote".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => w.push(chars.next().ok_or("unclosed \" quote")?),
                        Some(c) => w.push(c),
                        None => return Err("unclosed \" quote".into()),
                    }
                }
            }
            '\\' => word
                .get_or_insert_with(String::new)
                .push(chars.next().ok_or("nothing after \\")?),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    if words.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(words)
}

/// One event waiting for `--exec`.
struct Job {
    delivery_id: String,
    summary: Summary,
    body: Bytes,
}

struct Listener {
    key: Vec<u8>,
    tolerance: i64,
    output: Output,
    exec: Option<mpsc::Sender<Job>>,
    /// Delivery ids already handled, oldest first.
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl Listener {
    /// Remembers `id`; false if it was already there.
    fn first_time(&self, id: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.0.insert(id.to_owned()) {
            return false;
        }
        seen.1.push_back(id.to_owned());
        if seen.1.len() > REMEMBERED
            && let Some(old) = seen.1.pop_front()
        {
            seen.0.remove(&old);
        }
        true
    }

    fn forget(&self, id: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.0.remove(id);
        seen.1.retain(|s| s != id);
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn receive(
    State(l): State<Arc<Listener>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "hookline listen accepts POST deliveries only"}),
        );
    }
    let now = crate::store::now_ms() / 1000;
    let delivery_id = match verify(&l.key, &headers, &body, now, l.tolerance) {
        Ok(id) => id,
        Err(refusal) => {
            eprintln!("refused a request: {}", refusal.message());
            return reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": refusal.message(), "reason": refusal.code()}),
            );
        }
    };
    if !l.first_time(&delivery_id) {
        eprintln!("{delivery_id}: already handled (a redelivery); not run again");
        return reply(StatusCode::OK, json!({"ok": true, "duplicate": true}));
    }
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let summary = summarize(&payload);
    print_event(l.output, &delivery_id, &summary, &payload);
    if let Some(exec) = &l.exec {
        let job = Job {
            delivery_id: delivery_id.clone(),
            summary,
            body,
        };
        if exec.try_send(job).is_err() {
            l.forget(&delivery_id);
            eprintln!("{delivery_id}: too many events waiting for --exec; hookline will retry");
            let mut response = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "busy running --exec; retry later"}),
            );
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("5"));
            return response;
        }
    }
    reply(StatusCode::OK, json!({"ok": true}))
}

fn print_event(output: Output, delivery_id: &str, s: &Summary, payload: &Value) {
    let now = crate::dispatch::payload::rfc3339(crate::store::now_ms());
    let line = match output {
        Output::Json => json!({
            "received_at": now,
            "delivery_id": delivery_id,
            "format": s.format,
            "type": s.event_type,
            "event_id": s.event_id,
            "registry": s.registry,
            "repository": s.repository,
            "tag": s.tag,
            "digest": s.digest,
            "image": s.image,
            "payload": payload,
        })
        .to_string(),
        Output::Table => {
            let what = if s.image.is_empty() {
                &s.repository
            } else {
                &s.image
            };
            format!(
                "{now}  {:<14}  {what}  ({}, {delivery_id})",
                s.event_type, s.format
            )
        }
    };
    // One write per line, so lines never interleave; a closed stdout (`| head`) is not
    // a reason to stop receiving.
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

/// Runs `--exec` once per job, one at a time.
async fn run_commands(argv: Vec<String>, timeout: Duration, mut jobs: mpsc::Receiver<Job>) {
    while let Some(job) = jobs.recv().await {
        let s = &job.summary;
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env("HOOKLINE_DELIVERY_ID", &job.delivery_id)
            .env("HOOKLINE_EVENT_ID", &s.event_id)
            .env("HOOKLINE_EVENT_TYPE", &s.event_type)
            .env("HOOKLINE_FORMAT", s.format)
            .env("HOOKLINE_REGISTRY", &s.registry)
            .env("HOOKLINE_REPOSITORY", &s.repository)
            .env("HOOKLINE_TAG", &s.tag)
            .env("HOOKLINE_DIGEST", &s.digest)
            .env("HOOKLINE_IMAGE", &s.image)
            .stdin(Stdio::piped())
            // Our stdout carries event lines only (scripts parse it): the command's goes to stderr.
            .stdout(stderr_stdio())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                eprintln!("{}: cannot run {:?}: {error}", job.delivery_id, argv[0]);
                continue;
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input closes the pipe; that is fine.
            let _ = stdin.write_all(&job.body).await;
        }
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => eprintln!("{}: command {status}", job.delivery_id),
            Ok(Err(error)) => eprintln!("{}: command failed: {error}", job.delivery_id),
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                eprintln!(
                    "{}: command killed after {}",
                    job.delivery_id,
                    humantime::format_duration(timeout)
                );
            }
        }
    }
}

/// Where a command's stdout goes: our stderr (inherited when it cannot be duplicated).
fn stderr_stdio() -> Stdio {
    use std::os::fd::AsFd;
    std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::inherit())
}

/// Runs the receiver until `shutdown`.
pub async fn run(args: ListenArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let key = sign::secret_key(&args.secret)
        .context("--secret (or HOOKLINE_LISTEN_SECRET) must be the webhook's `whsec_…` secret")?;
    let exec = args.exec.map(|CommandLine(argv)| {
        let (sender, jobs) = mpsc::channel(EXEC_QUEUE);
        tokio::spawn(run_commands(argv, args.exec_timeout.0, jobs));
        sender
    });
    let listener = Arc::new(Listener {
        key,
        tolerance: i64::try_from(args.tolerance.0.as_secs()).unwrap_or(i64::MAX),
        output: args.output,
        exec,
        seen: Mutex::new(Default::default()),
    });
    let addr = SocketAddr::new(args.bind, args.port);
    let socket = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let addr = socket.local_addr()?;
    eprintln!("listening on http://{addr}/ (any path); verifying Standard Webhooks signatures");
    let app = axum::Router::new().fallback(receive).with_state(listener);
    axum::serve(socket, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("serving")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn signed(body: &[u8], ts: i64) -> HeaderMap {
        let key = sign::secret_key(&Secret::new(SECRET)).expect("key");
        let mut h = HeaderMap::new();
        h.insert("webhook-id", "dlv_1".parse().expect("v"));
        h.insert("webhook-timestamp", ts.to_string().parse().expect("v"));
        let sig = format!("v1,bm9wZQ== {}", sign::sign(&key, "dlv_1", ts, body));
        h.insert("webhook-signature", sig.parse().expect("v"));
        h
    }

    #[test]
    fn verification_says_why_it_refuses() {
        let key = sign::secret_key(&Secret::new(SECRET)).expect("key");
        let body = br#"{"type":"image.pushed"}"#;
        let h = signed(body, 1000);
        assert_eq!(verify(&key, &h, body, 1000, 300), Ok("dlv_1".into()));
        assert_eq!(
            verify(&key, &h, b"{}", 1000, 300),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify(&key, &h, body, 1301, 300),
            Err(Refusal::StaleTimestamp(301))
        );
        assert_eq!(
            verify(b"other key", &h, body, 1000, 300),
            Err(Refusal::BadSignature)
        );
        let mut partial = h.clone();
        partial.remove("webhook-signature");
        partial.remove("webhook-id");
        assert_eq!(
            verify(&key, &partial, body, 1000, 300),
            Err(Refusal::MissingHeaders(vec![
                "webhook-id",
                "webhook-signature"
            ]))
        );
        let mut bad = h;
        bad.insert("webhook-timestamp", "soon".parse().expect("v"));
        assert_eq!(
            verify(&key, &bad, body, 1000, 300),
            Err(Refusal::BadTimestamp)
        );
    }

    #[test]
    fn commands_split_without_a_shell() {
        assert_eq!(
            split_command(r#"sh -c 'echo "$HOOKLINE_TAG" > out'"#),
            Ok(vec![
                "sh".into(),
                "-c".into(),
                r#"echo "$HOOKLINE_TAG" > out"#.into()
            ])
        );
        assert_eq!(
            split_command(r#"./deploy.sh  "a b" c\ d '' "#),
            Ok(vec![
                "./deploy.sh".into(),
                "a b".into(),
                "c d".into(),
                String::new()
            ])
        );
        assert!(split_command("echo 'open").is_err());
        assert!(split_command("   ").is_err());
    }

    #[test]
    fn redeliveries_are_remembered() {
        let l = Listener {
            key: vec![1],
            tolerance: 300,
            output: Output::Table,
            exec: None,
            seen: Mutex::new(Default::default()),
        };
        assert!(l.first_time("a"));
        assert!(!l.first_time("a"));
        l.forget("a");
        assert!(l.first_time("a"));
    }
}
