//! Compliance figures on a scenario computed by hand (see the comments for the arithmetic).

mod common;

use botwatch_cases::compliance::{Spread, compliance, org_report};
use botwatch_cases::{Bar, OrgInfo, StaticAttributor};
use botwatch_model::{Case, CaseState, CloseReason, Timestamp};
use botwatch_store::cases::{CaseRecord, CaseStore};
use botwatch_store::sqlite::SqliteStore;
use common::t;

fn case(id: i64, org: Option<&str>, first_seen: Timestamp) -> Case {
    let mut c =
        Case::new(id, format!("ip:192.0.2.{id}|mirai"), "mirai".into(), "infected-system".into(), first_seen);
    c.org = org.map(str::to_string);
    c.evidence = 1;
    c
}

fn notified(mut c: Case, after_hours: i64) -> Case {
    c.state = CaseState::Notified;
    c.first_notified_at = Some(c.first_seen.saturating_add_secs(after_hours * 3600));
    c.notices = 1;
    c
}

fn closed(mut c: Case, after_days: i64, why: CloseReason) -> Case {
    c.state = CaseState::Closed;
    c.closed_at = Some(c.first_seen.saturating_add_secs(after_days * 86_400));
    c.close_reason = Some(why);
    c
}

#[test]
fn per_org_figures_and_the_bar_match_the_hand_computation() {
    let t0 = t("2021-03-01T00:00:00Z");
    let now = t0.saturating_add_secs(40 * 86_400);
    let a = Some("isp-a");
    let mut reinfected = notified(case(2, a, t0), 6);
    reinfected.reinfections = 1;
    let cases = vec![
        closed(notified(case(1, a, t0), 2), 5, CloseReason::Remediated),
        reinfected,
        closed(notified(case(3, a, t0), 72), 31, CloseReason::Silent),
        // First seen a day ago, not notified yet: not counted in "notified within 2 days".
        case(4, a, t0.saturating_add_secs(39 * 86_400)),
        // A false positive counts for nothing.
        closed(notified(case(5, a, t0), 400), 1, CloseReason::Dismissed),
        case(6, Some("isp-b"), t0),
        closed(notified(case(7, None, t0), 1), 10, CloseReason::Remediated),
    ];
    let mut attr = StaticAttributor::default();
    attr.add_org(OrgInfo {
        id: "isp-a".into(),
        name: "ISP A".into(),
        abuse_emails: vec![],
        webhook: None,
        lang: "en".into(),
        tz_offset_minutes: 0,
        subscribers: Some(2000),
    });
    let report = compliance(&cases, &attr, &Bar::default(), now);
    let orgs: Vec<_> = report.iter().map(|o| o.org.as_deref()).collect();
    assert_eq!(orgs, [Some("isp-a"), Some("isp-b"), None]);

    let a = &report[0];
    assert_eq!(a.name.as_deref(), Some("ISP A"));
    assert_eq!((a.cases, a.open_cases, a.closed_cases, a.notified_cases), (4, 2, 2, 3));
    // Hours to first notice 2, 6, 72: median 6; p90 is rank ⌈0.9·3⌉ = 3 → 72.
    assert_eq!(a.hours_to_first_notice, Spread { median: Some(6.0), p90: Some(72.0) });
    // Days to close 5 and 31: median 18.
    assert_eq!(a.days_to_close.median, Some(18.0));
    // Eligible 1, 2, 3 (case 4 is a day old); within two days: 1 and 2.
    assert_eq!(a.share_notified_within, Some(2.0 / 3.0));
    // One re-opened case of four.
    assert_eq!(a.reinfection_rate, Some(0.25));
    // Two open cases per 2,000 subscribers.
    assert_eq!(a.infections_per_1000, Some(1.0));
    assert!(!a.meets_bar);
    assert_eq!(
        a.reasons,
        ["re-infection rate 0.25 is above 0.2", "share notified within 2 days 0.67 is below 0.9"]
    );

    let b = &report[1];
    assert_eq!(
        (b.share_notified_within, b.infections_per_1000, b.hours_to_first_notice.median),
        (Some(0.0), None, None)
    );
    assert!(!b.meets_bar);

    let none = &report[2];
    assert_eq!((none.cases, none.days_to_close.median), (1, Some(10.0)));
    assert!(none.meets_bar, "{:?}", none.reasons);

    // A laxer bar passes ISP A.
    let lax = Bar { max_reinfection_rate: Some(0.3), min_share_notified_within: Some(0.6), ..Bar::default() };
    assert!(compliance(&cases, &attr, &lax, now)[0].meets_bar);
    let json = serde_json::to_value(&report[0]).unwrap();
    assert_eq!(json["hours_to_first_notice"]["p90"], 72.0);

    // From a store, which reads only the figures of each case: the same report.
    let mut store = SqliteStore::open_in_memory(Default::default()).unwrap();
    let before = store.cases_generation().unwrap();
    let mut tx = store.case_tx().unwrap();
    for c in &cases {
        let next_check = c.state.is_open().then_some(now);
        tx.save(&CaseRecord { case: c.clone(), recent: vec![], next_check }).unwrap();
    }
    tx.commit().unwrap();
    assert_eq!(org_report(&store, &attr, &Bar::default(), now).unwrap(), report);
    assert_ne!(store.cases_generation().unwrap(), before);
}
