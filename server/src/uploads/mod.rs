//! Uploads: the files of clients' workdirs and file mounts, held on the API
//! server's host for the user who sent them. Contents are kept once per
//! user by their SHA-256 (`blobs/`), so that a client sends only what the
//! server does not hold yet; a tree (`trees/`) lists a workdir's entries by
//! content; a launch makes the tree into files (`staged/`) and syncs those
//! to the cluster's nodes through the infra.
//!
//! Layout, per user (a folder named by a hash of the user's id):
//! `blobs/<sha256>`, `trees/<digest>` (the checked tree), `staged/<digest>/`
//! (its files), `incoming/` (contents being received: renamed into
//! `blobs/` only once whole and matching their digest).
//!
//! The staged files are readable by the job processes that copy them
//! (folders on the way are traversable, not listable): their path holds the
//! tree's digest, which only someone who has the files can know.

mod receive;
pub mod tree;

use std::{
    os::unix::fs::DirBuilderExt as _,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use prost::Message as _;
use sha2::{Digest as _, Sha256};
use skypilot_api::proto::skypilot::v1::{CreateTreeRequest, CreateTreeResponse, TaskSpec};

pub use receive::Receiver;

use crate::error::{Error, ErrorReason, Result};

/// What a task names instead of a path on the client's machine.
pub const REFERENCE_PREFIX: &str = "sky-upload://";
/// The largest data message of UploadBlobs.
pub const MAX_CHUNK: usize = 1 << 20;
/// At most this many digests per FindMissingBlobs.
const MAX_DIGESTS: usize = 10_000;

/// How much a user may upload.
#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// The most one tree may hold.
    pub max_tree_bytes: u64,
    /// The most a user's held contents may add up to.
    pub quota_bytes: u64,
    /// Uploads not used for this long are removed (negative: never).
    pub retention_hours: f64,
}

/// The uploads of every user.
#[derive(Clone)]
pub struct Uploads {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploads").field("root", &self.inner.root).field("limits", &self.inner.limits).finish()
    }
}

struct Inner {
    root: PathBuf,
    limits: UploadLimits,
    /// Content bytes received since the server started.
    received: AtomicU64,
}

impl Uploads {
    pub fn open(root: PathBuf, limits: UploadLimits) -> std::io::Result<Uploads> {
        std::fs::DirBuilder::new().recursive(true).mode(0o711).create(&root)?;
        Ok(Uploads { inner: Arc::new(Inner { root, limits, received: AtomicU64::new(0) }) })
    }

    pub fn limits(&self) -> &UploadLimits {
        &self.inner.limits
    }

    /// Content bytes received since the server started.
    pub fn bytes_received(&self) -> u64 {
        self.inner.received.load(Ordering::Relaxed)
    }

    /// The user's folder (which exists once the user sent something).
    fn user_dir(&self, user_id: &str) -> PathBuf {
        let name = skypilot_api::identity::hex(&Sha256::digest(user_id.as_bytes()))[..32].to_string();
        self.inner.root.join(name)
    }

