//! API tokens: who may call the server, with which role, for which organisation. Only a
//! token's SHA-256 is stored; the token itself is shown once, when it is created.

use crate::Result;
use crate::sqlite::SqliteStore;
use botwatch_model::Timestamp;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// A stored token (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    /// `admin`, `analyst` or `organisation` (the server checks the value).
    pub role: String,
    /// Constituency id, for organisation tokens.
    pub org: Option<String>,
    pub created_at: Timestamp,
    pub last_used: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// Token persistence; the PostgreSQL backend implements the same.
pub trait TokenStore {
    /// Stores a token by its hash (hex SHA-256); returns its id.
    fn create_token(
        &mut self,
        name: &str,
        role: &str,
        org: Option<&str>,
        hash: &str,
        at: Timestamp,
    ) -> Result<i64>;
    /// The live (not revoked) token with this hash.
    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>>;
    /// Records a use; cheap enough for every request.
    fn touch_token(&mut self, id: i64, at: Timestamp) -> Result<()>;
    /// [`TokenStore::touch_token`] without waiting for the write lock: fails at once
    /// (`SQLITE_BUSY`) while another process writes, for bookkeeping a request must not
    /// wait on.
    fn touch_token_nowait(&mut self, id: i64, at: Timestamp) -> Result<()>;
    fn tokens(&self) -> Result<Vec<TokenRow>>;
    /// Revokes a token; false when there was no live token with that id.
    fn revoke_token(&mut self, id: i64, at: Timestamp) -> Result<bool>;
    /// The token exists and is not revoked (a web session lives only as long as its token).
    fn token_live(&self, id: i64) -> Result<bool>;
}

const COLS: &str = "id, name, role, org, created_at, last_used, revoked_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        org: r.get(3)?,
        created_at: Timestamp(r.get(4)?),
        last_used: r.get::<_, Option<i64>>(5)?.map(Timestamp),
        revoked_at: r.get::<_, Option<i64>>(6)?.map(Timestamp),
    })
}

impl TokenStore for SqliteStore {
    fn create_token(
        &mut self,
        name: &str,
        role: &str,
        org: Option<&str>,
        hash: &str,
        at: Timestamp,
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO api_tokens (name, role, org, hash, created_at) VALUES (?,?,?,?,?)",
            params![name, role, org, hash, at.micros()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLS} FROM api_tokens WHERE hash = ? AND revoked_at IS NULL"),
                [hash],
                row,
            )
            .optional()?)
    }

    fn touch_token(&mut self, id: i64, at: Timestamp) -> Result<()> {
        self.conn.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?", params![at.micros(), id])?;
        Ok(())
    }

    fn token_live(&self, id: i64) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM api_tokens WHERE id = ? AND revoked_at IS NULL")?
            .exists([id])?)
    }

    fn touch_token_nowait(&mut self, id: i64, at: Timestamp) -> Result<()> {
        self.conn.busy_timeout(std::time::Duration::ZERO)?;
        let r = self.touch_token(id, at);
        self.conn.busy_timeout(crate::sqlite::BUSY_TIMEOUT)?;
        r
    }

    fn tokens(&self) -> Result<Vec<TokenRow>> {
        let mut st = self.conn.prepare(&format!("SELECT {COLS} FROM api_tokens ORDER BY id"))?;
        let rows = st.query_map([], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn revoke_token(&mut self, id: i64, at: Timestamp) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            params![at.micros(), id],
        )?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_by_hash_until_revoked() {
        for (mut s, _schema) in crate::testing::backends("tokens::tokens_are_found_by_hash_until_revoked") {
            let t = Timestamp::from_secs(1_700_000_000);
            let id = s.create_token("desk", "organisation", Some("isp-a"), "ab12", t).unwrap();
            let got = s.token_by_hash("ab12").unwrap().unwrap();
            assert_eq!((got.id, got.role.as_str(), got.org.as_deref()), (id, "organisation", Some("isp-a")));
            assert!(s.token_by_hash("ffff").unwrap().is_none());
            s.touch_token(id, Timestamp::from_secs(1_700_000_100)).unwrap();
            assert_eq!(s.tokens().unwrap()[0].last_used, Some(Timestamp::from_secs(1_700_000_100)));
            assert!(s.revoke_token(id, t).unwrap());
            assert!(!s.revoke_token(id, t).unwrap(), "already revoked");
            assert!(s.token_by_hash("ab12").unwrap().is_none());
            assert!(s.create_token("dup", "admin", None, "ab12", t).is_err(), "hashes are unique");
        }
    }
}
