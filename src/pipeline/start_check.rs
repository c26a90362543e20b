//! The start check: before a DU is committed, the program its run command starts must be
//! there. A DU runs `run_cmd` as `/bin/sh -c RUN_CMD` (see `manifest::du`), so the program
//! is the first word of that shell command: assignments (`FOO=bar`) and `exec` in front of
//! it are skipped, and a command that starts with a shell builtin or keyword (`cd`, `echo`,
//! `if`…) or with a word the shell would expand (quotes, `$`, globs…) has nothing this
//! check can name, so it is not checked. The program is looked up along the DU's `PATH`
//! (the `Env` the DU will have), or relative to its working directory when it holds a `/`;
//! what is found must be a regular file (after symlinks) with an execute bit.
//!
//! Why the lookup runs inside the sandbox, as one more step on the build's root, and not
//! from the host: the root a DU will see is an overlay of the build's upper dir over the
//! badgers' lowers (with whiteouts and opaque directories), which no single host directory
//! holds, so `openat2(RESOLVE_IN_ROOT)` alone cannot resolve a path in it; the sandbox
//! mounts exactly that view, resolves symlinks inside it by construction, and its shell
//! does the lookup the DU's shell will do. The program's name reaches the step as an
//! argument of a fixed script, never as shell text. The step runs as the DU's user, mounts
//! no cache, has no network and writes nothing.

use super::build_error::tail_text;
use super::workspace::{run_step, Step, StepResult, WorkspaceError};
use crate::error_class::{Classify, ErrorClass};
use crate::image::config::{ensure_path, merge_env};
use crate::report::{Reporter, State};
use runtime::{CancelHandle, RootFs, Termination};
use std::path::PathBuf;
use std::time::Duration;

/// The first line of the check's verdict on its stdout; what follows names the case.
const VERDICT: &str = "solum-start-check:";

