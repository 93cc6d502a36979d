//! A real CNCF distribution registry (Debian `docker-registry` 2.8) for end-to-end tests.
//!
//! `Registry::start` runs `docker-registry serve` on 127.0.0.1 with storage in a temp dir
//! and one notification endpoint (hookline's notify URL plus its bearer token), the same
//! endpoint settings as `../shared/fixtures/distribution/README.md`. `push_image` builds a
//! tiny OCI image with `umoci` (rootless, no network) and pushes it with `skopeo`;
//! `delete_tag` deletes the tag's manifest, which is what makes 2.8 send a tag-delete event.
//! Events reach the endpoint asynchronously, after the push or delete has returned: wait
//! for them on the receiving side. Every wait is bounded and panics with the registry's
//! log. The registry process is killed when the `Registry` is dropped.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

/// Bound on the registry answering `GET /v2/` after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on each umoci step (all local file work).
const UMOCI_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one skopeo push of the tiny image.
const PUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one registry API call made by the harness itself.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of the registry log quoted in a panic.
const LOG_LINES: usize = 40;

/// A running registry on loopback. Killed (and its storage removed) on drop.
pub struct Registry {
    /// Where the registry listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    child: Child,
    /// Holds config.yml, registry.log, storage/ and per-push image scratch dirs.
    dir: TempDir,
    http: reqwest::Client,
    /// `user:password` skopeo pushes with, for a registry with token auth.
    push_creds: Option<String>,
}

/// The distribution `auth: token:` settings of a registry that needs a bearer token from
/// a token service (`harness::token_issuer`), and the user the harness pushes as.
pub struct TokenAuth {
    /// The token service URL.
    pub realm: String,
    /// `service` the registry names and the token's audience.
    pub service: String,
    /// The token's issuer.
    pub issuer: String,
    /// PEM certificate the token signatures chain to.
    pub rootcertbundle: std::path::PathBuf,
    /// `user:password` accepted by the token service.
    pub push_creds: String,
}

impl Registry {
    /// Start a registry on 127.0.0.1:<free port> with storage in a temp dir, deletes enabled,
    /// and a notifications endpoint `notify_url` sending `Authorization: Bearer <token>`,
    /// timeout 1s, threshold 5, backoff 1s, includereferences true. Waits until `/v2/` answers.
    pub async fn start(notify_url: &str, token: &str) -> Registry {
        Registry::start_with(notify_url, token, None).await
    }

    /// Like [`Registry::start`], but every request needs a bearer token from `auth`'s token
    /// service (pushes included: the harness pushes with `auth.push_creds`).
    pub async fn start_with_token_auth(
        notify_url: &str,
        token: &str,
        auth: &TokenAuth,
    ) -> Registry {
        Registry::start_with(notify_url, token, Some(auth)).await
    }

    async fn start_with(notify_url: &str, token: &str, auth: Option<&TokenAuth>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("hookline-registry-")
            .tempdir()
            .expect("creating the registry temp dir");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(HTTP_TIMEOUT)
            .build()
            .expect("building the harness HTTP client");

        // The port is free when we pick it but may be taken before the registry binds it
        // (tests run in parallel): then pick another.
        let config = dir.path().join("config.yml");
        let log = dir.path().join("registry.log");
        for _ in 0..5 {
            let addr = free_loopback_addr();
            fs::write(
                &config,
                config_yml(dir.path(), addr, notify_url, token, auth),
            )
            .expect("writing the registry config.yml");
            let mut child = spawn_registry(&config, &log);
            if wait_ready(&mut child, addr, &http, &log).await {
                return Registry {
                    addr,
                    child,
                    dir,
                    http,
                    push_creds: auth.map(|a| a.push_creds.clone()),
                };
            }
        }
        panic!("registry harness: no free port after 5 attempts");
    }

