//! A tokio-bound crate (reqwest) awaited from a task on a core, with no tokio runtime
//! started by hand: the `tokio-bridge` feature gives each core a tokio reactor of its
//! own (see `runtime::tokio_bridge`).
//!
//! `cargo run --release --example tokio_bridge --features tokio-bridge -- URL`
//!
//! GETs `URL` (http or https; TLS is rustls on ring) from a task spawned on core 0,
//! then prints the status code and the body's length. A failure is printed with its
//! causes and the exit status is 1.

use std::error::Error;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(url), None) = (args.next(), args.next()) else {
        eprintln!("usage: tokio_bridge URL");
        return ExitCode::from(2);
    };
    let mut rt = match runtime::Builder::new().cores(1).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio_bridge: the runtime did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fetched = rt.block_on(async move {
        // A task of ours; reqwest finds the core's tokio reactor from inside it.
        let task = runtime::spawn(async move { fetch(&url).await });
        task.await.expect("the task ran to the end")
    });
    match fetched {
        Ok((status, len)) => {
            println!("status: {status}");
            println!("body: {len} bytes");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tokio_bridge: {}", chain(&*e));
            ExitCode::FAILURE
        }
    }
}

/// The response's status code and the length of its whole body.
async fn fetch(url: &str) -> Result<(u16, usize), Box<dyn Error>> {
    let response = reqwest::get(url).await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    Ok((status, body.len()))
}

/// An error and its causes on one line ("error sending request: ...: connection
/// refused"), which is what a user needs to act on.
fn chain(error: &dyn Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
