//! Sharing: `share`, `bar`, `federation` and `taxii`.

#[allow(unused_imports)]
use super::*;
use crate::cli::*;
use anyhow::{Context, Result, bail};
use botwatch::config::Config;
use botwatch::output::{self};
use botwatch::pipeline::Ingestor;
use botwatch_model::{Clock, SystemClock};
use botwatch_store::any::AnyStore;
use std::io::Write;

pub(crate) fn share_cmd(cfg: &Config, cmd: ShareCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        ShareCmd::Publish { db, json } => {
            let mut store = open_existing(cfg, &db)?;
            let me = botwatch::share::share_cfg(cfg);
            let home = botwatch::share::home_test(cfg)?;
            let s = botwatch_share::publish::publish(&mut store, &me, &home, SystemClock.now())?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&s)?)?;
            } else {
                writeln!(
                    out,
                    "published {} objects: {} new or changed, {} unchanged",
                    s.objects, s.added, s.unchanged
                )?;
            }
        }
        ShareCmd::Partners { db, format } => {
            let store = open_read(cfg, &db)?;
            let ex = store.share_exchanges()?;
            let header = [
                "partner",
                "country",
                "max_tlp",
                "sightings",
                "home_addresses",
                "read",
                "write",
                "sent",
                "received",
                "withheld",
                "last_exchange",
                "last_error",
            ];
            let rows: Vec<Vec<String>> = cfg
                .partners
                .iter()
                .map(|p| {
                    let x = ex.iter().find(|x| x.partner == p.name).cloned().unwrap_or_default();
                    vec![
                        p.name.clone(),
                        p.country.clone().unwrap_or_default(),
                        format!("TLP:{}", p.max_tlp.as_str()),
                        p.sightings.to_string(),
                        p.home_addresses.to_string(),
                        p.read.join(","),
                        p.write.join(","),
                        x.sent.to_string(),
                        x.received.to_string(),
                        x.withheld.to_string(),
                        x.last_exchange.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        x.last_error.unwrap_or_default(),
                    ]
                })
                .collect();
            output::emit(out, format, &cfg.partners.iter().map(|p| serde_json::json!({"partner": p.name, "country": p.country, "max_tlp": p.max_tlp, "sightings": p.sightings, "home_addresses": p.home_addresses, "read": p.read, "write": p.write, "exchanges": ex.iter().find(|x| x.partner == p.name)})).collect::<Vec<_>>(), &header, &rows)?;
        }
        ShareCmd::Audit { partner, limit, db, format } => {
            let store = open_read(cfg, &db)?;
            let list = store.share_audit_list(partner.as_deref(), limit)?;
            let header = [
                "at",
                "partner",
                "direction",
                "channel",
                "collection",
                "objects",
                "withheld",
                "tlp_max",
                "error",
            ];
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|a| {
                    vec![
                        a.at.to_rfc3339(),
                        a.partner.clone(),
                        a.direction.clone(),
                        a.channel.clone(),
                        a.collection.clone().unwrap_or_default(),
                        a.objects.to_string(),
                        a.withheld.to_string(),
                        a.tlp_max.clone().unwrap_or_default(),
                        a.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::emit(out, format, &list, &header, &rows)?;
        }
        ShareCmd::Sightings { value, db, format } => {
            let store = open_read(cfg, &db)?;
            let rows = sightings_of(&store, &value)?;
            let header = ["by", "count", "first_seen", "last_seen", "sighting"];
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r["by"].as_str().unwrap_or("").into(),
                        r["count"].to_string(),
                        r["first_seen"].as_str().unwrap_or("").into(),
                        r["last_seen"].as_str().unwrap_or("").into(),
                        r["id"].as_str().unwrap_or("").into(),
                    ]
                })
                .collect();
            output::emit(out, format, &rows, &header, &table)?;
        }
    }
    Ok(())
}

/// Every sighting of the indicator for `value`: this node's own and those partners sent.
pub(crate) fn sightings_of(store: &AnyStore, value: &str) -> Result<Vec<serde_json::Value>> {
    let ind = botwatch_share::stix::indicator_id(value);
    let mut out = Vec::new();
    let mut colls: Vec<String> = store.share_counts()?.into_iter().map(|(c, _)| c).collect();
    colls.sort();
    for c in colls {
        let mut after = None;
        loop {
            let q = botwatch_store::share::SharePage {
                collection: c.clone(),
                after_seq: after,
                types: vec!["sighting".into()],
                limit: 1000,
                ..Default::default()
            };
            let (rows, more) = store.share_page(&q)?;
            for r in &rows {
                let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
                if v["sighting_of_ref"] == ind.as_str() {
                    out.push(serde_json::json!({
                        "by": r.partner.clone().unwrap_or_else(|| "this node".into()),
                        "id": v["id"], "count": v["count"], "first_seen": v["first_seen"], "last_seen": v["last_seen"],
                    }));
                }
            }
            after = rows.last().map(|r| r.seq);
            if !more {
                break;
            }
        }
    }
    Ok(out)
}

