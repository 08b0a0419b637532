//! MULTIPART body processor: ModSecurity v3's `multipart/form-data` parser, same
//! semantics over the whole buffered body (a port of behaviour, not of code).
//!
//! The body is cut into "lines" exactly as v3's 4096-byte line buffer does (a line
//! ends at LF, or after 4096 bytes, or before a CR that would be the 4096th byte),
//! because boundary detection, header-length errors and line-ending flags depend
//! on those cuts. Quirks kept on purpose so verdicts match v3:
//! - form-field values lose their line breaks (v3 overwrites the held-back CRLF);
//! - errors inside part headers are not fatal: the message is kept and parsing
//!   goes on (v3 tests `< 0` on a `false` return);
//! - fatal errors stop parsing, and the final check then replaces the message with
//!   "Final boundary missing." (or "No boundaries found in payload.");
//! - fields and files reach ARGS/FILES only when the payload completed;
//!   MULTIPART_NAME/FILENAME/PART_HEADERS are recorded as parsing goes;
//! - MULTIPART_UNMATCHED_BOUNDARY becomes 2 at every matched boundary after the first;
//! - a quoted-empty or empty `boundary=` silently disables the processor;
//! - the file limit only counts when files would be stored (SecUploadKeepFiles or
//!   SecTmpSaveUploadedFiles), as v3 only counts temporary files it creates.
//!
//! Cost is linear in the body. One deviation: re-parsing a huge folded
//! Content-Disposition on every blank header line is quadratic in v3; a work budget
//! turns that into a fatal error instead.

use std::collections::HashMap;

/// v3's line buffer size (MULTIPART_BUF_SIZE).
const BUF_SIZE: usize = 4096;

/// Limits from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultipartLimits {
    /// SecUploadFileLimit; 0 means no limit (v3's default when unset).
    pub file_limit: usize,
    /// True when v3 would store files (SecUploadKeepFiles On or SecTmpSaveUploadedFiles On);
    /// only then does the file limit apply.
    pub store_files: bool,
}

/// One uploaded file (FILES, FILES_NAMES, FILES_SIZES).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultipartFile {
    /// The part's `name` (key in FILES / FILES_NAMES / FILES_SIZES).
    pub name: Vec<u8>,
    /// The `filename` parameter (value in FILES).
    pub filename: Vec<u8>,
    /// Bytes of content (FILES_SIZES).
    pub size: usize,
    /// The part's Content-Type header, when present.
    pub content_type: Option<Vec<u8>>,
    /// The part's headers (name, value), in order, folded lines joined.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The MULTIPART_* flags, as v3 exports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultipartFlags {
    /// MULTIPART_STRICT_ERROR.
    pub strict_error: bool,
    /// MULTIPART_UNMATCHED_BOUNDARY: 0, 1, or 2 (2 = a normal later boundary was seen).
    pub unmatched_boundary: u8,
    pub boundary_quoted: bool,
    pub boundary_whitespace: bool,
    pub data_before: bool,
    pub data_after: bool,
    pub header_folding: bool,
    /// MULTIPART_LF_LINE.
    pub lf_line: bool,
    /// MULTIPART_CRLF_LF_LINES (mixed line endings).
    pub crlf_lf_lines: bool,
    pub missing_semicolon: bool,
    pub invalid_quoting: bool,
    pub invalid_part: bool,
    pub invalid_header_folding: bool,
    pub file_limit_exceeded: bool,
    /// v3's internal error flag (part of MULTIPART_STRICT_ERROR).
    pub error: bool,
}

/// Everything the MULTIPART processor produces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Multipart {
    /// Form fields (ARGS_POST / ARGS), in order. Empty unless the payload completed.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// Files, in order. Empty unless the payload completed.
    pub files: Vec<MultipartFile>,
    /// FILES_COMBINED_SIZE.
    pub files_combined_size: usize,
    /// MULTIPART_PART_HEADERS: (part name, "Header: value" line).
    pub part_headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// MULTIPART_NAME values (key = value in v3), every `name=` seen.
    pub names: Vec<Vec<u8>>,
    /// MULTIPART_FILENAME values, every `filename=` seen.
    pub filenames: Vec<Vec<u8>>,
    /// The MULTIPART_* flags.
    pub flags: MultipartFlags,
    /// REQBODY_ERROR / REQBODY_PROCESSOR_ERROR message (without v3's
    /// "Multipart parsing error: " prefix). `None` means no error.
    pub error: Option<Vec<u8>>,
    /// Bytes of non-file data (for SecRequestBodyNoFilesLimit).
    pub no_files_length: usize,
}

/// Parses a whole multipart body. `content_type` is the request's Content-Type value.
pub fn parse(content_type: &[u8], body: &[u8], limits: &MultipartLimits) -> Multipart {
    let mut p = Parser::new(limits, body.len());
    if p.init(content_type) {
        p.process(body);
    }
    p.complete()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    FormData,
    File,
}

enum LastLine {
    None,
    Raw(Vec<u8>),
    Folded(usize),
}

struct Part {
    kind: Kind,
    name: Vec<u8>,
    filename: Vec<u8>,
    value: Vec<u8>,
    size: usize,
    has_tmp_file: bool,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    index: HashMap<Vec<u8>, usize>,
    last_header: Option<usize>,
    last_line: LastLine,
    header_lines: Vec<Vec<u8>>,
}

impl Part {
    fn new() -> Self {
        Part {
            kind: Kind::FormData,
            name: Vec::new(),
            filename: Vec::new(),
            value: Vec::new(),
            size: 0,
            has_tmp_file: false,
            headers: Vec::new(),
            index: HashMap::new(),
            last_header: None,
            last_line: LastLine::None,
            header_lines: Vec::new(),
        }
    }

