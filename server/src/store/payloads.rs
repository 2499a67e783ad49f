//! Request payloads and job tasks as the store keeps them: sealed
//! (XChaCha20-Poly1305) under a key in a file beside the store (`db.key`,
//! 0600), so that task secrets and envs are never in the store's files in
//! plaintext and a copy of the store alone (a backup, a snapshot of its
//! volume) gives none of them away. A payload of more than `INLINE_MAX` bytes
//! lives in a file of its own (`db.payloads/<operation id>`): the records that
//! are read and rewritten at every state change stay small, nothing holds a
//! large payload in memory between its submission and its run, and deleting
//! an operation gives the space back at once.

use std::{
    fs,
    io::{self, Read as _, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use sha2::{Digest as _, Sha256};

use super::OpRecord;
use crate::error::{Error, ErrorReason, Result};

/// Sealed bytes start with this; bytes without it were stored before sealing.
const MAGIC: &[u8; 4] = b"SKS\x01";
const NONCE_BYTES: usize = 24;
/// Larger payloads go to a file of their own.
pub const INLINE_MAX: usize = 64 * 1024;

/// The sealing key and the folder of large payloads.
pub struct Payloads {
    cipher: XChaCha20Poly1305,
    dir: PathBuf,
}

impl Payloads {
    /// Opens (or creates) the key and the folder of the store at `db_dir`:
    /// `db.key` and `db.payloads` beside it.
    pub fn open(db_dir: &Path) -> Result<Payloads> {
        let key_file = db_dir.with_extension("key");
        let dir = db_dir.with_extension("payloads");
        let storage = |what: &Path, err: io::Error| {
            Error::new(ErrorReason::Storage, format!("cannot use {}: {err}", what.display()))
        };
        let key = read_or_create_key(&key_file).map_err(|err| storage(&key_file, err))?;
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|err| storage(&dir, err))?;
        Ok(Payloads { cipher: XChaCha20Poly1305::new((&key).into()), dir })
    }

    /// `plain`, sealed; empty stays empty.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>> {
        if plain.is_empty() {
            return Ok(Vec::new());
        }
        let mut nonce = [0u8; NONCE_BYTES];
        fill_random(&mut nonce)?;
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad: MAGIC })
            .map_err(|_| Error::internal("sealing failed"))?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_BYTES + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// What `seal` sealed; bytes stored before sealing come back as they are.
    pub fn unseal(&self, stored: &[u8]) -> Result<Vec<u8>> {
        let Some(rest) = stored.strip_prefix(MAGIC) else {
            return Ok(stored.to_vec());
        };
        let (nonce, sealed) = rest.split_at_checked(NONCE_BYTES).ok_or_else(damaged)?;
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: MAGIC })
            .map_err(|_| damaged())
    }

    /// Keeps the payload of a new operation: sealed in the record when small,
    /// else sealed in a file of its own (on disk before this returns).
    /// Records its size and digest either way.
    pub fn keep(&self, record: &mut OpRecord, plain: &[u8]) -> Result<()> {
        record.payload_size = plain.len() as i64;
        record.payload_digest = digest(plain);
        let sealed = self.seal(plain)?;
        if sealed.len() <= INLINE_MAX {
            record.payload = sealed;
            record.payload_in_file = false;
            return Ok(());
        }
        self.write_file(&record.id, &sealed).map_err(|err| {
            Error::new(ErrorReason::Storage, format!("cannot store the request of {}: {err}", record.id))
        })?;
        record.payload = Vec::new();
        record.payload_in_file = true;
        Ok(())
    }

    /// The payload of an operation, as it was submitted.
    pub fn load(&self, record: &OpRecord) -> Result<Vec<u8>> {
        if !record.payload_in_file {
            return self.unseal(&record.payload);
        }
        let mut sealed = Vec::new();
        fs::File::open(self.dir.join(&record.id))
            .and_then(|mut file| file.read_to_end(&mut sealed))
            .map_err(|err| {
                Error::new(ErrorReason::Storage, format!("the request of {} is unreadable: {err}", record.id))
            })?;
        self.unseal(&sealed)
    }

    /// Forgets an operation's payload file, if it has one.
    pub fn remove(&self, record: &OpRecord) -> Result<()> {
        if !record.payload_in_file {
            return Ok(());
        }
        match fs::remove_file(self.dir.join(&record.id)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    /// Writes `<dir>/<id>` whole or not at all, and makes it durable.
    fn write_file(&self, id: &str, sealed: &[u8]) -> io::Result<()> {
        let (path, partial) = (self.dir.join(id), self.dir.join(format!("{id}.partial")));
        let written = (|| {
            let mut file =
                fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&partial)?;
            file.write_all(sealed)?;
            file.sync_all()?;
            fs::rename(&partial, &path)?;
            fs::File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(&partial);
        }
        written
    }
}

/// The digest by which a repeated submission is recognised.
pub fn digest(plain: &[u8]) -> Vec<u8> {
    Sha256::digest(plain).to_vec()
}

fn damaged() -> Error {
    Error::new(
        ErrorReason::Storage,
        "a sealed record does not open with this store's key (db.key was replaced?)",
    )
}

fn read_or_create_key(path: &Path) -> io::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    match fs::File::open(path) {
        Ok(mut file) => {
            let mut read = Vec::new();
            file.read_to_end(&mut read)?;
            key = read.try_into().map_err(|_| io::Error::other("the key file is damaged (not 32 bytes)"))?;
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            fill_random(&mut key).map_err(|err| io::Error::other(err.to_string()))?;
            let partial = path.with_extension("key.partial");
            let mut file =
                fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&partial)?;
            file.write_all(&key)?;
            file.sync_all()?;
            fs::rename(&partial, path)?;
        }
        Err(err) => return Err(err),
    }
    Ok(key)
}

