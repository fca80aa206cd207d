//! Secrets named in `botwatch.toml`: a password, API key or token is written there as a
//! literal, or as `env:NAME` (read from the environment, e.g. systemd's `EnvironmentFile=`)
//! or `file:PATH` (a file only the service can read, e.g. systemd credentials or a Docker
//! secret). The one place the model reads anything outside itself: every crate that takes a
//! secret from the config resolves it the same way.

/// The secret's value (a file's trailing newline dropped), or why it cannot be had.
pub fn secret(v: &str) -> Result<String, String> {
    if let Some(name) = v.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| format!("environment variable {name} is not set"));
    }
    if let Some(path) = v.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| format!("reading {path}: {e}"));
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_env_and_file() {
        assert_eq!(secret("plain").unwrap(), "plain");
        assert!(secret("env:BOTWATCH_SURELY_UNSET_VARIABLE").unwrap_err().contains("not set"));
        let dir = std::env::temp_dir().join(format!("botwatch-secret-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        assert_eq!(secret(&format!("file:{}", dir.display())).unwrap(), "s3cret");
        std::fs::remove_file(&dir).unwrap();
        assert!(secret("file:/nonexistent/botwatch").is_err());
    }
}
