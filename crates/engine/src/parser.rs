//! SecLang text → directives with file:line.
//!
//! Follows Apache's config tokenizer, which ModSecurity's syntax inherits: lines end
//! at a newline unless the last character is `\`; arguments are separated by
//! whitespace; an argument in double (or single) quotes may contain whitespace, and
//! inside it only a backslash before the same quote is an escape (`\"` → `"`); every
//! other backslash is kept for the operator (regexes rely on that). That is ModSecurity
//! v3's reading; [`Dialect::ModSecurity2`] reads as Apache did for ModSecurity v2, where
//! `\\` also becomes `\` (ModSecurity issue #2148; CRS 3.3 writes `\\\\` for one
//! backslash in a regex because of it).

use std::path::Path;
use std::sync::Arc;

use crate::error::Error;

/// One directive: its name and arguments, and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub file: Arc<Path>,
    pub line: usize,
    pub name: String,
    pub args: Vec<String>,
}

/// Which reference engine's reading of rule text (and of request bodies, see
/// `Transaction`) Ward follows. Set by the Ward-only directive
/// `WardCompatibility ModSecurity2|ModSecurity3`; ModSecurity v3 unless told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// libmodsecurity 3 (the default).
    #[default]
    ModSecurity3,
    /// ModSecurity 2.9 (Apache): `\\` in arguments is one backslash; REQUEST_BODY is
    /// only filled by the URLENCODED processor or `ctl:forceRequestBodyVariable`.
    ModSecurity2,
}

/// The directive that selects the [`Dialect`]; it applies to the directives after it.
pub const DIALECT_DIRECTIVE: &str = "WardCompatibility";

impl Dialect {
    pub fn parse(v: &str) -> Option<Dialect> {
        match v.to_ascii_lowercase().as_str() {
            "modsecurity2" | "v2" => Some(Dialect::ModSecurity2),
            "modsecurity3" | "v3" => Some(Dialect::ModSecurity3),
            _ => None,
        }
    }
}

/// Splits SecLang text into directives. `first_line` is the line number of the first
/// line of `text` (inline rules in nginx.conf start mid-file).
pub fn parse(text: &str, file: &Arc<Path>, first_line: usize) -> Result<Vec<Directive>, Error> {
    parse_dialect(text, file, first_line, &mut Dialect::default())
}

/// [`parse`] starting in `dialect`; a `WardCompatibility` directive in `text` switches it
/// for the lines after it (and leaves it switched for the caller).
pub fn parse_dialect(
    text: &str,
    file: &Arc<Path>,
    first_line: usize,
    dialect: &mut Dialect,
) -> Result<Vec<Directive>, Error> {
    let mut out = Vec::new();
    let mut logical = String::new();
    let mut start_line = first_line;
    let mut continuing = false;
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = first_line + i;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if !continuing {
            start_line = line_no;
            let t = raw.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
        }
        let body = raw.trim_end();
        if let Some(head) = body.strip_suffix('\\') {
            logical.push_str(head);
            continuing = true;
            continue;
        }
        logical.push_str(raw);
        continuing = false;
        if let Some(d) = tokenize_directive(&logical, file, start_line, *dialect)? {
            note_dialect(&d, dialect);
            out.push(d);
        }
        logical.clear();
    }
    if continuing {
        if let Some(d) = tokenize_directive(&logical, file, start_line, *dialect)? {
            note_dialect(&d, dialect);
            out.push(d);
        }
    }
    Ok(out)
}

/// Follows `WardCompatibility` while tokenizing (the compiler validates its argument).
fn note_dialect(d: &Directive, dialect: &mut Dialect) {
    if d.name.eq_ignore_ascii_case(DIALECT_DIRECTIVE) {
        if let Some(v) = d.args.first().and_then(|a| Dialect::parse(a)) {
            *dialect = v;
        }
    }
}

/// Apache's `substring_conf`: `\\` → `\` everywhere, and `\` before the quote that
/// delimits the argument is dropped. Only in [`Dialect::ModSecurity2`].
fn apache_unescape(raw: &str, quote: Option<u8>) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut seg = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && (b[i + 1] == b'\\' || Some(b[i + 1]) == quote) {
            out.push_str(&raw[seg..i]);
            seg = i + 1;
            i += 2;
            continue;
        }
        i += 1;
    }
    out.push_str(&raw[seg..]);
    out
}

