//! A minimal binary for the runtime crate's tests and benchmarks: it is the sandbox entry
//! when re-executed with `__sandbox`, and otherwise runs a spec given as JSON (file argument)
//! or a rootfs directory plus a command, printing the outcome as JSON on stderr.

fn main() {
    runtime::enter_sandbox_if_requested();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let spec = match args.as_slice() {
        [flag] if flag == "--info" => {
            println!("{}", runtime::host_info());
            return;
        }
        [flag, file] if flag == "--spec" => {
            let text = std::fs::read_to_string(file).expect("read spec");
            serde_json::from_str(&text).expect("parse spec")
        }
        [root, cmd @ ..] if !cmd.is_empty() => {
            runtime::SandboxSpec::new(runtime::RootFs::Dir(root.into()), cmd.to_vec())
        }
        _ => {
            eprintln!("usage: solum-sandbox-probe ROOTFS CMD... | --spec FILE | --info");
            std::process::exit(2);
        }
    };
    let exe = std::env::current_exe().expect("current exe");
    let result = runtime::run(&spec, &exe, |ev| {
        if let runtime::OutputEvent::Bytes { stream, data, .. } = ev {
            use std::io::Write;
            let _ = match stream {
                runtime::Stream::Stdout => std::io::stdout().write_all(&data),
                runtime::Stream::Stderr => std::io::stderr().write_all(&data),
            };
        }
    });
    match result {
        Ok(outcome) => {
            if std::env::var_os("PROBE_VERBOSE").is_some() {
                eprintln!("{}", serde_json::to_string(&outcome).unwrap_or_default());
            }
            std::process::exit(match outcome.termination {
                runtime::Termination::Exited(c) => c,
                runtime::Termination::Signaled(s) => 128 + s,
                _ => 124,
            });
        }
        Err(e) => {
            eprintln!("error: {}", runtime::process::chain(&e));
            std::process::exit(125);
        }
    }
}
