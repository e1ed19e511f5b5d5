//! The command line of `benches`: which groups to run, and the options of every
//! group, in one parser. The earlier per-group commands (`compare`, `netbench`,
//! `fsbench`, `closebench`) are this parser too, with their groups as the
//! default ([`Tool`]).

use std::path::PathBuf;

/// What `--help` and a bad command line print.
pub const USAGE: &str = "\
usage: benches [GROUP]... [OPTION]...

Runs the side-by-side benchmarks, prints their tables and writes one report:
target/bench-report.md (and the same as JSON beside it).

groups (any number of them; `all`, the default, runs every one):
  nop           io_uring nop throughput with 1 and with 64 ops in flight: a
                hand-written io_uring loop (raw), runtime (ours), tokio-uring;
                one thread on --cpu
  spawn         spawn + join of trivial tasks: ours against tokio
                (current-thread runtime + LocalSet); one thread on --cpu
  cross         cross-core round trip and channel throughput, endpoints on
                CPUs 0 and 1: ours (MSG_RING, eventfd, spin before park),
                tokio (multi-thread; two current-thread runtimes), glommio
  net           echo and HTTP servers, each a process of its own on CPU 0,
                loaded from CPU 1 (echo: our own io_uring load; HTTP: wrk):
                raw, tokio-ct, tokio-uring, monoio, glommio, ours and its
                forms, hyper on ours and on tokio
  echo, http    one half of net
  fs            4 KiB random O_DIRECT reads of a 1 GiB file (fio, glommio,
                monoio, tokio's spawn_blocking, ours) and 1 MiB buffered
                sequential reads (ours, std), all on CPU 0
  random, seq   one half of fs
  close         the cost of a close and of a runtime drop as the reads in
                flight grow, and the first request after K idle connections
                close at once; the runtime on CPU 0, peers on CPU 1
  instructions  user-space instructions per nop under valgrind --tool=callgrind:
                raw, ours, tokio-uring at 1 and 64 in flight, counted as
                (Ir(2N) - Ir(N)) / N
  all           every group above
  fallback      the epoll backend (RUNTIME_BACKEND=epoll) against tokio, with
                ours on io_uring in the same rounds: HTTP hello and echo (64 B,
                4 KiB) servers as in net (server on CPU 0, load on CPU 1), and
                4 KiB random O_DIRECT reads at queue depth 1 and 32 and 1 MiB
                sequential reads as in fs (CPU 0), against tokio's
                spawn_blocking and tokio::fs; not part of `all` (about 14 min)

options:
  --quick        a smoke run: a tenth of the work per round (nop, spawn,
                 cross), 1 s windows (net, fs), a small close run, N = 6,400
                 (instructions)
  --rounds N     measured rounds (defaults: 5 plus a warm-up round for nop,
                 spawn and cross; 3 for net, fs and close, 1 with --quick for
                 close; 1 for instructions; 5 for fallback)
  --only NAME    run only this contender (may be given more than once):
                 raw, ours, tokio-uring, tokio, ours-eventfd, ours-spin,
                 tokio-mt, tokio-2ct, glommio, tokio-ct, monoio,
                 ours-multishot, ours-inproc, hyper-ours, hyper-tokio-ct,
                 fio, fio-fixedbufs, tokio(spawn_blocking), ours-plain,
                 ours-fixed, ours-fixed-files, std, ours-qd1, ours-qd4,
                 ours-epoll, ours-uring, tokio-fs; a group with none of them
                 is skipped
  --cpu N        the CPU of the one-thread groups (nop, spawn, instructions;
                 default 1)
  --hello PATH   net, fallback: the `hello` example binary that serves `ours` over HTTP
                 (default: built with cargo build --release --example hello
                 when cargo started this, then looked for in the target
                 directory)
  --qd N         fs, fallback: a queue depth of the random reads (may be
                 given more than once; default 1 and 32)
  --file PATH    fs, fallback: the data file (default $CARGO_TARGET_DIR/fsbench.dat or
                 target/fsbench.dat), written once with 1 GiB and reused
  --pending LIST close: the numbers of other reads pending, comma-separated
                 (default 0,1000,8000,16000; --quick 0,1000)
  --closes N     close: closes per series (default 200; --quick 50)
  --idle K       close: idle connections closed at once before the first
                 request (default 5000; --quick 500; 0 skips that part)
  --ops N        instructions: N, the smaller count (default 64,000; rounded
                 down to a multiple of 64)
  --report PATH  the Markdown report (default $CARGO_TARGET_DIR/bench-report.md
                 or target/bench-report.md); the JSON goes beside it
  -h, --help     this text

wrk, fio and valgrind are installed with apt-get when they are missing and
this runs as root; otherwise what needs them says it is skipped and why.
The exit status is 0 unless a run failed (a missed target is not a failure).";

/// The command a binary stands for: `benches`, or one of the earlier
/// per-group commands, whose groups it runs by default and for `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `benches`: every group.
    Benches,
    /// `compare`: nop, spawn and cross.
    Compare,
    /// `netbench`: net.
    Netbench,
    /// `fsbench`: fs.
    Fsbench,
    /// `closebench`: close.
    Closebench,
}

