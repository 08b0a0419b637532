//! The users file (`ward_auth_users_file`): `user:hash` lines checked in constant time.
//!
//! Hashes are argon2id (`$argon2id$...`, written by `ward passwd`) or bcrypt
//! (`$2y$`/`$2b$`/`$2a$`, so `htpasswd -B` files work). Plaintext and every other format are
//! refused at load with the file and line. An unknown user is checked against a dummy hash made
//! with the same scheme and cost as the file's first user, so "no such user" and "wrong password"
//! cost the same time. Also the CLI helpers: `hash_password` and `update_users_file`.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};

use crate::error::AuthError;

/// Users files larger than this are refused.
const MAX_USERS_FILE: u64 = 16 * 1024 * 1024;
/// Longest accepted user name, in bytes.
const MAX_USER_LEN: usize = 256;

/// A stored password hash, validated at load.
#[derive(Clone)]
enum StoredHash {
    Argon2id(String),
    Bcrypt(String),
}

impl StoredHash {
    /// Classifies and validates one hash; the error never echoes the hash (it may be a password).
    fn parse(hash: &str) -> Result<StoredHash, String> {
        let hint = "use `ward passwd` (argon2id) or `htpasswd -B` (bcrypt)";
        if hash.starts_with("$argon2id$") {
            let h = PasswordHash::new(hash).map_err(|e| format!("invalid argon2id hash ({e})"))?;
            Params::try_from(&h).map_err(|e| format!("invalid argon2id parameters ({e})"))?;
            if h.salt.is_none() || h.hash.is_none() {
                return Err("invalid argon2id hash (no salt or no hash)".into());
            }
            return Ok(StoredHash::Argon2id(hash.to_string()));
        }
        if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
            hash.parse::<bcrypt::HashParts>().map_err(|e| format!("invalid bcrypt hash ({e})"))?;
            return Ok(StoredHash::Bcrypt(hash.to_string()));
        }
        if hash.is_empty() {
            return Err(format!("the password hash is empty; {hint}"));
        }
        if hash.starts_with('$') || hash.starts_with('{') {
            return Err(format!("unsupported password hash format; only argon2id and bcrypt are accepted: {hint}"));
        }
        Err(format!("this looks like a plaintext password, which is refused; {hint}"))
    }

    fn verify(&self, password: &[u8]) -> bool {
        match self {
            StoredHash::Argon2id(s) => match PasswordHash::new(s) {
                Ok(h) => Argon2::default().verify_password(password, &h).is_ok(),
                Err(_) => false,
            },
            StoredHash::Bcrypt(s) => bcrypt::verify(password, s).unwrap_or(false),
        }
    }

    /// A hash of a random password with the same scheme and cost (for unknown users).
    fn dummy_like(&self) -> Result<StoredHash, String> {
        let mut pw = [0u8; 16];
        getrandom::getrandom(&mut pw).map_err(|e| format!("OS random generator: {e}"))?;
        match self {
            StoredHash::Argon2id(s) => {
                let h = PasswordHash::new(s).map_err(|e| e.to_string())?;
                let params = Params::try_from(&h).map_err(|e| e.to_string())?;
                let a = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
                Ok(StoredHash::Argon2id(argon2_hash(&a, &pw)?))
            }
            StoredHash::Bcrypt(s) => {
                let cost = s.parse::<bcrypt::HashParts>().map_err(|e| e.to_string())?.get_cost();
                Ok(StoredHash::Bcrypt(bcrypt::hash(pw, cost).map_err(|e| e.to_string())?))
            }
        }
    }
}

fn argon2_hash(a: &Argon2<'_>, password: &[u8]) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| format!("OS random generator: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    a.hash_password(password, &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Hashes a password with argon2id (v19, m=19 MiB, t=2, p=1: OWASP's recommended minimum).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    argon2_hash(&Argon2::default(), password.as_bytes()).map_err(AuthError::Config)
}

/// Checks a user name for the users file: non-empty, at most 256 bytes, no `:`, no
/// whitespace or control characters.
pub fn valid_user_name(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= MAX_USER_LEN
        && !user.chars().any(|c| c == ':' || c.is_whitespace() || c.is_control())
}