    /// Build a tiny OCI image with umoci (rootless, no network) and push it with skopeo
    /// to `<addr>/<repo>:<tag>` (tls verify off). Returns the pushed manifest digest (`sha256:…`).
    ///
    /// Each call builds a distinct image (its one file names repo, tag and a timestamp),
    /// so different tags get different digests. The registry then sends, one envelope
    /// each: a `push` for the layer blob and for the config blob (`mediaType`
    /// `application/octet-stream`, no tag), then a `push` for the manifest
    /// (`application/vnd.oci.image.manifest.v1+json`, with `tag` and two `references`).
    pub async fn push_image(&self, repo: &str, tag: &str) -> String {
        let work = tempfile::Builder::new()
            .prefix("image-")
            .tempdir_in(self.dir.path())
            .expect("creating an image scratch dir");
        let w = work.path();
        let layout = utf8(&w.join("layout"));
        let image = format!("{layout}:img");
        let bundle = w.join("bundle");
        let bundle_str = utf8(&bundle);

        for args in [
            &["init", "--layout", &layout][..],
            &["new", "--image", &image],
            &["unpack", "--rootless", "--image", &image, &bundle_str],
        ] {
            self.tool(w, "umoci", args, UMOCI_TIMEOUT).await;
        }
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("system clock is before 1970")
            .as_nanos();
        fs::write(
            bundle.join("rootfs").join("hookline-test"),
            format!("{repo}:{tag} {stamp}\n"),
        )
        .expect("writing the image's file");
        let repack = ["repack", "--image", &image, &bundle_str];
        self.tool(w, "umoci", &repack, UMOCI_TIMEOUT).await;

        let digest = self.skopeo_push(w, &[], &image, repo, tag).await;
        assert!(
            digest.starts_with("sha256:"),
            "registry harness: skopeo wrote an unexpected digest {digest:?}"
        );
        digest
    }

