//! IntelMQ's classification: taxonomy and type (the RSIT-based list IntelMQ 3 uses).
//!
//! The type determines the taxonomy, so only the type is stored. Older names that feeds and
//! Shadowserver's IntelMQ mapping still emit ("blacklist", "botnet drone", "c&c", …) are
//! accepted and mapped to the current name.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! types {
    ($( $variant:ident = $name:literal in $tax:literal ),* $(,)?) => {
        /// `classification.type`.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
        pub enum ClassificationType { $( $variant ),* }

        impl ClassificationType {
            pub const ALL: &'static [ClassificationType] = &[$( ClassificationType::$variant ),*];
            pub fn as_str(self) -> &'static str {
                match self { $( ClassificationType::$variant => $name ),* }
            }
            /// `classification.taxonomy`.
            pub fn taxonomy(self) -> &'static str {
                match self { $( ClassificationType::$variant => $tax ),* }
            }
            fn from_current(s: &str) -> Option<Self> {
                match s { $( $name => Some(ClassificationType::$variant), )* _ => None }
            }
        }
    };
}

types! {
    Spam = "spam" in "abusive-content",
    HarmfulSpeech = "harmful-speech" in "abusive-content",
    Violence = "violence" in "abusive-content",
    InfectedSystem = "infected-system" in "malicious-code",
    C2Server = "c2-server" in "malicious-code",
    MalwareDistribution = "malware-distribution" in "malicious-code",
    MalwareConfiguration = "malware-configuration" in "malicious-code",
    Scanner = "scanner" in "information-gathering",
    Sniffing = "sniffing" in "information-gathering",
    SocialEngineering = "social-engineering" in "information-gathering",
    IdsAlert = "ids-alert" in "intrusion-attempts",
    BruteForce = "brute-force" in "intrusion-attempts",
    Exploit = "exploit" in "intrusion-attempts",
    PrivilegedAccountCompromise = "privileged-account-compromise" in "intrusions",
    UnprivilegedAccountCompromise = "unprivileged-account-compromise" in "intrusions",
    ApplicationCompromise = "application-compromise" in "intrusions",
    SystemCompromise = "system-compromise" in "intrusions",
    Burglary = "burglary" in "intrusions",
    Ddos = "ddos" in "availability",
    Dos = "dos" in "availability",
    Outage = "outage" in "availability",
    Sabotage = "sabotage" in "availability",
    UnauthorisedInformationAccess = "unauthorised-information-access" in "information-content-security",
    UnauthorisedInformationModification = "unauthorised-information-modification" in "information-content-security",
    DataLoss = "data-loss" in "information-content-security",
    DataLeak = "data-leak" in "information-content-security",
    UnauthorizedUseOfResources = "unauthorized-use-of-resources" in "fraud",
    Copyright = "copyright" in "fraud",
    Masquerade = "masquerade" in "fraud",
    Phishing = "phishing" in "fraud",
    WeakCrypto = "weak-crypto" in "vulnerable",
    DdosAmplifier = "ddos-amplifier" in "vulnerable",
    PotentiallyUnwantedAccessible = "potentially-unwanted-accessible" in "vulnerable",
    InformationDisclosure = "information-disclosure" in "vulnerable",
    VulnerableSystem = "vulnerable-system" in "vulnerable",
    Other = "other" in "other",
    Undetermined = "undetermined" in "other",
    Tor = "tor" in "other",
    Blocklist = "blocklist" in "other",
    Test = "test" in "test",
}

impl ClassificationType {
    /// Accepts current names and the older names still found in feeds and mappings.
    pub fn from_name(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Some(t) = Self::from_current(s) {
            return Some(t);
        }
        let lower = s.to_ascii_lowercase();
        if let Some(t) = Self::from_current(&lower) {
            return Some(t);
        }
        use ClassificationType::*;
        Some(match lower.as_str() {
            "blacklist" => Blocklist,
            "botnet drone" | "infected system" | "malware" | "infected-host" => InfectedSystem,
            "c&c" | "c2server" | "c2 server" => C2Server,
            "malware distribution" | "malware-distribution-site" => MalwareDistribution,
            "vulnerable service" | "vulnerable client" | "vulnerable-service" | "vulnerable-client" => {
                VulnerableSystem
            }
            "compromised" => SystemCompromise,
            "leak" => DataLeak,
            "unauthorized-command" | "unauthorized-login" => SystemCompromise,
            "ddos amplifier" => DdosAmplifier,
            "proxy" => PotentiallyUnwantedAccessible,
            "dropzone" => Other,
            "defacement" => UnauthorisedInformationModification,
            "unknown" => Undetermined,
            _ => return None,
        })
    }
}

impl Serialize for ClassificationType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ClassificationType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ClassificationType::from_name(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown classification.type: {s}")))
    }
}

/// Traffic Light Protocol 2.0 labels.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Tlp {
    Clear,
    Green,
    Amber,
    AmberStrict,
    Red,
}

impl Tlp {
    pub fn as_str(self) -> &'static str {
        match self {
            Tlp::Clear => "CLEAR",
            Tlp::Green => "GREEN",
            Tlp::Amber => "AMBER",
            Tlp::AmberStrict => "AMBER+STRICT",
            Tlp::Red => "RED",
        }
    }
    /// Accepts TLP 1.0 and 2.0 spellings ("WHITE" is 2.0's CLEAR), with or without "TLP:".
    pub fn from_name(s: &str) -> Option<Tlp> {
        let u = s.trim().to_ascii_uppercase();
        let u = u.strip_prefix("TLP:").or_else(|| u.strip_prefix("TLP-")).unwrap_or(&u).trim().to_string();
        Some(match u.as_str() {
            "CLEAR" | "WHITE" => Tlp::Clear,
            "GREEN" => Tlp::Green,
            "AMBER" => Tlp::Amber,
            "AMBER+STRICT" | "AMBER-STRICT" => Tlp::AmberStrict,
            "RED" => Tlp::Red,
            _ => return None,
        })
    }
}

impl Serialize for Tlp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Tlp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Tlp::from_name(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown TLP: {s}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_roundtrips_and_has_a_taxonomy() {
        for t in ClassificationType::ALL {
            assert_eq!(ClassificationType::from_name(t.as_str()), Some(*t));
            assert!(!t.taxonomy().is_empty());
        }
        assert_eq!(ClassificationType::from_name("blacklist"), Some(ClassificationType::Blocklist));
        assert_eq!(ClassificationType::from_name("Botnet Drone"), Some(ClassificationType::InfectedSystem));
    }

    #[test]
    fn tlp_spellings() {
        assert_eq!(Tlp::from_name("TLP:WHITE"), Some(Tlp::Clear));
        assert_eq!(Tlp::from_name("amber+strict"), Some(Tlp::AmberStrict));
        assert_eq!(Tlp::from_name("Green"), Some(Tlp::Green));
        assert_eq!(Tlp::from_name("purple"), None);
    }
}
