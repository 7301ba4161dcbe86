//! What the agent must remember about prepared statements to decode COM_STMT_EXECUTE.

use std::collections::HashMap;

use super::binary_value::ParamType;
use super::com_stmt_execute::ComStmtExecute;
use super::command::Command;
use super::stmt_prepare_ok::StmtPrepareOk;

/// What a COM_STMT_EXECUTE decoder needs to know about its statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatementParams<'a> {
    /// The parameter count from the statement's COM_STMT_PREPARE_OK.
    pub num_params: u16,
    /// The types sent by the last execute that bound them; `None` before the first one.
    pub types: Option<&'a [ParamType]>,
    /// Parameters sent with COM_STMT_SEND_LONG_DATA since the last execute or reset: the
    /// execute packet carries no bytes for them.
    pub long_data: &'a [u16],
}

/// Looks up a statement by id, for [`Command::decode`].
pub trait StatementLookup {
    /// What is known about `statement_id`, or `None` if it is not (or no longer) prepared.
    fn statement(&self, statement_id: u32) -> Option<StatementParams<'_>>;
}

/// A lookup that knows no statement: COM_STMT_EXECUTE then fails to decode with
/// [`crate::WireError::UnknownStatement`]; every other command decodes normally.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStatements;

impl StatementLookup for NoStatements {
    fn statement(&self, _statement_id: u32) -> Option<StatementParams<'_>> {
        None
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Statement {
    num_params: u16,
    types: Option<Vec<ParamType>>,
    long_data: Vec<u16>,
}

/// The prepared statements of one connection, as the agent follows them: fed with every
/// COM_STMT_PREPARE_OK from the server and every command from the client, it answers the
/// lookups COM_STMT_EXECUTE decoding needs.
///
/// It grows only with COM_STMT_PREPARE_OK packets from the server (bounded by the server's
/// `max_prepared_stmt_count`) and forgets statements on COM_STMT_CLOSE, COM_RESET_CONNECTION
/// and COM_CHANGE_USER.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreparedStatements {
    statements: HashMap<u32, Statement>,
    last_prepared: Option<u32>,
}

impl PreparedStatements {
    /// No statements.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many statements are known.
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    /// Whether no statement is known.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Records a statement the server prepared.
    pub fn on_prepare_ok(&mut self, ok: &StmtPrepareOk) {
        self.statements.insert(
            ok.statement_id,
            Statement {
                num_params: ok.num_params,
                ..Statement::default()
            },
        );
        self.last_prepared = Some(ok.statement_id);
    }

    /// Records a failed COM_STMT_PREPARE: MariaDB's "last prepared" id no longer resolves.
    pub fn on_prepare_error(&mut self) {
        self.last_prepared = None;
    }

    /// Follows a client command: types bound by an execute, long data sent, statements reset
    /// or closed. Call it after decoding each command (and before decoding the next).
    pub fn on_command(&mut self, command: &Command) {
        match command {
            Command::StmtExecute(e) => self.on_execute(e),
            Command::StmtSendLongData(d) => {
                let id = self.resolve(d.statement_id);
                if let Some(s) = self.statements.get_mut(&id) {
                    if d.param_id < s.num_params && !s.long_data.contains(&d.param_id) {
                        s.long_data.push(d.param_id);
                    }
                }
            }
            Command::StmtReset(r) => {
                let id = self.resolve(r.statement_id);
                if let Some(s) = self.statements.get_mut(&id) {
                    s.long_data.clear();
                }
            }
            Command::StmtClose(c) => {
                let id = self.resolve(c.statement_id);
                self.statements.remove(&id);
                if self.last_prepared == Some(id) {
                    self.last_prepared = None;
                }
            }
            Command::ResetConnection | Command::ChangeUser(_) => {
                self.statements.clear();
                self.last_prepared = None;
            }
            _ => {}
        }
    }

    fn on_execute(&mut self, e: &ComStmtExecute) {
        let id = self.resolve(e.statement_id);
        if let Some(s) = self.statements.get_mut(&id) {
            if e.new_params_bound {
                s.types = Some(e.params.iter().map(|p| p.param_type).collect());
            }
            s.long_data.clear();
        }
    }

    /// The id `statement_id` stands for: MariaDB's `0xFFFF_FFFF` is the last one prepared.
    fn resolve(&self, statement_id: u32) -> u32 {
        match (statement_id, self.last_prepared) {
            (ComStmtExecute::LAST_PREPARED, Some(last))
                if !self.statements.contains_key(&statement_id) =>
            {
                last
            }
            _ => statement_id,
        }
    }
}

impl StatementLookup for PreparedStatements {
    fn statement(&self, statement_id: u32) -> Option<StatementParams<'_>> {
        let s = self.statements.get(&self.resolve(statement_id))?;
        Some(StatementParams {
            num_params: s.num_params,
            types: s.types.as_deref(),
            long_data: &s.long_data,
        })
    }
}
