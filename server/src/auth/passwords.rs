//! Password hashing and checking with argon2id, off the async workers and
//! bounded: at most `CONCURRENT` hashes at once (each takes about 19 MiB and
//! a core for tens of milliseconds), a bounded queue of callers waiting for
//! one, and the same work for a user name that does not exist as for one
//! that does, so that timing does not tell which names exist.

use std::sync::{Arc, OnceLock};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::error::{Error, ErrorReason, Result};

/// Hashes computed at once.
const CONCURRENT: usize = 2;
/// Callers that may wait for a turn; more are refused at once.
const MAX_WAITING: usize = 64;

/// The password hasher of one server.
pub struct Passwords {
    turns: Arc<Semaphore>,
    /// Turns plus waiting places: a permit is needed to queue at all.
    places: Arc<Semaphore>,
}

impl Passwords {
    pub fn new() -> Passwords {
        Passwords {
            turns: Arc::new(Semaphore::new(CONCURRENT)),
            places: Arc::new(Semaphore::new(CONCURRENT + MAX_WAITING)),
        }
    }

    /// The argon2id hash of `password`, in PHC string form.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let password = password.to_string();
        self.run(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|err| Error::internal(format!("cannot hash the password: {err}")))
        })
        .await?
    }

    /// Whether `password` matches `hash`; with no hash (no such user) the
    /// same work is done against a hash no password matches.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool> {
        let known = hash.is_some();
        let hash = hash.map(str::to_string).unwrap_or_else(|| unmatchable_hash().to_string());
        let password = password.to_string();
        let matches = self
            .run(move || Argon2::default().verify_password(password.as_bytes(), hash.as_str()))
            .await?
            .is_ok();
        Ok(known && matches)
    }

    /// Runs `work` on a blocking thread once a turn is free.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let Ok(_place) = self.places.clone().try_acquire_owned() else {
            return Err(Error::new(
                ErrorReason::ResourceExhausted,
                "too many sign-in attempts at once; retry in a few seconds",
            ));
        };
        let _turn = self.turns.clone().acquire_owned().await.map_err(|_| Error::internal("hasher closed"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|err| Error::internal(format!("password check: {err}")))
    }
}

/// A valid argon2id hash of a random password nobody knows, made once.
fn unmatchable_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let secret = skypilot_api::identity::random_hex(32).unwrap_or_else(|_| "x".repeat(64));
        Argon2::default().hash_password(secret.as_bytes()).map(|hash| hash.to_string()).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_matches_its_own_hash_only() {
        let passwords = Passwords::new();
        let hash = passwords.hash("correct horse").await.unwrap();
        assert!(passwords.verify("correct horse", Some(&hash)).await.unwrap());
        assert!(!passwords.verify("wrong horse", Some(&hash)).await.unwrap());
        assert!(!passwords.verify("correct horse", None).await.unwrap());
    }

    #[tokio::test]
    async fn callers_beyond_the_waiting_places_are_refused_at_once() {
        let passwords = Arc::new(Passwords::new());
        let _held: Vec<_> = (0..CONCURRENT + MAX_WAITING)
            .map(|_| passwords.places.clone().try_acquire_owned().unwrap())
            .collect();
        let err = passwords.verify("anything", None).await.unwrap_err();
        assert_eq!(err.reason, ErrorReason::ResourceExhausted);
    }
}
