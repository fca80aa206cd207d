//! Sharing with partners through the real peers: stix2-validator on every exported bundle,
//! a second store importing it, PyMISP on the MISP feed, taxii2-client paging botwatch's
//! TAXII server, and medallion (the OASIS TAXII 2.1 server) both ways. TLP:RED and
//! addresses at home are checked never to leave.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::Path;

/// A Python with stix2-validator, PyMISP and taxii2-client (`.ci/run` installs them).
fn share_python() -> Option<String> {
    let py = validator_python()?;
    let has = std::process::Command::new(&py)
        .args(["-c", "import stix2validator, pymisp, taxii2client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        assert!(
            std::env::var("BOTWATCH_VALIDATORS").as_deref() != Ok("1"),
            "BOTWATCH_VALIDATORS=1 but {py} lacks stix2-validator, pymisp or taxii2-client"
        );
        eprintln!("skipped: no stix2-validator, pymisp and taxii2-client");
        return None;
    }
    Some(py)
}

const RED_C2: &str = "203.0.113.66";
const GREEN_C2: &str = "203.0.113.77";

/// A partner's bundle: one C2 marked TLP:RED, one TLP:GREEN.
fn red_and_green(dir: &Path) -> std::path::PathBuf {
    let b = serde_json::json!({"type": "bundle", "id": "bundle--6f0a9f7e-5d4b-4b8e-9a43-0c2b1b0a0001", "objects": [
        {"type": "indicator", "spec_version": "2.1", "id": "indicator--6f0a9f7e-5d4b-4b8e-9a43-0c2b1b0a0002",
         "created": "2026-11-30T10:00:00.000Z", "modified": "2026-11-30T10:00:00.000Z", "name": "Emotet C2 server",
         "pattern": format!("[ipv4-addr:value = '{RED_C2}']"), "pattern_type": "stix", "valid_from": "2026-11-30T10:00:00Z",
         "object_marking_refs": ["marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"]},
        {"type": "indicator", "spec_version": "2.1", "id": "indicator--6f0a9f7e-5d4b-4b8e-9a43-0c2b1b0a0003",
         "created": "2026-11-30T10:00:00.000Z", "modified": "2026-11-30T10:00:00.000Z", "name": "Emotet C2 server",
         "pattern": format!("[ipv4-addr:value = '{GREEN_C2}']"), "pattern_type": "stix", "valid_from": "2026-11-30T10:00:00Z",
         "object_marking_refs": ["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"]}
    ]});
    let p = dir.join("partner-red-green.json");
    std::fs::write(&p, b.to_string()).unwrap();
    p
}

