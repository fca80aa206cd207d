//! The minimum security bar as a versioned, signed document: a national centre sets it,
//! publishes it to partners, and carriers in several countries are measured against the same
//! version.
//!
//! The document is a STIX 2.1 object of a new type, `x-botwatch-security-bar` (declared by a
//! published extension definition like the aggregates). Its `signature` is Ed25519 (ring)
//! over the canonical JSON of `{bar, issued, issuer, version}` (keys sorted, no spaces), so
//! any field changed in transit fails verification. A node adopts a partner's bar only
//! against the public key configured for that partner (`[[partners]] bar_key`), never the
//! key the document carries.

use crate::gate::Label;
use crate::ids;
use crate::stix::Obj;
use base64::Engine;
use botwatch_model::Tlp;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

pub const OBJECT_TYPE: &str = "x-botwatch-security-bar";
pub const EXTENSION_VERSION: &str = "1.0";

/// A signed bar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedBar {
    pub issuer: String,
    pub version: String,
    /// When it was signed (STIX timestamp).
    pub issued: String,
    /// The `[bar]` thresholds, as JSON.
    pub bar: serde_json::Value,
    /// Base64 of the Ed25519 public key that signed it.
    pub public_key: String,
    /// Base64 of the signature.
    pub signature: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BarError {
    #[error("the signing key is not a valid Ed25519 PKCS#8 key")]
    Key,
    #[error("the signature does not verify against the partner's key")]
    Signature,
    #[error("signed with another key than the one configured for this partner")]
    OtherKey,
    #[error("not base64: {0}")]
    Encoding(&'static str),
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The bytes signed: canonical JSON (serde_json's maps keep keys sorted) of the four fields.
fn signed_bytes(issuer: &str, version: &str, issued: &str, bar: &serde_json::Value) -> Vec<u8> {
    let v = serde_json::json!({"bar": bar, "issued": issued, "issuer": issuer, "version": version});
    v.to_string().into_bytes()
}

/// A new signing key (PKCS#8), from the OS's random numbers.
pub fn new_key() -> Result<Vec<u8>, BarError> {
    let rng = ring::rand::SystemRandom::new();
    Ed25519KeyPair::generate_pkcs8(&rng).map(|d| d.as_ref().to_vec()).map_err(|_| BarError::Key)
}

pub fn public_key(pkcs8: &[u8]) -> Result<String, BarError> {
    let kp = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| BarError::Key)?;
    Ok(b64().encode(kp.public_key().as_ref()))
}

pub fn sign(
    pkcs8: &[u8],
    issuer: &str,
    version: &str,
    issued: &str,
    bar: serde_json::Value,
) -> Result<SignedBar, BarError> {
    let kp = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| BarError::Key)?;
    let sig = kp.sign(&signed_bytes(issuer, version, issued, &bar));
    Ok(SignedBar {
        issuer: issuer.into(),
        version: version.into(),
        issued: issued.into(),
        bar,
        public_key: b64().encode(kp.public_key().as_ref()),
        signature: b64().encode(sig.as_ref()),
    })
}

/// Verifies against `trusted_key` (base64), the key configured for the issuer.
pub fn verify(doc: &SignedBar, trusted_key: &str) -> Result<(), BarError> {
    if doc.public_key.trim() != trusted_key.trim() {
        return Err(BarError::OtherKey);
    }
    let key = b64().decode(trusted_key.trim()).map_err(|_| BarError::Encoding("key"))?;
    let sig = b64().decode(doc.signature.trim()).map_err(|_| BarError::Encoding("signature"))?;
    UnparsedPublicKey::new(&ED25519, key)
        .verify(&signed_bytes(&doc.issuer, &doc.version, &doc.issued, &doc.bar), &sig)
        .map_err(|_| BarError::Signature)
}

pub fn extension_id() -> String {
    ids::sdo("extension-definition", &[OBJECT_TYPE, EXTENSION_VERSION])
}

pub fn extension_definition() -> serde_json::Value {
    ids::extension_definition(
        OBJECT_TYPE,
        EXTENSION_VERSION,
        "botwatch minimum security bar",
        "A versioned minimum security bar for carriers (time to notice, share notified, days to close, re-infection rate, infections per 1,000 subscribers), signed with Ed25519 by the centre that sets it.",
    )
}

/// The document as a STIX object (CLEAR: a bar is meant to be adopted widely).
pub fn to_object(doc: &SignedBar, producer_identity: &str) -> Obj {
    let v = serde_json::json!({
        "type": OBJECT_TYPE, "spec_version": "2.1",
        "id": ids::sdo(OBJECT_TYPE, &[&doc.issuer, &doc.version]),
        "created_by_ref": producer_identity,
        "created": doc.issued, "modified": doc.issued,
        "name": format!("Minimum security bar {} of {}", doc.version, doc.issuer),
        "issuer": doc.issuer, "bar_version": doc.version, "issued": doc.issued,
        "bar": doc.bar, "public_key": doc.public_key, "signature": doc.signature,
        "signature_algorithm": "Ed25519",
        "object_marking_refs": [crate::tlp::marking_id(Tlp::Clear)],
        "extensions": { extension_id(): { "extension_type": "new-sdo" } },
    });
    Obj::from_value(v, Label { tlp: Some(Tlp::Clear), ..Default::default() })
}

pub fn from_object(v: &serde_json::Value) -> Option<SignedBar> {
    if v.get("type")?.as_str()? != OBJECT_TYPE {
        return None;
    }
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    Some(SignedBar {
        issuer: s("issuer")?,
        version: s("bar_version")?,
        issued: s("issued")?,
        bar: v.get("bar")?.clone(),
        public_key: s("public_key")?,
        signature: s("signature")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_bars_verify_and_tampering_fails() {
        let k = new_key().unwrap();
        let doc = sign(
            &k,
            "CERT-A",
            "2026.1",
            "2026-12-04T00:00:00.000Z",
            serde_json::json!({"max_infections_per_1000": 5.0}),
        )
        .unwrap();
        let pk = public_key(&k).unwrap();
        assert_eq!(verify(&doc, &pk), Ok(()));
        let back = from_object(&serde_json::from_str(&to_object(&doc, "identity--x").body).unwrap()).unwrap();
        assert_eq!(back, doc);
        assert_eq!(verify(&back, &pk), Ok(()));
        let mut t = doc.clone();
        t.bar = serde_json::json!({"max_infections_per_1000": 50.0});
        assert_eq!(verify(&t, &pk), Err(BarError::Signature));
        let mut t = doc.clone();
        t.version = "2026.2".into();
        assert_eq!(verify(&t, &pk), Err(BarError::Signature));
        let other = public_key(&new_key().unwrap()).unwrap();
        assert_eq!(verify(&doc, &other), Err(BarError::OtherKey));
    }
}
