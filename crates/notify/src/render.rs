//! Renders a notice into a subject and a plain-text body.
//!
//! Templates are `<lang>/<reason>.txt`; each one's first line is `Subject: …`, then a blank
//! line, then the body. The payload is untrusted in shape (it was written by another
//! version of the case engine, or by hand): every field is optional, and what is present is
//! normalised into strings before it reaches a template, so odd types render rather than fail.

use crate::{NotifyConfig, NotifyError, Result};
use botwatch_model::parse_timestamp;
use botwatch_store::outbox::NewNotice;
use minijinja::Environment;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Languages with embedded templates.
pub const LANGS: &[&str] = &["en", "de", "nl", "ja"];
/// Reasons with their own template; anything else renders `<lang>/base.txt`.
pub const REASONS: &[&str] = &["first_notice", "renotify", "escalation", "walled_garden"];

macro_rules! embedded {
    ($($lang:literal),*) => {
        &[$(
            (concat!($lang, "/base.txt"), include_str!(concat!("../templates/", $lang, "/base.txt"))),
            (concat!($lang, "/first_notice.txt"), include_str!(concat!("../templates/", $lang, "/first_notice.txt"))),
            (concat!($lang, "/renotify.txt"), include_str!(concat!("../templates/", $lang, "/renotify.txt"))),
            (concat!($lang, "/escalation.txt"), include_str!(concat!("../templates/", $lang, "/escalation.txt"))),
            (concat!($lang, "/walled_garden.txt"), include_str!(concat!("../templates/", $lang, "/walled_garden.txt"))),
        )*]
    };
}

const TEMPLATES: &[(&str, &str)] = embedded!("en", "de", "nl", "ja");
const REMEDIATION: &str = include_str!("../data/remediation.toml");

/// A rendered notice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    /// The language actually used (after falling back).
    pub lang: String,
}

#[derive(Debug, Deserialize)]
struct AdviceFile {
    kinds: BTreeMap<String, BTreeMap<String, String>>,
    families: BTreeMap<String, Family>,
}

#[derive(Debug, Deserialize)]
struct Family {
    kind: String,
    #[serde(default)]
    aliases: Vec<String>,
    /// Shown in every language: family notes are short, technical and mostly names.
    #[serde(default)]
    note: Option<String>,
}

/// Remediation advice per malware family, with a generic fallback.
#[derive(Debug)]
pub struct Advice {
    kinds: BTreeMap<String, BTreeMap<String, String>>,
    by_name: BTreeMap<String, (String, String, Option<String>)>,
}

fn norm_family(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).flat_map(|c| c.to_lowercase()).collect()
}

impl Advice {
    pub fn embedded() -> Result<Advice> {
        Self::parse(REMEDIATION)
    }

    pub fn parse(src: &str) -> Result<Advice> {
        let f: AdviceFile = toml::from_str(src).map_err(|e| NotifyError::Advice(e.to_string()))?;
        if !f.kinds.contains_key("generic") {
            return Err(NotifyError::Advice("no [kinds.generic]".into()));
        }
        let mut by_name = BTreeMap::new();
        for (name, fam) in f.families {
            if !f.kinds.contains_key(&fam.kind) {
                return Err(NotifyError::Advice(format!("{name}: unknown kind {}", fam.kind)));
            }
            for n in std::iter::once(&name).chain(&fam.aliases) {
                by_name.insert(norm_family(n), (name.clone(), fam.kind.clone(), fam.note.clone()));
            }
        }
        Ok(Advice { kinds: f.kinds, by_name })
    }

    /// The canonical family name (if known), the advice text in `lang` (English, then the
    /// generic advice as fallbacks) and the family's note.
    pub fn lookup(&self, family: &str, lang: &str) -> (Option<String>, String, Option<String>) {
        let hit = self.by_name.get(&norm_family(family));
        let kind = hit.map(|h| h.1.as_str()).unwrap_or("generic");
        let texts = &self.kinds[kind];
        let text = texts.get(lang).or_else(|| texts.get("en")).cloned().unwrap_or_default();
        (hit.map(|h| h.0.clone()), text, hit.and_then(|h| h.2.clone()))
    }

    /// Every canonical family name.
    pub fn families(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_name.values().map(|h| h.0.clone()).collect();
        v.dedup();
        v
    }
}

pub struct Renderer {
    env: Environment<'static>,
    advice: Advice,
    default_lang: String,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.trim().to_string()),
        other => Some(other.to_string()),
    }
}

/// Times as the reader should see them: always UTC, always labelled.
fn utc(v: Option<&Value>) -> Option<String> {
    let raw = text(v)?;
    Some(match parse_timestamp(&raw) {
        Some(t) => t.to_datetime().format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => raw,
    })
}

fn evidence(payload: &Value) -> Vec<Value> {
    let Some(items) = payload.get("evidence").and_then(Value::as_array) else { return Vec::new() };
    items
        .iter()
        .filter_map(Value::as_object)
        .take(10)
        .map(|e| {
            json!({
                "time": utc(e.get("time")),
                "feed": text(e.get("feed")),
                "ip": text(e.get("ip")),
                "port": text(e.get("port")),
                "classification_type": text(e.get("classification_type")),
                "malware": text(e.get("malware")),
                "destination": text(e.get("destination")),
            })
        })
        .collect()
}