    fn header(&self, lower_name: &[u8]) -> Option<&[u8]> {
        self.index.get(lower_name).and_then(|&i| self.headers.get(i)).map(|h| h.1.as_slice())
    }

    /// Records the previous complete header line (v3's m_last_header_line).
    fn flush_last_line(&mut self) {
        match std::mem::replace(&mut self.last_line, LastLine::None) {
            LastLine::None => {}
            LastLine::Raw(l) => self.header_lines.push(l),
            LastLine::Folded(i) => {
                if let Some((n, v)) = self.headers.get(i) {
                    let mut l = Vec::with_capacity(n.len() + 2 + v.len());
                    l.extend_from_slice(n);
                    l.extend_from_slice(b": ");
                    l.extend_from_slice(v);
                    self.header_lines.push(l);
                }
            }
        }
    }
}

struct Parser<'l> {
    limits: &'l MultipartLimits,
    out: Multipart,
    boundary: Vec<u8>,
    finder: Option<memchr::memmem::Finder<'static>>,
    parts: Vec<Part>,
    current: Option<Part>,
    in_data: bool,
    data_read: bool,
    reserve: usize,
    boundary_count: usize,
    nfiles: usize,
    seen_data: bool,
    is_complete: bool,
    buf_contains_line: bool,
    prev_bare_lf: bool,
    crlf_line: bool,
    leftover: Vec<u8>,
    work_left: usize,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// v3's `chomp`: strip trailing CR/LF, unless the value is nothing but CR/LF.
fn chomp(s: &[u8]) -> &[u8] {
    match s.iter().rposition(|&c| c != b'\r' && c != b'\n') {
        Some(i) => &s[..=i],
        None => s,
    }
}

fn lower(s: &[u8]) -> Vec<u8> {
    s.to_ascii_lowercase()
}

/// Counts "boundary" (case-insensitive) occurrences followed somewhere by `=`.
fn count_boundary_params(s: &[u8]) -> usize {
    let l = lower(s);
    let last_eq = match memchr::memrchr(b'=', &l) {
        Some(i) => i,
        None => return 0,
    };
    memchr::memmem::find_iter(&l, b"boundary").filter(|&i| i + 8 <= last_eq).count()
}

fn boundary_characters_valid(b: &[u8]) -> bool {
    b.iter()
        .enumerate()
        .all(|(i, &c)| c.is_ascii_alphanumeric() || (c == b' ' && i + 1 != b.len()) || b"'()+_,-./:=?".contains(&c))
}

fn is_token_char(c: u8) -> bool {
    c > 32 && c < 127 && !b"()<>@,;:\\\"/[]?=".contains(&c)
}

fn cstr(s: &[u8]) -> &[u8] {
    match memchr::memchr(0, s) {
        Some(i) => &s[..i],
        None => s,
    }
}

impl<'l> Parser<'l> {
    fn new(limits: &'l MultipartLimits, body_len: usize) -> Self {
        Parser {
            limits,
            out: Multipart::default(),
            boundary: Vec::new(),
            finder: None,
            parts: Vec::new(),
            current: None,
            in_data: false,
            data_read: false,
            reserve: 0,
            boundary_count: 0,
            nfiles: 0,
            seen_data: false,
            is_complete: false,
            buf_contains_line: true,
            prev_bare_lf: false,
            crlf_line: false,
            leftover: Vec::new(),
            work_left: body_len.saturating_mul(8).saturating_add(1 << 20),
        }
    }

    fn set_error(&mut self, msg: &[u8]) {
        self.out.error = Some(msg.to_vec());
    }

    fn fail(&mut self, msg: &[u8]) -> bool {
        self.out.flags.error = true;
        self.set_error(msg);
        false
    }

    /// Content-Type checks and boundary extraction (v3 `Multipart::init`).
    fn init(&mut self, header: &[u8]) -> bool {
        if header.is_empty() {
            return self.fail(b"Multipart: Content-Type header not available.");
        }
        if header.len() > 1024 {
            return self.fail(b"Multipart: Invalid boundary in C-T (length).");
        }
        let h = cstr(header);
        if h.len() < 19 || !h[..19].eq_ignore_ascii_case(b"multipart/form-data") {
            return self.fail(b"Multipart: Invalid MIME type.");
        }
        if count_boundary_params(h) > 1 {
            return self.fail(b"Multipart: Multiple boundary parameters in C-T.");
        }
        let at = match memchr::memmem::find(h, b"boundary") {
            Some(i) => i,
            None => {
                if count_boundary_params(h) > 0 {
                    return self.fail(b"Multipart: Invalid boundary in C-T (case sensitivity).");
                }
                return self.fail(b"Multipart: Boundary not found in C-T.");
            }
        };
        let mut seen_semicolon = false;
        for &c in h.get(19..at).unwrap_or(&[]) {
            if !is_space(c) {
                if !seen_semicolon && c == b';' {
                    seen_semicolon = true;
                } else {
                    return self.fail(b"Multipart: Invalid boundary in C-T (malformed).");
                }
            }
        }
        if !seen_semicolon {
            self.out.flags.missing_semicolon = true;
        }
        let after = &h[at + 8..];
        let eq = match memchr::memchr(b'=', after) {
            Some(i) => i,
            None => return self.fail(b"Multipart: Invalid boundary in C-T (malformed)."),
        };
        for &c in &after[..eq] {
            if is_space(c) {
                self.out.flags.boundary_whitespace = true;
            } else {
                return self.fail(b"Multipart: Invalid boundary in C-T (parameter name).");
            }
        }
        let b = &after[eq + 1..];
        if b.first().is_some_and(|&c| is_space(c)) {
            self.out.flags.boundary_whitespace = true;
        }
        let mut boundary: Vec<u8>;
        if b.len() >= 2 && b[0] == b'"' && b[b.len() - 1] == b'"' {
            boundary = b[1..b.len() - 1].to_vec();
            if boundary.is_empty() {
                return false;
            }
            self.out.flags.boundary_quoted = true;
        } else {
            if b.first() == Some(&b'"') || (b.len() >= 2 && b[b.len() - 1] == b'"') {
                return self.fail(b"Multipart: Invalid boundary in C-T (quote).");
            }
            boundary = b.to_vec();
            if boundary.is_empty() {
                return false;
            }
            self.out.flags.boundary_quoted = false;
        }
        if count_boundary_params(&boundary) != 0 {
            return self.fail(b"Multipart: Invalid boundary in C-T (content).");
        }
        // Tolerated: a parameter (e.g. charset) after the boundary.
        if !boundary_characters_valid(&boundary) {
            if let Some(i) = memchr::memchr(b';', &boundary) {
                boundary.truncate(i);
            }
        }
        if !boundary_characters_valid(&boundary) {
            return self.fail(b"Multipart: Invalid boundary in C-T (characters).");
        }
        if boundary.is_empty() {
            return self.fail(b"Multipart: Invalid boundary in C-T (empty).");
        }
        let mut needle = b"--".to_vec();
        needle.extend_from_slice(&boundary);
        self.finder = Some(memchr::memmem::Finder::new(&needle).into_owned());
        self.boundary = boundary;
        true
    }