/// One parsed line: `Ok(None)` for blank and `#` comment lines.
fn parse_line(line: &str) -> Result<Option<(&str, &str)>, String> {
    let line = line.trim_end_matches(['\r', ' ', '\t']);
    if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
        return Ok(None);
    }
    let (user, hash) = line.split_once(':').ok_or("expected `user:hash`")?;
    if !valid_user_name(user) {
        return Err("invalid user name (empty, too long, or with spaces or control characters)".into());
    }
    Ok(Some((user, hash)))
}

/// The users of a users file.
pub struct UserDb {
    users: HashMap<String, StoredHash>,
    dummy: StoredHash,
}

impl std::fmt::Debug for UserDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDb").field("users", &self.users.len()).finish()
    }
}

impl UserDb {
    /// Reads and validates a users file.
    pub fn load(path: &Path) -> Result<UserDb, AuthError> {
        use std::io::Read;
        let file = std::fs::File::open(path).map_err(|e| AuthError::io(path, e))?;
        let mut bytes = Vec::new();
        file.take(MAX_USERS_FILE + 1).read_to_end(&mut bytes).map_err(|e| AuthError::io(path, e))?;
        if bytes.len() as u64 > MAX_USERS_FILE {
            return Err(AuthError::file(path, "the users file is larger than 16 MiB"));
        }
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let line = bytes.get(..e.valid_up_to()).map_or(0, |b| b.iter().filter(|c| **c == b'\n').count()) + 1;
            AuthError::line(path, line, "the users file is not valid UTF-8")
        })?;
        Self::parse(text).map_err(|(line, m)| AuthError::line(path, line, m))
    }

    /// Parses users file content; errors carry the 1-based line.
    pub fn parse(text: &str) -> Result<UserDb, (usize, String)> {
        let mut users = HashMap::new();
        let mut first: Option<StoredHash> = None;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let Some((user, hash)) = parse_line(line).map_err(|m| (n, m))? else {
                continue;
            };
            let stored = StoredHash::parse(hash).map_err(|m| (n, format!("user \"{user}\": {m}")))?;
            if first.is_none() {
                first = Some(stored.clone());
            }
            if users.insert(user.to_string(), stored).is_some() {
                return Err((n, format!("user \"{user}\" is listed twice")));
            }
        }
        // Unknown users cost what the first user costs (or the default argon2id when empty).
        let dummy = match &first {
            Some(h) => h.dummy_like(),
            None => argon2_hash(&Argon2::default(), b"ward-dummy").map(StoredHash::Argon2id),
        }
        .map_err(|m| (0, m))?;
        Ok(UserDb { users, dummy })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file lists no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks a password; unknown users do the same work against the dummy hash.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h, true),
            None => (&self.dummy, false),
        };
        let ok = hash.verify(password);
        ok && known
    }
}

