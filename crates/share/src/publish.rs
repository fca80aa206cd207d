//! Publishing: the store's observations (and federated releases) into this node's TAXII
//! collections, and the same objects as a STIX bundle or a MISP feed for one recipient.
//! Every way out asks the gate ([`crate::gate::admit`]) per object.

use crate::gate::{self, Entitlement, Label};
use crate::partners::ShareConfig;
use crate::stix::{Exporter, Obj, Row};
use crate::taxii::CollectionKind;
use botwatch_model::Timestamp;
use botwatch_store::any::AnyStore;
use botwatch_store::share::{NewShareObject, ShareRow};
use std::net::IpAddr;

/// Whether an observation's address lies inside this node's constituency.
pub type IsHome<'a> = &'a dyn Fn(Option<IpAddr>, Option<u32>, Option<&str>) -> bool;

/// `[share.feed_tlp]`, parsed once per export.
pub struct FeedTlp(Vec<(String, bool, botwatch_model::Tlp)>);

impl FeedTlp {
    pub fn new(cfg: &ShareConfig) -> anyhow::Result<FeedTlp> {
        Ok(FeedTlp(cfg.feed_rules().map_err(anyhow::Error::msg)?))
    }

    /// The strictest of the data's own marking and its feeds' configured TLPs; `None` when
    /// neither says (the default then applies).
    pub fn of(&self, r: &ShareRow) -> Option<botwatch_model::Tlp> {
        let own = r.tlp.and_then(crate::tlp::from_rank);
        if self.0.is_empty() {
            return own;
        }
        let feeds: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&r.sources_json).unwrap_or_default();
        let configured = feeds
            .keys()
            .filter_map(|f| {
                self.0
                    .iter()
                    .filter(|(p, prefix, _)| if *prefix { f.starts_with(p.as_str()) } else { f == p })
                    .map(|(_, _, t)| *t)
                    .max()
            })
            .max();
        own.max(configured)
    }
}

fn row<'a>(r: &'a ShareRow, home: IsHome<'_>, tlp: &FeedTlp) -> Row<'a> {
    let ip = r.ip.map(botwatch_store::key_ip);
    Row {
        subject: &r.subject,
        classification_type: &r.ty,
        family: &r.family,
        first_seen: r.first_seen,
        last_seen: r.last_seen,
        count: r.count,
        confidence: r.confidence,
        tlp: tlp.of(r),
        home: home(ip, r.asn, r.cc.as_deref()),
        sources: r.sources,
    }
}

/// The classification types the exporter turns into objects.
fn types(cfg: &ShareConfig) -> Vec<String> {
    let mut t = cfg.indicator_types.clone();
    t.push("infected-system".into());
    t
}

/// Every object the store's observations become, in order, with reference objects first.
pub fn for_each_object(
    store: &AnyStore,
    cfg: &ShareConfig,
    home: IsHome<'_>,
    f: &mut dyn FnMut(Obj) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut ex = Exporter::new(cfg.producer(), cfg.indicator_types.clone());
    let feed_tlp = FeedTlp::new(cfg)?;
    let mut err: Option<std::io::Error> = None;
    let mut sink = |o: Obj| {
        if err.is_none()
            && let Err(e) = f(o)
        {
            err = Some(e);
        }
    };
    ex.start(&mut sink);
    store.for_each_share_row(&types(cfg), None, &mut |r| {
        ex.row(&row(r, home, &feed_tlp), &mut sink);
        Ok(())
    })?;
    if let Some(e) = err {
        return Err(e.into());
    }
    Ok(())
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PublishSummary {
    pub objects: u64,
    pub added: u64,
    pub unchanged: u64,
}

/// Writes the current objects into the `indicators` collection; an object whose content is
/// unchanged keeps its version and `date_added`, so partners polling with `added_after`
/// see only what is new.
pub fn publish(
    store: &mut AnyStore,
    cfg: &ShareConfig,
    home: IsHome<'_>,
    now: Timestamp,
) -> anyhow::Result<PublishSummary> {
    let coll = CollectionKind::Indicators.id(&cfg.node);
    let mut batch: Vec<Obj> = Vec::with_capacity(10_000);
    let mut sum = PublishSummary::default();
    // Read everything first into batches written after the read: a write while the read
    // statement is open would change what it reads.
    let mut pending: Vec<Vec<Obj>> = Vec::new();
    for_each_object(store, cfg, home, &mut |o| {
        batch.push(o);
        if batch.len() == 10_000 {
            pending.push(std::mem::take(&mut batch));
        }
        Ok(())
    })?;
    pending.push(batch);
    for b in pending {
        sum.objects += b.len() as u64;
        let (a, u) = store.share_put(&coll, None, b.iter().map(new_object), now)?;
        sum.added += a;
        sum.unchanged += u;
    }
    Ok(sum)
}

pub fn new_object(o: &Obj) -> NewShareObject<'_> {
    NewShareObject {
        id: &o.id,
        ty: &o.ty,
        version: &o.version,
        tlp: o.label.tlp.map(crate::tlp::rank),
        flags: o.label.flags(),
        body: &o.body,
        content: None,
    }
}

