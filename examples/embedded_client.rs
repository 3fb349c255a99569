//! A minimal embedded client: a program that brings its own TCP/IP stack and talks to a server
//! through `lingerstack::net`, the blocking sockets shaped like `std::net`.
//!
//! As root (CAP_NET_ADMIN, /dev/net/tun, iproute2) the server is the Linux kernel of a private
//! network namespace, reached over a TAP; otherwise it is a second lingerstack engine in this
//! process, over the in-memory link. Either way the client code is the same few lines in
//! `ask`.
//!
//! ```text
//! cargo run --example embedded_client      # sudo -E for the TAP version
//! ```

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::time::Duration;

use lingerstack::net::{TcpListener, TcpStream};
use lingerstack::tap::TapLink;
use lingerstack::{CloseOutcome, MemoryLink, Stack};
use lingerstack_testkit::tapnet::LINK_UP_TIMEOUT;
use lingerstack_testkit::{TapNet, peer};

/// The client: send a question, say we are done, read the answer to its end, close.
fn ask(stack: &Stack, server: SocketAddr, question: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(stack, server)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    // Wait up to 2 s at close for the server to acknowledge everything (else reset).
    stream.set_linger(Some(Duration::from_secs(2)))?;
    stream.write_all(question.as_bytes())?;
    stream.shutdown(Shutdown::Write)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let outcome: CloseOutcome = stream.close()?;
    println!("client: closed, {outcome:?}");
    Ok(answer)
}

/// The server's side of one exchange: read the question to its end, answer, close.
fn answer(question: &[u8]) -> Vec<u8> {
    format!("you said {:?}", String::from_utf8_lossy(question)).into_bytes()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let answer = match lingerstack_testkit::tap_available() {
        Ok(()) => over_tap()?,
        Err(why) => {
            println!("(no TAP here: {why}; using the in-memory link)");
            over_memory()?
        }
    };
    println!("client: got {answer:?}");
    Ok(())
}

/// The kernel of a private namespace serves; lingerstack is the client on its TAP.
fn over_tap() -> Result<String, Box<dyn std::error::Error>> {
    let net = TapNet::new()?;
    let name = net.tap_name().to_string();
    let link = net.ns().run(move || TapLink::open(&name))?;
    let stack = Stack::builder()
        .ipv4(net.stack_v4(), net.prefix_len_v4())
        .mac(net.stack_mac())
        .start(link)?;
    net.wait_link_up(LINK_UP_TIMEOUT)?;
    let server = SocketAddr::new(net.kernel_v4().into(), 7000);
    let listener = peer::tcp_listener(net.ns(), server, None)?;
    let kernel = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut conn, _) = listener.accept()?;
        let mut question = Vec::new();
        conn.read_to_end(&mut question)?;
        conn.write_all(&answer(&question))
    });
    println!(
        "client: lingerstack {} asks the kernel at {server}",
        net.stack_v4()
    );
    let reply = ask(&stack, server, "hello from an embedded stack")?;
    kernel.join().expect("kernel thread")?;
    stack.stop(Duration::from_secs(1));
    Ok(reply)
}

/// A second engine in this process serves, over the in-memory link.
fn over_memory() -> Result<String, Box<dyn std::error::Error>> {
    let (a, b) = MemoryLink::pair(1500);
    let server_ip = Ipv4Addr::new(10, 0, 0, 1);
    let server_stack = Stack::builder()
        .ipv4(server_ip, 24)
        .mac([2, 0, 0, 0, 0, 1])
        .start(a)?;
    let client_stack = Stack::builder()
        .ipv4(Ipv4Addr::new(10, 0, 0, 2), 24)
        .start(b)?;
    let server = SocketAddr::new(server_ip.into(), 7000);
    let listener = TcpListener::bind(&server_stack, server)?;
    let serving = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut conn, _) = listener.accept()?;
        let mut question = Vec::new();
        conn.read_to_end(&mut question)?;
        conn.write_all(&answer(&question))
    });
    println!("client: lingerstack 10.0.0.2 asks lingerstack at {server}");
    let reply = ask(&client_stack, server, "hello from an embedded stack")?;
    serving.join().expect("server thread")?;
    Ok(reply)
}