    /// The main loop (v3 `Multipart::process`), one v3 "line" at a time.
    fn process(&mut self, body: &[u8]) {
        if body.is_empty() {
            return;
        }
        self.seen_data = true;
        let mut pos = 0;
        while pos < body.len() {
            let window = &body[pos..body.len().min(pos + BUF_SIZE)];
            let (len, short_cut) = match memchr::memchr(b'\n', window) {
                Some(i) => (i + 1, false),
                None if window.len() == BUF_SIZE => {
                    // v3 never takes CR as the last byte of its buffer.
                    if window[BUF_SIZE - 1] == b'\r' {
                        (BUF_SIZE - 1, true)
                    } else {
                        (BUF_SIZE, false)
                    }
                }
                None => {
                    self.leftover = window.to_vec();
                    return;
                }
            };
            let line = &window[..len];
            pos += len;
            if !self.process_line(line, len == BUF_SIZE || short_cut) {
                self.leftover = line.to_vec();
                return;
            }
            let ends_lf = line.last() == Some(&b'\n');
            self.buf_contains_line = ends_lf;
            self.prev_bare_lf = ends_lf && (line.len() < 2 || line[line.len() - 2] != b'\r');
            if self.is_complete && pos < body.len() {
                self.out.flags.data_after = true;
                return;
            }
        }
    }

    /// Returns false on a fatal error.
    fn process_line(&mut self, line: &[u8], buffer_full: bool) -> bool {
        let n = self.boundary.len();
        let c = cstr(line);
        let mut as_boundary = false;
        if self.buf_contains_line && c.len() > 3 && line[0] == b'-' && line[1] == b'-' {
            if line[2..].starts_with(&self.boundary) {
                if self.prev_bare_lf {
                    self.out.flags.lf_line = true;
                }
                if !self.data_read && self.boundary_count > 0 {
                    // A boundary where part data should begin.
                    self.out.flags.invalid_part = true;
                } else {
                    if self.boundary_count > 0 {
                        self.out.flags.unmatched_boundary = 2;
                    }
                    let mut rest = &line[2 + n..];
                    let is_final = rest.starts_with(b"--");
                    if is_final {
                        rest = &rest[2..];
                        if self.is_complete {
                            return self.fail(b"Multipart: Invalid boundary (final duplicate).");
                        }
                    }
                    if rest == b"\r\n" || rest == b"\n" {
                        if rest == b"\n" {
                            self.out.flags.lf_line = true;
                        } else {
                            self.crlf_line = true;
                        }
                        self.process_boundary(is_final);
                        if is_final {
                            self.is_complete = true;
                        }
                        as_boundary = true;
                        self.boundary_count += 1;
                    } else {
                        let mut m = b"Multipart: Invalid boundary: ".to_vec();
                        m.extend_from_slice(c);
                        return self.fail(&m);
                    }
                }
            } else {
                if self.out.flags.boundary_quoted
                    && line.len() >= n + 3
                    && line[2] == b'"'
                    && line[3..].starts_with(&self.boundary)
                {
                    return self.fail(b"Multipart: Invalid boundary (quotes).");
                }
                let mut p = 2;
                while line.get(p).is_some_and(|&b| is_space(b)) {
                    p += 1;
                }
                if p != 2 && line[p..].starts_with(&self.boundary) {
                    return self.fail(b"Multipart: Invalid boundary (whitespace).");
                }
                self.out.flags.unmatched_boundary = 1;
            }
        } else if self.buf_contains_line && self.finder.as_ref().is_some_and(|f| f.find(line).is_some()) {
            self.out.flags.unmatched_boundary = 1;
        }

        if !as_boundary {
            if self.current.is_none() {
                self.out.flags.data_before = true;
            } else if !self.in_data {
                if buffer_full {
                    return self.fail(b"Multipart: Part header line over 4096 bytes long");
                }
                return self.process_part_header(line);
            } else {
                self.process_part_data(line);
            }
        }
        true
    }

    /// v3 `process_part_header`. Errors here are kept but not fatal (v3 quirk),
    /// except the work-budget guard.
    fn process_part_header(&mut self, line: &[u8]) -> bool {
        if memchr::memchr(0, line).is_some() {
            self.set_error(b"Multipart: Nul byte in part headers.");
            return true;
        }
        self.out.no_files_length += line.len();
        let len = line.len();
        let mut without_eol = len.saturating_sub(1);
        if len > 1 && line[len - 2] == b'\r' {
            self.crlf_line = true;
            without_eol -= 1;
        } else {
            self.out.flags.lf_line = true;
        }
        let Some(mut part) = self.current.take() else { return true };
        let ok = self.part_header_line(&mut part, line, without_eol);
        self.current = Some(part);
        ok
    }

