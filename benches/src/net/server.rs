//! The server side of the net group: `benches serve CONTENDER PROTOCOL PORT`
//! pins itself to [`SERVER_CPU`], serves on `127.0.0.1:PORT`, prints `ready`
//! once it listens, and serves until it is killed.

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};

use super::process::set_affinity;
use super::{contenders, Launch, Protocol, SERVER_CPU};

/// The line a server prints on its standard output once it listens.
pub const READY: &str = "ready";

/// Runs the server the arguments after `serve` name. Returns only on error.
pub fn run(args: &[String]) -> io::Result<()> {
    let [name, protocol, port] = args else {
        return Err(invalid("usage: benches serve CONTENDER echo|http PORT"));
    };
    let protocol = Protocol::from_name(protocol)
        .ok_or_else(|| invalid(&format!("unknown protocol `{protocol}`")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(&format!("bad port `{port}`")))?;
    let serve = contenders(protocol)
        .into_iter()
        .find(|c| c.name == name)
        .and_then(|c| match c.launch {
            Launch::Serve(serve) => Some(serve),
            Launch::HelloExample => None,
        })
        .ok_or_else(|| {
            invalid(&format!(
                "no in-process {} server named `{name}`",
                protocol.name()
            ))
        })?;
    // Before the runtime starts, so that every thread it makes inherits the mask.
    set_affinity(0, SERVER_CPU).map_err(|err| {
        io::Error::new(err.kind(), format!("cannot pin to CPU {SERVER_CPU}: {err}"))
    })?;
    serve(
        protocol,
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        &listening,
    )
}

/// Tells the parent that the server listens.
fn listening() {
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{READY}");
    let _ = stdout.flush();
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_string())
}
