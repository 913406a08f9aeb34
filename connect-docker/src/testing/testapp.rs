// The test app: a statically linked HTTP server and its own health probe, for `FROM scratch` images.
// Compiled by connect_docker::testing with plain rustc; std only.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("probe") => std::process::exit(probe(args.get(2).map(String::as_str).unwrap_or(""))),
        Some("echo") => println!("{}", args[2..].join(" ")),
        Some("exit") => {
            let code: i32 = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(1);
            println!("exiting with {code}");
            std::process::exit(code);
        }
        Some("sleep") => loop {
            std::thread::park();
        },
        _ => serve(),
    }
}

fn probe(url: &str) -> i32 {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (addr, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut s = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => {
            println!("probe {url}: {e}");
            return 1;
        }
    };
    // One write: write! would send the pieces separately and the server might read only the first.
    let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes());
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    let status = reply.lines().next().unwrap_or("").to_string();
    println!("probe {url}: {status}");
    if status.contains(" 200 ") { 0 } else { 1 }
}

fn serve() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let healthy = std::env::var("TESTAPP_HEALTH").map_or(true, |v| v != "fail");
    let errors: usize = std::env::var("TESTAPP_ERRORS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let color = std::env::var("CONNECT_COLOR").unwrap_or_default();
    // Load tests count the answers by release: `/` and an `X-Version` header say which one served.
    let release = std::env::var("RELEASE").unwrap_or_default();
    for i in 0..errors {
        println!("ERROR test failure number {i}");
    }
    if std::env::var("DATABASE_URL").is_ok() {
        println!("database configured");
    }
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("bind");
    println!("listening on {port} as {color:?}");
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let req = String::from_utf8_lossy(&buf);
        let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (code, body) = match path.as_str() {
            "/api/health" if healthy => ("200 OK", "ok".to_string()),
            "/api/health" => ("500 Internal Server Error", "health check forced to fail".to_string()),
            "/api/color" => ("200 OK", color.clone()),
            "/" => ("200 OK", release.clone()),
            _ => ("404 Not Found", "no such page".to_string()),
        };
        println!("GET {path} -> {code}");
        let _ = s.write_all(format!("HTTP/1.0 {code}\r\nContent-Length: {}\r\nX-Version: {release}\r\n\r\n{body}", body.len()).as_bytes());
    }
}
