//! Compliance metrics per organisation, and the "minimum security bar" evaluated per
//! organisation and per subscriber.
//!
//! Definitions (all over an organisation's cases, dismissed ones excluded — a false
//! positive should count neither for nor against anyone):
//! - *notified*: a transport accepted a notice about the case (SMTP 250, webhook 2xx). A
//!   notice still in the outbox is *queued*, counted apart, and never makes a case notified.
//! - *time to first notice*: first delivery − `first_seen` (first evidence, by event time)
//!   of notified cases; median (mean of the middle two for an even count) and p90 (nearest
//!   rank).
//! - *time to close*: `closed_at − first_seen` of closed cases; median.
//! - *share notified within N days*: notified within N days of first evidence, over the
//!   cases old enough to have been (notified, or first seen at least N days ago).
//! - *re-infection rate*: cases re-opened at least once, over cases.
//! - *infections per 1,000 subscribers*: open cases per 1,000 subscribers of the org.

use crate::attribution::Attributor;
use crate::policy::days;
use crate::{CaseStore, Result};
use botwatch_model::{Case, Timestamp};
use botwatch_store::cases::{CaseFigures, CaseQuery, Exposure};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The `[bar]` section: thresholds an organisation (and a subscriber) must meet. A
/// threshold left unset is not checked; with no `[bar]` section at all there is no bar, and
/// no verdict (see [`Verdict`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bar {
    /// N of "share notified within N days".
    pub notify_within_days: i64,
    pub max_median_hours_to_notice: Option<f64>,
    pub max_p90_hours_to_notice: Option<f64>,
    /// 0–1.
    pub min_share_notified_within: Option<f64>,
    pub max_median_days_to_close: Option<f64>,
    /// 0–1.
    pub max_reinfection_rate: Option<f64>,
    pub max_infections_per_1000: Option<f64>,
    pub max_open_cases: Option<u64>,
    /// A subscriber fails the bar for an exposed vulnerable service reported this recently.
    pub exposure_window_days: i64,
}

impl Default for Bar {
    /// No thresholds: "no bar configured", which is never a pass.
    fn default() -> Self {
        Bar {
            notify_within_days: 2,
            max_median_hours_to_notice: None,
            max_p90_hours_to_notice: None,
            min_share_notified_within: None,
            max_median_days_to_close: None,
            max_reinfection_rate: None,
            max_infections_per_1000: None,
            max_open_cases: None,
            exposure_window_days: 30,
        }
    }
}

impl Bar {
    /// The thresholds `botwatch.example.toml` suggests (and the demo uses).
    pub fn recommended() -> Self {
        Bar {
            notify_within_days: 2,
            max_median_hours_to_notice: Some(48.0),
            max_p90_hours_to_notice: None,
            min_share_notified_within: Some(0.9),
            max_median_days_to_close: Some(30.0),
            max_reinfection_rate: Some(0.2),
            max_infections_per_1000: Some(5.0),
            max_open_cases: None,
            exposure_window_days: 30,
        }
    }

    /// No threshold is set.
    pub fn is_empty(&self) -> bool {
        self.max_median_hours_to_notice.is_none()
            && self.max_p90_hours_to_notice.is_none()
            && self.min_share_notified_within.is_none()
            && self.max_median_days_to_close.is_none()
            && self.max_reinfection_rate.is_none()
            && self.max_infections_per_1000.is_none()
            && self.max_open_cases.is_none()
    }
}

/// An organisation's standing against the bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every threshold set was measured and met.
    Pass,
    /// At least one threshold was missed (`reasons`).
    Fail,
    /// None missed, but some threshold could not be measured (`unmeasured` says why): not a
    /// pass.
    NotMeasured,
    /// No `[bar]` thresholds are configured.
    NoBar,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotMeasured => "not measured",
            Verdict::NoBar => "no bar configured",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

fn spread(mut v: Vec<f64>) -> Spread {
    if v.is_empty() {
        return Spread::default();
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    let rank = ((0.9 * n as f64).ceil() as usize).clamp(1, n);
    Spread { median: Some(median), p90: Some(v[rank - 1]) }
}

/// One organisation's figures and verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrgCompliance {
    /// `None` for cases no organisation was attributed to.
    pub org: Option<String>,
    pub name: Option<String>,
    pub cases: u64,
    pub open_cases: u64,
    pub closed_cases: u64,
    /// Cases a transport accepted a notice about.
    pub notified_cases: u64,
    /// Cases with a notice queued and none delivered yet.
    pub queued_cases: u64,
    pub hours_to_first_notice: Spread,
    pub days_to_close: Spread,
    pub share_notified_within: Option<f64>,
    pub reinfection_rate: Option<f64>,
    pub subscribers: Option<u64>,
    pub infections_per_1000: Option<f64>,
    pub verdict: Verdict,
    /// `verdict == Pass`.
    pub meets_bar: bool,
    /// Thresholds missed.
    pub reasons: Vec<String>,
    /// Thresholds set that could not be measured, and why.
    pub unmeasured: Vec<String>,
}

