//! The server's data directory: one server per directory (an exclusive file
//! lock), and a refusal to take over a directory that holds something else.

use std::{
    fmt,
    fs::{self, File},
    io,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

/// Entries a data dir may hold before the server first starts in it: what
/// the server and the CLI create, plus what a fresh volume comes with.
const KNOWN_ENTRIES: &[&str] = &[
    "server.lock",
    "server.pid",
    "server.log",
    ".start.lock",
    "db",
    "db.identity",
    "db.key",
    "db.payloads",
    "logs",
    "clusters",
    "job_logs",
    "ssh",
    "initial-admin-password",
    "lost+found",
];

/// What Python SkyPilot keeps in the same default directory
/// (`~/.sky/api_server`): left alone, and no reason to refuse it.
const PYTHON_SKYPILOT_PREFIXES: &[&str] = &["requests.db", "requests", "metrics"];

/// Why a data directory cannot be used.
#[derive(Debug)]
pub enum DataDirError {
    Io { dir: PathBuf, source: io::Error },
    Locked { dir: PathBuf, pid: Option<String> },
    Foreign { dir: PathBuf, found: Vec<String> },
}

impl fmt::Display for DataDirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataDirError::Io { dir, source } => {
                write!(f, "cannot use data directory {}: {source}", dir.display())
            }
            DataDirError::Locked { dir, pid } => {
                write!(f, "another API server is already running on data directory {}", dir.display())?;
                if let Some(pid) = pid {
                    write!(f, " (pid {pid})")?;
                }
                write!(f, "; stop it with `sky api stop` or choose another data directory")
            }
            DataDirError::Foreign { dir, found } => write!(
                f,
                "data directory {} holds files that are not the API server's ({}): refusing to use \
                 it; choose an empty or new directory with --data-dir (or SKYPILOT_API_SERVER_DATA_DIR)",
                dir.display(),
                found.join(", ")
            ),
        }
    }
}

impl std::error::Error for DataDirError {}

impl DataDirError {
    fn io(dir: &Path) -> impl FnOnce(io::Error) -> DataDirError + '_ {
        move |source| DataDirError::Io { dir: dir.to_path_buf(), source }
    }
}

/// The subdirectories of a data dir.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    /// Creates `root` if needed, refuses a foreign directory and takes the
    /// lock, held as long as the returned file is open.
    pub fn take(root: &Path) -> Result<(DataDir, File), DataDirError> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(root).map_err(DataDirError::io(root))?;
        check_not_foreign(root)?;
        let lock = lock(root)?;
        close_to_others(root).map_err(DataDirError::io(root))?;
        Ok((DataDir { root: root.to_path_buf() }, lock))
    }

    pub fn store(&self) -> PathBuf {
        self.root.join("db")
    }

    pub fn operation_logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn clusters(&self) -> PathBuf {
        self.root.join("clusters")
    }

    /// Job logs of torn-down clusters, kept for `job_logs_retention_hours`.
    pub fn archived_job_logs(&self) -> PathBuf {
        self.root.join("job_logs")
    }

    /// Managed jobs' output and controller logs, one folder per job.
    pub fn managed_jobs(&self) -> PathBuf {
        self.root.join("managed_jobs")
    }

    /// The generated password of the first admin, when none was given.
    pub fn initial_admin_password(&self) -> PathBuf {
        self.root.join("initial-admin-password")
    }

    /// Uploaded workdirs and file mounts, per user.
    pub fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// SSH state: pinned host keys and connection sockets.
    pub fn ssh(&self) -> PathBuf {
        self.root.join("ssh")
    }

    /// Slurm state: the login nodes' pinned host keys and connection
    /// sockets, and the id that names this server's allocations.
    pub fn slurm(&self) -> PathBuf {
        self.root.join("slurm")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.root.join("server.pid")
    }

    /// Lets jobs under other uids reach their clusters' folders: the data
    /// dir becomes searchable, not readable (0711), so that they reach only
    /// paths they can name; everything else in it stays the server's alone.
    /// Every folder above must be searchable too.
    pub fn open_to_cluster_uids(&self) -> Result<(), String> {
        for folder in self.root.ancestors().skip(1) {
            let mode = fs::metadata(folder)
                .map_err(|err| format!("{}: {err}", folder.display()))?
                .permissions()
                .mode();
            if mode & 0o001 == 0 {
                return Err(format!(
                    "jobs could not reach the data directory {}: {} is closed to other users (mode {:o}); \
                     choose a data directory under searchable folders (e.g. --data-dir /var/lib/skypilot)",
                    self.root.display(),
                    folder.display(),
                    mode & 0o7777
                ));
            }
        }
        let closed = || -> io::Result<()> {
            // What the data dir holds stays closed, whatever the modes inside.
            for entry in fs::read_dir(&self.root)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                if entry.file_name() != "clusters" && !meta.file_type().is_symlink() {
                    fs::set_permissions(
                        entry.path(),
                        fs::Permissions::from_mode(meta.permissions().mode() & 0o7700),
                    )?;
                }
            }
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o711))
        };
        closed().map_err(|err| format!("{}: {err}", self.root.display()))
    }
}

