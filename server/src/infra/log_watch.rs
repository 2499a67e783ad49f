//! Wake-ups for followers of job logs on this host: one file-system watcher
//! (inotify on Linux) for the folders of the jobs someone follows, so that a
//! follower wakes when the log grows instead of polling it. A folder is
//! watched while at least one follower holds a `LogChanges` for it.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::watch;

use super::LogChanges;

/// Each followed folder with its number of followers and their wake-up channel.
type Followed = Arc<Mutex<HashMap<PathBuf, (usize, watch::Sender<u64>)>>>;

/// The watcher and the followed folders.
struct Inner {
    watcher: Mutex<notify::RecommendedWatcher>,
    followed: Followed,
}

/// Whether an event only says that a file was opened, read or closed
/// without writing.
fn is_read_only(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    matches!(kind, EventKind::Access(access) if !matches!(access, AccessKind::Close(AccessMode::Write)))
}

/// Shared by the local infra; None inside when the system refused a watcher
/// (followers then poll).
pub struct LogWatch(Option<Arc<Inner>>);

impl LogWatch {
    pub fn new() -> LogWatch {
        let followed: Followed = Arc::default();
        let senders = followed.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            // A follower's own reads open and close the log: those events
            // must not wake it, or it reads, wakes and reads again forever.
            if is_read_only(&event.kind) {
                return;
            }
            let followed = senders.lock().unwrap_or_else(|p| p.into_inner());
            for dir in event.paths.iter().filter_map(|path| path.parent()) {
                if let Some((_, sender)) = followed.get(dir) {
                    sender.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
        });
        match watcher {
            Ok(watcher) => LogWatch(Some(Arc::new(Inner { watcher: Mutex::new(watcher), followed }))),
            Err(err) => {
                tracing::warn!(error = %err, "no file-system watcher: job log followers poll instead");
                LogWatch(None)
            }
        }
    }

    /// Wake-ups for changes to the files in `dir`; None when `dir` cannot be
    /// watched (it does not exist yet, or the system has no watches left).
    ///
    /// Watches are added and removed under the watcher's lock, and never
    /// while the map of followed folders is locked: the watcher's event
    /// thread takes that map's lock to deliver wake-ups.
    pub fn follow(&self, dir: &Path) -> Option<LogChanges> {
        let inner = self.0.as_ref()?;
        let mut watcher = inner.watcher.lock().unwrap_or_else(|p| p.into_inner());
        let existing = inner.followed(|followed| {
            followed.get_mut(dir).map(|(followers, sender)| {
                *followers += 1;
                sender.subscribe()
            })
        });
        let receiver = match existing {
            Some(receiver) => receiver,
            None => {
                watcher.watch(dir, RecursiveMode::NonRecursive).ok()?;
                let (sender, receiver) = watch::channel(0);
                inner.followed(|followed| followed.insert(dir.to_path_buf(), (1, sender)));
                receiver
            }
        };
        let unfollow = Unfollow { inner: inner.clone(), dir: dir.to_path_buf() };
        Some(LogChanges::new(receiver, Box::new(unfollow)))
    }
}

impl Inner {
    fn followed<T>(&self, f: impl FnOnce(&mut HashMap<PathBuf, (usize, watch::Sender<u64>)>) -> T) -> T {
        f(&mut self.followed.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Drops one follower of a folder, and the folder's watch with its last one.
struct Unfollow {
    inner: Arc<Inner>,
    dir: PathBuf,
}

impl Drop for Unfollow {
    fn drop(&mut self) {
        let mut watcher = self.inner.watcher.lock().unwrap_or_else(|p| p.into_inner());
        let last = self.inner.followed(|followed| {
            let Some((followers, _)) = followed.get_mut(&self.dir) else { return false };
            *followers -= 1;
            let last = *followers == 0;
            if last {
                followed.remove(&self.dir);
            }
            last
        });
        if last {
            let _ = watcher.unwatch(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[tokio::test]
    async fn a_follower_wakes_when_a_file_in_the_folder_grows() {
        let dir = tempfile::tempdir().unwrap();
        let watch = LogWatch::new();
        assert!(watch.follow(&dir.path().join("missing")).is_none());
        let mut changes = watch.follow(dir.path()).expect("a watch");
        let mut second = watch.follow(dir.path()).expect("a second follower");
        std::fs::write(dir.path().join("run.log"), "line\n").unwrap();
        changes.changed().await;
        second.changed().await;
        drop((changes, second));
        let inner = watch.0.as_ref().unwrap();
        assert!(inner.followed.lock().unwrap().is_empty(), "the last follower unwatches");
    }

    /// Reading a log (as its followers do) opens and closes it: that wakes nobody.
    #[tokio::test]
    async fn reading_a_log_wakes_no_follower_and_writing_does() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run.log");
        std::fs::write(&log, "line\n").unwrap();
        let watch = LogWatch::new();
        let mut changes = watch.follow(dir.path()).expect("a watch");
        for _ in 0..20 {
            std::fs::read(&log).unwrap();
        }
        std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"more\n").unwrap();
        changes.changed().await;
        // Events arrive in order: the reads came first, and counted for nothing.
        let wakes = *changes.changes.borrow();
        assert!(wakes <= 3, "{wakes} wake-ups for one write after 20 reads");
    }
}
