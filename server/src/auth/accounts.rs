//! The users and service-account tokens of a deployed server: argon2id
//! password hashes and SHA-256 token digests in the store (never the secrets
//! themselves), credential checks with a short, bounded cache for verified
//! passwords, and a slow-down for sources that keep failing (`throttle`).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use skypilot_api::proto::skypilot::v1::Role;

use super::{Caller, passwords::Passwords, throttle::Throttle};
use crate::{
    clock::now_ms,
    error::{Error, ErrorReason, Result},
    store::{Store, Table, TokenRecord, UserRecord},
};

/// How long a verified password stays verified without hashing it again.
const VERIFIED_FOR: Duration = Duration::from_secs(300);
/// Verified credentials remembered at most.
const MAX_VERIFIED: usize = 10_000;
const LOGIN_HINT: &str = "log in with `sky api login -e http://USER:PASSWORD@HOST:PORT`, or set \
                          SKYPILOT_SERVICE_ACCOUNT_TOKEN to a token from `sky tokens create`";

pub struct Accounts {
    store: Store,
    /// SHA-256 of a verified `authorization` header -> who and until when.
    verified: Mutex<HashMap<Vec<u8>, (Caller, Instant)>>,
    throttle: Throttle,
    passwords: Passwords,
}

impl Accounts {
    pub fn new(store: Store) -> Accounts {
        Accounts {
            store,
            verified: Mutex::default(),
            throttle: Throttle::default(),
            passwords: Passwords::new(),
        }
    }

    /// Creates the first admin when there is no user; returns the generated
    /// password, if any, so that it can be shown once.
    /// `first` is the parsed settings, whose error matters only when there is
    /// no user yet.
    pub async fn bootstrap(&self, first: Result<FirstAdmin>) -> Result<Option<String>> {
        if !self.store.scan::<UserRecord>(Table::Users, b"")?.is_empty() {
            if first.as_ref().is_ok_and(|first| first.token.is_some()) {
                tracing::warn!(
                    "SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN is ignored: users exist already \
                     (create tokens with `sky tokens create`)"
                );
            }
            return Ok(None);
        }
        let first = first?;
        let (password, generated) = match &first.password {
            Some(password) => (password.clone(), false),
            None => (random_hex(12), true),
        };
        self.create_user(&first.name, &password, Role::Admin).await?;
        if let Some(token) = &first.token {
            self.register_token(&first.name, "initial", 0, token)?;
            self.store.durable().await?;
        }
        Ok(generated.then_some(password))
    }

