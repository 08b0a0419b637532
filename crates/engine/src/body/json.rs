//! JSON body processor: ModSecurity v3 (yajl 2) semantics over the whole body.
//!
//! Why not serde_json: v3 feeds yajl with its default configuration, whose
//! acceptance differs from a strict parser in ways rules can see. yajl's UTF-8
//! check only looks at lead/continuation bit patterns (overlongs, surrogates and
//! F5-F7 leads pass), a lone `\uD800` decodes to `?` and swallows the next byte,
//! `\u0000` yields a NUL, a string left open after a complete value is ignored, and
//! nesting is limited only by SecRequestBodyJsonDepthLimit (default 10000), far
//! past serde_json's recursion limit. So this is a small iterative tokenizer and
//! state machine mirroring yajl's (no recursion: 100,000 levels cost a stack of
//! bytes on the heap).
//!
//! Argument names follow v3's `JSON::addArgument`: the top level is `json`, object
//! members append `.key`, array elements append `.array_N`; an empty key inside an
//! object is `empty-key`. Numbers keep their text, booleans are `true`/`false`,
//! `null` is the empty string. Arguments emitted before an error are kept (v3 adds
//! them as it goes). v3 adds these to ARGS only (origin "JSON"), not ARGS_POST.

/// Limits from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonLimits {
    /// SecRequestBodyJsonDepthLimit (v3 default 10000).
    pub max_depth: u64,
    /// Arguments that may still be added (SecArgumentsLimit minus ARGS already
    /// present); reaching it cancels the parse as v3 does. `None` = no limit.
    pub max_args: Option<usize>,
    /// Guard against quadratic output (deep paths times many values): total bytes
    /// of names and values; exceeding it cancels the parse like an argument limit.
    pub max_output_bytes: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits { max_depth: 10_000, max_args: None, max_output_bytes: 64 << 20 }
    }
}

/// The processor's result besides the arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonOutcome {
    /// yajl's error text as v3 stores it (e.g. "parse error: premature EOF\n", plus
    /// ". Parsing depth limit exceeded" for the depth limit), without v3's
    /// "JSON parsing error: " prefix. `None` when the body parsed, or was empty.
    pub error: Option<String>,
    /// The depth limit was exceeded.
    pub depth_exceeded: bool,
    /// Parsing stopped because `max_args` or `max_output_bytes` was reached.
    pub limit_reached: bool,
}

const CANCELLED: &str = "client cancelled parse via callback return value";

/// Parses `body`, appending (name, value) arguments to `out`.
pub fn parse(body: &[u8], limits: &JsonLimits, out: &mut Vec<(Vec<u8>, Vec<u8>)>) -> JsonOutcome {
    parse_into(body, limits, out, Vec::with_capacity)
}

