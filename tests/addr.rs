//! Socket addresses as text and port (src/addr.rs, which the module uses for
//! REMOTE_ADDR, SERVER_ADDR and their ports).

#[path = "../src/addr.rs"]
mod addr;

use std::net::{Ipv4Addr, Ipv6Addr};

#[test]
fn socket_addresses_as_text_and_port() {
    let v4 = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 8080u16.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(Ipv4Addr::new(192, 0, 2, 7)).to_be() },
        sin_zero: [0; 8],
    };
    let sa = &v4 as *const libc::sockaddr_in as *const libc::sockaddr;
    // SAFETY: a valid IPv4 socket address.
    let (text, port) = unsafe { addr::text(sa) };
    assert_eq!((text.as_str(), port), ("192.0.2.7", 8080));
    // SAFETY: as above.
    assert_eq!(unsafe { addr::port(sa) }, 8080);
    let longest = Ipv6Addr::new(0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xfffe);
    for (ip, want) in [
        (longest, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"),
        (Ipv4Addr::new(255, 255, 255, 255).to_ipv6_mapped(), "::ffff:255.255.255.255"),
        (Ipv6Addr::LOCALHOST, "::1"),
    ] {
        // SAFETY: all-zero is a valid sockaddr_in6.
        let mut v6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        v6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        v6.sin6_port = 443u16.to_be();
        v6.sin6_addr.s6_addr = ip.octets();
        let sa = &v6 as *const libc::sockaddr_in6 as *const libc::sockaddr;
        // SAFETY: a valid IPv6 socket address.
        let (text, port) = unsafe { addr::text(sa) };
        assert_eq!((text.as_str(), port), (want, 443));
    }
    // SAFETY: NULL is allowed.
    let (text, port) = unsafe { addr::text(std::ptr::null()) };
    assert_eq!((text.as_str(), port), ("", 0));
    // SAFETY: as above.
    assert_eq!(unsafe { addr::port(std::ptr::null()) }, 0);
}
