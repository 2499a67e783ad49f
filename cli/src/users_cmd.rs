//! `sky users ...` and `sky tokens ...`: accounts of a team deployment.

use std::io::Write;

use clap::Subcommand;
use skypilot_api::{
    names,
    proto::skypilot::v1::{
        CreateTokenRequest, CreateUserRequest, DeleteUserRequest, ListTokensRequest, ListUsersRequest,
        RevokeTokenRequest, Role, SetPasswordRequest, SetRoleRequest,
    },
};

use crate::{
    connect::connect,
    error::{CliError, CliResult},
    output::{ago, table},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    Admin,
    User,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::User => Role::User,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List users.
    List,
    /// Create a user (admins only).
    Create {
        name: String,
        /// The password (asked for when not given).
        #[arg(long)]
        password: Option<String>,
        #[arg(long, value_enum, default_value = "user")]
        role: RoleArg,
    },
    /// Delete a user (admins only).
    Delete { name: String },
    /// Change a user's role (admins only).
    SetRole {
        name: String,
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Set your password (admins: anyone's).
    SetPassword {
        /// The user (default: you).
        name: Option<String>,
        /// The new password (asked for when not given).
        #[arg(long)]
        password: Option<String>,
    },
}

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

fn password(given: Option<String>) -> CliResult<String> {
    if let Some(password) = given {
        return Ok(password);
    }
    eprint!("Password: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(CliError::new("no password given; pass --password or type one"));
    }
    Ok(password)
}

pub async fn users(command: UsersCommand) -> CliResult {
    let client = connect().await?;
    let mut users = client.users();
    match command {
        UsersCommand::List => {
            let list = client.accept(users.list_users(ListUsersRequest {}).await)?.users;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|u| {
                    vec![
                        u.name.clone(),
                        u.id.clone(),
                        names::role(u.role()).into(),
                        ago(u.created_at.as_ref()),
                    ]
                })
                .collect();
            print!("{}", table(&["NAME", "ID", "ROLE", "CREATED"], &rows));
        }
        UsersCommand::Create { name, password: given, role } => {
            let request =
                CreateUserRequest { name, password: password(given)?, role: Role::from(role) as i32 };
            let user = client.accept(users.create_user(request).await)?.user.unwrap_or_default();
            println!("Created user {} ({}), role: {}.", user.name, user.id, names::role(user.role()));
        }
        UsersCommand::Delete { name } => {
            client.accept(users.delete_user(DeleteUserRequest { name: name.clone() }).await)?;
            println!("Deleted user {name}.");
        }
        UsersCommand::SetRole { name, role } => {
            let request = SetRoleRequest { name, role: Role::from(role) as i32 };
            let user = client.accept(users.set_role(request).await)?.user.unwrap_or_default();
            println!("User {} is now {}.", user.name, names::role(user.role()));
        }
        UsersCommand::SetPassword { name, password: given } => {
            let request =
                SetPasswordRequest { name: name.clone().unwrap_or_default(), password: password(given)? };
            client.accept(users.set_password(request).await)?;
            println!("Password changed{}.", name.map(|n| format!(" for {n}")).unwrap_or_default());
        }
    }
    Ok(())
}

pub async fn tokens(command: TokensCommand) -> CliResult {
    let client = connect().await?;
    let mut users = client.users();
    match command {
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