    /// Build a multi-platform image with umoci, one image per `platforms` entry
    /// (`(os, architecture)`, each config labelled `org.opencontainers.image.revision=
    /// <revision>`) and an OCI index listing them, then push it all with `skopeo copy
    /// --all` to `<addr>/<repo>:<tag>`. Returns (the index digest, the platform manifests'
    /// digests). The registry then sends a `push` per blob, one per platform manifest (by
    /// digest, no tag), and last the index's, with `tag`. Distinct revisions give
    /// distinct digests; the same layout pushed again gives the same ones.
    pub async fn push_multi_platform(
        &self,
        repo: &str,
        tag: &str,
        platforms: &[(&str, &str)],
        revision: &str,
    ) -> (String, Vec<String>) {
        let work = tempfile::Builder::new()
            .prefix("multi-")
            .tempdir_in(self.dir.path())
            .expect("creating an image scratch dir");
        let w = work.path();
        let layout = utf8(&w.join("layout"));
        self.tool(w, "umoci", &["init", "--layout", &layout], UMOCI_TIMEOUT)
            .await;
        let mut manifests = Vec::new();
        for (os, arch) in platforms {
            let image = format!("{layout}:{os}-{arch}");
            self.tool(w, "umoci", &["new", "--image", &image], UMOCI_TIMEOUT)
                .await;
            let label = format!("--config.label=org.opencontainers.image.revision={revision}");
            let config = [
                "config",
                "--image",
                &image,
                "--no-history",
                "--os",
                os,
                "--architecture",
                arch,
                "--created",
                "2026-12-01T00:00:00Z",
                &label,
            ];
            self.tool(w, "umoci", &config, UMOCI_TIMEOUT).await;
            manifests.push((format!("{os}-{arch}"), (*os, *arch)));
        }
        // umoci makes images, not indexes: write the index blob and name it in index.json.
        let index_path = w.join("layout/index.json");
        let mut layout_index: serde_json::Value =
            serde_json::from_slice(&fs::read(&index_path).expect("reading index.json"))
                .expect("index.json is JSON");
        let refs = layout_index["manifests"]
            .as_array()
            .expect("manifests")
            .clone();
        let mut children = Vec::new();
        for (name, (os, arch)) in &manifests {
            let descriptor = refs
                .iter()
                .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == name.as_str())
                .unwrap_or_else(|| panic!("registry harness: umoci wrote no ref {name}"));
            children.push(serde_json::json!({
                "mediaType": descriptor["mediaType"],
                "digest": descriptor["digest"],
                "size": descriptor["size"],
                "platform": {"os": os, "architecture": arch},
            }));
        }
        let child_digests = children
            .iter()
            .map(|c| c["digest"].as_str().expect("digest").to_owned())
            .collect();
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": children,
        }))
        .expect("index JSON");
        let hex = {
            use sha2::Digest;
            let hash = sha2::Sha256::digest(&index);
            hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        fs::write(w.join("layout/blobs/sha256").join(&hex), &index)
            .expect("writing the index blob");
        layout_index["manifests"]
            .as_array_mut()
            .expect("manifests")
            .push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": format!("sha256:{hex}"),
                "size": index.len(),
                "annotations": {"org.opencontainers.image.ref.name": "multi"},
            }));
        fs::write(
            &index_path,
            serde_json::to_vec(&layout_index).expect("index.json"),
        )
        .expect("writing index.json");

        let image = format!("{layout}:multi");
        let digest = self.skopeo_push(w, &["--all"], &image, repo, tag).await;
        assert_eq!(
            digest,
            format!("sha256:{hex}"),
            "skopeo pushed the index as built"
        );
        (digest, child_digests)
    }

    /// Delete a tag so that the registry sends its tag-delete event (fixture 09). Returns
    /// the digest of the manifest the tag pointed at.
    ///
    /// Distribution 2.8 cannot delete a tag alone (`DELETE /v2/<repo>/manifests/<tag>`
    /// answers 400 DIGEST_INVALID); `skopeo delete` resolves the tag and deletes the
    /// manifest by digest. This does the same without skopeo's preliminary `GET`, which
    /// would add a `pull` event: it reads the tag's digest from the registry's storage and
    /// sends `DELETE /v2/<repo>/manifests/<digest>`. The registry then sends, one envelope
    /// each and sharing one request id: `delete` with `target.digest` (no media type), then
    /// one `delete` with `target.tag` for **every** tag that pointed at that manifest.
    pub async fn delete_tag(&self, repo: &str, tag: &str) -> String {
        let link = self
            .dir
            .path()
            .join("storage/docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/tags")
            .join(tag)
            .join("current/link");
        let digest = match fs::read_to_string(&link) {
            Ok(digest) => digest.trim().to_owned(),
            Err(e) => panic!(
                "registry harness: tag {repo}:{tag} not found ({}: {e})",
                link.display()
            ),
        };
        let url = format!("http://{}/v2/{repo}/manifests/{digest}", self.addr);
        let response = match self.http.delete(&url).send().await {
            Ok(response) => response,
            Err(e) => panic!("registry harness: DELETE {url}: {e}\n{}", self.log_tail()),
        };
        let status = response.status();
        if status != reqwest::StatusCode::ACCEPTED {
            let body = response.text().await.unwrap_or_default();
            panic!(
                "registry harness: DELETE {url} answered {status}: {body}\n{}",
                self.log_tail()
            );
        }
        digest
    }

    /// Pushes the OCI layout image `image` (`layout:ref`) to `<addr>/<repo>:<tag>` with
    /// `skopeo copy [extra]` (tls verify off); returns the digest skopeo pushed.
    async fn skopeo_push(
        &self,
        w: &Path,
        extra: &[&str],
        image: &str,
        repo: &str,
        tag: &str,
    ) -> String {
        let digest_file = utf8(&w.join("digest"));
        let source = format!("oci:{image}");
        let destination = format!("docker://{}/{repo}:{tag}", self.addr);
        let mut copy = vec!["--insecure-policy", "copy"];
        copy.extend_from_slice(extra);
        if let Some(creds) = &self.push_creds {
            copy.extend(["--dest-creds", creds.as_str()]);
        }
        copy.extend([
            "--quiet",
            "--dest-tls-verify=false",
            "--digestfile",
            &digest_file,
            &source,
            &destination,
        ]);
        self.tool(w, "skopeo", &copy, PUSH_TIMEOUT).await;
        fs::read_to_string(&digest_file)
            .expect("reading skopeo's --digestfile")
            .trim()
            .to_owned()
    }

    /// The last lines of the registry's log, headed for a panic message.
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.path().join("registry.log"))
    }

    /// Runs `program args` in `cwd` on the blocking pool, bounded by `timeout`;
    /// panics with its output and the registry log on failure.
    async fn tool(&self, cwd: &Path, program: &str, args: &[&str], timeout: Duration) {
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(cwd).env("TMPDIR", cwd);
        let out_path = cwd.join(format!("{program}.out"));
        let shown = format!("{cmd:?}");
        let result = tokio::task::spawn_blocking(move || run_bounded(cmd, &out_path, timeout))
            .await
            .expect("the tool-runner task panicked");
        if let Err(e) = result {
            panic!("registry harness: {shown}: {e}\n{}", self.log_tail());
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_yml(
    dir: &Path,
    addr: SocketAddr,
    notify_url: &str,
    token: &str,
    auth: Option<&TokenAuth>,
) -> String {
    // JSON strings are valid YAML double-quoted scalars: any URL or token is safe here.
    let q = |s: &str| serde_json::to_string(s).expect("quoting a string as JSON");
    let storage = dir.join("storage");
    let secret = format!("{:032x}", rand::random::<u128>());
    format!(
        r#"version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {addr}
  secret: {secret}
notifications:
  events:
    includereferences: true
  endpoints:
    - name: hookline
      url: {url}
      headers:
        Authorization: [{auth}]
      timeout: 1s
      threshold: 5
      backoff: 1s
{auth_section}"#,
        storage = q(&storage.display().to_string()),
        url = q(notify_url),
        auth = q(&format!("Bearer {token}")),
        auth_section = match auth {
            Some(a) => format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                q(&a.realm),
                q(&a.service),
                q(&a.issuer),
                q(&a.rootcertbundle.display().to_string())
            ),
            None => String::new(),
        },
    )
}

fn spawn_registry(config: &Path, log: &Path) -> Child {
    let log = File::create(log).expect("creating registry.log");
    let mut cmd = Command::new("docker-registry");
    cmd.arg("serve")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("cloning the registry.log handle"))
        .stderr(log);
    // REGISTRY_* variables override config.yml: keep the caller's environment out.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("REGISTRY_") {
            cmd.env_remove(key);
        }
    }
    match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "registry harness: `docker-registry` is not installed \
             (apt-get install docker-registry skopeo umoci, or run .ci/run)"
        ),
        Err(e) => panic!("registry harness: spawning docker-registry: {e}"),
    }
}