impl Tool {
    /// Its program name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Benches => "benches",
            Tool::Compare => "compare",
            Tool::Netbench => "netbench",
            Tool::Fsbench => "fsbench",
            Tool::Closebench => "closebench",
        }
    }

    fn default_selection(self) -> Selection {
        let none = Selection::default();
        match self {
            Tool::Benches => Selection::everything(),
            Tool::Compare => Selection {
                nop: true,
                spawn: true,
                cross: true,
                ..none
            },
            Tool::Netbench => Selection {
                echo: true,
                http: true,
                ..none
            },
            Tool::Fsbench => Selection {
                random: true,
                seq: true,
                ..none
            },
            Tool::Closebench => Selection {
                close: true,
                ..none
            },
        }
    }
}

/// A group of benchmarks, in the order `all` runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Nop throughput.
    Nop,
    /// Spawn + join.
    Spawn,
    /// Cross-core round trip and channel throughput.
    Cross,
    /// Echo and HTTP servers.
    Net,
    /// File reads.
    Fs,
    /// Closing sockets and shutdown.
    Close,
    /// Instructions per nop.
    Instructions,
    /// The epoll backend against tokio, and against io_uring.
    Fallback,
}

impl Group {
    /// Every group that `all` runs, in the order they run.
    pub const ALL: [Group; 7] = [
        Group::Nop,
        Group::Spawn,
        Group::Cross,
        Group::Net,
        Group::Fs,
        Group::Close,
        Group::Instructions,
    ];

    /// The groups that run only when named, after those of [`ALL`](Group::ALL).
    pub const NAMED_ONLY: [Group; 1] = [Group::Fallback];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Group::Nop => "nop",
            Group::Spawn => "spawn",
            Group::Cross => "cross",
            Group::Net => "net",
            Group::Fs => "fs",
            Group::Close => "close",
            Group::Instructions => "instructions",
            Group::Fallback => "fallback",
        }
    }

    /// The names of its contenders, for `--only`.
    pub fn contenders(self) -> Vec<&'static str> {
        match self {
            Group::Nop => vec!["raw", "ours", "ours-untimed", "tokio-uring"],
            Group::Instructions => vec!["raw", "ours", "tokio-uring"],
            Group::Spawn => vec!["ours", "ours-untimed", "tokio"],
            Group::Cross => crate::compare::cross_contenders()
                .iter()
                .map(|c| c.name)
                .collect(),
            Group::Net => crate::net::contender_names(),
            Group::Fs => crate::fs::contender_names(),
            // Only the runtime is measured.
            Group::Close => vec!["ours"],
            Group::Fallback => crate::fallback::contender_names(),
        }
    }
}

/// Which benchmarks were asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    /// nop.
    pub nop: bool,
    /// spawn.
    pub spawn: bool,
    /// cross.
    pub cross: bool,
    /// net's echo half.
    pub echo: bool,
    /// net's HTTP half.
    pub http: bool,
    /// fs's random reads.
    pub random: bool,
    /// fs's sequential reads.
    pub seq: bool,
    /// close.
    pub close: bool,
    /// instructions.
    pub instructions: bool,
    /// fallback.
    pub fallback: bool,
}

impl Selection {
    fn everything() -> Selection {
        Selection {
            nop: true,
            spawn: true,
            cross: true,
            echo: true,
            http: true,
            random: true,
            seq: true,
            close: true,
            instructions: true,
            fallback: false,
        }
    }

