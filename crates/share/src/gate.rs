//! The one choke point: whether an object may go to a partner.
//!
//! Every way out (a STIX bundle, a TAXII page, a push, a MISP feed, federated aggregates)
//! asks [`admit`] for each object with the object's [`Label`] and the recipient's
//! [`Entitlement`]. The rules, in TLP 2.0's terms:
//! - TLP:RED never leaves the node;
//! - nothing above the partner's entitlement leaves;
//! - TLP:AMBER+STRICT goes only to a partner of this node's own organisation;
//! - unmarked objects count as the configured default (AMBER unless set);
//! - sightings only to partners entitled to them, addresses at home (inside the
//!   constituency) only to partners entitled to those, subscriber data to nobody.

use botwatch_model::Tlp;
use serde::{Deserialize, Serialize};

/// What an object carries that decides where it may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Label {
    /// `None`: unmarked.
    pub tlp: Option<Tlp>,
    /// A sighting (or the observed data behind one).
    pub sighting: bool,
    /// Names an address inside this node's constituency.
    pub home: bool,
    /// Names a subscriber (never leaves).
    pub subscriber: bool,
}

impl Label {
    pub const SIGHTING: u8 = 1;
    pub const HOME: u8 = 2;
    pub const SUBSCRIBER: u8 = 4;

    pub fn flags(&self) -> u8 {
        ((self.sighting as u8) * Self::SIGHTING)
            | ((self.home as u8) * Self::HOME)
            | ((self.subscriber as u8) * Self::SUBSCRIBER)
    }

    pub fn from_parts(tlp: Option<u8>, flags: u8) -> Label {
        Label {
            tlp: tlp.and_then(crate::tlp::from_rank),
            sighting: flags & Self::SIGHTING != 0,
            home: flags & Self::HOME != 0,
            subscriber: flags & Self::SUBSCRIBER != 0,
        }
    }
}

/// What a recipient may receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entitlement {
    /// The highest TLP it is entitled to (RED is never sent whatever this says).
    pub max_tlp: Tlp,
    pub sightings: bool,
    pub home_addresses: bool,
    /// The recipient belongs to this node's own organisation (AMBER+STRICT may go).
    pub same_organisation: bool,
    /// How unmarked objects count.
    pub default_tlp: Tlp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Withheld {
    Red,
    AboveEntitlement,
    AmberStrictOutsideOrganisation,
    Sighting,
    HomeAddress,
    Subscriber,
}

