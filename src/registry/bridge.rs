//! The registry client as the transport layer sees it: [`RegistryClient`] implements
//! `transport::RegistryTransport` with fixed options, a [`ClientPerRegistry`] (credentials
//! scoped to their hosts) implements it by handing each reference to the client it picks,
//! and [`ReporterProgress`] turns this module's transfer events into `report::Reporter`
//! calls. It adds no protocol of its own.

use super::{
    pull, pull::fetch_manifest, pull_referrers, push, push_referrers, NoProgress, RegistryOptions,
    RegistryTarget, TransferProgress,
};
use crate::image::{Digest, ImageReference};
use crate::report::Reporter;
use crate::store::{Layout, ResolvedImage};
use crate::transport::{RegistryTransport, TransportError};
use std::time::Duration;

/// `pull`/`push` with the options of one command line (creds, authfile, TLS, platform).
#[derive(Clone, Debug, Default)]
pub struct RegistryClient {
    pub options: RegistryOptions,
}

/// Transfer events, as a `Reporter` shows them.
pub struct ReporterProgress<'a>(pub &'a dyn Reporter);

impl TransferProgress for ReporterProgress<'_> {
    fn on_blob_start(&self, digest: &Digest, size: u64) {
        self.0.blob_start(digest, Some(size));
    }
    fn on_blob_bytes(&self, digest: &Digest, n: u64) {
        self.0.blob_progress(digest, n);
    }
    fn on_blob_done(&self, digest: &Digest, skipped: bool) {
        self.0.blob_done(digest, skipped);
    }
    fn on_retry(&self, what: &str, attempt: u32, delay: Duration, reason: &str) {
        self.0.warning(&format!(
            "{what}: {reason}; retry {attempt} in {:.1}s",
            delay.as_secs_f64()
        ));
    }
    fn on_manifest(&self, digest: &Digest, _media_type: &str) {
        self.0.status("Manifest", &digest.to_string());
    }
    fn on_warning(&self, message: &str) {
        self.0.warning(message);
    }
}

/// A registry error as the transport layer reports it.
fn transport_error(
    reference: &ImageReference,
) -> impl FnOnce(super::RegistryError) -> TransportError + '_ {
    move |e| TransportError::Registry {
        reference: reference.to_string(),
        source: Box::new(e),
    }
}

fn target(reference: &ImageReference) -> Result<RegistryTarget, TransportError> {
    RegistryTarget::try_from(reference).map_err(|e| TransportError::Registry {
        reference: reference.to_string(),
        source: Box::new(e),
    })
}

impl RegistryTransport for RegistryClient {
    fn pull(
        &self,
        reference: &ImageReference,
        layout: &Layout,
        reporter: &dyn Reporter,
    ) -> Result<oci_spec::image::Descriptor, TransportError> {
        let source = target(reference)?;
        pull(&source, layout, &self.options, &ReporterProgress(reporter)).map_err(|e| {
            TransportError::Registry {
                reference: reference.to_string(),
                source: Box::new(e),
            }
        })
    }

    fn push(
        &self,
        layout: &Layout,
        image: &ResolvedImage,
        reference: &ImageReference,
        reporter: &dyn Reporter,
    ) -> Result<Digest, TransportError> {
        let dest = target(reference)?;
        push(
            layout,
            image,
            &dest,
            &self.options,
            &ReporterProgress(reporter),
        )
        .map_err(|e| TransportError::Registry {
            reference: reference.to_string(),
            source: Box::new(e),
        })
    }

    fn pull_referrers(
        &self,
        reference: &ImageReference,
        layout: &Layout,
        subject: &oci_spec::image::Descriptor,
        reporter: &dyn Reporter,
    ) -> Result<usize, TransportError> {
        let source = target(reference)?;
        let progress = ReporterProgress(reporter);
        pull_referrers(&source, layout, subject, &self.options, &progress)
            .map_err(transport_error(reference))
    }

    fn push_referrers(
        &self,
        layout: &Layout,
        image: &ResolvedImage,
        reference: &ImageReference,
        reporter: &dyn Reporter,
    ) -> Result<usize, TransportError> {
        let dest = target(reference)?;
        let progress = ReporterProgress(reporter);
        push_referrers(layout, image, &dest, &self.options, &progress)
            .map_err(transport_error(reference))
    }

    fn manifest(&self, reference: &ImageReference) -> Result<(Vec<u8>, Digest), TransportError> {
        let source = target(reference)?;
        fetch_manifest(&source, &self.options, &NoProgress).map_err(|e| TransportError::Registry {
            reference: reference.to_string(),
            source: Box::new(e),
        })
    }
}

/// Several configured clients, one picked for each reference (by its registry): where
/// credentials go is the picking; the talking is the picked client's.
pub trait ClientPerRegistry {
    fn client_for(&self, reference: &ImageReference) -> &RegistryClient;
}

impl<T: ClientPerRegistry + Sync> RegistryTransport for T {
    fn pull(
        &self,
        reference: &ImageReference,
        layout: &Layout,
        reporter: &dyn Reporter,
    ) -> Result<oci_spec::image::Descriptor, TransportError> {
        self.client_for(reference).pull(reference, layout, reporter)
    }

    fn push(
        &self,
        layout: &Layout,
        image: &ResolvedImage,
        reference: &ImageReference,
        reporter: &dyn Reporter,
    ) -> Result<Digest, TransportError> {
        (self.client_for(reference)).push(layout, image, reference, reporter)
    }

    fn pull_referrers(
        &self,
        reference: &ImageReference,
        layout: &Layout,
        subject: &oci_spec::image::Descriptor,
        reporter: &dyn Reporter,
    ) -> Result<usize, TransportError> {
        (self.client_for(reference)).pull_referrers(reference, layout, subject, reporter)
    }

    fn push_referrers(
        &self,
        layout: &Layout,
        image: &ResolvedImage,
        reference: &ImageReference,
        reporter: &dyn Reporter,
    ) -> Result<usize, TransportError> {
        (self.client_for(reference)).push_referrers(layout, image, reference, reporter)
    }

    fn manifest(&self, reference: &ImageReference) -> Result<(Vec<u8>, Digest), TransportError> {
        self.client_for(reference).manifest(reference)
    }
}
