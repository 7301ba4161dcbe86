//! A client command: its arguments, and the exact bytes it arrived as.

use bytes::Bytes;

use super::encode_command;

/// How a command was written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandFormat {
    /// A RESP array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`): what every client
    /// library and `redis-cli` send.
    Multibulk,
    /// A plain text line (`GET k\r\n`), as typed into `telnet` or `nc`.
    Inline,
}

/// One client command, as the agent checks it against policy, audits it and relays it.
///
/// `raw` is what the client sent, so the relay forwards it unchanged (re-encoding could change
/// what the server sees, for example an inline command's quoting); `args` are the arguments
/// Redis will see, and share `raw`'s allocation wherever no unquoting was needed. Policy
/// decisions must be taken on `args`, never on `raw`.
///
/// `Debug` shows the command's name and sizes only: arguments carry passwords (`AUTH`,
/// `HELLO … AUTH`, `MIGRATE … AUTH`, `CONFIG SET masterauth`) and values.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// The command's bytes on the wire, line endings included.
    pub raw: Bytes,
    /// The arguments, command name first. Never empty for a parsed command: blank lines and
    /// empty arrays are skipped by the parser, as Redis skips them.
    pub args: Vec<Bytes>,
    /// How the command was written.
    pub format: CommandFormat,
}

impl Command {
    /// A multibulk command from its arguments, for commands the agent sends itself (`AUTH`
    /// and `HELLO` to the server, for example).
    pub fn from_args<A: AsRef<[u8]>>(args: &[A]) -> Self {
        Self {
            raw: Bytes::from(encode_command(args)),
            args: args
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_ref()))
                .collect(),
            format: CommandFormat::Multibulk,
        }
    }

    /// The command name (first argument) as sent, or `None` for a command without arguments.
    pub fn name(&self) -> Option<&[u8]> {
        self.args.first().map(|a| a.as_ref())
    }

    /// The command name, ASCII-uppercased, for policy lookups and the audit log (`""` if there
    /// are no arguments).
    ///
    /// Only ASCII letters change case, as in Redis' own `strcasecmp` lookup: a Unicode-aware
    /// uppercasing would turn `ſet` into `SET`, a command Redis would not run for it. Bytes
    /// that are not UTF-8 become U+FFFD, which no command name contains.
    pub fn name_upper(&self) -> String {
        upper(self.args.first())
    }

    /// Whether the command name is `name`, compared as Redis compares it (ASCII
    /// case-insensitively), without allocating.
    pub fn is(&self, name: &str) -> bool {
        self.name()
            .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The second argument, ASCII-uppercased like [`Command::name_upper`], or `None` if there
    /// is none.
    ///
    /// For Redis' container commands (`CONFIG GET`, `CLIENT KILL`, `ACL SETUSER`, `SCRIPT
    /// FLUSH`, `XINFO STREAM`…) this is the subcommand that policy and ACLs look at (Redis ACLs
    /// name them `config|get`). For other commands it is just the first argument: whether a
    /// command has subcommands is the caller's knowledge, not the codec's.
    pub fn subcommand_upper(&self) -> Option<String> {
        self.args.get(1).map(|a| upper(Some(a)))
    }

    /// The argument at `index` (0 is the command name).
    pub fn arg(&self, index: usize) -> Option<&Bytes> {
        self.args.get(index)
    }
}

/// ASCII-uppercases an argument for display and policy lookups.
fn upper(arg: Option<&Bytes>) -> String {
    arg.map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
        .unwrap_or_default()
}

impl std::fmt::Debug for Command {
    /// Never prints arguments after the name: they may be secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("name", &self.name_upper())
            .field("args", &self.args.len())
            .field("raw_len", &self.raw.len())
            .field("format", &self.format)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_subcommands() {
        let c = Command::from_args(&["config", "get", "maxmemory"]);
        assert_eq!(c.name(), Some(&b"config"[..]));
        assert_eq!(c.name_upper(), "CONFIG");
        assert_eq!(c.subcommand_upper().as_deref(), Some("GET"));
        assert!(c.is("CONFIG") && c.is("Config") && !c.is("CONFIGX"));
        assert_eq!(c.arg(2).map(|a| &a[..]), Some(&b"maxmemory"[..]));
        assert_eq!(c.format, CommandFormat::Multibulk);

        let c = Command::from_args(&["ſet"]);
        assert_eq!(c.name_upper(), "ſET");
        assert!(!c.is("set"));
        assert_eq!(c.subcommand_upper(), None);

        let c = Command::from_args::<&str>(&[]);
        assert_eq!(c.name_upper(), "");
        assert_eq!(c.name(), None);
    }

    #[test]
    fn debug_hides_arguments() {
        let c = Command::from_args(&["AUTH", "alice", "hunter2"]);
        let s = format!("{c:?}");
        assert!(s.contains("AUTH"), "{s}");
        assert!(!s.contains("hunter2") && !s.contains("alice"), "{s}");
    }
}
