//! The embedded store (sled) behind a small API: operation records and the
//! idempotency-key index, typed tables of clusters, jobs, users and tokens,
//! the schema version and the store's identity (`identity`), and group
//! commits that make writes durable (`durability`). Knows nothing of gRPC.

mod durability;
mod identity;
mod payloads;
mod record;

use std::{
    path::Path,
    sync::{Arc, RwLock, RwLockReadGuard},
};

pub use payloads::digest as payload_digest;
use prost::Message;
pub use record::{
    ClusterRecord, JobRecord, ManagedJobRecord, NodeProcess, OpRecord, StoredError, TokenRecord, UserRecord,
};

use crate::error::{Error, ErrorReason, Result};
use durability::Flusher;

/// Version of the on-disk layout; a server refuses a data dir from a newer one.
pub const SCHEMA_VERSION: u32 = 1;
const SCHEMA_KEY: &[u8] = b"schema_version";

/// The open database and its trees; gone once the store is closed.
struct Open {
    db: sled::Db,
    ops: sled::Tree,
    idempotency: sled::Tree,
    clusters: sled::Tree,
    jobs: sled::Tree,
    active_jobs: sled::Tree,
    job_requests: sled::Tree,
    users: sled::Tree,
    tokens: sled::Tree,
    managed_jobs: sled::Tree,
    active_managed_jobs: sled::Tree,
    managed_job_requests: sled::Tree,
}

/// The trees that hold typed records besides operations.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    /// Cluster name -> `ClusterRecord`.
    Clusters,
    /// Cluster name, NUL, big-endian job id -> `JobRecord`.
    Jobs,
    /// The keys of `Jobs` that are not finished (pending, setting up,
    /// running), so that scheduling never reads a cluster's whole history.
    ActiveJobs,
    /// Cluster name, NUL, request id -> big-endian id of the job it submitted.
    JobRequests,
    /// User name -> `UserRecord`.
    Users,
    /// SHA-256 of the token (hex) -> `TokenRecord`.
    Tokens,
    /// Big-endian managed job id -> `ManagedJobRecord`.
    ManagedJobs,
    /// The keys of `ManagedJobs` the controller still drives.
    ActiveManagedJobs,
    /// Id of the request that submitted a managed job -> its big-endian id.
    ManagedJobRequests,
}

type Shared = Arc<RwLock<Option<Open>>>;

/// The server's durable state. Clones share one database; `close` releases
/// it for all of them at once (so a server can be restarted in-process).
#[derive(Clone)]
pub struct Store {
    state: Shared,
    flusher: Flusher,
    payloads: Arc<payloads::Payloads>,
    /// Ids of operations refused after their record may have reached the
    /// disk (the write that was to make them durable failed).
    refused: std::path::PathBuf,
}

