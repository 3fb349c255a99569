//! Kernel-side peer sockets created inside a namespace.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::Netns;

fn tcp_socket(addr: &SocketAddr, rcvbuf: Option<usize>) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(*addr),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    Ok(socket)
}

/// A kernel TCP listener on `addr` inside `ns`, with SO_RCVBUF set to `rcvbuf` (if given)
/// before listen so accepted sockets inherit it (and window autotuning stays off).
pub fn tcp_listener(
    ns: &Netns,
    addr: SocketAddr,
    rcvbuf: Option<usize>,
) -> io::Result<TcpListener> {
    ns.run(move || {
        let socket = tcp_socket(&addr, rcvbuf)?;
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        Ok(socket.into())
    })
}

/// A kernel TCP connection from inside `ns` to `addr`, with SO_RCVBUF set to `rcvbuf` (if
/// given) before connect; fails after `timeout`.
pub fn tcp_connect(
    ns: &Netns,
    addr: SocketAddr,
    rcvbuf: Option<usize>,
    timeout: Duration,
) -> io::Result<TcpStream> {
    ns.run(move || {
        let socket = tcp_socket(&addr, rcvbuf)?;
        socket.connect_timeout(&addr.into(), timeout)?;
        Ok(socket.into())
    })
}

/// Reads until EOF or an error; returns the bytes read and the error, if any (so a test can
/// check for ECONNRESET after data). A read timeout shows up as a `WouldBlock` error.
pub fn read_to_end_or_error(stream: &mut impl Read) -> (Vec<u8>, Option<io::Error>) {
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (data, None),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (data, Some(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn read_to_end_reports_data_then_error() {
        struct R(Vec<io::Result<Vec<u8>>>);
        impl Read for R {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.remove(0) {
                    Ok(d) => {
                        buf[..d.len()].copy_from_slice(&d);
                        Ok(d.len())
                    }
                    Err(e) => Err(e),
                }
            }
        }
        let mut r = R(vec![
            Ok(b"ab".to_vec()),
            Err(io::ErrorKind::Interrupted.into()),
            Ok(b"c".to_vec()),
            Err(io::ErrorKind::ConnectionReset.into()),
        ]);
        let (data, err) = read_to_end_or_error(&mut r);
        assert_eq!(data, b"abc");
        assert_eq!(err.unwrap().kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn kernel_peers_talk_over_namespace_loopback() {
        if !crate::require_tap("kernel_peers_talk_over_namespace_loopback") {
            return;
        }
        let ns = Netns::new().unwrap();
        let l = tcp_listener(&ns, "127.0.0.1:0".parse().unwrap(), Some(4096)).unwrap();
        let addr = l.local_addr().unwrap();
        let mut c = tcp_connect(&ns, addr, Some(4096), Duration::from_secs(2)).unwrap();
        let (mut s, _) = l.accept().unwrap();
        c.write_all(b"ping").unwrap();
        drop(c);
        let (data, err) = read_to_end_or_error(&mut s);
        assert_eq!(data, b"ping");
        assert!(err.is_none());
        // The listener is not reachable from the test's own namespace.
        assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
    }
}
