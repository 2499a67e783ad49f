//! `sky check`: which infras are usable.

use skypilot_api::proto::skypilot::v1::CheckRequest;

use crate::{connect::connect, error::CliResult, follow};

pub async fn check(infras: Vec<String>, run_async: bool) -> CliResult {
    let client = connect().await?;
    let operation = client.check(CheckRequest { infras, idempotency_key: String::new() }).await?;
    if run_async {
        return follow::print_submitted(&operation);
    }
    let id = skypilot_api::client::request_metadata(&operation)?.request_id;
    follow::follow_to_end(&client, &id).await?;
    Ok(())
}
