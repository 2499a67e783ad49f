//! Sending a workdir or a file mount's source to an API server that runs
//! elsewhere. `scan` lists a tree as SkyPilot would sync it (`.skyignore`
//! when the tree has one, else its `.gitignore` rules; modes kept; links
//! sent as links) and hashes its files; `upload` asks the server which
//! contents it lacks, streams only those, and records the tree, whose
//! reference then replaces the path in the task.

use std::{
    io::Read as _,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};

use crate::{
    client::{Client, ClientError},
    identity::hex,
    proto::skypilot::v1::{
        BlobHeader, CreateTreeRequest, EntryKind, FindMissingBlobsRequest, TreeEntry, UploadBlobsRequest,
        upload_blobs_request::Part,
    },
};

/// Bytes per data message.
const CHUNK: usize = 1 << 20;
/// Digests per FindMissingBlobs call.
const DIGESTS_PER_CALL: usize = 10_000;

/// A tree ready to upload: its entries, and where each file's content is here.
#[derive(Debug, Clone)]
pub struct Tree {
    pub entries: Vec<TreeEntry>,
    /// For each file entry (by index), its path on this machine.
    files: Vec<(usize, PathBuf)>,
    pub single_file: bool,
    /// Its files' total size.
    pub bytes: u64,
}

impl Tree {
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Goes in the task in place of the path.
    pub reference: String,
    /// Contents sent (the rest the server had).
    pub sent_files: u64,
    pub sent_bytes: u64,
}

/// Why a tree cannot be uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError(pub String);

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lists and hashes `path` (a folder, or one file) as it will be sent;
/// refused when it holds more than `max_bytes`. With `cache` (a folder),
/// files whose size and modification time have not changed since the last
/// scan of the same path keep their digest instead of being read again.
pub fn scan(path: &Path, max_bytes: u64, cache: Option<&Path>) -> Result<Tree, ScanError> {
    let mut digests = DigestCache::open(cache, path);
    let tree = scan_with(path, max_bytes, &mut digests)?;
    digests.save();
    Ok(tree)
}

fn scan_with(path: &Path, max_bytes: u64, digests: &mut DigestCache) -> Result<Tree, ScanError> {
    let cannot = |err: &dyn std::fmt::Display| ScanError(format!("cannot read {}: {err}", path.display()));
    let meta = std::fs::metadata(path).map_err(|err| cannot(&err))?;
    let mut tree = Tree { entries: Vec::new(), files: Vec::new(), single_file: !meta.is_dir(), bytes: 0 };
    if !meta.is_dir() {
        let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| cannot(&"not a file name"))?;
        add_file(&mut tree, name.to_string(), path, &meta, digests)?;
        return check_size(tree, path, max_bytes);
    }
    let mut walk = ignore::WalkBuilder::new(path);
    walk.hidden(false).parents(false).ignore(false).git_global(false).git_exclude(false).follow_links(false);
    walk.require_git(false).sort_by_file_name(|a, b| a.cmp(b));
    if path.join(".skyignore").is_file() {
        walk.git_ignore(false).add_custom_ignore_filename(".skyignore");
    } else {
        walk.git_ignore(true);
    }
    for entry in walk.build() {
        let entry = entry.map_err(|err| cannot(&err))?;
        let Ok(relative) = entry.path().strip_prefix(path) else { continue };
        if relative.as_os_str().is_empty() {
            continue;
        }
        let name = relative
            .to_str()
            .ok_or_else(|| {
                ScanError(format!("{}: only UTF-8 file names can be sent", entry.path().display()))
            })?
            .to_string();
        let meta = std::fs::symlink_metadata(entry.path()).map_err(|err| cannot(&err))?;
        let mode = meta.permissions().mode() & 0o777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(|err| cannot(&err))?;
            let link_target = target.to_str().unwrap_or_default().to_string();
            tree.entries.push(TreeEntry {
                path: name,
                kind: EntryKind::Symlink as i32,
                mode,
                link_target,
                ..Default::default()
            });
        } else if meta.is_dir() {
            tree.entries.push(TreeEntry {
                path: name,
                kind: EntryKind::Directory as i32,
                mode,
                ..Default::default()
            });
        } else if meta.is_file() {
            add_file(&mut tree, name, entry.path(), &meta, digests)?;
        } else {
            return Err(ScanError(format!(
                "{} is not a file, folder or link: leave it out (.skyignore)",
                entry.path().display()
            )));
        }
        if tree.bytes > max_bytes {
            return check_size(tree, path, max_bytes);
        }
    }
    check_size(tree, path, max_bytes)
}

