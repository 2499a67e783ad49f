//! The slow-down for sources that keep failing to authenticate. A source's
//! attempts are checked one at a time, each after a delay that grows with
//! the source's failures, so that attempts sent in parallel are no faster
//! than attempts in a row; every attempt counts as a failure until it
//! succeeds. The map is bounded and forgets sources that have been quiet for
//! a while.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::OwnedMutexGuard;

/// Attempts from one source that are not slowed down.
const FREE_ATTEMPTS: u32 = 3;
/// The longest slow-down.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Sources remembered at most, and how long a quiet one is remembered.
const MAX_SOURCES: usize = 10_000;
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// What is known of one source.
struct Source {
    /// Unsuccessful attempts, including the one under way.
    attempts: u32,
    last: Instant,
    /// Held while one of its attempts is checked.
    turn: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Default)]
pub struct Throttle {
    sources: Mutex<HashMap<IpAddr, Source>>,
}

/// The turn of one attempt: the source's next attempt waits until it is dropped.
pub struct Turn {
    _held: OwnedMutexGuard<()>,
}

impl Throttle {
    /// Waits for the source's turn, counts the attempt and waits as long as
    /// the source's failures call for. Hold the turn while checking.
    pub async fn attempt(&self, source: IpAddr) -> Turn {
        let turn = self.with_source(source, |entry| entry.turn.clone());
        let held = turn.lock_owned().await;
        let attempts = self.with_source(source, |entry| {
            entry.attempts = entry.attempts.saturating_add(1);
            entry.last = Instant::now();
            entry.attempts
        });
        if let Some(delay) = delay(attempts) {
            tokio::time::sleep(delay).await;
        }
        Turn { _held: held }
    }

    /// Applies `f` to what is known of `source`, making room for it if needed.
    fn with_source<T>(&self, source: IpAddr, f: impl FnOnce(&mut Source) -> T) -> T {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&source) {
            prune(&mut sources);
        }
        f(sources.entry(source).or_insert_with(|| Source {
            attempts: 0,
            last: Instant::now(),
            turn: Arc::default(),
        }))
    }

    /// `source` authenticated: its slate is clean.
    pub fn succeeded(&self, source: IpAddr) {
        self.sources.lock().unwrap_or_else(|p| p.into_inner()).remove(&source);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.sources.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The wait before the `attempts`-th attempt is checked.
fn delay(attempts: u32) -> Option<Duration> {
    (attempts > FREE_ATTEMPTS)
        .then(|| Duration::from_millis(100u64 << (attempts - FREE_ATTEMPTS - 1).min(10)).min(MAX_DELAY))
}

/// Makes room: quiet sources go first, then those with few failures, then all.
fn prune(sources: &mut HashMap<IpAddr, Source>) {
    sources.retain(|_, source| source.last.elapsed() < FORGET_AFTER);
    if sources.len() >= MAX_SOURCES {
        sources.retain(|_, source| source.attempts > FREE_ATTEMPTS);
    }
    if sources.len() >= MAX_SOURCES {
        sources.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_attempts_are_free_then_the_delay_doubles_up_to_a_bound() {
        assert_eq!(delay(FREE_ATTEMPTS), None);
        assert_eq!(delay(FREE_ATTEMPTS + 1), Some(Duration::from_millis(100)));
        assert_eq!(delay(FREE_ATTEMPTS + 2), Some(Duration::from_millis(200)));
        assert_eq!(delay(1000), Some(MAX_DELAY));
    }

    #[tokio::test]
    async fn the_map_of_sources_stays_bounded() {
        let throttle = Throttle::default();
        for i in 0..(MAX_SOURCES as u32 + 50) {
            throttle.attempt(IpAddr::from(i.to_be_bytes())).await;
        }
        assert!(throttle.len() <= MAX_SOURCES, "{}", throttle.len());
    }
}
