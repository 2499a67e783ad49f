//! Clusters under Unix uids of their own, for a deployed server that runs as
//! root: each cluster of the local infra gets a uid that no account and no
//! other cluster has, its folder belongs to that uid (0700), and its jobs run
//! as it. A job then reads and signals nothing of the server's or of another
//! cluster's, as on a machine of its own.
//!
//! The owner of a cluster's folder is the record of its uid (nothing else to
//! keep in step across restarts). Everything the server does inside a
//! cluster's folder (writing scripts, reading logs and exit codes, copying
//! file mounts) runs with the cluster's file-system identity (`as_user`): a
//! job that swaps its log for a link to a server file gets the server an
//! error, not the file.

use std::{
    collections::HashSet,
    io,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::Path,
    sync::Mutex,
};

/// The first uid given to a cluster: above the ranges that distributions
/// give to accounts and that systemd gives to containers, so that a cluster
/// never shares a uid with someone on the host.
pub const FIRST_CLUSTER_UID: u32 = 1_900_000_000;

/// The identity that may read and write nothing of anyone's (the kernel's
/// overflow uid, `nobody` on most systems).
pub const NOBODY: u32 = 65_534;

/// How many uids clusters may take, from the first.
const CLUSTER_UIDS: u32 = 100_000_000;

/// Gives clusters their uids.
#[derive(Debug)]
pub struct ClusterUids {
    first: u32,
    /// One assignment at a time, so that two new clusters never pick the same uid.
    assigning: Mutex<()>,
}

impl ClusterUids {
    pub fn new(first: u32) -> ClusterUids {
        ClusterUids { first, assigning: Mutex::new(()) }
    }

    /// The uid of the cluster whose folder is `dir` (a folder of `root`),
    /// given a free one first when it has none yet: the folder and
    /// everything in it then belong to that uid.
    pub fn assign(&self, root: &Path, dir: &Path) -> io::Result<u32> {
        let _one_at_a_time = self.assigning.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let owner = std::fs::symlink_metadata(dir)?.uid();
        if owner != server_uid() {
            return Ok(owner);
        }
        let mut taken = HashSet::new();
        for entry in std::fs::read_dir(root)? {
            taken.insert(entry?.metadata()?.uid());
        }
        let uid = (self.first..self.first.saturating_add(CLUSTER_UIDS))
            .find(|uid| !taken.contains(uid) && !has_account(*uid))
            .ok_or_else(|| io::Error::other("every uid for clusters is taken"))?;
        give_tree(dir, uid)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(uid)
    }
}

/// The uid a cluster's folder belongs to: the identity its jobs and files
/// have. A folder still owned by the server has none yet (an error: the
/// server never works in a cluster's folder as itself in this mode).
pub fn cluster_uid(dir: &Path) -> io::Result<u32> {
    let owner = std::fs::symlink_metadata(dir)?.uid();
    if owner == server_uid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} has no uid of its own yet", dir.display()),
        ));
    }
    Ok(owner)
}

/// Runs `work` on this thread with the file-system identity of `uid` (its
/// uid and gid, no supplementary groups): files it creates belong to `uid`,
/// and it reads and writes only what `uid` may. The server's identity comes
/// back when `work` returns or panics. Linux keeps this identity per
/// thread, so other threads go on as the server.
pub fn as_user<T>(uid: u32, work: impl FnOnce() -> T) -> T {
    let _back = ThreadIdentity::switch_to(uid);
    work()
}

/// The calling thread's file-system identity while switched.
struct ThreadIdentity {
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
}

impl ThreadIdentity {
    fn switch_to(uid: u32) -> ThreadIdentity {
        // SAFETY: getgroups with a buffer of the size it reported; setgroups,
        // setfsgid and setfsuid as raw calls change this thread alone.
        unsafe {
            let count = libc::getgroups(0, std::ptr::null_mut()).max(0);
            let mut groups = vec![0; count as usize];
            let count = libc::getgroups(count, groups.as_mut_ptr()).max(0);
            groups.truncate(count as usize);
            let saved = ThreadIdentity { uid: libc::geteuid(), gid: libc::getegid(), groups };
            libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>());
            libc::setfsgid(uid);
            libc::setfsuid(uid);
            saved
        }
    }
}

impl Drop for ThreadIdentity {
    fn drop(&mut self) {
        // SAFETY: as above; the uid first, which brings back the rights to set the rest.
        unsafe {
            libc::setfsuid(self.uid);
            libc::setfsgid(self.gid);
            libc::syscall(libc::SYS_setgroups, self.groups.len(), self.groups.as_ptr());
        }
    }
}

/// Whether this server can run clusters under uids of their own: it runs as
/// root and a process started as the first cluster uid runs.
pub fn check_usable(first: u32) -> Result<(), String> {
    if server_uid() != 0 {
        return Err("the server does not run as root, so it cannot run jobs as other uids".into());
    }
    let mut probe = std::process::Command::new("true");
    std::os::unix::process::CommandExt::uid(&mut probe, first);
    std::os::unix::process::CommandExt::gid(&mut probe, first);
    match probe.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("a process started as uid {first} failed ({status})")),
        Err(err) => Err(format!("cannot start a process as uid {first}: {err}")),
    }
}

fn server_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Whether the host has an account with this uid (in /etc/passwd or any
/// other source the system's name service reads).
fn has_account(uid: u32) -> bool {
    let mut entry = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut found = std::ptr::null_mut();
    // SAFETY: getpwuid_r with an entry, a buffer and its length that outlive the call.
    let code =
        unsafe { libc::getpwuid_r(uid, entry.as_mut_ptr(), buffer.as_mut_ptr(), buffer.len(), &mut found) };
    code == 0 && !found.is_null()
}

/// Gives `path` and everything under it to `uid` (group too), links
/// themselves rather than what they point at.
fn give_tree(path: &Path, uid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))?;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            give_tree(&entry?.path(), uid)?;
        }
    }
    Ok(())
}
