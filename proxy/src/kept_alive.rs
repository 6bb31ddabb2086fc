//! The shadow copies' kept-alive connections.
//!
//! pingora's connection pool gives every connection returned to it a task of its own,
//! which watches it while it is idle so that one its server closes is dropped at once.
//! For a copy that is a task spawned, polled and woken, besides the pool's locks and
//! lists, on every request a shadowed route serves. Copies keep their idle connections
//! here instead, and test one as it is taken, the test pingora's pool also makes then: a
//! connection its server closed, or that holds bytes nobody asked for, is dropped and the
//! next one tried. [`KeptAlive::sweep`], run now and then by the shadow worker, drops
//! the idle connections their servers closed meanwhile, so none lingers half-closed.

use std::collections::VecDeque;
use std::sync::Mutex;

use futures_util::FutureExt;
use pingora::protocols::Stream;
use tokio::io::AsyncReadExt;

/// Idle connections, each with its peer's reuse key; at most `capacity`.
pub struct KeptAlive {
    idle: Mutex<VecDeque<(u64, Stream)>>,
    capacity: usize,
}

impl std::fmt::Debug for KeptAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptAlive")
            .field("idle", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl KeptAlive {
    /// Room for `capacity` idle connections, at least one.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            idle: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
        }
    }

    /// An idle connection to the peer of `key` that is still open, the most recently
    /// used first.
    pub fn take(&self, key: u64) -> Option<Stream> {
        loop {
            let mut stream = {
                let mut idle = self.idle.lock().ok()?;
                let at = idle.iter().rposition(|(k, _)| *k == key)?;
                idle.remove(at)?.1
            };
            if still_open(&mut stream) {
                return Some(stream);
            }
        }
    }

    /// Keeps `stream`, a connection to the peer of `key` done with its exchange. When
    /// `capacity` connections are idle already, the one idle longest is closed.
    pub fn keep(&self, key: u64, stream: Stream) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let oldest = match idle.len() >= self.capacity {
            true => idle.pop_front(),
            false => None,
        };
        idle.push_back((key, stream));
        drop(idle);
        drop(oldest);
    }

    /// Closes the idle connections that their servers closed or wrote to.
    pub fn sweep(&self) {
        // Each test is a read that does not wait, so the lock is held only briefly.
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain_mut(|(_, stream)| still_open(stream));
        }
    }

    /// How many connections are idle.
    pub fn len(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether an idle connection can carry a request: nothing to read, not even its end. A
/// server never speaks first on an idle HTTP/1 connection, so a byte or the end of the
/// stream means it is closed or out of step.
fn still_open(stream: &mut Stream) -> bool {
    let mut byte = [0; 1];
    // Unconstrained: tokio's cooperative budget could otherwise make a ready read pending.
    tokio::task::unconstrained(stream.read(&mut byte))
        .now_or_never()
        .is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair: the gateway's end as a pingora stream, and the server's end.
    async fn pair() -> (Stream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (client, server) = tokio::join!(TcpStream::connect(address), listener.accept());
        let client = client.expect("connect");
        let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(client));
        (stream, server.expect("accept").0)
    }

    /// Waits until the gateway's end has seen what its server did.
    async fn settle() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn connections_are_taken_back_by_their_peer_most_recent_first() {
        let kept = KeptAlive::new(4);
        let (a, _a) = pair().await;
        let (b, _b) = pair().await;
        let (c, _c) = pair().await;
        let ids = [a.id(), b.id(), c.id()];
        kept.keep(1, a);
        kept.keep(2, b);
        kept.keep(1, c);
        assert_eq!(kept.take(1).map(|s| s.id()), Some(ids[2]));
        assert_eq!(kept.take(1).map(|s| s.id()), Some(ids[0]));
        assert!(kept.take(1).is_none(), "no third connection to peer 1");
        assert_eq!(kept.take(2).map(|s| s.id()), Some(ids[1]));
        assert!(kept.is_empty());
    }

    #[tokio::test]
    async fn a_connection_its_server_closed_or_wrote_to_is_not_taken() {
        let kept = KeptAlive::new(4);
        let (open, _server) = pair().await;
        let open_id = open.id();
        kept.keep(1, open);
        let (closed, server) = pair().await;
        kept.keep(1, closed);
        drop(server);
        let (chatty, mut server) = pair().await;
        kept.keep(1, chatty);
        server.write_all(b"HTTP/1.1 408").await.expect("write");
        settle().await;
        assert_eq!(kept.take(1).map(|s| s.id()), Some(open_id));
        assert!(kept.is_empty(), "the other two were dropped on the way");
    }

    #[tokio::test]
    async fn beyond_capacity_the_connection_idle_longest_is_closed() {
        let kept = KeptAlive::new(2);
        let (first, mut first_server) = pair().await;
        let (second, _second_server) = pair().await;
        let (third, _third_server) = pair().await;
        kept.keep(1, first);
        kept.keep(1, second);
        kept.keep(1, third);
        assert_eq!(kept.len(), 2);
        let mut byte = [0; 1];
        let read = first_server.read(&mut byte).await.expect("read");
        assert_eq!(read, 0, "the first connection was closed");
    }

    #[tokio::test]
    async fn room_for_none_still_keeps_one() {
        let kept = KeptAlive::new(0);
        let (stream, _server) = pair().await;
        let id = stream.id();
        kept.keep(1, stream);
        assert_eq!(kept.take(1).map(|s| s.id()), Some(id));
    }

    #[tokio::test]
    async fn a_sweep_closes_what_servers_closed_and_keeps_the_rest() {
        let kept = KeptAlive::new(4);
        let (open, _server) = pair().await;
        let open_id = open.id();
        let (closed, server) = pair().await;
        kept.keep(1, closed);
        kept.keep(1, open);
        drop(server);
        settle().await;
        kept.sweep();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept.take(1).map(|s| s.id()), Some(open_id));
    }
}