const HOUR: f64 = 3_600_000_000.0;
const DAY: f64 = 86_400_000_000.0;

/// Figures per organisation (sorted by org id; unattributed last) at `now`.
pub fn compliance(cases: &[Case], attr: &dyn Attributor, bar: &Bar, now: Timestamp) -> Vec<OrgCompliance> {
    let figures: Vec<CaseFigures> = cases.iter().map(CaseFigures::from).collect();
    compliance_of(&figures, attr, bar, now)
}

/// [`compliance`] over what the store reads of each case ([`CaseStore::case_figures`]).
pub fn compliance_of(
    cases: &[CaseFigures],
    attr: &dyn Attributor,
    bar: &Bar,
    now: Timestamp,
) -> Vec<OrgCompliance> {
    let mut by_org: BTreeMap<Option<&str>, Vec<&CaseFigures>> = BTreeMap::new();
    for c in cases.iter().filter(|c| !c.dismissed) {
        by_org.entry(c.org.as_deref()).or_default().push(c);
    }
    let mut out: Vec<OrgCompliance> =
        by_org.into_iter().map(|(org, cs)| org_figures(org, &cs, attr, bar, now)).collect();
    // BTreeMap puts None first; the unattributed bucket reads better last.
    let unattributed_first = out.first().is_some_and(|o| o.org.is_none());
    out.rotate_left(usize::from(unattributed_first));
    out
}

fn org_figures(
    org: Option<&str>,
    cs: &[&CaseFigures],
    attr: &dyn Attributor,
    bar: &Bar,
    now: Timestamp,
) -> OrgCompliance {
    let info = org.and_then(|o| attr.org_by_id(o));
    let n = cs.len() as u64;
    let open = cs.iter().filter(|c| c.open).count() as u64;
    let to_notice: Vec<f64> = cs
        .iter()
        .filter_map(|c| c.first_sent_at.map(|t| (t.0 - c.first_seen.0).max(0) as f64 / HOUR))
        .collect();
    let to_close: Vec<f64> = cs
        .iter()
        .filter(|c| !c.open)
        .filter_map(|c| c.closed_at.map(|t| (t.0 - c.first_seen.0).max(0) as f64 / DAY))
        .collect();
    let window = days(bar.notify_within_days);
    let eligible: Vec<&&CaseFigures> =
        cs.iter().filter(|c| c.first_sent_at.is_some() || now.0 - c.first_seen.0 >= window).collect();
    let within =
        eligible.iter().filter(|c| c.first_sent_at.is_some_and(|t| t.0 - c.first_seen.0 <= window)).count();
    let ratio = |a: usize, b: usize| if b == 0 { None } else { Some(a as f64 / b as f64) };
    let subscribers = info.as_ref().and_then(|i| i.subscribers);
    let mut o = OrgCompliance {
        org: org.map(str::to_string),
        name: info.map(|i| i.name),
        cases: n,
        open_cases: open,
        closed_cases: n - open,
        notified_cases: to_notice.len() as u64,
        queued_cases: cs.iter().filter(|c| c.queued).count() as u64,
        hours_to_first_notice: spread(to_notice),
        days_to_close: spread(to_close),
        share_notified_within: ratio(within, eligible.len()),
        reinfection_rate: ratio(cs.iter().filter(|c| c.reinfections > 0).count(), cs.len()),
        subscribers,
        infections_per_1000: subscribers.filter(|s| *s > 0).map(|s| open as f64 * 1000.0 / s as f64),
        verdict: Verdict::NoBar,
        meets_bar: false,
        reasons: Vec::new(),
        unmeasured: Vec::new(),
    };
    (o.reasons, o.unmeasured) = judge(&o, bar);
    o.verdict = if bar.is_empty() {
        Verdict::NoBar
    } else if !o.reasons.is_empty() {
        Verdict::Fail
    } else if !o.unmeasured.is_empty() {
        Verdict::NotMeasured
    } else {
        Verdict::Pass
    };
    o.meets_bar = o.verdict == Verdict::Pass;
    o
}