/// How long the lookup may take: a shell and a few `stat`s.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// The lookup, run as `/bin/sh -c SCRIPT solum-start-check PROGRAM [ALTERNATIVE]`. It exits
/// 0 when a candidate is a regular file with an execute bit; else it prints one verdict
/// line: `missing [ALTERNATIVE-FOUND]`, `broken-link PATH`, `not-a-file PATH` or
/// `not-executable MODE PATH` (the first candidate that exists decides).
const SCRIPT: &str = r#"first=
candidate() {
  if [ -f "$1" ] && [ -x "$1" ]; then exit 0; fi
  if [ -z "$first" ] && { [ -e "$1" ] || [ -L "$1" ]; }; then first=$1; fi
}
case $1 in
*/*) candidate "$1" ;;
*) IFS=:; set -f
   for dir in $PATH; do candidate "${dir:-.}/$1"; done
   unset IFS; set +f ;;
esac
if [ -z "$first" ]; then
  if [ -n "$2" ] && command -v "$2" >/dev/null 2>&1; then
    echo "solum-start-check: missing $2"
  else
    echo "solum-start-check: missing"
  fi
  exit 3
fi
if [ ! -e "$first" ]; then echo "solum-start-check: broken-link $first"; exit 4; fi
if [ ! -f "$first" ]; then echo "solum-start-check: not-a-file $first"; exit 4; fi
mode=$(stat -L -c %a "$first" 2>/dev/null)
echo "solum-start-check: not-executable ${mode:--} $first"
exit 5
"#;

/// Why a DU would not start.
#[derive(Debug, thiserror::Error)]
pub enum StartCheckError {
    #[error("run_cmd: {run_cmd:?}: {program} is not found on the image's PATH ({path}) — install it in the build{}", instead.as_ref().map(|i| format!(", or use {i}")).unwrap_or_default())]
    NotOnPath {
        run_cmd: String,
        program: String,
        path: String,
        /// A program of a similar name the image has (`python3` for `python`).
        instead: Option<String>,
    },
    #[error("run_cmd: {run_cmd:?}: {program} is not found in the image (looked in {workdir}) — make it in the build or fix the path")]
    NotFound {
        run_cmd: String,
        program: String,
        workdir: String,
    },
    #[error("run_cmd: {run_cmd:?}: {program} ({found}) is a symlink to nothing in the image")]
    BrokenLink {
        run_cmd: String,
        program: String,
        found: String,
    },
    #[error("run_cmd: {run_cmd:?}: {program} ({found}) is not a regular file")]
    NotAFile {
        run_cmd: String,
        program: String,
        found: String,
    },
    #[error("run_cmd: {run_cmd:?}: {program} ({found}) is not executable{} — chmod +x it in the build", mode.as_ref().map(|m| format!(" (mode {m})")).unwrap_or_default())]
    NotExecutable {
        run_cmd: String,
        program: String,
        found: String,
        /// Octal, four digits (`0644`), when the image's `stat` could tell.
        mode: Option<String>,
    },
    #[error("run_cmd: {run_cmd:?}: the DU starts it with /bin/sh -c, and /bin/sh could not check it in the image ({how}){}", tail_text(.tail))]
    NoShell {
        run_cmd: String,
        how: String,
        tail: Vec<String>,
    },
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

impl Classify for StartCheckError {
    fn class(&self) -> ErrorClass {
        match self {
            StartCheckError::Workspace(inner) => inner.class(),
            // What the build made cannot start: the build failed.
            _ => ErrorClass::Failure,
        }
    }
}

/// Shell words that are builtins or keywords: a command starting with one needs no file.
const BUILTINS: &[&str] = &[
    "!", "{", "}", "[", "[[", ".", ":", "alias", "bg", "break", "case", "cd", "command",
    "continue", "do", "done", "echo", "elif", "else", "esac", "eval", "exit", "export", "false",
    "fc", "fg", "fi", "for", "function", "getopts", "hash", "if", "jobs", "kill", "local",
    "printf", "pwd", "read", "readonly", "return", "select", "set", "shift", "source", "test",
    "then", "times", "trap", "true", "type", "ulimit", "umask", "unalias", "unset", "until",
    "wait", "while",
];

/// The program `run_cmd` starts, when its first word names one plainly (see the module
/// text); `None` when there is nothing to check.
pub fn program_to_check(run_cmd: &str) -> Option<&str> {
    let mut words = run_cmd.split([' ', '\t']).filter(|w| !w.is_empty());
    loop {
        let word = words.next()?;
        if is_assignment(word) || word == "exec" {
            continue;
        }
        if BUILTINS.contains(&word) || !is_plain(word) {
            return None;
        }
        return Some(word);
    }
}

/// `NAME=value` with a shell name before the `=`.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// A word the shell takes as it is: no quoting, expansion, redirection or operator.
fn is_plain(word: &str) -> bool {
    !word.starts_with('-')
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-+@,:%".contains(c))
}

/// A program of a similar name to suggest when `program` is missing: Solum v1 app files say
/// `python` where images have `python3`.
fn alternative(program: &str) -> Option<String> {
    matches!(program, "python" | "pip").then(|| format!("{program}3"))
}

/// What the check of one DU needs.
pub struct StartCheck<'a> {
    pub run_cmd: &'a str,
    /// The root the build made (its writable layer over the badgers').
    pub rootfs: RootFs,
    /// The DU's `Env`: the base image's with the app's run environment on top.
    pub base_env: Vec<String>,
    pub run_env: Vec<String>,
    /// The DU's working directory.
    pub workdir: &'a str,
    /// The DU's `(uid, gid)`.
    pub user: (u32, u32),
}

/// Runs the check; on success, the mount points the sandbox had to create (kept out of the
/// diff like a build step's). A cancelled check gives `Ok(None)`.
pub fn check(
    request: StartCheck<'_>,
    cancel: &CancelHandle,
    reporter: &dyn Reporter,
) -> Result<Option<Vec<PathBuf>>, StartCheckError> {
    check_with(request, run_step, cancel, reporter)
}

/// How a step is run: in the sandbox ([`run_step`]) or in place (`--isolation none`).
pub type StepRunner = fn(Step, &CancelHandle, &dyn Reporter) -> Result<StepResult, WorkspaceError>;

/// [`check`] with its lookup run by `run`.
pub fn check_with(
    request: StartCheck<'_>,
    run: StepRunner,
    cancel: &CancelHandle,
    reporter: &dyn Reporter,
) -> Result<Option<Vec<PathBuf>>, StartCheckError> {
    let Some(program) = program_to_check(request.run_cmd) else {
        return Ok(Some(Vec::new()));
    };
    let mut env = request.base_env;
    merge_env(&mut env, &request.run_env);
    ensure_path(&mut env);
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or_default()
        .to_string();
    reporter.status("Checking", &format!("run_cmd starts {program}"));
    let mut command = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        SCRIPT.to_string(),
        "solum-start-check".to_string(),
        program.to_string(),
    ];
    command.extend(alternative(program));
    let step = Step {
        stage: State::Building,
        rootfs: request.rootfs,
        command,
        env,
        cwd: PathBuf::from(request.workdir),
        mounts: Vec::new(),
        user: request.user,
        network_host: false,
        timeout: Some(CHECK_TIMEOUT),
    };
    let result = run(step, cancel, reporter)?;
    let (run_cmd, program_name) = (request.run_cmd.to_string(), program.to_string());
    let verdict = result
        .tail
        .iter()
        .rev()
        .find_map(|line| line.strip_prefix(VERDICT))
        .map(str::trim);
    match (result.outcome.termination, verdict) {
        (Termination::Cancelled, _) => Ok(None),
        (Termination::Exited(0), _) => Ok(Some(result.outcome.created_mount_points)),
        (_, Some(verdict)) => Err(read_verdict(
            verdict,
            run_cmd,
            program_name,
            path,
            request.workdir,
        )),
        (termination, None) => Err(StartCheckError::NoShell {
            run_cmd,
            how: describe(termination),
            tail: result.tail,
        }),
    }
}

/// The error a verdict line (after [`VERDICT`]) names.
fn read_verdict(
    verdict: &str,
    run_cmd: String,
    program: String,
    path: String,
    workdir: &str,
) -> StartCheckError {
    let (case, rest) = verdict.split_once(' ').unwrap_or((verdict, ""));
    let found = rest.to_string();
    match case {
        "broken-link" => StartCheckError::BrokenLink {
            run_cmd,
            program,
            found,
        },
        "not-a-file" => StartCheckError::NotAFile {
            run_cmd,
            program,
            found,
        },
        "not-executable" => {
            let (mode, found) = rest.split_once(' ').unwrap_or(("-", rest));
            StartCheckError::NotExecutable {
                run_cmd,
                program,
                found: found.to_string(),
                mode: u32::from_str_radix(mode, 8)
                    .ok()
                    .map(|m| format!("{m:04o}")),
            }
        }
        _ if program.contains('/') => StartCheckError::NotFound {
            run_cmd,
            program,
            workdir: workdir.to_string(),
        },
        _ => StartCheckError::NotOnPath {
            run_cmd,
            program,
            path,
            instead: Some(found).filter(|f| !f.is_empty()),
        },
    }
}

fn describe(termination: Termination) -> String {
    match termination {
        Termination::Exited(code) => format!("exited with {code}"),
        Termination::Signaled(signal) => format!("killed by signal {signal}"),
        Termination::TimedOut => "ran past the timeout".to_string(),
        Termination::Cancelled => "cancelled".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_is_the_first_plain_word() {
        assert_eq!(program_to_check("python app.py"), Some("python"));
        assert_eq!(
            program_to_check("  ./start.sh --port 80"),
            Some("./start.sh")
        );
        assert_eq!(program_to_check("exec gunicorn app:app"), Some("gunicorn"));
        assert_eq!(
            program_to_check("FOO=bar A_1=x exec /app/run"),
            Some("/app/run")
        );
        assert_eq!(program_to_check("httpd -f -p 8080"), Some("httpd"));
        assert_eq!(program_to_check("hello"), Some("hello"));
    }

    #[test]
    fn builtins_keywords_and_expansions_are_not_checked() {
        for run_cmd in [
            "echo port=$PORT",
            "cd /app && ./run",
            "true",
            "if true; then x; fi",
            "$HOME/run",
            "\"python\" app.py",
            "py*",
            "run;",
            "",
            "FOO=bar",
            "exec",
            "-x",
            "{ a; }",
        ] {
            assert_eq!(program_to_check(run_cmd), None, "{run_cmd}");
        }
    }

    #[test]
    fn verdicts_name_the_program_and_what_is_wrong() {
        let read = |verdict: &str, program: &str| {
            read_verdict(
                verdict,
                format!("{program} x"),
                program.to_string(),
                "/usr/bin:/bin".to_string(),
                "/app",
            )
            .to_string()
        };
        assert_eq!(
            read("missing python3", "python"),
            "run_cmd: \"python x\": python is not found on the image's PATH (/usr/bin:/bin) — install it in the build, or use python3"
        );
        assert_eq!(
            read("missing", "node"),
            "run_cmd: \"node x\": node is not found on the image's PATH (/usr/bin:/bin) — install it in the build"
        );
        assert_eq!(
            read("not-executable 644 ./start.sh", "./start.sh"),
            "run_cmd: \"./start.sh x\": ./start.sh (./start.sh) is not executable (mode 0644) — chmod +x it in the build"
        );
        assert!(read("not-executable - /a b/x", "x")
            .ends_with("(/a b/x) is not executable — chmod +x it in the build"));
        assert!(
            read("missing", "./run").contains("./run is not found in the image (looked in /app)")
        );
        assert!(
            read("not-a-file /usr/bin/x", "x").ends_with("x (/usr/bin/x) is not a regular file")
        );
        assert!(read("broken-link /bin/x", "x").contains("is a symlink to nothing"));
    }
}
