//! Editing libpq's connection service file (`~/.pg_service.conf`, or `$PGSERVICEFILE`) so that
//! `psql "service=NAME"` reaches a database through the proxy.
//!
//! The file belongs to the user: `pc` only touches sections it wrote, which it marks with the
//! line [`MARKER`] right after the section header. Everything else — other sections, comments,
//! blank lines, their exact bytes — is left as it was. A section of the same name that `pc` did
//! not write is never replaced.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::files;

/// The comment line that marks a section as written by `pc`.
pub const MARKER: &str = "# portcullis: managed by pc";

/// Why the service file could not be changed.
#[derive(Debug, Error)]
pub enum ServiceFileError {
    /// The user has a section of that name that `pc` did not write.
    #[error(
        "{path} already has a section [{name}] that pc did not write; rename or remove it, \
         then run the command again"
    )]
    NotOurs {
        /// The file.
        path: PathBuf,
        /// The section.
        name: String,
    },
    /// A name or value cannot be written safely.
    #[error("cannot write {what} {value:?} to a service file (line breaks or brackets)")]
    Unwritable {
        /// What it is.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// Neither `$PGSERVICEFILE` nor `$HOME` is set.
    #[error("cannot find the service file: set HOME or PGSERVICEFILE")]
    NoHome,
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, ServiceFileError>;

/// One `[name]` section: ordered `key=value` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The service name (`psql "service=NAME"`).
    pub name: String,
    /// Parameters in the order written.
    pub params: Vec<(String, String)>,
}

impl Section {
    fn render(&self) -> Result<String> {
        check_value("service name", &self.name)?;
        if self.name.contains([']', '[', '=']) {
            return Err(ServiceFileError::Unwritable {
                what: "service name",
                value: self.name.clone(),
            });
        }
        let mut out = format!("[{}]\n{MARKER}\n", self.name);
        for (k, v) in &self.params {
            check_value("parameter", k)?;
            check_value("value", v)?;
            out.push_str(&format!("{k}={v}\n"));
        }
        Ok(out)
    }
}

fn check_value(what: &'static str, v: &str) -> Result<()> {
    if v.is_empty() && what != "value" || v.contains(['\n', '\r', '\0']) {
        return Err(ServiceFileError::Unwritable {
            what,
            value: v.to_owned(),
        });
    }
    Ok(())
}

/// The service file libpq reads: `$PGSERVICEFILE`, else `~/.pg_service.conf`.
pub fn default_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PGSERVICEFILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".pg_service.conf"))
        .ok_or(ServiceFileError::NoHome)
}

/// A section found in the text: which lines it spans.
struct Span {
    name: String,
    ours: bool,
    /// Byte offset of the header line.
    start: usize,
    /// Byte offset just past its last parameter line (trailing comments and blank lines
    /// belong to whatever follows).
    end: usize,
}

fn header_name(line: &str) -> Option<&str> {
    let t = line.trim();
    t.strip_prefix('[')?.strip_suffix(']').map(str::trim)
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#') || t.starts_with(';')
}

fn sections(text: &str) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    let mut offset = 0;
    let mut expect_marker = false;
    for line in text.split_inclusive('\n') {
        let line_end = offset + line.len();
        if let Some(name) = header_name(line) {
            out.push(Span {
                name: name.to_owned(),
                ours: false,
                start: offset,
                end: line_end,
            });
            expect_marker = true;
        } else if let Some(cur) = out.last_mut() {
            if expect_marker && line.trim_end_matches(['\n', '\r']) == MARKER {
                cur.ours = true;
                cur.end = line_end;
            } else if !is_blank_or_comment(line) {
                cur.end = line_end;
            }
            expect_marker = false;
        }
        offset = line_end;
    }
    out
}

/// The names of the sections `pc` wrote.
pub fn managed_sections(text: &str) -> Vec<String> {
    sections(text)
        .into_iter()
        .filter(|s| s.ours)
        .map(|s| s.name)
        .collect()
}

