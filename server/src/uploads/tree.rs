//! A tree as a client describes it: checked before it is recorded (paths
//! that stay inside it, links that lead nowhere outside, contents the user
//! holds), named by the digest of its canonical form, and made into files
//! on the API server's host.

use std::{
    collections::{HashMap, HashSet},
    io,
    os::unix::fs::PermissionsExt as _,
    path::{Component, Path, PathBuf},
};

use prost::Message as _;
use sha2::{Digest as _, Sha256};
use skypilot_api::proto::skypilot::v1::{CreateTreeRequest, EntryKind, TreeEntry};

use crate::error::{Error, Result};

/// The longest path an entry may have.
const MAX_PATH: usize = 4096;

/// Whether `digest` is a SHA-256 in lowercase hex.
pub fn is_digest(digest: &str) -> bool {
    digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks `tree` (whose files' sizes `size_of` knows, by digest) and puts
/// it in canonical form (entries sorted, modes masked); returns its digest
/// and its files' total size.
pub fn check(
    tree: &mut CreateTreeRequest,
    size_of: impl Fn(&str) -> Option<u64>,
    max_bytes: u64,
) -> Result<(String, u64)> {
    let invalid = |index: usize, why: String| Error::invalid(&format!("entries[{index}]"), why);
    tree.entries.sort_by(|a, b| a.path.cmp(&b.path));
    let kinds: HashMap<&str, EntryKind> = tree.entries.iter().map(|e| (e.path.as_str(), e.kind())).collect();
    let mut seen = HashSet::new();
    let mut total = 0u64;
    for (index, entry) in tree.entries.iter().enumerate() {
        let path = check_path(&entry.path).map_err(|why| invalid(index, why))?;
        if !seen.insert(entry.path.as_str()) {
            return Err(invalid(index, format!("{:?} is listed twice", entry.path)));
        }
        let mut ancestor = path.parent();
        while let Some(dir) = ancestor.filter(|dir| !dir.as_os_str().is_empty()) {
            let kind = kinds.get(dir.to_str().unwrap_or_default()).copied();
            if matches!(kind, Some(EntryKind::File | EntryKind::Symlink)) {
                return Err(invalid(
                    index,
                    format!("{:?} is inside {}, which is not a folder", entry.path, dir.display()),
                ));
            }
            ancestor = dir.parent();
        }
        match entry.kind() {
            EntryKind::File => {
                if !is_digest(&entry.digest) {
                    return Err(invalid(
                        index,
                        "a file needs the SHA-256 of its content, in lowercase hex".into(),
                    ));
                }
                let held = size_of(&entry.digest);
                if held != Some(entry.size as u64) || entry.size < 0 {
                    return Err(invalid(
                        index,
                        format!(
                            "the content of {:?} ({}) was not uploaded: send it with UploadBlobs first",
                            entry.path, entry.digest
                        ),
                    ));
                }
                total += entry.size as u64;
            }
            EntryKind::Directory => {}
            EntryKind::Symlink => check_link(&path, &entry.link_target).map_err(|why| invalid(index, why))?,
            EntryKind::Unspecified => {
                return Err(invalid(index, "kind must be FILE, DIRECTORY or SYMLINK".into()));
            }
        }
    }
    for entry in &mut tree.entries {
        entry.mode &= 0o777;
    }
    if tree.single_file
        && !(tree.entries.len() == 1
            && tree.entries[0].kind() == EntryKind::File
            && !tree.entries[0].path.contains('/'))
    {
        return Err(Error::invalid("single_file", "a single-file tree holds exactly one file, at its top"));
    }
    if total > max_bytes {
        return Err(Error::new(
            crate::error::ErrorReason::ResourceExhausted,
            format!("the tree holds {total} bytes, more than this server takes in one upload ({max_bytes})"),
        ));
    }
    let digest = skypilot_api::identity::hex(&Sha256::digest(tree.encode_to_vec()));
    Ok((digest, total))
}

/// A relative path of normal components.
fn check_path(path: &str) -> std::result::Result<PathBuf, String> {
    if path.is_empty() || path.len() > MAX_PATH || path.contains('\0') {
        return Err(format!("path {path:?} must be 1 to {MAX_PATH} characters, without NUL"));
    }
    let parsed = Path::new(path);
    if path.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(format!("path {path:?} must be relative, without \"..\" or \".\" parts"));
    }
    Ok(parsed.to_path_buf())
}

/// A link must point inside the tree: relative, never above its top.
fn check_link(path: &Path, target: &str) -> std::result::Result<(), String> {
    let target_path = Path::new(target);
    if target.is_empty() || target_path.is_absolute() || target.contains('\0') {
        return Err(format!("link {} must point to a relative path inside the tree", path.display()));
    }
    let mut depth = path.components().count() as i64 - 1;
    for component in target_path.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => depth = -1,
        }
        if depth < 0 {
            return Err(format!("link {} -> {target} leads out of the tree", path.display()));
        }
    }
    Ok(())
}