fn check_size(tree: Tree, path: &Path, max_bytes: u64) -> Result<Tree, ScanError> {
    if tree.bytes > max_bytes {
        return Err(ScanError(format!(
            "{} holds more than the API server takes in one upload ({} > {}): leave large files and folders \
             out with a .skyignore file (same syntax as .gitignore) in it",
            path.display(),
            human_bytes(tree.bytes),
            human_bytes(max_bytes)
        )));
    }
    Ok(tree)
}

fn add_file(
    tree: &mut Tree,
    name: String,
    path: &Path,
    meta: &std::fs::Metadata,
    digests: &mut DigestCache,
) -> Result<(), ScanError> {
    let stamp = (meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino());
    let digest = match digests.get(&name, stamp) {
        Some(digest) => digest,
        None => hash_file(path).map_err(|err| ScanError(format!("cannot read {}: {err}", path.display())))?,
    };
    digests.put(&name, stamp, &digest);
    tree.files.push((tree.entries.len(), path.to_path_buf()));
    tree.bytes += meta.len();
    tree.entries.push(TreeEntry {
        path: name,
        kind: EntryKind::File as i32,
        mode: meta.permissions().mode() & 0o777,
        digest,
        size: meta.len() as i64,
        link_target: String::new(),
    });
    Ok(())
}

/// Size, modification time (seconds, nanoseconds) and inode of a file.
type Stamp = (u64, i64, i64, u64);

/// Digests of one tree's files from its last scan, by path and stamp (as
/// git's index keeps them), in `<cache>/<hash of the tree's path>`.
struct DigestCache {
    file: Option<PathBuf>,
    known: std::collections::HashMap<String, (Stamp, String)>,
    now: Vec<(String, Stamp, String)>,
}

impl DigestCache {
    fn open(cache: Option<&Path>, root: &Path) -> DigestCache {
        let file = cache.map(|cache| {
            let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
            cache.join(&hex(&Sha256::digest(root.as_os_str().as_encoded_bytes()))[..32])
        });
        let text = file.as_ref().and_then(|file| std::fs::read_to_string(file).ok()).unwrap_or_default();
        let known = text
            .split('\0')
            .filter_map(|record| {
                let mut fields = record.splitn(6, ' ');
                let mut number = || fields.next()?.parse::<i64>().ok();
                let stamp = (number()? as u64, number()?, number()?, number()? as u64);
                let digest = fields.next()?.to_string();
                Some((fields.next()?.to_string(), (stamp, digest)))
            })
            .collect();
        DigestCache { file, known, now: Vec::new() }
    }

    fn get(&self, name: &str, stamp: Stamp) -> Option<String> {
        self.known.get(name).filter(|(known, _)| *known == stamp).map(|(_, digest)| digest.clone())
    }

    fn put(&mut self, name: &str, stamp: Stamp, digest: &str) {
        self.now.push((name.to_string(), stamp, digest.to_string()));
    }

    /// Keeps this scan's digests for the next (best effort: a cache that
    /// cannot be written only costs hashing again).
    fn save(self) {
        let Some(file) = self.file else { return };
        let mut text = String::new();
        for (name, (size, secs, nanos, inode), digest) in &self.now {
            text += &format!("{size} {secs} {nanos} {inode} {digest} {name}\0");
        }
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let partial = file.with_extension(format!("partial-{}", std::process::id()));
        if std::fs::write(&partial, text).is_ok() {
            let _ = std::fs::rename(&partial, &file);
        }
    }
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    // No larger than the file (most are small): zeroing a buffer costs too.
    let size = file.metadata()?.len() as usize;
    let mut buffer = vec![0u8; size.clamp(1, CHUNK) + 1];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}

