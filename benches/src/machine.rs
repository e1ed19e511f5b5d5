//! What the report says about the machine: CPUs, memory, the kernel as `uname`
//! gives it, the load average, and the source the binary was built from.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The machine a run was made on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// `2 online (0-1), Intel(R) Xeon(R) ...`.
    pub cpus: String,
    /// `MemTotal` of `/proc/meminfo`.
    pub memory: String,
    /// `uname -srvm`: system, release, version, hardware.
    pub kernel: String,
    /// `/proc/loadavg` when the run started.
    pub load_start: String,
    /// The git commit of the source, if `git` can tell.
    pub source: Option<String>,
}

impl Machine {
    /// Looks the machine up now.
    pub fn now() -> Machine {
        Machine {
            cpus: cpus(),
            memory: memory(),
            kernel: uname(),
            load_start: load_average(),
            source: source(),
        }
    }
}

/// The load averages over 1, 5 and 15 minutes, as `/proc/loadavg` gives them:
/// other work on the machine shows here.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|load| {
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

/// `uname -srvm`, from `uname(2)`.
pub fn uname() -> String {
    // SAFETY: utsname is plain old data (arrays of bytes); all zeroes is valid.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname writes only the struct we pass, which lives across the call.
    if unsafe { libc::uname(&mut name) } != 0 {
        return format!("unknown ({})", std::io::Error::last_os_error());
    }
    let field = |bytes: &[libc::c_char]| {
        let bytes: Vec<u8> = bytes
            .iter()
            .take_while(|&&b| b != 0)
            .map(|&b| b as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    [
        field(&name.sysname),
        field(&name.release),
        field(&name.version),
        field(&name.machine),
    ]
    .join(" ")
}

fn cpus() -> String {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".to_string());
    let count = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "model unknown".to_string());
    format!("{count} available to this process (online: {online}), {model}")
}

fn memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|line| line.starts_with("MemTotal:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.1} GiB", kib / (1u64 << 20) as f64))
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// `commit 1234abcd` (with `, and uncommitted changes` when the tree is dirty) of
/// the source this binary was built from, if it is a git checkout and git is
/// there.
fn source() -> Option<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|status| !status.is_empty());
    Some(if dirty {
        format!(
            "commit {commit}, and uncommitted changes (the source now; the binary may be older)"
        )
    } else {
        format!("commit {commit} (the source now; the binary may be older)")
    })
}

/// Now, UTC, as `2026-11-21 14:03:07`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

/// Seconds since the epoch as a UTC date and time.
fn utc(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days end each 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::{uname, utc};

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
    }

    #[test]
    fn uname_names_the_kernel() {
        let kernel = uname();
        assert!(kernel.starts_with("Linux "), "{kernel}");
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert!(kernel.contains(release.trim()), "{kernel}");
    }
}
