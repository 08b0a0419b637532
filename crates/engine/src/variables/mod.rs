//! Variable registry: SecLang variable names, selectors (`VAR:key`, `VAR:/regex/`),
//! exclusions (`!VAR:key`) and counting (`&VAR`).
//!
//! Resolution of a variable to values lives in the transaction (it reads request
//! state); this module only knows names and what kind of thing each variable is.

mod key_regex;

pub use key_regex::KeyRegex;

/// Every variable the engine understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    Args,
    ArgsGet,
    ArgsPost,
    ArgsNames,
    ArgsGetNames,
    ArgsPostNames,
    ArgsCombinedSize,
    RequestHeaders,
    RequestHeadersNames,
    RequestCookies,
    RequestCookiesNames,
    RequestUri,
    RequestUriRaw,
    RequestLine,
    RequestMethod,
    RequestProtocol,
    RequestFilename,
    RequestBasename,
    RequestBody,
    RequestBodyLength,
    QueryString,
    PathInfo,
    FullRequest,
    FullRequestLength,
    Files,
    FilesNames,
    FilesSizes,
    FilesCombinedSize,
    FilesTmpNames,
    FilesTmpContent,
    MultipartFilename,
    MultipartName,
    MultipartPartHeaders,
    MultipartStrictError,
    MultipartUnmatchedBoundary,
    MultipartBoundaryQuoted,
    MultipartBoundaryWhitespace,
    MultipartDataBefore,
    MultipartDataAfter,
    MultipartHeaderFolding,
    MultipartLfLine,
    MultipartCrlfLfLines,
    MultipartMissingSemicolon,
    MultipartInvalidQuoting,
    MultipartInvalidPart,
    MultipartInvalidHeaderFolding,
    MultipartFileLimitExceeded,
    ReqbodyError,
    ReqbodyErrorMsg,
    ReqbodyProcessor,
    ReqbodyProcessorError,
    ReqbodyProcessorErrorMsg,
    InboundDataError,
    OutboundDataError,
    UrlencodedError,
    Xml,
    ResponseStatus,
    ResponseHeaders,
    ResponseHeadersNames,
    ResponseBody,
    ResponseContentType,
    ResponseContentLength,
    ResponseProtocol,
    StatusLine,
    Tx,
    Ip,
    Global,
    Session,
    User,
    Resource,
    Env,
    Geo,
    Rule,
    RemoteAddr,
    RemotePort,
    RemoteHost,
    RemoteUser,
    AuthType,
    ServerAddr,
    ServerName,
    ServerPort,
    UniqueId,
    Duration,
    Time,
    TimeDay,
    TimeEpoch,
    TimeHour,
    TimeMin,
    TimeMon,
    TimeSec,
    TimeWday,
    TimeYear,
    MatchedVar,
    MatchedVars,
    MatchedVarName,
    MatchedVarsNames,
    HighestSeverity,
    UserAgentIp,
    WebAppId,
    SessionId,
    UserId,
    MscPcreLimitsExceeded,
    ModsecBuild,
}

use Var::*;

