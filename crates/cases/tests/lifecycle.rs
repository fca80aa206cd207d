//! The case lifecycle over real Shadowserver sinkhole rows, moved through time with a
//! ManualClock: each transition, the notices it queues, and that re-running changes nothing.

mod common;

use botwatch_cases::{CaseEngine, CaseError, CaseQuery, CaseStore, Policy, allowed};
use botwatch_model::{Case, CaseState, ClassificationType, CloseReason, ManualClock, Timestamp};
use botwatch_store::any::AnyStore;
use botwatch_store::outbox::{Channel, Notice, OutboxStore};
use common::*;

const SUB_IP: &str = "35.205.9.10";

fn all_notices(s: &AnyStore) -> Vec<Notice> {
    let mut n = s.notices(None, 10_000).unwrap();
    n.reverse();
    n
}

fn case_of(s: &AnyStore, ip: &str) -> Case {
    let q = CaseQuery { ip: Some(ip.parse().unwrap()), ..Default::default() };
    let mut c = s.cases(&q).unwrap();
    assert_eq!(c.len(), 1, "one case for {ip}");
    c.pop().unwrap()
}

/// Fixture in at 00:10 on the day of the report, first notices out after the delay.
fn notified(policy: Policy) -> (AnyStore, CaseEngine, ManualClock, botwatch_cases::StaticAttributor) {
    let mut s = store();
    let engine = CaseEngine::new(policy).unwrap();
    let clock = ManualClock::new(t("2021-03-04T00:10:00Z"));
    let attr = attributor();
    ingest(&mut s, &fixture("shadowserver/event4_sinkhole.csv"));
    engine.update(&mut s, &attr, &clock, 2).unwrap();
    clock.advance_secs(3600);
    engine.update(&mut s, &attr, &clock, 1000).unwrap();
    (s, engine, clock, attr)
}

#[test]
fn sinkhole_rows_open_cases_and_first_notices_wait_for_the_delay() {
    each_backend("sinkhole_rows_open_cases_and_first_notices_wait_for_the_delay", || {
        let mut s = store();
        let engine = CaseEngine::new(policy()).unwrap();
        let clock = ManualClock::new(t("2021-03-04T00:10:00Z"));
        let attr = attributor();
        let events = fixture("shadowserver/event4_sinkhole.csv");
        assert_eq!(events.len(), 3);
        ingest(&mut s, &events);
        // Batches of 2: the cursor carries the second call on from the first.
        let sum = engine.update(&mut s, &attr, &clock, 2).unwrap();
        assert_eq!((sum.process.events, sum.process.opened, sum.process.notices), (3, 3, 0));
        let cases = s.cases(&CaseQuery::default()).unwrap();
        assert_eq!(cases.len(), 3);
        assert!(cases.iter().all(|c| c.state == CaseState::Detected && c.org.as_deref() == Some("isp-a")));
        let sub = case_of(&s, SUB_IP);
        assert_eq!(sub.subscriber.as_deref(), Some("sub-17"));
        assert!(sub.key.starts_with("sub:sub-17|"), "{}", sub.key);
        let other = case_of(&s, "190.113.1.2");
        assert!(other.key.starts_with("ip:190.113.1.2|"), "{}", other.key);
        assert_eq!(other.first_seen, t("2021-03-04 00:00:00"));
        assert!(all_notices(&s).is_empty());

        clock.advance_secs(59 * 60);
        assert_eq!(engine.tick(&mut s, &attr, &clock).unwrap().notices, 0, "59 minutes: still batching");
        clock.advance_secs(60);
        let tick = engine.tick(&mut s, &attr, &clock).unwrap();
        assert_eq!((tick.transitions, tick.notices), (3, 3));
        let notices = all_notices(&s);
        // Per case: two abuse addresses and the webhook.
        assert_eq!(notices.len(), 9);
        let n = notices.iter().find(|n| n.notice.key == format!("case:{}:first_notice:1", other.id)).unwrap();
        assert_eq!(n.notice.kind, "case_notice");
        assert_eq!((n.notice.channel, n.notice.recipient.as_str()), (Channel::Email, "abuse@isp-a.example"));
        assert_eq!(n.notice.lang, "de");
        assert!(n.notice.message_id.starts_with(&format!("case-{}-1-", other.id)));
        assert!(n.notice.message_id.ends_with("@abuse.test"));
        let p = &n.notice.payload;
        assert_eq!(p["reason"], "first_notice");
        assert_eq!(p["case"]["state"], "notified");
        assert_eq!(p["case"]["id"], other.id);
        assert_eq!(p["org"]["abuse_emails"][1], "noc@isp-a.example");
        assert!(p["subscriber"].is_null());
        let ev = p["evidence"].as_array().unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0]["ip"], "190.113.1.2");
        assert_eq!(ev[0]["port"], 17409);
        assert_eq!(ev[0]["feed"], events[0].feed.id.as_str());
        assert_eq!(ev[0]["classification_type"], "infected-system");
        assert_eq!(ev[0]["destination"], "178.162.1.2:4455");
        assert_eq!(ev[0]["time"], "2021-03-04T00:00:00+00:00");
        let hook: Vec<_> = notices.iter().filter(|n| n.notice.channel == Channel::Webhook).collect();
        assert_eq!(hook.len(), 3);
        assert!(hook.iter().all(|n| n.notice.key.ends_with("/webhook/http://127.0.0.1:9/hook")));

        // Running everything again, and feeding the same report again, adds nothing.
        ingest(&mut s, &events);
        let again = engine.update(&mut s, &attr, &clock, 1000).unwrap();
        assert_eq!((again.process.events, again.tick.notices, again.tick.transitions), (0, 0, 0));
        let direct = s.events(&Default::default()).unwrap();
        let redo = engine.process(&mut s, &direct, &attr, &clock).unwrap();
        assert_eq!((redo.already_processed, redo.attached), (3, 0));
        assert_eq!(all_notices(&s).len(), 9);
        let h = s.case_history(other.id).unwrap();
        let acts: Vec<_> = h.iter().map(|h| h.action.as_str()).collect();
        assert_eq!(acts, ["opened", "notified"]);
        assert_eq!(h[1].at, t("2021-03-04T01:10:00Z"));
    });
}

