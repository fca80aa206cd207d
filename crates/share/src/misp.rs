//! A MISP feed: what a MISP instance subscribes to (Sync Actions → Feeds, "MISP Feed"
//! format): `manifest.json` (event uuid → event summary), one `<uuid>.json` per event and
//! `hashes.csv` (MD5 of each attribute value, event uuid) for MISP's cache lookups.
//!
//! One event per (classification type, family, day of last sighting, TLP); each
//! observation is a MISP object: `ip-port` for an address, `domain-ip` for a domain, `url`
//! for a URL, with first/last seen; the family rides as a `misp-galaxy:malpedia` tag and TLP
//! as a `tlp:` tag on the event. Events are written object by object, so the feed's size is
//! bounded by the disk, not by memory.

use crate::gate::Label;
use crate::stix::{SubjectKind, kind};
use botwatch_model::{Timestamp, Tlp};
use sha2::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// An observation as the feed writer takes it.
#[derive(Debug, Clone)]
pub struct FeedRow<'a> {
    pub subject: &'a str,
    pub classification_type: &'a str,
    pub family: &'a str,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub count: u64,
    /// The TLP it is handled under (already resolved against the default).
    pub tlp: Tlp,
    pub label: Label,
}

/// MISP's distribution levels by TLP: who a MISP instance may pass the event on to.
fn distribution(t: Tlp) -> &'static str {
    match t {
        Tlp::Clear => "3",
        Tlp::Green => "2",
        Tlp::Amber => "1",
        Tlp::AmberStrict | Tlp::Red => "0",
    }
}

const IP_PORT: (&str, &str, &str) = ("ip-port", "9f8cea74-16fe-4968-a2b4-026676949ac6", "10");
const DOMAIN_IP: (&str, &str, &str) = ("domain-ip", "43b3b146-77eb-4931-b4cc-b66c60f28734", "11");
const URL: (&str, &str, &str) = ("url", "60efb77b-40b5-4c46-871b-ed1ed999fce5", "10");

struct Open {
    key: (String, String, String, Tlp),
    uuid: Uuid,
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    objects: u64,
    newest: i64,
    date: String,
    info: String,
    tags: Vec<String>,
}

/// Writes a feed directory.
pub struct FeedWriter {
    dir: PathBuf,
    org: String,
    org_uuid: Uuid,
    open: Option<Open>,
    /// Events already written, by the uuid their key names: rows of one key that come back
    /// after another key's go to a further part, never over the written file.
    parts: std::collections::HashMap<Uuid, u32>,
    manifest: serde_json::Map<String, serde_json::Value>,
    hashes: std::io::BufWriter<std::fs::File>,
    pub events: u64,
    pub objects: u64,
    pub attributes: u64,
}

fn md5_hex(s: &str) -> String {
    let d = md5::Md5::digest(s.as_bytes());
    let mut out = String::with_capacity(32);
    for b in d {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn ns() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"https://botwatch/misp")
}

impl FeedWriter {
    pub fn create(dir: &Path, org: &str) -> std::io::Result<FeedWriter> {
        std::fs::create_dir_all(dir)?;
        let hashes = std::io::BufWriter::new(std::fs::File::create(dir.join("hashes.csv"))?);
        Ok(FeedWriter {
            dir: dir.to_path_buf(),
            org: org.to_string(),
            org_uuid: Uuid::new_v5(&ns(), format!("org|{org}").as_bytes()),
            open: None,
            parts: Default::default(),
            manifest: Default::default(),
            hashes,
            events: 0,
            objects: 0,
            attributes: 0,
        })
    }

    fn close_event(&mut self) -> std::io::Result<()> {
        let Some(mut o) = self.open.take() else { return Ok(()) };
        let ts = (o.newest / 1_000_000).to_string();
        let tags: Vec<serde_json::Value> = o.tags.iter().map(|t| serde_json::json!({"name": t})).collect();
        let head = serde_json::json!({
            "uuid": o.uuid.to_string(),
            "info": o.info,
            "date": o.date,
            "timestamp": ts,
            "publish_timestamp": ts,
            "published": true,
            "analysis": "2",
            "threat_level_id": "2",
            "distribution": distribution(o.key.3),
            "Orgc": {"name": self.org, "uuid": self.org_uuid.to_string()},
            "Tag": tags,
            "Attribute": [],
        });
        // The head goes after the objects: `Object` is streamed first, then the rest closes
        // the event.
        let mut head_s = head.to_string();
        head_s.remove(0);
        writeln!(o.file, "],{head_s}}}")?;
        o.file.flush()?;
        drop(o.file);
        self.manifest.insert(
            o.uuid.to_string(),
            serde_json::json!({
                "info": head["info"], "date": head["date"], "timestamp": head["timestamp"],
                "analysis": "2", "threat_level_id": "2", "Orgc": head["Orgc"], "Tag": head["Tag"],
            }),
        );
        let _ = o.path;
        Ok(())
    }

