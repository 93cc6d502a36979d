//! A headless Chromium driven over WebDriver, for the web console's browser tests.
//!
//! `Browser::start` runs Debian's `chromedriver` on 127.0.0.1:<free port> and opens one
//! session of headless `/usr/bin/chromium` with a fresh profile in a temp dir, so tests in
//! parallel processes (nextest) never share a driver, a port or a profile. The page starts
//! as `about:blank` with a 1280x900 viewport. The fantoccini [`Client`] is reachable through
//! `Deref` (or [`Browser::client`]); the helpers below cover what console tests need most
//! and panic with the page's URL and text when a wait times out.
//!
//! Call [`Browser::close`] at the end of a test: it ends the WebDriver session, which makes
//! chromedriver quit Chromium cleanly. Drop cannot be async, so a `Browser` dropped without
//! `close` (a failed assertion, say) kills chromedriver instead, and Chromium, which talks
//! to chromedriver over a pipe (`--remote-debugging-pipe`), exits when the pipe closes.
//! Neither leaves the test's process group, so a test nextest kills on timeout takes both.
//!
//! Screenshots go to `<target dir>/console-screenshots/<name>.png`.
//!
//! ```ignore
//! let browser = Browser::start().await;
//! browser.goto(&format!("http://{addr}/console/")).await;
//! browser.wait_for("#save", WAIT).await.click().await.expect("click");
//! browser.wait_for_text(".flash", "Saved", WAIT).await;
//! browser.screenshot("console-webhooks-desktop").await;
//! browser.set_viewport(390, 844).await;
//! browser.screenshot("console-webhooks-phone").await;
//! browser.close().await;
//! ```
//!
//! Two things the chromium package does that tests must not depend on: its start-up page
//! is the default search engine's new-tab page (a network fetch that took seconds here,
//! delaying the first `goto`), hence the `about:blank` start-up preference below; and a
//! fresh profile's window of 1280x900 has a viewport of only 1280x757, hence the explicit
//! `set_viewport` in `start`.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// Where Debian's chromium package puts the browser (a shell wrapper around
/// /usr/lib/chromium/chromium that also sources /etc/chromium.d).
const CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian's chromium-driver package puts chromedriver; PATH is searched otherwise.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Bound on chromedriver answering `GET /status` after it was spawned.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on opening the session, which includes starting Chromium.
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on Chromium exiting after its session ended or chromedriver was killed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one harness HTTP call to chromedriver.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Poll period of `wait_for_text` (fantoccini's own waits poll every 250 ms).
const POLL: Duration = Duration::from_millis(100);
/// Lines of the chromedriver log quoted in a panic.
const LOG_LINES: usize = 40;
/// Characters of the page's text quoted in a panic.
const PAGE_TEXT_CHARS: usize = 2000;
/// How to install what this harness needs.
const INSTALL_HINT: &str =
    "apt-get install --no-install-recommends chromium chromium-driver, or run .ci/run";

/// A headless Chromium session behind its own chromedriver. See the module docs.
pub struct Browser {
    client: Client,
    /// Chromium's main process (`goog:processID`), awaited before the profile is removed.
    browser_pid: Option<u32>,
    /// chromedriver, spawned with `kill_on_drop`.
    driver: Child,
    /// Holds `chromedriver.log` and the Chromium profile (`profile/`).
    dir: TempDir,
}

impl Browser {
    /// Starts chromedriver on 127.0.0.1:<free port>, waits until it answers (at most 10 s),
    /// and opens a session of headless Chromium (fresh profile, `about:blank`, viewport
    /// 1280x900).
    ///
    /// Panics if chromedriver or chromium is not installed, or either fails to start.
    pub async fn start() -> Browser {
        let chromedriver = find_chromedriver();
        assert!(
            Path::new(CHROMIUM).exists(),
            "browser harness: {CHROMIUM} is missing; install chromium ({INSTALL_HINT})"
        );
        let dir = tempfile::Builder::new()
            .prefix("hookline-browser-")
            .tempdir()
            .expect("creating the browser temp dir");
        let log = dir.path().join("chromedriver.log");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(HTTP_TIMEOUT)
            .build()
            .expect("building the harness HTTP client");

        // The port is free when we pick it but may be taken before chromedriver binds it
        // (tests run in parallel): chromedriver then exits at once, and we pick another.
        let started = Instant::now();
        let mut ready = None;
        for _ in 0..5 {
            let addr = free_loopback_addr();
            let mut driver = spawn_driver(&chromedriver, addr, &log);
            if wait_driver_ready(&mut driver, addr, &http, &log).await {
                ready = Some((driver, addr));
                break;
            }
        }
        let Some((driver, addr)) = ready else {
            panic!("browser harness: no free port for chromedriver after 5 attempts");
        };
        let driver_ready = started.elapsed();

        let profile = dir.path().join("profile");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                    // Chromium exits when chromedriver does (the pipe closes); over the
                    // default --remote-debugging-port it would outlive a killed driver.
                    "--remote-debugging-pipe",
                ],
                // Start on about:blank, not on the new-tab page (see the module docs).
                "prefs": {
                    "session.restore_on_startup": 4,
                    "session.startup_urls": ["about:blank"],
                },
            }),
        );
        let url = format!("http://{addr}");
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let connect = builder.connect(&url);
        let client = match tokio::time::timeout(SESSION_TIMEOUT, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!(
                "browser harness: opening a Chromium session on {url}: {e}\n{}",
                log_tail(&log)
            ),
            Err(_) => panic!(
                "browser harness: no Chromium session on {url} within {SESSION_TIMEOUT:?}\n{}",
                log_tail(&log)
            ),
        };
        let browser_pid = client
            .capabilities()
            .and_then(|c| c.get("goog:processID"))
            .and_then(Value::as_u64)
            .and_then(|pid| u32::try_from(pid).ok());
        let browser = Browser {
            client,
            browser_pid,
            driver,
            dir,
        };
        browser.set_viewport(1280, 900).await;
        eprintln!(
            "browser harness: chromedriver on {addr} ready in {driver_ready:?}, \
             Chromium session ready after {:?}",
            started.elapsed()
        );
        browser
    }

    /// The fantoccini client (also reachable through `Deref`).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            panic!("browser harness: opening {url}: {e}");
        }
    }

    /// Saves a PNG of the viewport as `<target dir>/console-screenshots/<name>.png` and
    /// returns its path. The target dir is `$CARGO_TARGET_DIR` (relative to the package
    /// root) or the package's `target/`. Tests run in parallel: give each its own names.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        assert!(
            !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.'),
            "browser harness: a screenshot name is a plain file stem, got {name:?}"
        );
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("browser harness: taking screenshot {name}: {e}"));
        let dir = screenshot_dir();
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        // Write beside the target and rename, so a reader never sees half a PNG.
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        fs::write(&tmp, &png).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
        fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("saving {}: {e}", path.display()));
        path
    }

    /// Resizes the window so that the page's viewport (`innerWidth` x `innerHeight`) is
    /// `width` x `height` CSS pixels, e.g. 390x844 for a phone-width screenshot. The device
    /// pixel ratio and user agent stay desktop ones.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        // The window is larger than its viewport (in headless Chromium 156 by 143 px of
        // height, room for browser UI it does not draw): measure and correct once.
        let mut target = (width, height);
        for _ in 0..2 {
            if let Err(e) = self.client.set_window_size(target.0, target.1).await {
                panic!("browser harness: resizing the window to {target:?}: {e}");
            }
            let inner = self.inner_size().await;
            if inner == (width, height) {
                return;
            }
            target = (
                (target.0 + width).saturating_sub(inner.0),
                (target.1 + height).saturating_sub(inner.1),
            );
        }
        let inner = self.inner_size().await;
        assert_eq!(
            inner,
            (width, height),
            "browser harness: the viewport did not become {width}x{height}"
        );
    }

    /// Waits until an element matches `css` (polling every 250 ms, at most `timeout`) and
    /// returns it. Panics with the page's URL and text on timeout.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        match self
            .client
            .wait()
            .at_most(timeout)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "browser harness: no element matches `{css}` within {timeout:?}: {e}\n{}",
                self.describe_page().await
            ),
        }
    }

    /// Waits until the first element matching `css` has a text (as rendered, see WebDriver's
    /// "Get Element Text") that contains `text`, polling every 100 ms for at most `timeout`,
    /// and returns it. The element is looked up afresh on every poll, so a re-rendered one is
    /// fine. Panics with what the element last said on timeout.
    pub async fn wait_for_text(&self, css: &str, text: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("(no element matched)");
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => match element.text().await {
                    Ok(seen) if seen.contains(text) => return element,
                    Ok(seen) => last = format!("{seen:?}"),
                    Err(e) if e.is_stale_element_reference() => {}
                    Err(e) => panic!("browser harness: reading the text of `{css}`: {e}"),
                },
                Err(e) if e.is_no_such_element() => last = String::from("(no element matched)"),
                Err(e) => panic!("browser harness: looking for `{css}`: {e}"),
            }
            if Instant::now() >= deadline {
                panic!(
                    "browser harness: `{css}` did not contain {text:?} within {timeout:?}; \
                     last text: {last}\n{}",
                    self.describe_page().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Ends the WebDriver session, which makes chromedriver quit Chromium, then stops
    /// chromedriver. Call it at the end of every test; see the module docs.
    pub async fn close(mut self) {
        if let Err(e) = self.client.clone().close().await {
            panic!(
                "browser harness: closing the session: {e}\n{}",
                log_tail(&self.dir.path().join("chromedriver.log"))
            );
        }
        let _ = self.driver.start_kill();
        let _ = self.driver.wait().await;
        if let Some(pid) = self.browser_pid.take() {
            let deadline = Instant::now() + EXIT_TIMEOUT;
            while !process_gone(pid) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// `(innerWidth, innerHeight)` of the current page.
    async fn inner_size(&self) -> (u32, u32) {
        let size = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .unwrap_or_else(|e| panic!("browser harness: reading the viewport size: {e}"));
        let dim = |i: usize| {
            size.get(i)
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or_else(|| panic!("browser harness: unexpected viewport size {size}"))
        };
        (dim(0), dim(1))
    }

    /// The current URL and the start of the page's text, for panic messages.
    async fn describe_page(&self) -> String {
        let url = match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("(unknown: {e})"),
        };
        let text = match self
            .client
            .execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await
        {
            Ok(Value::String(text)) => text.chars().take(PAGE_TEXT_CHARS).collect(),
            Ok(other) => other.to_string(),
            Err(e) => format!("(unreadable: {e})"),
        };
        format!("--- page {url}, text:\n{text}")
    }
}

impl Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Kill chromedriver; Chromium follows once its pipe closes (well under a second).
        // Wait for that (blocking: Drop cannot await) so that the profile is not removed
        // under a running browser.
        let _ = self.driver.start_kill();
        if let Some(pid) = self.browser_pid.take() {
            let deadline = Instant::now() + EXIT_TIMEOUT;
            while !process_gone(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Whether process `pid` has exited (no longer exists, or is a zombie awaiting its reaper).
fn process_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may contain any.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// `/usr/bin/chromedriver`, else the first `chromedriver` on PATH.
fn find_chromedriver() -> PathBuf {
    let standard = PathBuf::from(CHROMEDRIVER);
    if standard.is_file() {
        return standard;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("chromedriver"))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "browser harness: chromedriver is not installed (neither {CHROMEDRIVER} \
                 nor on PATH); install chromium-driver ({INSTALL_HINT})"
            )
        })
}

fn free_loopback_addr() -> SocketAddr {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
}

/// Spawns `chromedriver --port=<port>` with its output (and Chromium's) in `log`, never in
/// the test's own stdout/stderr, which nextest would then see as leaked.
fn spawn_driver(chromedriver: &Path, addr: SocketAddr, log: &Path) -> Child {
    let log = File::create(log).expect("creating chromedriver.log");
    Command::new(chromedriver)
        .arg(format!("--port={}", addr.port()))
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .expect("cloning the chromedriver.log handle"),
        )
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "browser harness: spawning {}: {e} ({INSTALL_HINT})",
                chromedriver.display()
            )
        })
}