use botwatch_store::Store;

#[test]
fn subscriber_contact_replaces_the_org_addresses() {
    each_backend("subscriber_contact_replaces_the_org_addresses", || {
        let mut p = policy();
        p.subscriber_contacts.insert("sub-17".into(), "owner@home.example".into());
        let (s, ..) = notified(p);
        let sub = case_of(&s, SUB_IP);
        let n: Vec<_> = all_notices(&s).into_iter().filter(|n| n.notice.case_id == Some(sub.id)).collect();
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].notice.recipient, "owner@home.example");
        assert_eq!(n[0].notice.key, format!("case:{}:first_notice:1", sub.id));
        assert_eq!(n[0].notice.payload["subscriber"], "sub-17");
    });
}

#[test]
fn repeat_evidence_escalates_then_walls_the_garden() {
    each_backend("repeat_evidence_escalates_then_walls_the_garden", || {
        let (mut s, engine, clock, attr) = notified(policy());
        let base = fixture("shadowserver/event4_sinkhole.csv").remove(0);
        let id = case_of(&s, "190.113.1.2").id;
        // Four repeats: below the threshold of five.
        let times: Vec<_> = (1..=4).map(|h| t("2021-03-04T02:00:00Z").saturating_add_secs(h * 60)).collect();
        ingest(&mut s, &again(&base, &times));
        engine.update(&mut s, &attr, &clock, 1000).unwrap();
        assert_eq!(case_of(&s, "190.113.1.2").state, CaseState::Notified);
        ingest(&mut s, &again(&base, &[t("2021-03-04T02:30:00Z")]));
        let sum = engine.update(&mut s, &attr, &clock, 1000).unwrap();
        assert_eq!(sum.process.notices, 1);
        let c = case_of(&s, "190.113.1.2");
        assert_eq!((c.state, c.level, c.evidence, c.evidence_at_notice), (CaseState::Escalated, 1, 6, 6));
        let keys: Vec<_> = all_notices(&s).into_iter().filter(|n| n.notice.case_id == Some(id)).collect();
        let last = keys.last().unwrap();
        assert_eq!(last.notice.payload["reason"], "escalation");
        assert_eq!(last.notice.payload["case"]["state"], "escalated");
        assert!(keys.iter().any(|n| n.notice.key == format!("case:{id}:escalation:2")));
        assert_eq!(last.notice.payload["evidence"].as_array().unwrap().len(), 6);

        let times: Vec<_> = (1..=5).map(|m| t("2021-03-04T03:00:00Z").saturating_add_secs(m * 60)).collect();
        ingest(&mut s, &again(&base, &times));
        engine.update(&mut s, &attr, &clock, 1000).unwrap();
        let c = case_of(&s, "190.113.1.2");
        assert_eq!((c.state, c.level, c.notices), (CaseState::WalledGarden, 2, 3));
        assert!(all_notices(&s).iter().any(|n| n.notice.key == format!("case:{id}:walled_garden:3")));
        // The garden is the top: more evidence neither escalates nor (within a week) re-notifies.
        let times: Vec<_> = (1..=10).map(|m| t("2021-03-04T04:00:00Z").saturating_add_secs(m * 60)).collect();
        ingest(&mut s, &again(&base, &times));
        let sum = engine.update(&mut s, &attr, &clock, 1000).unwrap();
        assert_eq!((sum.process.transitions, sum.process.notices), (0, 0));
        let h: Vec<_> = s.case_history(id).unwrap().into_iter().map(|h| (h.action, h.to, h.level)).collect();
        assert_eq!(
            h,
            [
                ("opened".to_string(), CaseState::Detected, 0),
                ("notified".into(), CaseState::Notified, 0),
                ("escalation".into(), CaseState::Escalated, 1),
                ("walled_garden".into(), CaseState::WalledGarden, 2),
            ]
        );
    });
}

