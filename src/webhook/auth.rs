//! Who may send a hint: HMAC-SHA256 signatures over the body (GitHub's
//! `X-Hub-Signature-256`, the generic source) or a shared token in a header
//! (`Authorization: Bearer …` or a custom header) or, for senders that can
//! set neither (Docker Hub, Quay), the `token` query parameter. Every
//! comparison is constant-time. Secrets come from files (mounted Secrets)
//! and are re-read when the file changes.

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use subtle::ConstantTimeEq;

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No signature or token where one was expected.
    #[error("missing {0}")]
    Missing(String),
    /// A signature or token that does not match.
    #[error("{0} does not match")]
    Mismatch(String),
    /// A signature that is not `sha256=<64 hex>`.
    #[error("{0} is not sha256=<hex>")]
    Malformed(String),
    /// The secret file can't be read now (and never could be).
    #[error("cannot read the secret {path}: {reason}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// The OS error, or "empty".
        reason: String,
    },
}

impl AuthError {
    /// Fixed category: `unauthorized`, or `unavailable` when our secret is unreadable.
    pub fn category(&self) -> &'static str {
        match self {
            AuthError::Secret { .. } => "unavailable",
            _ => "unauthorized",
        }
    }
}

/// What identifies one version of a file: modification time, length, inode.
type Stamp = (Option<std::time::SystemTime>, u64, u64);

fn stamp(m: &std::fs::Metadata) -> Stamp {
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(m);
    #[cfg(not(unix))]
    let ino = 0;
    (m.modified().ok(), m.len(), ino)
}

/// A secret read from a file, re-read whenever the file changes (a
/// Kubernetes Secret volume swaps a symlink: mtime and inode change).
#[derive(Debug)]
pub struct SecretFile {
    path: PathBuf,
    cached: Mutex<Option<(Stamp, Vec<u8>)>>,
}

impl SecretFile {
    /// A secret at `path`; nothing is read yet.
    pub fn new(path: impl Into<PathBuf>) -> SecretFile {
        SecretFile {
            path: path.into(),
            cached: Mutex::new(None),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current secret, trailing whitespace removed. While the file is
    /// briefly unreadable (a Secret update in progress) the last good value
    /// stays in use; an empty secret is an error, never "anything goes".
    pub fn get(&self) -> Result<Vec<u8>, AuthError> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let err = |reason: String| AuthError::Secret {
            path: self.path.clone(),
            reason,
        };
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) => {
                return match &*cached {
                    Some((_, v)) => {
                        tracing::warn!(path = %self.path.display(), error = %e, "webhook secret unreadable; using the last value read");
                        Ok(v.clone())
                    }
                    None => Err(err(e.to_string())),
                };
            }
        };
        let now = stamp(&meta);
        if let Some((s, v)) = &*cached
            && *s == now
        {
            return Ok(v.clone());
        }
        match std::fs::read(&self.path) {
            Ok(mut v) => {
                while v.last().is_some_and(|b| b.is_ascii_whitespace()) {
                    v.pop();
                }
                if v.is_empty() {
                    return Err(err("the file is empty".into()));
                }
                if cached.is_some() {
                    tracing::info!(path = %self.path.display(), "webhook secret changed; reloaded");
                }
                *cached = Some((now, v.clone()));
                Ok(v)
            }
            Err(e) => match &*cached {
                Some((_, v)) => Ok(v.clone()),
                None => Err(err(e.to_string())),
            },
        }
    }
}

/// Checks `sha256=<hex>` (GitHub's form; the prefix is optional) against
/// HMAC-SHA256 of `body` under `secret`, in constant time.
pub fn verify_hmac(
    secret: &[u8],
    body: &[u8],
    header_name: &str,
    signature: Option<&str>,
) -> Result<(), AuthError> {
    let sig = signature.ok_or_else(|| AuthError::Missing(header_name.to_string()))?;
    let hex_part = sig.trim();
    let hex_part = hex_part.strip_prefix("sha256=").unwrap_or(hex_part);
    let tag = hex::decode(hex_part).map_err(|_| AuthError::Malformed(header_name.to_string()))?;
    if tag.len() != 32 {
        return Err(AuthError::Malformed(header_name.to_string()));
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, body, &tag).map_err(|_| AuthError::Mismatch(header_name.to_string()))
}

/// The `HMAC-SHA256` signature of `body` under `secret`, as `sha256=<hex>`
/// (what a sender of the generic source computes).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

