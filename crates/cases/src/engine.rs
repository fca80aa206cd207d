//! The case state machine.
//!
//! ```text
//!            evidence                 delay over             repeat evidence ≥ N, or
//!  (none) ───────────▶ detected ───────────────▶ notified ──▶ still seen D days on ──▶ escalated ──▶ … ──▶ walled_garden
//!                         │  ▲                     │   ▲ ack                               │ ack
//!                         │  │ new evidence        ▼   └──── acknowledged ◀────────────────┘
//!                         ▼  │ (re-infection)            (escalates again if evidence goes on)
//!                        closed ◀── silent Q days · remediated · dismissed (from any open state)
//! ```
//!
//! The desk moves cases by hand too: `ack`, `close`, `notify_now` (no batching delay or
//! re-notify interval, but the per-episode notice limit holds) and `escalate` (one level,
//! through the same code as escalation by evidence or time).
//!
//! Every change appends a history row, and every notice it causes is enqueued in the same
//! transaction. A notice's idempotency key carries the case's lifetime notice number, which
//! only grows, so re-running `process` or `tick` can never enqueue a notice twice and a
//! re-opened case never collides with its earlier notices.

use crate::attribution::{Attributor, OrgInfo, SubscriberHit};
use crate::policy::Policy;
use crate::{CaseError, Result};
use botwatch_model::{Case, CaseState, ClassificationType, Clock, CloseReason, Timestamp};
use botwatch_store::cases::{CaseRecord, CaseStore, Evidence, Exposure, HistoryEntry};
use botwatch_store::outbox::{Channel, NewNotice};
use botwatch_store::{EventQuery, Store, StoredEvent};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

const ENGINE: &str = "engine";

/// Whether a case may move from `from` to `to` (self-moves are level changes or
/// re-notices and are always allowed).
pub fn allowed(from: CaseState, to: CaseState) -> bool {
    use CaseState::*;
    from == to
        || matches!(
            (from, to),
            (Detected, Notified | Acknowledged | Closed)
                | (Notified, Acknowledged | Escalated | WalledGarden | Closed)
                | (Acknowledged, Escalated | WalledGarden | Closed)
                | (Escalated, Acknowledged | WalledGarden | Closed)
                | (WalledGarden, Closed)
                | (Closed, Detected)
        )
}

/// What one `process` call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ProcessSummary {
    /// Events newer than the cursor.
    pub events: u64,
    /// Events at or before the cursor: processed by an earlier call.
    pub already_processed: u64,
    /// Types that open no case, or no source address.
    pub ignored: u64,
    /// Source addresses that belong to nobody (documentation, loopback, multicast, …,
    /// see [`is_special`]): never a case, whatever a feed says.
    pub special: u64,
    /// Too old to open or re-open a case (older than the auto-close period).
    pub stale: u64,
    /// Older than the closure of their (closed) case.
    pub late: u64,
    pub opened: u64,
    pub reopened: u64,
    pub attached: u64,
    pub exposures: u64,
    pub transitions: u64,
    pub notices: u64,
}

/// What one `tick` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TickSummary {
    pub examined: u64,
    pub transitions: u64,
    pub notices: u64,
    pub closed: u64,
}

/// How far an update got, in event ids: `done` of `total` (the span from the cursor at the
/// start to the newest event; an estimate of events, exact while none were deleted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateProgress {
    pub done: u64,
    pub total: u64,
}

/// `process` over every new stored event, then `tick`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpdateSummary {
    pub process: ProcessSummary,
    pub tick: TickSummary,
}

impl std::ops::AddAssign for ProcessSummary {
    fn add_assign(&mut self, o: Self) {
        // Destructured, so a field added later cannot be left out of the sum (`special`
        // once was, and `cases update` reported 0 special addresses over several batches).
        let ProcessSummary {
            events,
            already_processed,
            ignored,
            special,
            stale,
            late,
            opened,
            reopened,
            attached,
            exposures,
            transitions,
            notices,
        } = o;
        self.events += events;
        self.already_processed += already_processed;
        self.ignored += ignored;
        self.special += special;
        self.stale += stale;
        self.late += late;
        self.opened += opened;
        self.reopened += reopened;
        self.attached += attached;
        self.exposures += exposures;
        self.transitions += transitions;
        self.notices += notices;
    }
}

/// Decisions collected during one transaction.
#[derive(Default)]
struct Out {
    history: Vec<HistoryEntry>,
    notices: Vec<NewNotice>,
    transitions: u64,
    notice_count: u64,
    closed: u64,
}