    /// The user's folder, made (traversable only) for what is sent to it.
    fn made_user_dir(&self, user_id: &str) -> Result<PathBuf> {
        let dir = self.user_dir(user_id);
        for sub in ["blobs", "trees", "incoming"] {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir.join(sub))?;
        }
        std::fs::DirBuilder::new().recursive(true).mode(0o711).create(dir.join("staged"))?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
        Ok(dir)
    }

    /// Which of `digests` the user's uploads lack.
    pub fn find_missing(&self, user_id: &str, digests: &[String]) -> Result<Vec<String>> {
        if digests.len() > MAX_DIGESTS {
            return Err(Error::invalid("digests", format!("at most {MAX_DIGESTS} per call; send several")));
        }
        if let Some(bad) = digests.iter().find(|digest| !tree::is_digest(digest)) {
            return Err(Error::invalid("digests", format!("{bad:?} is not a SHA-256 in lowercase hex")));
        }
        let blobs = self.user_dir(user_id).join("blobs");
        Ok(digests.iter().filter(|digest| !blobs.join(digest).exists()).cloned().collect())
    }

    /// Takes a stream of contents for the user.
    pub fn receiver(&self, user_id: &str) -> Result<Receiver> {
        let dir = self.made_user_dir(user_id)?;
        let used = held_bytes(&dir.join("blobs"));
        let room = self.inner.limits.quota_bytes.saturating_sub(used);
        Ok(Receiver::new(dir, room, self.inner.limits.quota_bytes, self.inner.clone()))
    }

    /// Checks and records a tree whose contents the user holds.
    pub fn create_tree(&self, user_id: &str, mut request: CreateTreeRequest) -> Result<CreateTreeResponse> {
        let dir = self.made_user_dir(user_id)?;
        let blobs = dir.join("blobs");
        let size_of = |digest: &str| std::fs::metadata(blobs.join(digest)).ok().map(|meta| meta.len());
        let (digest, bytes) = tree::check(&mut request, size_of, self.inner.limits.max_tree_bytes)?;
        let file = dir.join("trees").join(&digest);
        let partial = file.with_extension(format!("partial-{}", std::process::id()));
        std::fs::write(&partial, request.encode_to_vec())?;
        std::fs::rename(&partial, &file)?;
        let files =
            request.entries.iter().filter(|e| e.kind() == skypilot_api::proto::skypilot::v1::EntryKind::File);
        Ok(CreateTreeResponse {
            reference: format!("{REFERENCE_PREFIX}{digest}"),
            files: files.count() as i64,
            bytes: bytes as i64,
        })
    }

    /// The user's tree that `reference` names; NOT_FOUND when the user has
    /// no such upload (never someone else's).
    fn tree(
        &self,
        user_id: &str,
        field: &str,
        reference: &str,
    ) -> Result<(PathBuf, String, CreateTreeRequest)> {
        let digest = reference.strip_prefix(REFERENCE_PREFIX).unwrap_or_default();
        if !tree::is_digest(digest) {
            return Err(Error::invalid(
                field,
                format!("{reference:?} is not an upload reference ({REFERENCE_PREFIX}<sha256>)"),
            ));
        }
        let dir = self.user_dir(user_id);
        let file = dir.join("trees").join(digest);
        let bytes = std::fs::read(&file).map_err(|_| {
            Error::new(
                ErrorReason::NotFound,
                format!("{field}: upload {reference} does not exist (it expired, or belongs to someone else): upload it again"),
            )
        })?;
        let _ = touch(&file);
        let tree = CreateTreeRequest::decode(bytes.as_slice())
            .map_err(|err| Error::internal(format!("upload {reference} is unreadable: {err}")))?;
        Ok((dir, digest.to_string(), tree))
    }

    /// Refuses a task whose upload references the user does not hold.
    pub fn check_task(&self, user_id: &str, task: &TaskSpec) -> Result<()> {
        for (field, source) in sources(task) {
            if is_reference(source) {
                self.tree(user_id, &field, source)?;
            }
        }
        Ok(())
    }

    /// The task with each upload reference replaced by the path of its files
    /// on this host (made on first use).
    pub async fn resolve_task(&self, user_id: &str, mut task: TaskSpec) -> Result<TaskSpec> {
        if is_reference(&task.workdir) {
            task.workdir = self.staged(user_id, "task.workdir", &task.workdir).await?;
        }
        for (dest, source) in task.file_mounts.iter_mut() {
            if is_reference(source) {
                *source = self.staged(user_id, &format!("task.file_mounts[{dest}]"), source).await?;
            }
        }
        Ok(task)
    }

    /// Where the files of the upload `reference` are on this host.
    async fn staged(&self, user_id: &str, field: &str, reference: &str) -> Result<String> {
        let (dir, digest, tree) = self.tree(user_id, field, reference)?;
        let staged = dir.join("staged").join(&digest);
        let blobs = dir.join("blobs");
        let target = staged.clone();
        let tree_copy = tree.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            if target.exists() {
                let _ = touch(&target);
                return Ok(());
            }
            let partial =
                target.with_extension(format!("partial-{}", skypilot_api::identity::random_hex(8)?));
            tree::make(&tree_copy, &partial, |digest| blobs.join(digest))?;
            if std::fs::rename(&partial, &target).is_err() {
                // Made at the same time by another launch: use that one.
                let _ = std::fs::remove_dir_all(&partial);
            }
            Ok(())
        })
        .await
        .map_err(|err| Error::internal(format!("making upload {reference}: {err}")))??;
        let path = match tree::single_file(&tree) {
            Some(file) => staged.join(&file.path),
            None => staged,
        };
        Ok(path.to_string_lossy().into_owned())
    }

    /// Removes what was not used within the retention period: staged files
    /// and trees, then contents no remaining tree lists; and contents whose
    /// upload was cut short.
    pub fn sweep(&self) -> usize {
        let hours = self.inner.limits.retention_hours;
        if hours < 0.0 {
            return 0;
        }
        let keep = Duration::from_secs_f64(hours * 3600.0);
        let mut removed = 0;
        for user in std::fs::read_dir(&self.inner.root).into_iter().flatten().flatten() {
            removed += sweep_user(&user.path(), keep);
        }
        removed
    }
}

/// Whether `source` names an upload.
pub fn is_reference(source: &str) -> bool {
    source.starts_with(REFERENCE_PREFIX)
}

/// The task's workdir and file mount sources, with the field each is in.
fn sources(task: &TaskSpec) -> impl Iterator<Item = (String, &str)> {
    std::iter::once(("task.workdir".to_string(), task.workdir.as_str())).chain(
        task.file_mounts.iter().map(|(dest, source)| (format!("task.file_mounts[{dest}]"), source.as_str())),
    )
}

fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::File::options()
        .write(true)
        .open(path)
        .or_else(|_| std::fs::File::open(path))?
        .set_modified(SystemTime::now())
}

/// The total size of the files in `dir`.
fn held_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn older_than(path: &Path, keep: Duration) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|meta| meta.modified())
        .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age > keep))
}

fn sweep_user(dir: &Path, keep: Duration) -> usize {
    let mut removed = 0;
    let entries = |sub: &str| -> Vec<PathBuf> {
        std::fs::read_dir(dir.join(sub)).into_iter().flatten().flatten().map(|e| e.path()).collect()
    };
    for staged in entries("staged") {
        if older_than(&staged, keep) && std::fs::remove_dir_all(&staged).is_ok() {
            removed += 1;
        }
    }
    let mut listed = std::collections::HashSet::new();
    for tree in entries("trees") {
        if older_than(&tree, keep) {
            if std::fs::remove_file(&tree).is_ok() {
                removed += 1;
            }
            continue;
        }
        if let Ok(bytes) = std::fs::read(&tree)
            && let Ok(tree) = CreateTreeRequest::decode(bytes.as_slice())
        {
            listed.extend(tree.entries.into_iter().map(|entry| entry.digest));
        }
    }
    for blob in entries("blobs") {
        let name = blob.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !listed.contains(&name) && older_than(&blob, keep) && std::fs::remove_file(&blob).is_ok() {
            removed += 1;
        }
    }
    for partial in entries("incoming") {
        if older_than(&partial, Duration::from_secs(3600)) && std::fs::remove_file(&partial).is_ok() {
            removed += 1;
        }
    }
    removed
}
