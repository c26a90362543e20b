//! Registry options shared by `pull`, `push`, `build`, `inspect`, `run` and `unpack`
//! (the words skopeo and podman use), and the `pull`, `login` and `logout` commands.

use super::exit::{UsageError, SUCCESS};
use super::output::{result_line, CliReporter};
use super::Context;
use crate::image::ImageReference;
use crate::pipeline::registry_cache::RegistryCache;
use crate::registry::{ClientPerRegistry, Credentials, RegistryClient, RegistryOptions};
use crate::transport::{copy_with_referrers, describe, open_image_with, Referrers};
use std::io::BufRead;
use std::path::PathBuf;

/// How to reach registries and as whom.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryFlags {
    /// USER:PASS for the registry (wins over credential files).
    #[arg(
        long,
        value_name = "USER:PASS",
        env = "SOLUM_BUILD_CREDS",
        hide_env_values = true
    )]
    creds: Option<String>,
    /// The credential file (else $REGISTRY_AUTH_FILE, podman's auth.json, docker's
    /// config.json and its credential helpers).
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// Check the registry's TLS certificate (`--tls-verify=false` to skip; plain HTTP
    /// is used for localhost and 127.0.0.1 when they do not speak TLS).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    tls_verify: Option<bool>,
    /// A certs.d-style folder: ca.crt, and client *.cert / *.key.
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// The platform to pick from a multi-platform image (default linux/amd64).
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<String>,
    /// Give up a pull or push that is not over after this many seconds (retries
    /// included). Any transfer slower than 1 KiB/s over 30 s fails (and is retried).
    #[arg(long, value_name = "SECONDS")]
    deadline: Option<u64>,
}

impl RegistryFlags {
    pub fn client(&self) -> anyhow::Result<RegistryClient> {
        let creds = match &self.creds {
            Some(text) => Some(Credentials::parse(text)?),
            None => None,
        };
        Ok(RegistryClient {
            options: RegistryOptions {
                creds,
                authfile: self.authfile.clone(),
                tls_verify: self.tls_verify,
                cert_dir: self.cert_dir.clone(),
                platform: self.platform.clone(),
                transfer: crate::registry::TransferLimits {
                    deadline: self.deadline.map(std::time::Duration::from_secs),
                    ..Default::default()
                },
                ..RegistryOptions::default()
            },
        })
    }
}

/// The build cache in a registry (`build` and `serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryCacheFlags {
    /// A registry repository to look for this build in before building
    /// (docker://HOST[:PORT]/REPO; repeatable, asked in order). A hit pulls the DU; a
    /// missing or unusable entry is a warning and the build goes on. With --push to a
    /// registry, --creds go to a cache repository only on that registry.
    #[arg(long = "cache-from", value_name = "docker://HOST/REPO")]
    from: Vec<String>,
    /// The registry repository the DU is pushed to as this build's cache entry (tag
    /// cache-<build key>) after a build or a cache hit.
    #[arg(long = "cache-to", value_name = "docker://HOST/REPO")]
    to: Option<String>,
    /// Also restore /solum/cache (pip, npm, maven downloads) from --cache-from into an
    /// empty cache folder, and save it to --cache-to after the build (at most
    /// SOLUM_BUILD_CACHE_MOUNTS_MAX bytes, default 2 GiB).
    #[arg(long = "cache-mounts")]
    mounts: bool,
}

impl RegistryCacheFlags {
    pub fn settings(&self) -> Result<RegistryCache, UsageError> {
        let parse = |text: &String| text.parse().map_err(|e| UsageError(format!("{e}")));
        Ok(RegistryCache {
            from: self.from.iter().map(parse).collect::<Result<_, _>>()?,
            to: self.to.as_ref().map(parse).transpose()?,
            mounts: self.mounts,
        })
    }
}

/// `build`'s registry client when it pushes to a registry: `--creds` are for that
/// registry, so a cache repository on another one is reached with the credential files
/// alone (their entries are per host). Every other reference (the badgers) is as before.
pub struct BuildRegistry {
    configured: RegistryClient,
    without_creds: RegistryClient,
    /// Hosts of cache repositories other than the push registry's (lower case).
    other_cache_hosts: Vec<String>,
}