/// Makes the files of a checked `tree` under `dest` (which must not exist),
/// with contents from `blob(digest)`.
pub fn make(tree: &CreateTreeRequest, dest: &Path, blob: impl Fn(&str) -> PathBuf) -> io::Result<()> {
    std::fs::create_dir_all(dest)?;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755))?;
    for entry in &tree.entries {
        let path = dest.join(&entry.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match entry.kind() {
            EntryKind::Directory => std::fs::create_dir_all(&path)?,
            EntryKind::File => copy_checked(&blob(&entry.digest), &path, &entry.digest)?,
            EntryKind::Symlink => std::os::unix::fs::symlink(&entry.link_target, &path)?,
            EntryKind::Unspecified => {}
        }
    }
    // Modes last, deepest first, so that a read-only folder is filled
    // first. Readable by all: the copy to a node may run as the cluster's
    // own uid (the path, named by the tree's digest, is the secret).
    for entry in tree.entries.iter().rev() {
        if entry.kind() != EntryKind::Symlink {
            let mode = match entry.kind() {
                EntryKind::Directory => entry.mode | 0o755,
                _ => entry.mode | 0o444,
            };
            std::fs::set_permissions(dest.join(&entry.path), std::fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

/// Copies a content, checking that it still has its digest (a content
/// damaged on disk is removed, so that the client sends it again).
fn copy_checked(blob: &Path, dest: &Path, digest: &str) -> io::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut source = std::fs::File::open(blob)?;
    let mut out = std::fs::File::create(dest)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = source.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        out.write_all(&buffer[..read])?;
    }
    if skypilot_api::identity::hex(&hasher.finalize()) != digest {
        let _ = std::fs::remove_file(blob);
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the uploaded content {digest} was damaged on the server's disk: upload it again"),
        ));
    }
    Ok(())
}

/// The entry a single-file tree holds.
pub fn single_file(tree: &CreateTreeRequest) -> Option<&TreeEntry> {
    tree.single_file.then(|| tree.entries.first()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind) -> TreeEntry {
        TreeEntry { path: path.into(), kind: kind as i32, mode: 0o644, ..Default::default() }
    }

    fn file(path: &str) -> TreeEntry {
        TreeEntry { digest: "a".repeat(64), size: 3, ..entry(path, EntryKind::File) }
    }

    fn link(path: &str, target: &str) -> TreeEntry {
        TreeEntry { link_target: target.into(), ..entry(path, EntryKind::Symlink) }
    }

    fn checked(entries: Vec<TreeEntry>) -> Result<(String, u64)> {
        check(&mut CreateTreeRequest { entries, single_file: false }, |_| Some(3), 1 << 20)
    }

    #[test]
    fn paths_and_links_that_lead_out_of_the_tree_are_refused() {
        for bad in ["../x", "/etc/passwd", "a/../../x", "./a", "a//b", ""] {
            let err = checked(vec![file(bad)]).unwrap_err();
            assert!(err.message.contains("entries[0]"), "{bad}: {err}");
        }
        for target in ["../../etc", "/etc/passwd", "../.."] {
            assert!(checked(vec![link("dir/l", target)]).is_err(), "{target}");
        }
        assert!(checked(vec![entry("dir", EntryKind::Directory), link("dir/l", "../top.txt")]).is_ok());
        let through_a_link = checked(vec![link("l", "."), file("l/x")]).unwrap_err();
        assert!(through_a_link.message.contains("not a folder"), "{through_a_link}");
    }

    #[test]
    fn a_tree_is_named_by_its_content_whatever_the_order_of_its_entries() {
        let one = checked(vec![file("a"), file("b")]).unwrap();
        let other = checked(vec![file("b"), file("a")]).unwrap();
        assert_eq!(one, other);
        assert_eq!(one.1, 6);
        assert_ne!(checked(vec![file("a")]).unwrap().0, one.0);
    }

    #[test]
    fn contents_not_uploaded_and_trees_over_the_limit_are_refused() {
        let mut tree = CreateTreeRequest { entries: vec![file("a")], single_file: false };
        let err = check(&mut tree, |_| None, 1 << 20).unwrap_err();
        assert!(err.message.contains("UploadBlobs"), "{err}");
        let err = check(&mut tree, |_| Some(3), 2).unwrap_err();
        assert_eq!(err.reason, crate::error::ErrorReason::ResourceExhausted);
    }

    #[test]
    fn a_tree_is_made_with_its_modes_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("blob");
        std::fs::write(&blob, "abc").unwrap();
        let mut script = file("bin/run.sh");
        script.mode = 0o755;
        script.digest = skypilot_api::identity::hex(&Sha256::digest(b"abc"));
        let tree = CreateTreeRequest {
            entries: vec![entry("bin", EntryKind::Directory), script, link("run", "bin/run.sh")],
            single_file: false,
        };
        let dest = dir.path().join("tree");
        make(&tree, &dest, |_| blob.clone()).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("run")).unwrap(), "abc");
        let mode = std::fs::metadata(dest.join("bin/run.sh")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(std::fs::read_link(dest.join("run")).unwrap(), Path::new("bin/run.sh"));

        // A content damaged on disk is not used, and is dropped.
        std::fs::write(&blob, "abd").unwrap();
        let err = make(&tree, &dir.path().join("again"), |_| blob.clone()).unwrap_err();
        assert!(err.to_string().contains("damaged") && !blob.exists(), "{err}");
    }
}
