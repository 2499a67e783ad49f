//! Files from the API server's host to a pool's host: one tar stream over
//! the host's SSH connection. A folder sent again skips the files the host
//! already has unchanged (same size and modification time, which tar keeps
//! on the host), so a relaunch sends only what changed.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::io::AsyncWriteExt as _;

use super::{
    connection::{Ssh, SshError},
    pool::infra_error,
    pools::Host,
    remote,
};
use crate::error::{Error, Result};

/// How long sending one file mount may take.
const COPY_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long listing what a host has may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends `source` (a file, folder or link of this host) to `dest` (a shell
/// word, under the node's home) on `host`.
pub async fn send(ssh: &Ssh, host: &Host, source: &Path, dest: &str) -> Result<()> {
    let meta = std::fs::symlink_metadata(source)
        .map_err(|err| Error::invalid("task.workdir/file_mounts", format!("{}: {err}", source.display())))?;
    let mut tar = tokio::process::Command::new("tar");
    let (unpack, entries) = if meta.is_dir() {
        let there = ssh.run(host, &remote::listing(dest), LIST_TIMEOUT).await.map_err(infra_error)?;
        let entries = changed_entries(source, &parse_listing(&there))?;
        tar.arg("-C").arg(source).args(["--no-recursion", "--null", "-T", "-", "-cf", "-"]);
        (remote::unpack_into(dest), Some(entries))
    } else {
        let parent = source.parent().unwrap_or(Path::new("/"));
        let entry = source.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        tar.arg("-C").arg(parent).args(["-cf", "-", "--"]).arg(&entry);
        let scratch = format!("{dest}.sky-copy-{}", std::process::id());
        (remote::unpack_as(dest, &entry, &scratch), None)
    };
    ssh.ready(host).await.map_err(infra_error)?;
    let mut packer = tar
        .stdin(if entries.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| Error::internal(format!("cannot run tar: {err}")))?;
    if let Some(entries) = entries {
        let mut list = packer.stdin.take().expect("piped");
        tokio::spawn(async move {
            let mut names = Vec::new();
            for entry in entries {
                names.extend_from_slice(entry.as_os_str().as_encoded_bytes());
                names.push(0);
            }
            let _ = list.write_all(&names).await;
        });
    }
    let stream: Stdio = packer.stdout.take().expect("piped").try_into()?;
    let sent = ssh
        .command(host, &format!("bash -c {}", remote::quote(&unpack)))
        .stdin(stream)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let both = tokio::time::timeout(COPY_TIMEOUT, async { tokio::join!(sent, packer.wait_with_output()) });
    let (sent, packed) = match both.await {
        Ok((sent, packed)) => (sent?, packed?),
        Err(_) => return Err(infra_error(SshError::TimedOut { host: host.label(), after: COPY_TIMEOUT })),
    };
    if !packed.status.success() {
        return Err(Error::invalid(
            "task.workdir/file_mounts",
            format!("cannot read {}: {}", source.display(), String::from_utf8_lossy(&packed.stderr).trim()),
        ));
    }
    if !sent.status.success() {
        return Err(infra_error(ssh.failure(host, sent.status.code(), &sent.stderr)));
    }
    Ok(())
}

/// What a host has under a folder: each regular file's size and
/// modification time (whole seconds), by path relative to the folder.
fn parse_listing(listing: &[u8]) -> HashMap<Vec<u8>, (u64, i64)> {
    listing
        .split(|byte| *byte == 0)
        .filter_map(|record| {
            let mut parts = record.splitn(3, |byte| *byte == b' ');
            let size = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
            let mtime: f64 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
            Some((parts.next()?.to_vec(), (size, mtime.floor() as i64)))
        })
        .collect()
}

/// The entries of `root` to send, relative to it: every folder and link,
/// and the regular files the host does not have as they are here.
fn changed_entries(root: &Path, there: &HashMap<Vec<u8>, (u64, i64)>) -> Result<Vec<PathBuf>> {
    let mut entries = vec![PathBuf::from(".")];
    let mut folders = vec![PathBuf::new()];
    while let Some(folder) = folders.pop() {
        let read = std::fs::read_dir(root.join(&folder)).map_err(|err| {
            Error::invalid("task.workdir/file_mounts", format!("{}: {err}", root.join(&folder).display()))
        })?;
        for entry in read {
            let entry = entry?;
            let relative = folder.join(entry.file_name());
            let meta = entry.metadata()?;
            if meta.is_dir() {
                folders.push(relative.clone());
            } else if meta.is_file()
                && there.get(relative.as_os_str().as_encoded_bytes()) == Some(&(meta.len(), meta.mtime()))
            {
                continue;
            }
            entries.push(relative);
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_the_host_lacks_or_has_otherwise_are_sent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src/empty")).unwrap();
        std::fs::write(dir.path().join("same.txt"), "same").unwrap();
        std::fs::write(dir.path().join("src/changed.py"), "new").unwrap();
        std::os::unix::fs::symlink("same.txt", dir.path().join("link")).unwrap();
        let mtime = |path: &str| std::fs::metadata(dir.path().join(path)).unwrap().mtime();
        let listing =
            format!("4 {}.25 same.txt\05 {} src/changed.py\0", mtime("same.txt"), mtime("src/changed.py"));
        let mut sent = changed_entries(dir.path(), &parse_listing(listing.as_bytes())).unwrap();
        sent.sort();
        let sent: Vec<&str> = sent.iter().map(|path| path.to_str().unwrap()).collect();
        assert_eq!(sent, [".", "link", "src", "src/changed.py", "src/empty"]);
    }
}