impl BuildRegistry {
    pub fn new(configured: RegistryClient, push_host: &str, cache: &RegistryCache) -> Self {
        let without_creds = RegistryClient {
            options: RegistryOptions {
                creds: None,
                ..configured.options.clone()
            },
        };
        let push_host = push_host.to_ascii_lowercase();
        let other_cache_hosts = (cache.from.iter().chain(&cache.to))
            .map(|repository| repository.registry.to_ascii_lowercase())
            .filter(|host| host != &push_host)
            .collect();
        BuildRegistry {
            configured,
            without_creds,
            other_cache_hosts,
        }
    }
}

impl ClientPerRegistry for BuildRegistry {
    fn client_for(&self, reference: &ImageReference) -> &RegistryClient {
        match reference {
            ImageReference::Registry { registry, .. }
                if (self.other_cache_hosts).contains(&registry.to_ascii_lowercase()) =>
            {
                &self.without_creds
            }
            _ => &self.configured,
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example: solum-build pull docker://127.0.0.1:5000/badgers/python:3.11")]
pub struct PullArgs {
    /// docker://HOST[:PORT]/REPO[:TAG|@DIGEST] (or any other readable reference).
    reference: String,
    /// The store name (default: the repository and tag, e.g. badgers/python:3.11).
    #[arg(long, short)]
    tag: Option<String>,
    /// Pull the image alone, without its referrers (SBOMs, provenance, signatures).
    #[arg(long)]
    no_referrers: bool,
    #[command(flatten)]
    registry: RegistryFlags,
}

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The registry, HOST[:PORT].
    registry: String,
    #[arg(long, short)]
    username: Option<String>,
    /// The password (prefer --password-stdin: command lines are visible to other users).
    #[arg(long, short)]
    password: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    registry_flags: RegistryFlags,
}

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// The registry, HOST[:PORT].
    registry: String,
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
}

pub fn pull(context: &Context, args: PullArgs) -> anyhow::Result<i32> {
    let reference: ImageReference = args.reference.parse()?;
    let name = match (&args.tag, &reference) {
        (Some(tag), _) => tag.clone(),
        (
            None,
            ImageReference::Registry {
                repository, tag, ..
            },
        ) => match tag {
            Some(tag) => format!("{repository}:{tag}"),
            None => repository.clone(),
        },
        (None, _) => {
            return Err(UsageError(format!(
                "{} is not a registry reference: give --tag NAME",
                args.reference
            ))
            .into())
        }
    };
    crate::image::reference::validate_name(&name, &name)?;
    let reporter = CliReporter::new(context.quiet);
    let client = args.registry.client()?;
    let referrers = if args.no_referrers {
        Referrers::Leave
    } else {
        Referrers::Carry
    };
    let opened = open_image_with(
        &reference,
        &context.store,
        Some(&client),
        &reporter,
        referrers,
    )?;
    let layout = crate::store::Layout::open_or_create(&context.store)?;
    let digest = copy_with_referrers(&opened, &layout, Some(&name), &reporter, referrers)?;
    if !context.quiet {
        eprintln!("{:>12} {} as {name}", "Pulled", describe(&reference));
    }
    result_line(&digest)?;
    Ok(SUCCESS)
}

pub fn login(_context: &Context, args: LoginArgs) -> anyhow::Result<i32> {
    // The host goes into URLs: one that is not a host (`a/../b`, `u@h`) is refused here.
    if let Err(reason) = crate::image::validate_host(&args.registry) {
        return Err(UsageError(format!("invalid registry {:?}: {reason}", args.registry)).into());
    }
    let username = match &args.username {
        Some(user) => user.clone(),
        None => return Err(UsageError("give --username".into()).into()),
    };
    let password = match (&args.password, args.password_stdin) {
        (Some(_), true) => {
            return Err(UsageError("give --password or --password-stdin, not both".into()).into())
        }
        (Some(password), false) => password.clone(),
        (None, true) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => {
            return Err(UsageError("give --password-stdin (or --password)".into()).into())
        }
    };
    let client = args.registry_flags.client()?;
    let path = crate::registry::login(
        &args.registry,
        &Credentials::new(&username, &password),
        args.registry_flags.authfile.as_deref(),
        &client.options,
    )?;
    eprintln!("Login succeeded; credentials saved in {}", path.display());
    Ok(SUCCESS)
}

pub fn logout(_context: &Context, args: LogoutArgs) -> anyhow::Result<i32> {
    if crate::registry::logout(&args.registry, args.authfile.as_deref())? {
        eprintln!("Removed the credentials of {}", args.registry);
        Ok(SUCCESS)
    } else {
        Err(UsageError(format!("not logged in to {}", args.registry)).into())
    }
}
