//! `struct sockaddr` in and out, Linux layouts. An IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`, packetdrill's ipv4-mapped-ipv6 mode) means the IPv4 address to the engine.

use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libc::{c_int, sa_family_t, sockaddr, sockaddr_in, sockaddr_in6, socklen_t};

use crate::errno::{Errno, Res};

/// Read the address a caller passed for a socket of `domain` (AF_INET or AF_INET6).
///
/// # Safety
///
/// `addr` must be null or point to at least `len` readable bytes.
pub(crate) unsafe fn read(domain: c_int, addr: *const sockaddr, len: socklen_t) -> Res<SocketAddr> {
    let len = len as usize;
    if addr.is_null() || len < size_of::<sa_family_t>() {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: at least the family field is readable (checked above); read unaligned.
    let family = unsafe { std::ptr::read_unaligned(addr.cast::<sa_family_t>()) };
    match (domain, c_int::from(family)) {
        (libc::AF_INET, libc::AF_INET) if len >= size_of::<sockaddr_in>() => {
            // SAFETY: `len` bytes are readable and cover a sockaddr_in.
            let sin = unsafe { std::ptr::read_unaligned(addr.cast::<sockaddr_in>()) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Ok(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
        }
        (libc::AF_INET6, libc::AF_INET6) if len >= size_of::<sockaddr_in6>() => {
            // SAFETY: `len` bytes are readable and cover a sockaddr_in6.
            let sin6 = unsafe { std::ptr::read_unaligned(addr.cast::<sockaddr_in6>()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr).to_canonical();
            Ok(SocketAddr::new(ip, u16::from_be(sin6.sin6_port)))
        }
        (libc::AF_INET, _) => Err(Errno(libc::EAFNOSUPPORT)),
        _ => Err(Errno(libc::EINVAL)),
    }
}

/// Write `sa` for a socket of `domain` into the caller's buffer, truncated to its size as
/// Linux does, and store the full length in `*len`. Null pointers write nothing.
///
/// # Safety
///
/// `addr` must be null or point to `*len` writable bytes; `len` null or valid.
pub(crate) unsafe fn write(
    domain: c_int,
    sa: SocketAddr,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) {
    if addr.is_null() || len.is_null() {
        return;
    }
    let bytes = encode(domain, sa);
    // SAFETY: `len` is valid (caller), checked non-null.
    let room = unsafe { *len } as usize;
    let n = bytes.len().min(room);
    // SAFETY: `addr` has `room` writable bytes and `n <= room`; the source is our own vector.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr.cast::<u8>(), n);
        *len = bytes.len() as socklen_t;
    }
}

/// The bytes of the sockaddr for `sa` (IPv4 as mapped IPv6 on an AF_INET6 socket).
fn encode(domain: c_int, sa: SocketAddr) -> Vec<u8> {
    let ip6 = match (domain, sa.ip()) {
        (libc::AF_INET6, IpAddr::V4(v4)) => Some(v4.to_ipv6_mapped()),
        (_, IpAddr::V6(v6)) => Some(v6),
        _ => None,
    };
    match (ip6, sa.ip()) {
        (None, IpAddr::V4(v4)) => {
            // SAFETY: sockaddr_in is plain data; all zeroes is a valid value.
            let mut sin: sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as sa_family_t;
            sin.sin_port = sa.port().to_be();
            sin.sin_addr.s_addr = u32::from(v4).to_be();
            as_bytes(&sin)
        }
        (Some(v6), _) | (None, IpAddr::V6(v6)) => {
            // SAFETY: sockaddr_in6 is plain data; all zeroes is a valid value.
            let mut sin6: sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as sa_family_t;
            sin6.sin6_port = sa.port().to_be();
            sin6.sin6_addr.s6_addr = v6.octets();
            as_bytes(&sin6)
        }
    }
}

fn as_bytes<T>(value: &T) -> Vec<u8> {
    // SAFETY: `value` is a live, fully initialised plain-data struct (zeroed, then set).
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(domain: c_int, sa: SocketAddr) -> (SocketAddr, usize) {
        let mut buf = [0u8; 128];
        let mut len = buf.len() as socklen_t;
        // SAFETY: a 128-byte buffer and its length.
        unsafe { write(domain, sa, buf.as_mut_ptr().cast(), &mut len) };
        // SAFETY: `len` bytes were written into `buf`.
        let back = unsafe { read(domain, buf.as_ptr().cast(), len) }.unwrap();
        (back, len as usize)
    }

    #[test]
    fn both_families_and_mapped_addresses() {
        let v4: SocketAddr = "192.168.0.1:8080".parse().unwrap();
        assert_eq!(round_trip(libc::AF_INET, v4), (v4, 16));
        let v6: SocketAddr = "[2001:db8::1]:8080".parse().unwrap();
        assert_eq!(round_trip(libc::AF_INET6, v6), (v6, 28));
        // An IPv4 peer of an AF_INET6 socket goes out mapped and comes back as IPv4.
        assert_eq!(round_trip(libc::AF_INET6, v4), (v4, 28));
    }

    #[test]
    fn wrong_family_or_length_fails() {
        let mut buf = [0u8; 28];
        let mut len = 28;
        let v6: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        // SAFETY: a 28-byte buffer and its length.
        unsafe { write(libc::AF_INET6, v6, buf.as_mut_ptr().cast(), &mut len) };
        // SAFETY: 28 readable bytes.
        let r = unsafe { read(libc::AF_INET, buf.as_ptr().cast(), 28) };
        assert_eq!(r, Err(Errno(libc::EAFNOSUPPORT)));
        // SAFETY: 28 readable bytes, a shorter length claimed.
        let r = unsafe { read(libc::AF_INET6, buf.as_ptr().cast(), 16) };
        assert_eq!(r, Err(Errno(libc::EINVAL)));
    }
}
