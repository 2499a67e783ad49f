//! `sky api stop`: stopping the local API server.

use std::{
    fs::{self, File},
    time::Duration,
};

use skypilot_api::Endpoint;
use skypilot_server::ServerConfig;

use crate::error::{CliError, CliResult};

/// `sky api stop`: stops the local server through its pid file and waits
/// until it has released its data directory.
pub async fn run() -> CliResult {
    let endpoint = Endpoint::resolve()?;
    if !endpoint.is_local_default() {
        return Err(CliError::new(format!(
            "Cannot stop the API server at {} ({}): `sky api stop` only stops the local API server.",
            endpoint.display(),
            endpoint.source
        )));
    }
    let data_dir = ServerConfig::default_data_dir();
    let lock_path = data_dir.join("server.lock");
    let Ok(lock) = File::options().write(true).open(&lock_path) else {
        println!("SkyPilot API server is not running.");
        return Ok(());
    };
    if lock.try_lock().is_ok() {
        println!("SkyPilot API server is not running.");
        return Ok(());
    }
    let pid = fs::read_to_string(data_dir.join("server.pid"))
        .ok()
        .and_then(|text| text.lines().next().and_then(|line| line.trim().parse::<i32>().ok()))
        .filter(|pid| *pid > 0)
        .ok_or_else(|| {
            CliError::new(format!(
                "the local API server holds {} but its pid file is missing",
                lock_path.display()
            ))
        })?;
    // SAFETY: kill(2) with a pid read from our own pid file and SIGTERM.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(CliError::new(format!(
            "cannot signal the API server (pid {pid}): {}",
            std::io::Error::last_os_error()
        )));
    }
    let released = tokio::task::spawn_blocking(move || lock.lock());
    match tokio::time::timeout(Duration::from_secs(60), released).await {
        Ok(Ok(Ok(()))) => {
            println!("SkyPilot API server stopped.");
            Ok(())
        }
        _ => Err(CliError::new(format!("the API server (pid {pid}) did not stop within 60 seconds"))),
    }
}