    fn open_event(&mut self, r: &FeedRow<'_>) -> std::io::Result<()> {
        let day = r.last_seen.day();
        let key = (r.classification_type.to_string(), r.family.to_string(), day.clone(), r.tlp);
        if self.open.as_ref().is_some_and(|o| o.key == key) {
            return Ok(());
        }
        self.close_event()?;
        let uuid = Uuid::new_v5(
            &ns(),
            format!(
                "event|{}|{}|{}|{}|{}",
                self.org,
                key.0,
                key.1.to_ascii_lowercase(),
                key.2,
                crate::tlp::lower(key.3)
            )
            .as_bytes(),
        );
        let part = self.parts.entry(uuid).or_insert(0);
        *part += 1;
        let part = *part;
        let uuid = if part == 1 { uuid } else { Uuid::new_v5(&uuid, format!("part|{part}").as_bytes()) };
        let path = self.dir.join(format!("{uuid}.json"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        file.write_all(b"{\"Event\":{\"Object\":[")?;
        let mut tags = vec![format!("tlp:{}", crate::tlp::lower(r.tlp))];
        if !r.family.is_empty() {
            tags.push(format!("misp-galaxy:malpedia=\"{}\"", r.family.replace('"', "")));
        }
        let what = if r.family.is_empty() {
            r.classification_type.to_string()
        } else {
            format!("{} {}", r.family, r.classification_type)
        };
        self.open = Some(Open {
            key,
            uuid,
            path,
            file,
            objects: 0,
            newest: 0,
            date: day.clone(),
            info: if part == 1 {
                format!("{}: {what} seen {day}", self.org)
            } else {
                format!("{}: {what} seen {day} (part {part})", self.org)
            },
            tags,
        });
        self.events += 1;
        Ok(())
    }

    /// Adds one observation (the caller has asked the gate already).
    pub fn push(&mut self, r: &FeedRow<'_>) -> std::io::Result<()> {
        self.open_event(r)?;
        let (template, rel) = match kind(r.subject) {
            SubjectKind::Ipv4 | SubjectKind::Ipv6 => (
                IP_PORT,
                if r.classification_type == "infected-system" {
                    ("ip-src", "ip-src")
                } else {
                    ("ip-dst", "ip-dst")
                },
            ),
            SubjectKind::Domain => (DOMAIN_IP, ("domain", "domain")),
            SubjectKind::Url => (URL, ("url", "url")),
            SubjectKind::Asn => return Ok(()),
        };
        let o = self.open.as_mut().expect("opened above");
        let ev = o.uuid;
        let obj_uuid = Uuid::new_v5(&ev, format!("object|{}|{}", template.0, r.subject).as_bytes());
        let ts = (r.last_seen.micros() / 1_000_000).to_string();
        let first = crate::stix::time(r.first_seen);
        let last = crate::stix::time(r.last_seen);
        let attr = |relation: &str, ty: &str, value: &str, ids: bool| {
            serde_json::json!({
                "uuid": Uuid::new_v5(&obj_uuid, format!("{relation}|{value}").as_bytes()).to_string(),
                "object_relation": relation, "type": ty, "category": if ty == "datetime" { "Other" } else { "Network activity" },
                "value": value, "to_ids": ids, "timestamp": ts, "distribution": "5", "disable_correlation": !ids,
            })
        };
        let mut attrs = vec![attr(rel.0, rel.1, r.subject, true)];
        if template.0 != "url" {
            attrs.push(attr("first-seen", "datetime", &first, false));
            attrs.push(attr("last-seen", "datetime", &last, false));
        }
        let object = serde_json::json!({
            "uuid": obj_uuid.to_string(),
            "name": template.0, "meta-category": "network", "description": format!("{} ({} sightings)", r.classification_type, r.count),
            "template_uuid": template.1, "template_version": template.2,
            "timestamp": ts, "distribution": "5", "first_seen": first, "last_seen": last,
            "comment": format!("{} sightings", r.count),
            "Attribute": attrs,
        });
        if o.objects > 0 {
            o.file.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut o.file, &object)?;
        o.objects += 1;
        o.newest = o.newest.max(r.last_seen.micros());
        writeln!(self.hashes, "{},{}", md5_hex(r.subject), ev)?;
        self.objects += 1;
        self.attributes += if template.0 == "url" { 1 } else { 3 };
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<(u64, u64, u64)> {
        self.close_event()?;
        self.hashes.flush()?;
        let m = std::fs::File::create(self.dir.join("manifest.json"))?;
        serde_json::to_writer(std::io::BufWriter::new(m), &self.manifest)?;
        Ok((self.events, self.objects, self.attributes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_comes_back_gets_a_further_part_not_an_overwrite() {
        let dir = std::env::temp_dir().join(format!("botwatch-misp-parts-{}", std::process::id()));
        let mut w = FeedWriter::create(&dir, "CERT-A").unwrap();
        let row = |s: &'static str, tlp: Tlp| FeedRow {
            subject: s,
            classification_type: "c2-server",
            family: "emotet",
            first_seen: Timestamp(1_700_000_000_000_000),
            last_seen: Timestamp(1_700_000_000_000_000),
            count: 1,
            tlp,
            label: Label::default(),
        };
        w.push(&row("192.0.2.1", Tlp::Green)).unwrap();
        w.push(&row("192.0.2.2", Tlp::Amber)).unwrap();
        w.push(&row("192.0.2.3", Tlp::Green)).unwrap();
        let (events, objects, _) = w.finish().unwrap();
        assert_eq!((events, objects), (3, 3));
        let files = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(files, 5, "three events, manifest.json and hashes.csv");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