struct Sighting {
    key: String,
    event_id: i64,
    time: Timestamp,
    ip: std::net::IpAddr,
    subscriber: Option<String>,
    org: Option<String>,
    ty: ClassificationType,
    threat: String,
    evidence: Evidence,
}

/// Applies a [`Policy`]; holds no state between calls (everything is in the store).
#[derive(Debug, Clone)]
pub struct CaseEngine {
    policy: Policy,
}

impl CaseEngine {
    pub fn new(policy: Policy) -> Result<Self> {
        policy.validate().map_err(CaseError::Policy)?;
        Ok(CaseEngine { policy })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Attaches a batch of stored events to cases: opens, re-opens and updates cases,
    /// records exposures from scan feeds, applies any transition that became due, and moves
    /// the cursor past the batch — all in one transaction. Events at or before the cursor
    /// are skipped, so calling it again with the same events changes nothing.
    pub fn process(
        &self,
        store: &mut dyn CaseStore,
        events: &[StoredEvent],
        attributor: &dyn Attributor,
        clock: &dyn Clock,
    ) -> Result<ProcessSummary> {
        let now = clock.now();
        let mut sum = ProcessSummary::default();
        let mut tx = store.case_tx()?;
        let cursor = tx.cursor()?;
        let mut max_id = cursor;
        let mut sightings = Vec::new();
        let mut exposures = Vec::new();
        for se in events {
            if se.id <= cursor {
                sum.already_processed += 1;
                continue;
            }
            sum.events += 1;
            max_id = max_id.max(se.id);
            let e = &se.event;
            let Some(ip) = e.source.ip else {
                sum.ignored += 1;
                continue;
            };
            if is_special(ip) {
                sum.special += 1;
                continue;
            }
            let time = e.time_source.unwrap_or(e.time_observation);
            let ty = e.classification_type;
            let vulnerable = ty.taxonomy() == "vulnerable";
            if !vulnerable && !self.policy.opens(ty) {
                sum.ignored += 1;
                continue;
            }
            let subscriber = match attributor.subscriber(ip, e.source.port, time) {
                SubscriberHit::Exact(s) => Some(s),
                SubscriberHit::Ambiguous(_) | SubscriberHit::NotFound => None,
            };
            let org = attributor.org(ip, e.source.asn).map(|o| o.id);
            if vulnerable {
                exposures.push(Exposure {
                    event_id: se.id,
                    time,
                    ip,
                    port: e.source.port,
                    subscriber,
                    org,
                    classification_type: ty.as_str().to_string(),
                    identifier: e.classification_identifier.as_ref().map(|s| s.to_string()),
                });
                continue;
            }
            let threat = match &e.malware_name {
                Some(m) if !m.is_empty() => m.to_string(),
                _ => ty.as_str().to_string(),
            };
            let key = match &subscriber {
                Some(s) => format!("sub:{s}|{threat}"),
                None => format!("ip:{ip}|{threat}"),
            };
            let destination = e
                .destination
                .ip
                .map(|d| match e.destination.port {
                    Some(p) => std::net::SocketAddr::new(d, p).to_string(),
                    None => d.to_string(),
                })
                .or_else(|| e.destination.fqdn.as_ref().map(|f| f.to_string()));
            let evidence = Evidence {
                event_id: se.id,
                time,
                feed: e.feed.id.to_string(),
                ip: ip.to_string(),
                port: e.source.port,
                classification_type: ty.as_str().to_string(),
                malware: e.malware_name.as_ref().map(|m| m.to_string()),
                destination,
            };
            sightings.push(Sighting {
                key,
                event_id: se.id,
                time,
                ip,
                subscriber,
                org,
                ty,
                threat,
                evidence,
            });
        }
        sightings.sort_by_key(|s| s.event_id);

        let mut keys: Vec<&str> = sightings.iter().map(|s| s.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut cases: HashMap<String, CaseRecord> =
            tx.by_keys(&keys)?.into_iter().map(|r| (r.case.key.clone(), r)).collect();
        let mut touched: Vec<String> = Vec::new();
        let mut touched_set: HashSet<String> = HashSet::new();
        let mut next_id: Option<i64> = None;
        let mut out = Out::default();
        let stale_before = Timestamp(now.0.saturating_sub(self.policy.auto_close_us()));
        for s in sightings {
            let rec = match cases.get_mut(&s.key) {
                None => {
                    if s.time < stale_before {
                        sum.stale += 1;
                        continue;
                    }
                    let id = match next_id {
                        Some(i) => i,
                        None => tx.next_case_id()?,
                    };
                    next_id = Some(id + 1);
                    let case = new_case(id, &s, now);
                    out.history.push(entry(&case, None, "opened", ENGINE, now, &s.evidence.feed));
                    sum.opened += 1;
                    cases.insert(s.key.clone(), CaseRecord { case, recent: Vec::new(), next_check: None });
                    cases.get_mut(&s.key).expect("inserted just above")
                }
                Some(rec) if rec.case.state == CaseState::Closed => {
                    if rec.case.closed_at.is_some_and(|c| s.time <= c) {
                        sum.late += 1;
                        continue;
                    }
                    if s.time < stale_before {
                        sum.stale += 1;
                        continue;
                    }
                    reopen(&mut rec.case, now, &s, &mut out);
                    sum.reopened += 1;
                    rec
                }
                Some(rec) => rec,
            };
            attach(rec, &s, self.policy.evidence_in_notice);
            sum.attached += 1;
            if touched_set.insert(s.key.clone()) {
                touched.push(s.key);
            }
        }
        for k in &touched {
            let rec = cases.get_mut(k).expect("touched keys are in the map");
            self.evaluate(rec, now, attributor, &mut out);
        }
        for k in &touched {
            tx.save(&cases[k])?;
        }
        tx.append_history(&out.history)?;
        tx.enqueue(&out.notices)?;
        sum.exposures = exposures.len() as u64;
        tx.add_exposures(&exposures)?;
        tx.set_cursor(max_id)?;
        tx.commit()?;
        sum.transitions = out.transitions;
        sum.notices = out.notice_count;
        Ok(sum)
    }

    /// Time-driven transitions: delayed first notices, re-notices, escalation by time,
    /// silent auto-close. Only cases whose `next_check` has come are read.
    pub fn tick(
        &self,
        store: &mut dyn CaseStore,
        attributor: &dyn Attributor,
        clock: &dyn Clock,
    ) -> Result<TickSummary> {
        let now = clock.now();
        let mut tx = store.case_tx()?;
        let mut sum = TickSummary::default();
        let mut out = Out::default();
        loop {
            // Every evaluated case gets a next_check after `now` (or none), so this ends.
            let due = tx.due(now, 1000)?;
            if due.is_empty() {
                break;
            }
            for mut rec in due {
                sum.examined += 1;
                self.evaluate(&mut rec, now, attributor, &mut out);
                tx.save(&rec)?;
            }
        }
        tx.append_history(&out.history)?;
        tx.enqueue(&out.notices)?;
        tx.commit()?;
        sum.transitions = out.transitions;
        sum.notices = out.notice_count;
        sum.closed = out.closed;
        Ok(sum)
    }

    /// Processes every stored event after the cursor, in batches of `batch`, then ticks.
    pub fn update<S: Store + CaseStore>(
        &self,
        store: &mut S,
        attributor: &dyn Attributor,
        clock: &dyn Clock,
        batch: u64,
    ) -> Result<UpdateSummary> {
        self.update_with_progress(store, attributor, clock, batch, &mut |_| {})
    }

    /// [`CaseEngine::update`], telling `progress` after each batch how far it got.
    pub fn update_with_progress<S: Store + CaseStore>(
        &self,
        store: &mut S,
        attributor: &dyn Attributor,
        clock: &dyn Clock,
        batch: u64,
        progress: &mut dyn FnMut(UpdateProgress),
    ) -> Result<UpdateSummary> {
        let mut sum = UpdateSummary::default();
        let start = store.case_cursor()?;
        // Event ids grow with each stored event: the span to the newest is the work ahead
        // (events stored meanwhile are taken too, and counted then).
        let mut newest = Store::newest_event_id(store)?;
        progress(UpdateProgress { done: 0, total: (newest - start).max(0) as u64 });
        loop {
            let cursor = store.case_cursor()?;
            let q = EventQuery { after_id: Some(cursor), limit: Some(batch.max(1)), ..Default::default() };
            let events = store.events(&q)?;
            if events.is_empty() {
                break;
            }
            let last = events.last().map_or(start, |e| e.id);
            sum.process += self.process(store, &events, attributor, clock)?;
            // Millions of events in one run would otherwise keep the whole run's case
            // writes in SQLite's write-ahead log (it filled a disk at 10M events).
            Store::checkpoint(store)?;
            newest = newest.max(last);
            progress(UpdateProgress {
                done: (last - start).max(0) as u64,
                total: (newest - start).max(0) as u64,
            });
        }
        sum.tick = self.tick(store, attributor, clock)?;
        Ok(sum)
    }

    /// A change made by hand (desk, subscriber): loads the case, lets `change` check and
    /// apply it (recording history and notices in `out`), then saves all of it in one
    /// transaction. An error from `change` leaves everything as it was.
    fn by_hand(
        &self,
        store: &mut dyn CaseStore,
        id: i64,
        clock: &dyn Clock,
        change: impl FnOnce(&mut CaseRecord, Timestamp, &mut Out) -> Result<()>,
    ) -> Result<Case> {
        let now = clock.now();
        let mut tx = store.case_tx()?;
        let mut rec = tx.by_id(id)?.ok_or(CaseError::NotFound(id))?;
        let mut out = Out::default();
        change(&mut rec, now, &mut out)?;
        rec.next_check = self.next_check(&rec, now);
        tx.save(&rec)?;
        tx.append_history(&out.history)?;
        tx.enqueue(&out.notices)?;
        tx.commit()?;
        Ok(rec.case)
    }

    /// An operator (or the subscriber, through the desk) acknowledged the case: the
    /// escalation clock restarts from now.
    pub fn ack(&self, store: &mut dyn CaseStore, id: i64, actor: &str, clock: &dyn Clock) -> Result<Case> {
        self.by_hand(store, id, clock, |rec, now, out| {
            let from = rec.case.state;
            if !matches!(from, CaseState::Detected | CaseState::Notified | CaseState::Escalated) {
                return Err(CaseError::Transition { id, from, to: CaseState::Acknowledged });
            }
            acknowledge(&mut rec.case, now);
            out.history.push(entry(&rec.case, Some(from), "acknowledged", actor, now, ""));
            Ok(())
        })
    }

    /// The subscriber says the machine is clean (the portal's "I cleaned it"). The history
    /// records it; a case waiting on the subscriber (detected, notified, escalated) becomes
    /// acknowledged. It stays open: evidence after this counts as a repeat, and silence
    /// closes it as for any case, so a claim alone never clears anyone.
    pub fn customer_report(
        &self,
        store: &mut dyn CaseStore,
        id: i64,
        actor: &str,
        detail: &str,
        clock: &dyn Clock,
    ) -> Result<Case> {
        self.by_hand(store, id, clock, |rec, now, out| {
            let from = rec.case.state;
            if !from.is_open() {
                return Err(CaseError::Transition { id, from, to: CaseState::Acknowledged });
            }
            if matches!(from, CaseState::Detected | CaseState::Notified | CaseState::Escalated) {
                acknowledge(&mut rec.case, now);
            }
            out.history.push(entry(&rec.case, Some(from), "customer_reported_clean", actor, now, detail));
            Ok(())
        })
    }

    /// Closes an open case.
    pub fn close(
        &self,
        store: &mut dyn CaseStore,
        id: i64,
        reason: CloseReason,
        actor: &str,
        clock: &dyn Clock,
    ) -> Result<Case> {
        self.by_hand(store, id, clock, |rec, now, out| {
            if !rec.case.state.is_open() {
                return Err(CaseError::Transition { id, from: rec.case.state, to: CaseState::Closed });
            }
            close_case(rec, reason, now, actor, out);
            Ok(())
        })
    }

    /// The desk tells the subscriber now instead of waiting: a detected case gets its first
    /// notice without the batching delay; a case already notified gets a reminder without
    /// waiting for the re-notify interval. The per-episode notice limit still holds, so a
    /// desk cannot flood a subscriber either. Nothing changes when it fails.
    pub fn notify_now(
        &self,
        store: &mut dyn CaseStore,
        attr: &dyn Attributor,
        id: i64,
        actor: &str,
        clock: &dyn Clock,
    ) -> Result<Case> {
        self.by_hand(store, id, clock, |rec, now, out| {
            let from = rec.case.state;
            if !from.is_open() {
                return Err(CaseError::Transition { id, from, to: CaseState::Notified });
            }
            if rec.case.episode_notices >= self.policy.max_notices {
                return Err(CaseError::NoticesExhausted { id, max: self.policy.max_notices });
            }
            let (to, org) = self.recipients(&rec.case, attr);
            if to.is_empty() {
                return Err(CaseError::NoRecipient(id));
            }
            let detail = format!("by {actor}");
            if from == CaseState::Detected {
                self.first_notice(rec, now, actor, &detail, &to, org.as_ref(), out);
            } else {
                self.remind(rec, now, actor, &detail, &to, org.as_ref(), out);
            }
            Ok(())
        })
    }

    /// The desk raises a case one level, as repeat evidence or time would: escalated, or
    /// the walled garden on reaching its level, with an escalation notice when there is
    /// someone to tell and the notice limit allows. Only a case the subscriber has been
    /// told about (or that the desk acknowledged) escalates: a detected case is notified
    /// first. Nothing changes when it fails.
    pub fn escalate(
        &self,
        store: &mut dyn CaseStore,
        attr: &dyn Attributor,
        id: i64,
        actor: &str,
        clock: &dyn Clock,
    ) -> Result<Case> {
        self.by_hand(store, id, clock, |rec, now, out| {
            let c = &rec.case;
            match c.state {
                CaseState::Notified | CaseState::Acknowledged | CaseState::Escalated => {}
                CaseState::WalledGarden => return Err(CaseError::AtTopLevel { id, level: c.level }),
                from @ (CaseState::Detected | CaseState::Closed) => {
                    return Err(CaseError::Transition { id, from, to: CaseState::Escalated });
                }
            }
            if c.level >= self.cap() {
                return Err(CaseError::AtTopLevel { id, level: c.level });
            }
            self.raise(rec, now, attr, actor, &format!("by {actor}"), out);
            Ok(())
        })
    }

    /// Applies every transition due at `now`, then sets `next_check`.
    fn evaluate(&self, rec: &mut CaseRecord, now: Timestamp, attr: &dyn Attributor, out: &mut Out) {
        // Each step moves the case forward and stamps `now`, so a few steps reach a fixed
        // point; the bound only guards against a policy bug looping.
        for _ in 0..4 {
            if !self.step(rec, now, attr, out) {
                break;
            }
        }
        rec.next_check = self.next_check(rec, now);
    }

    fn cap(&self) -> u8 {
        if self.policy.walled_garden_level > 0 {
            self.policy.walled_garden_level
        } else {
            self.policy.max_level
        }
    }

    /// One transition if one is due; whether anything changed.
    fn step(&self, rec: &mut CaseRecord, now: Timestamp, attr: &dyn Attributor, out: &mut Out) -> bool {
        let p = &self.policy;
        let c = &rec.case;
        if !c.state.is_open() {
            return false;
        }
        if now.0.saturating_sub(c.last_seen.0) >= p.auto_close_us() {
            close_case(rec, CloseReason::Silent, now, ENGINE, out);
            out.closed += 1;
            return true;
        }
        match c.state {
            CaseState::Detected => {
                if now.0 < c.opened_at.0.saturating_add(p.notify_delay_us()) {
                    return false;
                }
                let (to, org) = self.recipients(c, attr);
                if to.is_empty() {
                    // Nobody to tell: stay detected (visible in `cases list`) and look again
                    // later, when attribution data may have caught up.
                    return false;
                }
                self.first_notice(rec, now, ENGINE, "", &to, org.as_ref(), out);
                true
            }
            CaseState::Notified | CaseState::Acknowledged | CaseState::Escalated => {
                let stage = c.stage_since.unwrap_or(c.opened_at);
                let repeats = c.evidence.saturating_sub(c.evidence_at_notice);
                let by_repeats = repeats >= p.escalate_after_repeats;
                let by_time = now.0.saturating_sub(stage.0) >= p.escalate_us() && c.last_seen > stage;
                if (by_repeats || by_time) && c.level < self.cap() {
                    let why = if by_repeats {
                        format!("{repeats} sightings since the last notice")
                    } else {
                        "still seen after the escalation period".to_string()
                    };
                    self.raise(rec, now, attr, ENGINE, &why, out);
                    return true;
                }
                self.renotify(rec, now, attr, out)
            }
            CaseState::WalledGarden => self.renotify(rec, now, attr, out),
            CaseState::Closed => false,
        }
    }

    fn renotify(&self, rec: &mut CaseRecord, now: Timestamp, attr: &dyn Attributor, out: &mut Out) -> bool {
        let c = &rec.case;
        let Some(last) = c.last_notified_at else { return false };
        if c.episode_notices >= self.policy.max_notices
            || now.0.saturating_sub(last.0) < self.policy.renotify_us()
            || c.last_seen <= last
        {
            return false;
        }
        let (to, org) = self.recipients(c, attr);
        if to.is_empty() {
            return false;
        }
        self.remind(rec, now, ENGINE, "", &to, org.as_ref(), out);
        true
    }

    /// Detected → notified, with the first notice of the episode.
    #[allow(clippy::too_many_arguments)] // each is one piece of the change; a struct would only wrap them
    fn first_notice(
        &self,
        rec: &mut CaseRecord,
        now: Timestamp,
        actor: &str,
        detail: &str,
        to: &[(Channel, String)],
        org: Option<&OrgInfo>,
        out: &mut Out,
    ) {
        let c = &mut rec.case;
        let from = c.state;
        c.state = CaseState::Notified;
        c.stage_since = Some(now);
        out.history.push(entry(c, Some(from), "notified", actor, now, detail));
        out.transitions += 1;
        self.notice(rec, "first_notice", now, to, org, out);
    }

    /// A further notice in the current state. A case acknowledged before anyone was told
    /// (the desk acked a detected case) gets its first notice under that name.
    #[allow(clippy::too_many_arguments)] // as for `first_notice`
    fn remind(
        &self,
        rec: &mut CaseRecord,
        now: Timestamp,
        actor: &str,
        detail: &str,
        to: &[(Channel, String)],
        org: Option<&OrgInfo>,
        out: &mut Out,
    ) {
        let c = &rec.case;
        let (action, reason) =
            if c.episode_notices == 0 { ("notified", "first_notice") } else { ("renotified", "renotify") };
        out.history.push(entry(c, Some(c.state), action, actor, now, detail));
        self.notice(rec, reason, now, to, org, out);
    }

    /// One level up (the caller checked the cap): escalated, or the walled garden on
    /// reaching its level; the stage restarts now, and the notice goes out when there is
    /// someone to tell and the episode's limit allows.
    fn raise(
        &self,
        rec: &mut CaseRecord,
        now: Timestamp,
        attr: &dyn Attributor,
        actor: &str,
        why: &str,
        out: &mut Out,
    ) {
        let p = &self.policy;
        let c = &mut rec.case;
        let from = c.state;
        c.level += 1;
        c.escalated_at = Some(now);
        c.stage_since = Some(now);
        c.evidence_at_notice = c.evidence;
        let garden = p.walled_garden_level > 0 && c.level >= p.walled_garden_level;
        let (state, reason) = if garden {
            (CaseState::WalledGarden, "walled_garden")
        } else {
            (CaseState::Escalated, "escalation")
        };
        c.state = state;
        out.history.push(entry(c, Some(from), reason, actor, now, why));
        out.transitions += 1;
        let (to, org) = self.recipients(&rec.case, attr);
        if rec.case.episode_notices < p.max_notices && !to.is_empty() {
            self.notice(rec, reason, now, &to, org.as_ref(), out);
        }
    }

    /// The earliest instant a time-driven transition may become due.
    fn next_check(&self, rec: &CaseRecord, now: Timestamp) -> Option<Timestamp> {
        let p = &self.policy;
        let c = &rec.case;
        if !c.state.is_open() {
            return None;
        }
        let mut cands = vec![c.last_seen.0.saturating_add(p.auto_close_us())];
        let can_notify = c.episode_notices < p.max_notices;
        match c.state {
            CaseState::Detected => {
                let t = c.opened_at.0.saturating_add(p.notify_delay_us());
                // Held for want of a recipient: look again in a day.
                cands.push(if t > now.0 { t } else { now.0.saturating_add(crate::policy::days(1)) });
            }
            CaseState::Notified
            | CaseState::Acknowledged
            | CaseState::Escalated
            | CaseState::WalledGarden => {
                if c.state != CaseState::WalledGarden && c.level < self.cap() {
                    cands.push(c.stage_since.unwrap_or(c.opened_at).0.saturating_add(p.escalate_us()));
                }
                if can_notify && let Some(l) = c.last_notified_at {
                    cands.push(l.0.saturating_add(p.renotify_us()));
                }
            }
            CaseState::Closed => {}
        }
        // Candidates already past wait for new evidence, which `process` evaluates. When all
        // are past, the silence that closes the case is too (a change by hand after it, with
        // no tick between): the case is due now, never left open without a next check.
        let t = cands.into_iter().filter(|t| *t > now.0).min().unwrap_or(now.0);
        Some(Timestamp(t))
    }

    /// Where the notices of a case go: the subscriber's contact when configured, else the
    /// organisation's abuse addresses and webhook.
    fn recipients(&self, c: &Case, attr: &dyn Attributor) -> (Vec<(Channel, String)>, Option<OrgInfo>) {
        let org = c.org.as_deref().and_then(|o| attr.org_by_id(o));
        if let Some(contact) = c.subscriber.as_ref().and_then(|s| self.policy.subscriber_contacts.get(s)) {
            return (vec![(Channel::Email, contact.clone())], org);
        }
        let mut to = Vec::new();
        if let Some(o) = &org {
            to.extend(o.abuse_emails.iter().map(|a| (Channel::Email, a.clone())));
            if let Some(w) = &o.webhook {
                to.push((Channel::Webhook, w.clone()));
            }
        }
        (to, org)
    }

    /// Counts the notice on the case and queues it to every recipient.
    fn notice(
        &self,
        rec: &mut CaseRecord,
        reason: &str,
        now: Timestamp,
        to: &[(Channel, String)],
        org: Option<&OrgInfo>,
        out: &mut Out,
    ) {
        let c = &mut rec.case;
        c.notices += 1;
        c.episode_notices += 1;
        c.last_notified_at = Some(now);
        c.first_notified_at.get_or_insert(now);
        c.evidence_at_notice = c.evidence;
        out.notice_count += 1;
        let n = c.notices;
        let key = format!("case:{}:{reason}:{n}", c.id);
        let hash = xxhash_rust::xxh3::xxh3_64(format!("{key}|{}", now.micros()).as_bytes());
        let message_id = format!("case-{}-{n}-{:08x}@{}", c.id, hash as u32, self.policy.message_domain);
        let take = self.policy.evidence_in_notice;
        let evidence = &rec.recent[rec.recent.len().saturating_sub(take)..];
        let payload = serde_json::json!({
            "reason": reason,
            "case": c,
            "org": org.map(|o| serde_json::json!({
                "id": o.id, "name": o.name, "abuse_emails": o.abuse_emails, "lang": o.lang,
            })),
            "subscriber": c.subscriber,
            "evidence": evidence,
        });
        let lang = org.map(|o| o.lang.clone()).unwrap_or_else(|| "en".into());
        for (i, (channel, recipient)) in to.iter().enumerate() {
            // The first recipient carries the bare key of the contract; further addresses
            // and the webhook get it suffixed, so each delivery is idempotent on its own.
            let key = if i == 0 { key.clone() } else { format!("{key}/{}/{recipient}", channel.as_str()) };
            out.notices.push(NewNotice {
                key,
                message_id: message_id.clone(),
                kind: "case_notice".into(),
                channel: *channel,
                recipient: recipient.clone(),
                lang: lang.clone(),
                org: c.org.clone(),
                case_id: Some(c.id),
                payload: payload.clone(),
                created_at: now,
                due_at: now,
            });
        }
    }
}

/// Addresses no subscriber or network owner holds: documentation (RFC 5737, RFC 3849, RFC
/// 9637), unspecified, loopback, link-local, multicast, broadcast, benchmarking (RFC 2544),
/// "this network" and the reserved 240/4. Private and shared (CGNAT) space is kept: an ISP's
/// own sensors see its subscribers there.
pub fn is_special(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_unspecified()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_documentation()
                || o[0] == 0
                || o[0] >= 240
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_special(IpAddr::V4(v4));
            }
            let s = a.segments();
            a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x3fff && s[1] & 0xf000 == 0)
                || (s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0)
        }
    }
}

