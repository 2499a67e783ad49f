//! The store's identity, kept both inside the database and in a marker file
//! beside it (`db.identity`). sled opens damaged files as an empty database
//! without an error; the marker lets the server notice that, or a database
//! swapped in from elsewhere, at start instead of serving an empty store.
//! (sled's own recovery may already have rewritten the damaged files by then:
//! the way back is a backup of the data directory.)

use std::path::{Path, PathBuf};

use skypilot_api::identity::random_hex;

use crate::{
    data_dir::has_entries,
    error::{Error, ErrorReason, Result},
};

const ID_KEY: &[u8] = b"store_id";
const MARKER_HEADER: &str = "skypilot-api-server store";

/// Checks that the database at `path` is the one its marker names; gives a
/// new store its identity. `has_schema`: the database records a schema
/// version, which every store written by a server has.
pub(super) fn check(db: &sled::Db, path: &Path, has_schema: bool) -> Result<()> {
    let meta = db.open_tree("meta")?;
    let stored = meta.get(ID_KEY)?.map(|raw| String::from_utf8_lossy(&raw).into_owned());
    let marker = marker_path(path);
    let recorded = read_marker(&marker)?;
    match (recorded, stored) {
        (Some(recorded), Some(stored)) if recorded == stored => Ok(()),
        (Some(recorded), Some(stored)) => Err(damaged(
            path,
            format!("it holds store {stored}, but {} names store {recorded}", marker.display()),
        )),
        (Some(recorded), None) => Err(damaged(
            path,
            format!("its identity {recorded} is missing, so its files are damaged or were replaced"),
        )),
        // The marker is written after the identity is durable: a store without
        // one is new, or stopped in between.
        (None, Some(stored)) => write_marker(&marker, &stored),
        // Empty, with request logs beside it: a store that sled opened empty.
        (None, None) if !has_schema && has_entries(&path.with_file_name("logs")) => Err(damaged(
            path,
            "it is empty, but the data directory holds request logs, so its files are damaged or \
             were removed"
                .into(),
        )),
        // A store of a server from before markers (it has a schema), or a new one.
        (None, None) => {
            let id = random_hex(16)?;
            meta.insert(ID_KEY, id.as_bytes())?;
            db.flush()?;
            write_marker(&marker, &id)
        }
    }
}

fn marker_path(path: &Path) -> PathBuf {
    path.with_extension("identity")
}

fn read_marker(marker: &Path) -> Result<Option<String>> {
    let text = match std::fs::read_to_string(marker) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(Error::new(ErrorReason::Storage, format!("cannot read {}: {err}", marker.display())));
        }
    };
    let mut lines = text.lines();
    match (lines.next(), lines.next().and_then(|line| line.strip_prefix("id="))) {
        (Some(MARKER_HEADER), Some(id)) if !id.is_empty() => Ok(Some(id.to_string())),
        _ => Err(Error::new(
            ErrorReason::Storage,
            format!(
                "{} is not an API server store marker: restore it from a backup, or move the data \
                 directory away to start with an empty one",
                marker.display()
            ),
        )),
    }
}

/// Writes the marker atomically (temporary file, fsync, rename).
fn write_marker(marker: &Path, id: &str) -> Result<()> {
    use std::io::Write;
    let temporary = marker.with_extension("identity.tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(format!("{MARKER_HEADER}\nid={id}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, marker)?;
    Ok(())
}

fn damaged(path: &Path, why: String) -> Error {
    Error::new(
        ErrorReason::Storage,
        format!(
            "the store at {} cannot be trusted: {why}. The server will not serve it; restore the \
             data directory from a backup, or move it away to start with an empty one",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{
        error::ErrorReason,
        store::{OpRecord, Store},
    };

    /// A store with records, closed cleanly; returns its path.
    async fn filled_store(root: &Path) -> std::path::PathBuf {
        let path = root.join("db");
        let store = Store::open(&path).unwrap();
        for i in 0..200 {
            let record = OpRecord { id: format!("op{i:03}"), kind: "sky.check".into(), ..Default::default() };
            store.put_op(&record).unwrap();
        }
        store.durable().await.unwrap();
        store.close().unwrap();
        path
    }

    fn refused(path: &Path) -> String {
        let err = Store::open(path).err().expect("a damaged store must be refused");
        assert_eq!(err.reason, ErrorReason::Storage);
        err.message
    }

    #[tokio::test]
    async fn a_store_whose_data_file_is_overwritten_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = filled_store(dir.path()).await;
        std::fs::write(path.join("db"), vec![0xAB; 4096]).unwrap();
        let message = refused(&path);
        assert!(message.contains("cannot be trusted") && message.contains("backup"), "{message}");
    }

    #[tokio::test]
    async fn a_truncated_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = filled_store(dir.path()).await;
        std::fs::OpenOptions::new().write(true).open(path.join("db")).unwrap().set_len(100).unwrap();
        refused(&path);
    }

    #[tokio::test]
    async fn a_store_with_flipped_bytes_is_refused_or_still_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = filled_store(dir.path()).await;
        let mut raw = std::fs::read(path.join("db")).unwrap();
        for byte in raw.iter_mut().skip(50).step_by(7) {
            *byte ^= 0x5a;
        }
        std::fs::write(path.join("db"), raw).unwrap();
        match Store::open(&path) {
            // A store that opens must have lost nothing: every record reads back whole.
            Ok(store) => {
                for i in 0..200 {
                    let id = format!("op{i:03}");
                    let record = store.get_op(&id).unwrap_or_else(|err| panic!("{id} cannot be read: {err}"));
                    assert_eq!(record.map(|r| r.id), Some(id.clone()), "{id} is missing");
                }
                let read: Vec<_> = store.ops_oldest_first().collect();
                assert!(read.iter().all(Result::is_ok), "a record cannot be read back");
                assert_eq!(read.len(), 200);
            }
            Err(err) => assert_eq!(err.reason, ErrorReason::Storage, "refused, as a storage error: {err}"),
        }
    }

    #[tokio::test]
    async fn a_database_from_another_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = filled_store(dir.path()).await;
        let other = tempfile::tempdir().unwrap();
        let other_path = filled_store(other.path()).await;
        std::fs::copy(other_path.with_extension("identity"), path.with_extension("identity")).unwrap();
        let message = refused(&path);
        assert!(message.contains("names store"), "{message}");
    }

    #[tokio::test]
    async fn a_refused_store_keeps_its_marker_and_stays_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = filled_store(dir.path()).await;
        std::fs::write(path.join("db"), vec![0xAB; 4096]).unwrap();
        let marker = std::fs::read(path.with_extension("identity")).unwrap();
        refused(&path);
        refused(&path);
        assert_eq!(std::fs::read(path.with_extension("identity")).unwrap(), marker);
    }

    #[tokio::test]
    async fn an_emptied_store_without_a_marker_but_with_request_logs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = filled_store(dir.path()).await;
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("logs/op001.log"), "line\n").unwrap();
        std::fs::remove_file(path.with_extension("identity")).unwrap();
        std::fs::write(path.join("db"), vec![0xAB; 4096]).unwrap();
        let message = refused(&path);
        assert!(message.contains("request logs"), "{message}");
    }

    #[tokio::test]
    async fn a_store_from_before_markers_gets_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = filled_store(dir.path()).await;
        std::fs::remove_file(path.with_extension("identity")).unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.ops_oldest_first().count(), 200);
        store.close().unwrap();
        assert!(path.with_extension("identity").exists());
    }
}
