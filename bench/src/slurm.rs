//! Slurm figures, on a real Slurm started here (a controller and two node
//! daemons, reached through a login node over SSH; needs root and Debian's
//! Slurm and munge): the time from `sky exec` to a two-node job running on
//! both nodes of an UP cluster, beside Slurm's own floor, the time an
//! `srun` step on both nodes of the same allocation takes to run `true`.

use std::time::{Duration, Instant};

use crate::{connect, process::Sky};

/// Prints the Slurm figures, or why they cannot be measured here.
pub fn figures(sky_binary: std::path::PathBuf, samples: usize) {
    let tools =
        ["/usr/sbin/sshd", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/srun", "/usr/sbin/munged"];
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !tools.iter().all(|tool| std::path::Path::new(tool).exists()) {
        println!(
            "slurm: not measured (needs root, sshd, and Slurm and munge installed, to start a test Slurm)"
        );
        return;
    }
    let slurm = crate::slurm_cluster::TestSlurm::start(2, 4);
    let sky = Sky::new(sky_binary);
    let config = sky.home().join(".slurm/config");
    std::fs::create_dir_all(config.parent().expect("a folder")).expect("~/.slurm");
    std::fs::copy(slurm.config_file("bench"), &config).expect("Slurm configuration");
    sky.run(&["api", "start"]);
    sky.run(&["launch", "-c", "pair", "-y", "--infra", "slurm/bench", "--num-nodes", "2", "-d", "true"]);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let client = connect(&sky).await;
        let mut starts = Vec::new();
        for _ in 0..samples {
            starts.push(crate::ssh::exec_to_start_on_every_node(&client, "pair", 2).await);
        }
        println!(
            "slurm_exec_to_job_start_on_2_nodes_median: {:.1} ms",
            crate::ms(crate::process::median(&mut starts))
        );
    });
    let allocation = slurm.active_jobs().first().and_then(|job| job.split(' ').next().map(str::to_string));
    let allocation = allocation.expect("the cluster's allocation");
    let step = format!("srun --jobid={allocation} --overlap --nodes=2 --ntasks=2 --quiet true");
    let mut floors: Vec<Duration> = (0..samples)
        .map(|_| {
            let started = Instant::now();
            let out = slurm.as_login_user(&step);
            assert!(out.status.success(), "{step}: {}", String::from_utf8_lossy(&out.stderr));
            started.elapsed()
        })
        .collect();
    println!("slurm_srun_true_on_2_nodes_median: {:.1} ms", crate::ms(crate::process::median(&mut floors)));
    sky.run(&["down", "pair", "-y"]);
    sky.run(&["api", "stop"]);
}