/// A node: the demo's store plus the red/green bundle, `[share]` and partners.
fn node(dir: &Path, extra: &str) -> String {
    let o = bin().current_dir(dir).args(["demo"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = dir.join("botwatch-demo.toml");
    let d = dir.to_str().unwrap();
    let mut text =
        std::fs::read_to_string(&cfg).unwrap().replace("\"botwatch-demo", &format!("\"{d}/botwatch-demo"));
    // The demo's own sharing section (its partner exchange) gives way to this test's.
    if let Some(i) = text.find("\n# Sharing:") {
        text.truncate(i);
    }
    text.push_str(&format!(
        "\n[share]\nnode = \"CERT-A\"\norganisation = \"CERT-A\"\ncountry = \"JP\"\n{extra}\n"
    ));
    std::fs::write(&cfg, text).unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    // The demo released figures as its own node; this test's node starts afresh.
    ok(&["--config", &cfg, "federation", "forget", "botwatch demo centre"]);
    let bundle = red_and_green(dir);
    let o =
        bin().current_dir(dir).args(["--config", &cfg, "ingest", bundle.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    cfg
}

fn indicators(cfg: &str, db: Option<&str>) -> BTreeSet<(String, String, String)> {
    let mut args = vec!["--config", cfg, "observations", "--format", "jsonl", "--limit", "1000000"];
    if let Some(d) = db {
        args.extend(["--db", d]);
    }
    let out = ok(&args);
    json_lines(&out)
        .iter()
        .filter(|o| matches!(o["classification.type"].as_str(), Some("c2-server" | "malware-distribution")))
        .map(|o| {
            (
                o["subject"].as_str().unwrap().to_string(),
                o["classification.type"].as_str().unwrap().to_string(),
                o["malware.name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn stix_export_passes_the_validator_keeps_red_home_and_round_trips() {
    let Some(py) = share_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = node(dir.path(), "");
    let bundle = dir.path().join("export.json");
    ok(&["--config", &cfg, "export", "--format", "stix", "--tlp", "amber", "-o", bundle.to_str().unwrap()]);
    let text = std::fs::read_to_string(&bundle).unwrap();
    assert!(text.contains(GREEN_C2), "the GREEN indicator is exported");
    assert!(!text.contains(RED_C2), "TLP:RED left the node");
    assert!(!text.contains("e828b379-4e03-4974-9ac4-e53a884c97c1"), "a RED marking left the node");
    // Without --sightings / --home-addresses: no sightings, no infected hosts.
    assert!(!text.contains("\"type\":\"sighting\"") && !text.contains("\"type\":\"ipv4-addr\""));
    validate(&py, "stix", &bundle);
    // Re-export is byte-stable apart from the bundle id.
    let again = ok(&["--config", &cfg, "export", "--format", "stix", "--tlp", "amber"]);
    let strip = |s: &str| s.lines().skip(1).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(strip(&text), strip(&again));
    // With sightings and infected hosts too, still valid.
    let full = dir.path().join("full.json");
    ok(&[
        "--config",
        &cfg,
        "export",
        "--format",
        "stix",
        "--tlp",
        "amber",
        "--sightings",
        "--home-addresses",
        "-o",
        full.to_str().unwrap(),
    ]);
    validate(&py, "stix", &full);
    // A second store importing the bundle has the same indicators (RED aside).
    let other = dir.path().join("other.db");
    ok(&["--config", &cfg, "ingest", "--db", other.to_str().unwrap(), full.to_str().unwrap()]);
    let mine: BTreeSet<_> = indicators(&cfg, None).into_iter().filter(|i| i.0 != RED_C2).collect();
    let theirs = indicators(&cfg, Some(other.to_str().unwrap()));
    assert!(mine.len() > 50, "{}", mine.len());
    assert_eq!(mine, theirs);
}

#[test]
fn misp_feed_loads_in_pymisp() {
    let Some(py) = share_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = node(dir.path(), "");
    let feed = dir.path().join("feed");
    ok(&[
        "--config",
        &cfg,
        "export",
        "--format",
        "misp-feed",
        "--out",
        feed.to_str().unwrap(),
        "--tlp",
        "amber",
        "--sightings",
        "--home-addresses",
    ]);
    let out = validate(&py, "misp-feed", &feed);
    assert!(out.contains("pymisp:"), "{out}");
    let mut all = String::new();
    for e in std::fs::read_dir(&feed).unwrap() {
        all.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    assert!(all.contains(GREEN_C2) && !all.contains(RED_C2));
    // The feed directory read back (manifest → events): the same indicator addresses.
    let other = dir.path().join("other.db");
    ok(&["--config", &cfg, "ingest", "--db", other.to_str().unwrap(), feed.to_str().unwrap()]);
    let subjects = |db: Option<&str>| -> BTreeSet<String> {
        let mut args =
            vec!["--config", cfg.as_str(), "observations", "--format", "jsonl", "--limit", "1000000"];
        if let Some(d) = db {
            args.extend(["--db", d]);
        }
        json_lines(&ok(&args)).iter().map(|o| o["subject"].as_str().unwrap().to_string()).collect()
    };
    let exported: BTreeSet<String> =
        indicators(&cfg, None).into_iter().map(|i| i.0).filter(|s| s != RED_C2).collect();
    let back = subjects(Some(other.to_str().unwrap()));
    assert!(exported.len() > 50);
    let lost: Vec<_> = exported.difference(&back).collect();
    assert!(lost.is_empty(), "not read back from the feed: {lost:?}");
    // A listed event that is missing is an error, not a silent skip.
    let first = std::fs::read_dir(&feed)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json") && !p.ends_with("manifest.json"))
        .unwrap();
    std::fs::remove_file(first).unwrap();
    let o = run(&["--config", &cfg, "ingest", "--db", other.to_str().unwrap(), feed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("listed in manifest.json but missing"));
}

#[test]
fn taxii_server_pages_for_taxii2_client_within_the_partners_entitlement() {
    let Some(py) = share_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = node(
        dir.path(),
        // The demo's feeds are public lists: unmarked counts as GREEN here.
        "default_tlp = \"green\"\n[[partners]]\nname = \"cert-b\"\nmax_tlp = \"green\"\npassword = \"b-secret\"\n",
    );
    let published = ok(&["--config", &cfg, "share", "publish", "--json"]);
    assert!(json_lines(&published)[0]["added"].as_u64().unwrap() > 100, "{published}");
    // Publishing again changes nothing.
    let again = ok(&["--config", &cfg, "share", "publish", "--json"]);
    assert_eq!(json_lines(&again)[0]["added"], 0, "{again}");
    let (_srv, base, _) = serve(Some(dir.path()), &cfg, "http");
    let o = std::process::Command::new(&py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/validate.py"))
        .args(["taxii", &format!("{base}/taxii2/"), "cert-b", "b-secret"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    let lines = json_lines(&out);
    let objects: Vec<&serde_json::Value> = lines.iter().filter_map(|l| l.get("object")).collect();
    assert!(objects.len() > 50, "{}", objects.len());
    assert!(lines.iter().any(|l| l["pages"].as_u64().is_some_and(|p| p > 1)), "paged");
    assert!(out.contains(GREEN_C2) && !out.contains(RED_C2));
    // GREEN partner: nothing above GREEN, no sightings, no hosts.
    for o in &objects {
        let t = o["type"].as_str().unwrap();
        assert!(!matches!(t, "sighting" | "ipv4-addr" | "observed-data"), "{o}");
        for m in o["object_marking_refs"].as_array().into_iter().flatten() {
            assert!(
                m == "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
                    || m == "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
                "{o}"
            );
        }
    }
    // What went to whom is in the audit log, with what the gate held back from it.
    let audit = json_lines(&ok(&["--config", &cfg, "share", "audit", "--format", "jsonl"]));
    let gets: Vec<_> =
        audit.iter().filter(|a| a["partner"] == "cert-b" && a["channel"] == "taxii-get").collect();
    assert!(!gets.is_empty(), "{audit:?}");
    let sent: u64 = gets.iter().map(|a| a["objects"].as_u64().unwrap()).sum();
    let withheld: u64 = gets.iter().map(|a| a["withheld"].as_u64().unwrap()).sum();
    assert!(sent >= objects.len() as u64 && withheld > 0, "sent {sent}, withheld {withheld}");
    // Wrong password: refused.
    let o = std::process::Command::new(&py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/validate.py"))
        .args(["taxii", &format!("{base}/taxii2/"), "cert-b", "wrong"])
        .output()
        .unwrap();
    assert!(!o.status.success());
}

#[test]
fn pushes_to_and_pulls_from_medallion() {
    let Some(url) = std::env::var("BOTWATCH_TAXII_URL").ok() else {
        assert!(
            std::env::var("BOTWATCH_VALIDATORS").as_deref() != Ok("1"),
            "BOTWATCH_VALIDATORS=1 but no BOTWATCH_TAXII_URL (medallion)"
        );
        eprintln!("skipped: no medallion (BOTWATCH_TAXII_URL)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A small node (medallion's memory backend scans every object per request).
    let coll = "365fed99-08fa-fdcd-a1b3-fb247eb41d01";
    let cfg = dir.path().join("a.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\npath = \"{}\"\n[share]\nnode = \"CERT-A\"\n[[partners]]\nname = \"medallion\"\nmax_tlp = \"amber\"\nsightings = true\nurl = \"{url}api1/\"\npush_collection = \"{coll}\"\ncollections = [\"{coll}\"]\nremote_username = \"botwatch\"\nremote_password = \"botwatch-test\"\n",
            dir.path().join("a.db").display()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let bundle = red_and_green(dir.path());
    ok(&[
        "--config",
        cfg,
        "ingest",
        data("abusech/feodo_ipblocklist_2024-04-04.csv").to_str().unwrap(),
        bundle.to_str().unwrap(),
    ]);
    let pushed = ok(&["--config", cfg, "taxii", "push", "--json"]);
    let p = &json_lines(&pushed)[0];
    // Taken, or already there from an earlier run against the same medallion (its status
    // reports those as failures): together, everything that passed the gate.
    assert!(p["sent"].as_u64().unwrap() + p["refused"].as_u64().unwrap() > 10, "{pushed}");
    assert!(p["withheld"].as_u64().unwrap() >= 1, "the RED indicator is withheld: {pushed}");
    // Pull into a fresh store: the same indicators come back through the pipeline.
    let other = dir.path().join("b.db");
    let pulled = ok(&["--config", cfg, "taxii", "pull", "--db", other.to_str().unwrap(), "--json"]);
    let s = &json_lines(&pulled)[0];
    assert!(s["events"].as_u64().unwrap() > 10, "{pulled}");
    let mine: BTreeSet<_> = indicators(cfg, None).into_iter().filter(|i| i.0 != RED_C2).collect();
    let theirs = indicators(cfg, Some(other.to_str().unwrap()));
    assert!(
        mine.is_subset(&theirs),
        "missing after the round trip: {:?}",
        mine.difference(&theirs).collect::<Vec<_>>()
    );
    assert!(!theirs.iter().any(|i| i.0 == RED_C2), "RED reached medallion");
    // A second pull asks only for what was added since.
    let again = ok(&["--config", cfg, "taxii", "pull", "--db", other.to_str().unwrap(), "--json"]);
    assert_eq!(json_lines(&again)[0]["objects"], 0, "{again}");
}

/// A demo node `name` in `dir` whose partner `peer` reaches it with `peer_pass`; its own
/// credentials at the peer are `my_pass`. The peer's URL is filled in once it serves.
fn federating_node(dir: &Path, name: &str, peer: &str, peer_pass: &str, my_pass: &str) -> String {
    node(
        dir,
        &format!(
            "home_countries = [\"JP\"]\n[[partners]]\nname = \"{peer}\"\nmax_tlp = \"amber\"\nsightings = true\npassword = \"{peer_pass}\"\nurl = \"PEER_URL\"\nremote_username = \"{}\"\nremote_password = \"{my_pass}\"\n",
            name.to_lowercase()
        ),
    )
}

fn set_node_name(cfg: &str, name: &str) {
    let t = std::fs::read_to_string(cfg).unwrap().replace("node = \"CERT-A\"", &format!("node = \"{name}\""));
    std::fs::write(cfg, t).unwrap();
}

/// Adds `key = "value"` to the config's `[share]` section.
fn set_share_key(cfg: &str, key: &str, value: &str) {
    let t = std::fs::read_to_string(cfg).unwrap().replacen(
        "\n[share]\n",
        &format!("\n[share]\n{key} = {value:?}\n"),
        1,
    );
    std::fs::write(cfg, t).unwrap();
}

fn set_peer_url(cfg: &str, url: &str) {
    let t = std::fs::read_to_string(cfg).unwrap().replace("PEER_URL", url);
    std::fs::write(cfg, t).unwrap();
}

fn infected_by_node(cfg: &str) -> std::collections::BTreeMap<String, u64> {
    json_lines(&ok(&["--config", cfg, "federation", "stats", "--by", "node", "--format", "jsonl"]))
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_string(), r["infected"].as_u64().unwrap()))
        .collect()
}

/// Walks what `sender` serves a partner (`user`/`pass`) with taxii2-client and asserts no
/// TLP:RED object or marking, no infected address of the sender's home country (JP) and no
/// subscriber id of its cases is in it; returns the walk's output.
fn served_without_private_data(py: &str, url: &str, user: &str, pass: &str, sender: &str) -> String {
    let o = std::process::Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/validate.py"))
        .args(["taxii", &format!("{url}/taxii2/"), user, pass])
        .output()
        .unwrap();
    let sent = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{sent}{}", String::from_utf8_lossy(&o.stderr));
    assert!(!sent.contains(RED_C2), "a TLP:RED indicator crossed");
    assert!(!sent.contains("e828b379-4e03-4974-9ac4-e53a884c97c1"), "a TLP:RED marking crossed");
    let home: Vec<String> = json_lines(&ok(&[
        "--config",
        sender,
        "observations",
        "--type",
        "infected-system",
        "--country",
        "JP",
        "--format",
        "jsonl",
        "--limit",
        "1000000",
    ]))
    .iter()
    .map(|o| o["subject"].as_str().unwrap().to_string())
    .collect();
    assert!(home.len() > 100, "{}", home.len());
    for ip in &home {
        assert!(!sent.contains(&format!("\"{ip}\"")), "constituency address {ip} crossed");
    }
    let subscribers: Vec<String> =
        json_lines(&ok(&["--config", sender, "cases", "list", "--json", "--limit", "1000000"]))
            .iter()
            .filter_map(|c| c["subscriber"].as_str().map(str::to_string))
            .collect();
    assert!(!subscribers.is_empty());
    for s in &subscribers {
        assert!(!sent.contains(s.as_str()), "subscriber {s} crossed");
    }
    sent
}

#[test]
fn two_nodes_federate_without_red_subscribers_or_home_addresses_crossing() {
    let Some(py) = share_python() else { return };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = federating_node(da.path(), "CERT-A", "cert-b", "b-at-a", "a-at-b");
    let b = federating_node(db.path(), "CERT-B", "cert-a", "a-at-b", "b-at-a");
    set_node_name(&b, "CERT-B");
    // A sets the standard: it signs its bar, measures against it, and B adopts it below.
    let a_bar = da.path().join("a-bar.json");
    ok(&["--config", &a, "bar", "publish", "--version", "2026.1", "--out", a_bar.to_str().unwrap()]);
    let a_key = ok(&["--config", &a, "bar", "key"]).trim().to_string();
    set_share_key(&a, "bar_document", a_bar.to_str().unwrap());
    ok(&["--config", &a, "federation", "release", "--days", "100000"]);
    for cfg in [&a, &b] {
        ok(&["--config", cfg, "share", "publish"]);
    }
    let own_a = infected_by_node(&a)["CERT-A"];
    let (_sa, url_a, _) = serve(Some(da.path()), &a, "http");
    let (_sb, url_b, _) = serve(Some(db.path()), &b, "http");
    set_peer_url(&a, &format!("{url_b}/taxii2/api/"));
    set_peer_url(&b, &format!("{url_a}/taxii2/api/"));
    // B adopts A's bar only under A's key, then releases measured against it.
    let b_bar = db.path().join("adopted-bar.json");
    ok(&["--config", &b, "taxii", "pull"]);
    let wrong = run(&["--config", &b, "bar", "adopt", "--from", "cert-a", "--out", b_bar.to_str().unwrap()]);
    assert!(!wrong.status.success(), "adopted without a configured key");
    let t = std::fs::read_to_string(&b)
        .unwrap()
        .replace("password = \"a-at-b\"", &format!("password = \"a-at-b\"\nbar_key = \"{a_key}\""));
    std::fs::write(&b, t).unwrap();
    ok(&["--config", &b, "bar", "adopt", "--from", "cert-a", "--out", b_bar.to_str().unwrap()]);
    set_share_key(&b, "bar_document", b_bar.to_str().unwrap());
    ok(&["--config", &b, "federation", "release", "--days", "100000"]);
    ok(&["--config", &b, "share", "publish"]);
    let own_b = infected_by_node(&b)["CERT-B"];
    assert!(own_a > 100 && own_b > 100, "{own_a} {own_b}");
    // A tampered adopted document is refused, not obeyed.
    let doc = std::fs::read_to_string(&b_bar).unwrap();
    let tampered = db.path().join("tampered.json");
    std::fs::write(&tampered, doc.replace("2026.1", "2026.9")).unwrap();
    let t = std::fs::read_to_string(&b).unwrap().replace(b_bar.to_str().unwrap(), tampered.to_str().unwrap());
    let bad_cfg = db.path().join("tampered.toml");
    std::fs::write(&bad_cfg, t).unwrap();
    assert!(!run(&["--config", bad_cfg.to_str().unwrap(), "federation", "stats"]).status.success());

    // Everything each node sends the other, as the other receives it, through taxii2-client:
    // no RED, no address at home, no subscriber.
    let sent = served_without_private_data(&py, &url_a, "cert-b", "b-at-a", &a);
    served_without_private_data(&py, &url_b, "cert-a", "a-at-b", &b);
    // Infected hosts abroad do go (B is entitled to sightings): a centre sees another
    // country's infected machines.
    assert!(sent.contains("\"observed-data\""));
    // Every object served, federated aggregates and their extension definition among them,
    // passes stix2-validator.
    // (One bundle of both collections: objects both carry, the producer's identity, once.)
    let mut seen = BTreeSet::new();
    let objects: Vec<serde_json::Value> = json_lines(&sent)
        .into_iter()
        .filter_map(|l| l.get("object").cloned())
        .filter(|o| seen.insert((o["id"].to_string(), o["modified"].to_string())))
        .collect();
    assert!(objects.iter().any(|o| o["type"] == "x-botwatch-infection-aggregate"));
    assert!(objects.iter().any(|o| o["type"] == "extension-definition"));
    let served = da.path().join("served.json");
    std::fs::write(
        &served,
        serde_json::json!({"type": "bundle", "id": "bundle--0c7b5e8a-54b4-4a5c-9a57-7d0c1b5c0a01", "objects": objects}).to_string(),
    )
    .unwrap();
    validate(&py, "stix", &served);

    // Each pulls the other (B pulled A once already, for the bar: nothing new since).
    let pa = ok(&["--config", &a, "taxii", "pull", "--json"]);
    assert!(json_lines(&pa).iter().map(|s| s["aggregates"].as_u64().unwrap()).sum::<u64>() > 10, "{pa}");
    let pb = ok(&["--config", &b, "taxii", "pull", "--json"]);
    assert_eq!(json_lines(&pb).iter().map(|s| s["objects"].as_u64().unwrap()).sum::<u64>(), 0, "{pb}");
    // Carriers of both countries, measured against the same signed bar version.
    let carriers =
        json_lines(&ok(&["--config", &a, "federation", "stats", "--carriers", "--format", "jsonl"]));
    let nodes: BTreeSet<&str> = carriers
        .iter()
        .filter(|c| c["bar_version"] == "CERT-A 2026.1")
        .map(|c| c["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, BTreeSet::from(["CERT-A", "cert-b"]), "{carriers:?}");

    // A shared indicator: both nodes saw it, each sees the other's sighting.
    let shared = indicators(&a, None).into_iter().find(|i| i.0 == GREEN_C2).expect("the shared C2");
    for (cfg, other) in [(&a, "cert-b"), (&b, "cert-a")] {
        let s = ok(&["--config", cfg, "share", "sightings", &shared.0, "--format", "jsonl"]);
        let by: BTreeSet<String> =
            json_lines(&s).iter().map(|r| r["by"].as_str().unwrap().to_string()).collect();
        assert!(by.contains("this node") && by.contains(other), "{s}");
    }

    // The global view is the sum of what the nodes published, at both nodes.
    for cfg in [&a, &b] {
        let g = infected_by_node(cfg);
        assert_eq!(g.values().sum::<u64>(), own_a + own_b, "{g:?}");
    }
    // The same through the API and on the Sharing page, as an analyst sees them at A.
    let tok = ok(&["--config", &a, "token", "create", "--name", "sharing test", "--role", "analyst"]);
    let tok = tok.split_whitespace().find(|w| w.starts_with("bw_")).expect("a token").to_string();
    botwatch_notify::webhook::install_crypto_provider();
    let c = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let get_json = |u: String| -> serde_json::Value {
        serde_json::from_str(&c.get(u).bearer_auth(&tok).send().unwrap().text().unwrap()).unwrap()
    };
    let api = get_json(format!("{url_a}/api/v1/federation/stats?by=node"));
    assert_eq!(api["infected"].as_u64(), Some(own_a + own_b), "{api}");
    let partners = get_json(format!("{url_a}/api/v1/partners"));
    let b_row = &partners["items"][0];
    assert_eq!(b_row["name"], "cert-b");
    assert!(b_row["sent"].as_u64().unwrap() > 0 && b_row["received"].as_u64().unwrap() > 0, "{partners}");
    let session = login(&c, &url_a, &tok);
    let page = c.get(format!("{url_a}/sharing")).header("cookie", &session).send().unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().unwrap();
    for want in [
        "Global view",
        "cert-b",
        "CERT-A 2026.1",
        "taxii-get",
        "chart-global-days",
        &format!("{}", own_a + own_b),
    ] {
        assert!(page.contains(want), "the Sharing page lacks {want:?}");
    }

    // A node leaves: its figures go with it.
    ok(&["--config", &a, "federation", "forget", "cert-b"]);
    assert_eq!(infected_by_node(&a).values().sum::<u64>(), own_a);
}

#[test]
fn serve_publishes_the_indicators_collection_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("a.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\npath = \"{}\"\n[server]\nmetrics_access = \"public\"\n[share]\nnode = \"CERT-A\"\ndefault_tlp = \"green\"\n[[partners]]\nname = \"p\"\npassword = \"pw\"\n",
            dir.path().join("a.db").display()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    ok(&["--config", cfg, "ingest", data("abusech/feodo_ipblocklist_2024-04-04.csv").to_str().unwrap()]);
    let (_srv, base, _) = serve(Some(dir.path()), cfg, "http");
    botwatch_notify::webhook::install_crypto_provider();
    let c = reqwest::blocking::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = c
            .get(format!("{base}/taxii2/api/collections/indicators/objects/?match[type]=indicator&limit=5"))
            .basic_auth("p", Some("pw"))
            .header("Accept", "application/taxii+json;version=2.1")
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["content-type"], "application/taxii+json;version=2.1");
        let v: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
        if v["objects"].as_array().is_some_and(|a| a.len() == 5) {
            assert_eq!(v["more"], true);
            assert!(v["objects"].as_array().unwrap().iter().all(|o| o["type"] == "indicator"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "serve did not publish: {v}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // TAXII's media types: another Accept is refused, a POST without the TAXII type too.
    let r = c
        .get(format!("{base}/taxii2/"))
        .basic_auth("p", Some("pw"))
        .header("Accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 406);
    let r = c
        .post(format!("{base}/taxii2/api/collections/inbox/objects/"))
        .basic_auth("p", Some("pw"))
        .header("Content-Type", "application/json")
        .body("{\"objects\":[]}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    // A partner posts to the inbox: accepted with a status resource it can read back.
    let env = serde_json::json!({"objects": [{"type": "indicator", "spec_version": "2.1", "id": "indicator--5f1f3a0e-1d2b-4c3d-9e4f-5a6b7c8d9e0f",
        "created": "2026-12-01T00:00:00.000Z", "modified": "2026-12-01T00:00:00.000Z", "pattern": "[ipv4-addr:value = '198.51.100.9']",
        "pattern_type": "stix", "valid_from": "2026-12-01T00:00:00Z"}, {"no": "id"}]});
    let r = c
        .post(format!("{base}/taxii2/api/collections/inbox/objects/"))
        .basic_auth("p", Some("pw"))
        .header("Accept", "application/taxii+json;version=2.1")
        .header("Content-Type", "application/taxii+json;version=2.1")
        .body(env.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let st: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!((st["success_count"].as_u64(), st["failure_count"].as_u64()), (Some(1), Some(1)), "{st}");
    let again = c
        .get(format!("{base}/taxii2/api/status/{}/", st["id"].as_str().unwrap()))
        .basic_auth("p", Some("pw"))
        .header("Accept", "application/taxii+json;version=2.1")
        .send()
        .unwrap();
    assert_eq!(again.status().as_u16(), 200);
    // The inbox is write-only for the partner.
    let r = c
        .get(format!("{base}/taxii2/api/collections/inbox/objects/"))
        .basic_auth("p", Some("pw"))
        .header("Accept", "application/taxii+json;version=2.1")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Kept counters on /metrics, in the text format Prometheus's own parser reads.
    let metrics = c.get(format!("{base}/metrics")).send().unwrap().text().unwrap();
    for want in [
        "botwatch_taxii_objects_total{partner=\"p\",direction=\"sent\"} 5",
        "botwatch_taxii_objects_total{partner=\"p\",direction=\"received\"} 1",
        "botwatch_share_last_publish_timestamp_seconds ",
    ] {
        assert!(metrics.contains(want), "/metrics lacks {want:?}");
    }
    if let Some(py) = validator_python() {
        let f = dir.path().join("metrics.txt");
        std::fs::write(&f, &metrics).unwrap();
        validate(&py, "prometheus", &f);
    }
    // `taxii pull` takes what was posted through the pipeline, once.
    drop(_srv);
    let pulled = json_lines(&ok(&["--config", cfg, "taxii", "pull", "--json"]));
    assert_eq!(pulled.len(), 1, "{pulled:?}");
    assert_eq!((pulled[0]["partner"].as_str(), pulled[0]["events"].as_u64()), (Some("p"), Some(1)));
    let again = json_lines(&ok(&["--config", cfg, "taxii", "pull", "--json"]));
    assert!(again.is_empty(), "{again:?}");
    let obs = ok(&["--config", cfg, "observations", "--ip", "198.51.100.9", "--format", "jsonl"]);
    assert!(obs.contains("198.51.100.9"), "{obs}");
}

#[test]
fn a_feeds_configured_tlp_decides_for_its_unmarked_data() {
    let dir = tempfile::tempdir().unwrap();
    let write = |feed_tlp: &str| {
        let cfg = dir.path().join("a.toml");
        std::fs::write(
            &cfg,
            format!(
                "[store]\npath = \"{}\"\n[share]\nnode = \"CERT-A\"\ndefault_tlp = \"amber\"\n{feed_tlp}",
                dir.path().join("a.db").display()
            ),
        )
        .unwrap();
        cfg.to_str().unwrap().to_string()
    };
    let cfg = write("");
    ok(&["--config", &cfg, "ingest", data("abusech/feodo_ipblocklist_2024-04-04.csv").to_str().unwrap()]);
    let count = |cfg: &str| {
        let b = ok(&["--config", cfg, "export", "--format", "stix", "--tlp", "green"]);
        b.matches("\"type\":\"indicator\"").count()
    };
    // Unmarked counts as AMBER: nothing for a GREEN recipient.
    assert_eq!(count(&cfg), 0);
    // The public Feodo Tracker list marked CLEAR in the config: its indicators go, as CLEAR.
    let cfg = write("[share.feed_tlp]\n\"abusech_*\" = \"clear\"\n");
    assert!(count(&cfg) > 10);
    let b = ok(&["--config", &cfg, "export", "--format", "stix", "--tlp", "clear"]);
    assert!(b.contains("marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"));
    // A bad level is refused with the entry named.
    let cfg = write("[share.feed_tlp]\n\"abusech_*\" = \"purple\"\n");
    let o = run(&["--config", &cfg, "export", "--format", "stix"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("abusech_*"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