    fn part_header_line(&mut self, part: &mut Part, line: &[u8], without_eol: usize) -> bool {
        if line == b"\r\n" || line == b"\n" {
            part.flush_last_line();
            let Some(cd) = part.header(b"content-disposition").map(|v| v.to_vec()) else {
                self.set_error(b"Multipart: Part missing Content-Disposition header.");
                return true;
            };
            if cd.len() > self.work_left {
                return self.fail(b"Multipart: Part headers too costly to process.");
            }
            self.work_left -= cd.len();
            let rc = self.parse_content_disposition(part, &cd);
            if rc < 0 {
                let mut m = format!("Multipart: Invalid Content-Disposition header ({}): ", rc).into_bytes();
                m.extend_from_slice(&cd);
                self.set_error(&m);
                return true;
            }
            if part.name.is_empty() {
                self.set_error(b"Multipart: Content-Disposition header missing name field.");
                return true;
            }
            if !part.filename.is_empty() {
                // Catch parsers that would not have understood this C-D.
                if memchr::memmem::find(&cd, b"filename=").is_none() {
                    self.set_error(b"Multipart: Invalid Content-Disposition header (filename).");
                    return true;
                }
                part.kind = Kind::File;
            } else {
                part.kind = Kind::FormData;
            }
            self.in_data = true;
            self.data_read = false;
            part.last_header = None;
        } else if is_space(line[0]) {
            self.out.flags.header_folding = true;
            if line[0] != b'\t' && line[0] != b' ' {
                self.out.flags.invalid_header_folding = true;
            }
            let Some(idx) = part.last_header else {
                self.set_error(b"Multipart: Invalid part header (folding error).");
                return true;
            };
            let mut d = 0;
            while let Some(&c) = line.get(d) {
                if !is_space(c) {
                    break;
                }
                if c != b'\t' && c != b' ' {
                    self.out.flags.invalid_header_folding = true;
                }
                d += 1;
            }
            let add = chomp(&line[d..]);
            let Some(h) = part.headers.get_mut(idx) else { return true };
            h.1.push(b' ');
            h.1.extend_from_slice(add);
            if h.1.len() > BUF_SIZE {
                self.set_error(b"Multipart: Part header too long.");
                return true;
            }
            part.last_line = LastLine::Folded(idx);
        } else {
            part.flush_last_line();
            let Some(colon) = memchr::memchr(b':', line) else {
                let mut m = b"Multipart: Invalid part header (colon missing): ".to_vec();
                m.extend_from_slice(line);
                self.set_error(&m);
                return true;
            };
            let name = &line[..colon];
            if name.is_empty() {
                self.set_error(b"Multipart: Invalid part header (header name missing).");
                return true;
            }
            if name.iter().any(|&c| !(33..=126).contains(&c)) {
                self.set_error(b"Multipart: Invalid part header (contains invalid character).");
                return true;
            }
            let mut v = colon + 1;
            while matches!(line.get(v), Some(b'\t' | b' ')) {
                v += 1;
            }
            let value = chomp(&line[v..]);
            let key = lower(name);
            if part.index.contains_key(&key) {
                // v3 drops duplicate part headers without an error message.
                return true;
            }
            part.index.insert(key, part.headers.len());
            part.last_header = Some(part.headers.len());
            part.headers.push((name.to_vec(), value.to_vec()));
            part.last_line = if without_eol > 0 { LastLine::Raw(line[..without_eol].to_vec()) } else { LastLine::None };
        }
        true
    }

