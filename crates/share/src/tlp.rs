//! TLP 2.0 as STIX 2.1 marking definitions: the OASIS objects (cti-stix-common-objects,
//! extension `extension-definition--60a3c5c5-…`), so every STIX tool knows them by id.

use botwatch_model::Tlp;

/// The OASIS TLP 2.0 marking extension.
pub const TLP2_EXTENSION: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";
/// The OASIS identity that created the TLP 2.0 marking definitions.
const TLP2_CREATOR: &str = "identity--b3bca3c2-1f3d-4b54-b44f-dac42c3a8f01";

/// The marking-definition id of a TLP level.
pub fn marking_id(t: Tlp) -> &'static str {
    match t {
        Tlp::Clear => "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        Tlp::Green => "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        Tlp::Amber => "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        Tlp::AmberStrict => "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        Tlp::Red => "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
    }
}

/// The value of `tlp_2_0` and of MISP's `tlp:` tag.
pub fn lower(t: Tlp) -> &'static str {
    match t {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber+strict",
        Tlp::Red => "red",
    }
}

/// The marking-definition object itself, as OASIS published it.
pub fn marking_object(t: Tlp) -> serde_json::Value {
    serde_json::json!({
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": marking_id(t),
        "created_by_ref": TLP2_CREATOR,
        "created": "2022-10-01T00:00:00.000Z",
        "name": format!("TLP:{}", t.as_str()),
        "extensions": {
            TLP2_EXTENSION: { "extension_type": "property-extension", "tlp_2_0": lower(t) }
        }
    })
}

/// Rank stored with objects and observations (0 CLEAR … 4 RED).
pub fn rank(t: Tlp) -> u8 {
    t as u8
}

pub fn from_rank(r: u8) -> Option<Tlp> {
    Some(match r {
        0 => Tlp::Clear,
        1 => Tlp::Green,
        2 => Tlp::Amber,
        3 => Tlp::AmberStrict,
        4 => Tlp::Red,
        _ => return None,
    })
}

pub const ALL: [Tlp; 5] = [Tlp::Clear, Tlp::Green, Tlp::Amber, Tlp::AmberStrict, Tlp::Red];

/// The TLP an incoming STIX object is marked with: the strictest of its TLP 1.0 and 2.0
/// markings (by the predefined ids; `None` when it has none of them).
pub fn of_object(o: &serde_json::Value) -> Option<Tlp> {
    o.get("object_marking_refs")?
        .as_array()?
        .iter()
        .filter_map(|m| m.as_str())
        .filter_map(|m| ALL.into_iter().find(|t| marking_id(*t) == m).or_else(|| tlp1(m)))
        .max()
}

/// The TLP 1.0 marking definitions STIX 2.1 predefines (§7.2.1.4), read on the way in.
pub fn tlp1(id: &str) -> Option<Tlp> {
    Some(match id {
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9" => Tlp::Clear,
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da" => Tlp::Green,
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82" => Tlp::Amber,
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed" => Tlp::Red,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_round_trip_in_order() {
        for (i, t) in ALL.iter().enumerate() {
            assert_eq!(rank(*t) as usize, i);
            assert_eq!(from_rank(i as u8), Some(*t));
        }
        assert_eq!(from_rank(5), None);
    }
}
