//! The webhook signature both ends of a trigger compute: the server checks it on
//! `/v1/triggers/…` (with the `server` feature), and `solum-build trigger` signs its push
//! events with it. It sits outside `api` so that a builder-only binary can still trigger.

use hmac::{Hmac, Mac};

/// The header value GitHub sends: `sha256=` and the hex HMAC-SHA256 of `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
