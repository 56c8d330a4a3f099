//! Credentials: read from an environment variable or a file named in the
//! config, never from the config itself, and never printed.
//!
//! [`Secret`]'s `Debug` and `Display` print `[redacted]`, so a secret that
//! slips into a log line or an error shows nothing. Connectors also hand
//! their secrets to [`crate::actions::http::HttpClient`], which scrubs them from any
//! vendor text it quotes in an error.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// A credential's value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for building a request. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Loads a secret named by `<key>_env` or `<key>_file` (exactly one must be
/// set). `at` is the config path of the key for error messages
/// (`connectors.okta.token`). A file's trailing newline is dropped.
pub fn load(at: &str, env: Option<&str>, file: Option<&Path>) -> Result<Secret> {
    let value = match (env, file) {
        (Some(_), Some(_)) => bail!("{at}: set either {at}_env or {at}_file, not both"),
        (None, None) => bail!(
            "{at}: set {at}_env (an environment variable) or {at}_file (a file holding it); \
             credentials are never written in the config itself"
        ),
        (Some(var), None) => match std::env::var(var) {
            Ok(v) => v,
            Err(std::env::VarError::NotPresent) => {
                bail!("{at}_env: environment variable {var} is not set")
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                bail!("{at}_env: environment variable {var} is not valid UTF-8")
            }
        },
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("{at}_file: cannot read {}", path.display()))?,
    };
    let value = value.trim_end_matches(['\r', '\n']).to_owned();
    if value.trim().is_empty() {
        bail!("{at}: the credential is empty");
    }
    Ok(Secret(value))
}

/// Like [`load`], but the secret is optional: `None` when neither key is set.
pub fn load_optional(at: &str, env: Option<&str>, file: Option<&Path>) -> Result<Option<Secret>> {
    if env.is_none() && file.is_none() {
        return Ok(None);
    }
    load(at, env, file).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
    }

    #[test]
    fn file_secret_drops_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc123\n").unwrap();
        let s = load("connectors.okta.token", None, Some(&path)).unwrap();
        assert_eq!(s.expose(), "abc123");
    }

    #[test]
    fn missing_variable_is_named() {
        let err = load(
            "connectors.okta.token",
            Some("VIGIL_TEST_SURELY_UNSET_VAR"),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "connectors.okta.token_env: environment variable VIGIL_TEST_SURELY_UNSET_VAR is not set"
        );
    }

    #[test]
    fn neither_or_both_is_refused() {
        let err = load("connectors.graph.client_secret", None, None).unwrap_err();
        assert!(err.to_string().contains("client_secret_env"), "{err}");
        let err = load("x", Some("A"), Some(Path::new("/b"))).unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
    }
}