/// Sends what the server lacks of `tree` and records it.
pub async fn upload(client: &Client, tree: &Tree) -> Result<Uploaded, ClientError> {
    let mut digests: Vec<String> =
        tree.files.iter().map(|(index, _)| tree.entries[*index].digest.clone()).collect();
    digests.sort();
    digests.dedup();
    let mut missing = std::collections::HashSet::new();
    for batch in digests.chunks(DIGESTS_PER_CALL) {
        let request = FindMissingBlobsRequest { digests: batch.to_vec() };
        missing.extend(client.find_missing_blobs(request).await?);
    }
    // One file per missing content.
    let mut to_send: Vec<(String, i64, PathBuf)> = Vec::new();
    for (index, path) in &tree.files {
        let entry = &tree.entries[*index];
        if missing.remove(&entry.digest) {
            to_send.push((entry.digest.clone(), entry.size, path.clone()));
        }
    }
    let (sent_files, sent_bytes) =
        (to_send.len() as u64, to_send.iter().map(|(_, size, _)| *size as u64).sum::<u64>());
    if !to_send.is_empty() {
        let (sender, receiver) = tokio::sync::mpsc::channel::<UploadBlobsRequest>(4);
        let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for (digest, size, path) in to_send {
                let header = Part::Header(BlobHeader { digest, size });
                if sender.blocking_send(UploadBlobsRequest { part: Some(header) }).is_err() {
                    return Ok(());
                }
                let mut file = std::fs::File::open(&path)?.take(size as u64);
                let mut left = size as usize;
                while left > 0 {
                    let mut buffer = vec![0u8; left.min(CHUNK)];
                    let read = read_full(&mut file, &mut buffer)?;
                    if read == 0 {
                        break;
                    }
                    buffer.truncate(read);
                    left -= read;
                    if sender.blocking_send(UploadBlobsRequest { part: Some(Part::Data(buffer)) }).is_err() {
                        return Ok(());
                    }
                }
            }
            Ok(())
        });
        let uploaded = client.upload_blobs(tokio_stream::wrappers::ReceiverStream::new(receiver)).await;
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(ClientError::Local(format!("reading the files to upload: {err}"))),
            Err(err) => return Err(ClientError::Local(format!("reading the files to upload: {err}"))),
        }
        uploaded?;
    }
    let request = CreateTreeRequest { entries: tree.entries.clone(), single_file: tree.single_file };
    let created = client.create_tree(request).await?;
    Ok(Uploaded { reference: created.reference, sent_files, sent_bytes })
}

fn read_full(file: &mut impl std::io::Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            read => filled += read,
        }
    }
    Ok(filled)
}

/// "12.4 MB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(tree: &Tree) -> Vec<&str> {
        tree.entries.iter().map(|entry| entry.path.as_str()).collect()
    }

    #[test]
    fn gitignore_rules_apply_unless_there_is_a_skyignore() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join(".gitignore"), "data/\n*.log\n").unwrap();
        std::fs::write(dir.path().join("train.py"), "print(1)\n").unwrap();
        std::fs::write(dir.path().join("run.log"), "x").unwrap();
        std::fs::write(dir.path().join("data/big.bin"), "x").unwrap();
        std::os::unix::fs::symlink("train.py", dir.path().join("main.py")).unwrap();
        let tree = scan(dir.path(), 1 << 20, None).unwrap();
        assert_eq!(paths(&tree), [".gitignore", "main.py", "train.py"]);
        assert_eq!(tree.entries[1].link_target, "train.py");

        std::fs::write(dir.path().join(".skyignore"), "*.py\n").unwrap();
        let tree = scan(dir.path(), 1 << 20, None).unwrap();
        assert_eq!(paths(&tree), [".gitignore", ".skyignore", "data", "data/big.bin", "run.log"]);
    }

    #[test]
    fn a_tree_scanned_again_reads_only_the_files_that_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (tree_dir, cache) = (dir.path().join("tree"), dir.path().join("cache"));
        std::fs::create_dir_all(&tree_dir).unwrap();
        std::fs::write(tree_dir.join("a"), "one").unwrap();
        std::fs::write(tree_dir.join("b"), "two").unwrap();
        let first = scan(&tree_dir, 1 << 20, Some(&cache)).unwrap();
        // A digest found in the cache is trusted: poison one to see it reused.
        let file = std::fs::read_dir(&cache).unwrap().next().unwrap().unwrap().path();
        let poisoned =
            std::fs::read_to_string(&file).unwrap().replace(&first.entries[0].digest, &"0".repeat(64));
        std::fs::write(&file, poisoned).unwrap();
        std::fs::write(tree_dir.join("b"), "three").unwrap();
        let second = scan(&tree_dir, 1 << 20, Some(&cache)).unwrap();
        assert_eq!(second.entries[0].digest, "0".repeat(64), "an unchanged file is not read again");
        assert_ne!(second.entries[1].digest, first.entries[1].digest, "a changed file is");
        assert_eq!(scan(&tree_dir, 1 << 20, None).unwrap().entries[0].digest, first.entries[0].digest);
    }

    #[test]
    fn a_tree_over_the_limit_is_refused_with_its_size_and_how_to_leave_files_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![0u8; 5000]).unwrap();
        let err = scan(dir.path(), 4000, None).unwrap_err();
        assert!(err.0.contains("5.0 KB > 4.0 KB") && err.0.contains(".skyignore"), "{err}");
        let one = scan(&dir.path().join("big"), 1 << 20, None).unwrap();
        assert!(one.single_file);
        assert_eq!(paths(&one), ["big"]);
    }
}
