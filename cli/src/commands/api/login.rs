//! `sky api login`: checking an API server endpoint (and token) and saving
//! it in ~/.sky/skyconfig.yaml.

use skypilot_api::{Endpoint, EndpointSource, config::SkyConfig, endpoint::ENDPOINT_ENV};

use crate::{
    connect::connect_to,
    error::{CliError, CliResult},
    prompt,
};

/// Options of `sky api login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Endpoint, e.g. http://user:password@host:46580.
    #[arg(short, long)]
    endpoint: Option<String>,
    /// A service-account token (sky_...) to log in with.
    #[arg(long)]
    token: Option<String>,
}

impl LoginArgs {
    pub async fn run(self) -> CliResult {
        let url = match self.endpoint {
            Some(url) => url,
            None => prompt::ask("Enter your SkyPilot API server endpoint: ")?,
        };
        let mut config = SkyConfig::load()?;
        let mut endpoint = Endpoint::parse(&url, EndpointSource::ConfigFile(config.path().to_path_buf()))
            .map_err(|problem| {
                CliError::new(format!(
                    "invalid endpoint {url:?}: {problem}. Expected http[s]://[user:password@]host[:port]."
                ))
            })?;
        endpoint.token = self.token.filter(|t| !t.trim().is_empty());
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
}
