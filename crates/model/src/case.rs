//! Cases: the unit an abuse desk works on, one per (subscriber or address, threat), with the
//! lifecycle of RFC 6561 §5 (detection → notification → remediation, escalation up to a
//! walled garden).
//!
//! Only the types live here; the state machine is in `botwatch-cases`, persistence in
//! `botwatch-store`, notices and exports in `botwatch-notify`.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Where a case stands. Ordered by how far the case has gone, so "at least notified" is a
/// comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// Evidence seen, nobody told yet.
    Detected,
    /// A notice went out (or is in the outbox).
    Notified,
    /// The subscriber or owner said they are on it.
    Acknowledged,
    /// Escalated (repeat evidence or no fix in time); `level` says how far.
    Escalated,
    /// In the walled garden: access limited to remediation and emergency destinations.
    WalledGarden,
    /// Closed: remediated by the subscriber, closed by the desk, or silent long enough.
    Closed,
}

impl CaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Detected => "detected",
            CaseState::Notified => "notified",
            CaseState::Acknowledged => "acknowledged",
            CaseState::Escalated => "escalated",
            CaseState::WalledGarden => "walled_garden",
            CaseState::Closed => "closed",
        }
    }

    pub fn from_name(s: &str) -> Option<CaseState> {
        Some(match s {
            "detected" => CaseState::Detected,
            "notified" => CaseState::Notified,
            "acknowledged" => CaseState::Acknowledged,
            "escalated" => CaseState::Escalated,
            "walled_garden" => CaseState::WalledGarden,
            "closed" => CaseState::Closed,
            _ => return None,
        })
    }

    pub fn is_open(self) -> bool {
        self != CaseState::Closed
    }
}

/// Why a case was closed; re-infection counting needs to tell these apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The subscriber or desk reported the machine cleaned.
    Remediated,
    /// No evidence for the configured quiet period.
    Silent,
    /// Closed by an operator without remediation (false positive, duplicate, …).
    Dismissed,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Remediated => "remediated",
            CloseReason::Silent => "silent",
            CloseReason::Dismissed => "dismissed",
        }
    }

    pub fn from_name(s: &str) -> Option<CloseReason> {
        Some(match s {
            "remediated" => CloseReason::Remediated,
            "silent" => CloseReason::Silent,
            "dismissed" => CloseReason::Dismissed,
            _ => return None,
        })
    }
}

/// One case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: i64,
    /// `sub:<subscriber>|<threat>` or `ip:<address>|<threat>`: what makes two sightings the
    /// same case.
    pub key: String,
    /// Organisation responsible for the address (constituency id), if known.
    pub org: Option<String>,
    /// Subscriber identifier as recorded (possibly pseudonymised), if attributed.
    pub subscriber: Option<String>,
    /// Last address the threat was seen on.
    pub ip: Option<IpAddr>,
    /// `malware.name` when known, else `classification.type`.
    pub threat: String,
    pub classification_type: String,
    pub state: CaseState,
    /// 0 until escalated; each escalation adds one; the walled garden is the top level.
    pub level: u8,
    pub opened_at: Timestamp,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// Sightings (events) attached.
    pub evidence: u64,
    /// Evidence count when the last notice was sent: new evidence since then is "repeat".
    pub evidence_at_notice: u64,
    /// Notices queued for the case (the engine's count; idempotency keys are numbered by
    /// it). Queued is not sent: see `notices_sent`.
    pub notices: u32,
    /// When the first notice was *queued* (the lifecycle's "notified" step).
    pub first_notified_at: Option<Timestamp>,
    pub last_notified_at: Option<Timestamp>,
    pub acknowledged_at: Option<Timestamp>,
    pub escalated_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub close_reason: Option<CloseReason>,
    /// Times this case re-opened after being closed (re-infections).
    pub reinfections: u32,
    /// Id of the last event attached, to fetch the evidence.
    pub last_event_id: Option<i64>,
    /// Notices sent since the case last (re)opened: the per-case notice cap applies per
    /// episode, while `notices` keeps counting so idempotency keys never repeat.
    #[serde(default)]
    pub episode_notices: u32,
    /// When the current stage began (first notice of the episode, last escalation, or the
    /// acknowledgement): "no fix after D days" counts from here, and re-notices do not
    /// restart it.
    #[serde(default)]
    pub stage_since: Option<Timestamp>,
    /// Notices a transport accepted (SMTP 250, webhook 2xx), read from the outbox.
    #[serde(default)]
    pub notices_sent: u32,
    /// When a transport first accepted a notice about this case: what compliance's "time to
    /// first notice" measures to.
    #[serde(default)]
    pub first_sent_at: Option<Timestamp>,
    /// Notices waiting in the outbox (queued or being handed over), read from the outbox.
    #[serde(default)]
    pub notices_queued: u32,
}

impl Case {
    /// A case just opened at `at`: detected, nobody told, no counters yet. Callers set who it
    /// belongs to (`org`, `subscriber`, `ip`) and the evidence.
    pub fn new(id: i64, key: String, threat: String, classification_type: String, at: Timestamp) -> Case {
        Case {
            id,
            key,
            org: None,
            subscriber: None,
            ip: None,
            threat,
            classification_type,
            state: CaseState::Detected,
            level: 0,
            opened_at: at,
            first_seen: at,
            last_seen: at,
            evidence: 0,
            evidence_at_notice: 0,
            notices: 0,
            first_notified_at: None,
            last_notified_at: None,
            acknowledged_at: None,
            escalated_at: None,
            closed_at: None,
            close_reason: None,
            reinfections: 0,
            last_event_id: None,
            episode_notices: 0,
            stage_since: None,
            notices_sent: 0,
            first_sent_at: None,
            notices_queued: 0,
        }
    }
}
