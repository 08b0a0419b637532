//! Request-body processors: URLENCODED, MULTIPART, JSON, XML.
//!
//! Each processor is a pure function over the whole buffered body; the
//! transaction maps its outcome onto ARGS/ARGS_POST, FILES*, MULTIPART_*,
//! REQBODY_ERROR and XML.

pub mod json;
pub mod multipart;
pub mod urlencoded;
pub mod xml;
