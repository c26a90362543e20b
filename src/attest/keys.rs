//! P-256 signing keys: making a pair, reading key files, signing and verifying.
//!
//! Keys are ECDSA over NIST P-256 with SHA-256, the curve and hash cosign uses for the key
//! pairs it generates and imports, through the RustCrypto `p256` crate (0.13). Signatures
//! are ASN.1 DER, the form cosign puts in its signature annotation and Go's
//! `ecdsa.VerifyASN1` reads, and they are deterministic (RFC 6979): the same key and
//! payload always give the same bytes, so signing twice stores one blob.
//!
//! Files: a private key is PKCS#8 PEM (`PRIVATE KEY`, what [`generate`] writes and
//! `cosign import-key-pair` reads) or SEC1 PEM (`EC PRIVATE KEY`, what `openssl ecparam
//! -genkey` writes); a public key is SPKI PEM (`PUBLIC KEY`, what `cosign.pub` holds).
//! Encrypted keys (cosign's own `ENCRYPTED SIGSTORE PRIVATE KEY`, or PKCS#8 `ENCRYPTED
//! PRIVATE KEY`) are refused with what to do instead: this tool reads no passphrase.
//! A key file is input like any other: it is read up to [`KEY_FILE_LIMIT`] bytes, must be
//! a regular file, and every error names it.
//!
//! What cosign does with our pair: `cosign import-key-pair --key solum.key` reads the first
//! PEM block of the file and takes `RSA PRIVATE KEY` (PKCS#1), `EC PRIVATE KEY` (SEC1) or
//! `PRIVATE KEY` (PKCS#8 holding RSA, ECDSA or Ed25519), unencrypted, checks the public
//! key (for ECDSA: P-256, P-384 or P-521), and writes it again encrypted under a password
//! it asks for, as `import-cosign.key`/`import-cosign.pub`. Our `PRIVATE KEY` is such a
//! PKCS#8 P-256 key; `cosign verify --key solum.pub` reads SPKI `PUBLIC KEY` PEM as is.

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, Signature};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most bytes a key file may have. A PEM P-256 key is about 250 bytes; a file with a
/// certificate chain beside it stays far below this.
pub const KEY_FILE_LIMIT: u64 = 64 * 1024;

/// What went wrong reading a key, signing or verifying.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: cannot read the key file")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path}: larger than {KEY_FILE_LIMIT} bytes: not a key file")]
    TooLarge { path: PathBuf },
    #[error("{path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("{path}: an encrypted private key ({label}) cannot be read: this tool takes no passphrase. {hint}")]
    Encrypted {
        path: PathBuf,
        label: String,
        hint: &'static str,
    },
    #[error("the signature is not valid DER ECDSA")]
    MalformedSignature,
    #[error("the signature does not match the key and the signed bytes")]
    BadSignature,
}

impl crate::error_class::Classify for KeyError {
    fn class(&self) -> crate::error_class::ErrorClass {
        use crate::error_class::ErrorClass;
        match self {
            // A key file the user named that cannot be used is wrong input.
            KeyError::NotAFile { .. }
            | KeyError::TooLarge { .. }
            | KeyError::Malformed { .. }
            | KeyError::Encrypted { .. } => ErrorClass::Input,
            KeyError::Read { .. } | KeyError::MalformedSignature | KeyError::BadSignature => {
                ErrorClass::Failure
            }
        }
    }
}

/// A new key pair, both halves PEM text.
pub struct KeyPair {
    /// PKCS#8 `PRIVATE KEY` PEM, unencrypted: keep it like a password.
    pub private_pem: String,
    /// SPKI `PUBLIC KEY` PEM.
    pub public_pem: String,
}

/// Makes a new random P-256 key pair from the operating system's random source.
pub fn generate() -> KeyPair {
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let private_pem = key
        .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
        .expect("a P-256 key always encodes as PKCS#8");
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .expect("a P-256 public key always encodes as SPKI");
    KeyPair {
        // A plain string: the caller writes it to a file at once.
        private_pem: private_pem.to_string(),
        public_pem,
    }
}

/// A private key that signs.
#[derive(Clone)]
pub struct SigningKey {
    key: p256::ecdsa::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret scalar, in a log or a panic message.
        write!(f, "SigningKey({})", self.verifying_key().key_id())
    }
}