fn new_case(id: i64, s: &Sighting, now: Timestamp) -> Case {
    let mut c = Case::new(id, s.key.clone(), s.threat.clone(), s.ty.as_str().to_string(), now);
    c.org = s.org.clone();
    c.subscriber = s.subscriber.clone();
    c.ip = Some(s.ip);
    c.first_seen = s.time;
    c.last_seen = s.time;
    c
}

fn reopen(c: &mut Case, now: Timestamp, s: &Sighting, out: &mut Out) {
    c.state = CaseState::Detected;
    c.reinfections += 1;
    c.level = 0;
    c.opened_at = now;
    c.closed_at = None;
    c.close_reason = None;
    c.acknowledged_at = None;
    c.escalated_at = None;
    c.stage_since = None;
    c.episode_notices = 0;
    c.evidence_at_notice = c.evidence;
    out.history.push(entry(c, Some(CaseState::Closed), "reopened", ENGINE, now, &s.evidence.feed));
    out.transitions += 1;
}

fn attach(rec: &mut CaseRecord, s: &Sighting, keep: usize) {
    let c = &mut rec.case;
    c.evidence += 1;
    c.first_seen = c.first_seen.min(s.time);
    if s.time >= c.last_seen {
        c.last_seen = s.time;
        c.ip = Some(s.ip);
    }
    if c.org.is_none() {
        c.org = s.org.clone();
    }
    c.last_event_id = Some(c.last_event_id.unwrap_or(0).max(s.event_id));
    // Kept in time order (oldest first), whatever order the reports arrived in: notices,
    // `cases show` and the case page quote it as it is, and truncation keeps the newest.
    let at = rec.recent.partition_point(|e| (e.time, e.event_id) <= (s.evidence.time, s.evidence.event_id));
    rec.recent.insert(at, s.evidence.clone());
    if rec.recent.len() > keep.max(1) {
        let extra = rec.recent.len() - keep.max(1);
        rec.recent.drain(..extra);
    }
}