    /// Checks an `authorization` header. A source's password attempts and
    /// failed tokens are slowed down, before the check, as its failures grow.
    pub async fn authenticate(&self, header: Option<&str>, peer: Option<IpAddr>) -> Result<Caller> {
        let unauthenticated =
            |why: &str| Error::new(ErrorReason::Unauthenticated, format!("{why}; {LOGIN_HINT}"));
        let header = header.map(str::trim).filter(|h| !h.is_empty());
        let Some(header) = header else {
            return Err(unauthenticated("this API server requires credentials"));
        };
        let digest = sha256(header.as_bytes());
        if let Some((caller, until)) = self.verified.lock().unwrap_or_else(|p| p.into_inner()).get(&digest)
            && *until > Instant::now()
        {
            return Ok(caller.clone());
        }
        let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let decoded = skypilot_api::base64::decode(value.trim())
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| unauthenticated("malformed basic credentials"))?;
                let (name, password) =
                    decoded.split_once(':').ok_or_else(|| unauthenticated("malformed basic credentials"))?;
                let _turn = match peer {
                    Some(peer) => Some(self.throttle.attempt(peer).await),
                    None => None,
                };
                // An unknown name costs the same check as a wrong password.
                let user = self.user(name).ok();
                let hash = user.as_ref().map(|user| user.password_hash.as_str());
                let (true, Some(user)) = (self.passwords.verify(password, hash).await?, user) else {
                    return Err(unauthenticated("wrong user name or password"));
                };
                if let Some(peer) = peer {
                    self.throttle.succeeded(peer);
                }
                let caller = caller_of(&user);
                self.remember_verified(digest, caller.clone());
                Ok(caller)
            }
            "bearer" => {
                let caller = self.check_token(value.trim()).map_err(|why| unauthenticated(&why));
                if let (Err(_), Some(peer)) = (&caller, peer) {
                    drop(self.throttle.attempt(peer).await);
                }
                caller
            }
            _ => Err(unauthenticated("malformed authorization header (expected Basic or Bearer)")),
        }
    }

    /// The caller a service-account token stands for, or why it is refused.
    fn check_token(&self, secret: &str) -> Result<Caller, String> {
        let key = hex(&sha256(secret.as_bytes()));
        let token: TokenRecord = self
            .store
            .get(Table::Tokens, key.as_bytes())
            .map_err(|err| err.message)?
            .ok_or("unknown or revoked token")?;
        if token.expires_ms > 0 && token.expires_ms <= now_ms() {
            return Err(format!("token {} has expired", token.token_id));
        }
        let user = self.user(&token.user_name).map_err(|_| "the token's user no longer exists")?;
        Ok(caller_of(&user))
    }

    /// Caches a verified header, keeping the cache bounded.
    fn remember_verified(&self, digest: Vec<u8>, caller: Caller) {
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= MAX_VERIFIED {
            let now = Instant::now();
            verified.retain(|_, (_, until)| *until > now);
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
        }
        verified.insert(digest, (caller, Instant::now() + VERIFIED_FOR));
    }

    fn forget_verified(&self) {
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn user(&self, name: &str) -> Result<UserRecord> {
        self.store
            .get(Table::Users, name.as_bytes())?
            .ok_or_else(|| Error::not_found(format!("no user named {name:?}; `sky users list` lists users")))
    }

    pub fn users(&self) -> Result<Vec<UserRecord>> {
        self.store.scan(Table::Users, b"")
    }

    /// Creates a user (durably, like every change below).
    pub async fn create_user(&self, name: &str, password: &str, role: Role) -> Result<UserRecord> {
        validate_user_name(name)?;
        validate_password(password)?;
        if self.store.get::<UserRecord>(Table::Users, name.as_bytes())?.is_some() {
            return Err(Error::new(ErrorReason::AlreadyExists, format!("user {name:?} already exists")));
        }
        let taken: Vec<String> = self.users()?.into_iter().map(|user| user.id).collect();
        let user = UserRecord {
            name: name.to_string(),
            id: unique_id(|id| taken.iter().any(|t| t == id)),
            role: normal_role(role) as i32,
            password_hash: self.passwords.hash(password).await?,
            created_ms: now_ms(),
        };
        self.store.put(Table::Users, name.as_bytes(), &user)?;
        self.store.durable().await?;
        Ok(user)
    }

    /// Deletes a user and their tokens; refused while they own something
    /// (`owns` names it: clusters, unfinished managed jobs) or are the last admin.
    pub async fn delete_user(&self, name: &str, owns: &[String]) -> Result<()> {
        let user = self.user(name)?;
        if user.role() == Role::Admin && self.admins()? <= 1 {
            return Err(Error::new(
                ErrorReason::FailedPrecondition,
                format!("{name} is the last admin; make another admin first"),
            ));
        }
        if !owns.is_empty() {
            return Err(Error::new(
                ErrorReason::FailedPrecondition,
                format!(
                    "{name} still owns {}; tear the clusters down (sky down -u NAME) and cancel the \
                     managed jobs (sky jobs cancel ID) first",
                    owns.join(", ")
                ),
            ));
        }
        self.store.delete(Table::Users, name.as_bytes())?;
        for (key, token) in self.store.scan_with_keys::<TokenRecord>(Table::Tokens)? {
            if token.user_name == name {
                self.store.delete(Table::Tokens, &key)?;
            }
        }
        self.forget_verified();
        self.store.durable().await
    }

    pub async fn set_role(&self, name: &str, role: Role) -> Result<UserRecord> {
        let mut user = self.user(name)?;
        let role = normal_role(role);
        if user.role() == Role::Admin && role != Role::Admin && self.admins()? <= 1 {
            return Err(Error::new(
                ErrorReason::FailedPrecondition,
                format!("{name} is the last admin; make another admin first"),
            ));
        }
        user.role = role as i32;
        self.store.put(Table::Users, name.as_bytes(), &user)?;
        self.forget_verified();
        self.store.durable().await?;
        Ok(user)
    }

    pub async fn set_password(&self, name: &str, password: &str) -> Result<()> {
        validate_password(password)?;
        let mut user = self.user(name)?;
        user.password_hash = self.passwords.hash(password).await?;
        self.store.put(Table::Users, name.as_bytes(), &user)?;
        self.forget_verified();
        self.store.durable().await
    }

    /// Creates a token; returns its record and the secret (shown once).
    pub async fn create_token(
        &self,
        user_name: &str,
        name: &str,
        expires_in_seconds: i64,
    ) -> Result<(TokenRecord, String)> {
        self.user(user_name)?;
        if !(0..=MAX_TOKEN_SECONDS).contains(&expires_in_seconds) {
            return Err(Error::invalid(
                "expires_in_seconds",
                format!("must be 0 (never expires) to {MAX_TOKEN_SECONDS} (ten years)"),
            ));
        }
        if name.chars().count() > MAX_TOKEN_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                format!(
                    "a token name has at most {MAX_TOKEN_NAME_CHARS} characters and no control characters"
                ),
            ));
        }
        let secret = format!("sky_{}", random_hex(32));
        let record = self.register_token(user_name, name, expires_in_seconds, &secret)?;
        self.store.durable().await?;
        Ok((record, secret))
    }

    /// Stores `secret` (by its digest) as a token of `user_name`.
    fn register_token(
        &self,
        user_name: &str,
        name: &str,
        expires_in_seconds: i64,
        secret: &str,
    ) -> Result<TokenRecord> {
        let taken: Vec<String> = self.tokens(None)?.into_iter().map(|token| token.token_id).collect();
        let record = TokenRecord {
            token_id: unique_id(|id| taken.iter().any(|t| t == id)),
            name: if name.is_empty() { "token".into() } else { name.to_string() },
            user_name: user_name.to_string(),
            created_ms: now_ms(),
            expires_ms: match expires_in_seconds {
                0 => 0,
                seconds => now_ms().saturating_add(seconds.saturating_mul(1000)),
            },
        };
        self.store.put(Table::Tokens, hex(&sha256(secret.as_bytes())).as_bytes(), &record)?;
        Ok(record)
    }

    /// Tokens of `user_name`, or of everyone.
    pub fn tokens(&self, user_name: Option<&str>) -> Result<Vec<TokenRecord>> {
        let all: Vec<TokenRecord> = self.store.scan(Table::Tokens, b"")?;
        Ok(all.into_iter().filter(|t| user_name.is_none_or(|u| u == t.user_name)).collect())
    }

    /// Revokes a token; `caller` must own it or be an admin.
    pub async fn revoke_token(&self, caller: &Caller, token_id: &str) -> Result<()> {
        for (key, token) in self.store.scan_with_keys::<TokenRecord>(Table::Tokens)? {
            if token.token_id == token_id {
                if token.user_name != caller.name {
                    caller.ensure_admin("revoke other users' tokens")?;
                }
                self.store.delete(Table::Tokens, &key)?;
                return self.store.durable().await;
            }
        }
        Err(Error::not_found(format!("no token with id {token_id:?}; `sky tokens list` lists tokens")))
    }

    fn admins(&self) -> Result<usize> {
        Ok(self.users()?.iter().filter(|u| u.role() == Role::Admin).count())
    }
}

