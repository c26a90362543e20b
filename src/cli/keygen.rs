//! `keygen [--output-prefix PATH]`: makes a P-256 key pair for `sign` and `verify`, as
//! `PATH.key` (PKCS#8 PEM, unencrypted, mode 0600) and `PATH.pub` (SPKI PEM), like cosign's
//! `cosign.key`/`cosign.pub`. Neither file is ever overwritten (`O_EXCL`): a key that signed
//! images is not lost to a second run. Prints the two paths on stdout.

use super::exit::{UsageError, SUCCESS};
use super::output::result_line;
use super::Context;
use crate::attest::keys;
use crate::io_at::IoAt;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  solum-build keygen                       # solum.key, solum.pub\n  \
    solum-build keygen --output-prefix ci/release\n  \
    cosign import-key-pair --key solum.key   # the same key for cosign"
)]
pub struct KeygenArgs {
    /// Where to write: PATH.key and PATH.pub.
    #[arg(long, value_name = "PATH", default_value = "solum")]
    output_prefix: PathBuf,
}

pub fn run(context: &Context, args: KeygenArgs) -> anyhow::Result<i32> {
    let private_path = with_suffix(&args.output_prefix, "key");
    let public_path = with_suffix(&args.output_prefix, "pub");
    let pair = keys::generate();
    write_new(&private_path, pair.private_pem.as_bytes(), 0o600)?;
    // The private key is kept only with its public half: a failure here removes it, so a
    // rerun does not stop on a lone .key.
    if let Err(error) = write_new(&public_path, pair.public_pem.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&private_path);
        return Err(error);
    }
    if !context.quiet {
        eprintln!(
            "{:>12} a P-256 key pair: keep {} private",
            "Generated",
            private_path.display()
        );
    }
    result_line(private_path.display())?;
    result_line(public_path.display())?;
    Ok(SUCCESS)
}

/// `prefix` + `.suffix`, without touching a dot already in the prefix's name.
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut path = prefix.as_os_str().to_owned();
    path.push(".");
    path.push(suffix);
    PathBuf::from(path)
}

/// Creates `path` with `mode`, refusing one that exists (a symlink included), and writes
/// `bytes` to it, synced; on a failed write the file is removed again.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(UsageError(format!(
                "{} exists: keygen never overwrites a key (give another --output-prefix, or \
                 remove the file if its key is not needed)",
                path.display()
            ))
            .into())
        }
        Err(error) => return Err(IoAt::new(path, "create", error).into()),
    };
    // A file this call made and could not fill is removed: a truncated key would sign
    // nothing and, as it exists, stop every later keygen with the same prefix.
    if let Err(error) = file.write_all(bytes).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(IoAt::new(path, "write", error).into());
    }
    Ok(())
}
