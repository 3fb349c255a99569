//! The smallest round trip through the facade: connect, send, receive, close.

mod common;
use common::*;
use lingerstack_wsp::WsaError;

#[test]
fn connect_send_recv_close() {
    let n = net();
    let (s, c) = n.connected(5000);
    assert_eq!(n.p.send(s, b"hello").unwrap(), 5);
    n.peer.send(c, b"world", BLOCK).unwrap();
    let mut buf = [0u8; 16];
    let got = n.p.recv(s, &mut buf).unwrap();
    assert_eq!(&buf[..got], b"world");
    n.p.close_socket(s).unwrap();
    let (data, err) = n.peer_read_all(c);
    assert_eq!(data, b"hello");
    assert_eq!(err, None);
    assert_eq!(n.p.close_socket(s), Err(WsaError::NOTSOCK));
}