impl SigningKey {
    /// Reads a PKCS#8 or SEC1 PEM private key file.
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let text = read_key_file(path)?;
        SigningKey::from_pem_at(&text, path)
    }

    /// Parses PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`) PEM text.
    pub fn from_pem(text: &str) -> Result<SigningKey, KeyError> {
        SigningKey::from_pem_at(text, Path::new("<private key>"))
    }

    fn from_pem_at(text: &str, path: &Path) -> Result<SigningKey, KeyError> {
        let malformed = |reason: String| KeyError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let label = pem_label(text).ok_or_else(|| {
            malformed("no PEM key in it (expected -----BEGIN PRIVATE KEY-----)".into())
        })?;
        let key = match label {
            "PRIVATE KEY" => p256::ecdsa::SigningKey::from_pkcs8_pem(text.trim())
                .map_err(|e| malformed(format!("not a P-256 PKCS#8 private key: {e}")))?,
            "EC PRIVATE KEY" => {
                let secret = p256::SecretKey::from_sec1_pem(text.trim())
                    .map_err(|e| malformed(format!("not a P-256 SEC1 private key: {e}")))?;
                p256::ecdsa::SigningKey::from(secret)
            }
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                return Err(KeyError::Encrypted {
                    path: path.to_path_buf(),
                    label: label.to_string(),
                    hint: "cosign keeps its keys encrypted and cannot export them: make a pair with `solum-build keygen` and give cosign the same key with `cosign import-key-pair --key solum.key`",
                })
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(KeyError::Encrypted {
                    path: path.to_path_buf(),
                    label: label.to_string(),
                    hint: "decrypt it first: `openssl pkcs8 -in KEY -out plain.key` (and keep plain.key private)",
                })
            }
            "PUBLIC KEY" => {
                return Err(malformed(
                    "this is a public key: signing needs the private key (the .key file)".into(),
                ))
            }
            other => {
                return Err(malformed(format!(
                    "a PEM {other:?}, not a private key (expected PRIVATE KEY or EC PRIVATE KEY)"
                )))
            }
        };
        Ok(SigningKey { key })
    }

    /// The DER ECDSA P-256 SHA-256 signature of `message`, deterministic (RFC 6979).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.key.sign(message);
        let der: DerSignature = signature.to_der();
        der.as_bytes().to_vec()
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            key: *self.key.verifying_key(),
        }
    }
}

/// A public key that verifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyingKey {
    key: p256::ecdsa::VerifyingKey,
}

impl VerifyingKey {
    /// Reads an SPKI (`PUBLIC KEY`) PEM file.
    pub fn load(path: &Path) -> Result<VerifyingKey, KeyError> {
        let text = read_key_file(path)?;
        VerifyingKey::from_pem_at(&text, path)
    }

    /// Parses SPKI (`PUBLIC KEY`) PEM text.
    pub fn from_pem(text: &str) -> Result<VerifyingKey, KeyError> {
        VerifyingKey::from_pem_at(text, Path::new("<public key>"))
    }

    fn from_pem_at(text: &str, path: &Path) -> Result<VerifyingKey, KeyError> {
        let malformed = |reason: String| KeyError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        match pem_label(text) {
            Some("PUBLIC KEY") => p256::ecdsa::VerifyingKey::from_public_key_pem(text.trim())
                .map(|key| VerifyingKey { key })
                .map_err(|e| malformed(format!("not a P-256 public key: {e}"))),
            Some(label) if label.contains("PRIVATE KEY") => Err(malformed(
                "this is a private key: verifying takes the public key (the .pub file)".into(),
            )),
            Some(other) => Err(malformed(format!(
                "a PEM {other:?}, not a public key (expected PUBLIC KEY)"
            ))),
            None => Err(malformed(
                "no PEM key in it (expected -----BEGIN PUBLIC KEY-----)".into(),
            )),
        }
    }

    /// Checks a DER ECDSA signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        let signature = Signature::from_der(signature).map_err(|_| KeyError::MalformedSignature)?;
        self.key
            .verify(message, &signature)
            .map_err(|_| KeyError::BadSignature)
    }

    /// The SPKI PEM text.
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .expect("a P-256 public key always encodes as SPKI")
    }

    /// The hex SHA-256 of the key's SPKI DER: the key id of our DSSE signatures.
    pub fn key_id(&self) -> String {
        let der = self
            .key
            .to_public_key_der()
            .expect("a P-256 public key always encodes as SPKI");
        hex::encode(Sha256::digest(der.as_bytes()))
    }
}

/// The label of the first PEM block (`PRIVATE KEY` of `-----BEGIN PRIVATE KEY-----`).
fn pem_label(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let rest = &text[start..];
    let end = rest.find("-----")?;
    Some(&rest[..end])
}