fn fill_random(bytes: &mut [u8]) -> Result<()> {
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(bytes))
        .map_err(|err| Error::internal(format!("cannot read random bytes: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_hold_no_plaintext_and_open_with_the_key_alone() {
        let dir = tempfile::tempdir().unwrap();
        let payloads = Payloads::open(&dir.path().join("db")).unwrap();
        let sealed = payloads.seal(b"AWS_SECRET=hunter2").unwrap();
        assert!(!sealed.windows(7).any(|window| window == b"hunter2"));
        assert_eq!(payloads.unseal(&sealed).unwrap(), b"AWS_SECRET=hunter2");
        // The same key after a restart; another store's key does not open it.
        assert_eq!(
            Payloads::open(&dir.path().join("db")).unwrap().unseal(&sealed).unwrap(),
            b"AWS_SECRET=hunter2"
        );
        let other = tempfile::tempdir().unwrap();
        assert!(Payloads::open(&other.path().join("db")).unwrap().unseal(&sealed).is_err());
        assert_eq!(payloads.unseal(b"\x0a\x03old").unwrap(), b"\x0a\x03old", "records from before sealing");
    }

    #[test]
    fn large_payloads_live_in_files_that_go_with_their_operation() {
        let dir = tempfile::tempdir().unwrap();
        let payloads = Payloads::open(&dir.path().join("db")).unwrap();
        let mut small = OpRecord { id: "small".into(), ..Default::default() };
        payloads.keep(&mut small, b"tiny").unwrap();
        assert!(!small.payload_in_file && !small.payload.is_empty());
        let big_payload = vec![7u8; INLINE_MAX * 4];
        let mut big = OpRecord { id: "big".into(), ..Default::default() };
        payloads.keep(&mut big, &big_payload).unwrap();
        assert!(big.payload_in_file && big.payload.is_empty());
        assert_eq!(big.payload_size, big_payload.len() as i64);
        assert_eq!(payloads.load(&big).unwrap(), big_payload);
        assert_eq!(payloads.load(&small).unwrap(), b"tiny");
        let file = dir.path().join("db.payloads/big");
        assert!(file.exists());
        payloads.remove(&big).unwrap();
        assert!(!file.exists());
    }
}
