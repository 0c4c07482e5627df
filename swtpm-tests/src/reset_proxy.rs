//! A TCP proxy that resets chosen connections, for the client's network-failure paths.

use std::net::{TcpListener, TcpStream};

/// A TCP proxy on loopback in front of a service that resets (RST) chosen connections: it relays the
/// client's first chunk (its TLS ClientHello) and the server's answers, and when the client writes again it
/// closes the connection with that data unread, which makes the kernel send RST (RFC 1122 §4.2.2.13).
pub struct ResetProxy {
    port: u16,
}

impl ResetProxy {
    /// Resets connection number `nth` (1-based) and every later one; relays the others whole.
    pub fn start(upstream_url: &str, nth: usize) -> ResetProxy {
        let upstream = upstream_url.trim_start_matches("https://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        let port = listener.local_addr().expect("proxy addr").port();
        std::thread::spawn(move || {
            for (n, client) in listener.incoming().map_while(Result::ok).enumerate() {
                let upstream = upstream.clone();
                std::thread::spawn(move || relay(client, &upstream, n + 1 >= nth));
            }
        });
        ResetProxy { port }
    }

    /// The proxy's https URL (the service's certificate names localhost).
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }
}

fn relay(mut client: TcpStream, upstream: &str, reset: bool) {
    use std::io::{Read, Write};
    let Ok(mut server) = TcpStream::connect(upstream) else { return };
    let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else { return };
    let back = std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = s2.read(&mut buf) {
            if n == 0 || c2.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c2.shutdown(std::net::Shutdown::Write);
    });
    let mut buf = [0u8; 16384];
    let mut chunks = 0;
    loop {
        if reset && chunks == 1 {
            // Wait for the client's next write and leave it unread: dropping the socket now sends RST.
            let _ = client.peek(&mut buf);
            let _ = server.shutdown(std::net::Shutdown::Both);
            drop(client);
            break;
        }
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                chunks += 1;
                if server.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Write);
    let _ = back.join();
}