#[test]
fn without_a_walled_garden_escalation_stops_at_max_level() {
    each_backend("without_a_walled_garden_escalation_stops_at_max_level", || {
        let p = Policy { walled_garden_level: 0, max_level: 1, ..policy() };
        let (mut s, engine, clock, attr) = notified(p);
        let base = fixture("shadowserver/event4_sinkhole.csv").remove(0);
        let times: Vec<_> = (1..=12).map(|m| t("2021-03-04T02:00:00Z").saturating_add_secs(m * 60)).collect();
        for chunk in times.chunks(5) {
            ingest(&mut s, &again(&base, chunk));
            engine.update(&mut s, &attr, &clock, 1000).unwrap();
        }
        let c = case_of(&s, "190.113.1.2");
        assert_eq!((c.state, c.level), (CaseState::Escalated, 1));
    });
}

#[test]
fn renotify_and_time_escalation_need_continuing_evidence() {
    each_backend("renotify_and_time_escalation_need_continuing_evidence", || {
        let (mut s, engine, clock, attr) = notified(policy());
        let base = fixture("shadowserver/event4_sinkhole.csv").remove(0);
        let notified_at = t("2021-03-04T01:10:00Z");
        // A week on with no new evidence: no re-notice (maybe it is fixed).
        clock.set(notified_at.saturating_add_secs(7 * 86_400));
        let sum = engine.tick(&mut s, &attr, &clock).unwrap();
        assert_eq!(sum.notices, 0);
        // Seen again on day 8: the re-notice goes out at once (its interval is over).
        ingest(&mut s, &again(&base, &[t("2021-03-12T00:00:00Z")]));
        clock.set(t("2021-03-12T06:00:00Z"));
        let sum = engine.update(&mut s, &attr, &clock, 1000).unwrap();
        assert_eq!(sum.process.notices, 1, "{sum:?}");
        let c = case_of(&s, "190.113.1.2");
        assert_eq!(
            (c.state, c.notices, c.last_notified_at),
            (CaseState::Notified, 2, Some(clock_now(&clock)))
        );
        assert!(all_notices(&s).iter().any(|n| n.notice.key == format!("case:{}:renotify:2", c.id)));
        // Day 14 after the first notice, still seen since: escalation by time (re-notices do
        // not restart that clock).
        clock.set(notified_at.saturating_add_secs(14 * 86_400 - 1));
        assert_eq!(engine.tick(&mut s, &attr, &clock).unwrap().transitions, 0);
        clock.advance_secs(1);
        let sum = engine.tick(&mut s, &attr, &clock).unwrap();
        assert!(sum.transitions >= 1);
        let c = case_of(&s, "190.113.1.2");
        assert_eq!((c.state, c.level), (CaseState::Escalated, 1));
        assert_eq!(c.escalated_at, Some(notified_at.saturating_add_secs(14 * 86_400)));
        // The case of 35.197.11.12 saw nothing after its notice: not escalated.
        assert_eq!(case_of(&s, "35.197.11.12").state, CaseState::Notified);
    });
}

fn clock_now(c: &ManualClock) -> Timestamp {
    botwatch_model::Clock::now(c)
}

