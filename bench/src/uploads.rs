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

/// Returns (MB/s of a first upload, ms of an unchanged one, peak server RSS
/// in MB during an upload of `large_mb`).
pub async fn figures(client: &Client, pid: u32, files: usize, large_mb: usize) -> (f64, f64, f64) {
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let (tree_dir, cache) = (scratch.path().join("workdir"), scratch.path().join("cache"));
    make_tree(&tree_dir, files, 100 * 1000);
    let total_mb = (files * 100 * 1000) as f64 / 1e6;

    let started = Instant::now();
    let tree = scan(&tree_dir, u64::MAX, Some(&cache)).expect("scan");
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
    done.store(true, Ordering::Relaxed);
    let peak = sampler.join().expect("sampler");
    (throughput, unchanged.as_secs_f64() * 1000.0, peak)
}
