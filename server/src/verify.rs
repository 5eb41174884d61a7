//! `sluice verify`: the offline check of a stopped broker's data directory.
//!
//! Finds every partition log under `<data>/topics/` and `<data>/internal/` and walks it with
//! [`sluice_engine::segment::verify`]: every batch's framing, CRC-32C and offsets, the order
//! of segments, and the offset and time indexes. Prints one line per finding, then a summary.
//!
//! Exit codes: 0 clean (warnings at most: torn tails recovery cuts at start, the expected state
//! after kill -9 or power loss), 1 damage found, 2 usage or I/O error, or the directory is
//! locked by a running broker (see [`crate::data_dir`]).
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use sluice_engine::segment::verify::{self, Report};

use crate::data_dir::LockingCommand;

/// `sluice verify` flags.
#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Data directory of a stopped broker (what it was served with as --data-dir)
    #[arg(long, env = "SLUICE_DATA_DIR")]
    pub data_dir: PathBuf,
}

/// Where partition logs live in a data directory: topics, then the internal logs.
const LOG_ROOTS: [&str; 2] = ["topics", "internal"];

/// Verifies the data directory, writing findings and the summary to `out`. `Err` is a usage
/// or I/O problem (a missing directory, an unreadable file), not damage.
pub fn run(args: &VerifyArgs, out: &mut impl Write) -> Result<Report, String> {
    check_data_dir(&args.data_dir)?;
    // A running broker's tails change under the walk: refuse rather than report them as damage.
    let _lock = crate::data_dir::lock(&args.data_dir, LockingCommand::Verify).map_err(|error| error.to_string())?;
    let mut total = Report::default();
    for root in LOG_ROOTS.map(|name| args.data_dir.join(name)) {
        let dirs = verify::find_partition_dirs(&root)
            .map_err(|error| format!("cannot list partitions under {}: {error}", root.display()))?;
        for dir in dirs {
            let report = verify::verify_partition(&dir)
                .map_err(|error| format!("cannot read partition {}: {error}", dir.display()))?;
            for finding in &report.findings {
                writeln!(out, "{finding}").map_err(|error| format!("cannot write the report: {error}"))?;
            }
            total.merge(report);
        }
    }
    writeln!(out, "{}", summary(&total)).map_err(|error| format!("cannot write the report: {error}"))?;
    Ok(total)
}

fn check_data_dir(data_dir: &Path) -> Result<(), String> {
    match std::fs::metadata(data_dir) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", data_dir.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("data directory {} does not exist", data_dir.display()))
        }
        Err(error) => return Err(format!("cannot read data directory {}: {error}", data_dir.display())),
    }
    if !data_dir.join(LOG_ROOTS[0]).is_dir() {
        return Err(format!("{} holds no topics/ directory: not a Sluice data directory", data_dir.display()));
    }
    Ok(())
}

fn summary(report: &Report) -> String {
    let verdict = match (report.damage, report.warnings) {
        (0, 0) => "clean",
        (0, _) => "clean apart from warnings (recovery cuts torn tails at start)",
        _ => "DAMAGED",
    };
    let mut line = format!(
        "summary: {} partitions, {} segments, {} batches, {} bytes checked; {} problems, {} warnings: {verdict}",
        report.partitions, report.segments, report.batches, report.bytes, report.damage, report.warnings
    );
    let not_shown = report.findings_not_kept();
    if not_shown > 0 {
        line.push_str(&format!(" ({not_shown} findings not shown: only the first of each segment are)"));
    }
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_empty_data_dir_is_clean_and_a_missing_one_an_error() {
        let data_dir = tempfile::tempdir().unwrap();
        let args = VerifyArgs { data_dir: data_dir.path().to_path_buf() };
        let error = run(&args, &mut Vec::new()).unwrap_err();
        assert!(error.contains("no topics/ directory"), "{error}");
        std::fs::create_dir(data_dir.path().join("topics")).unwrap();
        let mut out = Vec::new();
        let report = run(&args, &mut out).unwrap();
        assert_eq!((report.partitions, report.damage), (0, 0));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "summary: 0 partitions, 0 segments, 0 batches, 0 bytes checked; 0 problems, 0 warnings: clean\n"
        );
        let missing = VerifyArgs { data_dir: data_dir.path().join("nope") };
        assert!(run(&missing, &mut Vec::new()).unwrap_err().contains("does not exist"));
    }
}