/// A directory that already holds our store is ours (the store checks its
/// identity); otherwise it may hold only entries the server would create,
/// and Python SkyPilot's.
fn check_not_foreign(root: &Path) -> Result<(), DataDirError> {
    if root.join("db.identity").exists() || root.join("db/conf").exists() {
        return Ok(());
    }
    let entries = fs::read_dir(root).map_err(DataDirError::io(root))?;
    let mut foreign: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            !KNOWN_ENTRIES.contains(&name.as_str()) || (name == "db" && !is_empty_folder(&root.join("db")))
        })
        .filter(|name| !PYTHON_SKYPILOT_PREFIXES.iter().any(|prefix| name.starts_with(prefix)))
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    foreign.truncate(3);
    Err(DataDirError::Foreign { dir: root.to_path_buf(), found: foreign })
}

fn is_empty_folder(path: &Path) -> bool {
    path.is_dir() && !has_entries(path)
}

/// Whether `dir` is a folder with something in it.
pub(crate) fn has_entries(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// Makes the data dir and what the server keeps in it reachable by the
/// server's user alone (folders 0700, files without group or other bits).
/// A data dir that is closed already is left as it is (the server creates
/// its files so); one an older server left open is repaired whole. Node
/// folders under `clusters/` hold users' files, whose modes are theirs.
fn close_to_others(root: &Path) -> io::Result<()> {
    // Searchable by others (0711) is closed: jobs under uids of their own
    // need that much (`open_to_cluster_uids`).
    if fs::metadata(root)?.permissions().mode() & 0o066 == 0 {
        return Ok(());
    }
    fn close(path: &Path, skip: Option<&Path>) -> io::Result<()> {
        let meta = fs::symlink_metadata(path)?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7700))?;
        }
        if meta.is_dir() && Some(path) != skip {
            for entry in fs::read_dir(path)? {
                close(&entry?.path(), skip)?;
            }
        }
        Ok(())
    }
    close(root, Some(&root.join("clusters")))
}

/// Takes the exclusive lock on `<root>/server.lock`.
fn lock(root: &Path) -> Result<File, DataDirError> {
    let path = root.join("server.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(DataDirError::io(root))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => {
            let pid = fs::read_to_string(root.join("server.pid"))
                .ok()
                .and_then(|text| text.lines().next().map(str::to_string));
            Err(DataDirError::Locked { dir: root.to_path_buf(), pid })
        }
        Err(fs::TryLockError::Error(source)) => Err(DataDirError::io(root)(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_data_dir_is_closed_to_other_users() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("api_server");
        let (_data_dir, _lock) = DataDir::take(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("server.lock")), 0o600);
    }

    #[test]
    fn an_open_data_dir_is_repaired_but_node_folders_keep_their_modes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("api_server");
        fs::create_dir_all(root.join("logs")).unwrap();
        fs::create_dir_all(root.join("clusters/dev/node-0/sky_workdir")).unwrap();
        fs::write(root.join("server.log"), "").unwrap();
        fs::write(root.join("logs/a.log"), "").unwrap();
        fs::write(root.join("clusters/dev/node-0/sky_workdir/run.sh"), "").unwrap();
        for (path, mode) in [("", 0o755), ("logs", 0o755), ("server.log", 0o644), ("logs/a.log", 0o644)] {
            fs::set_permissions(root.join(path), fs::Permissions::from_mode(mode)).unwrap();
        }
        let script = root.join("clusters/dev/node-0/sky_workdir/run.sh");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let (_data_dir, _lock) = DataDir::take(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("logs")), 0o700);
        assert_eq!(mode(&root.join("server.log")), 0o600);
        assert_eq!(mode(&root.join("logs/a.log")), 0o600);
        assert_eq!(mode(&root.join("clusters")), 0o700);
        assert_eq!(mode(&script), 0o755, "a user's file keeps its mode");
    }

    #[test]
    fn a_directory_with_other_files_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("thesis.tex"), "mine").unwrap();
        let err = DataDir::take(dir.path()).err().unwrap();
        let message = err.to_string();
        assert!(message.contains("thesis.tex") && message.contains("--data-dir"), "{message}");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["thesis.tex"]);
    }

    #[test]
    fn a_db_folder_that_is_not_a_store_is_foreign() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("db/migrations")).unwrap();
        assert!(matches!(DataDir::take(dir.path()), Err(DataDirError::Foreign { .. })));
    }

    #[test]
    fn python_skypilots_files_in_the_default_directory_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("requests.db"), "").unwrap();
        fs::write(dir.path().join("server.log"), "").unwrap();
        assert!(DataDir::take(dir.path()).is_ok());
    }

    #[test]
    fn a_fresh_volume_with_lost_and_found_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("lost+found")).unwrap();
        fs::write(dir.path().join("server.log"), "").unwrap();
        assert!(DataDir::take(dir.path()).is_ok());
    }

    #[test]
    fn a_second_server_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_data_dir, _lock) = DataDir::take(dir.path()).unwrap();
        let err = DataDir::take(dir.path()).err().unwrap();
        assert!(matches!(err, DataDirError::Locked { .. }), "{err}");
    }
}
