//! The slow-down for sources that keep failing to authenticate. Every
//! attempt counts as a failure until it succeeds, so that attempts sent in
//! parallel from one source are slowed down as much as attempts in a row;
//! the delay is taken before the credentials are checked. The map is bounded
//! and forgets sources that have been quiet for a while.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Attempts from one source that are not slowed down.
const FREE_ATTEMPTS: u32 = 3;
/// The longest slow-down.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Sources remembered at most, and how long a quiet one is remembered.
const MAX_SOURCES: usize = 10_000;
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
pub struct Throttle {
    /// Unsuccessful attempts (including those under way) and the last one, per source.
    sources: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Throttle {
    /// Counts an attempt from `source` and waits as long as its earlier
    /// failures call for.
    pub async fn attempt(&self, source: IpAddr) {
        let attempts = {
            let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
            if sources.len() >= MAX_SOURCES && !sources.contains_key(&source) {
                prune(&mut sources);
            }
            let entry = sources.entry(source).or_insert((0, Instant::now()));
            entry.0 = entry.0.saturating_add(1);
            entry.1 = Instant::now();
            entry.0
        };
        if let Some(delay) = delay(attempts) {
            tokio::time::sleep(delay).await;
        }
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
fn prune(sources: &mut HashMap<IpAddr, (u32, Instant)>) {
    sources.retain(|_, (_, last)| last.elapsed() < FORGET_AFTER);
    if sources.len() >= MAX_SOURCES {
        sources.retain(|_, (attempts, _)| *attempts > FREE_ATTEMPTS);
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
