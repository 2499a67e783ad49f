//! Receiving contents (UploadBlobs): each is written to a file of its own
//! in `incoming/`, hashed as it comes, and moved into `blobs/` only once it
//! is whole and matches its digest. A stream that ends or breaks mid-content
//! leaves nothing behind. Contents are not flushed one by one (that would
//! halve upload speed): a content that a power loss damaged after its move
//! is found when a launch reads it, as `tree::make` checks every digest.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
};

use sha2::{Digest as _, Sha256};
use skypilot_api::proto::skypilot::v1::UploadBlobsResponse;
use tokio::io::AsyncWriteExt as _;

use super::{Inner, MAX_CHUNK, tree::is_digest};
use crate::error::{Error, ErrorReason, Result};

/// One stream of contents for one user.
pub struct Receiver {
    /// The user's uploads folder.
    dir: PathBuf,
    /// How many more bytes the user's quota takes.
    room: u64,
    quota: u64,
    shared: Arc<Inner>,
    current: Option<Incoming>,
    response: UploadBlobsResponse,
}

/// The content being received.
struct Incoming {
    digest: String,
    size: u64,
    written: u64,
    sink: Sink,
    hasher: Sha256,
}

/// Where a content's bytes go until it is whole: small ones (most files of
/// a workdir) stay in memory and are written in one go.
enum Sink {
    Memory(Vec<u8>),
    File { file: tokio::fs::File, path: PathBuf },
}

impl Receiver {
    pub(super) fn new(dir: PathBuf, room: u64, quota: u64, shared: Arc<Inner>) -> Receiver {
        Receiver { dir, room, quota, shared, current: None, response: UploadBlobsResponse::default() }
    }

    /// Starts a content of `size` bytes whose SHA-256 is `digest`.
    pub async fn header(&mut self, digest: &str, size: i64) -> Result<()> {
        if let Some(current) = &self.current {
            return Err(cut_short(current));
        }
        if !is_digest(digest) {
            return Err(Error::invalid(
                "header.digest",
                format!("{digest:?} is not a SHA-256 in lowercase hex"),
            ));
        }
        let size = u64::try_from(size).map_err(|_| Error::invalid("header.size", "must not be negative"))?;
        if size > self.room {
            return Err(Error::new(
                ErrorReason::ResourceExhausted,
                format!(
                    "a content of {size} bytes does not fit your upload quota ({} bytes, {} left): \
                     leave large files out (.skyignore) or ask an admin for a larger quota",
                    self.quota, self.room
                ),
            ));
        }
        let sink = match size <= MAX_CHUNK as u64 {
            true => Sink::Memory(Vec::with_capacity(size as usize)),
            false => {
                let path = self.incoming_path()?;
                let file = tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .await?;
                Sink::File { file, path }
            }
        };
        self.current =
            Some(Incoming { digest: digest.to_string(), size, written: 0, sink, hasher: Sha256::new() });
        if size == 0 {
            self.complete().await?;
        }
        Ok(())
    }

    /// The next bytes of the current content.
    pub async fn data(&mut self, data: &[u8]) -> Result<()> {
        let Some(current) = self.current.as_mut() else {
            return Err(Error::invalid("data", "came before a header: send the content's header first"));
        };
        if data.len() > MAX_CHUNK {
            return Err(Error::invalid("data", format!("at most {MAX_CHUNK} bytes per message")));
        }
        if current.written + data.len() as u64 > current.size {
            return Err(Error::invalid(
                "data",
                format!("content {} has more bytes than its header said ({})", current.digest, current.size),
            ));
        }
        match &mut current.sink {
            Sink::Memory(bytes) => bytes.extend_from_slice(data),
            Sink::File { file, .. } => file.write_all(data).await?,
        }
        current.hasher.update(data);
        current.written += data.len() as u64;
        if current.written == current.size {
            self.complete().await?;
        }
        Ok(())
    }

    /// Ends the stream; refused when a content is cut short.
    pub fn finish(mut self) -> Result<UploadBlobsResponse> {
        if let Some(current) = &self.current {
            return Err(cut_short(current));
        }
        Ok(std::mem::take(&mut self.response))
    }

    /// A fresh file name in `incoming/`.
    fn incoming_path(&self) -> Result<PathBuf> {
        Ok(self.dir.join("incoming").join(skypilot_api::identity::random_hex(16)?))
    }

    /// Keeps the current content, now whole, if it matches its digest.
    async fn complete(&mut self) -> Result<()> {
        let mut current = self.current.take().expect("a current content");
        let got = skypilot_api::identity::hex(&current.hasher.finalize_reset());
        let blob = self.dir.join("blobs").join(&current.digest);
        if got != current.digest {
            if let Sink::File { path, .. } = &current.sink {
                let _ = tokio::fs::remove_file(path).await;
            }
            return Err(Error::invalid(
                "data",
                format!("the bytes sent for {} have digest {got}: nothing was kept", current.digest),
            ));
        }
        match current.sink {
            Sink::Memory(bytes) => {
                let path = self.incoming_path()?;
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
                    let mut file =
                        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
                    file.write_all(&bytes)?;
                    std::fs::rename(&path, &blob)
                })
                .await
                .map_err(|err| Error::internal(format!("keeping an upload: {err}")))??;
            }
            Sink::File { mut file, path } => {
                file.flush().await?;
                tokio::fs::rename(&path, &blob).await?;
            }
        }
        self.room = self.room.saturating_sub(current.size);
        self.response.blobs += 1;
        self.response.bytes += current.size as i64;
        self.shared.received.fetch_add(current.size, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Receiver {
    /// A content cut short is not kept.
    fn drop(&mut self) {
        if let Some(Incoming { sink: Sink::File { path, .. }, .. }) = self.current.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn cut_short(current: &Incoming) -> Error {
    Error::invalid(
        "data",
        format!(
            "content {} was cut short ({} of {} bytes): nothing of it was kept",
            current.digest, current.written, current.size
        ),
    )
}
