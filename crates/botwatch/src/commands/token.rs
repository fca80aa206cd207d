//! `botwatch token`: API tokens for the API and the web log-in.

#[allow(unused_imports)]
use super::*;
use crate::cli::*;
use anyhow::{Result, bail};
use botwatch::config::Config;
use botwatch_model::{Clock, SystemClock};
use std::io::Write;

pub(crate) fn token(cfg: &Config, cmd: TokenCmd, out: &mut dyn Write) -> Result<()> {
    use botwatch_server::auth::{Role, hash_token, new_token};
    use botwatch_store::tokens::TokenStore;
    match cmd {
        TokenCmd::Create { name, role, org, db, json } => {
            let role = Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role: admin, analyst or organisation"))?;
            let org = match role {
                Role::Organisation => {
                    let org = org.ok_or_else(|| anyhow::anyhow!("an organisation token needs --org"))?;
                    let c = botwatch::isp::constituency(cfg)?;
                    if c.as_ref().and_then(|c| c.get(&org)).is_none() {
                        bail!("--org {org}: not an organisation of the configured constituency");
                    }
                    Some(org)
                }
                _ => None,
            };
            let mut store = open_store(cfg, &db)?;
            let token = new_token()?;
            let id = store.create_token(
                &name,
                role.as_str(),
                org.as_deref(),
                &hash_token(&token),
                SystemClock.now(),
            )?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"id": id, "token": token, "role": role.as_str(), "org": org})
                )?;
            } else {
                writeln!(out, "{token}")?;
                eprintln!("token {id} ({}): shown once, keep it safe", role.as_str());
            }
        }
        TokenCmd::List { db, json } => {
            let store = open_read(cfg, &db)?;
            for t in store.tokens()? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&t)?)?;
                } else {
                    writeln!(
                        out,
                        "{:>4}  {:<20} {:<12} {:<12} created {}  last used {}{}",
                        t.id,
                        t.name,
                        t.role,
                        t.org.as_deref().unwrap_or("-"),
                        t.created_at.to_rfc3339(),
                        t.last_used.map(|x| x.to_rfc3339()).unwrap_or_else(|| "never".into()),
                        if t.revoked_at.is_some() { "  REVOKED" } else { "" }
                    )?;
                }
            }
        }
        TokenCmd::Revoke { id, db } => {
            let mut store = open_existing(cfg, &db)?;
            if !store.revoke_token(id, SystemClock.now())? {
                bail!("no live token with id {id}");
            }
            writeln!(out, "token {id} revoked")?;
        }
    }
    Ok(())
}
