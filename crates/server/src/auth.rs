//! Who is asking: API tokens (`Authorization: Bearer bw_…`, stored as SHA-256) and web
//! sessions (a random cookie, kept in memory: a restart logs everyone out, nothing about a
//! session is on disk). Each carries a [`Principal`]; handlers ask it what may be seen.

use crate::api::ApiError;
use crate::{AppState, Shared};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine;
use botwatch_enrich::owners::Constituency;
use botwatch_store::tokens::TokenStore;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including tokens.
    Admin,
    /// Every organisation's data, and case actions.
    Analyst,
    /// One organisation's events, cases, notices and compliance.
    Organisation,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "analyst" => Some(Role::Analyst),
            "organisation" | "organization" | "org" => Some(Role::Organisation),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Organisation => "organisation",
        }
    }
}

/// The caller, with what it may see.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The organisation an organisation token is bound to.
    pub org: Option<String>,
    #[serde(skip)]
    pub token_id: Option<i64>,
    /// The session's anti-forgery token, for web sessions.
    #[serde(skip)]
    pub csrf: Option<String>,
}

impl Principal {
    /// Admins and analysts see every organisation.
    pub fn sees_all(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Analyst)
    }

    /// Whether an organisation's data is visible to this caller.
    pub fn sees_org(&self, org: Option<&str>) -> bool {
        self.sees_all() || (org.is_some() && org == self.org.as_deref())
    }

    /// Whether an address (with its ASN) lies inside what this caller may see.
    pub fn sees_ip(&self, c: &Constituency, ip: Option<IpAddr>, asn: Option<u32>) -> bool {
        if self.sees_all() {
            return true;
        }
        match ip {
            Some(ip) => self.sees_org(c.org_for(ip, asn).map(|o| o.id.as_str())),
            None => false,
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin { Ok(()) } else { Err(ApiError::forbidden("admin only")) }
    }

    pub fn require_all(&self) -> Result<(), ApiError> {
        if self.sees_all() { Ok(()) } else { Err(ApiError::forbidden("analysts and admins only")) }
    }
}

/// A fresh API token: 256 random bits, URL-safe, with a prefix that secret scanners know.
pub fn new_token() -> anyhow::Result<String> {
    Ok(format!("bw_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::<32>()?)))
}

/// What the store keeps of a token.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh 256-bit key, hex-encoded (for keys kept in config files and the store).
pub fn new_key() -> anyhow::Result<String> {
    Ok(random::<32>()?.iter().map(|b| format!("{b:02x}")).collect())
}

fn random<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut b).map_err(|_| anyhow::anyhow!("no system randomness"))?;
    Ok(b)
}

/// Looks a token up; records its use at most once a minute.
pub async fn principal_for_token(st: &AppState, token: &str) -> Result<Principal, ApiError> {
    let hash = hash_token(token.trim());
    let now = st.deps.clock.now();
    let row = st
        .deps
        .db
        .run(move |s| {
            let row = s.token_by_hash(&hash)?;
            if let Some(r) = &row
                && r.last_used.is_none_or(|t| now.micros() - t.micros() > 60_000_000)
            {
                // Bookkeeping only: never fails or delays a request (a read-only store, or
                // the write lock held by an ingest, just skips it this time).
                if let Err(e) = s.touch_token_nowait(r.id, now) {
                    tracing::debug!(error = %e, "Token use not recorded");
                }
            }
            Ok(row)
        })
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
    let role = Role::parse(&row.role).ok_or_else(|| ApiError::unauthorized("token has an unknown role"))?;
    if role == Role::Organisation && row.org.is_none() {
        return Err(ApiError::unauthorized("organisation token without an organisation"));
    }
    Ok(Principal { name: row.name, role, org: row.org, token_id: Some(row.id), csrf: None })
}

/// The value of one cookie.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub const SESSION_COOKIE: &str = "bw_session";

/// The caller of an API request: a bearer token, else a web session. A session may only
/// change things with its anti-forgery token in `X-CSRF-Token` (a cookie alone could be a
/// forged cross-site request).
/// The token of an `Authorization: Bearer …` header: `None` without the header, an error
/// for one that is not a bearer token.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(v) = headers.get(axum::http::header::AUTHORIZATION) else { return Ok(None) };
    let v = v.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    v.strip_prefix("Bearer ")
        .map(Some)
        .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer <token>"))
}