    /// v3 `parse_content_disposition`; returns v3's return code (negative = error).
    fn parse_content_disposition(&mut self, part: &mut Part, v: &[u8]) -> i32 {
        const CHARSET_SPECIAL: &[u8] = b"!#$%&+-^_`{}~";
        const ATTR_SPECIAL: &[u8] = b"!#$&+-.^_`~";
        // v3 walks a C string: past the end reads as NUL.
        let at = |i: usize| -> u8 { v.get(i).copied().unwrap_or(0) };
        if !v.starts_with(b"form-data") {
            return -1;
        }
        let mut p = 9;
        while matches!(at(p), b'\t' | b' ') {
            p += 1;
        }
        if at(p) == 0 {
            return 1;
        }
        if at(p) != b';' {
            return -2;
        }
        p += 1;
        let mut filename_star: Vec<u8> = Vec::new();
        while at(p) != 0 {
            while matches!(at(p), b'\t' | b' ') {
                p += 1;
            }
            if at(p) == 0 {
                return -3;
            }
            let start = p;
            while !matches!(at(p), 0 | b'=' | b'\t' | b' ') {
                p += 1;
            }
            if at(p) == 0 {
                return -4;
            }
            let name = &v[start..p];
            while matches!(at(p), b'\t' | b' ') {
                p += 1;
            }
            if at(p) == 0 {
                return -5;
            }
            if at(p) != b'=' {
                return -13;
            }
            p += 1;
            while matches!(at(p), b'\t' | b' ') {
                p += 1;
            }
            if at(p) == 0 {
                return -6;
            }
            let mut quote = 0u8;
            let mut value: Vec<u8> = Vec::new();
            if name == b"filename*" {
                // filename*=charset'[language]'filename
                let cs = p;
                while at(p) != 0 && (at(p).is_ascii_alphanumeric() || CHARSET_SPECIAL.contains(&at(p))) {
                    p += 1;
                }
                if at(p) != b'\'' || p == cs {
                    return -16;
                }
                p += 1;
                while at(p) != 0 && at(p) != b'\'' {
                    p += 1;
                }
                if at(p) != b'\'' {
                    return -17;
                }
                p += 1;
                let fs = p;
                while at(p) != 0 && at(p) != b';' {
                    if at(p) == b'%' {
                        if at(p + 1) == 0 || !at(p + 1).is_ascii_hexdigit() || !at(p + 2).is_ascii_hexdigit() {
                            return -18;
                        }
                        p += 3;
                    } else if at(p).is_ascii_alphanumeric() || ATTR_SPECIAL.contains(&at(p)) {
                        p += 1;
                    } else {
                        return -19;
                    }
                }
                value.extend_from_slice(&v[fs..p]);
            } else if at(p) == b'"' || at(p) == b'\'' {
                quote = at(p);
                if quote == b'\'' {
                    self.out.flags.invalid_quoting = true;
                }
                p += 1;
                if at(p) == 0 {
                    return -7;
                }
                while at(p) != 0 {
                    if at(p) == b'\\' {
                        if at(p + 1) == 0 {
                            return -8;
                        }
                        // Only the quote and `\` can be escaped; others are kept (IE).
                        if at(p + 1) == quote || at(p + 1) == b'\\' {
                            p += 1;
                        }
                    } else if at(p) == quote {
                        break;
                    }
                    value.push(at(p));
                    p += 1;
                }
                // v3 steps over the closing quote; without one it would read past
                // the string's end, we stop there instead.
                if at(p) == quote {
                    p += 1;
                }
            } else {
                let s = p;
                while at(p) != 0 && is_token_char(at(p)) {
                    p += 1;
                }
                value.extend_from_slice(&v[s..p]);
            }

            if name == b"name" {
                self.validate_quotes(&value, quote);
                self.out.names.push(value.clone());
                if !part.name.is_empty() {
                    return -14;
                }
                part.name = value;
            } else if name == b"filename" {
                self.validate_quotes(&value, quote);
                self.out.filenames.push(value.clone());
                if !part.filename.is_empty() {
                    return -15;
                }
                part.filename = value;
            } else if name == b"filename*" {
                if !filename_star.is_empty() {
                    return -20;
                }
                filename_star = value;
            } else {
                return -11;
            }

            if at(p) != 0 {
                while matches!(at(p), b'\t' | b' ') {
                    p += 1;
                }
                if at(p) != 0 {
                    if at(p) != b';' {
                        if p > 0 && matches!(at(p - 1), b'\'' | b'"') {
                            self.out.flags.invalid_quoting = true;
                        }
                        return -12;
                    }
                    p += 1;
                }
            }
        }
        if !filename_star.is_empty() && part.filename.is_empty() {
            return -21;
        }
        1
    }

    fn validate_quotes(&mut self, value: &[u8], quote: u8) {
        // A single quote inside a double-quoted value is fine.
        if quote != b'"' && value.contains(&b'\'') {
            self.out.flags.invalid_quoting = true;
        }
    }

    /// v3 `process_part_data`: the line's trailing CRLF/LF is held back and only
    /// counted if more data follows (it belongs to the boundary otherwise).
    fn process_part_data(&mut self, line: &[u8]) {
        self.data_read = true;
        let (data, reserved) = if line.ends_with(b"\r\n") {
            (&line[..line.len() - 2], 2)
        } else if line.ends_with(b"\n") {
            (&line[..line.len() - 1], 1)
        } else {
            (line, 0)
        };
        let Some(mut part) = self.current.take() else { return };
        match part.kind {
            Kind::File => {
                let mut extract = self.limits.store_files;
                if extract && self.limits.file_limit > 0 && self.nfiles >= self.limits.file_limit {
                    if !self.out.flags.file_limit_exceeded {
                        let m = format!(
                            "Multipart: Upload file limit exceeded {}. Use SecUploadFileLimit to change the limit.",
                            self.limits.file_limit
                        );
                        self.set_error(m.as_bytes());
                        self.out.flags.file_limit_exceeded = true;
                    }
                    extract = false;
                }
                if extract && !part.has_tmp_file {
                    part.has_tmp_file = true;
                    self.nfiles += 1;
                }
                part.size += data.len() + self.reserve;
            }
            Kind::FormData => {
                self.out.no_files_length += data.len() + self.reserve;
                // v3 overwrites the held-back line break: values lose it.
                part.value.extend_from_slice(data);
            }
        }
        self.current = Some(part);
        self.reserve = reserved;
    }

    /// v3 `process_boundary`: closes the current part, opens a new one unless final.
    fn process_boundary(&mut self, last: bool) {
        if let Some(part) = self.current.take() {
            for l in &part.header_lines {
                self.out.part_headers.push((part.name.clone(), l.clone()));
            }
            if part.name.is_empty() {
                self.out.flags.invalid_part = true;
            } else {
                self.parts.push(part);
            }
        }
        if !last {
            self.current = Some(Part::new());
            self.in_data = false;
            self.data_read = false;
            self.reserve = 0;
        }
    }

