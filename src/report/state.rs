//! The states of a delivery, as Solum named them: the one list that the build's progress
//! ([`Reporter::stage`](crate::report::Reporter::stage)), the server's records (SQLite text
//! columns) and the API's JSON share. The text of each state is its name in capitals
//! (`UNIT_TESTING_FAILED`); that text is stored and answered, so it never changes.
//!
//! The order of [`State::ALL`] is the order a delivery goes through (queued, building,
//! testing, built, pushing, ready), then the terminal failures; which states are terminal
//! is decided here and nowhere else. This module knows no error types: the map from a
//! failure to its state is the delivery's (`pipeline::delivery`).

use std::fmt;
use std::str::FromStr;

/// Where a delivery (a workflow of the server, a `build` of the CLI) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Queued,
    Building,
    UnitTesting,
    Built,
    Pushing,
    Ready,
    UnitTestingFailed,
    BuildFailed,
    PushFailed,
    Error,
    Cancelled,
}

/// A text that names no state.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a workflow state")]
pub struct UnknownState {
    pub text: String,
}

impl State {
    /// Every state: first the way through a delivery, then the failures (the order of the
    /// API description's list).
    pub const ALL: [State; 11] = [
        State::Queued,
        State::Building,
        State::UnitTesting,
        State::Built,
        State::Pushing,
        State::Ready,
        State::UnitTestingFailed,
        State::BuildFailed,
        State::PushFailed,
        State::Error,
        State::Cancelled,
    ];

    /// The states a delivery ends in: once there, a workflow does not change any more.
    pub const TERMINAL: [State; 6] = [
        State::Ready,
        State::UnitTestingFailed,
        State::BuildFailed,
        State::PushFailed,
        State::Error,
        State::Cancelled,
    ];

    /// The name as stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "QUEUED",
            State::Building => "BUILDING",
            State::UnitTesting => "UNIT_TESTING",
            State::Built => "BUILT",
            State::Pushing => "PUSHING",
            State::Ready => "READY",
            State::UnitTestingFailed => "UNIT_TESTING_FAILED",
            State::BuildFailed => "BUILD_FAILED",
            State::PushFailed => "PUSH_FAILED",
            State::Error => "ERROR",
            State::Cancelled => "CANCELLED",
        }
    }

    /// Whether a delivery in this state will not change any more.
    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }

    /// A terminal state other than READY: the delivery did not deliver.
    pub fn is_failure(self) -> bool {
        self.is_terminal() && self != State::Ready
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = UnknownState;

    fn from_str(text: &str) -> Result<State, UnknownState> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| UnknownState {
                text: text.to_string(),
            })
    }
}

impl serde::Serialize for State {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The server's records store a state as its text (with the `server` feature only: the
/// builder alone has no database).
#[cfg(feature = "server")]
mod sql {
    use super::State;
    use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

    impl ToSql for State {
        fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
            Ok(ToSqlOutput::from(self.as_str()))
        }
    }

    impl FromSql for State {
        fn column_result(value: ValueRef<'_>) -> FromSqlResult<State> {
            value
                .as_str()?
                .parse()
                .map_err(|error| FromSqlError::Other(Box::new(error)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_text() {
        for state in State::ALL {
            assert_eq!(state.as_str().parse::<State>().unwrap(), state);
            assert_eq!(state.to_string(), state.as_str());
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        assert!("ready".parse::<State>().is_err(), "the text is exact");
        assert!("".parse::<State>().is_err());
    }

    #[cfg(feature = "server")]
    #[test]
    fn every_state_round_trips_through_sqlite() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute("CREATE TABLE t (state TEXT NOT NULL)", [])
            .unwrap();
        for state in State::ALL {
            conn.execute("INSERT INTO t (state) VALUES (?1)", [state])
                .unwrap();
            let text: String = conn
                .query_row(
                    "SELECT state FROM t WHERE rowid = last_insert_rowid()",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(text, state.as_str(), "stored as its text");
            let back: State = conn
                .query_row(
                    "SELECT state FROM t WHERE rowid = last_insert_rowid()",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(back, state);
        }
        conn.execute("INSERT INTO t (state) VALUES ('SOMETHING')", [])
            .unwrap();
        let unknown = conn.query_row(
            "SELECT state FROM t WHERE rowid = last_insert_rowid()",
            [],
            |r| r.get::<_, State>(0),
        );
        assert!(unknown.is_err(), "an unknown text is an error, not a state");
    }

    #[test]
    fn terminal_states_are_the_ends() {
        let terminal: Vec<_> = State::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, State::TERMINAL);
        assert!(!State::Built.is_terminal());
        assert!(State::Ready.is_terminal() && !State::Ready.is_failure());
        assert!(State::Cancelled.is_failure());
    }
}