    /// Whether any part of `group` is selected.
    pub fn has(&self, group: Group) -> bool {
        match group {
            Group::Nop => self.nop,
            Group::Spawn => self.spawn,
            Group::Cross => self.cross,
            Group::Net => self.echo || self.http,
            Group::Fs => self.random || self.seq,
            Group::Close => self.close,
            Group::Instructions => self.instructions,
            Group::Fallback => self.fallback,
        }
    }

    /// The selected groups, in the order they run.
    pub fn groups(&self) -> Vec<Group> {
        Group::ALL
            .into_iter()
            .chain(Group::NAMED_ONLY)
            .filter(|&g| self.has(g))
            .collect()
    }

    /// The words that select just what is selected of `group`.
    fn words(&self, group: Group) -> Vec<&'static str> {
        match group {
            Group::Net if !(self.echo && self.http) => {
                vec![if self.echo { "echo" } else { "http" }]
            }
            Group::Fs if !(self.random && self.seq) => {
                vec![if self.random { "random" } else { "seq" }]
            }
            group => vec![group.name()],
        }
    }

    fn add(&mut self, word: &str, tool: Tool) -> bool {
        match word {
            "nop" => self.nop = true,
            "spawn" => self.spawn = true,
            "cross" => self.cross = true,
            "net" => (self.echo, self.http) = (true, true),
            "echo" => self.echo = true,
            "http" => self.http = true,
            "fs" => (self.random, self.seq) = (true, true),
            "random" => self.random = true,
            "seq" => self.seq = true,
            "close" => self.close = true,
            "instructions" => self.instructions = true,
            "fallback" => self.fallback = true,
            "all" => {
                let all = tool.default_selection();
                for group in Group::ALL {
                    if all.has(group) {
                        self.add(group.name(), tool);
                    }
                }
            }
            _ => return false,
        }
        true
    }
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// What to run.
    pub selection: Selection,
    /// Smoke-run sizes.
    pub quick: bool,
    /// Measured rounds, if given (each group has its default).
    pub rounds: Option<usize>,
    /// Run only these contenders (all when empty).
    pub only: Vec<String>,
    /// The CPU of the one-thread groups.
    pub cpu: usize,
    /// net: the `hello` example binary, if given.
    pub hello: Option<PathBuf>,
    /// fs: queue depths of the random reads (empty: the defaults).
    pub depths: Vec<usize>,
    /// fs: the data file, if given.
    pub file: Option<PathBuf>,
    /// close: the numbers of pending reads, if given.
    pub pending: Option<Vec<usize>>,
    /// close: closes per series, if given.
    pub closes: Option<usize>,
    /// close: idle connections closed at once, if given.
    pub idle: Option<usize>,
    /// instructions: the smaller op count, if given.
    pub ops: Option<u64>,
    /// The Markdown report, if given.
    pub report: Option<PathBuf>,
    /// Write this group's report as JSON to this file and no Markdown report:
    /// how a run of several groups hands each group to a process of its own.
    pub part: Option<PathBuf>,
}

impl Options {
    /// The options of a bare command line of `tool`.
    pub fn defaults(tool: Tool) -> Options {
        Options {
            selection: tool.default_selection(),
            quick: false,
            rounds: None,
            only: Vec::new(),
            cpu: 1,
            hello: None,
            depths: Vec::new(),
            file: None,
            pending: None,
            closes: None,
            idle: None,
            ops: None,
            report: None,
            part: None,
        }
    }