/// [`parse`], each name and value written into a buffer that `room` gives for its length
/// (or a bound of it): a transaction's kept buffers rather than two allocations per
/// argument.
pub fn parse_into(
    body: &[u8],
    limits: &JsonLimits,
    out: &mut Vec<(Vec<u8>, Vec<u8>)>,
    room: impl FnMut(usize) -> Vec<u8>,
) -> JsonOutcome {
    let mut p = Parser { text: body, pos: 0, sink: Sink::new(limits, out, room) };
    let err = p.run();
    let mut outcome =
        JsonOutcome { error: None, depth_exceeded: p.sink.depth_exceeded, limit_reached: p.sink.limit_reached };
    if let Some(mut e) = err {
        if !body.is_empty() {
            if outcome.depth_exceeded {
                e.push_str(". Parsing depth limit exceeded");
            }
            outcome.error = Some(e);
        }
    }
    outcome
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Start,
    ParseComplete,
    MapStart,
    MapNeedKey,
    MapSep,
    MapNeedVal,
    MapGotVal,
    ArrayStart,
    ArrayNeedVal,
    ArrayGotVal,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tok {
    Eof,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Str { start: usize, end: usize, escapes: bool },
    Bool(bool),
    Null,
    Number { start: usize, end: usize },
}

#[derive(Debug)]
enum Fail {
    Lex(&'static str),
    Parse(&'static str),
}

impl Fail {
    fn message(&self) -> String {
        match self {
            Fail::Lex(m) => format!("lexical error: {m}\n"),
            Fail::Parse(m) => format!("parse error: {m}\n"),
        }
    }
}

struct Container {
    is_array: bool,
    counter: usize,
    /// Where this container's segment starts in `prefix`.
    seg_start: usize,
    /// Where `.array_N` starts (arrays only).
    counter_start: usize,
}

/// v3's JSON callbacks: container stack, current key, argument names.
struct Sink<'a, R> {
    limits: &'a JsonLimits,
    out: &'a mut Vec<(Vec<u8>, Vec<u8>)>,
    /// Empty buffers for names and values (see [`parse_into`]).
    room: R,
    containers: Vec<Container>,
    prefix: Vec<u8>,
    key: Vec<u8>,
    depth: u64,
    added: usize,
    output_bytes: usize,
    depth_exceeded: bool,
    limit_reached: bool,
}

impl<'a, R: FnMut(usize) -> Vec<u8>> Sink<'a, R> {
    fn new(limits: &'a JsonLimits, out: &'a mut Vec<(Vec<u8>, Vec<u8>)>, room: R) -> Self {
        Sink {
            limits,
            out,
            room,
            containers: Vec::new(),
            prefix: Vec::new(),
            key: Vec::new(),
            depth: 0,
            added: 0,
            output_bytes: 0,
            depth_exceeded: false,
            limit_reached: false,
        }
    }

    fn top_is_array(&self) -> bool {
        self.containers.last().is_some_and(|c| c.is_array)
    }

    fn set_counter(&mut self) {
        if let Some(c) = self.containers.last() {
            if c.is_array {
                let (start, n) = (c.counter_start, c.counter);
                self.prefix.truncate(start);
                self.prefix.extend_from_slice(b".array_");
                self.prefix.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            }
        }
    }

    fn bump_top(&mut self) {
        if let Some(c) = self.containers.last_mut() {
            if c.is_array {
                c.counter += 1;
                self.set_counter();
            }
        }
    }

    fn start(&mut self, is_array: bool) -> bool {
        let seg_start = self.prefix.len();
        self.prefix.extend_from_slice(current_key(&self.containers, &self.key));
        self.key.clear();
        let counter_start = self.prefix.len();
        self.containers.push(Container { is_array, counter: 0, seg_start, counter_start });
        if is_array {
            self.set_counter();
        } else {
            self.prefix.push(b'.');
        }
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            self.depth_exceeded = true;
            return false;
        }
        true
    }

    fn end(&mut self) -> bool {
        if let Some(c) = self.containers.pop() {
            self.prefix.truncate(c.seg_start);
            self.bump_top();
        }
        self.depth = self.depth.saturating_sub(1);
        true
    }

    /// v3 `addArgument`: false cancels the parse.
    fn value(&mut self, value: Vec<u8>) -> bool {
        let name = if self.top_is_array() {
            let mut name = (self.room)(self.prefix.len());
            name.clear();
            name.extend_from_slice(&self.prefix);
            self.bump_top();
            name
        } else {
            let k = current_key(&self.containers, &self.key);
            let mut name = (self.room)(self.prefix.len() + k.len());
            name.clear();
            name.extend_from_slice(&self.prefix);
            name.extend_from_slice(k);
            self.key.clear();
            name
        };
        if self.limits.max_args.is_some_and(|m| self.added >= m) {
            self.limit_reached = true;
            return false;
        }
        self.output_bytes = self.output_bytes.saturating_add(name.len() + value.len());
        if self.output_bytes > self.limits.max_output_bytes {
            self.limit_reached = true;
            return false;
        }
        self.added += 1;
        self.out.push((name, value));
        true
    }
}

/// v3 `getCurrentKey` (`key` is emptied once read, as v3 resets it).
fn current_key<'k>(containers: &[Container], key: &'k [u8]) -> &'k [u8] {
    match containers.last() {
        None => b"json",
        Some(_) if !key.is_empty() => key,
        Some(c) if c.is_array => b"",
        Some(_) => b"empty-key",
    }
}

struct Parser<'t, 'a, R> {
    text: &'t [u8],
    pos: usize,
    sink: Sink<'a, R>,
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

impl<'t, 'a, R: FnMut(usize) -> Vec<u8>> Parser<'t, 'a, R> {
    /// v3 parses the body then calls `yajl_complete_parse`, which feeds one space:
    /// the text is the body followed by a virtual space.
    fn at(&self, i: usize) -> Option<u8> {
        match i.cmp(&self.text.len()) {
            std::cmp::Ordering::Less => self.text.get(i).copied(),
            std::cmp::Ordering::Equal => Some(b' '),
            std::cmp::Ordering::Greater => None,
        }
    }

