//! Errors raised while loading the login gate's configuration or issuing tokens.
//!
//! Every message names the file (and line, when there is one) and says what is wrong, so the
//! nginx adapter can print it as-is when it refuses to start.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a configuration could not be loaded or a token could not be issued.
#[derive(Debug)]
pub enum AuthError {
    /// A file could not be read, written or renamed.
    Io { path: PathBuf, source: std::io::Error },
    /// A file's content or permissions are wrong; `line` is 1-based when known.
    File { path: PathBuf, line: Option<usize>, message: String },
    /// A directive value or a combination of settings is wrong.
    Config(String),
    /// A token could not be issued (no signing key, bad claims, signer failure).
    Issue(String),
}

impl AuthError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        AuthError::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn file(path: &Path, message: impl Into<String>) -> Self {
        AuthError::File { path: path.to_path_buf(), line: None, message: message.into() }
    }

    pub(crate) fn line(path: &Path, line: usize, message: impl Into<String>) -> Self {
        AuthError::File { path: path.to_path_buf(), line: Some(line), message: message.into() }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Io { path, source } => write!(f, "{}: {}", path.display(), source),
            AuthError::File { path, line: Some(line), message } => {
                write!(f, "{}:{}: {}", path.display(), line, message)
            }
            AuthError::File { path, line: None, message } => {
                write!(f, "{}: {}", path.display(), message)
            }
            AuthError::Config(message) | AuthError::Issue(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for AuthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AuthError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_file_and_line() {
        let p = Path::new("/etc/ward/users");
        let cases: [(AuthError, &str); 4] = [
            (AuthError::line(p, 3, "bad hash"), "/etc/ward/users:3: bad hash"),
            (AuthError::file(p, "world-readable"), "/etc/ward/users: world-readable"),
            (AuthError::Config("no key".into()), "no key"),
            (AuthError::io(p, std::io::Error::from(std::io::ErrorKind::NotFound)), "/etc/ward/users: entity not found"),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }
}
