//! A `Procfile` (Heroku's, which Solum apps often carry): one `NAME: COMMAND` line per
//! process type. Its `web` line is the run command of an app file that gives no `run_cmd`.
//! Blank lines and `#` comments are skipped; any other line that is not `NAME: COMMAND`
//! (NAME of letters, digits, `_` and `-`; the command not empty) is an error that names
//! its line. This module parses text only: reading the file from the source is the
//! pipeline's work.

/// The longest Procfile line quoted back in an error.
const QUOTED_LINE: usize = 80;

/// Why a Procfile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProcfileError {
    #[error("the source's Procfile, line {line}: {text:?} is not `NAME: COMMAND`")]
    Malformed { line: usize, text: String },
    #[error("the source's Procfile, line {line}: a second `{name}:` line")]
    Duplicate { line: usize, name: String },
    #[error("the source's Procfile is not UTF-8 text")]
    NotText,
    #[error("the source's Procfile cannot be read: {reason}")]
    Refused { reason: &'static str },
}

/// The command of the `web:` line, if the Procfile has one.
pub fn web_command(bytes: &[u8]) -> Result<Option<String>, ProcfileError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ProcfileError::NotText)?;
    let mut seen: Vec<&str> = Vec::new();
    let mut web = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, command)) = trimmed
            .split_once(':')
            .map(|(name, command)| (name.trim_end(), command.trim()))
            .filter(|(name, command)| valid_name(name) && !command.is_empty())
        else {
            return Err(ProcfileError::Malformed {
                line,
                text: trimmed.chars().take(QUOTED_LINE).collect(),
            });
        };
        if seen.contains(&name) {
            return Err(ProcfileError::Duplicate {
                line,
                name: name.to_string(),
            });
        }
        seen.push(name);
        if name == "web" {
            web = Some(command.to_string());
        }
    }
    Ok(web)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_web_line_is_the_command() {
        let text = b"# processes\nworker: python worker.py\n\nweb:   gunicorn app:app --bind 0.0.0.0:$PORT  \n";
        assert_eq!(
            web_command(text).unwrap().as_deref(),
            Some("gunicorn app:app --bind 0.0.0.0:$PORT")
        );
    }

    #[test]
    fn no_web_line_is_none() {
        assert_eq!(web_command(b"worker: ./work\n").unwrap(), None);
        assert_eq!(web_command(b"").unwrap(), None);
    }

    #[test]
    fn a_malformed_line_is_named() {
        let error = web_command(b"web: ./serve\nthis is not a process\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "the source's Procfile, line 2: \"this is not a process\" is not `NAME: COMMAND`"
        );
        for text in [&b"web:\n"[..], b"we b: x\n", b": x\n"] {
            assert!(
                matches!(
                    web_command(text),
                    Err(ProcfileError::Malformed { line: 1, .. })
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_second_line_of_one_name_and_binary_text_are_refused() {
        assert!(matches!(
            web_command(b"web: a\nweb: b\n"),
            Err(ProcfileError::Duplicate { line: 2, .. })
        ));
        assert!(matches!(
            web_command(b"web: \xff\n"),
            Err(ProcfileError::NotText)
        ));
    }
}
