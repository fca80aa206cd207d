//! The stream between intake and the store, past one machine: NATS JetStream (`[nats]`).
//!
//! Intake (`botwatch ingest`, …) publishes each delivery it receives, unparsed, to one
//! stream; `botwatch worker` processes, as many as wanted on as many machines, take them
//! from one durable pull consumer (each message goes to one of them) and store them. A
//! delivery too large for one message goes into the JetStream object store, and the
//! message carries its name.
//!
//! Delivery is at least once: a worker acknowledges a message only after the store has
//! committed what it held, and a worker that dies (or stalls past `ack_wait`) leaves it to
//! be delivered again. Storing is idempotent, so a second delivery never counts twice: a
//! report whose content hash is stored is skipped whole, and events are unique by
//! fingerprint. JetStream also drops a second publication of the same delivery within its
//! duplicate window (the message id is the content hash).
//!
//! Memory stays bounded whatever arrives: a worker takes one message at a time, spools an
//! object to a temporary file as it reads it, and parses reports as streams.

use crate::pipeline::{Input, Publish};
use crate::{Delivered, Origin};
use anyhow::{Context, Result, anyhow};
use async_nats::jetstream::{self, AckKind, consumer::pull, object_store, stream};
use botwatch_feeds::input::Source;
use botwatch_model::Timestamp;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// `[nats]`: where the stream is and how it behaves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSection {
    /// `nats://host:port` (or `env:NAME` / `file:PATH` holding it). Unset: no stream;
    /// intake stores directly (the embedded default).
    pub url: Option<String>,
    /// JetStream stream holding the deliveries.
    pub stream: String,
    /// Subject deliveries are published on.
    pub subject: String,
    /// Object-store bucket for deliveries larger than `max_inline_kib`.
    pub bucket: String,
    /// The workers' durable consumer (all workers share it, so each delivery goes to one).
    pub consumer: String,
    /// How long a worker may hold a delivery without saying it is still at work on it
    /// before it is given to another (workers say so every third of this).
    #[serde(with = "humantime_serde_compat")]
    pub ack_wait: Duration,
    /// Deliveries up to this size travel in the message itself.
    pub max_inline_kib: u64,
    /// How long deliveries stay in the stream and the bucket after publication.
    #[serde(with = "humantime_serde_compat")]
    pub max_age: Duration,
    /// A delivery that failed this many times is left (and logged) instead of retried.
    pub max_deliver: i64,
}

impl Default for NatsSection {
    fn default() -> Self {
        NatsSection {
            url: None,
            stream: "BOTWATCH_REPORTS".into(),
            subject: "botwatch.reports".into(),
            bucket: "botwatch-reports".into(),
            consumer: "botwatch-workers".into(),
            ack_wait: Duration::from_secs(60),
            max_inline_kib: 512,
            max_age: Duration::from_secs(7 * 86_400),
            max_deliver: 10,
        }
    }
}

/// Durations as people write them (`"60s"`, `"7d"`).
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
    }
}

/// How often a worker reports the consumer's backlog.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// Header names of a delivery message.
const H_NAME: &str = "Botwatch-Name";
const H_FEED: &str = "Botwatch-Feed";
const H_SOURCE: &str = "Botwatch-Source";
const H_OBSERVED: &str = "Botwatch-Observed";
const H_OBJECT: &str = "Botwatch-Object";
const H_SIZE: &str = "Botwatch-Size";
/// What a delivery is, when it is not a report as it arrived (absent): `sightings` (see
/// [`KIND_SIGHTINGS`]).
const H_KIND: &str = "Botwatch-Kind";

/// A delivery of sensor sightings: a JSON document a sensor made (botwatch's own form, read
/// back by `botwatch::sensor`), stored by the worker as the sensor's report.
pub const KIND_SIGHTINGS: &str = "sightings";

/// A connection to the stream, with its own small runtime: callers are synchronous.
pub struct Nats {
    rt: tokio::runtime::Runtime,
    js: jetstream::Context,
    cfg: NatsSection,
}

