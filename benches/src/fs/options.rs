//! The command line of `fsbench`.

use std::path::PathBuf;

use super::contender_names;

/// What `--help` and a bad command line print.
pub const USAGE: &str = "\
usage: fsbench [random|seq|all] [--quick] [--rounds N] [--only NAME]... [--qd N]...
               [--file PATH]

  random      4 KiB O_DIRECT reads at random offsets of a 1 GiB file
  seq         1 MiB buffered sequential reads of the same file, page cache warm
  all         both (the default)
  --quick     short runs (0.2 s warm-up, 1 s window), for a smoke run
  --rounds N  rounds, the contenders interleaved (default 3); the tables give
              the median
  --only NAME run only this contender (may be given more than once): fio,
              fio-fixedbufs, glommio, monoio, tokio(spawn_blocking), ours-plain,
              ours-fixed, ours-fixed-files; std, ours-qd1, ours-qd4
  --qd N      queue depth of the random reads (may be given more than once;
              default 1 and 32)
  --file PATH the data file (default $CARGO_TARGET_DIR/fsbench.dat, or
              target/fsbench.dat); written once with 1 GiB of pseudo-random
              bytes and reused

Everything runs on CPU 0 (fio with --cpus_allowed=0). CPU time is
getrusage(RUSAGE_SELF) over the measured window for the contenders in this
process, and fio's own usr_cpu + sys_cpu for fio.";

/// Which benchmarks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The random reads.
    Random,
    /// The sequential reads.
    Sequential,
    /// Both.
    All,
}

impl Selection {
    /// Whether the random reads are selected.
    pub fn random(self) -> bool {
        matches!(self, Selection::Random | Selection::All)
    }

    /// Whether the sequential reads are selected.
    pub fn sequential(self) -> bool {
        matches!(self, Selection::Sequential | Selection::All)
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
    /// Queue depths of the random reads.
    pub depths: Vec<usize>,
    /// The data file, if given.
    pub file: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            selection: Selection::All,
            quick: false,
            rounds: 3,
            only: Vec::new(),
            depths: vec![1, 32],
            file: None,
        }
    }
}

impl Options {
    /// Parses the arguments after the program name. `Ok(None)` asks for help.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, String> {
        let mut options = Options::default();
        let mut depths = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "random" => options.selection = Selection::Random,
                "seq" => options.selection = Selection::Sequential,
                "all" => options.selection = Selection::All,
                "--quick" => options.quick = true,
                "--rounds" => options.rounds = number(&mut args, "--rounds")?.max(1),
                "--qd" => {
                    let depth = number(&mut args, "--qd")?;
                    if !(1..=4096).contains(&depth) {
                        return Err(format!("`--qd` must be within 1..=4096, got {depth}"));
                    }
                    if !depths.contains(&depth) {
                        depths.push(depth);
                    }
                }
                "--only" => {
                    let name = args.next().ok_or("`--only` needs a contender's name")?;
                    if !contender_names().contains(&name.as_str()) {
                        return Err(format!("no contender is named `{name}`"));
                    }
                    options.only.push(name);
                }
                "--file" => {
                    let path = args.next().ok_or("`--file` needs a path")?;
                    options.file = Some(PathBuf::from(path));
                }
                "-h" | "--help" => return Ok(None),
                _ => return Err(format!("unknown argument `{arg}`")),
            }
        }
        if !depths.is_empty() {
            options.depths = depths;
        }
        Ok(Some(options))
    }

    /// Whether the contender `name` is to run.
    pub fn runs(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|only| only == name)
    }
}

fn number(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<usize, String> {
    let value = args.next().ok_or(format!("`{flag}` needs a number"))?;
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
        let options = parse(&[
            "random", "--quick", "--rounds", "5", "--only", "fio", "--qd", "8",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(options.selection, Selection::Random);
        assert!(options.quick && options.rounds == 5);
        assert!(options.runs("fio") && !options.runs("ours-fixed"));
        assert_eq!(options.depths, vec![8]);
        let options = parse(&["--only", "std", "--only", "ours-qd1", "--file", "/tmp/x"])
            .unwrap()
            .unwrap();
        assert!(options.runs("ours-qd1") && !options.runs("monoio"));
        assert_eq!(options.file.unwrap().to_str(), Some("/tmp/x"));
        assert_eq!(Options::default().depths, vec![1, 32]);
        assert_eq!(parse(&["-h"]), Ok(None));
    }

    #[test]
    fn bad_arguments_are_reported() {
        assert!(parse(&["--rounds"]).is_err());
        assert!(parse(&["--qd", "0"]).is_err());
        assert!(parse(&["--only", "nginx"]).is_err());
        assert!(parse(&["--file"]).is_err());
        assert!(parse(&["everything"]).is_err());
    }
}