#[test]
fn silence_closes_and_a_new_sighting_reopens_the_same_case() {
    each_backend("silence_closes_and_a_new_sighting_reopens_the_same_case", || {
        let (mut s, engine, clock, attr) = notified(policy());
        let base = fixture("shadowserver/event4_sinkhole.csv").remove(0);
        let before = case_of(&s, "190.113.1.2");
        // Last seen 2021-03-04 00:00; thirty days later it closes as silent.
        clock.set(t("2021-04-02T23:59:59Z"));
        assert_eq!(engine.tick(&mut s, &attr, &clock).unwrap().closed, 0);
        clock.set(t("2021-04-03T00:00:00Z"));
        let sum = engine.tick(&mut s, &attr, &clock).unwrap();
        assert_eq!(sum.closed, 3);
        let c = case_of(&s, "190.113.1.2");
        assert_eq!((c.state, c.close_reason), (CaseState::Closed, Some(CloseReason::Silent)));
        // A sighting from before the closure arriving late does not re-open it.
        ingest(&mut s, &again(&base, &[t("2021-04-01T00:00:00Z")]));
        let sum = engine.update(&mut s, &attr, &clock, 1000).unwrap();
        assert_eq!((sum.process.late, sum.process.reopened), (1, 0));
        // A new one does: same id, one re-infection, a fresh episode with notice number 2.
        clock.set(t("2021-04-10T00:00:00Z"));
        ingest(&mut s, &again(&base, &[t("2021-04-09T12:00:00Z")]));
        let sum = engine.update(&mut s, &attr, &clock, 1000).unwrap();
        assert_eq!(sum.process.reopened, 1);
        let c = case_of(&s, "190.113.1.2");
        assert_eq!((c.id, c.state, c.reinfections, c.level), (before.id, CaseState::Detected, 1, 0));
        assert_eq!((c.closed_at, c.close_reason, c.opened_at), (None, None, t("2021-04-10T00:00:00Z")));
        clock.advance_secs(3600);
        engine.tick(&mut s, &attr, &clock).unwrap();
        let c = case_of(&s, "190.113.1.2");
        assert_eq!((c.state, c.notices, c.episode_notices), (CaseState::Notified, 2, 1));
        assert_eq!(c.first_notified_at, before.first_notified_at, "first notice of the case is kept");
        assert!(all_notices(&s).iter().any(|n| n.notice.key == format!("case:{}:first_notice:2", c.id)));
        let acts: Vec<_> = s.case_history(c.id).unwrap().into_iter().map(|h| h.action).collect();
        assert_eq!(acts, ["opened", "notified", "closed", "reopened", "notified"]);
        // Stale evidence (older than the auto-close period) opens nothing new.
        let mut far = base.clone();
        far.source.ip = Some("190.113.1.99".parse().unwrap());
        ingest(&mut s, &again(&far, &[t("2021-01-01T00:00:00Z")]));
        assert_eq!(engine.update(&mut s, &attr, &clock, 1000).unwrap().process.stale, 1);
    });
}

#[test]
fn operators_ack_and_close_with_history() {
    each_backend("operators_ack_and_close_with_history", || {
        let (mut s, engine, clock, _attr) = notified(policy());
        let id = case_of(&s, "190.113.1.2").id;
        let c = engine.ack(&mut s, id, "alice", &clock).unwrap();
        assert_eq!((c.state, c.acknowledged_at), (CaseState::Acknowledged, Some(clock_now(&clock))));
        assert!(matches!(engine.ack(&mut s, id, "alice", &clock), Err(CaseError::Transition { .. })));
        clock.advance_secs(60);
        let c = engine.close(&mut s, id, CloseReason::Remediated, "bob", &clock).unwrap();
        assert_eq!((c.state, c.close_reason), (CaseState::Closed, Some(CloseReason::Remediated)));
        assert!(matches!(
            engine.close(&mut s, id, CloseReason::Dismissed, "bob", &clock),
            Err(CaseError::Transition { .. })
        ));
        assert!(matches!(engine.ack(&mut s, 9999, "x", &clock), Err(CaseError::NotFound(9999))));
        let h = s.case_history(id).unwrap();
        let tail: Vec<_> =
            h[2..].iter().map(|h| (h.actor.as_str(), h.action.as_str(), h.from, h.to)).collect();
        assert_eq!(
            tail,
            [
                ("alice", "acknowledged", Some(CaseState::Notified), CaseState::Acknowledged),
                ("bob", "closed", Some(CaseState::Acknowledged), CaseState::Closed),
            ]
        );
        assert!(h.iter().all(|h| h.from.is_none_or(|f| allowed(f, h.to))));
        assert_eq!(s.case(id).unwrap().unwrap().next_check, None);
    });
}

