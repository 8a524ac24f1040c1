//! A fake instance metadata service that insists on IMDSv2: a session
//! token from `PUT /latest/api/token` must come with every read.

use super::http::{read_request, write_response_with};
use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "troll-test-token";

#[derive(Debug)]
pub struct FakeImds {
    pub addr: SocketAddr,
    /// (method, path, had the token) of every request.
    pub seen: Arc<Mutex<Vec<(String, String, bool)>>>,
}

impl FakeImds {
    pub fn start(values: &[(&str, &str)]) -> FakeImds {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let values: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        // The thread ends with the test process.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (values, log) = (values.clone(), log.clone());
                std::thread::spawn(move || serve(conn, &values, &log));
            }
        });
        FakeImds { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

type Seen = Mutex<Vec<(String, String, bool)>>;

fn serve(conn: std::net::TcpStream, values: &BTreeMap<String, String>, log: &Seen) {
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    while let Ok(Some(req)) = read_request(&mut reader) {
        let has_token = req.header("x-aws-ec2-metadata-token") == Some(TOKEN);
        log.lock()
            .unwrap()
            .push((req.method.clone(), req.path.clone(), has_token));
        let ttl = req
            .header("x-aws-ec2-metadata-token-ttl-seconds")
            .unwrap_or("")
            .to_string();
        let (status, body) = match (req.method.as_str(), req.path.as_str()) {
            ("PUT", "/latest/api/token") if !ttl.is_empty() => (200, TOKEN.to_string()),
            ("GET", _) if !has_token => (401, String::new()),
            ("GET", path) => match values.get(path) {
                Some(v) => (200, v.clone()),
                None => (404, String::new()),
            },
            _ => (400, String::new()),
        };
        let headers = [("x-aws-ec2-metadata-token-ttl-seconds", ttl.as_str())];
        let headers = if ttl.is_empty() {
            &[][..]
        } else {
            &headers[..]
        };
        if write_response_with(&mut writer, status, "text/plain", headers, body.as_bytes()).is_err()
        {
            break;
        }
    }
}