fn close_case(rec: &mut CaseRecord, reason: CloseReason, now: Timestamp, actor: &str, out: &mut Out) {
    let c = &mut rec.case;
    let from = c.state;
    c.state = CaseState::Closed;
    c.closed_at = Some(now);
    c.close_reason = Some(reason);
    rec.next_check = None;
    out.history.push(entry(c, Some(from), "closed", actor, now, reason.as_str()));
    out.transitions += 1;
}

/// The subscriber or desk has taken note: the stage restarts now, and evidence from here on
/// counts as repeat evidence.
fn acknowledge(c: &mut Case, now: Timestamp) {
    c.state = CaseState::Acknowledged;
    c.acknowledged_at = Some(now);
    c.stage_since = Some(now);
    c.evidence_at_notice = c.evidence;
}

fn entry(
    c: &Case,
    from: Option<CaseState>,
    action: &str,
    actor: &str,
    at: Timestamp,
    detail: &str,
) -> HistoryEntry {
    HistoryEntry {
        case_id: c.id,
        at,
        actor: actor.to_string(),
        action: action.to_string(),
        from,
        to: c.state,
        level: c.level,
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod special_tests {
    use super::is_special;

    #[test]
    fn documentation_and_other_unowned_addresses_are_special() {
        for a in [
            "192.0.2.70",
            "198.51.100.1",
            "203.0.113.255",
            "2001:db8::70",
            "3fff:0fff::1",
            "127.0.0.1",
            "0.1.2.3",
            "169.254.1.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "198.18.0.1",
            "198.19.255.255",
            "::",
            "::1",
            "fe80::1",
            "ff02::1",
            "::ffff:192.0.2.1",
            "2001:2::1",
        ] {
            assert!(is_special(a.parse().unwrap()), "{a}");
        }
        for a in [
            "1.234.21.73",
            "10.0.0.1",
            "100.64.0.1",
            "192.168.1.1",
            "198.20.0.1",
            "2003::1",
            "3fff:1000::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_special(a.parse().unwrap()), "{a}");
        }
    }
}

#[cfg(test)]
mod evidence_tests {
    use super::*;

    /// Issue 11 (8): evidence is kept in time order whatever order reports arrive in, and
    /// the newest by time survive the cap.
    #[test]
    fn evidence_is_kept_in_time_order() {
        let t = Timestamp::from_secs;
        let ip: std::net::IpAddr = "198.18.0.1".parse().unwrap();
        let mut rec = CaseRecord {
            case: Case::new(1, "ip:x|emotet".into(), "emotet".into(), "infected-system".into(), t(500)),
            recent: vec![],
            next_check: None,
        };
        for (id, at) in [(1, 500), (2, 100), (3, 900), (4, 300), (5, 700)] {
            let ev = Evidence {
                event_id: id,
                time: t(at),
                feed: "f".into(),
                ip: ip.to_string(),
                port: None,
                classification_type: "infected-system".into(),
                malware: None,
                destination: None,
            };
            let s = Sighting {
                key: "ip:x|emotet".into(),
                event_id: id,
                time: t(at),
                ip,
                subscriber: None,
                org: None,
                ty: ClassificationType::InfectedSystem,
                threat: "emotet".into(),
                evidence: ev,
            };
            attach(&mut rec, &s, 4);
        }
        let times: Vec<i64> = rec.recent.iter().map(|e| e.time.secs()).collect();
        assert_eq!(times, [300, 500, 700, 900], "sorted, the oldest dropped");
        assert_eq!((rec.case.first_seen, rec.case.last_seen), (t(100), t(900)));
    }
}

#[cfg(test)]
mod summary_tests {
    use super::ProcessSummary;

    #[test]
    fn summing_batches_keeps_every_figure() {
        // Every field 1, as the serialised form lists them: a field the sum left out would
        // stay at 1 below.
        let one: ProcessSummary = {
            let v = serde_json::to_value(ProcessSummary::default()).unwrap();
            let ones: serde_json::Map<_, _> =
                v.as_object().unwrap().keys().map(|k| (k.clone(), serde_json::json!(1))).collect();
            serde_json::from_value(serde_json::Value::Object(ones)).unwrap()
        };
        let mut sum = one;
        sum += one;
        for (k, v) in serde_json::to_value(sum).unwrap().as_object().unwrap() {
            assert_eq!(v, 2, "{k} after two batches of 1");
        }
    }
}
