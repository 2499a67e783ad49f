//! Background clean-up that keeps disk use bounded: finished operations and
//! their logs after `requests_retention_hours`, the archived job logs of
//! torn-down clusters after `job_logs_retention_hours`, and uploads unused
//! for `uploads_retention_hours`. Negative hours keep things forever.

use std::{path::PathBuf, time::Duration};

use crate::{clock::now_ms, ops::Engine, uploads::Uploads};

/// What to remove, and after how long.
#[derive(Debug, Clone)]
pub struct Retention {
    pub request_hours: f64,
    pub job_log_hours: f64,
    /// `<archive>/<cluster>-<ms>/`: job logs of a cluster torn down at `ms`.
    pub job_log_archive: PathBuf,
    /// Uploads, swept after their own retention.
    pub uploads: Option<Uploads>,
}

impl Retention {
    /// Runs until aborted: one sweep at start, then a few per retention period.
    pub async fn run(self, engine: Engine) {
        let upload_hours = self.uploads.as_ref().map_or(-1.0, |uploads| uploads.limits().retention_hours);
        let keeps: Vec<i64> = [self.request_hours, self.job_log_hours, upload_hours]
            .into_iter()
            .filter(|h| *h >= 0.0)
            .map(hours_ms)
            .collect();
        let Some(shortest) = keeps.iter().min() else {
            return;
        };
        let period = Duration::from_millis((shortest / 4).clamp(1_000, 600_000) as u64);
        loop {
            self.sweep(&engine).await;
            tokio::time::sleep(period).await;
        }
    }

    /// Removes everything that has expired by now.
    pub async fn sweep(&self, engine: &Engine) {
        if self.request_hours >= 0.0 {
            match engine.remove_finished_before(now_ms() - hours_ms(self.request_hours)).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed expired finished requests"),
                Err(err) => tracing::warn!(error = %err, "could not remove expired requests"),
            }
        }
        if self.job_log_hours >= 0.0 {
            let archive = self.job_log_archive.clone();
            let cutoff = now_ms() - hours_ms(self.job_log_hours);
            match tokio::task::spawn_blocking(move || remove_archives_before(&archive, cutoff)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(removed)) => tracing::info!(removed, "removed expired job logs of torn-down clusters"),
                Ok(Err(err)) => tracing::warn!(error = %err, "could not remove expired job logs"),
                Err(err) => tracing::warn!(error = %err, "job log clean-up failed"),
            }
        }
        if let Some(uploads) = self.uploads.clone() {
            match tokio::task::spawn_blocking(move || uploads.sweep()).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed uploads unused for their retention period"),
                Err(err) => tracing::warn!(error = %err, "upload clean-up failed"),
            }
        }
    }
}

fn hours_ms(hours: f64) -> i64 {
    (hours * 3_600_000.0) as i64
}

/// Removes the archive folders made before `cutoff_ms`; returns how many.
fn remove_archives_before(archive: &std::path::Path, cutoff_ms: i64) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(archive) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let made_ms = name.rsplit_once('-').and_then(|(_, ms)| ms.parse::<i64>().ok());
        if made_ms.is_some_and(|ms| ms <= cutoff_ms) {
            std::fs::remove_dir_all(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_archives_older_than_the_cutoff_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["train-1000", "eval-x-2000", "train-3000", "not-an-archive"] {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("1.log"), "line\n").unwrap();
        }
        assert_eq!(remove_archives_before(dir.path(), 2000).unwrap(), 2);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["not-an-archive", "train-3000"]);
    }

    #[test]
    fn a_missing_archive_is_nothing_to_remove() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(remove_archives_before(&dir.path().join("none"), i64::MAX).unwrap(), 0);
    }
}