#[test]
fn no_contact_holds_the_first_notice() {
    each_backend("no_contact_holds_the_first_notice", || {
        let mut s = store();
        let engine = CaseEngine::new(policy()).unwrap();
        let clock = ManualClock::new(t("2021-03-04T00:10:00Z"));
        ingest(&mut s, &fixture("shadowserver/event4_sinkhole.csv"));
        let attr = botwatch_cases::NoAttribution;
        engine.update(&mut s, &attr, &clock, 100).unwrap();
        clock.advance_secs(2 * 3600);
        let sum = engine.update(&mut s, &attr, &clock, 100).unwrap();
        assert_eq!(sum.tick.notices, 0);
        assert!(s.cases(&CaseQuery::default()).unwrap().iter().all(|c| c.state == CaseState::Detected));
        assert!(all_notices(&s).is_empty());
    });
}

#[test]
fn scan_feed_exposures_fail_the_subscriber_bar() {
    each_backend("scan_feed_exposures_fail_the_subscriber_bar", || {
        use botwatch_cases::compliance::{Subject, subscriber_status};
        let (mut s, engine, clock, attr) = notified(policy());
        let mut telnet = fixture("shadowserver/event4_sinkhole.csv").remove(1);
        telnet.classification_type = ClassificationType::VulnerableSystem;
        telnet.classification_identifier = Some("open-telnet".into());
        telnet.source.port = Some(23);
        telnet.malware_name = None;
        ingest(&mut s, &again(&telnet, &[t("2021-03-04T05:00:00Z")]));
        let sum = engine.update(&mut s, &attr, &clock, 1000).unwrap();
        assert_eq!((sum.process.exposures, sum.process.opened), (1, 0));
        let bar = botwatch_cases::Bar::default();
        let st = subscriber_status(&s, &Subject::parse("sub-17"), &bar, clock_now(&clock)).unwrap();
        assert!(!st.meets_bar);
        assert_eq!(st.open_cases.len(), 1);
        assert_eq!(st.exposures.len(), 1);
        assert!(
            st.reasons.iter().any(|r| r == "exposed service: open-telnet on 35.205.9.10:23"),
            "{:?}",
            st.reasons
        );
        // Closed case, exposure out of the window: the bar is met.
        engine.close(&mut s, st.open_cases[0].id, CloseReason::Remediated, "desk", &clock).unwrap();
        clock.set(t("2021-04-10T00:00:00Z"));
        let st = subscriber_status(&s, &Subject::parse(SUB_IP), &bar, clock_now(&clock)).unwrap();
        assert!(st.meets_bar, "{:?}", st.reasons);
        // An address with an open case and no subscriber fails by address.
        let st =
            subscriber_status(&s, &Subject::parse("190.113.1.2"), &bar, t("2021-03-05T00:00:00Z")).unwrap();
        assert!(!st.meets_bar && st.exposures.is_empty());
    });
}

#[test]
fn closing_a_case_cancels_its_notices_still_waiting() {
    each_backend("closing_a_case_cancels_its_notices_still_waiting", || {
        let (mut s, engine, clock, _attr) = notified(policy());
        let id = case_of(&s, "190.113.1.2").id;
        let mine = |s: &AnyStore| -> Vec<Notice> {
            all_notices(s).into_iter().filter(|n| n.notice.case_id == Some(id)).collect()
        };
        assert!(!mine(&s).is_empty(), "the first notice is queued");
        assert!(mine(&s).iter().all(|n| n.status == botwatch_store::outbox::NoticeStatus::Pending));
        engine.close(&mut s, id, CloseReason::Dismissed, "desk", &clock).unwrap();
        let after = mine(&s);
        assert!(
            after.iter().all(|n| n.status == botwatch_store::outbox::NoticeStatus::Cancelled),
            "{after:?}"
        );
        // And the sender sees nothing due for it.
        clock.advance_secs(86_400);
        let due = s.due_notices(clock_now(&clock), 10_000).unwrap();
        assert!(due.iter().all(|n| n.notice.case_id != Some(id)));
        assert_counts_are_a_recount(&s);
    });
}

/// The figures `/metrics` shows (kept up to date as cases and notices change, not counted
/// per scrape) equal a count of the rows.
fn assert_counts_are_a_recount(s: &AnyStore) {
    let cases = s.cases(&CaseQuery { limit: Some(100_000), ..Default::default() }).unwrap();
    let open = cases.iter().filter(|c| c.state != CaseState::Closed).count() as u64;
    assert!(open > 0 && open < cases.len() as u64, "some open, some closed");
    assert_eq!(s.open_case_count().unwrap(), open);
    let mut by_status: std::collections::BTreeMap<String, u64> = Default::default();
    for n in all_notices(s) {
        *by_status.entry(n.status.as_str().to_string()).or_default() += 1;
    }
    assert_eq!(s.notice_counts().unwrap(), by_status.into_iter().collect::<Vec<_>>());
}

