//! The dashboard figures (`sky-bench --dashboard`): what its build adds to
//! the binary, and how long its first page takes to become interactive in a
//! real headless Chromium on loopback with 200 clusters and 2,000 jobs on the
//! server. The page is measured by
//! `clients/typescript/scripts/dashboard-first-page.mjs` (it needs `npm ci` in
//! clients/typescript and Debian's chromium).

use std::{path::Path, process::Command};

use crate::process::Sky;

pub fn figures(sky: &Sky, clusters: usize, jobs: usize, samples: usize) {
    println!("dashboard_assets_size: {:.1} KB", skypilot_server::dashboard_size() as f64 / 1024.0);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let made = runtime.block_on(crate::metrics::seed(sky, clusters, jobs));
    println!("dashboard_seeded: {clusters} clusters, {made} jobs");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/typescript/scripts/dashboard-first-page.mjs");
    let output = Command::new("node")
        .arg(&script)
        .arg(format!("{}/dashboard/", sky.endpoint()))
        .arg(samples.to_string())
        .arg(clusters.to_string())
        .output()
        .expect("run node (Node.js 20 or newer)");
    print!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}
