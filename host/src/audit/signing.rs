//! Ed25519 keys that sign the audit log's checkpoints and head file.
//!
//! What a signature covers (the *payload*, UTF-8, fields joined by `\n`):
//!
//! ```text
//! <context>\n<key id>\n<seq>\n<hash>\n<time>
//! ```
//!
//! - `context` is `vigil-audit-checkpoint-v1` for a `checkpoint` record and
//!   `vigil-audit-head-v1` for the head file, so a signature made for one can
//!   never be passed off as the other (a checkpoint cannot be turned into a
//!   head for a log cut back to it);
//! - `key id` is the first 8 bytes of the SHA-256 of the public key, in hex:
//!   a verifier given several keys (a rotation) knows which one to use, and
//!   the signature commits to it;
//! - `seq` is the checkpoint record's own `seq` (for the head: the `seq` of the
//!   newest durable record), so a signed record cannot be moved;
//! - `hash` is, for a checkpoint, the hash of the record it follows (its
//!   `prev_hash`), which commits to every record before it through the chain;
//!   for the head, the `hash` of the record it names;
//! - `time` is the record's (or the head's) `time`.
//!
//! Keys are stored as PEM: the private key as PKCS#8 (`BEGIN PRIVATE KEY`),
//! the public key as SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`), the formats
//! `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` use.
//!
//! Invariants: a private key is only loaded from a file that no one but its
//! owner can read or write and that is not inside the log's directory (whoever
//! can rewrite the log must not be able to read the key); the key's bytes never
//! reach a log line or an error message.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// Domain separation for checkpoint signatures.
pub const CHECKPOINT_CONTEXT: &str = "vigil-audit-checkpoint-v1";
/// Domain separation for head-file signatures.
pub const HEAD_CONTEXT: &str = "vigil-audit-head-v1";

/// Problems with a key file. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The OS error is in the message, not also a `source`, so a printed
    /// error chain names it once.
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: io::Error },
    /// The private key file can be read or written by group or others.
    #[error(
        "signing key {} has mode {mode:04o}: it must be readable by its owner only \
         (run `chmod 600 {}`)",
        path.display(), path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    /// The private key sits where whoever can rewrite the log can read it.
    #[error(
        "signing key {} is inside the audit log's directory {}: keep it where the log's \
         writers cannot read it (e.g. /etc/vigil, readable by the Vigil user only)",
        path.display(), dir.display()
    )]
    InsideLogDir { path: PathBuf, dir: PathBuf },
    /// The file is not a key of the expected kind.
    #[error("{}: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    /// `keygen` never overwrites a key.
    #[error("{} already exists; refusing to overwrite a key", path.display())]
    Exists { path: PathBuf },
}

/// The private key that signs checkpoints and the head file.
pub struct AuditSigner {
    key: SigningKey,
    key_id: String,
}

impl fmt::Debug for AuditSigner {
    // Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AuditSigner {
    /// Loads the private key at `path` for signing the log at `log`, after
    /// checking that the file is private to its owner and outside the log's
    /// directory.
    pub fn load(path: &Path, log: &Path) -> Result<AuditSigner, KeyError> {
        let io_err = |source| KeyError::Io {
            path: path.to_owned(),
            cause: source,
        };
        let key_real = fs::canonicalize(path).map_err(io_err)?;
        let log_dir = log
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // The log's directory exists by now (the log is opened first).
        if let Ok(dir_real) = fs::canonicalize(log_dir)
            && key_real.starts_with(&dir_real)
        {
            return Err(KeyError::InsideLogDir {
                path: path.to_owned(),
                dir: dir_real,
            });
        }
        AuditSigner::load_private(path)
    }

    /// Loads a private key file that no one but its owner can read or
    /// write (a pack publisher's key: `vigil pack sign`).
    pub fn load_private(path: &Path) -> Result<AuditSigner, KeyError> {
        let io_err = |source| KeyError::Io {
            path: path.to_owned(),
            cause: source,
        };
        let meta = fs::metadata(path).map_err(io_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        if !meta.is_file() {
            return Err(KeyError::Malformed {
                path: path.to_owned(),
                reason: "not a regular file".to_owned(),
            });
        }
        let text = fs::read_to_string(path).map_err(io_err)?;
        let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::Malformed {
            path: path.to_owned(),
            // The pkcs8 error describes the structure, never the key bytes.
            reason: format!(
                "not an ed25519 private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, as \
                 `vigil audit keygen` writes): {e}"
            ),
        })?;
        Ok(AuditSigner::from_key(key))
    }

