//! Request-body processors: URLENCODED, MULTIPART, JSON, XML.
