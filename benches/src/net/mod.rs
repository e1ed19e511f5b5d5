//! Network servers side by side: an echo server and an HTTP server per
//! contender, each in a process of its own on one CPU, loaded from another.
//!
//! `src/bin/netbench.rs` drives them. The pieces:
//!
//! - [`process`]: a server process started on [`SERVER_CPU`], waited on until
//!   it listens, its CPU time read from `/proc`, killed on drop;
//! - [`server`]: the child's side, `netbench serve CONTENDER PROTOCOL PORT`;
//! - [`load`]: the echo load, one io_uring thread on [`LOAD_CPU`];
//! - [`wrk`]: the HTTP load, `wrk` on [`LOAD_CPU`];
//! - [`bench`](mod@bench): rounds of runs, the contenders interleaved;
//! - [`report`]: the table, the ratios and the targets;
//! - [`options`]: the command line;
//! - the contenders: [`raw`] (io_uring by hand, the ceiling), [`tokio_ct`],
//!   [`uring`] (tokio-uring), [`monoio_peer`], [`glommio_peer`] and [`ours`]
//!   (`runtime`), which all speak the HTTP of [`http`];
//! - and [`hyper_hello`]: hyper's HTTP server on `runtime` (over `io::Compat`)
//!   and on tokio, which answer with the same bytes.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

pub mod bench;
pub mod glommio_peer;
pub mod http;
pub mod hyper_hello;
pub mod load;
pub mod monoio_peer;
pub mod options;
pub mod ours;
pub mod process;
pub mod raw;
pub mod report;
pub mod server;
pub mod tokio_ct;
pub mod uring;
pub mod wrk;

/// The CPU every server runs on, all its threads.
pub const SERVER_CPU: usize = 0;

/// The CPU the load (the echo client, `wrk`) runs on.
pub const LOAD_CPU: usize = 1;

/// Connections the load keeps busy.
pub const CONNECTIONS: usize = 64;

/// What a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Sends back every byte it receives.
    Echo,
    /// Answers every request with [`http::RESPONSE`].
    Http,
}

impl Protocol {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Echo => "echo",
            Protocol::Http => "http",
        }
    }

    /// The protocol of a command-line name.
    pub fn from_name(name: &str) -> Option<Protocol> {
        match name {
            "echo" => Some(Protocol::Echo),
            "http" => Some(Protocol::Http),
            _ => None,
        }
    }
}

/// A server: serves a protocol on an address until its process is killed,
/// and calls its third argument once it listens.
pub type ServeFn = fn(Protocol, SocketAddr, &dyn Fn()) -> io::Result<()>;

/// The part a contender plays in the ratios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The hand-written io_uring loop: the ceiling.
    Ceiling,
    /// Another runtime.
    Peer,
    /// `runtime`, in one of its forms.
    Ours,
}

/// How a contender's server process is started.
#[derive(Debug, Clone, Copy)]
pub enum Launch {
    /// `netbench serve NAME PROTOCOL PORT`: the server is in this binary.
    Serve(ServeFn),
    /// The project's `hello` example binary, `hello --port PORT`.
    HelloExample,
}

/// A server that takes part in a workload.
#[derive(Debug, Clone, Copy)]
pub struct Contender {
    /// Its name in the table and on the command line.
    pub name: &'static str,
    /// Its part in the ratios.
    pub role: Role,
    /// How its server starts.
    pub launch: Launch,
    /// Whether it serves HTTP with hyper. Its ratios to the hand-written servers
    /// are shown for information; its target is held against hyper on a peer.
    pub hyper: bool,
}

impl Contender {
    /// Whether its server is the `hello` example.
    pub fn is_hello_example(&self) -> bool {
        matches!(self.launch, Launch::HelloExample)
    }
}

const fn serve(name: &'static str, role: Role, serve: ServeFn) -> Contender {
    Contender {
        name,
        role,
        launch: Launch::Serve(serve),
        hyper: false,
    }
}

const fn serve_hyper(name: &'static str, role: Role, serve: ServeFn) -> Contender {
    Contender {
        name,
        role,
        launch: Launch::Serve(serve),
        hyper: true,
    }
}