fn judge(o: &OrgCompliance, bar: &Bar) -> (Vec<String>, Vec<String>) {
    let mut r = Vec::new();
    let mut u = Vec::new();
    let undelivered = if o.queued_cases > 0 {
        format!("no notice delivered yet ({} case(s) with notices queued, not sent)", o.queued_cases)
    } else {
        "no notice delivered yet".to_string()
    };
    // `missing`: why the figure is absent, said when a threshold is set for it.
    let mut above = |what: &str, v: Option<f64>, max: Option<f64>, missing: &str| match (v, max) {
        (Some(v), Some(max)) if v > max => r.push(format!("{what} {v:.2} is above {max}")),
        // Nothing to measure where there are no cases; otherwise a missing figure is said.
        (None, Some(_)) if o.cases > 0 => u.push(format!("{what}: {missing}")),
        _ => {}
    };
    let notice = o.hours_to_first_notice;
    above("median hours to first notice", notice.median, bar.max_median_hours_to_notice, &undelivered);
    above("p90 hours to first notice", notice.p90, bar.max_p90_hours_to_notice, &undelivered);
    above("median days to close", o.days_to_close.median, bar.max_median_days_to_close, "no case closed yet");
    above("re-infection rate", o.reinfection_rate, bar.max_reinfection_rate, "no data");
    // Unattributed cases have no subscriber base to divide by.
    if o.org.is_some() {
        above(
            "infections per 1000 subscribers",
            o.infections_per_1000,
            bar.max_infections_per_1000,
            "the organisation's subscriber count is not configured",
        );
    }
    above("open cases", Some(o.open_cases as f64), bar.max_open_cases.map(|m| m as f64), "no data");
    let share = format!("share notified within {} days", bar.notify_within_days);
    match (o.share_notified_within, bar.min_share_notified_within) {
        (Some(v), Some(min)) if v < min => r.push(format!("{share} {v:.2} is below {min}")),
        (None, Some(_)) if o.cases > 0 => u.push(format!("{share}: no case old enough yet")),
        _ => {}
    }
    (r, u)
}

/// A subscriber line or an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Subscriber(String),
    Ip(IpAddr),
}

impl Subject {
    /// An address when `s` parses as one, else a subscriber id.
    pub fn parse(s: &str) -> Subject {
        match s.parse::<IpAddr>() {
            Ok(ip) => Subject::Ip(ip),
            Err(_) => Subject::Subscriber(s.to_string()),
        }
    }
}

/// Whether one subscriber (or address) meets the bar: no open case and no exposed
/// vulnerable service reported within the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriberStatus {
    pub subject: Subject,
    pub meets_bar: bool,
    pub reasons: Vec<String>,
    pub open_cases: Vec<Case>,
    pub exposures: Vec<Exposure>,
}

pub fn subscriber_status(
    store: &dyn CaseStore,
    who: &Subject,
    bar: &Bar,
    now: Timestamp,
) -> Result<SubscriberStatus> {
    let mut q = CaseQuery { open_only: true, ..Default::default() };
    let (sub, ip) = match who {
        Subject::Subscriber(s) => (Some(s.as_str()), None),
        Subject::Ip(ip) => (None, Some(*ip)),
    };
    q.subscriber = sub.map(str::to_string);
    q.ip = ip;
    let open_cases = store.cases(&q)?;
    let since = Timestamp(now.0.saturating_sub(days(bar.exposure_window_days)));
    let exposures = store.exposures(sub, ip, since)?;
    let mut reasons = Vec::new();
    for c in &open_cases {
        reasons.push(format!("open case {} ({}, {})", c.id, c.threat, c.state.as_str()));
    }
    let mut kinds: Vec<String> = exposures
        .iter()
        .map(|e| match (&e.identifier, e.port) {
            (Some(i), Some(p)) => format!("{i} on {}:{p}", e.ip),
            (Some(i), None) => format!("{i} on {}", e.ip),
            (None, Some(p)) => format!("{} on {}:{p}", e.classification_type, e.ip),
            (None, None) => format!("{} on {}", e.classification_type, e.ip),
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    reasons.extend(kinds.into_iter().map(|k| format!("exposed service: {k}")));
    Ok(SubscriberStatus {
        subject: who.clone(),
        meets_bar: reasons.is_empty(),
        reasons,
        open_cases,
        exposures,
    })
}

/// Convenience over a store: every case's figures, then [`compliance_of`].
pub fn org_report(
    store: &dyn CaseStore,
    attr: &dyn Attributor,
    bar: &Bar,
    now: Timestamp,
) -> Result<Vec<OrgCompliance>> {
    Ok(compliance_of(&store.case_figures()?, attr, bar, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_and_nearest_rank_p90() {
        let s = spread(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!(s.median, Some(2.5));
        assert_eq!(s.p90, Some(4.0));
        let s = spread((1..=10).map(f64::from).collect());
        assert_eq!((s.median, s.p90), (Some(5.5), Some(9.0)));
        assert_eq!(spread(vec![]), Spread::default());
    }
}