    /// Parses the arguments after the program name of `tool`. `Ok(None)` asks
    /// for help.
    pub fn parse<I: IntoIterator<Item = String>>(
        tool: Tool,
        args: I,
    ) -> Result<Option<Options>, String> {
        let mut options = Options::defaults(tool);
        let mut selection = Selection::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if selection.add(&arg, tool) {
                continue;
            }
            let mut value = || args.next().ok_or_else(|| format!("`{arg}` needs a value"));
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--rounds" => options.rounds = Some(number(&arg, &value()?)?.max(1)),
                "--only" => options.only.push(value()?),
                "--cpu" => options.cpu = number(&arg, &value()?)?,
                "--hello" => options.hello = Some(PathBuf::from(value()?)),
                "--qd" => {
                    let depth = number(&arg, &value()?)?;
                    if !(1..=4096).contains(&depth) {
                        return Err(format!("`--qd` must be within 1..=4096, got {depth}"));
                    }
                    if !options.depths.contains(&depth) {
                        options.depths.push(depth);
                    }
                }
                "--file" => options.file = Some(PathBuf::from(value()?)),
                "--pending" => {
                    let mut pending = Vec::new();
                    for item in value()?.split(',') {
                        let n = number(&arg, item.trim())?;
                        if !pending.contains(&n) {
                            pending.push(n);
                        }
                    }
                    options.pending = Some(pending);
                }
                "--closes" => options.closes = Some(number(&arg, &value()?)?.max(1)),
                "--idle" => options.idle = Some(number(&arg, &value()?)?),
                "--ops" => {
                    let ops = number(&arg, &value()?)? as u64;
                    if ops < crate::DEPTH {
                        return Err(format!("`--ops` must be at least {}", crate::DEPTH));
                    }
                    options.ops = Some(ops);
                }
                "--report" => options.report = Some(PathBuf::from(value()?)),
                "--part" => options.part = Some(PathBuf::from(value()?)),
                "-h" | "--help" => return Ok(None),
                _ => return Err(format!("unknown argument `{arg}`")),
            }
        }
        if selection != Selection::default() {
            options.selection = selection;
        }
        let groups = options.selection.groups();
        for name in &options.only {
            if !groups
                .iter()
                .any(|g| g.contenders().contains(&name.as_str()))
            {
                return Err(format!("no selected group has a contender named `{name}`"));
            }
        }
        if options.part.is_some() && groups.len() != 1 {
            return Err("`--part` takes exactly one group".to_string());
        }
        Ok(Some(options))
    }

    /// Whether the contender `name` is to run.
    pub fn runs(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|only| only == name)
    }

    /// Whether `--only` leaves `group` any contender to run.
    pub fn runs_any(&self, group: Group) -> bool {
        group.contenders().iter().any(|name| self.runs(name))
    }

    /// The measured rounds of a group whose default is `default`.
    pub fn rounds_or(&self, default: usize) -> usize {
        self.rounds.unwrap_or(default)
    }

    /// The arguments of `benches` that run just `group` of these options and
    /// write its report to `part`.
    pub fn child_args(&self, group: Group, part: &std::path::Path) -> Vec<String> {
        let mut args: Vec<String> = self
            .selection
            .words(group)
            .into_iter()
            .map(String::from)
            .collect();
        let mut flag = |name: &str, value: String| {
            args.push(name.to_string());
            args.push(value);
        };
        if let Some(rounds) = self.rounds {
            flag("--rounds", rounds.to_string());
        }
        let names = group.contenders();
        for name in self.only.iter().filter(|n| names.contains(&n.as_str())) {
            flag("--only", name.clone());
        }
        flag("--cpu", self.cpu.to_string());
        if let Some(hello) = &self.hello {
            flag("--hello", hello.display().to_string());
        }
        for depth in &self.depths {
            flag("--qd", depth.to_string());
        }
        if let Some(file) = &self.file {
            flag("--file", file.display().to_string());
        }
        if let Some(pending) = &self.pending {
            let list: Vec<String> = pending.iter().map(ToString::to_string).collect();
            flag("--pending", list.join(","));
        }
        if let Some(closes) = self.closes {
            flag("--closes", closes.to_string());
        }
        if let Some(idle) = self.idle {
            flag("--idle", idle.to_string());
        }
        if let Some(ops) = self.ops {
            flag("--ops", ops.to_string());
        }
        flag("--part", part.display().to_string());
        if self.quick {
            args.push("--quick".to_string());
        }
        args
    }
}

