//! Compiles `proto/` with protox (pure Rust), so a fresh machine needs no `protoc`.

use prost::Message;
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/authzd/v1/authzd.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // Server reflection serves this descriptor set.
    std::fs::write(out.join("authzd_descriptor.bin"), fds.encode_to_vec())?;
    // The JSON API (`POST /v1/check`) uses the same messages, so one definition
    // of the wire shape serves both.
    tonic_prost_build::configure()
        .type_attribute(
            ".authzd.v1",
            "#[derive(serde::Serialize, serde::Deserialize)]",
        )
        .type_attribute(".authzd.v1", "#[serde(default, deny_unknown_fields)]")
        .compile_fds(fds)?;
    Ok(())
}
