//! Ports a test holds on 127.0.0.1.

/// A port on 127.0.0.1 where nothing listens, held for as long as this value lives: a
/// connection to it is refused, and no other socket can take it meanwhile (another
/// test's server, or an outgoing connection's local end). A port found free and let go
/// at once is free only at that instant; whatever binds it next would answer in place
/// of the dead upstream a test meant.
#[derive(Debug)]
pub struct RefusedPort {
    /// Bound without listening, and without address reuse; kept only to hold the port.
    _socket: tokio::net::TcpSocket,
    port: u16,
}

impl RefusedPort {
    /// A port the OS picks, held until this value is dropped.
    pub fn hold() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0");
        let port = socket.local_addr().expect("bound address").port();
        Self {
            _socket: socket,
            port,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`: an upstream that is down.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_held_port_refuses_connections_and_cannot_be_taken() {
        let dead = RefusedPort::hold();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], dead.port()));
        let connected = tokio::net::TcpStream::connect(addr).await;
        assert_eq!(
            connected.map(drop).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionRefused)
        );
        // Neither a server nor a socket bound the way an outgoing connection binds its
        // local port takes it.
        assert_eq!(
            std::net::TcpListener::bind(addr)
                .map(drop)
                .map_err(|e| e.kind()),
            Err(std::io::ErrorKind::AddrInUse),
            "another server could listen on the held port"
        );
        let other = tokio::net::TcpSocket::new_v4().expect("socket");
        assert_eq!(
            other.bind(addr).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::AddrInUse)
        );
    }
}
