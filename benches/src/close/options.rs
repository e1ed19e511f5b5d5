//! The command line of `closebench`.

/// What `--help` and a bad command line print.
pub const USAGE: &str = "\
usage: closebench [--quick] [--rounds N] [--pending LIST] [--closes N] [--idle K]

  Measures, with N other reads pending on the same core, the cost of closing
  one socket, the time to drop a runtime, and the first request after K idle
  connections close at once. The runtime runs on CPU 0, its peers on CPU 1.

  --quick         a smoke run: N in 0,1000, 50 closes per series, K = 500,
                  one round (flags given as well still count)
  --rounds N      measured rounds (default 3, plus a small warm-up); each
                  figure is the median over rounds
  --pending LIST  the values of N, comma-separated (default 0,1000,8000,16000)
  --closes N      closes per series (default 200)
  --idle K        idle connections closed at once before the first request
                  (default 5000; 0 skips that part)";

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Measured rounds.
    pub rounds: usize,
    /// The numbers of other pending reads to measure with.
    pub pending: Vec<usize>,
    /// Closes per series.
    pub closes: usize,
    /// Idle connections closed at once before the first request.
    pub idle: usize,
}

impl Options {
    /// The full run.
    pub fn full() -> Options {
        Options {
            rounds: 3,
            pending: vec![0, 1_000, 8_000, 16_000],
            closes: 200,
            idle: 5_000,
        }
    }

    /// The smoke run of `--quick`.
    pub fn quick() -> Options {
        Options {
            rounds: 1,
            pending: vec![0, 1_000],
            closes: 50,
            idle: 500,
        }
    }

    /// Parses the arguments after the program name. `Ok(None)` asks for help.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, String> {
        let mut quick = false;
        let (mut rounds, mut pending, mut closes, mut idle) = (None, None, None, None);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--rounds" => rounds = Some(number(&arg, args.next())?.max(1)),
                "--closes" => closes = Some(number(&arg, args.next())?.max(1)),
                "--idle" => idle = Some(number(&arg, args.next())?),
                "--pending" => {
                    let list = args.next().ok_or("`--pending` needs a list of numbers")?;
                    let values = list
                        .split(',')
                        .map(|value| number(&arg, Some(value.trim().to_string())))
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut distinct = Vec::with_capacity(values.len());
                    for value in values {
                        if !distinct.contains(&value) {
                            distinct.push(value);
                        }
                    }
                    pending = Some(distinct);
                }
                "-h" | "--help" => return Ok(None),
                _ => return Err(format!("unknown argument `{arg}`")),
            }
        }
        let base = if quick {
            Options::quick()
        } else {
            Options::full()
        };
        Ok(Some(Options {
            rounds: rounds.unwrap_or(base.rounds),
            pending: pending.unwrap_or(base.pending),
            closes: closes.unwrap_or(base.closes),
            idle: idle.unwrap_or(base.idle),
        }))
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
    use super::Options;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        Options::parse(args.iter().map(|arg| arg.to_string()))
    }

    #[test]
    fn defaults_quick_and_flags() {
        assert_eq!(parse(&[]), Ok(Some(Options::full())));
        assert_eq!(parse(&["--quick"]), Ok(Some(Options::quick())));
        let options = parse(&["--quick", "--pending", "0, 8000", "--rounds", "5"])
            .unwrap()
            .unwrap();
        assert_eq!(options.pending, vec![0, 8_000]);
        assert_eq!(options.rounds, 5);
        assert_eq!(options.closes, Options::quick().closes);
        let options = parse(&["--pending", "8000,0,8000"]).unwrap().unwrap();
        assert_eq!(options.pending, vec![8_000, 0]);
        let options = parse(&["--closes", "10", "--idle", "0"]).unwrap().unwrap();
        assert_eq!((options.closes, options.idle), (10, 0));
        assert_eq!(parse(&["-h"]), Ok(None));
    }

    #[test]
    fn bad_arguments_are_reported() {
        assert!(parse(&["--rounds"]).is_err());
        assert!(parse(&["--pending", "1,x"]).is_err());
        assert!(parse(&["--idle", "-1"]).is_err());
        assert!(parse(&["everything"]).is_err());
    }
}