impl Renderer {
    pub fn new(cfg: &NotifyConfig) -> Result<Renderer> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Plain text: no HTML escaping of what the payload carries.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        for (name, src) in TEMPLATES {
            env.add_template(name, src)
                .map_err(|e| NotifyError::Template { name: name.to_string(), error: e.to_string() })?;
        }
        if let Some(dir) = &cfg.template_dir {
            load_dir(&mut env, dir)?;
        }
        Ok(Renderer { env, advice: Advice::embedded()?, default_lang: cfg.default_lang.clone() })
    }

    pub fn advice(&self) -> &Advice {
        &self.advice
    }

    fn pick(&self, lang: &str, reason: &str) -> Option<(String, String)> {
        let lang = lang.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
        for l in [lang.as_str(), self.default_lang.as_str(), "en"] {
            for r in [reason, "base"] {
                let name = format!("{l}/{r}.txt");
                if self.env.get_template(&name).is_ok() {
                    return Some((name, l.to_string()));
                }
            }
        }
        None
    }

    /// Renders `notice`; `verify_url` is the full link to the verification portal.
    pub fn render(&self, notice: &NewNotice, verify_url: &str) -> Result<Rendered> {
        let p = &notice.payload;
        let reason = p.get("reason").and_then(Value::as_str).unwrap_or("notice");
        let reason =
            if reason.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') { reason } else { "notice" };
        let (name, lang) = self
            .pick(&notice.lang, reason)
            .ok_or_else(|| NotifyError::Template { name: reason.into(), error: "no template".into() })?;
        let empty = Map::new();
        let case = p.get("case").and_then(Value::as_object).unwrap_or(&empty);
        let org = p.get("org").and_then(Value::as_object).unwrap_or(&empty);
        let threat = text(case.get("threat")).or_else(|| text(case.get("classification_type")));
        let (family, advice, note) = self.advice.lookup(threat.as_deref().unwrap_or(""), &lang);
        let ctx = json!({
            "reason": reason,
            "lang": lang,
            "message_id": notice.message_id,
            "recipient": notice.recipient,
            "case_id": text(case.get("id")).or(notice.case_id.map(|i| i.to_string())),
            "ip": text(case.get("ip")),
            "threat": threat,
            "family": family,
            "classification_type": text(case.get("classification_type")),
            "level": text(case.get("level")),
            "state": text(case.get("state")),
            "first_seen": utc(case.get("first_seen")),
            "last_seen": utc(case.get("last_seen")),
            "evidence_count": text(case.get("evidence")),
            "org_name": text(org.get("name")).or_else(|| text(org.get("id"))).or(notice.org.clone()),
            "subscriber": text(p.get("subscriber")),
            "evidence": evidence(p),
            "advice": advice,
            "family_note": note,
            "verify_url": verify_url,
        });
        let tmpl = self
            .env
            .get_template(&name)
            .map_err(|e| NotifyError::Template { name: name.clone(), error: e.to_string() })?;
        let out = tmpl
            .render(ctx)
            .map_err(|e| NotifyError::Template { name: name.clone(), error: e.to_string() })?;
        let (subject, body) = split_subject(&out);
        Ok(Rendered { subject, text: body, lang })
    }
}

fn split_subject(out: &str) -> (String, String) {
    let out = out.trim_start_matches(['\n', '\r']);
    let (first, rest) = out.split_once('\n').unwrap_or((out, ""));
    match first.strip_prefix("Subject:") {
        // Header injection guard: a subject is one line whatever the payload held.
        Some(s) => (
            s.split_whitespace().collect::<Vec<_>>().join(" "),
            rest.trim_start_matches(['\n', '\r']).to_string(),
        ),
        None => ("Notice".into(), out.to_string()),
    }
}