    fn run(&mut self) -> Option<String> {
        match self.machine() {
            Ok(()) => None,
            Err(f) => Some(f.message()),
        }
    }

    fn machine(&mut self) -> Result<(), Fail> {
        let mut stack: Vec<State> = vec![State::Start];
        loop {
            let state = *stack.last().unwrap_or(&State::ParseComplete);
            match state {
                State::ParseComplete => {
                    // yajl lexes one more token: anything but EOF is trailing garbage.
                    return match self.lex() {
                        Ok(Tok::Eof) => Ok(()),
                        _ => Err(Fail::Parse("trailing garbage")),
                    };
                }
                State::Start | State::MapNeedVal | State::ArrayNeedVal | State::ArrayStart => {
                    let tok = self.lex()?;
                    let mut push = None;
                    match tok {
                        Tok::Eof => return Err(Fail::Parse("premature EOF")),
                        Tok::Str { start, end, escapes } => {
                            let raw = self.text.get(start..end).unwrap_or(&[]);
                            let mut v = (self.sink.room)(raw.len());
                            v.clear();
                            decode_string(raw, escapes, &mut v);
                            self.check(|s| s.value(v))?;
                        }
                        Tok::Bool(b) => {
                            let v = self.bytes(if b { b"true" } else { b"false" });
                            self.check(|s| s.value(v))?;
                        }
                        Tok::Null => self.check(|s| s.value(Vec::new()))?,
                        Tok::Number { start, end } => {
                            let v = self.bytes(&self.text[start..end]);
                            self.check(|s| s.value(v))?;
                        }
                        Tok::LBrace => {
                            self.check(|s| s.start(false))?;
                            push = Some(State::MapStart);
                        }
                        Tok::LBracket => {
                            self.check(|s| s.start(true))?;
                            push = Some(State::ArrayStart);
                        }
                        Tok::RBracket if state == State::ArrayStart => {
                            self.check(|s| s.end())?;
                            stack.pop();
                            continue;
                        }
                        _ => return Err(Fail::Parse("unallowed token at this point in JSON text")),
                    }
                    let next = match state {
                        State::Start => State::ParseComplete,
                        State::MapNeedVal => State::MapGotVal,
                        _ => State::ArrayGotVal,
                    };
                    if let Some(top) = stack.last_mut() {
                        *top = next;
                    }
                    if let Some(s) = push {
                        stack.push(s);
                    }
                }
                State::MapStart | State::MapNeedKey => match self.lex()? {
                    Tok::Eof => return Err(Fail::Parse("premature EOF")),
                    Tok::Str { start, end, escapes } => {
                        // Into the sink's one key buffer (v3 keeps the last key read).
                        self.sink.key.clear();
                        decode_string(self.text.get(start..end).unwrap_or(&[]), escapes, &mut self.sink.key);
                        if let Some(top) = stack.last_mut() {
                            *top = State::MapSep;
                        }
                    }
                    Tok::RBrace if state == State::MapStart => {
                        self.check(|s| s.end())?;
                        stack.pop();
                    }
                    _ => return Err(Fail::Parse("invalid object key (must be a string)")),
                },
                State::MapSep => match self.lex()? {
                    Tok::Colon => {
                        if let Some(top) = stack.last_mut() {
                            *top = State::MapNeedVal;
                        }
                    }
                    Tok::Eof => return Err(Fail::Parse("premature EOF")),
                    _ => return Err(Fail::Parse("object key and value must be separated by a colon (':')")),
                },
                State::MapGotVal => match self.lex()? {
                    Tok::RBrace => {
                        self.check(|s| s.end())?;
                        stack.pop();
                    }
                    Tok::Comma => {
                        if let Some(top) = stack.last_mut() {
                            *top = State::MapNeedKey;
                        }
                    }
                    Tok::Eof => return Err(Fail::Parse("premature EOF")),
                    _ => return Err(Fail::Parse("after key and value, inside map, I expect ',' or '}'")),
                },
                State::ArrayGotVal => match self.lex()? {
                    Tok::RBracket => {
                        self.check(|s| s.end())?;
                        stack.pop();
                    }
                    Tok::Comma => {
                        if let Some(top) = stack.last_mut() {
                            *top = State::ArrayNeedVal;
                        }
                    }
                    Tok::Eof => return Err(Fail::Parse("premature EOF")),
                    _ => return Err(Fail::Parse("after array element, I expect ',' or ']'")),
                },
            }
        }
    }

