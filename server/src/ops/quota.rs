//! Per-user bounds on unfinished requests: how many a user may have, and how
//! many bytes of request data they may hold, so that one user cannot fill
//! the server's memory and disk with queued requests. A reservation is taken
//! when a request is accepted and given back when its live operation goes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::error::{Error, ErrorReason, Result};

/// The bounds; see `EngineConfig`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub requests: usize,
    pub bytes: usize,
}

/// What each user holds now: (requests, bytes).
#[derive(Default, Clone)]
pub struct Quota {
    held: Arc<Mutex<HashMap<String, (usize, usize)>>>,
}

/// One request's share of its user's quota, given back when dropped.
pub struct Reservation {
    held: Arc<Mutex<HashMap<String, (usize, usize)>>>,
    user: String,
    bytes: usize,
}

impl Quota {
    /// Reserves a request of `bytes` for `user`, refusing it beyond `limits`
    /// (None: take it whatever the user holds, as for recovered requests).
    pub fn reserve(&self, user: &str, bytes: usize, limits: Option<Limits>) -> Result<Reservation> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let (requests, held_bytes) = held.get(user).copied().unwrap_or_default();
        if let Some(limits) = limits {
            if requests + 1 > limits.requests {
                return Err(Error::new(
                    ErrorReason::ResourceExhausted,
                    format!(
                        "you have {requests} unfinished requests, the most this API server takes from \
                         one user: wait for some to finish, or cancel some (sky api cancel)"
                    ),
                ));
            }
            if held_bytes + bytes > limits.bytes {
                return Err(Error::new(
                    ErrorReason::ResourceExhausted,
                    format!(
                        "your unfinished requests hold {} MiB of request data and this one {} MiB, more \
                         than the {} MiB this API server takes from one user: wait for some to finish, \
                         or cancel some (sky api cancel)",
                        held_bytes >> 20,
                        bytes >> 20,
                        limits.bytes >> 20
                    ),
                ));
            }
        }
        held.insert(user.to_string(), (requests + 1, held_bytes + bytes));
        Ok(Reservation { held: self.held.clone(), user: user.to_string(), bytes })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((requests, bytes)) = held.get_mut(&self.user) {
            *requests = requests.saturating_sub(1);
            *bytes = bytes.saturating_sub(self.bytes);
            if *requests == 0 {
                held.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_beyond_either_bound_is_refused_and_dropped_reservations_count_no_more() {
        let quota = Quota::default();
        let limits = Some(Limits { requests: 2, bytes: 100 });
        let first = quota.reserve("alice", 60, limits).unwrap();
        let err = quota.reserve("alice", 60, limits).err().unwrap();
        assert_eq!(err.reason, ErrorReason::ResourceExhausted);
        assert!(err.message.contains("MiB"), "{err}");
        let _second = quota.reserve("alice", 10, limits).unwrap();
        assert!(quota.reserve("alice", 1, limits).err().unwrap().message.contains("2 unfinished"));
        assert!(quota.reserve("bob", 60, limits).is_ok(), "others are not held up");
        drop(first);
        assert!(quota.reserve("alice", 60, limits).is_ok());
        assert!(quota.reserve("alice", 1_000, None).is_ok(), "recovered requests are always taken");
    }
}