/// Reads a key file as UTF-8 text: a regular file, at most [`KEY_FILE_LIMIT`] bytes.
fn read_key_file(path: &Path) -> Result<String, KeyError> {
    let read = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    // Looked at before it is opened: opening a FIFO or a device is not without effects (a
    // FIFO's waiting writer is let through, a tape rewinds, a watchdog is armed).
    if !std::fs::metadata(path).map_err(read)?.is_file() {
        return Err(KeyError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    // The path may name something else by the time it is opened, so the open file is
    // checked again. O_NONBLOCK: a FIFO put there meanwhile opens without waiting for a
    // writer, and is then refused as not a regular file.
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(read)?
    };
    if !file.metadata().map_err(read)?.is_file() {
        return Err(KeyError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    Read::take(&file, KEY_FILE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > KEY_FILE_LIMIT {
        return Err(KeyError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    String::from_utf8(bytes).map_err(|_| KeyError::Malformed {
        path: path.to_path_buf(),
        reason: "not text: a PEM key file is ASCII".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_generated_pair_signs_and_verifies_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let pair = generate();
        assert!(pair
            .private_pem
            .starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let key = SigningKey::load(&write(dir.path(), "k.key", &pair.private_pem)).unwrap();
        let public = VerifyingKey::load(&write(dir.path(), "k.pub", &pair.public_pem)).unwrap();
        assert_eq!(key.verifying_key(), public);
        assert_eq!(public.to_pem(), pair.public_pem);

        let signature = key.sign(b"payload");
        assert_eq!(signature, key.sign(b"payload"), "RFC 6979: deterministic");
        assert_eq!(signature[0], 0x30, "a DER SEQUENCE");
        public.verify(b"payload", &signature).unwrap();
        assert!(matches!(
            public.verify(b"payloaD", &signature),
            Err(KeyError::BadSignature)
        ));
        assert!(matches!(
            public.verify(b"payload", b"garbage"),
            Err(KeyError::MalformedSignature)
        ));
        let stranger = SigningKey::from_pem(&generate().private_pem).unwrap();
        assert!(stranger
            .verifying_key()
            .verify(b"payload", &signature)
            .is_err());
        assert!(!format!("{key:?}").contains("PRIVATE"));
        assert_eq!(public.key_id().len(), 64);
    }

    #[test]
    fn a_sec1_key_reads_like_its_pkcs8_twin() {
        // `openssl ecparam -name prime256v1 -genkey -noout`, and the same key through
        // `openssl pkcs8 -topk8 -nocrypt`.
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\n\
            MHcCAQEEII1Zr4gdF6RJgDIv9fyZt9X+dQJieM65eh42LjxwzWFHoAoGCCqGSM49\n\
            AwEHoUQDQgAEQNNOYdVCODLD64/Q3STjqO68VcZspZI28jyHqyFuBUuDrtXObx7o\n\
            fQuzKff0cM363JgxrJkcMz5y4bBcVgRLog==\n\
            -----END EC PRIVATE KEY-----\n";
        let pkcs8 = "-----BEGIN PRIVATE KEY-----\n\
            MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjVmviB0XpEmAMi/1\n\
            /Jm31f51AmJ4zrl6HjYuPHDNYUehRANCAARA005h1UI4MsPrj9DdJOOo7rxVxmyl\n\
            kjbyPIerIW4FS4Ou1c5vHuh9C7Mp9/RwzfrcmDGsmRwzPnLhsFxWBEui\n\
            -----END PRIVATE KEY-----\n";
        let key = SigningKey::from_pem(sec1).unwrap();
        let again = SigningKey::from_pem(pkcs8).unwrap();
        assert_eq!(key.verifying_key(), again.verifying_key());
        assert_eq!(key.sign(b"x"), again.sign(b"x"));
    }

    #[test]
    fn unusable_key_files_are_refused_with_their_name_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let pair = generate();
        let encrypted = write(
            dir.path(),
            "cosign.key",
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
        );
        let error = SigningKey::load(&encrypted).unwrap_err();
        assert!(matches!(error, KeyError::Encrypted { .. }));
        let message = error.to_string();
        assert!(
            message.contains("cosign.key") && message.contains("import-key-pair"),
            "{message}"
        );

        let public_as_private = write(dir.path(), "k.pub", &pair.public_pem);
        let message = SigningKey::load(&public_as_private)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("k.pub") && message.contains("public key"),
            "{message}"
        );
        let private_as_public = write(dir.path(), "k.key", &pair.private_pem);
        assert!(VerifyingKey::load(&private_as_public).is_err());

        let not_pem = write(dir.path(), "notes.txt", "hello");
        assert!(matches!(
            SigningKey::load(&not_pem),
            Err(KeyError::Malformed { .. })
        ));
        let broken = write(
            dir.path(),
            "broken.key",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        assert!(matches!(
            SigningKey::load(&broken),
            Err(KeyError::Malformed { .. })
        ));

        let huge = dir.path().join("huge.key");
        std::fs::write(&huge, vec![b'A'; KEY_FILE_LIMIT as usize + 1]).unwrap();
        assert!(matches!(
            SigningKey::load(&huge),
            Err(KeyError::TooLarge { .. })
        ));
        assert!(matches!(
            SigningKey::load(dir.path()),
            Err(KeyError::NotAFile { .. })
        ));
        let fifo = dir.path().join("fifo.key");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(
            SigningKey::load(&fifo),
            Err(KeyError::NotAFile { .. })
        ));
        let message = SigningKey::load(&dir.path().join("missing.key"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("missing.key"), "{message}");
    }

    #[test]
    fn a_fifo_named_as_a_key_is_refused_without_being_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.key");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // A writer waits for a reader; opening the FIFO to read it would let it through.
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::OpenOptions::new().write(true).open(fifo))
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(matches!(
            SigningKey::load(&fifo),
            Err(KeyError::NotAFile { .. })
        ));
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!writer.is_finished(), "the FIFO was opened");
        // Lets the writer go, so that the thread ends.
        let _reader = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
                .unwrap()
        };
        writer.join().unwrap().unwrap();
    }
}
