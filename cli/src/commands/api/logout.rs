//! `sky api logout`: forgetting the API server endpoint (and token) saved
//! in ~/.sky/skyconfig.yaml.

use skypilot_api::{Endpoint, EndpointSource, config::SkyConfig};

use crate::error::CliResult;

/// `sky api logout`.
pub fn run() -> CliResult {
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
