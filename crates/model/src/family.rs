//! Malware family names, canonicalised.
//!
//! Every provider names families its own way: abuse.ch calls Emotet "Heodo", Malpedia writes
//! "win.emotet", Shadowserver "emotet" or "geodo", Microsoft "B106-…" codes. Counting
//! infections per family needs one name, so every parser passes names through
//! [`FamilyTable::canonical`]. The table below is the built-in knowledge; deployments add
//! their own aliases from config.

use compact_str::CompactString;
use std::collections::HashMap;

/// (canonical name, aliases). Aliases are compared after [`normalise`].
const BUILTIN: &[(&str, &[&str])] = &[
    ("andromeda", &["gamarue", "wauchos", "andromeda"]),
    ("avalanche", &["avalanche"]),
    ("ave_maria", &["ave_maria", "avemaria", "warzone", "warzone_rat"]),
    ("bazarloader", &["bazarbackdoor", "bazar", "bazarcall", "team9"]),
    ("cobalt_strike", &["cobaltstrike", "cobalt_strike", "beacon", "agentemis"]),
    ("conficker", &["downadup", "kido", "downup", "conficker"]),
    ("dridex", &["dridex", "bugat_v5"]),
    ("emotet", &["heodo", "geodo", "emotet", "mealybug"]),
    ("feodo", &["feodo", "cridex", "bugat"]),
    ("gozi", &["ursnif", "isfb", "papras", "snifula", "gozi", "gozi_isfb", "dreambot"]),
    ("icedid", &["bokbot", "icedid"]),
    ("mirai", &["mirai", "iotmirai"]),
    ("necurs", &["necurs"]),
    ("qakbot", &["qbot", "quakbot", "pinkslipbot", "qakbot"]),
    ("ramnit", &["nimnul", "ramnit"]),
    ("sality", &["sality", "kuku"]),
    ("urlzone", &["urlzone", "bebloh", "shiotob"]),
    ("trickbot", &["trickster", "trickloader", "thetrick", "trickbot"]),
    ("virut", &["virut", "virtob"]),
    ("zeus", &["zbot", "zeus"]),
    ("zeus_gameover", &["gameover", "gameover_zeus", "goz", "newgoz", "p2p_zeus", "peer_to_peer_zeus"]),
    ("zloader", &["silent_night", "zloader", "terdot", "deloader"]),
];

/// Lowercase, Malpedia's platform prefix removed ("win.", "elf.", …), runs of space, dot
/// and dash folded into one underscore.
pub fn normalise(name: &str) -> CompactString {
    let n = name.trim();
    let lower = n.to_ascii_lowercase();
    let body = ["win.", "elf.", "osx.", "apk.", "js.", "ps1.", "py.", "jar.", "vbs.", "php."]
        .iter()
        .find_map(|p| lower.strip_prefix(p))
        .unwrap_or(&lower);
    let mut out = CompactString::default();
    let mut gap = false;
    for c in body.chars() {
        if c == ' ' || c == '-' || c == '_' || c == '.' || c == '/' {
            gap = !out.is_empty();
        } else {
            if gap {
                out.push('_');
                gap = false;
            }
            out.push(c);
        }
    }
    out
}

/// Alias → canonical family name.
#[derive(Clone, Debug)]
pub struct FamilyTable {
    map: HashMap<CompactString, CompactString>,
}

impl Default for FamilyTable {
    fn default() -> Self {
        let mut t = FamilyTable { map: HashMap::new() };
        for (canon, aliases) in BUILTIN {
            for a in *aliases {
                t.add_alias(a, canon);
            }
        }
        t
    }
}

impl FamilyTable {
    pub fn add_alias(&mut self, alias: &str, canonical: &str) {
        self.map.insert(normalise(alias), normalise(canonical));
    }

    /// The canonical name; unknown names come back normalised. `None` for empty names and
    /// the placeholders feeds use for "unknown".
    pub fn canonical(&self, name: &str) -> Option<CompactString> {
        let n = normalise(name);
        if n.is_empty() || matches!(n.as_str(), "unknown" | "none" | "null" | "n_a" | "na" | "?") {
            return None;
        }
        if let Some(c) = self.map.get(&n) {
            return Some(c.clone());
        }
        // Shadowserver's variants ("victorygate.b", "necurs_p2p") fold onto their family when
        // the stem is known.
        if let Some((stem, _)) = n.split_once('_')
            && let Some(c) = self.map.get(stem)
        {
            return Some(c.clone());
        }
        Some(n)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emotet_aliases_collapse() {
        let t = FamilyTable::default();
        for n in ["Heodo", "geodo", "win.emotet", "Emotet"] {
            assert_eq!(t.canonical(n).as_deref(), Some("emotet"), "{n}");
        }
        assert_eq!(t.canonical("Cobalt Strike").as_deref(), Some("cobalt_strike"));
        assert_eq!(t.canonical("necurs_p2p").as_deref(), Some("necurs"));
        assert_eq!(t.canonical("victorygate.b").as_deref(), Some("victorygate_b"));
        assert_eq!(t.canonical("unknown"), None);
        assert_eq!(t.canonical("  "), None);
    }
}
