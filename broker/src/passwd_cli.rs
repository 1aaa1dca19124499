//! `cauldron passwd FILE USERNAME`: adds, updates or deletes one user of an argon2id
//! password file, keeping its comments and order and writing it atomically. The
//! password comes from a no-echo prompt (asked twice), one line of stdin
//! (`--stdin`) or `--password` (visible to other local users in the process list:
//! for throwaway setups only). It is never echoed or logged. This module knows the
//! file API and the terminal, nothing about the running broker.

use std::fmt;
use std::io::{self, BufRead};
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, bail};

use crate::auth::password::{Argon2Params, PasswordFile, SetOutcome, hash_password};

/// A secret given on the command line; its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Arguments of `cauldron passwd`.
#[derive(Debug, clap::Args)]
pub struct PasswdArgs {
    /// Password file to edit; created (mode 0600) when missing.
    pub file: PathBuf,
    /// User to add, update or delete.
    pub username: String,
    /// Delete the user instead of setting a password (an error if absent).
    #[arg(long, conflicts_with_all = ["stdin", "password", "memory_kib", "iterations", "parallelism"])]
    pub delete: bool,
    /// Read the password from one line of standard input, without prompting.
    #[arg(long, conflicts_with = "password")]
    pub stdin: bool,
    /// The password itself. WARNING: visible to other users in the process list and
    /// kept in shell history; prefer the prompt or --stdin.
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<Secret>,
    /// Argon2 memory cost in KiB (default 19456).
    #[arg(long, value_name = "KIB")]
    pub memory_kib: Option<u32>,
    /// Argon2 iterations (default 2).
    #[arg(long, value_name = "N")]
    pub iterations: Option<u32>,
    /// Argon2 parallelism (default 1).
    #[arg(long, value_name = "N")]
    pub parallelism: Option<u32>,
}

/// What `passwd` did to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A new user was appended.
    Added,
    /// An existing user's hash was replaced.
    Updated,
    /// A user was removed.
    Deleted,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Added => "added",
            Change::Updated => "updated",
            Change::Deleted => "deleted",
        })
    }
}

/// Runs `cauldron passwd` with OWASP default argon2 parameters (overridable by flags).
pub fn run(args: &PasswdArgs) -> anyhow::Result<()> {
    run_with(args, &Argon2Params::default())
}

/// Runs `cauldron passwd`, hashing with `base` (for example the broker config's
/// `argon2` table) overridden by the flags. Reports the change on stderr.
pub fn run_with(args: &PasswdArgs, base: &Argon2Params) -> anyhow::Result<()> {
    let change = execute(args, base, || obtain_password(args))?;
    let preposition = if change == Change::Deleted {
        "from"
    } else {
        "to"
    };
    eprintln!(
        "{change} user {} {preposition} {}",
        args.username,
        args.file.display()
    );
    Ok(())
}

/// Applies `args` to the file; `password` is asked for only when one is needed,
/// after the file has been read and validated.
pub fn execute(
    args: &PasswdArgs,
    base: &Argon2Params,
    password: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Change> {
    if args.delete {
        let mut file = PasswordFile::load(&args.file)?;
        file.delete_user(&args.username)?;
        file.write_atomic()?;
        return Ok(Change::Deleted);
    }
    let params = Argon2Params {
        memory_kib: args.memory_kib.unwrap_or(base.memory_kib),
        iterations: args.iterations.unwrap_or(base.iterations),
        parallelism: args.parallelism.unwrap_or(base.parallelism),
    };
    params.to_argon2()?;
    crate::auth::password_file::validate_username(&args.username)
        .context("cannot store this username")?;
    let mut file = PasswordFile::load_or_empty(&args.file)?;
    let mut secret = password()?;
    if secret.is_empty() {
        bail!("empty password refused");
    }
    let hashed = hash_password(&secret, &params);
    secret.iter_mut().for_each(|b| *b = 0);
    let outcome = file.set_user(&args.username, &hashed?)?;
    file.write_atomic()?;
    Ok(match outcome {
        SetOutcome::Added => Change::Added,
        SetOutcome::Updated => Change::Updated,
    })
}

/// The password from `--password`, `--stdin` or the terminal prompt.
fn obtain_password(args: &PasswdArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &args.password {
        return Ok(secret.expose().to_vec());
    }
    if args.stdin {
        return read_password_line(&mut io::stdin().lock());
    }
    prompt_twice()
}

/// Reads one line as the password, dropping only the line ending (spaces are kept).
pub fn read_password_line(input: &mut impl BufRead) -> anyhow::Result<Vec<u8>> {
    let mut line = Vec::new();
    input
        .read_until(b'\n', &mut line)
        .context("cannot read the password from stdin")?;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    Ok(line)
}

fn prompt_twice() -> anyhow::Result<Vec<u8>> {
    const NO_TTY: &str = "cannot prompt for the password (no terminal?); use --stdin or --password";
    let first = rpassword::prompt_password("Password: ").context(NO_TTY)?;
    let second = rpassword::prompt_password("Repeat password: ").context(NO_TTY)?;
    if first != second {
        bail!("passwords do not match");
    }
    Ok(first.into_bytes())
}

#[cfg(test)]
#[path = "passwd_cli_tests.rs"]
mod tests;