fn number(flag: &str, value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| format!("`{flag}` needs a number, got `{value}`"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Group, Options, Tool};

    fn parse(tool: Tool, args: &[&str]) -> Result<Option<Options>, String> {
        Options::parse(tool, args.iter().map(|arg| arg.to_string()))
    }

    fn groups(tool: Tool, args: &[&str]) -> Vec<Group> {
        parse(tool, args).unwrap().unwrap().selection.groups()
    }

    #[test]
    fn groups_and_their_defaults() {
        assert_eq!(groups(Tool::Benches, &[]), Group::ALL.to_vec());
        assert_eq!(groups(Tool::Benches, &["all", "--quick"]), Group::ALL);
        assert_eq!(
            groups(Tool::Benches, &["fs", "nop"]),
            [Group::Nop, Group::Fs]
        );
        assert_eq!(
            groups(Tool::Compare, &["all"]),
            [Group::Nop, Group::Spawn, Group::Cross]
        );
        assert_eq!(groups(Tool::Compare, &["cross"]), [Group::Cross]);
        assert_eq!(groups(Tool::Netbench, &[]), [Group::Net]);
        // fallback runs only when named, after the groups of `all`.
        assert_eq!(groups(Tool::Benches, &["fallback"]), [Group::Fallback]);
        let mut everything = Group::ALL.to_vec();
        everything.push(Group::Fallback);
        assert_eq!(groups(Tool::Benches, &["fallback", "all"]), everything);
        let only = parse(Tool::Benches, &["fallback", "--only", "ours-epoll"]).unwrap();
        assert!(only.unwrap().runs("ours-epoll"));
        assert!(parse(Tool::Benches, &["nop", "--only", "ours-epoll"]).is_err());
        assert_eq!(groups(Tool::Closebench, &["--quick"]), [Group::Close]);
        let http = parse(Tool::Netbench, &["http"]).unwrap().unwrap();
        assert!(http.selection.http && !http.selection.echo);
        let seq = parse(Tool::Benches, &["seq"]).unwrap().unwrap();
        assert_eq!(seq.selection.groups(), [Group::Fs]);
        assert!(seq.selection.seq && !seq.selection.random);
    }

    #[test]
    fn options_of_every_group() {
        let options = parse(
            Tool::Benches,
            &[
                "nop", "--rounds", "3", "--cpu", "0", "--only", "ours", "--only", "raw", "--quick",
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (options.rounds, options.cpu, options.quick),
            (Some(3), 0, true)
        );
        assert!(options.runs("ours") && options.runs("raw") && !options.runs("tokio-uring"));
        assert_eq!(options.rounds_or(5), 3);
        let options = parse(
            Tool::Benches,
            &[
                "fs",
                "close",
                "--qd",
                "8",
                "--qd",
                "8",
                "--qd",
                "32",
                "--file",
                "/tmp/x",
                "--pending",
                "0, 8000,0",
                "--closes",
                "10",
                "--idle",
                "0",
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(options.depths, vec![8, 32]);
        assert_eq!(options.file.as_deref(), Some(Path::new("/tmp/x")));
        assert_eq!(options.pending, Some(vec![0, 8_000]));
        assert_eq!((options.closes, options.idle), (Some(10), Some(0)));
        assert_eq!(options.rounds_or(3), 3);
        assert_eq!(parse(Tool::Benches, &["--help"]), Ok(None));
    }

    #[test]
    fn bad_command_lines_are_reported() {
        for bad in [
            &["--cpu"][..],
            &["--cpu", "one"],
            &["--rounds"],
            &["--qd", "0"],
            &["--ops", "10"],
            &["--pending", "1,x"],
            &["--idle", "-1"],
            &["everything"],
            &["--only", "nginx"],
            // No contender of the fs group is called that.
            &["fs", "--only", "tokio-uring"],
            &["nop", "fs", "--part", "/tmp/part.json"],
        ] {
            assert!(parse(Tool::Benches, bad).is_err(), "{bad:?} was accepted");
        }
    }

    /// A child's command line selects just its group, keeps every option and
    /// only the `--only` names of its group, and parses back to the same run.
    #[test]
    fn child_command_lines_round_trip() {
        let options = parse(
            Tool::Benches,
            &[
                "http", "seq", "nop", "--only", "ours", "--only", "std", "--rounds", "2", "--qd",
                "4", "--quick", "--ops", "640",
            ],
        )
        .unwrap()
        .unwrap();
        let part = Path::new("/tmp/part.json");
        for group in options.selection.groups() {
            let args = options.child_args(group, part);
            let child = parse(
                Tool::Benches,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .unwrap()
            .unwrap();
            assert_eq!(child.selection.groups(), [group], "{args:?}");
            assert_eq!(child.part.as_deref(), Some(part));
            assert_eq!((child.rounds, child.quick), (Some(2), true));
            assert_eq!((child.depths.clone(), child.ops), (vec![4], Some(640)));
            match group {
                Group::Net => {
                    assert!(child.selection.http && !child.selection.echo);
                    assert_eq!(child.only, ["ours"]);
                }
                Group::Fs => {
                    assert!(child.selection.seq && !child.selection.random);
                    assert_eq!(child.only, ["std"]);
                }
                _ => assert_eq!(child.only, ["ours"]),
            }
        }
    }
}
