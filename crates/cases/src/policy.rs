//! The `[cases]` section of `botwatch.toml`: what opens a case and how fast it moves.

use botwatch_model::ClassificationType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Case policy. Every field has a default, so an empty `[cases]` section is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// `classification.type`s that open a case. The default is the set that means "a
    /// machine on this subscriber line is doing something it should not": infected-system,
    /// c2-server, malware-distribution, spam, brute-force, ddos and scanner (on access
    /// networks scanning is nearly always a bot such as Mirai spreading). Phishing and
    /// compromised websites are left out: they are hosting abuse, handled by takedown
    /// rather than by telling a subscriber to clean a machine. Vulnerable-service reports
    /// never open cases; they count against the security bar instead.
    pub open_types: Vec<String>,
    /// Batch new evidence this long before the first notice, so one notice carries the
    /// first burst of sightings instead of one notice per report.
    pub notify_delay_minutes: i64,
    /// Re-notify this often while evidence keeps arriving.
    pub renotify_days: i64,
    /// Escalate when this many new sightings arrive after a notice.
    pub escalate_after_repeats: u64,
    /// Escalate when the infection is still seen this long after the current stage began.
    pub escalate_after_days: i64,
    /// Put the subscriber in the walled garden on reaching this escalation level; `0`
    /// disables the walled garden.
    pub walled_garden_level: u8,
    /// Highest escalation level when the walled garden is disabled.
    pub max_level: u8,
    /// Close a case (reason `silent`) after this long without evidence.
    pub auto_close_days: i64,
    /// Most notices per episode of a case (an episode ends when the case closes).
    pub max_notices: u32,
    /// Sightings quoted in a notice.
    pub evidence_in_notice: usize,
    /// Right-hand side of the Message-IDs of notices.
    pub message_domain: String,
    /// Subscriber id → contact e-mail. When a case's subscriber is listed, the notice goes
    /// to the subscriber instead of the organisation's abuse addresses.
    pub subscriber_contacts: BTreeMap<String, String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            open_types: [
                ClassificationType::InfectedSystem,
                ClassificationType::C2Server,
                ClassificationType::MalwareDistribution,
                ClassificationType::Spam,
                ClassificationType::BruteForce,
                ClassificationType::Ddos,
                ClassificationType::Scanner,
            ]
            .iter()
            .map(|t| t.as_str().to_string())
            .collect(),
            notify_delay_minutes: 60,
            renotify_days: 7,
            escalate_after_repeats: 20,
            escalate_after_days: 14,
            walled_garden_level: 2,
            max_level: 3,
            auto_close_days: 30,
            max_notices: 6,
            evidence_in_notice: 10,
            message_domain: "botwatch.invalid".into(),
            subscriber_contacts: BTreeMap::new(),
        }
    }
}

impl Policy {
    /// Checks the values that would make the engine misbehave rather than just be strict.
    pub fn validate(&self) -> Result<(), String> {
        for t in &self.open_types {
            if ClassificationType::from_name(t).is_none() {
                return Err(format!("cases.open_types: unknown classification.type {t:?}"));
            }
        }
        let positive = [
            ("notify_delay_minutes", self.notify_delay_minutes, 0),
            ("renotify_days", self.renotify_days, 1),
            ("escalate_after_days", self.escalate_after_days, 1),
            ("auto_close_days", self.auto_close_days, 1),
        ];
        for (name, v, min) in positive {
            if v < min {
                return Err(format!("cases.{name} must be at least {min}"));
            }
        }
        if self.max_notices == 0 {
            return Err("cases.max_notices must be at least 1".into());
        }
        if self.escalate_after_repeats == 0 {
            return Err("cases.escalate_after_repeats must be at least 1".into());
        }
        Ok(())
    }

    /// Whether this type opens cases.
    pub fn opens(&self, t: ClassificationType) -> bool {
        self.open_types.iter().any(|x| ClassificationType::from_name(x) == Some(t))
    }

    pub(crate) fn notify_delay_us(&self) -> i64 {
        self.notify_delay_minutes.saturating_mul(60_000_000)
    }
    pub(crate) fn renotify_us(&self) -> i64 {
        days(self.renotify_days)
    }
    pub(crate) fn escalate_us(&self) -> i64 {
        days(self.escalate_after_days)
    }
    pub(crate) fn auto_close_us(&self) -> i64 {
        days(self.auto_close_days)
    }
}

pub(crate) fn days(d: i64) -> i64 {
    d.saturating_mul(86_400_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_is_the_defaults_and_fields_override() {
        let p: Policy = toml::from_str("").unwrap();
        assert_eq!(p, Policy::default());
        assert!(p.validate().is_ok());
        assert!(p.opens(ClassificationType::InfectedSystem));
        assert!(!p.opens(ClassificationType::Phishing));
        let p: Policy = toml::from_str(
            "open_types = ['phishing']\nwalled_garden_level = 0\n[subscriber_contacts]\nsub-1 = 'a@example.net'",
        )
        .unwrap();
        assert!(p.opens(ClassificationType::Phishing) && !p.opens(ClassificationType::Spam));
        assert_eq!(p.subscriber_contacts["sub-1"], "a@example.net");
        assert!(toml::from_str::<Policy>("bogus = 1").is_err());
        let bad = Policy { open_types: vec!["nonsense".into()], ..Policy::default() };
        assert!(bad.validate().is_err());
    }
}
