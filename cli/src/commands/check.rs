//! `sky check`: which infras are usable.

use skypilot_api::{client::request_metadata, proto::skypilot::v1::CheckRequest};

use crate::{connect::connect, error::CliResult, follow};

/// Options of `sky check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Infras to check (default: all).
    infras: Vec<String>,
    /// Submit and return at once, printing the request id.
    #[arg(long = "async")]
    run_async: bool,
}

impl CheckArgs {
    pub async fn run(self) -> CliResult {
        let client = connect().await?;
        let operation =
            client.check(CheckRequest { infras: self.infras, idempotency_key: String::new() }).await?;
        if self.run_async {
            return follow::print_submitted(&operation);
        }
        let id = request_metadata(&operation)?.request_id;
        follow::follow_to_end(&client, &id).await?;
        Ok(())
    }
}