    /// A buffer from the sink's `room` holding `b`.
    fn bytes(&mut self, b: &[u8]) -> Vec<u8> {
        let mut v = (self.sink.room)(b.len());
        v.clear();
        v.extend_from_slice(b);
        v
    }

    fn check(&mut self, f: impl FnOnce(&mut Sink<'a, R>) -> bool) -> Result<(), Fail> {
        if f(&mut self.sink) {
            Ok(())
        } else {
            Err(Fail::Parse(CANCELLED))
        }
    }

    /// yajl's lexer. EOF inside a token (only possible in strings, since the
    /// virtual trailing space ends every other token) is EOF.
    fn lex(&mut self) -> Result<Tok, Fail> {
        loop {
            let Some(c) = self.at(self.pos) else { return Ok(Tok::Eof) };
            self.pos += 1;
            return Ok(match c {
                b'{' => Tok::LBrace,
                b'}' => Tok::RBrace,
                b'[' => Tok::LBracket,
                b']' => Tok::RBracket,
                b',' => Tok::Comma,
                b':' => Tok::Colon,
                b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => continue,
                b't' => self.literal(b"rue", Tok::Bool(true))?,
                b'f' => self.literal(b"alse", Tok::Bool(false))?,
                b'n' => self.literal(b"ull", Tok::Null)?,
                b'"' => self.lex_string()?,
                b'-' | b'0'..=b'9' => {
                    self.pos -= 1;
                    self.lex_number()?
                }
                b'/' => return Err(Fail::Lex("probable comment found in input text, comments are not enabled.")),
                _ => return Err(Fail::Lex("invalid char in json text.")),
            });
        }
    }

    fn literal(&mut self, want: &[u8], tok: Tok) -> Result<Tok, Fail> {
        for &w in want {
            match self.at(self.pos) {
                None => return Ok(Tok::Eof),
                Some(c) if c == w => self.pos += 1,
                Some(_) => return Err(Fail::Lex("invalid string in json text.")),
            }
        }
        Ok(tok)
    }

    fn lex_string(&mut self) -> Result<Tok, Fail> {
        let start = self.pos;
        let mut escapes = false;
        loop {
            // Fast skip of plain ASCII.
            while let Some(&c) = self.text.get(self.pos) {
                if c < 0x20 || c == b'"' || c == b'\\' || c >= 0x80 {
                    break;
                }
                self.pos += 1;
            }
            let Some(c) = self.at(self.pos) else { return Ok(Tok::Eof) };
            self.pos += 1;
            match c {
                b'"' => return Ok(Tok::Str { start, end: self.pos - 1, escapes }),
                b'\\' => {
                    escapes = true;
                    let Some(e) = self.at(self.pos) else { return Ok(Tok::Eof) };
                    self.pos += 1;
                    if e == b'u' {
                        for _ in 0..4 {
                            let Some(h) = self.at(self.pos) else { return Ok(Tok::Eof) };
                            if !is_hex(h) {
                                return Err(Fail::Lex("invalid (non-hex) character occurs after '\\u' inside string."));
                            }
                            self.pos += 1;
                        }
                    } else if !matches!(e, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') {
                        return Err(Fail::Lex("inside a string, '\\' occurs before a character which it may not."));
                    }
                }
                c if c < 0x20 => return Err(Fail::Lex("invalid character inside string.")),
                c if c >= 0x80 => {
                    // yajl checks bit patterns only.
                    let need = if c >> 5 == 0x6 {
                        1
                    } else if c >> 4 == 0xe {
                        2
                    } else if c >> 3 == 0x1e {
                        3
                    } else {
                        return Err(Fail::Lex("invalid bytes in UTF8 string."));
                    };
                    for _ in 0..need {
                        let Some(n) = self.at(self.pos) else { return Ok(Tok::Eof) };
                        self.pos += 1;
                        if n >> 6 != 0x2 {
                            return Err(Fail::Lex("invalid bytes in UTF8 string."));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn lex_number(&mut self) -> Result<Tok, Fail> {
        let start = self.pos;
        // The virtual space ends every number, so `at` never runs out here.
        let next = |p: &mut Self| -> u8 {
            let c = p.at(p.pos).unwrap_or(b' ');
            p.pos += 1;
            c
        };
        let mut c = next(self);
        if c == b'-' {
            c = next(self);
        }
        if c == b'0' {
            c = next(self);
        } else if c.is_ascii_digit() {
            loop {
                c = next(self);
                if !c.is_ascii_digit() {
                    break;
                }
            }
        } else {
            return Err(Fail::Lex("malformed number, a digit is required after the minus sign."));
        }
        if c == b'.' {
            let mut digits = 0;
            loop {
                c = next(self);
                if !c.is_ascii_digit() {
                    break;
                }
                digits += 1;
            }
            if digits == 0 {
                return Err(Fail::Lex("malformed number, a digit is required after the decimal point."));
            }
        }
        if c == b'e' || c == b'E' {
            c = next(self);
            if c == b'+' || c == b'-' {
                c = next(self);
            }
            if c.is_ascii_digit() {
                loop {
                    c = next(self);
                    if !c.is_ascii_digit() {
                        break;
                    }
                }
            } else {
                return Err(Fail::Lex("malformed number, a digit is required after the exponent."));
            }
        }
        // Like yajl, we read one byte too far.
        self.pos -= 1;
        Ok(Tok::Number { start, end: self.pos.min(self.text.len()) })
    }
}

/// A string's content `s` appended to `out`, escapes decoded like `yajl_string_decode`.
fn decode_string(s: &[u8], escapes: bool, out: &mut Vec<u8>) {
    if !escapes {
        out.extend_from_slice(s);
        return;
    }
    // yajl reads past the content up to the closing quote in odd cases.
    let at = |i: usize| -> u8 {
        if i < s.len() {
            s[i]
        } else if i == s.len() {
            b'"'
        } else {
            0
        }
    };
    let hex4 = |i: usize| -> u32 { (0..4).fold(0u32, |v, k| v << 4 | (at(i + k) as char).to_digit(16).unwrap_or(0)) };
    let mut beg = 0;
    let mut end = 0;
    while end < s.len() {
        if s[end] != b'\\' {
            end += 1;
            continue;
        }
        out.extend_from_slice(&s[beg..end]);
        end += 1;
        match at(end) {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b'\\' => out.push(b'\\'),
            b'/' => out.push(b'/'),
            b'"' => out.push(b'"'),
            b'f' => out.push(0x0c),
            b'b' => out.push(0x08),
            b't' => out.push(b'\t'),
            b'u' => {
                end += 1;
                let mut cp = hex4(end);
                end += 3;
                let mut lone = false;
                if cp & 0xFC00 == 0xD800 {
                    end += 1;
                    if at(end) == b'\\' && at(end + 1) == b'u' {
                        let low = hex4(end + 2);
                        cp = ((cp & 0x3F) << 10) | ((((cp >> 6) & 0xF) + 1) << 16) | (low & 0x3FF);
                        end += 5;
                    } else {
                        // yajl emits '?' and skips the byte after the escape.
                        lone = true;
                    }
                }
                if lone {
                    out.push(b'?');
                } else {
                    utf32_to_utf8(cp, out);
                }
            }
            _ => out.push(b'?'),
        }
        end += 1;
        beg = end;
    }
    if beg < s.len() {
        out.extend_from_slice(&s[beg..]);
    }
}

fn utf32_to_utf8(cp: u32, out: &mut Vec<u8>) {
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.extend_from_slice(&[(cp >> 6) as u8 | 0xC0, (cp & 0x3F) as u8 | 0x80]);
    } else if cp < 0x10000 {
        out.extend_from_slice(&[(cp >> 12) as u8 | 0xE0, ((cp >> 6) & 0x3F) as u8 | 0x80, (cp & 0x3F) as u8 | 0x80]);
    } else if cp < 0x200000 {
        out.extend_from_slice(&[
            (cp >> 18) as u8 | 0xF0,
            ((cp >> 12) & 0x3F) as u8 | 0x80,
            ((cp >> 6) & 0x3F) as u8 | 0x80,
            (cp & 0x3F) as u8 | 0x80,
        ]);
    } else {
        out.push(b'?');
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    fn run(body: &[u8]) -> (Vec<(String, Vec<u8>)>, Option<String>) {
        run_with(body, &JsonLimits::default())
    }

    fn run_with(body: &[u8], l: &JsonLimits) -> (Vec<(String, Vec<u8>)>, Option<String>) {
        let mut out = Vec::new();
        let o = parse(body, l, &mut out);
        (out.into_iter().map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v)).collect(), o.error)
    }

    #[test]
    fn names_and_values() {
        let cases: &[(&[u8], &[(&str, &[u8])])] = &[
            (br#"{"foo":"bar","mod":"sec"}"#, &[("json.foo", b"bar"), ("json.mod", b"sec")]),
            (br#"{"a":{"b":1}}"#, &[("json.a.b", b"1")]),
            (br#"{"a":[1,2]}"#, &[("json.a.array_0", b"1"), ("json.a.array_1", b"2")]),
            (br#"[1,"x"]"#, &[("json.array_0", b"1"), ("json.array_1", b"x")]),
            (
                br#"{"a":[[1],[2,3]]}"#,
                &[("json.a.array_0.array_0", b"1"), ("json.a.array_1.array_0", b"2"), ("json.a.array_1.array_1", b"3")],
            ),
            (br#"{"a":[{"b":1},{"c":true}]}"#, &[("json.a.array_0.b", b"1"), ("json.a.array_1.c", b"true")]),
            (br#"{"":null,"x":false}"#, &[("json.empty-key", b""), ("json.x", b"false")]),
            (br#""top""#, &[("json", b"top")]),
            (b"-1.5e+3", &[("json", b"-1.5e+3")]),
            (br#"{"a":{},"b":[],"c":1}"#, &[("json.c", b"1")]),
            (br#"{"a":[[],5]}"#, &[("json.a.array_1", b"5")]),
            (br#"{"k":"a\nb\u0041\u00e9\/"}"#, &[("json.k", b"a\nbA\xc3\xa9/")]),
            (br#"{"k":"\u0000"}"#, &[("json.k", b"\0")]),
            (br#"{"k":"\ud83d\ude00"}"#, &[("json.k", "\u{1F600}".as_bytes())]),
            (br#"{"k":"\ud800xyz"}"#, &[("json.k", b"?yz")]),
            (br#"{"k":"\ud800"}"#, &[("json.k", b"?")]),
            (br#"{"k\"q":1}"#, &[("json.k\"q", b"1")]),
            // yajl's UTF-8 check is structural only
            (
                b"{\"k\":\"\xc0\x80\xed\xa0\x80\xf5\x80\x80\x80\"}",
                &[("json.k", b"\xc0\x80\xed\xa0\x80\xf5\x80\x80\x80")],
            ),
            // an open string after a complete value is EOF, not garbage
            (b"{} \"abc", &[]),
        ];
        for (body, want) in cases {
            let (got, err) = run(body);
            assert_eq!(err, None, "{:?}", String::from_utf8_lossy(body));
            let want: Vec<(String, Vec<u8>)> = want.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn names_and_values_are_written_into_the_buffers_given() {
        let (mut given, mut out) = (Vec::new(), Vec::new());
        let o = parse_into(br#"{"a":"x\u0041","b":[1,true]}"#, &JsonLimits::default(), &mut out, |_| {
            let mut v = Vec::with_capacity(64);
            v.extend_from_slice(b"stale");
            given.push(v.as_ptr());
            v
        });
        assert!(o.error.is_none());
        let want: Vec<(Vec<u8>, Vec<u8>)> = [("json.a", "xA"), ("json.b.array_0", "1"), ("json.b.array_1", "true")]
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(out, want);
        // Every value and name is one of the buffers given (each asked for once), cleared.
        let held: Vec<_> = out.iter().flat_map(|(k, v)| [k.as_ptr(), v.as_ptr()]).collect();
        assert!(held.iter().all(|p| given.contains(p)) && given.len() == held.len(), "{given:?} {held:?}");
    }

    #[test]
    fn errors() {
        let cases: &[(&[u8], &str, usize)] = &[
            (b"a", "lexical error: invalid char in json text.\n", 0),
            (b"{", "parse error: premature EOF\n", 0),
            (b"{\"a\":1", "parse error: premature EOF\n", 1),
            (b"{\"a\":1,}", "parse error: invalid object key (must be a string)\n", 1),
            (b"[1,]", "parse error: unallowed token at this point in JSON text\n", 1),
            (b"[1 2]", "parse error: after array element, I expect ',' or ']'\n", 1),
            (b"{\"a\" 1}", "parse error: object key and value must be separated by a colon (':')\n", 0),
            (b"{\"a\":1 \"b\"}", "parse error: after key and value, inside map, I expect ',' or '}'\n", 1),
            (b"{} x", "parse error: trailing garbage\n", 0),
            (b"1 2", "parse error: trailing garbage\n", 1),
            (b"01", "parse error: trailing garbage\n", 1),
            (b"tru", "lexical error: invalid string in json text.\n", 0),
            (b"-", "lexical error: malformed number, a digit is required after the minus sign.\n", 0),
            (b"1.", "lexical error: malformed number, a digit is required after the decimal point.\n", 0),
            (b"1e", "lexical error: malformed number, a digit is required after the exponent.\n", 0),
            (b"/* c */ 1", "lexical error: probable comment found in input text, comments are not enabled.\n", 0),
            (b"\"\x01\"", "lexical error: invalid character inside string.\n", 0),
            (b"\"\\x\"", "lexical error: inside a string, '\\' occurs before a character which it may not.\n", 0),
            (b"\"\\u12g4\"", "lexical error: invalid (non-hex) character occurs after '\\u' inside string.\n", 0),
            (b"\"\xff\"", "lexical error: invalid bytes in UTF8 string.\n", 0),
            (b"\"\xc3x\"", "lexical error: invalid bytes in UTF8 string.\n", 0),
            (b"\"abc", "parse error: premature EOF\n", 0),
            (b"   ", "parse error: premature EOF\n", 0),
            (b"{\"a\":[1,2,{\"b\":x}]}", "lexical error: invalid char in json text.\n", 2),
        ];
        for (body, msg, nargs) in cases {
            let (got, err) = run(body);
            assert_eq!(err.as_deref(), Some(*msg), "{:?}", String::from_utf8_lossy(body));
            assert_eq!(got.len(), *nargs, "{:?}", String::from_utf8_lossy(body));
        }
        // v3 ignores errors on an empty body.
        assert_eq!(run(b"").1, None);
    }

    #[test]
    fn depth_and_arg_limits() {
        let body = br#"{"key1":{"key2":{"key3":{"key4":{"key5":"thevalue"}}}}}"#;
        let l = |d| JsonLimits { max_depth: d, ..Default::default() };
        let (got, err) = run_with(body, &l(5));
        assert_eq!(err, None);
        assert_eq!(got[0].0, "json.key1.key2.key3.key4.key5");
        let mut out = Vec::new();
        let o = parse(body, &l(3), &mut out);
        assert!(o.depth_exceeded);
        assert_eq!(
            o.error.as_deref(),
            Some("parse error: client cancelled parse via callback return value\n. Parsing depth limit exceeded")
        );
        let (got, err) = run_with(b"[1,2,3]", &JsonLimits { max_args: Some(2), ..Default::default() });
        assert_eq!(got.len(), 2);
        assert_eq!(err.as_deref(), Some("parse error: client cancelled parse via callback return value\n"));
    }

    #[test]
    fn hostile_nesting_does_not_recurse() {
        let deep = [vec![b'['; 100_000], vec![b']'; 100_000]].concat();
        let (_, err) = run_with(&deep, &JsonLimits { max_depth: 1_000_000, ..Default::default() });
        assert_eq!(err, None);
        let (_, err) = run(&deep);
        assert!(err.unwrap().ends_with("Parsing depth limit exceeded"));
        let open = vec![b'{'; 200_000];
        assert!(run(&open).1.is_some());
        // Deep path times many values is capped by max_output_bytes.
        let mut b = vec![b'['; 5000];
        b.extend(b"1,".repeat(200_000));
        let mut out = Vec::new();
        let o = parse(&b, &JsonLimits { max_output_bytes: 1 << 20, ..Default::default() }, &mut out);
        assert!(o.limit_reached && o.error.is_some());
        // Long arrays keep array counters cheap.
        let mut b = b"{\"".to_vec();
        b.extend(vec![b'k'; 1000]);
        b.extend(b"\":[");
        b.extend(b"1,".repeat(100_000));
        b.extend(b"1]}");
        let mut out = Vec::new();
        let o = parse(&b, &JsonLimits { max_output_bytes: usize::MAX, ..Default::default() }, &mut out);
        assert_eq!(o.error, None);
        assert_eq!(out.len(), 100_001);
    }
}
