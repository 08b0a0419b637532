//! XML body processor: well-formedness (REQBODY_ERROR) and the document tree that
//! the `XML:` variable queries with XPath.
//!
//! ModSecurity v3 hands the body to libxml2's push parser with no options; any
//! well-formedness error gives "XML: Failed parsing document." and the partial
//! tree is still queried. `XML:/*` yields `xmlNodeGetContent` of the root element,
//! i.e. all descendant text and CDATA concatenated (comments and PIs excluded);
//! `XML://@*` yields every attribute value in document order.
//!
//! Parsing uses `quick-xml` (namespace-aware) plus the checks quick-xml leaves to
//! the caller: one root element, nothing but whitespace outside it, duplicate
//! attributes, `<` in attribute values, `]]>` in text, entity references, names,
//! and UTF-8 (UTF-16 with a BOM and declared ISO-8859-1 are transcoded, as libxml2
//! does). Line ends are normalised and attribute whitespace becomes spaces.
//!
//! Entities: the five predefined ones, character references, and general entities
//! declared in the internal DTD subset (their text, with nested references, capped
//! against "billion laughs"). External entities are never loaded: a reference to
//! one contributes nothing, as with v3's default `SecXmlExternalEntity Off`.
//!
//! XPath: a small subset compiled once by [`XPath::compile`]: absolute paths of
//! `/` and `//` steps; tests `name`, `prefix:name`, `*`, `@name`, `@*`, `text()`,
//! `node()`; predicates `[N]`, `[text()]`, `[@a]`, `[@a='v']`, `[name='v']`,
//! `[local-name()='x']`. Anything else fails to compile (v3 logs and yields nothing).

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use std::collections::HashMap;

/// v3's message for every XML failure (without the "XML parsing error: " prefix).
pub const FAILED: &str = "XML: Failed parsing document.";

/// Cap on entity-expanded bytes: 4 times the body plus 1 MiB.
const EXPANSION_FACTOR: usize = 4;

/// The processor's result.
#[derive(Debug, Clone, Default)]
pub struct XmlOutcome {
    /// `Some(FAILED)` when the document is not well-formed.
    pub error: Option<String>,
    /// Why, for the debug log.
    pub detail: Option<String>,
    /// The (possibly partial) document, for `XML:` lookups.
    pub doc: XmlDoc,
}

/// A parsed document: an arena of nodes in document order.
#[derive(Debug, Clone, Default)]
pub struct XmlDoc {
    nodes: Vec<Node>,
    root: Option<usize>,
}

