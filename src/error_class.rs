//! What kind of failure an error is, decided by the error itself: every error enum of the
//! crate implements [`Classify`] with an exhaustive `match`, so a new variant cannot be
//! added without saying whether it is the user's input, a failure of the work, or an
//! interruption. Variants that wrap another classified error ask that error. The command
//! line turns the class into the process exit code (`cli::exit`); the server does not use
//! it. [`error_chain`] writes an error with its causes on one line.

/// The kinds of failure, from the least to the most decisive: when the errors of one chain
/// disagree, the greatest wins (an input error anywhere in a chain makes it an input error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorClass {
    /// The work failed: a build or test, a command, the filesystem, a registry. Exit 1.
    Failure,
    /// The input was wrong: usage, a reference, an app file, an image or file the user
    /// named (a hostile tarball included). Exit 2.
    Input,
    /// The work was cancelled (Ctrl-C, SIGTERM). Exit 130, as a shell reports SIGINT.
    Interrupted,
    /// The reader of stdout went away (`… | head -1`): nothing is left to tell anyone.
    /// Exit 141, as a shell reports SIGPIPE, without a message.
    BrokenPipe,
}

/// An error and its causes on one line, for records, logs, warnings and HTTP answers.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An error that knows its [`ErrorClass`].
pub trait Classify {
    fn class(&self) -> ErrorClass;
}