fn load_dir(env: &mut Environment<'static>, dir: &std::path::Path) -> Result<()> {
    let io = |path: &std::path::Path, error| NotifyError::Io { path: path.display().to_string(), error };
    for lang in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let lang = lang.map_err(|e| io(dir, e))?.path();
        if !lang.is_dir() {
            continue;
        }
        let lang_name = lang.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        for f in std::fs::read_dir(&lang).map_err(|e| io(&lang, e))? {
            let f = f.map_err(|e| io(&lang, e))?.path();
            if f.extension().and_then(|e| e.to_str()) != Some("txt") {
                continue;
            }
            let file = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let src = std::fs::read_to_string(&f).map_err(|e| io(&f, e))?;
            let name = format!("{lang_name}/{file}");
            env.add_template_owned(name.clone(), src)
                .map_err(|e| NotifyError::Template { name, error: e.to_string() })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use botwatch_model::Timestamp;
    use botwatch_store::outbox::Channel;

    fn notice(lang: &str, payload: Value) -> NewNotice {
        NewNotice {
            key: "k".into(),
            message_id: "m@x".into(),
            kind: "case_notice".into(),
            channel: Channel::Email,
            recipient: "abuse@example.net".into(),
            lang: lang.into(),
            org: None,
            case_id: Some(7),
            payload,
            created_at: Timestamp::from_secs(0),
            due_at: Timestamp::from_secs(0),
        }
    }

    fn full_payload(reason: &str) -> Value {
        json!({
            "reason": reason,
            "case": {"id": 7, "ip": "192.0.2.10", "threat": "mirai", "classification_type": "infected-system",
                     "first_seen": "2026-11-24T03:00:00+00:00", "last_seen": "2026-11-24T05:30:00+01:00", "level": 1},
            "org": {"id": "example-isp", "name": "Example ISP", "abuse_emails": ["abuse@example.net"], "lang": "en"},
            "subscriber": "cust-42",
            "evidence": [{"time": "2026-11-24T03:00:00+00:00", "feed": "shadowserver_event4_sinkhole", "ip": "192.0.2.10",
                          "port": 51234, "classification_type": "infected-system", "malware": "mirai", "destination": "198.51.100.1"}]
        })
    }

    #[test]
    fn every_language_and_reason_renders_with_times_in_utc_and_the_link() {
        let r = Renderer::new(&NotifyConfig::default()).unwrap();
        for lang in LANGS {
            for reason in REASONS {
                let out = r.render(&notice(lang, full_payload(reason)), "https://p/verify?t=TOKEN").unwrap();
                assert_eq!(&out.lang, lang);
                assert!(!out.subject.is_empty() && !out.subject.contains('\n'), "{lang}/{reason}");
                assert!(out.text.contains("https://p/verify?t=TOKEN"), "{lang}/{reason}");
                assert!(out.text.contains("192.0.2.10"), "{lang}/{reason}");
                assert!(out.text.contains("2026-11-24 04:30:00 UTC"), "{lang}/{reason}: {}", out.text);
                assert!(out.text.contains("2026-11-24 03:00:00 UTC"), "{lang}/{reason}");
                assert!(out.text.to_lowercase().contains("mirai"), "{lang}/{reason}");
                assert!(!out.text.contains("{{") && !out.text.contains("{%"), "{lang}/{reason}");
            }
        }
    }

    #[test]
    fn odd_payloads_render_what_is_there() {
        let r = Renderer::new(&NotifyConfig::default()).unwrap();
        for p in [
            json!({}),
            json!(null),
            json!({"reason": 5, "case": "x", "evidence": "nope"}),
            json!({"reason": "../../etc", "case": {"ip": ["a"], "first_seen": "yesterday"}, "evidence": [1, {"time": 3}]}),
            json!({"reason": "renotify", "case": {"threat": "Subject:\r\nBcc: x"}}),
        ] {
            let out = r.render(&notice("xx-YY", p.clone()), "u").unwrap();
            assert_eq!(out.lang, "en", "{p}");
            assert!(!out.subject.contains('\n') && !out.subject.contains('\r'));
        }
        let out = r.render(&notice("ja", json!({"case": {"first_seen": "yesterday"}})), "u").unwrap();
        assert!(out.text.contains("yesterday"));
    }

    #[test]
    fn advice_covers_sinkhole_families_and_falls_back() {
        let a = Advice::embedded().unwrap();
        for f in [
            "mirai",
            "emotet",
            "qakbot",
            "qbot",
            "trickbot",
            "andromeda",
            "conficker",
            "downadup",
            "gamut",
            "necurs",
            "ramnit",
            "sality",
            "avalanche-andromeda",
            "gozi",
            "zeus",
            "gameover",
            "dridex",
            "icedid",
            "socgholish",
            "nymaim",
            "pushdo",
            "tinba",
            "matsnu",
            "virut",
            "bamital",
            "ursnif",
            "lokibot",
        ] {
            assert!(a.lookup(f, "de").0.is_some(), "{f} not covered");
        }
        let (fam, text, _) = a.lookup("some-new-thing", "nl");
        assert!(fam.is_none() && !text.is_empty());
        assert_ne!(a.lookup("mirai", "de").1, a.lookup("mirai", "en").1, "translated");
        assert_eq!(a.lookup("mirai", "xx").1, a.lookup("mirai", "en").1, "English fallback");
    }

    #[test]
    fn template_dir_overrides_and_adds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("fr")).unwrap();
        std::fs::write(
            dir.path().join("fr/first_notice.txt"),
            "Subject: Avis {{ ip }}\n\nBonjour {{ verify_url }}\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("en")).unwrap();
        std::fs::write(dir.path().join("en/renotify.txt"), "Subject: Custom\n\nhello\n").unwrap();
        let cfg = NotifyConfig { template_dir: Some(dir.path().into()), ..Default::default() };
        let r = Renderer::new(&cfg).unwrap();
        let out = r.render(&notice("fr", full_payload("first_notice")), "L").unwrap();
        assert_eq!((out.subject.as_str(), out.lang.as_str()), ("Avis 192.0.2.10", "fr"));
        assert!(out.text.starts_with("Bonjour L"));
        assert_eq!(r.render(&notice("en", full_payload("renotify")), "L").unwrap().subject, "Custom");
    }
}
