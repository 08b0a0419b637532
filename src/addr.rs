//! Socket addresses as text, without an allocation per request. No nginx types: the
//! integration test `tests/addr.rs` includes this file.

use std::net::{Ipv4Addr, Ipv6Addr};

/// An address as text, written on the stack rather than allocated for every request
/// (the longest, an IPv6 address with an embedded IPv4 one, is 45 bytes).
pub struct AddrText {
    buf: [u8; 46],
    len: usize,
}

impl AddrText {
    pub fn of(addr: impl std::fmt::Display) -> AddrText {
        use std::io::Write;
        let mut buf = [0u8; 46];
        let mut out = std::io::Cursor::new(&mut buf[..]);
        let len = if write!(out, "{addr}").is_ok() { out.position() as usize } else { 0 };
        AddrText { buf, len }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// Port of a socket address (0 for NULL and non-IP families).
///
/// # Safety
/// `sa` is NULL or points to a valid socket address of its family.
pub unsafe fn port(sa: *const libc::sockaddr) -> u16 {
    if sa.is_null() {
        return 0;
    }
    // SAFETY: the family field says which layout follows.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => u16::from_be((*(sa as *const libc::sockaddr_in)).sin_port),
            libc::AF_INET6 => u16::from_be((*(sa as *const libc::sockaddr_in6)).sin6_port),
            _ => 0,
        }
    }
}

/// Address text and port of a socket address (`unix:` for a Unix socket).
///
/// # Safety
/// `sa` is NULL or points to a valid socket address of its family.
pub unsafe fn text(sa: *const libc::sockaddr) -> (AddrText, u16) {
    if sa.is_null() {
        return (AddrText::of(""), 0);
    }
    // SAFETY: the family field says which layout follows.
    let text = unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*(sa as *const libc::sockaddr_in);
                AddrText::of(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
            }
            libc::AF_INET6 => AddrText::of(Ipv6Addr::from((*(sa as *const libc::sockaddr_in6)).sin6_addr.s6_addr)),
            libc::AF_UNIX => AddrText::of("unix:"),
            _ => AddrText::of(""),
        }
    };
    // SAFETY: forwarded.
    (text, unsafe { port(sa) })
}
