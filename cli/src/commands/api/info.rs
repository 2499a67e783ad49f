//! `sky api info`: the API server in use, its health and version, and who
//! the caller is to it.

use serde_json::json;
use skypilot_api::Endpoint;

use crate::{connect::connect_to, error::CliResult, output::Format};

/// Options of `sky api info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

impl InfoArgs {
    pub async fn run(self) -> CliResult {
        let endpoint = Endpoint::resolve()?;
        let client = connect_to(&endpoint, true).await?;
        let info = client.server_info().await?;
        let user = client.who_am_i().await?;
        let role = skypilot_api::names::role(user.role());
        if self.output == Format::Json {
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
        println!(
            "\u{251c}\u{2500}\u{2500} Status: healthy, commit: {}, version: {}",
            info.commit, info.version
        );
        println!("\u{2514}\u{2500}\u{2500} User: {} ({}), role: {role}", user.name, user.id);
        Ok(())
    }
}
