//! One I/O error that carries its path: [`IoAt`] says what was being done to which path
//! and why it failed, in one message, `cannot ACTION PATH: REASON`. Every error enum of the
//! crate holds its filesystem failures as an `Io(IoAt)` variant, so all of them read alike.

use crate::error_class::{Classify, ErrorClass};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A failed filesystem operation on a path: `cannot read /x/y: No such file or directory`.
#[derive(Debug)]
pub struct IoAt {
    /// What was being done, as a verb phrase that reads before the path ("read", "create
    /// a temp file in").
    action: &'static str,
    path: PathBuf,
    error: io::Error,
}

impl IoAt {
    pub fn new(path: impl Into<PathBuf>, action: &'static str, error: io::Error) -> IoAt {
        IoAt {
            action,
            path: path.into(),
            error,
        }
    }

    /// For `map_err`: `fs::read(&path).map_err(IoAt::at(&path, "read"))?`; `Fn`, so that
    /// one can serve several calls.
    pub fn at(path: &Path, action: &'static str) -> impl Fn(io::Error) -> IoAt {
        let path = path.to_path_buf();
        move |error| IoAt::new(path.clone(), action, error)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn action(&self) -> &'static str {
        self.action
    }

    pub fn kind(&self) -> io::ErrorKind {
        self.error.kind()
    }

    pub fn reason(&self) -> &io::Error {
        &self.error
    }
}

impl fmt::Display for IoAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {} {}", self.action, self.path.display())?;
        // An error the `io::Error` was made from is the next link of the chain instead,
        // so that no printer of the chain shows the reason twice.
        match self.error.get_ref() {
            Some(_) => Ok(()),
            None => write!(f, ": {}", self.error),
        }
    }
}

impl std::error::Error for IoAt {
    /// Only an error the `io::Error` was made from (a verifying reader's digest mismatch):
    /// an operating system's reason is part of the message, and the exit code can still
    /// ask the error inside.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error
            .get_ref()
            .map(|inner| inner as &(dyn std::error::Error + 'static))
    }
}

impl Classify for IoAt {
    fn class(&self) -> ErrorClass {
        ErrorClass::Failure
    }
}

#[cfg(test)]
mod tests {
    use super::IoAt;
    use std::error::Error;
    use std::io;
    use std::path::Path;

    #[test]
    fn the_message_is_action_path_reason() {
        let error = IoAt::at(Path::new("/x/y"), "read")(io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(error.to_string(), "cannot read /x/y: entity not found");
        assert!(error.source().is_none(), "the reason is not repeated");
    }

    /// An error inside the `io::Error` stays in the chain (the exit code asks it), and is
    /// shown there once.
    #[test]
    fn an_error_inside_the_io_error_is_the_next_link() {
        let inner = IoAt::at(Path::new("/z"), "open")(io::Error::from(io::ErrorKind::NotFound));
        let outer = IoAt::new("/x", "copy", io::Error::other(inner));
        assert_eq!(outer.to_string(), "cannot copy /x");
        let next = outer.source().unwrap();
        assert_eq!(next.to_string(), "cannot open /z: entity not found");
        assert!(next.downcast_ref::<IoAt>().is_some());
    }
}
