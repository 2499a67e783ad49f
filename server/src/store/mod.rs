//! The embedded store (sled) behind a small API: operation records, the
//! idempotency-key index and the schema version. Knows nothing of gRPC.

mod durability;
mod record;

use std::path::Path;

use prost::Message;
pub use record::{OpRecord, StoredError, is_terminal};

use crate::error::{Error, ErrorKind, Result};
use durability::Flusher;

/// Version of the on-disk layout; a server refuses a data dir from a newer one.
pub const SCHEMA_VERSION: u32 = 1;
const SCHEMA_KEY: &[u8] = b"schema_version";

/// The server's durable state.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    ops: sled::Tree,
    idempotency: sled::Tree,
    flusher: Flusher,
}

impl Store {
    /// Opens (or creates) the store in `dir`. Must run inside a Tokio runtime.
    pub fn open(dir: &Path) -> Result<Store> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(32 * 1024 * 1024)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|err| {
                Error::new(
                    ErrorKind::Storage,
                    format!("cannot open store at {}: {err}", dir.display()),
                )
            })?;
        let meta = db.open_tree("meta")?;
        match meta.get(SCHEMA_KEY)? {
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(raw) => {
                let found = <[u8; 4]>::try_from(raw.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| {
                        Error::new(
                            ErrorKind::Storage,
                            format!(
                                "store at {} has an unreadable schema version",
                                dir.display()
                            ),
                        )
                    })?;
                if found > SCHEMA_VERSION {
                    return Err(Error::new(
                        ErrorKind::Storage,
                        format!(
                            "store at {} was written by a newer server (schema {found}, this \
                             server reads up to {SCHEMA_VERSION}): upgrade the server",
                            dir.display()
                        ),
                    ));
                }
            }
        }
        let ops = db.open_tree("ops")?;
        let idempotency = db.open_tree("idempotency")?;
        let flusher = Flusher::start(db.clone());
        Ok(Store {
            db,
            ops,
            idempotency,
            flusher,
        })
    }

    /// Returns once every write made so far is on disk.
    pub async fn durable(&self) -> Result<()> {
        self.flusher.flush().await
    }

    /// Flushes synchronously (at shutdown).
    pub fn flush_now(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Inserts or replaces an operation record (not yet durable).
    pub fn put_op(&self, record: &OpRecord) -> Result<()> {
        self.ops
            .insert(record.id.as_bytes(), record.encode_to_vec())?;
        Ok(())
    }

    pub fn get_op(&self, id: &str) -> Result<Option<OpRecord>> {
        self.ops
            .get(id.as_bytes())?
            .map(|raw| decode(id.as_bytes(), &raw))
            .transpose()
    }

    /// Ids that start with `prefix`, at most `limit` of them, oldest first.
    pub fn op_ids_with_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<String>> {
        self.ops
            .scan_prefix(prefix.as_bytes())
            .keys()
            .take(limit)
            .map(|key| Ok(String::from_utf8_lossy(&key?).into_owned()))
            .collect()
    }

    /// Every record, newest first, starting strictly before `before` when given.
    pub fn ops_newest_first(
        &self,
        before: Option<&str>,
    ) -> impl Iterator<Item = Result<OpRecord>> + use<> {
        let range = match before {
            Some(id) => self.ops.range(..id.as_bytes().to_vec()),
            None => self.ops.range::<Vec<u8>, _>(..),
        };
        range.rev().map(|item| {
            let (key, raw) = item?;
            decode(&key, &raw)
        })
    }

    /// Every record, oldest first.
    pub fn ops_oldest_first(&self) -> impl Iterator<Item = Result<OpRecord>> + use<> {
        self.ops.iter().map(|item| {
            let (key, raw) = item?;
            decode(&key, &raw)
        })
    }

    /// Removes a record and its idempotency key (not yet durable).
    pub fn delete_op(&self, record: &OpRecord) -> Result<()> {
        if !record.idempotency_key.is_empty() {
            self.release_idempotency_key(&record.user_id, &record.idempotency_key, &record.id)?;
        }
        self.ops.remove(record.id.as_bytes())?;
        Ok(())
    }

    /// Unbinds `(user_id, key)` if it still names `op_id`.
    pub fn release_idempotency_key(&self, user_id: &str, key: &str, op_id: &str) -> Result<()> {
        let index_key = idempotency_index_key(user_id, key);
        // A failed swap means the key names another operation now: keep it.
        let _ =
            self.idempotency
                .compare_and_swap(index_key, Some(op_id.as_bytes()), None::<&[u8]>)?;
        Ok(())
    }

    /// Binds `(user_id, key)` to `op_id` unless it is already bound; returns the
    /// operation id it was bound to before, if any.
    pub fn claim_idempotency_key(
        &self,
        user_id: &str,
        key: &str,
        op_id: &str,
    ) -> Result<Option<String>> {
        let index_key = idempotency_index_key(user_id, key);
        match self
            .idempotency
            .compare_and_swap(index_key, None::<&[u8]>, Some(op_id.as_bytes()))?
        {
            Ok(()) => Ok(None),
            Err(existing) => Ok(existing
                .current
                .map(|id| String::from_utf8_lossy(&id).into_owned())),
        }
    }

    /// The operation an idempotency key is bound to, if any.
    pub fn idempotency_key_owner(&self, user_id: &str, key: &str) -> Result<Option<String>> {
        Ok(self
            .idempotency
            .get(idempotency_index_key(user_id, key))?
            .map(|id| String::from_utf8_lossy(&id).into_owned()))
    }

    /// Number of stored operation records.
    pub fn op_count(&self) -> usize {
        self.ops.len()
    }
}