    /// v3 `multipart_complete`: final-boundary check, flags, and the collections.
    fn complete(mut self) -> Multipart {
        let mut exported = true;
        if self.seen_data && !self.is_complete {
            if self.boundary_count > 0 {
                let n = self.boundary.len();
                let l = &self.leftover;
                if self.buf_contains_line
                    && l.len() == 4 + n
                    && l.starts_with(b"--")
                    && l[2..].starts_with(&self.boundary)
                    && l.ends_with(b"--")
                {
                    // The final boundary without a line ending.
                    if self.prev_bare_lf {
                        self.out.flags.lf_line = true;
                    }
                    if !self.data_read {
                        self.out.flags.invalid_part = true;
                    }
                    self.process_boundary(true);
                    self.is_complete = true;
                }
                if !self.is_complete {
                    self.set_error(b"Multipart: Final boundary missing.");
                    exported = false;
                }
            } else {
                self.set_error(b"Multipart: No boundaries found in payload.");
                exported = false;
            }
        }
        let f = &mut self.out.flags;
        f.crlf_lf_lines = self.crlf_line && f.lf_line;
        f.strict_error = f.error
            || f.boundary_quoted
            || f.boundary_whitespace
            || f.data_before
            || f.data_after
            || f.header_folding
            || f.lf_line
            || f.missing_semicolon
            || f.invalid_quoting
            || f.invalid_part
            || f.invalid_header_folding
            || f.file_limit_exceeded;
        if exported {
            for part in std::mem::take(&mut self.parts) {
                match part.kind {
                    Kind::File => {
                        self.out.files_combined_size += part.size;
                        let content_type = part.header(b"content-type").map(|v| v.to_vec());
                        self.out.files.push(MultipartFile {
                            name: part.name,
                            filename: part.filename,
                            size: part.size,
                            content_type,
                            headers: part.headers,
                        });
                    }
                    Kind::FormData => self.out.fields.push((part.name, part.value)),
                }
            }
        }
        self.out
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    const CT: &[u8] = b"multipart/form-data; boundary=XyZ";

    fn crlf(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    fn run(ct: &[u8], body: &[u8]) -> Multipart {
        parse(ct, body, &MultipartLimits::default())
    }

    const SIMPLE: &str = "--XyZ\n\
Content-Disposition: form-data; name=\"a\"\n\
\n\
1\n\
--XyZ\n\
Content-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\n\
Content-Type: text/plain\n\
\n\
hello\n\
world\n\
--XyZ--\n";

    #[test]
    fn simple_crlf() {
        let m = run(CT, &crlf(SIMPLE));
        assert_eq!(m.error, None);
        assert_eq!(m.fields, vec![(b"a".to_vec(), b"1".to_vec())]);
        assert_eq!(m.files.len(), 1);
        let f = &m.files[0];
        assert_eq!((&f.name[..], &f.filename[..], f.size), (&b"f"[..], &b"x.txt"[..], 12));
        assert_eq!(f.content_type.as_deref(), Some(&b"text/plain"[..]));
        assert_eq!(m.files_combined_size, 12);
        assert_eq!(m.names, vec![b"a".to_vec(), b"f".to_vec()]);
        assert_eq!(m.filenames, vec![b"x.txt".to_vec()]);
        assert_eq!(
            m.part_headers,
            vec![
                (b"a".to_vec(), b"Content-Disposition: form-data; name=\"a\"".to_vec()),
                (b"f".to_vec(), b"Content-Disposition: form-data; name=\"f\"; filename=\"x.txt\"".to_vec()),
                (b"f".to_vec(), b"Content-Type: text/plain".to_vec()),
            ]
        );
        let want = MultipartFlags { unmatched_boundary: 2, ..Default::default() };
        assert_eq!(m.flags, want);
    }

    #[test]
    fn lf_and_mixed_lines() {
        let m = run(CT, SIMPLE.as_bytes());
        assert_eq!(m.error, None);
        assert!(m.flags.lf_line && m.flags.strict_error && !m.flags.crlf_lf_lines);
        let mut mixed = crlf(SIMPLE);
        mixed.extend_from_slice(b"");
        let mixed = [&crlf("--XyZ\nContent-Disposition: form-data; name=\"a\"\n\n")[..], b"1\n--XyZ--\r\n"].concat();
        let m = run(CT, &mixed);
        assert_eq!(m.error, None);
        assert!(m.flags.lf_line && m.flags.crlf_lf_lines);
        assert_eq!(m.fields, vec![(b"a".to_vec(), b"1".to_vec())]);
    }

    /// (content type, body (LF → CRLF), expected error, fields, check)
    #[test]
    fn table() {
        type Check = fn(&Multipart) -> bool;
        let cases: &[(&[u8], &str, Option<&str>, &[(&str, &str)], Check)] = &[
            // value with a line break: v3 drops it
            (CT, "--XyZ\nContent-Disposition: form-data; name=a\n\nx\ny\n--XyZ--\n", None, &[("a", "xy")], |_| true),
            // empty value
            (CT, "--XyZ\nContent-Disposition: form-data; name=a\n\n\n--XyZ--\n", None, &[("a", "")], |_| true),
            // missing final boundary
            (CT, "--XyZ\nContent-Disposition: form-data; name=a\n\nx\n", Some("Multipart: Final boundary missing."), &[], |m| m.names == vec![b"a".to_vec()]),
            // final boundary without line ending is accepted
            (CT, "--XyZ\nContent-Disposition: form-data; name=a\n\nx\n--XyZ--", None, &[("a", "x")], |m| !m.flags.strict_error),
            // no boundary at all in the body
            (CT, "hello\n", Some("Multipart: No boundaries found in payload."), &[], |m| m.flags.data_before),
            // empty body: nothing, no error
            (CT, "", None, &[], |m| !m.flags.strict_error),
            (b"multipart/form-data", "--XyZ--\n", Some("Multipart: Boundary not found in C-T."), &[], |m| m.flags.error && m.flags.strict_error),
            (b"multipart/form-data; Boundary=XyZ", "--XyZ--\n", Some("Multipart: Invalid boundary in C-T (case sensitivity)."), &[], |_| true),
            (b"multipart/form-data; boundary=a; boundary=b", "", Some("Multipart: Multiple boundary parameters in C-T."), &[], |_| true),
            (b"text/plain; boundary=XyZ", "", Some("Multipart: Invalid MIME type."), &[], |_| true),
            (b"multipart/form-data; boundary=\"XyZ", "", Some("Multipart: Invalid boundary in C-T (quote)."), &[], |_| true),
            (b"multipart/form-data; boundary=X{Z", "", Some("Multipart: Invalid boundary in C-T (characters)."), &[], |_| true),
            (b"multipart/form-data; x boundary=XyZ", "", Some("Multipart: Invalid boundary in C-T (malformed)."), &[], |_| true),
            // empty boundary: v3 silently skips the body
            (b"multipart/form-data; boundary=\"\"", "--XyZ--\n", None, &[], |m| !m.flags.strict_error),
            // charset after the boundary is tolerated
            (b"multipart/form-data; boundary=XyZ;charset=utf-8", "--XyZ\nContent-Disposition: form-data; name=a\n\nx\n--XyZ--\n", None, &[("a", "x")], |_| true),
            (b"multipart/form-data; boundary=\"XyZ\"", "--XyZ\nContent-Disposition: form-data; name=a\n\nx\n--XyZ--\n", None, &[("a", "x")], |m| m.flags.boundary_quoted && m.flags.strict_error),
            (b"multipart/form-data boundary=XyZ", "--XyZ\nContent-Disposition: form-data; name=a\n\nx\n--XyZ--\n", None, &[("a", "x")], |m| m.flags.missing_semicolon),
            (b"multipart/form-data; boundary = XyZ", "--XyZ\nContent-Disposition: form-data; name=a\n\nx\n-- XyZ--\n", None, &[], |m| m.flags.boundary_whitespace && m.flags.data_before),
            // data before the first boundary and after the last
            (CT, "junk\n--XyZ\nContent-Disposition: form-data; name=a\n\nx\n--XyZ--\nafter", None, &[("a", "x")], |m| m.flags.data_before && m.flags.data_after),
            // header folding
            (CT, "--XyZ\nContent-Disposition: form-data;\n name=a\n\nx\n--XyZ--\n", None, &[("a", "x")], |m| m.flags.header_folding && !m.flags.invalid_header_folding
                && m.part_headers == vec![(b"a".to_vec(), b"Content-Disposition: form-data; name=a".to_vec())]),
            (CT, "--XyZ\nContent-Disposition: form-data;\n\x0bname=a\n\nx\n--XyZ--\n", None, &[("a", "x")], |m| m.flags.invalid_header_folding),
            // invalid quoting
            (CT, "--XyZ\nContent-Disposition: form-data; name='a'\n\nx\n--XyZ--\n", None, &[("a", "x")], |m| m.flags.invalid_quoting),
            (CT, "--XyZ\nContent-Disposition: form-data; name=\"a\"x\n\nx\n--XyZ--\n", Some("Multipart: Final boundary missing."), &[], |m| m.flags.invalid_quoting && m.flags.invalid_part),
            // missing name: part skipped
            (CT, "--XyZ\nContent-Disposition: form-data\n\nx\n--XyZ\nContent-Disposition: form-data; name=b\n\ny\n--XyZ--\n",
                Some("Multipart: Final boundary missing."), &[], |m| m.flags.invalid_part),
            // missing Content-Disposition
            (CT, "--XyZ\nX-A: 1\n\n--XyZ--\n", Some("Multipart: Final boundary missing."), &[], |m| m.flags.invalid_part),
            (CT, "--XyZ\nContent-Disposition: attachment; name=a\n\nx\n--XyZ--\n", Some("Multipart: Final boundary missing."), &[], |_| true),
            (CT, "--XyZ\nContent-Disposition: form-data; name=a; foo=b\n\n--XyZ--\n", Some("Multipart: Final boundary missing."), &[], |_| true),
            (CT, "--XyZ\nContent-Disposition: form-data; name=a; name=b\n\n--XyZ--\n", Some("Multipart: Final boundary missing."), &[],
                |m| m.names == vec![b"a".to_vec(), b"b".to_vec()]),
            (CT, "--XyZ\nContent-Disposition: form-data; name=a; filename*=UTF-8''x.txt\n\n--XyZ--\n", Some("Multipart: Final boundary missing."), &[], |_| true),
            (CT, "--XyZ\nContent-Disposition: form-data; name=a; filename=\"x\"; filename*=UTF-8''x%20y.txt\n\nabc\n--XyZ--\n", None, &[], |m| m.files.len() == 1 && m.files[0].size == 3),
            // duplicate part header: silently ignored
            (CT, "--XyZ\nContent-Disposition: form-data; name=a\ncontent-disposition: form-data; name=b\n\nx\n--XyZ--\n", None, &[("a", "x")], |_| true),
            (CT, "--XyZ\n x: 1\nContent-Disposition: form-data; name=a\n\nx\n--XyZ--\n", Some("Multipart: Invalid part header (folding error)."), &[("a", "x")], |_| true),
            (CT, "--XyZ\nA B: 1\nContent-Disposition: form-data; name=a\n\nx\n--XyZ--\n", Some("Multipart: Invalid part header (contains invalid character)."), &[("a", "x")], |_| true),
            (CT, "--XyZ\n:1\nContent-Disposition: form-data; name=a\n\nx\n--XyZ--\n", Some("Multipart: Invalid part header (header name missing)."), &[("a", "x")], |_| true),
            (CT, "--XyZ\nX: \0\nContent-Disposition: form-data; name=a\n\nx\n--XyZ--\n", Some("Multipart: Nul byte in part headers."), &[("a", "x")], |_| true),
            // a boundary right after the headers: invalid part, the line is data
            (CT, "--XyZ\nContent-Disposition: form-data; name=a\n\n--XyZ\n--XyZ--\n", None, &[("a", "--XyZ")], |m| m.flags.invalid_part),
            // unmatched boundary-like line inside data
            (CT, "--XyZ\nContent-Disposition: form-data; name=a\n\nx--XyZ\n--XyZ--\n", None, &[("a", "x--XyZ")], |m| m.flags.unmatched_boundary == 2),
            (CT, "--XyZ\nContent-Disposition: form-data; name=a\n\n--other\n", Some("Multipart: Final boundary missing."), &[], |m| m.flags.unmatched_boundary == 1),
            (b"multipart/form-data; boundary=\"XyZ\"", "--\"XyZ\"\n", Some("Multipart: No boundaries found in payload."), &[], |m| m.flags.error),
            (CT, "--XyZ\nContent-Disposition: form-data; name=a\n\nx\n--XyZjunk\n", Some("Multipart: Final boundary missing."), &[], |m| m.flags.error),
            (CT, "--XyZ--\n", None, &[], |m| !m.flags.invalid_part),
            (CT, "--XyZ\nContent-Disposition: form-data; name=a\n\nx\n--XyZ--\n--XyZ--\n", None, &[("a", "x")], |m| m.flags.data_after),
            // filename without "filename=" in the raw header (filename *= ...)
            (CT, "--XyZ\nContent-Disposition: form-data; name=a; filename =\"x\"\n\nx\n--XyZ--\n", Some("Multipart: Final boundary missing."), &[], |_| true),
        ];
        for (i, (ct, body, err, fields, check)) in cases.iter().enumerate() {
            let m = run(ct, &crlf(body));
            assert_eq!(
                m.error.as_deref().map(String::from_utf8_lossy),
                err.map(std::borrow::Cow::Borrowed),
                "case {i}: {body:?}"
            );
            let want: Vec<(Vec<u8>, Vec<u8>)> =
                fields.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect();
            assert_eq!(m.fields, want, "case {i}: {body:?}");
            assert!(check(&m), "case {i}: {body:?}: {m:#?}");
        }
    }

    #[test]
    fn file_limit_counts_only_stored_files() {
        let mut body = String::new();
        for i in 0..3 {
            body.push_str(&format!("--XyZ\nContent-Disposition: form-data; name=f{i}; filename=x\n\nabc\n"));
        }
        body.push_str("--XyZ--\n");
        let body = crlf(&body);
        let m = parse(CT, &body, &MultipartLimits { file_limit: 2, store_files: false });
        assert!(!m.flags.file_limit_exceeded && m.error.is_none());
        let m = parse(CT, &body, &MultipartLimits { file_limit: 2, store_files: true });
        assert!(m.flags.file_limit_exceeded && m.flags.strict_error);
        assert_eq!(m.files.len(), 3);
        assert_eq!(
            m.error.as_deref(),
            Some(&b"Multipart: Upload file limit exceeded 2. Use SecUploadFileLimit to change the limit."[..])
        );
    }

    #[test]
    fn long_lines() {
        // A header line of 4096 bytes is fatal.
        let long = "a".repeat(4100);
        let body = crlf(&format!("--XyZ\nX: {long}\n"));
        let m = run(CT, &body);
        assert!(m.flags.error);
        assert_eq!(m.error.as_deref(), Some(&b"Multipart: Final boundary missing."[..]));
        // Long data lines are fine; size counts every byte.
        let body =
            crlf(&format!("--XyZ\nContent-Disposition: form-data; name=f; filename=x\n\n{long}\n{long}\n--XyZ--\n"));
        let m = run(CT, &body);
        assert_eq!(m.error, None);
        assert_eq!(m.files[0].size, 4100 * 2 + 2);
        // CR at the 4096th byte stays with its LF.
        let data = format!("{}\r\n", "b".repeat(4095));
        let body = [
            &crlf("--XyZ\nContent-Disposition: form-data; name=f; filename=x\n\n")[..],
            data.as_bytes(),
            b"z\r\n--XyZ--\r\n",
        ]
        .concat();
        let m = run(CT, &body);
        assert_eq!(m.error, None);
        assert_eq!(m.files[0].size, 4095 + 2 + 1);
        assert!(!m.flags.lf_line);
    }

    #[test]
    fn hostile_inputs_are_linear() {
        // 10,000 parts.
        let mut body = String::new();
        for i in 0..10_000 {
            body.push_str(&format!("--XyZ\nContent-Disposition: form-data; name=p{i}\n\nv\n"));
        }
        let body = crlf(&body);
        let m = run(CT, &body);
        assert_eq!(m.error.as_deref(), Some(&b"Multipart: Final boundary missing."[..]));
        assert!(m.fields.is_empty());
        assert_eq!(m.names.len(), 10_000);
        let mut full = body.clone();
        full.extend_from_slice(b"--XyZ--\r\n");
        assert_eq!(run(CT, &full).fields.len(), 10_000);
        // Folding a header 200,000 times.
        let mut b = crlf("--XyZ\nContent-Disposition: form-data; name=a\n");
        for _ in 0..200_000 {
            b.extend_from_slice(b" x\r\n");
        }
        b.extend_from_slice(&crlf("\nv\n--XyZ--\n"));
        let m = run(CT, &b);
        assert!(m.flags.header_folding);
        // A huge folded C-D re-parsed on many blank lines hits the work budget.
        let mut b = crlf("--XyZ\nContent-Disposition: form-data; filename=\"");
        for _ in 0..100_000 {
            b.extend_from_slice(b" xxxxxxxxxx\r\n");
        }
        b.extend_from_slice(b" \"\r\n");
        for _ in 0..200_000 {
            b.extend_from_slice(b"\r\n");
        }
        let m = run(CT, &b);
        assert!(m.flags.error);
        // No newline at all, and lines of dashes.
        assert!(run(CT, &vec![b'-'; 1 << 20]).error.is_some());
        assert!(run(CT, &b"--XyZ-\r\n".repeat(100_000)).error.is_some());
        assert!(run(CT, &b"\r".repeat(1 << 20)).error.is_some());
    }
}