/// What one export to one recipient sent and held back.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Sent {
    pub objects: u64,
    pub withheld: u64,
    /// The highest TLP among what was sent.
    pub tlp_max: Option<botwatch_model::Tlp>,
    /// Why objects were withheld, with how many each.
    pub reasons: std::collections::BTreeMap<&'static str, u64>,
}

impl Sent {
    /// Asks the gate; counts the verdict.
    pub fn admit(&mut self, e: &Entitlement, l: &Label) -> bool {
        match gate::admit(e, l) {
            gate::Verdict::Send => {
                self.objects += 1;
                let t = gate::effective(l, e);
                self.tlp_max = self.tlp_max.max(Some(t));
                true
            }
            gate::Verdict::Withhold(why) => {
                self.withheld += 1;
                *self.reasons.entry(why.as_str()).or_default() += 1;
                false
            }
        }
    }
}

/// A STIX bundle for one recipient, streamed.
pub fn bundle(
    store: &AnyStore,
    cfg: &ShareConfig,
    home: IsHome<'_>,
    e: &Entitlement,
    w: &mut dyn std::io::Write,
    key: &str,
) -> anyhow::Result<Sent> {
    let mut bw = crate::stix::BundleWriter::new(w, key)?;
    let mut sent = Sent::default();
    for_each_object(store, cfg, home, &mut |o| {
        if sent.admit(e, &o.label) {
            bw.push(&o.body)?;
        }
        Ok(())
    })?;
    bw.finish()?;
    Ok(sent)
}

/// A MISP feed directory for one recipient.
pub fn misp_feed(
    store: &AnyStore,
    cfg: &ShareConfig,
    home: IsHome<'_>,
    e: &Entitlement,
    dir: &std::path::Path,
) -> anyhow::Result<(Sent, (u64, u64, u64))> {
    let mut fw = crate::misp::FeedWriter::create(dir, &cfg.node)?;
    let feed_tlp = FeedTlp::new(cfg)?;
    let mut sent = Sent::default();
    let mut err = None;
    store.for_each_share_row(&types(cfg), Some(crate::tlp::rank(cfg.default_tlp)), &mut |r| {
        let is_indicator = cfg.indicator_types.contains(&r.ty);
        if !is_indicator && (r.ty != "infected-system" || r.family.is_empty()) {
            return Ok(());
        }
        // Labelled as the STIX exporter labels it: an indicator at an address inside the
        // constituency names that address too.
        let row = row(r, home, &feed_tlp);
        let label = Label { tlp: row.tlp, sighting: !is_indicator, home: row.home, subscriber: false };
        if !sent.admit(e, &label) {
            return Ok(());
        }
        let fr = crate::misp::FeedRow {
            subject: &r.subject,
            classification_type: &r.ty,
            family: &r.family,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            count: r.count,
            tlp: gate::effective(&label, e),
            label,
        };
        if let Err(x) = fw.push(&fr) {
            err.get_or_insert(x);
        }
        Ok(())
    })?;
    if let Some(x) = err {
        return Err(x.into());
    }
    let totals = fw.finish()?;
    Ok((sent, totals))
}
