//! The command line of `compare`.

/// What `--help` and a bad command line print.
pub const USAGE: &str = "\
usage: compare [nop|spawn|cross|all] [--quick] [--cpu N] [--rounds N] [--only NAME]

  nop         io_uring nop throughput with 1 and with 64 ops in flight:
              a hand-written io_uring loop, runtime, tokio-uring
  spawn       spawn + join of trivial tasks: runtime against tokio
              (current-thread runtime + LocalSet)
  cross       cross-core round-trip latency and channel throughput, one
              endpoint on CPU 0 and the other on CPU 1: runtime (with and
              without MSG_RING), tokio (multi-thread runtime, and two
              current-thread runtimes), glommio
  all         all three (the default)
  --quick     about a tenth of the work per round, for a smoke run
  --cpu N     pin every benchmark thread to CPU N (default 1); the cross
              workloads always use CPUs 0 and 1
  --rounds N  measured rounds per contender (default 5, plus one warm-up round)
  --only NAME run only the contender NAME (raw, ours, tokio-uring, tokio,
              ours-eventfd, tokio-mt, tokio-2ct, glommio), e.g. under a
              profiler";

/// Which workloads to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The nop workloads.
    Nop,
    /// The spawn workloads.
    Spawn,
    /// The cross-core workloads.
    Cross,
    /// Every workload.
    All,
}

impl Selection {
    /// Whether the nop workloads are selected.
    pub fn nop(self) -> bool {
        matches!(self, Selection::Nop | Selection::All)
    }

    /// Whether the spawn workloads are selected.
    pub fn spawn(self) -> bool {
        matches!(self, Selection::Spawn | Selection::All)
    }

    /// Whether the cross-core workloads are selected.
    pub fn cross(self) -> bool {
        matches!(self, Selection::Cross | Selection::All)
    }
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Which workloads to run.
    pub selection: Selection,
    /// Shrink every workload about tenfold.
    pub quick: bool,
    /// The CPU to pin the benchmark threads to.
    pub cpu: usize,
    /// Measured rounds per contender.
    pub rounds: usize,
    /// Run only the contender of this name.
    pub only: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            selection: Selection::All,
            quick: false,
            cpu: 1,
            rounds: 5,
            only: None,
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
                "nop" => options.selection = Selection::Nop,
                "spawn" => options.selection = Selection::Spawn,
                "cross" => options.selection = Selection::Cross,
                "all" => options.selection = Selection::All,
                "--quick" => options.quick = true,
                "--cpu" => options.cpu = number(&arg, args.next())?,
                "--rounds" => options.rounds = number(&arg, args.next())?.max(1),
                "--only" => {
                    let name = args.next().ok_or("`--only` needs a contender's name")?;
                    options.only = Some(name);
                }
                "-h" | "--help" => return Ok(None),
                _ => return Err(format!("unknown argument `{arg}`")),
            }
        }
        Ok(Some(options))
    }
}

fn number(flag: &str, value: Option<String>) -> Result<usize, String> {
    let value = value.ok_or_else(|| format!("`{flag}` needs a number"))?;
    value
        .parse()
        .map_err(|_| format!("`{flag}` needs a number, got `{value}`"))
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
        let options = parse(&["spawn", "--quick", "--cpu", "0", "--rounds", "3"])
            .unwrap()
            .unwrap();
        assert_eq!(options.selection, Selection::Spawn);
        assert!(options.quick);
        assert_eq!((options.cpu, options.rounds), (0, 3));
        let options = parse(&["cross"]).unwrap().unwrap();
        assert_eq!(options.selection, Selection::Cross);
        assert!(options.selection.cross() && !options.selection.nop());
        assert!(Selection::All.cross());
        let options = parse(&["--only", "ours"]).unwrap().unwrap();
        assert_eq!(options.only.as_deref(), Some("ours"));
        assert_eq!(parse(&["--help"]), Ok(None));
    }

    #[test]
    fn bad_arguments_are_reported() {
        assert!(parse(&["--cpu"]).is_err());
        assert!(parse(&["--only"]).is_err());
        assert!(parse(&["--cpu", "one"]).is_err());
        assert!(parse(&["everything"]).is_err());
    }
}