fn caller_of(user: &UserRecord) -> Caller {
    Caller {
        name: user.name.clone(),
        id: user.id.clone(),
        role: normal_role(user.role()),
        on_server_host: false,
    }
}

fn normal_role(role: Role) -> Role {
    if role == Role::Admin { Role::Admin } else { Role::User }
}

/// The longest token lifetime and name accepted.
const MAX_TOKEN_SECONDS: i64 = 10 * 365 * 24 * 3600;
const MAX_TOKEN_NAME_CHARS: usize = 64;

fn validate_user_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if !valid {
        return Err(Error::invalid("name", "use 1 to 64 letters, digits, '-', '_', '.' or '@'"));
    }
    Ok(())
}

fn validate_password(password: &str) -> Result<()> {
    if password.chars().count() < 8 {
        return Err(Error::invalid("password", "must be at least 8 characters"));
    }
    Ok(())
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

fn hex(bytes: &[u8]) -> String {
    skypilot_api::identity::hex(bytes)
}

/// `n` random bytes as hex.
fn random_hex(n: usize) -> String {
    skypilot_api::identity::random_hex(n).expect("/dev/urandom is readable")
}

/// A random 128-bit id (hex) that `taken` does not know.
fn unique_id(taken: impl Fn(&str) -> bool) -> String {
    loop {
        let id = random_hex(16);
        if !taken(&id) {
            return id;
        }
    }
}

/// The first admin of a deployed server, from `SKYPILOT_INITIAL_BASIC_AUTH`
/// and `SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN`; checked before the server
/// touches its data directory.
#[derive(Debug, Clone)]
pub struct FirstAdmin {
    name: String,
    /// None: a random one, shown once.
    password: Option<String>,
    token: Option<String>,
}

impl FirstAdmin {
    /// `initial`: "user:password" or a file holding that (default: "admin"
    /// with a random password); `token`: "sky_..." or a file holding it.
    pub fn parse(initial: Option<&str>, token: Option<&str>) -> Result<FirstAdmin> {
        let (name, password) = match initial {
            Some(value) => {
                let text = value_or_file_contents(value, "SKYPILOT_INITIAL_BASIC_AUTH")?;
                let (name, password) = text.split_once(':').ok_or_else(|| {
                    Error::invalid(
                        "SKYPILOT_INITIAL_BASIC_AUTH",
                        "must be USER:PASSWORD or a file holding that",
                    )
                })?;
                (name.to_string(), Some(password.to_string()))
            }
            None => ("admin".to_string(), None),
        };
        let token = token
            .map(|token| value_or_file_contents(token, "SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN"))
            .transpose()?;
        if let Some(token) = &token
            && !(token.starts_with("sky_")
                && token.len() >= 36
                && token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(Error::invalid(
                "SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN",
                "must be a token of the form sky_ followed by at least 32 characters (make one with \
                 `echo sky_$(openssl rand -hex 32)`), or a file holding it",
            ));
        }
        Ok(FirstAdmin { name, password, token })
    }
}

/// The trimmed contents of the file `value` names, or `value` itself when it
/// names no file. An absolute path that cannot be read is an error that says
/// so (a credentials volume that is missing or unreadable), not a value.
fn value_or_file_contents(value: &str, setting: &str) -> Result<String> {
    let value = value.trim();
    match std::fs::read_to_string(value) {
        Ok(contents) => Ok(contents.trim().to_string()),
        Err(err) if value.starts_with('/') => {
            Err(Error::invalid(setting, format!("names the file {value}, which cannot be read: {err}")))
        }
        Err(_) => Ok(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_credentials_come_from_a_value_or_a_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("basic-auth");
        std::fs::write(&file, "root:a-long-password\n").unwrap();
        let first = FirstAdmin::parse(Some(file.to_str().unwrap()), None).unwrap();
        assert_eq!((first.name.as_str(), first.password.as_deref()), ("root", Some("a-long-password")));
        let direct = FirstAdmin::parse(Some("admin:another-password"), None).unwrap();
        assert_eq!(direct.name, "admin");
        let missing = dir.path().join("not-mounted/basic-auth");
        let err = FirstAdmin::parse(Some(missing.to_str().unwrap()), None).unwrap_err();
        assert!(err.message.contains("cannot be read") && err.message.contains("not-mounted"), "{err}");
    }
}