/// Checks a shared token: the header's value (an `Authorization` value may
/// carry a `Bearer ` or `Token ` scheme), else the `token` query parameter.
/// Both sides are hashed first so the comparison's time reveals neither
/// the token nor its length.
pub fn verify_token(
    secret: &[u8],
    header_name: &str,
    header: Option<&str>,
    query_token: Option<&str>,
) -> Result<(), AuthError> {
    let given = match header {
        Some(h) => {
            let h = h.trim();
            match h.split_once(' ') {
                Some((scheme, rest))
                    if scheme.eq_ignore_ascii_case("bearer")
                        || scheme.eq_ignore_ascii_case("token") =>
                {
                    rest.trim()
                }
                _ => h,
            }
        }
        None => query_token.ok_or_else(|| {
            AuthError::Missing(format!("{header_name} header or token query parameter"))
        })?,
    };
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(secret);
    if bool::from(a.ct_eq(&b)) {
        Ok(())
    } else {
        Err(AuthError::Mismatch(header_name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_signature_vector() {
        // The example in GitHub's "Validating webhook deliveries".
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(b"It's a Secret to Everybody", b"Hello, World!"), sig);
        verify_hmac(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            "X-Hub-Signature-256",
            Some(sig),
        )
        .unwrap();
    }

    #[test]
    fn hmac_rejects_wrong_missing_and_malformed() {
        let body = br#"{"image":"a/b:c"}"#;
        let good = sign(b"s3cret", body);
        assert_eq!(verify_hmac(b"s3cret", body, "H", Some(&good)), Ok(()));
        assert_eq!(
            verify_hmac(b"other", body, "H", Some(&good)),
            Err(AuthError::Mismatch("H".into()))
        );
        assert_eq!(
            verify_hmac(b"s3cret", b"tampered", "H", Some(&good)),
            Err(AuthError::Mismatch("H".into()))
        );
        assert_eq!(
            verify_hmac(b"s3cret", body, "H", None),
            Err(AuthError::Missing("H".into()))
        );
        assert_eq!(
            verify_hmac(b"s3cret", body, "H", Some("sha256=zz")),
            Err(AuthError::Malformed("H".into()))
        );
        assert_eq!(
            verify_hmac(b"s3cret", body, "H", Some("sha256=abcd")),
            Err(AuthError::Malformed("H".into()))
        );
    }

    #[test]
    fn tokens_in_header_scheme_or_query() {
        let t = b"tok-123";
        assert!(verify_token(t, "Authorization", Some("Bearer tok-123"), None).is_ok());
        assert!(verify_token(t, "Authorization", Some("bearer  tok-123"), None).is_ok());
        assert!(verify_token(t, "X-Token", Some("tok-123"), None).is_ok());
        assert!(verify_token(t, "Authorization", None, Some("tok-123")).is_ok());
        assert!(verify_token(t, "Authorization", Some("Bearer tok-12"), None).is_err());
        assert!(verify_token(t, "Authorization", Some("Basic dG9r"), None).is_err());
        // A header present but wrong is not rescued by a query token.
        assert!(verify_token(t, "Authorization", Some("nope"), Some("tok-123")).is_err());
        assert!(matches!(
            verify_token(t, "Authorization", None, None),
            Err(AuthError::Missing(_))
        ));
    }

    #[test]
    fn secret_file_reloads_on_change_and_survives_a_brief_absence() {
        let dir = std::env::temp_dir().join(format!("imagedrift-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("token");
        std::fs::write(&p, "first\n").unwrap();
        let s = SecretFile::new(&p);
        assert_eq!(s.get().unwrap(), b"first");
        // Replaced as a Secret volume does: a new file renamed over the old
        // one (new inode, so the change is seen whatever the mtime granularity).
        let tmp = dir.join("token.new");
        std::fs::write(&tmp, "second-and-longer").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        assert_eq!(s.get().unwrap(), b"second-and-longer");
        std::fs::remove_file(&p).unwrap();
        assert_eq!(s.get().unwrap(), b"second-and-longer");
        let never = SecretFile::new(dir.join("absent"));
        assert_eq!(never.get().unwrap_err().category(), "unavailable");
        std::fs::write(&p, "  \n").unwrap();
        let empty = SecretFile::new(&p);
        assert!(empty.get().unwrap_err().to_string().contains("empty"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
