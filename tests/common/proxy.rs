//! A TCP proxy between a worker (or relay) and its server, which a test can
//! cut, restore, black-hole or silence: the network faults a real server
//! cannot show by being killed.

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
        let mut proxy = Proxy {
            addr: "127.0.0.1:0".parse().unwrap(),
            upstream: host_port(url, default_port),
            running: None,
            silent: tokio::sync::watch::Sender::new(Silence::default()),
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

    /// Forwards again, on the same address.
    pub async fn restore(&mut self) {
        self.listen(true).await;
    }

    /// Accepts connections, forwarding them to the server or not.
    async fn listen(&mut self, forward: bool) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let upstream = self.upstream.clone();
        let silent = self.silent.subscribe();
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
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
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