pub(crate) fn bar_key(store: &mut AnyStore) -> Result<Vec<u8>> {
    let fresh = botwatch_share::bar::new_key()?;
    Ok(store.secret_or_init("bar-signing-key", || fresh, SystemClock.now().micros())?)
}

pub(crate) fn bar_cmd(cfg: &Config, cmd: BarCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        BarCmd::Key { db } => {
            let mut store = open_existing(cfg, &db)?;
            writeln!(out, "{}", botwatch_share::bar::public_key(&bar_key(&mut store)?)?)?;
        }
        BarCmd::Publish { version, out: file, db } => {
            if cfg.bar.is_empty() {
                bail!("no [bar] thresholds to publish (see botwatch.example.toml)");
            }
            let mut store = open_existing(cfg, &db)?;
            let key = bar_key(&mut store)?;
            let me = botwatch::share::share_cfg(cfg);
            let now = SystemClock.now();
            let doc = botwatch_share::bar::sign(
                &key,
                &me.node,
                &version,
                &botwatch_share::stix::time(now),
                serde_json::to_value(&cfg.bar)?,
            )?;
            let producer = me.producer();
            let objs = [
                botwatch_share::stix::Obj::from_value(
                    botwatch_share::bar::extension_definition(),
                    botwatch_share::gate::Label {
                        tlp: Some(botwatch_model::Tlp::Clear),
                        ..Default::default()
                    },
                ),
                botwatch_share::bar::to_object(&doc, &producer.identity_id()),
            ];
            let coll = botwatch_share::taxii::CollectionKind::Federation.id(&me.node);
            store.share_put(&coll, None, objs.iter().map(botwatch_share::publish::new_object), now)?;
            if let Some(f) = file {
                std::fs::write(&f, serde_json::to_string_pretty(&doc)?)?;
            }
            writeln!(out, "published bar {} {version}, signed with key {}", me.node, doc.public_key)?;
        }
        BarCmd::Adopt { from, out: file, db } => {
            let p = botwatch::share::partner(cfg, &from)?;
            let key = p.bar_key.clone().with_context(|| format!("partner {from:?} has no bar_key: a bar is adopted only under a key configured for its issuer"))?;
            let store = open_read(cfg, &db)?;
            let mut newest: Option<(i64, botwatch_share::bar::SignedBar)> = None;
            let mut after = None;
            loop {
                let q = botwatch_store::share::SharePage {
                    collection: format!("received:{from}"),
                    after_seq: after,
                    types: vec![botwatch_share::bar::OBJECT_TYPE.into()],
                    limit: 1000,
                    ..Default::default()
                };
                let (rows, more) = store.share_page(&q)?;
                for r in &rows {
                    if let Some(d) =
                        serde_json::from_str(&r.body).ok().as_ref().and_then(botwatch_share::bar::from_object)
                    {
                        newest = Some((r.seq, d));
                    }
                }
                after = rows.last().map(|r| r.seq);
                if !more {
                    break;
                }
            }
            let (_, doc) = newest.with_context(|| {
                format!("no security bar received from {from} (run `botwatch taxii pull --partner {from}`)")
            })?;
            botwatch_share::bar::verify(&doc, &key)
                .with_context(|| format!("the bar {} {} from {from}", doc.issuer, doc.version))?;
            std::fs::write(&file, serde_json::to_string_pretty(&doc)?)?;
            writeln!(
                out,
                "adopted bar {} {} (signature verified with {from}'s key) into {}; set [share] bar_document = {:?} to measure against it",
                doc.issuer,
                doc.version,
                file.display(),
                file.display().to_string()
            )?;
        }
    }
    Ok(())
}