fn free_loopback_addr() -> SocketAddr {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
}

/// Runs `cmd` with stdout and stderr in `out_path`, killing it after `timeout`.
fn run_bounded(mut cmd: Command, out_path: &Path, timeout: Duration) -> Result<(), String> {
    let out =
        File::create(out_path).map_err(|e| format!("creating {}: {e}", out_path.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cloning output handle: {e}"))?;
    let mut child = match cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(
                "not installed (apt-get install docker-registry skopeo umoci, or run .ci/run)"
                    .into(),
            );
        }
        Err(e) => return Err(format!("spawning: {e}")),
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "timed out after {timeout:?}; output:\n{}",
                    read_lossy(out_path)
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting: {e}")),
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(format!("{status}; output:\n{}", read_lossy(out_path)))
    }
}

/// The tools take paths as arguments; temp paths are UTF-8 in practice.
fn utf8(path: &Path) -> String {
    path.to_str()
        .expect("temp paths are valid UTF-8")
        .to_owned()
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}

/// Waits for the registry to log that it listens on `addr` and to answer `GET /v2/`
/// with 200. False if the registry exited because its port was taken;
/// panics (after killing it) on any other exit or on timeout.
async fn wait_ready(
    child: &mut Child,
    addr: SocketAddr,
    http: &reqwest::Client,
    log: &Path,
) -> bool {
    let url = format!("http://{addr}/v2/");
    let listening = format!("listening on {addr}");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("polling the registry process") {
            let tail = log_tail(log);
            if tail.contains("address already in use") {
                return false;
            }
            panic!("registry harness: docker-registry exited ({status}) during start-up\n{tail}");
        }
        // Our own log line first: a registry of a parallel test that grabbed the same port
        // would answer /v2/ too, while ours is about to exit with "address already in use".
        if read_lossy(log).contains(&listening)
            && let Ok(response) = http.get(&url).send().await
            // 401: a registry with token auth is up, and asks for a token.
            && matches!(response.status().as_u16(), 200 | 401)
        {
            return true;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "registry harness: {url} did not answer 200 within {START_TIMEOUT:?}\n{}",
                log_tail(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last lines of the registry log, headed for a panic message.
fn log_tail(path: &Path) -> String {
    let text = read_lossy(path);
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "--- last {LOG_LINES} lines of {}:\n{}",
        path.display(),
        lines[lines.len().saturating_sub(LOG_LINES)..].join("\n")
    )
}
