//! A recording proxy between the client and Prism: it forwards each request
//! and keeps what Prism said about it (status and `sl-violations` header),
//! since the client rightly has no reason to expose response headers.

use super::http::{read_request, write_response, Server};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub target: String,
    pub request_body: String,
    pub status: u16,
    pub violations: Option<String>,
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Exchange>>>,
    _server: Server,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let log = Arc::new(Mutex::new(Vec::new()));
        let server = {
            let log = log.clone();
            Server::start("the proxy", move |conn, _| forward(upstream, conn, &log))
        };
        Proxy {
            addr: server.addr,
            log,
            _server: server,
        }
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn forward(upstream: SocketAddr, conn: TcpStream, log: &Mutex<Vec<Exchange>>) {
    let Some(req) = read_request(&conn) else {
        return;
    };
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = up.set_read_timeout(Some(Duration::from_secs(20)));
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target());
    for (k, v) in &req.headers {
        let skip = ["connection", "keep-alive", "content-length", "host"];
        if !skip.iter().any(|s| k.eq_ignore_ascii_case(s)) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!("Host: {upstream}\r\n"));
    head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    head.push_str("Connection: close\r\n\r\n");
    if up.write_all(head.as_bytes()).is_err() || up.write_all(&req.body).is_err() {
        return;
    }
    let mut raw = Vec::new();
    // Prism closes after answering (Connection: close); a hang ends at the
    // read time-out and the client sees a dropped connection.
    let _ = up.read_to_end(&mut raw);
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut headers = Vec::new();
    let mut violations = None;
    let mut chunked = false;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("sl-violations") {
            violations = Some(v.to_string());
        }
        if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
            continue;
        }
        let hop = ["connection", "keep-alive", "content-length"];
        if !hop.iter().any(|h| k.eq_ignore_ascii_case(h)) {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    if chunked {
        body = dechunk(&body);
    }
    log.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Exchange {
            method: req.method.clone(),
            path: req.path.clone(),
            target: req.target(),
            request_body: String::from_utf8_lossy(&req.body).into_owned(),
            status,
            violations,
        });
    write_response(&conn, status, &headers, &body);
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || data.len() < end + 2 + size {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[(end + 4 + size).min(data.len())..];
    }
    out
}
