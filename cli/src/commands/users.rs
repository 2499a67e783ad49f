//! `sky users ...`: the user accounts of a team deployment.

use clap::Subcommand;
use skypilot_api::{
    names,
    proto::skypilot::v1::{
        CreateUserRequest, DeleteUserRequest, ListUsersRequest, Role, SetPasswordRequest, SetRoleRequest,
    },
};

use crate::{
    connect::connect,
    error::{CliError, CliResult},
    output::{ago, table},
    prompt,
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

/// The password given, else one typed on stdin (kept as typed but for the line ending).
fn password(given: Option<String>) -> CliResult<String> {
    if let Some(password) = given {
        return Ok(password);
    }
    let line = prompt::line("Password: ")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(CliError::new("no password given; pass --password or type one"));
    }
    Ok(password)
}

impl UsersCommand {
    pub async fn run(self) -> CliResult {
        let client = connect().await?;
        let mut users = client.users();
        match self {
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
}
