//! Sharing at national scale, timed end to end on one core (harness = false: the figures
//! the issue asks for are a throughput, a p99 page latency and a wall time, with the peak
//! memory to show it does not grow with the collection):
//! - STIX export: N indicators → serialised STIX objects through the TLP gate;
//! - TAXII paging: a collection of N objects in the store, read 1,000 per page through the
//!   gate's SQL pre-filter and the gate, as the server's handler does (minus HTTP);
//! - MISP feed: N/3 observations → N attributes written to a feed directory.
//!
//! `cargo bench -p botwatch-share --bench scale [-- N]` (default 1,000,000).

use botwatch_model::{Timestamp, Tlp};
use botwatch_share::gate::{self, Entitlement, Label};
use botwatch_share::stix::{Exporter, Producer, Row};
use botwatch_store::StoreConfig;
use botwatch_store::share::{NewShareObject, SharePage};
use botwatch_store::sqlite::SqliteStore;
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<f64>().unwrap_or(0.0))
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn subject(i: usize) -> String {
    format!("{}.{}.{}.{}", 1 + (i >> 24 & 127), i >> 16 & 255, i >> 8 & 255, i & 255)
}

fn row(s: &str, i: usize) -> Row<'_> {
    Row {
        subject: s,
        classification_type: "c2-server",
        family: ["emotet", "qakbot", "pikabot", "icedid"][i % 4],
        first_seen: Timestamp(1_760_000_000_000_000 + i as i64 * 1000),
        last_seen: Timestamp(1_760_100_000_000_000 + i as i64 * 1000),
        count: 1 + (i % 7) as u64,
        confidence: 80.0,
        tlp: if i.is_multiple_of(10) { Some(Tlp::Red) } else { None },
        home: false,
        sources: 1,
    }
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let e = Entitlement {
        max_tlp: Tlp::Amber,
        sightings: true,
        home_addresses: false,
        same_organisation: false,
        default_tlp: Tlp::Green,
    };
    let producer = Producer { name: "bench".into(), country: None, contact: None, default_tlp: Tlp::Green };

    // STIX export.
    let t = Instant::now();
    let mut ex = Exporter::new(producer.clone(), vec!["c2-server".into()]);
    let mut sink = std::io::BufWriter::new(std::io::sink());
    let mut bw = botwatch_share::stix::BundleWriter::new(&mut sink, "bench").unwrap();
    let (mut sent, mut withheld) = (0u64, 0u64);
    for i in 0..n {
        let s = subject(i);
        ex.row(&row(&s, i), &mut |o| {
            if gate::admit(&e, &o.label).sends() {
                bw.push(&o.body).unwrap();
                sent += 1;
            } else {
                withheld += 1;
            }
        });
    }
    bw.finish().unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "stix export: {n} indicators -> {} objects ({sent} sent, {withheld} withheld) in {secs:.2} s = {:.0} objects/s; peak RSS {:.0} MiB",
        sent + withheld,
        (sent + withheld) as f64 / secs,
        peak_rss_mib()
    );

    // TAXII paging over N objects.
    let dir = std::env::temp_dir().join(format!("botwatch-taxii-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.db");
    let mut store = SqliteStore::open(&path, StoreConfig::default()).unwrap();
    let t = Instant::now();
    let mut objs = Vec::with_capacity(10_000);
    let mut ex = Exporter::new(producer, vec!["c2-server".into()]);
    let mut i = 0;
    let mut total = 0u64;
    while (total as usize) < n {
        let s = subject(i);
        ex.row(&row(&s, i), &mut |o| objs.push(o));
        i += 1;
        if objs.len() >= 10_000 || total as usize + objs.len() >= n {
            let take = objs.len().min(n - total as usize);
            store
                .share_put(
                    "bench",
                    None,
                    objs[..take].iter().map(|o| NewShareObject {
                        id: &o.id,
                        ty: &o.ty,
                        version: &o.version,
                        tlp: o.label.tlp.map(botwatch_share::tlp::rank),
                        flags: o.label.flags(),
                        body: &o.body,
                        content: None,
                    }),
                    Timestamp(1_760_000_000_000_000),
                )
                .unwrap();
            total += take as u64;
            objs.clear();
        }
    }
    println!("taxii collection: {total} objects stored in {:.1} s", t.elapsed().as_secs_f64());
    let cond = gate::sql_condition(&e);
    let mut after = None;
    let mut lat = Vec::new();
    let mut served = 0u64;
    let t = Instant::now();
    loop {
        let p = Instant::now();
        let q = SharePage {
            collection: "bench".into(),
            condition: Some(cond.clone()),
            after_seq: after,
            limit: 1000,
            ..Default::default()
        };
        let (rows, more) = store.share_page(&q).unwrap();
        let mut body = String::with_capacity(rows.iter().map(|r| r.body.len() + 1).sum::<usize>() + 64);
        for r in &rows {
            if gate::admit(&e, &Label::from_parts(r.tlp, r.flags)).sends() {
                body.push_str(&r.body);
                body.push(',');
                served += 1;
            }
        }
        lat.push(p.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(body);
        after = rows.last().map(|r| r.seq);
        if !more {
            break;
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "taxii paging: {} pages of 1,000 ({served} objects served) in {:.1} s; per page p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; peak RSS {:.0} MiB",
        lat.len(),
        t.elapsed().as_secs_f64(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
        peak_rss_mib()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);

    // MISP feed of N attributes (3 per address object).
    let feed = std::env::temp_dir().join(format!("botwatch-misp-bench-{}", std::process::id()));
    let t = Instant::now();
    let mut fw = botwatch_share::misp::FeedWriter::create(&feed, "bench").unwrap();
    let rows = n.div_ceil(3);
    // In the order the store hands rows to the writer: type, family, day, TLP.
    let mut order: Vec<usize> = (0..rows).collect();
    order.sort_by_key(|i| (i % 4, i % 3));
    for i in order {
        let s = subject(i);
        let r = row(&s, i);
        let fr = botwatch_share::misp::FeedRow {
            subject: &s,
            classification_type: r.classification_type,
            family: r.family,
            first_seen: r.first_seen,
            // A few days, so the feed has a few events per family.
            last_seen: Timestamp(r.last_seen.micros() + (i % 3) as i64 * 86_400_000_000),
            count: r.count,
            tlp: Tlp::Green,
            label: Label::default(),
        };
        fw.push(&fr).unwrap();
    }
    let (events, objects, attributes) = fw.finish().unwrap();
    println!(
        "misp feed: {attributes} attributes in {objects} objects, {events} events, written in {:.2} s; peak RSS {:.0} MiB",
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    let _ = std::fs::remove_dir_all(&feed);
}
