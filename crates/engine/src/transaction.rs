//! One request's state and its evaluation through phases 1-5.

use std::sync::Arc;

use crate::ruleset::{EngineMode, RuleSet};

/// What a disruptive rule asks the server to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disruptive {
    Deny,
    Drop,
    Redirect(String),
}

/// A decision to interrupt the request (never produced in DetectionOnly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intervention {
    pub status: u16,
    pub action: Disruptive,
    /// The rule that decided it (0 for limits and engine errors).
    pub rule_id: u64,
}

/// One request passing through the engine.
#[derive(Debug)]
pub struct Transaction {
    rules: Arc<RuleSet>,
    messages: Vec<String>,
}

impl Transaction {
    /// Starts a transaction; `unique_id` appears in logs as `[unique_id "…"]`.
    pub fn new(rules: Arc<RuleSet>, unique_id: &str) -> Self {
        let _ = unique_id;
        Transaction { rules, messages: Vec::new() }
    }

    pub fn engine_mode(&self) -> EngineMode {
        self.rules.engine_mode()
    }

    pub fn process_connection(&mut self, client_ip: &str, client_port: u16, server_ip: &str, server_port: u16) {
        let _ = (client_ip, client_port, server_ip, server_port);
    }

    /// `uri` is the raw request target (path and query), as sent.
    pub fn process_uri(&mut self, uri: &[u8], method: &[u8], protocol: &[u8]) {
        let _ = (uri, method, protocol);
    }

    pub fn set_server_name(&mut self, name: &[u8]) {
        let _ = name;
    }

    pub fn add_request_header(&mut self, name: &[u8], value: &[u8]) {
        let _ = (name, value);
    }

    /// Phase 1.
    pub fn process_request_headers(&mut self) -> Option<Intervention> {
        None
    }

    /// Whether phase 2 needs the body (SecRequestBodyAccess On and the engine not Off).
    pub fn wants_request_body(&self) -> bool {
        false
    }

    /// Buffers a piece of the request body; may intervene when SecRequestBodyLimit
    /// is exceeded with Reject.
    pub fn append_request_body(&mut self, chunk: &[u8]) -> Option<Intervention> {
        let _ = chunk;
        None
    }

    /// Phase 2 (runs the body processor first).
    pub fn process_request_body(&mut self) -> Option<Intervention> {
        None
    }

    pub fn add_response_header(&mut self, name: &[u8], value: &[u8]) {
        let _ = (name, value);
    }

    /// Phase 3.
    pub fn process_response_headers(&mut self, status: u16, protocol: &[u8]) -> Option<Intervention> {
        let _ = (status, protocol);
        None
    }

    /// Whether phase 4 needs the response body (SecResponseBodyAccess and MIME type).
    pub fn wants_response_body(&self) -> bool {
        false
    }

    pub fn append_response_body(&mut self, chunk: &[u8]) -> Option<Intervention> {
        let _ = chunk;
        None
    }

    /// Phase 4.
    pub fn process_response_body(&mut self) -> Option<Intervention> {
        None
    }

    /// Phase 5.
    pub fn process_logging(&mut self) {}

    /// Error-log lines (ModSecurity format, starting `ModSecurity: `) produced since the
    /// last call; the server writes them to its error log.
    pub fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages)
    }

    /// Whether the last intervention-worthy match was blocked (`block`), only
    /// detected (`detect`) or nothing matched (`pass`): for `$ward_action`.
    pub fn outcome(&self) -> &'static str {
        "pass"
    }

    /// Comma-separated ids of rules that matched and logged: for `$ward_matched_ids`.
    pub fn matched_ids(&self) -> String {
        String::new()
    }
}