/// Name → variable, upper case.
pub(crate) const NAMES: &[(&str, Var)] = &[
    ("ARGS", Args),
    ("ARGS_GET", ArgsGet),
    ("ARGS_POST", ArgsPost),
    ("ARGS_NAMES", ArgsNames),
    ("ARGS_GET_NAMES", ArgsGetNames),
    ("ARGS_POST_NAMES", ArgsPostNames),
    ("ARGS_COMBINED_SIZE", ArgsCombinedSize),
    ("REQUEST_HEADERS", RequestHeaders),
    ("REQUEST_HEADERS_NAMES", RequestHeadersNames),
    ("REQUEST_COOKIES", RequestCookies),
    ("REQUEST_COOKIES_NAMES", RequestCookiesNames),
    ("REQUEST_URI", RequestUri),
    ("REQUEST_URI_RAW", RequestUriRaw),
    ("REQUEST_LINE", RequestLine),
    ("REQUEST_METHOD", RequestMethod),
    ("REQUEST_PROTOCOL", RequestProtocol),
    ("REQUEST_FILENAME", RequestFilename),
    ("REQUEST_BASENAME", RequestBasename),
    ("REQUEST_BODY", RequestBody),
    ("REQUEST_BODY_LENGTH", RequestBodyLength),
    ("QUERY_STRING", QueryString),
    ("PATH_INFO", PathInfo),
    ("FULL_REQUEST", FullRequest),
    ("FULL_REQUEST_LENGTH", FullRequestLength),
    ("FILES", Files),
    ("FILES_NAMES", FilesNames),
    ("FILES_SIZES", FilesSizes),
    ("FILES_COMBINED_SIZE", FilesCombinedSize),
    ("FILES_TMPNAMES", FilesTmpNames),
    ("FILES_TMP_CONTENT", FilesTmpContent),
    ("MULTIPART_FILENAME", MultipartFilename),
    ("MULTIPART_NAME", MultipartName),
    ("MULTIPART_PART_HEADERS", MultipartPartHeaders),
    ("MULTIPART_STRICT_ERROR", MultipartStrictError),
    ("MULTIPART_UNMATCHED_BOUNDARY", MultipartUnmatchedBoundary),
    ("MULTIPART_BOUNDARY_QUOTED", MultipartBoundaryQuoted),
    ("MULTIPART_BOUNDARY_WHITESPACE", MultipartBoundaryWhitespace),
    ("MULTIPART_DATA_BEFORE", MultipartDataBefore),
    ("MULTIPART_DATA_AFTER", MultipartDataAfter),
    ("MULTIPART_HEADER_FOLDING", MultipartHeaderFolding),
    ("MULTIPART_LF_LINE", MultipartLfLine),
    ("MULTIPART_CRLF_LF_LINES", MultipartCrlfLfLines),
    ("MULTIPART_MISSING_SEMICOLON", MultipartMissingSemicolon),
    ("MULTIPART_SEMICOLON_MISSING", MultipartMissingSemicolon),
    ("MULTIPART_INVALID_QUOTING", MultipartInvalidQuoting),
    ("MULTIPART_INVALID_PART", MultipartInvalidPart),
    ("MULTIPART_INVALID_HEADER_FOLDING", MultipartInvalidHeaderFolding),
    ("MULTIPART_FILE_LIMIT_EXCEEDED", MultipartFileLimitExceeded),
    ("REQBODY_ERROR", ReqbodyError),
    ("REQBODY_ERROR_MSG", ReqbodyErrorMsg),
    ("REQBODY_PROCESSOR", ReqbodyProcessor),
    ("REQBODY_PROCESSOR_ERROR", ReqbodyProcessorError),
    ("REQBODY_PROCESSOR_ERROR_MSG", ReqbodyProcessorErrorMsg),
    ("INBOUND_DATA_ERROR", InboundDataError),
    ("OUTBOUND_DATA_ERROR", OutboundDataError),
    ("URLENCODED_ERROR", UrlencodedError),
    ("XML", Xml),
    ("RESPONSE_STATUS", ResponseStatus),
    ("STATUS", ResponseStatus),
    ("RESPONSE_HEADERS", ResponseHeaders),
    ("RESPONSE_HEADERS_NAMES", ResponseHeadersNames),
    ("RESPONSE_BODY", ResponseBody),
    ("RESPONSE_CONTENT_TYPE", ResponseContentType),
    ("RESPONSE_CONTENT_LENGTH", ResponseContentLength),
    ("RESPONSE_PROTOCOL", ResponseProtocol),
    ("STATUS_LINE", StatusLine),
    ("TX", Tx),
    ("IP", Ip),
    ("GLOBAL", Global),
    ("SESSION", Session),
    ("USER", User),
    ("RESOURCE", Resource),
    ("ENV", Env),
    ("GEO", Geo),
    ("RULE", Rule),
    ("REMOTE_ADDR", RemoteAddr),
    ("REMOTE_PORT", RemotePort),
    ("REMOTE_HOST", RemoteHost),
    ("REMOTE_USER", RemoteUser),
    ("AUTH_TYPE", AuthType),
    ("SERVER_ADDR", ServerAddr),
    ("SERVER_NAME", ServerName),
    ("SERVER_PORT", ServerPort),
    ("UNIQUE_ID", UniqueId),
    ("DURATION", Duration),
    ("TIME", Time),
    ("TIME_DAY", TimeDay),
    ("TIME_EPOCH", TimeEpoch),
    ("TIME_HOUR", TimeHour),
    ("TIME_MIN", TimeMin),
    ("TIME_MON", TimeMon),
    ("TIME_SEC", TimeSec),
    ("TIME_WDAY", TimeWday),
    ("TIME_YEAR", TimeYear),
    ("MATCHED_VAR", MatchedVar),
    ("MATCHED_VARS", MatchedVars),
    ("MATCHED_VAR_NAME", MatchedVarName),
    ("MATCHED_VARS_NAMES", MatchedVarsNames),
    ("HIGHEST_SEVERITY", HighestSeverity),
    ("USERAGENT_IP", UserAgentIp),
    ("WEBAPPID", WebAppId),
    ("SESSIONID", SessionId),
    ("USERID", UserId),
    ("MSC_PCRE_LIMITS_EXCEEDED", MscPcreLimitsExceeded),
    ("MODSEC_BUILD", ModsecBuild),
];