    /// A signer for a key already in memory (tests, `keygen`).
    pub fn from_key(key: SigningKey) -> AuditSigner {
        let key_id = key_id(&key.verifying_key());
        AuditSigner { key, key_id }
    }

    /// The key id that checkpoints and heads carry.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_verifying_key(self.key.verifying_key())
    }

    /// Signs a payload (see the module documentation); lowercase hex.
    pub(crate) fn sign(&self, context: &str, seq: u64, hash: &str, time: &str) -> String {
        let payload = payload(context, &self.key_id, seq, hash, time);
        hex::encode(self.key.sign(&payload).to_bytes())
    }

    /// Signs `<context>\n<key id>\n<message>` (another use of the same
    /// key format, e.g. a pack manifest's digest); lowercase hex.
    pub fn sign_message(&self, context: &str, message: &str) -> String {
        let payload = format!("{context}\n{}\n{message}", self.key_id);
        hex::encode(self.key.sign(payload.as_bytes()).to_bytes())
    }
}

/// A public key that checks signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    key_id: String,
}

impl PublicKey {
    /// Reads a public key in SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`).
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            cause: source,
        })?;
        let key = VerifyingKey::from_public_key_pem(&text).map_err(|e| KeyError::Malformed {
            path: path.to_owned(),
            reason: format!(
                "not an ed25519 public key in PEM (`-----BEGIN PUBLIC KEY-----`, the .pub file \
                 `vigil audit keygen` writes): {e}"
            ),
        })?;
        Ok(PublicKey::from_verifying_key(key))
    }

    fn from_verifying_key(key: VerifyingKey) -> PublicKey {
        PublicKey {
            key_id: key_id(&key),
            key,
        }
    }

    /// This key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Checks a hex signature over a payload. The error is a reason for a
    /// message ("does not verify", "is not 64 bytes of hex").
    pub(crate) fn verify(
        &self,
        context: &str,
        seq: u64,
        hash: &str,
        time: &str,
        sig_hex: &str,
    ) -> Result<(), String> {
        self.verify_payload(&payload(context, &self.key_id, seq, hash, time), sig_hex)
    }

    fn verify_payload(&self, payload: &[u8], sig_hex: &str) -> Result<(), String> {
        let bytes = hex::decode(sig_hex).map_err(|_| "the signature is not hex".to_owned())?;
        let bytes: [u8; 64] = bytes
            .try_into()
            .map_err(|_| "the signature is not 64 bytes".to_owned())?;
        self.key
            .verify(payload, &Signature::from_bytes(&bytes))
            .map_err(|_| "the signature does not verify: forged or altered".to_owned())
    }
}

impl PublicKey {
    /// Checks a hex signature made by [`AuditSigner::sign_message`].
    pub fn verify_message(
        &self,
        context: &str,
        message: &str,
        sig_hex: &str,
    ) -> Result<(), String> {
        let payload = format!("{context}\n{}\n{message}", self.key_id);
        self.verify_payload(payload.as_bytes(), sig_hex)
    }
}

/// First 8 bytes of SHA-256 of the raw public key, hex.
fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

fn payload(context: &str, key_id: &str, seq: u64, hash: &str, time: &str) -> Vec<u8> {
    format!("{context}\n{key_id}\n{seq}\n{hash}\n{time}").into_bytes()
}

/// What `keygen` wrote.
#[derive(Debug)]
pub struct Keygen {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub key_id: String,
}

/// The public key file written beside a private key: `<out>.pub`.
pub fn public_key_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Generates a key pair from the operating system's random source and writes
/// the private key to `out` (mode 0600) and the public key to `<out>.pub`.
/// Never overwrites either file.
pub fn keygen(out: &Path) -> Result<Keygen, KeyError> {
    let public_path = public_key_path(out);
    for p in [out, public_path.as_path()] {
        if p.exists() {
            return Err(KeyError::Exists { path: p.to_owned() });
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Io {
        path: out.to_owned(),
        cause: io::Error::other(format!("the OS random source failed: {e}")),
    })?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Malformed {
            path: out.to_owned(),
            reason: format!("cannot encode the key: {e}"),
        })?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Malformed {
            path: public_path.clone(),
            reason: format!("cannot encode the public key: {e}"),
        })?;
    write_new(out, private_pem.as_bytes(), 0o600)?;
    write_new(&public_path, public_pem.as_bytes(), 0o644)?;
    Ok(Keygen {
        private_key: out.to_owned(),
        public_key: public_path,
        key_id: key_id(&key.verifying_key()),
    })
}

