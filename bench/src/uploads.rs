//! Upload figures: a workdir of many files sent to the server over
//! loopback, the same tree sent again (digests known, nothing to send), and
//! the server's memory while one large tree streams in.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use skypilot_api::{
    Client,
    upload::{scan, upload},
};

/// Writes `files` files of `bytes` each (distinct contents) under `dir`.
fn make_tree(dir: &Path, files: usize, bytes: usize) {
    for i in 0..files {
        let sub = dir.join(format!("part-{:02}", i % 20));
        std::fs::create_dir_all(&sub).expect("a folder");
        let mut content = vec![0u8; bytes];
        let mut state = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for chunk in content.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(sub.join(format!("file-{i}.bin")), content).expect("a file");
    }
}

/// What the upload figures measured.
pub struct Figures {
    /// MB/s of a first upload, listing and hashing included.
    pub throughput: f64,
    /// Of which listing and hashing, in ms.
    pub scan_ms: f64,
    /// ms of an unchanged upload of the same tree.
    pub unchanged_ms: f64,
    /// Peak server RSS in MB during the large upload.
    pub peak_rss: f64,
    /// MB/s of the large upload (large files), listing and hashing included.
    pub large_throughput: f64,
}

pub async fn figures(client: &Client, pid: u32, files: usize, large_mb: usize) -> Figures {
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let (tree_dir, cache) = (scratch.path().join("workdir"), scratch.path().join("cache"));
    make_tree(&tree_dir, files, 100 * 1000);
    let total_mb = (files * 100 * 1000) as f64 / 1e6;

    let started = Instant::now();
    let tree = scan(&tree_dir, u64::MAX, Some(&cache)).expect("scan");
    let scan_ms = started.elapsed().as_secs_f64() * 1000.0;
    let sent = upload(client, &tree).await.expect("upload");
    assert_eq!(sent.sent_files as usize, files, "every file is new");
    let throughput = total_mb / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let tree = scan(&tree_dir, u64::MAX, Some(&cache)).expect("scan");
    let again = upload(client, &tree).await.expect("upload");
    let unchanged = started.elapsed();
    assert_eq!((again.sent_files, &again.reference), (0, &sent.reference), "nothing is sent again");

    let large = scratch.path().join("large");
    make_tree(&large, large_mb / 10, 10 * 1000 * 1000);
    let started = Instant::now();
    let tree = scan(&large, u64::MAX, None).expect("scan");
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0.0f64;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(crate::process::rss_mb(pid));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    upload(client, &tree).await.expect("a large upload");
    let large_throughput = large_mb as f64 / started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let peak = sampler.join().expect("sampler");
    Figures {
        throughput,
        scan_ms,
        unchanged_ms: unchanged.as_secs_f64() * 1000.0,
        peak_rss: peak,
        large_throughput,
    }
}