impl FromRequestParts<Shared> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &Shared) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(&parts.headers)? {
            return principal_for_token(st, token).await;
        }
        let p = st
            .sessions
            .principal(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("log in or send a token"))?;
        if !session_token_live(st, &p).await {
            st.sessions.end(&parts.headers);
            return Err(ApiError::unauthorized("the token this session logged in with was revoked"));
        }
        if !parts.method.is_safe() {
            let sent = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
            if sent.is_none() || sent != p.csrf.as_deref() {
                return Err(ApiError::forbidden("missing or wrong X-CSRF-Token"));
            }
        }
        Ok(p)
    }
}

struct Session {
    principal: Principal,
    expires: Instant,
}

/// Whether the token a session logged in with is still live (sessions without one, none
/// today, are). A store error counts as not live: a session is never extended on doubt.
pub async fn session_token_live(st: &crate::AppState, p: &Principal) -> bool {
    let Some(id) = p.token_id else { return true };
    st.deps.db.run(move |s| Ok(botwatch_store::tokens::TokenStore::token_live(s, id)?)).await.unwrap_or(false)
}

/// Web sessions by the SHA-256 of their cookie.
pub struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions { ttl, map: Mutex::new(HashMap::new()) }
    }

    /// Starts a session; returns the cookie value.
    pub fn create(&self, mut p: Principal) -> anyhow::Result<String> {
        let sid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::<32>()?);
        p.csrf = Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::<24>()?));
        let now = Instant::now();
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, s| s.expires > now);
        m.insert(hash_token(&sid), Session { principal: p, expires: now + self.ttl });
        Ok(sid)
    }

    pub fn principal(&self, headers: &HeaderMap) -> Option<Principal> {
        let sid = cookie(headers, SESSION_COOKIE)?;
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&hash_token(sid)).filter(|s| s.expires > Instant::now()).map(|s| s.principal.clone())
    }

    pub fn end(&self, headers: &HeaderMap) {
        if let Some(sid) = cookie(headers, SESSION_COOKIE) {
            self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(&hash_token(sid));
        }
    }
}

/// A random value for a form's anti-forgery field before anyone has logged in (the log-in
/// and portal forms): double-submitted, once in the form and once in [`NONCE_COOKIE`]; a
/// cross-site form cannot read the cookie to copy it.
pub fn form_nonce() -> anyhow::Result<String> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::<18>()?))
}

pub const NONCE_COOKIE: &str = "bw_form";

/// `r` with the cookie half of a form nonce.
pub fn with_nonce_cookie(r: axum::response::Response, nonce: &str, secure: bool) -> axum::response::Response {
    set_cookie(r, NONCE_COOKIE, nonce, secure, None)
}

/// `r` setting one of botwatch's cookies: site-wide, never visible to scripts, never sent
/// cross-site; `max_age` 0 deletes it.
pub fn set_cookie(
    mut r: axum::response::Response,
    name: &str,
    value: &str,
    secure: bool,
    max_age: Option<u64>,
) -> axum::response::Response {
    let secure = if secure { "; Secure" } else { "" };
    let age = max_age.map(|a| format!("; Max-Age={a}")).unwrap_or_default();
    if let Ok(v) = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{age}").parse() {
        r.headers_mut().append(axum::http::header::SET_COOKIE, v);
    }
    r
}

/// Whether a submitted form's nonce is the one its cookie holds.
pub fn nonce_matches(headers: &HeaderMap, sent: &str) -> bool {
    !sent.is_empty() && cookie(headers, NONCE_COOKIE) == Some(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert!(a.starts_with("bw_") && a.len() == 46 && a != b);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::COOKIE, "a=1; bw_session=xyz; b=2".parse().unwrap());
        assert_eq!(cookie(&h, "bw_session"), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn sessions_carry_the_principal_and_end() {
        let s = Sessions::new(Duration::from_secs(60));
        let p = Principal { name: "x".into(), role: Role::Analyst, org: None, token_id: None, csrf: None };
        let sid = s.create(p).unwrap();
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::COOKIE, format!("{SESSION_COOKIE}={sid}").parse().unwrap());
        let got = s.principal(&h).unwrap();
        assert_eq!(got.role, Role::Analyst);
        assert!(got.csrf.is_some());
        s.end(&h);
        assert!(s.principal(&h).is_none());
    }

    #[test]
    fn an_organisation_sees_only_its_own() {
        let p = Principal {
            name: "x".into(),
            role: Role::Organisation,
            org: Some("a".into()),
            token_id: None,
            csrf: None,
        };
        assert!(p.sees_org(Some("a")));
        assert!(!p.sees_org(Some("b")));
        assert!(!p.sees_org(None));
        assert!(p.require_all().is_err());
    }
}
