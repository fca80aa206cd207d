//! Keys generated on first use and kept in the store (`secrets` table): a deployment that
//! sets no key in its config still gets a strong one, the same one on every later run and in
//! every process that opens the store (`notify run`, `serve`, lease imports).

use crate::Result;
use crate::sqlite::SqliteStore;
use rusqlite::{OptionalExtension, params};

impl SqliteStore {
    /// The stored key `name`, if one was made.
    pub fn secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM secrets WHERE name = ?", [name], |r| r.get(0))
            .optional()?)
    }

    /// The stored key `name`, made by `make` and stored the first time. Two processes racing
    /// to make it agree on the first one stored.
    pub fn secret_or_init(
        &mut self,
        name: &str,
        make: impl FnOnce() -> Vec<u8>,
        now_micros: i64,
    ) -> Result<Vec<u8>> {
        if let Some(v) = self.secret(name)? {
            return Ok(v);
        }
        let v = make();
        self.conn.execute(
            "INSERT OR IGNORE INTO secrets (name, value, created_at) VALUES (?, ?, ?)",
            params![name, v, now_micros],
        )?;
        Ok(self.secret(name)?.unwrap_or(v))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn made_once_then_kept() {
        for (mut s, _schema) in crate::testing::backends("secrets::made_once_then_kept") {
            assert_eq!(s.secret("k").unwrap(), None);
            let a = s.secret_or_init("k", || vec![1, 2, 3], 0).unwrap();
            let b = s.secret_or_init("k", || vec![9], 0).unwrap();
            assert_eq!((a.as_slice(), b.as_slice()), (&[1u8, 2, 3][..], &[1u8, 2, 3][..]));
        }
    }
}
