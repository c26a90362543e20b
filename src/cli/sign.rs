//! `sign REF --key FILE`: signs an image in the cosign-compatible simple signing scheme.
//! For `docker://HOST/REPO[:TAG|@DIGEST]` the manifest digest the reference resolves to is
//! signed with identity `HOST/REPO` and the signature is added to the `sha256-<hex>.sig`
//! tag of that repository, where podman and skopeo (`use-sigstore-attachments: true`) and
//! cosign find it. Prints the signed digest on stdout.

use super::exit::{UsageError, SUCCESS};
use super::output::{result_line, CliReporter};
use super::Context;
use crate::attest::{cosign, keys::SigningKey};
use crate::image::ImageReference;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  solum-build keygen\n  \
    solum-build sign docker://registry.example:5000/apps/hello:1.0 --key solum.key\n  \
    skopeo copy --policy policy.json docker://registry.example:5000/apps/hello:1.0 oci:/tmp/hello")]
pub struct SignArgs {
    /// The image to sign: docker://HOST[:PORT]/REPO[:TAG|@DIGEST].
    reference: String,
    /// The private key (PKCS#8 or SEC1 PEM, unencrypted), e.g. from `solum-build keygen`.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    #[command(flatten)]
    registry: super::registry::RegistryFlags,
}

pub fn run(context: &Context, args: SignArgs) -> anyhow::Result<i32> {
    let reference: ImageReference = args.reference.parse()?;
    let key = SigningKey::load(&args.key)?;
    let reporter = CliReporter::new(context.quiet);
    match &reference {
        ImageReference::Registry { .. } => {
            let client = args.registry.client()?;
            let signature = cosign::sign_in_registry(&reference, &key, &client, &reporter)?;
            if !context.quiet {
                let verb = if signature.added {
                    "Signed"
                } else {
                    "Unchanged"
                };
                eprintln!(
                    "{verb:>12} {} as {}, signature in {}",
                    signature.signed, signature.identity, signature.signature_reference
                );
            }
            result_line(&signature.signed)?;
            Ok(SUCCESS)
        }
        other => Err(UsageError(format!(
            "{other}: only registry images (docker://HOST/REPO[:TAG|@DIGEST]) can be signed \
             so far; push the image to a registry and sign it there"
        ))
        .into()),
    }
}