/// `text` with `section` added, or replacing the section of that name that `pc` wrote.
/// `path` only names the file in errors.
pub fn upsert(text: &str, section: &Section, path: &Path) -> Result<String> {
    let rendered = section.render()?;
    let spans = sections(text);
    if let Some(s) = spans.iter().find(|s| s.name == section.name && !s.ours) {
        return Err(ServiceFileError::NotOurs {
            path: path.to_path_buf(),
            name: s.name.clone(),
        });
    }
    if let Some(s) = spans.iter().find(|s| s.name == section.name) {
        let mut out = String::with_capacity(text.len() + rendered.len());
        out.push_str(text.get(..s.start).unwrap_or_default());
        out.push_str(&rendered);
        let rest = text.get(s.end..).unwrap_or_default();
        // The old section may have ended the file without a newline; rendered text has one.
        out.push_str(rest);
        return Ok(out);
    }
    let mut out = text.to_owned();
    if !out.is_empty() {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&rendered);
    Ok(out)
}

/// `text` without the sections `pc` wrote whose name `remove` accepts. The blank line `pc` put
/// before a section it appended goes with it, so adding and then removing a section gives back
/// the original bytes.
pub fn remove(text: &str, remove: impl Fn(&str) -> bool) -> String {
    let mut out = text.to_owned();
    // Back to front, so earlier offsets stay valid.
    for s in sections(text).into_iter().rev() {
        if !s.ours || !remove(&s.name) {
            continue;
        }
        let mut start = s.start;
        let before = out.get(..start).unwrap_or_default();
        let after = out.get(s.end..).unwrap_or_default();
        // Drop one blank separator line in front when the section ends the file, or when a
        // blank line or another section follows it: two blank lines never collapse into none.
        if before.ends_with("\n\n")
            && (after.is_empty() || after.starts_with('\n') || after.starts_with('['))
        {
            start -= 1;
        }
        out.replace_range(start..s.end, "");
    }
    out
}

