//! Before a launch or exec: when the API server runs elsewhere (a team
//! server, or any server not on this host), the task's workdir and file
//! mount sources are uploaded and the task names the uploads instead.
//! A local server on this host reads the paths itself.

use skypilot_api::{
    Client,
    proto::skypilot::v1::{ServerMode, TaskSpec},
    upload::{human_bytes, scan, upload},
};

use crate::error::{CliError, CliResult};

/// Trees from this size on get a line before their upload starts.
const LARGE_TREE_BYTES: u64 = 10_000_000;

/// Uploads the task's local sources when the server cannot read them.
pub async fn upload_sources(client: &Client, task: &mut TaskSpec) -> CliResult {
    if task.workdir.is_empty() && task.file_mounts.is_empty() {
        return Ok(());
    }
    let info = client.server_info().await?;
    let host = &client.endpoint().host;
    let on_this_host =
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if on_this_host && info.mode() != ServerMode::Deploy {
        return Ok(());
    }
    let max_bytes = u64::try_from(info.upload_max_bytes).ok().filter(|max| *max > 0).unwrap_or(u64::MAX);
    if !task.workdir.is_empty() {
        task.workdir = send(client, "workdir", &task.workdir, max_bytes).await?;
    }
    let mut mounts: Vec<(&String, &mut String)> = task.file_mounts.iter_mut().collect();
    mounts.sort_by(|a, b| a.0.cmp(b.0));
    for (dest, source) in mounts {
        *source = send(client, &format!("file mount {dest}"), source, max_bytes).await?;
    }
    Ok(())
}

/// Uploads one source; returns its reference.
async fn send(client: &Client, what: &str, path: &str, max_bytes: u64) -> CliResult<String> {
    let source = std::path::PathBuf::from(path);
    let cache = Some(skypilot_api::config::sky_dir().join("upload_cache"));
    let tree = tokio::task::spawn_blocking(move || scan(&source, max_bytes, cache.as_deref()))
        .await
        .map_err(|err| CliError::new(format!("{what}: {err}")))?
        .map_err(|err| CliError::new(format!("Cannot upload the {what}: {err}")))?;
    let files = tree.file_count();
    let size = human_bytes(tree.bytes);
    let plural = if files == 1 { "" } else { "s" };
    if tree.bytes >= LARGE_TREE_BYTES {
        println!("Uploading {what} {path} ({size}, {files} file{plural})...");
    }
    let uploaded = upload(client, &tree).await?;
    if uploaded.sent_files == 0 {
        println!("Uploaded {what} {path} ({size}, {files} file{plural}): unchanged, nothing sent.");
    } else {
        println!(
            "Uploaded {what} {path} ({size}, {files} file{plural}): sent {} in {} file(s).",
            human_bytes(uploaded.sent_bytes),
            uploaded.sent_files
        );
    }
    Ok(uploaded.reference)
}