/// The contenders of a protocol, in the order of the table.
pub fn contenders(protocol: Protocol) -> Vec<Contender> {
    let mut all = vec![
        serve("raw", Role::Ceiling, raw::serve),
        serve("tokio-ct", Role::Peer, tokio_ct::serve),
        serve("tokio-uring", Role::Peer, uring::serve),
        serve("monoio", Role::Peer, monoio_peer::serve),
        serve("glommio", Role::Peer, glommio_peer::serve),
    ];
    match protocol {
        Protocol::Echo => {
            all.push(serve("ours", Role::Ours, ours::serve));
            all.push(serve("ours-multishot", Role::Ours, ours::serve_multishot));
        }
        Protocol::Http => {
            all.push(Contender {
                name: "ours",
                role: Role::Ours,
                launch: Launch::HelloExample,
                hyper: false,
            });
            all.push(serve("ours-inproc", Role::Ours, ours::serve));
            all.push(serve_hyper(
                "hyper-tokio-ct",
                Role::Peer,
                hyper_hello::serve_tokio_ct,
            ));
            all.push(serve_hyper(
                "hyper-ours",
                Role::Ours,
                hyper_hello::serve_ours,
            ));
        }
    }
    all
}

/// Every contender name of either protocol, for the command line's checks.
pub fn contender_names() -> Vec<&'static str> {
    let mut names = Vec::new();
    for contender in contenders(Protocol::Echo)
        .into_iter()
        .chain(contenders(Protocol::Http))
    {
        if !names.contains(&contender.name) {
            names.push(contender.name);
        }
    }
    names
}

/// What the load saw over one measured window of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Messages echoed or requests answered.
    pub ops: u64,
    /// Wall-clock length of the window.
    pub wall: Duration,
    /// CPU time the server used over the window, all its threads.
    pub cpu: Duration,
    /// The rate the load itself reported (wrk's `Requests/sec`), if it did;
    /// otherwise the rate is `ops / wall`.
    pub rate: Option<f64>,
}

impl Window {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.rate
            .unwrap_or_else(|| self.ops as f64 / self.wall.as_secs_f64())
    }

    /// Server CPU-seconds per million operations.
    pub fn cpu_per_million(&self) -> f64 {
        self.cpu.as_secs_f64() / self.ops as f64 * 1e6
    }

    /// Operations per server CPU-second.
    pub fn per_cpu_second(&self) -> f64 {
        self.ops as f64 / self.cpu.as_secs_f64()
    }

    /// The server's CPU time over wall-clock time: 1.0 is one CPU kept busy.
    pub fn utilisation(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    use super::load::{self, EchoLoad};
    use super::process::free_address;
    use super::wrk::{check_server, Answer};
    use super::{contenders, Launch, Protocol};

    /// Every in-process server echoes checked messages of both sizes and
    /// answers split and pipelined HTTP requests with exactly the response.
    /// The servers run on threads of this test process until it exits.
    #[test]
    fn every_server_speaks_its_protocol() {
        for protocol in [Protocol::Echo, Protocol::Http] {
            for contender in contenders(protocol) {
                let Launch::Serve(serve) = contender.launch else {
                    continue;
                };
                let addr = free_address().unwrap();
                let (ready, listening) = mpsc::channel();
                thread::spawn(move || serve(protocol, addr, &move || ready.send(()).unwrap()));
                listening
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap_or_else(|_| panic!("{} does not listen", contender.name));
                match protocol {
                    Protocol::Echo => {
                        for size in [64, 4096] {
                            let echo = EchoLoad {
                                connections: 4,
                                size,
                                warmup: Duration::ZERO,
                                window: Duration::from_millis(50),
                            };
                            let window = load::run(addr, &echo, &mut || Ok(Duration::ZERO))
                                .unwrap_or_else(|err| panic!("{}: {err}", contender.name));
                            assert!(window.ops > 0, "{} echoed nothing", contender.name);
                        }
                    }
                    Protocol::Http => {
                        let answer = check_server(addr)
                            .unwrap_or_else(|err| panic!("{}: {err}", contender.name));
                        assert_eq!(answer, Answer::Exact, "{}", contender.name);
                    }
                }
            }
        }
    }
}