/// Adds or replaces `user`'s line in a users file (created if missing), atomically: the new
/// content is written to a temporary file (mode 0600) beside it, synced, then renamed over it.
/// Other lines (comments included) are kept as they are.
pub fn update_users_file(path: &Path, user: &str, hash: &str) -> Result<(), AuthError> {
    if !valid_user_name(user) {
        return Err(AuthError::Config(format!(
            "\"{user}\" is not a valid user name (no `:`, whitespace or control characters)"
        )));
    }
    StoredHash::parse(hash).map_err(AuthError::Config)?;
    let old = match std::fs::read(path) {
        Ok(b) => String::from_utf8(b).map_err(|_| AuthError::file(path, "the users file is not valid UTF-8"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(AuthError::io(path, e)),
    };
    let mut out = String::with_capacity(old.len() + user.len() + hash.len() + 2);
    let mut replaced = false;
    for line in old.lines() {
        let is_user = matches!(parse_line(line), Ok(Some((u, _))) if u == user);
        if is_user {
            if !replaced {
                out.push_str(&format!("{user}:{hash}\n"));
                replaced = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !replaced {
        out.push_str(&format!("{user}:{hash}\n"));
    }

    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| AuthError::file(path, "not a file path"))?;
    let mut rnd = [0u8; 6];
    getrandom::getrandom(&mut rnd).map_err(|e| AuthError::Config(format!("OS random generator: {e}")))?;
    let suffix: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{}.{suffix}.tmp", name.to_string_lossy()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(out.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        AuthError::io(path, e)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A cheap argon2id hash for tests (m=8 KiB, t=1): the dummy copies these params.
    pub(crate) fn cheap_hash(pw: &str) -> String {
        let a = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, Params::new(8, 1, 1, None).unwrap());
        argon2_hash(&a, pw.as_bytes()).unwrap()
    }

    #[test]
    fn argon2_and_bcrypt_verify() {
        let text = format!(
            "# comment\n\nalice:{}\nbob:{}\ncarol:{}\n",
            cheap_hash("secret1"),
            bcrypt::hash("secret2", 4).unwrap(),
            bcrypt::hash("secret3", 4).unwrap().replacen("$2b$", "$2y$", 1),
        );
        let db = UserDb::parse(&text).unwrap();
        assert_eq!(db.len(), 3);
        let cases: &[(&str, &str, bool)] = &[
            ("alice", "secret1", true),
            ("alice", "secret2", false),
            ("bob", "secret2", true),
            ("bob", "", false),
            ("carol", "secret3", true),
            ("dave", "secret1", false),
            ("", "", false),
        ];
        for (u, p, want) in cases {
            assert_eq!(db.verify(u, p.as_bytes()), *want, "{u}/{p}");
        }
    }

    #[test]
    fn dummy_matches_first_user_scheme() {
        let db = UserDb::parse(&format!("bob:{}\n", bcrypt::hash("x", 4).unwrap())).unwrap();
        assert!(matches!(&db.dummy, StoredHash::Bcrypt(s) if s.starts_with("$2b$04$")));
        let db = UserDb::parse(&format!("a:{}\n", cheap_hash("x"))).unwrap();
        assert!(matches!(&db.dummy, StoredHash::Argon2id(s) if s.contains("m=8,t=1,p=1")));
    }

    #[test]
    fn bad_lines_name_the_line_and_hide_the_secret() {
        let good = cheap_hash("x");
        let cases: Vec<(String, usize, &str)> = vec![
            ("alice:hunter2".into(), 1, "plaintext"),
            (format!("a:{good}\nbob:$apr1$abc$def"), 2, "unsupported password hash format"),
            ("x:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=".into(), 1, "unsupported"),
            ("x:$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(), 1, "unsupported"),
            ("x:$argon2id$garbage".into(), 1, "invalid argon2id"),
            ("x:$2y$99$bad".into(), 1, "invalid bcrypt"),
            ("x:".into(), 1, "empty"),
            ("\n\nnocolon".into(), 3, "user:hash"),
            (format!("a b:{good}"), 1, "invalid user name"),
            (format!(":{good}"), 1, "invalid user name"),
            (format!("a:{good}\na:{good}"), 2, "listed twice"),
        ];
        for (text, line, want) in cases {
            let Err((l, m)) = UserDb::parse(&text) else { panic!("{text} accepted") };
            assert_eq!(l, line, "{text}: {m}");
            assert!(m.contains(want), "{text}: {m}");
            assert!(!m.contains("hunter2"));
        }
    }

    #[test]
    fn load_reports_path_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(&p, "# users\nalice:hunter2\n").unwrap();
        let e = UserDb::load(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2: ", p.display())), "{e}");
    }

    #[test]
    fn hash_password_is_argon2id_default() {
        let h = hash_password("pw").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(StoredHash::parse(&h).unwrap().verify(b"pw"));
    }

    #[test]
    fn update_adds_replaces_keeps_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        let (h1, h2, h3) = (cheap_hash("1"), cheap_hash("2"), cheap_hash("3"));
        update_users_file(&p, "alice", &h1).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::write(&p, format!("# keep me\nalice:{h1}\nbob:{h2}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        update_users_file(&p, "alice", &h3).unwrap();
        update_users_file(&p, "carol", &h1).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, format!("# keep me\nalice:{h3}\nbob:{h2}\ncarol:{h1}\n"));
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(update_users_file(&p, "a:b", &h1).is_err());
        assert!(update_users_file(&p, "dave", "plain").is_err());
    }
}
