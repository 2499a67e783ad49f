//! `sky api status|logs|cancel|info|login|logout`: requests and the
//! connection to the API server.

use std::io::{BufRead, Write};

use serde_json::json;
use skypilot_api::{
    Endpoint, EndpointSource, client::request_metadata, config::SkyConfig, endpoint::ENDPOINT_ENV,
    proto::skypilot::v1::ListRequestsRequest,
};
use tonic::Code;

use crate::{
    connect::{connect, connect_to},
    error::{CliError, CliResult},
    follow,
    output::{self, ago, epoch_seconds, table},
};

/// Output formats of listing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// `sky api status`.
pub async fn status(
    ids: Vec<String>,
    all_status: bool,
    all_users: bool,
    verbose: bool,
    limit: Option<u32>,
    format: Format,
) -> CliResult {
    let client = connect().await?;
    let operations = client
        .list_requests(ListRequestsRequest {
            all_users,
            include_finished: all_status,
            cluster_name: String::new(),
            limit: limit.map(|l| l as i32).unwrap_or(0),
            request_ids: ids,
        })
        .await?;
    let metadata = operations.iter().map(request_metadata).collect::<Result<Vec<_>, _>>()?;
    if format == Format::Json {
        let items: Vec<_> = metadata
            .iter()
            .map(|m| {
                json!({
                    "request_id": m.request_id,
                    "name": m.request_name,
                    "user_name": m.user_name,
                    "user_id": m.user_id,
                    "cluster_name": m.cluster_name,
                    "status": output::state(m),
                    "created_at": epoch_seconds(m.create_time.as_ref()),
                    "finished_at": epoch_seconds(m.finish_time.as_ref()),
                    "status_msg": m.status_message,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items).unwrap_or_default());
        return Ok(());
    }
    let mut headers = vec!["ID", "User", "Name", "Created", "Status"];
    if verbose {
        headers.extend(["Cluster", "Message"]);
    }
    let rows: Vec<Vec<String>> = metadata
        .iter()
        .map(|m| {
            let mut row = vec![
                m.request_id.clone(),
                m.user_name.clone(),
                m.request_name.clone(),
                ago(m.create_time.as_ref()),
                output::state(m).to_string(),
            ];
            if verbose {
                row.push(if m.cluster_name.is_empty() { "-".into() } else { m.cluster_name.clone() });
                row.push(m.status_message.clone());
            }
            row
        })
        .collect();
    print!("{}", table(&headers, &rows));
    Ok(())
}

/// `sky api logs`: a request's log, or with `--server-logs` the local server's log.
pub async fn logs(id: Option<String>, follow: bool, tail: Option<u32>, server_logs: bool) -> CliResult {
    if server_logs {
        return crate::server_cmd::print_server_log(follow, tail).await;
    }
    let client = connect().await?;
    let id = match id {
        Some(id) => id,
        None => {
            let latest = client
                .list_requests(ListRequestsRequest { include_finished: true, limit: 1, ..Default::default() })
                .await?;
            let latest =
                latest.first().ok_or_else(|| CliError::new("No requests found; nothing to show."))?;
            request_metadata(latest)?.request_id
        }
    };
    let operation = client.get_operation(&id).await?;
    let id = request_metadata(&operation)?.request_id;
    follow::stream_log(&client, &id, follow, tail.map(|t| t.min(i32::MAX as u32) as i32)).await?;
    if follow {
        follow::outcome(client.get_operation(&id).await?)?;
    }
    Ok(())
}

/// `sky api cancel`.
pub async fn cancel(ids: Vec<String>, all: bool, all_users: bool, yes: bool) -> CliResult {
    if ids.is_empty() && !all && !all_users {
        return Err(CliError::new(
            "Specify request IDs to cancel, or use -a/--all (-u/--all-users for every user's).",
        ));
    }
    let client = connect().await?;
    let ids = if ids.is_empty() {
        let active = client
            .list_requests(ListRequestsRequest { all_users, include_finished: false, ..Default::default() })
            .await?;
        let ids: Vec<String> =
            active.iter().map(|op| request_metadata(op).map(|m| m.request_id)).collect::<Result<_, _>>()?;
        if ids.is_empty() {
            println!("No requests need to be cancelled.");
            return Ok(());
        }
        let whose = if all_users { "all users'" } else { "your" };
        if !yes && !confirm(&format!("Cancel {whose} {} active request(s)?", ids.len()))? {
            return Err(CliError::new("Aborted."));
        }
        ids
    } else {
        ids
    };
    let mut cancelled = Vec::new();
    for id in &ids {
        match client.cancel_operation(id).await {
            Ok(()) => cancelled.push(id.clone()),
            Err(err) if err.code() == Some(Code::FailedPrecondition) => eprintln!("{err}"),
            Err(err) => return Err(err.into()),
        }
    }
    if cancelled.is_empty() {
        println!("No requests need to be cancelled.");
    } else {
        println!("Cancelled {} request(s): {}", cancelled.len(), cancelled.join(", "));
    }
    Ok(())
}

/// `sky api info`.
pub async fn info(format: Format) -> CliResult {
    let endpoint = Endpoint::resolve()?;
    let client = connect_to(&endpoint, true).await?;
    let info = client.server_info().await?;
    let user = client.who_am_i().await?;
    let role = skypilot_api::names::role(user.role());
    if format == Format::Json {
        let value = json!({
            "endpoint": endpoint.display(),
            "endpoint_source": endpoint.source.to_string(),
            "status": "healthy",
            "version": info.version,
            "commit": info.commit,
            "api_version": info.api_version,
                        "user": {"name": user.name, "id": user.id, "role": role},
        });
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
        return Ok(());
    }
    println!("Using SkyPilot API server: {} ({})", endpoint.display(), endpoint.source);
    println!("\u{251c}\u{2500}\u{2500} Status: healthy, commit: {}, version: {}", info.commit, info.version);
    println!("\u{2514}\u{2500}\u{2500} User: {} ({}), role: {role}", user.name, user.id);
    Ok(())
}

/// `sky api login`.
pub async fn login(endpoint: Option<String>, token: Option<String>) -> CliResult {
    let url = match endpoint {
        Some(url) => url,
        None => prompt("Enter your SkyPilot API server endpoint: ")?,
    };
    let mut config = SkyConfig::load()?;
    let mut endpoint = Endpoint::parse(&url, EndpointSource::ConfigFile(config.path().to_path_buf()))
        .map_err(|problem| {
            CliError::new(format!(
                "invalid endpoint {url:?}: {problem}. Expected http[s]://[user:password@]host[:port]."
            ))
        })?;
    endpoint.token = token.clone().filter(|t| !t.trim().is_empty());
    // A server with a private CA is verified against the configured certificate.
    endpoint.ca_cert = config.api_server_str("ca_cert")?.map(std::path::PathBuf::from);
    let client = connect_to(&endpoint, false).await?;
    let user = client.who_am_i().await?;
    config.set_api_server("endpoint", url.trim().trim_end_matches('/'))?;
    match &endpoint.token {
        Some(token) => config.set_api_server("service_account_token", token)?,
        None => {
            config.remove_api_server("service_account_token");
        }
    }
    config.save()?;
    println!("Logged into SkyPilot API server at: {}", endpoint.display());
    println!("\u{2514}\u{2500}\u{2500} User: {} ({})", user.name, user.id);
    if std::env::var_os(ENDPOINT_ENV).is_some() {
        eprintln!(
            "Note: {ENDPOINT_ENV} is set and overrides the endpoint saved in {}.",
            config.path().display()
        );
    }
    Ok(())
}

/// `sky api logout`.
pub fn logout() -> CliResult {
    let mut config = SkyConfig::load()?;
    config.remove_api_server("service_account_token");
    let Some(previous) = config.remove_api_server("endpoint") else {
        println!(
            "Not logged in to any SkyPilot API server ({} has no api_server.endpoint).",
            config.path().display()
        );
        return Ok(());
    };
    config.save()?;
    let shown = previous
        .as_str()
        .and_then(|url| Endpoint::parse(url, EndpointSource::LocalDefault).ok())
        .map(|ep| ep.display())
        .unwrap_or_else(|| "the saved endpoint".into());
    println!("Logged out of SkyPilot API server at: {shown}");
    Ok(())
}

fn prompt(question: &str) -> CliResult<String> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim().to_string())
}

fn confirm(question: &str) -> CliResult<bool> {
    let answer = prompt(&format!("{question} [y/N]: "))?;
    Ok(matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes"))
}