/// Reads the service file ("" when it does not exist).
pub fn read(path: &Path) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(ServiceFileError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes the service file atomically. A symbolic link is followed (its target is rewritten);
/// an existing file's privacy is kept (0600 stays 0600), a new file is 0600.
pub fn write(path: &Path, text: &str) -> Result<()> {
    let io = |source| ServiceFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let private = match fs::metadata(&target) {
        Ok(m) => m.permissions().mode() & 0o077 == 0,
        Err(_) => true,
    };
    if private {
        files::write_private(&target, text.as_bytes()).map_err(io)
    } else {
        files::write_public(&target, text.as_bytes()).map_err(io)
    }
}

/// Adds or replaces `section` in the file at `path`.
pub fn upsert_file(path: &Path, section: &Section) -> Result<()> {
    let old = read(path)?;
    let new = upsert(&old, section, path)?;
    if new != old {
        write(path, &new)?;
    }
    Ok(())
}

/// Removes `pc`'s sections accepted by `which` from the file at `path`; returns their names.
pub fn remove_file_sections(path: &Path, which: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    let old = read(path)?;
    let removed: Vec<String> = managed_sections(&old)
        .into_iter()
        .filter(|n| which(n))
        .collect();
    if removed.is_empty() {
        return Ok(removed);
    }
    let new = remove(&old, which);
    write(path, &new)?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(name: &str, user: &str) -> Section {
        Section {
            name: name.into(),
            params: vec![
                ("host".into(), "proxy.example.com".into()),
                ("port".into(), "3080".into()),
                ("user".into(), user.into()),
                ("sslmode".into(), "verify-full".into()),
            ],
        }
    }

    const USER_FILE: &str = "# my services\n[mine]\nhost=db.internal\n# note about mine\nport=5432\n\n; old style comment\n[other]\nhost=x\n";

    #[test]
    fn add_replace_remove_round_trip() {
        let p = Path::new("/tmp/x");
        let added = upsert(USER_FILE, &section("pg1", "app"), p).unwrap();
        assert!(added.starts_with(USER_FILE));
        assert!(added.contains("[pg1]\n# portcullis: managed by pc\nhost=proxy.example.com\n"));
        assert_eq!(managed_sections(&added), vec!["pg1"]);
        let two = upsert(&added, &section("pg2", "app"), p).unwrap();
        let replaced = upsert(&two, &section("pg1", "reader"), p).unwrap();
        assert!(replaced.contains("user=reader"));
        assert_eq!(replaced.matches("[pg1]").count(), 1);
        assert_eq!(managed_sections(&replaced), vec!["pg1", "pg2"]);
        // The replaced section stays where it was.
        assert!(replaced.find("[pg1]") < replaced.find("[pg2]"));
        let back = remove(&replaced, |n| n == "pg1");
        assert_eq!(back, upsert(USER_FILE, &section("pg2", "app"), p).unwrap());
        assert_eq!(remove(&back, |_| true), USER_FILE);
        assert_eq!(remove(&replaced, |_| true), USER_FILE);
    }

    #[test]
    fn empty_and_unterminated_files() {
        let p = Path::new("/tmp/x");
        let only = upsert("", &section("pg1", "app"), p).unwrap();
        assert!(only.starts_with("[pg1]\n"));
        assert_eq!(remove(&only, |_| true), "");
        let no_nl = upsert("[mine]\nhost=a", &section("pg1", "app"), p).unwrap();
        assert!(no_nl.starts_with("[mine]\nhost=a\n\n[pg1]"));
        assert_eq!(remove(&no_nl, |_| true), "[mine]\nhost=a\n");
    }

    #[test]
    fn our_section_in_the_middle_keeps_neighbours_and_their_comments() {
        let p = Path::new("/tmp/x");
        let text = format!(
            "[a]\nhost=1\n\n[pg1]\n{MARKER}\nhost=p\nuser=u\n\n# comment about b\n[b]\nhost=2\n"
        );
        let out = remove(&text, |_| true);
        assert_eq!(out, "[a]\nhost=1\n\n# comment about b\n[b]\nhost=2\n");
        // Replacing keeps the comment that belongs to [b].
        let rep = upsert(&text, &section("pg1", "v"), p).unwrap();
        assert!(rep.contains("user=v\nsslmode=verify-full\n\n# comment about b\n[b]"));
    }

    #[test]
    fn never_touches_sections_it_did_not_write() {
        let p = Path::new("/home/u/.pg_service.conf");
        let err = upsert(USER_FILE, &section("mine", "app"), p).unwrap_err();
        assert!(err.to_string().contains("[mine]"), "{err}");
        assert_eq!(remove(USER_FILE, |_| true), USER_FILE);
        // A marker further down is a comment of the user's section, not ours.
        let tricky = format!("[x]\nhost=1\n{MARKER}\n");
        assert!(managed_sections(&tricky).is_empty());
        assert_eq!(remove(&tricky, |_| true), tricky);
    }

    #[test]
    fn refuses_unwritable_values() {
        let p = Path::new("/tmp/x");
        let mut s = section("pg1", "app");
        s.params.push(("sslcert".into(), "/a\n[evil]".into()));
        assert!(upsert("", &s, p).is_err());
        assert!(upsert("", &section("a]b", "u"), p).is_err());
    }

    #[test]
    fn file_helpers() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("pg_service.conf");
        upsert_file(&path, &section("pg1", "app")).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::write(&path, format!("{USER_FILE}\n{}", read(&path).unwrap())).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        upsert_file(&path, &section("pg2", "app")).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let removed = remove_file_sections(&path, |_| true).unwrap();
        assert_eq!(removed, vec!["pg1", "pg2"]);
        assert_eq!(read(&path).unwrap(), USER_FILE);
        assert!(remove_file_sections(&path, |_| true).unwrap().is_empty());
        // Symbolic links are followed, not replaced.
        let real = d.path().join("real.conf");
        let link = d.path().join("link.conf");
        fs::write(&real, "").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        upsert_file(&link, &section("pg1", "app")).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(read(&real).unwrap().contains("[pg1]"));
    }
}
