//! Prints TOTP codes with Vigie's own implementation (`vigie::credentials::totp`), for the test
//! scripts and the browser tests: they type the code a phone would show without carrying a
//! second implementation of RFC 6238. Not part of the product (a cargo example:
//! `cargo build --example totp`, then `target/debug/examples/totp`).
//!
//! The base32 secret comes from the environment variable `VIGIE_TOTP_SECRET` or, when it is
//! unset, from the first line of standard input; never from the command line, which `ps` shows.
//!
//! ```text
//! totp [--at UNIX_SECONDS] [STEP_OFFSET...]
//! ```
//! One line per offset (default: one line, offset 0): the code at `now + 30 s × offset`, where
//! `now` is the clock or `--at`. Exit status 1 for a secret Vigie would refuse, 2 for a usage
//! error.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use vigie::credentials::totp::{code_at, decode_secret};

const STEP: i64 = 30;
const USAGE: &str = "usage: totp [--at UNIX_SECONDS] [STEP_OFFSET...] \
                     (secret from VIGIE_TOTP_SECRET or the first line of standard input)";

fn main() -> ExitCode {
    let (at, offsets) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("totp: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let text = match std::env::var("VIGIE_TOTP_SECRET") {
        Ok(s) => s,
        Err(_) => {
            let mut line = String::new();
            if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
                eprintln!("totp: cannot read the secret from standard input: {e}");
                return ExitCode::from(2);
            }
            line
        }
    };
    // The message names the problem, never the secret.
    let secret = match decode_secret(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("totp: {e}");
            return ExitCode::from(1);
        }
    };
    let now = match at {
        Some(t) => t,
        None => match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(_) => {
                eprintln!("totp: the clock is before 1970");
                return ExitCode::from(1);
            }
        },
    };
    for offset in offsets {
        let code = offset
            .checked_mul(STEP)
            .and_then(|d| now.checked_add(d))
            .and_then(|t| u64::try_from(t).ok())
            .and_then(|t| code_at(&secret, t));
        match code {
            Some(c) => println!("{c}"),
            None => {
                eprintln!("totp: no code for offset {offset} from {now}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

/// `--at` and the step offsets (default `[0]`).
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(Option<i64>, Vec<i64>), String> {
    let mut at = None;
    let mut offsets = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--at" {
            let value = args.next().ok_or("--at needs a value")?;
            at = Some(
                value
                    .parse()
                    .map_err(|_| format!("--at {value}: not a number of seconds"))?,
            );
        } else {
            offsets.push(
                arg.parse()
                    .map_err(|_| format!("{arg}: not a step offset (an integer)"))?,
            );
        }
    }
    if offsets.is_empty() {
        offsets.push(0);
    }
    Ok((at, offsets))
}