/// NAMES indexed both ways, for lookups per request (every match and macro names a variable).
static BY_NAME: once_cell::sync::Lazy<rustc_hash::FxHashMap<&'static str, Var>> =
    once_cell::sync::Lazy::new(|| NAMES.iter().map(|(n, v)| (*n, *v)).collect());
static BY_VAR: once_cell::sync::Lazy<Vec<&'static str>> = once_cell::sync::Lazy::new(|| {
    let mut names = vec!["?"; NAMES.iter().map(|(_, v)| *v as usize + 1).max().unwrap_or(0)];
    // The first spelling of a variable is its name.
    for (n, v) in NAMES.iter().rev() {
        names[*v as usize] = n;
    }
    names
});

impl Var {
    pub fn from_name(name: &str) -> Option<Var> {
        // Macros resolve names per request, already upper-cased: one hash lookup.
        if let Some(v) = BY_NAME.get(name) {
            return Some(*v);
        }
        NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }

    pub fn name(self) -> &'static str {
        BY_VAR.get(self as usize).copied().unwrap_or("?")
    }

    /// Whether this variable is a keyed collection (selectors apply to keys).
    pub fn is_collection(self) -> bool {
        matches!(
            self,
            Args | ArgsGet
                | ArgsPost
                | ArgsNames
                | ArgsGetNames
                | ArgsPostNames
                | RequestHeaders
                | RequestHeadersNames
                | RequestCookies
                | RequestCookiesNames
                | Files
                | FilesNames
                | FilesSizes
                | FilesTmpNames
                | FilesTmpContent
                | MultipartFilename
                | MultipartName
                | MultipartPartHeaders
                | ResponseHeaders
                | ResponseHeadersNames
                | Tx
                | Ip
                | Global
                | Session
                | User
                | Resource
                | Env
                | Geo
                | Rule
                | MatchedVars
                | MatchedVarsNames
                | Xml
        )
    }

    /// Whether values come from the request/response data, which does not change
    /// while rules run (so transformations of them can be cached).
    pub fn is_stable(self) -> bool {
        !matches!(
            self,
            Tx | Ip
                | Global
                | Session
                | User
                | Resource
                | Env
                | Geo
                | Rule
                | MatchedVar
                | MatchedVars
                | MatchedVarName
                | MatchedVarsNames
                | HighestSeverity
                | Duration
                | Time
                | TimeDay
                | TimeEpoch
                | TimeHour
                | TimeMin
                | TimeMon
                | TimeSec
                | TimeWday
                | TimeYear
                | MscPcreLimitsExceeded
        )
    }
}

/// How a target picks keys from a collection.
#[derive(Debug, Clone)]
pub enum Selector {
    All,
    /// Exact key, lower-cased (keys compare case-insensitively).
    Key(Vec<u8>),
    /// Keys matching a regex (case-insensitive, as ModSecurity).
    Regex(std::sync::Arc<KeyRegex>),
}

impl Selector {
    pub fn parse(sel: Option<&str>) -> Result<Selector, String> {
        match sel {
            None => Ok(Selector::All),
            Some(s) if s.len() >= 2 && s.starts_with('/') && s.ends_with('/') => {
                let pat = &s[1..s.len() - 1];
                KeyRegex::new(pat)
                    .map(|p| Selector::Regex(std::sync::Arc::new(p)))
                    .map_err(|e| format!("bad selector regex /{pat}/: {e}"))
            }
            Some(s) => Ok(Selector::Key(s.to_ascii_lowercase().into_bytes())),
        }
    }

