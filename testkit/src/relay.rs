//! A TCP relay a test owns between a client and a real server, to cut a dependency
//! (the new backend, Redis, Postgres) without touching the machine's shared servers.

use std::time::{Duration, Instant};

/// How a [`Relay`] treats its link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Every byte passes.
    Up,
    /// Like a stopped server: relayed connections are closed and new ones refused.
    Refused,
    /// Like a network partition: no byte passes on any connection, open or new, and
    /// none is closed, so clients wait for their own timeouts.
    Partitioned,
}

/// A TCP relay the test owns between a client and a real server (the new backend,
/// Redis, Postgres), whose link the test can cut without touching the server: refused
/// ([`Relay::cut`]) or partitioned ([`Relay::partition`]), then restored on the same
/// port ([`Relay::restore`]).
#[derive(Debug)]
pub struct Relay {
    pub addr: std::net::SocketAddr,
    link: tokio::sync::watch::Sender<Link>,
}

impl Relay {
    /// A relay to `target` (`host:port`) on a free local port.
    pub async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind relay");
        let addr = listener.local_addr().expect("addr");
        let (link, watch) = tokio::sync::watch::channel(Link::Up);
        tokio::spawn(relay_listener(listener, target.to_owned(), watch));
        Self { addr, link }
    }

    /// The relay's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Closes every relayed connection and refuses new ones, like a stopped server.
    pub fn cut(&self) {
        self.link.send_replace(Link::Refused);
    }

    /// [`Relay::cut`], returning once new connections are refused (the listener is
    /// unbound; its relayed connections are closing).
    pub async fn cut_until_refused(&self) {
        self.cut();
        let started = Instant::now();
        while tokio::net::TcpStream::connect(self.addr).await.is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "relay still accepting"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets no byte through, on open connections or new ones, closing none: like a
    /// network partition. What was sent meanwhile arrives once it is restored.
    pub fn partition(&self) {
        self.link.send_replace(Link::Partitioned);
    }

    /// Relays again, on the same port: after a partition, held bytes are delivered; after
    /// a refusal, clients connect anew.
    pub async fn restore(&self) {
        self.link.send_replace(Link::Up);
        // Once the listener is bound again, connections are accepted.
        let started = Instant::now();
        while tokio::net::TcpStream::connect(self.addr).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "relay rebind");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Accepts connections while the link is up or partitioned; stops listening while it is
/// refused and listens again on the same address when it is restored. Ends when the
/// relay is dropped.
async fn relay_listener(
    mut listener: tokio::net::TcpListener,
    target: String,
    mut link: tokio::sync::watch::Receiver<Link>,
) {
    let addr = listener.local_addr().expect("addr");
    loop {
        let state = *link.borrow_and_update();
        if state == Link::Refused {
            drop(listener);
            // Bound but not listening: connections are refused, and no other socket
            // (another test's listener, any outgoing connection) can take the port until
            // it is restored.
            let held = hold(addr).await;
            if link.wait_for(|l| *l != Link::Refused).await.is_err() {
                return;
            }
            listener = held.listen(1024).expect("listen on the held port");
            continue;
        }
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((inbound, _)) = accepted {
                    tokio::spawn(relayed(inbound, target.clone(), link.clone()));
                }
            }
            changed = link.changed() => if changed.is_err() { return },
        }
    }
}

/// A socket bound to `addr` without listening, once the relay's connections let it bind.
async fn hold(addr: std::net::SocketAddr) -> tokio::net::TcpSocket {
    let started = Instant::now();
    loop {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        // Relayed connections still closing, and their TIME_WAIT, share the port.
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        match socket.bind(addr) {
            Ok(()) => return socket,
            Err(error) => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "relay port {addr} held elsewhere: {error}"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// One relayed connection. Bytes pass while the link is up; during a partition they are
/// held (nothing is lost or closed) and delivered once it heals, as TCP would; a refusal
/// closes both ends.
async fn relayed(
    inbound: tokio::net::TcpStream,
    target: String,
    mut link: tokio::sync::watch::Receiver<Link>,
) {
    // A connection opened during a partition waits for it to heal.
    match link.wait_for(|l| *l != Link::Partitioned).await {
        Ok(state) if *state == Link::Up => {}
        _ => return,
    }
    let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
        return;
    };
    let (from_client, to_client) = inbound.into_split();
    let (from_server, to_server) = outbound.into_split();
    tokio::select! {
        _ = pump(from_client, to_server, link.clone()) => {}
        _ = pump(from_server, to_client, link.clone()) => {}
        _ = link.wait_for(|l| *l == Link::Refused) => {}
    }
}

/// Copies one direction, holding what it reads while the link is partitioned.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut link: tokio::sync::watch::Receiver<Link>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if link.wait_for(|l| *l == Link::Up).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server answering each connection's first read with the same bytes.
    async fn echo() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 64];
                    if let Ok(n) = stream.read(&mut buffer).await {
                        let _ = stream.write_all(&buffer[..n]).await;
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(addr: std::net::SocketAddr) -> std::io::Result<Vec<u8>> {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(b"ping").await?;
        let mut answer = vec![0u8; 4];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn a_cut_refuses_and_keeps_the_port_until_restored() {
        // Nothing relayed before the cut: no closing connection shares the port then.
        let relay = Relay::start(&echo().await.to_string()).await;
        relay.cut_until_refused().await;
        assert!(round_trip(relay.addr).await.is_err(), "refused while cut");
        // No other socket takes the port meanwhile: one bound the way an outgoing
        // connection binds its local port (no address reuse) is turned away.
        let other = tokio::net::TcpSocket::new_v4().expect("socket");
        let taken = other.bind(relay.addr);
        assert_eq!(
            taken.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::AddrInUse),
            "the port was free for another socket while cut"
        );
        drop(other);

        relay.restore().await;
        assert_eq!(round_trip(relay.addr).await.expect("relayed"), b"ping");
    }
}
