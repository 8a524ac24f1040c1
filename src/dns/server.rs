//! The server: hickory's `ServerFuture` for TCP, troll's own loop over
//! hickory's UDP stream (so junk is counted, not logged), on a
//! current-thread runtime in a thread of its own.

use super::zone::serial_after;
use super::{DnsError, Resolution, ZoneData};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::StreamExt;
use hickory_proto::error::ProtoErrorKind;
use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::BinDecodable;
use hickory_proto::udp::UdpStream;
use hickory_proto::xfer::{BufDnsStreamHandle, DnsStreamHandle, SerialMessage};
use hickory_server::authority::{MessageRequest, MessageResponseBuilder};
use hickory_server::server::{
    Protocol, Request, RequestHandler, ResponseHandle, ResponseHandler, ResponseInfo,
};
use hickory_server::ServerFuture;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// How often, at most, the server logs a summary of the bad queries.
pub const BAD_QUERY_SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// How long an idle TCP client may keep its connection open.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// The EDNS UDP payload size this server offers (DNS flag day 2020).
pub(super) const EDNS_MAX_PAYLOAD: u16 = 1232;

/// A query the server did not answer normally: what a junk flood is made
/// of. Counted, and summarised in the log at most every
/// [`BAD_QUERY_SUMMARY_EVERY`], instead of a log line per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadQuery {
    /// Not even a DNS header: dropped.
    Undecodable,
    /// A header, then garbage: answered FORMERR.
    Malformed,
    /// A response, not a query: dropped (answering would reflect).
    Response,
    /// From port 0 or an unspecified or broadcast address: dropped.
    BadSource,
    /// An opcode other than QUERY: answered NOTIMP.
    NotImplemented,
    /// EDNS version above 0: answered BADVERS.
    BadEdnsVersion,
    /// A name outside the served zones: answered REFUSED.
    Refused,
    /// The answer could not be sent.
    SendFailed,
}

impl BadQuery {
    /// Every kind, in the order they are reported.
    pub const ALL: [BadQuery; 8] = [
        BadQuery::Undecodable,
        BadQuery::Malformed,
        BadQuery::Response,
        BadQuery::BadSource,
        BadQuery::NotImplemented,
        BadQuery::BadEdnsVersion,
        BadQuery::Refused,
        BadQuery::SendFailed,
    ];

    /// The name in logs, counters files and `troll status`.
    pub fn name(self) -> &'static str {
        match self {
            BadQuery::Undecodable => "undecodable",
            BadQuery::Malformed => "malformed",
            BadQuery::Response => "response",
            BadQuery::BadSource => "bad_source",
            BadQuery::NotImplemented => "not_implemented",
            BadQuery::BadEdnsVersion => "bad_edns_version",
            BadQuery::Refused => "refused",
            BadQuery::SendFailed => "send_failed",
        }
    }
}

/// The bad queries seen so far, by kind; shared by the server's tasks and
/// [`DnsServer::bad_queries`].
#[derive(Debug, Default)]
struct BadQueries {
    counts: [AtomicU64; BadQuery::ALL.len()],
}

