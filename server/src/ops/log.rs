//! Operation logs: one append-only file per operation under `<data>/logs/`,
//! a watch on its length so followers wake when it grows, and readers that
//! start from an offset or from the last N lines.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::Mutex,
};

use tokio::sync::watch;

/// Largest chunk a reader returns at once.
pub const CHUNK_BYTES: usize = 64 * 1024;

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
        let file = OpenOptions::new().create(true).append(true).open(self.path(id))?;
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

/// Reads up to `CHUNK_BYTES` of `path` at `offset`; empty at or past the end
/// or when the file does not exist yet.
pub fn read_chunk(path: &Path, offset: u64) -> io::Result<Vec<u8>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(CHUNK_BYTES);
    file.take(CHUNK_BYTES as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// `read_chunk` on a blocking thread.
pub async fn read_chunk_async(path: PathBuf, offset: u64) -> crate::error::Result<Vec<u8>> {
    match tokio::task::spawn_blocking(move || read_chunk(&path, offset)).await {
        Ok(result) => Ok(result?),
        Err(err) => Err(crate::error::Error::internal(format!("log reader: {err}"))),
    }
}

/// The offset at which the last `lines` lines of `path` start.
pub fn tail_offset(path: &Path, lines: u64) -> io::Result<u64> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err),
    };
    let len = file.metadata()?.len();
    if lines == 0 {
        return Ok(len);
    }
    // Count newlines backwards; a final newline ends the last line rather
    // than starting an empty one.
    let mut end = len;
    let mut newlines = 0u64;
    let mut skip_final = true;
    let mut buf = vec![0u8; CHUNK_BYTES];
    while end > 0 {
        let start = end.saturating_sub(CHUNK_BYTES as u64);
        let block = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(block)?;
        for (i, byte) in block.iter().enumerate().rev() {
            if *byte != b'\n' {
                skip_final = false;
                continue;
            }
            if skip_final {
                skip_final = false;
                continue;
            }
            newlines += 1;
            if newlines == lines {
                return Ok(start + i as u64 + 1);
            }
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_offset_finds_the_start_of_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        fs::write(&path, "one\ntwo\nthree\n").unwrap();
        assert_eq!(tail_offset(&path, 1).unwrap(), 8);
        assert_eq!(tail_offset(&path, 2).unwrap(), 4);
        assert_eq!(tail_offset(&path, 5).unwrap(), 0);
        assert_eq!(tail_offset(&path, 0).unwrap(), 14);
        fs::write(&path, "one\ntwo").unwrap();
        assert_eq!(tail_offset(&path, 1).unwrap(), 4);
    }

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