impl Store {
    /// Opens (or creates) the store in `dir`. Must run inside a Tokio runtime.
    pub fn open(dir: &Path) -> Result<Store> {
        let cannot_open = |why: String| {
            Error::new(ErrorReason::Storage, format!("cannot open store at {}: {why}", dir.display()))
        };
        // sled may panic on some damaged files; that must be an error, not a crash.
        let opened = std::panic::catch_unwind(|| {
            let config = sled::Config::new()
                .path(dir)
                .cache_capacity(32 * 1024 * 1024)
                .mode(sled::Mode::HighThroughput)
                // Writes are made durable by our own group commit (`durable`); sled's
                // periodic flusher thread would only hold the database open after close.
                .flush_every_ms(None);
            // A store closed a moment ago (a restart in the same process) lets
            // go of its file lock from sled's own threads, shortly after: wait
            // for that rather than fail. (The data dir's lock keeps a second
            // server out.)
            let mut attempts = 0;
            let db = loop {
                match config.open() {
                    // sled says so only in its message.
                    Err(sled::Error::Io(err))
                        if err.to_string().contains("could not acquire lock") && attempts < 100 =>
                    {
                        attempts += 1;
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    opened => break opened.map_err(|err| cannot_open(err.to_string()))?,
                }
            };
            refuse_newer_schema(&db, dir)?;
            identity::check(&db, dir, schema_version(&db, dir)?.is_some())?;
            record_schema(&db, dir)?;
            Ok::<_, Error>(db)
        });
        let db = opened.map_err(|panic| {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            cannot_open(format!("its files are damaged ({why}); restore it from a backup or move it away"))
        })??;
        let ops = db.open_tree("ops")?;
        let idempotency = db.open_tree("idempotency")?;
        let clusters = db.open_tree("clusters")?;
        let jobs = db.open_tree("jobs")?;
        let active_jobs = db.open_tree("active_jobs")?;
        let job_requests = db.open_tree("job_requests")?;
        let users = db.open_tree("users")?;
        let tokens = db.open_tree("tokens")?;
        let managed_jobs = db.open_tree("managed_jobs")?;
        let active_managed_jobs = db.open_tree("active_managed_jobs")?;
        let managed_job_requests = db.open_tree("managed_job_requests")?;
        let state: Shared = Arc::new(RwLock::new(Some(Open {
            db,
            ops,
            idempotency,
            clusters,
            jobs,
            active_jobs,
            job_requests,
            users,
            tokens,
            managed_jobs,
            active_managed_jobs,
            managed_job_requests,
        })));
        let payloads = Arc::new(payloads::Payloads::open(dir)?);
        let flusher = Flusher::start(state.clone());
        Ok(Store { state, flusher, payloads, refused: dir.join("refused_ops") })
    }

    fn open_state(&self) -> Result<RwLockReadGuard<'_, Option<Open>>> {
        let guard = self.state.read().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            // Closed because a write failed (a full disk): that is the news.
            return Err(self.flusher.failure().unwrap_or_else(closed));
        }
        Ok(guard)
    }

    fn with<T>(&self, f: impl FnOnce(&Open) -> Result<T>) -> Result<T> {
        let guard = self.open_state()?;
        let result = f(guard.as_ref().expect("checked open"));
        if let Err(err) = &result {
            self.flusher.report(err);
        }
        result
    }

    /// Resolves once a write to disk has failed; the store takes no more
    /// writes until it is opened again (a restart).
    pub async fn failed(&self) -> Error {
        self.flusher.failed().await
    }

    /// The write that failed, once one did: the store takes no more writes
    /// until it is opened again.
    pub fn write_failure(&self) -> Option<Error> {
        self.flusher.failure()
    }

    /// Returns once every write made so far is on disk.
    pub async fn durable(&self) -> Result<()> {
        self.flusher.flush().await
    }

    /// The store's size on disk, in bytes.
    pub fn size_on_disk(&self) -> Result<u64> {
        let guard = self.state.read().unwrap_or_else(|p| p.into_inner());
        let open = guard.as_ref().ok_or_else(closed)?;
        Ok(open.db.size_on_disk()?)
    }

    /// Flushes and closes the database; every clone sees a closed store after.
    pub fn close(&self) -> Result<()> {
        let mut guard = self.state.write().unwrap_or_else(|p| p.into_inner());
        let Some(open) = guard.take() else {
            return Ok(());
        };
        open.db.flush()?;
        Ok(())
    }

    /// Inserts or replaces an operation record (not yet durable).
    pub fn put_op(&self, record: &OpRecord) -> Result<()> {
        self.with(|open| {
            open.ops.insert(record.id.as_bytes(), record.encode_to_vec())?;
            Ok(())
        })
    }

    pub fn get_op(&self, id: &str) -> Result<Option<OpRecord>> {
        self.with(|open| open.ops.get(id.as_bytes())?.map(|raw| decode(id.as_bytes(), &raw)).transpose())
    }

    /// Ids that start with `prefix`, at most `limit` of them, oldest first.
    pub fn op_ids_with_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<String>> {
        self.with(|open| {
            open.ops
                .scan_prefix(prefix.as_bytes())
                .keys()
                .take(limit)
                .map(|key| Ok(String::from_utf8_lossy(&key?).into_owned()))
                .collect()
        })
    }

    /// Every record, newest first, starting strictly before `before` when given.
    pub fn ops_newest_first(&self, before: Option<&str>) -> impl Iterator<Item = Result<OpRecord>> + use<> {
        let ops = self.with(|open| Ok(open.ops.clone()));
        let iter = ops.map(|ops| match before {
            Some(id) => ops.range(..id.as_bytes().to_vec()),
            None => ops.range::<Vec<u8>, _>(..),
        });
        records(iter.map(|range| range.rev()))
    }

    /// Every record, oldest first.
    pub fn ops_oldest_first(&self) -> impl Iterator<Item = Result<OpRecord>> + use<> {
        records(self.with(|open| Ok(open.ops.iter())))
    }

    /// Remembers, beside the store, an operation whose submission was
    /// refused after its record was written (a full disk failed the flush):
    /// the record may still be on disk, and must never run. A small append
    /// to a file of its own, which may succeed where the store's flush did not.
    pub fn remember_refused(&self, id: &str) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.refused)?;
        file.write_all(format!("{id}\n").as_bytes())?;
        file.sync_all()
    }

    /// The operations remembered as refused; the file is removed by
    /// `forget_refused` once their records are gone for good.
    pub fn refused_ops(&self) -> Vec<String> {
        std::fs::read_to_string(&self.refused).unwrap_or_default().lines().map(str::to_string).collect()
    }

    pub fn forget_refused(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.refused) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }

    /// Removes a record, its payload and its idempotency key (not yet durable).
    pub fn delete_op(&self, record: &OpRecord) -> Result<()> {
        if !record.idempotency_key.is_empty() {
            self.release_idempotency_key(&record.user_id, &record.idempotency_key, &record.id)?;
        }
        self.with(|open| {
            open.ops.remove(record.id.as_bytes())?;
            Ok(())
        })?;
        self.payloads.remove(record)
    }

    /// Keeps the payload of a new operation, sealed, in its record or (when
    /// large) in a file of its own, on disk before this returns.
    pub fn keep_payload(&self, record: &mut OpRecord, plain: &[u8]) -> Result<()> {
        self.payloads.keep(record, plain)
    }

    /// The payload of an operation, as submitted.
    pub fn payload(&self, record: &OpRecord) -> Result<Vec<u8>> {
        self.payloads.load(record)
    }

    /// The digest of an operation's payload, by which a repeated submission
    /// is recognised.
    pub fn payload_digest(&self, record: &OpRecord) -> Result<Vec<u8>> {
        match record.payload_digest.is_empty() {
            true => Ok(payloads::digest(&self.payload(record)?)),
            false => Ok(record.payload_digest.clone()),
        }
    }

    /// `plain` sealed, for a record field that may hold secrets.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>> {
        self.payloads.seal(plain)
    }

    /// A field that `seal` sealed (one stored before sealing comes back as it is).
    pub fn unseal(&self, stored: &[u8]) -> Result<Vec<u8>> {
        self.payloads.unseal(stored)
    }

    /// Unbinds `(user_id, key)` if it still names `op_id`.
    pub fn release_idempotency_key(&self, user_id: &str, key: &str, op_id: &str) -> Result<()> {
        let index_key = idempotency_index_key(user_id, key);
        self.with(|open| {
            // A failed swap means the key names another operation now: keep it.
            let _ = open.idempotency.compare_and_swap(index_key, Some(op_id.as_bytes()), None::<&[u8]>)?;
            Ok(())
        })
    }

    /// Binds `(user_id, key)` to `op_id` unless it is already bound; returns the
    /// operation id it was bound to before, if any.
    pub fn claim_idempotency_key(&self, user_id: &str, key: &str, op_id: &str) -> Result<Option<String>> {
        let index_key = idempotency_index_key(user_id, key);
        self.with(|open| {
            let swap = open.idempotency.compare_and_swap(index_key, None::<&[u8]>, Some(op_id.as_bytes()))?;
            Ok(swap
                .err()
                .and_then(|existing| existing.current)
                .map(|id| String::from_utf8_lossy(&id).into_owned()))
        })
    }

    /// Inserts or replaces a record in `table` (not yet durable).
    pub fn put<M: Message>(&self, table: Table, key: &[u8], record: &M) -> Result<()> {
        self.with(|open| {
            open.table(table).insert(key, record.encode_to_vec())?;
            Ok(())
        })
    }

    pub fn get<M: Message + Default>(&self, table: Table, key: &[u8]) -> Result<Option<M>> {
        self.with(|open| open.table(table).get(key)?.map(|raw| decode_as(key, &raw)).transpose())
    }

    /// Every record in `table` whose key starts with `prefix`, in key order.
    pub fn scan<M: Message + Default>(&self, table: Table, prefix: &[u8]) -> Result<Vec<M>> {
        self.with(|open| {
            open.table(table)
                .scan_prefix(prefix)
                .map(|item| {
                    let (key, raw) = item?;
                    decode_as(&key, &raw)
                })
                .collect()
        })
    }

    /// The keys in `table` that start with `prefix`.
    pub fn scan_keys(&self, table: Table, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.with(|open| open.table(table).scan_prefix(prefix).keys().map(|key| Ok(key?.to_vec())).collect())
    }

    /// Up to `limit` records whose key starts with `prefix`, newest (highest
    /// key) first, below `before` when given; `keep` picks which count.
    /// Looks at no more than `budget` records: when it stops for that, it
    /// also returns the last key it looked at, where to go on from.
    pub fn scan_newest<M: Message + Default>(
        &self,
        table: Table,
        prefix: &[u8],
        before: Option<&[u8]>,
        (limit, budget): (usize, usize),
        keep: impl Fn(&M) -> bool,
    ) -> Result<Newest<M>> {
        self.with(|open| {
            let mut found = Vec::new();
            let tree = open.table(table);
            let range = match before {
                Some(before) => tree.range(prefix.to_vec()..before.to_vec()),
                None => tree.scan_prefix(prefix),
            };
            for (looked, item) in range.rev().enumerate() {
                let (key, raw) = item?;
                if !key.starts_with(prefix) {
                    break;
                }
                if looked >= budget {
                    return Ok((found, Some(key.to_vec())));
                }
                let record: M = decode_as(&key, &raw)?;
                if keep(&record) {
                    found.push((key.to_vec(), record));
                    if found.len() >= limit {
                        break;
                    }
                }
            }
            Ok((found, None))
        })
    }

    /// Stores raw bytes (an index entry) under `key` (not yet durable).
    pub fn put_raw(&self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.with(|open| {
            open.table(table).insert(key, value)?;
            Ok(())
        })
    }

    /// The raw bytes under `key`.
    pub fn get_raw(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(|open| Ok(open.table(table).get(key)?.map(|value| value.to_vec())))
    }

    /// How many records this process decoded so far (to check that work
    /// does not grow with history).
    pub fn records_decoded() -> u64 {
        RECORDS_DECODED.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every record in `table` with its key.
    pub fn scan_with_keys<M: Message + Default>(&self, table: Table) -> Result<Vec<(Vec<u8>, M)>> {
        self.with(|open| {
            open.table(table)
                .iter()
                .map(|item| {
                    let (key, raw) = item?;
                    Ok((key.to_vec(), decode_as(&key, &raw)?))
                })
                .collect()
        })
    }

    /// Removes one record from `table`.
    pub fn delete(&self, table: Table, key: &[u8]) -> Result<()> {
        self.with(|open| {
            open.table(table).remove(key)?;
            Ok(())
        })
    }

    /// Removes every record in `table` whose key starts with `prefix`.
    pub fn remove_prefix(&self, table: Table, prefix: &[u8]) -> Result<()> {
        self.with(|open| {
            let tree = open.table(table);
            for key in tree.scan_prefix(prefix).keys() {
                tree.remove(key?)?;
            }
            Ok(())
        })
    }
}

