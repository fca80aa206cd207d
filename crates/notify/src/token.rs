//! Verifiable notices: a signed token in the notice's link lets a recipient check on the
//! desk's own portal that a notice is genuine, without a login and without the desk storing
//! anything per link.
//!
//! Format: `v1.<base64url(claims JSON)>.<base64url(HMAC-SHA256(secret, "v1." + claims part))>`.
//! The version is inside the signed input so a future format cannot be confused with this one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use botwatch_model::Timestamp;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const VERSION: &str = "v1";

/// What a token asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub message_id: String,
    pub case_id: Option<i64>,
    /// Seconds since the epoch after which the token no longer verifies.
    pub expires: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, unknown version or wrong signature: not issued with this secret.
    #[error("invalid token")]
    Invalid,
    /// Genuine but past its expiry.
    #[error("expired token")]
    Expired,
}

fn mac(secret: &[u8], signed: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    m.update(signed.as_bytes());
    m
}

/// Signs `claims` with `secret`.
pub fn sign(secret: &[u8], claims: &Claims) -> String {
    let body = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signed = format!("{VERSION}.{body}");
    let tag = B64.encode(mac(secret, &signed).finalize().into_bytes());
    format!("{signed}.{tag}")
}

/// Checks a token's signature (in constant time) and expiry.
pub fn verify(secret: &[u8], token: &str, now: Timestamp) -> Result<Claims, TokenError> {
    // An empty or short key signs nothing worth believing: anyone could have made the link.
    if secret.len() < 16 {
        return Err(TokenError::Invalid);
    }
    let token = token.trim();
    let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
    let (version, body) = signed.split_once('.').ok_or(TokenError::Invalid)?;
    if version != VERSION {
        return Err(TokenError::Invalid);
    }
    let tag = B64.decode(tag).map_err(|_| TokenError::Invalid)?;
    // verify_slice compares in constant time, so timing does not leak how much matched.
    mac(secret, signed).verify_slice(&tag).map_err(|_| TokenError::Invalid)?;
    let raw = B64.decode(body).map_err(|_| TokenError::Invalid)?;
    let claims: Claims = serde_json::from_slice(&raw).map_err(|_| TokenError::Invalid)?;
    if now.secs() > claims.expires {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims { message_id: "case-1-1@bw.test".into(), case_id: Some(1), expires: 1000 }
    }

    const KEY: &[u8] = b"a-key-of-sixteen+bytes";

    #[test]
    fn round_trip_expiry_and_tampering() {
        let t = sign(KEY, &claims());
        assert!(t.starts_with("v1."));
        assert_eq!(verify(KEY, &t, Timestamp::from_secs(999)), Ok(claims()));
        assert_eq!(verify(KEY, &t, Timestamp::from_secs(1001)), Err(TokenError::Expired));
        assert_eq!(verify(b"another-key-of-16-bytes", &t, Timestamp::from_secs(0)), Err(TokenError::Invalid));
        let forged = sign(KEY, &Claims { case_id: Some(2), ..claims() });
        let (_, good_tag) = t.rsplit_once('.').unwrap();
        let (forged_signed, _) = forged.rsplit_once('.').unwrap();
        let spliced = format!("{forged_signed}.{good_tag}");
        assert_eq!(verify(KEY, &spliced, Timestamp::from_secs(0)), Err(TokenError::Invalid));
        assert_eq!(
            verify(KEY, &t.replacen("v1", "v2", 1), Timestamp::from_secs(0)),
            Err(TokenError::Invalid)
        );
        for junk in ["", ".", "v1..", "v1.x.y", "v1.%%%.abc"] {
            assert_eq!(verify(KEY, junk, Timestamp::from_secs(0)), Err(TokenError::Invalid));
        }
    }

    /// Issue 11 (forgeable links): a link signed with an empty or short key never verifies,
    /// so a deployment without a key cannot vouch for a forged one.
    #[test]
    fn empty_and_short_keys_verify_nothing() {
        for weak in [&b""[..], b"change-me"] {
            let t = sign(weak, &claims());
            assert_eq!(verify(weak, &t, Timestamp::from_secs(0)), Err(TokenError::Invalid));
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_junk(s in ".{0,200}") {
            let _ = verify(b"k", &s, Timestamp::from_secs(0));
        }
    }
}