#[test]
fn a_subscriber_saying_it_is_clean_acknowledges_but_never_closes() {
    each_backend("a_subscriber_saying_it_is_clean_acknowledges_but_never_closes", || {
        let (mut s, engine, clock, _attr) = notified(policy());
        let id = case_of(&s, "190.113.1.2").id;
        let c = engine.customer_report(&mut s, id, "subscriber", "from the portal", &clock).unwrap();
        assert_eq!((c.state, c.acknowledged_at), (CaseState::Acknowledged, Some(clock_now(&clock))));
        // Said again on an acknowledged case: recorded, the state stays.
        let c = engine.customer_report(&mut s, id, "subscriber", "again", &clock).unwrap();
        assert_eq!(c.state, CaseState::Acknowledged);
        let h = s.case_history(id).unwrap();
        let said: Vec<_> =
            h.iter().filter(|h| h.action == "customer_reported_clean").map(|h| h.detail.as_str()).collect();
        assert_eq!(said, ["from the portal", "again"]);
        engine.close(&mut s, id, CloseReason::Remediated, "desk", &clock).unwrap();
        assert!(matches!(
            engine.customer_report(&mut s, id, "subscriber", "late", &clock),
            Err(CaseError::Transition { .. })
        ));
    });
}

/// Cases in, still within the notify delay: every case detected, nothing queued.
fn detected(policy: Policy) -> (AnyStore, CaseEngine, ManualClock, botwatch_cases::StaticAttributor) {
    let mut s = store();
    let engine = CaseEngine::new(policy).unwrap();
    let clock = ManualClock::new(t("2021-03-04T00:10:00Z"));
    let attr = attributor();
    ingest(&mut s, &fixture("shadowserver/event4_sinkhole.csv"));
    engine.update(&mut s, &attr, &clock, 1000).unwrap();
    assert!(s.cases(&CaseQuery::default()).unwrap().iter().all(|c| c.state == CaseState::Detected));
    (s, engine, clock, attr)
}

fn notices_of(s: &AnyStore, id: i64) -> Vec<Notice> {
    all_notices(s).into_iter().filter(|n| n.notice.case_id == Some(id)).collect()
}

/// Everything a failed desk action must leave as it was.
fn snapshot(s: &AnyStore, id: i64) -> (Case, Option<Timestamp>, usize, usize) {
    let rec = s.case(id).unwrap().unwrap();
    (rec.case, rec.next_check, s.case_history(id).unwrap().len(), notices_of(s, id).len())
}

#[test]
fn notify_now_skips_the_delay_then_reminds_within_the_notice_limit() {
    each_backend("notify_now_skips_the_delay_then_reminds_within_the_notice_limit", || {
        let p = Policy { max_notices: 3, ..policy() };
        let (mut s, engine, clock, attr) = detected(p);
        let id = case_of(&s, "190.113.1.2").id;
        clock.advance_secs(5 * 60);
        let now = clock_now(&clock);
        let c = engine.notify_now(&mut s, &attr, id, "desk", &clock).unwrap();
        assert_eq!(
            (c.state, c.stage_since, c.notices, c.episode_notices),
            (CaseState::Notified, Some(now), 1, 1)
        );
        assert_eq!((c.first_notified_at, c.last_notified_at), (Some(now), Some(now)));
        // One notice per recipient (two abuse addresses and the webhook), under the first-notice key.
        let n = notices_of(&s, id);
        assert_eq!(n.len(), 3);
        assert_eq!(n[0].notice.key, format!("case:{id}:first_notice:1"));
        assert!(n.iter().all(|n| n.notice.payload["reason"] == "first_notice" && n.notice.created_at == now));
        assert!(s.case(id).unwrap().unwrap().next_check.is_some_and(|t| t > now));
        // The others wait for the delay as before; the tick adds nothing to this one.
        assert_eq!(case_of(&s, "35.197.11.12").state, CaseState::Detected);
        clock.set(t("2021-03-04T01:10:00Z"));
        let tick = engine.tick(&mut s, &attr, &clock).unwrap();
        assert_eq!(tick.notices, 2, "only the two cases still detected");
        assert_eq!(notices_of(&s, id).len(), 3);

        // Asked again: a reminder now, never a second first notice, and the stage keeps its start.
        let c = engine.notify_now(&mut s, &attr, id, "desk", &clock).unwrap();
        assert_eq!(
            (c.state, c.stage_since, c.notices, c.episode_notices),
            (CaseState::Notified, Some(now), 2, 2)
        );
        let n = notices_of(&s, id);
        assert_eq!(n.len(), 6);
        assert!(n.iter().any(|n| n.notice.key == format!("case:{id}:renotify:2")));
        engine.notify_now(&mut s, &attr, id, "desk", &clock).unwrap();
        // Three notices this episode: the policy's limit holds for the desk too.
        let before = snapshot(&s, id);
        let err = engine.notify_now(&mut s, &attr, id, "desk", &clock).unwrap_err();
        assert!(matches!(err, CaseError::NoticesExhausted { id: e, max: 3 } if e == id), "{err}");
        assert_eq!(snapshot(&s, id), before, "a refused notice changes nothing");

        let h = s.case_history(id).unwrap();
        let rows: Vec<_> = h
            .iter()
            .map(|h| (h.actor.as_str(), h.action.as_str(), h.from, h.to, h.detail.as_str()))
            .collect();
        assert_eq!(
            rows[1..],
            [
                ("desk", "notified", Some(CaseState::Detected), CaseState::Notified, "by desk"),
                ("desk", "renotified", Some(CaseState::Notified), CaseState::Notified, "by desk"),
                ("desk", "renotified", Some(CaseState::Notified), CaseState::Notified, "by desk"),
            ]
        );
        assert!(h.iter().all(|h| h.from.is_none_or(|f| allowed(f, h.to))));

        engine.close(&mut s, id, CloseReason::Remediated, "desk", &clock).unwrap();
        let before = snapshot(&s, id);
        assert!(matches!(
            engine.notify_now(&mut s, &attr, id, "desk", &clock),
            Err(CaseError::Transition { from: CaseState::Closed, .. })
        ));
        assert_eq!(snapshot(&s, id), before);
        assert!(matches!(
            engine.notify_now(&mut s, &attr, 9999, "x", &clock),
            Err(CaseError::NotFound(9999))
        ));
    });
}