impl Open {
    fn table(&self, table: Table) -> &sled::Tree {
        match table {
            Table::Clusters => &self.clusters,
            Table::Jobs => &self.jobs,
            Table::ActiveJobs => &self.active_jobs,
            Table::JobRequests => &self.job_requests,
            Table::Users => &self.users,
            Table::Tokens => &self.tokens,
            Table::ManagedJobs => &self.managed_jobs,
            Table::ActiveManagedJobs => &self.active_managed_jobs,
            Table::ManagedJobRequests => &self.managed_job_requests,
        }
    }
}

/// Records found newest first, with their keys, and where the search
/// stopped when it ran out of budget.
pub type Newest<M> = (Vec<(Vec<u8>, M)>, Option<Vec<u8>>);

/// Records decoded by any store of this process.
static RECORDS_DECODED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn decode_as<M: Message + Default>(key: &[u8], raw: &[u8]) -> Result<M> {
    RECORDS_DECODED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    M::decode(raw).map_err(|err| {
        Error::new(
            ErrorReason::Storage,
            format!("stored record {} is unreadable: {err}", String::from_utf8_lossy(key)),
        )
    })
}

fn closed() -> Error {
    Error::new(ErrorReason::Unavailable, "the store is closed (the server is shutting down)")
}

/// Decodes every item of a sled iterator, or yields the error that kept it from starting.
fn records<I>(iter: Result<I>) -> impl Iterator<Item = Result<OpRecord>> + use<I>
where
    I: Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
{
    let (items, error) = match iter {
        Ok(items) => (Some(items), None),
        Err(err) => (None, Some(Err(err))),
    };
    error.into_iter().chain(items.into_iter().flatten().map(|item| {
        let (key, raw) = item?;
        decode(&key, &raw)
    }))
}

