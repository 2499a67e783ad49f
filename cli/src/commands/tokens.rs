//! `sky tokens ...`: service-account tokens of a team deployment.

use clap::Subcommand;
use skypilot_api::proto::skypilot::v1::{CreateTokenRequest, ListTokensRequest, RevokeTokenRequest};

use crate::{
    connect::connect,
    error::CliResult,
    output::{ago, table},
};

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a service-account token; it is shown once.
    Create {
        /// A name to recognise it by.
        #[arg(long, default_value = "token")]
        name: String,
        /// Whose token (default: yours; others' for admins).
        #[arg(long)]
        user: Option<String>,
        /// Seconds until it expires (default: never).
        #[arg(long)]
        expires_in: Option<i64>,
    },
    /// List your tokens (admins: everyone's).
    List,
    /// Revoke a token; it stops working at once.
    Revoke { token_id: String },
}

impl TokensCommand {
    pub async fn run(self) -> CliResult {
        let client = connect().await?;
        let mut users = client.users();
        match self {
            TokensCommand::Create { name, user, expires_in } => {
                let request = CreateTokenRequest {
                    name,
                    user_name: user.unwrap_or_default(),
                    expires_in_seconds: expires_in.unwrap_or(0),
                };
                let created = client.accept(users.create_token(request).await)?;
                let token = created.token.unwrap_or_default();
                eprintln!(
                    "Created token {} for {}. Keep it safe: it is shown only this once.",
                    token.token_id, token.user_name
                );
                println!("{}", created.secret);
            }
            TokensCommand::List => {
                let list = client.accept(users.list_tokens(ListTokensRequest {}).await)?.tokens;
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|t| {
                        let expires = match &t.expires_at {
                            Some(ts) => format!("at {}", ts.seconds),
                            None => "never".into(),
                        };
                        vec![
                            t.token_id.clone(),
                            t.name.clone(),
                            t.user_name.clone(),
                            ago(t.created_at.as_ref()),
                            expires,
                        ]
                    })
                    .collect();
                print!("{}", table(&["ID", "NAME", "USER", "CREATED", "EXPIRES"], &rows));
            }
            TokensCommand::Revoke { token_id } => {
                client.accept(users.revoke_token(RevokeTokenRequest { token_id: token_id.clone() }).await)?;
                println!("Revoked token {token_id}.");
            }
        }
        Ok(())
    }
}
