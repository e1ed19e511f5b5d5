//! The command line of `netbench`.

use std::path::PathBuf;

use super::contender_names;

/// What `--help` and a bad command line print.
pub const USAGE: &str = "\
usage: netbench [echo|http|all] [--quick] [--rounds N] [--only NAME]... [--hello PATH]

  echo        echo servers, 64 connections, 64 B and 4 KiB messages, load from
              one io_uring thread
  http        minimal keep-alive HTTP/1.1 servers under `wrk -t1 -c64`
  all         both (the default)
  --quick     short runs (0.3 s warm-up and 1 s window per echo run, 1 s and
              1 s per HTTP run), for a smoke run
  --rounds N  rounds, the contenders interleaved (default 3); the table gives
              the median
  --only NAME run only this contender (may be given more than once): raw,
              tokio-ct, tokio-uring, monoio, glommio, ours, ours-multishot,
              ours-inproc, hyper-ours, hyper-tokio-ct (the last two: HTTP
              only, hyper on `runtime` and on tokio)
  --hello PATH
              the `hello` example binary that serves `ours` in the HTTP
              benchmark (default: looked for next to netbench, under
              $CARGO_TARGET_DIR and under target/; build it with
              `cargo build --release --example hello`)

Servers run on CPU 0, the load on CPU 1; server CPU time comes from
/proc/<pid>/stat. `netbench serve CONTENDER echo|http PORT` runs one server
(netbench starts these itself).";

/// Which benchmarks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The echo benchmark.
    Echo,
    /// The HTTP benchmark.
    Http,
    /// Both.
    All,
}

impl Selection {
    /// Whether the echo benchmark is selected.
    pub fn echo(self) -> bool {
        matches!(self, Selection::Echo | Selection::All)
    }

    /// Whether the HTTP benchmark is selected.
    pub fn http(self) -> bool {
        matches!(self, Selection::Http | Selection::All)
    }
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Which benchmarks to run.
    pub selection: Selection,
    /// Short runs.
    pub quick: bool,
    /// Rounds per benchmark.
    pub rounds: usize,
    /// Run only these contenders (all when empty).
    pub only: Vec<String>,
    /// Where the `hello` example binary is, if given.
    pub hello: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            selection: Selection::All,
            quick: false,
            rounds: 3,
            only: Vec::new(),
            hello: None,
        }
    }
}

impl Options {
    /// Parses the arguments after the program name. `Ok(None)` asks for help.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, String> {
        let mut options = Options::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "echo" => options.selection = Selection::Echo,
                "http" => options.selection = Selection::Http,
                "all" => options.selection = Selection::All,
                "--quick" => options.quick = true,
                "--rounds" => {
                    let value = args.next().ok_or("`--rounds` needs a number")?;
                    let rounds: usize = value
                        .parse()
                        .map_err(|_| format!("`--rounds` needs a number, got `{value}`"))?;
                    options.rounds = rounds.max(1);
                }
                "--only" => {
                    let name = args.next().ok_or("`--only` needs a contender's name")?;
                    if !contender_names().contains(&name.as_str()) {
                        return Err(format!("no contender is named `{name}`"));
                    }
                    options.only.push(name);
                }
                "--hello" => {
                    let path = args.next().ok_or("`--hello` needs a path")?;
                    options.hello = Some(PathBuf::from(path));
                }
                "-h" | "--help" => return Ok(None),
                _ => return Err(format!("unknown argument `{arg}`")),
            }
        }
        Ok(Some(options))
    }

    /// Whether the contender `name` is to run.
    pub fn runs(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|only| only == name)
    }
}

#[cfg(test)]
mod tests {
    use super::{Options, Selection};

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        Options::parse(args.iter().map(|arg| arg.to_string()))
    }

    #[test]
    fn defaults_and_flags() {
        assert_eq!(parse(&[]), Ok(Some(Options::default())));
        let options = parse(&["http", "--quick", "--rounds", "5", "--only", "raw"])
            .unwrap()
            .unwrap();
        assert_eq!(options.selection, Selection::Http);
        assert!(options.quick && options.rounds == 5);
        assert!(options.runs("raw") && !options.runs("ours"));
        let options = parse(&["--only", "raw", "--only", "ours"])
            .unwrap()
            .unwrap();
        assert!(options.runs("ours") && !options.runs("monoio"));
        assert!(Options::default().runs("monoio"));
        assert_eq!(parse(&["-h"]), Ok(None));
    }

    #[test]
    fn bad_arguments_are_reported() {
        assert!(parse(&["--rounds"]).is_err());
        assert!(parse(&["--rounds", "x"]).is_err());
        assert!(parse(&["--only", "nginx"]).is_err());
        assert!(parse(&["--hello"]).is_err());
        assert!(parse(&["everything"]).is_err());
    }
}