impl BadQueries {
    fn count(&self, kind: BadQuery) {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The kinds seen at least once, with their counts.
    fn snapshot(&self) -> BTreeMap<String, u64> {
        BadQuery::ALL
            .iter()
            .map(|&kind| (kind, self.counts[kind as usize].load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .map(|(kind, n)| (kind.name().to_owned(), n))
            .collect()
    }

    fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// One log line for a set of counts: `kind=n kind=n`.
pub fn bad_query_summary(counts: &BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(kind, n)| format!("{kind}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The data the server answers from, shared between the handler and
/// [`DnsServer::update`]; the inner `Arc` is swapped whole.
type SharedData = Arc<RwLock<Arc<ZoneData>>>;

/// hickory's request handler: takes a snapshot of the data, resolves the
/// question, lets hickory encode the response.
#[derive(Debug, Clone)]
struct Handler {
    data: SharedData,
    bad: Arc<BadQueries>,
}

impl Handler {
    fn snapshot(&self) -> Arc<ZoneData> {
        Arc::clone(&self.data.read().unwrap_or_else(PoisonError::into_inner))
    }

    async fn respond<R: ResponseHandler>(&self, request: &Request, mut handle: R) -> ResponseInfo {
        let mut builder = MessageResponseBuilder::from_message_request(request);
        let mut header = Header::response_from_request(request.header());

        if let Some(request_edns) = request.edns() {
            let mut edns = Edns::new();
            edns.set_version(0);
            edns.set_max_payload(request_edns.max_payload().clamp(512, EDNS_MAX_PAYLOAD));
            if request_edns.version() > 0 {
                self.bad.count(BadQuery::BadEdnsVersion);
                header.set_response_code(ResponseCode::BADVERS);
                edns.set_rcode_high(ResponseCode::BADVERS.high());
                builder.edns(edns);
                return self
                    .send(&mut handle, builder.build_no_records(header))
                    .await;
            }
            builder.edns(edns);
        }

        let query = request.query();
        let resolution = if request.message_type() != MessageType::Query {
            // hickory's TCP path drops responses before the handler, and
            // the UDP loop does too: this is not reached from the network.
            self.bad.count(BadQuery::Response);
            Resolution::error(ResponseCode::FormErr)
        } else if request.op_code() != OpCode::Query {
            self.bad.count(BadQuery::NotImplemented);
            Resolution::error(ResponseCode::NotImp)
        } else {
            self.snapshot().resolve(
                query.original().name(),
                query.query_type(),
                query.query_class(),
            )
        };
        if resolution.response_code == ResponseCode::Refused {
            self.bad.count(BadQuery::Refused);
        }
        debug!(
            src = %request.src(),
            protocol = %request.protocol(),
            query = %query,
            rcode = %resolution.response_code,
            answers = resolution.answers.len(),
            "DNS query"
        );
        header.set_response_code(resolution.response_code);
        header.set_authoritative(resolution.authoritative);
        let response = builder.build(
            header,
            resolution.answers.iter(),
            std::iter::empty(),
            resolution.authority.iter(),
            std::iter::empty(),
        );
        self.send(&mut handle, response).await
    }

    /// One datagram from the UDP loop: decoded here, so that junk is
    /// counted rather than logged.
    async fn respond_raw(&self, bytes: &[u8], src: SocketAddr, mut stream: BufDnsStreamHandle) {
        match MessageRequest::from_bytes(bytes) {
            Ok(message) if message.message_type() == MessageType::Response => {
                self.bad.count(BadQuery::Response);
            }
            Ok(message) => {
                let handle = ResponseHandle::new(src, stream, Protocol::Udp);
                self.respond(&Request::new(message, src, Protocol::Udp), handle)
                    .await;
            }
            Err(error) => match *error.kind {
                ProtoErrorKind::FormError { header, .. } => {
                    self.bad.count(BadQuery::Malformed);
                    // As hickory does: FORMERR with the query's id.
                    if header.message_type() == MessageType::Query {
                        let reply = Message::error_msg(
                            header.id(),
                            header.op_code(),
                            ResponseCode::FormErr,
                        );
                        let sent = reply
                            .to_vec()
                            .and_then(|bytes| stream.send(SerialMessage::new(bytes, src)));
                        if let Err(error) = sent {
                            self.bad.count(BadQuery::SendFailed);
                            debug!(%error, "cannot send a DNS FORMERR");
                        }
                    }
                }
                _ => self.bad.count(BadQuery::Undecodable),
            },
        }
    }

    async fn send<'a, R: ResponseHandler>(
        &self,
        handle: &mut R,
        response: hickory_server::authority::MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> ResponseInfo {
        match handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                self.bad.count(BadQuery::SendFailed);
                debug!(%error, "cannot send a DNS response");
                let mut header = Header::new();
                header.set_response_code(ResponseCode::ServFail);
                header.into()
            }
        }
    }
}

/// Whether an answer to `src` could arrive anywhere (hickory's rule).
fn answerable(src: SocketAddr) -> bool {
    let ip_ok = match src.ip() {
        IpAddr::V4(ip) => !ip.is_unspecified() && !ip.is_broadcast(),
        IpAddr::V6(ip) => !ip.is_unspecified(),
    };
    src.port() != 0 && ip_ok
}

/// The UDP side: hickory's datagram stream, each datagram decoded and
/// judged by the handler, so every bad one is counted and none is logged.
/// (TCP goes through hickory's `ServerFuture`; its per-message warnings are
/// filtered out of the log, see `main.rs`.)
async fn serve_udp(socket: tokio::net::UdpSocket, handler: Arc<Handler>) {
    // The address is unused: each answer goes to its query's source.
    let (mut stream, stream_handle) =
        UdpStream::with_bound(socket, SocketAddr::from(([127, 255, 255, 254], 0)));
    let mut tasks = JoinSet::new();
    while let Some(message) = stream.next().await {
        while tasks.try_join_next().is_some() {}
        let message = match message {
            Ok(message) => message,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::NotConnected | io::ErrorKind::ConnectionAborted
                ) =>
            {
                warn!(%error, "the DNS UDP socket failed; no more UDP answers");
                return;
            }
            Err(error) => {
                debug!(%error, "DNS UDP receive error");
                continue;
            }
        };
        let src = message.addr();
        if !answerable(src) {
            handler.bad.count(BadQuery::BadSource);
            continue;
        }
        let handler = Arc::clone(&handler);
        let stream = stream_handle.with_remote_addr(src);
        tasks.spawn(async move { handler.respond_raw(message.bytes(), src, stream).await });
    }
}

/// Logs the bad queries at most every [`BAD_QUERY_SUMMARY_EVERY`], and
/// only when there were new ones.
async fn summarise_bad_queries(bad: Arc<BadQueries>) {
    let mut interval = tokio::time::interval(BAD_QUERY_SUMMARY_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = 0;
    loop {
        interval.tick().await;
        let total = bad.total();
        if total > reported {
            info!(
                "DNS: {} bad quer{} in the last {} s ({total} since start): {}",
                total - reported,
                if total - reported == 1 { "y" } else { "ies" },
                BAD_QUERY_SUMMARY_EVERY.as_secs(),
                bad_query_summary(&bad.snapshot())
            );
            reported = total;
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.respond(request, response_handle).await
    }
}

/// A running authoritative server for the reverse zones, on UDP and TCP.
///
/// It runs hickory on a current-thread tokio runtime in a thread of its
/// own, so synchronous code can own it. Dropping it stops it, like
/// [`DnsServer::shutdown`].
#[derive(Debug)]
pub struct DnsServer {
    local_addr: SocketAddr,
    data: SharedData,
    bad: Arc<BadQueries>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The server's UDP and TCP sockets, bound but not yet served.
///
/// Binding needs privileges (port 53: CAP_NET_BIND_SERVICE) that `troll
/// serve` drops before it starts any thread, so it binds with
/// [`DnsServer::bind`], drops them, and then [`BoundDns::start`]s the
/// server thread, which inherits only the reduced set.
#[derive(Debug)]
pub struct BoundDns {
    udp: UdpSocket,
    tcp: TcpListener,
    local_addr: SocketAddr,
}

impl BoundDns {
    /// The address the sockets are bound to, with the port they got.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts answering from `data` on a thread of its own. Returns once
    /// the sockets are registered, so a query sent after it returns is
    /// answered.
    pub fn start(self, data: ZoneData) -> Result<DnsServer, DnsError> {
        let BoundDns {
            udp,
            tcp,
            local_addr,
        } = self;
        let start_error = |source| DnsError::Start {
            addr: local_addr,
            source,
        };
        udp.set_nonblocking(true).map_err(start_error)?;
        tcp.set_nonblocking(true).map_err(start_error)?;

        let zones = data.zone_origins();
        let data: SharedData = Arc::new(RwLock::new(Arc::new(data)));
        let bad = Arc::new(BadQueries::default());
        let handler = Handler {
            data: Arc::clone(&data),
            bad: Arc::clone(&bad),
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("troll-dns".to_owned())
            .spawn(move || serve(handler, udp, tcp, stop_rx, ready_tx))
            .map_err(start_error)?;
        let ready = ready_rx.recv().unwrap_or_else(|_| {
            Err(io::Error::other(
                "the DNS server thread ended during start-up",
            ))
        });
        if let Err(source) = ready {
            // The thread has returned or is about to; its result adds nothing.
            let _ = thread.join();
            return Err(start_error(source));
        }
        info!(addr = %local_addr, zones = ?zones, "serving reverse DNS");
        Ok(DnsServer {
            local_addr,
            data,
            bad,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl DnsServer {
    /// Binds UDP and TCP on `addr` (port 0 picks a free port, the same for
    /// both; see [`BoundDns::local_addr`]) without serving yet.
    pub fn bind(addr: SocketAddr) -> Result<BoundDns, DnsError> {
        let (udp, tcp) = bind_pair(addr)?;
        let local_addr = udp
            .local_addr()
            .map_err(|source| DnsError::bind("UDP", addr, source))?;
        Ok(BoundDns {
            udp,
            tcp,
            local_addr,
        })
    }

    /// Binds UDP and TCP on `addr` and starts answering from `data`:
    /// [`DnsServer::bind`] then [`BoundDns::start`].
    pub fn start(addr: SocketAddr, data: ZoneData) -> Result<DnsServer, DnsError> {
        DnsServer::bind(addr)?.start(data)
    }

    /// The address the server listens on, with the port it got.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bad queries so far, by [`BadQuery::name`] (kinds seen at least
    /// once).
    pub fn bad_queries(&self) -> BTreeMap<String, u64> {
        self.bad.snapshot()
    }

    /// Replaces every record without a restart. Queries answered after it
    /// returns see the new data. The SOA serial is made to increase (if
    /// `data`'s serial is not after the current one, it becomes the current
    /// one plus one), so secondaries notice.
    pub fn update(&self, data: ZoneData) {
        let mut data = data;
        let mut current = self.data.write().unwrap_or_else(PoisonError::into_inner);
        if !serial_after(data.serial, current.serial) {
            data.serial = current.serial.wrapping_add(1);
        }
        info!(
            serial = data.serial,
            records = data.entries.len(),
            zones = ?data.zone_origins(),
            "DNS records updated"
        );
        *current = Arc::new(data);
    }

    /// Stops serving, closes the sockets and joins the server thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            // An error means the thread has already ended: nothing to stop.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!(addr = %self.local_addr, "the DNS server thread panicked");
            }
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl fmt::Display for DnsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DNS server on {} (UDP and TCP)", self.local_addr)
    }
}

/// Binds UDP and TCP on the same address and port. With port 0 the kernel
/// picks the UDP port; if that port is taken for TCP, it tries again.
fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    const ATTEMPTS: usize = 16;
    let mut attempt = 1;
    loop {
        let udp = UdpSocket::bind(addr).map_err(|source| DnsError::bind("UDP", addr, source))?;
        let port = udp
            .local_addr()
            .map_err(|source| DnsError::bind("UDP", addr, source))?
            .port();
        let tcp_addr = SocketAddr::new(addr.ip(), port);
        match TcpListener::bind(tcp_addr) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source)
                if addr.port() == 0
                    && attempt < ATTEMPTS
                    && source.kind() == io::ErrorKind::AddrInUse =>
            {
                attempt += 1;
            }
            Err(source) => return Err(DnsError::bind("TCP", tcp_addr, source)),
        }
    }
}

/// The server thread: a current-thread runtime running hickory until the
/// stop signal (or until the `DnsServer` is dropped).
fn serve(
    handler: Handler,
    udp: UdpSocket,
    tcp: TcpListener,
    stop: oneshot::Receiver<()>,
    ready: mpsc::Sender<io::Result<()>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    runtime.block_on(async move {
        let bad = Arc::clone(&handler.bad);
        let mut server = ServerFuture::new(handler.clone());
        let handler = Arc::new(handler);
        let registered = tokio::net::UdpSocket::from_std(udp)
            .and_then(|udp| server.register_listener_std(tcp, TCP_TIMEOUT).map(|()| udp));
        let udp = match registered {
            Ok(udp) => {
                // start() waits for this message; if it is gone, so is the caller.
                let _ = ready.send(Ok(()));
                udp
            }
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        tokio::select! {
            // Err means the DnsServer was dropped without a signal: stop too.
            _ = stop => {}
            () = serve_udp(udp, handler) => {}
            () = summarise_bad_queries(bad) => {}
        }
        if let Err(error) = server.shutdown_gracefully().await {
            warn!(%error, "the DNS server stopped with an error");
        }
    });
}
