//! `botwatch demo`: ingest the shipped sample reports (plus one synthetic busy day of
//! sinkhole data) into a fresh embedded store and show what an analyst looks at first.

use crate::pipeline::{Ingestor, Input, ReportSummary};
use anyhow::Result;
use botwatch_model::{Clock, SystemClock, Timestamp};
use botwatch_store::{EventQuery, GroupBy, Store, StoreConfig, any::AnyStore, sqlite::SqliteStore};
use std::io::Write;
use std::path::Path;

include!(concat!(env!("OUT_DIR"), "/samples.rs"));

pub struct DemoResult {
    pub summaries: Vec<ReportSummary>,
    pub failed: Vec<(String, String)>,
    pub seconds: f64,
}

/// Ingests the samples into `db` (removed first), or into the PostgreSQL database at
/// `store_url` (which must hold no reports: the demo never mixes with real data).
pub fn run(
    db: &Path,
    store_url: Option<&str>,
    ing: &Ingestor<'_>,
    synthetic_rows: usize,
    out: &mut dyn Write,
    progress: bool,
) -> Result<DemoResult> {
    let mut store = match store_url {
        Some(url) => {
            let s = botwatch_store::postgres::PgStore::connect(url, StoreConfig::default()).map_err(|e| {
                anyhow::anyhow!("connecting to {}: {e}", botwatch_store::postgres::redact(url))
            })?;
            let held = s.counts()?.reports;
            if held > 0 {
                anyhow::bail!(
                    "the demo needs an empty database, and {} holds {held} reports",
                    botwatch_store::postgres::redact(url)
                );
            }
            AnyStore::Postgres(Box::new(s))
        }
        None => {
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
            }
            AnyStore::Sqlite(SqliteStore::open(db, StoreConfig::default())?)
        }
    };
    let now = SystemClock.now();
    let day = Timestamp(now.micros() - 86_400_000_000).day();
    let synthetic = botwatch_feeds::shadowserver::synth::event4_sinkhole(
        synthetic_rows,
        (synthetic_rows / 6).max(1) as u32,
        &day,
        2026,
    );
    let synthetic_name = format!("{day}-event4_sinkhole-demo_isp-asn.csv");
    let total: u64 = SAMPLES.iter().map(|s| s.1.len() as u64).sum::<u64>() + synthetic.len() as u64;
    let bar = if progress { indicatif::ProgressBar::new(total) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} ingesting [{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut summaries = Vec::new();
    let mut failed = Vec::new();
    let inputs = SAMPLES
        .iter()
        .map(|(name, data)| (name.to_string(), bytes::Bytes::from_static(data)))
        .chain(std::iter::once((synthetic_name, bytes::Bytes::from(synthetic))));
    for (name, data) in inputs {
        bar.set_message(name.clone());
        let len = data.len() as u64;
        let base = name.rsplit('/').next().unwrap_or(&name).to_string();
        match ing.ingest(
            &mut store,
            Input {
                name: &base,
                data: botwatch_feeds::input::Source::Bytes(data),
                feed: None,
                source: Some(format!("demo:{name}")),
                observed: now,
                archive: None,
            },
            &|_| {},
        ) {
            Ok(s) => summaries.extend(s),
            Err(e) => failed.push((name.clone(), format!("{e:#}"))),
        }
        bar.inc(len);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    store.checkpoint()?;
    report(&store, &summaries, &failed, seconds, out)?;
    isp_view(&mut store, db, store_url, &day, now, out)?;
    Ok(DemoResult { summaries, failed, seconds })
}

fn report(
    store: &AnyStore,
    sums: &[ReportSummary],
    failed: &[(String, String)],
    secs: f64,
    out: &mut dyn Write,
) -> Result<()> {
    let counts = store.counts()?;
    writeln!(
        out,
        "\nbotwatch demo — {} reports from {} feeds ingested in {:.2} s",
        sums.len(),
        {
            let mut f: Vec<_> = sums.iter().map(|s| s.feed.as_str()).collect();
            f.sort();
            f.dedup();
            f.len()
        },
        secs
    )?;
    writeln!(
        out,
        "{} events → {} deduplicated observations · {} duplicates merged · {} rejected lines kept · {} schema-drift warnings\n",
        counts.events,
        counts.observations,
        sums.iter().map(|s| s.merged).sum::<u64>(),
        counts.rejects,
        sums.iter().map(|s| s.drift_warnings).sum::<u64>()
    )?;
    let q = EventQuery { limit: Some(8), ..Default::default() };
    let infected = EventQuery {
        classification_type: Some("infected-system".into()),
        limit: Some(8),
        ..Default::default()
    };
    let fam = store.stats(GroupBy::Family, &infected)?;
    writeln!(out, "Infected systems by malware family (events / distinct IPs):")?;
    for r in fam.iter().filter(|r| !r.key.is_empty()) {
        writeln!(
            out,
            "  {:<22} {:>7} {:>7}  {}",
            r.key,
            r.events,
            r.subjects,
            bar(r.subjects, fam.iter().map(|x| x.subjects).max().unwrap_or(1))
        )?;
    }
    writeln!(out, "\nInfected systems by country:")?;
    let cc = store.stats(GroupBy::Country, &infected)?;
    for r in &cc {
        writeln!(
            out,
            "  {:<4} {:>7} events {:>7} IPs  {}",
            if r.key.is_empty() { "??" } else { &r.key },
            r.events,
            r.subjects,
            bar(r.subjects, cc.iter().map(|x| x.subjects).max().unwrap_or(1))
        )?;
    }
    writeln!(out, "\nNetworks with the most infected IPs:")?;
    let ipdb = botwatch_enrich::IpDb::builtin();
    let mut nets = store.stats(GroupBy::Asn, &EventQuery { limit: None, ..infected.clone() })?;
    nets.retain(|r| !r.key.is_empty());
    nets.sort_by(|a, b| b.subjects.cmp(&a.subjects).then(a.key.cmp(&b.key)));
    for r in nets.iter().take(8) {
        let name = r.key.parse().ok().and_then(|a| ipdb.as_name(a)).unwrap_or("");
        writeln!(out, "  AS{:<8} {:>7} IPs  {}", r.key, r.subjects, name)?;
    }
    writeln!(out, "\nWhat the feeds say, by classification:")?;
    for r in store.stats(GroupBy::Type, &q)? {
        writeln!(out, "  {:<32} {:>7}", r.key, r.events)?;
    }
    let mut corroborated: Vec<_> =
        store.observations(&EventQuery::default())?.into_iter().filter(|o| o.sources.len() > 1).collect();
    corroborated.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    if !corroborated.is_empty() {
        writeln!(out, "\nSeen by more than one feed (confidence rises with independent sources):")?;
        for o in corroborated.iter().take(5) {
            let srcs: Vec<_> = o.sources.keys().cloned().collect();
            writeln!(
                out,
                "  {:<18} {:<18} {:<12} conf {:.2}  {}",
                o.subject,
                o.classification_type,
                o.family,
                o.confidence,
                srcs.join(", ")
            )?;
        }
    }
    writeln!(out, "\nPer report:")?;
    writeln!(
        out,
        "  {:<52} {:<36} {:>6} {:>6} {:>6} {:>5}",
        "report", "feed", "events", "merged", "reject", "drift"
    )?;
    for s in sums {
        let name: String = if s.name.chars().count() > 52 {
            s.name.chars().take(51).chain(['…']).collect()
        } else {
            s.name.clone()
        };
        writeln!(
            out,
            "  {:<52} {:<36} {:>6} {:>6} {:>6} {:>5}",
            name, s.feed, s.events, s.merged, s.rejects, s.drift_warnings
        )?;
    }
    for (n, e) in failed {
        writeln!(out, "  {n}: NOT INGESTED: {e}")?;
    }
    Ok(())
}

/// The ISP desk's view of the same data: the three networks with the most infected
/// addresses become demo organisations, the first gets DHCP leases for its infected
/// addresses (written in dhcpd.leases format and imported through the real parser), and
/// the case engine, notifier (dry run) and compliance report run over it.
fn isp_view(
    store: &mut AnyStore,
    db: &Path,
    store_url: Option<&str>,
    day: &str,
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<()> {
    use botwatch_cases::{CaseEngine, CaseQuery, CaseStore};
    use botwatch_model::{CaseState, ManualClock};
    use botwatch_store::outbox::OutboxStore;
    let ipdb = botwatch_enrich::IpDb::builtin();
    let infected = EventQuery { classification_type: Some("infected-system".into()), ..Default::default() };
    let mut nets = store.stats(GroupBy::Asn, &infected)?;
    nets.retain(|r| !r.key.is_empty());
    nets.sort_by(|a, b| b.subjects.cmp(&a.subjects).then(a.key.cmp(&b.key)));
    let langs = ["en", "de", "nl"];
    let mut orgs = String::new();
    let mut asns = Vec::new();
    for (i, r) in nets.iter().take(3).enumerate() {
        let Ok(asn) = r.key.parse::<u32>() else { continue };
        asns.push(asn);
        let name = ipdb.as_name(asn).unwrap_or("network").replace('"', "'");
        orgs.push_str(&format!(
            "[[org]]\nid = \"as{asn}\"\nname = \"{name}\"\nkind = \"isp\"\nasns = [{asn}]\nabuse_emails = [\"abuse@as{asn}.example\"]\nlang = \"{}\"\nsubscribers = {}\n\n",
            langs[i % 3],
            r.subjects * 40
        ));
    }
    let Some(&first_asn) = asns.first() else { return Ok(()) };
    let stem = db.with_extension("");
    let cons_path = stem.with_file_name(format!("{}-constituency.toml", file_stem(db)));
    std::fs::write(&cons_path, &orgs)?;
    // Leases for the first organisation's infected addresses, valid around the report day.
    let ips: Vec<std::net::IpAddr> = store
        .observations(&EventQuery { asn: Some(first_asn), ..infected.clone() })?
        .iter()
        .filter_map(|o| o.subject.parse().ok())
        .collect();
    let start =
        botwatch_model::parse_timestamp(day).ok_or_else(|| anyhow::anyhow!("bad report day {day:?}"))?;
    let lease_path = stem.with_file_name(format!("{}-dhcpd.leases", file_stem(db)));
    std::fs::write(&lease_path, dhcpd_leases(&ips, start))?;
    let mut cfg = crate::config::Config { bar: botwatch_cases::Bar::recommended(), ..Default::default() };
    cfg.constituency.file = Some(cons_path.clone());
    let imp = crate::isp::import_leases(&cfg, store, &lease_path, None, &SystemClock)?;
    let attr = crate::isp::attributor(&cfg, store)?;
    // The desk's clock: now, then past the notice delay.
    // Cases open one notice delay ago, so the notices fall due now, not in the future.
    let clock = ManualClock::new(Timestamp::from_micros(
        now.micros() - (cfg.cases.notify_delay_minutes * 60 + 60) * 1_000_000,
    ));
    let engine = CaseEngine::new(cfg.cases.clone())?;
    let first = engine.update(store, &attr, &clock, 20_000)?;
    clock.advance_secs(cfg.cases.notify_delay_minutes * 60 + 60);
    let tick = engine.tick(store, &attr, &clock)?;
    let cases = store.cases(&CaseQuery::default())?;
    writeln!(out, "\nISP view — the same data at the abuse desk")?;
    writeln!(
        out,
        "Constituency: {} organisations ({}) · leases: {} DHCP records imported from {} (subscriber ids pseudonymised)",
        asns.len(),
        cons_path.display(),
        imp.records,
        lease_path.display()
    )?;
    let by_sub = cases.iter().filter(|c| c.subscriber.is_some()).count();
    writeln!(
        out,
        "Cases: {} opened ({} attributed to a subscriber at the time of the sighting, {} by address) · {} notices queued in the outbox after the {}-minute delay",
        first.process.opened,
        by_sub,
        cases.len() - by_sub,
        tick.notices,
        cfg.cases.notify_delay_minutes
    )?;
    writeln!(
        out,
        "\n  {:<6} {:<12} {:<22} {:<16} {:<14} {:>8}",
        "case", "org", "subscriber", "address", "threat", "evidence"
    )?;
    // The desk's own customers first: attributed to a subscriber, then to an organisation.
    let mut shown: Vec<_> = cases.iter().filter(|c| c.state != CaseState::Closed).collect();
    shown.sort_by_key(|c| (c.subscriber.is_none(), c.org.is_none(), std::cmp::Reverse(c.evidence), c.id));
    for c in shown.iter().take(6) {
        writeln!(
            out,
            "  {:<6} {:<12} {:<22} {:<16} {:<14} {:>8}",
            c.id,
            c.org.as_deref().unwrap_or("-"),
            c.subscriber.as_deref().unwrap_or("-"),
            c.ip.map(|i| i.to_string()).unwrap_or_default(),
            c.threat,
            c.evidence
        )?;
    }
    // One notice, rendered exactly as `botwatch notify run` would send it.
    let notify_key = botwatch_server::auth::new_key()?;
    let ncfg = botwatch_notify::NotifyConfig {
        secret: notify_key.clone(),
        portal_url: DEMO_URL.into(),
        ..Default::default()
    };
    let transports = botwatch_notify::Transports::from_config(&ncfg)?;
    let mut policy = ncfg.policy.clone();
    policy.dry_run = true;
    policy.quiet_start_hour = policy.quiet_end_hour;
    policy.batch = 1;
    let sum = botwatch_notify::drain(store, &clock, &transports, &policy)?;
    if let Some(p) = sum.previews.first() {
        writeln!(out, "\nA queued notice (dry run; `botwatch notify run` sends them over SMTP/webhooks):")?;
        writeln!(out, "  To: {}   Message-ID: <{}>", p.recipient, p.message_id)?;
        writeln!(out, "  Subject: {}", p.rendered.subject)?;
        for l in p.rendered.text.lines().filter(|l| !l.trim().is_empty()).take(8) {
            writeln!(out, "  | {l}")?;
        }
        writeln!(out, "  | …")?;
    }
    let pending = store.notices(Some(botwatch_store::outbox::NoticeStatus::Pending), 100_000)?.len();
    writeln!(
        out,
        "  ({pending} notices queued in the outbox, 0 sent: the demo has no mail server; until a transport accepts them no case counts as notified)"
    )?;
    writeln!(out, "\nCompliance per organisation (minimum security bar):")?;
    let cc = botwatch_cases::CasesConfig { cases: cfg.cases.clone(), bar: cfg.bar.clone() };
    let mut table = Vec::new();
    crate::cases_cmd::run_compliance(
        &crate::cases_cmd::ComplianceArgs { json: false },
        store,
        &attr,
        &clock,
        &cc,
        &mut table,
    )?;
    for l in String::from_utf8_lossy(&table).lines() {
        writeln!(out, "  {l}")?;
    }
    sensor_view(store, out)?;
    let d = db.display();
    writeln!(out, "\n{}", botwatch_enrich::CREDIT)?;
    writeln!(out, "\nNext, try:")?;
    writeln!(out, "  botwatch events --db {d} --family andromeda --limit 5")?;
    writeln!(out, "  botwatch stats --db {d} --by asn")?;
    writeln!(out, "  botwatch rejects --db {d}            # every line that did not parse, with the reason")?;
    writeln!(out, "  botwatch export --db {d} --format intelmq > events.jsonl")?;
    // A config for the commands below: the demo database, constituency and lease secret.
    let cfg_path = stem.with_file_name(format!("{}.toml", file_stem(db)));
    std::fs::write(
        &cfg_path,
        format!(
            "# Written by `botwatch demo`.\n[store]\npath = {:?}\n{}\n[constituency]\nfile = {:?}\n\n{}\n[notify]\nfrom = \"botwatch demo desk <abuse@cert.example>\"\n# A key made for this demo: notice links and webhooks are signed with it.\nsecret = \"{notify_key}\"\nportal_url = \"{DEMO_URL}\"\n\n# The demo trusts X-Forwarded-For from this machine, so the portal can be shown an\n# infected address with curl; a deployment lists its reverse proxies here.\n[server]\nlisten = \"127.0.0.1:8080\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
            db.display().to_string(),
            store_url.map(|u| format!("url = {u:?}\n")).unwrap_or_default(),
            cons_path.display().to_string(),
            bar_toml(&cfg.bar),
        ),
    )?;
    // Tokens for the browser: the national centre's analyst and the first ISP's desk.
    let desk_org = format!("as{first_asn}");
    let mut token = |name: &str, role: &str, org: Option<&str>| -> Result<String> {
        use botwatch_store::tokens::TokenStore;
        let t = botwatch_server::auth::new_token()?;
        store.create_token(name, role, org, &botwatch_server::auth::hash_token(&t), SystemClock.now())?;
        Ok(t)
    };
    let analyst = token("demo analyst", "analyst", None)?;
    let desk = token("demo abuse desk", "organisation", Some(&desk_org))?;
    let c = cfg_path.display();
    if let Some(case) = shown.first().filter(|c| c.subscriber.is_some())
        && let Some(ip) = case.ip
    {
        writeln!(out, "  botwatch --config {c} attribute {ip} --at {}", case.first_seen.to_rfc3339())?;
        writeln!(out, "  botwatch --config {c} cases show {}", case.id)?;
    }
    writeln!(out, "  botwatch --config {c} cases list --open --limit 20")?;
    writeln!(out, "  botwatch --config {c} compliance --json")?;
    writeln!(out, "  botwatch --config {c} notify run --dry-run")?;
    let infected_ip =
        shown.iter().find_map(|c| c.ip).map(|i| i.to_string()).unwrap_or_else(|| "192.0.2.1".into());
    writeln!(out, "\nIn a browser — start the server, then open {DEMO_URL}/")?;
    writeln!(out, "  botwatch --config {c} serve")?;
    writeln!(out, "  dashboard and every organisation's cases: log in with the analyst token {analyst}")?;
    writeln!(out, "  one ISP's abuse desk ({desk_org}), its cases only:  log in with {desk}")?;
    writeln!(out, "  self-check portal: {DEMO_URL}/check   (as an infected subscriber would see it:")?;
    writeln!(out, "    curl -H 'X-Forwarded-For: {infected_ip}' {DEMO_URL}/check)")?;
    writeln!(out, "  API: curl -H 'Authorization: Bearer {analyst}' {DEMO_URL}/api/v1/cases?open=true")?;
    partner_exchange(store, &cfg_path, first_asn, now, out)?;
    Ok(())
}

/// The demo's last act: this centre shares with a partner centre, through the TLP gate, and
/// releases its federated figures — what went, to whom, under which TLP, what stayed home.
fn partner_exchange(
    store: &mut AnyStore,
    cfg_path: &Path,
    first_asn: u32,
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<()> {
    // Home is the constituency's country: where its first network's infected hosts are.
    let infected = EventQuery {
        classification_type: Some("infected-system".into()),
        asn: Some(first_asn),
        ..Default::default()
    };
    let mut countries = store.stats(GroupBy::Country, &infected)?;
    countries.retain(|r| !r.key.is_empty());
    countries.sort_by(|a, b| b.subjects.cmp(&a.subjects).then(a.key.cmp(&b.key)));
    let home = countries.first().map(|r| r.key.clone()).unwrap_or_else(|| "JP".into());
    let password = botwatch_server::auth::new_key()?;
    let section = format!(
        "\n# Sharing: this centre and one partner centre (the TAXII server is at /taxii2/).\n[share]\nnode = \"botwatch demo centre\"\norganisation = \"botwatch demo centre\"\ncountry = \"{home}\"\nhome_countries = [\"{home}\"]\n# Unmarked data counts as AMBER, except the public lists, which anyone may see.\ndefault_tlp = \"amber\"\n\n[[partners]]\nname = \"cert-partner\"\ncountry = \"NL\"\norganisation = \"CERT partner (demo)\"\nmax_tlp = \"amber\"\nsightings = true\nhome_addresses = false\npassword = \"{password}\"\n\n[share.feed_tlp]\n\"abusech_*\" = \"clear\"\n\"spamhaus_*\" = \"clear\"\n\"blocklistde_*\" = \"clear\"\n\"generic_*\" = \"green\"\n\"shadowserver_*\" = \"amber\"\n"
    );
    let mut text = std::fs::read_to_string(cfg_path)?;
    text.push_str(&section);
    std::fs::write(cfg_path, &text)?;
    let cfg: crate::config::Config = toml::from_str(&text)?;
    let partner = crate::share::partner(&cfg, "cert-partner")?.clone();
    let me = crate::share::share_cfg(&cfg);
    let released = crate::federation::release(&cfg, store, now, 7)?;
    let is_home = crate::share::home_test(&cfg)?;
    botwatch_share::publish::publish(store, &me, &is_home, now)?;
    let dir = cfg_path.with_file_name(format!("{}-share", file_stem(cfg_path)));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("cert-partner.stix.json");
    let e = partner.entitlement(&me);
    let mut w = std::io::BufWriter::new(std::fs::File::create(&file)?);
    let sent = botwatch_share::publish::bundle(
        store,
        &me,
        &is_home,
        &e,
        &mut w,
        &format!("demo|cert-partner|{}", now.micros()),
    )?;
    drop(w);
    crate::share::audit(
        store,
        now,
        "cert-partner",
        "exported",
        "stix-export",
        None,
        sent.objects,
        sent.withheld,
        sent.tlp_max,
        None,
    )?;
    let c = cfg_path.display();
    writeln!(
        out,
        "\nPartner exchange — what this centre ({home}) shares with cert-partner (NL), entitled to TLP:AMBER and sightings, not to addresses at home:"
    )?;
    writeln!(
        out,
        "  exported {} STIX 2.1 objects for it, highest {}: {} (handed over, or pulled over TAXII below)",
        sent.objects,
        sent.tlp_max.map(|t| format!("TLP:{}", t.as_str())).unwrap_or_else(|| "none".into()),
        file.display()
    )?;
    writeln!(out, "  withheld {} by the TLP gate:", sent.withheld)?;
    for (why, n) in &sent.reasons {
        writeln!(out, "    {n:>7}  {why}")?;
    }
    writeln!(
        out,
        "  federated figures: {} cells released ({} small cells suppressed, k = {}) into the `federation` TAXII collection",
        released.cells, released.suppressed, me.k_anonymity
    )?;
    writeln!(
        out,
        "  see it: botwatch --config {c} share audit   ·   botwatch --config {c} federation stats --by family"
    )?;
    writeln!(
        out,
        "          the Sharing page ({DEMO_URL}/sharing) once `serve` runs; the partner pulls over TAXII 2.1:"
    )?;
    writeln!(
        out,
        "          curl -u cert-partner:{password} -H 'Accept: application/taxii+json;version=2.1' {DEMO_URL}/taxii2/api/collections/"
    )?;
    Ok(())
}

/// `[bar]` as TOML, so the demo's config judges against the same thresholds it printed.
fn bar_toml(bar: &botwatch_cases::Bar) -> String {
    let body = toml::to_string(bar).unwrap_or_default();
    format!("# The minimum security bar (botwatch.example.toml explains each threshold).\n[bar]\n{body}")
}

/// Where the demo's server listens (`[server] listen` in the demo config).
const DEMO_URL: &str = "http://127.0.0.1:8080";

fn file_stem(p: &Path) -> String {
    p.file_stem().and_then(|s| s.to_str()).unwrap_or("botwatch-demo").to_string()
}

/// dhcpd.leases(5) records: one lease per address from the day before `day` to two days
/// after, with a relay-agent remote-id (the subscriber line) and a MAC address.
fn dhcpd_leases(ips: &[std::net::IpAddr], day: Timestamp) -> String {
    let fmt = |t: Timestamp| {
        let days = t.secs().div_euclid(86_400);
        let weekday = (days + 4).rem_euclid(7);
        let r = t.to_rfc3339();
        format!("{weekday} {} {}", r[..10].replace('-', "/"), &r[11..19])
    };
    let from = Timestamp::from_secs(day.secs() - 86_400);
    let until = Timestamp::from_secs(day.secs() + 2 * 86_400);
    let mut s = String::from(
        "# The format of this file is documented in the dhcpd.leases(5) manual page.\n# botwatch demo leases\n\n",
    );
    for (i, ip) in ips.iter().enumerate() {
        let std::net::IpAddr::V4(v4) = ip else { continue };
        let o = v4.octets();
        s.push_str(&format!(
            "lease {ip} {{\n  starts {};\n  ends {};\n  cltt {};\n  binding state active;\n  next binding state free;\n  hardware ethernet 02:42:{:02x}:{:02x}:{:02x}:{:02x};\n  option agent.remote-id \"line-{:06}\";\n  option agent.circuit-id \"olt-{}/1/{}\";\n}}\n",
            fmt(from),
            fmt(until),
            fmt(from),
            o[0],
            o[1],
            o[2],
            o[3],
            100_000 + i,
            i % 8,
            i % 64
        ));
    }
    s
}

fn bar(n: u64, max: u64) -> String {
    let w = ((n as f64 / max.max(1) as f64) * 24.0).round() as usize;
    "█".repeat(w.max(usize::from(n > 0)))
}

/// A resolver's dnstap capture (generated with Unbound on loopback; two clients resolve real
/// Simda DGA names) through the sensor: the store's indicators and the detectors.
const DNSTAP_SAMPLE: &[u8] =
    include_bytes!("../../telemetry/tests/data/dns/generated_unbound/unbound.dnstap.fstrm");

fn sensor_view(store: &AnyStore, out: &mut dyn Write) -> Result<()> {
    use crate::sensor;
    let cfg = sensor::SensorSection::default();
    let matcher = std::sync::Arc::new(sensor::matcher_from_store(store, &cfg)?);
    let indicators = matcher.stats().indicators;
    let mut scanner = sensor::Scanner::new(matcher, &cfg, false);
    let scanned = sensor::scan_file(&mut scanner, "unbound.dnstap.fstrm", DNSTAP_SAMPLE, None)?;
    let flagged = scanner.finish();
    let clients: std::collections::BTreeSet<_> = flagged.iter().map(|f| f.client).collect();
    writeln!(
        out,
        "\nOwn sensors — a resolver's dnstap capture ({} DNS queries) checked against {} indicators from the feeds and by the DGA / NXDOMAIN detectors: {} of 10 clients flagged",
        scanned.records,
        indicators,
        clients.len()
    )?;
    for f in &flagged {
        let detail: String = f.detail.chars().take(110).collect();
        writeln!(
            out,
            "  {:<12} {:<9} score {:.2}  {detail}…",
            f.client.to_string(),
            f.reason,
            f.score.unwrap_or(1.0)
        )?;
    }
    Ok(())
}
