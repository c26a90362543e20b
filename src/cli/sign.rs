//! `sign REF --key FILE`: signs an image in the cosign-compatible simple signing scheme.
//! For `docker://HOST/REPO[:TAG|@DIGEST]` the manifest digest the reference resolves to is
//! signed with identity `HOST/REPO` and the signature is added to the `sha256-<hex>.sig`
//! tag of that repository, where podman and skopeo (`use-sigstore-attachments: true`) and
//! cosign find it. For a store image the signature becomes one of its referrers (identity
//! `--identity`, else the store name), which `push` carries along. Prints the signed
//! digest on stdout.

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
    /// The image to sign: NAME[:TAG] in the store, or docker://HOST[:PORT]/REPO[:TAG|@DIGEST].
    reference: String,
    /// The private key (PKCS#8 or SEC1 PEM, unencrypted), e.g. from `solum-build keygen`.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// For an image of the store: the `HOST/REPO` the signature names, i.e. where the
    /// image will be pulled from (podman and skopeo check it). Default: the store name.
    /// A registry image is always signed as its own repository.
    #[arg(long, value_name = "HOST/REPO")]
    identity: Option<String>,
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
        ImageReference::Store { name } => {
            // In the store the signature is a referrer of the image: `push` carries it to
            // a registry (and its `.sig` tag). Its identity is what podman will check, so
            // it names the repository the image will be pulled from.
            let identity = args.identity.clone().unwrap_or_else(|| name.clone());
            let layout = crate::transport::open_store(&context.store)?;
            let _lease = layout.lease()?;
            let image = layout.resolve(Some(name))?;
            let signature = cosign::signature_attachment(&identity, &image.manifest_digest, &key);
            let stored = crate::attest::referrers::attach(&layout, &image.descriptor, &signature)?;
            if !context.quiet {
                eprintln!(
                    "{:>12} {name} ({}) as {identity}, signature {}",
                    "Signed",
                    image.manifest_digest,
                    stored.digest()
                );
            }
            result_line(&image.manifest_digest)?;
            Ok(SUCCESS)
        }
        other => Err(UsageError(format!(
            "{other}: sign an image of the store (NAME[:TAG]) or of a registry \
             (docker://HOST/REPO[:TAG|@DIGEST]); copy it there first"
        ))
        .into()),
    }
}