/// Waits until this chromedriver reports itself started on `addr` and `/status` says ready.
/// Returns false if it exited because the port was taken; panics on any other failure.
async fn wait_driver_ready(
    driver: &mut Child,
    addr: SocketAddr,
    http: &reqwest::Client,
    log: &Path,
) -> bool {
    let url = format!("http://{addr}/status");
    let started = format!("started successfully on port {}", addr.port());
    let deadline = Instant::now() + DRIVER_START_TIMEOUT;
    loop {
        if let Some(status) = driver.try_wait().expect("polling chromedriver") {
            let tail = log_tail(log);
            if tail.contains("port not available") || tail.contains("Address already in use") {
                return false;
            }
            panic!("browser harness: chromedriver exited ({status}) during start-up\n{tail}");
        }
        // Our own log line first: a parallel test's chromedriver that grabbed the same port
        // would answer /status too, while ours is about to exit.
        if read_lossy(log).contains(&started)
            && let Ok(response) = http.get(&url).send().await
            && let Ok(body) = response.bytes().await
            && let Ok(body) = serde_json::from_slice::<Value>(&body)
            && body["value"]["ready"] == Value::Bool(true)
        {
            return true;
        }
        if Instant::now() > deadline {
            let _ = driver.start_kill();
            panic!(
                "browser harness: chromedriver did not answer {url} within \
                 {DRIVER_START_TIMEOUT:?}\n{}",
                log_tail(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `$CARGO_TARGET_DIR/console-screenshots`, or the package's `target/console-screenshots`.
fn screenshot_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    };
    target.join("console-screenshots")
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The last lines of the chromedriver log, headed for a panic message.
fn log_tail(path: &Path) -> String {
    let text = read_lossy(path);
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "--- last {LOG_LINES} lines of {}:\n{}",
        path.display(),
        lines[lines.len().saturating_sub(LOG_LINES)..].join("\n")
    )
}
