//! Image references in the words skopeo and podman use: a store name, `oci:`,
//! `oci-archive:`, `docker-archive:` and `docker://`. Parsing is pure; opening the image a
//! reference names is the job of `transport`.
