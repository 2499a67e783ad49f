//! Fixed ports for tests and benchmarks that need them (a server restarted
//! on the port its predecessor had, a Slurm configuration that names its
//! daemons' ports). Shared by the server's and the CLI's tests and the
//! benchmark.

/// A free loopback port below the kernel's ephemeral range, so that no
/// socket bound to port 0 (another test's server, an outgoing connection)
/// can take it between the moment it is chosen and the moment it is bound,
/// or between a killed server and its successor.
pub fn quiet_port() -> u16 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let ephemeral_low: u32 =
        range.split_whitespace().next().and_then(|low| low.parse().ok()).unwrap_or(32768);
    let (low, high) = (10_000u32, ephemeral_low.max(10_001));
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut seed = std::process::id() ^ nanos;
    for _ in 0..1000 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let port = (low + (seed >> 8) % (high - low)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {low} and {high}");
}
