//! Random interleavings of new evidence, repeated `process`/`tick` runs, clock moves and
//! operator actions (ack, close, notify now, escalate): one notice per key and per notice
//! number, never more than the policy's notices per episode, never a notice for a case that
//! was closed when it was queued, and states only move along allowed edges.

mod common;

use botwatch_cases::{CaseEngine, CaseQuery, CaseStore, Policy, allowed};
use botwatch_model::{CaseState, CloseReason, Event, ManualClock, Timestamp};
use botwatch_store::outbox::OutboxStore;
use common::*;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone)]
enum Op {
    /// Sightings of host `h` (0..4) at `minutes` before now.
    See(usize, u8, u32),
    Advance(u32),
    Update,
    Tick,
    /// Re-process the last 20 stored events directly (already processed: no-ops).
    Replay,
    Ack(usize),
    Close(usize),
    NotifyNow(usize),
    Escalate(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, 1..8u8, 0..600u32).prop_map(|(h, n, m)| Op::See(h, n, m)),
        3 => prop_oneof![Just(30u32), Just(61), Just(6 * 60), Just(24 * 60), Just(8 * 1440), Just(15 * 1440), Just(31 * 1440)]
            .prop_map(Op::Advance),
        3 => Just(Op::Update),
        2 => Just(Op::Tick),
        1 => Just(Op::Replay),
        1 => (0..4usize).prop_map(Op::Ack),
        1 => (0..4usize).prop_map(Op::Close),
        1 => (0..4usize).prop_map(Op::NotifyNow),
        1 => (0..4usize).prop_map(Op::Escalate),
    ]
}

fn hosts() -> Vec<Event> {
    let mut base = fixture("shadowserver/event4_sinkhole.csv");
    // A fourth host: same row, another address in an attributed AS.
    let mut extra = base[0].clone();
    extra.source.ip = Some("190.113.1.77".parse().unwrap());
    base.push(extra);
    base
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn notices_once_per_key_and_only_allowed_edges(ops in proptest::collection::vec(op(), 1..40)) {
        let hosts = hosts();
        let mut s = store();
        let policy = Policy { escalate_after_repeats: 6, ..policy() };
        let engine = CaseEngine::new(policy).unwrap();
        let clock = ManualClock::new(t("2021-03-04T00:10:00Z"));
        let attr = attributor();
        let mut seq = 0i64;
        for op in &ops {
            let now = botwatch_model::Clock::now(&clock);
            match *op {
                Op::See(h, n, m) => {
                    let times: Vec<Timestamp> = (0..n as i64)
                        .map(|_| { seq += 1; Timestamp(now.0 - m as i64 * 60_000_000 + seq) })
                        .collect();
                    ingest(&mut s, &again(&hosts[h], &times));
                }
                Op::Advance(m) => clock.advance_secs(m as i64 * 60),
                Op::Update => { engine.update(&mut s, &attr, &clock, 7).unwrap(); }
                Op::Tick => { engine.tick(&mut s, &attr, &clock).unwrap(); }
                Op::Replay => {
                    let evs = botwatch_store::Store::events(&s, &Default::default()).unwrap();
                    let cursor = s.case_cursor().unwrap();
                    let done: Vec<_> = evs.into_iter().filter(|e| e.id <= cursor).collect();
                    let tail = &done[done.len().saturating_sub(20)..];
                    let sum = engine.process(&mut s, tail, &attr, &clock).unwrap();
                    prop_assert_eq!(sum.attached, 0);
                }
                Op::Ack(i) | Op::Close(i) | Op::NotifyNow(i) | Op::Escalate(i) => {
                    let cases = s.cases(&CaseQuery::default()).unwrap();
                    if let Some(c) = cases.get(i) {
                        let r = match op {
                            Op::Ack(_) => engine.ack(&mut s, c.id, "op", &clock).map(|_| ()),
                            Op::NotifyNow(_) => {
                                engine.notify_now(&mut s, &attr, c.id, "op", &clock).map(|_| ())
                            }
                            Op::Escalate(_) => {
                                engine.escalate(&mut s, &attr, c.id, "op", &clock).map(|_| ())
                            }
                            _ => engine.close(&mut s, c.id, CloseReason::Remediated, "op", &clock).map(|_| ()),
                        };
                        // Refused moves are errors, never silent changes.
                        if r.is_err() {
                            prop_assert_eq!(&s.cases(&CaseQuery::default()).unwrap()[i], c);
                        }
                    }
                }
            }
        }
        engine.update(&mut s, &attr, &clock, 1000).unwrap();

        let notices = s.notices(None, 1_000_000).unwrap();
        let cases: HashMap<i64, _> =
            s.cases(&CaseQuery::default()).unwrap().into_iter().map(|c| (c.id, c)).collect();
        let mut numbers: HashMap<i64, HashSet<u64>> = HashMap::new();
        let mut keys = HashSet::new();
        for n in &notices {
            prop_assert!(keys.insert(n.notice.key.clone()), "duplicate key {}", n.notice.key);
            let state = n.notice.payload["case"]["state"].as_str().unwrap();
            prop_assert_ne!(state, "closed", "notice {} for a closed case", n.notice.key);
            prop_assert_ne!(state, "detected");
            if n.notice.key.contains('/') {
                continue; // the same notice to a further address or the webhook
            }
            let parts: Vec<&str> = n.notice.key.split(':').collect();
            prop_assert_eq!(parts.len(), 4);
            let id: i64 = parts[1].parse().unwrap();
            prop_assert_eq!(Some(id), n.notice.case_id);
            prop_assert_eq!(parts[2], n.notice.payload["reason"].as_str().unwrap());
            let num: u64 = parts[3].parse().unwrap();
            prop_assert!(numbers.entry(id).or_default().insert(num), "notice number {} twice for case {}", num, id);
            prop_assert_eq!(n.notice.payload["case"]["notices"].as_u64(), Some(num));
        }
        for (id, c) in &cases {
            // Every notice the case counted is in the outbox, numbered 1..=notices.
            let got = numbers.get(id).cloned().unwrap_or_default();
            let want: HashSet<u64> = (1..=c.notices as u64).collect();
            prop_assert_eq!(got, want, "case {}", id);
            prop_assert!(c.episode_notices <= engine.policy().max_notices, "case {}", id);
            let h = s.case_history(*id).unwrap();
            prop_assert_eq!(h[0].action.as_str(), "opened");
            let mut state = CaseState::Detected;
            for e in &h[1..] {
                prop_assert_eq!(e.from, Some(state), "history of case {} is not a chain", id);
                prop_assert!(allowed(state, e.to), "{:?} -> {:?}", state, e.to);
                state = e.to;
            }
            prop_assert_eq!(state, c.state);
            prop_assert_eq!(c.state == CaseState::Closed, s.case(*id).unwrap().unwrap().next_check.is_none());
        }
    }
}
