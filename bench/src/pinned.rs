//! The 64-client unary latency with the server and the benchmark's clients
//! on separate CPUs (the server's threads on CPU 0, the clients on the
//! others), so that the figures are the server's share alone; beside the
//! same calls with both sharing every CPU.

use std::fs;

use std::time::Instant;

use crate::{
    load,
    process::{Sky, cpu_seconds},
};

/// Pins every thread of process `pid` to the CPUs in `cpus`.
fn pin_process(pid: u32, cpus: &[usize]) {
    for entry in fs::read_dir(format!("/proc/{pid}/task")).expect("threads").flatten() {
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        pin(tid, cpus);
    }
}

/// Pins thread `tid` (0: the calling thread) to `cpus`.
fn pin(tid: i32, cpus: &[usize]) {
    // SAFETY: an all-zero cpu_set_t is an empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in cpus {
            libc::CPU_SET(*cpu, &mut set);
        }
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

pub fn figures(sky: &Sky, calls: usize) {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if cpus < 2 {
        println!("pinned_latency: not measured (one CPU)");
        return;
    }
    sky.run(&["api", "start"]);
    let shared = runtime().block_on(measure(sky, calls));
    // The server on CPU 0; this process (and the runtime it builds next) on the rest.
    let pid = sky.server_pid();
    pin_process(pid, &[0]);
    pin(0, &(1..cpus).collect::<Vec<_>>());
    let (cpu_before, started) = (cpu_seconds(pid), Instant::now());
    let pinned = runtime().block_on(measure(sky, calls));
    // How busy the server's CPU was: below 100 %, the clients set the pace.
    let busy = (cpu_seconds(pid) - cpu_before) / started.elapsed().as_secs_f64() * 100.0;
    println!("server_cpu_busy_while_pinned: {busy:.0} %");
    for ((name, (p50, p99)), (_, (pinned_p50, pinned_p99))) in shared.iter().zip(&pinned) {
        println!("{name}_64_clients_shared_cpus_p50: {p50:.3} ms");
        println!("{name}_64_clients_shared_cpus_p99: {p99:.3} ms");
        println!("{name}_64_clients_server_on_own_cpu_p50: {pinned_p50:.3} ms");
        println!("{name}_64_clients_server_on_own_cpu_p99: {pinned_p99:.3} ms");
    }
    sky.run(&["api", "stop"]);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

async fn measure(sky: &Sky, calls: usize) -> Vec<(&'static str, (f64, f64))> {
    let mut figures = Vec::new();
    for call in [load::Unary::ServerInfo, load::Unary::ListRequests, load::Unary::ClusterStatus] {
        figures.push((call.name(), load::unary_latency(sky, call, 64, calls / 10).await));
    }
    figures
}