/// What a publication did.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub name: String,
    pub sha256: String,
    pub size: u64,
    /// Stream sequence number.
    pub sequence: u64,
    /// JetStream had it already (same content within its duplicate window).
    pub duplicate: bool,
    /// Travelled through the object store.
    pub object: bool,
}

impl Nats {
    /// Connects and makes sure the stream, the bucket and the consumer exist.
    pub fn connect(url: &str, cfg: &NatsSection) -> Result<Nats> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("botwatch-nats")
            .build()?;
        let js = rt.block_on(async {
            let client = async_nats::ConnectOptions::new()
                .name("botwatch")
                .connection_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .with_context(|| format!("connecting to NATS at {url}"))?;
            let js = jetstream::new(client);
            js.get_or_create_stream(stream::Config {
                name: cfg.stream.clone(),
                subjects: vec![cfg.subject.clone()],
                max_age: cfg.max_age,
                storage: stream::StorageType::File,
                // Deliveries are worked off, not kept: a message goes once acknowledged.
                retention: stream::RetentionPolicy::WorkQueue,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("JetStream stream {}: {e}", cfg.stream))?;
            Ok::<_, anyhow::Error>(js)
        })?;
        Ok(Nats { rt, js, cfg: cfg.clone() })
    }

    async fn bucket(&self) -> Result<object_store::ObjectStore> {
        match self.js.get_object_store(&self.cfg.bucket).await {
            Ok(b) => Ok(b),
            Err(_) => self
                .js
                .create_object_store(object_store::Config {
                    bucket: self.cfg.bucket.clone(),
                    max_age: self.cfg.max_age,
                    ..Default::default()
                })
                .await
                .map_err(|e| anyhow!("JetStream object store {}: {e}", self.cfg.bucket)),
        }
    }

    /// Publishes the file at `path` as one delivery, waiting for JetStream's
    /// acknowledgement (it is stored on the server when this returns).
    pub fn publish_file(&self, path: &Path, name: &str, origin: &Origin<'_>) -> Result<Published> {
        self.publish_source(&Source::File(path.to_path_buf()), name, origin)
    }

    /// [`Nats::publish_file`] for a file or bytes in memory.
    pub fn publish_source(&self, data: &Source, name: &str, origin: &Origin<'_>) -> Result<Published> {
        self.publish_kind(data, name, origin, None)
    }

    /// [`Nats::publish_source`] for a delivery of another `kind` than a report as it
    /// arrived (the worker hands it on with [`WorkItem::kind`]).
    pub fn publish_kind(
        &self,
        data: &Source,
        name: &str,
        origin: &Origin<'_>,
        kind: Option<&str>,
    ) -> Result<Published> {
        let (sha256, size) = match data {
            Source::File(path) => {
                let mut f =
                    std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
                let mut h = Sha256::new();
                std::io::copy(&mut f, &mut h)?;
                (hex(&h.finalize()), std::fs::metadata(path)?.len())
            }
            Source::Bytes(b) => (hex(&Sha256::digest(b)), b.len() as u64),
        };
        let inline = size <= self.cfg.max_inline_kib * 1024;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", sha256.as_str());
        headers.insert(H_NAME, name);
        if let Some(f) = origin.feed {
            headers.insert(H_FEED, f);
        }
        headers.insert(H_SOURCE, origin.source.as_str());
        headers.insert(H_OBSERVED, origin.observed.micros().to_string().as_str());
        headers.insert(H_SIZE, size.to_string().as_str());
        if let Some(k) = kind {
            headers.insert(H_KIND, k);
        }
        let shown = name.to_string();
        let name = name.to_string();
        let data = data.clone();
        let (js, subject) = (self.js.clone(), self.cfg.subject.clone());
        let digest = sha256.clone();
        let ack = self.block(async move {
            let payload = if inline {
                match &data {
                    Source::File(path) => bytes::Bytes::from(tokio::fs::read(path).await?),
                    Source::Bytes(b) => b.clone(),
                }
            } else {
                let bucket = self.bucket().await?;
                match &data {
                    Source::File(path) => {
                        let mut file = tokio::fs::File::open(path).await?;
                        bucket.put(digest.as_str(), &mut file).await
                    }
                    Source::Bytes(b) => bucket.put(digest.as_str(), &mut &b[..]).await,
                }
                .map_err(|e| anyhow!("object store put: {e}"))?;
                headers.insert(H_OBJECT, digest.as_str());
                bytes::Bytes::new()
            };
            let ack = js
                .publish_with_headers(subject, headers, payload)
                .await
                .map_err(|e| anyhow!("publishing {name}: {e}"))?
                .await
                .map_err(|e| anyhow!("publishing {name}: no acknowledgement from JetStream: {e}"))?;
            Ok::<_, anyhow::Error>(ack)
        })?;
        Ok(Published {
            name: shown,
            sha256,
            size,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
            object: !inline,
        })
    }

