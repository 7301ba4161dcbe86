//! What the command-line tools share beyond the API: how they start, report errors and print
//! tables.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

/// Runs a CLI's async main on a single-threaded runtime (what a short-lived tool needs),
/// with the rustls crypto provider installed; an error becomes one line on stderr and exit
/// code 1.
pub fn run_main<E: Display>(main: impl Future<Output = Result<(), E>>) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Folds a multi-line message (a server's, or an error chain) into one line.
pub fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Rows as an aligned table with a header and a rule, one string per line.
pub fn table_lines(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  "));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = Vec::with_capacity(rows.len() + 2);
    out.push(line(
        &header.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    ));
    out.push(line(
        &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
    ));
    for row in rows {
        out.push(line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table_lines(&["A", "Long"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, vec!["A    Long", "---  ----", "xyz  1"]);
        assert_eq!(one_line("a\n\n  b \n"), "a; b");
    }
}
