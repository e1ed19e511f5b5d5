//! The net group: network servers side by side, an echo server and an HTTP
//! server per contender, each in a process of its own on one CPU, loaded from
//! another.
//!
//! [`run_group`] drives them. The pieces:
//!
//! - [`process`]: a server process started on [`SERVER_CPU`], waited on until
//!   it listens, its CPU time read from `/proc`, killed on drop;
//! - [`server`]: the child's side, `benches serve CONTENDER PROTOCOL PORT`;
//! - [`load`]: the echo load, one io_uring thread on [`LOAD_CPU`];
//! - [`wrk`]: the HTTP load, `wrk` on [`LOAD_CPU`];
//! - [`bench`](mod@bench): rounds of runs, the contenders interleaved;
//! - `crate::report::net`: the tables, the ratios and the targets;
//! - the contenders: [`raw`] (io_uring by hand, the ceiling), [`tokio_ct`],
//!   [`uring`] (tokio-uring), [`monoio_peer`], [`glommio_peer`] and [`ours`]
//!   (`runtime`), which all speak the HTTP of [`http`];
//! - and [`hyper_hello`]: hyper's HTTP server on `runtime` (over `io::Compat`)
//!   and on tokio, which answer with the same bytes.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::options::Options;
use crate::report::GroupReport;
use crate::tools;
use bench::{Setup, Timing, Workload};
use process::set_affinity;

pub mod bench;
pub mod glommio_peer;
pub mod http;
pub mod hyper_hello;
pub mod load;
pub mod monoio_peer;
pub mod ours;
pub mod process;
pub mod raw;
pub mod server;
pub mod tokio_ct;
pub mod uring;
pub mod wrk;

/// Rounds when `--rounds` is not given.
pub const ROUNDS: usize = 3;

/// Echo message sizes.
const ECHO_SIZES: [usize; 2] = [64, 4096];

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
    /// `benches serve NAME PROTOCOL PORT`: the server is in this binary.
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
    /// The backend its server process is told to run on, through
    /// `RUNTIME_BACKEND` (`runtime::BACKEND_ENV`), and checked to run on once
    /// it listens (`fallback`); `None` leaves the environment as it is.
    pub backend: Option<runtime::Backend>,
    /// The name it is served as (`benches serve NAME`), if not its own: the
    /// same server under another backend.
    pub serves: Option<&'static str>,
}

impl Contender {
    /// Whether its server is the `hello` example.
    pub fn is_hello_example(&self) -> bool {
        matches!(self.launch, Launch::HelloExample)
    }

    /// The same server under the name `name`, started on `backend`.
    pub fn on_backend(mut self, name: &'static str, backend: runtime::Backend) -> Contender {
        if self.serves.is_none() {
            self.serves = Some(self.name);
        }
        self.name = name;
        self.backend = Some(backend);
        self
    }

    /// The name `benches serve` knows its server by.
    pub fn serve_name(&self) -> &'static str {
        self.serves.unwrap_or(self.name)
    }
}

const fn serve(name: &'static str, role: Role, serve: ServeFn) -> Contender {
    Contender {
        name,
        role,
        launch: Launch::Serve(serve),
        hyper: false,
        backend: None,
        serves: None,
    }
}

const fn serve_hyper(name: &'static str, role: Role, serve: ServeFn) -> Contender {
    Contender {
        name,
        role,
        launch: Launch::Serve(serve),
        hyper: true,
        backend: None,
        serves: None,
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
                backend: None,
                serves: None,
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

/// Runs the net group as `options` say, into `report`: the echo workloads if
/// `options` selects echo, the HTTP one if it selects http. Pins the calling
/// thread, the load, to [`LOAD_CPU`] for good: every thread it starts after that
/// inherits the mask.
pub fn run_group(options: &Options, report: &mut GroupReport) {
    if let Err(err) = set_affinity(0, LOAD_CPU) {
        report.skip(format!(
            "cannot pin the load to CPU {LOAD_CPU} ({err}); this group needs CPUs \
             {SERVER_CPU} and {LOAD_CPU}"
        ));
        return;
    }
    let timing = if options.quick {
        Timing::QUICK
    } else {
        Timing::FULL
    };
    let wants_http = options.selection.http
        && contenders(Protocol::Http)
            .iter()
            .any(|c| options.runs(c.name));
    let wrk = if wants_http {
        tools::ensure("wrk", "wrk")
    } else {
        Err("not asked for".to_string())
    };
    let wants_hello = wrk.is_ok()
        && contenders(Protocol::Http)
            .iter()
            .any(|c| c.is_hello_example() && options.runs(c.name));
    let hello = if wants_hello {
        tools::hello_example(options.hello.as_deref())
    } else {
        Err("not asked for".to_string())
    };
    let setup = Setup {
        hello,
        // The binary this process runs, even if a build has replaced the file
        // since it started.
        exe: PathBuf::from("/proc/self/exe"),
        wrk: wrk.clone().ok(),
        timing,
        rounds: options.rounds_or(ROUNDS),
        quiet: None,
    };
    report.about(format!(
        "servers on CPU {SERVER_CPU} (one process per run), load on CPU {LOAD_CPU}, \
         {CONNECTIONS} connections; {} rounds, contenders interleaved; median of the rounds{}",
        setup.rounds,
        if options.quick { "; --quick" } else { "" }
    ));
    report.about(
        "server CPU = utime + stime of the server process over the measured window \
         (/proc/<pid>/stat, 10 ms ticks)",
    );
    if options.selection.echo {
        for size in ECHO_SIZES {
            run_workload(Workload::Echo { size }, options, &setup, report);
        }
    }
    if options.selection.http {
        match &wrk {
            Ok(_) => run_workload(Workload::Http, options, &setup, report),
            Err(why) if wants_http => report.skip(format!("the HTTP benchmark: {why}")),
            Err(_) => {}
        }
    }
}

/// Runs one workload with the selected contenders and adds its section.
fn run_workload(workload: Workload, options: &Options, setup: &Setup, report: &mut GroupReport) {
    let selected: Vec<_> = contenders(workload.protocol())
        .into_iter()
        .filter(|c| options.runs(c.name))
        .collect();
    if selected.is_empty() {
        return;
    }
    let mut about = Vec::new();
    match workload {
        Workload::Echo { size } => about.push(format!(
            "{CONNECTIONS} connections, one message of {size} B in flight on each, \
             every echo checked; {:.1} s warm-up, {:.1} s measured",
            setup.timing.echo_warmup.as_secs_f64(),
            setup.timing.echo_window.as_secs_f64()
        )),
        Workload::Http => {
            about.push(format!(
                "`taskset -c {LOAD_CPU} wrk {}`, after a {} s warm-up run of wrk",
                wrk::command_line(
                    CONNECTIONS,
                    setup.timing.http_window_secs,
                    "http://127.0.0.1:PORT/"
                )
                .join(" "),
                setup.timing.http_warmup_secs
            ));
            if selected.iter().any(|c| c.is_hello_example()) {
                if let Ok(hello) = &setup.hello {
                    about.push(format!("ours: `{} --port PORT`", hello.display()));
                }
            }
        }
    }
    eprintln!("{} ...", workload.title());
    let results = bench::run(workload, &selected, setup);
    for result in &results {
        if let Some(failure) = &result.failure {
            report.fail(format!(
                "{}: {}: {failure}",
                workload.title(),
                result.contender.name
            ));
        }
    }
    report.section(crate::report::net::section(workload, &about, &results));
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
