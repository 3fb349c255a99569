//! An echo server (RFC 862) on `lingerstack::tokio`: one `current_thread` runtime, one task
//! per connection, ordinary tokio I/O (`into_split` and `tokio::io::copy`).
//!
//! As root (CAP_NET_ADMIN, /dev/net/tun, iproute2) the clients are the Linux kernel of a
//! private network namespace, reaching the server over a TAP; otherwise they are tasks on a
//! second lingerstack engine in this process, over the in-memory link.
//!
//! ```text
//! cargo run --example tokio_echo           # sudo -E for the TAP version
//! ```

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use lingerstack::tap::TapLink;
use lingerstack::tokio::{TcpListener, TcpStream};
use lingerstack::{MemoryLink, Stack};
use lingerstack_testkit::tapnet::LINK_UP_TIMEOUT;
use lingerstack_testkit::{TapNet, peer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENTS: usize = 3;

/// The whole server: accept, and echo each connection in its own task until its client is
/// done; dropping the write half then sends the FIN.
async fn serve(listener: TcpListener, connections: usize) -> std::io::Result<()> {
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (stream, peer) = listener.accept().await?;
        tasks.push(tokio::spawn(async move {
            let (mut rd, mut wr) = stream.into_split();
            let n = tokio::io::copy(&mut rd, &mut wr).await?;
            println!("server: echoed {n} bytes to {peer}");
            Ok::<(), std::io::Error>(())
        }));
    }
    for task in tasks {
        task.await.expect("echo task")?;
    }
    Ok(())
}

fn message(i: usize) -> Vec<u8> {
    format!("message {i}: whatever you send comes back").into_bytes()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match lingerstack_testkit::tap_available() {
        Ok(()) => runtime.block_on(over_tap())?,
        Err(why) => {
            println!("(no TAP here: {why}; using the in-memory link)");
            runtime.block_on(over_memory())?
        }
    }
    println!("every echo came back intact");
    Ok(())
}

/// The kernel of a private namespace connects to the server on lingerstack's TAP.
async fn over_tap() -> Result<(), Box<dyn std::error::Error>> {
    let net = TapNet::new()?;
    let name = net.tap_name().to_string();
    let link = net.ns().run(move || TapLink::open(&name))?;
    let stack = Stack::builder()
        .ipv4(net.stack_v4(), net.prefix_len_v4())
        .mac(net.stack_mac())
        .start(link)?;
    net.wait_link_up(LINK_UP_TIMEOUT)?;
    let addr = SocketAddr::new(net.stack_v4().into(), 7);
    let listener = TcpListener::bind(&stack, addr).await?;
    println!("server: listening on {addr}; the kernel connects {CLIENTS} times");
    let server = tokio::spawn(serve(listener, CLIENTS));
    // The kernel's clients are blocking sockets: they connect from here (the engine answers
    // the handshakes by itself) and talk on a thread of their own, never on the runtime.
    let mut conns = Vec::new();
    for _ in 0..CLIENTS {
        conns.push(peer::tcp_connect(
            net.ns(),
            addr,
            None,
            Duration::from_secs(5),
        )?);
    }
    let clients = std::thread::spawn(move || -> std::io::Result<()> {
        for (i, mut k) in conns.into_iter().enumerate() {
            k.set_read_timeout(Some(Duration::from_secs(10)))?;
            k.write_all(&message(i))?;
            k.shutdown(std::net::Shutdown::Write)?;
            let mut back = Vec::new();
            k.read_to_end(&mut back)?;
            assert_eq!(back, message(i), "echo differs");
        }
        Ok(())
    });
    server.await??;
    clients.join().expect("kernel clients")?;
    stack.stop(Duration::from_secs(1));
    Ok(())
}

/// Client tasks on a second engine connect over the in-memory link.
async fn over_memory() -> Result<(), Box<dyn std::error::Error>> {
    let (a, b) = MemoryLink::pair(1500);
    let server_ip = Ipv4Addr::new(10, 0, 0, 1);
    let server_stack = Stack::builder()
        .ipv4(server_ip, 24)
        .mac([2, 0, 0, 0, 0, 1])
        .start(a)?;
    let client_stack = Stack::builder()
        .ipv4(Ipv4Addr::new(10, 0, 0, 2), 24)
        .start(b)?;
    let addr = SocketAddr::new(server_ip.into(), 7);
    let listener = TcpListener::bind(&server_stack, addr).await?;
    println!("server: listening on {addr}; {CLIENTS} client tasks connect");
    let server = tokio::spawn(serve(listener, CLIENTS));
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let stack = client_stack.clone();
        clients.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&stack, addr).await?;
            s.write_all(&message(i)).await?;
            s.shutdown().await?;
            let mut back = Vec::new();
            s.read_to_end(&mut back).await?;
            assert_eq!(back, message(i), "echo differs");
            Ok::<(), std::io::Error>(())
        }));
    }
    for client in clients {
        client.await.expect("client task")?;
    }
    server.await??;
    Ok(())
}