pub(crate) fn federation_cmd(cfg: &Config, cmd: FederationCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        FederationCmd::Release { days, db, json } => {
            let mut store = open_existing(cfg, &db)?;
            let s = botwatch::federation::release(cfg, &mut store, SystemClock.now(), days)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&s)?)?;
            } else {
                writeln!(
                    out,
                    "released {} cells for {} day(s), {} suppressed (k-anonymity), {} objects published; noise: {}; epsilon spent so far: {}",
                    s.cells,
                    s.days.len(),
                    s.suppressed,
                    s.published,
                    s.epsilon.map(|e| format!("geometric, epsilon {e}")).unwrap_or_else(|| "none".into()),
                    s.budget_spent
                )?;
            }
        }
        FederationCmd::Stats { by, carriers, db, format } => {
            let store = open_read(cfg, &db)?;
            let by = botwatch_share::federation::By::parse(&by)
                .context("--by: day, country, family, asn or node")?;
            let view = botwatch_share::federation::global(&store.federation_cells(None)?, by);
            if carriers {
                let header = ["bar_version", "node", "carrier", "verdict", "infections_per_1000"];
                let rows: Vec<Vec<String>> = view
                    .carriers
                    .iter()
                    .map(|c| {
                        vec![
                            c.bar_version.clone().unwrap_or_else(|| "(local, unversioned)".into()),
                            c.node.clone(),
                            c.carrier.clone(),
                            c.verdict.clone().unwrap_or_default(),
                            c.infections_per_1000.map(|x| format!("{x:.2}")).unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::emit(out, format, &view.carriers, &header, &rows)?;
                return Ok(());
            }
            let nodes: Vec<String> = view.nodes.iter().map(|n| n.node.clone()).collect();
            let mut header = vec!["key".to_string(), "infected".into(), "new_cases".into()];
            header.extend(nodes.iter().cloned());
            let rows: Vec<Vec<String>> = view
                .rows
                .iter()
                .map(|r| {
                    let mut v = vec![r.key.clone(), r.infected.to_string(), r.new_cases.to_string()];
                    v.extend(nodes.iter().map(|n| r.by_node.get(n).copied().unwrap_or(0).to_string()));
                    v
                })
                .collect();
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            output::emit(out, format, &view.rows, &header, &rows)?;
        }
        FederationCmd::Forget { node, db } => {
            let mut store = open_existing(cfg, &db)?;
            let n = store.federation_forget(&node)?;
            writeln!(out, "forgot {n} cells of {node}")?;
        }
    }
    Ok(())
}

pub(crate) fn taxii_cmd(
    cfg: &Config,
    cmd: TaxiiCmd,
    families: &botwatch_model::FamilyTable,
    out: &mut dyn Write,
) -> Result<()> {
    let chosen = |name: &Option<String>| -> Result<Vec<botwatch_share::partners::Partner>> {
        Ok(match name {
            Some(n) => vec![botwatch::share::partner(cfg, n)?.clone()],
            None => cfg.partners.iter().filter(|p| p.url.is_some()).cloned().collect(),
        })
    };
    match cmd {
        TaxiiCmd::Pull { partner, db, json } => {
            let registry = botwatch::registry(cfg);
            let ipdb = botwatch::ipdb(cfg)?;
            let mut store = open_store(cfg, &db)?;
            let ing = Ingestor {
                registry: &registry,
                ipdb: &ipdb,
                families,
                limits: cfg.ingest.limits(),
                publish: None,
            };
            let mut failed = 0;
            // What partners posted to this node's inbox comes in the same way.
            for s in botwatch::share::ingest_inbox(cfg, &mut store, &ing, &SystemClock)? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&s)?)?;
                } else {
                    writeln!(
                        out,
                        "{} inbox: {} objects posted, {} events, {} rejects",
                        s.partner, s.objects, s.events, s.rejects
                    )?;
                }
            }
            for p in chosen(&partner)? {
                match botwatch::share::pull(cfg, &mut store, &ing, &p, &SystemClock) {
                    Ok(list) => {
                        for s in list {
                            if json {
                                writeln!(out, "{}", serde_json::to_string(&s)?)?;
                            } else {
                                writeln!(
                                    out,
                                    "{} {}: {} objects in {} pages, {} events, {} rejects, {} aggregates",
                                    s.partner,
                                    s.collection,
                                    s.objects,
                                    s.pages,
                                    s.events,
                                    s.rejects,
                                    s.aggregates
                                )?;
                            }
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("{}: {e:#}", p.name);
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} partner(s) could not be pulled");
            }
        }
        TaxiiCmd::Push { partner, db, json } => {
            let mut store = open_existing(cfg, &db)?;
            let me = botwatch::share::share_cfg(cfg);
            let home = botwatch::share::home_test(cfg)?;
            botwatch_share::publish::publish(&mut store, &me, &home, SystemClock.now())?;
            let mut failed = 0;
            for p in chosen(&partner)?.into_iter().filter(|p| p.push_collection.is_some()) {
                match botwatch::share::push(cfg, &mut store, &p, &SystemClock) {
                    Ok(s) if json => writeln!(out, "{}", serde_json::to_string(&s)?)?,
                    Ok(s) => writeln!(
                        out,
                        "{}: {} objects taken by the partner in {} envelopes ({} refused there), {} withheld by the TLP gate",
                        s.partner, s.sent, s.posts, s.refused, s.withheld
                    )?,
                    Err(e) => {
                        failed += 1;
                        eprintln!("{}: {e:#}", p.name);
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} partner(s) could not be pushed to");
            }
        }
    }
    Ok(())
}
