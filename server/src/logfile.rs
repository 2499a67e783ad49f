//! Append-only log files, as operations and jobs write them: reading a chunk
//! at a byte offset, finding where the last N lines start, and the one loop
//! that follows a log while its writer runs (resumable from any offset).

use std::{
    fs::File,
    future::Future,
    io::{self, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use futures_util::stream::{self, Stream};

use crate::error::{Error, Result};

/// Largest chunk a reader returns at once.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Reads up to `CHUNK_BYTES` of `path` at `offset`; empty at or past the end
/// or when the file does not exist yet.
pub fn read_chunk(path: &Path, offset: u64) -> io::Result<Vec<u8>> {
    let mut file = match open_regular(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(CHUNK_BYTES);
    file.take(CHUNK_BYTES as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Opens a regular file for reading without ever waiting: a FIFO, socket or
/// device in its place is refused (opening a FIFO would block until someone
/// writes to it).
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file, folder or link", path.display()),
        ));
    }
    Ok(file)
}

/// `read_chunk` on a blocking thread.
pub async fn read_chunk_async(path: PathBuf, offset: u64) -> Result<Vec<u8>> {
    match tokio::task::spawn_blocking(move || read_chunk(&path, offset)).await {
        Ok(result) => Ok(result?),
        Err(err) => Err(Error::internal(format!("log reader: {err}"))),
    }
}

/// The offset at which the last `lines` lines of `path` start.
pub fn tail_offset(path: &Path, lines: u64) -> io::Result<u64> {
    let mut file = match open_regular(path) {
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

/// A log being followed: where its bytes come from and how its writer is doing.
pub trait Followed: Send + 'static {
    /// What the last item of the stream carries once the writer has finished.
    type End: Send + 'static;
    /// Reads the chunk at `offset` (empty at the end, for now).
    fn read(&mut self, offset: u64) -> impl Future<Output = Result<Vec<u8>>> + Send;
    /// Marks every change so far as seen and returns the end once the writer
    /// has finished (or when not following): reaching the end of the log
    /// after that means the log is complete.
    fn finished(&mut self) -> Result<Option<Self::End>>;
    /// Waits until the log may have grown or the writer's state changed;
    /// an error (the server shutting down) ends the stream.
    fn changed(&mut self) -> impl Future<Output = Result<()>> + Send;
}

/// One item of a followed log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<E> {
    Data {
        offset: u64,
        data: Vec<u8>,
    },
    /// The log is complete at `offset`.
    End {
        offset: u64,
        end: E,
    },
}

/// Streams `log` from `start`: its chunks as they appear, then its end.
/// An error is the last item.
pub fn follow<F: Followed>(log: F, start: u64) -> impl Stream<Item = Result<Piece<F::End>>> + Send {
    stream::unfold(Some((log, start)), |state| async move {
        let (mut log, offset) = state?;
        loop {
            let end = match log.finished() {
                Ok(end) => end,
                Err(err) => return Some((Err(err), None)),
            };
            let data = match log.read(offset).await {
                Ok(data) => data,
                Err(err) => return Some((Err(err), None)),
            };
            if !data.is_empty() {
                let next = offset + data.len() as u64;
                return Some((Ok(Piece::Data { offset, data }), Some((log, next))));
            }
            if let Some(end) = end {
                return Some((Ok(Piece::End { offset, end }), None));
            }
            if let Err(err) = log.changed().await {
                return Some((Err(err), None));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_offset_finds_the_start_of_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        assert_eq!(tail_offset(&path, 1).unwrap(), 8);
        assert_eq!(tail_offset(&path, 2).unwrap(), 4);
        assert_eq!(tail_offset(&path, 5).unwrap(), 0);
        assert_eq!(tail_offset(&path, 0).unwrap(), 14);
        std::fs::write(&path, "one\ntwo").unwrap();
        assert_eq!(tail_offset(&path, 1).unwrap(), 4);
    }
}
