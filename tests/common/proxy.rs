//! A TCP proxy between a worker (or relay) and its server, which a test can
//! cut, restore, black-hole or silence: the network faults a real server
//! cannot show by being killed.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A TCP proxy to a server that the test can cut (closing every connection
/// and refusing new ones), restore, black-hole (cut, then accept connections
/// and never answer), silence (every connection open and nothing going
/// through, as when a network drops packets) or strand (the connections open
/// now go silent, new ones go through, as when a NAT or a firewall forgets
/// its flows).
pub struct Proxy {
    addr: std::net::SocketAddr,
    upstream: String,
    running: Option<tokio::task::JoinHandle<()>>,
    silent: tokio::sync::watch::Sender<Silence>,
    /// How long each chunk takes to go through, each way.
    one_way: Duration,
}

/// Which links are silent: every one, or those opened before `since`.
#[derive(Clone, Copy, Default)]
struct Silence {
    all: bool,
    since: u64,
}

impl Proxy {
    /// A proxy to the server of `url` (`scheme://[user@]host[:port]/...`),
    /// `default_port` when the URL names none.
    pub async fn start(url: &str, default_port: u16) -> Proxy {
        Self::slow(url, default_port, Duration::ZERO).await
    }

    /// A proxy that delays everything `one_way` in each direction: a server
    /// further away (a round trip costs twice `one_way`).
    pub async fn slow(url: &str, default_port: u16, one_way: Duration) -> Proxy {
        let mut proxy = Proxy {
            addr: "127.0.0.1:0".parse().unwrap(),
            upstream: host_port(url, default_port),
            running: None,
            silent: tokio::sync::watch::Sender::new(Silence::default()),
            one_way,
        };
        proxy.restore().await;
        proxy
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (auth, rest) = rest.rsplit_once('@').map_or(("", rest), |(a, r)| (a, r));
        let path = rest.find('/').map_or("", |at| &rest[at..]);
        let at = if auth.is_empty() { "" } else { "@" };
        format!("{scheme}://{auth}{at}{}{path}", self.addr)
    }

    /// Forwards again, on the same address, on new connections (after a cut,
    /// a black hole or a silence).
    pub async fn restore(&mut self) {
        self.cut().await;
        self.silent.send_modify(|s| {
            s.all = false;
            s.since += 1;
        });
        self.listen(true).await;
    }

    /// Accepts connections, forwarding them to the server or not.
    async fn listen(&mut self, forward: bool) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let upstream = self.upstream.clone();
        let silent = self.silent.subscribe();
        let one_way = self.one_way;
        self.running = Some(tokio::spawn(async move {
            let mut links = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let mut silent = silent.clone();
                let opened = silent.borrow().since;
                links.spawn(async move {
                    if !forward {
                        let _held = client;
                        return std::future::pending::<()>().await;
                    }
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let silenced = tokio::select! {
                            () = pass_through(&mut client, &mut server, one_way) => false,
                            _ = silent.wait_for(|s| s.all || s.since != opened) => true,
                        };
                        if silenced {
                            // Both ends stay open; nothing goes through.
                            let _held = (client, server);
                            std::future::pending::<()>().await;
                        }
                    }
                });
            }
            // Dropping `links` (when this task is aborted) closes every link.
        }));
    }

    /// Closes every connection and refuses new ones.
    pub async fn cut(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
            let _ = running.await;
        }
    }

    /// Cuts every connection, then accepts new ones and never answers them.
    pub async fn black_hole(&mut self) {
        self.cut().await;
        self.listen(false).await;
    }

    /// Stops forwarding on every connection, leaving them all open (new ones
    /// are silent too).
    pub fn silence(&self) {
        self.silent.send_modify(|s| s.all = true);
    }

    /// Stops forwarding on the connections open now, leaving them open; new
    /// ones go through.
    pub fn strand(&self) {
        self.silent.send_modify(|s| s.since += 1);
    }
}

/// Copies both ways until either side closes, each chunk `one_way` late.
async fn pass_through(client: &mut TcpStream, server: &mut TcpStream, one_way: Duration) {
    if one_way.is_zero() {
        let _ = tokio::io::copy_bidirectional(client, server).await;
        return;
    }
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    tokio::select! {
        () = delayed(client_read, server_write, one_way) => {}
        () = delayed(server_read, client_write, one_way) => {}
    }
}

/// Copies `from` to `to`, each chunk written `one_way` after it was read
/// (reading goes on meanwhile: a delay, not a slower link).
async fn delayed(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    one_way: Duration,
) {
    let mut in_transit = std::collections::VecDeque::<(tokio::time::Instant, Vec<u8>)>::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let due = in_transit.front().map(|(at, _)| *at);
        tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => in_transit.push_back((tokio::time::Instant::now() + one_way, buf[..n].to_vec())),
            },
            () = async { tokio::time::sleep_until(due.unwrap()).await }, if due.is_some() => {
                let (_, chunk) = in_transit.pop_front().unwrap();
                if to.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The server's `host:port` in `url`, `default_port` when it names none.
fn host_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").unwrap().1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split(['/', '?']).next().unwrap();
    if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    }
}
