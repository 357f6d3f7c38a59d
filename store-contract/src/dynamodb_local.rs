//! The DynamoDB server the storage tests use: `AEGIS_DYNAMODB_ENDPOINT`, else moto's server
//! (`.ci/moto-server`), started once per test process on a free loopback port and stopped
//! when the process ends. A real server speaking the DynamoDB protocol, never an in-process
//! mock. The host's S3 and notification tests use the same server.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Keeps the server's watchdog pipe open for as long as this process lives; when the
/// process ends, the pipe closes and the watchdog stops the server.
static SERVER: OnceLock<Option<Server>> = OnceLock::new();

/// The URL, and the watchdog with its pipe.
type Server = (String, Mutex<(Child, ChildStdin)>);

/// `AEGIS_DYNAMODB_ENDPOINT`, else moto's server started once for this process.
pub fn endpoint() -> Option<String> {
    if let Ok(url) = std::env::var("AEGIS_DYNAMODB_ENDPOINT")
        && !url.is_empty()
    {
        return Some(url);
    }
    let server = SERVER.get_or_init(start_moto);
    match server {
        Some((url, _)) => Some(url.clone()),
        None => {
            assert!(
                std::env::var_os("AEGIS_REQUIRE_DYNAMODB").is_none(),
                "AEGIS_REQUIRE_DYNAMODB is set but there is no DynamoDB server: set \
                 AEGIS_DYNAMODB_ENDPOINT or install moto"
            );
            eprintln!(
                "skipping the DynamoDB run: set AEGIS_DYNAMODB_ENDPOINT or install moto \
                 (python3 -m pip install \"moto[server]\")"
            );
            None
        }
    }
}

fn start_moto() -> Option<Server> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    // moto's server, one request at a time (see .ci/moto-server); the shell waits on its
    // stdin and stops the server once it closes.
    let server = concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/moto-server");
    let script =
        format!("python3 {server} {port} >/dev/null 2>&1 & pid=$!; read _; kill $pid; wait $pid");
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdin = child.stdin.take()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let mut stdin = stdin;
            let _ = stdin.write_all(b"\n");
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((format!("http://{addr}"), Mutex::new((child, stdin))))
}
