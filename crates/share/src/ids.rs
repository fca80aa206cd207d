//! Deterministic STIX identifiers: UUIDv5 over canonical values, so exporting the same
//! store twice, or two nodes exporting the same indicator, give the same ids.
//!
//! Cyber-observables follow STIX 2.1 §2.9: the STIX namespace over the JCS-canonical JSON of
//! the contributing properties. For the single string member used here (`value`),
//! serde_json's output is already the JCS form (members sorted, strings UTF-8 with the
//! same escapes), so no canonicaliser crate is pulled in for it.

use uuid::Uuid;

/// STIX 2.1 §2.9: the namespace of deterministic cyber-observable ids.
pub const STIX_SCO_NAMESPACE: Uuid = Uuid::from_u128(0x00abedb4_aa42_466c_9c01_fed23315a9b7);
/// botwatch's namespace for the domain objects it names (uuid5(URL, "https://botwatch/stix")).
pub fn namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"https://botwatch/stix")
}

/// `type--uuid5(botwatch, parts joined by '|')`.
pub fn sdo(ty: &str, parts: &[&str]) -> String {
    let mut key = String::with_capacity(64);
    key.push_str(ty);
    for p in parts {
        key.push('|');
        key.push_str(p);
    }
    format!("{ty}--{}", Uuid::new_v5(&namespace(), key.as_bytes()))
}

/// A cyber-observable with `value` as its only id-contributing property (ipv4-addr,
/// ipv6-addr, domain-name, url).
pub fn sco(ty: &str, value: &str) -> String {
    let canon = serde_json::json!({ "value": value }).to_string();
    format!("{ty}--{}", Uuid::new_v5(&STIX_SCO_NAMESPACE, canon.as_bytes()))
}

/// The project's identity, creator of its extension definitions: the same on every node.
pub fn project_identity_id() -> String {
    sdo("identity", &["botwatch project"])
}

/// A published `new-sdo` extension definition of botwatch's (its id from the object type and
/// version, so every node names it alike).
pub fn extension_definition(
    object_type: &str,
    version: &str,
    name: &str,
    description: &str,
) -> serde_json::Value {
    serde_json::json!({
        "type": "extension-definition", "spec_version": "2.1",
        "id": sdo("extension-definition", &[object_type, version]),
        "created_by_ref": project_identity_id(),
        "created": crate::stix::REFERENCE_TIME, "modified": crate::stix::REFERENCE_TIME,
        "name": name,
        "description": description,
        "schema": format!("https://github.com/botwatch/botwatch/blob/main/docs/stix/{object_type}.json"),
        "version": version,
        "extension_types": ["new-sdo"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(sdo("indicator", &["a"]), sdo("indicator", &["a"]));
        assert_ne!(sdo("indicator", &["a"]), sdo("indicator", &["b"]));
        assert_ne!(sdo("indicator", &["a", "b"]), sdo("indicator", &["a|b", ""]));
        // The ids python-stix2 3.0.2 gives the same observables.
        assert_eq!(sco("ipv4-addr", "198.51.100.3"), "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4");
        assert_eq!(sco("domain-name", "example.com"), "domain-name--bedb4899-d24b-5401-bc86-8f6b4cc18ec7");
        assert_eq!(sco("url", "http://x/'a'"), "url--b4a2dfdd-cbb5-5da0-abca-8c05a283776c");
    }
}
