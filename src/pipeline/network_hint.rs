//! The hint a step that failed without network ends with. A build has no network unless
//! `--network host` is given, and a package manager that cannot reach its index says so in
//! its own words, often after long retries (pip: 9-13 s, then `from versions: none`). When
//! the last lines of a failed build or test step show one of [`NETWORK_FAILURES`], the
//! error gets [`HINT`] as its last line.

use super::build::BuildError;
use super::dependency_layer::DependencyError;

/// The line added to the error.
pub const HINT: &str = "hint: the build has no network; vendor the dependencies \
     (wheelhouse/, vendor/, ...) or build with --network host";

/// `(tool, what it prints)` when a name cannot be resolved or a host reached; matched as
/// written against each line of the output's tail.
pub const NETWORK_FAILURES: &[(&str, &str)] = &[
    ("pip", "Failed to establish a new connection"),
    // What pip says last when the index cannot be reached (without retries, all it says).
    ("pip", "(from versions: none)"),
    ("pip, glibc", "Temporary failure in name resolution"),
    ("pip, curl, busybox", "Network is unreachable"),
    ("glibc", "Name or service not known"),
    ("npm", "ENOTFOUND"),
    ("npm", "EAI_AGAIN"),
    ("npm", "ENETUNREACH"),
    ("go", "dial tcp"),
    ("go", "dial udp"),
    ("maven", "Could not transfer artifact"),
    ("java", "UnknownHostException"),
    ("curl, git", "Could not resolve host"),
    ("cargo", "Couldn't resolve host name"),
    ("busybox wget", "bad address"),
    ("bundler", "Could not fetch specs from"),
    ("bundler", "Could not reach host"),
    ("gem", "Unable to download data from"),
    ("composer", "php_network_getaddresses"),
    ("composer", "curl error 6 while downloading"),
];

/// Whether `tail` shows a failure to reach the network.
pub fn shows_network_failure(tail: &[String]) -> bool {
    tail.iter().any(|line| {
        NETWORK_FAILURES
            .iter()
            .any(|(_, pattern)| line.contains(pattern))
    })
}

/// `error` with the hint, when it is a failed build or test step of a build without
/// network whose output shows a network failure; else `error` as it is.
pub fn with_hint(error: BuildError, network_host: bool) -> BuildError {
    let tail = match &error {
        BuildError::BuildFailed { tail, .. }
        | BuildError::AppBuildFailed { tail, .. }
        | BuildError::TestsFailed { tail, .. } => tail,
        // The dependency step is where a badger fetches packages: the likeliest to need it.
        BuildError::Dependencies(inner) => match inner.as_ref() {
            DependencyError::Failed { tail, .. } => tail,
            _ => return error,
        },
        _ => return error,
    };
    if network_host || !shows_network_failure(tail) {
        return error;
    }
    BuildError::NoNetwork(Box::new(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(lines: &[&str]) -> BuildError {
        BuildError::AppBuildFailed {
            command: "pip install".into(),
            how: "exited with 1".into(),
            tail: lines.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn pip_without_an_index_gets_the_hint() {
        let tail = "ERROR: Could not find a version that satisfies the requirement flask==3.0.0 \
                    (from versions: none)";
        let error = with_hint(failed(&[tail]), false);
        assert!(error.to_string().ends_with(HINT), "{error}");
    }

    #[test]
    fn a_failed_dependency_step_gets_the_hint_too() {
        let failed = DependencyError::Failed {
            badger: "badgers/nodejs".into(),
            how: "exited with 1".into(),
            tail: vec!["npm ERR! code EAI_AGAIN".into()],
        };
        let error = with_hint(BuildError::Dependencies(Box::new(failed)), false);
        assert!(error.to_string().ends_with(HINT), "{error}");
    }

    #[test]
    fn a_network_failure_without_network_gets_the_hint_last() {
        let error = with_hint(failed(&["wget: bad address 'example.com'"]), false);
        assert!(matches!(error, BuildError::NoNetwork(_)));
        let text = error.to_string();
        assert!(text.ends_with(HINT), "{text}");
        assert!(text.contains("bad address"), "{text}");
        // Without the tail (streamed output), the hint stays.
        let text = error.without_output_tail().to_string();
        assert!(
            !text.contains("bad address") && text.ends_with(HINT),
            "{text}"
        );
    }

    #[test]
    fn other_failures_and_network_builds_get_none() {
        let pip = "  Failed to establish a new connection: [Errno -3]";
        assert!(matches!(
            with_hint(failed(&[pip]), true),
            BuildError::AppBuildFailed { .. }
        ));
        assert!(matches!(
            with_hint(failed(&["SyntaxError"]), false),
            BuildError::AppBuildFailed { .. }
        ));
        assert!(matches!(
            with_hint(BuildError::NoSource, false),
            BuildError::NoSource
        ));
    }
}