#[derive(Debug, Clone)]
enum Node {
    Element { local: Vec<u8>, ns: Option<Vec<u8>>, attrs: Vec<Attr>, children: Vec<usize> },
    Text(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Attr {
    local: Vec<u8>,
    ns: Option<Vec<u8>>,
    value: Vec<u8>,
}

/// Parses a whole XML body.
pub fn parse(body: &[u8]) -> XmlOutcome {
    let mut b = Builder::default();
    let detail = match transcode(body) {
        Ok(text) => b.run(&text).err(),
        Err(e) => Some(e),
    };
    XmlOutcome { error: detail.as_ref().map(|_| FAILED.to_string()), detail, doc: b.doc }
}

/// libxml2 converts to UTF-8 first: BOMs, declared Latin-1, else strict UTF-8.
/// Line ends are normalised here too (XML 1.0 §2.11).
fn transcode(body: &[u8]) -> Result<String, String> {
    let s: String = if let Some(rest) = body.strip_prefix(b"\xEF\xBB\xBF") {
        std::str::from_utf8(rest).map_err(|_| "Input is not proper UTF-8".to_string())?.to_string()
    } else if body.starts_with(b"\xFF\xFE") || body.starts_with(b"\xFE\xFF") {
        let le = body[0] == 0xFF;
        let units = body[2..].chunks_exact(2).map(|c| {
            if le {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units).collect::<Result<String, _>>().map_err(|_| "invalid UTF-16".to_string())?
    } else if declares_latin1(body) {
        body.iter().map(|&c| c as char).collect()
    } else {
        std::str::from_utf8(body).map_err(|_| "Input is not proper UTF-8".to_string())?.to_string()
    };
    if !s.contains('\r') {
        return Ok(s);
    }
    Ok(s.replace("\r\n", "\n").replace('\r', "\n"))
}

fn declares_latin1(body: &[u8]) -> bool {
    if !body.starts_with(b"<?xml") {
        return false;
    }
    let end = memchr::memmem::find(body, b"?>").unwrap_or(body.len());
    let decl = body[..end].to_ascii_lowercase();
    let Some(i) = memchr::memmem::find(&decl, b"encoding") else { return false };
    let v = &decl[i..];
    [&b"iso-8859-1"[..], b"latin1", b"iso_8859-1", b"iso-latin-1"].iter().any(|e| memchr::memmem::find(v, e).is_some())
}

fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == ':' || (c as u32) >= 0x80
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit() || c == '-' || c == '.'
}

fn valid_name(n: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(n) else { return false };
    let mut it = s.chars();
    it.next().is_some_and(is_name_start) && it.all(is_name_char)
}

fn is_xml_char(c: u32) -> bool {
    matches!(c, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

#[derive(Default)]
struct Builder {
    doc: XmlDoc,
    stack: Vec<usize>,
    /// Internal general entities: name → replacement text; `None` = external.
    entities: HashMap<Vec<u8>, Option<Vec<u8>>>,
    budget: usize,
}

impl Builder {
    fn run(&mut self, text: &str) -> Result<(), String> {
        self.budget = text.len().saturating_mul(EXPANSION_FACTOR).saturating_add(1 << 20);
        let mut r = NsReader::from_reader(text.as_bytes());
        let c = r.config_mut();
        c.check_end_names = true;
        c.check_comments = true;
        c.expand_empty_elements = true;
        c.trim_text(false);
        let mut first = true;
        let mut root_done = false;
        loop {
            let (ns, ev) = r.read_resolved_event().map_err(|e| e.to_string())?;
            let was_first = first;
            first = false;
            match ev {
                Event::Eof => break,
                Event::Decl(_) if !was_first => return Err("XML declaration allowed only at the start".into()),
                Event::Decl(_) | Event::Comment(_) => {}
                Event::PI(p) => {
                    let body = p.as_ref();
                    let target = body.split(|c| c.is_ascii_whitespace()).next().unwrap_or(body);
                    if target.eq_ignore_ascii_case(b"xml") {
                        return Err("XML declaration allowed only at the start".into());
                    }
                }
                Event::DocType(d) => {
                    if self.doc.root.is_some() {
                        return Err("DOCTYPE after the root element".into());
                    }
                    self.doctype(d.as_ref())?;
                }
                Event::Start(e) => {
                    if root_done {
                        return Err("Extra content at the end of the document".into());
                    }
                    let qname = e.name();
                    if !valid_name(qname.as_ref()) {
                        return Err("invalid element name".into());
                    }
                    let local = qname.local_name().as_ref().to_vec();
                    let ns = match ns {
                        ResolveResult::Bound(n) => Some(n.as_ref().to_vec()),
                        _ => None,
                    };
                    let mut attrs: Vec<Attr> = Vec::new();
                    // with_checks rejects duplicate attributes ("Attribute redefined").
                    for a in e.attributes().with_checks(true) {
                        let a = a.map_err(|e| e.to_string())?;
                        let key = a.key.as_ref();
                        if !valid_name(key) {
                            return Err("invalid attribute name".into());
                        }
                        if key == b"xmlns" || key.starts_with(b"xmlns:") {
                            continue; // namespace declarations are not attributes in libxml2
                        }
                        if a.value.contains(&b'<') {
                            return Err("Unescaped '<' not allowed in attributes values".into());
                        }
                        let raw: Vec<u8> =
                            a.value.iter().map(|&c| if matches!(c, b'\t' | b'\n') { b' ' } else { c }).collect();
                        let value = self.unescape(&raw, 0)?;
                        let (rns, rlocal) = r.resolve_attribute(a.key);
                        let ns = match rns {
                            ResolveResult::Bound(n) => Some(n.as_ref().to_vec()),
                            _ => None,
                        };
                        attrs.push(Attr { local: rlocal.as_ref().to_vec(), ns, value });
                    }
                    let id = self.doc.nodes.len();
                    self.doc.nodes.push(Node::Element { local, ns, attrs, children: Vec::new() });
                    match self.stack.last() {
                        Some(&parent) => self.add_child(parent, id),
                        None => self.doc.root = Some(id),
                    }
                    self.stack.push(id);
                }
                Event::End(_) => {
                    self.stack.pop();
                    if self.stack.is_empty() {
                        root_done = true;
                    }
                }
                Event::Text(t) => {
                    let raw = t.as_ref();
                    if self.stack.is_empty() {
                        if raw.iter().any(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r')) {
                            return Err(if root_done {
                                "Extra content at the end of the document"
                            } else {
                                "Start tag expected"
                            }
                            .into());
                        }
                        continue;
                    }
                    if memchr::memmem::find(raw, b"]]>").is_some() {
                        return Err("Sequence ']]>' not allowed in content".into());
                    }
                    let v = self.unescape(raw, 0)?;
                    self.add_text(v);
                }
                Event::CData(t) => {
                    if self.stack.is_empty() {
                        return Err("CDATA outside the root element".into());
                    }
                    self.add_text(t.as_ref().to_vec());
                }
                // quick-xml 0.37 has no other content events; keep going if one appears.
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
        if !self.stack.is_empty() {
            return Err("Premature end of data".into());
        }
        if self.doc.root.is_none() {
            return Err("Document is empty".into());
        }
        Ok(())
    }

    fn add_child(&mut self, parent: usize, id: usize) {
        if let Some(Node::Element { children, .. }) = self.doc.nodes.get_mut(parent) {
            children.push(id);
        }
    }

    fn add_text(&mut self, v: Vec<u8>) {
        let Some(&parent) = self.stack.last() else { return };
        // Adjacent text merges into one node, as libxml2 does.
        if let Some(Node::Element { children, .. }) = self.doc.nodes.get(parent) {
            if let Some(&last) = children.last() {
                if let Some(Node::Text(t)) = self.doc.nodes.get_mut(last) {
                    t.extend_from_slice(&v);
                    return;
                }
            }
        }
        let id = self.doc.nodes.len();
        self.doc.nodes.push(Node::Text(v));
        self.add_child(parent, id);
    }

    /// Reads `<!ENTITY name "value">` declarations from the internal subset.
    fn doctype(&mut self, d: &[u8]) -> Result<(), String> {
        let mut rest = d;
        while let Some(i) = memchr::memmem::find(rest, b"<!ENTITY") {
            rest = &rest[i + 8..];
            let trimmed = rest.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(rest.len());
            rest = &rest[trimmed..];
            if rest.first() == Some(&b'%') {
                continue; // parameter entity: not used in content
            }
            let name_len = rest.iter().position(|c| c.is_ascii_whitespace()).unwrap_or(rest.len());
            let name = rest[..name_len].to_vec();
            rest = &rest[name_len..];
            let ws = rest.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(rest.len());
            rest = &rest[ws..];
            match rest.first() {
                Some(&q) if q == b'"' || q == b'\'' => {
                    let Some(end) = memchr::memchr(q, &rest[1..]) else {
                        return Err("EntityValue: \" or ' expected".into());
                    };
                    let value = rest[1..1 + end].to_vec();
                    rest = &rest[1 + end..];
                    self.entities.entry(name).or_insert(Some(value));
                }
                _ => {
                    // SYSTEM / PUBLIC: external, never loaded.
                    self.entities.entry(name).or_insert(None);
                }
            }
        }
        Ok(())
    }

    /// Expands entity and character references; declared entities recurse.
    fn unescape(&mut self, raw: &[u8], depth: usize) -> Result<Vec<u8>, String> {
        if memchr::memchr(b'&', raw).is_none() {
            return Ok(raw.to_vec());
        }
        if depth > 40 {
            return Err("Detected an entity reference loop".into());
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = memchr::memchr(b'&', rest) {
            out.extend_from_slice(&rest[..i]);
            rest = &rest[i + 1..];
            let Some(end) = memchr::memchr(b';', rest) else { return Err("EntityRef: expecting ';'".into()) };
            let name = &rest[..end];
            rest = &rest[end + 1..];
            if let Some(num) = name.strip_prefix(b"#") {
                let cp = match num.strip_prefix(b"x") {
                    Some(h) if !h.is_empty() && h.iter().all(u8::is_ascii_hexdigit) => {
                        std::str::from_utf8(h).ok().and_then(|h| u32::from_str_radix(h, 16).ok())
                    }
                    None if !num.is_empty() && num.iter().all(u8::is_ascii_digit) => {
                        std::str::from_utf8(num).ok().and_then(|d| d.parse::<u32>().ok())
                    }
                    _ => None,
                };
                let c = cp.filter(|&c| is_xml_char(c)).and_then(char::from_u32).ok_or("invalid xmlChar value")?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            match name {
                b"lt" => out.push(b'<'),
                b"gt" => out.push(b'>'),
                b"amp" => out.push(b'&'),
                b"apos" => out.push(b'\''),
                b"quot" => out.push(b'"'),
                _ => {
                    if !valid_name(name) {
                        return Err("EntityRef: expecting ';'".into());
                    }
                    let value = match self.entities.get(name) {
                        None => return Err(format!("Entity '{}' not defined", String::from_utf8_lossy(name))),
                        Some(None) => continue,
                        Some(Some(v)) => v.clone(),
                    };
                    let expanded = self.unescape(&strip_markup(&value), depth + 1)?;
                    if expanded.len() > self.budget {
                        return Err("Maximum entity amplification factor exceeded".into());
                    }
                    self.budget -= expanded.len();
                    out.extend_from_slice(&expanded);
                }
            }
        }
        out.extend_from_slice(rest);
        Ok(out)
    }
}

/// Entity values may hold markup; only their text reaches node content.
fn strip_markup(v: &[u8]) -> Vec<u8> {
    if memchr::memchr(b'<', v).is_none() {
        return v.to_vec();
    }
    let mut out = Vec::with_capacity(v.len());
    let mut in_tag = false;
    for &c in v {
        match c {
            b'<' => in_tag = true,
            b'>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

impl XmlDoc {
    /// True when a root element was seen.
    pub fn has_root(&self) -> bool {
        self.root.is_some()
    }

    /// `xmlNodeGetContent` of the root element: the value of `XML:/*`.
    pub fn root_content(&self) -> Option<Vec<u8>> {
        self.root.map(|r| self.content(r))
    }

    /// All text below node `id`, in document order, without recursion.
    fn content(&self, id: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut todo = vec![id];
        while let Some(n) = todo.pop() {
            match self.nodes.get(n) {
                Some(Node::Text(t)) => out.extend_from_slice(t),
                Some(Node::Element { children, .. }) => todo.extend(children.iter().rev()),
                None => {}
            }
        }
        out
    }

    fn children(&self, id: usize) -> &[usize] {
        match self.nodes.get(id) {
            Some(Node::Element { children, .. }) => children,
            _ => &[],
        }
    }

    fn descendants(&self, id: usize, out: &mut Vec<usize>) {
        let mut todo: Vec<usize> = self.children(id).iter().rev().copied().collect();
        while let Some(n) = todo.pop() {
            out.push(n);
            todo.extend(self.children(n).iter().rev());
        }
    }
}

/// A compiled XPath (the subset described in the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XPath {
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    descendant: bool,
    test: Test,
    preds: Vec<Pred>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    Element(Option<Vec<u8>>, Vec<u8>),
    AnyElement,
    Attr(Option<Vec<u8>>, Vec<u8>),
    AnyAttr,
    Text,
    Node,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pred {
    Position(usize),
    HasText,
    HasAttr(Vec<u8>),
    AttrEq(Vec<u8>, Vec<u8>),
    ChildEq(Vec<u8>, Vec<u8>),
    LocalName(Vec<u8>),
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    /// The document node (above the root element).
    Doc,
    Node(usize),
    /// (element, attribute index)
    Attr(usize, usize),
}

fn split_qname(n: &[u8]) -> (Option<Vec<u8>>, Vec<u8>) {
    match memchr::memchr(b':', n) {
        Some(i) => (Some(n[..i].to_vec()), n[i + 1..].to_vec()),
        None => (None, n.to_vec()),
    }
}

fn unquote(v: &[u8]) -> Option<Vec<u8>> {
    let v = v.trim_ascii();
    if v.len() >= 2 && (v[0] == b'\'' || v[0] == b'"') && v[v.len() - 1] == v[0] {
        Some(v[1..v.len() - 1].to_vec())
    } else {
        None
    }
}

impl XPath {
    /// Compiles an absolute location path; `Err` for anything outside the subset.
    pub fn compile(expr: &[u8]) -> Result<XPath, String> {
        let bad = || format!("unsupported XPath expression: {}", String::from_utf8_lossy(expr));
        let e = expr.trim_ascii();
        if !e.starts_with(b"/") {
            return Err(bad());
        }
        let mut steps = Vec::new();
        let mut i = 0;
        while i < e.len() {
            if e[i] != b'/' {
                return Err(bad());
            }
            let descendant = e.get(i + 1) == Some(&b'/');
            i += if descendant { 2 } else { 1 };
            // The step runs to the next '/' outside brackets.
            let start = i;
            let mut depth = 0i32;
            while i < e.len() && !(e[i] == b'/' && depth == 0) {
                match e[i] {
                    b'[' => depth += 1,
                    b']' => depth -= 1,
                    _ => {}
                }
                i += 1;
            }
            let step = &e[start..i];
            let (head, mut preds_src) = match memchr::memchr(b'[', step) {
                Some(p) => (&step[..p], &step[p..]),
                None => (step, &step[step.len()..]),
            };
            let test = match head {
                b"*" => Test::AnyElement,
                b"@*" => Test::AnyAttr,
                b"text()" => Test::Text,
                b"node()" => Test::Node,
                h if h.first() == Some(&b'@') && valid_name(&h[1..]) => {
                    let (p, l) = split_qname(&h[1..]);
                    Test::Attr(p, l)
                }
                h if valid_name(h) => {
                    let (p, l) = split_qname(h);
                    Test::Element(p, l)
                }
                _ => return Err(bad()),
            };
            let mut preds = Vec::new();
            while !preds_src.is_empty() {
                // Each predicate is `[...]`; a stray `]` (`/a[1]]`) is malformed.
                let rest = preds_src.strip_prefix(b"[").ok_or_else(bad)?;
                let end = memchr::memchr(b']', rest).ok_or_else(bad)?;
                let p = rest[..end].trim_ascii();
                preds_src = &rest[end + 1..];
                preds.push(Self::predicate(p).ok_or_else(bad)?);
            }
            steps.push(Step { descendant, test, preds });
        }
        if steps.is_empty() {
            return Err(bad());
        }
        Ok(XPath { steps })
    }

    fn predicate(p: &[u8]) -> Option<Pred> {
        if !p.is_empty() && p.iter().all(u8::is_ascii_digit) {
            return std::str::from_utf8(p).ok()?.parse().ok().map(Pred::Position);
        }
        if p == b"text()" {
            return Some(Pred::HasText);
        }
        if let Some(eq) = memchr::memchr(b'=', p) {
            let (l, r) = (p[..eq].trim_ascii(), unquote(&p[eq + 1..])?);
            if l == b"local-name()" {
                return Some(Pred::LocalName(r));
            }
            if let Some(a) = l.strip_prefix(b"@") {
                return valid_name(a).then(|| Pred::AttrEq(a.to_vec(), r));
            }
            return valid_name(l).then(|| Pred::ChildEq(l.to_vec(), r));
        }
        let a = p.strip_prefix(b"@")?;
        valid_name(a).then(|| Pred::HasAttr(a.to_vec()))
    }

    /// Evaluates against `doc`; `namespaces` are the rule's `xmlns` (prefix, URI)
    /// pairs. Returns each selected node's content, in document order. An unknown
    /// prefix yields nothing (libxml2 fails the evaluation).
    pub fn eval(&self, doc: &XmlDoc, namespaces: &[(Vec<u8>, Vec<u8>)]) -> Vec<Vec<u8>> {
        let resolve = |p: &Option<Vec<u8>>| -> Result<Option<Vec<u8>>, ()> {
            match p {
                None => Ok(None),
                Some(p) => namespaces.iter().find(|(k, _)| k == p).map(|(_, u)| Some(u.clone())).ok_or(()),
            }
        };
        let mut set = vec![Item::Doc];
        for step in &self.steps {
            let ns = match &step.test {
                Test::Element(p, _) | Test::Attr(p, _) => match resolve(p) {
                    Ok(n) => n,
                    Err(()) => return Vec::new(),
                },
                _ => None,
            };
            let mut next: Vec<Item> = Vec::new();
            for &item in &set {
                // Candidate nodes along the axis, in document order.
                let ctx: Vec<usize> = match item {
                    Item::Doc => {
                        let mut v = Vec::new();
                        if let Some(r) = doc.root {
                            if step.descendant {
                                v.push(r);
                                doc.descendants(r, &mut v);
                            } else {
                                v.push(r);
                            }
                        }
                        v
                    }
                    Item::Node(n) => {
                        let mut v = Vec::new();
                        if step.descendant {
                            doc.descendants(n, &mut v);
                        } else {
                            v.extend_from_slice(doc.children(n));
                        }
                        v
                    }
                    Item::Attr(..) => Vec::new(),
                };
                let mut matched: Vec<Item> = Vec::new();
                match &step.test {
                    Test::Attr(..) | Test::AnyAttr => {
                        // `@x` selects attributes of the context (child axis) or of
                        // every element on the descendant-or-self axis.
                        let owners: Vec<usize> = match (item, step.descendant) {
                            (Item::Node(n), true) => std::iter::once(n).chain(ctx.iter().copied()).collect(),
                            (Item::Node(n), false) => vec![n],
                            (Item::Doc, true) => ctx.clone(),
                            _ => Vec::new(),
                        };
                        for o in owners {
                            if let Some(Node::Element { attrs, .. }) = doc.nodes.get(o) {
                                for (k, a) in attrs.iter().enumerate() {
                                    let ok = match &step.test {
                                        Test::Attr(_, l) => &a.local == l && a.ns == ns,
                                        _ => true,
                                    };
                                    if ok {
                                        matched.push(Item::Attr(o, k));
                                    }
                                }
                            }
                        }
                    }
                    test => {
                        let mut cands: Vec<usize> = ctx
                            .iter()
                            .copied()
                            .filter(|&c| match (test, doc.nodes.get(c)) {
                                (Test::Element(_, l), Some(Node::Element { local, ns: ens, .. })) => {
                                    local == l && *ens == ns
                                }
                                (Test::AnyElement, Some(Node::Element { .. })) => true,
                                (Test::Text, Some(Node::Text(_))) => true,
                                (Test::Node, Some(_)) => true,
                                _ => false,
                            })
                            .collect();
                        // Each predicate filters the list; positions count within it.
                        for pred in &step.preds {
                            cands = cands
                                .iter()
                                .enumerate()
                                .filter(|&(i, &c)| Self::pred_ok(doc, c, pred, i + 1))
                                .map(|(_, &c)| c)
                                .collect();
                        }
                        matched.extend(cands.into_iter().map(Item::Node));
                    }
                }
                next.extend(matched);
            }
            next.sort_unstable();
            next.dedup();
            set = next;
        }
        set.into_iter()
            .filter_map(|it| match it {
                Item::Node(n) => Some(doc.content(n)),
                Item::Attr(e, k) => match doc.nodes.get(e) {
                    Some(Node::Element { attrs, .. }) => attrs.get(k).map(|a| a.value.clone()),
                    _ => None,
                },
                Item::Doc => doc.root.map(|r| doc.content(r)),
            })
            .collect()
    }

    fn pred_ok(doc: &XmlDoc, n: usize, pred: &Pred, position: usize) -> bool {
        if let Pred::Position(k) = pred {
            return position == *k;
        }
        let Some(Node::Element { local, attrs, .. }) = doc.nodes.get(n) else { return false };
        match pred {
            Pred::Position(_) => false,
            Pred::HasText => doc.children(n).iter().any(|&c| matches!(doc.nodes.get(c), Some(Node::Text(_)))),
            Pred::HasAttr(a) => attrs.iter().any(|x| &x.local == a),
            Pred::AttrEq(a, v) => attrs.iter().any(|x| &x.local == a && &x.value == v),
            Pred::LocalName(v) => local == v,
            Pred::ChildEq(c, v) => doc.children(n).iter().any(|&ch| {
                matches!(doc.nodes.get(ch), Some(Node::Element { local, .. }) if local == c) && &doc.content(ch) == v
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(doc: &XmlDoc, x: &str) -> Vec<String> {
        XPath::compile(x.as_bytes())
            .unwrap()
            .eval(doc, &[])
            .into_iter()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .collect()
    }

    const BOOKS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<bookstore>
  <book category="cooking" lang="en">
    <title lang="en">Everyday Italian</title>
    <price>30.00</price>
  </book>
  <book category="web">
    <title>Learning XML</title>
    <price>39.95</price>
    <!-- a comment -->
    <![CDATA[<raw>]]>
  </book>
</bookstore>"#;

    #[test]
    fn xpath_subset() {
        let o = parse(BOOKS.as_bytes());
        assert_eq!(o.error, None, "{:?}", o.detail);
        let d = &o.doc;
        let all = q(d, "/*");
        assert_eq!(all.len(), 1);
        assert!(all[0].contains("Everyday Italian") && all[0].contains("39.95") && all[0].contains("<raw>"));
        assert!(!all[0].contains("comment"));
        assert_eq!(q(d, "//@*"), vec!["cooking", "en", "en", "web"]);
        assert_eq!(q(d, "/bookstore/book/price"), vec!["30.00", "39.95"]);
        assert_eq!(q(d, "/bookstore/book/price[text()]"), vec!["30.00", "39.95"]);
        assert_eq!(q(d, "//title"), vec!["Everyday Italian", "Learning XML"]);
        assert_eq!(q(d, "/bookstore/book/@category"), vec!["cooking", "web"]);
        assert_eq!(q(d, "/bookstore/book[2]/title"), vec!["Learning XML"]);
        assert_eq!(q(d, "/bookstore/book[@category='web']/price"), vec!["39.95"]);
        assert_eq!(q(d, "//bookstore/*[local-name()='book'][1]/price"), vec!["30.00"]);
        assert_eq!(q(d, "/nothing"), Vec::<String>::new());
        assert!(XPath::compile(b"count(//a)").is_err());
    }

    #[test]
    fn namespaces() {
        let o = parse(br#"<s:Envelope xmlns:s="urn:soap"><s:Body a="1"><x xmlns="urn:d">v</x></s:Body></s:Envelope>"#);
        assert_eq!(o.error, None);
        let d = &o.doc;
        assert_eq!(q(d, "/*"), vec!["v"]);
        assert_eq!(q(d, "//@*"), vec!["1"]);
        // unprefixed names only match elements without a namespace
        assert!(q(d, "/Envelope").is_empty());
        let xp = XPath::compile(b"/soap:Envelope/soap:Body/d:x").unwrap();
        let ns = vec![(b"soap".to_vec(), b"urn:soap".to_vec()), (b"d".to_vec(), b"urn:d".to_vec())];
        assert_eq!(xp.eval(d, &ns), vec![b"v".to_vec()]);
        assert!(xp.eval(d, &[]).is_empty());
    }

    #[test]
    fn well_formedness_table() {
        let cases: &[(&[u8], bool, &str)] = &[
            (b"<a>x</a>", true, "x"),
            (b"<a>x &amp; &lt;y&gt; &#65;&#x42;</a>", true, "x & <y> AB"),
            (b"<a b='1\t2'/>", true, ""),
            (b"<a>\r\nx\ry</a>", true, "\nx\ny"),
            (b"<!DOCTYPE a [<!ENTITY e \"hi &f;\"><!ENTITY f \"there\">]><a>&e;</a>", true, "hi there"),
            (b"<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><a>[&x;]</a>", true, "[]"),
            (b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>\xe9</a>", true, "\u{e9}"),
            (b"\xEF\xBB\xBF<a>x</a>", true, "x"),
            (b"", false, ""),
            (b"   ", false, ""),
            (b"<a>", false, ""),
            (b"<a></b>", false, ""),
            (b"<a></a><b></b>", false, ""),
            (b"<a></a>junk", false, ""),
            (b"junk<a></a>", false, ""),
            (b"<a>&unknown;</a>", false, ""),
            (b"<a>& x</a>", false, ""),
            (b"<a>&#0;</a>", false, ""),
            (b"<a b='1' b='2'/>", false, ""),
            (b"<a b='<'/>", false, ""),
            (b"<a>]]></a>", false, ""),
            (b"<a>\xff</a>", false, ""),
            (b"<a><!-- x -- y --></a>", false, ""),
            (b"<a/><?xml version='1.0'?>", false, ""),
            (b"<?xml version='1.0'?><?xml-stylesheet href='a'?><a>x</a>", true, "x"),
            (b"<1a/>", false, ""),
        ];
        for (body, ok, content) in cases {
            let o = parse(body);
            assert_eq!(o.error.is_none(), *ok, "{:?}: {:?}", String::from_utf8_lossy(body), o.detail);
            if *ok {
                assert_eq!(o.doc.root_content().unwrap(), content.as_bytes(), "{:?}", String::from_utf8_lossy(body));
            } else {
                assert_eq!(o.error.as_deref(), Some(FAILED));
            }
        }
        // The partial tree survives an error, as v3 keeps libxml2's myDoc.
        let o = parse(b"<a>x<b>y</b>");
        assert!(o.error.is_some());
        assert_eq!(o.doc.root_content().unwrap(), b"xy");
    }

    #[test]
    fn hostile() {
        // Billion laughs is capped.
        let mut dtd = String::from("<!DOCTYPE a [<!ENTITY l0 \"lol\">");
        for i in 1..12 {
            let prev = format!("&l{};", i - 1).repeat(10);
            dtd.push_str(&format!("<!ENTITY l{i} \"{prev}\">"));
        }
        dtd.push_str("]><a>&l11;</a>");
        let o = parse(dtd.as_bytes());
        assert!(o.error.is_some());
        // Deep nesting does not recurse.
        let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        let o = parse(deep.as_bytes());
        assert_eq!(o.error, None);
        assert_eq!(q(&o.doc, "//@*").len(), 0);
        assert_eq!(q(&o.doc, "/*"), vec![""]);
        // Entity loops stop.
        let o = parse(b"<!DOCTYPE a [<!ENTITY x \"&y;\"><!ENTITY y \"&x;\">]><a>&x;</a>");
        assert!(o.error.is_some());
    }
}
