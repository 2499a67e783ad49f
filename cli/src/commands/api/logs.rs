//! `sky api logs`: the log of a request, or with `--server-logs` the local
//! API server's own log.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom, Write},
    time::Duration,
};

use skypilot_api::{Endpoint, client::request_metadata, proto::skypilot::v1::ListRequestsRequest};
use skypilot_server::ServerConfig;

use crate::{
    connect::{connect, server_log_path},
    error::{CliError, CliResult},
    follow,
};

/// Options of `sky api logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Request id or unique prefix.
    request_id: Option<String>,
    /// Keep streaming until the request finishes (default).
    #[arg(long, overrides_with = "no_follow")]
    follow: bool,
    /// Print what is there and return.
    #[arg(long)]
    no_follow: bool,
    /// Start with the last N lines.
    #[arg(long)]
    tail: Option<u32>,
    /// Show the local API server's own log instead.
    #[arg(long)]
    server_logs: bool,
}

impl LogsArgs {
    pub async fn run(self) -> CliResult {
        let follow = !self.no_follow;
        if self.server_logs {
            return print_server_log(follow, self.tail).await;
        }
        let client = connect().await?;
        let id = match self.request_id {
            Some(id) => id,
            None => {
                let latest = client
                    .list_requests(ListRequestsRequest {
                        include_finished: true,
                        limit: 1,
                        ..Default::default()
                    })
                    .await?;
                let latest =
                    latest.first().ok_or_else(|| CliError::new("No requests found; nothing to show."))?;
                request_metadata(latest)?.request_id
            }
        };
        let operation = client.get_operation(&id).await?;
        let id = request_metadata(&operation)?.request_id;
        follow::stream_log(&client, &id, follow, self.tail.map(|t| t.min(i32::MAX as u32) as i32)).await?;
        if follow {
            follow::outcome(client.get_operation(&id).await?)?;
        }
        Ok(())
    }
}

/// Prints the local server's log (`--tail` lines), following it with `follow`.
async fn print_server_log(follow: bool, tail: Option<u32>) -> CliResult {
    let endpoint = Endpoint::resolve()?;
    if !endpoint.is_local_default() {
        return Err(CliError::new(format!(
            "--server-logs shows the local API server's log; the API server at {} is remote: \
             read its log where it runs (e.g. `kubectl logs`).",
            endpoint.display()
        )));
    }
    let path = server_log_path(&ServerConfig::default_data_dir());
    let mut file =
        File::open(&path).map_err(|err| CliError::new(format!("cannot read {}: {err}", path.display())))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let lines: Vec<&str> = text.lines().collect();
    let start = tail.map(|t| lines.len().saturating_sub(t as usize)).unwrap_or(0);
    let mut stdout = std::io::stdout();
    for line in &lines[start..] {
        writeln!(stdout, "{line}")?;
    }
    if !follow {
        return Ok(());
    }
    let mut offset = file.stream_position()?;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        file.seek(SeekFrom::Start(offset))?;
        let mut more = Vec::new();
        file.read_to_end(&mut more)?;
        offset += more.len() as u64;
        stdout.write_all(&more)?;
        stdout.flush()?;
    }
}
