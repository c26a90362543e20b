//! DSSE envelopes (Dead Simple Signing Envelope, v1): how attestations such as the
//! provenance statement are signed.
//!
//! An envelope is JSON: `payloadType`, the `payload` in standard base64, and `signatures`,
//! each `{keyid, sig}` with `sig` the base64 DER signature. What is signed is not the JSON
//! but the pre-authentication encoding [`pae`] of type and payload (`DSSEv1 <len> <type>
//! <len> <payload>`), so that neither can be swapped without breaking the signature.
//!
//! `keyid` is the hex SHA-256 of the signer's public key in SPKI DER
//! ([`VerifyingKey::key_id`]): a verifier holding several keys can tell which one signed.
//! It is a hint, never trusted: [`open`] checks every signature whose key id is empty or
//! is its key's, and accepts the envelope only if one of them verifies.
//!
//! Envelopes are read as hostile input: at most [`ENVELOPE_LIMIT`] bytes and
//! [`MAX_SIGNATURES`] signatures.

use super::keys::{SigningKey, VerifyingKey};
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;

/// The largest envelope read (an SBOM of a large image, in base64, stays well below).
pub const ENVELOPE_LIMIT: usize = 64 << 20;
/// The most signatures an envelope may carry for [`open`] to look at.
pub const MAX_SIGNATURES: usize = 16;

/// What is wrong with an envelope.
#[derive(Debug, thiserror::Error)]
pub enum DsseError {
    #[error("the envelope is larger than {ENVELOPE_LIMIT} bytes")]
    TooLarge,
    #[error("not a DSSE envelope: {0}")]
    Malformed(String),
    #[error("the envelope has {0} signatures, more than the {MAX_SIGNATURES} looked at")]
    TooManySignatures(usize),
    #[error("the envelope has no signature by this key (key id {key_id})")]
    NotSigned { key_id: String },
    #[error("the envelope's signature does not verify with this key (key id {key_id}): the payload or its type was changed, or another key signed it")]
    BadSignature { key_id: String },
}