/// The schema version the store was written with; None for a new store.
fn schema_version(db: &sled::Db, dir: &Path) -> Result<Option<u32>> {
    let meta = db.open_tree("meta")?;
    meta.get(SCHEMA_KEY)?
        .map(|raw| {
            <[u8; 4]>::try_from(raw.as_ref()).map(u32::from_be_bytes).map_err(|_| {
                Error::new(
                    ErrorReason::Storage,
                    format!("store at {} has an unreadable schema version", dir.display()),
                )
            })
        })
        .transpose()
}

/// Refuses a store written by a newer server, before anything is written to it.
fn refuse_newer_schema(db: &sled::Db, dir: &Path) -> Result<()> {
    match schema_version(db, dir)? {
        Some(found) if found > SCHEMA_VERSION => Err(Error::new(
            ErrorReason::Storage,
            format!(
                "store at {} was written by a newer server (schema {found}, this server reads up to \
                 {SCHEMA_VERSION}): upgrade the server",
                dir.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// Records the schema version of a new store. (An older one would be
/// migrated here; version 1 is the first.)
fn record_schema(db: &sled::Db, dir: &Path) -> Result<()> {
    if schema_version(db, dir)?.is_none() {
        db.open_tree("meta")?.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
    }
    Ok(())
}

fn idempotency_index_key(user_id: &str, key: &str) -> Vec<u8> {
    format!("{user_id}\0{key}").into_bytes()
}

fn decode(key: &[u8], raw: &[u8]) -> Result<OpRecord> {
    OpRecord::decode(raw).map_err(|err| {
        Error::new(
            ErrorReason::Storage,
            format!("stored operation {} is unreadable: {err}", String::from_utf8_lossy(key)),
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
            let store = Store::open(&dir.path().join("db")).unwrap();
            store.put_op(&record("a1")).unwrap();
            store.durable().await.unwrap();
            store.close().unwrap();
        }
        let store = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(store.get_op("a1").unwrap().unwrap().kind, "sky.check");
    }

    #[tokio::test]
    async fn newest_first_iterates_in_reverse_id_order_from_a_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        for id in ["a", "b", "c"] {
            store.put_op(&record(id)).unwrap();
        }
        let ids: Vec<_> = store.ops_newest_first(None).map(|r| r.unwrap().id).collect();
        assert_eq!(ids, ["c", "b", "a"]);
        let ids: Vec<_> = store.ops_newest_first(Some("c")).map(|r| r.unwrap().id).collect();
        assert_eq!(ids, ["b", "a"]);
    }

    #[tokio::test]
    async fn an_idempotency_key_is_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(store.claim_idempotency_key("u", "k", "op1").unwrap(), None);
        assert_eq!(store.claim_idempotency_key("u", "k", "op2").unwrap().as_deref(), Some("op1"));
        assert_eq!(store.claim_idempotency_key("v", "k", "op3").unwrap(), None);
    }

    #[tokio::test]
    async fn a_store_from_a_newer_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(&dir.path().join("db")).unwrap();
            store
                .with(|open| {
                    let meta = open.db.open_tree("meta")?;
                    meta.insert(SCHEMA_KEY, &(SCHEMA_VERSION + 1).to_be_bytes())?;
                    Ok(())
                })
                .unwrap();
            store.close().unwrap();
        }
        let err = Store::open(&dir.path().join("db")).err().unwrap();
        assert!(err.message.contains("newer server"), "{err}");
    }
}
