//! Operation logs: one append-only file per operation under `<data>/logs/`,
//! with a watch on its length so that followers wake when it grows.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt as _,
    path::PathBuf,
    sync::Mutex,
};

use tokio::sync::watch;

/// The folder of operation logs.
#[derive(Debug, Clone)]
pub struct LogDir {
    dir: PathBuf,
}

impl LogDir {
    pub fn open(dir: PathBuf) -> io::Result<LogDir> {
        fs::create_dir_all(&dir)?;
        Ok(LogDir { dir })
    }

    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.log"))
    }

    /// Opens (creating if needed) the log of operation `id` for appending.
    pub fn open_writer(&self, id: &str) -> io::Result<OpLog> {
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(self.path(id))?;
        let len = file.metadata()?.len();
        let (len_tx, _) = watch::channel(len);
        Ok(OpLog { file: Mutex::new(file), len: len_tx })
    }

    /// Current length of a log; 0 when it does not exist.
    pub fn len(&self, id: &str) -> u64 {
        fs::metadata(self.path(id)).map(|m| m.len()).unwrap_or(0)
    }

    /// Removes the log of operation `id`, if any.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

/// The writing end of one operation's log.
pub struct OpLog {
    file: Mutex<File>,
    len: watch::Sender<u64>,
}

impl OpLog {
    /// Appends `bytes` and wakes followers.
    pub fn append(&self, bytes: &[u8]) -> io::Result<()> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(bytes)?;
        self.len.send_modify(|len| *len += bytes.len() as u64);
        Ok(())
    }

    pub fn len(&self) -> u64 {
        *self.len.borrow()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A receiver that changes whenever the log grows.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.len.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logfile::read_chunk;

    #[test]
    fn appends_are_counted_and_readable_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogDir::open(dir.path().to_path_buf()).unwrap();
        let log = logs.open_writer("op").unwrap();
        log.append(b"hello ").unwrap();
        log.append(b"world\n").unwrap();
        assert_eq!(log.len(), 12);
        assert_eq!(read_chunk(&logs.path("op"), 6).unwrap(), b"world\n");
        assert!(read_chunk(&logs.path("missing"), 0).unwrap().is_empty());
    }
}