    /// Runs a future on this connection's runtime, also from a thread that is inside
    /// another runtime (a server's blocking task), where blocking on it directly would panic.
    fn block<F: std::future::Future + Send>(&self, f: F) -> F::Output
    where
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| s.spawn(|| self.rt.block_on(f)).join())
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        } else {
            self.rt.block_on(f)
        }
    }

    /// Deliveries waiting for a worker, and delivered but not yet acknowledged.
    pub fn lag(&self) -> Result<(u64, u64)> {
        self.block(async {
            let mut c = self.consumer().await?;
            let info = c.info().await.map_err(|e| anyhow!("consumer info: {e}"))?;
            Ok((info.num_pending, info.num_ack_pending as u64))
        })
    }

    async fn consumer(&self) -> Result<jetstream::consumer::Consumer<pull::Config>> {
        let stream = self.js.get_stream(&self.cfg.stream).await.map_err(|e| anyhow!("stream: {e}"))?;
        stream
            .get_or_create_consumer(
                &self.cfg.consumer,
                pull::Config {
                    durable_name: Some(self.cfg.consumer.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: self.cfg.ack_wait,
                    max_deliver: self.cfg.max_deliver,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow!("consumer {}: {e}", self.cfg.consumer))
    }

    /// Takes deliveries one at a time and hands each to `store` (as a file, with what the
    /// message said of it and its origin) until `stop` is set; acknowledges each only once `store` returned `Ok`. A
    /// failed delivery is given back to be retried after a pause (up to `max_deliver`).
    /// `lag(pending, ack_pending)` hears the consumer's backlog every few seconds.
    pub fn work(
        &self,
        stop: &AtomicBool,
        mut store: impl FnMut(&Path, &WorkItem, &Origin<'_>) -> Result<Delivered>,
        mut done: impl FnMut(&WorkItem, &Result<Delivered>),
        mut lag: impl FnMut(u64, u64),
    ) -> Result<()> {
        let mut consumer = self.rt.block_on(self.consumer())?;
        let bucket = std::sync::OnceLock::new();
        let mut last_lag: Option<std::time::Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            if last_lag.is_none_or(|t| t.elapsed() >= LAG_EVERY) {
                // A failed reading is not worth stopping the work for; the next one may do.
                if let Ok(info) = self.rt.block_on(consumer.info()) {
                    lag(info.num_pending, info.num_ack_pending as u64);
                }
                last_lag = Some(std::time::Instant::now());
            }
            let next = self.rt.block_on(async {
                let mut batch = consumer
                    .fetch()
                    .max_messages(1)
                    .expires(Duration::from_secs(2))
                    .messages()
                    .await
                    .map_err(|e| anyhow!("fetching from {}: {e}", self.cfg.consumer))?;
                match batch.next().await {
                    Some(m) => Ok(Some(m.map_err(|e| anyhow!("fetching: {e}"))?)),
                    None => Ok::<_, anyhow::Error>(None),
                }
            })?;
            let Some(msg) = next else { continue };
            let msg = Arc::new(msg);
            let item = WorkItem::from_message(&msg)?;
            // Keeps the delivery ours while a large report is stored.
            let beat = {
                let msg = msg.clone();
                let every = self.cfg.ack_wait / 3;
                self.rt.spawn(async move {
                    loop {
                        tokio::time::sleep(every).await;
                        if msg.ack_with(AckKind::Progress).await.is_err() {
                            break;
                        }
                    }
                })
            };
            let spool = tempfile::Builder::new().prefix("botwatch-delivery-").tempfile()?;
            let fetched = self.rt.block_on(async {
                match &item.object {
                    None => tokio::fs::write(spool.path(), &msg.payload).await.map_err(anyhow::Error::from),
                    Some(name) => {
                        if bucket.get().is_none() {
                            let _ = bucket.set(self.bucket().await?);
                        }
                        let b = bucket.get().ok_or_else(|| anyhow!("object store"))?;
                        let mut obj = b.get(name).await.map_err(|e| anyhow!("object {name}: {e}"))?;
                        let mut f = tokio::fs::File::create(spool.path()).await?;
                        tokio::io::copy(&mut obj, &mut f).await?;
                        Ok(())
                    }
                }
            });
            let origin = Origin {
                feed: item.feed.as_deref(),
                source: item.source.clone(),
                observed: item.observed,
                archive: None,
            };
            let result = fetched.and_then(|()| store(spool.path(), &item, &origin));
            beat.abort();
            done(&item, &result);
            self.rt.block_on(async {
                match &result {
                    Ok(_) => msg.double_ack().await.map_err(|e| anyhow!("acknowledging: {e}")),
                    Err(_) => msg
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                        .await
                        .map_err(|e| anyhow!("giving back: {e}")),
                }
            })?;
        }
        Ok(())
    }
}

impl Publish for Nats {
    fn publish(&self, inp: &Input<'_>) -> Result<Published> {
        let origin = Origin {
            feed: inp.feed,
            source: inp.source.clone().unwrap_or_else(|| inp.name.to_string()),
            observed: inp.observed,
            archive: inp.archive.clone(),
        };
        self.publish_source(&inp.data, inp.name, &origin)
    }
}

/// One delivery taken from the stream.
#[derive(Debug, Clone)]
pub struct WorkItem {
    pub name: String,
    pub feed: Option<String>,
    pub source: String,
    pub observed: Timestamp,
    pub object: Option<String>,
    /// `None` for a report as it arrived; otherwise what it is ([`KIND_SIGHTINGS`]).
    pub kind: Option<String>,
    pub size: u64,
    /// How many times it was delivered (1 the first time).
    pub delivered: i64,
    pub sequence: u64,
}

impl WorkItem {
    fn from_message(m: &jetstream::Message) -> Result<WorkItem> {
        let h = |k: &str| m.headers.as_ref().and_then(|h| h.get(k)).map(|v| v.as_str().to_string());
        let info = m.info().map_err(|e| anyhow!("message info: {e}"))?;
        Ok(WorkItem {
            name: h(H_NAME).unwrap_or_else(|| format!("delivery-{}", info.stream_sequence)),
            feed: h(H_FEED),
            source: h(H_SOURCE).unwrap_or_else(|| "nats".into()),
            observed: h(H_OBSERVED)
                .and_then(|t| t.parse().ok())
                .map(Timestamp)
                .unwrap_or_else(|| Timestamp(info.published.unix_timestamp_nanos() as i64 / 1000)),
            object: h(H_OBJECT),
            kind: h(H_KIND),
            size: h(H_SIZE).and_then(|s| s.parse().ok()).unwrap_or(m.payload.len() as u64),
            delivered: info.delivered,
            sequence: info.stream_sequence,
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
