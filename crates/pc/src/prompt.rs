//! Asking the person at the terminal: passwords without echo, codes, yes/no.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use portcullis_ca::identity_file::Zeroizing;

/// Whether standard input is a terminal someone can answer at.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// One line from standard input, without its line ending.
pub fn stdin_line(what: &str) -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("reading the {what} from standard input"))?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned());
    if trimmed.is_empty() {
        bail!("standard input held no {what}; pipe it in as the first line");
    }
    Ok(trimmed)
}

/// A secret typed at the terminal, not echoed.
pub fn secret(prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    let value = rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .context("reading from the terminal")?;
    Ok(value)
}

/// A visible answer typed at the terminal (codes, yes/no).
pub fn line(prompt: &str) -> anyhow::Result<String> {
    let mut err = std::io::stderr();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading from the terminal")?;
    Ok(answer.trim().to_owned())
}

/// Asks a yes/no question; anything but y/yes is no.
pub fn confirm(prompt: &str) -> anyhow::Result<bool> {
    let a = line(prompt)?;
    Ok(matches!(a.to_ascii_lowercase().as_str(), "y" | "yes"))
}