    /// `key` is compared case-insensitively.
    pub fn matches(&self, key: &[u8]) -> bool {
        match self {
            Selector::All => true,
            Selector::Key(k) => k.eq_ignore_ascii_case(key),
            Selector::Regex(r) => r.is_match(key),
        }
    }

    pub fn same_as(&self, other: &Selector) -> bool {
        match (self, other) {
            (Selector::All, Selector::All) => true,
            (Selector::Key(a), Selector::Key(b)) => a == b,
            (Selector::Regex(a), Selector::Regex(b)) => std::sync::Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// One target of a rule after compilation (exclusions folded in).
#[derive(Debug, Clone)]
pub struct Target {
    pub var: Var,
    pub selector: Selector,
    /// `&VAR`: the number of values instead of the values.
    pub count: bool,
    /// Keys removed from this variable by `!VAR:key` items or update-target exceptions.
    pub exclusions: Vec<Selector>,
    /// The original spelling for logs (`ARGS:foo`).
    pub display: String,
    /// For a whole stable variable read by a gated link: the index of its (variable, gate)
    /// union of gate bits in a transaction's table (assigned at load; [`NO_UNION`] otherwise).
    pub union: u32,
}

/// [`Target::union`] of a target without a per-phase union.
pub const NO_UNION: u32 = u32::MAX;

/// Turns a variable list into targets: exclusions attach to every target of the same variable.
pub fn compile_targets(items: &[crate::parser::VariableItem]) -> Result<Vec<Target>, String> {
    let (mut targets, excl) = split_targets(items)?;
    attach_exclusions(&mut targets, &excl);
    Ok(targets)
}

/// The targets of a variable list and, apart, its `!VAR:key` exclusions.
pub fn split_targets(items: &[crate::parser::VariableItem]) -> Result<(Vec<Target>, Vec<(Var, Selector)>), String> {
    let mut targets: Vec<Target> = Vec::new();
    let mut excl: Vec<(Var, Selector)> = Vec::new();
    for it in items {
        let var = Var::from_name(&it.name).ok_or_else(|| format!("unknown variable {}", it.name))?;
        let sel = if var == Xml {
            // XPath expressions are evaluated by the XML processor; keep them verbatim.
            Selector::Key(it.selector.clone().unwrap_or_default().into_bytes())
        } else {
            Selector::parse(it.selector.as_deref())?
        };
        if it.exclude {
            excl.push((var, sel));
            continue;
        }
        let display = match &it.selector {
            Some(s) => format!("{}:{}", var.name(), s),
            None => var.name().to_string(),
        };
        targets.push(Target { var, selector: sel, count: it.count, exclusions: Vec::new(), display, union: NO_UNION });
    }
    Ok((targets, excl))
}

/// Adds exclusions to targets: a key exclusion to the targets of the same variable, a
/// regex exclusion to every target (ModSecurity v3 matches it against any key).
pub fn attach_exclusions(targets: &mut [Target], excl: &[(Var, Selector)]) {
    for (var, sel) in excl {
        let any = matches!(sel, Selector::Regex(_));
        for t in targets.iter_mut().filter(|t| any || t.var == *var) {
            t.exclusions.push(sel.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::split_variables;

    #[test]
    fn names_are_case_insensitive_and_round_trip() {
        for (n, v) in NAMES {
            assert_eq!(Var::from_name(&n.to_ascii_lowercase()), Some(*v));
            assert_eq!(Var::from_name(n), Some(*v));
            assert_eq!(Var::from_name(v.name()), Some(*v));
        }
        assert_eq!(Var::from_name("NOPE"), None);
    }

    #[test]
    fn exclusions_attach_to_same_variable() {
        let t = compile_targets(&split_variables("ARGS|REQUEST_HEADERS|!ARGS:foo|!REQUEST_HEADERS:/^x-/").unwrap())
            .unwrap();
        assert_eq!(t.len(), 2);
        assert!(t[0].exclusions[0].matches(b"FOO"));
        assert!(t[1].exclusions[0].matches(b"X-Forwarded-For"));
        assert!(compile_targets(&split_variables("BOGUS").unwrap()).is_err());
    }
}
