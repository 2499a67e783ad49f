//! `sky api status`: listing requests, as a table or as JSON.

use serde_json::json;
use skypilot_api::{client::request_metadata, proto::skypilot::v1::ListRequestsRequest};

use crate::{
    connect::connect,
    error::CliResult,
    output::{self, Format, ago, epoch_seconds, table},
};

/// Options of `sky api status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Request ids (or unique prefixes) to show.
    request_ids: Vec<String>,
    /// Include finished requests.
    #[arg(short = 'a', long = "all-status")]
    all_status: bool,
    /// Show every user's requests.
    #[arg(short = 'u', long = "all-users")]
    all_users: bool,
    /// Show more columns.
    #[arg(short, long)]
    verbose: bool,
    /// Show at most this many requests.
    #[arg(short, long)]
    limit: Option<u32>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

impl StatusArgs {
    pub async fn run(self) -> CliResult {
        let client = connect().await?;
        let operations = client
            .list_requests(ListRequestsRequest {
                all_users: self.all_users,
                include_finished: self.all_status,
                cluster_name: String::new(),
                limit: self.limit.map(|l| l as i32).unwrap_or(0),
                request_ids: self.request_ids,
            })
            .await?;
        let metadata = operations.iter().map(request_metadata).collect::<Result<Vec<_>, _>>()?;
        if self.output == Format::Json {
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
        if self.verbose {
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
                if self.verbose {
                    row.push(if m.cluster_name.is_empty() { "-".into() } else { m.cluster_name.clone() });
                    row.push(m.status_message.clone());
                }
                row
            })
            .collect();
        print!("{}", table(&headers, &rows));
        Ok(())
    }
}
