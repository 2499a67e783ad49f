//! Compiles `proto/` into Rust (messages, clients and servers) with protox, so
//! no `protoc` binary is needed, and writes the descriptor set that server
//! reflection serves. Also records the source commit for `GetServerInfo`.

use std::{env, fs, path::PathBuf, process::Command};

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/skypilot/v1/errors.proto",
    "proto/skypilot/v1/requests.proto",
    "proto/skypilot/v1/server.proto",
    "proto/skypilot/v1/infra.proto",
    "proto/skypilot/v1/clusters.proto",
    "proto/skypilot/v1/users.proto",
    "proto/skypilot/v1/uploads.proto",
    "proto/skypilot/v1/managed_jobs.proto",
    "proto/google/longrunning/operations.proto",
    "proto/google/rpc/status.proto",
    "proto/google/rpc/error_details.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let descriptors = protox::compile(PROTOS, ["proto"])?;
    fs::write(out_dir.join("skypilot_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(descriptors)?;

    println!("cargo:rustc-env=SKYPILOT_BUILD_COMMIT={}", source_commit());
    Ok(())
}

/// The short commit hash of the checkout, or `SKYPILOT_COMMIT` when set (for
/// builds outside a git checkout, such as a container image).
fn source_commit() -> String {
    println!("cargo:rerun-if-env-changed=SKYPILOT_COMMIT");
    if let Ok(commit) = env::var("SKYPILOT_COMMIT") {
        return commit;
    }
    if let Ok(head) = fs::read_to_string(".git/HEAD") {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Some(reference) = head.trim().strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed=.git/{reference}");
        }
    }
    Command::new("git")
        .args(["rev-parse", "--short=8", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}
