//! `skypilot.v1.UserService`: who am I, users and roles, tokens.

use std::sync::Arc;

use skypilot_api::proto::skypilot::v1::{
    CreateTokenRequest, CreateTokenResponse, CreateUserRequest, CreateUserResponse, DeleteUserRequest,
    DeleteUserResponse, ListTokensRequest, ListTokensResponse, ListUsersRequest, ListUsersResponse,
    RevokeTokenRequest, RevokeTokenResponse, Role, SetPasswordRequest, SetPasswordResponse, SetRoleRequest,
    SetRoleResponse, TokenInfo, UserInfo, WhoAmIRequest, WhoAmIResponse, user_service_server::UserService,
};
use tonic::{Request, Response, Status};

use super::{Shared, caller::caller, convert::timestamp};
use crate::{
    auth::{Accounts, Caller},
    error::{Error, ErrorReason},
    store::{TokenRecord, UserRecord},
};

pub struct UsersApi(pub Arc<Shared>);

impl UsersApi {
    /// The caller and the accounts of a deployed server.
    fn accounts<T>(&self, request: &Request<T>) -> Result<(Caller, &Accounts), Status> {
        let caller = caller(request, &self.0.owner)?;
        let accounts = self.0.accounts.as_deref().ok_or_else(|| {
            Error::new(
                ErrorReason::FailedPrecondition,
                "this is a local API server, which has no users or tokens; a team deployment \
                 (sky api start --deploy) has them",
            )
        })?;
        Ok((caller, accounts))
    }
}

fn user_info(user: &UserRecord) -> UserInfo {
    UserInfo {
        name: user.name.clone(),
        id: user.id.clone(),
        role: user.role,
        created_at: timestamp(user.created_ms),
    }
}

fn token_info(token: &TokenRecord) -> TokenInfo {
    TokenInfo {
        token_id: token.token_id.clone(),
        name: token.name.clone(),
        user_name: token.user_name.clone(),
        created_at: timestamp(token.created_ms),
        expires_at: timestamp(token.expires_ms),
    }
}

#[tonic::async_trait]
impl UserService for UsersApi {
    async fn who_am_i(&self, request: Request<WhoAmIRequest>) -> Result<Response<WhoAmIResponse>, Status> {
        let caller = caller(&request, &self.0.owner)?;
        let user = UserInfo { name: caller.name, id: caller.id, role: caller.role as i32, created_at: None };
        Ok(Response::new(WhoAmIResponse { user: Some(user) }))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let (_, accounts) = self.accounts(&request)?;
        let users = accounts.users()?.iter().map(user_info).collect();
        Ok(Response::new(ListUsersResponse { users }))
    }

    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<CreateUserResponse>, Status> {
        let (caller, accounts) = self.accounts(&request)?;
        caller.ensure_admin("create users")?;
        let request = request.into_inner();
        let user = accounts.create_user(&request.name, &request.password, request.role()).await?;
        Ok(Response::new(CreateUserResponse { user: Some(user_info(&user)) }))
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let (caller, accounts) = self.accounts(&request)?;
        caller.ensure_admin("delete users")?;
        let name = request.into_inner().name;
        let user = accounts.user(&name)?;
        let clusters =
            self.0.clusters.list(&[], Some(&user.id))?.into_iter().map(|c| format!("cluster {}", c.name));
        let (jobs, _) = self.0.managed.list(Some(&user.id), true, &[], &crate::clusters::Page::default())?;
        let jobs = jobs.into_iter().map(|job| format!("managed job {}", job.job_id));
        let owned: Vec<String> = clusters.chain(jobs).collect();
        accounts.delete_user(&name, &owned).await?;
        Ok(Response::new(DeleteUserResponse {}))
    }

    async fn set_role(&self, request: Request<SetRoleRequest>) -> Result<Response<SetRoleResponse>, Status> {
        let (caller, accounts) = self.accounts(&request)?;
        caller.ensure_admin("change roles")?;
        let request = request.into_inner();
        if request.role() == Role::Unspecified {
            return Err(Error::invalid("role", "must be admin or user").into());
        }
        let user = accounts.set_role(&request.name, request.role()).await?;
        Ok(Response::new(SetRoleResponse { user: Some(user_info(&user)) }))
    }

    async fn set_password(
        &self,
        request: Request<SetPasswordRequest>,
    ) -> Result<Response<SetPasswordResponse>, Status> {
        let (caller, accounts) = self.accounts(&request)?;
        let request = request.into_inner();
        let name = if request.name.is_empty() { caller.name.clone() } else { request.name };
        if name != caller.name {
            caller.ensure_admin("set other users' passwords")?;
        }
        accounts.set_password(&name, &request.password).await?;
        Ok(Response::new(SetPasswordResponse {}))
    }

    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let (caller, accounts) = self.accounts(&request)?;
        let request = request.into_inner();
        let user = if request.user_name.is_empty() { caller.name.clone() } else { request.user_name };
        if user != caller.name {
            caller.ensure_admin("create tokens for other users")?;
        }
        let (token, secret) = accounts.create_token(&user, &request.name, request.expires_in_seconds).await?;
        Ok(Response::new(CreateTokenResponse { token: Some(token_info(&token)), secret }))
    }

    async fn list_tokens(
        &self,
        request: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensResponse>, Status> {
        let (caller, accounts) = self.accounts(&request)?;
        let whose = (!caller.is_admin()).then_some(caller.name.as_str());
        let tokens = accounts.tokens(whose)?.iter().map(token_info).collect();
        Ok(Response::new(ListTokensResponse { tokens }))
    }

    async fn revoke_token(
        &self,
        request: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        let (caller, accounts) = self.accounts(&request)?;
        accounts.revoke_token(&caller, &request.into_inner().token_id).await?;
        Ok(Response::new(RevokeTokenResponse {}))
    }
}
