//! Compiles `proto/hookline/v1/*.proto` into Rust (prost messages, tonic client and
//! server) without a system `protoc`: `protox` parses the files in pure Rust. Also writes
//! the encoded file descriptor set that the gRPC reflection service serves. And records
//! the git revision the binary is built from, for `hookline --version`.

use std::path::PathBuf;
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    record_revision();
    let protos = [
        "proto/hookline/v1/webhooks.proto",
        "proto/hookline/v1/deliveries.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("hookline_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        // Messages that carry a secret get a hand-written, redacting Debug (src/api/proto.rs).
        .skip_debug([
            "hookline.v1.CreateWebhookRequest",
            "hookline.v1.CreateWebhookResponse",
            "hookline.v1.RotateWebhookSecretRequest",
            "hookline.v1.RotateWebhookSecretResponse",
            "hookline.v1.Webhook",
            "hookline.v1.OAuthClientCredentials",
        ])
        .compile_fds(fds)?;
    Ok(())
}

/// Sets `HOOKLINE_REVISION` for the crate: the `HOOKLINE_REVISION` environment variable when
/// set (a container build has no `.git`: `--build-arg REVISION=…` passes it), else the
/// checkout's `git rev-parse HEAD`, else `unknown`. (No `-dirty` mark: the script reruns
/// only when HEAD moves, so it could not keep such a mark true.)
fn record_revision() {
    println!("cargo:rerun-if-env-changed=HOOKLINE_REVISION");
    let from_env = std::env::var("HOOKLINE_REVISION")
        .ok()
        .filter(|revision| !revision.trim().is_empty());
    let revision = from_env.unwrap_or_else(|| {
        let Some(head) = git(&["rev-parse", "HEAD"]) else {
            return "unknown".to_owned();
        };
        // Rebuild when HEAD moves: HEAD itself (checkout) and the branch it points at (commit).
        if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
            println!("cargo:rerun-if-changed={git_dir}/HEAD");
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
                    .unwrap_or(git_dir);
                println!("cargo:rerun-if-changed={common}/{branch}");
            }
        }
        head
    });
    println!("cargo:rustc-env=HOOKLINE_REVISION={}", revision.trim());
}

/// One line of git's output, or `None` when git or the repository is missing.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