impl crate::error_class::Classify for DsseError {
    fn class(&self) -> crate::error_class::ErrorClass {
        match self {
            // An attestation that does not check out is a failed verification, not a
            // wrong command line.
            DsseError::TooLarge
            | DsseError::Malformed(_)
            | DsseError::TooManySignatures(_)
            | DsseError::NotSigned { .. }
            | DsseError::BadSignature { .. } => crate::error_class::ErrorClass::Failure,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct EnvelopeSignature {
    #[serde(default)]
    keyid: String,
    sig: String,
}

/// The pre-authentication encoding the signature covers:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload`, lengths in ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    bytes.extend_from_slice(payload);
    bytes
}

/// Signs `payload` of `payload_type` with `key`: the envelope's JSON bytes.
pub fn seal(payload_type: &str, payload: &[u8], key: &SigningKey) -> Vec<u8> {
    let signature = key.sign(&pae(payload_type, payload));
    let envelope = Envelope {
        payload_type: payload_type.to_string(),
        payload: STANDARD.encode(payload),
        signatures: vec![EnvelopeSignature {
            keyid: key.verifying_key().key_id(),
            sig: STANDARD.encode(signature),
        }],
    };
    serde_json::to_vec(&envelope).expect("an envelope always serializes")
}

/// Checks an envelope against `key` and returns its payload type and payload.
pub fn open(envelope: &[u8], key: &VerifyingKey) -> Result<(String, Vec<u8>), DsseError> {
    if envelope.len() > ENVELOPE_LIMIT {
        return Err(DsseError::TooLarge);
    }
    let envelope: Envelope =
        serde_json::from_slice(envelope).map_err(|e| DsseError::Malformed(e.to_string()))?;
    if envelope.signatures.len() > MAX_SIGNATURES {
        return Err(DsseError::TooManySignatures(envelope.signatures.len()));
    }
    let payload = decode(&envelope.payload)
        .ok_or_else(|| DsseError::Malformed("the payload is not base64".into()))?;
    let signed = pae(&envelope.payload_type, &payload);
    let key_id = key.key_id();
    let mut candidates = envelope
        .signatures
        .iter()
        .filter(|s| s.keyid.is_empty() || s.keyid == key_id)
        .peekable();
    if candidates.peek().is_none() {
        return Err(DsseError::NotSigned { key_id });
    }
    let verified = candidates.any(|signature| {
        decode(&signature.sig).is_some_and(|sig| key.verify(&signed, &sig).is_ok())
    });
    if !verified {
        return Err(DsseError::BadSignature { key_id });
    }
    Ok((envelope.payload_type, payload))
}

/// Base64 as the DSSE spec asks readers to take it: standard or URL-safe alphabet.
fn decode(text: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::keys;

    fn key() -> SigningKey {
        SigningKey::from_pem(&keys::generate().private_pem).unwrap()
    }

    #[test]
    fn pae_matches_the_specs_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn a_sealed_envelope_opens_with_its_key_and_is_deterministic() {
        let key = key();
        let payload = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
        let envelope = seal("application/vnd.in-toto+json", payload, &key);
        assert_eq!(
            envelope,
            seal("application/vnd.in-toto+json", payload, &key)
        );
        let (payload_type, opened) = open(&envelope, &key.verifying_key()).unwrap();
        assert_eq!(payload_type, "application/vnd.in-toto+json");
        assert_eq!(opened, payload);
        let json: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
        assert_eq!(json["signatures"][0]["keyid"], key.verifying_key().key_id());
        assert_eq!(json["payload"], STANDARD.encode(payload));
    }

    #[test]
    fn a_changed_payload_type_or_signature_or_another_key_is_refused() {
        let key = key();
        let envelope = seal("text/plain", b"hello", &key);
        let mut json: serde_json::Value = serde_json::from_slice(&envelope).unwrap();

        let mut changed = json.clone();
        changed["payload"] = STANDARD.encode(b"hellO").into();
        let changed = serde_json::to_vec(&changed).unwrap();
        assert!(matches!(
            open(&changed, &key.verifying_key()),
            Err(DsseError::BadSignature { .. })
        ));

        let mut retyped = json.clone();
        retyped["payloadType"] = "text/html".into();
        let retyped = serde_json::to_vec(&retyped).unwrap();
        assert!(matches!(
            open(&retyped, &key.verifying_key()),
            Err(DsseError::BadSignature { .. })
        ));

        // Another key: its id matches no signature.
        let other = self::key();
        assert!(matches!(
            open(&envelope, &other.verifying_key()),
            Err(DsseError::NotSigned { .. })
        ));
        // Another key's signature under our key id (or none) is still checked, and fails.
        json["signatures"][0]["keyid"] = "".into();
        let anonymous = serde_json::to_vec(&json).unwrap();
        assert!(open(&anonymous, &key.verifying_key()).is_ok());
        assert!(matches!(
            open(&anonymous, &other.verifying_key()),
            Err(DsseError::BadSignature { .. })
        ));
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        let key = key().verifying_key();
        assert!(matches!(open(b"{", &key), Err(DsseError::Malformed(_))));
        assert!(matches!(
            open(
                br#"{"payloadType":"t","payload":"!!","signatures":[]}"#,
                &key
            ),
            Err(DsseError::Malformed(_))
        ));
        assert!(matches!(
            open(br#"{"payloadType":"t","payload":"","signatures":[]}"#, &key),
            Err(DsseError::NotSigned { .. })
        ));
        let many: Vec<_> = (0..=MAX_SIGNATURES)
            .map(|_| serde_json::json!({"keyid": "", "sig": ""}))
            .collect();
        let envelope = serde_json::json!({"payloadType": "t", "payload": "", "signatures": many});
        assert!(matches!(
            open(&serde_json::to_vec(&envelope).unwrap(), &key),
            Err(DsseError::TooManySignatures(_))
        ));
    }

    #[test]
    fn a_signature_over_anything_but_this_pae_is_refused() {
        let key = key();
        let public = key.verifying_key();
        let envelope = |payload_type: &str, payload: &[u8], sig: &[u8]| {
            serde_json::to_vec(&serde_json::json!({
                "payloadType": payload_type,
                "payload": STANDARD.encode(payload),
                "signatures": [{"keyid": public.key_id(), "sig": STANDARD.encode(sig)}],
            }))
            .unwrap()
        };
        // The payload signed bare, without the PAE around it.
        let bare = key.sign(b"hello");
        assert!(open(&envelope("t", b"hello", &bare), &public).is_err());
        // The same bytes split differently between type and payload: the lengths differ.
        let signed = key.sign(&pae("a b", b"c"));
        assert!(open(&envelope("a", b"b c", &signed), &public).is_err());
        assert!(open(&envelope("a b", b"c", &signed), &public).is_ok());
        // A valid signature beside a bad one is found; bad ones alone never verify.
        let good = STANDARD.encode(key.sign(&pae("t", b"p")));
        let doubled = serde_json::json!({
            "payloadType": "t",
            "payload": STANDARD.encode(b"p"),
            "signatures": [
                {"keyid": public.key_id(), "sig": "AAAA"},
                {"keyid": public.key_id(), "sig": good},
            ],
        });
        assert!(open(&serde_json::to_vec(&doubled).unwrap(), &public).is_ok());
        let empty = serde_json::json!({
            "payloadType": "t",
            "payload": STANDARD.encode(b"p"),
            "signatures": [{"keyid": "", "sig": ""}, {"keyid": public.key_id(), "sig": ""}],
        });
        assert!(matches!(
            open(&serde_json::to_vec(&empty).unwrap(), &public),
            Err(DsseError::BadSignature { .. })
        ));
        // A key twice in the envelope is not read as either of them.
        let twice = format!(
            "{{\"payloadType\":\"t\",\"payload\":\"{}\",\"payload\":\"{}\",\
             \"signatures\":[{{\"keyid\":\"\",\"sig\":\"{good}\"}}]}}",
            STANDARD.encode(b"other"),
            STANDARD.encode(b"p"),
        );
        assert!(matches!(
            open(twice.as_bytes(), &public),
            Err(DsseError::Malformed(_))
        ));
    }
}
