//! Shared helpers of the fuzz targets in src/bin/ (one binary per target).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ward_engine::{RuleSet, RuleSource};

/// SecLang text as compiled inline by the targets.
pub fn inline(text: &str) -> RuleSource {
    RuleSource::Inline { text: text.into(), origin: PathBuf::from("/fuzz/inline.conf"), line: 1 }
}

/// Compact CRS-like rules touching every request collection, the body processors and
/// the operators that parse their input (the same shape as the engine's property test).
pub const RULES: &str = r#"
SecRuleEngine On
SecRequestBodyAccess On
SecResponseBodyAccess On
SecArgumentsLimit 200
SecRequestBodyJsonDepthLimit 64
SecRule REQUEST_HEADERS:Content-Type "@rx (?i)^application/json" "id:10,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_HEADERS:Content-Type "@rx (?i)^(?:application|text)/xml" "id:11,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',logdata:'%{reqbody_error_msg}'"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:200003,phase:2,t:none,log,deny,status:400"
SecRule &ARGS "@ge 200" "id:200007,phase:2,t:none,log,deny,status:400"
SecRule REQUEST_URI|ARGS|ARGS_NAMES|REQUEST_COOKIES|REQUEST_HEADERS|XML:/* "@detectSQLi" "id:942100,phase:2,pass,log,capture,t:none,t:utf8toUnicode,t:urlDecodeUni,t:removeNulls,logdata:'%{TX.0}',setvar:tx.score=+5"
SecRule ARGS|REQUEST_HEADERS|FILES_NAMES|FILES "@detectXSS" "id:941100,phase:2,pass,log,t:none,t:htmlEntityDecode,t:jsDecode,t:cssDecode,setvar:tx.score=+5"
SecRule REQUEST_URI|ARGS "@validateUrlEncoding" "id:920220,phase:2,pass,log,t:none,setvar:tx.score=+1"
SecRule ARGS "@validateUtf8Encoding" "id:920250,phase:2,pass,log,t:none,setvar:tx.score=+1"
SecRule REQUEST_URI|REQUEST_BODY "@validateByteRange 1-255" "id:920270,phase:2,pass,log,t:none,t:urlDecodeUni,setvar:tx.score=+1"
SecRule ARGS|ARGS_NAMES "@rx (?i)(?:<script|union\s+select|\.\./)" "id:930100,phase:2,pass,log,capture,t:none,t:urlDecodeUni,t:normalizePath,t:cmdLine,t:compressWhitespace,t:lowercase,chain"
  SecRule MATCHED_VARS_NAMES "@rx ." "setvar:tx.score=+5"
SecRule REQUEST_COOKIES|REQUEST_COOKIES_NAMES "@pm select union script" "id:942101,phase:1,pass,log,t:none,t:base64DecodeExt,t:hexDecode,t:sqlHexDecode,t:escapeSeqDecode"
SecRule REMOTE_ADDR "@ipMatch 10.0.0.0/8,::1" "id:910000,phase:1,pass,nolog,setvar:tx.internal=1"
SecRule TX:score "@ge 25" "id:949110,phase:2,deny,status:403,log,msg:'Inbound score %{tx.score}'"
SecRule RESPONSE_BODY "@pm secret" "id:950000,phase:4,deny,status:403,log"
"#;

/// The rule set of [`RULES`], compiled once per process.
pub fn ruleset() -> Arc<RuleSet> {
    static RS: OnceLock<Arc<RuleSet>> = OnceLock::new();
    RS.get_or_init(|| Arc::new(RuleSet::compile(&[inline(RULES)]).expect("fuzz rules compile"))).clone()
}

/// Splits the input at the first `sep` (or returns everything as the head).
pub fn split_once(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
