//! Compliance figures on a scenario computed by hand (see the comments for the arithmetic).

mod common;

use botwatch_cases::compliance::{Spread, compliance, org_report};
use botwatch_cases::{Bar, OrgInfo, StaticAttributor};
use botwatch_model::{Case, CaseState, CloseReason, Timestamp};
use botwatch_store::any::AnyStore;
use botwatch_store::cases::{CaseRecord, CaseStore};
use common::{each_backend, store, t};

fn case(id: i64, org: Option<&str>, first_seen: Timestamp) -> Case {
    let mut c =
        Case::new(id, format!("ip:192.0.2.{id}|mirai"), "mirai".into(), "infected-system".into(), first_seen);
    c.org = org.map(str::to_string);
    c.evidence = 1;
    c
}

fn notified(mut c: Case, after_hours: i64) -> Case {
    c.state = CaseState::Notified;
    let at = c.first_seen.saturating_add_secs(after_hours * 3600);
    c.first_notified_at = Some(at);
    c.first_sent_at = Some(at);
    c.notices = 1;
    c.notices_sent = 1;
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
    each_backend("per_org_figures_and_the_bar_match_the_hand_computation", || {
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
        let report = compliance(&cases, &attr, &Bar::recommended(), now);
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
        let lax = Bar {
            max_reinfection_rate: Some(0.3),
            min_share_notified_within: Some(0.6),
            ..Bar::recommended()
        };
        assert!(compliance(&cases, &attr, &lax, now)[0].meets_bar);
        let json = serde_json::to_value(&report[0]).unwrap();
        assert_eq!(json["hours_to_first_notice"]["p90"], 72.0);

        // From a store, which reads only the figures of each case: the same report.
        let mut store = store();
        let before = store.cases_generation().unwrap();
        // Notified means delivered: the store reads it from the outbox, so each notified case
        // gets its notice queued, claimed, sent and accepted at the hour the scenario says
        // (before the cases are saved: saving a closed case cancels what is still queued).
        for c in cases.iter().filter(|c| c.first_sent_at.is_some()) {
            deliver(&mut store, c.id, c.first_sent_at.unwrap());
        }
        assert_ne!(store.cases_generation().unwrap(), before, "a delivery changes the generation");
        let mut tx = store.case_tx().unwrap();
        for c in &cases {
            let next_check = c.state.is_open().then_some(now);
            tx.save(&CaseRecord { case: c.clone(), recent: vec![], next_check }).unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(org_report(&store, &attr, &Bar::recommended(), now).unwrap(), report);
    });
}

fn enqueue(store: &mut AnyStore, case_id: i64, at: Timestamp) -> i64 {
    use botwatch_store::outbox::{Channel, NewNotice, OutboxStore};
    let key = format!("case:{case_id}:notice:1");
    store
        .enqueue(&[NewNotice {
            key: key.clone(),
            message_id: format!("{key}@bw.test"),
            kind: "case_notice".into(),
            channel: Channel::Email,
            recipient: "abuse@isp-a.example".into(),
            lang: "en".into(),
            org: None,
            case_id: Some(case_id),
            payload: serde_json::json!({}),
            created_at: at,
            due_at: at,
        }])
        .unwrap();
    store.notice_by_message_id(&format!("{key}@bw.test")).unwrap().unwrap().id
}

fn deliver(store: &mut AnyStore, case_id: i64, at: Timestamp) {
    use botwatch_store::outbox::{OutboxStore, SendCheck};
    let id = enqueue(store, case_id, at);
    let got = store.claim_due(at, 1_000, "test", at.saturating_add_secs(60)).unwrap();
    assert!(got.iter().any(|n| n.id == id));
    assert_eq!(store.start_sending(id, "test", at, at.saturating_add_secs(60)).unwrap(), SendCheck::Go);
    assert!(store.mark_sent(id, "test", at).unwrap());
    for n in got.iter().filter(|n| n.id != id) {
        store.release(n.id, "test").unwrap();
    }
}

/// Issue 11 (1): a notice waiting in the outbox is queued, never "notified"; only a
/// transport's acceptance makes the case notified and stops the clock.
#[test]
fn issue_11_a_queued_notice_is_not_a_notified_case() {
    each_backend("issue_11_a_queued_notice_is_not_a_notified_case", || {
        use botwatch_cases::Verdict;
        let t0 = t("2021-03-01T00:00:00Z");
        let now = t0.saturating_add_secs(5 * 86_400);
        let mut store = store();
        let mut c = case(1, Some("isp-a"), t0);
        // The engine queued the notice an hour after first evidence.
        c.state = CaseState::Notified;
        c.first_notified_at = Some(t0.saturating_add_secs(3600));
        c.notices = 1;
        let mut tx = store.case_tx().unwrap();
        tx.save(&CaseRecord { case: c, recent: vec![], next_check: Some(now) }).unwrap();
        tx.commit().unwrap();
        enqueue(&mut store, 1, t0.saturating_add_secs(3600));
        let attr = StaticAttributor::default();
        let r = &org_report(&store, &attr, &Bar::recommended(), now).unwrap()[0];
        assert_eq!((r.notified_cases, r.queued_cases), (0, 1));
        assert_eq!(r.hours_to_first_notice.median, None);
        assert_eq!(r.share_notified_within, Some(0.0), "five days on and nothing delivered");
        assert_eq!(r.verdict, Verdict::Fail);
        let shown = store.case(1).unwrap().unwrap().case;
        assert_eq!((shown.notices, shown.notices_sent, shown.first_sent_at), (1, 0, None));

        // Delivered on day 3: notified, 72 hours after first evidence (not the 1 hour of queueing).
        let id = store.notice_by_message_id("case:1:notice:1@bw.test").unwrap().unwrap().id;
        let sent = t0.saturating_add_secs(72 * 3600);
        use botwatch_store::outbox::OutboxStore;
        store.claim_due(sent, 10, "r", sent.saturating_add_secs(60)).unwrap();
        store.start_sending(id, "r", sent, sent.saturating_add_secs(60)).unwrap();
        assert!(store.mark_sent(id, "r", sent).unwrap());
        let r = &org_report(&store, &attr, &Bar::recommended(), now).unwrap()[0];
        assert_eq!((r.notified_cases, r.queued_cases), (1, 0));
        assert_eq!(r.hours_to_first_notice.median, Some(72.0));
        let shown = store.case(1).unwrap().unwrap().case;
        assert_eq!((shown.notices_sent, shown.first_sent_at), (1, Some(sent)));
    });
}

/// Issue 11 (2): no bar configured is "no bar configured", never a pass; a threshold that
/// cannot be measured is "not measured", never a pass.
#[test]
fn issue_11_a_missing_setting_is_not_a_pass() {
    each_backend("issue_11_a_missing_setting_is_not_a_pass", || {
        use botwatch_cases::Verdict;
        let t0 = t("2021-03-01T00:00:00Z");
        let now = t0.saturating_add_secs(86_400);
        let mut c = notified(case(1, Some("isp-a"), t0), 1);
        c.state = CaseState::Notified;
        let attr = StaticAttributor::default();
        let none = &compliance(std::slice::from_ref(&c), &attr, &Bar::default(), now)[0];
        assert_eq!((none.verdict, none.meets_bar), (Verdict::NoBar, false));
        // Per-1,000 is a threshold, but no subscriber count is known for isp-a.
        let per_k = Bar { max_infections_per_1000: Some(5.0), ..Bar::default() };
        let r = &compliance(std::slice::from_ref(&c), &attr, &per_k, now)[0];
        assert_eq!((r.verdict, r.meets_bar), (Verdict::NotMeasured, false));
        assert!(r.unmeasured[0].contains("subscriber count is not configured"), "{:?}", r.unmeasured);
    });
}