fn tokenize_directive(
    line: &str,
    file: &Arc<Path>,
    line_no: usize,
    dialect: Dialect,
) -> Result<Option<Directive>, Error> {
    let v2 = dialect == Dialect::ModSecurity2;
    let mut words = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let q = bytes[i];
        if q == b'"' || q == b'\'' {
            let mut word = String::new();
            let mut j = i + 1;
            let mut seg = j;
            loop {
                if j >= bytes.len() {
                    return Err(Error::new(
                        file.as_ref(),
                        line_no,
                        format!("unterminated {} quote in: {}", q as char, excerpt(line)),
                    ));
                }
                if v2 && bytes[j] == b'\\' && j + 1 < bytes.len() && (bytes[j + 1] == q || bytes[j + 1] == b'\\') {
                    // Apache skips an escaped pair when looking for the closing quote.
                    j += 2;
                    continue;
                }
                if !v2 && bytes[j] == b'\\' && bytes.get(j + 1) == Some(&q) {
                    word.push_str(&line[seg..j]);
                    word.push(q as char);
                    j += 2;
                    seg = j;
                    continue;
                }
                if bytes[j] == q {
                    word.push_str(&line[seg..j]);
                    break;
                }
                j += 1;
            }
            words.push(if v2 { apache_unescape(&word, Some(q)) } else { word });
            i = j + 1;
        } else {
            let s = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let word = &line[s..i];
            words.push(if v2 { apache_unescape(word, None) } else { word.to_string() });
        }
    }
    if words.is_empty() {
        return Ok(None);
    }
    let name = words.remove(0);
    Ok(Some(Directive { file: file.clone(), line: line_no, name, args: words }))
}

fn excerpt(s: &str) -> String {
    let s = s.trim();
    if s.len() > 80 {
        let mut end = 80;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}

/// One `name[:value]` item of an action list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionItem {
    pub name: String,
    pub value: Option<String>,
}

/// Splits an action list (`id:1,phase:2,msg:'a, b',t:none`) into items. A value in
/// single quotes may hold commas; `\'` inside it is a quote.
pub fn split_actions(s: &str) -> Result<Vec<ActionItem>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ns = i;
        while i < b.len() && b[i] != b':' && b[i] != b',' {
            i += 1;
        }
        let name = s[ns..i].trim().to_string();
        if name.is_empty() {
            return Err(format!("empty action name in '{s}'"));
        }
        if i < b.len() && b[i] == b':' {
            i += 1;
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            if i < b.len() && b[i] == b'\'' {
                let mut v = String::new();
                let mut j = i + 1;
                let mut seg = j;
                loop {
                    if j >= b.len() {
                        return Err(format!("unterminated quote in action '{name}'"));
                    }
                    if b[j] == b'\\' && b.get(j + 1) == Some(&b'\'') {
                        v.push_str(&s[seg..j]);
                        v.push('\'');
                        j += 2;
                        seg = j;
                        continue;
                    }
                    if b[j] == b'\'' {
                        v.push_str(&s[seg..j]);
                        break;
                    }
                    j += 1;
                }
                i = j + 1;
                out.push(ActionItem { name, value: Some(v) });
            } else {
                let vs = i;
                while i < b.len() && b[i] != b',' {
                    i += 1;
                }
                out.push(ActionItem { name, value: Some(s[vs..i].trim_end().to_string()) });
            }
        } else {
            out.push(ActionItem { name, value: None });
        }
    }
    Ok(out)
}

/// One item of a variable list: `[!|&]NAME[:selector]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableItem {
    pub exclude: bool,
    pub count: bool,
    pub name: String,
    pub selector: Option<String>,
}