#[test]
fn notify_now_with_nobody_to_tell_changes_nothing() {
    each_backend("notify_now_with_nobody_to_tell_changes_nothing", || {
        let (mut s, engine, clock, _attr) = detected(policy());
        let id = case_of(&s, "190.113.1.2").id;
        let before = snapshot(&s, id);
        let err = engine.notify_now(&mut s, &botwatch_cases::NoAttribution, id, "desk", &clock).unwrap_err();
        assert!(matches!(err, CaseError::NoRecipient(e) if e == id), "{err}");
        assert!(err.to_string().contains("nobody to notify"), "{err}");
        assert_eq!(snapshot(&s, id), before);
        assert!(all_notices(&s).is_empty());
    });
}

#[test]
fn a_case_acknowledged_before_any_notice_gets_a_first_notice_on_request() {
    each_backend("a_case_acknowledged_before_any_notice_gets_a_first_notice_on_request", || {
        let (mut s, engine, clock, attr) = detected(policy());
        let id = case_of(&s, "190.113.1.2").id;
        engine.ack(&mut s, id, "desk", &clock).unwrap();
        let c = engine.notify_now(&mut s, &attr, id, "desk", &clock).unwrap();
        assert_eq!((c.state, c.episode_notices), (CaseState::Acknowledged, 1));
        assert_eq!(notices_of(&s, id)[0].notice.key, format!("case:{id}:first_notice:1"));
        let last = s.case_history(id).unwrap().pop().unwrap();
        assert_eq!((last.action.as_str(), last.to), ("notified", CaseState::Acknowledged));
    });
}