impl Withheld {
    pub fn as_str(self) -> &'static str {
        match self {
            Withheld::Red => "TLP:RED never leaves",
            Withheld::AboveEntitlement => "above the partner's TLP entitlement",
            Withheld::AmberStrictOutsideOrganisation => "TLP:AMBER+STRICT outside the organisation",
            Withheld::Sighting => "sightings not shared with this partner",
            Withheld::HomeAddress => "address inside the constituency",
            Withheld::Subscriber => "subscriber data never leaves",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    Withhold(Withheld),
}

impl Verdict {
    pub fn sends(self) -> bool {
        self == Verdict::Send
    }
}

/// The TLP an object is handled under.
pub fn effective(label: &Label, e: &Entitlement) -> Tlp {
    label.tlp.unwrap_or(e.default_tlp)
}

pub fn admit(e: &Entitlement, label: &Label) -> Verdict {
    use Verdict::Withhold as W;
    if label.subscriber {
        return W(Withheld::Subscriber);
    }
    let t = effective(label, e);
    if t == Tlp::Red {
        return W(Withheld::Red);
    }
    if t > e.max_tlp {
        return W(Withheld::AboveEntitlement);
    }
    if t == Tlp::AmberStrict && !e.same_organisation {
        return W(Withheld::AmberStrictOutsideOrganisation);
    }
    if label.sighting && !e.sightings {
        return W(Withheld::Sighting);
    }
    if label.home && !e.home_addresses {
        return W(Withheld::HomeAddress);
    }
    Verdict::Send
}

/// The same rules as an SQL condition over `tlp` (rank, NULL unmarked) and `flags` columns,
/// so a store can skip what [`admit`] would refuse without reading it; callers still ask
/// [`admit`] for every row they send.
pub fn sql_condition(e: &Entitlement) -> String {
    let d = crate::tlp::rank(e.default_tlp);
    let max = crate::tlp::rank(e.max_tlp.min(Tlp::AmberStrict));
    let mut c = format!("COALESCE(tlp, {d}) <= {max} AND COALESCE(tlp, {d}) < 4");
    if !e.same_organisation {
        c.push_str(&format!(" AND COALESCE(tlp, {d}) <> 3"));
    }
    let mut forbidden = Label::SUBSCRIBER;
    if !e.sightings {
        forbidden |= Label::SIGHTING;
    }
    if !e.home_addresses {
        forbidden |= Label::HOME;
    }
    c.push_str(&format!(" AND (flags & {forbidden}) = 0"));
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlp::ALL;
    use proptest::prelude::*;

    fn tlp() -> impl Strategy<Value = Tlp> {
        (0u8..5).prop_map(|r| crate::tlp::from_rank(r).unwrap())
    }

    fn label() -> impl Strategy<Value = Label> {
        (proptest::option::of(tlp()), any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(tlp, sighting, home, subscriber)| Label { tlp, sighting, home, subscriber })
    }

    fn entitlement() -> impl Strategy<Value = Entitlement> {
        (tlp(), any::<bool>(), any::<bool>(), any::<bool>(), tlp()).prop_map(|(max_tlp, s, h, o, d)| {
            Entitlement { max_tlp, sightings: s, home_addresses: h, same_organisation: o, default_tlp: d }
        })
    }

    proptest! {
        // The invariant, over random objects × partners.
        #[test]
        fn nothing_leaves_above_entitlement(l in label(), e in entitlement()) {
            let t = effective(&l, &e);
            if admit(&e, &l).sends() {
                prop_assert!(t != Tlp::Red, "RED sent");
                prop_assert!(t <= e.max_tlp, "above entitlement");
                prop_assert!(t != Tlp::AmberStrict || e.same_organisation, "AMBER+STRICT outside");
                prop_assert!(!l.subscriber);
                prop_assert!(!l.sighting || e.sightings);
                prop_assert!(!l.home || e.home_addresses);
            }
        }

        // The SQL pre-filter refuses exactly what admit refuses.
        #[test]
        fn sql_condition_agrees_with_admit(l in label(), e in entitlement()) {
            let conn = rusqlite_free_eval(&sql_condition(&e), l.tlp.map(crate::tlp::rank), l.flags());
            prop_assert_eq!(conn, admit(&e, &l).sends());
        }
    }

    #[test]
    fn red_never_leaves_even_to_a_red_partner() {
        for o in [false, true] {
            let e = Entitlement {
                max_tlp: Tlp::Red,
                sightings: true,
                home_addresses: true,
                same_organisation: o,
                default_tlp: Tlp::Clear,
            };
            assert_eq!(
                admit(&e, &Label { tlp: Some(Tlp::Red), ..Default::default() }),
                Verdict::Withhold(Withheld::Red)
            );
            for t in ALL.iter().filter(|t| **t != Tlp::Red) {
                let l = Label { tlp: Some(*t), ..Default::default() };
                assert_eq!(admit(&e, &l).sends(), *t != Tlp::AmberStrict || o, "{t:?}");
            }
        }
    }

    /// A tiny evaluator for the exact shape `sql_condition` writes, so the agreement test
    /// needs no database: `COALESCE(tlp, d) <= m AND COALESCE(tlp, d) < 4 [AND COALESCE(tlp,
    /// d) <> 3] AND (flags & f) = 0`.
    fn rusqlite_free_eval(cond: &str, tlp: Option<u8>, flags: u8) -> bool {
        let mut ok = true;
        for part in cond.split(" AND ") {
            let part = part.trim();
            if let Some(rest) = part.strip_prefix("COALESCE(tlp, ") {
                let (d, rest) = rest.split_once(')').unwrap();
                let v = tlp.unwrap_or(d.parse().unwrap()) as i64;
                let rest = rest.trim();
                let (op, n) = rest.split_once(' ').unwrap();
                let n: i64 = n.parse().unwrap();
                ok &= match op {
                    "<=" => v <= n,
                    "<" => v < n,
                    "<>" => v != n,
                    _ => panic!("{op}"),
                };
            } else if let Some(rest) = part.strip_prefix("(flags & ") {
                let (f, _) = rest.split_once(')').unwrap();
                ok &= flags & f.parse::<u8>().unwrap() == 0;
            } else {
                panic!("unexpected {part}");
            }
        }
        ok
    }
}
