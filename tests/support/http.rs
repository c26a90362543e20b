//! A plain HTTP/1.0 `GET` to a server a test started on a loopback port, retried until the
//! answer says what the test waits for: a sandbox, slirp4netns or a runtime takes a while to
//! start listening, and slirp4netns accepts and closes connections until the command does.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// The response to `GET PATH` (with its leading `/`) on 127.0.0.1:PORT, retried until it
/// contains `want`; panics with the last answer once `patience` has passed.
pub fn fetch_until(port: u16, path: &str, want: &str, patience: Duration) -> String {
    let deadline = Instant::now() + patience;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if response.contains(want) {
                return response;
            }
            last = response;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no {want:?} from 127.0.0.1:{port}{path} within {patience:?}; last answer: {last:?}");
}
