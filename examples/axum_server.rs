//! An axum `Router` on every core, whose handlers read files with `runtime::fs`.
//!
//! axum wants every handler's future to be `Send`, and the runtime's own futures are
//! not: a read on this core's ring belongs to this core. The bridge is a task: the
//! handler spawns the read on its core with `runtime::spawn` and awaits the task's
//! `JoinHandle`, which is `Send` when the task's output is. Nothing crosses a thread:
//! the handler runs on the core that accepted its connection, the task too, and the
//! handle is awaited there at the cost of a local spawn and join.
//!
//! - `GET /` answers a page that lists the regular files of `--dir`.
//! - `GET /files/NAME` answers the bytes of the file NAME in `--dir`: 404 if there is
//!   none (or it is a directory), 400 for a name with `/` or a NUL byte in it, 403 for
//!   `.` and `..` (or a file the server may not read). Symbolic links inside `--dir`
//!   are followed, as most file servers do by default.
//!
//! `cargo run --release --example axum_server [-- --port 3000 --host 127.0.0.1 --dir . --cores N]`,
//! then `curl http://127.0.0.1:3000/` or `curl -O http://127.0.0.1:3000/files/Cargo.toml`.
//! HTTP/1.1 and HTTP/2 (h2c with prior knowledge) are both served. Ctrl-C stops it.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use runtime::hyper::{CoreTimer, LocalExecutor};
use runtime::io::Compat;
use runtime::net::{TcpListener, TcpStream};

struct Args {
    host: String,
    port: u16,
    dir: PathBuf,
    cores: Option<usize>,
}

/// What every handler shares: the directory it serves.
type Dir = Arc<PathBuf>;

fn main() -> io::Result<()> {
    let args = parse_args()?;
    let meta = std::fs::metadata(&args.dir)
        .map_err(|e| io::Error::new(e.kind(), format!("--dir {}: {e}", args.dir.display())))?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--dir {}: not a directory", args.dir.display()),
        ));
    }
    let mut builder = runtime::Builder::new();
    if let Some(cores) = args.cores {
        builder = builder.cores(cores);
    }
    let mut rt = builder.build()?;
    let cores = rt.handle().core_count();
    let listeners = TcpListener::bind_per_core((args.host.as_str(), args.port), cores)?;
    println!(
        "listening on http://{}/ serving {} on {cores} core{}; Ctrl-C stops",
        listeners.local_addr(),
        args.dir.display(),
        if cores == 1 { "" } else { "s" }
    );
    // One router for the process: it is `Send + Sync`, and each core clones it.
    let app = router(Arc::new(args.dir));
    for served in rt.run_on_all(move |core| serve(listeners.take(core), app.clone())) {
        served?;
    }
    Ok(())
}

fn router(dir: Dir) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/files/{name}", get(file))
        .with_state(dir)
}

/// Serves on this core until Ctrl-C.
async fn serve(listener: io::Result<TcpListener>, app: Router) -> io::Result<()> {
    let listener = listener?;
    let stop = runtime::signal::ctrl_c();
    let accepting = runtime::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _peer)) => {
                    runtime::spawn(connection(stream, app.clone()));
                }
                Err(e) => {
                    eprintln!("accept: {e}");
                    runtime::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
    stop.await?;
    accepting.abort();
    Ok(())
}

/// One connection, HTTP/1.1 or HTTP/2, until the peer closes it.
async fn connection(stream: TcpStream, app: Router) {
    if let Err(e) = stream.set_nodelay(true) {
        eprintln!("set_nodelay: {e}");
    }
    let mut builder = auto::Builder::new(LocalExecutor::new());
    builder.http1().timer(CoreTimer::new());
    builder.http2().timer(CoreTimer::new());
    let service = TowerToHyperService::new(app);
    if let Err(e) = builder.serve_connection(Compat::new(stream), service).await {
        // A peer that resets or leaves mid-request ends only its connection.
        let _ = e;
    }
}

/// `GET /`: the regular files of the directory, as links.
async fn index(State(dir): State<Dir>) -> Response {
    // `runtime::fs::read_dir` runs on this core's ring, so its future is not `Send`:
    // a task of this core lists the directory and the handler awaits its handle.
    let listed = runtime::spawn(async move { list(&dir).await }).await;
    let names = match listed {
        Ok(Ok(names)) => names,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut page = String::from(
        "<!doctype html>\n<title>files</title>\n<h1>Files</h1>\n<p>Served by axum on \
         runtime.</p>\n<ul>\n",
    );
    for name in &names {
        page.push_str(&format!(
            "<li><a href=\"/files/{}\">{}</a></li>\n",
            percent_encode(name),
            html_escape(name)
        ));
    }
    page.push_str("</ul>\n");
    Html(page).into_response()
}

/// The names of the regular files in `dir`, sorted (names that are not UTF-8 are
/// left out: their links could not be written).
async fn list(dir: &std::path::Path) -> io::Result<Vec<String>> {
    let mut entries = runtime::fs::read_dir(dir).await?;
    let mut names = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        if entry.file_type().await?.is_file() {
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
    }
    names.sort();
    Ok(names)
}

/// `GET /files/NAME`: the file's bytes. The name is percent-decoded by axum.
async fn file(State(dir): State<Dir>, Path(name): Path<String>) -> Response {
    if name.contains('/') || name.contains('\0') {
        return error(
            StatusCode::BAD_REQUEST,
            "a file name may not contain '/' or NUL",
        );
    }
    if name == "." || name == ".." {
        return error(StatusCode::FORBIDDEN, "only files inside the directory");
    }
    let path = dir.join(&name);
    // The read runs in a task of this core; its handle is `Send` (a `Vec<u8>` is), so
    // this handler stays a `Send` future, as axum requires.
    match runtime::spawn(async move { runtime::fs::read(path).await }).await {
        Ok(Ok(bytes)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        Ok(Err(e)) => match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::IsADirectory => {
                error(StatusCode::NOT_FOUND, &format!("no file {name:?}"))
            }
            io::ErrorKind::PermissionDenied => error(StatusCode::FORBIDDEN, &e.to_string()),
            _ => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn error(status: StatusCode, why: &str) -> Response {
    (status, format!("{why}\n")).into_response()
}

/// `name` for a URL path segment: everything but unreserved characters escaped.
fn percent_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn parse_args() -> io::Result<Args> {
    let mut parsed = Args {
        host: String::from("127.0.0.1"),
        port: 3000,
        dir: PathBuf::from("."),
        cores: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args.next();
        match (arg.as_str(), value) {
            ("--port", Some(v)) => {
                parsed.port = v.parse().map_err(|_| usage(&format!("bad port {v:?}")))?;
            }
            ("--host", Some(v)) => parsed.host = v,
            ("--dir", Some(v)) => parsed.dir = PathBuf::from(v),
            ("--cores", Some(v)) => match v.parse() {
                Ok(n) if n > 0 => parsed.cores = Some(n),
                _ => return Err(usage(&format!("bad core count {v:?}"))),
            },
            _ => return Err(usage(&format!("unknown argument {arg:?}"))),
        }
    }
    Ok(parsed)
}

const USAGE: &str = "usage: axum_server [--port PORT] [--host ADDRESS] [--dir DIR] [--cores N]";

fn usage(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{why}; {USAGE}"))
}
