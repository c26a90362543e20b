//! Media types: the OCI ones we write, and the Docker v2 schema 2 ones we accept when
//! reading. Anything else is an error that names the type, never a guess.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layers.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker v2 schema 2 (read only).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// How a layer blob is compressed, as its media type says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

/// The compression a layer media type declares, or `None` if it is not a layer type we know.
pub fn layer_compression(media_type: &str) -> Option<LayerCompression> {
    match media_type {
        OCI_LAYER_TAR | "application/vnd.oci.image.layer.nondistributable.v1.tar" => {
            Some(LayerCompression::None)
        }
        OCI_LAYER_GZIP
        | DOCKER_LAYER_GZIP
        | DOCKER_LAYER_FOREIGN
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => {
            Some(LayerCompression::Gzip)
        }
        OCI_LAYER_ZSTD | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
            Some(LayerCompression::Zstd)
        }
        _ => None,
    }
}

/// The OCI layer media type for a compression.
pub fn oci_layer_type(compression: LayerCompression) -> &'static str {
    match compression {
        LayerCompression::None => OCI_LAYER_TAR,
        LayerCompression::Gzip => OCI_LAYER_GZIP,
        LayerCompression::Zstd => OCI_LAYER_ZSTD,
    }
}

pub fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

pub fn is_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_oci_layer_types_map_to_their_compression() {
        assert_eq!(
            layer_compression(DOCKER_LAYER_GZIP),
            Some(LayerCompression::Gzip)
        );
        assert_eq!(
            layer_compression(OCI_LAYER_ZSTD),
            Some(LayerCompression::Zstd)
        );
        assert_eq!(
            layer_compression(OCI_LAYER_TAR),
            Some(LayerCompression::None)
        );
        assert_eq!(layer_compression("application/x-unknown"), None);
        assert_eq!(oci_layer_type(LayerCompression::Gzip), OCI_LAYER_GZIP);
    }
}
