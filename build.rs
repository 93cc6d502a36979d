//! Compiles `proto/hookline/v1/*.proto` into Rust (prost messages, tonic client and
//! server) without a system `protoc`: `protox` parses the files in pure Rust. Also writes
//! the encoded file descriptor set that the gRPC reflection service serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
        ])
        .compile_fds(fds)?;
    Ok(())
}