/// Creates `path` (failing if it exists) with `mode`, writes and fsyncs it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.to_owned(),
        cause: source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: path.to_owned(),
            }
        } else {
            io_err(e)
        }
    })?;
    file.write_all(bytes).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    // keygen writes a 0600 private key and a public key with the same id; a
    // signature made with one verifies with the other, and only for the
    // exact payload.
    #[test]
    fn keygen_sign_verify() {
        use std::os::unix::fs::PermissionsExt;
        let keys = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        let out = keys.path().join("audit.key");
        let made = keygen(&out).unwrap();
        assert_eq!(made.public_key, keys.path().join("audit.key.pub"));
        let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&made.public_key).unwrap();
        assert!(text.starts_with("-----BEGIN PUBLIC KEY-----"), "{text}");

        let signer = AuditSigner::load(&out, &logs.path().join("audit.jsonl")).unwrap();
        let public = PublicKey::load(&made.public_key).unwrap();
        assert_eq!(signer.key_id(), made.key_id);
        assert_eq!(public.key_id(), made.key_id);
        assert!(!format!("{signer:?}").contains("key:"));

        let h = "ab".repeat(32);
        let sig = signer.sign(CHECKPOINT_CONTEXT, 7, &h, "2026-01-01T00:00:00.000Z");
        public
            .verify(CHECKPOINT_CONTEXT, 7, &h, "2026-01-01T00:00:00.000Z", &sig)
            .unwrap();
        // Another seq, hash, time or context: the signature does not verify.
        for (ctx, seq, hash, time) in [
            (
                CHECKPOINT_CONTEXT,
                8,
                h.as_str(),
                "2026-01-01T00:00:00.000Z",
            ),
            (
                CHECKPOINT_CONTEXT,
                7,
                &"cd".repeat(32),
                "2026-01-01T00:00:00.000Z",
            ),
            (
                CHECKPOINT_CONTEXT,
                7,
                h.as_str(),
                "2026-01-01T00:00:00.001Z",
            ),
            (HEAD_CONTEXT, 7, h.as_str(), "2026-01-01T00:00:00.000Z"),
        ] {
            let err = public.verify(ctx, seq, hash, time, &sig).unwrap_err();
            assert!(err.contains("does not verify"), "{err}");
        }
        // keygen never overwrites.
        assert!(matches!(keygen(&out), Err(KeyError::Exists { .. })));
    }

    // A key readable by group or others is refused, naming the mode and the fix.
    #[test]
    fn key_readable_by_others_refused() {
        let keys = tempfile::tempdir().unwrap();
        let out = keys.path().join("audit.key");
        keygen(&out).unwrap();
        set_mode(&out, 0o640);
        let err = AuditSigner::load(&out, Path::new("/nonexistent/audit.jsonl")).unwrap_err();
        assert!(
            matches!(err, KeyError::Permissions { mode: 0o640, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    // A key inside the log's directory (or below it) is refused.
    #[test]
    fn key_inside_log_dir_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let out = dir.path().join("sub/audit.key");
        keygen(&out).unwrap();
        let err = AuditSigner::load(&out, &dir.path().join("audit.jsonl")).unwrap_err();
        assert!(matches!(err, KeyError::InsideLogDir { .. }), "{err}");
    }

    // A public key where a private key is expected (and vice versa) is
    // refused with a message naming the expected PEM.
    #[test]
    fn wrong_kind_of_pem_refused() {
        let keys = tempfile::tempdir().unwrap();
        let out = keys.path().join("k");
        let made = keygen(&out).unwrap();
        let public_copy = keys.path().join("pub-as-private");
        fs::copy(&made.public_key, &public_copy).unwrap();
        set_mode(&public_copy, 0o600);
        let err = AuditSigner::load(&public_copy, Path::new("/x/audit.jsonl")).unwrap_err();
        assert!(err.to_string().contains("BEGIN PRIVATE KEY"), "{err}");
        let err = PublicKey::load(&out).unwrap_err();
        assert!(err.to_string().contains("BEGIN PUBLIC KEY"), "{err}");
    }
}