#[test]
fn the_desk_escalates_one_level_at_a_time_up_to_the_walled_garden() {
    each_backend("the_desk_escalates_one_level_at_a_time_up_to_the_walled_garden", || {
        let (mut s, engine, clock, attr) = notified(policy());
        let id = case_of(&s, "190.113.1.2").id;
        clock.advance_secs(600);
        let now = clock_now(&clock);
        let c = engine.escalate(&mut s, &attr, id, "alice", &clock).unwrap();
        assert_eq!(
            (c.state, c.level, c.escalated_at, c.stage_since),
            (CaseState::Escalated, 1, Some(now), Some(now))
        );
        assert_eq!((c.evidence_at_notice, c.notices), (c.evidence, 2));
        let n = notices_of(&s, id);
        assert_eq!(n.len(), 6, "first notice and escalation, three recipients each");
        let esc: Vec<_> = n.iter().filter(|n| n.notice.payload["reason"] == "escalation").collect();
        assert_eq!(esc.len(), 3);
        assert_eq!(esc[0].notice.key, format!("case:{id}:escalation:2"));
        assert_eq!(esc[0].notice.payload["case"]["state"], "escalated");
        // The escalation clock starts again from the desk's action.
        let next = s.case(id).unwrap().unwrap().next_check.unwrap();
        assert!(next > now, "{next:?}");

        clock.advance_secs(60);
        let c = engine.escalate(&mut s, &attr, id, "alice", &clock).unwrap();
        assert_eq!((c.state, c.level, c.notices), (CaseState::WalledGarden, 2, 3));
        assert!(notices_of(&s, id).iter().any(|n| n.notice.key == format!("case:{id}:walled_garden:3")));

        let before = snapshot(&s, id);
        let err = engine.escalate(&mut s, &attr, id, "alice", &clock).unwrap_err();
        assert!(matches!(err, CaseError::AtTopLevel { level: 2, .. }), "{err}");
        assert_eq!(snapshot(&s, id), before, "a refused escalation changes nothing");

        let h = s.case_history(id).unwrap();
        let rows: Vec<_> =
            h[2..].iter().map(|h| (h.actor.as_str(), h.action.as_str(), h.to, h.level)).collect();
        assert_eq!(
            rows,
            [
                ("alice", "escalation", CaseState::Escalated, 1),
                ("alice", "walled_garden", CaseState::WalledGarden, 2)
            ]
        );
        assert!(h[2..].iter().all(|h| h.detail == "by alice"));
        assert!(h.iter().all(|h| h.from.is_none_or(|f| allowed(f, h.to))));

        // Neither a closed case nor one never notified escalates.
        engine.close(&mut s, id, CloseReason::Remediated, "alice", &clock).unwrap();
        let before = snapshot(&s, id);
        assert!(matches!(
            engine.escalate(&mut s, &attr, id, "alice", &clock),
            Err(CaseError::Transition { from: CaseState::Closed, to: CaseState::Escalated, .. })
        ));
        assert_eq!(snapshot(&s, id), before);
        let (mut s, engine, clock, attr) = detected(policy());
        let id = case_of(&s, "190.113.1.2").id;
        let before = snapshot(&s, id);
        assert!(matches!(
            engine.escalate(&mut s, &attr, id, "alice", &clock),
            Err(CaseError::Transition { from: CaseState::Detected, .. })
        ));
        assert_eq!(snapshot(&s, id), before);
    });
}

#[test]
fn desk_escalation_stops_at_max_level_and_sends_nothing_past_the_notice_limit() {
    each_backend("desk_escalation_stops_at_max_level_and_sends_nothing_past_the_notice_limit", || {
        let p = Policy { walled_garden_level: 0, max_level: 1, max_notices: 1, ..policy() };
        let (mut s, engine, clock, attr) = notified(p);
        let id = case_of(&s, "190.113.1.2").id;
        let c = engine.escalate(&mut s, &attr, id, "alice", &clock).unwrap();
        assert_eq!(
            (c.state, c.level, c.notices),
            (CaseState::Escalated, 1, 1),
            "the limit was the first notice"
        );
        assert_eq!(notices_of(&s, id).len(), 3);
        assert!(matches!(
            engine.escalate(&mut s, &attr, id, "alice", &clock),
            Err(CaseError::AtTopLevel { level: 1, .. })
        ));
        // Nobody to tell does not stop an escalation either (a desk acked a detected case).
        let (mut s, engine, clock, _attr) = detected(policy());
        let id = case_of(&s, "190.113.1.2").id;
        engine.ack(&mut s, id, "desk", &clock).unwrap();
        let c = engine.escalate(&mut s, &botwatch_cases::NoAttribution, id, "desk", &clock).unwrap();
        assert_eq!((c.state, c.level, c.notices), (CaseState::Escalated, 1, 0));
        assert!(all_notices(&s).is_empty());
    });
}

#[test]
fn update_reports_its_progress_batch_by_batch() {
    each_backend("update_reports_its_progress_batch_by_batch", || {
        let mut s = store();
        let engine = CaseEngine::new(policy()).unwrap();
        let clock = ManualClock::new(t("2021-03-04T00:10:00Z"));
        let attr = attributor();
        ingest(&mut s, &fixture("shadowserver/event4_sinkhole.csv"));
        let mut seen = Vec::new();
        engine.update_with_progress(&mut s, &attr, &clock, 2, &mut |p| seen.push((p.done, p.total))).unwrap();
        // Known up front, then after each batch of 2 of the 3 events.
        assert_eq!(seen, [(0, 3), (2, 3), (3, 3)]);
        // Nothing new: one report of no work ahead.
        seen.clear();
        engine.update_with_progress(&mut s, &attr, &clock, 2, &mut |p| seen.push((p.done, p.total))).unwrap();
        assert_eq!(seen, [(0, 0)]);
    });
}
