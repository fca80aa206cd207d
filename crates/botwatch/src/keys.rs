//! The keys botwatch signs and pseudonymises with: the configured ones when set (refused
//! when they are a known placeholder or too short), else one generated on first use and
//! kept in the store, so nothing is ever signed with an empty or guessable key.

use crate::config::Config;
use anyhow::{Result, bail};
use botwatch_enrich::subscriber::Pseudonymiser;
use botwatch_store::any::AnyStore;

/// Values from examples and documentation, refused as keys: anyone can forge with them.
const PLACEHOLDERS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "secret",
    "s3cret",
    "password",
    "botwatch",
    "botwatch-demo",
    "botwatch-demo-secret",
    "example",
    "test",
    "xxx",
];

/// Fewer characters than this cannot be a key worth the name.
pub const MIN_KEY_LEN: usize = 16;

/// Refuses a configured key that is a known placeholder or too short, naming the setting.
pub fn check_key(setting: &str, value: &str) -> Result<()> {
    let v = value.trim();
    if PLACEHOLDERS.iter().any(|p| p.eq_ignore_ascii_case(v)) {
        bail!(
            "{setting} = {v:?} is a placeholder anyone could sign with: set a random value (e.g. `openssl rand -hex 32`) or remove it to let botwatch generate and keep one"
        );
    }
    if v.chars().count() < MIN_KEY_LEN {
        bail!(
            "{setting} is shorter than {MIN_KEY_LEN} characters: set a random value (e.g. `openssl rand -hex 32`) or remove it to let botwatch generate and keep one"
        );
    }
    Ok(())
}

fn now_micros() -> i64 {
    use botwatch_model::Clock;
    botwatch_model::SystemClock.now().micros()
}

fn generated(store: &mut AnyStore, name: &str) -> Result<String> {
    let key = botwatch_server::auth::new_key()?;
    let v = store.secret_or_init(name, || key.into_bytes(), now_micros())?;
    Ok(String::from_utf8_lossy(&v).into_owned())
}

/// A key set in the config (`value`, blank meaning unset), checked.
fn configured(setting: &str, value: Option<&str>) -> Result<Option<String>> {
    match value.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => {
            // `env:NAME` and `file:PATH` name where the key is kept.
            let s = botwatch_model::secret(s).map_err(|e| anyhow::anyhow!("{setting}: {e}"))?;
            check_key(setting, &s).map(|()| Some(s))
        }
        None => Ok(None),
    }
}

/// The store's key `name` as text, if one was made.
fn stored(store: &AnyStore, name: &str) -> Result<Option<String>> {
    Ok(store.secret(name)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// The key for notice links and webhook signatures: `[notify] secret`, else the store's.
pub fn notify_key(cfg: &Config, store: &mut AnyStore) -> Result<String> {
    match configured("[notify] secret", Some(&cfg.notify.secret))? {
        Some(k) => Ok(k),
        None => generated(store, "notify"),
    }
}

/// [`notify_key`] for a store this process may only read: `None` when none was made yet
/// (then nothing can be verified, rather than everything).
pub fn notify_key_read(cfg: &Config, store: &AnyStore) -> Result<Option<String>> {
    match configured("[notify] secret", Some(&cfg.notify.secret))? {
        Some(k) => Ok(Some(k)),
        None => stored(store, "notify"),
    }
}

/// The pseudonymiser for subscriber ids: `[leases] pseudonymise_secret`, else the store's
/// key; `None` only when `[leases] pseudonymise = false`.
pub fn pseudonymiser(cfg: &Config, store: &mut AnyStore) -> Result<Option<Pseudonymiser>> {
    if !cfg.leases.pseudonymise {
        return Ok(None);
    }
    let key = match configured("[leases] pseudonymise_secret", cfg.leases.pseudonymise_secret.as_deref())? {
        Some(k) => k,
        None => generated(store, "pseudonym")?,
    };
    Ok(Some(Pseudonymiser::new(key.as_bytes())))
}

/// [`pseudonymiser`] for a store this process may only read.
pub fn pseudonymiser_read(cfg: &Config, store: &AnyStore) -> Result<Option<Pseudonymiser>> {
    if !cfg.leases.pseudonymise {
        return Ok(None);
    }
    let key = match configured("[leases] pseudonymise_secret", cfg.leases.pseudonymise_secret.as_deref())? {
        Some(k) => Some(k),
        None => stored(store, "pseudonym")?,
    };
    Ok(key.map(|k| Pseudonymiser::new(k.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_short_keys_are_refused() {
        for bad in ["change-me", "CHANGE-ME", " secret ", "botwatch-demo-secret", "short"] {
            assert!(check_key("[notify] secret", bad).is_err(), "{bad}");
        }
        assert!(check_key("[notify] secret", "9f2c4e1a7b3d5f608a1c2e4b6d8f0a13").is_ok());
    }

    #[test]
    fn without_config_a_key_is_made_once_and_kept() {
        let mut s = AnyStore::Sqlite(
            botwatch_store::sqlite::SqliteStore::open_in_memory(Default::default()).unwrap(),
        );
        let cfg = Config::default();
        assert_eq!(notify_key_read(&cfg, &s).unwrap(), None);
        let a = notify_key(&cfg, &mut s).unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(notify_key(&cfg, &mut s).unwrap(), a);
        assert_eq!(notify_key_read(&cfg, &s).unwrap(), Some(a));
        let p = pseudonymiser(&cfg, &mut s).unwrap().unwrap();
        let q = pseudonymiser_read(&cfg, &s).unwrap().unwrap();
        assert_eq!(p.pseudonym("line-1"), q.pseudonym("line-1"));
        assert_ne!(p.pseudonym("line-1"), "line-1");
    }
}
