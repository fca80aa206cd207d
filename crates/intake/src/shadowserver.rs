//! The Shadowserver Reports API (`reports/list`, then each listed report downloaded), as
//! Shadowserver documents it (api_utils wiki: "API: Documentation", "API: Reports Query"):
//! every call is an HTTP POST of a JSON object that carries `apikey`, signed by an `HMAC2`
//! header, the lower-case hex HMAC-SHA256 of the exact body bytes under the account's
//! secret. A listed report is fetched from the `url` the listing gives (a plain GET), else
//! by `reports/download` with its `id`.
//!
//! Which reports were already taken is remembered per report id in the store's fetch state
//! (`shadowserver:<account>:<id>`), so a report listed on three successive days is fetched
//! once; a crash between download and commit fetches it again, and the store recognises the
//! same content.

use crate::config::ShadowserverSource;
use crate::pipeline::Ingestor;
use crate::{Delivered, Origin};
use anyhow::{Context, Result, bail};
use botwatch_model::Timestamp;
use botwatch_store::{FetchState, Store};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use std::path::Path;

/// One entry of `reports/list`.
#[derive(Debug, Clone, Deserialize)]
pub struct Listed {
    pub id: String,
    #[serde(default)]
    pub report: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    pub file: String,
    #[serde(default)]
    pub url: Option<String>,
}

/// `HMAC2`: hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    m.update(body);
    m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Client<'a> {
    pub src: &'a ShadowserverSource,
    key: String,
    secret: String,
    http: reqwest::blocking::Client,
    max_bytes: u64,
}

impl<'a> Client<'a> {
    pub fn new(src: &'a ShadowserverSource, fetch: &crate::config::FetchSection) -> Result<Self> {
        crate::fetch::install_tls_provider();
        let key = botwatch_model::secret(&src.api_key)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("[[intake.shadowserver]] {}: api_key", src.name))?;
        let secret = botwatch_model::secret(&src.secret)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("[[intake.shadowserver]] {}: secret", src.name))?;
        let http = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(fetch.timeout_secs))
            .user_agent(fetch.user_agent.clone())
            .build()?;
        Ok(Client { src, key, secret, http, max_bytes: fetch.max_bytes })
    }

    fn call(
        &self,
        method: &str,
        mut req: serde_json::Map<String, serde_json::Value>,
    ) -> Result<bytes::Bytes> {
        req.insert("apikey".into(), self.key.clone().into());
        let body = serde_json::to_vec(&req)?;
        let url = format!("{}/{method}", self.src.url.trim_end_matches('/'));
        let resp = self
            .http
            .post(&url)
            .header("HMAC2", sign(&self.secret, &body))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .with_context(|| format!("calling {method}"))?;
        self.body(resp, method)
    }

    fn body(&self, resp: reqwest::blocking::Response, what: &str) -> Result<bytes::Bytes> {
        let status = resp.status();
        let mut data = Vec::new();
        use std::io::Read;
        resp.take(self.max_bytes + 1).read_to_end(&mut data).with_context(|| format!("reading {what}"))?;
        if data.len() as u64 > self.max_bytes {
            bail!("{what}: answer larger than [fetch] max_bytes");
        }
        if !status.is_success() {
            let msg = String::from_utf8_lossy(&data[..data.len().min(300)]).to_string();
            bail!("{what}: server answered {status}: {msg}");
        }
        Ok(data.into())
    }

    /// The reports listed for the last `days` days (to tomorrow, as timestamps differ).
    pub fn list(&self, today: Timestamp) -> Result<Vec<Listed>> {
        let day = |d: i64| Timestamp::from_micros(today.micros() + d * 86_400_000_000).day();
        let mut req = serde_json::Map::new();
        req.insert("date".into(), format!("{}:{}", day(-i64::from(self.src.days)), day(1)).into());
        if !self.src.reports.is_empty() {
            req.insert("report".into(), self.src.reports.clone().into());
        }
        if !self.src.types.is_empty() {
            req.insert("type".into(), self.src.types.clone().into());
        }
        let data = self.call("reports/list", req)?;
        // An error comes back as {"error": "..."}, a listing as an array.
        let v: serde_json::Value = serde_json::from_slice(&data).context("reports/list: not JSON")?;
        if let Some(e) = v.get("error") {
            bail!("reports/list: {e}");
        }
        let mut list: Vec<Listed> =
            serde_json::from_value(v).context("reports/list: not a list of reports")?;
        if !self.src.types.is_empty() {
            list.retain(|r| r.kind.as_ref().is_none_or(|k| self.src.types.contains(k)));
        }
        Ok(list)
    }

    pub fn download(&self, r: &Listed) -> Result<bytes::Bytes> {
        match &r.url {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                let resp = self.http.get(u).send().with_context(|| format!("downloading {}", r.file))?;
                self.body(resp, &r.file)
            }
            _ => {
                let mut req = serde_json::Map::new();
                req.insert("id".into(), r.id.clone().into());
                self.call("reports/download", req)
            }
        }
    }
}

fn state_key(src: &ShadowserverSource, id: &str) -> String {
    format!("shadowserver:{}:{id}", src.name)
}

/// Lists, downloads what is new, archives and ingests it.
pub fn collect(
    client: &Client<'_>,
    ing: &Ingestor<'_>,
    store: &mut dyn Store,
    archive_dir: &Path,
    now: Timestamp,
) -> Result<Delivered> {
    let mut out = Delivered::default();
    for r in client.list(now)? {
        let key = state_key(client.src, &r.id);
        if store.fetch_state(&key)?.is_some_and(|s| s.last_status.as_deref() == Some("200 ok")) {
            continue;
        }
        let data = client.download(&r)?;
        let archived = crate::archive(archive_dir, "shadowserver", &r.file, &data, now)?;
        let origin = Origin {
            feed: None,
            source: format!("shadowserver:{}:{}", client.src.name, r.file),
            observed: now,
            archive: Some(archived.path.display().to_string()),
        };
        let sha = archived.sha256;
        match crate::ingest_bytes(ing, store, &r.file, data, &origin) {
            Ok(d) => out.absorb(d),
            Err(e) if crate::is_store_error(&e) => {
                return Err(e);
            }
            // Kept in the archive; not fetched again.
            Err(e) => out.unreadable.push(format!("{}: {e:#}", r.file)),
        }
        store.save_fetch_state(&FetchState {
            url: key,
            feed: r.kind.clone().unwrap_or_default(),
            etag: None,
            last_modified: None,
            last_fetch: Some(now),
            last_status: Some("200 ok".into()),
            last_sha256: Some(sha),
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac2_is_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