/// Splits `ARGS|!ARGS:foo|&TX:/^a|b/|REQUEST_COOKIES:'/x/'` into items. A selector in
/// slashes is a regex and may contain `|`.
pub fn split_variables(s: &str) -> Result<Vec<VariableItem>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b'|' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let mut exclude = false;
        let mut count = false;
        match b[i] {
            b'!' => {
                exclude = true;
                i += 1
            }
            b'&' => {
                count = true;
                i += 1
            }
            _ => {}
        }
        let ns = i;
        while i < b.len() && b[i] != b':' && b[i] != b'|' {
            i += 1;
        }
        let mut name = s[ns..i].trim().to_string();
        if name.is_empty() {
            return Err(format!("empty variable name in '{s}'"));
        }
        let mut selector = None;
        // `TX.key` is accepted for collections, as ModSecurity does.
        if let Some((coll, key)) = name.split_once('.') {
            if ["TX", "IP", "GLOBAL", "SESSION", "USER", "RESOURCE", "GEO", "ENV"]
                .iter()
                .any(|c| c.eq_ignore_ascii_case(coll))
            {
                selector = Some(key.to_string());
                name = coll.to_string();
            }
        }
        if i < b.len() && b[i] == b':' {
            i += 1;
            let xpath = name.eq_ignore_ascii_case("XML");
            let (sel, next) = match b.get(i) {
                Some(b'/') if !xpath => {
                    let mut j = i + 1;
                    while j < b.len() && b[j] != b'/' {
                        if b[j] == b'\\' {
                            j += 1;
                        }
                        j += 1;
                    }
                    if j >= b.len() {
                        return Err(format!("unterminated regex selector in '{s}'"));
                    }
                    (s[i..=j].to_string(), j + 1)
                }
                Some(b'\'') => {
                    let end = s[i + 1..].find('\'').ok_or_else(|| format!("unterminated quote in '{s}'"))?;
                    (s[i + 1..i + 1 + end].to_string(), i + end + 2)
                }
                _ => {
                    let mut j = i;
                    while j < b.len() && b[j] != b'|' {
                        j += 1;
                    }
                    (s[i..j].trim().to_string(), j)
                }
            };
            selector = Some(sel);
            i = next;
        }
        out.push(VariableItem { exclude, count, name, selector });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<Path> {
        Arc::from(Path::new("t.conf"))
    }

    #[test]
    fn directives_with_continuations_quotes_and_comments() {
        let text = "# c\nSecRuleEngine On\n\nSecRule ARGS \"@rx a\\\"b c\" \\\n    \"id:1,\\\n    deny\"\n";
        let d = parse(text, &file(), 1).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].name, "SecRuleEngine");
        assert_eq!(d[0].line, 2);
        assert_eq!(d[1].line, 4);
        assert_eq!(d[1].args, vec!["ARGS", "@rx a\"b c", "id:1,    deny"]);
    }

    #[test]
    fn backslashes_other_than_quote_escapes_are_kept() {
        let d = parse(r#"SecRule ARGS "@rx \d+\\x" "id:1""#, &file(), 7).unwrap();
        assert_eq!(d[0].args[1], r"@rx \d+\\x");
        assert_eq!(d[0].line, 7);
    }

    #[test]
    fn modsecurity2_dialect_reads_backslash_pairs_as_apache() {
        // (text, args of the last directive)
        let cases: &[(&str, &[&str])] = &[
            (r#"SecRule ARGS "@rx [^\\\\]\\\\d\d" "id:1""#, &[r"ARGS", r"@rx [^\\]\\d\d", "id:1"]),
            (r#"SecRule ARGS "@rx a\"b\\" "id:1""#, &["ARGS", r#"@rx a"b\"#, "id:1"]),
            (r#"SecRule ARGS @rx\\\\d "id:1""#, &["ARGS", r"@rx\\d", "id:1"]),
            (r"SecRule ARGS '@rx \\' 'id:1'", &["ARGS", r"@rx \", "id:1"]),
        ];
        for (text, want) in cases {
            let mut dialect = Dialect::ModSecurity2;
            let d = parse_dialect(text, &file(), 1, &mut dialect).unwrap();
            assert_eq!(d[0].args, *want, "{text}");
        }
    }

    #[test]
    fn dialect_directive_switches_the_lines_after_it() {
        let text = "SecRule ARGS \"@rx \\\\d\" \"id:1\"\nWardCompatibility ModSecurity2\nSecRule ARGS \"@rx \\\\d\" \"id:2\"\n";
        let mut dialect = Dialect::default();
        let d = parse_dialect(text, &file(), 1, &mut dialect).unwrap();
        assert_eq!(d[0].args[1], r"@rx \\d");
        assert_eq!(d[2].args[1], r"@rx \d");
        assert_eq!(dialect, Dialect::ModSecurity2);
    }

    #[test]
    fn unterminated_quote_is_an_error_with_line() {
        let e = parse("\nSecRule ARGS \"@rx a", &file(), 1).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unterminated"));
    }

    #[test]
    fn action_lists() {
        let a = split_actions("id:1, phase:2,msg:'a, b',t:none,setvar:'tx.x=+%{tx.y}',tag:'it\\'s',deny").unwrap();
        let names: Vec<_> = a.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["id", "phase", "msg", "t", "setvar", "tag", "deny"]);
        assert_eq!(a[2].value.as_deref(), Some("a, b"));
        assert_eq!(a[4].value.as_deref(), Some("tx.x=+%{tx.y}"));
        assert_eq!(a[5].value.as_deref(), Some("it's"));
        assert_eq!(a[6].value, None);
    }

    #[test]
    fn variable_lists() {
        let v = split_variables("ARGS|!ARGS:foo|&TX:/^a|b/|REQUEST_COOKIES:'/x/'|XML:/*").unwrap();
        assert_eq!(v.len(), 5);
        assert!(v[1].exclude);
        assert_eq!(v[1].selector.as_deref(), Some("foo"));
        assert!(v[2].count);
        assert_eq!(v[2].selector.as_deref(), Some("/^a|b/"));
        assert_eq!(v[3].selector.as_deref(), Some("/x/"));
        assert_eq!(v[4].selector.as_deref(), Some("/*"));
    }
}