fn idempotency_index_key(user_id: &str, key: &str) -> Vec<u8> {
    format!("{user_id}\0{key}").into_bytes()
}

fn decode(key: &[u8], raw: &[u8]) -> Result<OpRecord> {
    OpRecord::decode(raw).map_err(|err| {
        Error::new(
            ErrorKind::Storage,
            format!(
                "stored operation {} is unreadable: {err}",
                String::from_utf8_lossy(key)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skypilot_api::proto::skypilot::v1::RequestState;

    fn record(id: &str) -> OpRecord {
        OpRecord {
            id: id.into(),
            kind: "sky.check".into(),
            state: RequestState::Pending as i32,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn records_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.put_op(&record("a1")).unwrap();
            store.durable().await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.get_op("a1").unwrap().unwrap().kind, "sky.check");
    }

    #[tokio::test]
    async fn newest_first_iterates_in_reverse_id_order_from_a_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for id in ["a", "b", "c"] {
            store.put_op(&record(id)).unwrap();
        }
        let ids: Vec<_> = store
            .ops_newest_first(None)
            .map(|r| r.unwrap().id)
            .collect();
        assert_eq!(ids, ["c", "b", "a"]);
        let ids: Vec<_> = store
            .ops_newest_first(Some("c"))
            .map(|r| r.unwrap().id)
            .collect();
        assert_eq!(ids, ["b", "a"]);
    }

    #[tokio::test]
    async fn an_idempotency_key_is_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.claim_idempotency_key("u", "k", "op1").unwrap(), None);
        assert_eq!(
            store
                .claim_idempotency_key("u", "k", "op2")
                .unwrap()
                .as_deref(),
            Some("op1")
        );
        assert_eq!(store.claim_idempotency_key("v", "k", "op3").unwrap(), None);
    }

    #[tokio::test]
    async fn a_store_from_a_newer_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let meta = store.db.open_tree("meta").unwrap();
            meta.insert(SCHEMA_KEY, &(SCHEMA_VERSION + 1).to_be_bytes())
                .unwrap();
            store.flush_now().unwrap();
        }
        let err = Store::open(dir.path()).err().unwrap();
        assert!(err.message.contains("newer server"), "{err}");
    }
}
