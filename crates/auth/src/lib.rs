//! Ward login gate logic (tokens, credentials, login page), without nginx.
