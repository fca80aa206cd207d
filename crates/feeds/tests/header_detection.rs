//! Issue 11: a Shadowserver report whose file name does not say its type is recognised from
//! its header (and first row) alone, as the same type its name would give: a 2021-layout
//! `event4_sinkhole` report was taken for `event4_honeypot_darknet` (classification `other`,
//! so no case opened).

use botwatch_feeds::shadowserver::builtin_schema;
use std::path::Path;

fn header_and_row(text: &str) -> (Vec<String>, Option<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut recs = r.records();
    let h: Vec<String> = recs
        .next()
        .unwrap()
        .unwrap()
        .iter()
        .map(|s| s.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    let row = recs.next().and_then(Result::ok).map(|r| r.iter().map(str::to_string).collect());
    (h, row)
}

#[test]
fn every_shadowserver_fixture_is_recognised_by_its_header() {
    let schema = builtin_schema();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/shadowserver");
    let mut wrong = Vec::new();
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.ends_with(".csv") {
            continue;
        }
        let Some(by_name) = schema.type_from_file_name(&name) else { continue };
        let text = std::fs::read_to_string(e.path()).unwrap();
        let (h, row) = header_and_row(&text);
        let by_header = schema.type_from_header(&h, row.as_deref());
        n += 1;
        // Report types with the very same columns cannot be told apart by header; what
        // matters is that the guess classifies like the real type.
        let same = by_header.as_ref().is_some_and(|r| {
            r.file_name == by_name.file_name
                || (r.default_type == by_name.default_type && r.documented == by_name.documented)
        });
        if !same {
            wrong.push(format!(
                "{name}: {} by name, {:?} by header",
                by_name.file_name,
                by_header.map(|r| r.file_name.clone())
            ));
        }
    }
    assert!(n >= 10, "{n}");
    assert!(wrong.is_empty(), "{wrong:#?}");
}
